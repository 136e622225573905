//! SQLite connections and SQL scripts: opening databases the way strata needs them, walking a
//! script statement by statement with the line each one starts on, and classifying errors.
//!
//! Everything SQLite-specific that is not a step's logic lives here, so another backend has one
//! place to start. This module does not know about migrations or the ledger.

use std::path::Path;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection, OpenFlags, Statement};

use crate::core::error::Error;
pub use crate::core::error::is_busy;
use crate::core::sql::one_line;

/// Opens (creating if needed) a database for migrating, with a busy timeout.
pub fn open(path: &Path, busy_timeout: std::time::Duration) -> Result<Connection, Error> {
    refuse_special(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let conn = Connection::open(path).map_err(|e| Error::db(path, "cannot open", e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| Error::db(path, "cannot set the busy timeout", e))?;
    Ok(conn)
}

/// A connection used by one thread at a time (rusqlite's `Connection` is not `Sync`) needs
/// none of SQLite's per-connection mutexes, which `SQLITE_OPEN_READ_ONLY` alone would take on
/// every call; `Connection::open` leaves them out too.
const NO_MUTEX: OpenFlags = OpenFlags::SQLITE_OPEN_NO_MUTEX;

/// Opens an existing database read-only; `None` when there is no file (nothing is created).
pub fn open_read_only(
    path: &Path,
    busy_timeout: std::time::Duration,
) -> Result<Option<Connection>, Error> {
    // One look at the file tells both whether there is one and whether it is a plain file.
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    refuse_special_meta(path, &meta)?;
    // A writer that died mid-transaction (a crash, SIGKILL) leaves a hot journal that every
    // reader must roll back first, and a read-only handle cannot: let a read-write handle do
    // SQLite's recovery, which only restores the last committed state.
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
        let rw = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | NO_MUTEX)
            .map_err(|e| Error::db(path, "cannot open to recover a crashed transaction", e))?;
        rw.busy_timeout(busy_timeout)
            .map_err(|e| Error::db(path, "cannot set the busy timeout", e))?;
        rw.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| Error::db(path, "cannot recover a crashed transaction", e))?;
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | NO_MUTEX)
        .map_err(|e| Error::db(path, "cannot open read-only", e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| Error::db(path, "cannot set the busy timeout", e))?;
    Ok(Some(conn))
}

/// A database is a plain file (or none yet): a FIFO would block the open for ever, a device
/// (`app.db -> /dev/zero`) fail with an I/O error that says nothing of why. Told from the
/// metadata, through symlinks, before SQLite opens anything.
fn refuse_special(path: &Path) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Ok(meta) => refuse_special_meta(path, &meta),
        Err(_) => Ok(()),
    }
}

/// [`refuse_special`] with the file's metadata (through symlinks) already read.
fn refuse_special_meta(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    if meta.is_dir() {
        Err(Error::input(
            path,
            "is a folder, not a database file: point the database setting (db, test_db, \
             --db, --test-db) at a SQLite file or the name of a new one",
        ))
    } else if !meta.is_file() {
        Err(Error::input(
            path,
            "is not a regular file (a FIFO, socket or device, or a link to one): a SQLite \
             database is a plain file; point the database setting (db, test_db, --db, \
             --test-db) at one",
        ))
    } else {
        Ok(())
    }
}

/// Whether `PRAGMA foreign_keys` is on for this connection.
pub fn foreign_keys(conn: &Connection) -> rusqlite::Result<bool> {
    conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))
}

/// Switches `PRAGMA foreign_keys`; SQLite ignores this inside a transaction.
pub fn set_foreign_keys(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "foreign_keys", on)
}

/// Where a statement starts in its script, and a one-line form of its text for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// The statement on one line, shortened if long.
    pub text: String,
}

/// A script's text with a NUL after it. SQLite copies a statement's text before parsing it
/// unless the text it is given ends in a NUL; walking a script without one copied the whole rest
/// of the script for every statement, so a script of n statements cost O(n²) (a 9 MB do.sql
/// of 200,000 INSERTs ran for minutes). With it, every statement is parsed in place.
pub struct ScriptText(String);

impl ScriptText {
    pub fn new(sql: &str) -> Self {
        let mut text = String::with_capacity(sql.len() + 1);
        text.push_str(sql);
        text.push('\0');
        ScriptText(text)
    }

    /// The script, without the NUL.
    fn sql(&self) -> &str {
        &self.0[..self.0.len() - 1]
    }
}

/// Walks a script one statement at a time. Unlike `execute_batch`, each statement comes with
/// its location, so a failure can name the line. The cost is linear in the script: lines are
/// counted once, as the walk moves forward.
pub struct Script<'c, 's> {
    batch: Batch<'c, 's>,
    sql: &'s str,
    offset: usize,
    /// The line at byte `counted` of `sql` (newlines before it are counted once).
    line: usize,
    counted: usize,
}

impl<'c, 's> Script<'c, 's> {
    pub fn new(conn: &'c Connection, text: &'s ScriptText) -> Self {
        Script {
            batch: Batch::new(conn, &text.0),
            sql: text.sql(),
            offset: 0,
            line: 1,
            counted: 0,
        }
    }

    /// The next statement and its location; on a parse error, the location where it stopped.
    /// Statements with parameters are refused: a script has nothing to bind them to.
    #[allow(clippy::type_complexity)]
    pub fn next_statement(
        &mut self,
    ) -> Result<Option<(Statement<'c>, Located)>, (Located, rusqlite::Error)> {
        match self.batch.next() {
            Ok(Some(stmt)) => {
                let text = stmt.expanded_sql().unwrap_or_default();
                let start = self.offset;
                // SQLite hands back exactly the slice it parsed, leading comments included.
                if self.sql[start..].starts_with(&text) {
                    self.offset = start + text.len();
                } else {
                    self.offset = self.sql.len();
                }
                Ok(Some((stmt, self.locate(start, Some(&text)))))
            }
            Ok(None) => Ok(None),
            Err(e) => Err((self.locate(self.offset, None), e)),
        }
    }

    fn locate(&mut self, start: usize, text: Option<&str>) -> Located {
        let rest = &self.sql[start..];
        let skip = code_start(rest);
        let line = self.line_at(start + skip);
        let text = match text {
            Some(t) => one_line(&t[code_start(t).min(t.len())..]),
            None => one_line(rest[skip..].split(';').next().unwrap_or("")),
        };
        Located { line, text }
    }

    /// The 1-based line of byte `at`, counting only the newlines not counted yet.
    fn line_at(&mut self, at: usize) -> usize {
        if at < self.counted {
            // Not reached by a forward walk; counted afresh rather than wrongly.
            return self.sql[..at].matches('\n').count() + 1;
        }
        self.line += self.sql[self.counted..at].matches('\n').count();
        self.counted = at;
        self.line
    }
}

/// The byte offset of the first character that is not whitespace or a comment.
fn code_start(s: &str) -> usize {
    let mut i = 0;
    let b = s.as_bytes();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = s[i..].find('\n').map_or(b.len(), |n| i + n + 1);
        } else if b[i..].starts_with(b"/*") {
            i = s[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else {
            return i;
        }
    }
}

/// The first two columns of the rows `sql` returns from the database `path` (opened
/// read-only), as text, at most `limit` of them (one at a time, the rest never read): a
/// fleet's targets from a control database.
pub(crate) fn pairs(
    path: &Path,
    busy_timeout: std::time::Duration,
    sql: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, Error> {
    let Some(conn) = open_read_only(path, busy_timeout)? else {
        return Err(Error::Usage(format!(
            "{}: the control database does not exist",
            path.display()
        )));
    };
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| Error::db(path, "cannot prepare the fleet's query", e))?;
    if stmt.column_count() < 2 {
        return Err(Error::Usage(format!(
            "{}: the fleet's query must return two columns, a target's name and its database",
            path.display()
        )));
    }
    let text = |v: rusqlite::types::ValueRef<'_>| match v {
        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
        _ => None,
    };
    let rows = stmt
        .query_map([], |r| Ok((text(r.get_ref(0)?), text(r.get_ref(1)?))))
        .map_err(|e| Error::db(path, "cannot run the fleet's query", e))?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        match row.map_err(|e| Error::db(path, "cannot run the fleet's query", e))? {
            (Some(name), Some(db)) => out.push((name, db)),
            _ => {
                return Err(Error::Usage(format!(
                    "{}: row {} of the fleet's query has a NULL or a non-text value; each row \
                     is a target's name and its database",
                    path.display(),
                    out.len() + 1
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_come_with_their_first_line() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "-- header\nCREATE TABLE a(x);\n\n/* block\ncomment */ INSERT INTO a\n  VALUES (1);\nSELECT * FROM a;";
        let text = ScriptText::new(sql);
        let mut script = Script::new(&conn, &text);
        let mut seen = Vec::new();
        while let Some((mut stmt, at)) = script.next_statement().unwrap() {
            stmt.raw_execute().ok();
            seen.push(at);
        }
        assert_eq!(
            seen,
            vec![
                Located {
                    line: 2,
                    text: "CREATE TABLE a(x)".into()
                },
                Located {
                    line: 5,
                    text: "INSERT INTO a VALUES (1)".into()
                },
                Located {
                    line: 7,
                    text: "SELECT * FROM a".into()
                },
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "CREATE TABLE a(x);\n\nCREAT TABLE b(y);\n";
        let text = ScriptText::new(sql);
        let mut script = Script::new(&conn, &text);
        let (mut first, _) = script.next_statement().unwrap().unwrap();
        first.raw_execute().unwrap();
        drop(first);
        let (at, err) = script.next_statement().err().unwrap();
        assert_eq!(at.line, 3);
        assert_eq!(at.text, "CREAT TABLE b(y)");
        assert!(err.to_string().contains("syntax error"), "{err}");
    }

    #[test]
    fn a_long_script_names_the_line_of_a_late_error() {
        // Lines are counted as the walk goes (not from the top for every statement), and
        // SQLite parses each statement in place: this script walks in linear time.
        let conn = Connection::open_in_memory().unwrap();
        let mut sql = String::from("CREATE TABLE t(a);\n");
        for i in 0..20_000 {
            sql.push_str(&format!(
                "INSERT INTO t VALUES ({i}); -- row {i}\n/* a\ncomment */\n"
            ));
        }
        sql.push_str("INSERT INTO nowhere VALUES (1);\n");
        let text = ScriptText::new(&sql);
        let mut script = Script::new(&conn, &text);
        let mut last = None;
        loop {
            match script.next_statement() {
                Ok(Some((mut stmt, at))) => {
                    stmt.raw_execute().unwrap();
                    last = Some(at);
                }
                Ok(None) => panic!("the bad statement was not reached"),
                Err((at, e)) => {
                    assert_eq!(at.line, 2 + 3 * 20_000);
                    assert_eq!(at.text, "INSERT INTO nowhere VALUES (1)");
                    assert!(e.to_string().contains("no such table"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(last.unwrap().line, 2 + 3 * 19_999);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 20_000);
    }

    /// The query of issue 8: ten nested CTEs, each reading the one before twice. The sqlite3
    /// CLI runs it; the bundled SQLite refuses it ("VIEWs and/or subqueries nested too deep")
    /// unless it is built with a larger SQLITE_MAX_EXPR_DEPTH (.cargo/config.toml).
    #[test]
    fn a_cte_nested_ten_levels_runs_as_in_the_sqlite3_cli() {
        let mut sql = String::from("WITH c0(k) AS (SELECT 1)");
        for i in 1..=10 {
            let p = i - 1;
            sql.push_str(&format!(
                ", c{i}(k) AS (SELECT k FROM c{p} UNION ALL SELECT k FROM c{p})"
            ));
        }
        sql.push_str(" SELECT count(*) FROM c10;");
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("a.db"), std::time::Duration::from_secs(1)).unwrap();
        let count: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}: is SQLITE_MAX_EXPR_DEPTH set by .cargo/config.toml?"));
        assert_eq!(count, 1024);
        // Through a view and a trigger, the way real histories reach it.
        conn.execute_batch(&format!(
            "CREATE VIEW deep AS {}; CREATE TABLE t(n); CREATE TABLE seen(n);
             CREATE TRIGGER t_seen AFTER INSERT ON t BEGIN INSERT INTO seen SELECT * FROM deep; END;
             INSERT INTO t VALUES (1);",
            sql.trim_end_matches(';')
        ))
        .unwrap();
        let seen: i64 = conn
            .query_row("SELECT n FROM seen", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 1024);
        // The expression-depth limit still holds: a runaway expression is refused, not a crash.
        let runaway = format!("SELECT 1{}", "+1".repeat(5000));
        let err = conn
            .query_row(&runaway, [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("too deep") || err.to_string().contains("too large"),
            "{err}"
        );
    }

    #[test]
    fn long_statements_are_shortened() {
        let long = format!("SELECT {}", "1, ".repeat(100));
        assert!(one_line(&long).ends_with("..."));
        assert_eq!(one_line(&long).chars().count(), 160);
    }
}
