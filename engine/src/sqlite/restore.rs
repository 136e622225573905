//! Putting a backup back into a live SQLite database, keeping the audit log's newer rows, and
//! the state of its application tables that `restore` compares (`crate::core::restore`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::config::Project;
use crate::core::event::Phase;
use rusqlite::backup::StepResult;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};
use std::time::Instant;

use crate::core::backup::Backup;
use crate::core::backup::RunLock;
use crate::core::backup::file_name;
use crate::core::error::Error;
use crate::core::restore::Restored;
use crate::core::restore::changed_outside;
use crate::core::restore::changed_refusal;
use crate::core::restore::named_backup;
use crate::core::restore::record_state_after;
use crate::core::restore::{Recorded, State, TableState};
use crate::sqlite::backup;
use crate::sqlite::ledger;

/// How [`sqlite_state`] sums a table's rows, as its records name it: the xxh3-128 hash of each
/// row's values (each tagged with its type, texts and blobs with their length), added up so
/// that the order the rows come in does not matter.
pub const SCHEME: &str = "xxh3-128-sum";
/// How records that name no scheme were summed: the first 16 bytes of each row's SHA-256 over
/// the same bytes, added up.
const SHA256_SUM: &str = "sha256-sum";
/// [`SCHEME`] with the schema too (every row of `sqlite_master` but SQLite's and strata's own,
/// without its pages: an index, view or trigger the application made after the run): what records are made
/// with now; an older record is compared the way it was made.
pub const SCHEME_WITH_SCHEMA: &str = "xxh3-128-sum+schema";
/// How the state names the schema's rows.
const SCHEMA_KEY: &str = "sqlite_master";

/// A way of hashing one row's bytes into the sum.
#[derive(Clone, Copy)]
enum RowHash {
    Xxh3,
    Sha256,
}

impl RowHash {
    fn of(self, row: &[u8]) -> u128 {
        match self {
            RowHash::Xxh3 => xxhash_rust::xxh3::xxh3_128(row),
            RowHash::Sha256 => {
                let digest = Sha256::digest(row);
                let mut first = [0u8; 16];
                first.copy_from_slice(&digest[..16]);
                u128::from_le_bytes(first)
            }
        }
    }
}

/// The state of a SQLite database's application tables (virtual tables are left out; their
/// shadow tables, which hold their rows, are in), summed the way [`SCHEME`] names.
pub fn sqlite_state(conn: &Connection) -> rusqlite::Result<State> {
    state_with(conn, RowHash::Xxh3, false)
}

/// [`sqlite_state`] as a record beside a backup keeps it.
pub(crate) fn recorded_state(conn: &Connection) -> rusqlite::Result<Recorded> {
    Ok(Recorded::new(
        SCHEME_WITH_SCHEMA,
        state_with(conn, RowHash::Xxh3, true)?,
    ))
}

/// The state summed the way `scheme` names (`None`: a record that named none), or `None` for
/// a way this strata does not know (a record from a newer one).
pub(crate) fn state_in(conn: &Connection, scheme: Option<&str>) -> rusqlite::Result<Option<State>> {
    let (hash, schema) = match scheme.unwrap_or(SHA256_SUM) {
        SCHEME_WITH_SCHEMA => (RowHash::Xxh3, true),
        SCHEME => (RowHash::Xxh3, false),
        SHA256_SUM => (RowHash::Sha256, false),
        _ => return Ok(None),
    };
    state_with(conn, hash, schema).map(Some)
}

fn state_with(conn: &Connection, hash: RowHash, schema: bool) -> rusqlite::Result<State> {
    // strata's own tables by their exact names: an application table that happens to be
    // called `strata_layers` is the application's, and its rows count.
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .filter(|n| {
            n.as_ref().map_or(true, |n| {
                !crate::core::ledger::OWN_TABLES
                    .iter()
                    .any(|own| own.eq_ignore_ascii_case(n))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut out = State::new();
    if schema {
        // The schema's rows in order (their pages left out: a VACUUM moves them).
        let mut rows = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
        )?;
        let mut q = rows.query([])?;
        let (mut count, mut all) = (0u64, Vec::new());
        while let Some(row) = q.next()? {
            // strata's own tables and their indexes are strata's, as their rows are.
            let table: String = row.get(2)?;
            if crate::core::ledger::OWN_TABLES
                .iter()
                .any(|own| own.eq_ignore_ascii_case(&table))
            {
                continue;
            }
            for i in 0..4 {
                let text = row.get::<_, Option<String>>(i)?.unwrap_or_default();
                all.extend_from_slice(&(text.len() as u64).to_le_bytes());
                all.extend_from_slice(text.as_bytes());
            }
            count += 1;
        }
        out.insert(
            SCHEMA_KEY.to_string(),
            TableState {
                rows: count,
                checksum: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&all)),
            },
        );
    }
    let mut bytes = Vec::with_capacity(256);
    for name in names {
        let mut rows = conn.prepare(&format!("SELECT * FROM \"{}\"", name.replace('"', "\"\"")))?;
        let n = rows.column_count();
        let mut q = rows.query([])?;
        let (mut count, mut sum) = (0u64, 0u128);
        while let Some(row) = q.next()? {
            bytes.clear();
            for i in 0..n {
                match row.get_ref(i)? {
                    ValueRef::Null => bytes.push(0),
                    ValueRef::Integer(v) => {
                        bytes.push(1);
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        bytes.push(2);
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                    ValueRef::Text(t) => {
                        bytes.push(3);
                        bytes.extend_from_slice(&(t.len() as u64).to_le_bytes());
                        bytes.extend_from_slice(t);
                    }
                    ValueRef::Blob(b) => {
                        bytes.push(4);
                        bytes.extend_from_slice(&(b.len() as u64).to_le_bytes());
                        bytes.extend_from_slice(b);
                    }
                }
            }
            // A sum of the rows' hashes: the same whatever order the rows come in.
            sum = sum.wrapping_add(hash.of(&bytes));
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
        let others = crate::core::backup::list(&dir, db)?;
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
    let record = crate::core::backup::read_record(&path)?;
    let source = crate::core::backup::absolute(db);
    if record.source != source {
        let of = |db: &crate::core::target::Database| {
            db.file()
                .is_some_and(|f| record.source == crate::core::backup::absolute(f))
        };
        let hint = if of(&project.test_db) {
            " (the test database: add --test to restore it)"
        } else if of(&project.db) {
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
        let changed = changed_outside(&chosen, |scheme| state_in(&live, scheme))
            .map_err(|e| Error::db(db, "cannot read its tables", e))?;
        match changed {
            Some(changed) if !changed.is_empty() => {
                return Err(changed_refusal(db, &chosen, &changed));
            }
            // Fail closed on the real database: without the end state, rows written since
            // cannot be told from strata's (the test database holds only test data).
            None if db != project.test_db => {
                return Err(crate::core::restore::unknown_refusal(db, &chosen));
            }
            _ => {}
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
                crate::core::backup::record_path(&chosen.path).display()
            ),
        ));
    }
    backup::check_integrity(&src, &chosen.path)?;
    let backed_up_to = max_audit_id(&src).map_err(|e| not_a_backup(&chosen.path, &e))?;
    let staging_file = crate::core::backup::partial(&dir)?;
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
        && let Ok(state) = recorded_state(&live)
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
                entries.push(crate::core::ledger::Entry::for_run(
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
        entries.push(crate::core::ledger::Entry::for_run(
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
        let rows = stmt.query_map([crate::core::ledger::AUDIT_TABLE], |r| r.get(0))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::restore::restore;

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
        let conn = Connection::open(p.db.file().unwrap()).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        let taken =
            backup::take(&conn, p.db.file().unwrap(), &p.backups_dir(), 10, "test").unwrap();
        conn.execute_batch("INSERT INTO t VALUES (2); CREATE TABLE u(b);")
            .unwrap();
        // Named: this backup has no end-state record, so without a name restore refuses.
        let err = restore(&p, false, None).unwrap_err();
        assert!(err.to_string().contains("--yes"), "{err}");
        let done = restore(&p, false, Some(&taken)).unwrap();
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
        let conn = Connection::open(p.db.file().unwrap()).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        let taken =
            backup::take(&conn, p.db.file().unwrap(), &p.backups_dir(), 10, "test").unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let err = restore(&p, false, Some(&taken)).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::REFUSED, "{err}");
        conn.execute_batch("COMMIT").unwrap();
        let run = RunLock::shared(p.db.file().unwrap(), Duration::ZERO).unwrap();
        let err = restore(&p, false, Some(&taken)).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::REFUSED, "{err}");
        drop(run);
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 1);
        restore(&p, false, Some(&taken)).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM t"), 0);
    }

    #[test]
    fn a_replaced_database_does_not_get_the_old_ones_backup() {
        let (_dir, p) = project(50);
        let conn = Connection::open(p.db.file().unwrap()).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        let taken =
            backup::take(&conn, p.db.file().unwrap(), &p.backups_dir(), 10, "test").unwrap();
        drop(conn);
        std::fs::remove_file(p.db.file().unwrap()).unwrap();
        let conn = Connection::open(p.db.file().unwrap()).unwrap();
        conn.execute_batch("CREATE TABLE other(b);").unwrap();
        ledger::ensure_database_id(&conn).unwrap();
        let err = restore(&p, false, Some(&taken)).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::BAD_INPUT);
        assert!(err.to_string().contains("move"), "{err}");
        let err = restore(&p, false, None).unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
        // Moved away, the path is free: the backup goes back to a new file.
        drop(conn);
        std::fs::rename(p.db.file().unwrap(), p.root.join("moved.db")).unwrap();
        let done = restore(&p, false, Some(&taken)).unwrap();
        assert_eq!(done.undo, None);
        let conn = Connection::open(p.db.file().unwrap()).unwrap();
        assert_eq!(
            count(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 't'"),
            1
        );
    }

    #[test]
    fn a_recorded_state_is_compared_the_way_it_was_summed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("app.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'één 表'), (NULL, 2.5), (x'00ff', 'z');",
        )
        .unwrap();
        let backup = dir.path().join("app.db.bak");

        // A record written before schemes were named: the bare map of tables, each row's
        // SHA-256 (first 16 bytes, little-endian) over its tagged values, summed. Computed here
        // independently of the code under test.
        let tagged: [&[u8]; 3] = [
            &[
                &[1u8][..],
                &1i64.to_le_bytes(),
                &[3],
                &("één 表".len() as u64).to_le_bytes(),
                "één 表".as_bytes(),
            ]
            .concat(),
            &[&[0u8][..], &[2], &2.5f64.to_le_bytes()].concat(),
            &[
                &[4u8][..],
                &2u64.to_le_bytes(),
                &[0, 0xff],
                &[3],
                &1u64.to_le_bytes(),
                b"z",
            ]
            .concat(),
        ];
        let sum = tagged.iter().fold(0u128, |acc, row| {
            let d = Sha256::digest(row);
            acc.wrapping_add(u128::from_le_bytes(d[..16].try_into().unwrap()))
        });
        let legacy = format!(r#"{{"t": {{"rows": 3, "checksum": "{sum:032x}"}}}}"#);
        std::fs::write(crate::core::restore::state_after_path(&backup), legacy).unwrap();
        let after = crate::core::restore::state_after(&backup).unwrap();
        assert_eq!(after.scheme, None);
        assert_eq!(state_in(&conn, None).unwrap().unwrap(), after.tables);

        // A record made now names its scheme and reads back the same; its sums differ from
        // the old ones, so comparing across schemes would call every table changed.
        let now = recorded_state(&conn).unwrap();
        assert_eq!(now.scheme.as_deref(), Some(SCHEME_WITH_SCHEMA));
        assert_ne!(now.tables, after.tables);
        record_state_after(&backup, &now).unwrap();
        let after = crate::core::restore::state_after(&backup).unwrap();
        assert_eq!(after, now);
        assert_eq!(
            state_in(&conn, after.scheme.as_deref()).unwrap().unwrap(),
            after.tables
        );

        // A change to one value shows.
        conn.execute("UPDATE t SET b = 'z!' WHERE b = 'z'", [])
            .unwrap();
        let changed = crate::core::restore::differences(
            &after.tables,
            &state_in(&conn, after.scheme.as_deref()).unwrap().unwrap(),
        );
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].rows_now, Some(3));

        // So does a change to the schema (an index the application added), in the records
        // made now; the older scheme does not see it.
        conn.execute("CREATE INDEX t_b ON t(b)", []).unwrap();
        let changed = crate::core::restore::differences(
            &after.tables,
            &state_in(&conn, after.scheme.as_deref()).unwrap().unwrap(),
        );
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed.iter().any(|c| c.table == "sqlite_master"));
        let old = state_in(&conn, Some(SCHEME)).unwrap().unwrap();
        assert!(!old.contains_key("sqlite_master"));

        // A scheme this strata does not know cannot be compared.
        assert_eq!(state_in(&conn, Some("from-a-newer-strata")).unwrap(), None);
    }
}
