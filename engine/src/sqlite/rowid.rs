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
    /// Why the first refused insert is refused.
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
                        s.refused = Some(refusal(table));
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
            let seen = guard.as_host(|| largest_rowid(conn, &table));
            let mut s = self.lock();
            match seen {
                Largest::Max if !s.at_max.contains(&table) => {
                    s.refused.get_or_insert_with(|| refusal(&table));
                    s.at_max.insert(table.clone());
                }
                Largest::Unreadable => {
                    s.refused.get_or_insert_with(|| unreadable(&table));
                }
                _ => {}
            }
            s.checked.insert(table);
        }
        let why = self.lock().refused.clone()?;
        guard.deny(why.clone());
        Some(why)
    }
}

/// The names SQLite reads as a rowid table's rowid, unless a column has the name.
const ROWID_NAMES: [&str; 3] = ["rowid", "_rowid_", "oid"];

/// What a table's largest rowid is, as far as [`Watch`] cares.
#[derive(Debug, PartialEq)]
enum Largest {
    /// `i64::MAX`.
    Max,
    /// Below it, no rows, or no rowid to read (a table without rowid).
    Below,
    /// Every name of the rowid is a column's, so SQL cannot read the rowid.
    Unreadable,
}

/// The name that reads `table`'s rowid in SQL: the first of `rowid`, `_rowid_`, `oid` that
/// no column (hidden and generated ones too) has, in any letter case, as SQLite compares
/// names. `None` when all three are columns' names.
fn rowid_name(conn: &Connection, table: &str) -> rusqlite::Result<Option<&'static str>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM pragma_table_xinfo(?1, 'main')")?;
    let columns = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ROWID_NAMES
        .into_iter()
        .find(|n| !columns.iter().any(|c| c.eq_ignore_ascii_case(n))))
}

/// `table`'s largest rowid, read through a name no column shadows. A table SQL cannot read
/// (a view, gone) has none to look at; one whose columns take all three names is
/// [`Largest::Unreadable`].
fn largest_rowid(conn: &Connection, table: &str) -> Largest {
    let name = match rowid_name(conn, table) {
        Ok(Some(name)) => name,
        Ok(None) => return Largest::Unreadable,
        Err(_) => return Largest::Below,
    };
    let sql = format!(
        "SELECT max({name}) FROM main.\"{}\"",
        table.replace('"', "\"\"")
    );
    // A table without rowid has none to look at.
    match conn.query_row(&sql, [], |r| r.get::<_, Option<i64>>(0)) {
        Ok(Some(i64::MAX)) => Largest::Max,
        _ => Largest::Below,
    }
}

/// Why an insert into `table`, whose columns take every name of the rowid, is refused.
fn unreadable(table: &str) -> String {
    format!(
        "inserting into `{table}` is not available to components: its columns are named \
         `rowid`, `_rowid_` and `oid`, so strata cannot read the table's rowids to make sure \
         SQLite gives a new row no random rowid (it does when the largest is \
         9223372036854775807); rename one of those columns (do.sql can)"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    #[test]
    fn the_largest_rowid_is_read_through_a_name_no_column_shadows() {
        let max = i64::MAX;
        for (create, insert) in [
            (
                "CREATE TABLE t(a)",
                "INSERT INTO t(rowid, a) VALUES (MAX, 1)",
            ),
            (
                "CREATE TABLE t(rowid INTEGER, v)",
                "INSERT INTO t(_rowid_, rowid, v) VALUES (MAX, 1, 'x')",
            ),
            (
                "CREATE TABLE t(\"ROWID\", \"_Rowid_\", v)",
                "INSERT INTO t(oid, \"ROWID\", v) VALUES (MAX, 1, 'x')",
            ),
            (
                "CREATE TABLE t(id INTEGER PRIMARY KEY, oid, rowid)",
                "INSERT INTO t(id, oid, rowid) VALUES (MAX, 1, 2)",
            ),
            (
                "CREATE TABLE t(a, rowid AS (1))",
                "INSERT INTO t(_rowid_, a) VALUES (MAX, 1)",
            ),
        ] {
            let conn = db(&format!(
                "{create}; {};",
                insert.replace("MAX", &max.to_string())
            ));
            assert_eq!(largest_rowid(&conn, "t"), Largest::Max, "{create}");
        }
        // Below the largest, or no rowid at all: nothing to refuse.
        let conn = db(
            "CREATE TABLE t(rowid INTEGER, v); INSERT INTO t VALUES (9223372036854775807, 1);\
                       CREATE TABLE w(k PRIMARY KEY, rowid) WITHOUT ROWID;",
        );
        assert_eq!(largest_rowid(&conn, "t"), Largest::Below);
        assert_eq!(largest_rowid(&conn, "w"), Largest::Below);
        // All three names taken: the rowid cannot be read, and that is said.
        let conn = db("CREATE TABLE \"a\"\"b\"(RowId, _ROWID_, \"oid\", v)");
        assert_eq!(largest_rowid(&conn, "a\"b"), Largest::Unreadable);
        assert!(unreadable("a\"b").contains("rename one of those columns"));
    }
}
