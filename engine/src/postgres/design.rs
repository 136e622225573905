//! The design-time loop on a PostgreSQL database: `strata dump`, `diff` (`--sql`), `new
//! --from-diff`, `baseline` and the drift check of `migrate`, with the same reports and rules as
//! on SQLite (`crate::design`, through `crate::backend::postgres`).
//!
//! The live schema comes from the catalogs (`postgres::schema`, in one read-only
//! repeatable-read transaction), snapshots are read with `postgres::model`, differences and SQL
//! come from `postgres::delta`. Only `new --from-diff` and `baseline` write, and only strata's
//! bookkeeping (a ledger row, an audit row, ownership), never the schema or the data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use postgres::{Client, IsolationLevel};

use super::model::{Kind, PgSchema, shown};
use super::schema::{Live, LiveObject};
use super::{Target, delta, ledger, schema};
use crate::config::Project;
use crate::design::{
    Adopted, DiffReport, DumpReport, ModuleDiff, ModuleDump, Skipped, check_module, pending,
    snapshot_file, write_migration,
};
use crate::error::{Error, Refusal};
use crate::ledger::{Applied, Entry};
use crate::schema::{ObjectKind, ObjectRef};
use crate::tree::{self, Migration, Tree};

fn object_kind(kind: Kind) -> ObjectKind {
    match kind {
        Kind::Schema => ObjectKind::Schema,
        Kind::Type => ObjectKind::Type,
        Kind::Sequence => ObjectKind::Sequence,
        Kind::Function => ObjectKind::Function,
        Kind::Table => ObjectKind::Table,
        Kind::View => ObjectKind::View,
        Kind::Index => ObjectKind::Index,
        Kind::Trigger => ObjectKind::Trigger,
    }
}

fn object_ref(o: &LiveObject) -> ObjectRef {
    ObjectRef {
        kind: object_kind(o.kind),
        name: shown(&o.key),
    }
}

/// The project's real database, which must exist.
fn connect(project: &Project) -> Result<(Target, super::Session), Error> {
    let target = Target::parse(&project.db.to_string_lossy(), "db")?;
    let client = target.open(project.busy_timeout())?.ok_or_else(|| {
        Error::Usage(format!(
            "{target}: the database does not exist: run `strata migrate` first, or fix db in \
             strata.toml (--db)"
        ))
    })?;
    Ok((target, client))
}

/// The live schema with its owners and the ledger, read in one consistent view; owners that
/// no ownership row gives are inferred from the applied migrations of `tree` (see [`infer`]).
fn read(target: &Target, client: &mut Client, tree: &Tree) -> Result<(Live, Vec<Applied>), Error> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .map_err(|e| target.error("cannot begin a read-only transaction", e))?;
    let applied =
        ledger::applied(&mut tx).map_err(|e| target.error("cannot read the ledger", e))?;
    let mut live = schema::read(&mut tx).map_err(|e| target.error("cannot read the schema", e))?;
    infer(tree, &applied, &mut live);
    Ok((live, applied))
}

/// For a database migrated before strata recorded ownership on PostgreSQL: the owner of an
/// object no row covers is the first applied migration whose `do.sql` creates an object of its
/// kind and name (a serial column's sequence goes with its table). `baseline` and `new
/// --from-diff` write these owners down.
fn infer(tree: &Tree, applied: &[Applied], live: &mut Live) {
    if applied.is_empty() || live.objects.iter().all(|o| o.owner.is_some()) {
        return;
    }
    let scripts: Vec<(&crate::tree::MigrationId, PathBuf)> = tree
        .migrations
        .iter()
        .filter(|m| applied.iter().any(|a| a.id == m.id))
        .map(|m| (&m.id, m.file("do.sql")))
        .collect();
    infer_from(&scripts, live);
}

/// [`infer`] from the `do.sql` files of the applied migrations, in the order applied.
pub(crate) fn infer_from(scripts: &[(&crate::tree::MigrationId, PathBuf)], live: &mut Live) {
    if live.objects.iter().all(|o| o.owner.is_some()) {
        return;
    }
    let mut created: HashMap<(Kind, String), (String, String)> = HashMap::new();
    for (id, path) in scripts {
        let Ok(sql) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(statements) = super::script::statements(path, &sql) else {
            continue;
        };
        for s in statements {
            if let Some(object) = created_object(&s.text) {
                created
                    .entry(object)
                    .or_insert_with(|| (id.module.clone(), id.stamp.clone()));
            }
        }
    }
    for o in live.objects.iter_mut().filter(|o| o.owner.is_none()) {
        if let Some(owner) = created.get(&(o.kind, base_name(o.kind, &o.key))) {
            o.owner = Some(owner.clone());
            o.inferred = true;
        }
    }
    // A serial column's sequence: its table's owner.
    let tables: HashMap<String, (String, String)> = live
        .objects
        .iter()
        .filter(|o| o.kind == Kind::Table)
        .filter_map(|o| o.owner.clone().map(|w| (o.key.clone(), w)))
        .collect();
    for o in live.objects.iter_mut().filter(|o| o.owner.is_none()) {
        let table = live
            .schema
            .sequences
            .get(&o.key)
            .and_then(|s| s.owned_by.as_deref())
            .and_then(|c| c.rsplit_once('.'))
            .map(|(t, _)| t.to_string());
        if o.kind == Kind::Sequence
            && let Some(owner) = table.and_then(|t| tables.get(&t))
        {
            o.owner = Some(owner.clone());
            o.inferred = true;
        }
    }
}

/// The kind and bare name (unquoted, folded as PostgreSQL folds it) of what a CREATE statement
/// creates; `None` for anything else.
fn created_object(sql: &str) -> Option<(Kind, String)> {
    let mut words = sql.split_whitespace().peekable();
    let mut rest = sql.trim_start();
    let mut next = |rest: &mut &str| -> Option<String> {
        let w = words.next()?;
        *rest = rest.trim_start()[w.len()..].trim_start();
        Some(w.to_ascii_uppercase())
    };
    if next(&mut rest)? != "CREATE" {
        return None;
    }
    let mut word = next(&mut rest)?;
    while matches!(
        word.as_str(),
        "OR" | "REPLACE" | "UNIQUE" | "MATERIALIZED" | "UNLOGGED" | "CONSTRAINT" | "RECURSIVE"
    ) {
        word = next(&mut rest)?;
    }
    let kind = match word.as_str() {
        "TABLE" => Kind::Table,
        "VIEW" => Kind::View,
        "INDEX" => Kind::Index,
        "SEQUENCE" => Kind::Sequence,
        "FUNCTION" | "PROCEDURE" => Kind::Function,
        "TYPE" | "DOMAIN" => Kind::Type,
        "SCHEMA" => Kind::Schema,
        "TRIGGER" => Kind::Trigger,
        _ => return None,
    };
    for skip in ["CONCURRENTLY", "IF NOT EXISTS"] {
        if rest.len() >= skip.len() && rest[..skip.len()].eq_ignore_ascii_case(skip) {
            rest = rest[skip.len()..].trim_start();
        }
    }
    if kind == Kind::Index && rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("ON ") {
        return None;
    }
    let (name, _) = super::model::ident(rest)?;
    Some((kind, bare(name)))
}

/// The bare name of a model key (see `postgres::model`).
fn base_name(kind: Kind, key: &str) -> String {
    let name = match kind {
        Kind::Trigger => key.split(" on ").next().unwrap_or(key),
        Kind::Function => key.split('(').next().unwrap_or(key),
        _ => key,
    };
    bare(name)
}

/// The last part of a possibly qualified name, unquoted, or folded to lower case.
fn bare(name: &str) -> String {
    let mut last = name;
    let mut rest = Some(name);
    while let Some(r) = rest {
        let (first, after) = split_first(r);
        last = first;
        rest = after;
    }
    match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_lowercase(),
    }
}

/// The first part of a dotted name and what follows its dot.
fn split_first(name: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return (&name[..i], Some(&name[i + 1..])),
            _ => {}
        }
    }
    (name, None)
}

/// The modules to look at: the one named, or every module of the tree or with owned objects.
fn modules(tree: &Tree, live: &Live, module: Option<&str>) -> Result<Vec<String>, Error> {
    if let Some(m) = module {
        check_module(m)?;
        if !tree.modules.iter().any(|t| t == m) && !live.modules().iter().any(|o| o == m) {
            return Err(Error::Usage(tree::unknown_module(m, &tree.modules)));
        }
        return Ok(vec![m.to_string()]);
    }
    let mut all = tree.modules.clone();
    for m in live.modules() {
        if !all.contains(&m) {
            all.push(m);
        }
    }
    all.sort();
    Ok(all)
}

/// The objects of `db` no module owns, for `strata status`; empty when there is no database.
pub(crate) fn unowned(project: &Project, target: &Target) -> Result<Vec<ObjectRef>, Error> {
    let Some(mut client) = target.open(project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let tree = Tree::load(&project.migrations_dir())?;
    let (live, _) = read(target, &mut client, &tree)?;
    Ok(live.unowned().into_iter().map(object_ref).collect())
}

/// `strata dump [<module>] [--write]` on PostgreSQL.
pub fn dump(project: &Project, module: Option<&str>, write: bool) -> Result<DumpReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let (target, mut client) = connect(project)?;
    let (live, applied) = read(&target, &mut client, &tree)?;
    let db = target.as_path();
    let mut report = DumpReport {
        db: db.clone(),
        modules: Vec::new(),
        unowned: live.unowned().into_iter().map(object_ref).collect(),
    };
    for m in modules(&tree, &live, module)? {
        let sql = live.module(&m, false).to_sql();
        let mut written = Vec::new();
        if write {
            written = crate::design::store_dump(&tree, &applied, &m, &sql, &target)?;
        }
        report.modules.push(ModuleDump {
            module: m,
            sql,
            written,
        });
    }
    Ok(report)
}

/// The snapshot of `module` (see `crate::design::snapshot_file`), read as a PostgreSQL schema.
fn snapshot(
    tree: &Tree,
    applied: &[Applied],
    module: &str,
    db: &Path,
) -> Result<(Option<PathBuf>, PgSchema), Error> {
    let Some(path) = snapshot_file(tree, applied, module, db)? else {
        return Ok((None, PgSchema::default()));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let schema = PgSchema::parse(&path, &text).map_err(|e| Error::input(&path, e))?;
    Ok((Some(path), schema))
}

/// `strata diff [<module>] [--sql]` on PostgreSQL. Objects no module owns count as additions of
/// the named module, or of the only module when there is one.
pub fn diff(project: &Project, module: Option<&str>, sql: bool) -> Result<DiffReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let (target, mut client) = connect(project)?;
    let (live, applied) = read(&target, &mut client, &tree)?;
    let db = target.as_path();
    let names = modules(&tree, &live, module)?;
    let with_unowned = names.len() == 1;
    let unowned: Vec<&LiveObject> = live.unowned();
    let mut report = DiffReport {
        db: db.clone(),
        modules: Vec::new(),
        skipped: Vec::new(),
        unowned: if with_unowned {
            Vec::new()
        } else {
            unowned.iter().map(|o| object_ref(o)).collect()
        },
    };
    for m in names {
        let (path, before) = match snapshot(&tree, &applied, &m, &db) {
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
        let included: Vec<ObjectRef> = unowned
            .iter()
            .filter(|o| with_unowned && !before.keys().contains(&(o.kind, o.key.clone())))
            .map(|o| object_ref(o))
            .collect();
        report.modules.push(ModuleDiff {
            module: m,
            snapshot: path,
            delta: sql.then(|| delta::delta(&before, &after)),
            diff: delta::diff(&before, &after),
            unowned: included,
        });
    }
    Ok(report)
}

/// Drift on PostgreSQL: every module whose live schema differs from the snapshot of its newest
/// applied migration; a missing database has not drifted.
pub fn drift(project: &Project) -> Result<Vec<Refusal>, Error> {
    let target = Target::parse(&project.db.to_string_lossy(), "db")?;
    let Some(mut client) = target.open(project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let tree = Tree::load(&project.migrations_dir())?;
    let (live, applied) = read(&target, &mut client, &tree)?;
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    let db = target.as_path();
    let mut refusals = Vec::new();
    for m in modules(&tree, &live, None)? {
        let Ok((Some(path), before)) = snapshot(&tree, &applied, &m, &db) else {
            continue;
        };
        let d = delta::diff(&before, &live.module(&m, false));
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

/// `strata new <module> <slug> --from-diff` on PostgreSQL: the changes made to the real
/// database become the module's next migration, recorded as applied there.
pub fn new_from_diff(
    project: &Project,
    module: &str,
    slug: &str,
    allow_destructive: bool,
) -> Result<Adopted, Error> {
    check_module(module)?;
    tree::check_slug(slug).map_err(Error::Usage)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let (target, mut client) = connect(project)?;
    let (live, applied) = read(&target, &mut client, &tree)?;
    let db = target.as_path();
    let waiting = pending(&tree, &applied, module);
    if !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.label()).collect();
        return Err(Error::Usage(format!(
            "{} {} not applied to {target}: the diff would mix them up with your changes. Run \
             `strata migrate` first",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
        )));
    }
    let (_, before) = snapshot(&tree, &applied, module, &db)?;
    let after = live.module(module, true);
    let d = delta::diff(&before, &after);
    if d.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to do: the schema of `{module}` in {target} is the same as its snapshot"
        )));
    }
    let delta = delta::delta(&before, &after);
    if !delta.destructive.is_empty() && !allow_destructive {
        return Err(Error::Refused(vec![Refusal::Destructive {
            changes: delta.destructive.clone(),
        }]));
    }
    let unowned: Vec<&LiveObject> = live.unowned();
    let header = format!(
        "-- Generated by `strata new {module} {slug} --from-diff` from the changes to {}.\n\
         -- Review it before you commit it. strata runs it in one transaction.\n\n",
        target.dbname()
    );
    let m = write_migration(
        project,
        module,
        slug,
        &format!("{header}{}", delta.sql),
        &after.to_sql(),
    )?;
    record_adopted(
        &target,
        &mut client,
        &m,
        (&unowned, &live),
        "from-diff",
        "recorded as applied without running it: the database already had these changes",
    )?;
    Ok(Adopted {
        path: m.dir.clone(),
        db,
        adopted: unowned.iter().map(|o| object_ref(o)).collect(),
        diff: d,
        destructive: delta.destructive,
        warnings: delta.warnings,
        backup: None,
    })
}

/// `strata baseline <module>` on PostgreSQL: every object no module owns becomes the module's
/// zero migration (`do.sql` and `schema.sql` are its dump), recorded as applied, after a
/// verified backup.
pub fn baseline(project: &Project, module: &str) -> Result<Adopted, Error> {
    check_module(module)?;
    let tree = Tree::load(&project.migrations_dir())?;
    if let Some(first) = tree.module(module).next() {
        return Err(Error::Usage(format!(
            "module `{module}` already has migrations ({first}): baseline starts a new module. \
             To take in changes made by hand, use `strata new {module} <slug> --from-diff`"
        )));
    }
    let (target, mut client) = connect(project)?;
    let (live, _) = read(&target, &mut client, &tree)?;
    let unowned: Vec<&LiveObject> = live.unowned();
    if unowned.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to adopt: {target} has no schemas, types, sequences, functions, tables, \
             views, indexes or triggers that no module owns"
        )));
    }
    let adopted = live
        .schema
        .filter(|kind, key| unowned.iter().any(|o| o.kind == kind && o.key == key));
    ledger::ensure(&mut client).map_err(|e| target.error("cannot create the ledger tables", e))?;
    project.ensure_state_dir()?;
    let backup = super::backup::take(
        &mut client,
        &target,
        &project.backups_dir(),
        project.config.backups_keep,
        "before baseline",
    )?;
    let entry = Entry::for_run("baseline", "backup", backup.display().to_string());
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::append(&mut tx, &[entry])?;
            tx.commit()
        })
        .map_err(|e| target.error("cannot audit the backup", e))?;
    let sql = adopted.to_sql();
    let header = format!(
        "-- The schema of {} when `strata baseline {module}` adopted it. It was recorded as\n\
         -- applied there without running; on a new database (the test database, a fresh\n\
         -- copy) it creates the schema.\n\n",
        target.dbname()
    );
    let m = write_migration(project, module, "zero", &format!("{header}{sql}"), &sql)?;
    record_adopted(
        &target,
        &mut client,
        &m,
        (&unowned, &live),
        "baseline",
        "recorded as applied without running it: the database already had this schema",
    )?;
    Ok(Adopted {
        path: m.dir.clone(),
        db: target.as_path(),
        adopted: unowned.iter().map(|o| object_ref(o)).collect(),
        diff: delta::diff(&PgSchema::default(), &adopted),
        destructive: Vec::new(),
        warnings: Vec::new(),
        backup: Some(backup),
    })
}

/// Records `m` as applied without running it, audits that and gives `objects` to its module,
/// in one transaction under strata's lock.
fn record_adopted(
    target: &Target,
    client: &mut Client,
    m: &Migration,
    (objects, live): (&[&LiveObject], &Live),
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    ledger::ensure(client).map_err(|e| target.error("cannot create the ledger tables", e))?;
    let entry = Entry::adopted(m, action, detail);
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::lock(&mut tx)?;
            ledger::record(&mut tx, m, 0)?;
            // Owners inferred from earlier migrations are written down with them.
            for o in live.objects.iter().filter(|o| o.inferred) {
                if let Some((module, stamp)) = &o.owner {
                    let id = crate::tree::MigrationId {
                        module: module.clone(),
                        stamp: stamp.clone(),
                    };
                    schema::adopt(&mut tx, &[o], &id)?;
                }
            }
            schema::adopt(&mut tx, objects, &m.id)?;
            ledger::append(&mut tx, &[entry])?;
            tx.commit()
        })
        .map_err(|e| target.error(format!("cannot record {m} as applied"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statements_name_what_they_create() {
        let cases = [
            (
                "CREATE TABLE IF NOT EXISTS Orders (id int)",
                Some((Kind::Table, "orders")),
            ),
            (
                "create unique index concurrently \"Odd\" on t (x)",
                Some((Kind::Index, "Odd")),
            ),
            ("CREATE INDEX ON t (x)", None),
            (
                "CREATE OR REPLACE FUNCTION app.f(a int) RETURNS int",
                Some((Kind::Function, "f")),
            ),
            (
                "CREATE MATERIALIZED VIEW m AS SELECT 1",
                Some((Kind::View, "m")),
            ),
            (
                "CREATE DOMAIN price AS numeric",
                Some((Kind::Type, "price")),
            ),
            (
                "CREATE CONSTRAINT TRIGGER tr AFTER INSERT ON t",
                Some((Kind::Trigger, "tr")),
            ),
            ("INSERT INTO t VALUES (1)", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                created_object(sql),
                expected.map(|(k, n)| (k, n.to_string())),
                "{sql}"
            );
        }
        assert_eq!(base_name(Kind::Function, "public.f(a integer)"), "f");
        assert_eq!(base_name(Kind::Trigger, "tr on public.t"), "tr");
        assert_eq!(base_name(Kind::Table, "app.\"Odd.Name\""), "Odd.Name");
    }
}
