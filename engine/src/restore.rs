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
//! `list`, `choose` and `restore` work on either backend (`crate::backend`); this module holds
//! the SQLite side, PostgreSQL's is `postgres::restore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::StepResult;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::{self, Backend};
use crate::backup::{self, Backup, RunLock};
use crate::config::Project;
use crate::error::Error;
use crate::event::Phase;
use crate::ledger::{self, AuditRow};

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
        let table = crate::schema::sql::quote_ident(&self.table);
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

/// The state of a SQLite database's application tables (virtual tables are left out; their
/// shadow tables, which hold their rows, are in).
pub fn sqlite_state(conn: &Connection) -> rusqlite::Result<State> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' AND name NOT LIKE 'strata\\_%' ESCAPE '\\' \
         AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = State::new();
    for name in names {
        let mut rows = conn.prepare(&format!("SELECT * FROM \"{}\"", name.replace('"', "\"\"")))?;
        let n = rows.column_count();
        let mut q = rows.query([])?;
        let (mut count, mut sum) = (0u64, 0u128);
        while let Some(row) = q.next()? {
            let mut h = Sha256::new();
            for i in 0..n {
                match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => h.update([0u8]),
                    rusqlite::types::ValueRef::Integer(v) => {
                        h.update([1u8]);
                        h.update(v.to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Real(v) => {
                        h.update([2u8]);
                        h.update(v.to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Text(t) => {
                        h.update([3u8]);
                        h.update((t.len() as u64).to_le_bytes());
                        h.update(t);
                    }
                    rusqlite::types::ValueRef::Blob(b) => {
                        h.update([4u8]);
                        h.update((b.len() as u64).to_le_bytes());
                        h.update(b);
                    }
                }
            }
            let digest = h.finalize();
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            // A sum of the rows' hashes: the same whatever order the rows come in.
            sum = sum.wrapping_add(u128::from_le_bytes(first));
            count += 1;
        }
        out.insert(
            name,
            TableState {
                rows: count,
                checksum: format!("{sum:032x}"),
            },
        );
    }
    Ok(out)
}

/// Where the state of the database just after the run that took `backup` is kept: beside
/// the backup, `<backup>.after.json`.
pub fn state_after_path(backup: &Path) -> PathBuf {
    let mut name = backup.file_name().unwrap_or_default().to_os_string();
    name.push(".after.json");
    backup.with_file_name(name)
}

/// Records `state` as the database's state at the end of the run that took `backup`.
pub(crate) fn record_state_after(backup: &Path, state: &State) -> Result<(), Error> {
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

/// The state recorded at the end of the run that took `backup`, if there is one.
pub fn state_after(backup: &Path) -> Option<State> {
    let text = std::fs::read_to_string(state_after_path(backup)).ok()?;
    serde_json::from_str(&text).ok()
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
pub(crate) fn default_for(
    project: &Project,
    db: &Path,
    backend: &dyn Backend,
) -> Result<Vec<Backup>, Error> {
    let real = db != project.test_db;
    let test = real
        .then(|| crate::backend::open(project, &project.test_db).ok())
        .flatten();
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
        return Err(Error::Refused(vec![crate::error::Refusal::Restore {
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
        return Err(Error::Refused(vec![crate::error::Refusal::Restore {
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
/// changed since the run that took `chosen` ended (from the state recorded then). Without
/// such a record (a backup taken by an older strata, or a PostgreSQL database), `None`.
pub fn changed_outside(live: &State, chosen: &Backup) -> Option<Vec<TableDifference>> {
    state_after(&chosen.path).map(|after| differences(&after, live))
}

/// The database `restore` works on: the real one, or with `test_db` the test database.
pub fn target(project: &Project, test_db: bool) -> &Path {
    if test_db {
        &project.test_db
    } else {
        &project.db
    }
}

/// `strata restore --list`: the backups that can go back to the database, oldest first.
pub fn list(project: &Project, test_db: bool) -> Result<(PathBuf, Vec<Backup>), Error> {
    let db = backend::open(project, target(project, test_db))?;
    Ok((db.shown(), fitting(&*db)?))
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

/// The backup `restore` would put back: `backup` (a path, or a name in `.strata/backups/`), or
/// the newest backup of the database. Refuses (exit 2) a file that is not a backup of it.
pub fn choose(project: &Project, test_db: bool, backup: Option<&Path>) -> Result<Backup, Error> {
    backend::open(project, target(project, test_db))?.choose_backup(backup)
}

/// `strata restore`: puts `backup` (or the backup of the last run that changed the database,
/// see [`choose`]) back into the real database, or with `test_db` the test database. Without
/// a name, refuses when rows changed outside strata since that run (see [`restore_confirmed`]).
/// See the module documentation (and `postgres::restore`) for what it guarantees.
pub fn restore(project: &Project, test_db: bool, backup: Option<&Path>) -> Result<Restored, Error> {
    restore_confirmed(project, test_db, backup, false)
}

/// [`restore`]; with `confirmed` (`--yes`, or a yes on the terminal), also when rows changed
/// outside strata since the run the chosen backup undoes.
pub fn restore_confirmed(
    project: &Project,
    test_db: bool,
    backup: Option<&Path>,
    confirmed: bool,
) -> Result<Restored, Error> {
    backend::open(project, target(project, test_db))?.restore(backup, backup.is_some() || confirmed)
}

/// The tables whose rows changed outside strata since the run that took `chosen` (see
/// [`changed_outside`]), read from the live database; `None` when that cannot be told.
pub fn changes_since(
    project: &Project,
    test_db: bool,
    chosen: &Backup,
) -> Result<Option<Vec<TableDifference>>, Error> {
    backend::open(project, target(project, test_db))?.changed_since(chosen)
}

/// The refusal for rows changed outside strata since the run `chosen` undoes.
pub(crate) fn changed_refusal(db: &Path, chosen: &Backup, changed: &[TableDifference]) -> Error {
    Error::Refused(vec![crate::error::Refusal::Restore {
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

/// [`choose`] on the SQLite database `db`; `fitting` gives its backups that can go back.
pub(crate) fn choose_file(
    project: &Project,
    db: &Path,
    backup: Option<&Path>,
    fitting: impl FnOnce() -> Result<Vec<Backup>, Error>,
) -> Result<Backup, Error> {
    let dir = project.backups_dir();
    let Some(named) = backup else {
        let mut fits = fitting()?;
        if let Some(newest) = fits.pop() {
            return Ok(newest);
        }
        let others = backup::list(&dir, db)?;
        return Err(if others.is_empty() {
            Error::input(
                &dir,
                format!(
                    "holds no backup of {}; `strata migrate` takes one before each run",
                    db.display()
                ),
            )
        } else {
            Error::input(
                db,
                format!(
                    "is not the database the {} backup(s) of this path in {} were taken from \
                     (it was replaced since). If you mean to put one back anyway, move {} away \
                     and name the backup: `strata restore {}`",
                    others.len(),
                    dir.display(),
                    db.display(),
                    others.last().expect("not empty").path.display()
                ),
            )
        });
    };
    let path = named_backup(named, &dir)?;
    let record = backup::read_record(&path)?;
    let source = backup::absolute(db);
    if record.source != source {
        let hint = if record.source == backup::absolute(&project.test_db) {
            " (the test database: add --test to restore it)"
        } else if record.source == backup::absolute(&project.db) {
            " (the real database: restore it without --test)"
        } else {
            ""
        };
        return Err(Error::input(
            &path,
            format!(
                "is a backup of {}{hint}, not of {}: a backup goes back only to the database it \
                 was taken from. `strata restore --list` shows the backups of {}",
                record.source.display(),
                db.display(),
                db.display()
            ),
        ));
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Backup { path, record, size })
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

/// [`restore`] on the SQLite database `db`: under the run lock, puts back the backup `choose`
/// gives.
pub(crate) fn restore_file(
    project: &Project,
    db: &Path,
    choose: impl FnOnce() -> Result<Backup, Error>,
    confirmed: bool,
) -> Result<Restored, Error> {
    let timeout = project.busy_timeout();
    let _run = RunLock::exclusive(db, timeout)?;
    let chosen = choose()?;
    if !confirmed && let Some(live) = crate::sqlite::open_read_only(db, timeout)? {
        let state = sqlite_state(&live).map_err(|e| Error::db(db, "cannot read its tables", e))?;
        if let Some(changed) = changed_outside(&state, &chosen)
            && !changed.is_empty()
        {
            return Err(changed_refusal(db, &chosen, &changed));
        }
    }
    let dir = project.backups_dir();

    // The backup: checked and copied into a staging database through one read transaction on
    // one handle, so what was checked is what is copied.
    let src = Connection::open_with_flags(&chosen.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_a_backup(&chosen.path, &e))?;
    src.execute_batch("BEGIN")
        .map_err(|e| Error::db(&chosen.path, "cannot read the backup", e))?;
    let id = ledger::database_id(&src).map_err(|e| not_a_backup(&chosen.path, &e))?;
    if id.as_deref() != Some(chosen.record.database_id.as_str()) {
        return Err(Error::input(
            &chosen.path,
            format!(
                "does not hold the database its record names (identity {} inside, {} in {}); \
                 the file was replaced or the record belongs to another backup",
                id.as_deref().unwrap_or("none"),
                chosen.record.database_id,
                backup::record_path(&chosen.path).display()
            ),
        ));
    }
    backup::check_integrity(&src, &chosen.path)?;
    let backed_up_to = max_audit_id(&src).map_err(|e| not_a_backup(&chosen.path, &e))?;
    let staging_file = backup::partial(&dir)?;
    let mut staging = Connection::open(staging_file.path())
        .map_err(|e| Error::db(staging_file.path(), "cannot open", e))?;
    copy(&src, &mut staging, Duration::ZERO)
        .map_err(|e| Error::db(&chosen.path, "cannot copy the backup", e))?;
    src.execute_batch("COMMIT")
        .map_err(|e| Error::db(&chosen.path, "cannot read the backup", e))?;
    drop(src);

    // The live database: refuse early while another writer holds it; no strata run can start
    // meanwhile (the run lock), so its state and audit log stay as read until the switch.
    let mut live = crate::sqlite::open(db, timeout)?;
    live.execute_batch("BEGIN IMMEDIATE; ROLLBACK")
        .map_err(|e| Error::db(db, "cannot lock the database", e))?;
    let (undo, carried) = keep_live_state(&live, db, &chosen, &dir, backed_up_to, &mut staging)?;

    // One switch: the staged database, with the audit rows, replaces the live one's pages.
    copy(&staging, &mut live, timeout).map_err(|e| {
        Error::db(
            db,
            format!("cannot write the backup {} into it", chosen.path.display()),
            e,
        )
    })?;
    drop(staging);
    drop(staging_file);
    // What the database holds now is strata's doing: a later restore (which undoes this one)
    // tells changes made after it from it.
    if let Some(u) = &undo
        && let Ok(state) = sqlite_state(&live)
    {
        let _ = record_state_after(u, &state);
    }
    Ok(Restored {
        db: db.to_path_buf(),
        restored_from: chosen.path,
        taken_at: chosen.record.taken_at,
        undo,
        audit_rows_kept: carried,
    })
}

/// Checks that `live` is the database `chosen` was taken from, keeps its state as a verified
/// backup, and writes into `staging` the audit rows written since the backup (those with an id
/// above `backed_up_to`), the undo backup's row and the restore's row.
/// Returns the undo backup and how many rows were carried over.
fn keep_live_state(
    live: &Connection,
    db: &Path,
    chosen: &Backup,
    dir: &Path,
    backed_up_to: i64,
    staging: &mut Connection,
) -> Result<(Option<PathBuf>, usize), Error> {
    let has_schema: i64 = live
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| Error::db(db, "cannot read the schema", e))?;
    let mut undo = None;
    let mut carried = Vec::new();
    let mut columns = Vec::new();
    if has_schema > 0 {
        let live_id =
            ledger::database_id(live).map_err(|e| Error::db(db, "cannot read its identity", e))?;
        if live_id.as_deref() != Some(chosen.record.database_id.as_str()) {
            return Err(Error::input(
                db,
                format!(
                    "is not the database {} was taken from (identity {} here, {} in the \
                     backup): it was replaced since. If you mean to put the backup back \
                     anyway, move {} away first and run the restore again",
                    chosen.path.display(),
                    live_id.as_deref().unwrap_or("none"),
                    chosen.record.database_id,
                    db.display()
                ),
            ));
        }
        // Not pruned here: the backup being restored may be the oldest one kept.
        undo = Some(backup::take(live, db, dir, usize::MAX, "before restore")?);
        if ledger::exists(live).map_err(|e| Error::db(db, "cannot read the ledger", e))? {
            columns = common_audit_columns(live, staging)
                .map_err(|e| Error::db(db, "cannot read the audit log", e))?;
            carried = audit_since(live, &columns, backed_up_to)
                .map_err(|e| Error::db(db, "cannot read the audit log", e))?;
        }
    }
    let n = carried.len();
    let mut write = || -> rusqlite::Result<()> {
        ledger::ensure(staging)?;
        let tx = staging.transaction()?;
        if !carried.is_empty() {
            let list = columns.join(", ");
            let marks = vec!["?"; columns.len()].join(", ");
            let mut insert = tx.prepare(&format!(
                "INSERT INTO strata_migration_audit ({list}) VALUES ({marks})"
            ))?;
            for row in &carried {
                insert.execute(rusqlite::params_from_iter(row))?;
            }
        }
        let mut entries = Vec::new();
        let detail = match &undo {
            Some(u) => {
                entries.push(ledger::Entry::for_run(
                    Phase::Restore.as_str(),
                    "backup",
                    format!("{} (the state before the restore)", u.display()),
                ));
                format!(
                    "restored from {} (taken {}); `strata restore {}` undoes it",
                    chosen.path.display(),
                    chosen.record.taken_at,
                    file_name(u)
                )
            }
            None => format!(
                "restored from {} (taken {})",
                chosen.path.display(),
                chosen.record.taken_at
            ),
        };
        entries.push(ledger::Entry::for_run(
            Phase::Restore.as_str(),
            "restore",
            detail,
        ));
        ledger::append(&tx, &entries)?;
        tx.commit()
    };
    write().map_err(|e| Error::db(db, "cannot prepare the restored database's audit log", e))?;
    Ok((undo, n))
}

/// Copies every page of `from` into `to` in one step of SQLite's online backup API (one write
/// transaction on `to`), retrying while `to` is locked by another connection for up to
/// `timeout`.
fn copy(from: &Connection, to: &mut Connection, timeout: Duration) -> rusqlite::Result<()> {
    let deadline = Instant::now() + timeout;
    let b = rusqlite::backup::Backup::new(from, to)?;
    loop {
        match b.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            StepResult::Busy | StepResult::Locked => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                ));
            }
            // `More` (not all pages copied yet) cannot follow a step of -1 pages; step again.
            _ => {}
        }
    }
}

/// The newest audit row id of a database; 0 when it has no audit log.
fn max_audit_id(conn: &Connection) -> rusqlite::Result<i64> {
    if !ledger::exists(conn)? {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(id), 0) FROM strata_migration_audit",
        [],
        |r| r.get(0),
    )
}

/// The audit log's columns in both databases, in `live`'s order.
fn common_audit_columns(live: &Connection, staging: &Connection) -> rusqlite::Result<Vec<String>> {
    let names = |c: &Connection| -> rusqlite::Result<Vec<String>> {
        let mut stmt = c.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let rows = stmt.query_map([ledger::AUDIT_TABLE], |r| r.get(0))?;
        rows.collect()
    };
    let there = names(staging)?;
    Ok(names(live)?
        .into_iter()
        .filter(|c| there.is_empty() || there.contains(c))
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect())
}

/// The audit rows with an id above `after`, oldest first, as values of `columns`.
fn audit_since(
    conn: &Connection,
    columns: &[String],
    after: i64,
) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM strata_migration_audit WHERE id > ?1 ORDER BY id",
        columns.join(", ")
    ))?;
    let n = columns.len();
    let rows = stmt.query_map([after], |r| (0..n).map(|i| r.get(i)).collect())?;
    rows.collect()
}

fn not_a_backup(path: &Path, e: &rusqlite::Error) -> Error {
    Error::input(
        path,
        format!("is not a strata backup: SQLite cannot read it ({e})"),
    )
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(busy_ms: u64) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("strata.toml"),
            format!("busy_timeout_ms = {busy_ms}\n"),
        )
        .unwrap();
        let p = Project::open(dir.path().to_path_buf()).unwrap();
        (dir, p)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn restore_puts_the_backup_back_and_keeps_the_state_before() {
        let (_dir, p) = project(100);
        let conn = Connection::open(&p.db).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        let taken = backup::take(&conn, &p.db, &p.backups_dir(), 10, "test").unwrap();
        conn.execute_batch("INSERT INTO t VALUES (2); CREATE TABLE u(b);")
            .unwrap();
        let done = restore(&p, false, None).unwrap();
        assert_eq!(done.restored_from, taken);
        // The same connection, still open, sees the restored database.
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 1);
        assert_eq!(
            count(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"),
            0
        );
        let undo = Connection::open(done.undo.unwrap()).unwrap();
        assert_eq!(count(&undo, "SELECT count(*) FROM t"), 2);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM strata_migration_audit WHERE action = 'restore'"
            ),
            1
        );
    }

    #[test]
    fn restore_refuses_while_a_writer_or_a_run_holds_the_database() {
        let (_dir, p) = project(50);
        let conn = Connection::open(&p.db).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        backup::take(&conn, &p.db, &p.backups_dir(), 10, "test").unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let err = restore(&p, false, None).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::REFUSED, "{err}");
        conn.execute_batch("COMMIT").unwrap();
        let run = RunLock::shared(&p.db, Duration::ZERO).unwrap();
        let err = restore(&p, false, None).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::REFUSED, "{err}");
        drop(run);
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 1);
        restore(&p, false, None).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 0);
    }

    #[test]
    fn a_replaced_database_does_not_get_the_old_ones_backup() {
        let (_dir, p) = project(50);
        let conn = Connection::open(&p.db).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        let taken = backup::take(&conn, &p.db, &p.backups_dir(), 10, "test").unwrap();
        drop(conn);
        std::fs::remove_file(&p.db).unwrap();
        let conn = Connection::open(&p.db).unwrap();
        conn.execute_batch("CREATE TABLE other(b);").unwrap();
        ledger::ensure_database_id(&conn).unwrap();
        let err = restore(&p, false, Some(&taken)).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::BAD_INPUT);
        assert!(err.to_string().contains("move"), "{err}");
        let err = restore(&p, false, None).unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
        // Moved away, the path is free: the backup goes back to a new file.
        drop(conn);
        std::fs::rename(&p.db, p.root.join("moved.db")).unwrap();
        let done = restore(&p, false, Some(&taken)).unwrap();
        assert_eq!(done.undo, None);
        let conn = Connection::open(&p.db).unwrap();
        assert_eq!(
            count(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 't'"),
            1
        );
    }
}
