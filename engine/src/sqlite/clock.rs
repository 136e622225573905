//! SQLite's date and time functions read the clock when given `'now'` or no time value
//! (`date()`, `datetime('now')`, `strftime('%s')`, `unixepoch()`, ...) and the machine's time
//! zone with the `'localtime'` and `'utc'` modifiers. A component must not see either (nor
//! `random()`, `randomblob()` and the `CURRENT_*` keywords, which the guard refuses by name),
//! so that the same database gives the same result in the rehearsal, in CI's sandbox and in
//! production. Before a component runs, [`hide`] puts functions of the same names on its
//! connection that, while the guard is in component mode, refuse those arguments, and compute
//! every other call with SQLite's own functions on a private in-memory connection (the same
//! clock and time zone), one for the process. They are put on a connection once per step (a
//! guard's lifetime), not once per component call.
//!
//! They stay on the connection afterwards: SQLite cannot give a connection its built-in
//! function back once an application's function of the same name was removed. Being declared
//! deterministic (as SQLite's own are, so that `date(x)` stays usable in index expressions),
//! they would let later SQL put `date('now')` into an index expression, a generated column or
//! a CHECK constraint, which SQLite's own refuse when they are evaluated. So no user SQL runs on
//! them after the step: the step hands the phase a fresh connection (see `sqlite::step::apply`),
//! and under `--single-transaction`, where there is none to hand over, later scripts that
//! would put a date function into the schema are refused ([`in_schema_text`]).

use std::sync::{Mutex, OnceLock};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, Error};

use crate::core::sql::sqlite::Kind;

use crate::sqlite::guard::Guard;

/// SQLite's date and time functions, with the index of their first time value.
const DATE_FUNCTIONS: &[(&str, usize)] = &[
    ("date", 0),
    ("time", 0),
    ("datetime", 0),
    ("julianday", 0),
    ("unixepoch", 0),
    ("strftime", 1),
    ("timediff", 0),
];

/// Time values that read the clock (SQLite's `parseDateOrTime`: `'now'`, and `'subsec'` or
/// `'subsecond'` as a time value, which mean now with milliseconds).
const CLOCK_TIME_VALUES: &[&str] = &["now", "subsec", "subsecond"];

/// Modifiers that read the machine's time zone (SQLite's `parseModifier`).
const ZONE_MODIFIERS: &[&str] = &["localtime", "utc"];

/// The private connection whose own date functions compute every call the replacements let
/// through: one for the process, opened at the first component call.
fn own() -> rusqlite::Result<&'static Mutex<Connection>> {
    static OWN: OnceLock<Mutex<Connection>> = OnceLock::new();
    if let Some(own) = OWN.get() {
        return Ok(own);
    }
    let opened = Connection::open_in_memory()?;
    Ok(OWN.get_or_init(|| Mutex::new(opened)))
}

/// Replaces SQLite's date and time functions on `conn` (see the module), unless `guard` already
/// did on this connection; a refused call is recorded on `guard`, so the step fails even if
/// the component carries on.
pub fn hide(conn: &Connection, guard: &Guard) -> rusqlite::Result<()> {
    if guard.clock_hidden() {
        return Ok(());
    }
    let own = own()?;
    for &(name, first_time) in DATE_FUNCTIONS {
        let guard = guard.clone();
        conn.create_scalar_function(
            name,
            -1,
            // Deterministic as SQLite's own are declared (index expressions and CHECK
            // constraints of do.sql may use them).
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            move |ctx| {
                let args = (0..ctx.len())
                    .map(|i| ctx.get::<Value>(i))
                    .collect::<rusqlite::Result<Vec<Value>>>()?;
                if guard.in_component()
                    && let Some(what) = reads_the_clock(name, first_time, &args)
                {
                    let why = crate::sqlite::guard::unseen(&what);
                    guard.deny(why.clone());
                    return Err(Error::UserFunctionError(why.into()));
                }
                let own = own.lock().unwrap_or_else(|e| e.into_inner());
                let marks = vec!["?"; args.len()].join(", ");
                let mut stmt = own.prepare_cached(&format!("SELECT {name}({marks})"))?;
                stmt.query_row(rusqlite::params_from_iter(args.iter()), |row| {
                    row.get::<_, Value>(0)
                })
            },
        )?;
    }
    guard.set_clock_hidden();
    Ok(())
}

/// Whether a statement of `sql` (a script) would put one of the date and time functions into
/// the schema: a `CREATE TABLE`, `CREATE INDEX` or `ALTER TABLE` that names one (index
/// expressions, partial indexes, generated columns and CHECK constraints are where SQLite's
/// own refuse `'now'`). Returns the function's name and the statement's first line (1-based).
pub fn in_schema_text(sql: &str) -> Option<(String, usize)> {
    let statements = crate::core::sql::sqlite::statements(sql).ok()?;
    statements.iter().find_map(|tokens| {
        let mut words = tokens.iter().filter(|t| t.kind == Kind::Word);
        let first = words.next()?;
        let defines = if first.is("alter") {
            true
        } else if first.is("create") {
            tokens
                .iter()
                .skip(1)
                .take(4)
                .any(|t| t.is("table") || t.is("index"))
        } else {
            false
        };
        if !defines {
            return None;
        }
        tokens.windows(2).find_map(|pair| {
            let name = pair[0].name().filter(|_| pair[0].kind != Kind::String)?;
            let called = pair[1].is_punct("(")
                && DATE_FUNCTIONS
                    .iter()
                    .any(|(f, _)| f.eq_ignore_ascii_case(&name));
            called.then(|| {
                let line = sql[..first.start.min(sql.len())].matches('\n').count() + 1;
                (name.to_ascii_lowercase(), line)
            })
        })
    })
}

/// How the call `name(args)` would read the clock or the time zone, if it would. Each argument
/// is judged as SQLite's own date functions read it: as a C string (up to its first NUL),
/// compared without regard to ASCII case (and, more strictly than SQLite, without regard to
/// surrounding whitespace); a blob is read as its bytes. The time values (`timediff`'s two,
/// every other function's first after `strftime`'s format) are refused for `'now'`,
/// `'subsec'` and `'subsecond'`; the modifiers after them for `'localtime'` and `'utc'`.
fn reads_the_clock(name: &str, first_time: usize, args: &[Value]) -> Option<String> {
    let time_values = if name == "timediff" { 2 } else { 1 };
    if args.len() < first_time + time_values {
        return Some(format!(
            "`{name}` without a time value (it means 'now', the clock)"
        ));
    }
    args.iter().enumerate().skip(first_time).find_map(|(i, v)| {
        let bytes = match v {
            Value::Text(t) => t.as_bytes(),
            Value::Blob(b) => b.as_slice(),
            _ => return None,
        };
        let word = as_sqlite_reads(bytes)?;
        let (words, source) = if i < first_time + time_values {
            (CLOCK_TIME_VALUES, "the clock")
        } else {
            (ZONE_MODIFIERS, "the machine's time zone")
        };
        words
            .contains(&word.as_str())
            .then(|| format!("`{name}` given '{word}' (it reads {source})"))
    })
}

/// The argument as SQLite's date parser compares it with its words: up to the first NUL,
/// trimmed and lowercased; `None` when it is longer than every word.
fn as_sqlite_reads(bytes: &[u8]) -> Option<String> {
    let c_string = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let trimmed = c_string.trim_ascii();
    (trimmed.len() <= "localtime".len())
        .then(|| String::from_utf8_lossy(trimmed).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_that_names_a_date_function_is_found() {
        for (sql, found) in [
            ("CREATE INDEX i ON t(date('now'))", Some(("date", 1))),
            (
                "SELECT 1;\nCREATE TABLE t(a, b AS (\"JulianDay\"(a)))",
                Some(("julianday", 2)),
            ),
            (
                "ALTER TABLE t ADD COLUMN c CHECK (strftime('%Y', c) > '2000')",
                Some(("strftime", 1)),
            ),
            (
                "CREATE UNIQUE INDEX i ON t(a) WHERE [time](a) > '12'",
                Some(("time", 1)),
            ),
            ("INSERT INTO t VALUES (date('now'))", None),
            ("CREATE VIEW v AS SELECT date('now')", None),
            ("CREATE TABLE t(date TEXT, 'date' TEXT)", None),
            ("CREATE TABLE t(a TEXT DEFAULT 'date(')", None),
        ] {
            assert_eq!(
                in_schema_text(sql),
                found.map(|(f, l)| (f.to_string(), l)),
                "{sql}"
            );
        }
    }

    #[test]
    fn arguments_are_judged_as_sqlite_reads_them() {
        let text = |s: &str| Value::Text(s.to_string());
        let refused =
            |name: &str, first: usize, args: &[Value]| reads_the_clock(name, first, args).is_some();
        assert!(refused("date", 0, &[text("now\0")]));
        assert!(refused("date", 0, &[text("NoW\0garbage")]));
        assert!(refused("date", 0, &[Value::Blob(b"now\0".to_vec())]));
        assert!(refused("datetime", 0, &[text(" subsec ")]));
        assert!(refused("julianday", 0, &[text("SUBSECOND")]));
        assert!(refused("strftime", 1, &[text("%s"), text("now\0x")]));
        assert!(refused("strftime", 1, &[text("%s")]));
        assert!(refused("timediff", 0, &[text("2020-01-01"), text("now\0")]));
        assert!(refused(
            "datetime",
            0,
            &[text("2020-01-01"), text("+1 day"), text("LocalTime\0")]
        ));
        assert!(refused("time", 0, &[text("12:00"), text("utc\0\0")]));
        // Pure calls pass: 'subsec' as a modifier, 'unixepoch', 'auto', a format of 'now'.
        assert!(!refused(
            "datetime",
            0,
            &[text("2020-01-01"), text("subsec")]
        ));
        assert!(!refused(
            "datetime",
            0,
            &[Value::Integer(0), text("unixepoch")]
        ));
        assert!(!refused("datetime", 0, &[Value::Integer(0), text("auto")]));
        assert!(!refused("strftime", 1, &[text("now"), text("2020-01-01")]));
        assert!(!refused("date", 0, &[text("\0now")]));
    }

    #[test]
    fn the_functions_are_put_on_a_connection_once_per_guard() {
        let mut conn = Connection::open_in_memory().unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        hide(&conn, &guard).unwrap();
        assert!(guard.clock_hidden());
        let builtin = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT min(builtin) FROM pragma_function_list WHERE name = 'date'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(builtin(&conn), 0);
        // A second call is a no-op and the replacements still compute as SQLite's own.
        hide(&conn, &guard).unwrap();
        let d: String = conn
            .query_row("SELECT date('2024-01-31', '+1 day')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(d, "2024-02-01");
    }
}
