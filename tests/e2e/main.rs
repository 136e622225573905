//! End-to-end tests: the real `strata` binary, run in a fresh temp directory with a cleaned
//! environment, against real SQLite files. One test binary; one module per command family.

mod harness;

mod build;
mod hostile;
mod init_new;
mod migrate;
mod pinning;
mod refusals;
mod rehearsal;
mod remote;
mod schema;
mod snapshots;
mod tree_errors;
