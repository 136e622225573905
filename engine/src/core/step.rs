//! One migration as a step, the same on every backend: its inputs read and checked before
//! anything runs ([`Prepared`]), how it ended ([`Applied`], [`Failed`]), its audit entries, the
//! loop over its actions and a component's call ([`component`]); [`apply`], the step itself,
//! written once over what a backend does ([`StepDriver`]: `crate::sqlite::step`,
//! `crate::postgres::step`), and [`undo_all`], `strata undo`'s steps, over [`UndoDriver`]
//! (`crate::sqlite::step`, `crate::postgres::run`), in the manner of refinery's one executor
//! over its drivers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::components::limits::Limits;
use crate::components::{Call, Called, Policy, Sandbox, World};
use crate::core::backend::{UndoStep, Undone};
use crate::core::checksum::Pinned;
use crate::core::config::MigrationConfig;
use crate::core::data::DataSet;
use crate::core::error::{DbCode, Error, Refusal, StepFailure};
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::input::Dialect;
use crate::core::ledger::{Entry, Outcome};
use crate::core::tree::{Migration, MigrationId};

/// A migration with every input read and parsed, so a run finds bad input before it touches a
/// database.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub migration: Migration,
    pub config: MigrationConfig,
    pub do_sql: String,
    pub checks: Option<String>,
    pub test_data: Option<DataSet>,
    pub proj_data: Option<DataSet>,
    pub transform: Option<Vec<u8>>,
    pub test_seed: Option<Vec<u8>>,
    pub proj_seed: Option<Vec<u8>>,
    pub check: Option<Vec<u8>>,
    /// `schema.sql`: the module's schema expected after this step.
    pub snapshot: Option<String>,
    /// Components older than their guest crates' sources (see `guest::check_components`).
    pub stale: Vec<String>,
    /// `migration.checksum()`, computed once.
    pub checksum: String,
    /// The statements of `do.sql` before which a rehearsal counts a table's rows (the
    /// data-dependent lint findings', set by the command that runs the step).
    pub probes: Vec<Probe>,
}

/// A statement of `do.sql` whose verdict depends on a table's rows: before it runs in a phase
/// that is not the real database's, the driver counts the table's rows (up to [`PROBE_LIMIT`])
/// and says so with [`Event::TableRows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The statement's position among `do.sql`'s statements, from 1.
    pub index: usize,
    /// Its first line, from 1 (the driver checks both, so a statement split another way is
    /// not counted for another).
    pub line: usize,
    /// The table, unqualified, as the statement names it.
    pub table: String,
}

/// The most rows a probe counts: more say "at least this many".
pub const PROBE_LIMIT: u64 = 10_000;

/// The probes of `step` before its `index`th statement (at `line`) of do.sql, in a phase that
/// counts rows (not the real database's).
pub(crate) fn probes_at(
    step: &Prepared,
    phase: Phase,
    index: usize,
    line: usize,
) -> impl Iterator<Item = &Probe> {
    step.probes
        .iter()
        .filter(move |p| phase != Phase::Apply && p.index == index && p.line == line)
}

impl Prepared {
    /// Reads every file of `m` that runs, once: the step runs these bytes, and the checksum
    /// it records is theirs. Refuses when they are not the bytes `m`'s manifest was taken from
    /// (a file changed after the tree was loaded and validated).
    pub fn load(m: &Migration) -> Result<Prepared, Error> {
        Prepared::load_for(m, crate::core::input::Dialect::Sqlite)
    }

    /// [`Prepared::load`], checking the SQL files as `dialect`'s scripts.
    pub fn load_for(
        m: &Migration,
        dialect: crate::core::input::Dialect,
    ) -> Result<Prepared, Error> {
        let mut pinned = match &m.contents {
            Some(contents) => Pinned::from_contents(&m.dir, contents, &m.manifest)?,
            None => Pinned::read(&m.dir)?,
        };
        if pinned.manifest() != &m.manifest {
            return Err(Error::Refused(vec![Refusal::ChangedDuringRun {
                migration: m.label(),
                files: m.manifest.changed_files(pinned.manifest()),
            }]));
        }
        let text = |pinned: &mut Pinned, name: &str| -> Result<Option<String>, Error> {
            pinned
                .take(name)
                .map(|b| {
                    let text = String::from_utf8(b)
                        .map_err(|_| Error::input(m.file(name), "is not UTF-8 text"))?;
                    if name.ends_with(".sql") && name != crate::core::design::SNAPSHOT {
                        crate::core::input::check(dialect, &m.file(name), &text)?;
                    }
                    Ok(text)
                })
                .transpose()
        };
        let config = match text(&mut pinned, crate::core::config::MIGRATION_CONFIG_FILE)? {
            Some(t) => {
                MigrationConfig::parse(&m.file(crate::core::config::MIGRATION_CONFIG_FILE), &t)?
            }
            None => MigrationConfig::default(),
        };
        let mut data = |name: &str| -> Result<Option<DataSet>, Error> {
            text(&mut pinned, name)?
                .map(|t| DataSet::parse(&m.file(name), &t))
                .transpose()
        };
        let test_data = data("test-data/data.json")?;
        let proj_data = data("proj-data/data.json")?;
        // schema.sql is not pinned: it is what the step is compared with, not what runs.
        let snapshot_path = m.file(crate::core::design::SNAPSHOT);
        // Not looked for when the tree's listing showed none.
        let snapshot = match m.held(crate::core::design::SNAPSHOT) {
            Some(false) => None,
            _ => crate::core::input::read_project_text(
                &snapshot_path,
                crate::core::input::FILE_BYTES,
            )?,
        };
        let mut migration = m.clone();
        migration.manifest = pinned.manifest().clone();
        Ok(Prepared {
            checksum: migration.checksum(),
            stale: crate::core::guest::check_components(m, &config.build)?,
            config,
            do_sql: text(&mut pinned, "do.sql")?.unwrap_or_default(),
            checks: text(&mut pinned, "checks.sql")?,
            test_data,
            proj_data,
            transform: pinned.take("transform.wasm"),
            test_seed: pinned.take("test-data/seed.wasm"),
            proj_seed: pinned.take("proj-data/seed.wasm"),
            check: pinned.take("check.wasm"),
            snapshot,
            migration,
            probes: Vec::new(),
        })
    }

    /// Whether the step's SQL names `strata_object` (and so may read who owns what).
    pub(crate) fn names_ownership(&self) -> bool {
        let names = |sql: &str| {
            sql.to_ascii_lowercase()
                .contains(crate::core::ledger::OBJECT_TABLE)
        };
        names(&self.do_sql) || self.checks.as_deref().is_some_and(names)
    }

    /// Whether any part of this step is a WebAssembly component.
    pub fn has_components(&self) -> bool {
        self.transform.is_some()
            || self.test_seed.is_some()
            || self.proj_seed.is_some()
            || self.check.is_some()
    }

    /// The actions this step runs, in order; test data only when `test_data`.
    pub fn actions(&self, test_data: bool) -> Vec<Action> {
        let mut actions = vec![Action::DoSql];
        let mut add = |present: bool, action| {
            if present {
                actions.push(action);
            }
        };
        add(self.transform.is_some(), Action::Transform);
        add(test_data && self.test_data.is_some(), Action::TestData);
        add(test_data && self.test_seed.is_some(), Action::TestSeed);
        add(self.proj_data.is_some(), Action::ProjData);
        add(self.proj_seed.is_some(), Action::ProjSeed);
        add(self.checks.is_some(), Action::Checks);
        add(self.check.is_some(), Action::CheckComponent);
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

/// What an action did.
pub(crate) struct Done {
    pub rows: u64,
    /// Fuel a component burned.
    pub fuel: Option<u64>,
}

/// What went wrong inside an action, on either backend: the file and statement it points at
/// (the statement's line and its text on one line) and the message.
#[derive(Debug)]
pub(crate) struct ActionError {
    pub file: Option<PathBuf>,
    pub statement: Option<(usize, String)>,
    /// The statement's position among its file's statements, from 1 (32 bits keep the error
    /// small; a script of more statements has none).
    pub index: Option<u32>,
    pub message: String,
    /// The database's code for the failure (a SQLSTATE, SQLite's extended result code), when
    /// the database refused.
    pub code: Option<DbCode>,
}

impl ActionError {
    pub(crate) fn new(
        file: Option<PathBuf>,
        statement: Option<(usize, String)>,
        message: impl Into<String>,
    ) -> Self {
        ActionError {
            file,
            statement,
            index: None,
            message: message.into(),
            code: None,
        }
    }

    /// The same, at the `index`th statement of its file.
    pub(crate) fn at_index(self, index: usize) -> Self {
        ActionError {
            index: u32::try_from(index).ok(),
            ..self
        }
    }
}

/// How a step's commit failed.
pub(crate) enum Commit {
    /// It waited past the lock or busy timeout: an error, not the step's failure.
    Locked(Error),
    /// The step fails at the action given: [`Action::Record`] when recording it failed, or an
    /// action whose check the driver made in its commit.
    Failed(Action, ActionError),
}

/// What a backend does for [`apply`], on the connection of one phase (in the manner of
/// refinery's drivers under its one executor). `apply` calls these in order: [`begin`],
/// [`is_applied`] (then [`skip`] when it is), [`before_actions`], [`run_action`] for each of
/// the step's actions (the foreign-key check among them when [`FOREIGN_KEY_CHECK`]),
/// [`after_actions`], [`commit`]; after a failure [`rollback`] and then [`audit_failure`], in
/// a transaction of its own.
///
/// [`begin`]: StepDriver::begin
/// [`is_applied`]: StepDriver::is_applied
/// [`skip`]: StepDriver::skip
/// [`before_actions`]: StepDriver::before_actions
/// [`run_action`]: StepDriver::run_action
/// [`FOREIGN_KEY_CHECK`]: StepDriver::FOREIGN_KEY_CHECK
/// [`after_actions`]: StepDriver::after_actions
/// [`commit`]: StepDriver::commit
/// [`rollback`]: StepDriver::rollback
/// [`audit_failure`]: StepDriver::audit_failure
pub(crate) trait StepDriver {
    /// The SQL the database speaks (a failure says what its rollback keeps).
    const DIALECT: Dialect;

    /// The database, as a failure names it.
    fn db(&self) -> PathBuf;

    /// Opens the step's transaction (a savepoint inside the phase's one with
    /// `--single-transaction`) and takes whatever lock it runs under.
    fn begin(&mut self, step: &Prepared) -> Result<(), Error>;

    /// Whether the ledger holds the step already (another process applied it first), read
    /// inside the step's transaction. An error rolls the step back.
    fn is_applied(&mut self, step: &Prepared) -> Result<bool, Error>;

    /// Ends the transaction of a step found applied, changing nothing.
    fn skip(&mut self);

    /// After [`Event::StepStarted`], before the first action: what the backend reads to judge
    /// the actions by (who owns what, the state of its bookkeeping). An error rolls the step
    /// back.
    fn before_actions(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<(), Error>;

    /// Whether strata checks foreign keys as an action of its own after the step's
    /// ([`Action::ForeignKeyCheck`]; a server that enforces them itself needs none).
    const FOREIGN_KEY_CHECK: bool;

    /// Runs one action: the rows it wrote and the fuel a component burned.
    fn run_action(
        &mut self,
        step: &Prepared,
        action: Action,
        events: &mut EventSink<'_>,
    ) -> Result<Done, ActionError>;

    /// After the actions: records what the step created and compares the module's schema with
    /// the step's `schema.sql`; returns the schema to write as `schema.sql` once committed
    /// (when the phase writes missing snapshots). A failure names its action.
    fn after_actions(&mut self, step: &Prepared) -> Result<Option<String>, (Action, ActionError)>;

    /// Records the step in the ledger, with its audit rows `log`, and commits.
    fn commit(&mut self, step: &Prepared, log: &[Entry], elapsed: Duration) -> Result<(), Commit>;

    /// Rolls back the step (with `--single-transaction`, as the backend does: the savepoint or
    /// the phase's whole transaction).
    fn rollback(&mut self);

    /// Writes a failed step's audit rows after its rollback, in a transaction of its own (or
    /// keeps them for the phase to write once it has rolled back).
    fn audit_failure(&mut self, log: &[Entry]) -> Result<(), String>;
}

/// Applies one prepared migration through its backend's `driver`, the same on every backend:
/// begin, pass over a step another process applied first, [`Event::StepStarted`], the actions
/// in order, what the backend records and compares after them, the ledger row and the commit,
/// then the snapshot files; a failure is rolled back and audited after the rollback, so the
/// log survives the failure it records.
pub(crate) fn apply<D: StepDriver>(
    driver: &mut D,
    phase: Phase,
    step: &Prepared,
    test_data: bool,
    events: &mut EventSink<'_>,
) -> Result<Applied, Error> {
    let m = &step.migration;
    let started = Instant::now();
    driver.begin(step)?;
    match driver.is_applied(step) {
        Ok(false) => {}
        Ok(true) => {
            driver.skip();
            events(&Event::StepSkipped {
                phase,
                migration: m,
            });
            return Ok(Applied::AlreadyApplied);
        }
        Err(e) => {
            driver.rollback();
            return Err(e);
        }
    }
    events(&Event::StepStarted {
        phase,
        migration: m,
    });
    if let Err(e) = driver.before_actions(step, events) {
        driver.rollback();
        return Err(e);
    }
    let mut actions = step.actions(test_data);
    actions.retain(|a| D::FOREIGN_KEY_CHECK || *a != Action::ForeignKeyCheck);
    let (mut log, mut failure) = run_actions(phase, step, actions, events, |action, events| {
        driver.run_action(step, action, events)
    });
    if failure.is_none() {
        match driver.after_actions(step) {
            Ok(snapshot) => {
                let elapsed = started.elapsed();
                match driver.commit(step, &log, elapsed) {
                    Ok(()) => {
                        if let Some(sql) = snapshot {
                            for path in write_snapshot(m, &sql)? {
                                events(&Event::SnapshotWritten {
                                    migration: m,
                                    path: &path,
                                });
                            }
                        }
                        return Ok(Applied::Committed { elapsed });
                    }
                    Err(Commit::Locked(e)) => {
                        driver.rollback();
                        return Err(e);
                    }
                    Err(Commit::Failed(action, err)) => {
                        failure = Some((action, err, started.elapsed()));
                    }
                }
            }
            Err((action, err)) => failure = Some((action, err, started.elapsed())),
        }
    }
    driver.rollback();

    // The step is rolled back; now its audit rows, in a transaction of their own.
    let (action, err, elapsed) = failure.expect("the step failed");
    // An action that ran but failed a check the driver made of it later (in its commit) is
    // recorded once, as failed, as one that failed as it ran.
    if log.last().is_some_and(|e| e.action == action.as_str()) {
        log.pop();
    }
    let failed = Failed {
        action,
        file: err.file,
        statement: err.statement,
        index: err.index.map(|i| i as usize),
        message: err.message,
        code: err.code,
        elapsed,
    };
    let db = (driver.db(), D::DIALECT);
    Err(failed.audited(phase, step, db, log, |log| driver.audit_failure(log)))
}

/// An action that failed, after its step was rolled back.
struct Failed {
    action: Action,
    file: Option<PathBuf>,
    /// The failing statement's line and text.
    statement: Option<(usize, String)>,
    index: Option<usize>,
    message: String,
    /// The database's code for the failure, when it gave one.
    code: Option<DbCode>,
    elapsed: Duration,
}

impl Failed {
    /// The step's audit rows after its rollback (what ran, marked rolled back, then the
    /// failure), written by `audit` in a transaction of its own; and the error to return,
    /// which says so if the audit log could not be written.
    fn audited(
        self,
        phase: Phase,
        step: &Prepared,
        (db, dialect): (PathBuf, Dialect),
        mut log: Vec<Entry>,
        audit: impl FnOnce(&[Entry]) -> Result<(), String>,
    ) -> Error {
        for e in &mut log {
            e.outcome = Outcome::RolledBack;
        }
        log.push(entry(
            phase,
            step,
            self.action,
            Outcome::Failed,
            Some(self.message.clone()),
            None,
            self.elapsed,
        ));
        let mut message = self.message;
        if let Err(e) = audit(&log) {
            message.push_str(&format!(
                "\n(the failure could not be written to the audit log: {e})"
            ));
        }
        StepFailure {
            phase,
            db,
            migration: step.migration.label(),
            action: self.action,
            file: self.file,
            statement: self.statement,
            index: self.index,
            message,
            code: self.code,
            applied_before: Vec::new(),
            kept_by_rollback: dialect.kept_by_rollback(),
        }
        .into()
    }
}

/// Writes a step's `schema.sql`, and its module's LATEST/schema.sql when the step is the
/// module's newest migration on disk.
pub(crate) fn write_snapshot(m: &Migration, sql: &str) -> Result<Vec<PathBuf>, Error> {
    let module_dir = m
        .dir
        .parent()
        .expect("a migration folder is inside its module");
    let newest = std::fs::read_dir(module_dir)
        .map_err(|e| Error::io(module_dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| crate::core::tree::parse_folder_name(n).is_ok())
        .max();
    crate::core::design::write_snapshot(m, sql, newest.as_deref() == Some(m.folder().as_str()))
}

/// Runs a step's `actions` in order with `run`, on either backend: each that succeeds gets its
/// audit entry and an [`Event::ActionDone`]; the first that fails ends the loop and comes back
/// with its action, error and time.
fn run_actions<E>(
    phase: Phase,
    step: &Prepared,
    actions: Vec<Action>,
    events: &mut EventSink<'_>,
    mut run: impl FnMut(Action, &mut EventSink<'_>) -> Result<Done, E>,
) -> (Vec<Entry>, Option<(Action, E, Duration)>) {
    let mut log = Vec::new();
    for action in actions {
        let t = Instant::now();
        match run(action, events) {
            Ok(done) => {
                let elapsed = t.elapsed();
                let mut e = entry(
                    phase,
                    step,
                    action,
                    Outcome::Ok,
                    None,
                    Some(done.rows),
                    elapsed,
                );
                e.fuel_used = done.fuel;
                log.push(e);
                events(&Event::ActionDone {
                    phase,
                    migration: &step.migration,
                    action,
                    rows: done.rows,
                    fuel: done.fuel,
                    elapsed,
                });
            }
            Err(err) => return (log, Some((action, err, t.elapsed()))),
        }
    }
    (log, None)
}

/// How many violating rows a failure message shows.
pub(crate) const SHOWN_ROWS: usize = 5;

/// Why `checks.sql` fails, on either backend: a query returned `violations` rows, of which
/// `shown` (at most [`SHOWN_ROWS`]) are described.
pub(crate) fn violating_rows(violations: usize, shown: &[String]) -> String {
    format!(
        "the check returned {violations} violating row{}:\n{}{}",
        if violations == 1 { "" } else { "s" },
        shown.join("\n"),
        if violations > shown.len() {
            "\n..."
        } else {
            ""
        }
    )
}

/// The audit entry of one action of `step`.
pub(crate) fn entry(
    phase: Phase,
    step: &Prepared,
    action: Action,
    outcome: Outcome,
    detail: Option<String>,
    rows: Option<u64>,
    elapsed: Duration,
) -> Entry {
    let m = &step.migration;
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
        checksum: Some(step.checksum.clone()),
    }
}

/// Runs one of the step's components in the sandbox, on either backend: `run` makes the call
/// on the step's connection. Reports the component's start and its log lines; a failure comes
/// back as the component's file and the message.
pub(crate) fn component(
    sandbox: Option<&Sandbox>,
    limits: &Limits,
    step: &Prepared,
    action: Action,
    events: &mut EventSink<'_>,
    run: impl FnOnce(&Sandbox, &Call<'_>) -> Called,
) -> Result<Done, (PathBuf, String)> {
    let m = &step.migration;
    let seed_params = |d: &Option<DataSet>| d.as_ref().and_then(|d| d.seed_params.clone());
    let (world, file, wasm, params) = match action {
        Action::Transform => (World::Transform, "transform.wasm", &step.transform, None),
        Action::TestSeed => (
            World::Seed,
            "test-data/seed.wasm",
            &step.test_seed,
            seed_params(&step.test_data),
        ),
        Action::ProjSeed => (
            World::Seed,
            "proj-data/seed.wasm",
            &step.proj_seed,
            seed_params(&step.proj_data),
        ),
        _ => (World::Check, "check.wasm", &step.check, None),
    };
    let path = m.file(file);
    let wasm = wasm
        .as_deref()
        .expect("the action runs only when its component is present");
    let Some(sandbox) = sandbox else {
        return Err((path, "no sandbox was set up for this run".into()));
    };
    let sandbox_cfg = &step.config.sandbox;
    let policy = Policy::new(
        sandbox_cfg.reads.as_deref(),
        sandbox_cfg.writes.as_deref(),
        m.file(crate::core::config::MIGRATION_CONFIG_FILE),
    )
    .with_triggers(sandbox_cfg.triggers);
    // A check only reads, whatever the manifest grants the migration's other components.
    let policy = match world {
        World::Check => policy.read_only(),
        _ => policy,
    };
    let call = Call {
        world,
        wasm,
        // The manifest hashed these very bytes when the step was read.
        sha256: m.manifest.sha256_of(file),
        limits: step.config.limits(limits),
        policy,
        seed_params: params.as_deref().unwrap_or("{}"),
        progress: Arc::new(AtomicU64::new(0)),
    };
    events(&Event::ComponentStarted {
        migration: m,
        action,
        rows_written: Arc::clone(&call.progress),
    });
    let Called { outcome, result } = run(sandbox, &call);
    for line in &outcome.logs {
        events(&Event::ComponentLog {
            migration: m,
            action,
            level: line.level,
            message: &line.message,
        });
    }
    match result {
        Ok(()) => Ok(Done {
            rows: outcome.rows_changed,
            fuel: Some(outcome.fuel_used),
        }),
        Err(e) => Err((
            path,
            format!("{world} component: {e}", world = world.name()),
        )),
    }
}

/// Why an undo stopped: a failure of the undo itself (rolled back, audited and returned as the
/// step's failure at `undo.sql`), or an error reaching the database (rolled back and returned
/// as it is).
pub(crate) enum UndoError {
    Failed(ActionError),
    Error(Error),
}

impl From<ActionError> for UndoError {
    fn from(e: ActionError) -> Self {
        UndoError::Failed(e)
    }
}

/// What a backend does for [`undo`], on one connection: the undo's transaction (begun under
/// the backend's lock), whether the migration is still applied, what the backend reads
/// before `undo.sql` to judge it by, the script and its checks, the ledger row and owners
/// forgotten with the audit row written, the commit; after a failure the rollback and the
/// failure's audit row.
pub(crate) trait UndoDriver {
    /// The SQL the database speaks (a failure says what its rollback keeps).
    const DIALECT: Dialect;

    /// The database, as a failure names it.
    fn db(&self) -> PathBuf;

    /// Opens the undo's transaction for `m`'s `undo.sql` (`sql`; a backend that splits the
    /// script into statements does so first, so a script it cannot split fails before
    /// anything begins).
    fn begin(&mut self, m: &Migration, sql: &str) -> Result<(), UndoError>;

    /// The migrations the ledger holds now, read inside the undo's transaction (under the
    /// backend's lock).
    fn applied(&mut self) -> Result<Vec<MigrationId>, UndoError>;

    /// Ends the transaction of a migration no longer applied, changing nothing.
    fn skip(&mut self) -> Result<(), UndoError>;

    /// Runs `undo.sql` (`sql`, read from `file`) and checks what it did; returns the rows it
    /// changed.
    fn run(&mut self, file: &Path, sql: &str) -> Result<u64, UndoError>;

    /// Removes `m`'s ledger row and the owners of objects that are gone, and writes `entry`
    /// to the audit log.
    fn forget(&mut self, m: &Migration, entry: &Entry) -> Result<(), UndoError>;

    /// Commits the undo.
    fn commit(&mut self) -> Result<(), UndoError>;

    /// Rolls back whatever the undo began.
    fn rollback(&mut self);

    /// Writes a failed undo's audit row, after its rollback.
    fn audit_failure(&mut self, entry: &Entry) -> Result<(), String>;
}

/// `strata undo` on one database after its backup (`backup`), the same on every backend (see
/// `crate::core::backend::Run::undo`): each of `steps`, newest first, through `driver`; a
/// migration no longer applied is passed over. Stops at the first failure.
pub(crate) fn undo_all(
    driver: &mut impl UndoDriver,
    phase: Phase,
    steps: &[UndoStep<'_>],
    backup: Option<PathBuf>,
) -> Result<Undone, Error> {
    let mut undone = Vec::new();
    for s in steps {
        if undo(driver, phase, s.migration, &s.sql, &s.checksum)?.is_some() {
            undone.push(s.migration.label());
        }
    }
    Ok(Undone {
        phase,
        db: driver.db(),
        backup,
        undone,
    })
}

/// One migration of [`undo_all`], in a transaction of its own: `Ok(None)` when it is no
/// longer applied (another run undid it first), refused when a migration applied after it is
/// in the ledger, else the rows `undo.sql` changed. A failure
/// is rolled back, audited in a transaction of its own, and returned.
fn undo<D: UndoDriver>(
    driver: &mut D,
    phase: Phase,
    m: &Migration,
    sql: &str,
    checksum: &str,
) -> Result<Option<u64>, Error> {
    let started = Instant::now();
    let file = m.file("undo.sql");
    let mut run = || -> Result<Option<u64>, UndoError> {
        driver.begin(m, sql)?;
        let applied = driver.applied()?;
        if !applied.contains(&m.id) {
            driver.skip()?;
            return Ok(None);
        }
        // Only the newest applied migration may be undone: one applied after it (by a run
        // that came in after undo chose) may build on what its undo.sql takes away.
        let mut newer: Vec<&MigrationId> = applied
            .iter()
            .filter(|a| a.global_cmp(&m.id).is_gt())
            .collect();
        if !newer.is_empty() {
            newer.sort_by(|a, b| a.global_cmp(b));
            return Err(UndoError::Error(Error::Refused(vec![Refusal::NotNewest {
                db: driver.db(),
                migration: m.label(),
                newer: newer
                    .iter()
                    .map(|a| format!("{}/{}", a.module, a.stamp))
                    .collect(),
            }])));
        }
        let rows = driver.run(&file, sql)?;
        let entry = undo_entry(phase, m, checksum, Outcome::Ok, None, Some(rows), started);
        driver.forget(m, &entry)?;
        driver.commit()?;
        Ok(Some(rows))
    };
    let failure = match run() {
        Ok(undone) => return Ok(undone),
        Err(UndoError::Error(e)) => {
            driver.rollback();
            return Err(e);
        }
        Err(UndoError::Failed(failure)) => failure,
    };
    driver.rollback();
    let entry = undo_entry(
        phase,
        m,
        checksum,
        Outcome::Failed,
        Some(failure.message.clone()),
        None,
        started,
    );
    let mut message = failure.message;
    if let Err(e) = driver.audit_failure(&entry) {
        message.push_str(&format!(
            "\n(the failure could not be written to the audit log: {e})"
        ));
    }
    Err(StepFailure {
        phase,
        db: driver.db(),
        migration: m.label(),
        action: Action::Undo,
        file: failure.file,
        statement: failure.statement,
        index: failure.index.map(|i| i as usize),
        message,
        code: None,
        applied_before: Vec::new(),
        kept_by_rollback: D::DIALECT.kept_by_rollback(),
    }
    .into())
}

/// The audit row of an undo: its action is `undo.sql`, its checksum the undo script's.
fn undo_entry(
    phase: Phase,
    m: &Migration,
    checksum: &str,
    outcome: Outcome,
    detail: Option<String>,
    rows: Option<u64>,
    started: Instant,
) -> Entry {
    Entry {
        phase: phase.as_str().into(),
        module: Some(m.id.module.clone()),
        stamp: Some(m.id.stamp.clone()),
        action: Action::Undo.as_str().into(),
        outcome,
        detail,
        rows,
        fuel_used: None,
        duration_ms: Some(started.elapsed().as_millis() as u64),
        checksum: Some(checksum.to_string()),
    }
}
