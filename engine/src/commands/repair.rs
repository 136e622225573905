//! `strata repair`: re-pins applied migrations whose files were changed on purpose (Flyway's
//! word for it). Shows what changed, changes nothing without `--yes`, and audits each re-pin
//! with the operator in the database it changed.
//!
//! Only the ledger's checksum and manifest of the named migrations change: nothing runs, and
//! the database schema and rows stay as they are.

use std::path::PathBuf;

use serde::Serialize;

use crate::backends;
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::plan::{self, State};
use crate::core::tree::Tree;

/// One migration re-pinned (or, without `--yes`, that would be) on one database.
#[derive(Debug, Clone, Serialize)]
pub struct Repin {
    pub db: PathBuf,
    /// `module/folder`.
    pub migration: String,
    /// The pinned files that differ from what was applied.
    pub files: Vec<PathBuf>,
    pub old_checksum: String,
    pub new_checksum: String,
}

/// What `repair` found, and whether it wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub repins: Vec<Repin>,
    pub done: bool,
}

/// Re-pins each of `names` (`module/folder`, or `module/stamp`) on the test and the real
/// database wherever it is applied with other checksums. Without `yes`, reports what would
/// change and refuses (exit 3) with nothing touched.
pub fn repair(project: &Project, names: &[String], yes: bool) -> Result<RepairReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let mut chosen = Vec::new();
    for name in names {
        let (module, rest) = name.split_once('/').unwrap_or((name, ""));
        let m = tree
            .module(module)
            .find(|m| !rest.is_empty() && (m.folder() == rest || m.id.stamp == rest))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no migration `{name}`: name it as <module>/<folder> (or \
                     <module>/<stamp>), as `strata status` lists it"
                ))
            })?;
        chosen.push(m);
    }
    let mut repins = Vec::new();
    for db in [&project.test_db, &project.db] {
        let applied = crate::commands::migrate::read_applied(project, db)?;
        for entry in plan::status(&tree.migrations, &applied) {
            let State::Modified { files } = entry.state else {
                continue;
            };
            let Some(m) = chosen.iter().find(|m| m.id == entry.id) else {
                continue;
            };
            let old = applied
                .iter()
                .find(|a| a.id == m.id)
                .expect("modified means applied");
            repins.push(Repin {
                db: db.shown(),
                migration: m.label(),
                files: files.iter().map(|f| m.dir.join(f)).collect(),
                old_checksum: old.checksum.clone(),
                new_checksum: m.checksum(),
            });
        }
    }
    for m in &chosen {
        if !repins.iter().any(|r| r.migration == m.label()) {
            return Err(Error::Usage(format!(
                "{m} has nothing to repair: it is not applied with other files to {} or {} \
                 (`strata status` shows MODIFIED for what repair re-pins)",
                project.test_db, project.db
            )));
        }
    }
    if !yes {
        return Ok(RepairReport {
            repins,
            done: false,
        });
    }
    for r in &repins {
        let m = chosen
            .iter()
            .find(|m| m.label() == r.migration)
            .expect("a chosen migration");
        let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
        let mut entry = crate::core::ledger::Entry::for_run(
            "repair",
            "repair",
            format!(
                "re-pinned after a deliberate change to {}: checksum {} -> {}",
                files.join(", "),
                r.old_checksum,
                r.new_checksum
            ),
        );
        entry.module = Some(m.id.module.clone());
        entry.stamp = Some(m.id.stamp.clone());
        entry.checksum = Some(r.new_checksum.clone());
        let db = if project.test_db == *r.db {
            &project.test_db
        } else {
            &project.db
        };
        backends::open(project, db)?.repin(m, &r.old_checksum, &entry)?;
    }
    Ok(RepairReport { repins, done: true })
}
