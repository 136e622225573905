//! The one place that knows both backends: it picks SQLite or PostgreSQL by the kind of a
//! database (`crate::core::target::Database`, decided when the configuration was read) and
//! gives the commands a `crate::core::backend::Backend`.

use crate::core::backend::{Backend, Watch};
use crate::core::config::Project;
use crate::core::dry_run::DryRun;
use crate::core::error::Error;
use crate::core::target::{Database, Target};
#[cfg(feature = "postgres")]
use crate::postgres;
use crate::sqlite;

/// Opens `db` (a SQLite file or a PostgreSQL target) of `project` with its backend: the one
/// place that tells the backends apart. A PostgreSQL database is refused in a project whose
/// other database is a SQLite file (see [`check_project`]).
pub(crate) fn open<'p>(
    project: &'p Project,
    db: &Database,
) -> Result<Box<dyn Backend + 'p>, Error> {
    Ok(match open_typed(project, db)? {
        Opened::Sqlite(b) => Box::new(b),
        #[cfg(feature = "postgres")]
        Opened::Postgres(b) => b,
    })
}

/// A database opened with its backend, as its own type: for what is generic over a backend's
/// associated types (the design-time commands, over [`Inspect`](crate::core::backend::Inspect)),
/// through [`with_backend!`].
pub(crate) enum Opened<'p> {
    Sqlite(sqlite::backend::Sqlite<'p>),
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::backend::Postgres<'p>>),
}

/// [`open`], keeping the backend's type.
pub(crate) fn open_typed<'p>(project: &'p Project, db: &Database) -> Result<Opened<'p>, Error> {
    match db {
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(target) => target.absent(),
        #[cfg(feature = "postgres")]
        Database::Postgres(target) => {
            check_project(project)?;
            Ok(Opened::Postgres(Box::new(
                postgres::backend::Postgres::open(project, target),
            )))
        }
        Database::Sqlite(path) => Ok(Opened::Sqlite(sqlite::backend::Sqlite::new(project, path))),
    }
}

/// Runs `$body` with `$b` bound to the backend of `$opened` (an [`Opened`]), whichever it is:
/// the body is compiled once per backend.
macro_rules! with_backend {
    ($opened:expr, |$b:ident| $body:expr) => {
        match $opened {
            $crate::backends::Opened::Sqlite($b) => $body,
            #[cfg(feature = "postgres")]
            $crate::backends::Opened::Postgres($b) => $body,
        }
    };
}
pub(crate) use with_backend;

/// The project's test database, with its backend, for what works on the project as a whole:
/// `strata sandbox` makes its throwaway database beside it (in a temporary folder, or on its
/// server). Refuses a project whose databases are of two kinds.
pub(crate) fn of_project(project: &Project) -> Result<Box<dyn Backend + '_>, Error> {
    check_project(project)?;
    open(project, &project.test_db)
}

/// Refuses a project whose real and test databases are of two kinds: a rehearsal on another
/// kind of database proves nothing. `migrate`, `plan`, `status` and `sandbox` check it first;
/// every command checks it when it opens a PostgreSQL database.
pub(crate) fn check_project(project: &Project) -> Result<(), Error> {
    if project.db.is_server() != project.test_db.is_server() {
        return Err(Error::Usage(
            "db and test_db must be both PostgreSQL URLs or both SQLite files: a rehearsal \
             on another kind of database proves nothing; set test_db (or --test-db) to a \
             PostgreSQL database of its own, or leave it unset to use <dbname>_test"
                .into(),
        ));
    }
    Ok(())
}

/// Refuses a test database that is the real one, before a rehearsal (`migrate`, `undo`): by
/// the values (`crate::core::config::check_distinct`), then for PostgreSQL by asking the
/// server, which finds one database under two names (two names of one host, a port forward).
/// Commands that only read (`--db .strata/test.db dump`) may name the test database as `db`.
pub(crate) fn check_distinct(project: &Project) -> Result<(), Error> {
    crate::core::config::check_distinct(&project.db, &project.test_db)?;
    let (Database::Postgres(real), Database::Postgres(test)) = (&project.db, &project.test_db)
    else {
        return Ok(());
    };
    if same_server_database(project, real, test) {
        return Err(Error::Usage(format!(
            "the test database {test} is the real database {real} (the server shows one \
             database under both URLs): the rehearsal and the test data would run on it; set \
             `test_db` in strata.toml (or --test-db, STRATA_TEST_DB) to another database"
        )));
    }
    Ok(())
}

/// Refuses PostgreSQL `targets` (name, database) of which one is, on the server, the test
/// database under another URL (two names of one host, a port forward), as [`check_distinct`]
/// does for `migrate`: a session held on the test database is looked for from each target.
/// Best effort, as there: targets that cannot be reached are not compared.
#[cfg(feature = "postgres")]
pub(crate) fn check_not_test_database<'a>(
    project: &Project,
    targets: impl IntoIterator<Item = (&'a str, &'a Database)>,
) -> Result<(), Error> {
    let Database::Postgres(test) = &project.test_db else {
        return Ok(());
    };
    let mut mark = None;
    for (name, db) in targets {
        let Database::Postgres(target) = db else {
            continue;
        };
        let Some(mark) = mark.get_or_insert_with(|| postgres::run::Mark::on(project, test)) else {
            return Ok(());
        };
        if mark.seen_from(project, target) {
            return Err(Error::Usage(format!(
                "the test database is among the fleet's targets ({name} is {target}, which the \
                 server shows to be {test}): the rehearsal and the test data would run on a \
                 real database; set test_db (or --test-db) to a database of its own"
            )));
        }
    }
    Ok(())
}

#[cfg(not(feature = "postgres"))]
pub(crate) fn check_not_test_database<'a>(
    _project: &Project,
    _targets: impl IntoIterator<Item = (&'a str, &'a Database)>,
) -> Result<(), Error> {
    Ok(())
}

/// Whether the server shows one database under both targets (best effort: `false` when
/// either cannot be reached).
pub(crate) fn same_database_on_server(project: &Project, a: &Target, b: &Target) -> bool {
    same_server_database(project, a, b)
}

/// Whether the server shows one database under both targets.
#[cfg(feature = "postgres")]
fn same_server_database(project: &Project, real: &Target, test: &Target) -> bool {
    postgres::run::same_database(project, real, test)
}

#[cfg(not(feature = "postgres"))]
fn same_server_database(_project: &Project, real: &Target, _test: &Target) -> bool {
    real.absent()
}

/// The first two columns of the rows of `sql` on the control database `db` (a SQLite file,
/// opened read-only, or a PostgreSQL database, in a read-only transaction), as text: at most
/// `limit` rows, read a few at a time (the rest are never read).
pub(crate) fn control_pairs(
    project: &Project,
    db: &Database,
    sql: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, Error> {
    match db {
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(target) => target.absent(),
        #[cfg(feature = "postgres")]
        Database::Postgres(target) => postgres::pairs(target, project.busy_timeout(), sql, limit),
        Database::Sqlite(path) => {
            sqlite::connection::pairs(path, project.busy_timeout(), sql, limit)
        }
    }
}

/// What tells a caller that caches answers whether `db` of `project` changed (see [`Watch`]).
/// Opens nothing yet: the first [`Watch::token`] does.
pub fn watch(project: &Project, db: &Database) -> Box<dyn Watch> {
    match db {
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(target) => target.absent(),
        #[cfg(feature = "postgres")]
        Database::Postgres(_) => Box::new(postgres::backend::Unwatched),
        Database::Sqlite(path) => {
            Box::new(sqlite::watch::FileWatch::new(path, project.busy_timeout()))
        }
    }
}

/// A throwaway database with the schema of `project`'s real database, to try pending SQL on
/// (`plan`, `lint`): SQLite's; `None` on a backend that has none (PostgreSQL). `Err(why)`
/// inside when the schema could not be copied.
#[allow(clippy::type_complexity)]
pub(crate) fn dry_run(project: &Project) -> Result<Option<Result<Box<dyn DryRun>, String>>, Error> {
    let Database::Sqlite(real) = &project.db else {
        return Ok(None);
    };
    let real = real.exists().then_some(real.as_path());
    Ok(Some(
        sqlite::dry_run::open(real)?.map(|copy| Box::new(copy) as Box<dyn DryRun>),
    ))
}

/// Whether the backend's own parser reads one statement, without a database: `Some(Err(why))`
/// for a syntax error, `Some(Ok(()))` when it reads it, `None` when the backend cannot tell
/// (PostgreSQL built without its parser, libpg_query).
pub(crate) fn syntax(
    dialect: crate::core::input::Dialect,
    statement: &str,
) -> Option<Result<(), String>> {
    match dialect {
        crate::core::input::Dialect::Sqlite => Some(sqlite::dry_run::syntax(statement)),
        #[cfg(feature = "postgres")]
        crate::core::input::Dialect::Postgres => Some(postgres::syntax(statement)),
        #[cfg(not(feature = "postgres"))]
        crate::core::input::Dialect::Postgres => {
            let _ = statement;
            None
        }
    }
}

/// What `statement` changes beyond the database it runs on (roles, databases by name,
/// tablespaces, the server's configuration), which a run of `dialect` refuses; `None` when it
/// changes only its database (or the dialect has no such statements).
pub(crate) fn server_wide(
    dialect: crate::core::input::Dialect,
    statement: &str,
) -> Option<&'static str> {
    match dialect {
        crate::core::input::Dialect::Sqlite => None,
        #[cfg(feature = "postgres")]
        crate::core::input::Dialect::Postgres => postgres::server_wide::changes(statement),
        #[cfg(not(feature = "postgres"))]
        crate::core::input::Dialect::Postgres => {
            let _ = statement;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::Dialect;
    use std::path::PathBuf;

    fn project(toml: &str) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("strata.toml"), toml).unwrap();
        let p = Project::open(dir.path().to_path_buf()).unwrap();
        (dir, p)
    }

    #[test]
    fn open_picks_the_backend_by_the_database_value() {
        let (_dir, p) = project("");
        let db = open(&p, &p.db).unwrap();
        assert_eq!(db.dialect(), Dialect::Sqlite);
        assert_eq!(p.db, *db.shown());
        let file = p.db.file().unwrap();
        // Nothing is created by reading: no file, no ledger.
        assert!(db.applied().unwrap().is_none());
        assert!(!file.exists());
        // Absent, and told so without creating it.
        assert!(watch(&p, &p.db).token().is_some());
        assert!(!file.exists());

        let (_dir, p) = project("db = \"postgres://someone:secret@localhost/shop\"\n");
        let db = open(&p, &p.db).unwrap();
        assert_eq!(db.dialect(), Dialect::Postgres);
        assert_eq!(
            db.shown(),
            PathBuf::from("postgres://someone@localhost:5432/shop")
        );
        assert_eq!(watch(&p, &p.db).token(), None);
        let test = of_project(&p).unwrap();
        assert_eq!(
            test.shown(),
            PathBuf::from("postgres://someone@localhost:5432/shop_test")
        );
    }

    #[test]
    fn a_project_with_two_kinds_of_database_is_refused_where_postgres_is_opened() {
        let (_dir, p) =
            project("db = \"postgres://someone@localhost/shop\"\ntest_db = \"test.db\"\n");
        let refused = |e: Error| {
            assert!(
                e.to_string()
                    .contains("both PostgreSQL URLs or both SQLite files"),
                "{e}"
            );
        };
        refused(open(&p, &p.db).err().unwrap());
        refused(of_project(&p).err().unwrap());
        // The SQLite file alone is still readable (`audit --test`, for one).
        assert!(open(&p, &p.test_db).is_ok());
    }
}
