//! End-to-end tests: the real `strata` binary, run in a fresh temp directory with a cleaned
//! environment, against real SQLite files. One test binary; one module per command family.

mod habits;
mod harness;

mod attack4_pg;
mod attack6_components;
mod attack_pg;
mod attack_targets;
mod bad_input;
mod build;
mod ci;
mod components;
mod escapes;
mod fleet;
mod host_memory;
mod hostile;
mod independent;
mod init_new;
mod javascript;
mod libpq;
mod lint;
mod migrate;
mod permissions;
mod pinning;
mod pipes;
mod plan_races;
mod postgres;
mod postgres_components;
mod postgres_sandbox;
mod python;
mod rails;
mod readme;
mod refusals;
mod refused_calls;
mod rehearsal;
mod remote;
mod restore;
mod schema;
mod serve_connections;
mod single_transaction;
mod snapshots;
mod terminal;
mod tree_errors;
mod trust_residuals;
mod undo;
mod unicode;
