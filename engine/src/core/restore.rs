//! `strata restore`: puts a backup back into the live database without losing anything.
//!
//! A backup goes back only to the database it was taken from: its record must name the
//! database's path and the identity inside the backup must match both the record and the live
//! database. The whole restore holds the run lock exclusively (no `migrate` or `baseline` runs
//! meanwhile), the backup is checked and copied from one open handle, the current state is
//! kept as a verified backup first (so a restore can be undone), the audit rows written since
//! the backup are carried over with the restore's own, and the result is written through
//! SQLite's online backup API into the live file: open connections and WAL readers see one
//! consistent switch, and the file keeps its inode, mode and owner; no `-wal` or `-shm` file
//! is removed.
//!
//! `list`, `choose` and `restore` work on either backend (`crate::core::backend`); this module holds
//! the SQLite side, PostgreSQL's is `postgres::restore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::backend::Backend;
use crate::core::backup::{Backup, file_name};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::Phase;
use crate::core::ledger::AuditRow;
use crate::core::target::Database;

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The database restored.
    pub db: PathBuf,
    /// The backup put back.
    pub restored_from: PathBuf,
    /// When that backup was taken.
    pub taken_at: String,
    /// The verified backup of the state just before the restore: restoring it undoes this
    /// restore. `None` when there was no database to keep.
    pub undo: Option<PathBuf>,
    /// Audit rows written after the backup was taken, kept in the restored database.
    pub audit_rows_kept: usize,
}

/// One application table's rows, summarized: how many, and a checksum of their values that
/// does not depend on their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub rows: u64,
    pub checksum: String,
}

/// Every application table (strata's and SQLite's own left out) by name.
pub type State = BTreeMap<String, TableState>;

/// A [`State`] as recorded beside a backup, with the way its checksums were made: each backend
/// names its own (`None` in records written before the name was kept; the backend knows which
/// way that was). A state is only ever compared with one made the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub scheme: Option<String>,
    pub tables: State,
}

impl Recorded {
    /// `tables` summed the way `scheme` names.
    pub fn new(scheme: &str, tables: State) -> Self {
        Recorded {
            scheme: Some(scheme.to_string()),
            tables,
        }
    }
}

/// A table whose rows differ between two states, as `restore` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDifference {
    pub table: String,
    /// Rows in the state compared against (`None`: the table was not there).
    pub rows_then: Option<u64>,
    /// Rows now (`None`: the table is gone).
    pub rows_now: Option<u64>,
}

impl std::fmt::Display for TableDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = crate::core::sql::sqlite::quote_ident(&self.table);
        match (self.rows_then, self.rows_now) {
            (None, Some(n)) => write!(f, "{table} (new since, {n} row(s))"),
            (Some(n), None) => write!(f, "{table} (gone since, had {n} row(s))"),
            (Some(a), Some(b)) if a == b => write!(f, "{table} ({b} row(s), changed)"),
            (Some(a), Some(b)) => write!(f, "{table} ({a} -> {b} rows)"),
            (None, None) => write!(f, "{table}"),
        }
    }
}

/// The tables whose rows differ between `then` and `now`.
pub fn differences(then: &State, now: &State) -> Vec<TableDifference> {
    let mut names: Vec<&String> = then.keys().chain(now.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| then.get(*n) != now.get(*n))
        .map(|n| TableDifference {
            table: n.clone(),
            rows_then: then.get(n).map(|t| t.rows),
            rows_now: now.get(n).map(|t| t.rows),
        })
        .collect()
}

/// Where the state of the database just after the run that took `backup` is kept: beside
/// the backup, `<backup>.after.json`.
pub fn state_after_path(backup: &Path) -> PathBuf {
    let mut name = backup.file_name().unwrap_or_default().to_os_string();
    name.push(".after.json");
    backup.with_file_name(name)
}

/// Records `state` as the database's state at the end of the run that took `backup`.
pub(crate) fn record_state_after(backup: &Path, state: &Recorded) -> Result<(), Error> {
    let path = state_after_path(backup);
    let text = serde_json::to_string_pretty(state).expect("a state serializes");
    // As private as the backup it sits beside.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    use std::io::Write as _;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(&path, e))
}

/// The state recorded at the end of the run that took `backup`, if there is one (a record
/// written before the scheme was kept is the bare map of tables).
pub fn state_after(backup: &Path) -> Option<Recorded> {
    let text = crate::core::input::read_project_text(
        &state_after_path(backup),
        crate::core::input::FILE_BYTES,
    )
    .ok()??;
    serde_json::from_str(&text).ok().or_else(|| {
        serde_json::from_str(&text).ok().map(|tables| Recorded {
            scheme: None,
            tables,
        })
    })
}

/// One run in a database's audit log: from its backup row to the next backup.
#[derive(Debug, Clone)]
struct Run {
    /// When its backup was taken.
    at: String,
    /// The backup's file name.
    backup: String,
    /// The migrations it applied here (outcome ok).
    applied: Vec<String>,
    /// The migrations it tried here and that failed.
    failed: Vec<String>,
}

/// The runs recorded in an audit log, oldest first: the `migrate` phases (of `phase`) that
/// took a backup, and the restores (whose backup is the undo backup).
fn runs(rows: &[AuditRow], phase: &str) -> Vec<Run> {
    let restore = Phase::Restore.as_str();
    let mut out: Vec<Run> = Vec::new();
    let mut open = false;
    for r in rows {
        if r.action == "backup" {
            open = r.phase == phase || r.phase == restore;
            if open {
                // `<path>` or `<path> (the state before the restore)`.
                let backup = r
                    .detail
                    .as_deref()
                    .map(|d| d.split_once(" (").map_or(d, |(p, _)| p))
                    .map(Path::new)
                    .map_or_else(String::new, file_name);
                out.push(Run {
                    at: r.at.clone(),
                    backup,
                    applied: Vec::new(),
                    failed: Vec::new(),
                });
            }
            continue;
        }
        let (Some(run), true) = (
            out.last_mut(),
            open && (r.phase == phase || r.phase == restore),
        ) else {
            continue;
        };
        if r.phase == restore {
            if r.action == "restore" && r.outcome == "ok" {
                run.applied.push("a restore".to_string());
            }
            continue;
        }
        let (Some(module), Some(stamp)) = (&r.module, &r.stamp) else {
            continue;
        };
        let label = format!("{module}/{stamp}");
        let list = if r.outcome == "ok" {
            &mut run.applied
        } else {
            &mut run.failed
        };
        if !list.contains(&label) {
            list.push(label);
        }
    }
    // A migration that failed after an ok action (do.sql ok, a check failed) was rolled back.
    for run in &mut out {
        let failed = run.failed.clone();
        run.applied.retain(|m| !failed.contains(m));
    }
    out
}

/// The backups `restore` puts back by default on `backend` (the database `db` of `project`):
/// [`default_fits`], consulting the test database's log when `db` is the real one.
/// `open_test` opens the project's test database with the same backend (`None` when it is of
/// another kind).
pub(crate) fn default_for<'p>(
    project: &'p Project,
    db: &Path,
    backend: &dyn Backend,
    open_test: impl FnOnce(&'p Database) -> Option<Box<dyn Backend + 'p>>,
) -> Result<Vec<Backup>, Error> {
    let real = db != project.test_db;
    let test = real.then(|| open_test(&project.test_db)).flatten();
    default_fits(backend, real, test.as_deref())
}

/// The backups `restore` without a name may put back into `db`, the one it would put back
/// last: the backup taken by the last run that changed the database (read from its audit
/// log), not merely the newest backup. `real` says whether `db` is the real database (whose
/// runs are `apply` phases; the test database's are rehearsals), and `test` is then the test
/// database when it can be opened. Refuses when the last run (on this database, or for the
/// real database, a later rehearsal on `test`) changed nothing here: undoing "the last run"
/// would then undo an earlier one instead. Falls back to the newest backup when the audit log
/// names no run that changed the database.
pub(crate) fn default_fits(
    db: &dyn Backend,
    real: bool,
    test: Option<&dyn Backend>,
) -> Result<Vec<Backup>, Error> {
    let mut fits = fitting(db)?;
    if fits.is_empty() {
        return Ok(fits);
    }
    let test = test.filter(|_| real);
    let phase = if real {
        Phase::Apply.as_str()
    } else {
        Phase::Rehearsal.as_str()
    };
    let own = runs(&db.audit(None)?, phase);
    let Some(changed) = own.iter().rev().find(|r| !r.applied.is_empty()) else {
        return Ok(fits);
    };
    let Some(pos) = fits
        .iter()
        .position(|b| file_name(&b.path) == changed.backup)
    else {
        return Err(Error::Refused(vec![crate::core::error::Refusal::Restore {
            db: db.shown(),
            message: format!(
                "the backup taken before the last run that changed it ({}, which applied {}) \
                 is no longer kept (only the newest backups_keep are); `strata restore --list` \
                 shows the backups there are: name the one to put back",
                changed.backup,
                changed.applied.join(", ")
            ),
        }]));
    };
    fits.truncate(pos + 1);
    // A run after it that changed nothing here: on this database, or a rehearsal that stopped
    // before the real database was touched.
    let mut later: Vec<(String, String)> = own
        .iter()
        .filter(|r| r.at > changed.at && r.applied.is_empty())
        .map(|r| {
            (
                r.at.clone(),
                describe_unchanged(r, "its steps failed and were rolled back"),
            )
        })
        .collect();
    if let Some(test) = test {
        let newest_own = own.last().map(|r| r.at.clone()).unwrap_or_default();
        let rehearsals = test
            .audit(None)
            .map(|rows| runs(&rows, Phase::Rehearsal.as_str()));
        for r in rehearsals.unwrap_or_default() {
            if r.at > newest_own {
                let why = if r.failed.is_empty() {
                    "it stopped after the rehearsal"
                } else {
                    "it failed during the rehearsal, before this database was touched"
                };
                later.push((r.at.clone(), describe_unchanged(&r, why)));
            }
        }
    }
    later.sort();
    if let Some((_, what)) = later.last() {
        let chosen = &fits[pos];
        return Err(Error::Refused(vec![crate::core::error::Refusal::Restore {
            db: db.shown(),
            message: format!(
                "{what}, so there is nothing of it to undo here. Without a name, restore would \
                 put back {} (taken {}, before the run that applied {}), undoing that earlier \
                 run and every change since; if that is what you want, name it: `strata \
                 restore {}`",
                file_name(&chosen.path),
                chosen.record.taken_at,
                changed.applied.join(", "),
                file_name(&chosen.path)
            ),
        }]));
    }
    Ok(fits)
}

fn describe_unchanged(r: &Run, why: &str) -> String {
    let tried = if r.failed.is_empty() {
        String::new()
    } else {
        format!(", trying {}", r.failed.join(", "))
    };
    format!(
        "the last run (started {}{tried}) changed nothing in this database: {why}",
        r.at
    )
}

/// What putting `chosen` back would lose that strata did not write: the tables whose rows
/// changed since the run that took `chosen` ended, from the state recorded then and the live
/// state `live` reads the way the record names (`None` when the backend cannot read it that
/// way). Without such a record (a backup taken by an older strata, or one whose record was
/// removed), `None`.
pub fn changed_outside<E>(
    chosen: &Backup,
    live: impl FnOnce(Option<&str>) -> Result<Option<State>, E>,
) -> Result<Option<Vec<TableDifference>>, E> {
    let Some(after) = state_after(&chosen.path) else {
        return Ok(None);
    };
    Ok(live(after.scheme.as_deref())?.map(|now| differences(&after.tables, &now)))
}

/// The refusal for rows changed outside strata since the run `chosen` undoes.
pub(crate) fn changed_refusal(db: &Path, chosen: &Backup, changed: &[TableDifference]) -> Error {
    Error::Refused(vec![crate::core::error::Refusal::Restore {
        db: db.to_path_buf(),
        message: format!(
            "changed outside strata since the run that took {} ended: the rows of {} differ. \
             Putting the backup back would lose those changes (the restore keeps them in its \
             undo backup). Run again with --yes to restore anyway, or name the backup: \
             `strata restore {}`",
            file_name(&chosen.path),
            changed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            file_name(&chosen.path)
        ),
    }])
}

/// The refusal for a backup with no recorded end state (`<backup>.after.json`): strata cannot
/// tell whether rows were written since the run that took it, so it does not guess that none
/// were. A backup taken by an older strata, or one whose record was removed.
pub(crate) fn unknown_refusal(db: &Path, chosen: &Backup) -> Error {
    Error::Refused(vec![crate::core::error::Refusal::Restore {
        db: db.to_path_buf(),
        message: format!(
            "cannot tell whether it changed outside strata since {} was taken: there is no \
             record of its state when that run ended ({} is missing). Putting the backup back \
             would lose every row written since (the restore keeps them in its undo backup). \
             Run again with --yes to restore anyway, or name the backup: `strata restore {}`",
            file_name(&chosen.path),
            file_name(&state_after_path(&chosen.path)),
            file_name(&chosen.path)
        ),
    }])
}

/// The backup a user named: a path, or a name in `dir` (`.strata/backups/`).
pub(crate) fn named_backup(named: &Path, dir: &Path) -> Result<PathBuf, Error> {
    if named.is_dir() {
        Err(Error::input(
            named,
            "is a folder, not a backup: name one backup file (`strata restore --list` shows \
             them), or give no name to restore the newest",
        ))
    } else if named.is_file() {
        Ok(named.to_path_buf())
    } else if dir.join(named).is_file() {
        Ok(dir.join(named))
    } else {
        Err(Error::input(
            named,
            "is not a backup: no such file here or in .strata/backups/",
        ))
    }
}

/// The backups of `db` that can go back to it: those recorded as taken of it whose identity
/// is the live database's (all of them when it has none), oldest first.
pub(crate) fn fitting(db: &dyn Backend) -> Result<Vec<Backup>, Error> {
    let live = db.identity()?;
    Ok(db
        .backups()?
        .into_iter()
        .filter(|b| live.as_ref().is_none_or(|id| *id == b.record.database_id))
        .collect())
}
