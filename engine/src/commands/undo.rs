//! `strata undo`: takes applied migrations back with their `undo.sql` (Flyway's name), newest
//! first, each in a transaction of its own, audited, on the test database first (when it holds
//! them) and then on the real one, each after a verified backup, under the database's run lock
//! held exclusively (no migrate applies a step meanwhile). Inside each undo's transaction the
//! ledger is read again: a migration another run undid is passed over, and one with a newer
//! migration applied above it (a run that came in after undo chose) is refused, exit 3. Written once over the backend seam. A migration
//! without `undo.sql`, one whose files changed since it was applied, or one missing from the
//! tree is refused before anything runs; `strata restore` is the way back for those.
//!
//! `undo.sql` is not pinned with the migration's checksum (it can be written after the step
//! was applied); its own sha256 goes into the undo's audit row, and `strata sandbox` proves it:
//! after each step with an `undo.sql` it runs the undo, requires the schema to be exactly what
//! it was before the step, and applies the step again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backends;
use crate::core::backend::{UndoStep, Undone};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::Phase;
use crate::core::input::Dialect;
use crate::core::ledger::Applied;
use crate::core::tree::{Migration, Tree};

/// What to undo.
#[derive(Debug, Clone, Default)]
pub struct UndoOptions {
    /// Undo every migration applied after the one whose stamp starts with this (it stays
    /// applied); without it, only the newest applied migration.
    pub to: Option<String>,
}

/// What `strata undo` did, on each database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndoReport {
    pub databases: Vec<Undone>,
}

/// The file a migration's undo is written in.
pub const UNDO_FILE: &str = "undo.sql";

/// Runs `strata undo`.
pub fn undo(project: &Project, opts: &UndoOptions) -> Result<UndoReport, Error> {
    backends::check_project(project)?;
    backends::check_distinct(project)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let real = backends::open(project, &project.db)?;
    let applied = real.applied()?.unwrap_or_default();
    let chosen = choose(&tree, &applied, opts.to.as_deref())?;
    let dialect = real.dialect();
    let steps = chosen
        .iter()
        .map(|m| read(m, dialect))
        .collect::<Result<Vec<_>, _>>()?;
    let mut databases = Vec::new();
    // The test database first, as a run rehearses: a script that fails there never reaches
    // the real one. A test database that holds none of them (never migrated, or every run
    // was --no-rehearsal; on PostgreSQL it may exist without strata's tables) has nothing to
    // rehearse on: it is left alone, with no backup taken of it.
    let test = backends::open(project, &project.test_db)?;
    let holds = |applied: &[Applied]| {
        steps
            .iter()
            .any(|s| applied.iter().any(|a| a.id == s.migration.id))
    };
    if test.applied()?.is_some_and(|a| holds(&a)) {
        databases.push(test.undo(Phase::Rehearsal, &steps, true)?);
    }
    let undone = real.undo(Phase::Apply, &steps, true)?;
    // What the real database holds now is strata's doing: recorded beside the undo's backup so
    // a later `restore` tells the application's later rows from it (best effort; without the
    // record, restore refuses without --yes).
    if let Some(backup) = &undone.backup {
        let _ = real.record_state_after(backup);
    }
    databases.push(undone);
    Ok(UndoReport { databases })
}

/// The migrations to undo, newest first: the newest applied one, or all applied after `to`.
/// Each must be in the tree, unchanged since it was applied, and have an `undo.sql`.
pub(crate) fn choose<'t>(
    tree: &'t Tree,
    applied: &[Applied],
    to: Option<&str>,
) -> Result<Vec<&'t Migration>, Error> {
    let mut ids: Vec<&Applied> = applied.iter().collect();
    ids.sort_by(|a, b| b.id.global_cmp(&a.id));
    if ids.is_empty() {
        return Err(Error::Usage(
            "nothing to undo: no migration is applied to the real database".into(),
        ));
    }
    let chosen: Vec<&Applied> = match to {
        None => ids[..1].to_vec(),
        Some(prefix) => {
            let matching: Vec<&&Applied> = ids
                .iter()
                .filter(|a| a.id.stamp.starts_with(prefix))
                .collect();
            let keep = match matching.as_slice() {
                [one] => **one,
                [] => {
                    return Err(Error::Usage(format!(
                        "--to {prefix}: no applied migration's stamp starts with it; `strata \
                         status` lists the applied ones"
                    )));
                }
                many => {
                    return Err(Error::Usage(format!(
                        "--to {prefix}: {} applied migrations' stamps start with it ({}); give \
                         more of the stamp",
                        many.len(),
                        many.iter()
                            .map(|a| format!("{}/{}", a.id.module, a.id.stamp))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            };
            ids.iter()
                .copied()
                .filter(|a| a.id.global_cmp(&keep.id).is_gt())
                .collect()
        }
    };
    if chosen.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to undo: no migration is applied after {}",
            to.unwrap_or_default()
        )));
    }
    let mut out = Vec::new();
    for a in chosen {
        let label = format!("{}/{}", a.id.module, a.id.stamp);
        let Some(m) = tree.migrations.iter().find(|m| m.id == a.id) else {
            return Err(Error::Usage(format!(
                "cannot undo {label}: it is applied but no longer in the tree, so its undo.sql \
                 is unknown; put the database back with `strata restore` instead"
            )));
        };
        if m.checksum() != a.checksum {
            return Err(Error::Usage(format!(
                "cannot undo {}: its files changed since it was applied, so its undo.sql may \
                 not undo what ran; restore the files (`git checkout`), or re-pin them with \
                 `strata repair {}` first",
                m.label(),
                m.label()
            )));
        }
        if !m.file(UNDO_FILE).is_file() {
            return Err(Error::Usage(format!(
                "cannot undo {}: it has no {UNDO_FILE}; write {} (the statements that \
                 take the step back; `strata sandbox` proves it), or put the whole database \
                 back with `strata restore`",
                m.label(),
                m.file(UNDO_FILE).display()
            )));
        }
        out.push(m);
    }
    Ok(out)
}

/// A migration's `undo.sql`, checked as every script is, with its sha256.
pub(crate) fn read(m: &Migration, dialect: Dialect) -> Result<UndoStep<'_>, Error> {
    let path = m.file(UNDO_FILE);
    let bytes = crate::core::input::read_project_file(&path, crate::core::input::FILE_BYTES)?
        .ok_or_else(|| Error::input(&path, "is gone: it was there when the tree was read"))?;
    let checksum = crate::core::checksum::hex(&Sha256::digest(&bytes));
    let sql = String::from_utf8(bytes).map_err(|_| Error::input(&path, "is not UTF-8 text"))?;
    crate::core::input::check(dialect, &path, &sql)?;
    Ok(UndoStep {
        migration: m,
        checksum,
        sql,
    })
}
