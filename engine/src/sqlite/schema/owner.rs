//! Which module owns which schema object: a module owns the objects its migrations created.
//!
//! Recorded in a third bookkeeping table, `strata_object` (type, name, module, stamp), a
//! deliberate extension of DESIGN §4 that only the engine writes: a step's [`Tracker`] looks at
//! the catalog rows the step could have changed just before it commits, and [`record_step`]
//! compares two whole [`Catalog`]s (to infer owners by replaying old scripts); either way,
//! objects that appeared are the step's module's, objects that disappeared lose their row, and
//! a table renamed in place (same root page and columns) keeps its owner, each as a [`Write`]. `baseline` and
//! `new --from-diff` [`adopt`] objects that already exist. This module owns that table's schema,
//! reads and writes; it decides nothing about migrations.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::{ObjectKind, ObjectRef, Schema, is_internal};
use crate::core::tree::MigrationId;

/// The ownership table.
pub use crate::core::ledger::OBJECT_TABLE;

/// `WITHOUT ROWID` and an `OR` CHECK for the same reasons as the ledger's tables (see
/// `ledger`'s schema): one page per row, no temporary b-tree per insert.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS strata_object (
    type   TEXT NOT NULL
           CHECK (type = 'table' OR type = 'index' OR type = 'view' OR type = 'trigger'),
    name   TEXT NOT NULL COLLATE NOCASE,
    module TEXT NOT NULL,
    stamp  TEXT NOT NULL,
    PRIMARY KEY (type, name)
) WITHOUT ROWID";

/// The user objects in `sqlite_master` at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// (kind, name, root page, the columns of a table)
    entries: Vec<(ObjectKind, String, i64, Vec<String>)>,
}

impl Catalog {
    fn has(&self, kind: ObjectKind, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, n, _, _)| *k == kind && n.eq_ignore_ascii_case(name))
    }
}

/// Reads the user objects (not strata's, not SQLite's) and their root pages.
pub fn catalog(conn: &Connection) -> rusqlite::Result<Catalog> {
    let mut stmt = conn.prepare(
        "SELECT type, name, rootpage, sql FROM main.sqlite_master
         WHERE sql IS NOT NULL AND type IN ('table', 'index', 'view', 'trigger')",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            r.get::<_, String>(3)?,
        ))
    })?;
    let shadow: HashSet<String> = conn
        .prepare("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow'")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let mut entries = Vec::new();
    for row in rows {
        let (kind, name, root, sql) = row?;
        if let Some(kind) = ObjectKind::parse(&kind)
            && !is_internal(&name)
            && !shadow.contains(&name)
        {
            let columns = match kind {
                ObjectKind::Table => table_columns(&sql),
                _ => Vec::new(),
            };
            entries.push((kind, name, root, columns));
        }
    }
    Ok(Catalog { entries })
}

/// A table's column names, lowercased; empty if its SQL does not parse.
fn table_columns(sql: &str) -> Vec<String> {
    let Ok(statements) = super::sql::statements(sql) else {
        return Vec::new();
    };
    match statements
        .first()
        .map(|s| super::parse::statement(s, sql, &|_| HashSet::new()))
    {
        Some(Ok(super::parse::Object::Table(t))) => t
            .columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

/// Creates `strata_object` if it is missing.
pub fn ensure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

fn exists(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
        [OBJECT_TABLE],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Called inside a step's transaction, just before it commits: the objects that appeared since
/// `before` belong to the step's module; those that disappeared lose their owner.
pub fn record_step(conn: &Connection, id: &MigrationId, before: &Catalog) -> rusqlite::Result<()> {
    ensure(conn)?;
    let after = catalog(conn)?;
    let mut writes = Vec::new();
    let mut renamed_to: Vec<(ObjectKind, &str)> = Vec::new();
    for (kind, name, root, columns) in &before.entries {
        if after.has(*kind, name) {
            continue;
        }
        // A table renamed in place (same root page, same columns, new name) keeps its owner; a
        // table dropped and another created on its freed page does not.
        let renamed = after.entries.iter().find(|(k, n, r, c)| {
            *kind == ObjectKind::Table
                && *root > 0
                && k == kind
                && r == root
                && c == columns
                && !before.has(*k, n)
        });
        match renamed {
            Some((_, new_name, _, _)) => {
                writes.push(Write::Rename {
                    kind: *kind,
                    from: name.clone(),
                    to: new_name.clone(),
                });
                renamed_to.push((*kind, new_name));
            }
            None => writes.push(Write::Forget {
                kind: *kind,
                name: name.clone(),
            }),
        }
    }
    for (kind, name, _, _) in &after.entries {
        let renamed = renamed_to.contains(&(*kind, name.as_str()));
        if !before.has(*kind, name) && !renamed {
            writes.push(Write::Own {
                kind: *kind,
                name: name.clone(),
                module: id.module.clone(),
                stamp: id.stamp.clone(),
            });
        }
    }
    write(conn, &writes)?;
    prune(conn)
}

/// After `strata undo`: the owners of objects the undo script dropped are forgotten (nothing
/// when the database has no `strata_object`).
pub(crate) fn forget_missing(conn: &Connection) -> rusqlite::Result<()> {
    if exists(conn)? { prune(conn) } else { Ok(()) }
}

/// Rows of objects that no longer exist (dropped outside strata) are forgotten. One pass over
/// each table: SQLite builds a temporary index for the `IN` list, so this is O(n log n), not a
/// scan of the unindexed `sqlite_master` per row.
fn prune(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM strata_object WHERE (type, name) NOT IN (
             SELECT type, name COLLATE NOCASE FROM main.sqlite_master)",
        [],
    )?;
    Ok(())
}

/// A DROP or ALTER TABLE that the authorizer let through on the step's connection: a name whose
/// catalog row may be gone, renamed or rewritten once the statement ran. Creations need no note:
/// SQLite gives every new `sqlite_master` row a rowid above the largest one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    Dropped(ObjectKind, String),
    Altered(String),
}

/// The catalog change an authorizer callback announces, if any (objects of `main` only).
pub fn touch(ctx: &rusqlite::hooks::AuthContext<'_>) -> Option<Touch> {
    use rusqlite::hooks::AuthAction as A;
    let main = ctx.database_name.is_none_or(|d| d == "main");
    let t = match ctx.action {
        A::DropTable { table_name } | A::DropVtable { table_name, .. } if main => {
            Touch::Dropped(ObjectKind::Table, table_name.into())
        }
        A::DropIndex { index_name, .. } if main => {
            Touch::Dropped(ObjectKind::Index, index_name.into())
        }
        A::DropView { view_name } if main => Touch::Dropped(ObjectKind::View, view_name.into()),
        A::DropTrigger { trigger_name, .. } if main => {
            Touch::Dropped(ObjectKind::Trigger, trigger_name.into())
        }
        A::AlterTable {
            database_name: "main",
            table_name,
        } => Touch::Altered(table_name.into()),
        _ => return None,
    };
    Some(t)
}

/// One user object as the tracker keeps it.
#[derive(Debug, Clone, PartialEq)]
struct Known {
    kind: ObjectKind,
    name: String,
    rowid: i64,
    root: i64,
    /// The table (or view) an index or trigger belongs to, lowercased.
    table: String,
    sql: String,
}

type Key = (ObjectKind, String);

fn key(kind: ObjectKind, name: &str) -> Key {
    (kind, name.to_ascii_lowercase())
}

/// Ownership for a run of steps on one connection, at a cost per step that does not grow with
/// the size of the schema: the catalog is read once (and again only when another connection
/// changed the schema, seen by `PRAGMA schema_version`), and each step looks only at the rows
/// it could have changed: rows above the largest rowid the step started with (everything it
/// created) and the rows of the objects the authorizer saw it drop or alter ([`Touch`]), with
/// their indexes and triggers. Only a table that vanished is parsed, to tell a rename from a
/// drop.
#[derive(Debug, Default)]
pub struct Tracker {
    known: std::collections::HashMap<Key, Known>,
    /// Lowercased table or view name -> the indexes and triggers on it.
    dependents: std::collections::HashMap<String, Vec<Key>>,
    /// `PRAGMA schema_version` when `known` was last right; `None` before the first read.
    version: Option<i64>,
    max_rowid: i64,
    /// Rows of `sqlite_master` read so far: the work the tracker does, for tests.
    pub rows_read: u64,
}

/// What one step changed, to apply to the tracker once the step is committed.
#[derive(Debug, Default)]
pub struct Change {
    gone: Vec<Key>,
    came: Vec<Known>,
    version: i64,
    /// The rows of `strata_object` to change, in order: [`write`] them inside the step's
    /// transaction (or, in one transaction for a phase, before anything reads the table).
    pub writes: Vec<Write>,
}

/// One change to `strata_object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A table renamed in place keeps its owner under its new name.
    Rename {
        kind: ObjectKind,
        from: String,
        to: String,
    },
    /// An object that is gone loses its owner.
    Forget { kind: ObjectKind, name: String },
    /// A new object belongs to the step that created it.
    Own {
        kind: ObjectKind,
        name: String,
        module: String,
        stamp: String,
    },
}

/// Writes `writes` to `strata_object`, in order.
pub fn write(conn: &Connection, writes: &[Write]) -> rusqlite::Result<()> {
    for w in writes {
        match w {
            Write::Rename { kind, from, to } => conn
                .prepare_cached("UPDATE strata_object SET name = ?3 WHERE type = ?1 AND name = ?2")?
                .execute(params![kind.as_str(), from, to])?,
            Write::Forget { kind, name } => conn
                .prepare_cached("DELETE FROM strata_object WHERE type = ?1 AND name = ?2")?
                .execute(params![kind.as_str(), name])?,
            Write::Own {
                kind,
                name,
                module,
                stamp,
            } => conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO strata_object (type, name, module, stamp)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![kind.as_str(), name, module, stamp])?,
        };
    }
    Ok(())
}

const CATALOG_COLUMNS: &str =
    "SELECT rowid, type, name, tbl_name, rootpage, sql FROM main.sqlite_master";

impl Tracker {
    /// Called inside the step's transaction before it changes anything: re-reads the catalog
    /// if this is the first step or another connection changed the schema since the last one.
    /// `pending` are writes of earlier steps not written yet: written first when it re-reads.
    pub fn begin(&mut self, conn: &Connection, pending: &mut Vec<Write>) -> rusqlite::Result<()> {
        if self.version == Some(schema_version(conn)?) {
            return Ok(());
        }
        // The schema may have changed outside strata: forget the owners of objects now gone.
        ensure(conn)?;
        write(conn, pending)?;
        pending.clear();
        prune(conn)?;
        let version = schema_version(conn)?;
        self.known.clear();
        self.dependents.clear();
        self.max_rowid = 0;
        let rows = read_rows(conn, &format!("{CATALOG_COLUMNS} ORDER BY rowid"), [])?;
        self.rows_read += rows.len() as u64;
        let rows = without_shadow_tables(conn, rows, true)?;
        for k in rows {
            self.max_rowid = self.max_rowid.max(k.rowid);
            self.add(k);
        }
        self.max_rowid = self.max_rowid.max(max_rowid(conn)?);
        self.version = Some(version);
        Ok(())
    }

    fn add(&mut self, k: Known) {
        let key = key(k.kind, &k.name);
        if matches!(k.kind, ObjectKind::Index | ObjectKind::Trigger) {
            self.dependents
                .entry(k.table.clone())
                .or_default()
                .push(key.clone());
        }
        self.known.insert(key, k);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(k) = self.known.remove(key)
            && matches!(k.kind, ObjectKind::Index | ObjectKind::Trigger)
            && let Some(deps) = self.dependents.get_mut(&k.table)
        {
            deps.retain(|d| d != key);
            if deps.is_empty() {
                self.dependents.remove(&k.table);
            }
        }
    }

    /// Called inside the step's transaction just before it commits, with what the authorizer
    /// saw: objects that appeared belong to `id`'s module, objects that vanished lose their
    /// row, a table renamed in place (same root page and columns) keeps its owner. Returns the
    /// change: its [`Change::writes`] for `strata_object`, and the rest to [`Tracker::commit`]
    /// once the transaction has committed.
    pub fn record(
        &mut self,
        conn: &Connection,
        id: &MigrationId,
        touched: &[Touch],
    ) -> rusqlite::Result<Change> {
        let version = schema_version(conn)?;
        if self.version == Some(version) {
            return Ok(Change {
                version,
                ..Change::default()
            });
        }
        // Before: the touched objects and what hangs on them.
        let mut before: Vec<Key> = Vec::new();
        let push = |k: Key, before: &mut Vec<Key>| {
            if self.known.contains_key(&k) && !before.contains(&k) {
                before.push(k);
            }
        };
        for t in touched {
            let (k, table) = match t {
                Touch::Dropped(kind, name) => (key(*kind, name), name.to_ascii_lowercase()),
                Touch::Altered(name) => (key(ObjectKind::Table, name), name.to_ascii_lowercase()),
            };
            push(k, &mut before);
            for d in self.dependents.get(&table).into_iter().flatten() {
                push(d.clone(), &mut before);
            }
        }
        // After: the rows those objects had, and every row above the old largest rowid.
        let mut rows = read_rows(
            conn,
            &format!("{CATALOG_COLUMNS} WHERE rowid > ?1 ORDER BY rowid"),
            [self.max_rowid],
        )?;
        for k in &before {
            let rowid = self.known[k].rowid;
            rows.extend(read_rows(
                conn,
                &format!("{CATALOG_COLUMNS} WHERE rowid = ?1"),
                [rowid],
            )?);
        }
        self.rows_read += rows.len() as u64;
        let vtable = rows
            .iter()
            .any(|k| k.sql.to_ascii_uppercase().contains("VIRTUAL"));
        let after = without_shadow_tables(conn, rows, vtable)?;
        let after_keys: HashSet<Key> = after.iter().map(|k| key(k.kind, &k.name)).collect();

        let mut change = Change {
            version,
            ..Change::default()
        };
        let mut renamed_to: HashSet<Key> = HashSet::new();
        for k in &before {
            if after_keys.contains(k) {
                continue;
            }
            let old = &self.known[k];
            let renamed = (old.kind == ObjectKind::Table && old.root > 0)
                .then(|| {
                    let columns = table_columns(&old.sql);
                    after.iter().find(|a| {
                        a.kind == ObjectKind::Table
                            && a.root == old.root
                            && !self.known.contains_key(&key(a.kind, &a.name))
                            && !before.contains(&key(a.kind, &a.name))
                            && table_columns(&a.sql) == columns
                    })
                })
                .flatten();
            match renamed {
                Some(new) => {
                    change.writes.push(Write::Rename {
                        kind: old.kind,
                        from: old.name.clone(),
                        to: new.name.clone(),
                    });
                    renamed_to.insert(key(new.kind, &new.name));
                }
                None => change.writes.push(Write::Forget {
                    kind: old.kind,
                    name: old.name.clone(),
                }),
            }
            change.gone.push(k.clone());
        }
        let mut seen = HashSet::new();
        for a in after {
            let k = key(a.kind, &a.name);
            if !seen.insert(k.clone()) {
                continue;
            }
            let existed = before.contains(&k) || self.known.contains_key(&k);
            if !existed && !renamed_to.contains(&k) {
                change.writes.push(Write::Own {
                    kind: a.kind,
                    name: a.name.clone(),
                    module: id.module.clone(),
                    stamp: id.stamp.clone(),
                });
            }
            if before.contains(&k) && !change.gone.contains(&k) {
                // Still there (perhaps rewritten, or moved under a renamed table): refresh it.
                change.gone.push(k);
            }
            change.came.push(a);
        }
        Ok(change)
    }

    /// Applies a committed step's change.
    pub fn commit(&mut self, change: Change) {
        for k in &change.gone {
            self.remove(k);
        }
        for k in change.came {
            self.max_rowid = self.max_rowid.max(k.rowid);
            self.remove(&key(k.kind, &k.name));
            self.add(k);
        }
        self.version = Some(change.version);
    }

    /// Forgets everything: the next step reads the catalog again (after a rollback).
    pub fn invalidate(&mut self) {
        self.version = None;
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA main.schema_version")?
        .query_row([], |r| r.get(0))
}

fn max_rowid(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(rowid), 0) FROM main.sqlite_master")?
        .query_row([], |r| r.get(0))
}

/// Catalog rows of user objects (not strata's, not SQLite's, not without SQL).
fn read_rows<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Vec<Known>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rowid, kind, name, table, root, sql) = row?;
        if let (Some(kind), Some(sql)) = (ObjectKind::parse(&kind), sql)
            && !is_internal(&name)
        {
            out.push(Known {
                kind,
                name,
                rowid,
                root,
                table: table.to_ascii_lowercase(),
                sql,
            });
        }
    }
    Ok(out)
}

/// Drops the shadow tables of virtual tables from `rows` (asking SQLite only when `check`).
fn without_shadow_tables(
    conn: &Connection,
    rows: Vec<Known>,
    check: bool,
) -> rusqlite::Result<Vec<Known>> {
    if !check {
        return Ok(rows);
    }
    let shadow: HashSet<String> = conn
        .prepare_cached(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow'",
        )?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|k| !shadow.contains(&k.name))
        .collect())
}

fn owned_names(conn: &Connection) -> rusqlite::Result<HashSet<(ObjectKind, String)>> {
    Ok(owners(conn)?
        .into_iter()
        .map(|o| (o.object.kind, o.object.name.to_ascii_lowercase()))
        .collect())
}

/// Records `objects` as owned by `id`'s module (for objects that existed before strata).
pub fn adopt(conn: &Connection, objects: &[ObjectRef], id: &MigrationId) -> rusqlite::Result<()> {
    ensure(conn)?;
    for o in objects {
        conn.execute(
            "INSERT OR REPLACE INTO strata_object (type, name, module, stamp) VALUES (?1, ?2, ?3, ?4)",
            params![o.kind.as_str(), o.name, id.module, id.stamp],
        )?;
    }
    prune(conn)
}

/// An object and the module (and migration) that owns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Owner {
    #[serde(flatten)]
    pub object: ObjectRef,
    pub module: String,
    pub stamp: String,
}

/// Every ownership row of an object that exists; empty when the table does not exist yet.
pub fn owners(conn: &Connection) -> rusqlite::Result<Vec<Owner>> {
    if !exists(conn)? {
        return Ok(Vec::new());
    }
    owner_rows(conn)
}

/// [`owners`] when `strata_object` is known to be there.
pub(crate) fn owner_rows(conn: &Connection) -> rusqlite::Result<Vec<Owner>> {
    let mut stmt = conn.prepare(
        "SELECT o.type, m.name, o.module, o.stamp FROM strata_object o
         JOIN main.sqlite_master m ON m.type = o.type AND o.name = m.name
         ORDER BY o.module, o.type, m.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, name, module, stamp) = row?;
        if let Some(kind) = ObjectKind::parse(&kind) {
            out.push(Owner {
                object: ObjectRef { kind, name },
                module,
                stamp,
            });
        }
    }
    Ok(out)
}

/// Who created what, found by replaying `do.sql` scripts (module, stamp, SQL; in the order they
/// were applied) on an empty in-memory database, for databases whose migrations were applied
/// before strata recorded ownership. `None` if a script does not run on its own (it needed
/// data, or a transform changed the schema): then nothing is inferred.
pub fn infer(scripts: &[(MigrationId, String)]) -> Option<Vec<Owner>> {
    let conn = Connection::open_in_memory().ok()?;
    conn.pragma_update(None, "foreign_keys", false).ok()?;
    for (id, sql) in scripts {
        let before = catalog(&conn).ok()?;
        conn.execute_batch(sql).ok()?;
        record_step(&conn, id, &before).ok()?;
    }
    owners(&conn).ok()
}

/// The objects `module` owns, as (kind, lowercase name).
pub fn owned_by(
    conn: &Connection,
    module: &str,
) -> rusqlite::Result<HashSet<(ObjectKind, String)>> {
    Ok(owners(conn)?
        .into_iter()
        .filter(|o| o.module == module)
        .map(|o| (o.object.kind, o.object.name.to_ascii_lowercase()))
        .collect())
}

/// The user objects of the database that no module owns, read without parsing any SQL.
pub fn unowned_objects(conn: &Connection) -> rusqlite::Result<Vec<ObjectRef>> {
    let owned = owned_names(conn)?;
    let mut out: Vec<ObjectRef> = catalog(conn)?
        .entries
        .into_iter()
        .filter(|(k, n, _, _)| !owned.contains(&(*k, n.to_ascii_lowercase())))
        .map(|(kind, name, _, _)| ObjectRef { kind, name })
        .collect();
    out.sort();
    Ok(out)
}

/// The objects of `schema` that no module owns.
pub fn unowned(conn: &Connection, schema: &Schema) -> rusqlite::Result<Vec<ObjectRef>> {
    let owned = owned_names(conn)?;
    Ok(schema
        .objects()
        .into_iter()
        .filter(|o| !owned.contains(&(o.kind, o.name.to_ascii_lowercase())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(module: &str) -> MigrationId {
        MigrationId {
            module: module.into(),
            stamp: "20240101T000000Z".into(),
        }
    }

    fn step(conn: &Connection, module: &str, sql: &str) {
        let before = catalog(conn).unwrap();
        conn.execute_batch(sql).unwrap();
        record_step(conn, &id(module), &before).unwrap();
    }

    fn owned(conn: &Connection, module: &str) -> Vec<String> {
        let mut v: Vec<String> = owned_by(conn, module)
            .unwrap()
            .into_iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn steps_own_what_they_create_and_keep_it_through_rebuilds_and_renames() {
        let conn = Connection::open_in_memory().unwrap();
        step(
            &conn,
            "a",
            "CREATE TABLE t(x); CREATE INDEX ti ON t(x); CREATE VIEW v AS SELECT x FROM t;",
        );
        step(
            &conn,
            "b",
            "CREATE TABLE u(y); CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
        );
        assert_eq!(owned(&conn, "a"), ["index ti", "table t", "view v"]);
        assert_eq!(owned(&conn, "b"), ["table u", "trigger tr"]);
        // b rebuilds a's table: a keeps it (and the recreated index), b keeps its trigger.
        step(
            &conn,
            "b",
            "DROP VIEW v; CREATE TABLE n(x, z); INSERT INTO n(x) SELECT x FROM t; DROP TABLE t; \
             ALTER TABLE n RENAME TO t; CREATE INDEX ti ON t(x); CREATE VIEW v AS SELECT x FROM t; \
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
        );
        assert_eq!(owned(&conn, "a"), ["index ti", "table t", "view v"]);
        assert_eq!(owned(&conn, "b"), ["table u", "trigger tr"]);
        // A rename keeps the owner; a drop forgets it.
        step(&conn, "b", "ALTER TABLE u RENAME TO u2; DROP TRIGGER tr;");
        assert_eq!(owned(&conn, "b"), ["table u2"]);
        let schema = Schema::read(&conn).unwrap();
        assert!(unowned(&conn, &schema).unwrap().is_empty());
        conn.execute_batch("CREATE TABLE by_hand(q)").unwrap();
        let schema = Schema::read(&conn).unwrap();
        assert_eq!(
            unowned(&conn, &schema).unwrap(),
            [ObjectRef {
                kind: ObjectKind::Table,
                name: "by_hand".into()
            }]
        );
        // Only the four kinds of object have owners.
        assert!(
            conn.execute(
                "INSERT INTO strata_object VALUES ('column', 'x', 'a', '20240101T000000Z')",
                []
            )
            .is_err()
        );
    }

    #[test]
    fn a_virtual_table_is_one_object_without_its_shadow_tables() {
        let conn = Connection::open_in_memory().unwrap();
        step(
            &conn,
            "a",
            "CREATE VIRTUAL TABLE docs USING fts5(title, body);",
        );
        assert_eq!(owned(&conn, "a"), ["table docs"]);
        let schema = Schema::read(&conn).unwrap();
        assert_eq!(
            schema.to_sql(),
            "CREATE VIRTUAL TABLE docs USING fts5(title, body);\n"
        );
        assert!(unowned_objects(&conn).unwrap().is_empty());
        let fresh = Connection::open_in_memory().unwrap();
        fresh.execute_batch(&schema.to_sql()).unwrap();
        assert_eq!(Schema::read(&fresh).unwrap(), schema);
    }

    #[test]
    fn a_snapshot_compares_with_the_live_module() {
        let conn = Connection::open_in_memory().unwrap();
        step(
            &conn,
            "a",
            "CREATE TABLE t(x INT, y TEXT); CREATE INDEX tx ON t(x);",
        );
        let snapshot = super::super::dump_module(&conn, "a").unwrap();
        assert!(
            super::super::compare_module(&conn, "a", &snapshot)
                .unwrap()
                .is_empty()
        );
        conn.execute_batch("ALTER TABLE t ADD COLUMN z REAL; DROP INDEX tx;")
            .unwrap();
        let drift = super::super::compare_module(&conn, "a", &snapshot).unwrap();
        assert_eq!(
            drift.to_string(),
            "~ table t\n    + column z REAL\n- index tx\n"
        );
    }

    #[test]
    fn reading_a_fresh_database_creates_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(owners(&conn).unwrap().is_empty());
        assert!(!exists(&conn).unwrap());
    }
}
