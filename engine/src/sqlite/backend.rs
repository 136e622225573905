//! SQLite behind the backend seam: a database file of the project. The ledger and audit log
//! are `crate::sqlite::ledger`, a step is `crate::sqlite::step`, backups and the run lock `crate::core::backup`,
//! restore `crate::core::restore`, introspection `crate::sqlite::schema` through `crate::commands::design`; this module
//! owns how a phase opens, locks and ends a SQLite database (its connection under the run
//! lock, `--single-transaction`'s one transaction, the backup taken first), the rehearsal on a
//! `VACUUM INTO` copy and the sandbox's database in a temporary folder.

use std::path::{Path, PathBuf};

use rusqlite::params;

use crate::core::backend::{
    Backend, Backups, Inspect, Introspect, Ledger, Run, Scratch, SqlScript, Survey, UndoStep,
    Undone,
};
use crate::core::backup::{self, Backup};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::{Event, EventSink, Phase};
use crate::core::input::Dialect;
use crate::core::ledger::{Applied, AuditRow, Entry};
use crate::core::phase::{How, PhaseReport, Runner};
use crate::core::restore::{Restored, TableDifference};
use crate::core::schema::ObjectRef;
use crate::core::step::Prepared;
use crate::core::tree::{Migration, Tree};
use crate::sqlite;
use crate::sqlite::design::SqliteLive;
use crate::sqlite::ledger;
use crate::sqlite::step;

/// A SQLite database file of a project.
pub(crate) struct Sqlite<'p> {
    project: &'p Project,
    db: PathBuf,
}

impl<'p> Sqlite<'p> {
    pub(crate) fn new(project: &'p Project, db: &Path) -> Self {
        Sqlite {
            project,
            db: db.to_path_buf(),
        }
    }

    fn read_only(&self) -> Result<Option<rusqlite::Connection>, Error> {
        sqlite::open_read_only(&self.db, self.project.busy_timeout())
    }
}

impl<'p> Inspect for Sqlite<'p> {
    type Live = SqliteLive<'p>;

    fn live(&self, tree: &Tree, writable: bool) -> Result<SqliteLive<'p>, Error> {
        SqliteLive::read(self.project, &self.db, tree, writable)
    }

    fn for_drift(&self, tree: &Tree) -> Result<Option<SqliteLive<'p>>, Error> {
        SqliteLive::for_drift(self.project, &self.db, tree)
    }

    fn survey(
        &self,
        tree: &Tree,
        read_live: &dyn Fn(Option<&[u8; 32]>) -> bool,
    ) -> Result<Survey<SqliteLive<'p>>, Error> {
        SqliteLive::survey(self.project, &self.db, tree, read_live)
    }
}

impl Backend for Sqlite<'_> {
    fn shown(&self) -> PathBuf {
        self.db.clone()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

impl Ledger for Sqlite<'_> {
    fn applied(&self) -> Result<Option<Vec<Applied>>, Error> {
        let db = &self.db;
        self.read_only()?
            .map(|conn| {
                ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))
            })
            .transpose()
    }

    fn append_audit(&self, entries: &[Entry]) -> Result<(), Error> {
        let db = &self.db;
        let mut conn = sqlite::open(db, self.project.busy_timeout())?;
        ledger::ensure(&mut conn)
            .map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
        ledger::append(&conn, entries)
            .map_err(|e| Error::db(db, "cannot append to the audit log", e))
    }

    fn audit(&self, limit: Option<u64>) -> Result<Vec<AuditRow>, Error> {
        Ok(match self.read_only()? {
            Some(c) => ledger::audit(&c, limit)
                .map_err(|e| Error::db(&self.db, "cannot read the audit log", e))?,
            None => Vec::new(),
        })
    }

    fn audit_page(
        &self,
        before_id: Option<i64>,
        size: u64,
    ) -> Result<(Vec<AuditRow>, bool), Error> {
        Ok(match self.read_only()? {
            Some(c) => ledger::audit_page(&c, before_id, size)
                .map_err(|e| Error::db(&self.db, "cannot read the audit log", e))?,
            None => (Vec::new(), false),
        })
    }

    fn repin(&self, m: &Migration, old_checksum: &str, entry: &Entry) -> Result<(), Error> {
        let db = &self.db;
        // Under the run lock held exclusively, as every command that changes the ledger.
        let _run = backup::RunLock::exclusive(db, self.project.busy_timeout())?;
        let mut conn = sqlite::open(db, self.project.busy_timeout())?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::db(db, "cannot begin the repair", e))?;
        let repinned = tx
            .execute(
                "UPDATE strata_migration SET checksum = ?1, manifest = ?2 \
                 WHERE module = ?3 AND stamp = ?4 AND checksum = ?5",
                params![
                    m.checksum(),
                    m.manifest.to_lines(),
                    m.id.module,
                    m.id.stamp,
                    old_checksum
                ],
            )
            .map_err(|e| Error::db(db, "cannot re-pin the migration", e))?;
        if repinned != 1 {
            return Err(crate::core::error::Refusal::changed_since_planned(db, m));
        }
        ledger::append(&tx, std::slice::from_ref(entry))
            .map_err(|e| Error::db(db, "cannot audit the repair", e))?;
        tx.commit()
            .map_err(|e| Error::db(db, "cannot commit the repair", e))
    }
}

impl Run for Sqlite<'_> {
    fn undo(
        &self,
        phase: Phase,
        steps: &[UndoStep<'_>],
        take_backup: bool,
    ) -> Result<Undone, Error> {
        let db = &self.db;
        // Exclusive, as restore's: no run applies a migration while the undo chooses and
        // takes one back (a migrate holds it shared for its whole phase).
        let _run = backup::RunLock::exclusive(db, self.project.busy_timeout())?;
        let mut conn = sqlite::open(db, self.project.busy_timeout())?;
        let backup = if take_backup {
            let path = crate::sqlite::backup::take(
                &conn,
                db,
                &self.project.backups_dir(),
                self.project.config.backups_keep,
                &format!("before undo ({phase})"),
            )?;
            let entry = Entry::for_run(phase.as_str(), "backup", path.display().to_string());
            ledger::append(&conn, std::slice::from_ref(&entry))
                .map_err(|e| Error::db(db, "cannot audit the backup", e))?;
            Some(path)
        } else {
            None
        };
        crate::sqlite::step::undo_all(&mut conn, db, phase, steps, backup)
    }

    fn schema_text(&self) -> Result<String, Error> {
        let conn = sqlite::open(&self.db, self.project.busy_timeout())?;
        let schema = crate::sqlite::schema::Schema::read(&conn).map_err(|e| {
            Error::Usage(format!(
                "{}: cannot read the schema: {e}",
                self.db.display()
            ))
        })?;
        Ok(schema.to_sql())
    }

    fn missing(&self) -> Option<Error> {
        None
    }

    fn check_single_transaction(&self, _step: &Prepared) -> Result<(), Error> {
        Ok(())
    }

    fn open_phase<'a>(
        &'a self,
        runner: &'a Runner<'_>,
        phase: Phase,
        how: How,
    ) -> Result<Box<dyn crate::core::phase::Database + 'a>, Error> {
        Ok(Box::new(SqlitePhase::open(runner, phase, &self.db, how)?))
    }

    fn copy(&self) -> Result<Box<dyn Scratch + '_>, Error> {
        let (project, db) = (self.project, &self.db);
        let state = project.ensure_state_dir()?;
        // Private: the copy holds the real database's rows.
        let dir = crate::core::backup::private_dir()
            .prefix("rehearsal-")
            .tempdir_in(&state)
            .map_err(|e| Error::io(&state, e))?;
        let copy = dir
            .path()
            .join(db.file_name().unwrap_or_else(|| "copy.db".as_ref()));
        if db.exists() {
            let source = sqlite::open(db, project.busy_timeout())?;
            source
                .execute("VACUUM INTO ?1", [copy.to_string_lossy()])
                .map_err(|e| Error::db(db, "cannot copy the database for the rehearsal", e))?;
        }
        Ok(Box::new(SqliteScratch {
            database: Sqlite::new(project, &copy),
            from: Some(db.clone()),
            _dir: dir,
        }))
    }

    fn scratch(&self, from: Option<&Path>) -> Result<Box<dyn Scratch + '_>, Error> {
        // Private: with --from it holds a copy of another database's rows.
        let dir = crate::core::backup::private_dir()
            .prefix(".strata-sandbox-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let db = dir.path().join("sandbox.db");
        if let Some(from) = from {
            if !from.is_file() {
                return Err(Error::input(
                    from,
                    "does not exist; --from takes an existing SQLite database",
                ));
            }
            let source = sqlite::open_read_only(from, self.project.busy_timeout())?
                .expect("the file exists");
            source
                .execute("VACUUM INTO ?1", [db.to_string_lossy()])
                .map_err(|e| Error::db(from, "cannot copy the database for the sandbox", e))?;
        }
        Ok(Box::new(SqliteScratch {
            database: Sqlite::new(self.project, &db),
            from: from.map(Path::to_path_buf),
            _dir: dir,
        }))
    }
}

impl SqlScript for Sqlite<'_> {
    fn script_begin(&self) -> String {
        "BEGIN IMMEDIATE;\n".into()
    }

    fn data_sql(&self, data: &crate::core::data::DataSet) -> String {
        data.to_sql()
    }

    fn script_end(&self) -> &'static str {
        "-- strata checks foreign keys\nPRAGMA foreign_key_check;\n\
         -- strata compares the schema with schema.sql and records the step\nCOMMIT;\n"
    }
}

impl Backups for Sqlite<'_> {
    fn identity(&self) -> Result<Option<String>, Error> {
        match self.read_only()? {
            Some(conn) => ledger::database_id(&conn)
                .map_err(|e| Error::db(&self.db, "cannot read its identity", e)),
            None => Ok(None),
        }
    }

    fn backups(&self) -> Result<Vec<Backup>, Error> {
        backup::list(&self.project.backups_dir(), &self.db)
    }

    fn choose_backup(&self, named: Option<&Path>) -> Result<Backup, Error> {
        crate::sqlite::restore::choose_file(self.project, &self.db, named, || {
            crate::core::restore::default_for(self.project, &self.db, self, |test| {
                Some(Box::new(Sqlite::new(self.project, test.file()?)))
            })
        })
    }

    fn restore(&self, named: Option<&Path>, confirmed: bool) -> Result<Restored, Error> {
        crate::sqlite::restore::restore_file(
            self.project,
            &self.db,
            || self.choose_backup(named),
            confirmed,
        )
    }

    fn changed_since(&self, chosen: &Backup) -> Result<Option<Vec<TableDifference>>, Error> {
        let Some(conn) = self.read_only()? else {
            return Ok(None);
        };
        crate::core::restore::changed_outside(chosen, |scheme| {
            crate::sqlite::restore::state_in(&conn, scheme)
        })
        .map_err(|e| Error::db(&self.db, "cannot read its tables", e))
    }

    fn record_state_after(&self, backup: &Path) -> Result<(), Error> {
        let Some(conn) = self.read_only()? else {
            return Ok(());
        };
        let live = crate::sqlite::restore::recorded_state(&conn)
            .map_err(|e| Error::db(&self.db, "cannot read its tables", e))?;
        crate::core::restore::record_state_after(backup, &live)
    }
}

impl Introspect for Sqlite<'_> {
    fn unowned(&self) -> Result<Vec<ObjectRef>, Error> {
        crate::sqlite::design::unowned(self.project, &self.db)
    }
}

/// A throwaway database: a file in a temporary folder (the sandbox's, or a copy for
/// `--rehearse-on-copy` in `.strata/`), removed with it.
struct SqliteScratch<'p> {
    database: Sqlite<'p>,
    from: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Scratch for SqliteScratch<'_> {
    fn database(&self) -> &dyn Backend {
        &self.database
    }

    fn planned_on(&self) -> PathBuf {
        self.database.db.clone()
    }

    fn from(&self) -> Option<PathBuf> {
        self.from.clone()
    }

    fn finish(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

/// The verified backup a phase takes of `db` before it changes it, kept as the project says,
/// with `fill` run on the copy (see `crate::sqlite::backup::take_with`).
fn backup_before_migrate(
    project: &Project,
    conn: &rusqlite::Connection,
    db: &Path,
    database_id: &str,
    phase: Phase,
    fill: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>,
) -> Result<PathBuf, Error> {
    crate::sqlite::backup::take_with(
        conn,
        db,
        database_id,
        &project.backups_dir(),
        project.config.backups_keep,
        &format!("before migrate ({phase})"),
        fill,
    )
}

/// With one transaction for the phase, before it begins: a verified backup of the database
/// as committed, holding the bookkeeping tables and the identity that the transaction will
/// write (the database's own, or a new random one). Returns the identity and the backup.
fn backup_first(
    project: &Project,
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
    let path = backup_before_migrate(project, conn, db, &id, phase, |copy| fill.write(copy))?;
    Ok((id, path))
}

/// Before the first step: the bookkeeping tables, and with `how.backup` the database's
/// identity, a verified backup and its audit row. In one transaction for the phase the
/// backup is `taken` already and the rest is written inside that transaction, with
/// `session.replay` keeping what a rollback would lose; otherwise each part commits on its
/// own.
#[allow(clippy::too_many_arguments)]
fn bookkeeping(
    project: &Project,
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
                "{}: another strata run gave the database its identity while this one backed it \
                 up, so the backup {} does not carry it; nothing was applied, run the command \
                 again",
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
        // Its `integrity_check` runs beside the first step, which waits for it before it
        // commits and writes the backup's audit row (see `step::Session::backup`).
        let pending = crate::sqlite::backup::take_overlapped(
            conn,
            db,
            &id,
            &project.backups_dir(),
            project.config.backups_keep,
            &format!("before migrate ({phase})"),
        )?;
        let path = pending.path().to_path_buf();
        let entry = Entry::for_run(phase.as_str(), "backup", path.display().to_string());
        session.backup = Some((pending, entry));
        events(&Event::BackupTaken { db, backup: &path });
        return Ok(Some(path));
    };
    let entry =
        crate::core::ledger::Entry::for_run(phase.as_str(), "backup", path.display().to_string());
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
    conn: &mut rusqlite::Connection,
    phase: Phase,
    e: Error,
    session: &mut step::Session,
    done: &mut PhaseReport,
) -> Error {
    let undone = crate::core::phase::rolled_back_steps(phase, done);
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
    crate::core::phase::after_rollback(e, None)
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
            own: Some(std::sync::Arc::new(
                crate::core::identity::Reserved::databases_of(runner.project),
            )),
        };
        let mut session = step::Session {
            single_transaction: how.single_transaction,
            ..step::Session::default()
        };
        // In one transaction for the whole phase, the bookkeeping tables, the identity, the
        // backup's audit row and every step commit together: one synced commit, as sqlite3's
        // own one-transaction run makes. The backup, taken just before, holds the same
        // bookkeeping (see `crate::sqlite::backup::take_with`).
        let mut taken = None;
        let fk_was_on = if how.single_transaction {
            let on = sqlite::foreign_keys(&conn)
                .map_err(|e| Error::db(db, "cannot read PRAGMA foreign_keys", e))?;
            if how.backup {
                taken = Some(backup_first(runner.project, &conn, phase, db)?);
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

impl crate::core::phase::Database for SqlitePhase<'_, '_> {
    fn applied_now(&mut self) -> Result<Vec<crate::core::tree::MigrationId>, Error> {
        ledger::applied(&self.conn)
            .map(|applied| applied.into_iter().map(|a| a.id).collect())
            .map_err(|e| Error::db(self.db, "cannot read the ledger", e))
    }

    fn state(&mut self) -> Option<crate::core::restore::Recorded> {
        crate::sqlite::restore::recorded_state(&self.conn).ok()
    }

    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<PathBuf>, Error> {
        bookkeeping(
            self.runner.project,
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
    ) -> Result<crate::core::step::Applied, Error> {
        step::apply(&mut self.conn, &self.ctx, &mut self.session, step, events)
    }

    fn end(&mut self, result: Result<(), Error>, done: &mut PhaseReport) -> Result<(), Error> {
        let db = self.db;
        // A backup no step waited for (no step committed or failed): its check decides.
        let result = match self.session.backup.take() {
            Some((pending, entry)) => {
                let audited = pending.wait().and_then(|_| {
                    ledger::append(&self.conn, std::slice::from_ref(&entry))
                        .map_err(|e| Error::db(db, "cannot audit the backup", e))
                });
                result.and(audited)
            }
            None => result,
        };
        // A backup whose check failed is gone: nothing may be recorded beside it.
        if done.backup.as_ref().is_some_and(|b| !b.exists()) {
            done.backup = None;
        }
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
            return Err(rolled_back(
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
