//! The one place that knows both backends: it picks SQLite or PostgreSQL from a database's
//! value (a SQLite path or a `postgres://` URL) and gives the commands a
//! `crate::core::backend::Backend`. Apart from this module, only the typed target in
//! `crate::core::config` looks at a URL's scheme.

use std::path::Path;

use crate::core::backend::{Backend, Watch};
use crate::core::config::Project;
use crate::core::dry_run::DryRun;
use crate::core::error::Error;
use crate::{postgres, sqlite};

/// Opens `db` (a SQLite path or a `postgres://` URL) of `project` with its backend: the one
/// place that tells the backends apart. A PostgreSQL database is refused in a project whose
/// other database is a SQLite file (see [`check_project`]).
pub(crate) fn open<'p>(project: &'p Project, db: &Path) -> Result<Box<dyn Backend + 'p>, Error> {
    Ok(match open_typed(project, db)? {
        Opened::Sqlite(b) => Box::new(b),
        Opened::Postgres(b) => b,
    })
}

/// A database opened with its backend, as its own type: for what is generic over a backend's
/// associated types (the design-time commands, over [`Inspect`](crate::core::backend::Inspect)),
/// through [`with_backend!`].
pub(crate) enum Opened<'p> {
    Sqlite(sqlite::backend::Sqlite<'p>),
    Postgres(Box<postgres::backend::Postgres<'p>>),
}

/// [`open`], keeping the backend's type.
pub(crate) fn open_typed<'p>(project: &'p Project, db: &Path) -> Result<Opened<'p>, Error> {
    if is_server(db) {
        check_project(project)?;
        Ok(Opened::Postgres(Box::new(
            postgres::backend::Postgres::open(project, db)?,
        )))
    } else {
        Ok(Opened::Sqlite(sqlite::backend::Sqlite::new(project, db)))
    }
}

/// Runs `$body` with `$b` bound to the backend of `$opened` (an [`Opened`]), whichever it is:
/// the body is compiled once per backend.
macro_rules! with_backend {
    ($opened:expr, |$b:ident| $body:expr) => {
        match $opened {
            $crate::backends::Opened::Sqlite($b) => $body,
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
    if is_server(&project.db) != is_server(&project.test_db) {
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
    if !(is_server(&project.db) && is_server(&project.test_db)) {
        return Ok(());
    }
    let real = crate::core::target::Target::parse(&project.db.to_string_lossy(), "db")?;
    let test = crate::core::target::Target::parse(&project.test_db.to_string_lossy(), "test_db")?;
    if postgres::run::same_database(project, &real, &test) {
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
pub(crate) fn check_not_test_database<'a>(
    project: &Project,
    targets: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> Result<(), Error> {
    if !is_server(&project.test_db) {
        return Ok(());
    }
    let test = crate::core::target::Target::parse(&project.test_db.to_string_lossy(), "test_db")?;
    let mut mark = None;
    for (name, db) in targets {
        if !is_server(db) {
            continue;
        }
        let Ok(target) = crate::core::target::Target::parse(&db.to_string_lossy(), "db") else {
            continue;
        };
        if mark.is_none() {
            mark = Some(postgres::run::Mark::on(project, &test));
        }
        let Some(Some(mark)) = &mark else {
            return Ok(());
        };
        if mark.seen_from(project, &target) {
            return Err(Error::Usage(format!(
                "the test database is among the fleet's targets ({name} is {target}, which the \
                 server shows to be {test}): the rehearsal and the test data would run on a \
                 real database; set test_db (or --test-db) to a database of its own"
            )));
        }
    }
    Ok(())
}

/// The first two columns of every row of `sql` on the control database `db` (a SQLite file,
/// opened read-only, or a PostgreSQL URL, in a read-only transaction), as text.
pub(crate) fn control_pairs(
    project: &Project,
    db: &Path,
    sql: &str,
) -> Result<Vec<(String, String)>, Error> {
    if is_server(db) {
        let target = crate::core::target::Target::parse(&db.to_string_lossy(), "control")?;
        postgres::pairs(&target, project.busy_timeout(), sql)
    } else {
        sqlite::connection::pairs(db, project.busy_timeout(), sql)
    }
}

/// Whether `db` names a database on a server (a `postgres://` URL) rather than a file: code
/// that works on files only (`crate::sqlite`) refuses it.
pub fn is_server(db: &Path) -> bool {
    crate::core::target::is_url(db)
}

/// What tells a caller that caches answers whether `db` of `project` changed (see [`Watch`]).
/// Opens nothing yet: the first [`Watch::token`] does.
pub fn watch(project: &Project, db: &Path) -> Box<dyn Watch> {
    if is_server(db) {
        Box::new(postgres::backend::Unwatched)
    } else {
        Box::new(sqlite::watch::FileWatch::new(db, project.busy_timeout()))
    }
}

/// A throwaway database with the schema of `project`'s real database, to try pending SQL on
/// (`plan`, `lint`): SQLite's; `None` on a backend that has none (PostgreSQL). `Err(why)`
/// inside when the schema could not be copied.
#[allow(clippy::type_complexity)]
pub(crate) fn dry_run(project: &Project) -> Result<Option<Result<Box<dyn DryRun>, String>>, Error> {
    if is_server(&project.db) {
        return Ok(None);
    }
    let real = project.db.exists().then_some(project.db.as_path());
    Ok(Some(
        sqlite::dry_run::open(real)?.map(|copy| Box::new(copy) as Box<dyn DryRun>),
    ))
}

/// Whether the backend's own parser reads one statement, without a database: `Some(Err(why))`
/// for a syntax error, `Some(Ok(()))` when it reads it, `None` when the backend cannot tell
/// without its server (PostgreSQL).
pub(crate) fn syntax(
    dialect: crate::core::input::Dialect,
    statement: &str,
) -> Option<Result<(), String>> {
    match dialect {
        crate::core::input::Dialect::Sqlite => Some(sqlite::dry_run::syntax(statement)),
        crate::core::input::Dialect::Postgres => None,
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
        assert_eq!(db.shown(), p.db);
        // Nothing is created by reading: no file, no ledger.
        assert!(db.applied().unwrap().is_none());
        assert!(!p.db.exists());
        // Absent, and told so without creating it.
        assert!(watch(&p, &p.db).token().is_some());
        assert!(!p.db.exists());

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
