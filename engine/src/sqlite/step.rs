//! One migration applied to one database, in one transaction: `do.sql`, `transform.wasm`, test
//! data (`data.json`, then `seed.wasm`; test database only), project data (the same), `checks.sql`,
//! `check.wasm`, `PRAGMA foreign_key_check`, the ledger row.
//!
//! Foreign-key enforcement is off around the transaction (SQLite ignores the pragma inside one)
//! so table rebuilds work; the foreign-key check before commit keeps them honest. A failure rolls
//! the whole step back, and its audit rows are written after the rollback, so the log survives
//! the failure it records. The transaction is opened and closed with plain statements because a
//! component call takes the connection into its store for a while (see `sandbox`). Every step
//! starts from the same connection state: one that changed connection-level settings (the guard
//! sees every PRAGMA, ATTACH and temp object) leaves a fresh connection behind. This module
//! runs one step; ordering and phases belong to `migrator`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::components::Sandbox;
use crate::components::limits::Limits;
use crate::core::data::DataSet;
use crate::core::error::{DbCode, Error};
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::input::Dialect;
use crate::core::ledger::Entry;
use crate::core::step::{
    ActionError, Applied, Commit, Done, Prepared, StepDriver, UndoDriver, UndoError, component,
};
use crate::core::tree::{Migration, MigrationId};
use crate::sqlite::guard::{Guard, Mode};
use crate::sqlite::ledger;
use crate::sqlite::{self, Located, Script, ScriptText};

use crate::core::step::SHOWN_ROWS;

/// What a step runs with besides its own files.
pub struct Context<'a> {
    pub db: &'a Path,
    pub phase: Phase,
    /// Whether steps load their `test-data/`.
    pub test_data: bool,
    /// Needed when the step has components.
    pub sandbox: Option<&'a Sandbox>,
    /// The project's ceiling for component limits.
    pub limits: Limits,
    /// Write a missing `schema.sql` (and LATEST) from the database after each step.
    pub write_snapshots: bool,
    /// The project's databases, which the step's scripts may not attach (see
    /// `crate::sqlite::guard::Guard::set_own_files`).
    pub own: Option<std::sync::Arc<crate::core::identity::Reserved>>,
}

/// What a phase keeps between its steps on one connection, so that a step's bookkeeping costs
/// the same at the 5,000th step as at the first: ownership from the objects that changed
/// (`schema::owner::Tracker`) and the ledger read once (`ledger::Known`).
#[derive(Debug, Default)]
pub struct Session {
    pub owners: crate::sqlite::schema::owner::Tracker,
    pub ledger: ledger::Known,
    /// The caller opened one transaction for the whole phase: each step is a savepoint in it,
    /// and a failed step rolls back the whole transaction.
    pub single_transaction: bool,
    /// With `single_transaction`: the bookkeeping the caller wrote inside the phase's
    /// transaction, written again with the failure's audit rows after a rollback (taken then).
    pub replay: Option<ledger::Replay>,
    /// With `single_transaction`: the ledger and audit rows of the steps applied so far, written
    /// by [`flush`] just before the phase commits (a few prepared statements for the whole
    /// phase instead of a few per step, each re-prepared after every schema change).
    pub deferred: Deferred,
    /// The foreign-key violations the database had before the current step (read before the
    /// phase's first step, then kept from each step's check): a step fails only on violations
    /// it adds. `None` until read.
    pub fk_before: Option<Violations>,
    /// The phase's backup while its `integrity_check` runs, with its audit row: the first step
    /// waits for the check before it commits (and fails with the backup's error if the check
    /// does), and writes that row in its own transaction, before its own rows.
    pub backup: Option<(crate::sqlite::backup::Pending, Entry)>,
    /// With `single_transaction`: a component ran on the phase's connection, so its date and
    /// time functions are strata's replacements (`sqlite::clock`) for the rest of the phase.
    pub clock_replaced: bool,
}

/// Rows `PRAGMA foreign_key_check` reports, counted by (table, rowid, parent): a `WITHOUT
/// ROWID` table reports no rowid, so one key can stand for several rows.
pub type Violations = std::collections::HashMap<(String, Option<i64>, String), usize>;

/// Bookkeeping rows kept until the end of a phase in one transaction.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Ownership changes (`strata_object`), in order; written earlier when a step could read
    /// the table (its SQL names it, or it compares a snapshot).
    objects: Vec<crate::sqlite::schema::owner::Write>,
    records: Vec<crate::core::ledger::Record>,
    /// Audit entries, with when they happened.
    audit: Vec<(String, Vec<Entry>)>,
}

/// Writes the bookkeeping rows the steps of a phase in one transaction deferred (see
/// [`Session::deferred`]); call it inside that transaction, before it commits.
pub fn flush(conn: &Connection, session: &mut Session) -> rusqlite::Result<()> {
    let deferred = std::mem::take(&mut session.deferred);
    crate::sqlite::schema::owner::write(conn, &deferred.objects)?;
    ledger::write_records(conn, &deferred.records)?;
    for (at, entries) in &deferred.audit {
        ledger::append_at(conn, at, entries)?;
    }
    Ok(())
}

impl Session {
    fn forget(&mut self) {
        self.owners.invalidate();
        self.ledger.invalidate();
        self.deferred = Deferred::default();
        self.fk_before = None;
    }
}

/// The savepoint a step runs in under `--single-transaction`.
const SAVEPOINT: &str = "strata_step";

/// A statement's place as a failure names it.
fn located(at: Located) -> Option<(usize, String)> {
    Some((at.line, at.text))
}

/// Applies one prepared migration to `conn`.
/// With `session.single_transaction`, the caller has opened the transaction and switched
/// foreign keys off; the step runs in a savepoint, and a failure rolls back the whole
/// transaction before its audit rows are written.
pub fn apply(
    conn: &mut Connection,
    ctx: &Context<'_>,
    session: &mut Session,
    step: &Prepared,
    events: &mut EventSink<'_>,
) -> Result<Applied, Error> {
    let db = ctx.db;
    let fk_was_on = if session.single_transaction {
        None
    } else {
        let on = sqlite::foreign_keys(conn)
            .map_err(|e| Error::db(db, "cannot read PRAGMA foreign_keys", e))?;
        sqlite::set_foreign_keys(conn, false)
            .map_err(|e| Error::db(db, "cannot switch foreign keys off", e))?;
        Some(on)
    };
    let guard =
        Guard::install(conn).map_err(|e| Error::db(db, "cannot install the SQL guard", e))?;
    if let Some(own) = &ctx.own {
        guard.set_own_files(own.clone());
    }

    let result = apply_in_transaction(conn, ctx, session, step, &guard, events);
    if result.is_err() {
        session.forget();
    }

    let restored = Guard::uninstall(conn).and_then(|()| match fk_was_on {
        Some(on) => sqlite::set_foreign_keys(conn, on),
        None => Ok(()),
    });
    // A step that changed the connection itself (a PRAGMA, an attached database, a temp
    // object) hands the next step a fresh connection, so every step starts from the same
    // state whatever ran before it; the others keep theirs, which costs nothing. In one
    // transaction for the whole phase there is no fresh connection to hand over: refuse, and
    // the phase rolls back.
    // A component's step leaves strata's date and time functions on the connection
    // (`sqlite::clock`): the next step gets a fresh one, whose functions are SQLite's own.
    // In one transaction, later scripts that would put them into the schema are refused.
    let reopened = if !guard.touched_connection() && !guard.clock_hidden() {
        Ok(())
    } else if session.single_transaction && !guard.touched_connection() {
        session.clock_replaced = true;
        Ok(())
    } else if session.single_transaction {
        Err(Error::Usage(format!(
            "{}: changes the connection itself (a PRAGMA, an attached database or a temp \
             object), so later steps would run under it; with --single-transaction every step \
             shares one connection, so run this phase without --single-transaction (nothing \
             was applied)",
            step.migration
        )))
    } else {
        // What the session trusts about the ledger is tied to the old connection.
        session.forget();
        conn.pragma_query_value(None, "busy_timeout", |row| row.get::<_, i64>(0))
            .map_err(|e| Error::db(db, "cannot read PRAGMA busy_timeout", e))
            .and_then(|busy_ms| sqlite::open(db, Duration::from_millis(busy_ms.max(0) as u64)))
            .map(|fresh| *conn = fresh)
    };
    let applied = result?;
    restored.map_err(|e| Error::db(db, "cannot restore PRAGMA foreign_keys", e))?;
    reopened?;
    Ok(applied)
}

/// Rolls back whatever transaction is open on `conn`.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        // If even ROLLBACK fails, closing the connection rolls back; nothing was committed.
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn apply_in_transaction(
    conn: &mut Connection,
    ctx: &Context<'_>,
    session: &mut Session,
    step: &Prepared,
    guard: &Guard,
    events: &mut EventSink<'_>,
) -> Result<Applied, Error> {
    let mut driver = SqliteStep {
        conn,
        ctx,
        session,
        guard,
        fk_after: None,
        owned: None,
    };
    crate::core::step::apply(&mut driver, ctx.phase, step, ctx.test_data, events)
}

/// One step on a SQLite connection, for the shared algorithm (`crate::core::step::apply`):
/// the step's transaction (or savepoint), the ownership tracker and the foreign-key
/// violations it keeps between steps, and the SQL guard its scripts run under.
struct SqliteStep<'a, 'c> {
    conn: &'a mut Connection,
    ctx: &'a Context<'c>,
    session: &'a mut Session,
    guard: &'a Guard,
    /// What the step's foreign-key check found: what the next step starts from once this one
    /// is committed.
    fk_after: Option<Violations>,
    /// What the step changed in who owns what, for the tracker once the step is committed.
    owned: Option<crate::sqlite::schema::owner::Change>,
}

impl StepDriver for SqliteStep<'_, '_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    /// `PRAGMA foreign_key_check` after the step's own actions, with foreign keys off around
    /// its transaction.
    const FOREIGN_KEY_CHECK: bool = true;

    fn db(&self) -> PathBuf {
        self.ctx.db.to_path_buf()
    }

    fn begin(&mut self, step: &Prepared) -> Result<(), Error> {
        let begin = if self.session.single_transaction {
            self.conn.prepare_cached(&format!("SAVEPOINT {SAVEPOINT}"))
        } else {
            self.conn.prepare_cached("BEGIN IMMEDIATE")
        };
        begin
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| {
                Error::db(
                    self.ctx.db,
                    format!("cannot begin the transaction for {}", step.migration),
                    e,
                )
            })
    }

    fn is_applied(&mut self, step: &Prepared) -> Result<bool, Error> {
        self.session
            .ledger
            .is_applied(self.conn, &step.migration.id)
            .map_err(|e| Error::db(self.ctx.db, "cannot read the ledger", e))
    }

    fn skip(&mut self) {
        if self.session.single_transaction {
            let _ = self.conn.execute_batch(&format!("RELEASE {SAVEPOINT}"));
        } else {
            rollback(self.conn);
        }
    }

    fn before_actions(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<(), Error> {
        let (conn, db, session) = (&*self.conn, self.ctx.db, &mut *self.session);
        // Ownership: what the step creates becomes its module's (see schema::owner).
        session
            .owners
            .begin(conn, &mut session.deferred.objects)
            .map_err(|e| Error::db(db, "cannot read sqlite_master", e))?;
        // The foreign-key violations from before the run, if any, are not this step's.
        if session.fk_before.is_none() {
            let before = violations(conn)
                .map_err(|e| Error::db(db, "cannot run PRAGMA foreign_key_check", e))?;
            if !before.is_empty() {
                events(&Event::Warning(format!(
                    "{}: {}\nThey were there before this run: a step fails only for \
                     violations it adds. Fix or delete those rows to be rid of them.",
                    db.display(),
                    describe_violations(&before)
                )));
            }
            session.fk_before = Some(before);
        }
        // SQL that names strata_object reads the ownership of the steps before it.
        if !session.deferred.objects.is_empty() && step.names_ownership() {
            let pending = std::mem::take(&mut session.deferred.objects);
            crate::sqlite::schema::owner::write(conn, &pending)
                .map_err(|e| Error::db(db, "cannot record the objects' owners", e))?;
        }
        self.guard.take_touched();
        Ok(())
    }

    fn run_action(
        &mut self,
        step: &Prepared,
        action: Action,
        events: &mut EventSink<'_>,
    ) -> Result<Done, ActionError> {
        if action == Action::ForeignKeyCheck {
            let before = self.session.fk_before.get_or_insert_default();
            self.fk_after = Some(foreign_key_check(self.conn, before)?);
            return Ok(Done {
                rows: 0,
                fuel: None,
            });
        }
        if action == Action::DoSql
            && self.session.clock_replaced
            && let Some((function, line)) = crate::sqlite::clock::in_schema_text(&step.do_sql)
        {
            return Err(ActionError::new(
                Some(step.migration.file("do.sql")),
                None,
                format!(
                    "line {line}: defines a table or index that names {function}() after a \
                     component ran earlier in this --single-transaction phase: on that \
                     connection the date and time functions are strata's (they hide the clock \
                     from components) and stay for the whole transaction, so SQLite's own \
                     refusal of 'now', 'localtime' and 'utc' in index expressions, generated \
                     columns and CHECK constraints could not run; run this phase without \
                     --single-transaction (each step after a component then gets a fresh \
                     connection with SQLite's own functions)"
                ),
            ));
        }
        run_action(self.conn, self.ctx, step, action, self.guard, events)
    }

    /// Records what the step created, then compares the module's schema with the step's
    /// `schema.sql` (or takes it, to write after the commit).
    fn after_actions(&mut self, step: &Prepared) -> Result<Option<String>, (Action, ActionError)> {
        let (conn, ctx, session) = (&*self.conn, self.ctx, &mut *self.session);
        let m = &step.migration;
        let mut owned = session
            .owners
            .record(conn, &m.id, &self.guard.take_touched())
            .map_err(recording)?;
        // In one transaction for the phase, the ownership rows wait for the phase's end like
        // the ledger's, unless this step compares or writes a snapshot, which reads them.
        let reads_ownership = step.snapshot.is_some() || ctx.write_snapshots;
        if session.single_transaction && !reads_ownership {
            session.deferred.objects.append(&mut owned.writes);
        } else {
            let mut writes = std::mem::take(&mut session.deferred.objects);
            writes.append(&mut owned.writes);
            crate::sqlite::schema::owner::write(conn, &writes).map_err(recording)?;
        }
        self.owned = Some(owned);
        let snapshot_file = m.file(crate::core::design::SNAPSHOT);
        let failed = |message: String| {
            (
                Action::Snapshot,
                ActionError::new(Some(snapshot_file.clone()), None, message),
            )
        };
        let schema_error = |e: crate::sqlite::schema::SchemaError| failed(e.to_string());
        match &step.snapshot {
            Some(expected) => {
                let difference =
                    crate::sqlite::schema::compare_module(conn, &m.id.module, expected)
                        .map_err(schema_error)?;
                if difference.is_empty() {
                    Ok(None)
                } else {
                    Err(failed(crate::core::design::snapshot_differs(
                        &m.id.module,
                        &difference.to_string(),
                    )))
                }
            }
            None if ctx.write_snapshots => crate::sqlite::schema::dump_module(conn, &m.id.module)
                .map(Some)
                .map_err(schema_error),
            None => Ok(None),
        }
    }

    fn commit(&mut self, step: &Prepared, log: &[Entry], elapsed: Duration) -> Result<(), Commit> {
        let (conn, session) = (&*self.conn, &mut *self.session);
        let m = &step.migration;
        let failed = |e| Commit::Failed(Action::Record, recording(e).1);
        if let Some((pending, entry)) = session.backup.take() {
            // The run fails as it did when the check came first: the step is rolled back.
            pending.wait().map_err(Commit::Locked)?;
            ledger::append(conn, std::slice::from_ref(&entry)).map_err(failed)?;
        }
        let row =
            crate::core::ledger::Record::of(m, step.checksum.clone(), elapsed.as_millis() as u64);
        if session.single_transaction {
            session.deferred.records.push(row);
            session
                .deferred
                .audit
                .push((crate::core::ledger::now_rfc3339(), log.to_vec()));
        } else {
            ledger::write_records(conn, &[row])
                .and_then(|()| ledger::append(conn, log))
                .map_err(failed)?;
        }
        let end = if session.single_transaction {
            conn.prepare_cached(&format!("RELEASE {SAVEPOINT}"))
        } else {
            conn.prepare_cached("COMMIT")
        };
        match end.and_then(|mut s| s.execute([])) {
            Ok(_) => {
                if let Some(owned) = self.owned.take() {
                    session.owners.commit(owned);
                }
                session.ledger.applied(&m.id);
                // What the committed step left is what the next one starts from.
                if let Some(after) = self.fk_after.take() {
                    session.fk_before = Some(after);
                }
                Ok(())
            }
            Err(e) if sqlite::is_busy(&e) => {
                Err(Commit::Locked(Error::db(self.ctx.db, "cannot commit", e)))
            }
            Err(e) => Err(failed(e)),
        }
    }

    fn rollback(&mut self) {
        rollback(self.conn);
    }

    fn audit_failure(&mut self, log: &[Entry]) -> Result<(), String> {
        let replay = self.session.replay.take();
        // The phase's backup, if its check passes, is audited before the failure.
        let backup = self
            .session
            .backup
            .take()
            .and_then(|(pending, entry)| pending.wait().ok().map(|_| entry));
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                if let Some(r) = &replay {
                    r.write(&tx)?;
                }
                if let Some(entry) = &backup {
                    ledger::append(&tx, std::slice::from_ref(entry))?;
                }
                ledger::append(&tx, log).and_then(|()| tx.commit())
            })
            .map_err(|e| e.to_string())
    }
}

/// A failure to record the step.
fn recording(e: rusqlite::Error) -> (Action, ActionError) {
    (
        Action::Record,
        ActionError::new(None, None, format!("recording the step failed: {e}")),
    )
}

/// Runs one action.
fn run_action(
    conn: &mut Connection,
    ctx: &Context<'_>,
    step: &Prepared,
    action: Action,
    guard: &Guard,
    events: &mut EventSink<'_>,
) -> Result<Done, ActionError> {
    let m = &step.migration;
    let sql = |rows| Ok(Done { rows, fuel: None });
    match action {
        Action::DoSql => {
            guard.set_mode(Mode::Script);
            let probes = Probes {
                step,
                phase: ctx.phase,
                events,
            };
            let result = run_script(conn, &m.file("do.sql"), &step.do_sql, guard, Some(probes));
            guard.set_mode(Mode::Host);
            sql(result?)
        }
        Action::TestData => sql(insert(conn, step.test_data.as_ref())?),
        Action::ProjData => sql(insert(conn, step.proj_data.as_ref())?),
        Action::Checks => {
            guard.set_mode(Mode::Script);
            let result = run_checks(
                conn,
                &m.file("checks.sql"),
                step.checks.as_deref().unwrap_or(""),
                guard,
            );
            guard.set_mode(Mode::Host);
            sql(result?)
        }
        Action::Transform | Action::TestSeed | Action::ProjSeed | Action::CheckComponent => {
            component(
                ctx.sandbox,
                &ctx.limits,
                step,
                action,
                events,
                |sandbox, call| sandbox.call(conn, guard, call),
            )
            .map_err(|(path, message)| ActionError::new(Some(path), None, message))
        }
        Action::ForeignKeyCheck | Action::Snapshot | Action::Record | Action::Undo => sql(0),
    }
}

fn sql_error(file: &Path, at: Located, e: rusqlite::Error, guard: &Guard) -> ActionError {
    let code = DbCode::of_sqlite(&e);
    let message = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) => {
            guard.take_denied().unwrap_or_else(|| e.to_string())
        }
        // SQLite's parse errors carry the rest of the script (and the NUL strata ends it with);
        // the statement is shown on its own line already, so only SQLite's message is kept.
        _ => match e {
            rusqlite::Error::SqlInputError { msg, .. } => msg,
            e => e.to_string(),
        },
    };
    ActionError {
        code,
        ..ActionError::new(Some(file.to_path_buf()), located(at), message)
    }
}

/// A step's probes ([`crate::core::step::Probe`]) and where to say what they counted.
struct Probes<'s, 'e, 'f> {
    step: &'s Prepared,
    phase: Phase,
    events: &'e mut EventSink<'f>,
}

impl Probes<'_, '_, '_> {
    /// Before the `index`th statement, at `line`: counts the rows of each table a probe names
    /// there. A table that cannot be read (not there, refused) is not counted; nothing the
    /// step does depends on it.
    fn before(&mut self, conn: &Connection, guard: &Guard, index: usize, line: usize) {
        for p in crate::core::step::probes_at(self.step, self.phase, index, line) {
            let sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {})",
                crate::core::sql::sqlite::quote_ident(&p.table),
                crate::core::step::PROBE_LIMIT
            );
            match conn.query_row(&sql, [], |r| r.get::<_, i64>(0)) {
                Ok(rows) => (self.events)(&Event::TableRows {
                    phase: self.phase,
                    migration: &self.step.migration,
                    index,
                    line,
                    table: &p.table,
                    rows: rows.max(0) as u64,
                }),
                Err(_) => {
                    guard.take_denied();
                }
            }
        }
    }
}

fn run_script(
    conn: &Connection,
    file: &Path,
    sql: &str,
    guard: &Guard,
    mut probes: Option<Probes<'_, '_, '_>>,
) -> Result<u64, ActionError> {
    let before = conn.total_changes();
    let text = ScriptText::new(sql);
    let mut script = Script::new(conn, &text);
    let mut index = 0;
    loop {
        index += 1;
        let (mut stmt, at) = match script.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err((at, e)) => return Err(sql_error(file, at, e, guard).at_index(index)),
        };
        if stmt.parameter_count() > 0 {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                located(at),
                "the statement has parameters (?, :name), but a script has no values to bind; \
                 write the values into the SQL",
            )
            .at_index(index));
        }
        if let Some(probes) = probes.as_mut() {
            probes.before(conn, guard, index, at.line);
        }
        let mut rows = stmt.raw_query();
        loop {
            match rows.next() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(sql_error(file, at, e, guard).at_index(index)),
            }
        }
        drop(rows);
        if let Err(message) = crate::sqlite::guard::script_triggers(conn, guard) {
            return Err(
                ActionError::new(Some(file.to_path_buf()), located(at), message).at_index(index),
            );
        }
    }
    Ok(conn.total_changes() - before)
}

fn insert(conn: &Connection, data: Option<&DataSet>) -> Result<u64, ActionError> {
    let Some(data) = data else { return Ok(0) };
    data.insert(conn).map_err(|e| {
        ActionError::new(
            Some(data.path.clone()),
            None,
            format!("table `{}`, row {}: {}", e.table, e.row, e.source),
        )
    })
}

/// Runs each query of checks.sql; any row returned is a violation.
fn run_checks(
    conn: &Connection,
    file: &Path,
    sql: &str,
    guard: &Guard,
) -> Result<u64, ActionError> {
    let text = ScriptText::new(sql);
    let mut script = Script::new(conn, &text);
    let mut count = 0;
    loop {
        let (mut stmt, at) = match script.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err((at, e)) => return Err(sql_error(file, at, e, guard)),
        };
        if !stmt.readonly() {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                located(at),
                "checks.sql holds only queries, and this statement writes; move it to do.sql",
            ));
        }
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut rows = stmt.raw_query();
        let mut shown = Vec::new();
        let mut violations = 0usize;
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    violations += 1;
                    if shown.len() < SHOWN_ROWS {
                        shown.push(describe_row(row, &names));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(sql_error(file, at, e, guard)),
            }
        }
        if violations > 0 {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                located(at),
                crate::core::step::violating_rows(violations, &shown),
            ));
        }
        count += 1;
    }
    Ok(count)
}

fn describe_row(row: &rusqlite::Row<'_>, names: &[String]) -> String {
    let cols: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let value = match row.get_ref(i) {
                Ok(ValueRef::Null) => "NULL".to_string(),
                Ok(ValueRef::Integer(n)) => n.to_string(),
                Ok(ValueRef::Real(f)) => f.to_string(),
                Ok(ValueRef::Text(t)) => format!("'{}'", String::from_utf8_lossy(t)),
                Ok(ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                Err(_) => "?".to_string(),
            };
            format!("{name}={value}")
        })
        .collect();
    format!("{{{}}}", cols.join(", "))
}

/// Every violation `PRAGMA foreign_key_check` reports now.
fn violations(conn: &Connection) -> rusqlite::Result<Violations> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut found = Violations::new();
    while let Some(row) = rows.next()? {
        *found
            .entry((row.get(0)?, row.get(1)?, row.get(2)?))
            .or_default() += 1;
    }
    Ok(found)
}

/// "N foreign-key violation(s):" and the first few, one a line.
fn describe_violations(found: &Violations) -> String {
    let mut keys: Vec<&(String, Option<i64>, String)> = found.keys().collect();
    keys.sort();
    let count: usize = found.values().sum();
    let shown: Vec<String> = keys
        .iter()
        .take(SHOWN_ROWS)
        .map(|(table, rowid, parent)| {
            format!(
                "`{table}` row {} references a missing row of `{parent}`",
                rowid.map_or("?".into(), |r| r.to_string())
            )
        })
        .collect();
    format!(
        "{count} foreign-key violation{}:\n{}{}",
        if count == 1 { "" } else { "s" },
        shown.join("\n"),
        if keys.len() > shown.len() {
            "\n..."
        } else {
            ""
        }
    )
}

/// `PRAGMA foreign_key_check` after a step: fails on a violation the step added to `before`
/// (those the database had before are not the step's); on success returns what it found.
fn foreign_key_check(conn: &Connection, before: &Violations) -> Result<Violations, ActionError> {
    let now = violations(conn).map_err(|e| {
        ActionError::new(None, None, format!("PRAGMA foreign_key_check failed: {e}"))
    })?;
    let added: Violations = now
        .iter()
        .filter_map(|(k, n)| {
            let earlier = before.get(k).copied().unwrap_or(0);
            (*n > earlier).then(|| (k.clone(), n - earlier))
        })
        .collect();
    if added.is_empty() {
        return Ok(now);
    }
    let earlier: usize = before.values().sum();
    Err(ActionError::new(
        None,
        None,
        format!(
            "PRAGMA foreign_key_check after the step found {}{}",
            describe_violations(&added),
            if earlier > 0 {
                format!("\n(besides {earlier} from before this run, which are not the step's)")
            } else {
                String::new()
            }
        ),
    ))
}

/// `strata undo` on SQLite after the backup: each of `steps` in a transaction of its own (see
/// `crate::core::step::undo_all`): `undo.sql` under the same guard as `do.sql` (no transaction
/// statements, no writes to strata's tables, no attached database), with foreign keys off and
/// checked afterwards (a violation the script adds fails it), then the migration's ledger row
/// and the owners of objects that are gone are removed, and the audit row written.
pub(crate) fn undo_all(
    conn: &mut Connection,
    db: &Path,
    phase: Phase,
    steps: &[crate::core::backend::UndoStep<'_>],
    backup: Option<PathBuf>,
) -> Result<crate::core::backend::Undone, Error> {
    let fk_was_on = sqlite::foreign_keys(conn)
        .map_err(|e| Error::db(db, "cannot read PRAGMA foreign_keys", e))?;
    sqlite::set_foreign_keys(conn, false)
        .map_err(|e| Error::db(db, "cannot switch foreign keys off", e))?;
    let guard =
        Guard::install(conn).map_err(|e| Error::db(db, "cannot install the SQL guard", e))?;
    // undo.sql takes back this database's step: it may not open another database, whose
    // changes neither the undo's transaction nor its backup would cover.
    let attached = conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0);
    let mut driver = SqliteUndo {
        conn,
        db,
        guard: &guard,
    };
    let result = crate::core::step::undo_all(&mut driver, phase, steps, backup);
    let restored = Guard::uninstall(conn)
        .and_then(|()| sqlite::set_foreign_keys(conn, fk_was_on))
        .and_then(|()| match attached {
            Ok(was) => conn
                .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, was)
                .map(|_| ()),
            Err(e) => Err(e),
        });
    let undone = result?;
    restored.map_err(|e| Error::db(db, "cannot restore the connection after undo.sql", e))?;
    Ok(undone)
}

/// One undo on a SQLite connection, for the shared algorithm (`crate::core::step::undo`),
/// with foreign keys off and the guard installed around it.
struct SqliteUndo<'a> {
    conn: &'a mut Connection,
    db: &'a Path,
    guard: &'a Guard,
}

/// An undo's failure at `what`.
fn undo_failed(what: &str) -> impl Fn(rusqlite::Error) -> UndoError + '_ {
    move |e| UndoError::Failed(ActionError::new(None, None, format!("{what}: {e}")))
}

impl UndoDriver for SqliteUndo<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn db(&self) -> PathBuf {
        self.db.to_path_buf()
    }

    fn begin(&mut self, _: &Migration, _: &str) -> Result<(), UndoError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(undo_failed("cannot begin the undo's transaction"))
    }

    fn applied(&mut self) -> Result<Vec<MigrationId>, UndoError> {
        let read = || -> rusqlite::Result<Vec<MigrationId>> {
            let mut st = self
                .conn
                .prepare("SELECT module, stamp FROM strata_migration")?;
            let rows = st.query_map([], |r| {
                Ok(MigrationId {
                    module: r.get(0)?,
                    stamp: r.get(1)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(undo_failed("cannot read the ledger"))
    }

    fn skip(&mut self) -> Result<(), UndoError> {
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(undo_failed("cannot end the undo's transaction"))
    }

    /// `undo.sql` under the same guard as `do.sql` (no transaction statements, no writes to
    /// strata's tables), then the foreign-key check: a violation the script adds fails it.
    fn run(&mut self, file: &Path, sql: &str) -> Result<u64, UndoError> {
        let (conn, guard) = (&*self.conn, self.guard);
        let before = violations(conn).map_err(undo_failed("PRAGMA foreign_key_check failed"))?;
        guard.set_mode(Mode::Script);
        let rows = run_script(conn, file, sql, guard, None);
        guard.set_mode(Mode::Host);
        let rows = rows?;
        foreign_key_check(conn, &before)?;
        Ok(rows)
    }

    fn forget(&mut self, m: &Migration, entry: &Entry) -> Result<(), UndoError> {
        let conn = &*self.conn;
        conn.execute(
            "DELETE FROM strata_migration WHERE module = ?1 AND stamp = ?2",
            rusqlite::params![m.id.module, m.id.stamp],
        )
        .map_err(undo_failed("cannot remove the migration from the ledger"))?;
        crate::sqlite::schema::owner::forget_missing(conn).map_err(undo_failed(
            "cannot update the owners of the schema's objects",
        ))?;
        ledger::append(conn, std::slice::from_ref(entry))
            .map_err(undo_failed("cannot audit the undo"))
    }

    fn commit(&mut self) -> Result<(), UndoError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(undo_failed("cannot commit the undo"))
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn audit_failure(&mut self, entry: &Entry) -> Result<(), String> {
        ledger::append(self.conn, std::slice::from_ref(entry)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Refusal;
    use crate::core::tree::Tree;

    /// Pages SQLite fetched on this connection so far (cache hits and misses): every row a
    /// statement scans costs pages, so a step that scans a growing table costs more of them.
    fn pages(conn: &Connection) -> i64 {
        let mut total = 0;
        for op in [
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_HIT,
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_MISS,
        ] {
            let (mut current, mut high) = (0, 0);
            // SAFETY: the handle is live for the duration of the call; the out-pointers are ours.
            let rc = unsafe {
                rusqlite::ffi::sqlite3_db_status(conn.handle(), op, &mut current, &mut high, 0)
            };
            assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
            total += i64::from(current);
        }
        total
    }

    /// An undo chose m2 while it was the newest; by the time it holds the database, m3 was
    /// applied on top (a migrate that came in): the undo is refused, nothing is undone and m2
    /// stays applied with m3's table, as the ledger says.
    #[test]
    fn undo_refuses_a_migration_with_a_newer_one_applied_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("migrations/app");
        let steps = [
            (
                "20240101T000000Z-one",
                "CREATE TABLE t1(a INTEGER);",
                "DROP TABLE t1;",
            ),
            (
                "20240102T000000Z-two",
                "CREATE TABLE t2(a INTEGER);",
                "DROP TABLE t2;",
            ),
            (
                "20240103T000000Z-three",
                "ALTER TABLE t2 ADD COLUMN c TEXT;",
                "",
            ),
        ];
        for (name, up, down) in steps {
            let folder = module.join(name);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("do.sql"), up).unwrap();
            if !down.is_empty() {
                std::fs::write(folder.join("undo.sql"), down).unwrap();
            }
        }
        let tree = Tree::load(&dir.path().join("migrations")).unwrap();
        let db = dir.path().join("app.db");
        let mut conn = Connection::open(&db).unwrap();
        crate::sqlite::ledger::ensure(&mut conn).unwrap();
        for (m, (_, up, _)) in tree.migrations.iter().zip(steps) {
            conn.execute_batch(up).unwrap();
            crate::sqlite::ledger::record(&conn, m, 1).unwrap();
        }
        let two = crate::core::backend::UndoStep {
            migration: &tree.migrations[1],
            checksum: "0".repeat(64),
            sql: steps[1].2.into(),
        };
        let err = undo_all(&mut conn, &db, Phase::Apply, &[two], None).unwrap_err();
        assert_eq!(err.exit_code(), crate::core::exit::REFUSED, "{err}");
        assert!(
            matches!(&err, Error::Refused(r) if matches!(
                r.as_slice(),
                [Refusal::NotNewest { migration, newer, .. }]
                    if migration == "app/20240102T000000Z-two"
                        && newer == &["app/20240103T000000Z".to_string()]
            )),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("app/20240103T000000Z was applied after it"),
            "{message}"
        );
        let ledger: Vec<String> = crate::sqlite::ledger::applied(&conn)
            .unwrap()
            .into_iter()
            .map(|a| a.id.stamp)
            .collect();
        assert_eq!(
            ledger,
            ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"]
        );
        let c: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('t2') WHERE name = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(c, 1, "m2's undo.sql ran: t2 is gone");
    }

    fn stamp(i: usize) -> String {
        let (h, m, s) = (i / 3600, (i / 60) % 60, i % 60);
        format!("20240101T{h:02}{m:02}{s:02}Z")
    }

    fn median(v: &[i64]) -> i64 {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    }

    /// The regression check for linear runs, counting work instead of timing it: the pages
    /// strata's bookkeeping reads per step (the pages of the step minus those the same SQL
    /// costs SQLite alone, whose own DDL scans `sqlite_master`) must not grow with the number
    /// of objects and applied migrations.
    #[test]
    fn bookkeeping_reads_as_many_pages_at_step_1500_as_at_step_100() {
        const N: usize = 1_500;
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("migrations/app");
        let mut scripts = Vec::new();
        for i in 0..N {
            let folder = module.join(format!("{}-t{i}", stamp(i)));
            std::fs::create_dir_all(&folder).unwrap();
            // Tables, an index on most, a data-only step now and then, and drops and renames,
            // so every path of the ownership bookkeeping is walked.
            let sql = match i % 10 {
                9 => format!("INSERT INTO t{}(a) VALUES ('x');", i - 1),
                7 => format!("ALTER TABLE t{} RENAME TO r{i};", i - 1),
                5 => format!("CREATE TABLE t{i}(a TEXT); DROP TABLE t{};", i - 1),
                _ => format!(
                    "CREATE TABLE t{i}(id INTEGER PRIMARY KEY, a TEXT); CREATE INDEX t{i}_a ON t{i}(a);"
                ),
            };
            std::fs::write(folder.join("do.sql"), &sql).unwrap();
            scripts.push(sql);
        }
        let tree = Tree::load(&dir.path().join("migrations")).unwrap();
        assert_eq!(tree.migrations.len(), N);
        let db = dir.path().join("app.db");
        let mut conn = sqlite::open(&db, Duration::from_secs(5)).unwrap();
        let bare = Connection::open(dir.path().join("bare.db")).unwrap();
        for c in [&conn, &bare] {
            c.pragma_update(None, "synchronous", "OFF").unwrap();
        }
        ledger::ensure(&mut conn).unwrap();
        let ctx = Context {
            db: &db,
            phase: Phase::Apply,
            test_data: false,
            sandbox: None,
            limits: Limits::default(),
            write_snapshots: false,
            own: None,
        };
        let mut session = Session::default();
        let mut overhead = Vec::new();
        for (m, sql) in tree.migrations.iter().zip(&scripts) {
            let prepared = Prepared::load(m).unwrap();
            let before = pages(&conn);
            let applied = apply(&mut conn, &ctx, &mut session, &prepared, &mut |_| {}).unwrap();
            assert!(matches!(applied, Applied::Committed { .. }));
            let strata = pages(&conn) - before;
            let before = pages(&bare);
            bare.execute_batch(&format!("BEGIN; {sql} COMMIT;"))
                .unwrap();
            overhead.push(strata - (pages(&bare) - before));
        }
        let (early, late) = (median(&overhead[90..110]), median(&overhead[N - 20..]));
        assert!(
            late <= 2 * early,
            "bookkeeping pages per step: {early} around step 100, {late} around step {N}"
        );
        assert_eq!(session.ledger.reads, 1, "the ledger is read once per phase");
        // Ownership is complete: every object is owned, a renamed table by its creator.
        let owners = crate::sqlite::schema::owner::owners(&conn).unwrap();
        assert!(
            crate::sqlite::schema::owner::unowned_objects(&conn)
                .unwrap()
                .is_empty()
        );
        let objects: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'strata%' AND name NOT LIKE 'sqlite%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(owners.len() as i64, objects);
        let r7 = owners.iter().find(|o| o.object.name == "r7").unwrap();
        assert_eq!(r7.stamp, stamp(6), "a renamed table keeps its owner");
        assert!(
            !owners.iter().any(|o| o.object.name == "t4_a"),
            "a dropped table's index is forgotten"
        );
    }

    const FOLDER: &str = "m/20240101T000000Z-zero";

    fn tree_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = root.path().join(FOLDER).join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        root
    }

    #[test]
    fn a_file_changed_after_the_tree_was_loaded_runs_as_it_was_read() {
        let files: &[(&str, &[u8])] = &[
            ("do.sql", b"CREATE TABLE t(a);"),
            ("migration.toml", b"[sandbox]\nwrites = [\"t\"]\n"),
            ("test-data/data.json", b"{\"t\": [{\"a\": 1}]}"),
            ("proj-data/data.json", b"{\"t\": [{\"a\": 2}]}"),
            ("checks.sql", b"SELECT 1 WHERE 0;"),
            ("transform.wasm", b"\0asm-not-really"),
        ];
        for (changed, _) in files {
            let root = tree_with(files);
            let tree = Tree::load(root.path()).unwrap();
            let m = &tree.migrations[0];
            // Between validation and the run, someone rewrites one file: the step runs the
            // bytes the tree read and pinned, not the new ones.
            let path = m.file(changed);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(b"\n ");
            std::fs::write(&path, bytes).unwrap();
            let p = Prepared::load(m).unwrap_or_else(|e| panic!("{changed}: {e}"));
            assert_eq!(p.checksum, m.checksum(), "{changed}");
            assert_eq!(p.do_sql, "CREATE TABLE t(a);", "{changed}");
            assert_eq!(p.checks.as_deref(), Some("SELECT 1 WHERE 0;"), "{changed}");
            assert_eq!(
                p.config.sandbox.writes,
                Some(vec!["t".to_string()]),
                "{changed}"
            );
            assert_eq!(
                p.transform.as_deref(),
                Some(&b"\0asm-not-really"[..]),
                "{changed}"
            );
            assert_eq!(
                p.test_data.as_ref().map(|d| d.tables.len()),
                Some(1),
                "{changed}"
            );
        }
    }

    #[test]
    fn a_large_file_changed_after_the_tree_was_loaded_does_not_run_unpinned() {
        // Files above KEEP_BYTES are read again for the step and must still be what was hashed.
        let big = vec![b'x'; crate::core::checksum::KEEP_BYTES + 1];
        let root = tree_with(&[("do.sql", b""), ("transform.wasm", &big)]);
        let tree = Tree::load(root.path()).unwrap();
        let m = &tree.migrations[0];
        let mut changed = big.clone();
        changed[0] = b'y';
        std::fs::write(m.file("transform.wasm"), changed).unwrap();
        match Prepared::load(m) {
            Err(Error::Refused(r)) => match &r[..] {
                [Refusal::ChangedDuringRun { migration, files }] => {
                    assert_eq!(migration, &m.label());
                    assert_eq!(files, &[PathBuf::from("transform.wasm")]);
                    let text = r[0].to_string();
                    assert!(
                        text.contains("transform.wasm") && text.contains("run the command again")
                    );
                }
                other => panic!("{other:?}"),
            },
            Err(e) => panic!("{e}"),
            Ok(p) => panic!(
                "the changed file would run under the old checksum {}",
                p.migration.checksum()
            ),
        }
        // Unchanged, it runs with every byte.
        std::fs::write(m.file("transform.wasm"), &big).unwrap();
        assert_eq!(Prepared::load(m).unwrap().transform.unwrap(), big);
    }

    #[test]
    fn a_file_added_after_the_tree_was_loaded_does_not_run_unpinned() {
        let root = tree_with(&[("do.sql", b"")]);
        let tree = Tree::load(root.path()).unwrap();
        let m = &tree.migrations[0];
        std::fs::write(m.file("checks.sql"), "SELECT 1;").unwrap();
        let p = Prepared::load(m).unwrap();
        assert_eq!(p.checks, None);
        assert_eq!(p.checksum, m.checksum());
    }

    #[test]
    fn what_runs_is_exactly_what_the_checksum_covers() {
        // CRLF is read as LF for the checksum, so the SQL that runs is read the same way: a
        // string literal spanning lines inserts the same text on every checkout.
        let root = tree_with(&[(
            "do.sql",
            b"CREATE TABLE t(a);\r\nINSERT INTO t VALUES ('x\r\ny');\r\n",
        )]);
        let tree = Tree::load(root.path()).unwrap();
        let m = &tree.migrations[0];
        let p = Prepared::load(m).unwrap();
        assert_eq!(
            p.do_sql,
            "CREATE TABLE t(a);\nINSERT INTO t VALUES ('x\ny');\n"
        );
        let lf = tree_with(&[("do.sql", p.do_sql.as_bytes())]);
        let lf = Tree::load(lf.path()).unwrap();
        assert_eq!(p.migration.checksum(), lf.migrations[0].checksum());
        assert_eq!(p.migration.checksum(), m.checksum());
    }
}
