//! SQLite gives a row inserted without a rowid the largest rowid plus one, unless the largest
//! is already `i64::MAX` (9223372036854775807): then it tries random rowids, drawn from the
//! process's PRNG (`sqlite3_randomness`). A component that could insert there would see
//! randomness (the new rowid, or which row an `ORDER BY rowid` puts first). While a component
//! runs, [`Watch`] follows every row written to a rowid table (SQLite's update hook) and
//! refuses, after the statement and before its rows reach the component, an insert into a
//! table that held rowid `i64::MAX` (before the call, or from an earlier row of the call). The
//! PRNG cannot be seeded instead: it is one for the process, and fleet steps run in parallel
//! threads. SQLite's other uses of it (temporary file names) are not seen by SQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::hooks::Action;

use crate::sqlite::guard::Guard;

#[derive(Debug, Default)]
struct State {
    /// Tables found not to hold `i64::MAX` when first inserted into during the call.
    checked: HashSet<String>,
    /// Tables inserted into for the first time since the last [`Watch::check`].
    unchecked: HashSet<String>,
    /// Tables a row with rowid `i64::MAX` was written to during the call.
    at_max: HashSet<String>,
    /// The first refused insert.
    refused: Option<String>,
}

/// The rows a component writes, watched for the random rowid (see the module).
#[derive(Debug, Clone, Default)]
pub struct Watch(Arc<Mutex<State>>);

impl Watch {
    /// Installs the watch on `conn` (its update hook) for one component call.
    pub fn install(conn: &mut Connection) -> rusqlite::Result<Watch> {
        let watch = Watch::default();
        let w = watch.clone();
        conn.update_hook(Some(
            move |action: Action, db: &str, table: &str, rowid: i64| {
                if db != "main" {
                    return;
                }
                let mut s = w.lock();
                if action == Action::SQLITE_INSERT {
                    if s.at_max.contains(table) && s.refused.is_none() {
                        s.refused = Some(table.to_string());
                    }
                    if !s.checked.contains(table) && !s.unchecked.contains(table) {
                        s.unchecked.insert(table.to_string());
                    }
                }
                if rowid == i64::MAX
                    && matches!(action, Action::SQLITE_INSERT | Action::SQLITE_UPDATE)
                    && !s.at_max.contains(table)
                {
                    s.at_max.insert(table.to_string());
                }
            },
        ))?;
        Ok(watch)
    }

    /// Removes the watch from `conn`.
    pub fn uninstall(conn: &mut Connection) -> rusqlite::Result<()> {
        conn.update_hook(None::<fn(Action, &str, &str, i64)>)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a component statement: why its inserts are refused, if they are (the refusal is
    /// recorded on `guard` too, so the step fails even if the component carries on). A table
    /// inserted into for the first time in the call is looked at once: if its largest rowid
    /// is `i64::MAX` and no row of the call put it there, it held it before, and the rows
    /// just inserted may have random rowids.
    pub fn check(&self, conn: &Connection, guard: &Guard) -> Option<String> {
        let unchecked: Vec<String> = self.lock().unchecked.drain().collect();
        for table in unchecked {
            let at_max = guard.as_host(|| {
                let sql = format!(
                    "SELECT max(rowid) FROM main.\"{}\"",
                    table.replace('"', "\"\"")
                );
                // A view (INSTEAD OF trigger) or a table without rowid has none to look at.
                conn.query_row(&sql, [], |r| r.get::<_, Option<i64>>(0))
                    .ok()
                    .flatten()
                    == Some(i64::MAX)
            });
            let mut s = self.lock();
            if at_max && !s.at_max.contains(&table) {
                s.refused.get_or_insert(table.clone());
                s.at_max.insert(table.clone());
            }
            s.checked.insert(table);
        }
        let table = self.lock().refused.clone()?;
        let why = refusal(&table);
        guard.deny(why.clone());
        Some(why)
    }
}

/// Why an insert into `table` is refused.
pub fn refusal(table: &str) -> String {
    format!(
        "inserting into `{table}` is not available to components: the table holds rowid \
         9223372036854775807 (the largest), so SQLite gives a new row a random rowid, and a \
         component sees no randomness, so that the same database gives the same result in the \
         rehearsal, in CI's sandbox and in production; keep the table's largest rowid below \
         9223372036854775807 (do.sql can move that row)"
    )
}
