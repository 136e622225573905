//! The run: validate, rehearse on the test database, then apply to the real one (DESIGN §5).
//!
//! `migrate` reads like the algorithm: load the tree, plan every database and refuse before
//! touching anything, read every input, then run phase 1 and phase 2 step by step. Also the
//! read-only views of a project (`status`, `plan`, `audit`), and `sandbox`. Each is written
//! once over `crate::core::backend::Backend`, whichever database the project names; a phase's steps
//! run through `crate::core::phase`. Steps themselves live in `step` (SQLite) and `postgres::step`;
//! `restore` lives in its own module.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backends;
use crate::core::backend::Backend;
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::{Action, Event, EventSink, Phase};
use crate::core::ledger::AuditRow;
use crate::core::phase::How;
use crate::core::phase::PhaseReport;
use crate::core::phase::Runner;
use crate::core::plan::{self, PlanOptions, StatusEntry};
use crate::core::step::Prepared;
use crate::core::target::Database;
use crate::core::tree::{Migration, MigrationId, Tree};

/// What `strata migrate` may do beyond the safe default.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub plan: PlanOptions,
    /// Rehearse on the test database first (the default; `--no-rehearsal` turns it off).
    pub rehearse: bool,
    /// Also rehearse on a throwaway copy of the real database before the real run.
    pub rehearse_on_copy: bool,
    /// Write missing `schema.sql` snapshots (and LATEST) from the test database.
    pub write_snapshots: bool,
    /// Migrate even if a module's live schema on the real database drifted from its snapshot.
    pub allow_drift: bool,
    /// Run all pending steps of a phase in one transaction, a savepoint per step (also
    /// `single_transaction` in strata.toml).
    pub single_transaction: bool,
    /// By migration (`module/folder`): the statements before which a rehearsal counts a
    /// table's rows (`crate::commands::lint::probes`); the real database's phase never does.
    pub probes: Probes,
}

/// Probes by migration (`module/folder`): see [`crate::core::step::Probe`].
pub type Probes = std::collections::HashMap<String, Vec<crate::core::step::Probe>>;

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            plan: PlanOptions::default(),
            rehearse: true,
            rehearse_on_copy: false,
            write_snapshots: false,
            allow_drift: false,
            single_transaction: false,
            probes: Probes::new(),
        }
    }
}

/// What `migrate` did, phase by phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrateReport {
    pub phases: Vec<PhaseReport>,
    /// The lint findings on the migrations the run applied, with what the rehearsal's rows
    /// said (set by the command line, for `--json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<crate::commands::lint::LintReport>,
}

/// A database of a run, opened with its backend, and the phase it is for.
type Target<'p> = (Phase, Box<dyn Backend + 'p>);

/// The databases a run works on, in order, each opened with its backend.
fn targets(project: &Project, rehearse: bool) -> Result<Vec<Target<'_>>, Error> {
    backends::check_project(project)?;
    let mut t = Vec::new();
    if rehearse {
        backends::check_distinct(project)?;
        t.push((Phase::Rehearsal, backends::open(project, &project.test_db)?));
    }
    t.push((Phase::Apply, backends::open(project, &project.db)?));
    Ok(t)
}

/// One database of a run, the migrations it will get, and those applied when it was planned.
type PhasePlan<'p, 't> = (
    Phase,
    Box<dyn Backend + 'p>,
    Vec<&'t Migration>,
    Vec<MigrationId>,
);

/// What [`plan_database`] found: the migrations to apply, and those applied when it looked
/// (what the phase checks the ledger against once it holds the run lock).
pub(crate) type Planned<'t> = (Vec<&'t Migration>, Vec<MigrationId>);

/// Plans every database of the run; refuses before anything is touched. The real database
/// must exist unless its backend creates it: finding out after the rehearsal would leave a
/// run half done.
fn validate<'p, 't>(
    project: &'p Project,
    tree: &'t Tree,
    phases: Vec<Target<'p>>,
    opts: &MigrateOptions,
) -> Result<Vec<PhasePlan<'p, 't>>, Error> {
    let mut plans = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in phases {
        match plan_database(&*db, phase, tree, opts)? {
            Ok((pending, applied)) => plans.push((phase, db, pending, applied)),
            Err(r) => refusals.extend(r),
        }
    }
    if !opts.allow_drift {
        refusals.extend(crate::commands::design::drift_in(project, tree)?);
    }
    if refusals.is_empty() {
        Ok(plans)
    } else {
        Err(Error::Refused(refusals))
    }
}

/// What `phase` would apply to `db`, or why it refuses (drift aside: that is the project's
/// real database's, see [`validate`]). A real database that does not exist and that its
/// backend would not create is an error.
pub(crate) fn plan_database<'t>(
    db: &dyn Backend,
    phase: Phase,
    tree: &'t Tree,
    opts: &MigrateOptions,
) -> Result<Result<Planned<'t>, Vec<crate::core::error::Refusal>>, Error> {
    let applied = match db.applied()? {
        Some(applied) => applied,
        None => match db.missing() {
            Some(e) if phase == Phase::Apply => return Err(e),
            _ => Vec::new(),
        },
    };
    let ids = applied.iter().map(|a| a.id.clone()).collect();
    Ok(plan::plan(&db.shown(), &tree.migrations, &applied, &opts.plan).map(|p| (p, ids)))
}

/// Runs `strata migrate`: validate, read every input, back up and rehearse on the test
/// database, optionally rehearse on a copy of the real one, then back up and apply to the real
/// database. Phase 2 never starts if an earlier phase failed. The same on every backend.
pub fn migrate(
    project: &Project,
    opts: &MigrateOptions,
    events: &mut EventSink<'_>,
) -> Result<MigrateReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let phases = targets(project, opts.rehearse)?;
    if !opts.rehearse {
        events(&Event::Warning(format!(
            "--no-rehearsal: applying to {} without rehearsing on the test database first",
            phases[0].1.shown().display()
        )));
    } else if project
        .test_db
        .file()
        .is_some_and(|f| f.starts_with(project.state_dir()))
    {
        project.ensure_state_dir()?;
    }
    let single_transaction = opts.single_transaction || project.config.single_transaction;
    if single_transaction && opts.write_snapshots {
        return Err(Error::Usage(
            "--single-transaction cannot be combined with --write-snapshots: snapshots are files \
             written as each step commits, and a later failure would roll the step back but not \
             the files; run `strata migrate --write-snapshots` without one transaction"
                .into(),
        ));
    }
    let dialect = phases[0].1.dialect();
    let phases = validate(project, &tree, phases, opts)?;
    let mut runner = Runner::new(
        project,
        phases
            .iter()
            .flat_map(|(_, _, pending, _)| pending.iter().copied()),
        dialect,
    )?;
    attach_probes(&mut runner, &opts.probes);
    runner.warn_about_cache(events);
    for stale in runner.stale() {
        events(&Event::Warning(stale));
    }
    if single_transaction {
        for (_, db, pending, _) in &phases {
            check_single_transaction(&runner, &**db, pending)?;
        }
    }

    let mut report = MigrateReport {
        phases: Vec::new(),
        lint: None,
    };
    for (phase, db, pending, applied) in &phases {
        report.phases.extend(run_database(
            &runner,
            &**db,
            *phase,
            applied,
            pending,
            opts,
            single_transaction,
            events,
        )?);
    }
    Ok(report)
}

/// Gives each step of `runner` its probes.
fn attach_probes(runner: &mut Runner<'_>, probes: &Probes) {
    if probes.is_empty() {
        return;
    }
    for step in runner.prepared.values_mut() {
        if let Some(p) = probes.get(&step.migration.label()) {
            step.probes = p.clone();
        }
    }
}

/// Refuses a `--single-transaction` run when one of `pending` cannot run inside one
/// transaction on `db`.
pub(crate) fn check_single_transaction(
    runner: &Runner<'_>,
    db: &dyn Backend,
    pending: &[&Migration],
) -> Result<(), Error> {
    for m in pending {
        db.check_single_transaction(prepared(runner, m)?)?;
    }
    Ok(())
}

/// The step `runner` read for `m`: refused when the run did not read it (the database moved
/// between planning and running).
fn prepared<'r>(runner: &'r Runner<'_>, m: &Migration) -> Result<&'r Prepared, Error> {
    runner.prepared.get(&m.id).ok_or_else(|| {
        Error::Usage(format!(
            "{} became pending after the run read its inputs (the database changed meanwhile); \
             run again",
            m.label()
        ))
    })
}

/// One database of a run, after planning: with `--rehearse-on-copy` a rehearsal on a copy of
/// a real database first, then `pending` applied with a backup, as the phase says (test data
/// on the test database, snapshots written there when asked). The per-database part of
/// `migrate`, also what `strata fleet migrate` runs for each target. `planned`: the
/// migrations applied when `pending` was planned, which each phase checks the ledger against
/// once it holds the run lock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_database(
    runner: &Runner<'_>,
    db: &dyn Backend,
    phase: Phase,
    planned: &[MigrationId],
    pending: &[&Migration],
    opts: &MigrateOptions,
    single_transaction: bool,
    events: &mut EventSink<'_>,
) -> Result<Vec<PhaseReport>, Error> {
    for m in pending {
        prepared(runner, m)?;
    }
    let mut reports = Vec::new();
    if phase == Phase::Apply && opts.rehearse_on_copy && !pending.is_empty() {
        reports.push(rehearse_on_copy(runner, db, planned, pending, events)?);
    }
    let how = How {
        test_data: phase.loads_test_data(),
        backup: true,
        write_snapshots: opts.write_snapshots && phase == Phase::Rehearsal,
        single_transaction,
    };
    reports.push(run_phase(
        runner,
        db,
        phase,
        how,
        Some(planned),
        pending,
        events,
    )?);
    Ok(reports)
}

/// Runs `pending` on `db` as one phase: the shared step loop on the database the backend
/// opens for it (only when something is pending), checked against `planned` (see
/// `crate::core::phase::run`).
fn run_phase(
    runner: &Runner<'_>,
    db: &dyn Backend,
    phase: Phase,
    how: How,
    planned: Option<&[MigrationId]>,
    pending: &[&Migration],
    events: &mut EventSink<'_>,
) -> Result<PhaseReport, Error> {
    crate::core::phase::run(
        phase,
        &db.shown(),
        planned,
        pending,
        &runner.prepared,
        || db.open_phase(runner, phase, how),
        events,
    )
}

/// `--rehearse-on-copy`: `pending` on a throwaway copy of `db` (no test data, no backup); the
/// copy is gone afterwards whatever happens.
fn rehearse_on_copy(
    runner: &Runner<'_>,
    db: &dyn Backend,
    planned: &[MigrationId],
    pending: &[&Migration],
    events: &mut EventSink<'_>,
) -> Result<PhaseReport, Error> {
    let copy = db.copy()?;
    let how = How {
        test_data: false,
        backup: false,
        write_snapshots: false,
        single_transaction: false,
    };
    let mut report = run_phase(
        runner,
        copy.database(),
        Phase::Rehearsal,
        how,
        Some(planned),
        pending,
        events,
    )?;
    report.copy_of = copy.from();
    copy.finish()?;
    Ok(report)
}

/// Where `strata sandbox` starts from.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Rehearse only the pending migrations on a copy of this database (no test data);
    /// default: the whole chain from zero, with test data.
    pub from: Option<PathBuf>,
    pub plan: PlanOptions,
    /// Statements before which the sandbox counts a table's rows (see [`MigrateOptions`]).
    pub probes: Probes,
}

/// How one step ended in `strata sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Ok,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

/// One step of a sandbox run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxStep {
    pub module: String,
    pub migration: String,
    pub outcome: StepOutcome,
    pub duration_ms: u64,
    /// Fuel all of the step's components burned.
    pub fuel_used: u64,
    /// The failure, as `migrate` would print it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The statement the step failed on, when a script's statement failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<FailedAt>,
}

/// Where a step failed: a statement of one of its scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAt {
    pub file: PathBuf,
    /// The statement's first line, from 1.
    pub line: usize,
    /// Its position among the file's statements, from 1.
    pub index: usize,
}

/// The machine-readable result of `strata sandbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxReport {
    pub ok: bool,
    /// The database the chain started from: `None` for an empty one.
    pub from: Option<PathBuf>,
    pub steps: Vec<SandboxStep>,
    pub duration_ms: u64,
    /// The lint findings on the steps it ran, with what their rows said (set by the command
    /// line, for `--json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint: Option<crate::commands::lint::LintReport>,
}

/// Runs `strata sandbox`: every pending step on a throwaway database the backend makes (a file
/// in a temporary folder, or a database on the test database's server) and removes whatever
/// happens. Never changes the project's real or test database. A failed step is reported, not
/// returned as an error; the steps after it are skipped.
pub fn sandbox(
    project: &Project,
    opts: &SandboxOptions,
    events: &mut EventSink<'_>,
) -> Result<SandboxReport, Error> {
    let started = std::time::Instant::now();
    let backend = backends::of_project(project)?;
    let tree = Tree::load(&project.migrations_dir())?;
    // Where the sandbox starts: an empty database, or a copy of the database or backup --from
    // names (then only its pending steps run, without test data).
    let scratch = backend.scratch(opts.from.as_deref())?;
    let db = scratch.database();
    let applied = db.applied()?.unwrap_or_default();
    let pending = plan::plan(
        &scratch.planned_on(),
        &tree.migrations,
        &applied,
        &opts.plan,
    )
    .map_err(Error::Refused)?;
    let mut runner = Runner::new(project, pending.iter().copied(), db.dialect())?;
    attach_probes(&mut runner, &opts.probes);
    runner.warn_about_cache(events);
    if let Some(stale) = runner.stale().next() {
        return Err(Error::Usage(format!(
            "{stale}. The sandbox runs what CI would commit, so it refuses a component that \
             does not match its sources"
        )));
    }

    let how = How {
        test_data: opts.from.is_none(),
        backup: false,
        write_snapshots: false,
        single_transaction: false,
    };
    // Each step runs as a phase of its own (so a failure is reported and the rest skipped), but
    // the run is announced once: the per-step phase events are not passed on.
    let shown = db.shown();
    events(&Event::PhaseStarted {
        phase: Phase::Sandbox,
        db: &shown,
        pending: pending.len(),
    });
    let (steps, ok) = sandbox_steps(&pending, |m| {
        let mut fuel = 0;
        let mut sink = |e: &Event<'_>| match e {
            Event::PhaseStarted { .. } | Event::PhaseFinished { .. } => {}
            Event::ActionDone { fuel: Some(f), .. } => {
                fuel += f;
                events(e);
            }
            _ => events(e),
        };
        if !m.file(crate::commands::undo::UNDO_FILE).is_file() {
            return run_phase(&runner, db, Phase::Sandbox, how, None, &[m], &mut sink)
                .map(|_| fuel);
        }
        // A step with an undo.sql: applied, undone (the schema must be exactly what it was
        // before the step), and applied again.
        let before = db.schema_text()?;
        run_phase(&runner, db, Phase::Sandbox, how, None, &[m], &mut sink)?;
        let undo = crate::commands::undo::read(m, db.dialect())?;
        let undo_started = std::time::Instant::now();
        db.undo(Phase::Sandbox, std::slice::from_ref(&undo), false)?;
        let undo_elapsed = undo_started.elapsed();
        let after = db.schema_text()?;
        if after != before {
            return Err(crate::core::error::StepFailure {
                phase: Phase::Sandbox,
                db: db.shown(),
                migration: m.label(),
                action: crate::core::event::Action::Undo,
                file: Some(m.file(crate::commands::undo::UNDO_FILE)),
                statement: None,
                index: None,
                message: format!(
                    "undo.sql does not take the step back: the schema after it differs from \
                     the schema before the step\n{}",
                    schema_difference(&before, &after)
                ),
                code: None,
                applied_before: Vec::new(),
                kept_by_rollback: db.dialect().kept_by_rollback(),
            }
            .into());
        }
        // Said before the step is applied again, so that the second `applied` line reads as
        // what it is.
        sink(&Event::ActionDone {
            phase: Phase::Sandbox,
            migration: m,
            action: crate::core::event::Action::Undo,
            rows: 0,
            fuel: None,
            elapsed: undo_elapsed,
        });
        run_phase(&runner, db, Phase::Sandbox, how, None, &[m], &mut sink).map(|_| fuel)
    })?;
    events(&Event::PhaseFinished {
        phase: Phase::Sandbox,
        db: &shown,
        applied: steps
            .iter()
            .filter(|s| s.outcome == StepOutcome::Ok)
            .count(),
    });
    let from = scratch.from();
    scratch.finish()?;
    Ok(SandboxReport {
        ok,
        from,
        steps,
        duration_ms: started.elapsed().as_millis() as u64,
        lint: None,
    })
}

/// What differs between two schemas as text: the statements only before (`-`) and only after
/// (`+`), at most 20 of each.
fn schema_difference(before: &str, after: &str) -> String {
    let statements = |text: &str| -> std::collections::BTreeSet<String> {
        text.split(";\n")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let (b, a) = (statements(before), statements(after));
    let mut lines = Vec::new();
    for s in b.difference(&a).take(20) {
        lines.push(format!("  - {s}"));
    }
    for s in a.difference(&b).take(20) {
        lines.push(format!("  + {s}"));
    }
    if lines.is_empty() {
        lines.push("  (the same statements, in another order)".into());
    }
    lines.join("\n")
}

/// The steps of a sandbox run, in order: `run` applies one and returns the fuel it burned; a
/// failed step (`Error::Step`) is reported and the steps after it are skipped. Returns the
/// steps and whether all passed; any other error ends the run.
pub(crate) fn sandbox_steps(
    pending: &[&Migration],
    mut run: impl FnMut(&Migration) -> Result<u64, Error>,
) -> Result<(Vec<SandboxStep>, bool), Error> {
    let mut steps = Vec::new();
    let mut failed = false;
    for m in pending {
        let t = std::time::Instant::now();
        let (outcome, fuel_used, message, failed_at) = if failed {
            (StepOutcome::Skipped, 0, None, None)
        } else {
            match run(m) {
                Ok(fuel) => (StepOutcome::Ok, fuel, None, None),
                Err(Error::Step(f)) => {
                    failed = true;
                    let at = match (&f.file, &f.statement, f.index) {
                        (Some(file), Some((line, _)), Some(index)) => Some(FailedAt {
                            file: file.clone(),
                            line: *line,
                            index,
                        }),
                        _ => None,
                    };
                    (StepOutcome::Failed, 0, Some(f.to_string()), at)
                }
                Err(e) => return Err(e),
            }
        };
        steps.push(SandboxStep {
            module: m.id.module.clone(),
            migration: m.folder(),
            outcome,
            duration_ms: t.elapsed().as_millis() as u64,
            fuel_used,
            message,
            failed_at,
        });
    }
    Ok((steps, !failed))
}

/// One database's view in `strata status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseStatus {
    pub phase: Phase,
    pub db: PathBuf,
    /// Whether the database file exists.
    pub exists: bool,
    pub migrations: Vec<StatusEntry>,
    /// Tables, indexes, views and triggers that no module owns (see `schema::owner`).
    pub unowned: Vec<crate::core::schema::ObjectRef>,
    /// Modules whose live schema differs from their last applied snapshot (the real database
    /// only: that is where `migrate` refuses drift).
    pub drift: Vec<Drifted>,
}

/// A module that drifted: changed outside strata since its last applied migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drifted {
    pub module: String,
    pub snapshot: PathBuf,
    /// The differences, one per line.
    pub difference: String,
}

/// `strata status`: every migration's state on the test and the real database. Opens both
/// read-only and creates nothing.
pub fn status(project: &Project) -> Result<Vec<DatabaseStatus>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    targets(project, true)?
        .into_iter()
        .map(|(phase, db)| {
            let applied = db.applied()?;
            let exists = applied.is_some();
            Ok(DatabaseStatus {
                phase,
                db: db.shown(),
                exists,
                migrations: plan::status(&tree.migrations, &applied.unwrap_or_default()),
                unowned: if exists { db.unowned()? } else { Vec::new() },
                drift: if phase == Phase::Apply && exists {
                    drifted(project)?
                } else {
                    Vec::new()
                },
            })
        })
        .collect()
}

/// The SQL one step runs, in its order, as a script a reader can follow: the transaction,
/// do.sql, data as INSERT statements, checks.sql; components and the checks strata makes itself
/// as comments.
fn step_sql(p: &Prepared, test_data: bool, db: &dyn Backend) -> String {
    let mut out = format!("-- {}\n{}", p.migration.label(), db.script_begin());
    let mut section = |title: &str, body: Option<String>| {
        out.push_str(&format!("-- {title}\n"));
        if let Some(body) = body.filter(|b| !b.trim().is_empty()) {
            out.push_str(body.trim_end());
            out.push('\n');
        }
    };
    section("do.sql", Some(p.do_sql.clone()));
    let component =
        |file: &str| format!("{file}: a WebAssembly component; its SQL is known only when it runs");
    if p.transform.is_some() {
        section(&component("transform.wasm"), None);
    }
    let data = |d: &crate::core::data::DataSet, dir: &str| {
        (
            format!("{dir}/data.json: {} row(s)", d.row_count()),
            Some(db.data_sql(d)),
        )
    };
    if test_data {
        if let Some(d) = &p.test_data {
            let (t, b) = data(d, "test-data");
            section(&t, b);
        }
        if p.test_seed.is_some() {
            section(&component("test-data/seed.wasm"), None);
        }
    }
    if let Some(d) = &p.proj_data {
        let (t, b) = data(d, "proj-data");
        section(&t, b);
    }
    if p.proj_seed.is_some() {
        section(&component("proj-data/seed.wasm"), None);
    }
    if let Some(checks) = &p.checks {
        section(
            "checks.sql: each query's rows are violations",
            Some(checks.clone()),
        );
    }
    if p.check.is_some() {
        section(&component("check.wasm"), None);
    }
    out.push_str(db.script_end());
    out
}

/// The drift of the real database, for `status`.
fn drifted(project: &Project) -> Result<Vec<Drifted>, Error> {
    Ok(crate::commands::design::drift(project)?
        .into_iter()
        .filter_map(|r| match r {
            crate::core::error::Refusal::Drift {
                module,
                snapshot,
                difference,
                ..
            } => Some(Drifted {
                module,
                snapshot,
                difference,
            }),
            _ => None,
        })
        .collect())
}

/// One planned step: the migration and the actions it would run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStep {
    pub migration: String,
    pub actions: Vec<Action>,
    /// Components older than their sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// With `plan --sql`: the SQL the step runs, in order (components noted as comments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The steps one phase would run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedPhase {
    pub phase: Phase,
    pub db: PathBuf,
    pub steps: Vec<PlannedStep>,
}

/// `strata plan`: what `migrate` with `opts` would run, in order, without running it. Refuses
/// exactly when `migrate` would.
pub fn plan(project: &Project, opts: &MigrateOptions) -> Result<Vec<PlannedPhase>, Error> {
    plan_steps(project, opts, false)
}

/// `strata plan --sql`: [`plan()`], with the SQL of each step (a dry run).
pub fn plan_with_sql(project: &Project, opts: &MigrateOptions) -> Result<Vec<PlannedPhase>, Error> {
    plan_steps(project, opts, true)
}

fn plan_steps(
    project: &Project,
    opts: &MigrateOptions,
    with_sql: bool,
) -> Result<Vec<PlannedPhase>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in targets(project, opts.rehearse)? {
        let dialect = db.dialect();
        let applied = db.applied()?.unwrap_or_default();
        match plan::plan(&db.shown(), &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => {
                let steps = pending
                    .into_iter()
                    .map(|m| {
                        let prepared = Prepared::load_for(m, dialect)?;
                        let test_data = phase.loads_test_data();
                        Ok(PlannedStep {
                            migration: m.label(),
                            actions: prepared.actions(test_data),
                            sql: with_sql.then(|| step_sql(&prepared, test_data, &*db)),
                            warnings: prepared.stale,
                        })
                    })
                    .collect::<Result<_, Error>>()?;
                out.push(PlannedPhase {
                    phase,
                    db: db.shown(),
                    steps,
                });
            }
            Err(r) => refusals.extend(r),
        }
    }
    if !opts.allow_drift {
        refusals.extend(crate::commands::design::drift_in(project, &tree)?);
    }
    if refusals.is_empty() {
        Ok(out)
    } else {
        Err(Error::Refused(refusals))
    }
}

/// `strata status --check`: whether `migrate` with `opts` would start. Refuses (exit 3) or
/// reports bad input (exit 2) exactly as `migrate` would, reading every pending input, and
/// touches nothing.
pub fn check(project: &Project, opts: &MigrateOptions) -> Result<(), Error> {
    plan(project, opts).map(|_| ())
}

/// Appends `entries` to `db`'s audit log (a SQLite file or a PostgreSQL URL), creating the
/// bookkeeping tables if they are missing: for what happens outside a run, such as a refused
/// call to `strata serve`.
pub fn append_audit(
    project: &Project,
    db: &Database,
    entries: &[crate::core::ledger::Entry],
) -> Result<(), Error> {
    backends::open(project, db)?.append_audit(entries)
}

/// The migrations applied to `db` (a SQLite file or a PostgreSQL URL), read without creating
/// or changing anything.
pub fn read_applied(
    project: &Project,
    db: &Database,
) -> Result<Vec<crate::core::ledger::Applied>, Error> {
    Ok(backends::open(project, db)?.applied()?.unwrap_or_default())
}

/// `strata audit`: the newest `limit` rows of a database's audit log, oldest first.
pub fn audit(
    project: &Project,
    test_db: bool,
    limit: Option<u64>,
) -> Result<(PathBuf, Vec<AuditRow>), Error> {
    let db = backends::open(project, audit_target(project, test_db))?;
    Ok((db.shown(), db.audit(limit)?))
}

/// One page of a database's audit log (see [`ledger::audit_page`]): the newest `size` rows
/// below `before_id`, oldest first, and whether older ones remain.
pub fn audit_page(
    project: &Project,
    test_db: bool,
    before_id: Option<i64>,
    size: u64,
) -> Result<(PathBuf, Vec<AuditRow>, bool), Error> {
    let db = backends::open(project, audit_target(project, test_db))?;
    let (rows, more) = db.audit_page(before_id, size)?;
    Ok((db.shown(), rows, more))
}

/// The database `audit` reads: the real one, or with `test_db` the test database.
fn audit_target(project: &Project, test_db: bool) -> &Database {
    if test_db {
        &project.test_db
    } else {
        &project.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::DbCode;

    #[test]
    fn a_failed_step_keeps_sqlites_extended_result_code() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("migrations/app/20240101T000000Z-zero");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("do.sql"),
            "CREATE TABLE t(a UNIQUE);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);\n",
        )
        .unwrap();
        let p = Project::open(dir.path().to_path_buf()).unwrap();
        let e = migrate(&p, &MigrateOptions::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(e, Error::Step(_)), "{e}");
        // SQLITE_CONSTRAINT_UNIQUE, not only SQLITE_CONSTRAINT.
        assert_eq!(e.code(), Some(DbCode::Sqlite(2067)));
        assert_eq!(e.exit_code(), crate::core::exit::FAILURE);
        assert!(e.to_string().contains("do.sql, line 3"), "{e}");
    }
}
