//! The SQLite side of `strata:migrate/sql`: what a component's calls do on the step's
//! connection. During a component call the store owns the connection (moved in by
//! `Sandbox::call`, moved back out afterwards), together with the cursors whose statements
//! borrow it; `self_cell` ties the two together without unsafe code. Statements are prepared
//! through the connection's cache, which `Sandbox::call` empties before and after, so the
//! authorizer runs once per distinct statement under the component's own policy. An exhausted
//! cursor's statement is finalized at once. This module owns the translation between WIT values
//! and SQLite; capabilities are the guard's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, Value as OwnedValue, ValueRef};
use rusqlite::{Connection, Statement};
use wasmtime::Result as WResult;
use wasmtime::component::Resource;

use crate::components::bindings::sql;
use crate::components::host::PackedRequest;
use crate::components::host::{
    CursorSlot, HostState, MAX_ROWS_PER_CALL, ROW_OVERHEAD, VALUE_OVERHEAD,
};
use crate::components::{Call, Called, ComponentError, Ended, Outcome, Sandbox};
use crate::sqlite::guard::{self, Guard, Mode, Snapshot};

impl Sandbox {
    /// Runs one component on `conn` inside the caller's transaction, with `guard` (installed
    /// on `conn`) switched to the component's policy for the duration.
    pub fn call(&self, conn: &mut Connection, guard: &Guard, call: &Call<'_>) -> Called {
        let loaded = match self.prepare(call) {
            Ok(l) => l,
            Err(failed) => return failed,
        };
        let setup_failed = |reason: String| Called {
            outcome: Outcome::default(),
            result: Err(ComponentError::Setup { reason }),
        };

        // SQLite authorizes a statement when it is prepared: statements the host prepared
        // (data.json inserts, ledger writes) must not be found in the cache by a component.
        conn.flush_prepared_statement_cache();
        let before = match guard::Snapshot::take(conn) {
            Ok(s) => s,
            Err(e) => return setup_failed(format!("cannot read the schema: {e}")),
        };
        match guard::foreign_key_reach(conn, &call.policy) {
            Ok(None) => {}
            Ok(Some(reason)) => return setup_failed(reason),
            Err(e) => {
                return setup_failed(format!(
                    "cannot read the foreign keys of the tables the component may use: {e}"
                ));
            }
        }
        let settings = match ConnectionSettings::apply(conn, call.limits.memory_mib) {
            Ok(s) => s,
            Err(e) => return setup_failed(e.to_string()),
        };
        if let Err(e) = crate::sqlite::clock::hide(conn, guard) {
            let _ = settings.restore(conn);
            return setup_failed(format!("cannot hide the clock from the component: {e}"));
        }

        let rowids = match crate::sqlite::rowid::Watch::install(conn) {
            Ok(w) => w,
            Err(e) => {
                let _ = settings.restore(conn);
                return setup_failed(format!("cannot watch the component's rowids: {e}"));
            }
        };
        let timeout = Duration::from_secs(call.limits.timeout_s);
        let policy = Arc::new(call.policy.clone());
        guard.set_mode(Mode::Component {
            policy: Arc::clone(&policy),
            deadline: Instant::now() + timeout,
        });
        guard.set_schema_names(before.names());
        let placeholder = Connection::open_in_memory().expect("an in-memory database opens");
        let owned = std::mem::replace(conn, placeholder);
        let changes_before = owned.total_changes();
        let state = HostState::new(
            Sqlite::new(owned, guard.clone(), rowids),
            call.limits.memory_mib,
            Arc::clone(&call.progress),
        );
        let (state, result, fuel_left) = self.run_on(state, &loaded, call);
        let HostState {
            db,
            limiter,
            limit,
            logs,
            ..
        } = state;
        *conn = db.into_connection();
        conn.flush_prepared_statement_cache();
        let unwatched = crate::sqlite::rowid::Watch::uninstall(conn);
        let rows_changed = conn.total_changes() - changes_before;
        let timed_out_in_sql = guard.timed_out();
        let mut denied = guard.take_denied();
        let created = guard.take_created();
        if denied.is_none() {
            // What no single authorizer callback shows, checked under the component's policy
            // (with a fresh deadline: the probes are prepared, never run).
            guard.set_mode(Mode::Component {
                policy: Arc::clone(&policy),
                deadline: Instant::now() + Duration::from_secs(60),
            });
            denied = guard::verify(conn, guard, &policy, &before, &created).err();
        }
        guard.set_mode(Mode::Host);
        if denied.is_none() {
            // A key the component added (a table, a column) links what it writes to the same.
            denied = match guard::foreign_key_reach(conn, &policy) {
                Ok(reach) => reach,
                Err(e) => Some(format!("cannot read the foreign keys after the call: {e}")),
            };
        }
        let restored = settings.restore(conn).and(unwatched);
        Ended {
            fuel_left,
            limiter,
            host_limit: limit,
            logs,
            rows_changed,
            timed_out_in_sql,
            denied,
            cleanup: restored
                .err()
                .map(|e| format!("cannot restore the connection's settings: {e}")),
        }
        .conclude(call, result)
    }
}

/// A component's database on SQLite: the connection with its open cursors, and the guard
/// (installed on the connection as its authorizer) that holds the component's policy.
pub struct Sqlite {
    pub session: Session,
    pub guard: Guard,
    /// The rows written, watched for SQLite's random rowids (see `sqlite::rowid`).
    pub rowids: crate::sqlite::rowid::Watch,
}

impl Sqlite {
    pub fn new(conn: Connection, guard: Guard, rowids: crate::sqlite::rowid::Watch) -> Self {
        Sqlite {
            session: Session::new(conn, |_| Cursors::default()),
            guard,
            rowids,
        }
    }

    /// Gives the connection back, finalizing every cursor first.
    pub fn into_connection(self) -> Connection {
        self.session.into_owner()
    }
}

impl HostState<Sqlite> {
    fn error(&mut self, e: rusqlite::Error) -> sql::Error {
        let e = classify(e, &self.db.guard, self.memory_mib);
        self.remember(e)
    }

    /// Counts written rows for progress, and turns errors into WIT errors.
    fn written(&mut self, r: rusqlite::Result<u64>) -> Result<u64, sql::Error> {
        if let Some(why) = self.random_rowids() {
            return Err(sql::Error::Denied(why));
        }
        match r {
            Ok(n) => Ok(self.count_written(n)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// After each statement, before its rows reach the component: whether its inserts may
    /// have drawn random rowids (see `sqlite::rowid`).
    fn random_rowids(&self) -> Option<String> {
        self.db
            .rowids
            .check(self.db.session.borrow_owner(), &self.db.guard)
    }

    /// Before each statement: a component's DDL may have added or renamed tables, which the
    /// guard must know to tell them from CTEs; and which functions refused by name `sql`
    /// names itself ([`Guard::set_statement`]).
    fn before(&mut self, sql: &str) {
        self.refresh_schema_names();
        self.db.guard.set_statement(sql);
    }

    fn refresh_schema_names(&mut self) {
        if self.db.guard.schema_changed()
            && let Ok(snapshot) = Snapshot::take(self.db.session.borrow_owner())
        {
            self.db.guard.set_schema_names(snapshot.names());
        }
    }
}

/// An open cursor: a stepped statement (finalized once exhausted), and the row that did not fit
/// in the previous batch.
pub struct CursorState<'c> {
    stmt: Option<Statement<'c>>,
    columns: Vec<String>,
    /// The row read past a batch's budget, kept for the next call, and its size.
    pending: Option<(Vec<OwnedValue>, usize)>,
}

impl CursorState<'_> {
    /// What the host keeps for this cursor outside SQLite's heap, counted in the component's
    /// budget while it is open ([`crate::components::host::Limiter::hold`]).
    fn held(&self) -> usize {
        names_size(self.columns.iter().map(String::as_str))
            + self.pending.as_ref().map_or(0, |p| p.1)
    }
}

/// The bytes a cursor's column names take on the host.
fn names_size<'n>(names: impl Iterator<Item = &'n str>) -> usize {
    names
        .map(|n| n.len().saturating_add(std::mem::size_of::<String>()))
        .fold(0, usize::saturating_add)
}

type Cursors<'c> = crate::components::host::Cursors<CursorState<'c>>;

self_cell::self_cell!(
    /// The connection and the cursors that borrow it, owned by the store for one call.
    pub struct Session {
        owner: Connection,
        #[covariant]
        dependent: Cursors,
    }
);

/// Sorts a SQLite error into the WIT error cases.
pub fn classify(e: rusqlite::Error, guard: &Guard, memory_mib: u64) -> sql::Error {
    use rusqlite::ErrorCode as C;
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(C::AuthorizationForStatementDenied) => {
            sql::Error::Denied(guard.denied().unwrap_or(message))
        }
        Some(C::OperationInterrupted) if guard.timed_out() => {
            sql::Error::Limit("the wall-clock timeout ran out during this statement".to_string())
        }
        Some(C::TooBig) => sql::Error::Limit(format!(
            "a value or row of this statement is larger than the component's memory budget \
             (memory_mib = {memory_mib}): {message}"
        )),
        Some(C::OutOfMemory) => sql::Error::Limit(format!(
            "SQLite ran out of the memory allowed while the component runs (memory_mib = \
             {memory_mib}): {message}"
        )),
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

/// Where a batch of rows goes: the typed list or the packed encoding. Sizes are what the host
/// buffer costs, counted before a value is copied.
trait Sink {
    fn row_overhead(&self) -> usize;
    fn value_size(&self, v: ValueRef<'_>) -> usize;
    fn push_value(&mut self, v: ValueRef<'_>);
    fn end_row(&mut self);

    /// What the row costs, reading its values without copying them.
    fn row_size(&self, row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<usize> {
        let mut size = self.row_overhead();
        for i in 0..n {
            size = size.saturating_add(self.value_size(row.get_ref(i)?));
        }
        Ok(size)
    }

    fn push_row(&mut self, row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<()> {
        for i in 0..n {
            self.push_value(row.get_ref(i)?);
        }
        self.end_row();
        Ok(())
    }
}

struct WitRows {
    rows: Vec<Vec<sql::Value>>,
    row: Vec<sql::Value>,
}

impl WitRows {
    fn new() -> Self {
        WitRows {
            rows: Vec::new(),
            row: Vec::new(),
        }
    }
}

impl Sink for WitRows {
    fn row_overhead(&self) -> usize {
        ROW_OVERHEAD
    }
    fn value_size(&self, v: ValueRef<'_>) -> usize {
        VALUE_OVERHEAD + payload(v)
    }
    fn push_value(&mut self, v: ValueRef<'_>) {
        self.row.push(to_wit(v));
    }
    fn end_row(&mut self) {
        self.rows.push(std::mem::take(&mut self.row));
    }
}

struct PackedRows(strata_wire::Encoder);

impl Sink for PackedRows {
    fn row_overhead(&self) -> usize {
        0
    }
    fn value_size(&self, v: ValueRef<'_>) -> usize {
        9 + payload(v)
    }
    fn push_value(&mut self, v: ValueRef<'_>) {
        encode(&mut self.0, v);
    }
    fn end_row(&mut self) {}
}

fn payload(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
        _ => 0,
    }
}

fn owned(v: ValueRef<'_>) -> OwnedValue {
    match v {
        ValueRef::Null => OwnedValue::Null,
        ValueRef::Integer(i) => OwnedValue::Integer(i),
        ValueRef::Real(f) => OwnedValue::Real(f),
        ValueRef::Text(t) => OwnedValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => OwnedValue::Blob(b.to_vec()),
    }
}

fn owned_ref(v: &OwnedValue) -> ValueRef<'_> {
    ValueRef::from(v)
}

/// Why a batch stopped short of what the guest asked for.
enum Stop {
    Sql(rusqlite::Error),
    /// One row alone is larger than the budget.
    TooLarge(usize),
}

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Self {
        Stop::Sql(e)
    }
}

/// Statements up to this long stay in the connection's statement cache (16 of them) between
/// calls; a longer one is prepared for its call only.
const CACHED_STATEMENT_BYTES: usize = 64 << 10;

/// Empties the statement cache after a statement longer than [`CACHED_STATEMENT_BYTES`]: the
/// cache keeps each text twice (its key on the host, SQLite's copy), so 16 long statements
/// would otherwise stay for the rest of the call, outside `memory_mib`.
fn forget_if_long(conn: &Connection, sql: &str) {
    if sql.len() > CACHED_STATEMENT_BYTES {
        conn.flush_prepared_statement_cache();
    }
}

impl sql::Host for HostState<Sqlite> {
    fn execute(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<u64, sql::Error>> {
        self.before(&sql);
        let conn = self.db.session.borrow_owner();
        let r = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| bind_all(&mut stmt, &params).and_then(|()| run(&mut stmt)));
        forget_if_long(conn, &sql);
        Ok(self.written(r))
    }

    fn query(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        self.before(&sql);
        let budget = self.result_budget();
        let conn = self.db.session.borrow_owner();
        let mut out = WitRows::new();
        let r = conn
            .prepare_cached(&sql)
            .map_err(Stop::Sql)
            .and_then(|mut stmt| {
                bind_all(&mut stmt, &params)?;
                let n = stmt.column_count();
                let mut rows = stmt.raw_query();
                let mut used = 0usize;
                // Each value is at most SQLITE_LIMIT_LENGTH, which the sandbox sets to the
                // budget.
                while let Some(row) = rows.next()? {
                    used = used.saturating_add(out.row_size(row, n)?);
                    if used > budget {
                        return Err(Stop::TooLarge(budget));
                    }
                    out.push_row(row, n)?;
                }
                Ok(())
            });
        forget_if_long(conn, &sql);
        if let Some(why) = self.random_rowids() {
            return Ok(Err(sql::Error::Denied(why)));
        }
        Ok(match r {
            Ok(()) => Ok(out.rows),
            Err(Stop::Sql(e)) => Err(self.error(e)),
            Err(Stop::TooLarge(budget)) => {
                drop(out);
                let why = self.over_budget("the result of this `query`", budget);
                Err(self.limit_error(why))
            }
        })
    }

    fn execute_many(
        &mut self,
        sql: String,
        rows: Vec<Vec<sql::Value>>,
    ) -> WResult<Result<u64, sql::Error>> {
        self.before(&sql);
        let conn = self.db.session.borrow_owner();
        let r = conn.prepare_cached(&sql).and_then(|mut stmt| {
            let mut changed = 0;
            for row in &rows {
                bind_all(&mut stmt, row)?;
                changed += run(&mut stmt)?;
            }
            Ok(changed)
        });
        forget_if_long(conn, &sql);
        Ok(self.written(r))
    }

    fn execute_packed(
        &mut self,
        sql: String,
        rows: sql::PackedRows,
    ) -> WResult<Result<u64, sql::Error>> {
        self.before(&sql);
        let conn = self.db.session.borrow_owner();
        let r = conn.prepare_cached(&sql).and_then(|mut stmt| {
            let columns = rows.columns as usize;
            if columns != stmt.parameter_count() {
                return Err(rusqlite::Error::InvalidParameterCount(
                    columns,
                    stmt.parameter_count(),
                ));
            }
            let mut d = strata_wire::Values::new(&rows.data);
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
        forget_if_long(conn, &sql);
        Ok(self.written(r))
    }

    fn open_cursor(
        &mut self,
        sql: String,
        params: Vec<sql::Value>,
    ) -> WResult<Result<Resource<CursorSlot>, sql::Error>> {
        self.before(&sql);
        if let Some(why) = self.db.session.borrow_dependent().full() {
            return Ok(Err(self.limit_error(why)));
        }
        let limiter = &mut self.limiter;
        let opened = self.db.session.with_dependent_mut(|conn, cursors| {
            let mut stmt = conn.prepare(&sql)?;
            bind_all(&mut stmt, &params)?;
            // The names are copied out of SQLite's heap and live as long as the cursor: they
            // count in the component's budget, so open cursors cannot multiply it.
            let size = names_size(stmt.column_names());
            if !limiter.hold(size) {
                return Ok(Err(size));
            }
            let columns = stmt.column_names().map(str::to_string).collect();
            Ok(Ok(cursors.insert(CursorState {
                stmt: Some(stmt),
                columns,
                pending: None,
            })))
        });
        match opened {
            Ok(Ok(index)) => Ok(Ok(self.table.push(CursorSlot(index))?)),
            Ok(Err(size)) => {
                let why = self.over_budget(
                    &format!("this cursor's column names ({size} bytes, kept while it is open)"),
                    self.result_budget(),
                );
                Ok(Err(self.limit_error(why)))
            }
            Err(e) => Ok(Err(self.error(e))),
        }
    }
}

impl HostState<Sqlite> {
    /// Steps a cursor for up to `max` rows (at most [`MAX_ROWS_PER_CALL`]) into `sink`,
    /// stopping early when the next row would not fit in the budget; that row is kept for the
    /// next call. Returns the number of rows.
    fn step_cursor(
        &mut self,
        slot: &Resource<CursorSlot>,
        max: u32,
        sink: &mut impl Sink,
    ) -> WResult<Result<u32, sql::Error>> {
        let index = self.table.get(slot)?.0;
        if let Err(e) = self.no_rows_asked(max) {
            return Ok(Err(e));
        }
        let budget = self.result_budget();
        let max = max.min(MAX_ROWS_PER_CALL);
        let limiter = &mut self.limiter;
        let r = self.db.session.with_dependent_mut(|_, cursors| {
            let Some(cursor) = cursors.get_mut(index) else {
                return Ok(0);
            };
            let mut used = 0usize;
            let mut count = 0;
            if let Some((row, held)) = cursor.pending.take() {
                limiter.release(held);
                used = sink.row_overhead();
                for v in &row {
                    used += sink.value_size(owned_ref(v));
                    sink.push_value(owned_ref(v));
                }
                sink.end_row();
                count += 1;
            }
            let n = cursor.columns.len();
            let Some(stmt) = cursor.stmt.as_mut() else {
                return Ok(count);
            };
            let mut rows = stmt.raw_query();
            while count < max {
                let Some(row) = rows.next()? else {
                    drop(rows);
                    // Exhausted: finalize the statement now rather than at the end of the call.
                    cursor.stmt = None;
                    return Ok(count);
                };
                let size = sink.row_size(row, n)?;
                if used.saturating_add(size) > budget {
                    if count == 0 || size > budget {
                        return Err(Stop::TooLarge(budget));
                    }
                    // Kept on the host until the next call: counted in the budget, so
                    // that many cursors' kept rows cannot multiply it.
                    if !limiter.hold(size) {
                        return Err(Stop::TooLarge(budget));
                    }
                    cursor.pending = Some((
                        (0..n)
                            .map(|i| row.get_ref(i).map(owned))
                            .collect::<rusqlite::Result<_>>()?,
                        size,
                    ));
                    break;
                }
                used += size;
                sink.push_row(row, n)?;
                count += 1;
            }
            // Dropping `Rows` would reset the statement to its first row; the cursor goes on
            // from here at the next call. `Rows` holds only borrows, so nothing leaks.
            std::mem::forget(rows);
            Ok(count)
        });
        if let Some(why) = self.random_rowids() {
            return Ok(Err(sql::Error::Denied(why)));
        }
        Ok(match r {
            Ok(count) => Ok(count),
            Err(Stop::Sql(e)) => Err(self.error(e)),
            Err(Stop::TooLarge(budget)) => {
                let why = self.over_budget("one row of this cursor", budget);
                Err(self.limit_error(why))
            }
        })
    }
}

impl sql::HostCursor for HostState<Sqlite> {
    fn columns(&mut self, slot: Resource<CursorSlot>) -> WResult<Vec<String>> {
        let index = self.table.get(&slot)?.0;
        Ok(self
            .db
            .session
            .borrow_dependent()
            .get(index)
            .map(|c| c.columns.clone())
            .unwrap_or_default())
    }

    fn next(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<Vec<Vec<sql::Value>>, sql::Error>> {
        let mut out = WitRows::new();
        let r = self.step_cursor(&slot, max_rows, &mut out)?;
        Ok(r.map(|_| out.rows))
    }

    fn next_packed(
        &mut self,
        slot: Resource<CursorSlot>,
        max_rows: u32,
    ) -> WResult<Result<sql::PackedRows, sql::Error>> {
        let asked = PackedRequest::of(max_rows);
        let mut out = PackedRows(asked.encoder());
        let columns = {
            let index = self.table.get(&slot)?.0;
            self.db
                .session
                .borrow_dependent()
                .get(index)
                .map_or(0, |c| c.columns.len() as u32)
        };
        let r = self.step_cursor(&slot, asked.max_rows, &mut out)?;
        Ok(r.and_then(|count| asked.batch(columns, count, out.0.take())))
    }

    fn drop(&mut self, slot: Resource<CursorSlot>) -> WResult<()> {
        let CursorSlot(index) = self.table.delete(slot)?;
        let held = self
            .db
            .session
            .with_dependent_mut(|_, cursors| cursors.remove(index).map_or(0, |c| c.held()));
        self.limiter.release(held);
        Ok(())
    }
}

/// The connection settings a component runs under, and the values to put back afterwards.
struct ConnectionSettings {
    defensive: bool,
    length: i32,
}

impl ConnectionSettings {
    /// Defensive mode on (no writable_schema tricks, no shadow-table writes); no string, blob
    /// or row larger than the memory budget; SQLite's heap bounded by what it uses now plus
    /// the budget and some slack for page cache and sorting.
    fn apply(conn: &Connection, memory_mib: u64) -> rusqlite::Result<ConnectionSettings> {
        use rusqlite::config::DbConfig;
        use rusqlite::limits::Limit;
        let budget = memory_mib.saturating_mul(1 << 20);
        let defensive = conn.db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        let length = conn.limit(Limit::SQLITE_LIMIT_LENGTH)?;
        let capped = i32::try_from(budget).unwrap_or(i32::MAX).min(length);
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, capped)?;
        let heap = i64::try_from(budget.saturating_add(SQLITE_HEAP_SLACK)).unwrap_or(i64::MAX);
        heap_claim(heap);
        Ok(ConnectionSettings { defensive, length })
    }

    fn restore(self, conn: &Connection) -> rusqlite::Result<()> {
        use rusqlite::config::DbConfig;
        use rusqlite::limits::Limit;
        heap_release();
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, self.length)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, self.defensive)?;
        Ok(())
    }
}

/// Room SQLite may use beyond the component's budget while it runs: page cache, sorter and
/// the statements of the step.
const SQLITE_HEAP_SLACK: u64 = 64 << 20;

/// SQLite's hard heap limit is process-wide: the components running at once (one per step in
/// the CLI; several in a multi-threaded test) share it. The first sets it, later ones can only
/// raise it, the last one out puts back what was there before.
static HEAP_LIMIT: std::sync::Mutex<HeapLimit> = std::sync::Mutex::new(HeapLimit {
    active: 0,
    saved: 0,
});

struct HeapLimit {
    active: usize,
    saved: i64,
}

/// Raises SQLite's hard heap limit to at least what it uses now plus `extra` bytes (an
/// allocation past it fails as SQLITE_NOMEM, a `limit` error to the component). Returns a
/// claim that [`heap_release`] ends.
fn heap_claim(extra: i64) {
    let mut h = HEAP_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: plain FFI calls on integers; SQLite documents both as thread-safe.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    let wanted = used.saturating_add(extra);
    let current = unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(-1) };
    if h.active == 0 {
        h.saved = current;
        unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(wanted) };
    } else if current != 0 && wanted > current {
        unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(wanted) };
    }
    h.active += 1;
}

/// Ends one component's claim on the heap limit; the last one restores the limit from before.
fn heap_release() {
    let mut h = HEAP_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    h.active = h.active.saturating_sub(1);
    if h.active == 0 {
        // SAFETY: a plain FFI call on an integer.
        unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(h.saved) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::components::bindings::sql::{Host, HostCursor};
    use crate::components::host::MAX_OPEN_CURSORS;

    /// A host state over 50 rows of about 100 KB each, with a budget of `mib`.
    fn state(mib: u64) -> HostState<Sqlite> {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t(i INTEGER, s TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
             INSERT INTO t SELECT i, hex(zeroblob(50000)) FROM n;",
        )
        .unwrap();
        let guard = Guard::install(&mut conn).unwrap();
        HostState::new(
            Sqlite::new(conn, guard, Default::default()),
            mib,
            Arc::new(AtomicU64::new(0)),
        )
    }

    fn open(s: &mut HostState<Sqlite>, sql: &str) -> Resource<CursorSlot> {
        s.open_cursor(sql.into(), Vec::new()).unwrap().unwrap()
    }

    fn borrow(c: &Resource<CursorSlot>) -> Resource<CursorSlot> {
        Resource::new_borrow(c.rep())
    }

    #[test]
    fn cursor_batches_stop_at_the_budget_and_lose_no_row() {
        let mut s = state(1);
        let cursor = open(&mut s, "SELECT i, s FROM t ORDER BY i");
        let mut seen = Vec::new();
        let mut batches = 0;
        loop {
            let batch = s.next(borrow(&cursor), 4_000_000).unwrap().unwrap();
            if batch.is_empty() {
                break;
            }
            batches += 1;
            assert!(
                batch.len() < 11,
                "{} rows of 100 KB in a 1 MiB budget",
                batch.len()
            );
            for row in batch {
                match row[0] {
                    sql::Value::Integer(i) => seen.push(i),
                    _ => panic!("not an integer"),
                }
            }
        }
        assert_eq!(seen, (1..=50).collect::<Vec<_>>());
        assert!(batches >= 5);
        assert!(s.limit.is_none());
    }

    #[test]
    fn packed_batches_stop_at_the_budget_and_lose_no_row() {
        let mut s = state(1);
        let cursor = open(&mut s, "SELECT i, s FROM t ORDER BY i");
        let mut rows = 0;
        loop {
            let batch = s.next_packed(borrow(&cursor), 1_000).unwrap().unwrap();
            if batch.count == 0 {
                break;
            }
            assert!(batch.data.len() <= 1 << 20);
            rows += batch.count;
        }
        assert_eq!(rows, 50);
    }

    #[test]
    fn a_cursor_asked_by_column_gives_the_same_rows_laid_out_by_column() {
        let mut s = state(64);
        let by_row = open(&mut s, "SELECT i, s, NULL FROM t ORDER BY i");
        let by_column = open(&mut s, "SELECT i, s, NULL FROM t ORDER BY i");
        loop {
            let rows = s.next_packed(borrow(&by_row), 7).unwrap().unwrap();
            let columns = s
                .next_packed(borrow(&by_column), 7 | strata_wire::COLUMNS_FLAG)
                .unwrap()
                .unwrap();
            assert_eq!((rows.columns, rows.count), (columns.columns, columns.count));
            if rows.count == 0 {
                assert!(columns.data.is_empty());
                break;
            }
            assert_eq!(columns.data[0], strata_wire::COLUMNS);
            // The integers and the texts as blocks; the nulls value by value.
            assert_eq!(columns.data[9], strata_wire::INTEGER);
            let (mut a, mut b) = (
                strata_wire::Values::new(&rows.data),
                strata_wire::Values::new(&columns.data),
            );
            for _ in 0..rows.count * 3 {
                assert_eq!(a.next_value().unwrap(), b.next_value().unwrap());
            }
            assert!(a.is_done() && b.is_done());
        }
        // And written back by column, through the same door as by row.
        let mut e = strata_wire::Encoder::new();
        for i in [1, 2] {
            e.text("x");
            e.integer(i);
        }
        let data = strata_wire::to_columns(e.as_bytes(), 2, 2).unwrap();
        let changed = s
            .execute_packed(
                "UPDATE t SET s = ? WHERE i = ?".into(),
                sql::PackedRows {
                    columns: 2,
                    count: 2,
                    data,
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(changed, 2);
        let conn = s.db.session.borrow_owner();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE s = 'x'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_row_larger_than_the_budget_is_a_limit_error() {
        let mut s = state(1);
        s.limiter.total = 900 << 10;
        let cursor = open(&mut s, "SELECT s || s FROM t");
        let r = s.next(borrow(&cursor), 10).unwrap();
        assert!(matches!(r, Err(sql::Error::Limit(_))), "{r:?}");
        let why = s.limit.clone().unwrap();
        assert!(
            why.contains("one row") && why.contains("memory_mib = 1 "),
            "{why}"
        );
    }

    #[test]
    fn a_query_past_the_budget_is_a_limit_error_that_sticks() {
        let mut s = state(1);
        let r = s.query("SELECT s FROM t".into(), Vec::new()).unwrap();
        assert!(matches!(r, Err(sql::Error::Limit(_))), "{r:?}");
        assert!(s.limit.as_deref().unwrap().contains("open-cursor"));
        let mut s = state(64);
        let rows = s
            .query("SELECT s FROM t".into(), Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(rows.len(), 50);
    }

    #[test]
    fn what_open_cursors_keep_on_the_host_counts_in_the_budget() {
        // Column names are copied out of SQLite's heap and live as long as the cursor, even
        // once its statement is finalized: eight names of 200 KB each are 1.6 MB per cursor.
        let name = "n".repeat(200_000);
        let columns = (0..8)
            .map(|i| format!("{i} AS \"{name}{i}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {columns}");
        let mut s = state(4);
        let first = open(&mut s, &sql);
        let second = open(&mut s, &sql);
        let r = s.open_cursor(sql.clone(), Vec::new()).unwrap();
        assert!(matches!(r, Err(sql::Error::Limit(_))), "{r:?}");
        let why = s.limit.take().unwrap();
        assert!(
            why.contains("column names") && why.contains("memory_mib = 4 "),
            "{why}"
        );
        // Dropped, a cursor gives its share back.
        HostCursor::drop(&mut s, first).unwrap();
        let third = open(&mut s, &sql);
        HostCursor::drop(&mut s, second).unwrap();
        HostCursor::drop(&mut s, third).unwrap();
        assert_eq!(s.result_budget(), 4 << 20);
        // A row kept for the next batch (it did not fit in this one) counts too.
        let mut s = state(1);
        let before = s.result_budget();
        let cursor = open(&mut s, "SELECT s FROM t ORDER BY i");
        let batch = s.next(borrow(&cursor), 1_000).unwrap().unwrap();
        assert!(!batch.is_empty() && batch.len() < 50, "{}", batch.len());
        assert!(before - s.result_budget() > 100_000);
        HostCursor::drop(&mut s, cursor).unwrap();
        assert_eq!(s.result_budget(), before);
    }

    #[test]
    fn a_cursor_asked_for_no_rows_says_so_rather_than_seem_exhausted() {
        use crate::components::bindings::sql::HostCursor as _;
        let mut s = state(64);
        let cursor = open(&mut s, "SELECT i FROM t ORDER BY i");
        // 2^31 alone is the column-layout flag with a count of 0.
        for asked in [0, strata_wire::COLUMNS_FLAG] {
            let r = s.next_packed(borrow(&cursor), asked).unwrap();
            assert!(
                matches!(&r, Err(sql::Error::Other(m)) if m.contains("asked for 0 rows")),
                "{asked}: {r:?}"
            );
        }
        assert!(s.next(borrow(&cursor), 0).unwrap().is_err());
        // The cursor is where it was: every row still comes.
        let packed = s
            .next_packed(borrow(&cursor), strata_wire::COLUMNS_FLAG | 100)
            .unwrap()
            .unwrap();
        assert_eq!(packed.count, 50);
    }

    #[test]
    fn long_statements_are_not_kept_in_the_statement_cache() {
        use crate::components::bindings::sql::Host as _;
        let mut s = state(64);
        // SAFETY: a plain FFI call; SQLite's heap is process-wide, so other tests move it too:
        // the bound below is far from what keeping the texts would add.
        let used = || unsafe { rusqlite::ffi::sqlite3_memory_used() };
        let before = used();
        for i in 0..16 {
            let sql = format!("SELECT {i} /* {} */", "x".repeat(2 << 20));
            assert_eq!(s.query(sql, Vec::new()).unwrap().unwrap().len(), 1);
        }
        // Kept, the 16 texts would hold 32 MB of SQLite's heap (and as much on the host).
        assert!(used() - before < 8 << 20, "{}", used() - before);
    }

    #[test]
    fn open_cursors_are_capped_and_dropped_slots_reused() {
        let mut s = state(64);
        let cursors: Vec<_> = (0..MAX_OPEN_CURSORS)
            .map(|_| open(&mut s, "SELECT 1"))
            .collect();
        let r = s.open_cursor("SELECT 1".into(), Vec::new()).unwrap();
        assert!(matches!(r, Err(sql::Error::Limit(_))));
        let mut s = state(64);
        drop(cursors);
        for _ in 0..(3 * MAX_OPEN_CURSORS) {
            let c = open(&mut s, "SELECT 1");
            HostCursor::drop(&mut s, c).unwrap();
        }
        assert_eq!(s.db.session.borrow_dependent().slots(), 1);
    }
}
