//! A throwaway database holding a database's schema (no rows), to try pending SQL on without
//! touching anything: what `plan` and `lint` judge statements and data files against. SQLite
//! has one (`crate::sqlite::dry_run`, its own parser and name resolution on an in-memory copy);
//! PostgreSQL has none, and lint's model of the chain's SQL stands in.

use std::path::Path;

use crate::core::error::Error;

/// What became of a script in the throwaway database.
pub enum Checked {
    /// Every statement was checked.
    All,
    /// Checking stopped at a statement plan cannot run safely or quickly; why.
    StoppedAt(String),
}

/// A throwaway copy of a schema that statements can be tried on.
pub trait DryRun {
    /// Tries `sql` (the file `path`) statement by statement, running those that change the
    /// copy's schema or rows so later statements are judged against what earlier ones built;
    /// the first failure is bad input naming `path`, the line and the statement.
    fn run_script(&mut self, path: &Path, sql: &str) -> Result<Checked, Error>;

    /// A table's columns, lower-cased; `None` when there is no such table.
    fn columns(&self, table: &str) -> Option<Vec<String>>;
}
