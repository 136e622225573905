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
use crate::core::ledger::{Applied, AuditRow};
use crate::core::phase::{How, PhaseReport, Runner};
use crate::core::step::{Applied as StepApplied, Prepared};
use crate::core::target::Target;
use crate::core::tree::Migration;

fn lock_timeout(project: &Project) -> Duration {
    project.busy_timeout()
}

/// Connects to `target`; `None` when the database does not exist yet.
fn connect_existing(project: &Project, target: &Target) -> Result<Option<Session>, Error> {
    target.open(lock_timeout(project))
}

/// The migrations applied to `target`; `None` when the database does not exist.
pub(crate) fn applied_on(
    project: &Project,
    target: &Target,
) -> Result<Option<Vec<Applied>>, Error> {
    connect_existing(project, target)?
        .map(|mut c| {
            ledger::applied(&mut *c).map_err(|e| target.error("cannot read the ledger", e))
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
    ledger::ensure(&mut client).map_err(|e| target.error("cannot create the ledger tables", e))?;
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::append(&mut tx, entries)?;
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
        Some(mut c) => ledger::audit_page(&mut *c, before_id, size)
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
    entry: &crate::core::ledger::Entry,
) -> Result<(), Error> {
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

/// The newest `limit` rows of the audit log of `target`.
pub(crate) fn audit(
    project: &Project,
    target: &Target,
    limit: Option<u64>,
) -> Result<Vec<AuditRow>, Error> {
    Ok(match connect_existing(project, target)? {
        Some(mut c) => ledger::audit(&mut *c, limit)
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
        if crate::core::target::is_url(from) {
            return Ok(Source::Database(Box::new(Target::parse(
                &from.to_string_lossy(),
                "--from",
            )?)));
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
    let copy = Throwaway::create(project, real.with_dbname(&throwaway_name("copy", real)))?;
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
        server.with_dbname(&throwaway_name("sandbox", server)),
    )?;
    if let Some(source) = &from {
        source.copy_into(project, &throwaway.target)?;
    }
    Ok((throwaway, from))
}

/// A database strata makes and drops for one run on `of`'s server: `strata_<what>_`, the first
/// 24 characters of `of`'s name (which project it serves), the process and a time stamp;
/// within PostgreSQL's 63 characters.
fn throwaway_name(what: &str, of: &Target) -> String {
    let project: String = of.dbname().chars().take(24).collect();
    format!(
        "strata_{what}_{project}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros() % 1_000_000_000_000
    )
}

/// A database that exists only while the sandbox runs: dropped on every way out.
pub(crate) struct Throwaway<'p> {
    project: &'p Project,
    pub(crate) target: Target,
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
}

impl crate::core::phase::Database for PgPhase<'_> {
    fn state(&mut self) -> Option<crate::core::restore::State> {
        super::restore::state_of(&mut self.session).ok()
    }

    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<std::path::PathBuf>, Error> {
        let target = self.ctx.target;
        ledger::ensure(&mut self.session)
            .map_err(|e| target.error("cannot create the ledger tables", e))?;
        let backup = if self.how.backup {
            Some(self.backup(events)?)
        } else {
            None
        };
        if self.how.single {
            // Held to the end of the phase; each step takes it again (it stacks) and re-reads
            // the ledger inside its savepoint.
            self.session
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_catalog.pg_advisory_xact_lock({})",
                    ledger::LOCK_KEY
                ))
                .map_err(|e| target.error("cannot begin the phase's transaction", e))?;
        }
        Ok(backup)
    }

    fn apply(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<StepApplied, Error> {
        let log = self.how.single.then_some(&mut self.log);
        step::apply(&mut self.session, &self.ctx, step, events, log)
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
        let phase = self.ctx.phase.as_str();
        let mut log = std::mem::take(&mut self.log);
        log.extend(std::mem::take(&mut done.applied).into_iter().map(|label| {
            let mut entry = crate::core::ledger::Entry::for_run(
                phase,
                "single-transaction",
                format!("{label}: rolled back with the rest of the phase"),
            );
            entry.outcome = crate::core::ledger::Outcome::RolledBack;
            entry
        }));
        let audited = self.session.transaction().and_then(|mut tx| {
            ledger::append(&mut tx, &log)?;
            tx.commit()
        });
        Err(match e {
            Error::Step(mut failure) => {
                failure.applied_before.clear();
                if let Err(a) = audited {
                    failure.message.push_str(&format!(
                        "\n(the failure could not be written to the audit log: {})",
                        super::describe_error(&a)
                    ));
                }
                Error::Step(failure)
            }
            other => other,
        })
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
            ledger::append(&mut tx, &[entry])?;
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

/// `strata undo` on PostgreSQL (see `crate::core::backend::Backend::undo`): the `pg_dump` backup,
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
        ledger::append(&mut *client, std::slice::from_ref(&entry))
            .map_err(|e| target.error("cannot audit the backup", e))?;
        Some(path)
    } else {
        None
    };
    let mut undone = Vec::new();
    for s in steps {
        let started = std::time::Instant::now();
        let m = s.migration;
        let file = m.file("undo.sql");
        let statements = super::script::statements(&file, &s.sql)?;
        let mut failed: Option<(Option<(usize, String)>, String)> = None;
        let mut rows = 0u64;
        let result = (|| -> Result<bool, postgres::Error> {
            let mut tx = client.transaction()?;
            ledger::lock(&mut tx)?;
            if !ledger::is_applied(&mut tx, &m.id)? {
                return Ok(false);
            }
            let before = ledger::signature(&mut tx)?;
            for st in &statements {
                match tx.simple_query(&st.text) {
                    Ok(messages) => {
                        for message in messages {
                            if let postgres::SimpleQueryMessage::CommandComplete(n) = message {
                                rows += n;
                            }
                        }
                    }
                    Err(e) => {
                        failed = Some((
                            Some((st.line, step::one_line(&st.text))),
                            super::describe_error(&e),
                        ));
                        return Ok(false);
                    }
                }
            }
            if ledger::signature(&mut tx)? != before {
                failed = Some((
                    None,
                    "undo.sql changed strata's bookkeeping (the strata schema), which only \
                     strata may change; remove those statements"
                        .into(),
                ));
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM strata.strata_migration WHERE module = $1 AND stamp = $2",
                &[&m.id.module, &m.id.stamp],
            )?;
            tx.batch_execute(
                "DELETE FROM strata.strata_object
                  WHERE pg_catalog.pg_describe_object(classid, objid, 0) IS NULL",
            )?;
            let entry = crate::core::step::undo_entry(
                phase,
                m,
                &s.checksum,
                crate::core::ledger::Outcome::Ok,
                None,
                Some(rows),
                started,
            );
            ledger::append(&mut tx, std::slice::from_ref(&entry))?;
            tx.commit()?;
            Ok(true)
        })();
        match (result, failed) {
            (Ok(true), _) => undone.push(m.label()),
            (Ok(false), None) => {}
            (Ok(false), Some((statement, message))) => {
                let entry = crate::core::step::undo_entry(
                    phase,
                    m,
                    &s.checksum,
                    crate::core::ledger::Outcome::Failed,
                    Some(message.clone()),
                    None,
                    started,
                );
                let mut message = message;
                if let Err(e) = ledger::append(&mut *client, std::slice::from_ref(&entry)) {
                    message.push_str(&format!(
                        "\n(the failure could not be written to the audit log: {e})"
                    ));
                }
                return Err(crate::core::error::StepFailure {
                    phase,
                    db: target.as_path(),
                    migration: m.label(),
                    action: crate::core::event::Action::Undo,
                    file: Some(file),
                    statement,
                    message,
                    code: None,
                    applied_before: Vec::new(),
                }
                .into());
            }
            (Err(e), _) => return Err(target.error(format!("cannot undo {}", m.label()), e)),
        }
    }
    Ok(crate::core::backend::Undone {
        phase,
        db: target.as_path(),
        backup,
        undone,
    })
}

/// The whole schema of `target` as text, every object whoever owns it.
pub(crate) fn schema_text(project: &Project, target: &Target) -> Result<String, Error> {
    let mut client = target.connect(lock_timeout(project))?;
    let live =
        super::schema::read(&mut *client).map_err(|e| target.error("cannot read the schema", e))?;
    Ok(live.schema.to_sql())
}
