//! The host side of `strata:migrate/sql` and `strata:migrate/log`: what a component's calls do
//! on the step's connection.
//!
//! During a component call the store owns the connection (moved in by `Sandbox::call`, moved
//! back out afterwards), together with the cursors whose statements borrow it; `self_cell`
//! ties the two together without unsafe code. Statements are prepared through the connection's
//! cache, so the authorizer runs once per distinct statement. This module owns the translation
//! between WIT values and SQLite; limits and capabilities are enforced by the store and the
//! guard.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Result as WResult};

use super::bindings::{log, sql};
use super::guard::Guard;

/// The table key of an open cursor: its index among the session's statements.
pub struct CursorSlot(usize);

/// An open cursor: a stepped statement and whether it is exhausted.
pub struct CursorState<'c> {
    stmt: Statement<'c>,
    columns: Vec<String>,
    done: bool,
}

type Cursors<'c> = Vec<Option<CursorState<'c>>>;

self_cell::self_cell!(
    /// The connection and the cursors that borrow it, owned by the store for one call.
    pub struct Session {
        owner: Connection,
        #[covariant]
        dependent: Cursors,
    }
);

/// Messages a component logged, kept for the step's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// At most this many log lines are kept per call; the rest are counted.
const MAX_LOG_LINES: usize = 1_000;
/// At most this many bytes of one log message are kept.
const MAX_LOG_BYTES: usize = 4_096;

/// The store's data for one component call.
pub struct HostState {
    pub session: Session,
    pub table: ResourceTable,
    pub guard: Guard,
    pub memory: MemoryLimit,
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    /// Rows written so far, readable from another thread for progress display.
    pub progress: Arc<AtomicU64>,
}

impl HostState {
    pub fn new(
        conn: Connection,
        guard: Guard,
        memory_bytes: usize,
        progress: Arc<AtomicU64>,
    ) -> Self {
        HostState {
            session: Session::new(conn, |_| Vec::new()),
            table: ResourceTable::new(),
            guard,
            memory: MemoryLimit {
                max_bytes: memory_bytes,
                tripped: false,
                peak_bytes: 0,
            },
            logs: Vec::new(),
            dropped_logs: 0,
            progress,
        }
    }

    /// Gives the connection back, finalizing every cursor first.
    pub fn into_connection(self) -> Connection {
        self.session.into_owner()
    }

    fn error(&self, e: rusqlite::Error) -> sql::Error {
        classify(e, &self.guard)
    }

    /// Counts written rows for progress, and turns errors into WIT errors.
    fn written(&self, r: rusqlite::Result<u64>) -> Result<u64, sql::Error> {
        match r {
            Ok(n) => {
                self.progress.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => Err(self.error(e)),
        }
    }
}

/// The store limiter: refuses memory growth past the limit and remembers that it did, so the
/// trap that follows is reported as the memory limit rather than as a crash.
pub struct MemoryLimit {
    max_bytes: usize,
    pub tripped: bool,
    /// The largest linear memory the component reached.
    pub peak_bytes: usize,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WResult<bool> {
        if desired > self.max_bytes {
            self.tripped = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WResult<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Sorts a SQLite error into the WIT error cases.
pub fn classify(e: rusqlite::Error, guard: &Guard) -> sql::Error {
    use rusqlite::ErrorCode as C;
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(C::AuthorizationForStatementDenied) => {
            sql::Error::Denied(guard.denied().unwrap_or(message))
        }
        Some(C::OperationInterrupted) if guard.timed_out() => {
            sql::Error::Limit("the wall-clock timeout ran out during this statement".to_string())
        }
        Some(C::ConstraintViolation) => sql::Error::Constraint(message),
        Some(C::Unknown) => sql::Error::Syntax(message),
        _ => match e {
            rusqlite::Error::SqlInputError { .. }
            | rusqlite::Error::InvalidParameterCount(..)
            | rusqlite::Error::MultipleStatement
            | rusqlite::Error::ExecuteReturnedResults => sql::Error::Syntax(message),
            _ => sql::Error::Other(message),
        },
    }
}

fn bind_value(stmt: &mut Statement<'_>, index: usize, v: &sql::Value) -> rusqlite::Result<()> {
    let v = match v {
        sql::Value::Null => ValueRef::Null,
        sql::Value::Integer(i) => ValueRef::Integer(*i),
        sql::Value::Real(f) => ValueRef::Real(*f),
        sql::Value::Text(t) => ValueRef::Text(t.as_bytes()),
        sql::Value::Blob(b) => ValueRef::Blob(b),
    };
    stmt.raw_bind_parameter(index, ToSqlOutput::Borrowed(v))
}

fn bind_all(stmt: &mut Statement<'_>, params: &[sql::Value]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if params.len() != expected {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, v) in params.iter().enumerate() {
        bind_value(stmt, i + 1, v)?;
    }
    Ok(())
}

fn to_wit(v: ValueRef<'_>) -> sql::Value {
    match v {
        ValueRef::Null => sql::Value::Null,
        ValueRef::Integer(i) => sql::Value::Integer(i),
        ValueRef::Real(f) => sql::Value::Real(f),
        ValueRef::Text(t) => sql::Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => sql::Value::Blob(b.to_vec()),
    }
}

fn encode(e: &mut strata_wire::Encoder, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => e.null(),
        ValueRef::Integer(i) => e.integer(i),
        ValueRef::Real(f) => e.real(f),
        ValueRef::Text(t) => e.text(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => e.blob(b),
    }
}

/// Runs a prepared, bound statement to completion; returns the rows it changed.
fn run(stmt: &mut Statement<'_>) -> rusqlite::Result<u64> {
    if stmt.column_count() > 0 {
        return Err(rusqlite::Error::ExecuteReturnedResults);
    }
    stmt.raw_execute().map(|n| n as u64)
}

impl sql::Host for HostState {
    fn execute(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<u64, sql::Error>> {
        let conn = self.session.borrow_owner();
        let r = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| bind_all(&mut stmt, &params).and_then(|()| run(&mut stmt)));
        Ok(self.written(r))
    }

    fn query(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        let conn = self.session.borrow_owner();
        let r = conn.prepare_cached(&sql).and_then(|mut stmt| {
            bind_all(&mut stmt, &params)?;
            let n = stmt.column_count();
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(
                    (0..n)
                        .map(|i| row.get_ref(i).map(to_wit))
                        .collect::<rusqlite::Result<_>>()?,
                );
            }
            Ok(out)
        });
        Ok(r.map_err(|e| self.error(e)))
    }

    fn execute_many(
        &mut self,
        sql: String,
        rows: Vec<Vec<sql::Value>>,
    ) -> WResult<Result<u64, sql::Error>> {
        let conn = self.session.borrow_owner();
        let r = conn.prepare_cached(&sql).and_then(|mut stmt| {
            let mut changed = 0;
            for row in &rows {
                bind_all(&mut stmt, row)?;
                changed += run(&mut stmt)?;
            }
            Ok(changed)
        });
        Ok(self.written(r))
    }

    fn execute_packed(
        &mut self,
        sql: String,
        rows: sql::PackedRows,
    ) -> WResult<Result<u64, sql::Error>> {
        let conn = self.session.borrow_owner();
        let r = conn.prepare_cached(&sql).and_then(|mut stmt| {
            let columns = rows.columns as usize;
            if columns != stmt.parameter_count() {
                return Err(rusqlite::Error::InvalidParameterCount(
                    columns,
                    stmt.parameter_count(),
                ));
            }
            let mut d = strata_wire::Decoder::new(&rows.data);
            let mut changed = 0;
            for _ in 0..rows.count {
                for i in 1..=columns {
                    let v = d
                        .next_value()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
                        .ok_or_else(|| {
                            rusqlite::Error::ToSqlConversionFailure(
                                "packed rows hold fewer values than columns x count".into(),
                            )
                        })?;
                    let v = match v {
                        strata_wire::ValueRef::Null => ValueRef::Null,
                        strata_wire::ValueRef::Integer(i) => ValueRef::Integer(i),
                        strata_wire::ValueRef::Real(f) => ValueRef::Real(f),
                        strata_wire::ValueRef::Text(t) => ValueRef::Text(t.as_bytes()),
                        strata_wire::ValueRef::Blob(b) => ValueRef::Blob(b),
                    };
                    stmt.raw_bind_parameter(i, ToSqlOutput::Borrowed(v))?;
                }
                changed += run(&mut stmt)?;
            }
            if !d.is_done() {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "packed rows hold more values than columns x count".into(),
                ));
            }
            Ok(changed)
        });
        Ok(self.written(r))
    }

    fn open_cursor(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Resource<CursorSlot>, sql::Error>> {
        let opened = self.session.with_dependent_mut(|conn, cursors| {
            let mut stmt = conn.prepare(&sql)?;
            bind_all(&mut stmt, &params)?;
            let columns = stmt.column_names().map(str::to_string).collect();
            cursors.push(Some(CursorState {
                stmt,
                columns,
                done: false,
            }));
            Ok(cursors.len() - 1)
        });
        match opened {
            Ok(index) => Ok(Ok(self.table.push(CursorSlot(index))?)),
            Err(e) => Ok(Err(self.error(e))),
        }
    }
}

impl HostState {
    /// Steps a cursor for up to `max` rows, handing each row to `f`.
    fn step_cursor(
        &mut self,
        slot: &Resource<CursorSlot>,
        max: u32,
        mut f: impl FnMut(&rusqlite::Row<'_>, usize) -> rusqlite::Result<()>,
    ) -> WResult<Result<u32, sql::Error>> {
        let index = self.table.get(slot)?.0;
        let r = self.session.with_dependent_mut(|_, cursors| {
            let Some(Some(cursor)) = cursors.get_mut(index) else {
                return Ok(0);
            };
            if cursor.done {
                return Ok(0);
            }
            let n = cursor.columns.len();
            let mut rows = cursor.stmt.raw_query();
            let mut count = 0;
            while count < max {
                match rows.next()? {
                    Some(row) => {
                        f(row, n)?;
                        count += 1;
                    }
                    None => {
                        cursor.done = true;
                        return Ok(count);
                    }
                }
            }
            // Dropping `Rows` would reset the statement to its first row; the cursor goes on
            // from here at the next call. `Rows` holds only borrows, so nothing leaks.
            std::mem::forget(rows);
            Ok(count)
        });
        Ok(r.map_err(|e| self.error(e)))
    }
}

impl sql::HostCursor for HostState {
    fn columns(&mut self, slot: Resource<CursorSlot>) -> WResult<Vec<String>> {
        let index = self.table.get(&slot)?.0;
        Ok(self
            .session
            .borrow_dependent()
            .get(index)
            .and_then(Option::as_ref)
            .map(|c| c.columns.clone())
            .unwrap_or_default())
    }

    fn next(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        let mut out = Vec::new();
        let r = self.step_cursor(&slot, max_rows, |row, n| {
            out.push(
                (0..n)
                    .map(|i| row.get_ref(i).map(to_wit))
                    .collect::<rusqlite::Result<_>>()?,
            );
            Ok(())
        })?;
        Ok(r.map(|_| out))
    }

    fn next_packed(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<sql::PackedRows, sql::Error>> {
        let mut e = strata_wire::Encoder::with_capacity(64 * max_rows.min(10_000) as usize);
        let mut columns = 0;
        let r = self.step_cursor(&slot, max_rows, |row, n| {
            columns = n as u32;
            for i in 0..n {
                encode(&mut e, row.get_ref(i)?);
            }
            Ok(())
        })?;
        Ok(r.map(|count| sql::PackedRows {
            columns,
            count,
            data: e.take(),
        }))
    }

    fn drop(&mut self, slot: Resource<CursorSlot>) -> WResult<()> {
        let CursorSlot(index) = self.table.delete(slot)?;
        self.session.with_dependent_mut(|_, cursors| {
            if let Some(c) = cursors.get_mut(index) {
                *c = None;
            }
        });
        Ok(())
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> WResult<()> {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return Ok(());
        }
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.logs.push(LogLine { level, message });
        Ok(())
    }
}
