//! A run on PostgreSQL, behind `crate::postgres::backend`: one phase's steps (connect,
//! creating the test database when it is missing; the bookkeeping tables; the `pg_dump`
//! backup; each step in its transaction or the phase's one), the ledger and audit reads and
//! writes outside a run, the rehearsal on a throwaway copy of the real database, and the
//! throwaway database of `strata sandbox` (empty, or a copy of `--from`). The algorithms of
//! `migrate`, `status`, `plan`, `audit` and `sandbox` are `crate::commands::migrate`'s, the same as on
//! SQLite.

use std::path::Path;
use std::time::Duration;

use super::{Session, ledger, step};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::{Event, EventSink, Phase};
use crate::core::input::Dialect;
use crate::core::ledger::Entry;
use crate::core::ledger::{Applied, AuditRow};
use crate::core::phase::{How, PhaseReport, Runner};
use crate::core::step::{ActionError, Applied as StepApplied, Prepared, UndoDriver, UndoError};
use crate::core::target::{Database, Target};
use crate::core::tree::Migration;

pub(crate) fn lock_timeout(project: &Project) -> Duration {
    project.busy_timeout()
}

/// Connects to `target`; `None` when the database does not exist yet.
fn connect_existing(project: &Project, target: &Target) -> Result<Option<Session>, Error> {
    target.open(lock_timeout(project))
}

/// A session held open on one database, by which [`Mark::seen_from`] finds that database
/// under another URL (two names of one host, a port forward).
pub(crate) struct Mark {
    _session: Session,
    pid: i32,
    start: Option<String>,
}

impl Mark {
    /// A session on `target`, with its process id and start time; `None` when the database
    /// cannot be reached.
    pub(crate) fn on(project: &Project, target: &Target) -> Option<Mark> {
        let mut session = connect_existing(project, target).ok()??;
        let row = session
            .query_one(
                "SELECT pid, backend_start::pg_catalog.text FROM pg_catalog.pg_stat_activity \
                 WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()",
                &[],
            )
            .ok()?;
        Some(Mark {
            pid: row.get(0),
            start: row.get(1),
            _session: session,
        })
    }

    /// Whether the marked session is among the sessions of `other`'s current database: then
    /// `other` is, on the server, the marked database. `false` when `other` cannot be reached.
    pub(crate) fn seen_from(&self, project: &Project, other: &Target) -> bool {
        let Ok(Some(mut b)) = connect_existing(project, other) else {
            return false;
        };
        b.query_one(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity \
             WHERE pid OPERATOR(pg_catalog.=) $1 \
             AND backend_start::pg_catalog.text OPERATOR(pg_catalog.=) $2 \
             AND datname OPERATOR(pg_catalog.=) pg_catalog.current_database()",
            &[&self.pid, &self.start],
        )
        .is_ok_and(|r| r.get::<_, i64>(0) > 0)
    }
}

/// Whether `test` is, on the server, the very database `real` is, whatever the two URLs say
/// (see [`Mark`]). Best effort: `false` when either database cannot be reached or the session
/// cannot be seen (then the URLs were already compared by
/// `crate::core::config::check_distinct`).
pub(crate) fn same_database(project: &Project, real: &Target, test: &Target) -> bool {
    Mark::on(project, real).is_some_and(|mark| mark.seen_from(project, test))
}

/// The migrations applied to `target`; `None` when the database does not exist.
pub(crate) fn applied_on(
    project: &Project,
    target: &Target,
) -> Result<Option<Vec<Applied>>, Error> {
    connect_existing(project, target)?
        .map(|mut c| {
            ledger::applied(&mut *c, &target.book())
                .map_err(|e| target.error("cannot read the ledger", e))
        })
        .transpose()
}

/// Appends `entries` to the audit log of `target`, creating the bookkeeping tables if needed.
pub(crate) fn append_audit(
    project: &Project,
    target: &Target,
    entries: &[crate::core::ledger::Entry],
) -> Result<(), Error> {
    let mut client = target.connect(lock_timeout(project))?;
    ledger::ensure(&mut client, &target.book())
        .map_err(|e| target.error("cannot create the ledger tables", e))?;
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::append(&mut tx, &target.book(), entries)?;
            tx.commit()
        })
        .map_err(|e| target.error("cannot append to the audit log", e))
}

/// One page of the audit log of `target` (see `crate::sqlite::ledger::audit_page`).
pub(crate) fn audit_page(
    project: &Project,
    target: &Target,
    before_id: Option<i64>,
    size: u64,
) -> Result<(Vec<AuditRow>, bool), Error> {
    Ok(match connect_existing(project, target)? {
        Some(mut c) => ledger::audit_page(&mut *c, &target.book(), before_id, size)
            .map_err(|e| target.error("cannot read the audit log", e))?,
        None => (Vec::new(), false),
    })
}

/// `strata repair` on PostgreSQL: re-pins `m` (its checksum and manifest) in the ledger of
/// `target` and audits it, in one transaction under strata's lock.
pub(crate) fn repin(
    project: &Project,
    target: &Target,
    m: &Migration,
    old_checksum: &str,
    entry: &crate::core::ledger::Entry,
) -> Result<(), Error> {
    let mut client = target.connect(lock_timeout(project))?;
    let repinned = client
        .transaction()
        .and_then(|mut tx| {
            ledger::lock_with_run(&mut tx, &target.book())?;
            let repinned = tx.execute(
                &*ledger::in_book(
                    &target.book(),
                    "UPDATE strata.strata_migration SET checksum = $1, manifest = $2
                 WHERE module = $3 AND stamp = $4 AND checksum = $5",
                ),
                &[
                    &m.checksum(),
                    &m.manifest.to_lines(),
                    &m.id.module,
                    &m.id.stamp,
                    &old_checksum,
                ],
            )?;
            if repinned != 1 {
                return Ok(false);
            }
            ledger::append(&mut tx, &target.book(), std::slice::from_ref(entry))?;
            tx.commit().map(|()| true)
        })
        .map_err(|e| target.error(format!("cannot re-pin {}", m.label()), e))?;
    if !repinned {
        return Err(crate::core::error::Refusal::changed_since_planned(
            &target.as_path(),
            m,
        ));
    }
    Ok(())
}

/// The newest `limit` rows of the audit log of `target`.
pub(crate) fn audit(
    project: &Project,
    target: &Target,
    limit: Option<u64>,
) -> Result<Vec<AuditRow>, Error> {
    Ok(match connect_existing(project, target)? {
        Some(mut c) => ledger::audit(&mut *c, &target.book(), limit)
            .map_err(|e| target.error("cannot read the audit log", e))?,
        None => Vec::new(),
    })
}

/// What a copy starts from: a live database, or a backup archive (`pg_dump --format=custom`).
pub(crate) enum Source {
    Database(Box<Target>),
    Archive(std::path::PathBuf),
}

impl Source {
    /// `sandbox --from`'s value: a `postgres://` URL, or a `.pgdump` backup.
    fn of(from: &Path) -> Result<Source, Error> {
        if let Database::Postgres(target) = Database::parse(from, "--from")? {
            return Ok(Source::Database(target));
        }
        if from
            .extension()
            .is_some_and(|e| e == super::backup::EXTENSION)
            && from.is_file()
        {
            return Ok(Source::Archive(from.to_path_buf()));
        }
        Err(Error::Usage(format!(
            "sandbox --from on PostgreSQL takes a postgres:// URL of a database to copy or a \
             .{} backup (see `strata restore --list`); {} is neither",
            super::backup::EXTENSION,
            from.display()
        )))
    }

    /// As the report shows it (a URL without its password).
    pub(crate) fn shown(&self) -> std::path::PathBuf {
        match self {
            Source::Database(t) => t.as_path(),
            Source::Archive(p) => p.clone(),
        }
    }

    /// Fills the empty database `into` with this source's schema and rows (`pg_restore
    /// --no-owner --no-acl`, so the user strata connects as owns the copy), in one transaction.
    fn copy_into(&self, project: &Project, into: &Target) -> Result<(), Error> {
        let state = project.ensure_state_dir()?;
        let dir = crate::core::backup::private_dir()
            .prefix("copy-")
            .tempdir_in(&state)
            .map_err(|e| Error::io(&state, e))?;
        let archive = match self {
            Source::Archive(p) => p.clone(),
            Source::Database(db) => {
                let archive = dir.path().join("copy.pgdump");
                let mut dump = super::backup::command("pg_dump", db)?;
                dump.arg("--format=custom").arg("--file").arg(&archive);
                super::backup::run(dump, "pg_dump (making a copy)", db)?;
                archive
            }
        };
        let mut restore = super::backup::command("pg_restore", into)?;
        restore
            .args([
                "--no-owner",
                "--no-acl",
                "--exit-on-error",
                "--single-transaction",
            ])
            .arg(format!("--dbname={}", into.dbname()))
            .arg(&archive);
        super::backup::run(restore, "pg_restore (making a copy)", into)?;
        Ok(())
    }
}

/// `--rehearse-on-copy`'s database: a throwaway copy of `real` (made with `pg_dump` and
/// `pg_restore` on the same server, owners and privileges left to the user strata connects
/// as), dropped whatever happens.
pub(crate) fn copy_of<'p>(project: &'p Project, real: &Target) -> Result<Throwaway<'p>, Error> {
    let copy = Throwaway::create(project, real.with_dbname(&throwaway_name("copy", real)?))?;
    Source::Database(Box::new(real.clone())).copy_into(project, &copy.target)?;
    Ok(copy)
}

/// `strata sandbox`'s database on PostgreSQL: a throwaway database strata creates on
/// `server`'s server (dropped whatever happens), empty or filled from `from` (a `postgres://`
/// URL of a database to copy, or a `.pgdump` backup). Returns it with what it was filled from.
pub(crate) fn scratch<'p>(
    project: &'p Project,
    server: &Target,
    from: Option<&Path>,
) -> Result<(Throwaway<'p>, Option<Source>), Error> {
    let from = from.map(Source::of).transpose()?;
    let throwaway = Throwaway::create(
        project,
        server.with_dbname(&throwaway_name("sandbox", server)?),
    )?;
    if let Some(source) = &from {
        source.copy_into(project, &throwaway.target)?;
    }
    Ok((throwaway, from))
}

/// A database strata makes and drops for one run on `of`'s server: `strata_<what>_`, the first
/// 24 bytes of `of`'s name (which project it serves) and 20 random hex digits no one can guess ahead.
/// Within PostgreSQL's 63 bytes whatever the name's script: the name is cut on a character
/// boundary, never the random part. [`Throwaway::create`] refuses a name that exists.
fn throwaway_name(what: &str, of: &Target) -> Result<String, Error> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| {
        Error::Usage(format!(
            "cannot name the throwaway database: no randomness from the system ({e})"
        ))
    })?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = format!("strata_{what}_");
    // At most 24 bytes of the real name: enough to tell which project it serves.
    let room = (crate::core::target::NAME_BYTES - prefix.len() - suffix.len() - 1).min(24);
    let project = crate::core::target::server_name(of.dbname());
    let mut end = project.len().min(room);
    while !project.is_char_boundary(end) {
        end -= 1;
    }
    Ok(format!("{prefix}{}_{suffix}", &project[..end]))
}

/// A database that exists only while the sandbox runs: dropped on every way out.
pub(crate) struct Throwaway<'p> {
    project: &'p Project,
    pub(crate) target: Target,
    dropped: bool,
}

impl<'p> Throwaway<'p> {
    /// Creates the database under a fresh name; a database of that name already there (made by
    /// someone else, who would own it and could read what is copied into it) is refused, never
    /// used.
    fn create(project: &'p Project, target: Target) -> Result<Self, Error> {
        let admin = target.with_dbname("postgres");
        let mut client = admin.connect(lock_timeout(project))?;
        let name = target.dbname().replace('"', "\"\"");
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| {
                Error::Usage(format!(
                    "{target}: cannot create the throwaway database: {}; strata uses only a \
                     database it has just created under a fresh random name, so nothing was \
                     copied or changed",
                    super::describe_error(&e)
                ))
            })?;
        Ok(Throwaway {
            project,
            target,
            dropped: false,
        })
    }

    pub(crate) fn drop_now(mut self) -> Result<(), Error> {
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

/// How a phase runs its steps.
#[derive(Debug, Clone, Copy)]
struct Steps {
    /// Take a verified backup first.
    backup: bool,
    /// All steps in one transaction, a savepoint each (`--single-transaction`).
    single: bool,
}

/// Opens `target` for one phase of `runner`'s steps, run as `how` says: connects (creating the
/// test database if it is missing); [`crate::core::phase::Database::begin`] then makes sure of the
/// bookkeeping and takes the backup.
pub(crate) fn open_phase<'a>(
    project: &'a Project,
    target: &'a Target,
    runner: &'a Runner<'_>,
    phase: Phase,
    how: How,
) -> Result<PgPhase<'a>, Error> {
    let session = match connect_existing(project, target)? {
        Some(c) => c,
        None if phase == Phase::Rehearsal => {
            create_database(project, target)?;
            target.connect(lock_timeout(project))?
        }
        None => return Err(missing_database(target)),
    };
    // The run lock, shared, for the whole phase: a restore, undo or repair waits for the
    // phase to end instead of landing between two of its steps.
    let run_lock =
        ledger::RunLock::shared(target.connect(lock_timeout(project))?).map_err(|e| {
            target.error(
                "cannot take strata's run lock (a restore, undo or repair of this database is \
             running; run migrate again when it has finished)",
                e,
            )
        })?;
    let ctx = step::Context {
        target,
        phase,
        test_data: how.test_data,
        lock_timeout: lock_timeout(project),
        statement_timeout: Duration::from_millis(project.config.statement_timeout_ms),
        sandbox: runner.sandbox.as_ref(),
        limits: project.config.sandbox,
        write_snapshots: how.write_snapshots,
    };
    Ok(PgPhase {
        project,
        ctx,
        how: Steps {
            backup: how.backup,
            single: how.single_transaction,
        },
        session,
        log: Vec::new(),
        settled: None,
        _run_lock: run_lock,
    })
}

/// A PostgreSQL database opened for one phase.
pub(crate) struct PgPhase<'a> {
    project: &'a Project,
    ctx: step::Context<'a>,
    how: Steps,
    session: Session,
    /// With one transaction for the phase: a failed step's audit rows, written once the phase
    /// has rolled back.
    log: Vec<crate::core::ledger::Entry>,
    /// With one transaction for the phase: the migrations the ledger held when the phase took
    /// strata's lock, which it holds to its end (no other process applies one meanwhile). A
    /// step of another may begin with its first statement (see `step::apply`).
    settled: Option<std::collections::HashSet<crate::core::tree::MigrationId>>,
    /// Held for the phase (see [`ledger::RUN_KEY`]).
    _run_lock: ledger::RunLock,
}

impl crate::core::phase::Database for PgPhase<'_> {
    fn applied_now(&mut self) -> Result<Vec<crate::core::tree::MigrationId>, Error> {
        let book = self.session.book().to_string();
        ledger::applied(&mut *self.session, &book)
            .map(|applied| applied.into_iter().map(|a| a.id).collect())
            .map_err(|e| self.ctx.target.error("cannot read the ledger", e))
    }

    fn state(&mut self) -> Option<crate::core::restore::Recorded> {
        let book = self.session.book().to_string();
        super::restore::recorded_state(&mut self.session, &book).ok()
    }

    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<std::path::PathBuf>, Error> {
        let target = self.ctx.target;
        ledger::ensure(&mut self.session, &target.book())
            .map_err(|e| target.error("cannot create the ledger tables", e))?;
        let backup = if self.how.backup {
            Some(self.backup(events)?)
        } else {
            None
        };
        if self.how.single {
            // Held to the end of the phase; each step takes it again (it stacks: the same key,
            // the book's) and re-reads the ledger.
            let book = target.book();
            self.session
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_catalog.pg_advisory_xact_lock({})",
                    ledger::key_of(&book, ledger::LOCK_KEY)
                ))
                .map_err(|e| target.error("cannot begin the phase's transaction", e))?;
            let applied = ledger::applied(&mut *self.session, &book)
                .map_err(|e| target.error("cannot read the ledger", e))?;
            self.settled = Some(applied.into_iter().map(|a| a.id).collect());
        }
        Ok(backup)
    }

    fn apply(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<StepApplied, Error> {
        let log = self.how.single.then_some(&mut self.log);
        let pipeline = match &self.settled {
            Some(applied) => !applied.contains(&step.migration.id),
            None => !self.how.single,
        };
        step::apply(&mut self.session, &self.ctx, step, events, log, pipeline)
    }

    fn end(&mut self, result: Result<(), Error>, done: &mut PhaseReport) -> Result<(), Error> {
        if !self.how.single {
            // Each step committed or rolled back on its own.
            return result;
        }
        let target = self.ctx.target;
        let committed = result.and_then(|()| {
            self.session
                .batch_execute("COMMIT")
                .map_err(|e| target.error("cannot commit the phase's transaction", e))
        });
        let Err(e) = committed else {
            return Ok(());
        };
        // Whatever ended the phase, all of it is undone: the steps it had applied are audited
        // as rolled back, with the failed step's own rows, in a transaction of their own.
        let _ = self.session.batch_execute("ROLLBACK");
        let mut log = std::mem::take(&mut self.log);
        log.extend(crate::core::phase::rolled_back_steps(self.ctx.phase, done));
        let audited = self.session.transaction().and_then(|mut tx| {
            ledger::append(&mut tx, &target.book(), &log)?;
            tx.commit()
        });
        let unaudited = audited.err().map(|a| super::describe_error(&a));
        Err(crate::core::phase::after_rollback(e, unaudited))
    }
}

impl PgPhase<'_> {
    /// The verified backup before the phase, audited.
    fn backup(&mut self, events: &mut EventSink<'_>) -> Result<std::path::PathBuf, Error> {
        let (project, target, phase) = (self.project, self.ctx.target, self.ctx.phase);
        project.ensure_state_dir()?;
        let path = super::backup::take(
            &mut self.session,
            target,
            &project.backups_dir(),
            project.config.backups_keep,
            &format!("before migrate ({phase})"),
        )?;
        let entry = crate::core::ledger::Entry::for_run(
            phase.as_str(),
            "backup",
            path.display().to_string(),
        );
        let audited = self.session.transaction().and_then(|mut tx| {
            ledger::append(&mut tx, &target.book(), &[entry])?;
            tx.commit()
        });
        audited.map_err(|e| target.error("cannot audit the backup", e))?;
        events(&Event::BackupTaken {
            db: &target.as_path(),
            backup: &path,
        });
        Ok(path)
    }
}

/// The real database is not there.
pub(crate) fn missing_database(target: &Target) -> Error {
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

/// `strata undo` on PostgreSQL (see `crate::core::backend::Run::undo`): the `pg_dump` backup,
/// then each migration's `undo.sql` in a transaction of its own, after the run's advisory lock
/// and a re-read of the ledger, with strata's bookkeeping fingerprinted before and after the
/// script as a step's is.
pub(crate) fn undo(
    project: &Project,
    target: &Target,
    phase: Phase,
    steps: &[crate::core::backend::UndoStep<'_>],
    take_backup: bool,
) -> Result<crate::core::backend::Undone, Error> {
    let mut client = target.connect(lock_timeout(project))?;
    // The run lock and strata's lock for the whole undo, on the session (released when the
    // connection closes): a migrate's phase or step waits for the undo, and
    // the backup is of the database the undo starts from. Each undo transaction takes it again
    // (it stacks) and re-reads the ledger inside it.
    client
        .execute(
            "SELECT pg_catalog.pg_advisory_lock($1)",
            &[&ledger::RUN_KEY],
        )
        .and_then(|_| {
            client.execute(
                "SELECT pg_catalog.pg_advisory_lock($1)",
                &[&ledger::LOCK_KEY],
            )
        })
        .map_err(|e| target.error("cannot take strata's lock", e))?;
    let backup = if take_backup {
        let path = super::backup::take(
            &mut client,
            target,
            &project.backups_dir(),
            project.config.backups_keep,
            &format!("before undo ({phase})"),
        )?;
        let entry = crate::core::ledger::Entry::for_run(
            phase.as_str(),
            "backup",
            path.display().to_string(),
        );
        ledger::append(&mut *client, &target.book(), std::slice::from_ref(&entry))
            .map_err(|e| target.error("cannot audit the backup", e))?;
        Some(path)
    } else {
        None
    };
    let mut driver = PgUndo {
        client: &mut client,
        target,
        label: String::new(),
        statements: Vec::new(),
        before: String::new(),
        open: false,
    };
    crate::core::step::undo_all(&mut driver, phase, steps, backup)
}

/// One undo on a PostgreSQL session, for the shared algorithm (`crate::core::step::undo`):
/// under strata's advisory lock, with strata's bookkeeping fingerprinted before and after the
/// script. An error reaching the server is returned as it is; a statement of the script that
/// fails, or a change to the bookkeeping, is the undo's failure.
struct PgUndo<'a> {
    client: &'a mut Session,
    target: &'a Target,
    /// The migration being undone, as an error names it.
    label: String,
    /// Its `undo.sql`'s statements, split before the undo begins.
    statements: Vec<super::script::Statement>,
    /// The fingerprint of strata's bookkeeping before the script (`ledger::signature`).
    before: String,
    open: bool,
}

impl PgUndo<'_> {
    /// An error reaching the server during the undo.
    fn error(&self) -> impl Fn(postgres::Error) -> UndoError + '_ {
        let what = format!("cannot undo {}", self.label);
        move |e| UndoError::Error(self.target.error(what.clone(), e))
    }
}

impl UndoDriver for PgUndo<'_> {
    const DIALECT: Dialect = Dialect::Postgres;

    fn db(&self) -> std::path::PathBuf {
        self.target.as_path()
    }

    fn begin(&mut self, m: &Migration, sql: &str) -> Result<(), UndoError> {
        self.label = m.label();
        self.statements =
            super::script::statements(&m.file("undo.sql"), sql).map_err(UndoError::Error)?;
        let begun = self
            .client
            .batch_execute("BEGIN")
            .map(|()| self.open = true)
            .and_then(|()| ledger::lock(&mut **self.client, &self.target.book()));
        begun.map_err(self.error())
    }

    fn applied(&mut self) -> Result<Vec<crate::core::tree::MigrationId>, UndoError> {
        let applied = ledger::applied(&mut **self.client, &self.target.book());
        let applied = applied.map_err(self.error())?;
        Ok(applied.into_iter().map(|a| a.id).collect())
    }

    fn skip(&mut self) -> Result<(), UndoError> {
        self.rollback();
        Ok(())
    }

    fn run(&mut self, file: &Path, _sql: &str) -> Result<u64, UndoError> {
        let before = self
            .client
            .checks()
            .map(|c| c.signature.clone())
            .and_then(|signature| self.client.query_one(&signature, &[]));
        self.before = before.map_err(self.error())?.get(0);
        // The user's own settings for the script (strata's are put back after it).
        let user = self.client.user_settings().to_string();
        if !user.is_empty() {
            self.client.batch_execute(&user).map_err(self.error())?;
        }
        let mut rows = 0;
        for st in &self.statements {
            step::refuse_server_wide(file, st)?;
            let messages = self.client.simple_query(&st.text).map_err(|e| {
                ActionError::new(
                    Some(file.to_path_buf()),
                    Some((st.line, step::one_line(&st.text))),
                    super::describe_error(&e),
                )
            })?;
            for message in messages {
                if let postgres::SimpleQueryMessage::CommandComplete(n) = message {
                    rows += n;
                }
            }
        }
        // strata's settings again, whatever the script set (see `super::PIN`); then the same
        // checks as after a step's SQL.
        self.client
            .batch_execute(super::PIN)
            .map_err(self.error())?;
        step::bookkeeping_untouched(
            self.client,
            Some(file.to_path_buf()),
            "undo.sql",
            "undo",
            &self.before,
        )?;
        Ok(rows)
    }

    fn forget(&mut self, m: &Migration, entry: &Entry) -> Result<(), UndoError> {
        let book = self.target.book();
        let client = &mut **self.client;
        let forgotten = client
            .execute(
                &*ledger::in_book(
                    &book,
                    "DELETE FROM strata.strata_migration WHERE module = $1 AND stamp = $2",
                ),
                &[&m.id.module, &m.id.stamp],
            )
            .and_then(|_| {
                client.batch_execute(&ledger::in_book(
                    &book,
                    "DELETE FROM strata.strata_object
                      WHERE pg_catalog.pg_describe_object(classid, objid, 0) IS NULL",
                ))
            })
            .and_then(|()| ledger::append(client, &book, std::slice::from_ref(entry)));
        forgotten.map_err(self.error())
    }

    fn commit(&mut self) -> Result<(), UndoError> {
        self.open = false;
        let committed = self.client.batch_execute("COMMIT");
        committed.map_err(self.error())?;
        // A `SET` of undo.sql outlives its commit: the session goes back to strata's settings
        // before the next undo reads the ledger (its session locks kept).
        let reset = self.client.reset_settings();
        reset.map_err(|e| {
            UndoError::Error(
                self.target
                    .error("cannot reset the session after the undo", e),
            )
        })
    }

    fn rollback(&mut self) {
        if std::mem::take(&mut self.open) {
            // A failed ROLLBACK means a broken connection, which ends the transaction too.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }

    fn audit_failure(&mut self, entry: &Entry) -> Result<(), String> {
        ledger::append(
            &mut **self.client,
            &self.target.book(),
            std::slice::from_ref(entry),
        )
        .map_err(|e| e.to_string())
    }
}

/// The whole schema of `target` as text, every object whoever owns it.
pub(crate) fn schema_text(project: &Project, target: &Target) -> Result<String, Error> {
    let mut client = target.connect(lock_timeout(project))?;
    let live = super::schema::read(&mut *client, &target.book())
        .map_err(|e| target.error("cannot read the schema", e))?;
    Ok(live.schema.to_sql())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_name_keeps_its_random_part_within_63_bytes_for_any_script() {
        for real in ["app", &"ж".repeat(40), &"x".repeat(63), &"名".repeat(21)] {
            let of = Target::parse(&format!("postgres://u@localhost/{real}"), "db").unwrap();
            let a = throwaway_name("sandbox", &of).unwrap();
            let b = throwaway_name("sandbox", &of).unwrap();
            assert!(a.len() <= 63, "{a} is {} bytes", a.len());
            assert_ne!(a, b, "two throwaway names alike: not unpredictable");
            let suffix = a.rsplit('_').next().unwrap();
            assert_eq!(suffix.len(), 20, "{a}: the random part was cut");
        }
    }
}
