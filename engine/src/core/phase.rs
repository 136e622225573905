//! One phase of a run (the rehearsal on the test database, a rehearsal on a copy, the real
//! database, one sandbox step), the same on every backend: its start and finish events, its
//! report, and its steps in order. What a backend does is behind [`Database`]: open the
//! database for the phase, make sure of the bookkeeping and take the backup, apply one step,
//! and end what opening began. A backend opens one
//! (`crate::core::backend::Run::open_phase`): SQLite's is in `crate::sqlite::backend`,
//! PostgreSQL's in `crate::postgres::run`; this module does not know which runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::components::Sandbox;
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::event::{Event, EventSink, Phase};
use crate::core::ledger::{Entry, Outcome};
use crate::core::step::{Applied, Prepared};
use crate::core::tree::{Migration, MigrationId};
use serde::{Deserialize, Serialize};

/// A database opened for one phase by its backend.
pub(crate) trait Database {
    /// Before the first step: the bookkeeping tables, and when the phase takes one, the
    /// verified backup and its audit row (reported with [`Event::BackupTaken`]). Returns the
    /// backup.
    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<PathBuf>, Error>;

    /// Applies one step.
    fn apply(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<Applied, Error>;

    /// After the steps, whatever their `result`: ends what opening and [`Database::begin`]
    /// began (a phase's single transaction commits or rolls back here), and gives the
    /// phase's result.
    fn end(&mut self, result: Result<(), Error>, done: &mut PhaseReport) -> Result<(), Error>;

    /// The migrations the ledger holds now, read once the phase holds the run lock (none when
    /// the bookkeeping is not there yet): [`run`] compares them with what the phase was
    /// planned from, as a restore, undo or repair may have changed the ledger while the run
    /// waited for the lock.
    fn applied_now(&mut self) -> Result<Vec<MigrationId>, Error>;

    /// After a phase that changed the database: the state of its application tables, kept
    /// beside the phase's backup so `restore` can tell what changed outside strata since
    /// (`crate::core::restore::State`). `None` when it cannot be read.
    fn state(&mut self) -> Option<crate::core::restore::Recorded> {
        None
    }
}

impl<D: Database + ?Sized> Database for Box<D> {
    fn begin(&mut self, events: &mut EventSink<'_>) -> Result<Option<PathBuf>, Error> {
        (**self).begin(events)
    }

    fn apply(&mut self, step: &Prepared, events: &mut EventSink<'_>) -> Result<Applied, Error> {
        (**self).apply(step, events)
    }

    fn end(&mut self, result: Result<(), Error>, done: &mut PhaseReport) -> Result<(), Error> {
        (**self).end(result, done)
    }

    fn applied_now(&mut self) -> Result<Vec<MigrationId>, Error> {
        (**self).applied_now()
    }

    fn state(&mut self) -> Option<crate::core::restore::Recorded> {
        (**self).state()
    }
}

/// Runs `pending` on the database `open` opens (only when something is pending): begin, each
/// step in order, end. `planned`: the migrations applied when `pending` was planned; once the
/// phase holds the run lock the ledger must hold them still, and nothing else but a first part
/// of `pending` (another run of the same plan), or the phase refuses before its first step
/// (`None`: a throwaway database nobody else runs on).
pub(crate) fn run<D: Database>(
    phase: Phase,
    db: &Path,
    planned: Option<&[MigrationId]>,
    pending: &[&Migration],
    prepared: &HashMap<MigrationId, Prepared>,
    open: impl FnOnce() -> Result<D, Error>,
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
    if !pending.is_empty() {
        let mut database = open()?;
        if let Some(planned) = planned {
            let now = database.applied_now();
            let ids: Vec<MigrationId> = pending.iter().map(|m| m.id.clone()).collect();
            let unchanged = now.and_then(|now| unchanged_since_planned(db, planned, &ids, &now));
            if let Err(e) = unchanged {
                let ended = database.end(Err(e), &mut done);
                return Err(ended.err().unwrap_or_else(|| {
                    Error::Usage(format!(
                        "{}: the phase ended without its refusal",
                        db.display()
                    ))
                }));
            }
        }
        let result = database.begin(events).and_then(|backup| {
            done.backup = backup;
            steps(&mut database, phase, pending, prepared, &mut done, events)
        });
        let ended = database.end(result, &mut done);
        // A run on the real database that took a backup ended (whatever it committed: all its
        // steps, those before a failure, or none when a single transaction rolled back): what
        // the database holds now is strata's doing; recorded so `restore` can tell the
        // application's later changes from it. Without the record restore cannot tell, and
        // refuses without --yes. (Not on the test database: it holds test data, and the record
        // reads every row.)
        if phase == Phase::Apply
            && let Some(backup) = &done.backup
            && let Some(state) = database.state()
        {
            let _ = crate::core::restore::record_state_after(backup, &state);
        }
        ended?;
    }
    events(&Event::PhaseFinished {
        phase,
        db,
        applied: done.applied.len(),
    });
    Ok(done)
}

/// Refuses a phase whose ledger (`now`, read under the run lock) is no longer what `pending`
/// was planned from (`planned`): a migration the plan took as applied is gone (a restore or an
/// undo ran while the run waited for the lock: the plan's steps would land above a hole), or
/// one the plan did not apply itself is there (applied by a run of another plan). A first part
/// of `pending` may be applied: another run of the same plan applied it, and its steps pass
/// over.
pub(crate) fn unchanged_since_planned(
    db: &Path,
    planned: &[MigrationId],
    pending: &[MigrationId],
    now: &[MigrationId],
) -> Result<(), Error> {
    use std::collections::HashSet;
    let now_set: HashSet<&MigrationId> = now.iter().collect();
    let planned_set: HashSet<&MigrationId> = planned.iter().collect();
    let mut gone: Vec<&MigrationId> = planned.iter().filter(|id| !now_set.contains(id)).collect();
    // The part of `pending` applied meanwhile must be a first part of it.
    let first_part = pending.iter().take_while(|id| now_set.contains(id)).count();
    let ours: HashSet<&MigrationId> = pending[..first_part].iter().collect();
    let mut new: Vec<&MigrationId> = now
        .iter()
        .filter(|id| !planned_set.contains(id) && !ours.contains(id))
        .collect();
    if gone.is_empty() && new.is_empty() {
        return Ok(());
    }
    gone.sort_by(|a, b| a.global_cmp(b));
    new.sort_by(|a, b| a.global_cmp(b));
    let show = |ids: Vec<&MigrationId>| {
        ids.into_iter()
            .map(|id| format!("{}/{}", id.module, id.stamp))
            .collect()
    };
    Err(Error::Refused(vec![
        crate::core::error::Refusal::ChangedSincePlanned {
            db: db.to_path_buf(),
            gone: show(gone),
            new: show(new),
        },
    ]))
}

/// The steps of one phase, in order; a failed step ends the phase, naming what it applied.
fn steps(
    database: &mut impl Database,
    phase: Phase,
    pending: &[&Migration],
    prepared: &HashMap<MigrationId, Prepared>,
    done: &mut PhaseReport,
    events: &mut EventSink<'_>,
) -> Result<(), Error> {
    for m in pending {
        match database.apply(&prepared[&m.id], events) {
            Ok(Applied::Committed { elapsed }) => {
                events(&Event::StepApplied {
                    phase,
                    migration: m,
                    elapsed,
                });
                done.applied.push(m.label());
            }
            Ok(Applied::AlreadyApplied) => done.skipped.push(m.label()),
            Err(Error::Step(mut failure)) => {
                failure.applied_before = done.applied.clone();
                return Err(Error::Step(failure));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// After a `--single-transaction` phase rolled back, on either backend: the steps it had
/// applied are undone too, so they leave `done.applied` and come back as audit rows saying
/// each was rolled back with the rest of the phase.
pub(crate) fn rolled_back_steps(phase: Phase, done: &mut PhaseReport) -> Vec<Entry> {
    std::mem::take(&mut done.applied)
        .into_iter()
        .map(|label| {
            let mut entry = Entry::for_run(
                phase.as_str(),
                "single-transaction",
                format!("{label}: rolled back with the rest of the phase"),
            );
            entry.outcome = Outcome::RolledBack;
            entry
        })
        .collect()
}

/// The error of a `--single-transaction` phase after its rollback: a failed step names no
/// step applied before it, as none stays applied; `unaudited` says why its audit rows could
/// not be written, if they could not.
pub(crate) fn after_rollback(e: Error, unaudited: Option<String>) -> Error {
    match e {
        Error::Step(mut failure) => {
            failure.applied_before.clear();
            if let Some(why) = unaudited {
                failure.message.push_str(&format!(
                    "\n(the failure could not be written to the audit log: {why})"
                ));
            }
            Error::Step(failure)
        }
        other => other,
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

/// How a phase runs its steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How {
    /// Load `test-data/`.
    pub(crate) test_data: bool,
    /// Take a verified backup first.
    pub(crate) backup: bool,
    /// Write missing snapshots after each step.
    pub(crate) write_snapshots: bool,
    /// All steps in one transaction, a savepoint each.
    pub(crate) single_transaction: bool,
}

/// Everything a phase needs besides its database and its steps, on either backend.
pub(crate) struct Runner<'a> {
    pub(crate) project: &'a Project,
    pub(crate) prepared: HashMap<MigrationId, Prepared>,
    pub(crate) sandbox: Option<Sandbox>,
}

impl<'a> Runner<'a> {
    /// Reads and parses every input of `migrations`, and starts the sandbox if any has a
    /// component: all before the first step.
    pub(crate) fn new<'m>(
        project: &'a Project,
        migrations: impl IntoIterator<Item = &'m Migration>,
        dialect: crate::core::input::Dialect,
    ) -> Result<Self, Error> {
        let mut prepared = HashMap::new();
        for m in migrations {
            if !prepared.contains_key(&m.id) {
                prepared.insert(m.id.clone(), Prepared::load_for(m, dialect)?);
            }
        }
        let sandbox = if prepared.values().any(Prepared::has_components) {
            Some(
                Sandbox::new(crate::components::CacheLocation::for_user()).map_err(|e| {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Refusal;

    fn id(stamp: &str) -> MigrationId {
        MigrationId {
            module: "app".into(),
            stamp: stamp.into(),
        }
    }

    fn refusal(
        planned: &[&str],
        pending: &[&str],
        now: &[&str],
    ) -> Option<(Vec<String>, Vec<String>)> {
        let ids = |l: &[&str]| l.iter().map(|s| id(s)).collect::<Vec<_>>();
        match unchanged_since_planned(Path::new("db"), &ids(planned), &ids(pending), &ids(now)) {
            Ok(()) => None,
            Err(Error::Refused(r)) => match r.as_slice() {
                [Refusal::ChangedSincePlanned { gone, new, .. }] => {
                    Some((gone.clone(), new.clone()))
                }
                other => panic!("{other:?}"),
            },
            Err(e) => panic!("{e}"),
        }
    }

    /// A restore or an undo that ran while the run waited for the lock took away a migration
    /// the plan took as applied: the phase refuses instead of applying above the hole.
    #[test]
    fn a_phase_refuses_when_a_migration_it_planned_on_is_gone() {
        assert_eq!(
            refusal(&["1", "2"], &["3"], &["1"]),
            Some((vec!["app/2".to_string()], vec![]))
        );
        // Restored to nothing at all.
        assert_eq!(
            refusal(&["1"], &["2"], &[]),
            Some((vec!["app/1".to_string()], vec![]))
        );
    }

    /// Migrations applied by a run of another plan are not the plan's either.
    #[test]
    fn a_phase_refuses_migrations_applied_meanwhile_outside_its_plan() {
        assert_eq!(
            refusal(&["1"], &["2"], &["1", "4"]),
            Some((vec![], vec!["app/4".to_string()]))
        );
        // A later pending step applied before an earlier one is not the same plan's work.
        assert_eq!(
            refusal(&["1"], &["2", "3"], &["1", "3"]),
            Some((vec![], vec!["app/3".to_string()]))
        );
    }

    /// Another run of the same plan that applied its first steps meanwhile is fine: those
    /// steps are passed over.
    #[test]
    fn a_phase_goes_on_when_the_same_plan_ran_meanwhile() {
        assert_eq!(refusal(&["1"], &["2", "3"], &["1"]), None);
        assert_eq!(refusal(&["1"], &["2", "3"], &["1", "2"]), None);
        assert_eq!(refusal(&["1"], &["2", "3"], &["1", "2", "3"]), None);
        assert_eq!(refusal(&[], &["1"], &[]), None);
    }
}
