//! SQL on the connection of the step being applied, inside its transaction.
//!
//! Every call runs under the sandbox: only the tables the migration declares in its
//! `migration.toml`, no ATTACH, PRAGMA or transaction statements, and strata's own tables are
//! out of reach. Parameters are positional (`?`).
//!
//! - [`execute`], [`execute_many`]: statements with [`Value`] parameters.
//! - [`query`], [`query_one`], [`stream`]: rows decoded into your types through serde (see
//!   below); [`stream`] reads a result of any size in batches with bounded memory.
//! - [`Writer`]: one statement run for many rows, packed and sent in batches; the fast path for
//!   bulk updates and inserts.
//!
//! # Rows into Rust types
//! A row decodes into:
//! - a struct deriving `serde::Deserialize`, **by column name**: each column whose name matches
//!   a field (after `#[serde(rename)]`) fills it, other columns are ignored, and an `Option`
//!   field with no column is `None`;
//! - a tuple, **by position**, with as many elements as the query has columns;
//! - a single value (`i64`, `String`, `Option<f64>`, [`Value`], ...) when the query has one
//!   column;
//! - `Vec<Value>` or a map (`BTreeMap<String, Value>`) for dynamic results.
//!
//! Integers fit any integer type that holds them (and `bool`: nonzero is true), reals and
//! integers fit `f64`, text fits `String`, `char` and unit-only enums (by variant name), blobs
//! and text fit `Vec<u8>`, and NULL needs an `Option`. A value that does not fit is an
//! [`ErrorKind::Decode`](crate::ErrorKind::Decode) error naming the row and the column.

use std::collections::VecDeque;
use std::iter::FusedIterator;

use serde::de::DeserializeOwned;
use strata_wire::Encoder;

use crate::bindings::sql_api;
use crate::de::{Plan, decode_rows};
use crate::params::Params;
use crate::{Error, Result, Value};

/// Rows a [`Rows`] stream asks the host for at a time, unless told otherwise.
pub const DEFAULT_BATCH_ROWS: u32 = 1_000;

/// Runs one statement with positional parameters; returns the number of rows it changed.
///
/// ```no_run
/// use strata_sdk::{params, sql};
///
/// # fn main() -> strata_sdk::Result<()> {
/// let changed = sql::execute("DELETE FROM people WHERE email LIKE ?", params!["%@old.test"])?;
/// sql::execute("CREATE INDEX people_last_name ON people (last_name)", params![])?;
/// # Ok(())
/// # }
/// ```
pub fn execute(sql: &str, params: &[Value]) -> Result<u64> {
    sql_api::execute(sql, params).map_err(|e| Error::from_host(e, sql))
}

/// Runs one statement once per parameter row, through one prepared statement; returns the rows
/// changed in total.
///
/// The rows cross to the host as [`Value`]s; for many rows [`Writer`] is faster.
pub fn execute_many(sql: &str, rows: &[Vec<Value>]) -> Result<u64> {
    sql_api::execute_many(sql, rows).map_err(|e| Error::from_host(e, sql))
}

/// Runs a query and decodes every row into `T` (see the [module docs](self) for how rows map
/// onto types). The whole result is held in memory: use [`stream`] for large results.
///
/// ```no_run
/// use serde::Deserialize;
/// use strata_sdk::{params, sql};
///
/// #[derive(Deserialize)]
/// struct Person {
///     id: i64,
///     email: String,
///     last_name: Option<String>,
/// }
///
/// # fn main() -> strata_sdk::Result<()> {
/// let people: Vec<Person> = sql::query("SELECT * FROM people WHERE id < ?", params![100])?;
/// let pairs: Vec<(i64, String)> = sql::query("SELECT id, email FROM people", params![])?;
/// # Ok(())
/// # }
/// ```
pub fn query<T: DeserializeOwned>(sql: &str, params: &[Value]) -> Result<Vec<T>> {
    stream(sql, params)?.collect()
}

/// Runs a query and decodes its first row into `T`; an error if there is no row.
///
/// ```no_run
/// use strata_sdk::{params, sql};
///
/// # fn main() -> strata_sdk::Result<()> {
/// let last_id: i64 = sql::query_one("SELECT coalesce(max(id), 0) FROM people", params![])?;
/// # Ok(())
/// # }
/// ```
pub fn query_one<T: DeserializeOwned>(sql: &str, params: &[Value]) -> Result<T> {
    stream(sql, params)?
        .batch_size(1)
        .next()
        .unwrap_or_else(|| {
            Err(Error::new(crate::ErrorKind::Custom, "the query returned no row").in_statement(sql))
        })
}

/// Runs a query and returns its rows as [`Value`]s, through the host's plain `query` call.
pub fn query_values(sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
    sql_api::query(sql, params).map_err(|e| Error::from_host(e, sql))
}

/// Opens a cursor over a query: an iterator that decodes rows into `T` as the host sends them,
/// [`DEFAULT_BATCH_ROWS`] at a time (see [`Rows::batch_size`]), so memory stays bounded
/// whatever the size of the result.
///
/// ```no_run
/// use serde::Deserialize;
/// use strata_sdk::{log, params, sql};
///
/// #[derive(Deserialize)]
/// struct Person {
///     id: i64,
///     full_name: String,
/// }
///
/// # fn main() -> strata_sdk::Result<()> {
/// let mut longest = 0;
/// for person in sql::stream::<Person>("SELECT id, full_name FROM people", params![])? {
///     let person = person?;
///     longest = longest.max(person.full_name.chars().count());
/// }
/// log::info(format!("the longest name has {longest} characters"));
/// # Ok(())
/// # }
/// ```
pub fn stream<T: DeserializeOwned>(sql: &str, params: &[Value]) -> Result<Rows<T>> {
    let cursor = sql_api::open_cursor(sql, params).map_err(|e| Error::from_host(e, sql))?;
    let columns = cursor.columns();
    Ok(Rows {
        cursor,
        columns,
        sql: sql.to_owned(),
        batch_size: DEFAULT_BATCH_ROWS,
        ready: VecDeque::new(),
        failed: None,
        done: false,
        plan: Plan::default(),
        rows_read: 0,
    })
}

/// The rows of a query, decoded into `T` batch by batch: an [`Iterator`] of `Result<T>`.
///
/// Made by [`stream`]. Holds at most one batch of rows; the cursor is closed when the
/// iterator is dropped. After an error the iterator ends.
pub struct Rows<T> {
    cursor: sql_api::Cursor,
    columns: Vec<String>,
    sql: String,
    batch_size: u32,
    ready: VecDeque<T>,
    failed: Option<Error>,
    done: bool,
    plan: Plan,
    rows_read: u64,
}

impl<T: DeserializeOwned> Rows<T> {
    /// Sets how many rows to ask the host for at a time (at least 1, at most
    /// [`strata_wire::MAX_ROWS_PER_CALL`], the most the host returns per call; default
    /// [`DEFAULT_BATCH_ROWS`]). Larger batches mean fewer host calls and more memory.
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = batch_rows(rows);
        self
    }

    /// The names of the result's columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Asks the host for the next batch and decodes it into `self.ready`.
    fn fetch(&mut self) -> Result<()> {
        let batch = self
            .cursor
            .next_packed(self.batch_size)
            .map_err(|e| Error::from_host(e, &self.sql))?;
        if batch.count == 0 {
            self.done = true;
            return Ok(());
        }
        if batch.columns as usize != self.columns.len() {
            return Err(Error::decode(format!(
                "the host sent rows of {} values for a query of {} columns",
                batch.columns,
                self.columns.len()
            )));
        }
        let first_row = self.rows_read + 1;
        self.rows_read += u64::from(batch.count);
        decode_rows(
            &batch.data,
            batch.count,
            &self.columns,
            &mut self.plan,
            first_row,
            &mut self.ready,
        )
    }
}

impl<T: DeserializeOwned> Iterator for Rows<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(Ok(row));
            }
            if let Some(e) = self.failed.take() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                // Rows decoded before the failing one come first.
                self.done = true;
                self.failed = Some(e.in_statement(&self.sql));
            }
        }
    }
}

impl<T: DeserializeOwned> FusedIterator for Rows<T> {}

impl<T> std::fmt::Debug for Rows<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("sql", &self.sql)
            .field("columns", &self.columns)
            .field("batch_size", &self.batch_size)
            .field("rows_read", &self.rows_read)
            .finish_non_exhaustive()
    }
}

/// Runs one statement for many rows of parameters, packing the rows into batches sent in one
/// host call each: the fast path for bulk updates and inserts.
///
/// Rows are [`Params`]: tuples of `&str`, `String`, integers, `f64`, `bool`, `Option<_>`,
/// byte slices or [`Value`]s, packed straight into the wire encoding. A batch goes to the host
/// every [`DEFAULT_BATCH_ROWS`] rows (see [`Writer::batch_size`]) and on [`Writer::finish`],
/// which must be called: a writer dropped with rows not sent logs a warning and drops them.
///
/// ```no_run
/// use strata_sdk::sql::Writer;
///
/// # fn main() -> strata_sdk::Result<()> {
/// let mut w = Writer::new("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?");
/// w.push(("Ada", "Lovelace", 1))?;
/// w.push(("Zoë", String::from("Brontë"), 2))?;
/// let changed = w.finish()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Writer {
    sql: String,
    enc: Encoder,
    columns: Option<usize>,
    pending: u32,
    batch_size: u32,
    changed: u64,
    pushed: u64,
}

impl Writer {
    /// A writer for `sql`, a statement with one `?` per value of a row.
    pub fn new(sql: impl Into<String>) -> Self {
        Writer {
            sql: sql.into(),
            enc: Encoder::new(),
            columns: None,
            pending: 0,
            batch_size: DEFAULT_BATCH_ROWS,
            changed: 0,
            pushed: 0,
        }
    }

    /// Sets how many rows go to the host per call (at least 1; default
    /// [`DEFAULT_BATCH_ROWS`]).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Adds a row of parameters, and sends the batch if it is full.
    ///
    /// Every row must have as many values as the first one.
    pub fn push<P: Params>(&mut self, row: P) -> Result<()> {
        let columns = row.columns();
        match self.columns {
            None => self.columns = Some(columns),
            Some(expected) if expected != columns => {
                return Err(Error::msg(format!(
                    "row {} has {columns} values but the rows before it have {expected}",
                    self.pushed + 1
                ))
                .in_statement(&self.sql));
            }
            Some(_) => {}
        }
        row.encode(&mut self.enc);
        self.pending += 1;
        self.pushed += 1;
        if self.pending >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the rows pushed since the last batch, if any; returns the rows they changed.
    pub fn flush(&mut self) -> Result<u64> {
        if self.pending == 0 {
            return Ok(0);
        }
        let columns = self.columns.unwrap_or(0);
        let rows = sql_api::PackedRows {
            columns: u32::try_from(columns)
                .map_err(|_| Error::msg("a row has more than 2^32 values"))?,
            count: self.pending,
            data: self.enc.take(),
        };
        self.pending = 0;
        let changed = sql_api::execute_packed(&self.sql, &rows)
            .map_err(|e| Error::from_host(e, &self.sql))?;
        // The next batch is about as large: allocate it once.
        self.enc = Encoder::with_capacity(rows.data.len());
        self.changed += changed;
        Ok(changed)
    }

    /// Sends the last rows; returns the rows changed by every batch of this writer.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.changed)
    }

    /// Rows pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Rows changed by the batches sent so far.
    pub fn changed(&self) -> u64 {
        self.changed
    }
}

/// The rows a cursor batch asks for: `rows` within 1 and the most the host returns per call,
/// so that the count never reaches `next-packed`'s layout flag (2^31).
fn batch_rows(rows: u32) -> u32 {
    rows.clamp(1, strata_wire::MAX_ROWS_PER_CALL)
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.pending > 0 && !std::thread::panicking() {
            crate::log::warn(format!(
                "a sql::Writer was dropped with {} rows not sent (call finish()): {}",
                self.pending, self.sql
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_wire::{Decoder, ValueRef};

    #[test]
    fn a_batch_never_asks_for_a_count_the_layout_flag_would_change() {
        for (asked, sent) in [
            (0, 1),
            (1, 1),
            (1_000, 1_000),
            (
                strata_wire::MAX_ROWS_PER_CALL,
                strata_wire::MAX_ROWS_PER_CALL,
            ),
            (1 << 31, strata_wire::MAX_ROWS_PER_CALL),
            ((1 << 31) + 2, strata_wire::MAX_ROWS_PER_CALL),
            (u32::MAX, strata_wire::MAX_ROWS_PER_CALL),
        ] {
            assert_eq!(batch_rows(asked), sent);
            assert_eq!(batch_rows(asked) & strata_wire::COLUMNS_FLAG, 0);
        }
    }

    #[test]
    fn rows_pack_without_calling_the_host_until_a_batch_is_full() {
        let mut w = Writer::new("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?")
            .batch_size(10);
        let last = String::from("Brontë");
        w.push(("Zoë", &last, 2i64)).unwrap();
        w.push((String::from("Ñuño"), None::<&str>, 3)).unwrap();
        assert_eq!(w.pushed(), 2);
        assert_eq!(w.pending, 2);
        let mut d = Decoder::new(w.enc.as_bytes());
        let values: Vec<_> = std::iter::from_fn(|| d.next_value().unwrap()).collect();
        assert_eq!(
            values,
            [
                ValueRef::Text("Zoë"),
                ValueRef::Text("Brontë"),
                ValueRef::Integer(2),
                ValueRef::Text("Ñuño"),
                ValueRef::Null,
                ValueRef::Integer(3),
            ]
        );
        // Not sent: forget the rows so the test's drop does not log through the host.
        w.pending = 0;
    }

    #[test]
    fn rows_of_another_width_are_refused() {
        let mut w = Writer::new("INSERT INTO t VALUES (?, ?)");
        w.push((1, 2)).unwrap();
        let e = w.push((1,)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "row 2 has 1 values but the rows before it have 2 (in `INSERT INTO t VALUES (?, ?)`)"
        );
        w.pending = 0;
    }

    #[test]
    fn an_empty_writer_finishes_without_the_host() {
        assert_eq!(
            Writer::new("DELETE FROM t WHERE id = ?").finish().unwrap(),
            0
        );
    }
}
