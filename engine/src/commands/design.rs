//! The design-time loop on a project: `strata dump` (a module's live schema, optionally stored as
//! its snapshot), `strata diff` (the live schema against the module's last snapshot, optionally
//! as SQL), `strata new --from-diff` (that SQL as the next migration) and `strata baseline`
//! (adopting a database strata never touched), and the drift check of `migrate` and `status`.
//!
//! This module ties a database's live schema to the project: the tree, the ledger and the
//! files it writes (`do.sql`, `schema.sql`, `LATEST/schema.sql`). Each command is written once,
//! over [`Live`]: a database's schema in its backend's own model, who owns what, and its ledger,
//! read together. SQLite's is `sqlite` (over `crate::sqlite::schema`), PostgreSQL's is
//! `postgres::design` (over the catalogs); `crate::core::backend` reads the one the database needs.
//! The commands read the real database; only `new --from-diff` and `baseline` write to it, and
//! only the bookkeeping (a ledger row, an audit row, ownership), never the schema or the data.

use std::path::{Path, PathBuf};

use crate::backends::{self, with_backend};
use crate::commands::scaffold;
use crate::core::backend::{Backups as _, Inspect};
use crate::core::config::Project;
use crate::core::design::Adopted;
use crate::core::design::DiffReport;
use crate::core::design::DumpReport;
use crate::core::design::ModuleDiff;
use crate::core::design::ModuleDump;
use crate::core::design::SNAPSHOT;
use crate::core::design::Skipped;
use crate::core::design::{Live, write_snapshot};
use crate::core::error::{Error, Refusal};
use crate::core::schema::ObjectRef;
use crate::core::target::Database;
use crate::core::tree::{self, LATEST, Migration, Tree};

/// The objects of `db` no module owns, for `strata status`; empty when there is no database.
pub fn unowned(project: &Project, db: &Database) -> Result<Vec<ObjectRef>, Error> {
    backends::open(project, db)?.unowned()
}

pub(crate) fn check_module(module: &str) -> Result<(), Error> {
    tree::check_module_name(module).map_err(Error::Usage)
}

/// The modules to look at: the one named, or every module of the tree or with owned objects
/// (`owners`).
fn modules(tree: &Tree, owners: &[String], module: Option<&str>) -> Result<Vec<String>, Error> {
    if let Some(m) = module {
        check_module(m)?;
        if !tree.modules.iter().any(|t| t == m) && !owners.iter().any(|o| o == m) {
            return Err(Error::Usage(tree::unknown_module(m, &tree.modules)));
        }
        return Ok(vec![m.to_string()]);
    }
    let mut all = tree.modules.clone();
    for o in owners {
        if !all.contains(o) {
            all.push(o.clone());
        }
    }
    all.sort();
    Ok(all)
}

/// `strata dump [<module>] [--write]`.
pub fn dump(project: &Project, module: Option<&str>, write: bool) -> Result<DumpReport, Error> {
    with_backend!(backends::open_typed(project, &project.db)?, |b| dump_with(
        project,
        |tree| b.live(tree, false),
        module,
        write
    ))
}

/// [`dump`] of the database `read` reads.
pub(crate) fn dump_with<L: Live>(
    project: &Project,
    read: impl FnOnce(&Tree) -> Result<L, Error>,
    module: Option<&str>,
    write: bool,
) -> Result<DumpReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let live = read(&tree)?;
    let db = live.db();
    let mut report = DumpReport {
        db: db.clone(),
        modules: Vec::new(),
        unowned: live.unowned(),
    };
    for m in modules(&tree, &live.owners(), module)? {
        let sql = L::to_sql(&live.module(&m, false));
        let mut written = Vec::new();
        if write {
            written = store_dump(&tree, live.applied(), &m, &sql, &db.display())?;
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
    applied: &[crate::core::ledger::Applied],
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

/// The snapshot a module's live schema is compared with: the `schema.sql` of its newest
/// migration applied to the database (or LATEST/schema.sql if that migration is the newest of
/// the module); an empty schema when none is applied.
fn snapshot<L: Live>(
    tree: &Tree,
    applied: &[crate::core::ledger::Applied],
    module: &str,
    db: &Path,
) -> Result<(Option<PathBuf>, L::Schema), Error> {
    let Some(path) = snapshot_file(tree, applied, module, db)? else {
        return Ok((None, L::Schema::default()));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let schema = L::parse(&path, &text)?;
    Ok((Some(path), schema))
}

/// The file of [`snapshot`]; `None` when nothing of the module is applied. A usage error when
/// the newest applied migration has no schema.sql.
pub(crate) fn snapshot_file(
    tree: &Tree,
    applied: &[crate::core::ledger::Applied],
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
    with_backend!(backends::open_typed(project, &project.db)?, |b| diff_with(
        project,
        |tree| b.live(tree, false),
        module,
        sql
    ))
}

/// [`diff`] of the database `read` reads.
pub(crate) fn diff_with<L: Live>(
    project: &Project,
    read: impl FnOnce(&Tree) -> Result<L, Error>,
    module: Option<&str>,
    sql: bool,
) -> Result<DiffReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let live = read(&tree)?;
    let db = live.db();
    let names = modules(&tree, &live.owners(), module)?;
    let with_unowned = names.len() == 1;
    let mut report = DiffReport {
        db: db.clone(),
        modules: Vec::new(),
        skipped: Vec::new(),
        unowned: if with_unowned {
            Vec::new()
        } else {
            live.unowned()
        },
    };
    for m in names {
        let (path, before) = match snapshot::<L>(&tree, live.applied(), &m, &db) {
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
        let after = live.module(&m, with_unowned);
        let included = if with_unowned {
            live.unowned_beyond(&before)
        } else {
            Vec::new()
        };
        report.modules.push(ModuleDiff {
            module: m,
            snapshot: path,
            delta: sql.then(|| live.delta(&before, &after)),
            diff: L::diff(&before, &after),
            unowned: included,
        });
    }
    Ok(report)
}

/// Drift: every module of the real database whose live schema differs from the snapshot of its
/// newest applied migration. Modules without such a snapshot cannot drift and are passed over;
/// a missing database has not drifted.
pub fn drift(project: &Project) -> Result<Vec<Refusal>, Error> {
    drift_in(project, &Tree::load(&project.migrations_dir())?)
}

/// [`drift`] against the project's `tree` as already loaded (a fleet reads it once for all its
/// targets).
pub fn drift_in(project: &Project, tree: &Tree) -> Result<Vec<Refusal>, Error> {
    with_backend!(backends::open_typed(project, &project.db)?, |b| drift_of(
        tree,
        b.for_drift(tree)?
    ))
}

/// [`drift`] of `live`, read against `tree` (`None`: no database, or one that cannot have
/// drifted).
pub(crate) fn drift_of<L: Live>(tree: &Tree, live: Option<L>) -> Result<Vec<Refusal>, Error> {
    let Some(live) = live else {
        return Ok(Vec::new());
    };
    if live.applied().is_empty() {
        return Ok(Vec::new());
    }
    let db = live.db();
    let mut refusals = Vec::new();
    for m in modules(tree, &live.owners(), None)? {
        let Ok((Some(path), before)) = snapshot::<L>(tree, live.applied(), &m, &db) else {
            continue;
        };
        let d = L::diff(&before, &live.module(&m, false));
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
    applied: &[crate::core::ledger::Applied],
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
    with_backend!(backends::open_typed(project, &project.db)?, |b| {
        new_from_diff_with(
            project,
            |tree| b.live(tree, true),
            module,
            slug,
            allow_destructive,
        )
    })
}

/// [`new_from_diff`] on the database `read` reads (for writing).
pub(crate) fn new_from_diff_with<L: Live>(
    project: &Project,
    read: impl FnOnce(&Tree) -> Result<L, Error>,
    module: &str,
    slug: &str,
    allow_destructive: bool,
) -> Result<Adopted, Error> {
    check_module(module)?;
    tree::check_slug(slug).map_err(Error::Usage)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let mut live = read(&tree)?;
    let db = live.db();
    let waiting = pending(&tree, live.applied(), module);
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
    let (_, before) = snapshot::<L>(&tree, live.applied(), module, &db)?;
    let after = live.module(module, true);
    let d = L::diff(&before, &after);
    if d.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to do: the schema of `{module}` in {} is the same as its snapshot",
            db.display()
        )));
    }
    let delta = live.delta(&before, &after);
    if !delta.destructive.is_empty() && !allow_destructive {
        return Err(Error::Refused(vec![Refusal::Destructive {
            changes: delta.destructive.clone(),
        }]));
    }
    let unowned = live.unowned();
    let header = format!(
        "-- Generated by `strata new {module} {slug} --from-diff` from the changes to {}.\n{}",
        live.name(),
        L::FROM_DIFF_NOTE
    );
    let m = write_migration(
        project,
        module,
        slug,
        &format!("{header}{}", delta.sql),
        &L::to_sql(&after),
    )?;
    live.record_adopted(
        &m,
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
/// the module's zero migration (`do.sql` and `schema.sql` are its dump), recorded as applied,
/// after a verified backup.
pub fn baseline(project: &Project, module: &str) -> Result<Adopted, Error> {
    with_backend!(backends::open_typed(project, &project.db)?, |b| {
        let adopted = baseline_with(project, |tree| b.live(tree, true), module)?;
        // The end state beside the backup, as a migrate records it (see `commands::undo`).
        if let Some(backup) = &adopted.backup {
            let _ = b.record_state_after(backup);
        }
        Ok(adopted)
    })
}

/// [`baseline`] of the database `read` reads (for writing).
pub(crate) fn baseline_with<L: Live>(
    project: &Project,
    read: impl FnOnce(&Tree) -> Result<L, Error>,
    module: &str,
) -> Result<Adopted, Error> {
    check_module(module)?;
    let tree = Tree::load(&project.migrations_dir())?;
    if let Some(first) = tree.module(module).next() {
        return Err(Error::Usage(format!(
            "module `{module}` already has migrations ({first}): baseline starts a new module. \
             To take in changes made by hand, use `strata new {module} <slug> --from-diff`"
        )));
    }
    let mut live = read(&tree)?;
    let db = live.db();
    let unowned = live.unowned();
    if unowned.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to adopt: {} has no {} that no module owns",
            db.display(),
            L::KINDS
        )));
    }
    let adopted = live.unowned_schema();
    let backup = live.back_up("before baseline", "baseline")?;
    let sql = L::to_sql(&adopted);
    let header = format!(
        "-- The schema of {} when `strata baseline {module}` adopted it. It was recorded as\n\
         -- applied there without running; on a new database (the test database, a fresh\n\
         -- copy) it creates the schema.\n\n",
        live.name()
    );
    let m = write_migration(project, module, "zero", &format!("{header}{sql}"), &sql)?;
    if let Err(e) = live.record_adopted(
        &m,
        "baseline",
        "recorded as applied without running it: the database already had this schema",
    ) {
        // Nothing was recorded (the ledger changed since it was read, or the write failed):
        // the new module's migration goes too, so the tree is as it was.
        let _ = std::fs::remove_dir_all(&m.dir);
        if let Some(module_dir) = m.dir.parent() {
            let _ = std::fs::remove_dir_all(module_dir.join(crate::core::tree::LATEST));
            let _ = std::fs::remove_dir(module_dir);
        }
        return Err(e);
    }
    Ok(Adopted {
        path: m.dir.clone(),
        db,
        adopted: unowned,
        diff: L::diff(&L::Schema::default(), &adopted),
        destructive: Vec::new(),
        warnings: Vec::new(),
        backup: Some(backup),
    })
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
