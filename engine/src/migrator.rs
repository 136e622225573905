//! The run: validate, rehearse on the test database, then apply to the real one (DESIGN §5).
//!
//! `migrate` reads like the algorithm: load the tree, plan every database and refuse before
//! touching anything, read every input, then run phase 1 and phase 2 step by step. Also the
//! read-only views of a project (`status`, `plan`, `audit`). Steps themselves live in `step`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Project;
use crate::error::Error;
use crate::event::{Action, Event, EventSink, Phase};
use crate::ledger::{self, AuditRow};
use crate::plan::{self, PlanOptions, StatusEntry};
use crate::sqlite;
use crate::step::{self, Prepared};
use crate::tree::{MigrationId, Tree};

/// What `strata migrate` may do beyond the safe default.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub plan: PlanOptions,
    /// Rehearse on the test database first (the default; `--no-rehearsal` turns it off).
    pub rehearse: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            plan: PlanOptions::default(),
            rehearse: true,
        }
    }
}

/// What one phase did.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub db: PathBuf,
    /// `module/folder` of each migration this run applied.
    pub applied: Vec<String>,
    /// Migrations another process applied first.
    pub skipped: Vec<String>,
}

/// What `migrate` did, phase by phase.
#[derive(Debug, Clone, Serialize)]
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

/// Runs `strata migrate`.
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

    // Validate every database before touching any of them.
    let mut phases = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in targets(project, opts.rehearse) {
        let applied = read_applied(project, db)?;
        match plan::plan(db, &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => phases.push((phase, db, pending)),
            Err(r) => refusals.extend(r),
        }
    }
    if !refusals.is_empty() {
        return Err(Error::Refused(refusals));
    }

    // Read and parse every input before the first step.
    let mut prepared: HashMap<&MigrationId, Prepared> = HashMap::new();
    for (_, _, pending) in &phases {
        for m in pending {
            if !prepared.contains_key(&m.id) {
                prepared.insert(&m.id, Prepared::load(m)?);
            }
        }
    }

    let mut report = MigrateReport { phases: Vec::new() };
    for (phase, db, pending) in phases {
        let mut conn = sqlite::open(db, project.busy_timeout())?;
        ledger::ensure(&mut conn)
            .map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
        events(&Event::PhaseStarted {
            phase,
            db,
            pending: pending.len(),
        });
        let mut done = PhaseReport {
            phase,
            db: db.to_path_buf(),
            applied: Vec::new(),
            skipped: Vec::new(),
        };
        for m in pending {
            match step::apply(&mut conn, db, phase, &prepared[&m.id], events) {
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
        report.phases.push(done);
    }
    Ok(report)
}

/// One database's view in `strata status`.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub migration: String,
    pub actions: Vec<Action>,
}

/// The steps one phase would run.
#[derive(Debug, Clone, Serialize)]
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
                            actions: Prepared::load(m)?.actions(phase),
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
