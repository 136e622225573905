//! The shared core, beneath both backends and every command: the project and its configuration
//! (`config`), the migrations tree (`tree`), what pins an applied migration (`checksum`), the
//! pure plan (`plan`), data files (`data`), checks on SQL text before anything runs (`input`),
//! events, errors and exit codes, a file's identity in every spelling (`identity`), the records
//! of backups and the state `restore` compares (`backup`, `restore`), and the seam itself: the traits a backend implements (`backend`) and
//! the algorithms written once over them (`phase`).
//!
//! Nothing here imports a backend (`crate::sqlite`, `crate::postgres`) or a command
//! (`crate::commands`); the layering test in `engine/src/layers.rs` checks it.

pub mod backend;
pub mod backup;
pub mod checksum;
pub mod config;
pub mod data;
pub mod design;
pub mod dry_run;
pub mod error;
pub mod event;
pub mod exit;
pub mod guest;
pub mod identity;
pub mod input;
pub mod ledger;
pub(crate) mod phase;
pub mod plan;
pub mod remote_url;
pub mod restore;
pub mod schema;
pub mod sql;
pub mod step;
pub mod target;
pub mod tree;
