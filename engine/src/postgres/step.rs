//! One migration applied to PostgreSQL, in one transaction (PostgreSQL's DDL is
//! transactional): lock, re-read the ledger, run the actions, record, commit. A failure rolls
//! the whole step back and is audited after the rollback, in a transaction of its own.
//!
//! Each statement of `do.sql` and `checks.sql` runs on its own through the simple query
//! protocol, so an error names its line. Rows of `data.json` are inserted as quoted literals
//! that the server converts to each column's type (integers, numbers, text, booleans, dates,
//! uuid, json, bytea from `{"base64": ...}`). checks.sql runs inside a savepoint that is rolled
//! back, so a check can never change anything. PostgreSQL enforces foreign keys itself.
//! After the step the session is reset, so a `SET` in one step never reaches the next.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use rusqlite::types::Value;

use super::{Session, describe_error, is_lock_timeout, ledger, script};
use crate::components::Sandbox;
use crate::components::limits::Limits;
use crate::core::data::{DataSet, quote_ident};
use crate::core::error::{DbCode, Error};
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::step::{Applied, Done, Failed, Prepared};
use crate::core::target::Target;

/// Rows of a failing check shown in the error.
const SHOWN_ROWS: usize = 5;

/// What a step runs with besides its own files.
pub struct Context<'a> {
    pub target: &'a Target,
    pub phase: Phase,
    /// Whether steps load their `test-data/`.
    pub test_data: bool,
    pub lock_timeout: Duration,
    /// `statement_timeout` for each statement of the step; zero for none.
    pub statement_timeout: Duration,
    /// Needed when the step has components.
    pub sandbox: Option<&'a Sandbox>,
    /// The project's ceiling for component limits.
    pub limits: Limits,
    /// Write a missing `schema.sql` (and LATEST) from the database after each step.
    pub write_snapshots: bool,
}

/// The step's transaction on the session: BEGIN when made, ROLLBACK when dropped uncommitted.
/// Not `postgres::Transaction`, which borrows the client for its whole life: a component call
/// moves the client into the sandbox's store for its duration (see [`Session::lend`]).
struct StepTx<'s> {
    session: &'s mut Session,
    open: bool,
    /// A savepoint inside the phase's transaction (`--single-transaction`), not a transaction.
    nested: bool,
}

impl<'s> StepTx<'s> {
    fn begin(session: &'s mut Session, nested: bool) -> Result<Self, postgres::Error> {
        session.batch_execute(if nested {
            "SAVEPOINT strata_step"
        } else {
            "BEGIN"
        })?;
        Ok(StepTx {
            session,
            open: true,
            nested,
        })
    }

    fn commit(mut self) -> Result<(), postgres::Error> {
        self.open = false;
        self.session.batch_execute(if self.nested {
            "RELEASE SAVEPOINT strata_step"
        } else {
            "COMMIT"
        })
    }
}

impl std::ops::Deref for StepTx<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.session
    }
}

impl std::ops::DerefMut for StepTx<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.session
    }
}

impl Drop for StepTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failed ROLLBACK means a broken connection, which ends the transaction too.
            let _ = self.session.batch_execute(if self.nested {
                "ROLLBACK TO SAVEPOINT strata_step; RELEASE SAVEPOINT strata_step"
            } else {
                "ROLLBACK"
            });
        }
    }
}

/// What went wrong inside an action.
struct ActionError {
    file: Option<PathBuf>,
    statement: Option<(usize, String)>,
    message: String,
    /// The SQLSTATE, when the server refused.
    code: Option<DbCode>,
}

/// The SQLSTATE of a server's error.
fn sqlstate(e: &postgres::Error) -> Option<DbCode> {
    e.code().map(|c| DbCode::SqlState(c.code().to_string()))
}

/// The actions a step runs on PostgreSQL, in order.
pub fn actions(step: &Prepared, test_data: bool) -> Vec<Action> {
    step.actions(test_data)
        .into_iter()
        .filter(|a| *a != Action::ForeignKeyCheck)
        .collect()
}

/// Applies one prepared migration on `client`; may replace `client` with a fresh connection
/// when the step changed the session in a way a reset cannot undo.
///
/// With `phase_log` the phase runs in one transaction (`--single-transaction`): the step is a
/// savepoint in it, and a failure's audit rows go to `phase_log`, for the phase to write once
/// it has rolled back.
pub fn apply(
    client: &mut super::Session,
    ctx: &Context<'_>,
    step: &Prepared,
    events: &mut EventSink<'_>,
    phase_log: Option<&mut Vec<crate::core::ledger::Entry>>,
) -> Result<Applied, Error> {
    let result = apply_in_transaction(client, ctx, step, events, phase_log);
    let reset = if prepares_statements(step) {
        ctx.target
            .connect(ctx.lock_timeout)
            .map(|fresh| *client = fresh)
    } else {
        client.reset().map_err(|e| {
            ctx.target
                .error("cannot reset the session after the step", e)
        })
    };
    let applied = result?;
    reset?;
    Ok(applied)
}

/// Whether a script of the step prepares or deallocates statements by name (the step then needs
/// a fresh connection afterwards, so it cannot share the phase's transaction).
pub fn prepares_statements(step: &Prepared) -> bool {
    [Some(&step.do_sql), step.checks.as_ref()]
        .into_iter()
        .flatten()
        .any(|sql| {
            let upper = sql.to_ascii_uppercase();
            upper.contains("PREPARE") || upper.contains("DEALLOCATE")
        })
}

fn apply_in_transaction(
    client: &mut Session,
    ctx: &Context<'_>,
    step: &Prepared,
    events: &mut EventSink<'_>,
    phase_log: Option<&mut Vec<crate::core::ledger::Entry>>,
) -> Result<Applied, Error> {
    let (target, phase, m) = (ctx.target, ctx.phase, &step.migration);
    let started = Instant::now();
    let mut tx = StepTx::begin(client, phase_log.is_some())
        .map_err(|e| target.error(format!("cannot begin the transaction for {m}"), e))?;
    // One round trip: the step's statement timeout, then strata's lock.
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SELECT pg_catalog.pg_advisory_xact_lock({})",
        ctx.statement_timeout.as_millis(),
        ledger::LOCK_KEY
    ))
    .map_err(|e| target.error("cannot take strata's lock", e))?;
    if ledger::is_applied(&mut *tx, &m.id).map_err(|e| target.error("cannot read the ledger", e))? {
        drop(tx);
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
    let untouched =
        ledger::signature(&mut *tx).map_err(|e| target.error("cannot read strata's schema", e))?;

    let (log, mut failure) = crate::core::step::run_actions(
        phase,
        step,
        actions(step, ctx.test_data),
        events,
        |action, events| {
            run_action(&mut tx, ctx, step, action, events).and_then(|done| {
                check_bookkeeping(&mut tx, step, action, &untouched).map(|()| done)
            })
        },
    );
    let mut snapshot = None;
    if failure.is_none() {
        match super::schema::after_step(&mut tx, step, ctx.write_snapshots) {
            Ok(written) => snapshot = written,
            Err(e) => {
                let err = ActionError {
                    file: e.file,
                    statement: None,
                    message: e.message,
                    code: None,
                };
                failure = Some((e.action, err, started.elapsed()));
            }
        }
    }
    if failure.is_none() {
        let elapsed = started.elapsed();
        let recorded = ledger::record(&mut *tx, m, elapsed.as_millis() as u64)
            .and_then(|()| ledger::append(&mut *tx, &log))
            .and_then(|()| tx.commit());
        match recorded {
            Ok(()) => {
                if let Some(sql) = snapshot {
                    for path in crate::core::step::write_snapshot(m, &sql)? {
                        events(&Event::SnapshotWritten {
                            migration: m,
                            path: &path,
                        });
                    }
                }
                return Ok(Applied::Committed { elapsed });
            }
            Err(e) if is_lock_timeout(&e) => return Err(target.error("cannot commit", e)),
            Err(e) => {
                failure = Some((
                    Action::Record,
                    ActionError {
                        file: None,
                        statement: None,
                        message: format!("recording the step failed: {}", describe_error(&e)),
                        code: sqlstate(&e),
                    },
                    started.elapsed(),
                ));
            }
        }
    } else {
        drop(tx);
    }

    // The step is rolled back; now its audit rows, in a transaction of their own.
    let (action, err, elapsed) = failure.expect("the step failed");
    let failed = Failed {
        action,
        file: err.file,
        statement: err.statement,
        message: err.message,
        code: err.code,
        elapsed,
    };
    Err(
        failed.audited(phase, step, target.as_path(), log, |log| match phase_log {
            Some(phase_log) => {
                phase_log.extend_from_slice(log);
                Ok(())
            }
            None => client
                .transaction()
                .and_then(|mut tx| {
                    ledger::append(&mut tx, log)?;
                    tx.commit()
                })
                .map_err(|e| describe_error(&e)),
        }),
    )
}

/// Fails the action if it changed strata's bookkeeping (see `ledger::signature`): the
/// `strata` schema is strata's alone, as `strata_*` tables are on SQLite.
fn check_bookkeeping(
    tx: &mut Client,
    step: &Prepared,
    action: Action,
    untouched: &str,
) -> Result<(), ActionError> {
    let file = match action {
        Action::DoSql => Some(step.migration.file("do.sql")),
        Action::Checks => Some(step.migration.file("checks.sql")),
        Action::TestData => step.test_data.as_ref().map(|d| d.path.clone()),
        Action::ProjData => step.proj_data.as_ref().map(|d| d.path.clone()),
        _ => None,
    };
    let changed = |detail: String| ActionError {
        file: file.clone(),
        statement: None,
        message: format!(
            "{action} changed strata's bookkeeping ({detail}): the `strata` schema, its tables, \
             their rows, triggers and functions are strata's alone (the ledger and the \
             append-only audit log); the step was rolled back. Leave the strata schema out of \
             migrations"
        ),
        code: None,
    };
    match ledger::signature(tx) {
        Ok(now) if now == untouched => Ok(()),
        Ok(_) => Err(changed(
            "the schema or its rows differ from before the action".into(),
        )),
        Err(e) => Err(changed(describe_error(&e))),
    }
}

/// Runs one action; returns the rows it wrote (statements run, for checks) and the fuel a
/// component burned.
fn run_action(
    tx: &mut StepTx<'_>,
    ctx: &Context<'_>,
    step: &Prepared,
    action: Action,
    events: &mut EventSink<'_>,
) -> Result<Done, ActionError> {
    let m = &step.migration;
    let sql = |rows: Result<u64, ActionError>| rows.map(|rows| Done { rows, fuel: None });
    match action {
        Action::DoSql => sql(run_script(tx, &m.file("do.sql"), &step.do_sql)),
        Action::TestData => sql(insert(tx, step.test_data.as_ref())),
        Action::ProjData => sql(insert(tx, step.proj_data.as_ref())),
        Action::Checks => sql(run_checks(
            tx,
            &m.file("checks.sql"),
            step.checks.as_deref().unwrap_or(""),
        )),
        Action::Transform | Action::TestSeed | Action::ProjSeed | Action::CheckComponent => {
            crate::core::step::component(
                ctx.sandbox,
                &ctx.limits,
                step,
                action,
                events,
                |sb, call| {
                    tx.session
                        .lend(|client| sb.call_postgres(client, call, ctx.statement_timeout))
                },
            )
            .map_err(|(path, message)| ActionError {
                file: Some(path),
                statement: None,
                message,
                code: None,
            })
        }
        Action::ForeignKeyCheck | Action::Snapshot | Action::Record | Action::Undo => sql(Ok(0)),
    }
}

/// A statement's failure, located in its file.
fn statement_error(file: &Path, s: &script::Statement, e: &postgres::Error) -> ActionError {
    // The server's position (characters from 1) points into the statement: name that line.
    let line = e
        .as_db_error()
        .and_then(|d| match d.position() {
            Some(postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
            _ => None,
        })
        .map_or(s.line, |p| {
            s.line
                + s.text
                    .chars()
                    .take(p.saturating_sub(1))
                    .filter(|c| *c == '\n')
                    .count()
        });
    ActionError {
        file: Some(file.to_path_buf()),
        statement: Some((line, one_line(&s.text))),
        message: describe_error(e),
        code: sqlstate(e),
    }
}

/// A statement on one line, shortened if long (also how `strata undo` names a failed one).
pub(crate) fn one_line(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 120 {
        format!("{}...", flat.chars().take(117).collect::<String>())
    } else {
        flat
    }
}

fn split(file: &Path, sql: &str) -> Result<Vec<script::Statement>, ActionError> {
    script::statements(file, sql).map_err(|e| ActionError {
        file: Some(file.to_path_buf()),
        statement: None,
        message: e.to_string(),
        code: None,
    })
}

/// Runs each statement of a script; returns the rows they changed.
fn run_script(tx: &mut Client, file: &Path, sql: &str) -> Result<u64, ActionError> {
    let mut changed = 0;
    for s in split(file, sql)? {
        let messages = tx
            .simple_query(&s.text)
            .map_err(|e| statement_error(file, &s, &e))?;
        changed += messages
            .iter()
            .map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum::<u64>();
    }
    Ok(changed)
}

/// A data.json value as a literal the server converts to the column's type: dollar-quoted, so
/// that no setting of the session (`standard_conforming_strings`) changes how it reads.
fn literal(v: &Value) -> String {
    let quoted = super::dollar_quoted;
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => quoted(&i.to_string()),
        Value::Real(f) => quoted(&f.to_string()),
        Value::Text(s) => quoted(s),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
            quoted(&format!("\\x{hex}"))
        }
    }
}

/// The INSERT that loads one data.json row.
fn insert_sql(table: &str, row: &[(String, Value)]) -> String {
    if row.is_empty() {
        return format!("INSERT INTO {} DEFAULT VALUES", quote_ident(table));
    }
    let columns: Vec<String> = row.iter().map(|(c, _)| quote_ident(c)).collect();
    let values: Vec<String> = row.iter().map(|(_, v)| literal(v)).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_ident(table),
        columns.join(", "),
        values.join(", ")
    )
}

/// A data.json file as the statements that load it on PostgreSQL (for `plan --sql`).
pub fn data_sql(data: &DataSet) -> String {
    let mut out = String::new();
    for (table, rows) in &data.tables {
        for row in rows {
            out.push_str(&insert_sql(table, row));
            out.push_str(";\n");
        }
    }
    out
}

fn insert(tx: &mut Client, data: Option<&DataSet>) -> Result<u64, ActionError> {
    let Some(data) = data else { return Ok(0) };
    let mut count = 0;
    for (table, rows) in &data.tables {
        for (i, row) in rows.iter().enumerate() {
            let sql = insert_sql(table, row);
            tx.batch_execute(&sql).map_err(|e| ActionError {
                file: Some(data.path.clone()),
                statement: None,
                message: format!("table `{table}`, row {}: {}", i + 1, describe_error(&e)),
                code: sqlstate(&e),
            })?;
            count += 1;
        }
    }
    Ok(count)
}

/// Runs each query of checks.sql inside a savepoint that is rolled back; any row returned is a
/// violation.
fn run_checks(tx: &mut Client, file: &Path, sql: &str) -> Result<u64, ActionError> {
    let mut count = 0;
    for s in split(file, sql)? {
        tx.batch_execute("SAVEPOINT strata_check")
            .map_err(|e| statement_error(file, &s, &e))?;
        let messages = tx.simple_query(&s.text);
        // Rolled back whatever happened: a check changes nothing.
        let undone =
            tx.batch_execute("ROLLBACK TO SAVEPOINT strata_check; RELEASE SAVEPOINT strata_check");
        let messages = messages.map_err(|e| statement_error(file, &s, &e))?;
        undone.map_err(|e| statement_error(file, &s, &e))?;
        let mut shown = Vec::new();
        let mut violations = 0usize;
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                violations += 1;
                if shown.len() < SHOWN_ROWS {
                    let cols: Vec<String> = row
                        .columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let value = row.get(i).map_or("NULL".to_string(), |v| format!("'{v}'"));
                            format!("{}={value}", c.name())
                        })
                        .collect();
                    shown.push(format!("{{{}}}", cols.join(", ")));
                }
            }
        }
        if violations > 0 {
            return Err(ActionError {
                file: Some(file.to_path_buf()),
                statement: Some((s.line, one_line(&s.text))),
                message: format!(
                    "the check returned {violations} violating row{}:\n{}{}",
                    if violations == 1 { "" } else { "s" },
                    shown.join("\n"),
                    if violations > shown.len() {
                        "\n..."
                    } else {
                        ""
                    }
                ),
                code: None,
            });
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_for_the_server_to_convert() {
        assert_eq!(literal(&Value::Null), "NULL");
        assert_eq!(literal(&Value::Integer(-3)), "$v$-3$v$");
        assert_eq!(literal(&Value::Real(2.5)), "$v$2.5$v$");
        assert_eq!(literal(&Value::Text("it's \\".into())), "$v$it's \\$v$");
        assert_eq!(literal(&Value::Text("a$v$b".into())), "$v1$a$v$b$v1$");
        assert_eq!(literal(&Value::Text("x$v".into())), "$v1$x$v$v1$");
        assert_eq!(literal(&Value::Blob(vec![0, 255])), "$v$\\x00ff$v$");
    }
}
