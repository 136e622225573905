//! What PostgreSQL does past a component's role on the tables it is granted: the server runs a
//! foreign key's referential actions (`ON DELETE`/`ON UPDATE` `CASCADE`, `SET NULL`, `SET
//! DEFAULT`) and a table's rewrite rules as the table's owner, checks a foreign key's keys in
//! the other table whatever the role may read ("Key (x)=(1) is not present in table t"), and
//! reads and writes a table's inheritance children through the parent on the parent's
//! privileges alone. So a table a component may use can reach tables the manifest does not
//! list. [`outside_the_manifest`] finds such reach before the component runs; the call is
//! refused unless the manifest lists the tables reached.
//!
//! A view reads and writes the relations it names with its owner's rights, or with the
//! component's role's when it is `security_invoker`, and those include whatever PUBLIC is
//! granted; so a view in `reads` needs every relation it reaches (through nested views too) in
//! `reads` or `writes`, and one in `writes` needs them in `writes`, whatever its option. The
//! relations a listed table's row security policies read are held to `reads` the same way.
//! Materialized views hold their own rows and count as tables.
//!
//! Partitions are judged each on its own: a listed partitioned table covers its partitions
//! (they hold its rows), but a listed partition never covers its siblings or its parent; what
//! a foreign key's action changes in a partitioned table is each of its partitions.
//!
//! A statement also runs functions the component never names: a written table's triggers
//! (with their `WHEN` conditions), column defaults, generated columns, check constraints and
//! index expressions, the constraints and defaults of its columns' domains, the user-defined
//! casts of the columns' types of what it reads or writes, the row security policies and view
//! bodies of what it reads or writes, and the database's event triggers on its DDL. Each runs
//! as the component's role unless it is `SECURITY DEFINER` (or sets the role).
//! [`outside_the_manifest`] refuses the call when any of them is, and when any is a function of
//! the database's own while the database holds a `SECURITY DEFINER` function every role may
//! execute, or a relation outside the lists that PUBLIC holds a privilege on (a function's body
//! may call any function and use what the role's grants and PUBLIC's allow, and PostgreSQL
//! records none of it).
//!
//! Some run as another role whatever they are: what a referential action fires in the table it
//! changes (its triggers, defaults, checks, index expressions, domains, casts) and a foreign
//! key's operators run as a table's owner, and a deferrable trigger or constraint fires at
//! `COMMIT` or `SET CONSTRAINTS`, after strata has reset the role, as the migrating user. Any
//! function of the database's own there refuses the call. (Refused rather than flushed with
//! `SET CONSTRAINTS ALL IMMEDIATE` before the role is reset: that would fire do.sql's own
//! deferred checks as the component's role and end their deferral in the middle of the step.)

use postgres::Client;

use crate::components::Policy;

/// Why the component may not run with `policy` on this database: each table a listed table
/// reaches past the role, each function its statements would run as another role, and what to
/// change. `None` when nothing does.
pub fn outside_the_manifest(
    client: &mut Client,
    policy: &Policy,
    tenant: Option<&str>,
    fleet_schemas: &[String],
) -> Result<Option<String>, postgres::Error> {
    let writes: Option<Vec<String>> = policy.writes.as_ref().map(|w| w.iter().cloned().collect());
    let reads: Option<Vec<String>> = policy.reads.as_ref().map(|r| r.iter().cloned().collect());
    // The queries join many catalogs, so the planner's estimates pass the JIT thresholds and
    // compiling them takes seconds while running them takes milliseconds: JIT off for them,
    // then back to what it was (inside the step's transaction).
    let jit: String = client
        .query_one(
            "SELECT pg_catalog.current_setting('jit'), pg_catalog.set_config('jit', 'off', true)",
            &[],
        )?
        .get(0);
    // What lies outside the run's own scope (another tenant's schema, the database's own, a
    // bookkeeping schema) is refused first, whatever the lists say.
    let scope = client.query(&*scope_sql(), &[&writes, &reads, &tenant, &fleet_schemas])?;
    if !scope.is_empty() {
        client.query_one("SELECT pg_catalog.set_config('jit', $1, true)", &[&jit])?;
        let mut why = String::new();
        for row in scope.iter().take(MAX_LISTED) {
            why.push_str("\n  ");
            why.push_str(row.get::<_, &str>(0));
        }
        if scope.len() > MAX_LISTED {
            why.push_str(&format!("\n  ... and {} more", scope.len() - MAX_LISTED));
        }
        let whose = match tenant {
            Some(t) => format!("tenant `{t}`'s run, which may reach its own schema `{t}` only"),
            None => "the database's own run, which may reach neither a tenant's schema nor \
                     strata's bookkeeping (`strata`, `strata_<tenant>`)"
                .to_string(),
        };
        return Ok(Some(format!(
            "the component would reach past its run's scope ({whose}): what a view reads, a \
             referential action or rule changes, an inheritance child holds or a row security \
             policy reads is done with the owner's rights or the grants of PUBLIC, whatever the \
             lists say (no lists meaning every table of the run's scope):{why}\nDrop or change \
             those views, foreign keys, rules, children or policies (or do this change in \
             do.sql) so that the component reaches its own scope only"
        )));
    }
    let mut rows = client.query(FIRED, &[&writes, &reads])?;
    // Without `writes` every table is granted: no table reaches past the grants.
    if writes.is_some() {
        rows.extend(client.query(REACH, &[&writes, &reads])?);
    }
    client.query_one("SELECT pg_catalog.set_config('jit', $1, true)", &[&jit])?;
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
        "the tables of `reads` and `writes` reach past the component's grants through what \
         PostgreSQL runs as another role (the tables' owner, a function's, the migrating user's at \
         COMMIT) or through what PUBLIC is granted:{why}\nList those \
         tables in migration.toml (or change the schema) so that what the component can change \
         or learn is what the manifest says"
    )))
}

/// [`SCOPE`] with the condition that tells a tenant's or bookkeeping schema filled in.
fn scope_sql() -> String {
    SCOPE.replace("{book}", &crate::postgres::ledger::tenants_sql("n.nspname"))
}

/// One row per relation outside the run's scope that a component may reach, its description.
/// `$1`: the names of `writes`; `$2`: those of `reads` (NULL: every relation of the scope);
/// `$3`: the tenant's schema in a tenant's run (its scope is that schema), NULL in the
/// database's own run (its scope is every schema but `strata`, the tenants' and their
/// bookkeeping, nor `$4`, the tenants' schemas strata.toml lists, run or not). Reached: the listed relations themselves, what a view reads (whatever its
/// security option, through nested views), what a written relation's referential actions
/// (`ON DELETE`/`ON UPDATE` `CASCADE`, `SET NULL`, `SET DEFAULT`) and rules change, its
/// inheritance children and partitions, and what its row security policies read; in turn from
/// each relation reached. A foreign key's checks are left out: they tell whether a key exists,
/// and change nothing. The catalogs are in every scope (the statement check judges them).
const SCOPE: &str = "
WITH RECURSIVE ns AS (
       SELECT n.oid, n.nspname,
              CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN false
                   WHEN $3::pg_catalog.text IS NOT NULL THEN n.nspname <> $3::pg_catalog.text
                   ELSE n.nspname = 'strata' OR n.nspname = ANY($4::pg_catalog.text[])
                        OR {book} END AS outside,
              CASE WHEN $3::pg_catalog.text IS NOT NULL THEN n.nspname = $3::pg_catalog.text
                   ELSE n.nspname NOT IN ('strata', 'information_schema')
                        AND n.nspname !~ '^pg_' AND NOT {book}
                        AND n.nspname <> ALL($4::pg_catalog.text[]) END AS home
         FROM pg_catalog.pg_namespace n),
     rel AS (SELECT c.oid, ns.nspname, ns.outside, ns.home
               FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')),
     roots(oid, w) AS (
       SELECT pg_catalog.to_regclass(x)::pg_catalog.oid, true
         FROM pg_catalog.unnest($1::pg_catalog.text[]) x
       UNION
       SELECT pg_catalog.to_regclass(x)::pg_catalog.oid, false
         FROM pg_catalog.unnest($2::pg_catalog.text[]) x
       UNION
       SELECT r.oid, true FROM rel r WHERE $1::pg_catalog.text[] IS NULL AND r.home
       UNION
       SELECT r.oid, false FROM rel r WHERE $2::pg_catalog.text[] IS NULL AND r.home),
     -- (from, to, whether `from` must be written, whether `to` is then written (NULL: as
     -- `from`), how).
     edge(src, dst, needs_w, w, how) AS (
       SELECT rw.ev_class, d.refobjid, false, NULL::boolean, 'the view''s query'
         FROM pg_catalog.pg_rewrite rw
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid <> rw.ev_class
        WHERE rw.rulename = '_RETURN'
       UNION ALL
       SELECT rw.ev_class, d.refobjid, true, true,
              pg_catalog.format('its rule `%s`, run as the table''s owner', rw.rulename)
         FROM pg_catalog.pg_rewrite rw
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid <> rw.ev_class
        WHERE rw.rulename <> '_RETURN'
       UNION ALL
       SELECT k.confrelid, t.relid::pg_catalog.oid, true, true,
              pg_catalog.format('foreign key `%s` of `%s` (%s), run as its owner', k.conname,
                k.conrelid::pg_catalog.regclass,
                pg_catalog.concat_ws(', ',
                  CASE k.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE'
                                     WHEN 'n' THEN 'ON DELETE SET NULL'
                                     WHEN 'd' THEN 'ON DELETE SET DEFAULT' END,
                  CASE k.confupdtype WHEN 'c' THEN 'ON UPDATE CASCADE'
                                     WHEN 'n' THEN 'ON UPDATE SET NULL'
                                     WHEN 'd' THEN 'ON UPDATE SET DEFAULT' END))
         FROM pg_catalog.pg_constraint k,
              LATERAL (SELECT k.conrelid AS relid
                       UNION SELECT relid FROM pg_catalog.pg_partition_tree(k.conrelid)) t
        WHERE k.contype = 'f'
          AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
       UNION ALL
       SELECT i.inhparent, i.inhrelid, false, NULL,
              CASE WHEN c.relispartition THEN 'its partition'
                   ELSE 'its inheritance child, read and written through it' END
         FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
       UNION ALL
       SELECT p.polrelid, d.refobjid, false, false,
              pg_catalog.format('its row security policy `%s`', p.polname)
         FROM pg_catalog.pg_policy p
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid <> p.polrelid),
     reach(oid, w, src, how) AS (
       SELECT oid, w, 0::pg_catalog.oid, NULL::pg_catalog.text FROM roots WHERE oid IS NOT NULL
       UNION
       SELECT e.dst, COALESCE(e.w, re.w), re.oid, e.how COLLATE pg_catalog.\"default\"
         FROM reach re JOIN edge e ON e.src = re.oid AND (re.w OR NOT e.needs_w))
SELECT x.msg FROM (
  SELECT DISTINCT ON (re.oid)
         CASE WHEN re.src = 0 THEN pg_catalog.format(
                '`%s` (listed in migration.toml) is in schema `%s`, %s: take it out of '
                '`reads` and `writes`',
                re.oid::pg_catalog.regclass, r.nspname,
                CASE WHEN $3::pg_catalog.text IS NOT NULL
                     THEN pg_catalog.format('outside tenant `%s`''s schema', $3::pg_catalog.text)
                     ELSE 'a tenant''s schema or strata''s bookkeeping' END)
              ELSE pg_catalog.format(
                '`%s` reaches `%s`, in schema `%s` (%s), through %s',
                re.src::pg_catalog.regclass, re.oid::pg_catalog.regclass, r.nspname,
                CASE WHEN $3::pg_catalog.text IS NOT NULL
                     THEN pg_catalog.format('outside tenant `%s`''s schema', $3::pg_catalog.text)
                     ELSE 'a tenant''s schema or strata''s bookkeeping' END,
                re.how) END AS msg
    FROM reach re JOIN rel r ON r.oid = re.oid
   WHERE r.outside
     -- Each the first relation out of the scope on its way, not what lies beyond it.
     AND (re.src = 0 OR re.src NOT IN (SELECT oid FROM rel WHERE outside))
   ORDER BY re.oid, re.src) x
ORDER BY 1";

/// How many reaches a refusal lists.
const MAX_LISTED: usize = 20;

/// One row per reach, its description. `$1`: the names of `writes`; `$2`: those of `reads`
/// (NULL: every table is readable). `cw` (`cr`): what the lists cover, each listed relation
/// with the partitions under it.
const REACH: &str = "
WITH RECURSIVE lw AS (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
                        FROM pg_catalog.unnest($1::pg_catalog.text[]) x),
     lr AS (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
              FROM pg_catalog.unnest($2::pg_catalog.text[]) x),
     cw AS (SELECT o AS oid FROM lw WHERE o IS NOT NULL
            UNION
            SELECT t.relid::pg_catalog.oid FROM lw, LATERAL pg_catalog.pg_partition_tree(lw.o) t
             WHERE lw.o IS NOT NULL),
     cr AS (SELECT oid FROM cw
            UNION
            SELECT o FROM lr WHERE o IS NOT NULL
            UNION
            SELECT t.relid::pg_catalog.oid FROM lr, LATERAL pg_catalog.pg_partition_tree(lr.o) t
             WHERE lr.o IS NOT NULL),
     fk AS (SELECT c.conname, c.conrelid AS child, c.confrelid AS parent,
                   c.confdeltype, c.confupdtype,
                   c.confrelid IN (SELECT oid FROM cw)
                     OR EXISTS (SELECT FROM pg_catalog.pg_partition_tree(c.confrelid) t
                                 WHERE t.relid::pg_catalog.oid IN (SELECT oid FROM cw))
                     AS parent_written,
                   c.conrelid IN (SELECT oid FROM cw)
                     OR EXISTS (SELECT FROM pg_catalog.pg_partition_tree(c.conrelid) t
                                 WHERE t.relid::pg_catalog.oid IN (SELECT oid FROM cw))
                     AS child_written,
                   c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd') AS acts
              FROM pg_catalog.pg_constraint c
             WHERE c.contype = 'f' AND c.conparentid = 0),
     -- The tables a relation's rows are in: itself, or the leaves of its partition tree.
     leaves AS (SELECT c.oid AS rel, COALESCE(t.relid::pg_catalog.oid, c.oid) AS leaf
                  FROM pg_catalog.pg_class c
                  LEFT JOIN LATERAL (SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)
                                      WHERE isleaf) t ON c.relkind = 'p'
                 WHERE c.oid IN (SELECT child FROM fk UNION SELECT parent FROM fk)),
     -- The relations each listed view reaches (through the views it reads, whatever theirs
     -- say): one without security_invoker reads them with its owner's rights, one with it
     -- with the component's role's, and those include whatever PUBLIC is granted.
     reached(root, rel) AS (
       SELECT v.oid, d.refobjid
         FROM pg_catalog.pg_class v
         JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = v.oid AND rw.rulename = '_RETURN'
         JOIN pg_catalog.pg_depend d
           ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> v.oid
        WHERE v.relkind = 'v'
          AND (v.oid IN (SELECT oid FROM cw) OR ($2 IS NOT NULL AND v.oid IN (SELECT oid FROM cr)))
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
         l.leaf::pg_catalog.regclass, l.leaf::pg_catalog.regclass)
  FROM fk JOIN leaves l ON l.rel = fk.child
 WHERE fk.parent_written AND fk.acts AND l.leaf NOT IN (SELECT oid FROM cw)
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `writes`): foreign key `%s` links it to `%s`, and its checks tell the '
         'component which keys `%s` holds: add `%s` to `reads`',
         CASE WHEN fk.child_written THEN fk.child ELSE fk.parent END::pg_catalog.regclass,
         fk.conname, CASE WHEN fk.child_written THEN fk.parent ELSE fk.child END::pg_catalog.regclass,
         l.leaf::pg_catalog.regclass, l.leaf::pg_catalog.regclass)
  FROM fk JOIN leaves l ON l.rel = CASE WHEN fk.child_written THEN fk.parent ELSE fk.child END
 WHERE $2 IS NOT NULL AND (fk.child_written OR (fk.parent_written AND NOT fk.acts))
   AND l.leaf NOT IN (SELECT oid FROM cr)
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `%s`): its inheritance child `%s` is read%s through it on the parent''s grants '
         'alone: add `%s` to `%s` (or make it a partition)',
         i.inhparent::pg_catalog.regclass, CASE WHEN i.inhparent IN (SELECT oid FROM cw)
                                                THEN 'writes' ELSE 'reads' END,
         i.inhrelid::pg_catalog.regclass,
         CASE WHEN i.inhparent IN (SELECT oid FROM cw) THEN ' and written' ELSE '' END,
         i.inhrelid::pg_catalog.regclass,
         CASE WHEN i.inhparent IN (SELECT oid FROM cw) THEN 'writes' ELSE 'reads' END)
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND NOT c.relispartition
 WHERE (i.inhparent IN (SELECT oid FROM cw) AND i.inhrelid NOT IN (SELECT oid FROM cw))
    OR ($2 IS NOT NULL AND i.inhparent IN (SELECT oid FROM cr)
        AND i.inhrelid NOT IN (SELECT oid FROM cr))
UNION ALL
SELECT pg_catalog.format(
         '`%s` (in `writes`): its rule `%s` runs as the table''s owner whatever it does: drop '
         'the rule or run this change as SQL',
         ru.ev_class::pg_catalog.regclass, ru.rulename)
  FROM pg_catalog.pg_rewrite ru
 WHERE ru.ev_class IN (SELECT oid FROM cw) AND ru.rulename <> '_RETURN'
UNION ALL
SELECT CASE WHEN x.invoker THEN pg_catalog.format(
         '`%s` (in `%s`): the view reaches `%s`, outside the lists, with the component''s role''s '
         'rights, and those include whatever PUBLIC is granted: add `%s` to `%s`',
         x.root::pg_catalog.regclass, x.list, x.rel::pg_catalog.regclass,
         x.rel::pg_catalog.regclass, x.list)
       ELSE pg_catalog.format(
         '`%s` (in `%s`): the view reaches `%s` with its owner''s rights, past the component''s '
         'grants: add `%s` to `%s`, or have the view check the component''s own '
         '(ALTER VIEW %s SET (security_invoker = true); it still needs `%s` listed)',
         x.root::pg_catalog.regclass, x.list, x.rel::pg_catalog.regclass,
         x.rel::pg_catalog.regclass, x.list, x.root::pg_catalog.regclass,
         x.rel::pg_catalog.regclass) END
  FROM (SELECT DISTINCT re.root, re.rel,
               CASE WHEN re.root IN (SELECT oid FROM cw) THEN 'writes' ELSE 'reads' END AS list,
               EXISTS (SELECT FROM pg_catalog.pg_class v, pg_catalog.unnest(v.reloptions) o
                        WHERE v.oid = re.root
                          AND pg_catalog.lower(o) IN ('security_invoker=true', 'security_invoker=on',
                                                      'security_invoker=yes', 'security_invoker=1'))
                 AS invoker
          FROM reached re
          JOIN pg_catalog.pg_class c ON c.oid = re.rel AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) x
 WHERE (x.list = 'writes' AND x.rel NOT IN (SELECT oid FROM cw))
    OR (x.list = 'reads' AND x.rel NOT IN (SELECT oid FROM cr))
UNION ALL
SELECT DISTINCT pg_catalog.format(
         '`%s` (in `%s`): its row security policy `%s` reads `%s`, outside the lists, with the '
         'component''s role''s rights, and those include whatever PUBLIC is granted: add `%s` to '
         '`reads`',
         p.polrelid::pg_catalog.regclass,
         CASE WHEN p.polrelid IN (SELECT oid FROM cw) THEN 'writes' ELSE 'reads' END, p.polname,
         d.refobjid::pg_catalog.regclass, d.refobjid::pg_catalog.regclass)
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> p.polrelid
  JOIN pg_catalog.pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
 WHERE $2 IS NOT NULL AND p.polrelid IN (SELECT oid FROM cr)
   AND d.refobjid NOT IN (SELECT oid FROM cr)
ORDER BY 1";

/// One row per function a component's statements would run as another role (or that would use
/// PUBLIC's grants past the lists), its description. `$1`: the names of `writes` (NULL: every
/// table); `$2`: those of `reads` (NULL: every table).
const FIRED: &str = "
WITH RECURSIVE lw AS (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
                        FROM pg_catalog.unnest($1::pg_catalog.text[]) x),
     lr AS (SELECT pg_catalog.to_regclass(x)::pg_catalog.oid AS o
              FROM pg_catalog.unnest($2::pg_catalog.text[]) x),
     everything AS (SELECT c.oid FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                       AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'strata'])
                       AND n.nspname NOT LIKE 'pg\\_%'),
     cw AS (SELECT oid FROM everything WHERE $1::pg_catalog.text[] IS NULL
            UNION
            SELECT o FROM lw WHERE o IS NOT NULL
            UNION
            SELECT t.relid::pg_catalog.oid FROM lw, LATERAL pg_catalog.pg_partition_tree(lw.o) t
             WHERE lw.o IS NOT NULL),
     cr AS (SELECT oid FROM everything WHERE $2::pg_catalog.text[] IS NULL
            UNION
            SELECT oid FROM cw
            UNION
            SELECT o FROM lr WHERE o IS NOT NULL
            UNION
            SELECT t.relid::pg_catalog.oid FROM lr, LATERAL pg_catalog.pg_partition_tree(lr.o) t
             WHERE lr.o IS NOT NULL),
     -- The tables a foreign key's referential action changes as their owner when the component
     -- changes a table of `writes`, through the actions those changes run in turn, with the
     -- key that changes each (one of them).
     acting AS (SELECT c.conrelid, c.confrelid,
                       pg_catalog.format('foreign key `%s` of `%s` (%s) from `%s`', c.conname,
                         c.conrelid::pg_catalog.regclass,
                         pg_catalog.concat_ws(', ',
                           CASE c.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE'
                                              WHEN 'n' THEN 'ON DELETE SET NULL'
                                              WHEN 'd' THEN 'ON DELETE SET DEFAULT' END,
                           CASE c.confupdtype WHEN 'c' THEN 'ON UPDATE CASCADE'
                                              WHEN 'n' THEN 'ON UPDATE SET NULL'
                                              WHEN 'd' THEN 'ON UPDATE SET DEFAULT' END),
                         c.confrelid::pg_catalog.regclass) AS via
                  FROM pg_catalog.pg_constraint c
                 WHERE c.contype = 'f'
                   AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))),
     owned(oid, via) AS (
       SELECT t.relid::pg_catalog.oid, a.via
         FROM acting a,
              LATERAL (SELECT a.conrelid AS relid
                       UNION SELECT relid FROM pg_catalog.pg_partition_tree(a.conrelid)) t
        WHERE a.confrelid IN (SELECT oid FROM cw)
       UNION
       SELECT t.relid::pg_catalog.oid, a.via
         FROM owned o JOIN acting a ON a.confrelid = o.oid,
              LATERAL (SELECT a.conrelid AS relid
                       UNION SELECT relid FROM pg_catalog.pg_partition_tree(a.conrelid)) t),
     ow AS (SELECT DISTINCT ON (oid) oid, via FROM owned ORDER BY oid, via),
     -- The types of the columns of a relation: 'w' of `writes`, 'r' of `reads` or `writes`,
     -- 'o' of a table a referential action changes; through domains, arrays and composite
     -- types.
     types(tag, typ) AS (
       SELECT s.tag, a.atttypid
         FROM (SELECT 'w' AS tag, oid FROM cw UNION ALL SELECT 'r', oid FROM cr
               UNION ALL SELECT 'o', oid FROM ow) s
         JOIN pg_catalog.pg_attribute a
           ON a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped
       UNION
       SELECT y.tag, n.t
         FROM types y JOIN pg_catalog.pg_type t ON t.oid = y.typ,
              LATERAL (SELECT t.typbasetype WHERE t.typtype = 'd'
                       UNION ALL SELECT t.typelem WHERE t.typelem <> 0
                       UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                                  WHERE t.typrelid <> 0 AND a.attrelid = t.typrelid
                                    AND a.attnum > 0 AND NOT a.attisdropped) n(t)),
     -- Those the database defined (a cast can only be made by the owner of one of its types).
     utypes AS (SELECT y.tag, y.typ FROM types y JOIN pg_catalog.pg_type t ON t.oid = y.typ
                 WHERE t.typnamespace <> 'pg_catalog'::pg_catalog.regnamespace),
     -- What runs: (description, a function, an object whose functions run), and as whom when
     -- not as the component's role (then, why, and the fix). A trigger runs its function and
     -- those of its WHEN condition. A referential action bypasses row security (the owner
     -- runs it without FORCE), so no policy of the table it changes runs.
     src(what, fn, classid, objid, runner, fix) AS (
       SELECT pg_catalog.format('`%s` (in `writes`): its trigger `%s`',
                                t.tgrelid::pg_catalog.regclass, t.tgname),
              t.tgfoid, 'pg_catalog.pg_trigger'::pg_catalog.regclass::pg_catalog.oid, t.oid,
              NULL::pg_catalog.text,
              NULL::pg_catalog.text
         FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid IN (SELECT oid FROM cw) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): its deferrable trigger `%s`',
                                t.tgrelid::pg_catalog.regclass, t.tgname),
              t.tgfoid, 'pg_catalog.pg_trigger'::pg_catalog.regclass, t.oid,
              'at COMMIT or SET CONSTRAINTS, after the component''s role is reset, so as the '
              'migrating user',
              pg_catalog.format('make the trigger NOT DEFERRABLE (it then fires as the '
                                'component''s role), or do this change in do.sql')
         FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid IN (SELECT oid FROM cw) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
          AND t.tgdeferrable
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): its deferrable constraint `%s`',
                                k.conrelid::pg_catalog.regclass, k.conname),
              0, x.classid, x.objid,
              'when it is checked again at COMMIT or SET CONSTRAINTS, after the component''s '
              'role is reset, so as the migrating user',
              pg_catalog.format('make the constraint NOT DEFERRABLE, or do this change in do.sql')
         FROM pg_catalog.pg_constraint k,
              LATERAL (VALUES ('pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid,
                               k.oid),
                              ('pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, k.conindid))
                            x(classid, objid)
        WHERE k.conrelid IN (SELECT oid FROM cw) AND k.condeferrable AND k.contype IN ('u', 'p', 'x')
       UNION ALL
       SELECT pg_catalog.format('foreign key `%s` of `%s` (to `%s`)', k.conname,
                                k.conrelid::pg_catalog.regclass, k.confrelid::pg_catalog.regclass),
              0, 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid,
              'as the owner of the table it checks or changes (PostgreSQL runs a foreign key''s '
              'checks and actions so)',
              'compare the keys with built-in operators, or do this change in do.sql'
         FROM pg_catalog.pg_constraint k
        WHERE k.contype = 'f'
          AND (k.conrelid IN (SELECT oid FROM cw) OR k.confrelid IN (SELECT oid FROM cw)
               OR k.conrelid IN (SELECT oid FROM ow))
       UNION ALL
       SELECT pg_catalog.format('event trigger `%s` (on the component''s CREATE, ALTER and DROP)',
                                e.evtname),
              e.evtfoid, 0, 0, NULL, NULL
         FROM pg_catalog.pg_event_trigger e
        WHERE e.evtenabled <> 'D' AND EXISTS (SELECT FROM cw)
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): the default or generated value of column `%s`',
                                d.adrelid::pg_catalog.regclass, a.attname),
              0, 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid, NULL, NULL
         FROM pg_catalog.pg_attrdef d
         JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid IN (SELECT oid FROM cw)
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): its constraint `%s`',
                                k.conrelid::pg_catalog.regclass, k.conname),
              0, 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, NULL, NULL
         FROM pg_catalog.pg_constraint k WHERE k.conrelid IN (SELECT oid FROM cw)
       UNION ALL
       SELECT pg_catalog.format('`%s` (a type of a column in `writes`): its constraint `%s`',
                                k.contypid::pg_catalog.regtype, k.conname),
              0, 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, NULL, NULL
         FROM pg_catalog.pg_constraint k
        WHERE k.contypid IN (SELECT typ FROM types WHERE tag = 'w')
       UNION ALL
       SELECT pg_catalog.format('`%s` (a type of a column in `writes`): its default',
                                t.oid::pg_catalog.regtype),
              0, 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, NULL, NULL
         FROM pg_catalog.pg_type t
        WHERE t.oid IN (SELECT typ FROM types WHERE tag = 'w') AND t.typtype = 'd'
       UNION ALL
       SELECT pg_catalog.format('the cast from `%s` to `%s` (a type of a column in `reads` or '
                                '`writes`, cast %s)',
                                c.castsource::pg_catalog.regtype, c.casttarget::pg_catalog.regtype,
                                CASE c.castcontext WHEN 'i' THEN 'implicitly'
                                                   WHEN 'a' THEN 'on assignment'
                                                   ELSE 'explicitly' END),
              c.castfunc, 0, 0, NULL, NULL
         FROM pg_catalog.pg_cast c
        WHERE c.castfunc <> 0
          AND (c.castsource IN (SELECT typ FROM utypes WHERE tag = 'r')
               OR c.casttarget IN (SELECT typ FROM utypes WHERE tag = 'r'))
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): its index `%s`',
                                i.indrelid::pg_catalog.regclass, i.indexrelid::pg_catalog.regclass),
              0, 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, NULL, NULL
         FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT oid FROM cw)
       UNION ALL
       -- What PostgreSQL computes again over the component's rows after the step, as the
       -- table's owner: ANALYZE (autovacuum's too) evaluates index expressions and predicates,
       -- expression statistics and the column types' comparison and analyze functions;
       -- REINDEX, CLUSTER and VACUUM FULL rebuild the indexes with their operator classes, and
       -- autovacuum cleans GIN pending lists and summarizes BRIN ranges with theirs.
       SELECT pg_catalog.format('`%s` (in `writes`): the expression or predicate of its index `%s`',
                                i.indrelid::pg_catalog.regclass, i.indexrelid::pg_catalog.regclass),
              0, 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid,
              'after the step, as the table''s owner (ANALYZE, autovacuum''s too, REINDEX, CLUSTER '
              'and VACUUM FULL compute it again over the component''s rows)',
              'index built-in functions only on tables a component writes, or do this change in '
              'do.sql'
         FROM pg_catalog.pg_index i
        WHERE i.indrelid IN (SELECT oid FROM cw)
          AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): its extended statistics `%s`',
                                s.stxrelid::pg_catalog.regclass, s.stxname),
              0, 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, s.oid,
              'after the step, as the table''s owner (ANALYZE, autovacuum''s too, computes the '
              'statistics again over the component''s rows)',
              'keep functions of the database''s own out of the statistics of tables a component '
              'writes, or do this change in do.sql'
         FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid IN (SELECT oid FROM cw)
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `writes`): the operator class `%s` of its index `%s`',
                                i.indrelid::pg_catalog.regclass, oc.opcname,
                                i.indexrelid::pg_catalog.regclass),
              f.fn, 0, 0,
              'after the step, as the table''s owner (REINDEX, CLUSTER, VACUUM FULL and '
              'autovacuum''s index maintenance run it over the component''s rows)',
              'use built-in operator classes on tables a component writes, or do this change in '
              'do.sql'
         FROM pg_catalog.pg_index i,
              LATERAL pg_catalog.unnest(i.indclass::pg_catalog.oid[]) c(opc)
         JOIN pg_catalog.pg_opclass oc ON oc.oid = c.opc,
              LATERAL (SELECT p.amproc::pg_catalog.oid AS fn FROM pg_catalog.pg_amproc p
                        WHERE p.amprocfamily = oc.opcfamily
                       UNION
                       SELECT o.oprcode::pg_catalog.oid FROM pg_catalog.pg_amop a
                         JOIN pg_catalog.pg_operator o ON o.oid = a.amopopr
                        WHERE a.amopfamily = oc.opcfamily) f
        WHERE i.indrelid IN (SELECT oid FROM cw)
       UNION ALL
       SELECT pg_catalog.format('`%s` (a type of a column in `writes`): %s',
                                y.typ::pg_catalog.regtype, f.what),
              f.fn, 0, 0,
              'after the step, as the table''s owner (ANALYZE, autovacuum''s too, sorts and '
              'compares the column''s values with them)',
              'give the columns of tables a component writes types whose comparison and analyze '
              'functions are built-in, or do this change in do.sql'
         FROM (SELECT DISTINCT typ FROM utypes WHERE tag = 'w') y,
              LATERAL (SELECT 'its analyze function' AS what, t.typanalyze::pg_catalog.oid AS fn
                         FROM pg_catalog.pg_type t WHERE t.oid = y.typ AND t.typanalyze <> 0
                       UNION ALL
                       SELECT pg_catalog.format('its default operator class `%s`', oc.opcname),
                              g.fn
                         FROM pg_catalog.pg_opclass oc
                         JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod,
                              LATERAL (SELECT p.amproc::pg_catalog.oid AS fn
                                         FROM pg_catalog.pg_amproc p
                                        WHERE p.amprocfamily = oc.opcfamily
                                       UNION
                                       SELECT o.oprcode::pg_catalog.oid
                                         FROM pg_catalog.pg_amop a
                                         JOIN pg_catalog.pg_operator o ON o.oid = a.amopopr
                                        WHERE a.amopfamily = oc.opcfamily) g
                        WHERE oc.opcintype = y.typ AND oc.opcdefault
                          AND am.amname IN ('btree', 'hash')) f
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `reads` or `writes`): its row security policy `%s`',
                                p.polrelid::pg_catalog.regclass, p.polname),
              0, 'pg_catalog.pg_policy'::pg_catalog.regclass, p.oid, NULL, NULL
         FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM cr)
       UNION ALL
       SELECT pg_catalog.format('`%s` (in `reads` or `writes`): the view''s query',
                                r.ev_class::pg_catalog.regclass),
              0, 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid, NULL, NULL
         FROM pg_catalog.pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM cr)
       UNION ALL
       -- What a referential action fires in the table it changes runs as that table's owner.
       SELECT pg_catalog.format('`%s` (changed by %s, when the component changes that table): %s',
                                o.oid::pg_catalog.regclass, o.via, x.what),
              x.fn, x.classid, x.objid,
              'as the owner of the table (PostgreSQL runs a referential action, and what it '
              'fires, as the referencing table''s owner)',
              pg_catalog.format('make the foreign key NO ACTION and have the component change '
                                '`%s` itself, keep functions of the database''s own out of '
                                'that table, or do this change in do.sql',
                                o.oid::pg_catalog.regclass)
         FROM ow o,
              LATERAL (SELECT pg_catalog.format('its trigger `%s`', t.tgname) AS what,
                              t.tgfoid AS fn,
                              'pg_catalog.pg_trigger'::pg_catalog.regclass::pg_catalog.oid AS classid,
                              t.oid AS objid
                         FROM pg_catalog.pg_trigger t
                        WHERE t.tgrelid = o.oid AND NOT t.tgisinternal AND t.tgenabled <> 'D'
                       UNION ALL
                       SELECT pg_catalog.format('the default or generated value of column `%s`',
                                                a.attname),
                              0, 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid
                         FROM pg_catalog.pg_attrdef d
                         JOIN pg_catalog.pg_attribute a
                           ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                        WHERE d.adrelid = o.oid
                       UNION ALL
                       SELECT pg_catalog.format('its constraint `%s`', k.conname),
                              0, 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid
                         FROM pg_catalog.pg_constraint k WHERE k.conrelid = o.oid
                       UNION ALL
                       SELECT pg_catalog.format('its index `%s`', i.indexrelid::pg_catalog.regclass),
                              0, 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid
                         FROM pg_catalog.pg_index i WHERE i.indrelid = o.oid) x
       UNION ALL
       SELECT pg_catalog.format('`%s` (a type of a column of a table a referential action '
                                'changes): %s', y.typ::pg_catalog.regtype, x.what),
              x.fn, x.classid, x.objid,
              'as the owner of a table a referential action changes (PostgreSQL runs the action '
              'so)',
              'keep functions of the database''s own out of the types of tables a referential '
              'action changes, make the foreign keys NO ACTION, or do this change in do.sql'
         FROM (SELECT DISTINCT typ FROM utypes WHERE tag = 'o') y,
              LATERAL (SELECT pg_catalog.format('its constraint `%s`', k.conname) AS what,
                              0::pg_catalog.oid AS fn,
                              'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid AS classid,
                              k.oid AS objid
                         FROM pg_catalog.pg_constraint k WHERE k.contypid = y.typ
                       UNION ALL
                       SELECT 'its default', 0, 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid
                         FROM pg_catalog.pg_type t WHERE t.oid = y.typ AND t.typtype = 'd'
                       UNION ALL
                       SELECT pg_catalog.format('its cast from `%s` to `%s`',
                                                c.castsource::pg_catalog.regtype,
                                                c.casttarget::pg_catalog.regtype),
                              c.castfunc, 0, 0
                         FROM pg_catalog.pg_cast c
                        WHERE c.castfunc <> 0 AND (c.castsource = y.typ OR c.casttarget = y.typ)) x),
     runs(what, fn, runner, fix) AS (
       SELECT what, fn, runner, fix FROM src WHERE fn <> 0
       UNION
       SELECT s.what, COALESCE(o.oprcode::pg_catalog.oid, d.refobjid), s.runner, s.fix
         FROM src s
         JOIN pg_catalog.pg_depend d ON d.classid = s.classid AND d.objid = s.objid
          AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                               'pg_catalog.pg_operator'::pg_catalog.regclass)
         LEFT JOIN pg_catalog.pg_operator o
           ON d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = d.refobjid
        WHERE s.classid <> 0),
     -- Functions that run as their owner (or another role) whatever role calls them.
     definer AS (SELECT p.oid, p.proacl IS NULL
                       OR EXISTS (SELECT FROM pg_catalog.aclexplode(p.proacl) a
                                   WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public
                  FROM pg_catalog.pg_proc p
                 WHERE p.prosecdef
                    OR EXISTS (SELECT FROM pg_catalog.unnest(p.proconfig) c
                                WHERE pg_catalog.lower(c) LIKE 'role=%'
                                   OR pg_catalog.lower(c) LIKE 'session\\_authorization=%')),
     -- Functions of the database's own (not PostgreSQL's built-ins): their bodies may do
     -- anything their caller may.
     own AS (SELECT p.oid FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_language l ON l.oid = p.prolang
              WHERE l.lanname NOT IN ('internal', 'c')
                AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace,
                                           'information_schema'::pg_catalog.regnamespace)),
     -- Relations outside the lists on which PUBLIC (so the component's role) holds a
     -- privilege the lists do not give.
     public_rel AS (SELECT c.oid FROM pg_catalog.pg_class c
                     WHERE c.oid IN (SELECT oid FROM everything)
                       AND EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a
                                    WHERE a.grantee = 0
                                      AND (c.oid NOT IN (SELECT oid FROM cr)
                                           OR (c.oid NOT IN (SELECT oid FROM cw)
                                               AND a.privilege_type <> 'SELECT')))
                    UNION
                    SELECT c.oid FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_attribute t ON t.attrelid = c.oid,
                           LATERAL pg_catalog.aclexplode(t.attacl) a
                     WHERE c.oid IN (SELECT oid FROM everything) AND a.grantee = 0
                       AND (c.oid NOT IN (SELECT oid FROM cr)
                            OR (c.oid NOT IN (SELECT oid FROM cw)
                                AND a.privilege_type <> 'SELECT'))
                    UNION
                    -- Sequences PUBLIC may use or read, but those of the tables of `writes`.
                    SELECT c.oid FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind = 'S'
                       AND n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema', 'strata'])
                       AND n.nspname NOT LIKE 'pg\\_%'
                       AND EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a
                                    WHERE a.grantee = 0)
                       AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                          AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                                          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                          AND d.refobjid IN (SELECT oid FROM cw)))
SELECT pg_catalog.format(
         '%s runs `%s`, which runs as its owner (SECURITY DEFINER or a role it sets), past the '
         'component''s grants: make it SECURITY INVOKER, or do this change in do.sql',
         r.what, r.fn::pg_catalog.regprocedure)
  FROM runs r WHERE r.fn IN (SELECT oid FROM definer)
UNION ALL
SELECT pg_catalog.format(
         '%s runs `%s`, a function of the database''s own, %s, past the component''s grants: %s',
         r.what, r.fn::pg_catalog.regprocedure, r.runner, r.fix)
  FROM runs r
 WHERE r.runner IS NOT NULL AND r.fn IN (SELECT oid FROM own)
   AND r.fn NOT IN (SELECT oid FROM definer)
UNION ALL
SELECT pg_catalog.format(
         '%s runs `%s`, a function of the database''s own, which may call `%s` (which runs as '
         'its owner, and every role may execute it): REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, '
         'or do this change in do.sql',
         r.what, r.fn::pg_catalog.regprocedure, x.oid::pg_catalog.regprocedure,
         x.oid::pg_catalog.regprocedure)
  FROM runs r
  CROSS JOIN LATERAL (SELECT pg_catalog.min(oid) AS oid FROM definer WHERE public) x
 WHERE r.runner IS NULL AND r.fn IN (SELECT oid FROM own) AND r.fn NOT IN (SELECT oid FROM definer)
   AND x.oid IS NOT NULL
UNION ALL
SELECT pg_catalog.format(
         '%s runs `%s`, a function of the database''s own, as the component''s role, which '
         'inherits what PUBLIC is granted: it may use `%s` (granted to PUBLIC, outside the '
         'lists): REVOKE ALL ON %s FROM PUBLIC, list it in `reads` or `writes`, or do this '
         'change in do.sql',
         r.what, r.fn::pg_catalog.regprocedure, x.oid::pg_catalog.regclass,
         x.oid::pg_catalog.regclass)
  FROM runs r
  CROSS JOIN LATERAL (SELECT pg_catalog.min(oid) AS oid FROM public_rel) x
 WHERE r.runner IS NULL AND r.fn IN (SELECT oid FROM own) AND r.fn NOT IN (SELECT oid FROM definer)
   AND x.oid IS NOT NULL
ORDER BY 1";
