//! The run on PostgreSQL: `migrate` (validate, rehearse on the test database, apply to the
//! real one, step by step), and the reads behind `status`, `plan` and `audit`. The same plan,
//! events and reports as on SQLite (`crate::migrator`), which dispatches here when the project's
//! databases are PostgreSQL URLs.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::{Session, Target, ledger, step};
use crate::config::Project;
use crate::error::Error;
use crate::event::{Event, EventSink, Phase};
use crate::input::Dialect;
use crate::ledger::{Applied, AuditRow};
use crate::migrator::{
    DatabaseStatus, MigrateOptions, MigrateReport, PhaseReport, SandboxOptions, SandboxReport,
};
use crate::plan;
use crate::step::{Applied as StepApplied, Prepared};
use crate::tree::{Migration, MigrationId, Tree};

/// Whether the project's databases are PostgreSQL.
pub fn is_postgres(project: &Project) -> bool {
    super::is_url(&project.db) || super::is_url(&project.test_db)
}

/// The project's databases, which must both be PostgreSQL.
fn target(project: &Project, db: &Path) -> Result<Target, Error> {
    if !(super::is_url(&project.db) && super::is_url(&project.test_db)) {
        return Err(Error::Usage(
            "db and test_db must be both PostgreSQL URLs or both SQLite files: a rehearsal \
             on another kind of database proves nothing; set test_db (or --test-db) to a \
             PostgreSQL database of its own, or leave it unset to use <dbname>_test"
                .into(),
        ));
    }
    Target::parse(&db.to_string_lossy(), "db")
}

/// The databases a run works on, in order.
fn targets(project: &Project, rehearse: bool) -> Result<Vec<(Phase, Target)>, Error> {
    let mut t = Vec::new();
    if rehearse {
        t.push((Phase::Rehearsal, target(project, &project.test_db)?));
    }
    t.push((Phase::Apply, target(project, &project.db)?));
    Ok(t)
}

fn lock_timeout(project: &Project) -> Duration {
    project.busy_timeout()
}

/// Connects to `target`; `None` when the database does not exist yet.
fn connect_existing(project: &Project, target: &Target) -> Result<Option<Session>, Error> {
    target.open(lock_timeout(project))
}

/// The migrations applied to `db`, read without creating or changing anything.
pub fn read_applied(project: &Project, db: &Path) -> Result<Vec<Applied>, Error> {
    Ok(applied_on(project, &target(project, db)?)?.unwrap_or_default())
}

/// The migrations applied to `target`; `None` when the database does not exist.
fn applied_on(project: &Project, target: &Target) -> Result<Option<Vec<Applied>>, Error> {
    connect_existing(project, target)?
        .map(|mut c| {
            ledger::applied(&mut *c).map_err(|e| target.error("cannot read the ledger", e))
        })
        .transpose()
}

/// Appends `entries` to the audit log of `db`, creating the bookkeeping tables if needed.
pub fn append_audit(
    project: &Project,
    db: &Path,
    entries: &[crate::ledger::Entry],
) -> Result<(), Error> {
    let target = target(project, db)?;
    let mut client = target.connect(lock_timeout(project))?;
    ledger::ensure(&mut client).map_err(|e| target.error("cannot create the ledger tables", e))?;
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::append(&mut tx, entries)?;
            tx.commit()
        })
        .map_err(|e| target.error("cannot append to the audit log", e))
}

/// One page of the audit log of `db` (see `crate::ledger::audit_page`).
pub fn audit_page(
    project: &Project,
    db: &Path,
    before_id: Option<i64>,
    size: u64,
) -> Result<(std::path::PathBuf, Vec<AuditRow>, bool), Error> {
    let target = target(project, db)?;
    let (rows, more) = match connect_existing(project, &target)? {
        Some(mut c) => ledger::audit_page(&mut *c, before_id, size)
            .map_err(|e| target.error("cannot read the audit log", e))?,
        None => (Vec::new(), false),
    };
    Ok((target.as_path(), rows, more))
}

/// `strata repair` on PostgreSQL: re-pins `m` (its checksum and manifest) in the ledger of
/// `db` and audits it, in one transaction under strata's lock.
pub fn repin(
    project: &Project,
    db: &Path,
    m: &Migration,
    entry: &crate::ledger::Entry,
) -> Result<(), Error> {
    let target = target(project, db)?;
    let mut client = target.connect(lock_timeout(project))?;
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::lock(&mut tx)?;
            tx.execute(
                "UPDATE strata.strata_migration SET checksum = $1, manifest = $2
                 WHERE module = $3 AND stamp = $4",
                &[
                    &m.checksum(),
                    &m.manifest.to_lines(),
                    &m.id.module,
                    &m.id.stamp,
                ],
            )?;
            ledger::append(&mut tx, std::slice::from_ref(entry))?;
            tx.commit()
        })
        .map_err(|e| target.error(format!("cannot re-pin {}", m.label()), e))
}

/// `strata audit` on PostgreSQL.
pub fn audit(
    project: &Project,
    db: &Path,
    limit: Option<u64>,
) -> Result<(std::path::PathBuf, Vec<AuditRow>), Error> {
    let target = target(project, db)?;
    let rows = match connect_existing(project, &target)? {
        Some(mut c) => ledger::audit(&mut *c, limit)
            .map_err(|e| target.error("cannot read the audit log", e))?,
        None => Vec::new(),
    };
    Ok((target.as_path(), rows))
}

/// `strata status` on PostgreSQL: every migration's state on both databases.
pub fn status(project: &Project) -> Result<Vec<DatabaseStatus>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    targets(project, true)?
        .into_iter()
        .map(|(phase, target)| {
            let applied = applied_on(project, &target)?;
            Ok(DatabaseStatus {
                phase,
                db: target.as_path(),
                exists: applied.is_some(),
                migrations: plan::status(&tree.migrations, &applied.unwrap_or_default()),
                unowned: Vec::new(),
                drift: Vec::new(),
            })
        })
        .collect()
}

/// Refuses what PostgreSQL does not have yet, before anything is touched.
fn refuse_unsupported(project: &Project, opts: &MigrateOptions) -> Result<(), Error> {
    let not_yet = |what: &str| {
        Err(Error::Usage(format!(
            "{what} is not available on PostgreSQL yet; run without it"
        )))
    };
    if opts.single_transaction || project.config.single_transaction {
        return not_yet("--single-transaction (or single_transaction in strata.toml)");
    }
    if opts.rehearse_on_copy {
        return not_yet("--rehearse-on-copy");
    }
    if opts.write_snapshots {
        return not_yet("--write-snapshots");
    }
    Ok(())
}

/// `strata migrate` on PostgreSQL: validate every database, read every input, then rehearse
/// on the test database (with test data) and apply to the real one, each step in one
/// transaction. Phase 2 never starts if phase 1 failed.
pub fn migrate(
    project: &Project,
    opts: &MigrateOptions,
    events: &mut EventSink<'_>,
) -> Result<MigrateReport, Error> {
    refuse_unsupported(project, opts)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let phases = targets(project, opts.rehearse)?;
    if !opts.rehearse {
        events(&Event::Warning(format!(
            "--no-rehearsal: applying to {} without rehearsing on the test database first",
            phases[0].1
        )));
    }
    let mut plans = Vec::new();
    let mut refusals = Vec::new();
    for (phase, target) in phases {
        // The real database must exist before anything runs (strata creates only the test
        // database): finding out after the rehearsal would leave a run half done.
        let applied = match applied_on(project, &target)? {
            Some(applied) => applied,
            None if phase == Phase::Apply => return Err(missing_database(&target)),
            None => Vec::new(),
        };
        match plan::plan(&target.as_path(), &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => plans.push((phase, target, pending)),
            Err(r) => refusals.extend(r),
        }
    }
    if !opts.allow_drift {
        refusals.extend(crate::design::drift(project)?);
    }
    if !refusals.is_empty() {
        return Err(Error::Refused(refusals));
    }
    let prepared = prepare(
        plans
            .iter()
            .flat_map(|(_, _, pending)| pending.iter().copied()),
    )?;

    let mut report = MigrateReport { phases: Vec::new() };
    for (phase, target, pending) in &plans {
        let ctx = step::Context {
            target,
            phase: *phase,
            test_data: phase.loads_test_data(),
            lock_timeout: lock_timeout(project),
            statement_timeout: Duration::from_millis(project.config.statement_timeout_ms),
        };
        report
            .phases
            .push(run_phase(project, &ctx, true, pending, &prepared, events)?);
    }
    Ok(report)
}

/// Reads and checks every input of `migrations` before the first step.
fn prepare<'m>(
    migrations: impl IntoIterator<Item = &'m Migration>,
) -> Result<HashMap<MigrationId, Prepared>, Error> {
    let mut prepared = HashMap::new();
    for m in migrations {
        if !prepared.contains_key(&m.id) {
            let p = Prepared::load_for(m, Dialect::Postgres)?;
            if p.has_components() {
                return Err(Error::Usage(format!(
                    "{}: has WebAssembly components, which do not run on PostgreSQL yet; \
                     nothing was applied",
                    m.label()
                )));
            }
            prepared.insert(m.id.clone(), p);
        }
    }
    Ok(prepared)
}

/// `strata sandbox` on PostgreSQL: the whole chain from zero, with test data, on a throwaway
/// database strata creates on the test database's server and drops afterwards, whatever
/// happens. A failed step is reported, not returned as an error; the steps after it are skipped.
pub fn sandbox(
    project: &Project,
    opts: &SandboxOptions,
    events: &mut EventSink<'_>,
) -> Result<SandboxReport, Error> {
    if opts.from.is_some() {
        return Err(Error::Usage(
            "sandbox --from takes a SQLite file; on PostgreSQL the sandbox starts from an empty \
             database"
                .into(),
        ));
    }
    let started = std::time::Instant::now();
    let server = target(project, &project.test_db)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let pending =
        plan::plan(&server.as_path(), &tree.migrations, &[], &opts.plan).map_err(Error::Refused)?;
    let prepared = prepare(pending.iter().copied())?;
    let name = format!(
        "strata_sandbox_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let throwaway = Throwaway::create(project, server.with_dbname(&name))?;
    let ctx = step::Context {
        target: &throwaway.target,
        phase: Phase::Sandbox,
        test_data: true,
        lock_timeout: lock_timeout(project),
        statement_timeout: Duration::from_millis(project.config.statement_timeout_ms),
    };
    let (steps, ok) = crate::migrator::sandbox_steps(&pending, |m| {
        run_phase(project, &ctx, false, &[m], &prepared, events).map(|_| 0)
    })?;
    throwaway.drop_now()?;
    Ok(SandboxReport {
        ok,
        from: None,
        steps,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// A database that exists only while the sandbox runs: dropped on every way out.
struct Throwaway<'p> {
    project: &'p Project,
    target: Target,
    dropped: bool,
}

impl<'p> Throwaway<'p> {
    fn create(project: &'p Project, target: Target) -> Result<Self, Error> {
        create_database(project, &target)?;
        Ok(Throwaway {
            project,
            target,
            dropped: false,
        })
    }

    fn drop_now(mut self) -> Result<(), Error> {
        self.dropped = true;
        drop_database(self.project, &self.target)
    }
}

impl Drop for Throwaway<'_> {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = drop_database(self.project, &self.target);
        }
    }
}

/// Drops `target`'s database, closing its other sessions.
fn drop_database(project: &Project, target: &Target) -> Result<(), Error> {
    let admin = target.with_dbname("postgres");
    let mut client = admin.connect(lock_timeout(project))?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            target.dbname().replace('"', "\"\"")
        ))
        .map_err(|e| admin.error("cannot drop the sandbox database", e))
}

/// One phase: connect (creating the test database if it is missing), make sure of the
/// bookkeeping tables, then each step.
fn run_phase(
    project: &Project,
    ctx: &step::Context<'_>,
    backup: bool,
    pending: &[&Migration],
    prepared: &HashMap<MigrationId, Prepared>,
    events: &mut EventSink<'_>,
) -> Result<PhaseReport, Error> {
    let (phase, target) = (ctx.phase, ctx.target);
    let db = target.as_path();
    let mut done = PhaseReport {
        phase,
        db: db.clone(),
        copy_of: None,
        backup: None,
        applied: Vec::new(),
        skipped: Vec::new(),
    };
    events(&Event::PhaseStarted {
        phase,
        db: &db,
        pending: pending.len(),
    });
    if !pending.is_empty() {
        let mut client = match connect_existing(project, target)? {
            Some(c) => c,
            None if phase == Phase::Rehearsal => {
                create_database(project, target)?;
                target.connect(lock_timeout(project))?
            }
            None => return Err(missing_database(target)),
        };
        ledger::ensure(&mut client)
            .map_err(|e| target.error("cannot create the ledger tables", e))?;
        if backup {
            project.ensure_state_dir()?;
            let path = super::backup::take(
                &mut client,
                target,
                &project.backups_dir(),
                project.config.backups_keep,
                &format!("before migrate ({phase})"),
            )?;
            let entry =
                crate::ledger::Entry::for_run(phase.as_str(), "backup", path.display().to_string());
            let audited = client.transaction().and_then(|mut tx| {
                ledger::append(&mut tx, &[entry])?;
                tx.commit()
            });
            audited.map_err(|e| target.error("cannot audit the backup", e))?;
            events(&Event::BackupTaken {
                db: &db,
                backup: &path,
            });
            done.backup = Some(path);
        }
        for m in pending {
            match step::apply(&mut client, ctx, &prepared[&m.id], events) {
                Ok(StepApplied::Committed { elapsed }) => {
                    events(&Event::StepApplied {
                        phase,
                        migration: m,
                        elapsed,
                    });
                    done.applied.push(m.label());
                }
                Ok(StepApplied::AlreadyApplied) => done.skipped.push(m.label()),
                Err(Error::Step(mut failure)) => {
                    failure.applied_before = done.applied.clone();
                    return Err(Error::Step(failure));
                }
                Err(e) => return Err(e),
            }
        }
    }
    events(&Event::PhaseFinished {
        phase,
        db: &db,
        applied: done.applied.len(),
    });
    Ok(done)
}

/// The real database is not there.
fn missing_database(target: &Target) -> Error {
    Error::Usage(format!(
        "{target}: the database does not exist; create it (`createdb {}`) or fix db in \
         strata.toml (strata creates only the test database); nothing was changed",
        target.dbname()
    ))
}

/// Creates the test database, connecting to the server's `postgres` database to do it.
fn create_database(project: &Project, target: &Target) -> Result<(), Error> {
    let admin = target.with_dbname("postgres");
    let mut client = admin.connect(lock_timeout(project))?;
    let name = target.dbname().replace('"', "\"\"");
    match client.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
        Ok(()) => Ok(()),
        // Another strata created it in the meantime (the loser of a race on the catalog sees
        // a unique violation rather than duplicate_database).
        Err(e)
            if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::Usage(format!(
            "{target}: the test database does not exist and strata could not create it: {}; \
             create it (`createdb {}`) or set test_db in strata.toml to one that exists",
            super::describe_error(&e),
            target.dbname()
        ))),
    }
}
