//! Backups: verified copies of a database, each recorded with the database it was taken from,
//! and the run lock that keeps a restore from interleaving with a migrate.
//!
//! A backup is `.strata/backups/<db stem>-<id>-<UTC stamp>.db` beside its record
//! `<same name>.db.json`: the source database's absolute path, its identity (the random id
//! strata keeps in the database itself, `strata_database`, so the backup carries it too), when
//! and why it was taken. The copy is written to a private temporary name, checked with
//! `PRAGMA integrity_check`, and only then renamed into place (never over another backup), so a
//! file with a final name is always a complete, verified backup. Putting one back is
//! `crate::restore`; this module does not decide when to back up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Refusal};
use crate::ledger;
use crate::tree::STAMP_FORMAT;

/// The format version written into every backup record.
pub const RECORD_FORMAT: u32 = 1;

/// What strata knows about a backup, stored beside it as `<backup>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The record's format ([`RECORD_FORMAT`]).
    pub strata_backup: u32,
    /// The absolute path of the database the backup was taken from.
    pub source: PathBuf,
    /// That database's identity (`strata_database.id`), also inside the backup itself.
    pub database_id: String,
    /// When it was taken, UTC, RFC 3339.
    pub taken_at: String,
    /// Why: `before migrate (apply)`, `before restore`, `before baseline`, ...
    pub reason: String,
}

/// A backup and its record.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub path: PathBuf,
    #[serde(flatten)]
    pub record: Record,
    /// The backup file's size in bytes.
    pub size: u64,
}

/// The record file of a backup: its file name with `.json` appended.
pub fn record_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Reads the record beside `backup`; a missing or unreadable record means the file is not a
/// backup strata can put back (exit 2, naming the file).
pub fn read_record(backup: &Path) -> Result<Record, Error> {
    let path = record_path(backup);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::input(
                backup,
                format!(
                    "is not a strata backup: it has no record ({} is missing), so nothing says \
                     which database it was taken from. `strata restore --list` shows the \
                     backups that can go back",
                    file_name(&path)
                ),
            ));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            &path,
            format!("is not a strata backup record ({e}); the backup beside it cannot go back"),
        )
    })?;
    if record.strata_backup != RECORD_FORMAT {
        return Err(Error::input(
            &path,
            format!(
                "is a backup record of format {}, this strata reads format {RECORD_FORMAT}",
                record.strata_backup
            ),
        ));
    }
    Ok(record)
}

/// `db` as an absolute path with symbolic links resolved, also when the file does not exist
/// (then its folder is resolved): the form backup records compare.
pub fn absolute(db: &Path) -> PathBuf {
    if let Ok(p) = db.canonicalize() {
        return p;
    }
    let parent = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), db.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf()),
    }
}

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

/// A private temporary file in `dir` for a backup being written.
pub(crate) fn partial(dir: &Path) -> Result<tempfile::NamedTempFile, Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))?;
    tempfile::Builder::new()
        .suffix(".db.partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
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
    // A private temporary name keeps concurrent runs apart.
    let partial = partial(dir)?;
    copy_into(conn, partial.path(), fill).map_err(|e| {
        Error::db(
            db,
            format!("cannot back up into {}", partial.path().display()),
            e,
        )
    })?;
    verify(partial.path())?;
    let path = store(partial, db, database_id, dir, reason)?;
    prune(dir, db, keep);
    Ok(path)
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

/// Gives a complete, verified backup in `partial` its final name in `dir` (never over another
/// file) and writes its record. Returns the final path.
pub(crate) fn store(
    partial: tempfile::NamedTempFile,
    db: &Path,
    database_id: &str,
    dir: &Path,
    reason: &str,
) -> Result<PathBuf, Error> {
    let record = Record {
        strata_backup: RECORD_FORMAT,
        source: absolute(db),
        database_id: database_id.to_string(),
        taken_at: ledger::now_rfc3339(),
        reason: reason.to_string(),
    };
    let name = file_stem(&stem(db), database_id);
    store_as(partial, &record, &name, "db", dir)
}

/// `<db stem>-<first 8 characters of the identity>-<UTC stamp>`: a backup's name without its
/// extension.
pub(crate) fn file_stem(db_stem: &str, database_id: &str) -> String {
    let stamp = chrono::Utc::now().format(STAMP_FORMAT).to_string();
    let short: String = database_id.chars().take(8).collect();
    format!("{db_stem}-{short}-{stamp}")
}

/// Gives the complete, verified backup in `partial` the name `<name>.<extension>` in `dir`
/// (`<name>-<n>.<extension>` if taken: never over another file) and writes `record` beside
/// it. Returns the final path. Shared by SQLite and PostgreSQL backups.
pub(crate) fn store_as(
    partial: tempfile::NamedTempFile,
    record: &Record,
    name: &str,
    extension: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    let mut partial = partial;
    let mut n = 0;
    let path = loop {
        let path = match n {
            0 => dir.join(format!("{name}.{extension}")),
            n => dir.join(format!("{name}-{n}.{extension}")),
        };
        match partial.persist_noclobber(&path) {
            Ok(_) => break path,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                partial = e.file;
                n += 1;
            }
            Err(e) => return Err(Error::io(&path, e.error)),
        }
    };
    let text = serde_json::to_string_pretty(record).expect("a record serializes");
    let written = tempfile::NamedTempFile::new_in(dir)
        .and_then(|mut tmp| {
            std::io::Write::write_all(&mut tmp, text.as_bytes())?;
            tmp.as_file().sync_all()?;
            Ok(tmp)
        })
        .and_then(|tmp| tmp.persist(record_path(&path)).map_err(|e| e.error));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(Error::io(record_path(&path), e));
    }
    Ok(path)
}

/// Removes all but the newest `keep` (at least one) backups of `db` in `dir`, record and all.
/// Best effort: a backup that cannot be removed stays.
fn prune(dir: &Path, db: &Path, keep: usize) {
    if let Ok(all) = list(dir, db) {
        for old in all.iter().rev().skip(keep.max(1)) {
            let _ = std::fs::remove_file(&old.path);
            let _ = std::fs::remove_file(record_path(&old.path));
            let _ = std::fs::remove_file(crate::restore::state_after_path(&old.path));
        }
    }
}

/// The backups in `dir` taken from `db` (by its absolute path), oldest first. Files without a
/// record (another tool's, or an unfinished backup) are not backups.
pub fn list(dir: &Path, db: &Path) -> Result<Vec<Backup>, Error> {
    let source = absolute(db);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "db") {
            continue;
        }
        let Ok(record) = read_record(&path) else {
            continue;
        };
        if record.source != source {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        found.push(Backup { path, record, size });
    }
    found.sort_by(|a, b| (&a.record.taken_at, &a.path).cmp(&(&b.record.taken_at, &b.path)));
    Ok(found)
}

/// The name backups of `db` start with: its file name without extension.
fn stem(db: &Path) -> String {
    db.file_stem()
        .map_or_else(|| "db".into(), |s| s.to_string_lossy().into_owned())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A builder of temporary folders (and files) that only their owner may enter or read,
/// whatever the umask: for copies of a database's rows (a rehearsal copy, a sandbox started
/// from a database or backup, a `pg_dump` archive), which must be no more readable than the
/// backups are.
pub(crate) fn private_dir<'a, 'b>() -> tempfile::Builder<'a, 'b> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder
}

/// The lock a run holds on a database while it changes it, in the file `<db>.strata-lock`
/// beside the database: shared by `migrate` phases and `baseline` (several may run at once;
/// each step also takes SQLite's write lock), exclusive by `restore`, so a restore never lands
/// between the steps of a running migrate. Released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock shared, waiting up to `timeout` for a restore to finish; then refuses
    /// (exit 3).
    pub fn shared(db: &Path, timeout: Duration) -> Result<RunLock, Error> {
        RunLock::acquire(db, timeout, false)
    }

    /// Takes the lock exclusively, waiting up to `timeout` for running migrations to finish;
    /// then refuses (exit 3).
    pub fn exclusive(db: &Path, timeout: Duration) -> Result<RunLock, Error> {
        RunLock::acquire(db, timeout, true)
    }

    /// The lock file of `db`.
    pub fn path(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".strata-lock");
        PathBuf::from(name)
    }

    fn acquire(db: &Path, timeout: Duration, exclusive: bool) -> Result<RunLock, Error> {
        let path = RunLock::path(db);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // No wider than the database: whoever may open the lock file may hold the lock and
        // stop every migrate and restore, so only those who may open the database can.
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let mode = std::fs::metadata(db).map_or(0o600, |m| m.permissions().mode() & 0o666);
            options.mode(mode);
            // Never through a symbolic link: a planted link would have strata create, or
            // narrow the mode of, whatever file it points to.
            options.custom_flags(libc::O_NOFOLLOW);
            mode
        };
        let file = options.open(&path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Error::input(
                    &path,
                    "is a symbolic link, and strata opens its lock file only as a plain file; \
                     remove the link (strata makes the file again)",
                );
            }
            Error::io(&path, e)
        })?;
        // A lock file left wider by an older strata (or a database made narrower since) is
        // narrowed; one that is not ours to change keeps working as a lock.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(m) = file.metadata()
                && m.permissions().mode() & 0o777 & !mode != 0
            {
                let narrowed = m.permissions().mode() & 0o777 & mode;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(narrowed));
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Refused(vec![Refusal::Locked {
                        db: db.to_path_buf(),
                    }]));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(err.exit_code(), crate::exit::BAD_INPUT);
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
        assert_eq!(err.exit_code(), crate::exit::REFUSED, "{err}");
        drop((a, b));
        let x = RunLock::exclusive(&db, t).unwrap();
        assert_eq!(
            RunLock::shared(&db, t).unwrap_err().exit_code(),
            crate::exit::REFUSED
        );
        drop(x);
        RunLock::shared(&db, t).unwrap();
    }
}
