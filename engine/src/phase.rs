//! One phase of a run (the rehearsal on the test database, a rehearsal on a copy, the real
//! database, one sandbox step), the same on every backend: its start and finish events, its
//! report, and its steps in order. What a backend does is behind [`Database`]: open the
//! database for the phase, make sure of the bookkeeping and take the backup, apply one step,
//! and end what opening began. A backend opens one (`crate::backend::Backend::open_phase`):
//! SQLite's is in `backend::sqlite`, PostgreSQL's in `postgres::run`; this module does not know
//! which runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::event::{Event, EventSink, Phase};
use crate::migrator::PhaseReport;
use crate::step::{Applied, Prepared};
use crate::tree::{Migration, MigrationId};

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

    /// After a phase that changed the database: the state of its application tables, kept
    /// beside the phase's backup so `restore` can tell what changed outside strata since
    /// (`crate::restore::State`). `None` when it cannot be read.
    fn state(&mut self) -> Option<crate::restore::State> {
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

    fn state(&mut self) -> Option<crate::restore::State> {
        (**self).state()
    }
}

/// Runs `pending` on the database `open` opens (only when something is pending): begin, each
/// step in order, end.
pub(crate) fn run<D: Database>(
    phase: Phase,
    db: &Path,
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
        let result = database.begin(events).and_then(|backup| {
            done.backup = backup;
            steps(&mut database, phase, pending, prepared, &mut done, events)
        });
        let ended = database.end(result, &mut done);
        // Steps committed on the real database (all of them, or those before a failure): what
        // it holds now is strata's doing; recorded so `restore` can tell the application's
        // later changes from it. Best effort: without the record, restore cannot tell and does
        // not refuse for it. (Not on the test database: it holds test data, and the record
        // reads every row.)
        if phase == Phase::Apply
            && !done.applied.is_empty()
            && let Some(backup) = &done.backup
            && let Some(state) = database.state()
        {
            let _ = crate::restore::record_state_after(backup, &state);
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
