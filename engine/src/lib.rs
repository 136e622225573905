//! strata-engine: the library behind the `strata` binary.
//!
//! A project holds modules; a module holds an ordered chain of migrations; each migration is a
//! stamped folder (see `core::tree`). Applying one runs its SQL, its WebAssembly components and
//! its data in one transaction and records it in the ledger. Every run backs up and rehearses on
//! the test database before it touches the real one.
//!
//! The crate owns all behaviour. It never prints: long operations report typed [`Event`]s and
//! return typed results, and the binary renders them.
//!
//! The folders are the layers, each importing only those beneath it (checked by the unit test
//! in `layers.rs`):
//!
//! - `components`: the WebAssembly runtime (engine, limits, compile cache, the SQL host API's
//!   cursors), knowing no database;
//! - `core`: what every backend and command shares: config, tree, checksum, plan, data, input
//!   checks, events, errors, the records of backups, and the seam (the backend traits and the
//!   phase and step algorithms written once over them);
//! - `sqlite` and `postgres`, side by side: each the whole of one backend;
//! - `backends`: the one module that knows both and picks one for a database;
//! - `commands`: migrate, sandbox, status, plan, restore, repair, undo, the design loop, lint,
//!   scaffold and build, written once over the seam.

pub mod backends;
pub mod commands;
pub mod components;
pub mod core;
#[cfg(test)]
mod input_proptests;
#[cfg(test)]
mod layers;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use core::config::Project;
pub use core::error::{DbCode, Error, ErrorKind, Refusal, StepFailure};
pub use core::event::{Action, Event, Phase};
pub use core::target::Database;
pub use core::tree::{Migration, MigrationId, Tree};

/// The engine version recorded in the ledger next to every applied migration.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
