//! The design-time commands' PostgreSQL side: a PostgreSQL database as `crate::core::design::Live`,
//! over which `strata dump`, `diff` (`--sql`), `new --from-diff`, `baseline` and the drift
//! check are written once (`crate::commands::design`, reached through `crate::postgres::backend`); plus
//! owners inferred from the applied migrations and the unowned objects `strata status` shows.
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
use super::{delta, ledger, schema};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::ledger::{Applied, Entry};
use crate::core::schema::Delta;
use crate::core::schema::Diff;
use crate::core::schema::{ObjectKind, ObjectRef};
use crate::core::target::Target;
use crate::core::tree::{Migration, Tree};

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

/// The project's real database `target`, which must exist.
fn connect(project: &Project, target: &Target) -> Result<(Target, super::Session), Error> {
    let target = target.clone();
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
    let applied = ledger::applied(&mut tx, &target.book())
        .map_err(|e| target.error("cannot read the ledger", e))?;
    let mut live = schema::read(&mut tx, &target.book())
        .map_err(|e| target.error("cannot read the schema", e))?;
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
    let scripts: Vec<(&crate::core::tree::MigrationId, PathBuf)> = tree
        .migrations
        .iter()
        .filter(|m| applied.iter().any(|a| a.id == m.id))
        .map(|m| (&m.id, m.file("do.sql")))
        .collect();
    infer_from(&scripts, live);
}

/// [`infer`] from the `do.sql` files of the applied migrations, in the order applied.
pub(crate) fn infer_from(scripts: &[(&crate::core::tree::MigrationId, PathBuf)], live: &mut Live) {
    if live.objects.iter().all(|o| o.owner.is_some()) {
        return;
    }
    let mut created: HashMap<(Kind, String), (String, String)> = HashMap::new();
    for (id, path) in scripts {
        let Ok(Some(sql)) =
            crate::core::input::read_project_text(path, crate::core::input::FILE_BYTES)
        else {
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
pub(crate) fn created_object(sql: &str) -> Option<(Kind, String)> {
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
        if starts_with_ascii_ci(rest, skip) {
            // The matched bytes are ASCII, so the cut is on a character boundary.
            rest = rest[skip.len()..].trim_start();
        }
    }
    if kind == Kind::Index && starts_with_ascii_ci(rest, "ON ") {
        return None;
    }
    let (name, _) = super::model::ident(rest)?;
    Some((kind, bare(name)))
}

/// Whether `text` starts with the ASCII `prefix`, ignoring ASCII case. Compared as bytes: a
/// `str` slice at `prefix.len()` would panic inside a multi-byte character.
fn starts_with_ascii_ci(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
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
pub(crate) fn bare(name: &str) -> String {
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

/// The objects of `db` no module owns, for `strata status`; empty when there is no database.
pub(crate) fn unowned(project: &Project, target: &Target) -> Result<Vec<ObjectRef>, Error> {
    let Some(mut client) = target.open(project.busy_timeout())? else {
        return Ok(Vec::new());
    };
    let tree = Tree::load(&project.migrations_dir())?;
    let (live, _) = read(target, &mut client, &tree)?;
    Ok(live.unowned().into_iter().map(object_ref).collect())
}

/// A PostgreSQL database read for a design-time command: its connection, its live schema with
/// the owners, and its ledger, read in one consistent view.
pub(crate) struct PgLive<'p> {
    project: &'p Project,
    target: Target,
    client: super::Session,
    live: Live,
    applied: Vec<Applied>,
}

impl<'p> PgLive<'p> {
    /// Reads the project's real database `target`, which must exist.
    pub(crate) fn read(project: &'p Project, target: &Target, tree: &Tree) -> Result<Self, Error> {
        let (target, client) = connect(project, target)?;
        Self::with(project, target, client, tree)
    }

    /// For the drift check, with the tree: `None` when the real database does not exist.
    pub(crate) fn for_drift(
        project: &'p Project,
        target: &Target,
        tree: &Tree,
    ) -> Result<Option<Self>, Error> {
        let target = target.clone();
        let Some(client) = target.open(project.busy_timeout())? else {
            return Ok(None);
        };
        Self::with(project, target, client, tree).map(Some)
    }

    fn with(
        project: &'p Project,
        target: Target,
        mut client: super::Session,
        tree: &Tree,
    ) -> Result<Self, Error> {
        let (live, applied) = read(&target, &mut client, tree)?;
        Ok(PgLive {
            project,
            target,
            client,
            live,
            applied,
        })
    }
}

impl crate::core::design::Live for PgLive<'_> {
    type Schema = PgSchema;

    const KINDS: &'static str =
        "schemas, types, sequences, functions, tables, views, indexes or triggers";

    const FROM_DIFF_NOTE: &'static str =
        "-- Review it before you commit it. strata runs it in one transaction.\n\n";

    fn db(&self) -> PathBuf {
        self.target.as_path()
    }

    fn name(&self) -> String {
        self.target.dbname().to_string()
    }

    fn applied(&self) -> &[Applied] {
        &self.applied
    }

    fn owners(&self) -> Vec<String> {
        self.live.modules()
    }

    fn unowned(&self) -> Vec<ObjectRef> {
        self.live.unowned().into_iter().map(object_ref).collect()
    }

    fn unowned_beyond(&self, before: &PgSchema) -> Vec<ObjectRef> {
        let keys = before.keys();
        self.live
            .unowned()
            .into_iter()
            .filter(|o| !keys.contains(&(o.kind, o.key.clone())))
            .map(object_ref)
            .collect()
    }

    fn module(&self, module: &str, with_unowned: bool) -> PgSchema {
        self.live.module(module, with_unowned)
    }

    fn unowned_schema(&self) -> PgSchema {
        let unowned = self.live.unowned();
        self.live
            .schema
            .filter(|kind, key| unowned.iter().any(|o| o.kind == kind && o.key == key))
    }

    fn parse(path: &Path, text: &str) -> Result<PgSchema, Error> {
        PgSchema::parse(path, text).map_err(|e| Error::input(path, e))
    }

    fn to_sql(schema: &PgSchema) -> String {
        schema.to_sql()
    }

    fn diff(before: &PgSchema, after: &PgSchema) -> Diff {
        delta::diff(before, after)
    }

    fn delta(&self, before: &PgSchema, after: &PgSchema) -> Delta {
        delta::delta(before, after)
    }

    fn back_up(&mut self, reason: &str, phase: &str) -> Result<PathBuf, Error> {
        let (project, target) = (self.project, &self.target);
        ledger::ensure(&mut self.client, &target.book())
            .map_err(|e| target.error("cannot create the ledger tables", e))?;
        project.ensure_state_dir()?;
        let backup = super::backup::take(
            &mut self.client,
            target,
            &project.backups_dir(),
            project.config.backups_keep,
            reason,
        )?;
        let entry = Entry::for_run(phase, "backup", backup.display().to_string());
        self.client
            .transaction()
            .and_then(|mut tx| {
                ledger::append(&mut tx, &target.book(), &[entry])?;
                tx.commit()
            })
            .map_err(|e| target.error("cannot audit the backup", e))?;
        Ok(backup)
    }

    fn record_adopted(&mut self, m: &Migration, action: &str, detail: &str) -> Result<(), Error> {
        let unowned: Vec<&LiveObject> = self.live.unowned();
        record_adopted(
            &self.target,
            &mut self.client,
            m,
            (&unowned, &self.live, &self.applied),
            action,
            detail,
        )
    }
}

/// Records `m` as applied without running it, audits that and gives `objects` to its module,
/// in one transaction under strata's lock; refused when the ledger is no longer `applied`, what
/// was read with the schema (a migrate, restore or undo ran in between).
fn record_adopted(
    target: &Target,
    client: &mut Client,
    m: &Migration,
    (objects, live, applied): (&[&LiveObject], &Live, &[Applied]),
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    ledger::ensure(client, &target.book())
        .map_err(|e| target.error("cannot create the ledger tables", e))?;
    let entry = Entry::adopted(m, action, detail);
    let read: Vec<_> = applied.iter().map(|a| a.id.clone()).collect();
    let mut changed = None;
    client
        .transaction()
        .and_then(|mut tx| {
            ledger::lock_with_run(&mut tx, &target.book())?;
            let now: Vec<_> = ledger::applied(&mut tx, &target.book())?
                .into_iter()
                .map(|a| a.id)
                .collect();
            if let Err(e) =
                crate::core::phase::unchanged_since_planned(&target.as_path(), &read, &[], &now)
            {
                changed = Some(e);
                return Ok(());
            }
            ledger::record(&mut tx, &target.book(), m, 0)?;
            // Owners inferred from earlier migrations are written down with them.
            for o in live.objects.iter().filter(|o| o.inferred) {
                if let Some((module, stamp)) = &o.owner {
                    let id = crate::core::tree::MigrationId {
                        module: module.clone(),
                        stamp: stamp.clone(),
                    };
                    schema::adopt(&mut tx, &target.book(), &[o], &id)?;
                }
            }
            schema::adopt(&mut tx, &target.book(), objects, &m.id)?;
            ledger::append(&mut tx, &target.book(), &[entry])?;
            tx.commit()
        })
        .map_err(|e| target.error(format!("cannot record {m} as applied"), e))?;
    changed.map_or(Ok(()), Err)
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
