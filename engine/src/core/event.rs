//! Typed progress events. The engine reports what it does through these and never prints; the
//! binary decides how to render them (progress lines on stderr, nothing in `--json` mode).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::core::tree::Migration;

/// Which database a run is working on, as recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Phase 1: the test database, with test data.
    Rehearsal,
    /// Phase 2: the real database, without test data.
    Apply,
    /// `strata sandbox`: a throwaway database, with test data.
    Sandbox,
    /// `strata restore`: a backup put back.
    Restore,
}

impl Phase {
    /// The name stored in `strata_migration_audit.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Rehearsal => "rehearsal",
            Phase::Apply => "apply",
            Phase::Sandbox => "sandbox",
            Phase::Restore => "restore",
        }
    }

    /// Whether steps in this phase load `test-data/`.
    pub fn loads_test_data(self) -> bool {
        matches!(self, Phase::Rehearsal | Phase::Sandbox)
    }

    /// How a person names the database this phase works on.
    pub fn database_role(self) -> &'static str {
        match self {
            Phase::Rehearsal => "the test database",
            Phase::Apply => "the real database",
            Phase::Sandbox => "a throwaway database",
            Phase::Restore => "the restored database",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One part of a step, in the order a step runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Action {
    #[serde(rename = "do.sql")]
    DoSql,
    #[serde(rename = "transform")]
    Transform,
    #[serde(rename = "test-data")]
    TestData,
    #[serde(rename = "test-seed")]
    TestSeed,
    #[serde(rename = "proj-data")]
    ProjData,
    #[serde(rename = "proj-seed")]
    ProjSeed,
    #[serde(rename = "checks")]
    Checks,
    #[serde(rename = "check-component")]
    CheckComponent,
    #[serde(rename = "foreign-key-check")]
    ForeignKeyCheck,
    #[serde(rename = "schema.sql")]
    Snapshot,
    #[serde(rename = "record")]
    Record,
    /// `strata undo`: the migration's `undo.sql`, which also removes it from the ledger.
    #[serde(rename = "undo.sql")]
    Undo,
}

impl Action {
    /// The name stored in `strata_migration_audit.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DoSql => "do.sql",
            Action::Transform => "transform",
            Action::TestData => "test-data",
            Action::TestSeed => "test-seed",
            Action::ProjData => "proj-data",
            Action::ProjSeed => "proj-seed",
            Action::Checks => "checks",
            Action::CheckComponent => "check-component",
            Action::ForeignKeyCheck => "foreign-key-check",
            Action::Snapshot => "schema.sql",
            Action::Record => "record",
            Action::Undo => "undo.sql",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the engine reports while it works.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A phase starts on `db` with `pending` steps to run.
    PhaseStarted {
        phase: Phase,
        db: &'a Path,
        pending: usize,
    },
    /// A verified backup of `db` was taken before the phase changed it.
    BackupTaken { db: &'a Path, backup: &'a Path },
    /// A step starts.
    StepStarted {
        phase: Phase,
        migration: &'a Migration,
    },
    /// One action of a step finished.
    ActionDone {
        phase: Phase,
        migration: &'a Migration,
        action: Action,
        rows: u64,
        /// Fuel a component burned; `None` for SQL and data.
        fuel: Option<u64>,
        elapsed: Duration,
    },
    /// A component starts; `rows_written` counts the rows it writes while it runs, for
    /// progress display from another thread.
    ComponentStarted {
        migration: &'a Migration,
        action: Action,
        rows_written: Arc<AtomicU64>,
    },
    /// A component logged a message.
    ComponentLog {
        migration: &'a Migration,
        action: Action,
        level: &'a str,
        message: &'a str,
    },
    /// A missing `schema.sql` (and LATEST) was written from the database after a step.
    SnapshotWritten {
        migration: &'a Migration,
        path: &'a Path,
    },
    /// A step committed.
    StepApplied {
        phase: Phase,
        migration: &'a Migration,
        elapsed: Duration,
    },
    /// Another process applied this step first; it was not run again.
    StepSkipped {
        phase: Phase,
        migration: &'a Migration,
    },
    /// A phase is over.
    PhaseFinished {
        phase: Phase,
        db: &'a Path,
        applied: usize,
    },
    /// Before a `do.sql` statement a lint finding says depends on the rows (a
    /// [`crate::core::step::Probe`]), in a phase that is not the real database's: how many rows
    /// its table held (counted up to [`crate::core::step::PROBE_LIMIT`]).
    TableRows {
        phase: Phase,
        migration: &'a Migration,
        /// The statement's position among do.sql's statements, from 1, and its first line.
        index: usize,
        line: usize,
        table: &'a str,
        rows: u64,
    },
    /// Something the user should know that does not stop the run.
    Warning(String),
    /// `strata build` starts compiling a guest crate.
    BuildStarted {
        migration: &'a str,
        source: &'a Path,
    },
    /// A line cargo printed while it builds a guest crate (its progress and diagnostics).
    BuildOutput(&'a str),
}

/// A sink for events; `|_| {}` ignores them.
pub type EventSink<'s> = dyn FnMut(&Event<'_>) + 's;
