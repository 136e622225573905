//! `strata restore` and `strata backups`: which database, which backup, and putting it back,
//! through the backend seam (`crate::core::backend::Backend`).

use std::path::{Path, PathBuf};

use crate::backends;
use crate::core::backup::Backup;
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::restore::{Restored, TableDifference, fitting};
use crate::core::target::Database;

/// The database `restore` works on: the real one, or with `test_db` the test database.
pub fn target(project: &Project, test_db: bool) -> &Database {
    if test_db {
        &project.test_db
    } else {
        &project.db
    }
}

/// `strata restore --list`: the backups that can go back to the database, oldest first.
pub fn list(project: &Project, test_db: bool) -> Result<(PathBuf, Vec<Backup>), Error> {
    let db = backends::open(project, target(project, test_db))?;
    Ok((db.shown(), fitting(&*db)?))
}

/// The backup `restore` would put back: `backup` (a path, or a name in `.strata/backups/`), or
/// the newest backup of the database. Refuses (exit 2) a file that is not a backup of it.
pub fn choose(project: &Project, test_db: bool, backup: Option<&Path>) -> Result<Backup, Error> {
    backends::open(project, target(project, test_db))?.choose_backup(backup)
}

/// `strata restore`: puts `backup` (or the backup of the last run that changed the database,
/// see [`choose`]) back into the real database, or with `test_db` the test database. Without
/// a name, refuses when rows changed outside strata since that run (see [`restore_confirmed`]).
/// See the module documentation (and `postgres::restore`) for what it guarantees.
pub fn restore(project: &Project, test_db: bool, backup: Option<&Path>) -> Result<Restored, Error> {
    restore_confirmed(project, test_db, backup, false)
}

/// [`restore`]; with `confirmed` (`--yes`, or a yes on the terminal), also when rows changed
/// outside strata since the run the chosen backup undoes.
pub fn restore_confirmed(
    project: &Project,
    test_db: bool,
    backup: Option<&Path>,
    confirmed: bool,
) -> Result<Restored, Error> {
    backends::open(project, target(project, test_db))?
        .restore(backup, backup.is_some() || confirmed)
}

/// The tables whose rows changed outside strata since the run that took `chosen` (see
/// [`changed_outside`]), read from the live database; `None` when that cannot be told.
pub fn changes_since(
    project: &Project,
    test_db: bool,
    chosen: &Backup,
) -> Result<Option<Vec<TableDifference>>, Error> {
    backends::open(project, target(project, test_db))?.changed_since(chosen)
}
