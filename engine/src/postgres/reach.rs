//! What PostgreSQL does past a component's role on the tables it is granted: the server runs a
//! foreign key's referential actions (`ON DELETE`/`ON UPDATE` `CASCADE`, `SET NULL`, `SET
//! DEFAULT`) and a table's rewrite rules as the table's owner, checks a foreign key's keys in
//! the other table whatever the role may read ("Key (x)=(1) is not present in table t"), and
//! reads and writes a table's inheritance children through the parent on the parent's
//! privileges alone. So a table a component may use can reach tables the manifest does not
//! list. [`outside_the_manifest`] finds such reach before the component runs; the call is
//! refused unless the manifest lists the tables reached.
//!
//! A view reads and writes the relations it names with its owner's rights (unless it is
//! `security_invoker`), so a view without that option in `reads` needs every relation it
//! reaches (through nested views too) in `reads` or `writes`, and one in `writes` needs them in
//! `writes`. Materialized views hold their own rows and count as tables.
//!
//! Partitions are the partitioned table's rows: a partition of a listed table counts as listed.

use postgres::Client;

use crate::components::Policy;

/// Why the component may not run with `policy` on this database: each table a listed table
/// reaches past the role, and what to add to migration.toml. `None` when nothing does (always
/// when `writes` is absent: every table is then granted).
pub fn outside_the_manifest(
    client: &mut Client,
    policy: &Policy,
) -> Result<Option<String>, postgres::Error> {
    let Some(writes) = &policy.writes else {
        return Ok(None);
    };
    let writes: Vec<String> = writes.iter().cloned().collect();
    let reads: Option<Vec<String>> = policy.reads.as_ref().map(|r| r.iter().cloned().collect());
    let rows = client.query(REACH, &[&writes, &reads])?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut why = String::new();
    for row in rows.iter().take(MAX_LISTED) {
        why.push_str("\n  ");
        why.push_str(row.get::<_, &str>(0));
    }
    if rows.len() > MAX_LISTED {
        why.push_str(&format!("\n  ... and {} more", rows.len() - MAX_LISTED));
    }
    Ok(Some(format!(
        "the tables of `reads` and `writes` reach tables outside them through what PostgreSQL \
         runs as the tables' owner, past the component's grants:{why}\nList those tables in \
         migration.toml (or change the schema) so that what the component can change or learn \
         is what the manifest says"
    )))
}

/// How many reaches a refusal lists.
const MAX_LISTED: usize = 20;

/// One row per reach, its description. `$1`: the names of `writes`; `$2`: those of `reads`
/// (NULL: every table is readable). Relations are compared by their partition root.
const REACH: &str = "
WITH RECURSIVE w AS (SELECT DISTINCT COALESCE(pg_catalog.pg_partition_root(o)::pg_catalog.oid, o) AS oid
             FROM (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
                     FROM pg_catalog.unnest($1::pg_catalog.text[]) x) l
            WHERE o IS NOT NULL),
     r AS (SELECT oid FROM w
           UNION
           SELECT COALESCE(pg_catalog.pg_partition_root(o)::pg_catalog.oid, o)
             FROM (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
                     FROM pg_catalog.unnest($2::pg_catalog.text[]) x) l
            WHERE o IS NOT NULL),
     fk AS (SELECT c.conname, c.conrelid, c.confrelid, c.confdeltype, c.confupdtype,
                   COALESCE(pg_catalog.pg_partition_root(c.conrelid)::pg_catalog.oid, c.conrelid) AS child,
                   COALESCE(pg_catalog.pg_partition_root(c.confrelid)::pg_catalog.oid, c.confrelid) AS parent
              FROM pg_catalog.pg_constraint c
             WHERE c.contype = 'f' AND c.conparentid = 0),
     -- The relations each listed view without security_invoker reaches (through the views
     -- it reads, whatever theirs say: they run with its owner's rights).
     reached(root, rel) AS (
       SELECT v.oid, d.refobjid
         FROM pg_catalog.pg_class v
         JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid AND rw.rulename = '_RETURN'
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> v.oid
        WHERE v.relkind = 'v'
          AND (v.oid IN (SELECT oid FROM w) OR ($2 IS NOT NULL AND v.oid IN (SELECT oid FROM r)))
          AND NOT EXISTS (SELECT FROM pg_catalog.unnest(v.reloptions) o
                           WHERE pg_catalog.lower(o) IN ('security_invoker=true', 'security_invoker=on',
                                                         'security_invoker=yes', 'security_invoker=1'))
       UNION
       SELECT re.root, d.refobjid
         FROM reached re
         JOIN pg_catalog.pg_class v ON v.oid = re.rel AND v.relkind = 'v'
         JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid AND rw.rulename = '_RETURN'
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> v.oid)
SELECT pg_catalog.format(
         '`%s` (in `writes`): deleting or updating its rows runs foreign key `%s` of `%s` (%s), '
         'which changes `%s` as its owner: add `%s` to `writes`',
         fk.parent::pg_catalog.regclass, fk.conname, fk.child::pg_catalog.regclass,
         pg_catalog.concat_ws(', ',
           CASE fk.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE' WHEN 'n' THEN 'ON DELETE SET NULL'
                               WHEN 'd' THEN 'ON DELETE SET DEFAULT' END,
           CASE fk.confupdtype WHEN 'c' THEN 'ON UPDATE CASCADE' WHEN 'n' THEN 'ON UPDATE SET NULL'
                               WHEN 'd' THEN 'ON UPDATE SET DEFAULT' END),
         fk.child::pg_catalog.regclass, fk.child::pg_catalog.regclass)
  FROM fk
 WHERE fk.parent IN (SELECT oid FROM w) AND fk.child NOT IN (SELECT oid FROM w)
   AND (fk.confdeltype IN ('c', 'n', 'd') OR fk.confupdtype IN ('c', 'n', 'd'))
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `writes`): foreign key `%s` links it to `%s`, and its checks tell the '
         'component which keys `%s` holds: add `%s` to `reads`',
         l.written::pg_catalog.regclass, l.conname, l.other::pg_catalog.regclass,
         l.other::pg_catalog.regclass, l.other::pg_catalog.regclass)
  FROM (SELECT fk.conname,
               CASE WHEN fk.child IN (SELECT oid FROM w) THEN fk.child ELSE fk.parent END AS written,
               CASE WHEN fk.child IN (SELECT oid FROM w) THEN fk.parent ELSE fk.child END AS other
          FROM fk
         WHERE NOT (fk.parent IN (SELECT oid FROM w)
                    AND (fk.confdeltype IN ('c', 'n', 'd') OR fk.confupdtype IN ('c', 'n', 'd')))
            OR fk.child IN (SELECT oid FROM w)) l
 WHERE $2 IS NOT NULL AND l.written IN (SELECT oid FROM w) AND l.other NOT IN (SELECT oid FROM r)
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `%s`): its inheritance child `%s` is read%s through it on the parent''s grants '
         'alone: add `%s` to `%s` (or make it a partition)',
         i.inhparent::pg_catalog.regclass, CASE WHEN i.inhparent IN (SELECT oid FROM w)
                                                THEN 'writes' ELSE 'reads' END,
         i.inhrelid::pg_catalog.regclass,
         CASE WHEN i.inhparent IN (SELECT oid FROM w) THEN ' and written' ELSE '' END,
         i.inhrelid::pg_catalog.regclass,
         CASE WHEN i.inhparent IN (SELECT oid FROM w) THEN 'writes' ELSE 'reads' END)
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND NOT c.relispartition
 WHERE (i.inhparent IN (SELECT oid FROM w) AND i.inhrelid NOT IN (SELECT oid FROM w))
    OR ($2 IS NOT NULL AND i.inhparent IN (SELECT oid FROM r)
        AND i.inhrelid NOT IN (SELECT oid FROM r))
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `writes`): its rule `%s` runs as the table''s owner whatever it does: drop '
         'the rule or run this change as SQL',
         ru.ev_class::pg_catalog.regclass, ru.rulename)
  FROM pg_catalog.pg_rewrite ru
 WHERE ru.ev_class IN (SELECT oid FROM w) AND ru.rulename <> '_RETURN'
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `%s`): the view reaches `%s` with its owner''s rights, past the component''s '
         'grants: add `%s` to `%s`, or have the view check the component''s own '
         '(ALTER VIEW %s SET (security_invoker = true))',
         x.root::pg_catalog.regclass, x.list, x.rel::pg_catalog.regclass,
         x.rel::pg_catalog.regclass, x.list, x.root::pg_catalog.regclass)
  FROM (SELECT DISTINCT re.root, re.rel,
               CASE WHEN re.root IN (SELECT oid FROM w) THEN 'writes' ELSE 'reads' END AS list,
               COALESCE(pg_catalog.pg_partition_root(re.rel)::pg_catalog.oid, re.rel) AS whole
          FROM reached re
          JOIN pg_catalog.pg_class c ON c.oid = re.rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) x
 WHERE (x.list = 'writes' AND x.whole NOT IN (SELECT oid FROM w))
    OR (x.list = 'reads' AND x.whole NOT IN (SELECT oid FROM r))
ORDER BY 1";
