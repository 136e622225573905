//! A SQLite database's backups: an online copy with the backup API, verified with
//! `integrity_check`, then stored and recorded as every backend's are (`crate::core::backup`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use std::fs::File;
use std::time::Instant;

use crate::core::backup::{partial, prune, store};
use crate::core::error::Error;
use crate::sqlite::ledger;

/// Checks a database with `PRAGMA integrity_check` on an open connection.
pub(crate) fn check_integrity(conn: &Connection, path: &Path) -> Result<(), Error> {
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| Error::db(path, "cannot check the backup's integrity", e))?;
    if result == "ok" {
        Ok(())
    } else {
        Err(Error::input(
            path,
            format!("fails PRAGMA integrity_check: {result}"),
        ))
    }
}

/// Checks a database file with `PRAGMA integrity_check`.
pub fn verify(path: &Path) -> Result<(), Error> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::db(path, "cannot open the backup", e))?;
    check_integrity(&conn, path)
}

/// Takes a verified backup of the database `conn` has open (at `db`) into `dir`, recorded with
/// `db`'s path and identity (given to the database first if it has none) and `reason`, then
/// keeps only the newest `keep` backups of that database. Returns the backup's path. Must not be
/// called inside a transaction.
pub fn take(
    conn: &Connection,
    db: &Path,
    dir: &Path,
    keep: usize,
    reason: &str,
) -> Result<PathBuf, Error> {
    let id = ledger::ensure_database_id(conn)
        .map_err(|e| Error::db(db, "cannot give the database its identity", e))?;
    take_with(conn, db, &id, dir, keep, reason, |_| Ok(()))
}

/// [`take`] without a commit of its own: the database as committed, copied, with `fill` run on
/// the copy (in one transaction, before it is verified). A caller that is about to write the
/// database's identity `database_id` and the bookkeeping tables inside its own transaction
/// writes the same into the copy with `fill`, so the backup holds what [`take`] would have
/// committed first, and the database keeps the identity its backup records. Must not be called
/// inside a write transaction (SQLite does not copy a database that one is changing).
pub fn take_with(
    conn: &Connection,
    db: &Path,
    database_id: &str,
    dir: &Path,
    keep: usize,
    reason: &str,
    fill: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<PathBuf, Error> {
    let partial = copied(conn, db, dir, fill)?;
    verify(partial.path())?;
    let path = store(partial, db, database_id, dir, reason)?;
    prune(dir, db, keep);
    Ok(path)
}

/// The database `conn` has open (at `db`) copied into a private temporary file in `dir` (a
/// private name keeps concurrent runs apart), `fill` run on the copy, synced.
fn copied(
    conn: &Connection,
    db: &Path,
    dir: &Path,
    fill: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<tempfile::NamedTempFile, Error> {
    let partial = partial(dir)?;
    copy_into(conn, partial.path(), fill).map_err(|e| {
        Error::db(
            db,
            format!("cannot back up into {}", partial.path().display()),
            e,
        )
    })?;
    Ok(partial)
}

/// A backup copied, synced and given its final name, whose `integrity_check` runs on a thread
/// of its own while the caller goes on (a migration's first step): the check reads only the
/// copy. Until the check passes the backup has no record, so no listing or restore sees it;
/// when it passes, the record is written and older backups pruned; when it fails, the copy is
/// removed. [`Pending::wait`] is the caller's verdict: a step that depends on the backup must
/// not commit before it.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    check: Option<std::thread::JoinHandle<Result<(), Error>>>,
}

impl Pending {
    /// Where the backup is (and stays if its check passes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the check: the backup's path once it is verified and recorded.
    pub fn wait(mut self) -> Result<PathBuf, Error> {
        self.join()?;
        Ok(std::mem::take(&mut self.path))
    }

    fn join(&mut self) -> Result<(), Error> {
        match self.check.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(Error::input(
                &self.path,
                "the check of this backup stopped before it finished",
            )),
        }
    }
}

impl Drop for Pending {
    /// Never leaves a check running: a caller that gave up still gets the backup recorded (or
    /// removed) before it goes on.
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// [`take_with`] (with nothing to fill) whose `integrity_check` overlaps what the caller does
/// next (see [`Pending`]).
pub fn take_overlapped(
    conn: &Connection,
    db: &Path,
    database_id: &str,
    dir: &Path,
    keep: usize,
    reason: &str,
) -> Result<Pending, Error> {
    let partial = copied(conn, db, dir, |_| Ok(()))?;
    let record = crate::core::backup::Record {
        strata_backup: crate::core::backup::RECORD_FORMAT,
        source: crate::core::backup::absolute(db),
        database_id: database_id.to_string(),
        taken_at: crate::core::ledger::now_rfc3339(),
        reason: reason.to_string(),
    };
    let name = crate::core::backup::file_stem(&crate::core::backup::stem(db), database_id);
    let path = crate::core::backup::place(partial, &name, "db", dir)?;
    let (checked, dir, db) = (path.clone(), dir.to_path_buf(), db.to_path_buf());
    let check = std::thread::Builder::new()
        .name("strata-backup-check".into())
        .spawn(move || {
            let verified = verify(&checked)
                .and_then(|()| crate::core::backup::write_record(&checked, &record, &dir));
            match verified {
                Ok(()) => prune(&dir, &db, keep),
                Err(_) => {
                    let _ = std::fs::remove_file(&checked);
                }
            }
            verified
        });
    match check {
        Ok(check) => Ok(Pending {
            path,
            check: Some(check),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::io(&path, e))
        }
    }
}

/// Copies every page of the database `conn` has open into the empty file `out` with SQLite's
/// online backup API (a page copy: no rebuild of tables and indexes as `VACUUM INTO` does),
/// runs `fill` on the copy, then makes the file durable with one fsync. The copy is a private
/// temporary file until it is verified and renamed, so it needs no journal and no sync per
/// write: a crash leaves only a temporary file behind.
fn copy_into(
    conn: &Connection,
    out: &Path,
    fill: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut dest = Connection::open(out)?;
    dest.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    let timeout: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
    let deadline = Instant::now() + Duration::from_millis(timeout.max(0) as u64);
    {
        let b = rusqlite::backup::Backup::new(conn, &mut dest)?;
        loop {
            match b.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        None,
                    ));
                }
                // `More` cannot follow a step of -1 pages; step again.
                _ => {}
            }
        }
    }
    // A page copy of a WAL database says WAL in its header; a backup is one plain file.
    let mode: String = dest.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("the copy stayed in journal mode {mode}")),
        ));
    }
    let tx = dest.transaction()?;
    fill(&tx)?;
    tx.commit()?;
    drop(dest);
    File::open(out).and_then(|f| f.sync_all()).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some(format!("cannot sync the copy: {e}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::backup::{RunLock, absolute, list, read_record, record_path};

    #[cfg(unix)]
    #[test]
    fn the_lock_file_is_no_wider_than_the_database() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        for db_mode in [0o600, 0o640, 0o644, 0o400] {
            let db = dir.path().join(format!("app-{db_mode:o}.db"));
            Connection::open(&db)
                .unwrap()
                .execute_batch("CREATE TABLE t(a)")
                .unwrap();
            std::fs::set_permissions(&db, std::fs::Permissions::from_mode(db_mode)).unwrap();
            drop(RunLock::shared(&db, Duration::ZERO).unwrap());
            let lock = RunLock::path(&db);
            // The umask may narrow it further, never widen it.
            assert_eq!(mode(&lock) & !db_mode, 0, "{db_mode:o}: {:o}", mode(&lock));
            // A lock file left wider (by an older strata) is narrowed.
            std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
            drop(RunLock::exclusive(&db, Duration::ZERO).unwrap());
            assert_eq!(mode(&lock) & !db_mode, 0, "{db_mode:o}: {:o}", mode(&lock));
        }
        // No database yet: the owner only.
        let db = dir.path().join("new.db");
        drop(RunLock::shared(&db, Duration::ZERO).unwrap());
        assert_eq!(mode(&RunLock::path(&db)) & 0o077, 0);
    }

    #[test]
    fn backups_are_recorded_listed_oldest_first_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        let backups = dir.path().join("backups");
        let taken: Vec<PathBuf> = (0..4)
            .map(|_| take(&conn, &db, &backups, 3, "test").unwrap())
            .collect();
        let kept: Vec<PathBuf> = list(&backups, &db)
            .unwrap()
            .into_iter()
            .map(|b| b.path)
            .collect();
        assert_eq!(kept, taken[1..].to_vec());
        assert!(!taken[0].exists() && !record_path(&taken[0]).exists());
        let record = read_record(&taken[3]).unwrap();
        assert_eq!(record.source, absolute(&db));
        assert_eq!(
            Some(record.database_id.clone()),
            ledger::database_id(&conn).unwrap()
        );
        // The backup carries the identity inside it.
        let inside = Connection::open(&taken[3]).unwrap();
        assert_eq!(
            ledger::database_id(&inside).unwrap(),
            Some(record.database_id)
        );
        // Another database's backups are not mixed in, even under the same file name.
        std::fs::create_dir(dir.path().join("other")).unwrap();
        let same_name = dir.path().join("other/app.db");
        let other = Connection::open(&same_name).unwrap();
        take(&other, &same_name, &backups, 3, "test").unwrap();
        assert_eq!(list(&backups, &db).unwrap().len(), 3);
        assert_eq!(list(&backups, &same_name).unwrap().len(), 1);
        assert!(list(&backups, Path::new("nowhere.db")).unwrap().is_empty());
    }

    #[test]
    fn a_backup_is_one_verified_plain_file_also_of_a_wal_database_or_without_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE t(a TEXT); CREATE INDEX t_a ON t(a);
             INSERT INTO t WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
               SELECT 'row ' || i FROM c;",
        )
        .unwrap();
        let backups = dir.path().join("backups");
        let taken = take(&conn, &db, &backups, 10, "test").unwrap();
        let copy = Connection::open(&taken).unwrap();
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "a backup is one file, not a WAL database");
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t WHERE a LIKE 'row %'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 5000);
        check_integrity(&copy, &taken).unwrap();
        drop(copy);
        assert!(!dir.path().join("backups").read_dir().unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with(".partial")
        }));

        // Without a commit: the identity a caller is about to write goes into the copy only.
        let fresh = dir.path().join("fresh.db");
        let conn = Connection::open(&fresh).unwrap();
        let taken = take_with(&conn, &fresh, "0123abcd", &backups, 10, "test", |c| {
            ledger::identity_within(c, Some("0123abcd")).map(drop)
        })
        .unwrap();
        assert_eq!(
            ledger::database_id(&conn).unwrap(),
            None,
            "nothing committed"
        );
        let copy = Connection::open(&taken).unwrap();
        assert_eq!(
            ledger::database_id(&copy).unwrap().as_deref(),
            Some("0123abcd")
        );
        check_integrity(&copy, &taken).unwrap();
        assert_eq!(read_record(&taken).unwrap().database_id, "0123abcd");
    }

    #[test]
    fn a_file_without_a_record_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("app-20240101T000000Z.db");
        std::fs::write(&bad, b"SQLite format 3\0 but then garbage").unwrap();
        let err = read_record(&bad).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::BAD_INPUT);
        assert!(err.to_string().contains("app-20240101T000000Z.db"), "{err}");
        assert!(
            list(dir.path(), &dir.path().join("app.db"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_run_lock_is_shared_by_runs_and_exclusive_for_restore() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let t = Duration::from_millis(50);
        let a = RunLock::shared(&db, t).unwrap();
        let b = RunLock::shared(&db, t).unwrap();
        let err = RunLock::exclusive(&db, t).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::REFUSED, "{err}");
        drop((a, b));
        let x = RunLock::exclusive(&db, t).unwrap();
        assert_eq!(
            RunLock::shared(&db, t).unwrap_err().exit_code(),
            crate::core::exit::REFUSED
        );
        drop(x);
        RunLock::shared(&db, t).unwrap();
    }
}
