//! One migration applied to one database, in one transaction: `do.sql`, test data (test database
//! only), project data, `checks.sql`, `PRAGMA foreign_key_check`, the ledger row.
//!
//! Foreign-key enforcement is off around the transaction (SQLite ignores the pragma inside one)
//! so table rebuilds work; the foreign-key check before commit keeps them honest. A failure rolls
//! the whole step back, and its audit rows are written after the rollback, so the log survives
//! the failure it records. This module runs one step; ordering and phases belong to `migrator`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;

use crate::data::DataSet;
use crate::error::{Error, StepFailure};
use crate::event::{Action, Event, EventSink, Phase};
use crate::ledger::{self, Entry, Outcome};
use crate::sqlite::{self, Located, Script};
use crate::tree::Migration;

/// How many violating rows a failure message shows.
const SHOWN_ROWS: usize = 5;

/// A migration with every input read and parsed, so a run finds bad input before it touches a
/// database.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub migration: Migration,
    pub do_sql: String,
    pub checks: Option<String>,
    pub test_data: Option<DataSet>,
    pub proj_data: Option<DataSet>,
}

impl Prepared {
    /// Reads `do.sql`, `checks.sql` and both `data.json` files of `m`.
    pub fn load(m: &Migration) -> Result<Prepared, Error> {
        let read = |name: &str| -> Result<Option<String>, Error> {
            let path = m.file(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(path, e)),
            }
        };
        let data = |name: &str| -> Result<Option<DataSet>, Error> {
            let path = m.file(name);
            if path.is_file() {
                DataSet::load(&path).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Prepared {
            do_sql: read("do.sql")?.unwrap_or_default(),
            checks: read("checks.sql")?,
            test_data: data("test-data/data.json")?,
            proj_data: data("proj-data/data.json")?,
            migration: m.clone(),
        })
    }

    /// The actions this step runs in `phase`, in order.
    pub fn actions(&self, phase: Phase) -> Vec<Action> {
        let mut actions = vec![Action::DoSql];
        if phase.loads_test_data() && self.test_data.is_some() {
            actions.push(Action::TestData);
        }
        if self.proj_data.is_some() {
            actions.push(Action::ProjData);
        }
        if self.checks.is_some() {
            actions.push(Action::Checks);
        }
        actions.push(Action::ForeignKeyCheck);
        actions
    }
}

/// How a step ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Committed.
    Committed { elapsed: Duration },
    /// Another process had applied it by the time this one got the lock.
    AlreadyApplied,
}

/// What went wrong inside an action.
struct ActionError {
    file: Option<PathBuf>,
    statement: Option<Located>,
    message: String,
}

impl ActionError {
    fn new(file: Option<PathBuf>, statement: Option<Located>, message: impl Into<String>) -> Self {
        ActionError {
            file,
            statement,
            message: message.into(),
        }
    }
}

/// Applies one prepared migration to `conn` in `phase`.
pub fn apply(
    conn: &mut Connection,
    db: &Path,
    phase: Phase,
    step: &Prepared,
    events: &mut EventSink<'_>,
) -> Result<Applied, Error> {
    let fk_was_on = sqlite::foreign_keys(conn)
        .map_err(|e| Error::db(db, "cannot read PRAGMA foreign_keys", e))?;
    sqlite::set_foreign_keys(conn, false)
        .map_err(|e| Error::db(db, "cannot switch foreign keys off", e))?;
    let guard = Arc::new(AtomicBool::new(false));
    install_guard(conn, &guard).map_err(|e| Error::db(db, "cannot install the authorizer", e))?;

    let result = apply_in_transaction(conn, db, phase, step, &guard, events);

    let restored = conn
        .authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
        .and_then(|()| sqlite::set_foreign_keys(conn, fk_was_on));
    let applied = result?;
    restored.map_err(|e| Error::db(db, "cannot restore PRAGMA foreign_keys", e))?;
    Ok(applied)
}

fn apply_in_transaction(
    conn: &mut Connection,
    db: &Path,
    phase: Phase,
    step: &Prepared,
    guard: &AtomicBool,
    events: &mut EventSink<'_>,
) -> Result<Applied, Error> {
    let m = &step.migration;
    let started = Instant::now();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| Error::db(db, format!("cannot begin the transaction for {m}"), e))?;
    if ledger::is_applied(&tx, &m.id).map_err(|e| Error::db(db, "cannot read the ledger", e))? {
        events(&Event::StepSkipped {
            phase,
            migration: m,
        });
        return Ok(Applied::AlreadyApplied);
    }
    events(&Event::StepStarted {
        phase,
        migration: m,
    });
    // Ownership: what the step creates becomes its module's (see schema::owner).
    let catalog = crate::schema::owner::catalog(&tx)
        .map_err(|e| Error::db(db, "cannot read sqlite_master", e))?;

    let mut log = Vec::new();
    let mut failure = None;
    for action in step.actions(phase) {
        let t = Instant::now();
        match run_action(&tx, step, action, guard) {
            Ok(rows) => {
                let elapsed = t.elapsed();
                log.push(entry(
                    phase,
                    m,
                    action,
                    Outcome::Ok,
                    None,
                    Some(rows),
                    elapsed,
                ));
                events(&Event::ActionDone {
                    phase,
                    migration: m,
                    action,
                    rows,
                    elapsed,
                });
            }
            Err(err) => {
                failure = Some((action, err, t.elapsed()));
                break;
            }
        }
    }

    if failure.is_none() {
        let elapsed = started.elapsed();
        let committed = ledger::record(&tx, m, elapsed.as_millis() as u64)
            .and_then(|()| crate::schema::owner::record_step(&tx, &m.id, &catalog))
            .and_then(|()| ledger::append(&tx, &log))
            .and_then(|()| tx.commit());
        match committed {
            Ok(()) => return Ok(Applied::Committed { elapsed }),
            Err(e) if sqlite::is_busy(&e) => return Err(Error::db(db, "cannot commit", e)),
            Err(e) => {
                let err = ActionError::new(None, None, format!("recording the step failed: {e}"));
                failure = Some((Action::Record, err, elapsed));
            }
        }
    } else {
        drop(tx);
    }

    // The transaction is rolled back (dropped); now the audit rows, in a transaction of their own.
    let (action, err, elapsed) = failure.expect("the step failed");
    for e in &mut log {
        e.outcome = Outcome::RolledBack;
    }
    log.push(entry(
        phase,
        m,
        action,
        Outcome::Failed,
        Some(err.message.clone()),
        None,
        elapsed,
    ));
    let audited = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .and_then(|tx| ledger::append(&tx, &log).and_then(|()| tx.commit()));
    let mut message = err.message;
    if let Err(e) = audited {
        message.push_str(&format!(
            "\n(the failure could not be written to the audit log: {e})"
        ));
    }
    Err(StepFailure {
        phase,
        db: db.to_path_buf(),
        migration: m.label(),
        action,
        file: err.file,
        statement: err.statement.map(|s| (s.line, s.text)),
        message,
        applied_before: Vec::new(),
    }
    .into())
}

fn entry(
    phase: Phase,
    m: &Migration,
    action: Action,
    outcome: Outcome,
    detail: Option<String>,
    rows: Option<u64>,
    elapsed: Duration,
) -> Entry {
    Entry {
        phase: phase.as_str().into(),
        module: Some(m.id.module.clone()),
        stamp: Some(m.id.stamp.clone()),
        action: action.as_str().into(),
        outcome,
        detail,
        rows,
        fuel_used: None,
        duration_ms: Some(elapsed.as_millis() as u64),
        checksum: Some(m.checksum()),
    }
}

/// Runs one action; returns the rows it changed (or checked).
fn run_action(
    conn: &Connection,
    step: &Prepared,
    action: Action,
    guard: &AtomicBool,
) -> Result<u64, ActionError> {
    let m = &step.migration;
    match action {
        Action::DoSql => {
            guard.store(true, Ordering::SeqCst);
            let result = run_script(conn, &m.file("do.sql"), &step.do_sql);
            guard.store(false, Ordering::SeqCst);
            result
        }
        Action::TestData => insert(conn, step.test_data.as_ref()),
        Action::ProjData => insert(conn, step.proj_data.as_ref()),
        Action::Checks => {
            guard.store(true, Ordering::SeqCst);
            let result = run_checks(
                conn,
                &m.file("checks.sql"),
                step.checks.as_deref().unwrap_or(""),
            );
            guard.store(false, Ordering::SeqCst);
            result
        }
        Action::ForeignKeyCheck => foreign_key_check(conn),
        Action::Record => Ok(0),
    }
}

/// While `on`, refuses statements that would end or start strata's transaction.
fn install_guard(conn: &mut Connection, on: &Arc<AtomicBool>) -> rusqlite::Result<()> {
    let on = Arc::clone(on);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        if on.load(Ordering::SeqCst) && matches!(ctx.action, AuthAction::Transaction { .. }) {
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    }))
}

fn sql_error(file: &Path, at: Located, e: rusqlite::Error) -> ActionError {
    let message = if matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::AuthorizationForStatementDenied)
    ) {
        "statements that begin, commit or roll back a transaction are not allowed: strata runs \
         each migration in one transaction of its own; remove this statement"
            .to_string()
    } else {
        e.to_string()
    };
    ActionError::new(Some(file.to_path_buf()), Some(at), message)
}

fn run_script(conn: &Connection, file: &Path, sql: &str) -> Result<u64, ActionError> {
    let before = conn.total_changes();
    let mut script = Script::new(conn, sql);
    loop {
        let (mut stmt, at) = match script.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err((at, e)) => return Err(sql_error(file, at, e)),
        };
        if stmt.parameter_count() > 0 {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                Some(at),
                "the statement has parameters (?, :name), but a script has no values to bind; \
                 write the values into the SQL",
            ));
        }
        let mut rows = stmt.raw_query();
        loop {
            match rows.next() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(sql_error(file, at, e)),
            }
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
fn run_checks(conn: &Connection, file: &Path, sql: &str) -> Result<u64, ActionError> {
    let mut script = Script::new(conn, sql);
    let mut count = 0;
    loop {
        let (mut stmt, at) = match script.next_statement() {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err((at, e)) => return Err(sql_error(file, at, e)),
        };
        if !stmt.readonly() {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                Some(at),
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
                Err(e) => return Err(sql_error(file, at, e)),
            }
        }
        if violations > 0 {
            return Err(ActionError::new(
                Some(file.to_path_buf()),
                Some(at),
                format!(
                    "the check returned {violations} violating row{}:\n{}{}",
                    if violations == 1 { "" } else { "s" },
                    shown.join("\n"),
                    if violations > shown.len() {
                        "\n..."
                    } else {
                        ""
                    }
                ),
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

fn foreign_key_check(conn: &Connection) -> Result<u64, ActionError> {
    let fail = |e: rusqlite::Error| {
        ActionError::new(None, None, format!("PRAGMA foreign_key_check failed: {e}"))
    };
    let mut stmt = conn.prepare("PRAGMA foreign_key_check").map_err(fail)?;
    let mut rows = stmt.query([]).map_err(fail)?;
    let mut shown = Vec::new();
    let mut violations = 0usize;
    while let Some(row) = rows.next().map_err(fail)? {
        violations += 1;
        if shown.len() < SHOWN_ROWS {
            let table: String = row.get(0).map_err(fail)?;
            let rowid: Option<i64> = row.get(1).map_err(fail)?;
            let parent: String = row.get(2).map_err(fail)?;
            shown.push(format!(
                "`{table}` row {} references a missing row of `{parent}`",
                rowid.map_or("?".into(), |r| r.to_string())
            ));
        }
    }
    if violations == 0 {
        return Ok(0);
    }
    Err(ActionError::new(
        None,
        None,
        format!(
            "PRAGMA foreign_key_check found {violations} violation{} after the step:\n{}{}",
            if violations == 1 { "" } else { "s" },
            shown.join("\n"),
            if violations > shown.len() {
                "\n..."
            } else {
                ""
            }
        ),
    ))
}
