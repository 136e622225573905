//! SQLite's dry run (`crate::core::dry_run`): an in-memory database started from the real
//! database's schema (its `CREATE` statements, no rows; empty when the real database does not
//! exist yet), where pending statements are prepared and run in order so SQLite's own parser and
//! name resolution judge them. Nothing reaches beyond the throwaway database.

use std::path::Path;

use rusqlite::Connection;

use crate::core::dry_run::{Checked, DryRun};
use crate::core::error::Error;

/// The throwaway database.
pub(crate) struct SqliteDryRun {
    mem: Connection,
}

/// A throwaway database with `real`'s schema (`None`: empty); `Err(why)` inside when the
/// schema could not be copied.
pub(crate) fn open(real: Option<&Path>) -> Result<Result<SqliteDryRun, String>, Error> {
    let mem = Connection::open_in_memory()
        .map_err(|e| Error::db(":memory:", "cannot open a throwaway database", e))?;
    if let Some(db) = real
        && let Err(why) = copy_schema(db, &mem)
    {
        return Ok(Err(why));
    }
    Ok(Ok(SqliteDryRun { mem }))
}

impl DryRun for SqliteDryRun {
    fn run_script(&mut self, path: &Path, sql: &str) -> Result<Checked, Error> {
        run_script(&mut self.mem, path, sql)
    }

    fn columns(&self, table: &str) -> Option<Vec<String>> {
        sqlite_columns(&self.mem, table)
    }
}

/// Creates `db`'s tables, indexes, views and triggers (not its rows) in `mem`.
fn copy_schema(db: &Path, mem: &Connection) -> Result<(), String> {
    let real = Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let mut stmt = real
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .map_err(|e| e.to_string())?;
    let sqls: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    for sql in sqls {
        mem.execute_batch(&sql).map_err(|e| format!("{e}: {sql}"))?;
    }
    Ok(())
}

/// How long one statement may run in the throwaway database before plan leaves it (and the
/// rest) to the rehearsal.
const STATEMENT_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Prepares `sql` statement by statement in the throwaway database, and runs those that change
/// its schema or rows, so that later statements are judged against what earlier ones built;
/// the first failure becomes bad input naming `path`, the line and the statement. Nothing it
/// runs reaches beyond the throwaway database: queries (and anything SQLite calls read-only)
/// are only prepared; `ATTACH` (which would open another database) ends the check there;
/// `VACUUM`, `PRAGMA`, `ANALYZE`, `REINDEX` and `DETACH` are only prepared; and a statement
/// running past [`STATEMENT_BUDGET`] is interrupted and ends the check.
fn run_script(conn: &mut Connection, path: &Path, sql: &str) -> Result<Checked, Error> {
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
        .map_err(|e| Error::db(":memory:", "cannot limit the throwaway database", e))?;
    let deadline = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let watched = deadline.clone();
    conn.progress_handler(
        1_000,
        Some(move || {
            watched
                .lock()
                .ok()
                .and_then(|d| *d)
                .is_some_and(|d| std::time::Instant::now() > d)
        }),
    )
    .map_err(|e| Error::db(":memory:", "cannot watch the throwaway database", e))?;
    let result = walk(conn, path, sql, &deadline);
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
    result
}

fn walk(
    conn: &Connection,
    path: &Path,
    sql: &str,
    deadline: &std::sync::Mutex<Option<std::time::Instant>>,
) -> Result<Checked, Error> {
    let text = crate::sqlite::ScriptText::new(sql);
    let mut script = crate::sqlite::Script::new(conn, &text);
    loop {
        let (mut stmt, at) = match script.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(Checked::All),
            Err((at, e)) => return Err(bad_statement(path, at.line, &at.text, &e)),
        };
        let first = at
            .text
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if first == "ATTACH" {
            return Ok(Checked::StoppedAt(format!(
                "{} line {}: ATTACH opens another database, which plan never does",
                path.display(),
                at.line
            )));
        }
        let prepare_only = stmt.readonly()
            || matches!(
                first.as_str(),
                "VACUUM" | "PRAGMA" | "ANALYZE" | "REINDEX" | "DETACH" | "EXPLAIN"
            );
        if prepare_only {
            continue;
        }
        if let Ok(mut d) = deadline.lock() {
            *d = Some(std::time::Instant::now() + STATEMENT_BUDGET);
        }
        let result = stmt.raw_execute();
        match result {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
                return Ok(Checked::StoppedAt(format!(
                    "{} line {}: the statement ran for more than {} s in plan's throwaway \
                     database",
                    path.display(),
                    at.line,
                    STATEMENT_BUDGET.as_secs()
                )));
            }
            Err(e) => return Err(bad_statement(path, at.line, &at.text, &e)),
        }
    }
}

/// SQLite's message alone: a syntax error's `SqlInputError` also carries the script and an
/// offset, which the caller names better (its line and the statement, once).
fn message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}

/// Whether SQLite's own parser reads `statement` (one statement), judged in an empty
/// throwaway database: `Err(message)` for a syntax error. A statement that only names a table,
/// column or function this empty database lacks is read (its names are the dry run's to judge,
/// against the schema the steps before it build).
pub(crate) fn syntax(statement: &str) -> Result<(), String> {
    let Ok(conn) = Connection::open_in_memory() else {
        return Ok(());
    };
    if conn
        .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
        .is_err()
    {
        return Ok(());
    }
    match conn.prepare(statement) {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = message(&e);
            let syntax = [
                "syntax error",
                "incomplete input",
                "unrecognized token",
                "unknown table option",
            ]
            .iter()
            .any(|s| why.contains(s));
            if syntax { Err(why) } else { Ok(()) }
        }
    }
}

fn bad_statement(path: &Path, line: usize, text: &str, e: &rusqlite::Error) -> Error {
    let why = message(e);
    Error::input(
        path,
        format!(
            "line {line}: {why}, in `{text}`; SQLite refuses it against the schema the steps \
             before it build (checked in a throwaway database, nothing was touched); fix the \
             statement"
        ),
    )
}

/// A SQLite table's columns, lower-cased; `None` when there is no such table.
fn sqlite_columns(conn: &Connection, table: &str) -> Option<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1)")
        .ok()?;
    let cols: Vec<String> = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .ok()?
        .filter_map(Result::ok)
        .map(|c| c.to_lowercase())
        .collect();
    (!cols.is_empty()).then_some(cols)
}
