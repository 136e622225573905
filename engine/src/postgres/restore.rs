//! `strata restore` on PostgreSQL: puts a `pg_dump` backup back into the live database in one
//! transaction, so it either happens whole or not at all.
//!
//! The backup must be one strata took of this database (its record names the database as shown
//! and its identity, which must match the identity inside the archive and the live database's).
//! The current state is kept first as a verified backup (restoring that undoes the restore).
//! Then, in one transaction under strata's advisory lock: the audit rows written since the
//! backup are read, every schema of the database is dropped, the archive's SQL (from
//! `pg_restore --file=-`, data through `COPY`) is replayed, the carried audit rows are put back
//! with their ids, and the restore itself is audited. A migrate waits for the lock; an
//! application holding a table waits out `lock_timeout` and the restore is refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use postgres::Transaction;

use super::{backup, ledger};
use crate::core::backup::{Backup, read_record};
use crate::core::config::Project;
use crate::core::error::Error;
use crate::core::restore::{Recorded, Restored, State, TableState};
use crate::core::target::Target;

/// The live database's identity; `None` when it does not exist or strata never ran on it.
pub(crate) fn live_id(project: &Project, target: &Target) -> Result<Option<String>, Error> {
    let Some(mut c) = target.open(project.busy_timeout())? else {
        return Ok(None);
    };
    ledger::database_id(&mut *c, &target.book())
        .map_err(|e| target.error("cannot read the database's identity", e))
}

/// How [`state_of`] sums a table's rows, as its records name it: the first 60 bits of the MD5
/// of each row's text, added up. Records that name no scheme were made the same way. Records
/// of this scheme count the large objects by oid only, and hold no [`DEFINITIONS`].
pub(crate) const SCHEME: &str = "md5-text-sum";

/// [`SCHEME`] with the large objects' contents, owners and grants, and the [`DEFINITIONS`] of
/// the application's schemas: what records are made with now (an older record is compared the
/// way it was made).
pub(crate) const SCHEME_WITH_DEFINITIONS: &str = "md5-text-sum+definitions";

/// [`state_of`] as a record beside a backup keeps it.
pub(crate) fn recorded_state(
    c: &mut postgres::Client,
    book: &str,
) -> Result<Recorded, postgres::Error> {
    Ok(Recorded::new(
        SCHEME_WITH_DEFINITIONS,
        state_of(c, book, true)?,
    ))
}

/// [`live_state`] when `scheme` is this backend's (or unnamed); `None` for a way this strata
/// does not know.
pub(crate) fn live_state_in(
    project: &Project,
    target: &Target,
    scheme: Option<&str>,
) -> Result<Option<State>, Error> {
    match scheme {
        None | Some(SCHEME) => live_state(project, target, false).map(Some),
        Some(SCHEME_WITH_DEFINITIONS) => live_state(project, target, true).map(Some),
        Some(_) => Ok(None),
    }
}

/// The state of the live database's application tables (see `crate::core::restore::State`),
/// with the definitions of its schemas when `definitions` ([`SCHEME_WITH_DEFINITIONS`]).
pub(crate) fn live_state(
    project: &Project,
    target: &Target,
    definitions: bool,
) -> Result<State, Error> {
    let Some(mut c) = target.open(project.busy_timeout())? else {
        return Ok(State::new());
    };
    state_of(&mut c, &target.book(), definitions)
        .map_err(|e| target.error("cannot read its tables", e))
}

/// How the state names the database's large objects: their catalog, whose schema no table of
/// the state is in.
const LARGE_OBJECTS: &str = "pg_catalog.pg_largeobject";

/// The large objects: how many, which (the sum of their oids), and a digest of each one's
/// owner, grants and contents (so an object changed in place, `lo_put`, is a change).
const LARGE_OBJECTS_WITH_CONTENTS: &str = "SELECT pg_catalog.count(*), \
     coalesce(pg_catalog.sum(l.oid::pg_catalog.int8), 0)::pg_catalog.text \
     OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) \
     coalesce(pg_catalog.md5(pg_catalog.string_agg(l.oid::pg_catalog.text \
     OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) \
     pg_catalog.concat_ws(' ', l.lomowner, l.lomacl, \
     pg_catalog.md5(pg_catalog.lo_get(l.oid))), ',' ORDER BY l.oid)), '') \
     FROM pg_catalog.pg_largeobject_metadata l";

/// How the state names the definitions of the application's schemas ([`DEFINITIONS`]), kept
/// beside the tables' rows: a schema no table is in.
const DEFINITIONS_KEY: &str = "pg_catalog (the schemas' owners, grants, comments and definitions)";

/// How many items the definitions of the application's schemas (every schema but
/// PostgreSQL's and strata's) hold, and an MD5 of them all: schemas, relations (owner, grants,
/// comment), columns (type, nullability, grants, comment, default), indexes, constraints,
/// triggers, rules and views, functions (signature, source, owner, grants, comment) and
/// default privileges. A change the application made after a run (a `GRANT`, a `COMMENT`, an
/// index) is then a change outside strata, which a restore would lose.
const DEFINITIONS_SCHEMAS: &str =
    "n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', $1])
     AND n.nspname NOT LIKE 'pg\\_%'";

/// The schemas [`DEFINITIONS`] reads (every one but PostgreSQL's and strata's, `$1`).
const DEFINITIONS: &str = "
WITH ns AS (
  SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
   WHERE n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', $1])
     AND n.nspname NOT LIKE 'pg\\_%'
), rel AS (
  SELECT c.oid, ns.nspname, c.relname, c.relkind, c.relowner, c.relacl FROM pg_catalog.pg_class c
    JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
), items AS (
  SELECT pg_catalog.concat_ws(' ', 'n', n.nspname, n.nspowner, n.nspacl,
         pg_catalog.obj_description(n.oid, 'pg_namespace')) AS item
    FROM pg_catalog.pg_namespace n JOIN ns ON ns.oid OPERATOR(pg_catalog.=) n.oid
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'r', r.nspname, r.relname, r.relkind, r.relowner, r.relacl,
         pg_catalog.obj_description(r.oid, 'pg_class'))
    FROM rel r
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'a', r.nspname, r.relname, a.attnum, a.attname, a.atttypid,
         a.atttypmod, a.attnotnull, a.attacl, pg_catalog.col_description(r.oid, a.attnum),
         d.adbin)
    FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) r.oid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) r.oid
         AND d.adnum OPERATOR(pg_catalog.=) a.attnum
   WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'i', r.nspname, r.relname, i.indkey, i.indclass,
         i.indisunique, i.indexprs, i.indpred)
    FROM rel r JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) r.oid
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'c', r.nspname, r.relname, k.conname, k.contype, k.conkey,
         k.confkey, k.conbin, pg_catalog.obj_description(k.oid, 'pg_constraint'))
    FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) r.oid
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 't', r.nspname, r.relname, t.tgname, t.tgfoid, t.tgtype,
         t.tgenabled, t.tgargs)
    FROM rel r JOIN pg_catalog.pg_trigger t ON t.tgrelid OPERATOR(pg_catalog.=) r.oid
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'w', r.nspname, r.relname, w.rulename, w.ev_type,
         w.is_instead, w.ev_qual, w.ev_action)
    FROM rel r JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) r.oid
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'f', ns.nspname, p.proname, p.proargtypes, p.prorettype,
         p.prokind, p.prosecdef, p.proconfig, p.prosrc, p.proowner, p.proacl,
         pg_catalog.obj_description(p.oid, 'pg_proc'))
    FROM pg_catalog.pg_proc p JOIN ns ON ns.oid OPERATOR(pg_catalog.=) p.pronamespace
  UNION ALL
  SELECT pg_catalog.concat_ws(' ', 'd', a.defaclrole, a.defaclnamespace, a.defaclobjtype,
         a.defaclacl)
    FROM pg_catalog.pg_default_acl a
)
SELECT pg_catalog.count(*),
       coalesce(pg_catalog.md5(pg_catalog.string_agg(item, E'\\n' ORDER BY item)), '')
  FROM items";

/// The state of every table outside PostgreSQL's schemas and strata's: its row count and an
/// order-independent checksum (the sum of a hash of each row's text); and of the large
/// objects, when there are any ([`LARGE_OBJECTS`]); with `definitions`, the large objects'
/// contents and the [`DEFINITIONS`] too ([`SCHEME_WITH_DEFINITIONS`]). For a tenant's `book`
/// (`strata_<schema>`), the tenant's schema alone, its tables named as `public`'s are.
pub(crate) fn state_of(
    c: &mut postgres::Client,
    book: &str,
    definitions: bool,
) -> Result<State, postgres::Error> {
    let tenant = ledger::tenant_of(book);
    let tables = match tenant {
        None => c.query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1) \
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2",
            &[&ledger::SCHEMA_NAME],
        )?,
        Some(tenant) => c.query(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.relkind IN ('r', 'p') \
             AND n.nspname OPERATOR(pg_catalog.=) $1 ORDER BY 1, 2",
            &[&tenant],
        )?,
    };
    let mut out = State::new();
    // The large objects, which live outside every table: how many and which (by oid; a backup
    // puts them back with their oids), and with `definitions` what each holds
    // ([`LARGE_OBJECTS_WITH_CONTENTS`]). Left out when there are none, as before. An object
    // this role may not read fails the state: then restore cannot tell, and asks for --yes.
    // A tenant's backup holds its two schemas, none of the database's large objects.
    let objects = c.query_one(
        if definitions {
            LARGE_OBJECTS_WITH_CONTENTS
        } else {
            "SELECT pg_catalog.count(*), \
             coalesce(pg_catalog.sum(l.oid::pg_catalog.int8), 0)::pg_catalog.text \
             FROM pg_catalog.pg_largeobject_metadata l"
        },
        &[],
    )?;
    let count: i64 = objects.get(0);
    if count > 0 && tenant.is_none() {
        out.insert(
            LARGE_OBJECTS.to_string(),
            TableState {
                rows: count as u64,
                checksum: objects.get(1),
            },
        );
    }
    // The definitions outside the rows that a restore puts back too: owners, grants and
    // comments, columns, defaults, indexes, constraints, triggers, rules and views, functions
    // and default privileges of the application's schemas, read from the catalogs as stored
    // (no text made from them, which would depend on the session's settings).
    let definitions = match (definitions, tenant) {
        (false, _) => None,
        (true, None) => Some(c.query_one(DEFINITIONS, &[&ledger::SCHEMA_NAME])?),
        (true, Some(tenant)) => {
            let one =
                DEFINITIONS.replace(DEFINITIONS_SCHEMAS, "n.nspname OPERATOR(pg_catalog.=) $1");
            Some(c.query_one(&one, &[&tenant])?)
        }
    };
    if let Some(definitions) = definitions
        && let count = definitions.get::<_, i64>(0)
        && count > 0
    {
        out.insert(
            DEFINITIONS_KEY.to_string(),
            TableState {
                rows: count as u64,
                checksum: definitions.get(1),
            },
        );
    }
    // Each table's count and sum, many tables a round trip (simple queries of one statement
    // a table; the values come back as text): a query of its own each took two round trips,
    // which after a run of 1,000 `CREATE TABLE` steps was 2,000 of them.
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let names: Vec<(String, String)> = tables.iter().map(|r| (r.get(0), r.get(1))).collect();
    for chunk in names.chunks(TABLES_A_ROUND_TRIP) {
        let sql: Vec<String> = chunk
            .iter()
            .map(|(schema, table)| {
                format!(
                    "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)::text \
                     FROM {}.{} t",
                    q(schema),
                    q(table)
                )
            })
            .collect();
        let rows: Vec<postgres::SimpleQueryRow> = c
            .simple_query(&sql.join(";\n"))?
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        // One row a statement (an aggregate without GROUP BY), in order.
        for ((schema, table), sums) in chunk.iter().zip(rows) {
            let count = sums.get(0).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            let key = if schema == "public" || Some(schema.as_str()) == tenant {
                table.clone()
            } else {
                format!("{schema}.{table}")
            };
            out.insert(
                key,
                TableState {
                    rows: count,
                    checksum: sums.get(1).unwrap_or_default().to_string(),
                },
            );
        }
    }
    Ok(out)
}

/// How many tables' counts and sums [`state_of`] asks for in one round trip.
const TABLES_A_ROUND_TRIP: usize = 256;

fn as_backup(path: PathBuf, record: crate::core::backup::Record) -> Backup {
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Backup { path, record, size }
}

/// Every backup recorded as taken of `target`, oldest first.
pub(crate) fn list(project: &Project, target: &Target) -> Vec<Backup> {
    backup::list(&project.backups_dir(), target)
        .into_iter()
        .map(|(p, r)| as_backup(p, r))
        .collect()
}

/// The backup `restore` would put back: `named` (a path or a name in `.strata/backups/`), or
/// the newest of `fitting` (the backups that can go back to the database).
pub(crate) fn choose(
    project: &Project,
    target: &Target,
    named: Option<&Path>,
    fitting: impl FnOnce() -> Result<Vec<Backup>, Error>,
) -> Result<Backup, Error> {
    let dir = project.backups_dir();
    let Some(named) = named else {
        let mut fits = fitting()?;
        return fits.pop().ok_or_else(|| {
            Error::input(
                &dir,
                format!("holds no backup of {target}; `strata migrate` takes one before each run"),
            )
        });
    };
    let path = crate::core::restore::named_backup(named, &dir)?;
    let record = read_record(&path)?;
    if record.source != target.as_path() {
        return Err(Error::input(
            &path,
            format!(
                "is a backup of {}, not of {target}: a backup goes back only to the database it \
                 was taken from. `strata restore --list` shows the backups of {target}",
                record.source.display()
            ),
        ));
    }
    if let Some(live) = live_id(project, target)?
        && live != record.database_id
    {
        return Err(Error::input(
            &path,
            format!(
                "was taken from another database that had the same name (identity {}; {target} \
                 is {live}); it cannot go back here",
                record.database_id
            ),
        ));
    }
    Ok(as_backup(path, record))
}

/// One piece of a plain-format dump.
#[derive(Debug, PartialEq)]
enum Piece {
    /// Statements to run as they are.
    Sql(String),
    /// A `COPY ... FROM stdin` statement and its data (lines up to `\.`, excluded).
    Copy { statement: String, data: String },
}

/// Splits `pg_restore --file=-` output into SQL and COPY blocks; skips the `\restrict` and
/// `\unrestrict` lines and the `BEGIN;`/`COMMIT;` around the large objects' data, refuses any
/// other psql meta-command.
fn pieces(script: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut sql = String::new();
    let mut lines = script.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let balanced = || {
            crate::core::sql::postgres::statements(Path::new("backup"), &sql).is_ok()
                && sql
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty() && !l.starts_with("--"))
                    .is_none_or(|l| l.ends_with(';'))
        };
        let trimmed = line.trim_end();
        if trimmed.starts_with('\\') && balanced() {
            if trimmed.starts_with("\\restrict ") || trimmed.starts_with("\\unrestrict ") {
                continue;
            }
            return Err(format!(
                "the dump holds a psql command strata cannot run: {trimmed}"
            ));
        }
        // pg_restore wraps the large objects' data in a transaction of its own, which would
        // end the restore's: the replay is one transaction already.
        if (trimmed == "BEGIN;" || trimmed == "COMMIT;") && balanced() {
            continue;
        }
        if trimmed.starts_with("COPY ") && trimmed.ends_with(" FROM stdin;") && balanced() {
            if !sql.trim().is_empty() {
                out.push(Piece::Sql(std::mem::take(&mut sql)));
            }
            sql.clear();
            let mut data = String::new();
            loop {
                match lines.next() {
                    Some(l) if l.trim_end_matches(['\n', '\r']) == "\\." => break,
                    Some(l) => data.push_str(l),
                    None => return Err(format!("the data of `{trimmed}` does not end")),
                }
            }
            out.push(Piece::Copy {
                statement: trimmed.trim_end_matches(';').to_string(),
                data,
            });
            continue;
        }
        sql.push_str(line);
    }
    if !sql.trim().is_empty() {
        out.push(Piece::Sql(sql));
    }
    Ok(out)
}

/// The identity inside a dump: the first row of `strata.strata_database`.
fn identity_in(pieces: &[Piece], book: &str) -> Option<String> {
    let copy = ledger::in_book(book, "COPY strata.strata_database ");
    pieces.iter().find_map(|p| match p {
        Piece::Copy { statement, data } if statement.starts_with(&*copy) => {
            data.lines().next()?.split('\t').next().map(str::to_string)
        }
        _ => None,
    })
}

/// `strata restore` on PostgreSQL: puts `chosen` back into `target`. See the module
/// documentation for what it guarantees.
pub(crate) fn restore(
    project: &Project,
    target: &Target,
    chosen: Backup,
) -> Result<Restored, Error> {
    let target = target.clone();
    backup::verify(&chosen.path, &target)?;
    let mut plain = Command::new(backup::program("pg_restore")?);
    plain.arg("--file=-").arg(&chosen.path);
    let out = plain.output().map_err(|e| Error::io(&chosen.path, e))?;
    if !out.status.success() {
        return Err(Error::input(
            &chosen.path,
            format!(
                "pg_restore cannot read it: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let script = String::from_utf8(out.stdout)
        .map_err(|_| Error::input(&chosen.path, "holds a dump that is not UTF-8"))?;
    let pieces = pieces(&script).map_err(|e| Error::input(&chosen.path, e))?;
    if identity_in(&pieces, &target.book()).as_deref() != Some(chosen.record.database_id.as_str()) {
        return Err(Error::input(
            &chosen.path,
            format!(
                "does not hold the database its record names (identity {} inside, {} in its \
                 record); the file was replaced or the record belongs to another backup",
                identity_in(&pieces, &target.book())
                    .as_deref()
                    .unwrap_or("none"),
                chosen.record.database_id
            ),
        ));
    }

    let mut client = target.connect(project.busy_timeout())?;
    ledger::ensure(&mut client, &target.book())
        .map_err(|e| target.error("cannot create the ledger tables", e))?;
    // A tenant's restore drops its two schemas: refused, before anything is written, while an
    // object outside them depends on them (checked again under the restore's lock).
    if let Some(tenant) = target.tenant() {
        let outside = dependents_outside(&mut *client, tenant, &target.book())
            .map_err(|e| target.error("cannot read what depends on the tenant's schemas", e))?;
        if !outside.is_empty() {
            return Err(refuse_dependents(&target, tenant, &outside));
        }
    }
    let undo = backup::take(
        &mut client,
        &target,
        &project.backups_dir(),
        project.config.backups_keep.max(2),
        &format!("before restore of {}", file_name(&chosen.path)),
    )?;
    let mut tx = client
        .transaction()
        .map_err(|e| target.error("cannot begin the restore", e))?;
    let context = format!(
        "cannot restore {} (nothing was changed)",
        chosen.path.display()
    );
    let carried = match replay(&mut tx, &target.book(), &pieces, &chosen, &undo) {
        Ok(n) => n,
        Err(Replay::Server(e)) => return Err(target.error(context, e)),
        Err(Replay::Dependents(outside)) => {
            let tenant = target.tenant().unwrap_or_default();
            return Err(refuse_dependents(&target, tenant, &outside));
        }
        Err(Replay::Data(e)) => {
            return Err(Error::Postgres {
                db: target.as_path(),
                context,
                sqlstate: None,
                message: e.to_string(),
                source: Some(Box::new(e)),
            });
        }
    };
    tx.commit()
        .map_err(|e| target.error("cannot commit the restore", e))?;
    Ok(Restored {
        db: target.as_path(),
        restored_from: chosen.path,
        taken_at: chosen.record.taken_at,
        undo: Some(undo),
        audit_rows_kept: carried,
    })
}

/// The objects outside tenant `tenant`'s two schemas (`tenant` and `book`) that `DROP SCHEMA
/// ... CASCADE` of them would drop too, as the server describes them, sorted: followed
/// through `pg_depend` as CASCADE follows it (what depends on a dropped object, and the object
/// a dropped one is an internal part of), then those not in the two schemas (nor `pg_toast`,
/// where their tables' TOAST tables live), compared as `pg_identify_object` gives a schema,
/// quoted when it must be (`"user"`); a trigger, policy, rule or column default is where
/// its table is, default privileges where they apply. The internal parts of a dropped object
/// are left out: a listed object's (a view's rule) need no naming, and the tenant's own (the
/// triggers on another schema's table that make a tenant's foreign key into it) come back
/// with it.
fn dependents_outside(
    c: &mut impl postgres::GenericClient,
    tenant: &str,
    book: &str,
) -> Result<Vec<String>, postgres::Error> {
    const SQL: &str = "
        WITH RECURSIVE dropped(classid, objid, objsubid) AS (
            SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass::pg_catalog.oid, n.oid, 0
              FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) ANY($1)
          UNION
            SELECT o.classid, o.objid, o.objsubid FROM dropped x CROSS JOIN LATERAL (
                SELECT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d
                 WHERE d.refclassid OPERATOR(pg_catalog.=) x.classid
                   AND d.refobjid OPERATOR(pg_catalog.=) x.objid
                   AND (x.objsubid OPERATOR(pg_catalog.=) 0
                        OR d.refobjsubid OPERATOR(pg_catalog.=) x.objsubid)
                UNION ALL
                SELECT d.refclassid, d.refobjid, 0 FROM pg_catalog.pg_depend d
                 WHERE d.classid OPERATOR(pg_catalog.=) x.classid
                   AND d.objid OPERATOR(pg_catalog.=) x.objid
                   AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['i', 'P']::\"char\"[])
            ) o
        ), outside AS (
            SELECT DISTINCT o.classid, o.objid, o.objsubid FROM dropped o
             CROSS JOIN LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, o.objsubid) i
             CROSS JOIN LATERAL (SELECT COALESCE(i.schema, (
                   SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_namespace n
                    WHERE n.oid OPERATOR(pg_catalog.=) COALESCE(
                      (SELECT t.defaclnamespace FROM pg_catalog.pg_default_acl t
                        WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_default_acl'::pg_catalog.regclass::pg_catalog.oid
                          AND t.oid OPERATOR(pg_catalog.=) o.objid),
                      (SELECT c.relnamespace FROM pg_catalog.pg_class c
                        WHERE c.oid OPERATOR(pg_catalog.=) ANY(ARRAY(
                          SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.tableoid OPERATOR(pg_catalog.=) o.classid AND t.oid OPERATOR(pg_catalog.=) o.objid
                          UNION ALL SELECT t.polrelid FROM pg_catalog.pg_policy t WHERE t.tableoid OPERATOR(pg_catalog.=) o.classid AND t.oid OPERATOR(pg_catalog.=) o.objid
                          UNION ALL SELECT t.ev_class FROM pg_catalog.pg_rewrite t WHERE t.tableoid OPERATOR(pg_catalog.=) o.classid AND t.oid OPERATOR(pg_catalog.=) o.objid
                          UNION ALL SELECT t.adrelid FROM pg_catalog.pg_attrdef t WHERE t.tableoid OPERATOR(pg_catalog.=) o.classid AND t.oid OPERATOR(pg_catalog.=) o.objid))))
                    )) AS name) s
             WHERE (s.name IS NULL
                    OR NOT s.name OPERATOR(pg_catalog.=) ANY(ARRAY(
                        SELECT pg_catalog.quote_ident(x) FROM pg_catalog.unnest($1) x
                        UNION ALL SELECT 'pg_toast')))
               AND NOT (o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass::pg_catalog.oid
                        AND o.objid IN (SELECT n.oid FROM pg_catalog.pg_namespace n
                                         WHERE n.nspname OPERATOR(pg_catalog.=) ANY($1)))
        )
        SELECT DISTINCT pg_catalog.pg_describe_object(o.classid, o.objid, o.objsubid) AS what
          FROM outside o
         WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN dropped p
                             ON p.classid OPERATOR(pg_catalog.=) d.refclassid
                            AND p.objid OPERATOR(pg_catalog.=) d.refobjid
                          WHERE d.classid OPERATOR(pg_catalog.=) o.classid
                            AND d.objid OPERATOR(pg_catalog.=) o.objid
                            AND d.deptype OPERATOR(pg_catalog.=) 'i'
                            AND NOT (p.classid OPERATOR(pg_catalog.=) o.classid
                                     AND p.objid OPERATOR(pg_catalog.=) o.objid))
         ORDER BY what";
    let schemas = vec![tenant.to_string(), book.to_string()];
    Ok(c.query(SQL, &[&schemas])?
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect())
}

/// The refusal of a restore of `tenant` while `outside` (from [`dependents_outside`])
/// depends on its schemas.
fn refuse_dependents(target: &Target, tenant: &str, outside: &[String]) -> Error {
    const SHOWN: usize = 20;
    let mut list = outside
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if outside.len() > SHOWN {
        list.push_str(&format!("; and {} more", outside.len() - SHOWN));
    }
    Error::Refused(vec![crate::core::error::Refusal::Restore {
        db: target.as_path(),
        message: format!(
            "restoring tenant `{tenant}` drops its schemas `{tenant}` and `{}`, and with them \
             these objects outside them that depend on them, which the tenant's backup does not \
             hold and cannot bring back: {list}. Drop them, or move them into the tenant's \
             schema, first (and create them again after the restore)",
            target.book()
        ),
    }])
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Why a replay stopped.
enum Replay {
    Server(postgres::Error),
    /// Objects outside a tenant's two schemas depend on them (see [`dependents_outside`]).
    Dependents(Vec<String>),
    Data(std::io::Error),
}

impl From<postgres::Error> for Replay {
    fn from(e: postgres::Error) -> Self {
        Replay::Server(e)
    }
}

/// Inside the restore's transaction: carry the audit log over, empty the database, replay the
/// dump, put the carried rows back, audit the restore. Returns the rows carried.
fn replay(
    tx: &mut Transaction<'_>,
    book: &str,
    pieces: &[Piece],
    chosen: &Backup,
    undo: &Path,
) -> Result<usize, Replay> {
    ledger::lock(tx, book)?;
    let audit: Vec<postgres::Row> = tx.query(
        &*ledger::in_book(
            book,
            "SELECT id, at, phase, module, stamp, action, outcome, detail, rows, fuel_used,
                duration_ms, operator, checksum
         FROM strata.strata_migration_audit ORDER BY id",
        ),
        &[],
    )?;
    // A tenant's backup is of its schema and its bookkeeping schema: those two go, the
    // other tenants' and the database's own objects stay.
    if let Some(tenant) = ledger::tenant_of(book) {
        // CASCADE would drop, in every other schema, what depends on these two (a view, another
        // tenant's foreign key, a column typed with the tenant's type) and the tenant's backup
        // cannot bring any of it back: refused while there is any.
        let outside = dependents_outside(tx, tenant, book)?;
        if !outside.is_empty() {
            return Err(Replay::Dependents(outside));
        }
        for s in [tenant, book] {
            tx.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))?;
        }
        return replay_pieces(tx, book, pieces, chosen, undo, &audit);
    }
    // The database's own backup holds every schema (the tenants' too) and what pg_dump keeps
    // outside them, so what CASCADE drops here the replay puts back.
    let schemas: Vec<String> = tx
        .query(
            "SELECT n.nspname::text FROM pg_catalog.pg_namespace n
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let version: i32 = tx
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )?
        .get(0);
    for s in &schemas {
        tx.batch_execute(&format!(
            "DROP SCHEMA \"{}\" CASCADE",
            s.replace('"', "\"\"")
        ))?;
    }
    // What the archive holds outside any schema, which it would otherwise create a second
    // time: the large objects (with their oids) and the publications.
    let publications: Vec<String> = tx
        .query(
            "SELECT pubname::pg_catalog.text FROM pg_catalog.pg_publication",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for p in &publications {
        tx.batch_execute(&format!("DROP PUBLICATION \"{}\"", p.replace('"', "\"\"")))?;
    }
    tx.batch_execute(
        "SELECT pg_catalog.lo_unlink(l.oid) FROM pg_catalog.pg_largeobject_metadata l",
    )?;
    // pg_dump leaves the public schema out (every database has one): put it back as a new
    // database has it.
    tx.batch_execute(if version >= 150000 {
        "CREATE SCHEMA public AUTHORIZATION pg_database_owner;
         GRANT USAGE ON SCHEMA public TO PUBLIC;
         COMMENT ON SCHEMA public IS 'standard public schema';"
    } else {
        "CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC;
         COMMENT ON SCHEMA public IS 'standard public schema';"
    })?;
    replay_pieces(tx, book, pieces, chosen, undo, &audit)
}

/// The rest of [`replay`], once what the dump puts back is gone: the dump, the carried audit
/// rows, the restore's own audit row.
fn replay_pieces(
    tx: &mut Transaction<'_>,
    book: &str,
    pieces: &[Piece],
    chosen: &Backup,
    undo: &Path,
    audit: &[postgres::Row],
) -> Result<usize, Replay> {
    for piece in pieces {
        match piece {
            Piece::Sql(sql) => tx.batch_execute(sql)?,
            Piece::Copy { statement, data } => {
                let mut w = tx.copy_in(statement.as_str())?;
                // A failed write aborts the COPY when the writer drops; the transaction is
                // then rolled back whole.
                w.write_all(data.as_bytes()).map_err(Replay::Data)?;
                w.finish()?;
            }
        }
    }
    tx.batch_execute("SET search_path = pg_catalog")?;
    let restored_max: i64 = tx
        .query_one(
            &*ledger::in_book(
                book,
                "SELECT COALESCE(max(id), 0) FROM strata.strata_migration_audit",
            ),
            &[],
        )?
        .get(0);
    let mut carried = 0;
    for r in audit.iter().filter(|r| r.get::<_, i64>(0) > restored_max) {
        tx.execute(
            &*ledger::in_book(
                book,
                "INSERT INTO strata.strata_migration_audit
                 (id, at, phase, module, stamp, action, outcome, detail, rows, fuel_used,
                  duration_ms, operator, checksum)
             OVERRIDING SYSTEM VALUE
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            ),
            &[
                &r.get::<_, i64>(0),
                &r.get::<_, String>(1),
                &r.get::<_, String>(2),
                &r.get::<_, Option<String>>(3),
                &r.get::<_, Option<String>>(4),
                &r.get::<_, String>(5),
                &r.get::<_, String>(6),
                &r.get::<_, Option<String>>(7),
                &r.get::<_, Option<i64>>(8),
                &r.get::<_, Option<i64>>(9),
                &r.get::<_, Option<i64>>(10),
                &r.get::<_, String>(11),
                &r.get::<_, Option<String>>(12),
            ],
        )?;
        carried += 1;
    }
    tx.batch_execute(&ledger::in_book(
        book,
        "SELECT pg_catalog.setval(
             pg_catalog.pg_get_serial_sequence('strata.strata_migration_audit', 'id'),
             GREATEST((SELECT max(id) FROM strata.strata_migration_audit), 1))",
    ))?;
    // Objects came back with new oids: ownership follows them by name.
    super::schema::rekey(tx, book)?;
    let entry = crate::core::ledger::Entry::for_run(
        crate::core::event::Phase::Restore.as_str(),
        "restore",
        format!(
            "{} (taken {}); the state before is {}",
            chosen.path.display(),
            chosen.record.taken_at,
            undo.display()
        ),
    );
    ledger::append(tx, book, &[entry])?;
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_splits_into_sql_and_copy_blocks() {
        let script = "\\restrict abc\n\
                      SET x = 1;\n\
                      CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\n\
                      COPY t FROM stdin;\n\
                      $$;\n\
                      COPY strata.strata_database (id, created_at) FROM stdin;\n\
                      abc123\t2026\n\
                      \\.\n\
                      SELECT 1;\n\
                      \\unrestrict abc\n";
        let p = pieces(script).unwrap();
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(matches!(&p[0], Piece::Sql(s) if s.contains("COPY t FROM stdin;\n$$;")));
        assert_eq!(
            p[1],
            Piece::Copy {
                statement: "COPY strata.strata_database (id, created_at) FROM stdin".into(),
                data: "abc123\t2026\n".into()
            }
        );
        assert_eq!(identity_in(&p, "strata").as_deref(), Some("abc123"));
        assert_eq!(identity_in(&p, "strata_acme"), None);
        assert!(DEFINITIONS.contains(DEFINITIONS_SCHEMAS));
        assert!(pieces("\\connect other\n").is_err());
        assert!(pieces("COPY t (a) FROM stdin;\n1\n").is_err());
    }
}
