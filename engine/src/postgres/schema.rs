//! The live schema of a PostgreSQL database, read from the catalogs into the model of
//! `postgres::model`, and which module owns which object (`strata.strata_object`).
//!
//! User objects are the schemas, tables, views, materialized views, sequences, indexes,
//! functions and procedures, enums, domains, composite types and triggers outside PostgreSQL's
//! own schemas and strata's (`strata`), that no extension owns, and that are not part of another
//! object (the index behind a constraint, an identity column's sequence, a table's row type, a
//! constraint's trigger). Partitions (and their indexes) are not read.
//!
//! Ownership: after each step, in the step's transaction, [`record_step`] gives the objects the
//! step created to its module. It finds them without reading the whole catalog: object ids
//! come from one counter, so what the step created has an oid above the largest one strata has
//! recorded and was written by this transaction (`age(xmin) <= 0`); the oid indexes of the
//! catalogs make that a range scan over what is new. An object keeps its owner through
//! `ALTER ... RENAME` (rows are keyed by oid, the name is refreshed when the step renames
//! something) and through a restore (where oids change, the name still finds it).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use postgres::{Client, GenericClient};

use super::ledger::in_book;
use super::model::{Column, Constraint, Kind, Object, PgSchema, Sequence, Table, trigger_key};
use crate::core::event::Action;
use crate::core::step::Prepared;
use crate::core::tree::MigrationId;

/// Why the bookkeeping after a step's actions failed: the action to blame, the file, and what
/// to do.
#[derive(Debug)]
pub struct AfterStep {
    pub action: Action,
    pub file: Option<PathBuf>,
    pub message: String,
}

/// What a step does on PostgreSQL after its actions, in its transaction: gives the objects it
/// created to its module ([`record_step`]), then, when the migration has a `schema.sql`,
/// compares the module's schema with it (read in a savepoint that is rolled back, so the step's
/// session settings stay as they were). Without one, and with `write_snapshot`
/// (`--write-snapshots`), returns the module's dump for the step to write once it committed.
pub fn after_step(
    tx: &mut super::Session,
    step: &Prepared,
    write_snapshot: bool,
) -> Result<Option<String>, AfterStep> {
    let m = &step.migration;
    let book = tx.book().to_string();
    record_step(&mut **tx, &book, &m.id, renames(step)).map_err(|e| AfterStep {
        action: Action::Record,
        file: None,
        message: format!(
            "recording which objects the step created failed: {}",
            super::describe_error(&e)
        ),
    })?;
    if step.snapshot.is_none() && !write_snapshot {
        return Ok(None);
    }
    let file = m.file(crate::core::design::SNAPSHOT);
    let failed = |message: String| AfterStep {
        action: Action::Snapshot,
        file: Some(file.clone()),
        message,
    };
    let read_in_savepoint = |c: &mut Client| {
        c.batch_execute("SAVEPOINT strata_schema_read")?;
        let read = read(c, &book).and_then(|live| Ok((live, super::ledger::applied(c, &book)?)));
        let undone = c.batch_execute(
            "ROLLBACK TO SAVEPOINT strata_schema_read; RELEASE SAVEPOINT strata_schema_read",
        );
        let read = read?;
        undone.map(|()| read)
    };
    let (mut live, applied) = read_in_savepoint(tx).map_err(|e| {
        failed(format!(
            "cannot read the schema: {}",
            super::describe_error(&e)
        ))
    })?;
    // A database migrated before ownership was recorded: owners from the applied do.sql.
    if let Some(root) = m.dir.parent().and_then(|module| module.parent()) {
        let scripts: Vec<(&MigrationId, PathBuf)> = applied
            .iter()
            .map(|a| {
                let folder = format!("{}-{}", a.id.stamp, a.name);
                (&a.id, root.join(&a.id.module).join(folder).join("do.sql"))
            })
            .collect();
        super::design::infer_from(&scripts, &mut live);
    }
    let module = live.module(&m.id.module, false);
    let Some(expected) = &step.snapshot else {
        return Ok(Some(module.to_sql()));
    };
    let expected = PgSchema::parse(&file, expected).map_err(&failed)?;
    let difference = super::delta::diff(&expected, &module);
    if difference.is_empty() {
        return Ok(None);
    }
    Err(failed(crate::core::design::snapshot_differs(
        &m.id.module,
        &difference.to_string(),
    )))
}

/// Whether the step's do.sql may rename or move objects (their owners' names are then
/// refreshed after it).
pub fn renames(step: &Prepared) -> bool {
    let upper = step.do_sql.to_ascii_uppercase();
    upper.contains("RENAME") || upper.contains("SET SCHEMA")
}

/// The schema a tenant's objects are named in when read (see [`read`]): the one the chain's
/// unqualified names land in on a database of its own, such as the test database.
pub const HOME: &str = "public";

/// The bookkeeping table of ownership, created with the ledger's tables.
pub const OBJECT_TABLE: &str = "
CREATE TABLE IF NOT EXISTS strata.strata_object (
    classid  oid    NOT NULL,
    objid    oid    NOT NULL,
    type     text   NOT NULL,
    identity text   NOT NULL,
    module   text   NOT NULL,
    stamp    text   NOT NULL,
    PRIMARY KEY (classid, objid)
);
CREATE INDEX IF NOT EXISTS strata_object_objid ON strata.strata_object (objid);
";

/// Namespaces that hold user objects (`n` is `pg_namespace`).
const USER_NAMESPACE: &str = "n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', \
     'information_schema', 'strata', 'pg_toast']) AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
     AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

/// [`USER_NAMESPACE`] for the bookkeeping schema `book`: for a tenant's (`strata_<schema>`),
/// the tenant's schema alone, its own namespace row left out (the tenant's schema plays the
/// part `public` plays on a database of its own).
fn user_namespace(book: &str) -> (String, String) {
    match super::ledger::tenant_of(book) {
        // The tenants' schemas and their bookkeeping are theirs, not the database's.
        None => (
            format!(
                "{USER_NAMESPACE} AND NOT {}",
                super::ledger::tenants_sql("n.nspname")
            ),
            "x.nspname <> 'public'".to_string(),
        ),
        Some(tenant) => (
            format!("n.nspname OPERATOR(pg_catalog.=) '{tenant}'"),
            format!("x.nspname <> '{tenant}'"),
        ),
    }
}

/// Every user object as (classid, objid), each catalog's rows restricted by `bound` (a
/// condition on its alias `x`, e.g. `x.oid > 20000`); for a tenant's `book`, those of the
/// tenant's schema only.
fn user_objects(bound: &str, book: &str) -> String {
    let (user_namespace, not_home) = user_namespace(book);
    let not_extension = |catalog: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = \
             'pg_catalog.{catalog}'::pg_catalog.regclass AND e.objid = x.oid AND e.deptype = 'e')"
        )
    };
    format!(
        "SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass::oid AS classid, x.oid AS objid
           FROM pg_catalog.pg_namespace x, LATERAL (SELECT x.nspname) n(nspname)
          WHERE {bound} AND {user_namespace} AND {not_home} AND {ns_ext}
         UNION ALL
         SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, x.oid
           FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace
          WHERE {bound} AND {user_namespace} AND x.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I')
            AND NOT x.relispartition AND {class_ext}
            AND NOT (x.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = x.oid
                   AND d.deptype = 'i'))
            AND NOT (x.relkind IN ('i', 'I') AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
                 WHERE i.indexrelid = x.oid AND (t.relispartition OR EXISTS (
                   SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.oid
                      AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')))))
         UNION ALL
         SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::oid, x.oid
           FROM pg_catalog.pg_type x JOIN pg_catalog.pg_namespace n ON n.oid = x.typnamespace
          WHERE {bound} AND {user_namespace} AND {type_ext}
            AND (x.typtype IN ('e', 'd', 'r') OR (x.typtype = 'c' AND EXISTS (
                 SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid = x.typrelid AND r.relkind = 'c')))
         UNION ALL
         SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::oid, x.oid
           FROM pg_catalog.pg_proc x JOIN pg_catalog.pg_namespace n ON n.oid = x.pronamespace
          WHERE {bound} AND {user_namespace} AND x.prokind IN ('f', 'p', 'w') AND {proc_ext}
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend i
                 WHERE i.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objid = x.oid
                   AND i.deptype = 'i')
         UNION ALL
         SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass::oid, x.oid
           FROM pg_catalog.pg_trigger x JOIN pg_catalog.pg_class c ON c.oid = x.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE {bound} AND {user_namespace} AND NOT x.tgisinternal AND NOT c.relispartition",
        ns_ext = not_extension("pg_namespace"),
        class_ext = not_extension("pg_class"),
        type_ext = not_extension("pg_type"),
        proc_ext = not_extension("pg_proc"),
    )
}

/// Whether the ownership table is there.
fn exists(c: &mut impl GenericClient, book: &str) -> Result<bool, postgres::Error> {
    let sql = in_book(
        book,
        "SELECT pg_catalog.to_regclass('strata.strata_object') IS NOT NULL",
    );
    Ok(c.query_one(&*sql, &[])?.get(0))
}

/// The lowest oid an object the current step creates can have: one above the largest oid
/// strata has recorded ([`record_step_sql`]'s bound); read before the step's actions, in the
/// batch that begins the step.
pub const BOUND: &str = "SELECT COALESCE(pg_catalog.max(objid), 16383)::pg_catalog.oid::pg_catalog.text FROM strata.strata_object";

/// Gives the objects the current transaction created to `id`'s module; refreshes the names of
/// owned objects when `renamed` (the step may have renamed or moved some). Call it after the
/// step's actions, before the step is recorded.
pub fn record_step(
    c: &mut impl GenericClient,
    book: &str,
    id: &MigrationId,
    renamed: bool,
) -> Result<(), postgres::Error> {
    let bound: String = c.query_one(&*in_book(book, BOUND), &[])?.get(0);
    let bound = bound.parse().unwrap_or(16383);
    c.batch_execute(&record_step_sql(book, id, renamed, bound))
}

/// [`record_step`] as statements for one simple query, with `bound` (what [`BOUND`] read at
/// the start of the step, or anything lower: the oids between are then looked at too, and
/// only this transaction's are taken) and `id` as literals.
pub fn record_step_sql(book: &str, id: &MigrationId, renamed: bool, bound: u32) -> String {
    let mut sql = record_insert(
        &format!("> {bound}::oid"),
        &super::dollar_quoted(&id.module),
        &super::dollar_quoted(&id.stamp),
    );
    if renamed {
        sql.push_str(RENAMED);
    }
    in_book(book, sql).into_owned()
}

/// [`record_step_sql`]'s `INSERT` with its bound, module and stamp as parameters, for a
/// statement the client prepares once a connection (see `super::Checks`): `$1` the bound,
/// `$2` the largest oid ([`u32::MAX`]), `$3` the module, `$4` the stamp. Planned once, the
/// step's `EXECUTE` of it costs a quarter of planning the literal text each step (0.28 against
/// 0.72 ms, 300 steps in `psql`). Executed under `plan_cache_mode = force_generic_plan`, which
/// the server's own choice between plans would otherwise never take (a custom plan, which
/// knows the bound, always looks cheaper): its range of two parameters is estimated as narrow
/// (0.5%), so the generic plan reads each catalog by its oid index, as the custom one does.
pub fn record_step_prepared_sql(book: &str) -> String {
    in_book(book, record_insert("> $1 AND {a}.oid <= $2", "$3", "$4")).into_owned()
}

/// The `UPDATE` that refreshes the names of owned objects after a step that may have renamed
/// or moved some (see [`record_step_sql`]).
pub const RENAMED: &str = ";\nUPDATE strata.strata_object o SET identity = i.identity
               FROM (SELECT s.classid, s.objid,
                            (pg_catalog.pg_identify_object(s.classid, s.objid, 0)).identity
                       FROM strata.strata_object s) i
              WHERE i.classid = o.classid AND i.objid = o.objid
                AND i.identity IS NOT NULL AND i.identity <> o.identity";

/// The `INSERT` of [`record_step_sql`]: each catalog's oid compared with `range` (`{a}` stands
/// for the catalog's alias), the rows given `module` and `stamp` (SQL expressions).
fn record_insert(range: &str, module: &str, stamp: &str) -> String {
    // The catalog rows above the bound that this transaction wrote, found by the catalogs' oid
    // indexes, and of those the user objects: not a part of another object (an internal
    // dependency on something else: a constraint's index, an identity column's sequence, a row
    // or array type, a foreign key's trigger), nor an extension's, nor a partition's, and
    // created by this transaction (its own dependency rows are new: a table the step only
    // altered has a rewritten catalog row but old dependencies). Cheap to
    // plan as well as to run (0.44 ms planned and run at 10 tables, 0.47 ms at 5,000;
    // the filter of `user_objects` alone takes 5 ms to plan). Each candidate's dependency rows
    // are read once, by the index on the depender, in one aggregate: written as two `EXISTS`,
    // the planner could hash all of `pg_depend` (0.43 ms at 50 tables, against 0.14 ms).
    let new = |catalog: &str, alias: &str, extra: &str| {
        let range = range.replace("{a}", alias);
        format!(
            "SELECT 'pg_catalog.{catalog}'::pg_catalog.regclass::oid AS classid, {alias}.oid AS objid
               FROM pg_catalog.{catalog} {alias}
              WHERE {alias}.oid {range} AND pg_catalog.age({alias}.xmin) <= 0{extra}"
        )
    };
    format!(
        "INSERT INTO strata.strata_object (classid, objid, type, identity, module, stamp)
         SELECT o.classid, o.objid, i.type, i.identity, {module}, {stamp}
           FROM ({} UNION ALL {} UNION ALL {} UNION ALL {} UNION ALL {}) o,
                LATERAL (SELECT pg_catalog.bool_or(d.deptype IN ('e', 'P', 'S')
                                OR (d.deptype = 'i' AND NOT (d.refclassid = o.classid
                                                             AND d.refobjid = o.objid))) AS part,
                                pg_catalog.bool_or(pg_catalog.age(d.xmin) <= 0) AS fresh
                           FROM pg_catalog.pg_depend d
                          WHERE d.classid = o.classid AND d.objid = o.objid
                            AND d.objsubid = 0) d,
                LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, 0) i
          WHERE i.identity IS NOT NULL
            AND i.type IN ('schema', 'table', 'index', 'sequence', 'view',
                           'materialized view', 'function', 'procedure', 'type', 'domain',
                           'trigger')
            AND (i.schema IS NULL OR (i.schema <> ALL (ARRAY['pg_catalog',
                 'information_schema', 'strata', 'pg_toast'])
                 AND i.schema NOT LIKE 'pg\\_temp\\_%' AND i.schema NOT LIKE 'pg\\_toast\\_temp\\_%'))
            AND NOT (i.type = 'schema' AND (i.identity IN ('public', 'strata')
                 OR i.identity LIKE 'pg\\_%' OR i.identity = 'information_schema'))
            AND NOT COALESCE(d.part, false)
            AND (o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass::oid OR d.fresh)
         ON CONFLICT (classid, objid) DO UPDATE SET type = excluded.type,
             identity = excluded.identity, module = excluded.module, stamp = excluded.stamp",
        new("pg_class", "c", " AND NOT c.relispartition"),
        new("pg_type", "t", ""),
        new("pg_proc", "p", ""),
        new("pg_namespace", "n", ""),
        new("pg_trigger", "g", ""),
    )
}

/// Points ownership rows at the objects of the same kind and name where their oid no longer
/// does: after a restore, which recreates every object with a new oid.
pub fn rekey(c: &mut impl GenericClient, book: &str) -> Result<(), postgres::Error> {
    if !exists(c, book)? {
        return Ok(());
    }
    c.execute(
        &*in_book(
            book,
            format!(
            "UPDATE strata.strata_object o SET objid = u.objid
               FROM (SELECT u.classid, u.objid, i.type, i.identity
                       FROM ({}) u, LATERAL pg_catalog.pg_identify_object(u.classid, u.objid, 0) i) u
              WHERE u.classid = o.classid AND u.type = o.type AND u.identity = o.identity
                AND u.objid <> o.objid
                AND NOT EXISTS (SELECT 1 FROM strata.strata_object k
                                 WHERE k.classid = u.classid AND k.objid = u.objid)",
                user_objects("true", book)
            ),
        ),
        &[],
    )?;
    Ok(())
}

/// Gives `objects` (as [`Live::objects`] names them) to `id`'s module.
pub fn adopt(
    c: &mut impl GenericClient,
    book: &str,
    objects: &[&LiveObject],
    id: &MigrationId,
) -> Result<(), postgres::Error> {
    let insert = in_book(
        book,
        "INSERT INTO strata.strata_object (classid, objid, type, identity, module, stamp)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (classid, objid) DO UPDATE SET type = excluded.type,
                 identity = excluded.identity, module = excluded.module, stamp = excluded.stamp",
    );
    for o in objects {
        c.execute(
            &*insert,
            &[
                &o.classid,
                &o.objid,
                &o.type_,
                &o.identity,
                &id.module,
                &id.stamp,
            ],
        )?;
    }
    Ok(())
}

/// One user object of the live database.
#[derive(Debug, Clone)]
pub struct LiveObject {
    pub kind: Kind,
    pub key: String,
    pub classid: u32,
    pub objid: u32,
    /// `pg_identify_object`'s type and identity.
    pub type_: String,
    pub identity: String,
    /// The module that owns it, if any.
    pub owner: Option<(String, String)>,
    /// Whether the owner was inferred (no ownership row covers the object).
    pub inferred: bool,
}

/// The live database: its whole schema and every object with its owner.
pub struct Live {
    pub schema: PgSchema,
    pub objects: Vec<LiveObject>,
}

impl Live {
    /// The module that owns an object of the model.
    pub fn owner_of(&self, kind: Kind, key: &str) -> Option<&str> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.key == key)
            .and_then(|o| o.owner.as_ref().map(|(m, _)| m.as_str()))
    }

    /// The objects of `module`; with `with_unowned`, also those no module owns.
    pub fn module(&self, module: &str, with_unowned: bool) -> PgSchema {
        let owners: HashMap<(Kind, &str), Option<&str>> = self
            .objects
            .iter()
            .map(|o| {
                (
                    (o.kind, o.key.as_str()),
                    o.owner.as_ref().map(|(m, _)| m.as_str()),
                )
            })
            .collect();
        self.schema.filter(
            |kind, key| match owners.get(&(kind, key)).copied().flatten() {
                Some(m) => m == module,
                None => with_unowned,
            },
        )
    }

    /// The objects no module owns.
    pub fn unowned(&self) -> Vec<&LiveObject> {
        self.objects.iter().filter(|o| o.owner.is_none()).collect()
    }

    /// Every module that owns something.
    pub fn modules(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .objects
            .iter()
            .filter_map(|o| o.owner.as_ref().map(|(m, _)| m.clone()))
            .collect();
        m.sort();
        m.dedup();
        m
    }
}

/// Reads the whole live schema and its owners, in one repeatable-read view of the catalogs.
/// Runs `SET LOCAL search_path = ''` so every name comes out schema-qualified: call it in a
/// transaction (or savepoint) that is rolled back or ends right after.
pub fn read(c: &mut impl GenericClient, book: &str) -> Result<Live, postgres::Error> {
    c.batch_execute("SET LOCAL search_path = ''")?;
    let found = UserObjects::read(c, book)?;
    let mut into = Reading::default();
    read_schemas(c, &found, &mut into)?;
    read_types(c, &found, &mut into)?;
    read_relations(c, &found, &mut into)?;
    read_functions(c, &found, &mut into)?;
    read_triggers(c, &found, &mut into)?;
    let owners = Owners::read(c, book)?;
    let mut live = Vec::new();
    for (classid, objid, type_, identity) in found.objects {
        let Some((kind, key)) = into.keys.remove(&(classid, objid)) else {
            continue;
        };
        let owner = owners.of(classid, objid, &type_, &identity);
        live.push(LiveObject {
            kind,
            key,
            classid,
            objid,
            type_,
            identity,
            owner,
            inferred: false,
        });
    }
    let mut schema = into.schema;
    // A tenant's objects are named as the test database names the chain's (`public.people`
    // for `acme.people`), so its drift and dump compare with the snapshots.
    if let Some(tenant) = super::ledger::tenant_of(book) {
        let text = super::model::requalify(&schema.to_sql(), tenant, HOME);
        schema = PgSchema::parse(Path::new(tenant), &text).unwrap_or(schema);
        for o in &mut live {
            o.key = super::model::requalify(&o.key, tenant, HOME);
        }
    }
    live.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    Ok(Live {
        schema,
        objects: live,
    })
}

/// The user's objects (what [`user_objects`] lists), each with its catalog, identity and type
/// as `pg_identify_object` gives them; their oids by catalog.
struct UserObjects {
    /// (classid, objid, type, identity) of each.
    objects: Vec<(u32, u32, String, String)>,
    by_catalog: HashMap<&'static str, Vec<u32>>,
    /// The oid of each catalog read, by name.
    catalogs: HashMap<&'static str, u32>,
}

/// The catalogs whose objects make the model.
const CATALOGS: [&str; 5] = [
    "pg_namespace",
    "pg_class",
    "pg_type",
    "pg_proc",
    "pg_trigger",
];

impl UserObjects {
    fn read(c: &mut impl GenericClient, book: &str) -> Result<UserObjects, postgres::Error> {
        let rows = c.query(
            &format!(
                "SELECT o.classid, o.objid, i.type, i.identity
                   FROM ({}) o, LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, 0) i",
                user_objects("true", book)
            ),
            &[],
        )?;
        let catalogs: HashMap<&'static str, u32> = c
            .query(
                "SELECT relname::text, oid FROM pg_catalog.pg_class WHERE oid IN (
                     'pg_catalog.pg_namespace'::pg_catalog.regclass, 'pg_catalog.pg_class'::pg_catalog.regclass,
                     'pg_catalog.pg_type'::pg_catalog.regclass, 'pg_catalog.pg_proc'::pg_catalog.regclass,
                     'pg_catalog.pg_trigger'::pg_catalog.regclass)",
                &[],
            )?
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let name = CATALOGS.into_iter().find(|c| *c == name)?;
                Some((name, r.get::<_, u32>(1)))
            })
            .collect();
        let mut found = UserObjects {
            objects: Vec::with_capacity(rows.len()),
            by_catalog: HashMap::new(),
            catalogs,
        };
        for r in &rows {
            let (classid, objid): (u32, u32) = (r.get(0), r.get(1));
            if let Some(name) = found.catalogs.iter().find(|(_, o)| **o == classid) {
                found.by_catalog.entry(name.0).or_default().push(objid);
            }
            found.objects.push((classid, objid, r.get(2), r.get(3)));
        }
        Ok(found)
    }

    /// The oids of the user's objects in `catalog`.
    fn ids(&self, catalog: &str) -> Vec<u32> {
        self.by_catalog.get(catalog).cloned().unwrap_or_default()
    }

    /// The oid of `catalog`.
    fn class(&self, catalog: &str) -> u32 {
        self.catalogs.get(catalog).copied().unwrap_or(0)
    }
}

/// What [`read`] builds: the model, and each object's key in it by (classid, objid).
#[derive(Default)]
struct Reading {
    schema: PgSchema,
    keys: HashMap<(u32, u32), (Kind, String)>,
}

/// Who owns each object as strata recorded it: by oid, else (after a restore, where oids
/// change) by type and identity.
struct Owners {
    by_oid: HashMap<(u32, u32), (String, String)>,
    by_name: HashMap<(String, String), (String, String)>,
}

impl Owners {
    fn read(c: &mut impl GenericClient, book: &str) -> Result<Owners, postgres::Error> {
        let mut owners = Owners {
            by_oid: HashMap::new(),
            by_name: HashMap::new(),
        };
        if exists(c, book)? {
            for r in c.query(
                &*in_book(
                    book,
                    "SELECT classid, objid, type, identity, module, stamp FROM strata.strata_object
                  ORDER BY stamp, module",
                ),
                &[],
            )? {
                let owner: (String, String) = (r.get(4), r.get(5));
                owners.by_oid.insert((r.get(0), r.get(1)), owner.clone());
                owners.by_name.insert((r.get(2), r.get(3)), owner);
            }
        }
        Ok(owners)
    }

    fn of(
        &self,
        classid: u32,
        objid: u32,
        type_: &str,
        identity: &str,
    ) -> Option<(String, String)> {
        self.by_oid
            .get(&(classid, objid))
            .or_else(|| self.by_name.get(&(type_.to_string(), identity.to_string())))
            .cloned()
    }
}

fn read_schemas(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT oid, pg_catalog.quote_ident(nspname) FROM pg_catalog.pg_namespace WHERE oid = ANY($1)",
        &[&found.ids("pg_namespace")],
    )? {
        let name: String = r.get(1);
        into.schema.schemas.insert(
            name.clone(),
            Object {
                sql: format!("CREATE SCHEMA {name}"),
                rank: 0,
                table: None,
            },
        );
        into.keys
            .insert((found.class("pg_namespace"), r.get(0)), (Kind::Schema, name));
    }
    Ok(())
}

fn read_functions(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT p.oid, pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc p
          WHERE p.oid = ANY($1)",
        &[&found.ids("pg_proc")],
    )? {
        let sql: String = r.get(1);
        let sql = sql.trim_end().trim_end_matches(';').to_string();
        let header = sql.lines().next().unwrap_or_default();
        let key = header
            .strip_prefix("CREATE OR REPLACE FUNCTION ")
            .or_else(|| header.strip_prefix("CREATE OR REPLACE PROCEDURE "))
            .unwrap_or(header)
            .trim()
            .to_string();
        into.schema.functions.insert(
            key.clone(),
            Object {
                sql,
                rank: 0,
                table: None,
            },
        );
        into.keys
            .insert((found.class("pg_proc"), r.get(0)), (Kind::Function, key));
    }
    Ok(())
}

fn read_triggers(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT g.oid, pg_catalog.quote_ident(g.tgname),
                pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                pg_catalog.pg_get_triggerdef(g.oid, false)
           FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE g.oid = ANY($1)",
        &[&found.ids("pg_trigger")],
    )? {
        let (name, table): (String, String) = (r.get(1), r.get(2));
        let key = trigger_key(&name, &table);
        into.schema.triggers.insert(
            key.clone(),
            Object {
                sql: r.get(3),
                rank: 0,
                table: Some(table),
            },
        );
        into.keys
            .insert((found.class("pg_trigger"), r.get(0)), (Kind::Trigger, key));
    }
    Ok(())
}

fn read_types(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<(), postgres::Error> {
    let (ids, classid) = (found.ids("pg_type"), found.class("pg_type"));
    let rows = c.query(
        "SELECT t.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname),
                t.typtype::text,
                (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', '
                        ORDER BY e.enumsortorder)
                   FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
                pg_catalog.format_type(t.typbasetype, t.typtypmod),
                (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN pg_catalog.quote_ident(co.collname)
                        ELSE pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = t.typcollation AND t.typtype = 'd'
                    AND t.typcollation <> (SELECT b.typcollation FROM pg_catalog.pg_type b
                                            WHERE b.oid = t.typbasetype)),
                t.typdefault, t.typnotnull,
                (SELECT pg_catalog.string_agg(' CONSTRAINT ' || pg_catalog.quote_ident(k.conname) || ' '
                        || pg_catalog.pg_get_constraintdef(k.oid), '' ORDER BY k.conname)
                   FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid),
                (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '
                        || pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
                (SELECT 'SUBTYPE = ' || pg_catalog.format_type(g.rngsubtype, NULL)
                        || CASE WHEN oc.opcdefault THEN '' ELSE ', SUBTYPE_OPCLASS = '
                                || pg_catalog.quote_ident(ocn.nspname) || '.'
                                || pg_catalog.quote_ident(oc.opcname) END
                        || CASE WHEN g.rngcollation = 0 OR g.rngcollation = st.typcollation THEN ''
                                ELSE ', COLLATION = ' || pg_catalog.quote_ident(gcn.nspname) || '.'
                                     || pg_catalog.quote_ident(gc.collname) END
                        || CASE WHEN g.rngcanonical = 0 THEN '' ELSE ', CANONICAL = '
                                || g.rngcanonical::pg_catalog.regproc::text END
                        || CASE WHEN g.rngsubdiff = 0 THEN '' ELSE ', SUBTYPE_DIFF = '
                                || g.rngsubdiff::pg_catalog.regproc::text END
                        || ', MULTIRANGE_TYPE_NAME = ' || pg_catalog.quote_ident(mn.nspname) || '.'
                        || pg_catalog.quote_ident(m.typname)
                   FROM pg_catalog.pg_range g
                   JOIN pg_catalog.pg_type st ON st.oid = g.rngsubtype
                   JOIN pg_catalog.pg_opclass oc ON oc.oid = g.rngsubopc
                   JOIN pg_catalog.pg_namespace ocn ON ocn.oid = oc.opcnamespace
                   JOIN pg_catalog.pg_type m ON m.oid = g.rngmultitypid
                   JOIN pg_catalog.pg_namespace mn ON mn.oid = m.typnamespace
                   LEFT JOIN pg_catalog.pg_collation gc ON gc.oid = g.rngcollation
                   LEFT JOIN pg_catalog.pg_namespace gcn ON gcn.oid = gc.collnamespace
                  WHERE g.rngtypid = t.oid)
           FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
          WHERE t.oid = ANY($1)",
        &[&ids],
    )?;
    for r in rows {
        let name: String = r.get(1);
        let typtype: String = r.get(2);
        let (sql, rank) = match typtype.as_str() {
            "e" => (
                format!(
                    "CREATE TYPE {name} AS ENUM ({})",
                    r.get::<_, Option<String>>(3).unwrap_or_default()
                ),
                0,
            ),
            "d" => {
                let mut s = format!("CREATE DOMAIN {name} AS {}", r.get::<_, String>(4));
                if let Some(coll) = r.get::<_, Option<String>>(5) {
                    s.push_str(&format!(" COLLATE {coll}"));
                }
                if let Some(d) = r.get::<_, Option<String>>(6) {
                    s.push_str(&format!(" DEFAULT {d}"));
                }
                if r.get::<_, bool>(7) {
                    s.push_str(" NOT NULL");
                }
                s.push_str(&r.get::<_, Option<String>>(8).unwrap_or_default());
                (s, 1)
            }
            // Its constructors and multirange type are PostgreSQL's own, made by this statement.
            "r" => (
                format!(
                    "CREATE TYPE {name} AS RANGE ({})",
                    r.get::<_, Option<String>>(10).unwrap_or_default()
                ),
                1,
            ),
            _ => (
                format!(
                    "CREATE TYPE {name} AS ({})",
                    r.get::<_, Option<String>>(9).unwrap_or_default()
                ),
                2,
            ),
        };
        into.schema.types.insert(
            name.clone(),
            Object {
                sql,
                rank,
                table: None,
            },
        );
        into.keys.insert((classid, r.get(0)), (Kind::Type, name));
    }
    Ok(())
}

/// Tables (with their columns and constraints), views, indexes and sequences.
fn read_relations(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<(), postgres::Error> {
    let relations = read_relation_kinds(c, found, into)?;
    read_columns(c, &relations, &mut into.schema)?;
    read_constraints(c, &relations, &mut into.schema)?;
    rank_views(c, &relations, &mut into.schema)
}

/// The tables and views [`read_relation_kinds`] found, by oid, for the queries after it.
#[derive(Default)]
struct Relations {
    tables: Vec<u32>,
    table_names: HashMap<u32, String>,
    views: HashMap<u32, String>,
}

/// Each relation as its kind makes it: a table's shell, a view's or an index's definition, a
/// sequence's options.
fn read_relation_kinds(
    c: &mut impl GenericClient,
    found: &UserObjects,
    into: &mut Reading,
) -> Result<Relations, postgres::Error> {
    let (ids, classid) = (found.ids("pg_class"), found.class("pg_class"));
    let (schema, keys) = (&mut into.schema, &mut into.keys);
    let rels = c.query(
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                c.relkind::text, c.relpersistence::text,
                CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid, true) END,
                CASE WHEN c.relkind IN ('i', 'I') THEN pg_catalog.pg_get_indexdef(c.oid) END,
                CASE WHEN c.relkind IN ('i', 'I') THEN (
                    SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname)
                      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
                      JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                     WHERE i.indexrelid = c.oid) END,
                CASE WHEN c.relkind = 'S' THEN (
                    SELECT 'AS ' || pg_catalog.format_type(s.seqtypid, NULL) || ' START WITH ' || s.seqstart
                        || ' INCREMENT BY ' || s.seqincrement || ' MINVALUE ' || s.seqmin
                        || ' MAXVALUE ' || s.seqmax || ' CACHE ' || s.seqcache
                        || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END
                      FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid) END,
                CASE WHEN c.relkind = 'S' THEN (
                    SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname)
                        || '.' || pg_catalog.quote_ident(a.attname)
                      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                      JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
                       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.refobjsubid > 0 AND d.deptype = 'a') END
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = ANY($1)",
        &[&ids],
    )?;
    let mut relations = Relations::default();
    let Relations {
        tables,
        table_names,
        views,
    } = &mut relations;
    for r in rels {
        let oid: u32 = r.get(0);
        let name: String = r.get(1);
        let relkind: String = r.get(2);
        match relkind.as_str() {
            "r" | "p" => {
                let suffix = r
                    .get::<_, Option<String>>(4)
                    .map(|k| format!(" PARTITION BY {k}"))
                    .unwrap_or_default();
                schema.tables.insert(
                    name.clone(),
                    Table {
                        unlogged: r.get::<_, String>(3) == "u",
                        suffix,
                        ..Table::default()
                    },
                );
                tables.push(oid);
                table_names.insert(oid, name.clone());
                keys.insert((classid, oid), (Kind::Table, name));
            }
            "v" | "m" => {
                let def: String = r.get::<_, Option<String>>(5).unwrap_or_default();
                let def = def.trim_end().trim_end_matches(';');
                let sql = if relkind == "m" {
                    format!("CREATE MATERIALIZED VIEW {name} AS\n{def}\n  WITH NO DATA")
                } else {
                    format!("CREATE VIEW {name} AS\n{def}")
                };
                schema.views.insert(
                    name.clone(),
                    Object {
                        sql,
                        rank: 0,
                        table: None,
                    },
                );
                views.insert(oid, name.clone());
                keys.insert((classid, oid), (Kind::View, name));
            }
            "i" | "I" => {
                let table: String = r.get::<_, Option<String>>(7).unwrap_or_default();
                let key = format!("{}.{}", super::model::schema_of(&name), index_name(&name));
                schema.indexes.insert(
                    key.clone(),
                    Object {
                        sql: r.get::<_, Option<String>>(6).unwrap_or_default(),
                        rank: 0,
                        table: Some(table),
                    },
                );
                keys.insert((classid, oid), (Kind::Index, key));
            }
            "S" => {
                schema.sequences.insert(
                    name.clone(),
                    Sequence {
                        options: r.get::<_, Option<String>>(8).unwrap_or_default(),
                        owned_by: r.get(9),
                    },
                );
                keys.insert((classid, oid), (Kind::Sequence, name));
            }
            _ => {}
        }
    }
    Ok(relations)
}

/// The columns of the tables, in order.
fn read_columns(
    c: &mut impl GenericClient,
    relations: &Relations,
    schema: &mut PgSchema,
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT a.attrelid, pg_catalog.quote_ident(a.attname),
                pg_catalog.format_type(a.atttypid, a.atttypmod),
                (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN pg_catalog.quote_ident(co.collname)
                        ELSE pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                  WHERE co.oid = a.attcollation AND a.attcollation <> t.typcollation),
                a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
                a.attgenerated::text,
                (SELECT CASE WHEN s.seqstart <> 1 OR s.seqincrement <> 1
                        THEN ' (START WITH ' || s.seqstart || ' INCREMENT BY ' || s.seqincrement || ')'
                        ELSE '' END
                   FROM pg_catalog.pg_depend p JOIN pg_catalog.pg_sequence s ON s.seqrelid = p.objid
                  WHERE a.attidentity <> '' AND p.refobjid = a.attrelid AND p.refobjsubid = a.attnum
                    AND p.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND p.deptype = 'i')
           FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attrelid, a.attnum",
        &[&relations.tables],
    )? {
        let table = &relations.table_names[&r.get::<_, u32>(0)];
        let expr: Option<String> = r.get(5);
        let identity: String = r.get(6);
        let generated: String = r.get(7);
        let column = Column {
            name: r.get(1),
            type_name: r.get(2),
            collate: r.get(3),
            not_null: r.get(4),
            default: expr.clone().filter(|_| generated.is_empty()),
            identity: match identity.as_str() {
                "a" => Some("GENERATED ALWAYS AS IDENTITY".to_string()),
                "d" => Some("GENERATED BY DEFAULT AS IDENTITY".to_string()),
                _ => None,
            }
            .map(|i| format!("{i}{}", r.get::<_, Option<String>>(8).unwrap_or_default())),
            generated: expr.filter(|_| generated == "s"),
        };
        if let Some(t) = schema.tables.get_mut(table) {
            t.columns.push(column);
        }
    }
    Ok(())
}

/// The constraints of the tables (NOT NULL is a column's; constraint triggers are triggers).
fn read_constraints(
    c: &mut impl GenericClient,
    relations: &Relations,
    schema: &mut PgSchema,
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT k.conrelid, pg_catalog.quote_ident(k.conname), k.contype::text,
                pg_catalog.pg_get_constraintdef(k.oid)
           FROM pg_catalog.pg_constraint k
          WHERE k.conrelid = ANY($1) AND k.contype IN ('p', 'u', 'c', 'f', 'x')",
        &[&relations.tables],
    )? {
        let table = &relations.table_names[&r.get::<_, u32>(0)];
        let kind: String = r.get(2);
        if let Some(t) = schema.tables.get_mut(table) {
            t.constraints.insert(
                r.get(1),
                Constraint {
                    definition: r.get(3),
                    foreign: kind == "f",
                },
            );
        }
    }
    Ok(())
}

/// Each view ranked after the views it reads, so that they are created in order.
fn rank_views(
    c: &mut impl GenericClient,
    relations: &Relations,
    schema: &mut PgSchema,
) -> Result<(), postgres::Error> {
    let views = &relations.views;
    let view_ids: Vec<u32> = views.keys().copied().collect();
    let mut deps: BTreeMap<String, Vec<String>> =
        views.values().map(|v| (v.clone(), Vec::new())).collect();
    for r in c.query(
        "SELECT DISTINCT w.ev_class, d.refobjid FROM pg_catalog.pg_rewrite w
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
            AND d.objid = w.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          WHERE w.ev_class = ANY($1) AND d.refobjid = ANY($1) AND d.refobjid <> w.ev_class",
        &[&view_ids],
    )? {
        let (v, on): (u32, u32) = (r.get(0), r.get(1));
        deps.get_mut(&views[&v])
            .expect("a view read above")
            .push(views[&on].clone());
    }
    for (name, rank) in ranks(&deps) {
        if let Some(v) = schema.views.get_mut(&name) {
            v.rank = rank;
        }
    }
    Ok(())
}

/// The index name of a qualified index name.
fn index_name(qualified: &str) -> &str {
    let schema = super::model::schema_of(qualified);
    qualified
        .strip_prefix(schema)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(qualified)
}

/// Each node's depth in a dependency graph (0: depends on nothing); cycles count as depth 0.
fn ranks(deps: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    fn depth(
        n: &str,
        deps: &BTreeMap<String, Vec<String>>,
        memo: &mut BTreeMap<String, usize>,
        seen: &mut Vec<String>,
    ) -> usize {
        if let Some(d) = memo.get(n) {
            return *d;
        }
        if seen.iter().any(|s| s == n) {
            return 0;
        }
        seen.push(n.to_string());
        let d = deps
            .get(n)
            .map(|ds| {
                ds.iter()
                    .map(|x| depth(x, deps, memo, seen) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        seen.pop();
        memo.insert(n.to_string(), d);
        d
    }
    let mut memo = BTreeMap::new();
    for n in deps.keys() {
        depth(n, deps, &mut memo, &mut Vec::new());
    }
    memo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_rank_after_what_they_read() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["b", "a"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let r = ranks(&deps);
        assert_eq!((r["a"], r["b"], r["c"], r["d"]), (0, 1, 2, 0));
        assert_eq!(index_name("app.\"x.y\""), "\"x.y\"");
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn the_prepared_ownership_query_records_what_its_text_records() {
        use crate::core::target::Target;
        let url = std::env::var("STRATA_TEST_POSTGRES").expect("STRATA_TEST_POSTGRES");
        let server = Target::parse(&url, "db").unwrap();
        let name = format!("strata_record_{}", std::process::id());
        let mut admin = server.connect(std::time::Duration::from_secs(5)).unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).unwrap();
        }
        let mut session = server
            .with_dbname(&name)
            .connect(std::time::Duration::from_secs(5))
            .unwrap();
        super::super::ledger::ensure(&mut session, "strata").unwrap();
        let record = session.record_name().unwrap().expect("the client names it");
        let id = MigrationId {
            module: "app".into(),
            stamp: "20260101T000000Z".into(),
        };
        // One of each kind strata records, and parts it leaves out (indexes of constraints, an
        // identity's sequence, row types).
        let step = "CREATE SCHEMA s; CREATE TABLE s.t (id bigint GENERATED ALWAYS AS IDENTITY \
                    PRIMARY KEY, v text UNIQUE); CREATE VIEW s.v AS SELECT id FROM s.t; \
                    CREATE FUNCTION s.f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
                    CREATE TYPE s.e AS ENUM ('a'); CREATE INDEX ON s.t (v, id)";
        let mut recorded = |sql: &dyn Fn(u32) -> String| -> Vec<String> {
            let bound: String = session.query_one(BOUND, &[]).unwrap().get(0);
            let sql = sql(bound.parse().unwrap());
            session
                .batch_execute(&format!("BEGIN; {step}; {sql}"))
                .unwrap();
            let rows = session
                .query(
                    "SELECT type || ' ' || identity || ' ' || module || ' ' || stamp \
                     FROM strata.strata_object ORDER BY 1",
                    &[],
                )
                .unwrap();
            session.batch_execute("ROLLBACK").unwrap();
            rows.iter().map(|r| r.get(0)).collect()
        };
        let text = recorded(&|bound| record_step_sql("strata", &id, false, bound));
        let prepared = recorded(&|bound| {
            format!(
                "SET LOCAL plan_cache_mode = force_generic_plan; \
                 EXECUTE {record}('{bound}', '{}', 'app', '20260101T000000Z')",
                u32::MAX
            )
        });
        assert_eq!(text.len(), 6, "{text:?}");
        assert_eq!(prepared, text);
        drop(session);
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    }
}
