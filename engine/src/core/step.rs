//! One migration as a step, the same on every backend: its inputs read and checked before
//! anything runs ([`Prepared`]), how it ended ([`Applied`], [`Failed`]), its audit entries, the
//! loop over its actions ([`run_actions`]) and a component's call ([`component`]). Each backend
//! applies a step in its own transaction (`crate::sqlite::step`, `crate::postgres::step`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::components::limits::Limits;
use crate::components::{Call, Called, Policy, Sandbox, World};
use crate::core::checksum::Pinned;
use crate::core::config::MigrationConfig;
use crate::core::data::DataSet;
use crate::core::error::{Error, Refusal, StepFailure};
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::ledger::{Entry, Outcome};
use crate::core::tree::Migration;

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
            _ => match std::fs::read(&snapshot_path) {
                Ok(b) => Some(
                    String::from_utf8(b)
                        .map_err(|_| Error::input(&snapshot_path, "is not UTF-8 text"))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io(snapshot_path, e)),
            },
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

/// An action that failed, after its step was rolled back.
pub(crate) struct Failed {
    pub action: Action,
    pub file: Option<PathBuf>,
    /// The failing statement's line and text.
    pub statement: Option<(usize, String)>,
    pub message: String,
    /// The database's code for the failure, when it gave one.
    pub code: Option<crate::core::error::DbCode>,
    pub elapsed: Duration,
}

impl Failed {
    /// The step's audit rows after its rollback (what ran, marked rolled back, then the
    /// failure), written by `audit` in a transaction of its own; and the error to return,
    /// which says so if the audit log could not be written.
    pub(crate) fn audited(
        self,
        phase: Phase,
        step: &Prepared,
        db: PathBuf,
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
            message,
            code: self.code,
            applied_before: Vec::new(),
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
pub(crate) fn run_actions<E>(
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
    let call = Call {
        world,
        wasm,
        limits: step.config.limits(limits),
        policy: Policy::new(
            sandbox_cfg.reads.as_deref(),
            sandbox_cfg.writes.as_deref(),
            m.file(crate::core::config::MIGRATION_CONFIG_FILE),
        )
        .with_triggers(sandbox_cfg.triggers),
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

/// The audit row of an undo: its action is `undo.sql`, its checksum the undo script's.
pub(crate) fn undo_entry(
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
