//! The run: validate, rehearse on the test database, then apply to the real one (DESIGN §5).
//!
//! `migrate` reads like the algorithm: load the tree, plan every database and refuse before
//! touching anything, read every input, then run phase 1 and phase 2 step by step. Also the
//! read-only views of a project (`status`, `plan`, `audit`). Steps themselves live in `step`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup;
use crate::config::Project;
use crate::error::Error;
use crate::event::{Action, Event, EventSink, Phase};
use crate::ledger::{self, AuditRow};
use crate::plan::{self, PlanOptions, StatusEntry};
use crate::sandbox::Sandbox;
use crate::sqlite;
use crate::step::{self, Prepared};
use crate::tree::{Migration, MigrationId, Tree};

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
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            plan: PlanOptions::default(),
            rehearse: true,
            rehearse_on_copy: false,
            write_snapshots: false,
            allow_drift: false,
        }
    }
}

/// What one phase did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub db: PathBuf,
    /// For a rehearsal on a copy: the database copied (the copy itself is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<PathBuf>,
    /// The verified backup taken before the phase changed anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
    /// `module/folder` of each migration this run applied.
    pub applied: Vec<String>,
    /// Migrations another process applied first.
    pub skipped: Vec<String>,
}

/// What `migrate` did, phase by phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrateReport {
    pub phases: Vec<PhaseReport>,
}

/// The databases a run works on, in order.
fn targets(project: &Project, rehearse: bool) -> Vec<(Phase, &Path)> {
    let mut t = Vec::new();
    if rehearse {
        t.push((Phase::Rehearsal, project.test_db.as_path()));
    }
    t.push((Phase::Apply, project.db.as_path()));
    t
}

/// How a phase runs its steps.
#[derive(Debug, Clone, Copy)]
struct How {
    /// Load `test-data/`.
    test_data: bool,
    /// Take a verified backup first.
    backup: bool,
    /// Write missing snapshots after each step.
    write_snapshots: bool,
}

/// Everything a phase needs besides its database and its steps.
struct Runner<'a> {
    project: &'a Project,
    prepared: HashMap<MigrationId, Prepared>,
    sandbox: Option<Sandbox>,
}

impl<'a> Runner<'a> {
    /// Reads and parses every input of `migrations`, and starts the sandbox if any has a
    /// component: all before the first step.
    fn new<'m>(
        project: &'a Project,
        migrations: impl IntoIterator<Item = &'m Migration>,
    ) -> Result<Self, Error> {
        let mut prepared = HashMap::new();
        for m in migrations {
            if !prepared.contains_key(&m.id) {
                prepared.insert(m.id.clone(), Prepared::load(m)?);
            }
        }
        let sandbox = if prepared.values().any(Prepared::has_components) {
            let cache = project.ensure_state_dir()?.join("cache");
            Some(Sandbox::new(Some(cache)).map_err(|e| {
                Error::Usage(format!("cannot start the WebAssembly sandbox: {e:#}"))
            })?)
        } else {
            None
        };
        Ok(Runner {
            project,
            prepared,
            sandbox,
        })
    }

    /// Runs `pending` on `db`, one step at a time, after a verified backup when `how.backup`.
    fn phase(
        &self,
        phase: Phase,
        db: &Path,
        how: How,
        pending: &[&Migration],
        events: &mut EventSink<'_>,
    ) -> Result<PhaseReport, Error> {
        let mut done = PhaseReport {
            phase,
            db: db.to_path_buf(),
            copy_of: None,
            backup: None,
            applied: Vec::new(),
            skipped: Vec::new(),
        };
        events(&Event::PhaseStarted {
            phase,
            db,
            pending: pending.len(),
        });
        if pending.is_empty() {
            events(&Event::PhaseFinished {
                phase,
                db,
                applied: 0,
            });
            return Ok(done);
        }
        let mut conn = sqlite::open(db, self.project.busy_timeout())?;
        ledger::ensure(&mut conn)
            .map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
        if how.backup {
            let path = backup::take(
                &conn,
                db,
                &self.project.backups_dir(),
                self.project.config.backups_keep,
            )?;
            let entry =
                ledger::Entry::for_run(phase.as_str(), "backup", path.display().to_string());
            ledger::append(&conn, &[entry])
                .map_err(|e| Error::db(db, "cannot audit the backup", e))?;
            events(&Event::BackupTaken { db, backup: &path });
            done.backup = Some(path);
        }
        let ctx = step::Context {
            db,
            phase,
            test_data: how.test_data,
            sandbox: self.sandbox.as_ref(),
            limits: self.project.config.sandbox,
            write_snapshots: how.write_snapshots,
        };
        for m in pending {
            match step::apply(&mut conn, &ctx, &self.prepared[&m.id], events) {
                Ok(step::Applied::Committed { elapsed }) => {
                    events(&Event::StepApplied {
                        phase,
                        migration: m,
                        elapsed,
                    });
                    done.applied.push(m.label());
                }
                Ok(step::Applied::AlreadyApplied) => done.skipped.push(m.label()),
                Err(Error::Step(mut failure)) => {
                    failure.applied_before = done.applied;
                    return Err(Error::Step(failure));
                }
                Err(e) => return Err(e),
            }
        }
        events(&Event::PhaseFinished {
            phase,
            db,
            applied: done.applied.len(),
        });
        Ok(done)
    }

    /// Runs `pending` on a throwaway copy of `db` (no test data), deleting the copy whatever
    /// happens.
    fn rehearse_on_copy(
        &self,
        db: &Path,
        pending: &[&Migration],
        events: &mut EventSink<'_>,
    ) -> Result<PhaseReport, Error> {
        let state = self.project.ensure_state_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("rehearsal-")
            .tempdir_in(&state)
            .map_err(|e| Error::io(&state, e))?;
        let copy = dir
            .path()
            .join(db.file_name().unwrap_or_else(|| "copy.db".as_ref()));
        if db.exists() {
            let source = sqlite::open(db, self.project.busy_timeout())?;
            source
                .execute("VACUUM INTO ?1", [copy.to_string_lossy()])
                .map_err(|e| Error::db(db, "cannot copy the database for the rehearsal", e))?;
        }
        let how = How {
            test_data: false,
            backup: false,
            write_snapshots: false,
        };
        let mut report = self.phase(Phase::Rehearsal, &copy, how, pending, events)?;
        report.copy_of = Some(db.to_path_buf());
        Ok(report)
    }
}

/// One database of a run and the migrations it will get.
type PhasePlan<'t> = (Phase, &'t Path, Vec<&'t Migration>);

/// Plans every database of the run; refuses before anything is touched.
fn validate<'t>(
    project: &'t Project,
    tree: &'t Tree,
    opts: &MigrateOptions,
) -> Result<Vec<PhasePlan<'t>>, Error> {
    let mut phases = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in targets(project, opts.rehearse) {
        let applied = read_applied(project, db)?;
        match plan::plan(db, &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => phases.push((phase, db, pending)),
            Err(r) => refusals.extend(r),
        }
    }
    if !opts.allow_drift {
        refusals.extend(crate::design::drift(project)?);
    }
    if refusals.is_empty() {
        Ok(phases)
    } else {
        Err(Error::Refused(refusals))
    }
}

/// Runs `strata migrate`: validate, read every input, back up and rehearse on the test
/// database, optionally rehearse on a copy of the real one, then back up and apply to the real
/// database. Phase 2 never starts if an earlier phase failed.
pub fn migrate(
    project: &Project,
    opts: &MigrateOptions,
    events: &mut EventSink<'_>,
) -> Result<MigrateReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    if !opts.rehearse {
        events(&Event::Warning(format!(
            "--no-rehearsal: applying to {} without rehearsing on the test database first",
            project.db.display()
        )));
    } else if project.test_db.starts_with(project.state_dir()) {
        project.ensure_state_dir()?;
    }
    let phases = validate(project, &tree, opts)?;
    let runner = Runner::new(
        project,
        phases
            .iter()
            .flat_map(|(_, _, pending)| pending.iter().copied()),
    )?;

    let mut report = MigrateReport { phases: Vec::new() };
    for (phase, db, pending) in &phases {
        if *phase == Phase::Apply && opts.rehearse_on_copy && !pending.is_empty() {
            report
                .phases
                .push(runner.rehearse_on_copy(db, pending, events)?);
        }
        let how = How {
            test_data: phase.loads_test_data(),
            backup: true,
            write_snapshots: opts.write_snapshots && *phase == Phase::Rehearsal,
        };
        report
            .phases
            .push(runner.phase(*phase, db, how, pending, events)?);
    }
    Ok(report)
}

/// Where `strata sandbox` starts from.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Rehearse only the pending migrations on a copy of this database (no test data);
    /// default: the whole chain from zero, with test data.
    pub from: Option<PathBuf>,
    pub plan: PlanOptions,
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
}

/// The machine-readable result of `strata sandbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxReport {
    pub ok: bool,
    /// The database the chain started from: `None` for an empty one.
    pub from: Option<PathBuf>,
    pub steps: Vec<SandboxStep>,
    pub duration_ms: u64,
}

/// Runs `strata sandbox`: every pending step on a throwaway database in a temporary folder.
/// Never opens the project's real or test database. A failed step is reported, not returned as
/// an error; the steps after it are skipped.
pub fn sandbox(
    project: &Project,
    opts: &SandboxOptions,
    events: &mut EventSink<'_>,
) -> Result<SandboxReport, Error> {
    let started = std::time::Instant::now();
    let tree = Tree::load(&project.migrations_dir())?;
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let db = dir.path().join("sandbox.db");
    if let Some(from) = &opts.from {
        if !from.is_file() {
            return Err(Error::input(
                from,
                "does not exist; --from takes an existing SQLite database",
            ));
        }
        let source =
            sqlite::open_read_only(from, project.busy_timeout())?.expect("the file exists");
        source
            .execute("VACUUM INTO ?1", [db.to_string_lossy()])
            .map_err(|e| Error::db(from, "cannot copy the database for the sandbox", e))?;
    }
    let applied = read_applied(project, &db)?;
    let pending =
        plan::plan(&db, &tree.migrations, &applied, &opts.plan).map_err(Error::Refused)?;
    let runner = Runner::new(project, pending.iter().copied())?;

    let mut steps: Vec<SandboxStep> = Vec::new();
    let mut fuel: HashMap<MigrationId, u64> = HashMap::new();
    let test_data = opts.from.is_none();
    let mut failed = false;
    for m in &pending {
        let t = std::time::Instant::now();
        let mut outcome = StepOutcome::Skipped;
        let mut message = None;
        if !failed {
            let mut sink = |e: &Event<'_>| {
                if let Event::ActionDone {
                    fuel: Some(f),
                    migration,
                    ..
                } = e
                {
                    *fuel.entry(migration.id.clone()).or_default() += f;
                }
                events(e);
            };
            let how = How {
                test_data,
                backup: false,
                write_snapshots: false,
            };
            match runner.phase(Phase::Sandbox, &db, how, &[*m], &mut sink) {
                Ok(_) => outcome = StepOutcome::Ok,
                Err(Error::Step(f)) => {
                    failed = true;
                    outcome = StepOutcome::Failed;
                    message = Some(f.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        steps.push(SandboxStep {
            module: m.id.module.clone(),
            migration: m.folder(),
            outcome,
            duration_ms: t.elapsed().as_millis() as u64,
            fuel_used: fuel.get(&m.id).copied().unwrap_or(0),
            message,
        });
    }
    Ok(SandboxReport {
        ok: !failed,
        from: opts.from.clone(),
        steps,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// `strata restore`: puts a backup of the real (or, with `test_db`, the test) database back,
/// the latest when `backup` is `None`, and audits it in the restored database.
pub fn restore(
    project: &Project,
    test_db: bool,
    backup: Option<&Path>,
) -> Result<(PathBuf, PathBuf), Error> {
    let db = if test_db {
        &project.test_db
    } else {
        &project.db
    };
    let dir = project.backups_dir();
    let chosen = match backup {
        Some(b) if b.is_file() => b.to_path_buf(),
        Some(b) if dir.join(b).is_file() => dir.join(b),
        Some(b) => {
            return Err(Error::input(
                b,
                "is not a backup: no such file here or in .strata/backups/",
            ));
        }
        None => backup::list(&dir, db)?.pop().ok_or_else(|| {
            Error::input(
                &dir,
                format!(
                    "holds no backup of {}; `strata migrate` takes one before each run",
                    db.display()
                ),
            )
        })?,
    };
    backup::restore(db, &chosen, project.busy_timeout())?;
    let mut conn = sqlite::open(db, project.busy_timeout())?;
    ledger::ensure(&mut conn).map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
    let entry = ledger::Entry::for_run(
        Phase::Restore.as_str(),
        "restore",
        format!("restored from {}", chosen.display()),
    );
    ledger::append(&conn, &[entry]).map_err(|e| Error::db(db, "cannot audit the restore", e))?;
    Ok((db.clone(), chosen))
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
    pub unowned: Vec<crate::schema::ObjectRef>,
}

/// `strata status`: every migration's state on the test and the real database. Opens both
/// read-only and creates nothing.
pub fn status(project: &Project) -> Result<Vec<DatabaseStatus>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    targets(project, true)
        .into_iter()
        .map(|(phase, db)| {
            Ok(DatabaseStatus {
                phase,
                db: db.to_path_buf(),
                exists: db.exists(),
                migrations: plan::status(&tree.migrations, &read_applied(project, db)?),
                unowned: crate::design::unowned(project, db)?,
            })
        })
        .collect()
}

/// One planned step: the migration and the actions it would run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStep {
    pub migration: String,
    pub actions: Vec<Action>,
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
    let tree = Tree::load(&project.migrations_dir())?;
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in targets(project, opts.rehearse) {
        let applied = read_applied(project, db)?;
        match plan::plan(db, &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => {
                let steps = pending
                    .into_iter()
                    .map(|m| {
                        Ok(PlannedStep {
                            migration: m.label(),
                            actions: Prepared::load(m)?.actions(phase.loads_test_data()),
                        })
                    })
                    .collect::<Result<_, Error>>()?;
                out.push(PlannedPhase {
                    phase,
                    db: db.to_path_buf(),
                    steps,
                });
            }
            Err(r) => refusals.extend(r),
        }
    }
    if refusals.is_empty() {
        Ok(out)
    } else {
        Err(Error::Refused(refusals))
    }
}

/// The migrations applied to `db`, read without creating or changing anything.
fn read_applied(project: &Project, db: &Path) -> Result<Vec<ledger::Applied>, Error> {
    match sqlite::open_read_only(db, project.busy_timeout())? {
        Some(conn) => {
            ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))
        }
        None => Ok(Vec::new()),
    }
}

/// `strata audit`: the newest `limit` rows of a database's audit log, oldest first.
pub fn audit(
    project: &Project,
    test_db: bool,
    limit: Option<u64>,
) -> Result<(PathBuf, Vec<AuditRow>), Error> {
    let db = if test_db {
        &project.test_db
    } else {
        &project.db
    };
    let rows = match sqlite::open_read_only(db, project.busy_timeout())? {
        Some(c) => {
            ledger::audit(&c, limit).map_err(|e| Error::db(db, "cannot read the audit log", e))?
        }
        None => Vec::new(),
    };
    Ok((db.clone(), rows))
}
