//! SQLite's [`Watch`]: whether a database file changed, told without reading it. A read-only
//! connection is kept open on the file; the token is the file's identity and metadata and
//! `PRAGMA data_version`, which changes whenever another connection commits. A database with a
//! journal left behind (a write in progress, or a crashed one to roll back) is never trusted:
//! the fresh read (`crate::sqlite::open_read_only`) deals with it.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::core::backend::{ChangeToken, Token, Watch};
use crate::core::tree::file_stamp;

/// A SQLite database file looked at through a connection kept open on it.
pub(crate) struct FileWatch {
    path: PathBuf,
    busy: Duration,
    open: Option<Open>,
}

struct Open {
    conn: Connection,
    /// Holds the file's inode, so its number cannot name another file while we compare.
    _file: File,
    id: (u64, u64),
}

impl FileWatch {
    pub(crate) fn new(path: &Path, busy: Duration) -> FileWatch {
        FileWatch {
            path: path.to_path_buf(),
            busy,
            open: None,
        }
    }
}

impl Watch for FileWatch {
    fn token(&mut self) -> Option<ChangeToken> {
        if std::fs::metadata(suffixed(&self.path, "-journal")).is_ok_and(|m| m.len() > 0) {
            return None;
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.open = None;
                return Some(ChangeToken(Token::Absent));
            }
            Err(_) => {
                self.open = None;
                return None;
            }
        };
        let id = (meta.dev(), meta.ino());
        if self.open.as_ref().is_none_or(|o| o.id != id) {
            self.open = None;
            let open = Open::new(&self.path, self.busy)?;
            // The file the connection has is the one the path names now.
            if open.id != id {
                return None;
            }
            self.open = Some(open);
        }
        let open = self.open.as_ref()?;
        let Ok(version) = open
            .conn
            .prepare_cached("PRAGMA main.data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        else {
            self.open = None;
            return None;
        };
        Some(ChangeToken(Token::File {
            stamp: file_stamp(&meta),
            version,
        }))
    }
}

impl Open {
    /// A read-only connection on `path`, and the identity of the file it has (the path named
    /// the same file before and after the connection opened it).
    fn new(path: &Path, busy: Duration) -> Option<Open> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.busy_timeout(busy).ok()?;
        let after = std::fs::metadata(path).ok()?;
        let id = (meta.dev(), meta.ino());
        ((after.dev(), after.ino()) == id).then_some(Open {
            conn,
            _file: file,
            id,
        })
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_by_another_connection_a_journal_and_removal_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let mut w = FileWatch::new(&db, Duration::from_millis(100));
        let absent = w.token().unwrap();
        assert_eq!(absent, ChangeToken(Token::Absent));
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(a);").unwrap();
        let first = w.token().unwrap();
        assert_ne!(first, absent);
        assert_eq!(w.token().unwrap(), first, "nothing changed");
        conn.execute_batch("INSERT INTO t VALUES (1);").unwrap();
        let second = w.token().unwrap();
        assert_ne!(second, first, "another connection committed");
        std::fs::write(suffixed(&db, "-journal"), b"not empty").unwrap();
        assert_eq!(w.token(), None, "a journal left behind is not trusted");
        std::fs::remove_file(suffixed(&db, "-journal")).unwrap();
        drop(conn);
        std::fs::remove_file(&db).unwrap();
        assert_eq!(w.token().unwrap(), absent);
    }
}
