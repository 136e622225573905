//! SQLite's date and time functions read the clock when given `'now'` or no time value
//! (`date()`, `datetime('now')`, `strftime('%s')`, `unixepoch()`, ...) and the machine's time
//! zone with the `'localtime'` and `'utc'` modifiers. A component must not see either (nor
//! `random()`, `randomblob()` and the `CURRENT_*` keywords, which the guard refuses by name),
//! so that the same database gives the same result in the rehearsal, in CI's sandbox and in
//! production. Before a component runs, [`hide`] puts functions of the same names on its
//! connection that, while the guard is in component mode, refuse those arguments, and compute
//! every other call with SQLite's own functions on a private in-memory connection (the same
//! clock and time zone). They stay on the connection afterwards, answering every call as
//! SQLite's own would: SQLite cannot give a connection its built-in function back once an
//! application's function of the same name was removed.

use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, Error};

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

/// Time values and modifiers that read the clock or the machine's time zone.
const UNSEEN_WORDS: &[&str] = &["now", "localtime", "utc"];

/// Replaces SQLite's date and time functions on `conn` (see the module); a refused call is
/// recorded on `guard`, so the step fails even if the component carries on.
pub fn hide(conn: &Connection, guard: &Guard) -> rusqlite::Result<()> {
    let own = Arc::new(Mutex::new(Connection::open_in_memory()?));
    for &(name, first_time) in DATE_FUNCTIONS {
        let own = Arc::clone(&own);
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
    Ok(())
}

/// How the call `name(args)` would read the clock or the time zone, if it would.
fn reads_the_clock(name: &str, first_time: usize, args: &[Value]) -> Option<String> {
    let needed = if name == "timediff" {
        2
    } else {
        first_time + 1
    };
    if args.len() < needed {
        return Some(format!(
            "`{name}` without a time value (it means 'now', the clock)"
        ));
    }
    args.iter().find_map(|v| {
        let bytes = match v {
            Value::Text(t) => t.as_bytes(),
            Value::Blob(b) => b.as_slice(),
            _ => return None,
        };
        let trimmed = bytes.trim_ascii();
        if trimmed.len() > "localtime".len() {
            return None;
        }
        let word = String::from_utf8_lossy(trimmed).to_ascii_lowercase();
        UNSEEN_WORDS.contains(&word.as_str()).then(|| {
            let source = if word == "now" {
                "the clock"
            } else {
                "the machine's time zone"
            };
            format!("`{name}` given '{word}' (it reads {source})")
        })
    })
}
