//! One migration applied to PostgreSQL, in one transaction (PostgreSQL's DDL is
//! transactional): lock, re-read the ledger, run the actions, record, commit. A failure rolls
//! the whole step back and is audited after the rollback, in a transaction of its own.
//!
//! Each statement of `do.sql` and `checks.sql` runs on its own through the simple query
//! protocol, so an error names its line. Rows of `data.json` are inserted as quoted literals
//! that the server converts to each column's type (integers, numbers, text, booleans, dates,
//! uuid, json, bytea from `{"base64": ...}`). checks.sql runs read-only inside a savepoint that
//! is rolled back, so a check can never change anything (not even a sequence). PostgreSQL enforces foreign keys itself.
//! After the step the session is reset, so a `SET` in one step never reaches the next.

use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};
use rusqlite::types::Value;

use super::{Session, describe_error, is_lock_timeout, ledger, script};
use crate::components::Sandbox;
use crate::components::limits::Limits;
use crate::core::data::{DataSet, quote_ident};
use crate::core::error::{DbCode, Error};
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::input::Dialect;
use crate::core::ledger::Entry;
use crate::core::step::{ActionError, Applied, Commit, Done, Prepared, StepDriver};
use crate::core::target::Target;

use crate::core::step::SHOWN_ROWS;

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

/// Applies one prepared migration on `client`; may replace `client` with a fresh connection
/// when the step changed the session in a way a reset cannot undo.
///
/// With `phase_log` the phase runs in one transaction (`--single-transaction`): the step runs
/// in it, and a failure's audit rows go to `phase_log`, for the phase to write once it has
/// rolled back. With `pipeline` the batch that begins the step may carry the first statement
/// of its `do.sql` (see [`PgStep::pipeline`]).
pub fn apply(
    client: &mut super::Session,
    ctx: &Context<'_>,
    step: &Prepared,
    events: &mut EventSink<'_>,
    phase_log: Option<&mut Vec<Entry>>,
    pipeline: bool,
) -> Result<Applied, Error> {
    let (result, reset_done) = apply_in_transaction(client, ctx, step, events, phase_log, pipeline);
    let reset = if let Some(done) = reset_done {
        done.map_err(|e| {
            ctx.target
                .error("cannot reset the session after the step", e)
        })
    } else if prepares_statements(step) {
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

/// The SQLSTATE of a server's error.
fn sqlstate(e: &postgres::Error) -> Option<DbCode> {
    e.code().map(|c| DbCode::SqlState(c.code().to_string()))
}

/// The step in its transaction; and, when its commit reset the session in the same round
/// trip, how that reset went.
fn apply_in_transaction(
    client: &mut Session,
    ctx: &Context<'_>,
    step: &Prepared,
    events: &mut EventSink<'_>,
    phase_log: Option<&mut Vec<Entry>>,
    pipeline: bool,
) -> (Result<Applied, Error>, Option<Result<(), postgres::Error>>) {
    let mut driver = PgStep {
        session: client,
        ctx,
        nested: phase_log.is_some(),
        phase_log,
        open: false,
        untouched: String::new(),
        applied: false,
        bound: 0,
        recorded: false,
        record: None,
        reset: None,
        unchecked: None,
        pipeline,
        first: None,
    };
    let result = crate::core::step::apply(&mut driver, ctx.phase, step, ctx.test_data, events);
    (result, driver.reset)
}

/// The rows of each statement of one simple query, in order (a statement that returns none,
/// `BEGIN` or `SET`, has an empty list), with each statement's count.
fn by_statement(messages: Vec<SimpleQueryMessage>) -> Vec<(Vec<postgres::SimpleQueryRow>, u64)> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::Row(r) => rows.push(r),
            SimpleQueryMessage::CommandComplete(n) => out.push((std::mem::take(&mut rows), n)),
            _ => {}
        }
    }
    out
}

/// The first column of the only row of a statement's rows (`None`: not one row, or NULL).
fn single(rows: Option<&(Vec<postgres::SimpleQueryRow>, u64)>) -> Option<String> {
    match rows.map(|(r, _)| r.as_slice()) {
        Some([row]) => row.get(0).map(str::to_string),
        _ => None,
    }
}

/// One step on a PostgreSQL session, for the shared algorithm (`crate::core::step::apply`).
/// Its transaction is opened and closed with plain statements, not a `postgres::Transaction`,
/// which borrows the client for its whole life: a component call moves the client into the
/// sandbox's store for its duration (see [`Session::lend`]).
struct PgStep<'a, 'c> {
    session: &'a mut Session,
    ctx: &'a Context<'c>,
    /// Inside the phase's transaction (`--single-transaction`), not a transaction of its own
    /// (nor a savepoint: see [`PgStep::begin`]); a failure's audit rows then go to
    /// `phase_log`, for the phase to write once it has rolled back.
    nested: bool,
    phase_log: Option<&'a mut Vec<Entry>>,
    /// The step's transaction is open (and a rollback has something to roll back).
    open: bool,
    /// The fingerprint of strata's bookkeeping before the actions (`ledger::signature`).
    untouched: String,
    /// Whether the ledger held the step when it began (read in the batch that began it).
    applied: bool,
    /// The ownership bound read when the step began (`schema::BOUND`).
    bound: u32,
    /// Whether the objects the step created are recorded already (before a comparison with
    /// `schema.sql`); else the commit records them, in the round trip of the ledger row.
    recorded: bool,
    /// The name of the prepared statement that records them (`Session::record_name`).
    record: Option<String>,
    /// How the session's reset went, when the commit sent it in its own round trip.
    reset: Option<Result<(), postgres::Error>>,
    /// The step's last action, when the check that it left strata's bookkeeping alone
    /// ([`check_bookkeeping`]) waits for the batch that commits the step (one round trip
    /// fewer); [`PgStep::check_unchecked`] makes it before anything else of strata's runs.
    unchecked: Option<Action>,
    /// Whether the batch that begins the step may carry the first statement of its `do.sql`
    /// (one round trip fewer). In the phase's transaction only when the phase read the ledger
    /// under strata's lock and found the step not there: the batch cannot then skip the
    /// statement for a step found applied, as a transaction of the step's own does by failing
    /// and rolling back.
    pipeline: bool,
    /// How the first statement of `do.sql` went when the batch that began the step carried it:
    /// the rows it changed, or its failure located in the file.
    first: Option<Result<u64, ActionError>>,
}

impl StepDriver for PgStep<'_, '_> {
    const DIALECT: Dialect = Dialect::Postgres;

    /// PostgreSQL enforces foreign keys itself.
    const FOREIGN_KEY_CHECK: bool = false;

    fn db(&self) -> PathBuf {
        self.ctx.target.as_path()
    }

    /// One round trip: the transaction (none in the phase's), the step's statement timeout,
    /// strata's lock, then, each a statement of its own so that it reads what committed while
    /// the lock was awaited, whether the ledger holds the step, the ownership bound, and the
    /// fingerprint of strata's bookkeeping (`EXECUTE` of the statement prepared once a connection, see
    /// [`super::Checks`]; its own round trip if the client did not name it); and, when it can
    /// (see [`PgStep::pipelined`]), the first statement of the step's `do.sql`, whose outcome
    /// [`PgStep::first`] keeps for the action.
    fn begin(&mut self, step: &Prepared) -> Result<(), Error> {
        let target = self.ctx.target;
        // The user's own settings for the step's SQL, after strata's reads.
        let user = self.session.user_settings().to_string();
        self.open = true;
        let session = &mut *self.session;
        let book = session.book().to_string();
        let record = session.record_name();
        let read = record.and_then(|record| {
            self.record = record;
            session.checks().map(|c| c.execute_signature.clone())
        });
        // Inside the phase's transaction the step has no savepoint: a failure rolls the whole
        // phase back, and releasing a savepoint walks every lock the transaction holds (each
        // table created adds some), which made each step slower than the one before.
        let (open, first) = if self.nested { ("", 0) } else { ("BEGIN; ", 1) };
        let statement = match &read {
            Ok(Some(_)) if self.pipeline => pipelined(self.ctx, step, &user),
            _ => None,
        };
        let mut sent = 0;
        let read = read.and_then(|execute| {
            let applied = match statement {
                Some(_) => ledger::not_applied_or_fail_sql(&book, &step.migration.id),
                None => ledger::is_applied_sql(&book, &step.migration.id),
            };
            let mut sql = format!(
                "{open}SET LOCAL statement_timeout = {}; \
                 SELECT pg_catalog.pg_advisory_xact_lock({}); {applied}; {}{}",
                self.ctx.statement_timeout.as_millis(),
                ledger::key_of(&book, ledger::LOCK_KEY),
                ledger::in_book(&book, super::schema::BOUND),
                execute
                    .as_deref()
                    .map_or(String::new(), |e| format!("; {e}")),
            );
            if !user.is_empty() {
                sql.push_str("; ");
                sql.push_str(&user);
            }
            if let Some(s) = &statement {
                // Outside the phase's transaction, a savepoint tells whether strata's part of
                // the batch was done when it failed (see `PgStep::first_failed`).
                if !self.nested {
                    sql.push_str("; SAVEPOINT strata_begun");
                }
                sql.push_str(";\n");
                sent = sql.chars().count();
                sql.push_str(&s.text);
            }
            let read = session.simple_query(&sql).map(by_statement)?;
            let signature = match execute {
                Some(_) => single(read.get(first + 4)),
                None => {
                    let signature = session.checks()?.signature.clone();
                    Some(session.query_one(&signature, &[])?.get::<_, String>(0))
                }
            };
            Ok((read, signature))
        });
        let read = match (read, &statement) {
            (Ok(read), _) => read,
            (Err(e), Some(s)) => return self.first_failed(step, s, sent, e),
            (Err(e), None) => {
                self.rollback();
                return Err(cannot_begin(target, step, e));
            }
        };
        let (read, signature) = read;
        let (applied, bound) = (
            single(read.get(first + 2)),
            single(read.get(first + 3)).and_then(|b| b.parse().ok()),
        );
        let (Some(applied), Some(bound), Some(signature)) = (applied, bound, signature) else {
            self.rollback();
            return Err(Error::Usage(format!(
                "{target}: the batch that begins {} gave unexpected results",
                step.migration
            )));
        };
        if statement.is_some() {
            // What the statement changed: the counts after strata's own statements.
            let strata = first + 5 + usize::from(!user.is_empty()) + usize::from(!self.nested);
            self.first = Some(Ok(read.iter().skip(strata).map(|(_, n)| n).sum()));
        }
        self.applied = applied == "t";
        self.bound = bound;
        self.untouched = signature;
        Ok(())
    }

    fn is_applied(&mut self, _: &Prepared) -> Result<bool, Error> {
        Ok(self.applied)
    }

    fn skip(&mut self) {
        self.rollback();
    }

    fn before_actions(&mut self, _: &Prepared, _: &mut EventSink<'_>) -> Result<(), Error> {
        // The fingerprint was read with the ledger when the step began.
        Ok(())
    }

    fn run_action(
        &mut self,
        step: &Prepared,
        action: Action,
        events: &mut EventSink<'_>,
    ) -> Result<Done, ActionError> {
        let first = self.first.take().filter(|_| action == Action::DoSql);
        let done = run_action(self.session, self.ctx, step, action, events, first)?;
        // The last action's check can go in the batch that commits, when the client named the
        // statement that makes it.
        let mut actions = step.actions(self.ctx.test_data);
        actions.retain(|a| *a != Action::ForeignKeyCheck);
        let named = self
            .session
            .checks()
            .is_ok_and(|c| c.check_or_fail_name.is_some());
        if named && actions.last() == Some(&action) {
            self.unchecked = Some(action);
        } else {
            check_bookkeeping(self.session, step, action, &self.untouched)?;
        }
        Ok(done)
    }

    fn after_actions(&mut self, step: &Prepared) -> Result<Option<String>, (Action, ActionError)> {
        if step.snapshot.is_none() && !self.ctx.write_snapshots {
            // Nothing to compare: the objects are recorded with the ledger row, in one round
            // trip.
            return Ok(None);
        }
        self.recorded = true;
        // What follows writes strata's tables: the last action's check first.
        if let Err((action, e)) = self.check_unchecked(step) {
            return Err((action, e));
        }
        // strata's settings again, whatever the step set (see `super::PIN`).
        if let Err(e) = self.session.batch_execute(super::PIN) {
            return Err((
                Action::Snapshot,
                ActionError::new(None, None, describe_error(&e)),
            ));
        }
        super::schema::after_step(self.session, step, self.ctx.write_snapshots)
            .map_err(|e| (e.action, ActionError::new(e.file, None, e.message)))
    }

    /// One round trip: the check that the step was judged by strata's own checks, what the
    /// step created, its ledger row and its audit rows, the commit and the session's reset, in
    /// one batch. When that batch stops before its commit because the checks were replaced or an
    /// audit row's id was taken by another process, it is undone to its savepoint and the step
    /// is recorded as [`PgStep::commit_in_steps`] does.
    fn commit(&mut self, step: &Prepared, log: &[Entry], elapsed: Duration) -> Result<(), Commit> {
        let (at, who) = (
            crate::core::ledger::now_rfc3339(),
            crate::core::ledger::operator(),
        );
        // strata's settings again, whatever the step set (see `super::PIN`), before the
        // savepoint, so that they hold for the records made again after a return to it. The
        // last action's check, if it waits, right after the check that strata's prepared
        // statements are still the client's, before any of strata's writes.
        let check = match (self.unchecked, self.session.checks()) {
            (
                Some(_),
                Ok(super::Checks {
                    check_or_fail_name: Some(name),
                    ..
                }),
            ) => format!(
                "EXECUTE {name}({});\n",
                super::dollar_quoted(&self.untouched)
            ),
            _ => String::new(),
        };
        let mut sql = format!(
            "{};\nSAVEPOINT strata_record;\n{};\n{check}{};\nRELEASE SAVEPOINT strata_record",
            super::PIN,
            self.session.verify_or_fail_sql(),
            self.record_sql(
                step,
                log,
                elapsed,
                ledger::append_or_fail_sql,
                (&at, &who),
                true
            )
        );
        if let Some(end) = self.end() {
            sql.push_str("; ");
            sql.push_str(end);
        }
        let reset = !prepares_statements(step);
        if reset {
            sql.push_str("; ");
            sql.push_str(&self.session.reset_sql());
        }
        let e = match self.session.batch_execute(&sql) {
            Ok(()) => {
                self.open = false;
                if reset {
                    self.reset = Some(Ok(()));
                }
                return Ok(());
            }
            Err(e) => e,
        };
        // Still before the commit when the savepoint is there to return to.
        if self
            .session
            .batch_execute("ROLLBACK TO SAVEPOINT strata_record")
            .is_ok()
        {
            let marked = |mark: &str| {
                e.as_db_error().is_some_and(|d| {
                    *d.code() == postgres::error::SqlState::INVALID_TEXT_REPRESENTATION
                        && d.message().contains(mark)
                })
            };
            let unchecked = marked(super::Checks::REPLACED) || marked(super::Checks::CHANGED);
            if unchecked {
                // The batch stopped before the last action's check passed: that check on its
                // own (it tells what changed) before anything else is written. (After an
                // audit id taken, it passed before the records: their rolled-back writes
                // still count in this transaction's counters the check reads.)
                self.check_unchecked(step)
                    .map_err(|(action, e)| Commit::Failed(action, e))?;
            }
            if unchecked || e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                return self.commit_in_steps(step, log, elapsed, &at, &who);
            }
            return Err(self.commit_error(e));
        }
        // The batch reached its end: as when [`PgStep::finish`]'s round trip fails.
        self.open = false;
        match self.ended(step, e) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.commit_error(e)),
        }
    }

    fn rollback(&mut self) {
        if std::mem::take(&mut self.open) {
            // A failed ROLLBACK means a broken connection, which ends the transaction too.
            // Inside the phase's transaction, the phase rolls it all back (the step has no
            // savepoint of its own, see [`PgStep::begin`]).
            if !self.nested {
                let _ = self.session.batch_execute("ROLLBACK");
            }
        }
    }

    fn audit_failure(&mut self, log: &[Entry]) -> Result<(), String> {
        match self.phase_log.as_mut() {
            Some(phase_log) => {
                phase_log.extend_from_slice(log);
                Ok(())
            }
            None => {
                let book = self.session.book().to_string();
                self.session
                    .transaction()
                    .and_then(|mut tx| {
                        ledger::append(&mut tx, &book, log)?;
                        tx.commit()
                    })
                    .map_err(|e| describe_error(&e))
            }
        }
    }
}

impl PgStep<'_, '_> {
    /// The batch that began the step with the first statement of its `do.sql` failed with `e`
    /// (`sent`: the characters of the batch before the statement): the ledger held the step
    /// (a skip: the statement did not run), the statement failed (kept for the action, located
    /// in the file), or strata's part failed (the step cannot begin).
    fn first_failed(
        &mut self,
        step: &Prepared,
        s: &script::Statement,
        sent: usize,
        e: postgres::Error,
    ) -> Result<(), Error> {
        let target = self.ctx.target;
        let db = e.as_db_error();
        let applied = db.is_some_and(|d| {
            *d.code() == postgres::error::SqlState::INVALID_TEXT_REPRESENTATION
                && d.message().contains(ledger::APPLIED)
        });
        let file = step.migration.file("do.sql");
        let failed =
            |e: &postgres::Error| Some(Err(statement_error(&file, s, e, sent).at_index(1)));
        if self.nested {
            // The phase holds strata's lock since it began and read the ledger under it (see
            // `PgStep::pipeline`), and every earlier step of it left strata's bookkeeping as it
            // was (its checks): strata's part of the batch reads what the phase itself wrote,
            // and an error of the server is the statement's.
            if db.is_some() && !applied {
                self.first = failed(&e);
                return Ok(());
            }
            self.rollback();
            return Err(cannot_begin(target, step, e));
        }
        if applied {
            self.rollback();
            self.applied = true;
            return Ok(());
        }
        if self
            .session
            .batch_execute("ROLLBACK TO SAVEPOINT strata_begun")
            .is_ok()
        {
            // strata's part was done: the statement failed.
            self.first = failed(&e);
            return Ok(());
        }
        self.rollback();
        // No savepoint: strata's part failed (its lock, a timeout, the connection), or nothing
        // ran because the server could not read the batch (the statement's syntax): then the
        // step begins again without it, and the action runs the statement on its own.
        let waited = is_lock_timeout(&e)
            || matches!(
                e.code(),
                Some(&postgres::error::SqlState::QUERY_CANCELED)
                    | Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
            );
        if db.is_none() || waited {
            return Err(cannot_begin(target, step, e));
        }
        self.pipeline = false;
        self.begin(step)
    }

    /// The check of the last action, if it still waits (see [`PgStep::unchecked`]), on its
    /// own round trip.
    fn check_unchecked(&mut self, step: &Prepared) -> Result<(), (Action, ActionError)> {
        match self.unchecked.take() {
            Some(action) => check_bookkeeping(self.session, step, action, &self.untouched)
                .map_err(|e| (action, e)),
            None => Ok(()),
        }
    }

    /// Records and commits the step in two round trips, as [`PgStep::commit`] did before its
    /// one batch: the check of strata's checks, what the step created, its ledger row and its
    /// audit rows in one batch (an audit row whose id another process took is appended again
    /// on its own), then the commit with the session's reset.
    fn commit_in_steps(
        &mut self,
        step: &Prepared,
        log: &[Entry],
        elapsed: Duration,
        at: &str,
        who: &str,
    ) -> Result<(), Commit> {
        let sql = format!(
            "{};\n{}",
            self.session.verify_sql(),
            self.record_sql(step, log, elapsed, ledger::append_sql, (at, who), false)
        );
        let done = match self.session.simple_query(&sql).map(by_statement) {
            Ok(done) if single(done.first()).as_deref() == Some("t") => Ok(done),
            Ok(_) => {
                return Err(Commit::Failed(
                    Action::Record,
                    ActionError::new(
                        None,
                        None,
                        "strata's own prepared checks on this connection were replaced during \
                         the step (DEALLOCATE, PREPARE): what the step did to strata's \
                         bookkeeping cannot be told; the step was rolled back. Leave prepared \
                         statements you did not prepare alone",
                    ),
                ));
            }
            Err(e) => Err(e),
        };
        let recorded = done.and_then(|done| {
            let counts: Vec<u64> = done.iter().map(|(_, n)| *n).collect();
            let added = &counts[counts.len().saturating_sub(log.len())..];
            let missed: Vec<Entry> = log
                .iter()
                .zip(added)
                .filter(|(_, n)| **n == 0)
                .map(|(e, _)| e.clone())
                .collect();
            if missed.is_empty() {
                Ok(())
            } else {
                let book = self.session.book().to_string();
                ledger::append(&mut **self.session, &book, &missed)
            }
        });
        let recorded = recorded.and_then(|()| self.finish(step));
        recorded.map_err(|e| self.commit_error(e))
    }

    /// What the step created (unless recorded already), its ledger row and its audit rows,
    /// each written by `append`, stamped `at` by `who`: statements for one simple query. With
    /// `prepared`, what the step created is recorded by an `EXECUTE` of the statement prepared
    /// for it (which a batch must verify first, see `super::Checks::verify_or_fail_sql`).
    fn record_sql(
        &self,
        step: &Prepared,
        log: &[Entry],
        elapsed: Duration,
        append: fn(&str, &Entry, &str, &str) -> String,
        (at, who): (&str, &str),
        prepared: bool,
    ) -> String {
        let m = &step.migration;
        let book = self.session.book();
        let mut sql = String::new();
        if !self.recorded {
            let renamed = super::schema::renames(step);
            match self.record.as_deref().filter(|_| prepared) {
                Some(name) => {
                    sql.push_str(&format!(
                        "SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', \
                         true);\nEXECUTE {name}('{}', '{}', {}, {})",
                        self.bound,
                        u32::MAX,
                        super::dollar_quoted(&m.id.module),
                        super::dollar_quoted(&m.id.stamp)
                    ));
                    if renamed {
                        sql.push_str(&ledger::in_book(book, super::schema::RENAMED));
                    }
                }
                None => sql.push_str(&super::schema::record_step_sql(
                    book, &m.id, renamed, self.bound,
                )),
            }
            sql.push_str(";\n");
        }
        sql.push_str(&ledger::record_sql(
            book,
            m,
            &step.checksum,
            elapsed.as_millis() as u64,
        ));
        for e in log {
            sql.push_str(";\n");
            sql.push_str(&append(book, e, at, who));
        }
        sql
    }

    /// How a failure to record or commit the step is reported.
    fn commit_error(&self, e: postgres::Error) -> Commit {
        if is_lock_timeout(&e) {
            return Commit::Locked(self.ctx.target.error("cannot commit", e));
        }
        Commit::Failed(
            Action::Record,
            ActionError {
                code: sqlstate(&e),
                ..ActionError::new(
                    None,
                    None,
                    format!("recording the step failed: {}", describe_error(&e)),
                )
            },
        )
    }

    /// What ends the step: its transaction's commit; nothing inside the phase's transaction.
    fn end(&self) -> Option<&'static str> {
        (!self.nested).then_some("COMMIT")
    }

    /// Commits the step (unless it runs in the phase's transaction) and, unless the step needs
    /// a fresh connection, resets the session in the same round trip.
    fn finish(&mut self, step: &Prepared) -> Result<(), postgres::Error> {
        self.open = false;
        let end = self.end();
        if prepares_statements(step) {
            return end.map_or(Ok(()), |end| self.session.batch_execute(end));
        }
        let reset = match end {
            Some(end) => self.session.reset_after(end),
            None => self.session.reset(),
        };
        match reset {
            Ok(()) => {
                self.reset = Some(Ok(()));
                Ok(())
            }
            Err(e) => self.ended(step, e),
        }
    }

    /// After a round trip that ended the step and reset the session failed with `e`: outside
    /// a phase's transaction, the ledger tells whether the commit took place; if it did, only
    /// the reset failed, which [`apply`] reports.
    fn ended(&mut self, step: &Prepared, e: postgres::Error) -> Result<(), postgres::Error> {
        if self.nested {
            return Err(e);
        }
        let book = self.session.book().to_string();
        match ledger::is_applied(&mut **self.session, &book, &step.migration.id) {
            Ok(true) => {
                self.reset = Some(Err(e));
                Ok(())
            }
            _ => Err(e),
        }
    }
}

/// The error of a step whose beginning (its transaction, strata's lock, the ledger) failed.
fn cannot_begin(target: &Target, step: &Prepared, e: postgres::Error) -> Error {
    target.error(
        format!(
            "cannot begin {} (its transaction, strata's lock, the ledger and strata's schema)",
            step.migration
        ),
        e,
    )
}

/// The first statement of a step's `do.sql`, when the batch that begins the step can carry it:
/// the step's first action is `do.sql`, its first statement is not refused and holds no NUL,
/// no probe counts rows before it, and the user's settings (`user`) leave the server reading the statement as
/// strata's settings do (the server reads the whole batch before it runs any of it, so the
/// user's `backslash_quote` would not apply to it yet).
fn pipelined(ctx: &Context<'_>, step: &Prepared, user: &str) -> Option<script::Statement> {
    if user.contains("backslash_quote") {
        return None;
    }
    let file = step.migration.file("do.sql");
    let s = script::statements(&file, &step.do_sql)
        .ok()?
        .into_iter()
        .next()?;
    let probed = crate::core::step::probes_at(step, ctx.phase, 1, s.line)
        .next()
        .is_some();
    // A NUL cannot go in a simple query: the client refuses the whole batch, which would then
    // read as strata's part failing.
    let sendable = !s.text.contains('\0');
    (super::server_wide::changes(&s.text).is_none() && !probed && sendable).then_some(s)
}

/// Fails the action if it changed strata's bookkeeping (see `ledger::signature`): the
/// `strata` schema is strata's alone, as `strata_*` tables are on SQLite.
fn check_bookkeeping(
    tx: &mut Session,
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
    bookkeeping_untouched(tx, file, &action.to_string(), "step", untouched)
}

/// Fails `what` (an action of a step, `undo.sql`; in `file`) if it changed strata's bookkeeping
/// from its fingerprint `untouched` (`ledger::SIGNATURE`), or left an object that could change
/// it later (`ledger::WRITERS`): one round trip, planned once a connection (see
/// `super::Checks`). `undone` is what rolls back (`step`, `undo`).
pub(crate) fn bookkeeping_untouched(
    tx: &mut Session,
    file: Option<PathBuf>,
    what: &str,
    undone: &str,
    untouched: &str,
) -> Result<(), ActionError> {
    let changed = |detail: String| ActionError {
        file: file.clone(),
        statement: None,
        index: None,
        message: format!(
            "{what} changed strata's bookkeeping ({detail}): the `strata` schema, its tables, \
             their rows, triggers and functions are strata's alone (the ledger and the \
             append-only audit log); the {undone} was rolled back. Leave the strata schema out \
             of migrations"
        ),
        code: None,
    };
    let read = tx.checks().map(|c| c.check.clone()).and_then(|check| {
        let row = tx.query_one(&check, &[])?;
        Ok((row.get::<_, String>(0), row.get::<_, String>(1)))
    });
    let (now, found) = match read {
        Ok(read) => read,
        Err(e) => return Err(changed(describe_error(&e))),
    };
    if !found.is_empty() {
        return Err(ActionError {
            file: file.clone(),
            statement: None,
            index: None,
            message: format!(
                "{what} left {found} that could change strata's bookkeeping later, when it runs \
                 as its owner outside any step: the ledger and the audit log are strata's \
                 alone; the {undone} was rolled back. Keep strata's schema and tables out of \
                 functions, triggers, rules and writable views"
            ),
            code: None,
        });
    }
    if now == untouched {
        Ok(())
    } else {
        Err(changed(
            "the schema or its rows differ from before the action".into(),
        ))
    }
}

/// Runs one action; returns the rows it wrote (statements run, for checks) and the fuel a
/// component burned.
fn run_action(
    tx: &mut Session,
    ctx: &Context<'_>,
    step: &Prepared,
    action: Action,
    events: &mut EventSink<'_>,
    first: Option<Result<u64, ActionError>>,
) -> Result<Done, ActionError> {
    let m = &step.migration;
    let sql = |rows: Result<u64, ActionError>| rows.map(|rows| Done { rows, fuel: None });
    match action {
        Action::DoSql => sql(run_script(
            tx,
            &m.file("do.sql"),
            step,
            ctx.phase,
            events,
            first,
        )),
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
                    let book = tx.book().to_string();
                    let tenant = super::ledger::tenant_of(&book);
                    let fleet_schemas: Vec<String> = tx.fleet_schemas().into();
                    let scope = super::component::Scope {
                        tenant,
                        fleet_schemas: &fleet_schemas,
                    };
                    tx.lend(|client| sb.call_postgres(client, call, scope, ctx.statement_timeout))
                },
            )
            .map_err(|(path, message)| ActionError::new(Some(path), None, message))
        }
        Action::ForeignKeyCheck | Action::Snapshot | Action::Record | Action::Undo => sql(Ok(0)),
    }
}

/// A statement's failure, located in its file; `sent` is how many characters came before the
/// statement in what was sent with it.
fn statement_error(
    file: &Path,
    s: &script::Statement,
    e: &postgres::Error,
    sent: usize,
) -> ActionError {
    // The server's position (characters from 1 of what was sent) points into the statement:
    // name that line.
    let line = e
        .as_db_error()
        .and_then(|d| match d.position() {
            Some(postgres::error::ErrorPosition::Original(p)) => {
                Some((*p as usize).saturating_sub(sent))
            }
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
    let db = e.as_db_error();
    let mut message = describe_error(e);
    if db.and_then(|d| d.schema()) == Some(super::ledger::SCHEMA_NAME) {
        message.push_str(
            "; the statement reached strata's bookkeeping (the `strata` schema), which is \
             strata's alone: leave it out of migrations",
        );
    } else if db.is_some_and(|d| *d.code() == postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
        && file.ends_with("checks.sql")
    {
        message.push_str("; checks.sql runs read-only: a check may read, never write");
    }
    ActionError {
        code: sqlstate(e),
        ..ActionError::new(
            Some(file.to_path_buf()),
            Some((line, one_line(&s.text))),
            message,
        )
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
        index: None,
        message: e.to_string(),
        code: None,
    })
}

/// Refuses a statement of a migration's SQL that changes the whole server (see
/// `super::server_wide`), before it runs.
pub(crate) fn refuse_server_wide(file: &Path, s: &script::Statement) -> Result<(), ActionError> {
    match super::server_wide::changes(&s.text) {
        Some(what) => Err(ActionError::new(
            Some(file.to_path_buf()),
            Some((s.line, one_line(&s.text))),
            super::server_wide::refusal(what),
        )),
        None => Ok(()),
    }
}

/// Runs each statement of a step's do.sql; returns the rows they changed. Before a statement a
/// probe names (see [`crate::core::step::Probe`]), counts its table's rows. `first` is how the
/// first statement went when it ran already (see [`PgStep::first`]).
fn run_script(
    tx: &mut Client,
    file: &Path,
    step: &Prepared,
    phase: Phase,
    events: &mut EventSink<'_>,
    mut first: Option<Result<u64, ActionError>>,
) -> Result<u64, ActionError> {
    let mut changed = 0;
    for (i, s) in split(file, &step.do_sql)?.into_iter().enumerate() {
        let index = i + 1;
        if let Some(done) = first.take() {
            changed += done?;
            continue;
        }
        refuse_server_wide(file, &s).map_err(|e| e.at_index(index))?;
        for p in crate::core::step::probes_at(step, phase, index, s.line) {
            if let Some(rows) = count_rows(tx, &p.table) {
                events(&Event::TableRows {
                    phase,
                    migration: &step.migration,
                    index,
                    line: s.line,
                    table: &p.table,
                    rows,
                });
            }
        }
        let messages = tx
            .simple_query(&s.text)
            .map_err(|e| statement_error(file, &s, &e, 0).at_index(index))?;
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

/// The rows of `table` (up to [`crate::core::step::PROBE_LIMIT`]), in a savepoint of its own so
/// that a table that cannot be read (not there, refused) leaves the step's transaction as it
/// was and is not counted.
fn count_rows(tx: &mut Client, table: &str) -> Option<u64> {
    let sql = format!(
        "SAVEPOINT strata_probe; SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {}) AS rows; \
         RELEASE SAVEPOINT strata_probe",
        quote_ident(table),
        crate::core::step::PROBE_LIMIT
    );
    match tx.simple_query(&sql) {
        Ok(messages) => messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|n| n.parse().ok()),
            _ => None,
        }),
        Err(_) => {
            // The failed SELECT left the savepoint aborted; if this fails too, the step's next
            // statement fails and says why.
            let _ = tx.batch_execute(
                "ROLLBACK TO SAVEPOINT strata_probe; RELEASE SAVEPOINT strata_probe",
            );
            None
        }
    }
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
                index: None,
                message: format!("table `{table}`, row {}: {}", i + 1, describe_error(&e)),
                code: sqlstate(&e),
            })?;
            count += 1;
        }
    }
    Ok(count)
}

/// Runs each query of checks.sql read-only, inside a savepoint that is rolled back; any row
/// returned is a violation.
fn run_checks(tx: &mut Client, file: &Path, sql: &str) -> Result<u64, ActionError> {
    let mut count = 0;
    for s in split(file, sql)? {
        // Read-only as well: a sequence's nextval or setval is not undone by the rollback.
        tx.batch_execute("SAVEPOINT strata_check; SET LOCAL transaction_read_only = on")
            .map_err(|e| statement_error(file, &s, &e, 0))?;
        let messages = tx.simple_query(&s.text);
        // Rolled back whatever happened: a check changes nothing.
        let undone =
            tx.batch_execute("ROLLBACK TO SAVEPOINT strata_check; RELEASE SAVEPOINT strata_check");
        let messages = messages.map_err(|e| statement_error(file, &s, &e, 0))?;
        undone.map_err(|e| statement_error(file, &s, &e, 0))?;
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
                index: None,
                message: crate::core::step::violating_rows(violations, &shown),
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
