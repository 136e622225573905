//! The run: validate, rehearse on the test database, then apply to the real one (DESIGN §5).
//!
//! `migrate` reads like the algorithm: load the tree, plan every database and refuse before
//! touching anything, read every input, then run phase 1 and phase 2 step by step. Also the
//! read-only views of a project (`status`, `plan`, `audit`). Steps themselves live in `step`;
//! `restore` lives in its own module.

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
    /// Run all pending steps of a phase in one transaction, a savepoint per step (also
    /// `single_transaction` in strata.toml).
    pub single_transaction: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            plan: PlanOptions::default(),
            rehearse: true,
            rehearse_on_copy: false,
            write_snapshots: false,
            allow_drift: false,
            single_transaction: false,
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
    /// All steps in one transaction, a savepoint each.
    single_transaction: bool,
}

/// Everything a phase needs besides its database and its steps, on either backend.
pub(crate) struct Runner<'a> {
    project: &'a Project,
    pub(crate) prepared: HashMap<MigrationId, Prepared>,
    pub(crate) sandbox: Option<Sandbox>,
}

impl<'a> Runner<'a> {
    /// Reads and parses every input of `migrations`, and starts the sandbox if any has a
    /// component: all before the first step.
    pub(crate) fn new<'m>(
        project: &'a Project,
        migrations: impl IntoIterator<Item = &'m Migration>,
        dialect: crate::input::Dialect,
    ) -> Result<Self, Error> {
        let mut prepared = HashMap::new();
        for m in migrations {
            if !prepared.contains_key(&m.id) {
                prepared.insert(m.id.clone(), Prepared::load_for(m, dialect)?);
            }
        }
        let sandbox = if prepared.values().any(Prepared::has_components) {
            Some(
                Sandbox::new(crate::sandbox::CacheLocation::for_user()).map_err(|e| {
                    Error::Usage(format!("cannot start the WebAssembly sandbox: {e:#}"))
                })?,
            )
        } else {
            None
        };
        Ok(Runner {
            project,
            prepared,
            sandbox,
        })
    }

    /// Warnings about components older than their sources, in no particular order.
    pub(crate) fn stale(&self) -> impl Iterator<Item = String> + '_ {
        self.prepared.values().flat_map(|p| p.stale.iter().cloned())
    }

    /// Says so when the compile cache is off because its folder or key is not private.
    pub(crate) fn warn_about_cache(&self, events: &mut EventSink<'_>) {
        if let Some(why) = self.sandbox.as_ref().and_then(Sandbox::cache_problem) {
            events(&Event::Warning(format!(
                "the compile cache is off, components are compiled on every run: {why}"
            )));
        }
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
        crate::phase::run(
            phase,
            db,
            pending,
            &self.prepared,
            || SqlitePhase::open(self, phase, db, how),
            events,
        )
    }

    /// With one transaction for the phase, before it begins: a verified backup of the database
    /// as committed, holding the bookkeeping tables and the identity that the transaction will
    /// write (the database's own, or a new random one). Returns the identity and the backup.
    fn backup_first(
        &self,
        conn: &rusqlite::Connection,
        phase: Phase,
        db: &Path,
    ) -> Result<(String, PathBuf), Error> {
        let identity = |e| Error::db(db, "cannot give the database its identity", e);
        let id = match ledger::database_id(conn).map_err(identity)? {
            Some(id) => id,
            None => conn
                .query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))
                .map_err(identity)?,
        };
        let fill = ledger::Replay {
            database_id: Some(id.clone()),
            entries: Vec::new(),
        };
        let path = backup::take_with(
            conn,
            db,
            &id,
            &self.project.backups_dir(),
            self.project.config.backups_keep,
            &format!("before migrate ({phase})"),
            |copy| fill.write(copy),
        )?;
        Ok((id, path))
    }

    /// Before the first step: the bookkeeping tables, and with `how.backup` the database's
    /// identity, a verified backup and its audit row. In one transaction for the phase the
    /// backup is `taken` already and the rest is written inside that transaction, with
    /// `session.replay` keeping what a rollback would lose; otherwise each part commits on its
    /// own.
    #[allow(clippy::too_many_arguments)]
    fn bookkeeping(
        &self,
        conn: &mut rusqlite::Connection,
        phase: Phase,
        db: &Path,
        how: How,
        taken: Option<(String, PathBuf)>,
        session: &mut step::Session,
        events: &mut EventSink<'_>,
    ) -> Result<Option<PathBuf>, Error> {
        let tables = |e| Error::db(db, "cannot create the ledger tables", e);
        let identity = |e| Error::db(db, "cannot give the database its identity", e);
        let path = if how.single_transaction {
            ledger::ensure_within(conn).map_err(tables)?;
            let Some((id, path)) = taken else {
                return Ok(None);
            };
            let got = ledger::identity_within(conn, Some(&id)).map_err(identity)?;
            if got != id {
                return Err(Error::Usage(format!(
                    "{}: another strata run gave the database its identity while this one                      backed it up, so the backup {} does not carry it; nothing was applied, run                      the command again",
                    db.display(),
                    path.display()
                )));
            }
            path
        } else {
            ledger::ensure(conn).map_err(tables)?;
            if !how.backup {
                return Ok(None);
            }
            let id = ledger::ensure_database_id(conn).map_err(identity)?;
            backup::take_with(
                conn,
                db,
                &id,
                &self.project.backups_dir(),
                self.project.config.backups_keep,
                &format!("before migrate ({phase})"),
                |_| Ok(()),
            )?
        };
        let entry = ledger::Entry::for_run(phase.as_str(), "backup", path.display().to_string());
        ledger::append(conn, std::slice::from_ref(&entry))
            .map_err(|e| Error::db(db, "cannot audit the backup", e))?;
        if let Some(replay) = session.replay.as_mut() {
            replay.entries.push(entry);
        }
        events(&Event::BackupTaken { db, backup: &path });
        Ok(Some(path))
    }

    /// After a failed `--single-transaction` phase (already rolled back): the steps it had
    /// applied are undone too, so they are audited as rolled back and none stays applied; the
    /// bookkeeping the rollback took (the backup's row and the identity it records) is written
    /// again unless the failed step already did.
    fn rolled_back(
        &self,
        conn: &mut rusqlite::Connection,
        phase: Phase,
        e: Error,
        session: &mut step::Session,
        done: &mut PhaseReport,
    ) -> Error {
        let undone: Vec<ledger::Entry> = std::mem::take(&mut done.applied)
            .into_iter()
            .map(|label| {
                let mut entry = ledger::Entry::for_run(
                    phase.as_str(),
                    "single-transaction",
                    format!("{label}: rolled back with the rest of the phase"),
                );
                entry.outcome = ledger::Outcome::RolledBack;
                entry
            })
            .collect();
        let replay = session.replay.take();
        // Best effort: the failure itself is already audited by the step.
        let _ = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                match &replay {
                    Some(r) => r.write(&tx)?,
                    None => ledger::ensure_within(&tx)?,
                }
                ledger::append(&tx, &undone)?;
                tx.commit()
            });
        match e {
            Error::Step(mut failure) => {
                failure.applied_before.clear();
                Error::Step(failure)
            }
            other => other,
        }
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
            single_transaction: false,
        };
        let mut report = self.phase(Phase::Rehearsal, &copy, how, pending, events)?;
        report.copy_of = Some(db.to_path_buf());
        Ok(report)
    }
}

/// A SQLite database opened for one phase: its connection (held under the run lock, so a
/// restore never lands between steps), the steps' context and what they keep between them, and
/// with `--single-transaction` the phase's transaction.
struct SqlitePhase<'r, 'p> {
    runner: &'r Runner<'p>,
    phase: Phase,
    db: &'r Path,
    how: How,
    conn: rusqlite::Connection,
    ctx: step::Context<'r>,
    session: step::Session,
    /// With one transaction for the phase: `PRAGMA foreign_keys` before it (restored at the
    /// end), and the backup taken before it began.
    fk_was_on: Option<bool>,
    taken: Option<(String, PathBuf)>,
    _run: backup::RunLock,
}

impl<'r, 'p> SqlitePhase<'r, 'p> {
    fn open(runner: &'r Runner<'p>, phase: Phase, db: &'r Path, how: How) -> Result<Self, Error> {
        let run = backup::RunLock::shared(db, runner.project.busy_timeout())?;
        let conn = sqlite::open(db, runner.project.busy_timeout())?;
        if phase != Phase::Apply {
            // A scratch database (the test database, a copy, a sandbox): no fsync. A crash of
            // strata still rolls back through the journal; only a power loss could damage it,
            // and it is rebuilt from its backup or from zero. The file's journal mode is kept.
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(|e| Error::db(db, "cannot set PRAGMA synchronous", e))?;
        }
        let ctx = step::Context {
            db,
            phase,
            test_data: how.test_data,
            sandbox: runner.sandbox.as_ref(),
            limits: runner.project.config.sandbox,
            write_snapshots: how.write_snapshots,
        };
        let mut session = step::Session {
            single_transaction: how.single_transaction,
            ..step::Session::default()
        };
        // In one transaction for the whole phase, the bookkeeping tables, the identity, the
        // backup's audit row and every step commit together: one synced commit, as sqlite3's
        // own one-transaction run makes. The backup, taken just before, holds the same
        // bookkeeping (see `backup::take_with`).
        let mut taken = None;
        let fk_was_on = if how.single_transaction {
            let on = sqlite::foreign_keys(&conn)
                .map_err(|e| Error::db(db, "cannot read PRAGMA foreign_keys", e))?;
            if how.backup {
                taken = Some(runner.backup_first(&conn, phase, db)?);
            }
            sqlite::set_foreign_keys(&conn, false)
                .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"))
                .map_err(|e| Error::db(db, "cannot begin the phase's transaction", e))?;
            session.replay = Some(ledger::Replay {
                database_id: taken.as_ref().map(|(id, _)| id.clone()),
                entries: Vec::new(),
            });
            Some(on)
        } else {
            None
        };
        Ok(SqlitePhase {
            runner,
            phase,
            db,
            how,
            conn,
            ctx,
            session,
            fk_was_on,
            taken,
            _run: run,
        })
    }
}

impl crate::phase::Database for SqlitePhase<'_, '_> {
    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<PathBuf>, Error> {
        self.runner.bookkeeping(
            &mut self.conn,
            self.phase,
            self.db,
            self.how,
            self.taken.take(),
            &mut self.session,
            events,
        )
    }

    fn apply(
        &mut self,
        step: &Prepared,
        events: &mut EventSink<'_>,
    ) -> Result<step::Applied, Error> {
        step::apply(&mut self.conn, &self.ctx, &mut self.session, step, events)
    }

    fn end(&mut self, result: Result<(), Error>, done: &mut PhaseReport) -> Result<(), Error> {
        let db = self.db;
        let result = result.and_then(|()| {
            step::flush(&self.conn, &mut self.session)
                .map_err(|e| Error::db(db, "cannot record the phase's steps", e))
        });
        let Some(on) = self.fk_was_on else {
            return result;
        };
        let committed = result.and_then(|()| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| Error::db(db, "cannot commit the phase's transaction", e))
        });
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let restored = sqlite::set_foreign_keys(&self.conn, on)
            .map_err(|e| Error::db(db, "cannot restore PRAGMA foreign_keys", e));
        if let Err(e) = committed {
            return Err(self.runner.rolled_back(
                &mut self.conn,
                self.phase,
                e,
                &mut self.session,
                done,
            ));
        }
        restored
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
    if crate::postgres::run::is_postgres(project) {
        return crate::postgres::run::migrate(project, opts, events);
    }
    let tree = Tree::load(&project.migrations_dir())?;
    if !opts.rehearse {
        events(&Event::Warning(format!(
            "--no-rehearsal: applying to {} without rehearsing on the test database first",
            project.db.display()
        )));
    } else if project.test_db.starts_with(project.state_dir()) {
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
    let phases = validate(project, &tree, opts)?;
    let runner = Runner::new(
        project,
        phases
            .iter()
            .flat_map(|(_, _, pending)| pending.iter().copied()),
        crate::input::Dialect::Sqlite,
    )?;
    runner.warn_about_cache(events);
    for stale in runner.stale() {
        events(&Event::Warning(stale));
    }

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
            single_transaction,
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
    if crate::postgres::run::is_postgres(project) {
        return crate::postgres::run::sandbox(project, opts, events);
    }
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
    let runner = Runner::new(
        project,
        pending.iter().copied(),
        crate::input::Dialect::Sqlite,
    )?;
    runner.warn_about_cache(events);
    if let Some(stale) = runner.stale().next() {
        return Err(Error::Usage(format!(
            "{stale}. The sandbox runs what CI would commit, so it refuses a component that \
             does not match its sources"
        )));
    }

    let test_data = opts.from.is_none();
    let (steps, ok) = sandbox_steps(&pending, |m| {
        let mut fuel = 0;
        let mut sink = |e: &Event<'_>| {
            if let Event::ActionDone { fuel: Some(f), .. } = e {
                fuel += f;
            }
            events(e);
        };
        let how = How {
            test_data,
            backup: false,
            write_snapshots: false,
            single_transaction: false,
        };
        runner
            .phase(Phase::Sandbox, &db, how, &[m], &mut sink)
            .map(|_| fuel)
    })?;
    Ok(SandboxReport {
        ok,
        from: opts.from.clone(),
        steps,
        duration_ms: started.elapsed().as_millis() as u64,
    })
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
        let (outcome, fuel_used, message) = if failed {
            (StepOutcome::Skipped, 0, None)
        } else {
            match run(m) {
                Ok(fuel) => (StepOutcome::Ok, fuel, None),
                Err(Error::Step(f)) => {
                    failed = true;
                    (StepOutcome::Failed, 0, Some(f.to_string()))
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
    pub unowned: Vec<crate::schema::ObjectRef>,
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
    if crate::postgres::run::is_postgres(project) {
        let mut databases = crate::postgres::run::status(project)?;
        for d in databases.iter_mut().filter(|d| d.exists) {
            d.unowned = crate::design::unowned(project, &d.db)?;
            if d.phase == Phase::Apply {
                d.drift = drifted(project)?;
            }
        }
        return Ok(databases);
    }
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
                drift: if phase == Phase::Apply {
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
fn step_sql(p: &Prepared, test_data: bool, dialect: crate::input::Dialect) -> String {
    let postgres = dialect == crate::input::Dialect::Postgres;
    let mut out = if postgres {
        format!(
            "-- {}\nBEGIN;\n-- strata takes its lock and re-reads the ledger\nSELECT pg_advisory_xact_lock({});\n",
            p.migration.label(),
            crate::postgres::ledger::LOCK_KEY
        )
    } else {
        format!("-- {}\nBEGIN IMMEDIATE;\n", p.migration.label())
    };
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
    let data = |d: &crate::data::DataSet, dir: &str| {
        (
            format!("{dir}/data.json: {} row(s)", d.row_count()),
            Some(if postgres {
                crate::postgres::step::data_sql(d)
            } else {
                d.to_sql()
            }),
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
    if !postgres {
        section(
            "strata checks foreign keys",
            Some("PRAGMA foreign_key_check;".into()),
        );
    }
    if postgres {
        out.push_str(
            "-- strata checks its bookkeeping is untouched, records the objects the step \
             created,\n-- compares the module's schema with schema.sql and records the step\n\
             COMMIT;\n",
        );
    } else {
        out.push_str(
            "-- strata compares the schema with schema.sql and records the step\nCOMMIT;\n",
        );
    }
    out
}

/// The drift of the real database, for `status`.
fn drifted(project: &Project) -> Result<Vec<Drifted>, Error> {
    Ok(crate::design::drift(project)?
        .into_iter()
        .filter_map(|r| match r {
            crate::error::Refusal::Drift {
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
    let postgres = crate::postgres::run::is_postgres(project);
    let dialect = if postgres {
        crate::input::Dialect::Postgres
    } else {
        crate::input::Dialect::Sqlite
    };
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (phase, db) in targets(project, opts.rehearse) {
        let applied = read_applied(project, db)?;
        match plan::plan(db, &tree.migrations, &applied, &opts.plan) {
            Ok(pending) => {
                let steps = pending
                    .into_iter()
                    .map(|m| {
                        let prepared = Prepared::load_for(m, dialect)?;
                        let test_data = phase.loads_test_data();
                        Ok(PlannedStep {
                            migration: m.label(),
                            actions: prepared.actions(test_data),
                            sql: with_sql.then(|| step_sql(&prepared, test_data, dialect)),
                            warnings: prepared.stale,
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
    if !opts.allow_drift {
        refusals.extend(crate::design::drift(project)?);
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
pub fn append_audit(project: &Project, db: &Path, entries: &[ledger::Entry]) -> Result<(), Error> {
    if crate::postgres::is_url(db) {
        return crate::postgres::run::append_audit(project, db, entries);
    }
    let mut conn = sqlite::open(db, project.busy_timeout())?;
    ledger::ensure(&mut conn).map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
    ledger::append(&conn, entries).map_err(|e| Error::db(db, "cannot append to the audit log", e))
}

/// The migrations applied to `db` (a SQLite file or a PostgreSQL URL), read without creating
/// or changing anything.
pub fn read_applied(project: &Project, db: &Path) -> Result<Vec<ledger::Applied>, Error> {
    if crate::postgres::is_url(db) {
        return crate::postgres::run::read_applied(project, db);
    }
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
    if crate::postgres::is_url(audit_target(project, test_db)) {
        return crate::postgres::run::audit(project, audit_target(project, test_db), limit);
    }
    let (db, conn) = audit_db(project, test_db)?;
    let rows = match conn {
        Some(c) => {
            ledger::audit(&c, limit).map_err(|e| Error::db(db, "cannot read the audit log", e))?
        }
        None => Vec::new(),
    };
    Ok((db.clone(), rows))
}

/// One page of a database's audit log (see [`ledger::audit_page`]): the newest `size` rows
/// below `before_id`, oldest first, and whether older ones remain.
pub fn audit_page(
    project: &Project,
    test_db: bool,
    before_id: Option<i64>,
    size: u64,
) -> Result<(PathBuf, Vec<AuditRow>, bool), Error> {
    if crate::postgres::is_url(audit_target(project, test_db)) {
        return crate::postgres::run::audit_page(
            project,
            audit_target(project, test_db),
            before_id,
            size,
        );
    }
    let (db, conn) = audit_db(project, test_db)?;
    let (rows, more) = match conn {
        Some(c) => ledger::audit_page(&c, before_id, size)
            .map_err(|e| Error::db(db, "cannot read the audit log", e))?,
        None => (Vec::new(), false),
    };
    Ok((db.clone(), rows, more))
}

/// The database `audit` reads: the real one, or with `test_db` the test database.
fn audit_target(project: &Project, test_db: bool) -> &PathBuf {
    if test_db {
        &project.test_db
    } else {
        &project.db
    }
}

fn audit_db(
    project: &Project,
    test_db: bool,
) -> Result<(&PathBuf, Option<rusqlite::Connection>), Error> {
    let db = audit_target(project, test_db);
    Ok((db, sqlite::open_read_only(db, project.busy_timeout())?))
}
