//! The bookkeeping tables on PostgreSQL, in the `strata` schema: `strata.strata_migration` and
//! the append-only `strata.strata_migration_audit` (a trigger refuses UPDATE, DELETE and
//! TRUNCATE). Same columns and meaning as on SQLite (`crate::sqlite::ledger`), so `status`, `audit` and
//! the gRPC service read them into the same types.
//!
//! Every write of a run happens under the transaction-scoped advisory lock [`LOCK_KEY`], so two
//! strata processes on one database take turns and each re-reads the ledger inside the lock.
//!
//! A tenant's schema of a schema-per-tenant fleet has the same tables in a schema of its own,
//! `strata_<schema>`, and locks of its own: every statement here is written for `strata` and
//! given the bookkeeping schema (`book`) it runs for ([`in_book`], [`key_of`]).

use std::borrow::Cow;

use postgres::GenericClient;

use crate::core::checksum::Manifest;
use crate::core::ledger::{Applied, AuditRow, Entry, now_rfc3339, operator};
use crate::core::tree::{Migration, MigrationId};

/// The schema of the bookkeeping tables.
pub const SCHEMA_NAME: &str = "strata";

/// `sql`, one of strata's own statements written for the bookkeeping schema `strata`, for the
/// bookkeeping schema `book` (`strata_<tenant>` for a tenant's schema, see
/// `Target::book`): every `strata.` qualifier and `'strata'` literal names `book` instead.
/// Unchanged (not copied) for `strata` itself. `book` is `strata` or `strata_` and a name
/// `is_tenant_schema` accepts, so it needs no quoting.
pub fn in_book<'a>(book: &str, sql: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
    let sql = sql.into();
    if book == SCHEMA_NAME {
        return sql;
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 64);
    let mut last = 0;
    let mut i = 0;
    while let Some(at) = sql[i..].find("strata").map(|at| at + i) {
        let end = at + SCHEMA_NAME.len();
        let before = at.checked_sub(1).map(|b| bytes[b]);
        let after = bytes.get(end).copied();
        let word = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        let named = !word(before)
            && before != Some(b'\\')
            && (after == Some(b'.')
                || (before == Some(b'\'') && after == Some(b'\''))
                || (after == Some(b';') && sql[..at].ends_with("SCHEMA IF NOT EXISTS ")));
        if named {
            out.push_str(&sql[last..at]);
            out.push_str(book);
            last = end;
        }
        i = end;
    }
    out.push_str(&sql[last..]);
    // The patterns that find functions naming strata's schema find the tenants' too.
    Cow::Owned(out.replace("\\\\mstrata\\\\M", "\\\\mstrata\\\\w*\\\\M"))
}

/// A condition true when the schema named by the SQL expression `name` is a tenant's or its
/// bookkeeping schema (`strata_<tenant>` holding strata's ledger table): out of the database's
/// own view and out of its components' reach, as `strata` is.
pub fn tenants_sql(name: &str) -> String {
    format!(
        "({} OR {})",
        book_sql(name),
        book_sql(&format!("'strata_' OPERATOR(pg_catalog.||) {name}"))
    )
}

fn book_sql(name: &str) -> String {
    format!(
        "({name} OPERATOR(pg_catalog.~) '^strata_' AND pg_catalog.to_regclass(\
         pg_catalog.quote_ident({name}) OPERATOR(pg_catalog.||) '.strata_migration') IS NOT NULL)"
    )
}

/// The tenant's schema of the bookkeeping schema `book` (`acme` for `strata_acme`); `None`
/// for `strata`.
pub fn tenant_of(book: &str) -> Option<&str> {
    book.strip_prefix("strata_")
}

/// The advisory lock key `key` of the bookkeeping schema `book`: `key` itself for `strata`,
/// else one of its own (FNV-1a of the name, folded into `key`), so that each tenant's runs take
/// turns among themselves only.
pub fn key_of(book: &str, key: i64) -> i64 {
    if book == SCHEMA_NAME {
        return key;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in book.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    key ^ (hash << 16) as i64
}

/// The advisory lock every strata write transaction takes first (`strata` in ASCII).
pub const LOCK_KEY: i64 = 0x7374_7261_7461;

/// The advisory lock of a whole run (`stratr`): a `migrate` phase holds it shared for all its
/// steps (on a connection of its own, which the steps' session resets cannot release), and
/// what puts the database somewhere else (`restore`, `undo`, `repair`, `baseline`) takes it
/// exclusively, always before [`LOCK_KEY`], so none of them lands between two steps of a run.
/// SQLite's run lock file does the same there.
pub const RUN_KEY: i64 = 0x7374_7261_7472;

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS strata;
CREATE TABLE IF NOT EXISTS strata.strata_migration (
    module         text   NOT NULL,
    stamp          text   NOT NULL,
    name           text   NOT NULL,
    checksum       text   NOT NULL,
    manifest       text   NOT NULL,
    applied_at     text   NOT NULL,
    duration_ms    bigint NOT NULL,
    engine_version text   NOT NULL,
    PRIMARY KEY (module, stamp)
);
CREATE TABLE IF NOT EXISTS strata.strata_migration_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          text   NOT NULL,
    phase       text   NOT NULL,
    module      text,
    stamp       text,
    action      text   NOT NULL,
    outcome     text   NOT NULL CHECK (outcome IN ('ok', 'failed', 'rolled-back')),
    detail      text,
    rows        bigint,
    fuel_used   bigint,
    duration_ms bigint,
    operator    text   NOT NULL,
    checksum    text
);
CREATE TABLE IF NOT EXISTS strata.strata_database (
    id         text NOT NULL,
    created_at text NOT NULL
);
INSERT INTO strata.strata_database (id, created_at)
    SELECT replace(gen_random_uuid()::text, '-', ''),
           to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
    WHERE NOT EXISTS (SELECT 1 FROM strata.strata_database);
CREATE OR REPLACE FUNCTION strata.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE OR REPLACE TRIGGER strata_migration_audit_no_change
    BEFORE UPDATE OR DELETE ON strata.strata_migration_audit
    FOR EACH ROW EXECUTE FUNCTION strata.append_only();
CREATE OR REPLACE TRIGGER strata_migration_audit_no_truncate
    BEFORE TRUNCATE ON strata.strata_migration_audit
    FOR EACH STATEMENT EXECUTE FUNCTION strata.append_only();
CREATE OR REPLACE TRIGGER strata_database_fixed
    BEFORE UPDATE OR DELETE ON strata.strata_database
    FOR EACH ROW EXECUTE FUNCTION strata.append_only();
";

/// Takes strata's lock for the rest of the current transaction (waits at most the session's
/// `lock_timeout`).
pub fn lock(c: &mut impl GenericClient, book: &str) -> Result<(), postgres::Error> {
    c.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[&key_of(book, LOCK_KEY)],
    )
    .map(|_| ())
}

/// [`lock`], with the run lock ([`RUN_KEY`]) taken exclusively first: for a change in one
/// transaction outside a migrate's steps (repair, baseline), which then waits for a running
/// migrate phase to end.
pub fn lock_with_run(c: &mut impl GenericClient, book: &str) -> Result<(), postgres::Error> {
    c.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[&key_of(book, RUN_KEY)],
    )?;
    lock(c, book)
}

/// The connection holding the run lock is idle by design: a server or database default
/// `idle_session_timeout` (PostgreSQL 14+) would close it, and the lock with it, in the middle
/// of a run. Off for that session, where the setting exists.
const KEEP_IDLE: &str = "SELECT pg_catalog.set_config('idle_session_timeout', '0', false) \
     FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'idle_session_timeout'";

/// A connection holding the run lock ([`RUN_KEY`]) shared for as long as it lives: a migrate
/// phase keeps one, so a restore or an undo waits for the phase to end rather than landing
/// between its steps.
pub struct RunLock(#[allow(dead_code)] super::Session);

impl RunLock {
    /// Takes the lock shared on `client`, as a migrate phase does (waits at most its
    /// `lock_timeout`).
    pub fn shared(mut client: super::Session) -> Result<RunLock, postgres::Error> {
        client.batch_execute(KEEP_IDLE)?;
        let key = key_of(client.book(), RUN_KEY);
        client.execute("SELECT pg_catalog.pg_advisory_lock_shared($1)", &[&key])?;
        Ok(RunLock(client))
    }

    /// Takes the lock exclusively on `client`, as a restore does from before it chooses its
    /// backup to after the replay (waits at most its `lock_timeout`).
    pub fn exclusive(mut client: super::Session) -> Result<RunLock, postgres::Error> {
        client.batch_execute(KEEP_IDLE)?;
        let key = key_of(client.book(), RUN_KEY);
        client.execute("SELECT pg_catalog.pg_advisory_lock($1)", &[&key])?;
        Ok(RunLock(client))
    }
}

/// What a step may not change: strata's schema in the catalogs (the schema itself, every
/// relation and function in it with owners and privileges, the relations' columns, storage
/// (`relfilenode`: a TRUNCATE shows), triggers with whether they are enabled, rules (a rule
/// `DO INSTEAD NOTHING` on the ledger would swallow strata's own writes), row security, forced
/// or not, and its policies, the functions' source) and this transaction's row writes to strata's tables (the
/// `pg_stat_get_xact_tuples_*` counters behind `pg_stat_xact_user_tables`, which count even
/// what `session_replication_role` hides from the triggers), and its sequences' parameters and
/// last values (a `setval` or `nextval` that no rollback undoes; strata's own writes use none).
///
/// Costs the same at the 5,000th step as at the first: the schema's members are found through
/// `pg_depend`'s index on the referenced namespace, columns and triggers through their tables'
/// indexes, and no table's rows are read. Every name, function and operator is qualified with
/// `pg_catalog`, so a temp table, function or operator a script created cannot stand in for a
/// catalog or a built-in, whatever `search_path` it set.
pub(crate) const SIGNATURE: &str = "
WITH ns AS (
  SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n
   WHERE n.nspname OPERATOR(pg_catalog.=) 'strata'
), members AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d JOIN ns
      ON d.refobjid OPERATOR(pg_catalog.=) ns.oid
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
)
SELECT pg_catalog.md5(pg_catalog.concat_ws(E'\\n',
  (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', ns.nspname, ns.nspowner, ns.nspacl), ',')
     FROM ns),
  (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', c.relname, c.relkind, c.relowner,
          c.relfilenode, c.relacl, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence,
          pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid),
          pg_catalog.pg_stat_get_xact_tuples_updated(c.oid),
          pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid),
          (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', a.attnum, a.attname, a.atttypid,
                  a.atttypmod, a.attnotnull, a.atthasdef, a.attisdropped), ',' ORDER BY a.attnum)
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0),
          (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', t.tgname, t.tgenabled, t.tgfoid,
                  t.tgtype), ',' ORDER BY t.tgname)
             FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid),
          (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', r.rulename, r.ev_type,
                  r.is_instead, r.ev_enabled), ',' ORDER BY r.rulename)
             FROM pg_catalog.pg_rewrite r WHERE r.ev_class OPERATOR(pg_catalog.=) c.oid),
          (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', p.polname, p.polcmd,
                  p.polpermissive, p.polroles), ',' ORDER BY p.polname)
             FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) c.oid)
          ), ',' ORDER BY c.relname)
     FROM members m JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m.objid
    WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass),
  (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', p.oid, p.proname, p.proowner, p.proacl,
          pg_catalog.md5(p.prosrc), p.prosecdef, p.proconfig), ',' ORDER BY p.oid)
     FROM members m JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) m.objid
    WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass),
  (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', s.seqrelid, s.seqstart, s.seqincrement,
          s.seqmax, s.seqmin, s.seqcycle, pg_catalog.pg_sequence_last_value(s.seqrelid)), ','
          ORDER BY s.seqrelid)
     FROM members m JOIN pg_catalog.pg_sequence s ON s.seqrelid OPERATOR(pg_catalog.=) m.objid
    WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass)
))";

/// The fingerprint of what a step may not change (see `SIGNATURE`); equal before and after
/// an action when the action left strata's bookkeeping alone.
pub fn signature(c: &mut impl GenericClient, book: &str) -> Result<String, postgres::Error> {
    Ok(c.query_one(&*in_book(book, SIGNATURE), &[])?.get(0))
}

/// The objects outside the `strata` schema that could change strata's tables later, each
/// described (`function public.f()`, `rule r on public.t`, `view public.v`): functions (trigger
/// functions among them) whose source names strata's schema or tables, whose source holds a
/// Unicode-escaped name or string (`U&"\0073trata"`: a name this check cannot read), whose
/// settings put strata's schema on their search path, or that depend on its tables (`BEGIN
/// ATOMIC` bodies), rules that refer to its tables, and views over its tables that
/// can be written through. A step leaving any of these is refused: it would run later, as its
/// owner, when the application writes, where no check of strata's sees it. Functions that
/// build the names at run time (`EXECUTE` of assembled text) are out of reach of this check;
/// see the threat model in the book's sandbox chapter. The patterns are escape strings, so a
/// step that turned `standard_conforming_strings` off cannot change what they match.
///
/// Costs the same at the 1,000th table as at the first: strata's relations are found through
/// `pg_depend`'s index on the referenced namespace (an index has no such row, and nothing this
/// looks for can depend on an index), their dependents through the same index, and the
/// functions' sources are matched only above the oids of PostgreSQL's own objects (every
/// object made after `initdb` has an oid of 16384 or more), through `pg_proc`'s oid index:
/// 0.2 ms at 1,000 tables where matching every built-in's source took 12 ms.
pub(crate) const WRITERS: &str = r#"
WITH books AS (
  SELECT n.oid FROM pg_catalog.pg_namespace n
   WHERE n.nspname OPERATOR(pg_catalog.~) '^strata(_.*)?$'
     AND pg_catalog.to_regclass(pg_catalog.quote_ident(n.nspname)
                                OPERATOR(pg_catalog.||) '.strata_migration') IS NOT NULL
), rels AS (
  SELECT d.objid AS oid FROM pg_catalog.pg_depend d
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
     AND d.refobjid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT n.oid FROM books n))
     AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
), dependents AS (
  SELECT DISTINCT d.classid, d.objid FROM rels JOIN pg_catalog.pg_depend d
      ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
     AND d.refobjid OPERATOR(pg_catalog.=) rels.oid
   WHERE d.classid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass,
                       'pg_catalog.pg_rewrite'::pg_catalog.regclass])
)
SELECT 'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n
      ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
 WHERE p.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
   AND n.nspname OPERATOR(pg_catalog.<>) ALL
       (ARRAY['pg_catalog', 'information_schema', 'strata']::pg_catalog.name[])
   AND n.oid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT b.oid FROM books b))
   AND (p.prosrc OPERATOR(pg_catalog.~*) E'\\mstrata\\w*\\M"?\\s*\\.'
        OR p.prosrc OPERATOR(pg_catalog.~*)
           E'\\mstrata_(migration|migration_audit|database|object)\\M'
        OR p.prosrc OPERATOR(pg_catalog.~*) E'U&\\s*["'']'
        OR pg_catalog.array_to_string(p.proconfig, ' ') OPERATOR(pg_catalog.~*) E'\\mstrata\\w*\\M'
        OR EXISTS (SELECT FROM dependents x WHERE x.classid OPERATOR(pg_catalog.=) p.tableoid
                      AND x.objid OPERATOR(pg_catalog.=) p.oid))
UNION ALL
SELECT CASE WHEN r.rulename OPERATOR(pg_catalog.=) '_RETURN' THEN 'view '
            ELSE 'rule ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.rulename::pg_catalog.text)
                 OPERATOR(pg_catalog.||) ' on ' END
       OPERATOR(pg_catalog.||) r.ev_class::pg_catalog.regclass::pg_catalog.text
  FROM pg_catalog.pg_rewrite r
 WHERE EXISTS (SELECT FROM dependents x WHERE x.classid OPERATOR(pg_catalog.=) r.tableoid
                 AND x.objid OPERATOR(pg_catalog.=) r.oid)
   AND NOT EXISTS (SELECT FROM rels WHERE rels.oid OPERATOR(pg_catalog.=) r.ev_class)
   AND (r.rulename OPERATOR(pg_catalog.<>) '_RETURN'
        OR pg_catalog.pg_relation_is_updatable(r.ev_class, true) OPERATOR(pg_catalog.<>) 0)
ORDER BY 1
"#;

/// Whether the bookkeeping tables are there.
pub fn exists(c: &mut impl GenericClient, book: &str) -> Result<bool, postgres::Error> {
    let row = c.query_one(
        &*in_book(
            book,
            "SELECT to_regclass('strata.strata_migration') IS NOT NULL
            AND to_regclass('strata.strata_migration_audit') IS NOT NULL
            AND to_regclass('strata.strata_database') IS NOT NULL",
        ),
        &[],
    )?;
    Ok(row.get(0))
}

/// Creates the schema and tables if they are missing, in a transaction of its own under the
/// lock (two first runs at once do not race on `CREATE SCHEMA`).
pub fn ensure(client: &mut postgres::Client, book: &str) -> Result<(), postgres::Error> {
    let complete = in_book(
        book,
        "SELECT pg_catalog.to_regclass('strata.strata_object') IS NOT NULL",
    );
    if exists(client, book)? && client.query_one(&*complete, &[])?.get::<_, bool>(0) {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    lock(&mut tx, book)?;
    // A tenant's schema is made with its bookkeeping, as the tenant's first run needs it.
    if let Some(tenant) = tenant_of(book) {
        // Quoted: a tenant may be named as one of SQL's keywords (`user`, `order`).
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            crate::core::data::quote_ident(tenant)
        ))?;
    }
    if !exists(&mut tx, book)? {
        tx.batch_execute(&in_book(book, SCHEMA))?;
    }
    // Ownership (`postgres::schema`), also on databases strata set up before it had it.
    tx.batch_execute(&in_book(book, super::schema::OBJECT_TABLE))?;
    tx.commit()
}

/// The database's identity (`strata.strata_database`), which its backups carry; `None` before
/// strata's first run on it.
pub fn database_id(
    c: &mut impl GenericClient,
    book: &str,
) -> Result<Option<String>, postgres::Error> {
    let absent = in_book(book, "SELECT to_regclass('strata.strata_database') IS NULL");
    if c.query_one(&*absent, &[])?.get(0) {
        return Ok(None);
    }
    let id = in_book(book, "SELECT id FROM strata.strata_database LIMIT 1");
    Ok(c.query_opt(&*id, &[])?.map(|r| r.get(0)))
}

/// Every applied migration, in global order; empty when the tables do not exist yet.
pub fn applied(c: &mut impl GenericClient, book: &str) -> Result<Vec<Applied>, postgres::Error> {
    if !exists(c, book)? {
        return Ok(Vec::new());
    }
    let rows = c.query(
        &*in_book(
            book,
            "SELECT module, stamp, name, checksum, manifest, applied_at, duration_ms, engine_version
         FROM strata.strata_migration ORDER BY stamp, module",
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            id: MigrationId {
                module: r.get(0),
                stamp: r.get(1),
            },
            name: r.get(2),
            checksum: r.get(3),
            manifest: Manifest::from_lines(r.get::<_, &str>(4)),
            applied_at: r.get(5),
            duration_ms: r.get(6),
            engine_version: r.get(7),
        })
        .collect())
}

/// Whether `id` is recorded as applied (ask under the lock).
pub fn is_applied(
    c: &mut impl GenericClient,
    book: &str,
    id: &MigrationId,
) -> Result<bool, postgres::Error> {
    Ok(c.query_opt(
        &*in_book(
            book,
            "SELECT 1 FROM strata.strata_migration WHERE module = $1 AND stamp = $2",
        ),
        &[&id.module, &id.stamp],
    )?
    .is_some())
}

/// [`is_applied`] as a statement for one simple query: one row, `t` or `f`.
pub(crate) fn is_applied_sql(book: &str, id: &MigrationId) -> String {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM strata.strata_migration WHERE module OPERATOR(pg_catalog.=) {} \
         AND stamp OPERATOR(pg_catalog.=) {})",
        super::dollar_quoted(&id.module),
        super::dollar_quoted(&id.stamp)
    );
    in_book(book, sql).into_owned()
}

/// [`is_applied_sql`] as a statement that fails (`22P02`, naming [`APPLIED`]) when the ledger
/// holds `id`, and gives one row `f` when it does not: it stops a batch that goes on with the
/// step's first statement (a step found applied must not run it).
pub(crate) fn not_applied_or_fail_sql(book: &str, id: &MigrationId) -> String {
    format!(
        "SELECT CASE WHEN CAST(CASE WHEN ({}) THEN '{APPLIED}' ELSE '0' END AS pg_catalog.int4) \
         OPERATOR(pg_catalog.=) 0 THEN 'f' END",
        is_applied_sql(book, id)
    )
}

/// What [`not_applied_or_fail_sql`]'s error names.
pub(crate) const APPLIED: &str = "strata: the ledger holds the step";

/// A text value as a literal (see `super::dollar_quoted`), or `NULL`.
fn text_literal(v: Option<&str>) -> String {
    v.map_or_else(|| "NULL".into(), super::dollar_quoted)
}

/// A count as a literal, or `NULL`.
fn count_literal(v: Option<u64>) -> String {
    v.map_or_else(|| "NULL".into(), |n| n.min(i64::MAX as u64).to_string())
}

/// [`record`] as a statement for one simple query, its values as literals; `checksum` is
/// `m.checksum()`, computed once.
pub(crate) fn record_sql(book: &str, m: &Migration, checksum: &str, duration_ms: u64) -> String {
    let sql = format!(
        "INSERT INTO strata.strata_migration
             (module, stamp, name, checksum, manifest, applied_at, duration_ms, engine_version)
         VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
        super::dollar_quoted(&m.id.module),
        super::dollar_quoted(&m.id.stamp),
        super::dollar_quoted(&m.slug),
        super::dollar_quoted(checksum),
        super::dollar_quoted(&m.manifest.to_lines()),
        super::dollar_quoted(&now_rfc3339()),
        count_literal(Some(duration_ms)),
        super::dollar_quoted(crate::ENGINE_VERSION),
    );
    in_book(book, sql).into_owned()
}

/// One audit row of [`append`] as a statement for one simple query, its values as literals,
/// stamped `at` by `who`: it adds nothing when another process took its id first (the
/// statement's count is then 0, and the row is appended again with [`append`]).
pub(crate) fn append_sql(book: &str, e: &Entry, at: &str, who: &str) -> String {
    format!(
        "{} ON CONFLICT (id) DO NOTHING",
        append_or_fail_sql(book, e, at, who)
    )
}

/// [`append_sql`] that fails (a unique violation) when another process took its id first.
pub(crate) fn append_or_fail_sql(book: &str, e: &Entry, at: &str, who: &str) -> String {
    let sql = format!(
        "{AUDIT_INSERT} SELECT COALESCE(pg_catalog.max(id), 0) OPERATOR(pg_catalog.+) 1, {}, {}, \
         {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM strata.strata_migration_audit",
        super::dollar_quoted(at),
        super::dollar_quoted(&e.phase),
        text_literal(e.module.as_deref()),
        text_literal(e.stamp.as_deref()),
        super::dollar_quoted(&e.action),
        super::dollar_quoted(e.outcome.as_str()),
        text_literal(e.detail.as_deref()),
        count_literal(e.rows),
        count_literal(e.fuel_used),
        count_literal(e.duration_ms),
        super::dollar_quoted(who),
        text_literal(e.checksum.as_deref()),
    );
    in_book(book, sql).into_owned()
}

/// The start of every audit insert: the columns, the id given by strata (see [`append`]).
const AUDIT_INSERT: &str = "INSERT INTO strata.strata_migration_audit
             (id, at, phase, module, stamp, action, outcome, detail, rows, fuel_used,
              duration_ms, operator, checksum)
         OVERRIDING SYSTEM VALUE";

/// Records `m` as applied.
pub fn record(
    c: &mut impl GenericClient,
    book: &str,
    m: &Migration,
    duration_ms: u64,
) -> Result<(), postgres::Error> {
    c.execute(
        &*in_book(
            book,
            "INSERT INTO strata.strata_migration
             (module, stamp, name, checksum, manifest, applied_at, duration_ms, engine_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ),
        &[
            &m.id.module,
            &m.id.stamp,
            &m.slug,
            &m.checksum(),
            &m.manifest.to_lines(),
            &now_rfc3339(),
            &(duration_ms as i64),
            &crate::ENGINE_VERSION,
        ],
    )
    .map(|_| ())
}

/// How often an audit row is tried again when another process took its id first.
const APPEND_ATTEMPTS: usize = 8;

/// Appends entries to the audit log, stamped now and with the operator.
///
/// Each row's id is the highest id plus one, not the column's identity sequence: a sequence is
/// outside every transaction (no rollback undoes a `setval` or `nextval`), so a migration's SQL
/// could move it and break every later run; the table's rows, which only strata writes, cannot
/// be. Two processes appending at once may pick the same id: the later insert then adds nothing
/// (`ON CONFLICT DO NOTHING`, which aborts no transaction) and is tried again with a new
/// snapshot; the last try inserts plainly, so a conflict that persists is an error.
pub fn append(
    c: &mut impl GenericClient,
    book: &str,
    entries: &[Entry],
) -> Result<(), postgres::Error> {
    let insert = format!(
        "{AUDIT_INSERT}
         SELECT COALESCE(pg_catalog.max(id), 0) OPERATOR(pg_catalog.+) 1, $1, $2, $3, $4, $5,
                $6, $7, $8, $9, $10, $11, $12
           FROM strata.strata_migration_audit"
    );
    let insert = in_book(book, insert);
    let at = now_rfc3339();
    let who = operator();
    let opt = |n: Option<u64>| n.map(|n| n.min(i64::MAX as u64) as i64);
    for e in entries {
        let params: [&(dyn postgres::types::ToSql + Sync); 12] = [
            &at,
            &e.phase,
            &e.module,
            &e.stamp,
            &e.action,
            &e.outcome.as_str(),
            &e.detail,
            &opt(e.rows),
            &opt(e.fuel_used),
            &opt(e.duration_ms),
            &who,
            &e.checksum,
        ];
        let mut added = 0;
        for _ in 1..APPEND_ATTEMPTS {
            added = c.execute(&format!("{insert} ON CONFLICT (id) DO NOTHING"), &params)?;
            if added == 1 {
                break;
            }
        }
        if added == 0 {
            c.execute(&*insert, &params)?;
        }
    }
    Ok(())
}

/// The newest `limit` audit rows (all if `None`), oldest first.
pub fn audit(
    c: &mut impl GenericClient,
    book: &str,
    limit: Option<u64>,
) -> Result<Vec<AuditRow>, postgres::Error> {
    audit_rows(
        c,
        book,
        i64::MAX,
        limit.map(|n| n.min(i64::MAX as u64) as i64),
    )
}

/// One page of the audit log, paged in SQL on the id: the newest `size` rows whose id is below
/// `before_id` (no bound when `None`), oldest first, and whether older rows remain.
pub fn audit_page(
    c: &mut impl GenericClient,
    book: &str,
    before_id: Option<i64>,
    size: u64,
) -> Result<(Vec<AuditRow>, bool), postgres::Error> {
    let size = size.min(i64::MAX as u64 - 1) as i64;
    let mut rows = audit_rows(c, book, before_id.unwrap_or(i64::MAX), Some(size + 1))?;
    let more = rows.len() as i64 > size;
    if more {
        rows.remove(0);
    }
    Ok((rows, more))
}

/// The newest `limit` rows (all if `None`) with an id below `before_id`, oldest first.
fn audit_rows(
    c: &mut impl GenericClient,
    book: &str,
    before_id: i64,
    limit: Option<i64>,
) -> Result<Vec<AuditRow>, postgres::Error> {
    if !exists(c, book)? {
        return Ok(Vec::new());
    }
    let rows = c.query(
        &*in_book(
            book,
            "SELECT * FROM (
             SELECT id, at, phase, module, stamp, action, outcome, detail, rows, fuel_used,
                    duration_ms, operator, checksum
             FROM strata.strata_migration_audit WHERE id < $1 ORDER BY id DESC LIMIT $2) newest
         ORDER BY id",
        ),
        &[&before_id, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| AuditRow {
            id: r.get(0),
            at: r.get(1),
            phase: r.get(2),
            module: r.get(3),
            stamp: r.get(4),
            action: r.get(5),
            outcome: r.get(6),
            detail: r.get(7),
            rows: r.get(8),
            fuel_used: r.get(9),
            duration_ms: r.get(10),
            operator: r.get(11),
            checksum: r.get(12),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strata_s_own_statements_stay_as_written() {
        for sql in [SCHEMA, SIGNATURE, WRITERS] {
            assert!(matches!(in_book(SCHEMA_NAME, sql), Cow::Borrowed(s) if s == sql));
        }
        assert_eq!(key_of(SCHEMA_NAME, LOCK_KEY), LOCK_KEY);
    }

    #[test]
    fn a_tenant_s_bookkeeping_is_named_everywhere_strata_s_is() {
        let schema = in_book("strata_acme", SCHEMA);
        assert!(schema.contains("CREATE SCHEMA IF NOT EXISTS strata_acme;"));
        assert!(schema.contains("strata_acme.strata_migration_audit"));
        assert!(schema.contains("EXECUTE FUNCTION strata_acme.append_only()"));
        let signature = in_book("strata_acme", SIGNATURE);
        assert!(signature.contains("OPERATOR(pg_catalog.=) 'strata_acme'"));
        let writers = in_book("strata_acme", WRITERS);
        assert!(writers.contains("'information_schema', 'strata_acme']"));
        assert!(writers.contains(r"E'\\mstrata\\w*\\M"));
        for sql in [&schema, &signature, &writers] {
            assert!(
                !sql.contains(" strata.") && !sql.contains("'strata'"),
                "{sql}"
            );
        }
        // Words that only start like the schema's name stay.
        assert_eq!(
            in_book(
                "strata_acme",
                "SELECT 'strata: x', strata_object.id, xstrata.y"
            ),
            "SELECT 'strata: x', strata_object.id, xstrata.y"
        );
        let (a, b) = (
            key_of("strata_acme", LOCK_KEY),
            key_of("strata_globex", LOCK_KEY),
        );
        assert!(a != b && a != LOCK_KEY && b != LOCK_KEY);
        assert_ne!(key_of("strata_acme", RUN_KEY), a);
    }
}
