//! PostgreSQL behind the backend seam: a database on a server, named by a `postgres://` URL.
//! Wraps `crate::postgres`: `run` (a phase's steps, the ledger and audit outside a run, the
//! rehearsal on a throwaway copy, the sandbox's throwaway database), `restore` (`pg_dump`
//! backups back into the live database) and `design` (introspection from the catalogs).

use std::path::{Path, PathBuf};

use crate::core::backend::{
    Backend, Backups, Inspect, Introspect, Ledger, Run, Scratch, SqlScript, Survey, UndoStep,
    Undone,
};
use crate::core::backup::Backup;
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::Phase;
use crate::core::input::Dialect;
use crate::core::ledger::{Applied, AuditRow, Entry};
use crate::core::phase::{How, Runner};
use crate::core::restore::{Restored, TableDifference};
use crate::core::schema::ObjectRef;
use crate::core::step::Prepared;
use crate::core::target::Database;
use crate::core::tree::{Migration, Tree};
use crate::postgres::design::{self, PgLive};
use crate::postgres::{Target, restore, run};

/// A PostgreSQL database of a project.
pub(crate) struct Postgres<'p> {
    project: &'p Project,
    target: Target,
    /// The database as configured, to tell the test database from the real one.
    db: std::path::PathBuf,
}

impl<'p> Postgres<'p> {
    /// The database `target` of `project`.
    pub(crate) fn open(project: &'p Project, target: &Target) -> Self {
        Postgres {
            project,
            target: target.clone(),
            db: target.as_path(),
        }
    }
}

impl<'p> Postgres<'p> {
    /// `throwaway` (filled from `from`, as shown) as this database's scratch.
    fn throwaway(
        &self,
        throwaway: run::Throwaway<'p>,
        from: Option<PathBuf>,
    ) -> Box<dyn Scratch + 'p> {
        Box::new(PgScratch {
            database: Postgres {
                project: self.project,
                target: throwaway.target.clone(),
                db: throwaway.target.as_path(),
            },
            planned_on: self.target.as_path(),
            from,
            throwaway,
        })
    }
}

impl<'p> Inspect for Postgres<'p> {
    type Live = PgLive<'p>;

    fn live(&self, tree: &Tree, _writable: bool) -> Result<PgLive<'p>, Error> {
        PgLive::read(self.project, &self.target, tree)
    }

    fn for_drift(&self, tree: &Tree) -> Result<Option<PgLive<'p>>, Error> {
        PgLive::for_drift(self.project, &self.target, tree)
    }

    /// Each part on its own connection, and no digest: a server's schema cannot be told the
    /// same as another's more cheaply than by reading it.
    fn survey(
        &self,
        tree: &Tree,
        read_live: &dyn Fn(Option<&[u8; 32]>) -> bool,
    ) -> Result<Survey<PgLive<'p>>, Error> {
        let applied = self.applied()?;
        let last_audit = match applied {
            Some(_) => self.audit(Some(1))?.pop(),
            None => None,
        };
        let live = if applied.as_ref().is_some_and(|a| !a.is_empty()) && read_live(None) {
            self.for_drift(tree)?
        } else {
            None
        };
        Ok(Survey {
            applied,
            last_audit,
            digest: None,
            live,
        })
    }
}

impl Backend for Postgres<'_> {
    fn shown(&self) -> PathBuf {
        self.target.as_path()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

impl Ledger for Postgres<'_> {
    fn applied(&self) -> Result<Option<Vec<Applied>>, Error> {
        run::applied_on(self.project, &self.target)
    }

    fn append_audit(&self, entries: &[Entry]) -> Result<(), Error> {
        run::append_audit(self.project, &self.target, entries)
    }

    fn audit(&self, limit: Option<u64>) -> Result<Vec<AuditRow>, Error> {
        run::audit(self.project, &self.target, limit)
    }

    fn audit_page(
        &self,
        before_id: Option<i64>,
        size: u64,
    ) -> Result<(Vec<AuditRow>, bool), Error> {
        run::audit_page(self.project, &self.target, before_id, size)
    }

    fn repin(&self, m: &Migration, old_checksum: &str, entry: &Entry) -> Result<(), Error> {
        run::repin(self.project, &self.target, m, old_checksum, entry)
    }
}

impl Run for Postgres<'_> {
    fn undo(&self, phase: Phase, steps: &[UndoStep<'_>], backup: bool) -> Result<Undone, Error> {
        run::undo(self.project, &self.target, phase, steps, backup)
    }

    fn schema_text(&self) -> Result<String, Error> {
        run::schema_text(self.project, &self.target)
    }

    fn missing(&self) -> Option<Error> {
        Some(run::missing_database(&self.target))
    }

    fn check_single_transaction(&self, step: &Prepared) -> Result<(), Error> {
        if crate::postgres::step::prepares_statements(step) {
            return Err(Error::Usage(format!(
                "{}: prepares or deallocates statements by name, which needs a fresh \
                 connection after the step, so it cannot share the phase's transaction; \
                 run without --single-transaction (or single_transaction in strata.toml); \
                 nothing was applied",
                step.migration.label()
            )));
        }
        Ok(())
    }

    fn open_phase<'a>(
        &'a self,
        runner: &'a Runner<'_>,
        phase: Phase,
        how: How,
    ) -> Result<Box<dyn crate::core::phase::Database + 'a>, Error> {
        Ok(Box::new(run::open_phase(
            self.project,
            &self.target,
            runner,
            phase,
            how,
        )?))
    }

    fn copy(&self) -> Result<Box<dyn Scratch + '_>, Error> {
        let throwaway = run::copy_of(self.project, &self.target)?;
        Ok(self.throwaway(throwaway, Some(self.target.as_path())))
    }

    fn scratch(&self, from: Option<&Path>) -> Result<Box<dyn Scratch + '_>, Error> {
        let (throwaway, from) = run::scratch(self.project, &self.target, from)?;
        Ok(self.throwaway(throwaway, from.map(|f| f.shown())))
    }
}

impl SqlScript for Postgres<'_> {
    fn script_begin(&self) -> String {
        format!(
            "BEGIN;\n-- strata takes its lock and re-reads the ledger\n\
             SELECT pg_advisory_xact_lock({});\n",
            crate::postgres::ledger::LOCK_KEY
        )
    }

    fn data_sql(&self, data: &crate::core::data::DataSet) -> String {
        crate::postgres::step::data_sql(data)
    }

    fn script_end(&self) -> &'static str {
        "-- strata checks its bookkeeping is untouched, records the objects the step created,\n\
         -- compares the module's schema with schema.sql and records the step\nCOMMIT;\n"
    }
}

impl Backups for Postgres<'_> {
    fn identity(&self) -> Result<Option<String>, Error> {
        restore::live_id(self.project, &self.target)
    }

    fn backups(&self) -> Result<Vec<Backup>, Error> {
        Ok(restore::list(self.project, &self.target))
    }

    fn choose_backup(&self, named: Option<&Path>) -> Result<Backup, Error> {
        restore::choose(self.project, &self.target, named, || {
            crate::core::restore::default_for(self.project, &self.db, self, |test| match test {
                Database::Postgres(test) => Some(Box::new(Postgres::open(self.project, test))),
                Database::Sqlite(_) => None,
            })
        })
    }

    fn restore(&self, named: Option<&Path>, confirmed: bool) -> Result<Restored, Error> {
        // The run lock, exclusively, from before the backup is chosen to after the replay: a
        // running migrate phase ends first (its steps are never split by the restore), and
        // the choice reads the audit of a finished run.
        let session = self.target.connect(run::lock_timeout(self.project))?;
        let _run = crate::postgres::ledger::RunLock::exclusive(session).map_err(|e| {
            self.target.error(
                "cannot take strata's run lock (a migrate, undo or repair of this database is \
                 running; restore when it has finished)",
                e,
            )
        })?;
        let chosen = self.choose_backup(named)?;
        if !confirmed {
            match self.changed_since(&chosen)? {
                Some(changed) if !changed.is_empty() => {
                    return Err(crate::core::restore::changed_refusal(
                        &self.shown(),
                        &chosen,
                        &changed,
                    ));
                }
                None if self.db != self.project.test_db => {
                    return Err(crate::core::restore::unknown_refusal(
                        &self.shown(),
                        &chosen,
                    ));
                }
                _ => {}
            }
        }
        restore::restore(self.project, &self.target, chosen)
    }

    fn changed_since(&self, chosen: &Backup) -> Result<Option<Vec<TableDifference>>, Error> {
        crate::core::restore::changed_outside(chosen, |scheme| {
            restore::live_state_in(self.project, &self.target, scheme)
        })
    }

    fn record_state_after(&self, backup: &Path) -> Result<(), Error> {
        let live = restore::live_state(self.project, &self.target, true)?;
        crate::core::restore::record_state_after(
            backup,
            &crate::core::restore::Recorded::new(restore::SCHEME_WITH_DEFINITIONS, live),
        )
    }
}

impl Introspect for Postgres<'_> {
    fn unowned(&self) -> Result<Vec<ObjectRef>, Error> {
        design::unowned(self.project, &self.target)
    }
}

/// A throwaway database on the server of the database it was made for: the sandbox's, or a
/// copy for `--rehearse-on-copy`.
struct PgScratch<'p> {
    database: Postgres<'p>,
    /// The database named in the plan's refusals: the test database for the sandbox.
    planned_on: PathBuf,
    from: Option<PathBuf>,
    throwaway: run::Throwaway<'p>,
}

impl Scratch for PgScratch<'_> {
    fn database(&self) -> &dyn Backend {
        &self.database
    }

    fn planned_on(&self) -> PathBuf {
        self.planned_on.clone()
    }

    fn from(&self) -> Option<PathBuf> {
        self.from.clone()
    }

    fn finish(self: Box<Self>) -> Result<(), Error> {
        self.throwaway.drop_now()
    }
}

/// PostgreSQL's [`Watch`](crate::core::backend::Watch): a server's changes cannot be told
/// cheaply and surely from outside (its statistics lag and are per server, not per commit), so
/// it never answers and a caller computes afresh every time.
pub(crate) struct Unwatched;

impl crate::core::backend::Watch for Unwatched {
    fn token(&mut self) -> Option<crate::core::backend::ChangeToken> {
        None
    }
}
