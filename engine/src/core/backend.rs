//! The backend seam: what one database offers the commands, whichever engine it runs on.
//!
//! A command's algorithm (`migrate`, `restore`, `repair`, `undo`, the design loop) is written
//! once over these traits; SQLite (`crate::sqlite::backend::Sqlite`) and PostgreSQL
//! (`crate::postgres::backend::Postgres`) implement them by wrapping their own code. In the
//! manner of Atlas's driver interfaces, each trait is one concern, small enough to read whole
//! and to fake in a unit test, and [`Backend`] is their sum, the one the commands hold
//! (`Box<dyn Backend>`):
//!
//! - [`Ledger`]: the ledger and the audit log, read and written outside a run;
//! - [`Run`]: what a run and the sandbox need: whether a run may create the database, the
//!   checks a phase makes before it starts, opening and locking it for one phase (which gives
//!   the shared step loop its `crate::core::phase::Database`, whose steps go through
//!   `crate::core::step::StepDriver`), a throwaway copy to rehearse on, the sandbox's
//!   throwaway database, `strata undo`, and the schema as text;
//! - [`Backups`]: the database's identity, its backups, choosing one and putting it back;
//! - [`SqlScript`]: how a step reads as a script for `plan --sql`;
//! - [`Introspect`]: the objects no module owns; the design-time commands read the rest
//!   through [`Inspect`], which is generic over the backend's own schema model and so is not
//!   part of `Backend`;
//! - [`Watch`]: whether a database changed, for a cache of answers (made by
//!   `crate::backends::watch`, not part of `Backend`).
//!
//! docs/src/concepts.md ("The seam, trait by trait") lists each trait with what SQLite and
//! PostgreSQL implement it with: a third backend implements the same list.
//!
//! `crate::backends::open` is the one place that picks the backend from a database's value
//! (a SQLite path or a `postgres://` URL). Tree, checksum, plan, events, phases, rendering and
//! the gRPC service do not know which backend runs.

use std::path::{Path, PathBuf};

use crate::core::backup::Backup;
use crate::core::error::Error;
use crate::core::event::Phase;
use crate::core::input::Dialect;
use crate::core::ledger::{Applied, AuditRow, Entry};
use crate::core::phase::{How, Runner};
use crate::core::restore::{Restored, TableDifference};
use crate::core::schema::ObjectRef;
use crate::core::step::Prepared;
use crate::core::tree::{Migration, Tree};

/// Tells a cache of answers (the gRPC service's Status answer) whether a database changed since
/// it last looked, in whatever way is cheap for its backend: SQLite compares the file's
/// identity and metadata and `PRAGMA data_version` through a read-only connection kept open;
/// PostgreSQL does not answer (a server's changes cannot be told cheaply and surely), so its
/// answers are never kept. The caller only compares tokens.
pub trait Watch: Send {
    /// A token equal to an earlier one only if the database did not change in between; `None`
    /// when that cannot be told cheaply and surely now (a write in progress, an error, a
    /// backend that does not tell), and then the caller computes afresh and keeps nothing.
    fn token(&mut self) -> Option<ChangeToken>;
}

/// A database's state as a [`Watch`] saw it, compared for equality only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeToken(pub(crate) Token);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// No database there (yet).
    Absent,
    /// A database in a file: the file's stamp and the database's own change counter.
    File {
        stamp: crate::core::tree::FileStamp,
        version: i64,
    },
}

/// One database of a project (the real one, the test database, or one a command names), as the
/// commands use it: every concern of the seam together, with how the database is shown and
/// the dialect its migrations are written in.
pub(crate) trait Backend: Ledger + Run + Backups + SqlScript + Introspect {
    /// The database as strata shows it: a path, or a URL without its password.
    fn shown(&self) -> PathBuf;

    /// The SQL dialect its migrations are written in.
    fn dialect(&self) -> Dialect;
}

/// The ledger (which migrations are applied, with their checksums) and the append-only audit
/// log, read and written outside a run (`status`, `audit`, `repair`, and the commands that
/// audit what they did). A run writes both inside its steps, through
/// `crate::core::step::StepDriver`.
pub(crate) trait Ledger {
    /// The migrations applied, read without creating or changing anything; `None` when the
    /// database does not exist.
    fn applied(&self) -> Result<Option<Vec<Applied>>, Error>;

    /// Appends `entries` to the audit log, creating the bookkeeping tables if they are missing.
    fn append_audit(&self, entries: &[Entry]) -> Result<(), Error>;

    /// The newest `limit` rows of the audit log, oldest first; none when there is no database.
    fn audit(&self, limit: Option<u64>) -> Result<Vec<AuditRow>, Error>;

    /// The newest `size` audit rows below `before_id`, oldest first, and whether older ones
    /// remain (see `crate::sqlite::ledger::audit_page`).
    fn audit_page(&self, before_id: Option<i64>, size: u64)
    -> Result<(Vec<AuditRow>, bool), Error>;

    /// `strata repair`: re-pins `m`'s checksum and manifest in the ledger and writes `entry`
    /// to the audit log, in one transaction under the run lock; refused
    /// (`Refusal::ChangedSincePlanned`) when the ledger no longer holds `m` with `old_checksum`,
    /// what repair read before it took the lock.
    fn repin(&self, m: &Migration, old_checksum: &str, entry: &Entry) -> Result<(), Error>;
}

/// What a run needs of a database (`migrate`, its rehearsals, `strata sandbox`, `strata
/// undo`): the phase algorithm (`crate::core::phase::run`) and the step algorithm
/// (`crate::core::step::apply`) are the core's; this is the backend's side of them.
pub(crate) trait Run {
    /// When a run finds the real database missing: the error to give (`None`: the run creates
    /// it, as SQLite creates its file).
    fn missing(&self) -> Option<Error>;

    /// Refuses a step that cannot share the phase's one transaction (`--single-transaction`).
    fn check_single_transaction(&self, step: &Prepared) -> Result<(), Error>;

    /// Opens and locks the database for one phase of `runner`'s steps, run as `how` says
    /// (creating the test database when it is missing), for the shared step loop
    /// (`crate::core::phase::run`); its `begin` makes sure of the bookkeeping and takes the
    /// verified backup when `how.backup`.
    fn open_phase<'a>(
        &'a self,
        runner: &'a Runner<'_>,
        phase: Phase,
        how: How,
    ) -> Result<Box<dyn crate::core::phase::Database + 'a>, Error>;

    /// `--rehearse-on-copy`'s database: a throwaway copy of this one, gone once dropped.
    fn copy(&self) -> Result<Box<dyn Scratch + '_>, Error>;

    /// `strata sandbox`'s throwaway database, empty or a copy of `from` (a database or a
    /// backup, as this backend takes them), made beside this database (its folder or server).
    fn scratch(&self, from: Option<&Path>) -> Result<Box<dyn Scratch + '_>, Error>;

    /// `strata undo` on this database in `phase`, holding the run lock exclusively (SQLite's
    /// run lock file, PostgreSQL's advisory lock on the session) from before the backup to
    /// the end: a verified backup first (unless `backup` is false: a throwaway database),
    /// then each of `steps` (newest first) in a transaction of its own: its `undo.sql` under
    /// the same guard as `do.sql`, the migration's ledger row removed with the owners of
    /// objects that are gone, and its audit row. A migration no longer applied here is passed
    /// over; one below a newer applied migration is refused (`Refusal::NotNewest`). Stops at the first failure,
    /// which is rolled back and audited (`Error::Step`, action `undo.sql`).
    fn undo(&self, phase: Phase, steps: &[UndoStep<'_>], backup: bool) -> Result<Undone, Error>;

    /// The whole schema, every object whoever owns it, as comparable text (what the sandbox
    /// compares before a step and after its `undo.sql`).
    fn schema_text(&self) -> Result<String, Error>;
}

/// The database's backups (`strata restore`, and what `status` shows of them): the backups
/// themselves are taken by a run (`Run::open_phase`, `Run::undo`).
pub(crate) trait Backups {
    /// The database's identity (what its backups record); `None` when it has none or does not
    /// exist.
    fn identity(&self) -> Result<Option<String>, Error>;

    /// Every backup recorded as taken of this database, oldest first.
    fn backups(&self) -> Result<Vec<Backup>, Error>;

    /// The backup `restore` would put back: `named` (a path, or a name in `.strata/backups/`),
    /// or the backup taken by the last run that changed the database
    /// (`crate::core::restore::default_fits`). Refuses a file that is not a backup of it.
    fn choose_backup(&self, named: Option<&Path>) -> Result<Backup, Error>;

    /// `strata restore`: puts the chosen backup back into the live database; unless
    /// `confirmed`, refuses when rows changed outside strata since the run it undoes.
    fn restore(&self, named: Option<&Path>, confirmed: bool) -> Result<Restored, Error>;

    /// The tables whose rows changed outside strata since the run that took `chosen` ended;
    /// `None` when that cannot be told (no state was recorded at the end of that run).
    fn changed_since(&self, chosen: &Backup) -> Result<Option<Vec<TableDifference>>, Error>;

    /// Records the database's state now as the end state of the run that took `backup`
    /// (`crate::core::restore::record_state_after`): every command that backs up and then
    /// changes the database does, so `restore` can tell later changes from strata's.
    fn record_state_after(&self, backup: &Path) -> Result<(), Error>;
}

/// How a step reads as a script in the backend's dialect, for `plan --sql` (the step's own
/// files come between [`SqlScript::script_begin`] and [`SqlScript::script_end`]).
pub(crate) trait SqlScript {
    /// The lines that open a step's transaction (after the step's name).
    fn script_begin(&self) -> String;

    /// A data.json's rows as the statements that insert them.
    fn data_sql(&self, data: &crate::core::data::DataSet) -> String;

    /// What strata does after the step's own files, as comments and statements, ending with
    /// the commit.
    fn script_end(&self) -> &'static str;
}

/// Introspection that every command may ask for without knowing the backend's schema model
/// (the rest is [`Inspect`]).
pub(crate) trait Introspect {
    /// The objects no module owns; empty when there is no database.
    fn unowned(&self) -> Result<Vec<ObjectRef>, Error>;
}

/// The design-time commands' view of a database (Atlas's inspector): its live schema in the
/// backend's own model, who owns what, and its ledger, read together as a
/// [`Live`](crate::core::design::Live). `dump`, `diff`, `new --from-diff`, `baseline` and the
/// drift check are written once over it (`crate::commands::design`).
pub(crate) trait Inspect {
    /// The backend's live schema.
    type Live: crate::core::design::Live;

    /// Reads the database (which must exist) against `tree`; `writable` when the command
    /// records an adoption.
    fn live(&self, tree: &Tree, writable: bool) -> Result<Self::Live, Error>;

    /// What the drift check reads, against `tree`: `None` when there is nothing to compare
    /// (no database, or no bookkeeping yet).
    fn for_drift(&self, tree: &Tree) -> Result<Option<Self::Live>, Error>;

    /// What `fleet status` reads of the database, in one read where the backend can: its
    /// ledger, its newest audit row and, when the backend can tell cheaply, a digest of all the
    /// drift check reads. The live schema (what [`Inspect::for_drift`] reads) is read too when
    /// something is applied and `read_live` says so, given the digest (`None`: the backend
    /// has none); a caller that already checked a database with the same digest need not.
    fn survey(
        &self,
        tree: &Tree,
        read_live: &dyn Fn(Option<&[u8; 32]>) -> bool,
    ) -> Result<Survey<Self::Live>, Error>;
}

/// What [`Inspect::survey`] read of one database.
pub(crate) struct Survey<L> {
    /// The ledger, as [`Ledger::applied`] reads it (`None`: no database).
    pub applied: Option<Vec<Applied>>,
    /// The newest row of the audit log.
    pub last_audit: Option<AuditRow>,
    /// Equal for two databases only if the drift check, against one tree, finds the same in
    /// both: a hash of the live schema, who owns what and which migrations are applied.
    pub digest: Option<[u8; 32]>,
    /// The live schema, when it was asked for.
    pub live: Option<L>,
}

/// One migration to undo: the migration, its `undo.sql` as read, and that file's sha256.
pub(crate) struct UndoStep<'a> {
    pub migration: &'a Migration,
    pub sql: String,
    pub checksum: String,
}

/// What `strata undo` did on one database.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Undone {
    pub phase: Phase,
    pub db: PathBuf,
    /// The verified backup taken first.
    pub backup: Option<PathBuf>,
    /// `module/folder` of each migration undone, newest first.
    pub undone: Vec<String>,
}

/// A throwaway database (a sandbox's, a copy to rehearse on); it is gone once dropped.
pub(crate) trait Scratch {
    /// The database itself.
    fn database(&self) -> &dyn Backend;

    /// The database named in refusals of the sandbox's plan.
    fn planned_on(&self) -> PathBuf;

    /// What it was filled from, as reports show it (`None`: it started empty).
    fn from(&self) -> Option<PathBuf>;

    /// Removes the database now, reporting a failure (dropping it ignores one).
    fn finish(self: Box<Self>) -> Result<(), Error>;
}
