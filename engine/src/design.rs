//! The design-time loop on a project: `strata dump` (a module's live schema, optionally stored as
//! its snapshot), `strata diff` (the live schema against the module's last snapshot, optionally
//! as SQL), `strata new --from-diff` (that SQL as the next migration) and `strata baseline`
//! (adopting a database strata never touched).
//!
//! This module ties `schema` (the SQLite model, pure diff and delta, ownership) to the project:
//! the tree, the ledger and the files it writes (`do.sql`, `schema.sql`, `LATEST/schema.sql`).
//! It reads the real database; only `new --from-diff` and `baseline` write to it, and only the
//! bookkeeping (a ledger row, an audit row, ownership), never the schema or the data.
//!
//! Each command's entry point opens the real database with its backend (`crate::backend`); the
//! `*_sqlite` functions here are SQLite's side, PostgreSQL's is `postgres::design`. The reports,
//! snapshot files and the rules for choosing modules and snapshots are shared.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::backend;
use crate::config::Project;
use crate::error::{Error, Refusal};
use crate::ledger::{self, Entry};
use crate::schema::delta::{self, Delta};
use crate::schema::diff::{self, Diff};
use crate::schema::{ObjectKind, ObjectRef, Schema, SchemaError, owner};
use crate::tree::{self, LATEST, Migration, Tree};
use crate::{scaffold, sqlite};

/// The snapshot file of a migration and of `LATEST/`.
pub const SNAPSHOT: &str = "schema.sql";

/// One module's schema as `strata dump` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleDump {
    pub module: String,
    pub sql: String,
    /// Files written with `--write`.
    pub written: Vec<PathBuf>,
}

/// What `strata dump` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpReport {
    pub db: PathBuf,
    pub modules: Vec<ModuleDump>,
    /// Objects no module owns (not part of any module's dump).
    pub unowned: Vec<ObjectRef>,
}

/// One module's differences.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleDiff {
    pub module: String,
    /// The snapshot compared against; `None` when nothing of the module is applied yet.
    pub snapshot: Option<PathBuf>,
    pub diff: Diff,
    /// Objects in `diff` that no module owns yet (they count as this module's additions).
    pub unowned: Vec<ObjectRef>,
    /// The SQL turning the snapshot into the live schema (`--sql`).
    pub delta: Option<Delta>,
}

/// A module `strata diff` could not compare, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub module: String,
    pub reason: String,
}

/// What `strata diff` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffReport {
    pub db: PathBuf,
    pub modules: Vec<ModuleDiff>,
    /// Modules skipped because they have no snapshot.
    pub skipped: Vec<Skipped>,
    /// Objects no module owns that no module's diff includes.
    pub unowned: Vec<ObjectRef>,
}

impl DiffReport {
    /// Refuses (exit 3) when the SQL would drop data, unless allowed.
    /// Whether the live schema differs anywhere from the snapshots (`diff --exit-code`).
    pub fn has_differences(&self) -> bool {
        !self.unowned.is_empty()
            || self
                .modules
                .iter()
                .any(|m| !m.diff.is_empty() || m.delta.as_ref().is_some_and(|d| !d.is_empty()))
    }

    pub fn check_destructive(&self, allow: bool) -> Result<(), Error> {
        let changes: Vec<String> = self
            .modules
            .iter()
            .filter_map(|m| m.delta.as_ref())
            .flat_map(|d| d.destructive.iter().cloned())
            .collect();
        if allow || changes.is_empty() {
            Ok(())
        } else {
            Err(Error::Refused(vec![Refusal::Destructive { changes }]))
        }
    }
}

/// What `strata new --from-diff` and `strata baseline` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adopted {
    /// The new migration folder.
    pub path: PathBuf,
    /// The database it is recorded as applied on.
    pub db: PathBuf,
    /// Objects that were not owned and now belong to the module.
    pub adopted: Vec<ObjectRef>,
    pub diff: Diff,
    /// Destructive changes allowed with `--allow-destructive`, and warnings.
    pub destructive: Vec<String>,
    pub warnings: Vec<String>,
    /// The verified backup taken before the database was changed (`baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
}

/// The objects of `db` no module owns, for `strata status`; empty when there is no database.
pub fn unowned(project: &Project, db: &Path) -> Result<Vec<ObjectRef>, Error> {
    backend::open(project, db)?.unowned()
}

/// [`unowned`] on a SQLite database.
pub(crate) fn unowned_sqlite(project: &Project, db: &Path) -> Result<Vec<ObjectRef>, Error> {
    let Some(conn) = sqlite::open_read_only(db, project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let unowned =
        owner::unowned_objects(&conn).map_err(|e| Error::db(db, "cannot read the schema", e))?;
    if unowned.is_empty() {
        return Ok(unowned);
    }
    let tree = Tree::load(&project.migrations_dir())?;
    let own = Ownership::read(&tree, &conn, db)?;
    Ok(unowned
        .into_iter()
        .filter(|o| own.owner_of(o.kind, &o.name).is_none())
        .collect())
}

/// Who owns what in one database: the rows of `strata_object`, plus, for objects no row covers,
/// owners inferred by replaying the applied migrations' `do.sql` (`owner::infer`), for
/// databases migrated before strata recorded ownership.
struct Ownership {
    owners: Vec<owner::Owner>,
    /// The inferred part; `baseline` and `new --from-diff` write it down.
    inferred: Vec<owner::Owner>,
}

impl Ownership {
    fn read(tree: &Tree, conn: &Connection, db: &Path) -> Result<Ownership, Error> {
        let mut owners =
            owner::owners(conn).map_err(|e| Error::db(db, "cannot read strata_object", e))?;
        let unowned =
            owner::unowned_objects(conn).map_err(|e| Error::db(db, "cannot read the schema", e))?;
        let applied =
            ledger::applied(conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
        let mut inferred = Vec::new();
        if !unowned.is_empty() && !applied.is_empty() {
            let mut scripts = Vec::new();
            for m in &tree.migrations {
                if applied.iter().any(|a| a.id == m.id) {
                    let path = m.file("do.sql");
                    let sql = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    scripts.push((m.id.clone(), sql));
                }
            }
            inferred = owner::infer(&scripts)
                .unwrap_or_default()
                .into_iter()
                .filter(|i| {
                    unowned.iter().any(|o| {
                        o.kind == i.object.kind && o.name.eq_ignore_ascii_case(&i.object.name)
                    })
                })
                .collect();
        }
        owners.extend(inferred.iter().cloned());
        Ok(Ownership { owners, inferred })
    }

    fn owner_of(&self, kind: ObjectKind, name: &str) -> Option<&str> {
        self.owners
            .iter()
            .find(|o| o.object.kind == kind && o.object.name.eq_ignore_ascii_case(name))
            .map(|o| o.module.as_str())
    }

    /// The objects of `schema` that no module owns.
    fn unowned(&self, schema: &Schema) -> Vec<ObjectRef> {
        schema
            .objects()
            .into_iter()
            .filter(|o| self.owner_of(o.kind, &o.name).is_none())
            .collect()
    }
}

fn schema_err(db: &Path, e: SchemaError) -> Error {
    match e {
        SchemaError::Sqlite(e) => Error::db(db, "cannot read the schema", e),
        SchemaError::Parse { what, message } => Error::input(
            db,
            format!(
                "cannot take {what} apart: {message}. This is a gap in strata's reading of \
                 SQLite schemas; please report it with the statement"
            ),
        ),
    }
}

fn open_existing(project: &Project) -> Result<Connection, Error> {
    sqlite::open_read_only(&project.db, project.busy_timeout())?.ok_or_else(|| {
        Error::Usage(format!(
            "there is no database at {}: run `strata migrate` first, or pass --db",
            project.db.display()
        ))
    })
}

pub(crate) fn check_module(module: &str) -> Result<(), Error> {
    tree::check_module_name(module).map_err(Error::Usage)
}

/// The modules to look at: the one named, or every module of the tree or with owned objects.
fn modules(tree: &Tree, own: &Ownership, module: Option<&str>) -> Result<Vec<String>, Error> {
    if let Some(m) = module {
        check_module(m)?;
        let owns = own.owners.iter().any(|o| o.module == m);
        if !tree.modules.iter().any(|t| t == m) && !owns {
            return Err(Error::Usage(tree::unknown_module(m, &tree.modules)));
        }
        return Ok(vec![m.to_string()]);
    }
    let mut all = tree.modules.clone();
    for o in &own.owners {
        if !all.contains(&o.module) {
            all.push(o.module.clone());
        }
    }
    all.sort();
    Ok(all)
}

/// `strata dump [<module>] [--write]`.
pub fn dump(project: &Project, module: Option<&str>, write: bool) -> Result<DumpReport, Error> {
    backend::open(project, &project.db)?.dump(module, write)
}

/// [`dump`] of a SQLite database.
pub(crate) fn dump_sqlite(
    project: &Project,
    module: Option<&str>,
    write: bool,
) -> Result<DumpReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let conn = open_existing(project)?;
    let db = &project.db;
    let full = Schema::read(&conn).map_err(|e| schema_err(db, e))?;
    let applied = ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
    let own = Ownership::read(&tree, &conn, db)?;
    let mut report = DumpReport {
        db: db.clone(),
        modules: Vec::new(),
        unowned: own.unowned(&full),
    };
    for m in modules(&tree, &own, module)? {
        let sql = owned_schema(&own, &full, &m, false).to_sql();
        let mut written = Vec::new();
        if write {
            written = store_dump(&tree, &applied, &m, &sql, &db.display())?;
        }
        report.modules.push(ModuleDump {
            module: m,
            sql,
            written,
        });
    }
    Ok(report)
}

/// `dump --write`: stores `sql` as the schema.sql of `module`'s newest migration (and LATEST),
/// which must be applied to the database the dump came from (`db`, as shown).
pub(crate) fn store_dump(
    tree: &Tree,
    applied: &[ledger::Applied],
    module: &str,
    sql: &str,
    db: &dyn std::fmt::Display,
) -> Result<Vec<PathBuf>, Error> {
    let newest = tree.module(module).last().ok_or_else(|| {
        Error::Usage(format!(
            "module `{module}` has no migrations to store a snapshot in: start it with \
             `strata baseline {module}` or `strata new {module} <slug>`"
        ))
    })?;
    if !applied.iter().any(|a| a.id == newest.id) {
        return Err(Error::Usage(format!(
            "{newest} is not applied to {db}, so its schema.sql cannot be taken from it: run \
             `strata migrate` first"
        )));
    }
    write_snapshot(newest, sql, true)
}

/// The objects of `module` in `full`; with `with_unowned`, also those no module owns.
fn owned_schema(own: &Ownership, full: &Schema, module: &str, with_unowned: bool) -> Schema {
    full.filter(|kind, name| match own.owner_of(kind, name) {
        Some(o) => o == module,
        None => with_unowned,
    })
}

/// Writes `sql` as the migration's schema.sql and, when `latest` (the migration is its module's
/// newest), as the module's LATEST/schema.sql. Returns the files written.
pub fn write_snapshot(m: &Migration, sql: &str, latest: bool) -> Result<Vec<PathBuf>, Error> {
    let mut paths = vec![m.file(SNAPSHOT)];
    if latest {
        let module_dir = m
            .dir
            .parent()
            .expect("a migration folder is inside its module");
        let latest_dir = module_dir.join(LATEST);
        std::fs::create_dir_all(&latest_dir).map_err(|e| Error::io(&latest_dir, e))?;
        paths.push(latest_dir.join(SNAPSHOT));
    }
    for path in &paths {
        std::fs::write(path, sql).map_err(|e| Error::io(path, e))?;
    }
    Ok(paths)
}

/// The snapshot a module's live schema is compared with: the `schema.sql` of its newest
/// migration applied to the database (or LATEST/schema.sql if that migration is the newest of
/// the module); an empty schema when none is applied.
fn snapshot(
    tree: &Tree,
    applied: &[ledger::Applied],
    module: &str,
    db: &Path,
) -> Result<(Option<PathBuf>, Schema), Error> {
    let Some(path) = snapshot_file(tree, applied, module, db)? else {
        return Ok((None, Schema::default()));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let schema = Schema::parse(&text).map_err(|e| Error::input(&path, e.to_string()))?;
    Ok((Some(path), schema))
}

/// The file of [`snapshot`]; `None` when nothing of the module is applied. A usage error when
/// the newest applied migration has no schema.sql.
pub(crate) fn snapshot_file(
    tree: &Tree,
    applied: &[ledger::Applied],
    module: &str,
    db: &Path,
) -> Result<Option<PathBuf>, Error> {
    let newest_applied = tree
        .module(module)
        .filter(|m| applied.iter().any(|a| a.id == m.id))
        .last();
    let Some(m) = newest_applied else {
        return Ok(None);
    };
    let path = m.file(SNAPSHOT);
    if path.is_file() {
        return Ok(Some(path));
    }
    let latest = tree.root.join(module).join(LATEST).join(SNAPSHOT);
    let is_newest = tree.module(module).last().is_some_and(|n| n.id == m.id);
    if is_newest && latest.is_file() {
        Ok(Some(latest))
    } else {
        Err(Error::Usage(format!(
            "{m} is the newest migration of `{module}` applied to {}, but it has no \
             schema.sql to compare with: store one with `strata dump {module} --write` \
             (while the database still matches that migration)",
            db.display()
        )))
    }
}

/// `strata diff [<module>] [--sql]`. Objects no module owns count as additions of the named
/// module, or of the only module when there is one.
pub fn diff(project: &Project, module: Option<&str>, sql: bool) -> Result<DiffReport, Error> {
    backend::open(project, &project.db)?.diff(module, sql)
}

/// [`diff`] of a SQLite database.
pub(crate) fn diff_sqlite(
    project: &Project,
    module: Option<&str>,
    sql: bool,
) -> Result<DiffReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let conn = open_existing(project)?;
    let db = &project.db;
    let full = Schema::read(&conn).map_err(|e| schema_err(db, e))?;
    let applied = ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
    let own = Ownership::read(&tree, &conn, db)?;
    let unowned = own.unowned(&full);
    let names = modules(&tree, &own, module)?;
    let with_unowned = names.len() == 1;
    let mut report = DiffReport {
        db: db.clone(),
        modules: Vec::new(),
        skipped: Vec::new(),
        unowned: if with_unowned {
            Vec::new()
        } else {
            unowned.clone()
        },
    };
    for m in names {
        let (path, before) = match snapshot(&tree, &applied, &m, db) {
            Ok(s) => s,
            Err(Error::Usage(why)) if !with_unowned => {
                report.skipped.push(Skipped {
                    module: m,
                    reason: why,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let live = owned_schema(&own, &full, &m, with_unowned);
        let d = diff::diff(&before, &live);
        let included: Vec<ObjectRef> = unowned
            .iter()
            .filter(|o| with_unowned && !before.contains(o.kind, &o.name))
            .cloned()
            .collect();
        report.modules.push(ModuleDiff {
            module: m,
            snapshot: path,
            delta: sql.then(|| delta::delta(&before, &live, &full)),
            diff: d,
            unowned: included,
        });
    }
    Ok(report)
}

/// Drift: every module of the real database whose live schema differs from the snapshot of its
/// newest applied migration. Modules without such a snapshot cannot drift and are passed over;
/// a missing database has not drifted.
pub fn drift(project: &Project) -> Result<Vec<Refusal>, Error> {
    backend::open(project, &project.db)?.drift()
}

/// [`drift`] of a SQLite database.
pub(crate) fn drift_sqlite(project: &Project) -> Result<Vec<Refusal>, Error> {
    let Some(conn) = sqlite::open_read_only(&project.db, project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let db = &project.db;
    let applied = ledger::applied(&conn).map_err(|e| Error::db(db, "cannot read the ledger", e))?;
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    let tree = Tree::load(&project.migrations_dir())?;
    let full = Schema::read(&conn).map_err(|e| schema_err(db, e))?;
    let own = Ownership::read(&tree, &conn, db)?;
    let mut refusals = Vec::new();
    for m in modules(&tree, &own, None)? {
        let Ok((Some(path), before)) = snapshot(&tree, &applied, &m, db) else {
            continue;
        };
        let d = diff::diff(&before, &owned_schema(&own, &full, &m, false));
        if !d.is_empty() {
            refusals.push(Refusal::Drift {
                db: db.clone(),
                module: m,
                snapshot: path,
                difference: d.to_string(),
            });
        }
    }
    Ok(refusals)
}

/// The module's migrations that are not applied to the database.
pub(crate) fn pending<'t>(
    tree: &'t Tree,
    applied: &[ledger::Applied],
    module: &str,
) -> Vec<&'t Migration> {
    tree.module(module)
        .filter(|m| !applied.iter().any(|a| a.id == m.id))
        .collect()
}

/// `strata new <module> <slug> --from-diff`: the live changes to the real database become the
/// module's next migration (`do.sql` is the delta, `schema.sql` the live schema), recorded as
/// applied on that database, which already has them.
pub fn new_from_diff(
    project: &Project,
    module: &str,
    slug: &str,
    allow_destructive: bool,
) -> Result<Adopted, Error> {
    backend::open(project, &project.db)?.new_from_diff(module, slug, allow_destructive)
}

/// [`new_from_diff`] on a SQLite database.
pub(crate) fn new_from_diff_sqlite(
    project: &Project,
    module: &str,
    slug: &str,
    allow_destructive: bool,
) -> Result<Adopted, Error> {
    check_module(module)?;
    tree::check_slug(slug).map_err(Error::Usage)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let db = project.db.clone();
    drop(open_existing(project)?);
    let mut conn = sqlite::open(&db, project.busy_timeout())?;
    let applied =
        ledger::applied(&conn).map_err(|e| Error::db(&db, "cannot read the ledger", e))?;
    let waiting = pending(&tree, &applied, module);
    if !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.label()).collect();
        return Err(Error::Usage(format!(
            "{} {} not applied to {}: the diff would mix them up with your changes. Run \
             `strata migrate` first",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            db.display()
        )));
    }
    let (_, before) = snapshot(&tree, &applied, module, &db)?;
    let full = Schema::read(&conn).map_err(|e| schema_err(&db, e))?;
    let own = Ownership::read(&tree, &conn, &db)?;
    let live = owned_schema(&own, &full, module, true);
    let d = diff::diff(&before, &live);
    if d.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to do: the schema of `{module}` in {} is the same as its snapshot",
            db.display()
        )));
    }
    let delta = delta::delta(&before, &live, &full);
    if !delta.destructive.is_empty() && !allow_destructive {
        return Err(Error::Refused(vec![Refusal::Destructive {
            changes: delta.destructive.clone(),
        }]));
    }
    let unowned = own.unowned(&live);
    let header = format!(
        "-- Generated by `strata new {module} {slug} --from-diff` from the changes to {}.\n\
         -- Review it before you commit it. strata runs it in one transaction with foreign keys\n\
         -- off and checks them before it commits.\n\n",
        file_name(&db)
    );
    let m = write_migration(
        project,
        module,
        slug,
        &format!("{header}{}", delta.sql),
        &live.to_sql(),
    )?;
    record_adopted(
        &mut conn,
        &db,
        &m,
        (&unowned, &own.inferred),
        "from-diff",
        "recorded as applied without running it: the database already had these changes",
    )?;
    Ok(Adopted {
        path: m.dir.clone(),
        db,
        adopted: unowned,
        diff: d,
        destructive: delta.destructive,
        warnings: delta.warnings,
        backup: None,
    })
}

/// `strata baseline <module>`: every object of the real database that no module owns becomes
/// the module's zero migration (`do.sql` and `schema.sql` are its dump), recorded as applied.
pub fn baseline(project: &Project, module: &str) -> Result<Adopted, Error> {
    backend::open(project, &project.db)?.baseline(module)
}

/// [`baseline`] of a SQLite database.
pub(crate) fn baseline_sqlite(project: &Project, module: &str) -> Result<Adopted, Error> {
    check_module(module)?;
    let tree = Tree::load(&project.migrations_dir())?;
    if let Some(first) = tree.module(module).next() {
        return Err(Error::Usage(format!(
            "module `{module}` already has migrations ({first}): baseline starts a new module. \
             To take in changes made by hand, use `strata new {module} <slug> --from-diff`"
        )));
    }
    let db = project.db.clone();
    drop(open_existing(project)?);
    let mut conn = sqlite::open(&db, project.busy_timeout())?;
    let full = Schema::read(&conn).map_err(|e| schema_err(&db, e))?;
    let own = Ownership::read(&tree, &conn, &db)?;
    let unowned = own.unowned(&full);
    if unowned.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to adopt: {} has no tables, indexes, views or triggers that no module owns",
            db.display()
        )));
    }
    let adopted = full.filter(|kind, name| {
        unowned
            .iter()
            .any(|o| o.kind == kind && o.name.eq_ignore_ascii_case(name))
    });
    // Like every writing command: under the run lock, after a verified backup.
    let _run = crate::backup::RunLock::shared(&db, project.busy_timeout())?;
    let backup = crate::backup::take(
        &conn,
        &db,
        &project.backups_dir(),
        project.config.backups_keep,
        "before baseline",
    )?;
    ledger::ensure(&mut conn).map_err(|e| Error::db(&db, "cannot create the ledger tables", e))?;
    ledger::append(
        &conn,
        &[Entry::for_run(
            "baseline",
            "backup",
            backup.display().to_string(),
        )],
    )
    .map_err(|e| Error::db(&db, "cannot audit the backup", e))?;
    let sql = adopted.to_sql();
    let header = format!(
        "-- The schema of {} when `strata baseline {module}` adopted it. It was recorded as\n\
         -- applied there without running; on a new database (the test database, a fresh\n\
         -- copy) it creates the schema.\n\n",
        file_name(&db)
    );
    let m = write_migration(project, module, "zero", &format!("{header}{sql}"), &sql)?;
    record_adopted(
        &mut conn,
        &db,
        &m,
        (&unowned, &own.inferred),
        "baseline",
        "recorded as applied without running it: the database already had this schema",
    )?;
    Ok(Adopted {
        path: m.dir.clone(),
        db,
        adopted: unowned,
        diff: diff::diff(&Schema::default(), &adopted),
        destructive: Vec::new(),
        warnings: Vec::new(),
        backup: Some(backup),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Creates the next migration folder of `module` with `do.sql` and `schema.sql`, updates
/// LATEST, and returns the migration as the tree sees it.
pub(crate) fn write_migration(
    project: &Project,
    module: &str,
    slug: &str,
    do_sql: &str,
    schema_sql: &str,
) -> Result<Migration, Error> {
    let dir = scaffold::new_migration(project, module, slug, true)?;
    let path = dir.join("do.sql");
    std::fs::write(&path, do_sql).map_err(|e| Error::io(&path, e))?;
    let tree = Tree::load(&project.migrations_dir())?;
    let m = tree
        .module(module)
        .find(|m| m.dir == dir)
        .cloned()
        .ok_or_else(|| Error::input(&dir, "the new migration folder is not in the tree"))?;
    write_snapshot(&m, schema_sql, true)?;
    Ok(m)
}

/// Records `m` as applied on `db` without running it, audits that, gives `objects` to its
/// module, and writes down the `inferred` owners of other objects.
fn record_adopted(
    conn: &mut Connection,
    db: &Path,
    m: &Migration,
    (objects, inferred): (&[ObjectRef], &[owner::Owner]),
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    ledger::ensure(conn).map_err(|e| Error::db(db, "cannot create the ledger tables", e))?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| Error::db(db, "cannot begin a transaction", e))?;
    let entry = Entry::adopted(m, action, detail);
    let earlier = inferred.iter().try_for_each(|o| {
        let id = crate::tree::MigrationId {
            module: o.module.clone(),
            stamp: o.stamp.clone(),
        };
        owner::adopt(&tx, std::slice::from_ref(&o.object), &id)
    });
    earlier
        .and_then(|()| ledger::record(&tx, m, 0))
        .and_then(|()| owner::adopt(&tx, objects, &m.id))
        .and_then(|()| ledger::append(&tx, &[entry]))
        .and_then(|()| tx.commit())
        .map_err(|e| Error::db(db, format!("cannot record {m} as applied"), e))
}
