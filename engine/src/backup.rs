//! Backups: a verified copy of a database taken before a phase changes it, kept under
//! `.strata/backups/<db-name>-<UTC stamp>.db` (the last N), and `restore`, which puts one back
//! atomically.
//!
//! A backup is written with `VACUUM INTO` to a temporary name, checked with
//! `PRAGMA integrity_check`, and only then renamed into place (never over another backup), so a
//! file with a final name is always a complete, verified backup. This module does not decide when to back up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Refusal};
use crate::tree::STAMP_FORMAT;

/// The name backups of `db` start with: its file name without extension.
fn stem(db: &Path) -> String {
    db.file_stem()
        .map_or_else(|| "db".into(), |s| s.to_string_lossy().into_owned())
}

/// Checks a database file with `PRAGMA integrity_check`.
pub fn verify(path: &Path) -> Result<(), Error> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::db(path, "cannot open the backup", e))?;
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

/// Takes a verified backup of the database `conn` has open (at `db`) into `dir`, then keeps
/// only the newest `keep` backups of that database. Returns the backup's path.
pub fn take(conn: &Connection, db: &Path, dir: &Path, keep: usize) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // VACUUM INTO accepts an empty file; a private temporary name keeps concurrent runs apart.
    let partial = tempfile::Builder::new()
        .suffix(".db.partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    conn.execute("VACUUM INTO ?1", [partial.path().to_string_lossy()])
        .map_err(|e| {
            Error::db(
                db,
                format!("cannot back up into {}", partial.path().display()),
                e,
            )
        })?;
    verify(partial.path())?;
    let stamp = chrono::Utc::now().format(STAMP_FORMAT).to_string();
    let name = stem(db);
    let mut partial = partial;
    let mut n = 0;
    let path = loop {
        let path = match n {
            0 => dir.join(format!("{name}-{stamp}.db")),
            n => dir.join(format!("{name}-{stamp}-{n}.db")),
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
    for old in list(dir, db)?.iter().rev().skip(keep.max(1)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// The backups of `db` in `dir`, oldest first.
pub fn list(dir: &Path, db: &Path) -> Result<Vec<PathBuf>, Error> {
    let prefix = format!("{}-", stem(db));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found: Vec<((String, u32), PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".db"))
        else {
            continue;
        };
        let (stamp, seq) = match rest.split_once('-') {
            Some((stamp, seq)) => (stamp, seq.parse().ok()),
            None => (rest, Some(0)),
        };
        if let (Ok(_), Some(seq)) = (crate::tree::parse_stamp(stamp), seq) {
            found.push(((stamp.to_string(), seq), entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Puts `backup` back in place of `db`, atomically: the backup is verified, copied beside the
/// database, synced, and renamed over it; stale WAL and journal files are removed. Refuses
/// (exit 3) while another connection holds the database.
pub fn restore(db: &Path, backup: &Path, busy_timeout: Duration) -> Result<(), Error> {
    verify(backup)?;
    // Hold an exclusive lock on the current database while swapping the file, so no other
    // process is in the middle of a write.
    let lock = if db.exists() {
        let conn = Connection::open(db).map_err(|e| Error::db(db, "cannot open", e))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| Error::db(db, "cannot set the busy timeout", e))?;
        conn.execute_batch("BEGIN EXCLUSIVE").map_err(|e| {
            if crate::sqlite::is_busy(&e) {
                Error::Refused(vec![Refusal::Locked {
                    db: db.to_path_buf(),
                }])
            } else {
                Error::db(db, "cannot lock the database", e)
            }
        })?;
        Some(conn)
    } else {
        None
    };
    let parent = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| Error::io(parent, e))?;
    let mut src = std::fs::File::open(backup).map_err(|e| Error::io(backup, e))?;
    std::io::copy(&mut src, tmp.as_file_mut()).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(db).map_err(|e| Error::io(db, e.error))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_listed_oldest_first_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        let backups = dir.path().join("backups");
        let taken: Vec<PathBuf> = (0..4)
            .map(|_| take(&conn, &db, &backups, 3).unwrap())
            .collect();
        let kept = list(&backups, &db).unwrap();
        assert_eq!(kept, taken[1..].to_vec());
        // Another database's backups are not mixed in.
        assert!(list(&backups, Path::new("other.db")).unwrap().is_empty());
    }

    #[test]
    fn restore_puts_the_backup_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        let backup = take(&conn, &db, &dir.path().join("b"), 10).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (2); CREATE TABLE u(b);")
            .unwrap();
        drop(conn);
        restore(&db, &backup, Duration::from_millis(100)).unwrap();
        let conn = Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let u: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'u'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(u, 0);
    }

    #[test]
    fn restore_refuses_while_the_database_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        let backup = take(&conn, &db, &dir.path().join("b"), 10).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let err = restore(&db, &backup, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::REFUSED, "{err}");
    }

    #[test]
    fn a_corrupt_backup_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("app-20240101T000000Z.db");
        std::fs::write(&bad, b"SQLite format 3\0 but then garbage").unwrap();
        assert!(restore(&dir.path().join("app.db"), &bad, Duration::from_millis(50)).is_err());
    }
}
