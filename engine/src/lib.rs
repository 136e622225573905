//! strata-engine: the library behind the `strata` binary.
//!
//! A project holds modules; a module holds an ordered chain of migrations; each migration is a
//! stamped folder (see `tree`). Applying one runs its SQL, its WebAssembly components and its
//! data in one transaction and records it in the ledger. Every run backs up and rehearses on the
//! test database before it touches the real one.
//!
//! The crate owns all behaviour. It never prints: long operations report typed [`Event`]s and
//! return typed results, and the binary renders them.
//!
//! Module map: `config` (strata.toml, migration.toml, paths), `tree` (the migrations folder),
//! `checksum` (what pins an applied migration), `plan` (pure: applied + discovered -> steps or
//! refusals), `ledger` (the bookkeeping tables), `data` (data.json), `input` (checks on SQL files
//! before anything runs), `sqlite` (connections and statement scripts), `step` (one migration in
//! one transaction), `sandbox` (running components: engine, limits, SQL host API, authorizer,
//! compile cache), `migrator` (validate, phases, sandbox mode), `phase` (one phase's steps in
//! order, the same on every backend), `backup` (recorded, verified backups and the run lock),
//! `restore` (putting a backup back into the live database), `guest` (`strata build`), `repair`
//! (re-pinning applied migrations changed on purpose), `scaffold` (init, new), `event`, `schema`
//! (the SQLite schema as a model: dump, diff, delta SQL, ownership), `design` (the design-time
//! commands on a project: dump, diff, new --from-diff, baseline, drift), `backend` (the seam:
//! the operations one database offers the commands, implemented for SQLite and PostgreSQL, and
//! the one function that picks the backend from a database's value) and `postgres` (a PostgreSQL
//! database behind that seam: connection, ledger, steps, backups, restore, introspection;
//! components run on it through `sandbox::postgres`).

pub mod backend;
pub mod backup;
pub mod checksum;
pub mod config;
pub mod data;
pub mod design;
pub mod error;
pub mod event;
pub mod exit;
pub mod guest;
pub mod input;
#[cfg(test)]
mod input_proptests;
pub mod ledger;
pub mod lint;
pub mod migrator;
mod phase;
pub mod plan;
pub mod postgres;
pub mod repair;
pub mod restore;
pub mod sandbox;
pub mod scaffold;
pub mod schema;
pub mod sdk_copy;
pub mod sqlite;
pub mod step;
pub mod tree;
pub mod undo;

pub use config::Project;
pub use error::{Error, Refusal, StepFailure};
pub use event::{Action, Event, Phase};
pub use tree::{Migration, MigrationId, Tree};

/// The engine version recorded in the ledger next to every applied migration.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
