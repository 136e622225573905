//! What a component may reach on PostgreSQL, judged on each statement's parse tree (issue 17):
//! functions that run SQL given as text (the XML family), that change the role or settings,
//! read the server's files, write large objects, change sequences, take locks or live outside
//! `pg_catalog`, and writes to the system catalogs (`pg_settings`), are refused with the step
//! rolled back, both as a migrating user with only CREATEROLE and CREATEDB and as a superuser;
//! the session's settings are strata's again after a component; legitimate statements still
//! run; and a cursor or query of huge rows stays inside the memory bound.

use crate::components::{Entry, Op, component};
use crate::harness::Project;
use crate::postgres::{Pg, project};
use crate::postgres_components::{HOSTILE, assert_refused, leftover_roles};

const PASSWORD: &str = "mig-pw-3f9a0c";

/// A project on `pg` whose migrating user is a superuser (the test server's) or, with
/// `superuser = false`, a new user with only LOGIN, CREATEROLE and CREATEDB who owns both
/// databases. One applied migration (people, secrets, typed with rows); the pending one's
/// do.sql defines the functions a component might try to reach.
fn attack_project(pg: &Pg, superuser: bool) -> Project {
    let p = if superuser {
        project(pg)
    } else {
        let user = format!("{}_mig", pg.name);
        // Dropped with the databases at the end (see `drop_user`).
        pg.give_to(
            &user,
            &format!(
                "CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}' CREATEROLE CREATEDB NOSUPERUSER"
            ),
        );
        let p = Project::empty();
        p.write(
            "strata.toml",
            &format!("db = \"postgres://{user}:{PASSWORD}@{}\"\n", pg.server()),
        );
        p
    };
    crate::postgres_components::apply_zero(&p);
    p.write(
        &format!("{HOSTILE}/do.sql"),
        "ALTER TABLE people ADD COLUMN nick text;\n\
         CREATE FUNCTION definer_read() RETURNS text LANGUAGE sql SECURITY DEFINER\n\
           AS $$ SELECT string_agg(v, ',') FROM secrets $$;\n\
         CREATE SCHEMA other;\n\
         CREATE FUNCTION other.f() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;\n\
         CREATE FUNCTION dblink_exec(text, text) RETURNS text LANGUAGE sql SECURITY DEFINER\n\
           AS $$ DELETE FROM secrets RETURNING 'gone' $$;\n\
         CREATE FUNCTION lower(integer) RETURNS text LANGUAGE sql SECURITY DEFINER\n\
           AS $$ DELETE FROM secrets RETURNING 'gone' $$;\n\
         CREATE FUNCTION evil(people) RETURNS text LANGUAGE sql SECURITY DEFINER\n\
           AS $$ DELETE FROM secrets RETURNING 'gone' $$;\n",
    )
    .write(
        &format!("{HOSTILE}/migration.toml"),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
    );
    p
}

fn set_component(p: &Project, ops: &[Op]) {
    std::fs::write(
        p.path(&format!("{HOSTILE}/transform.wasm")),
        component(Entry::Transform, ops),
    )
    .unwrap();
}

/// The issue's statement: as the session user for one call of query_to_xml, reading
/// `secrets`, then back to the component's role.
const ISSUE_17: &str = "INSERT INTO people(id, name) SELECT 99, \
     query_to_xml('select set_config(''role'',''none'',false)', true, false, '')::text \
     || query_to_xml('select (select string_agg(v, '','') from secrets) as stolen', true, false, '')::text \
     || query_to_xml(format('select set_config(%L, %L, false)', 'role', me.r), true, false, '')::text \
     FROM (SELECT current_user::text AS r OFFSET 0) me";

/// Each attack, and what the refusal must say.
fn attacks() -> Vec<(Op, &'static str)> {
    let q = |s: &str| Op::Query(s.into());
    vec![
        (
            Op::Execute(ISSUE_17.into(), vec![]),
            "may not call `query_to_xml`",
        ),
        (
            q("SELECT table_to_xml('secrets', true, false, '')"),
            "`table_to_xml`",
        ),
        (
            q("SELECT cursor_to_xml('strata_component_cursor_1', 10, true, false, '')"),
            "`cursor_to_xml`",
        ),
        (
            q("SELECT schema_to_xml('public', true, false, '')"),
            "`schema_to_xml`",
        ),
        (
            q("SELECT query_to_xmlschema('select * from secrets', true, false, '')"),
            "`query_to_xmlschema`",
        ),
        (
            q("SELECT set_config('role', 'none', false)"),
            "may not call `set_config`",
        ),
        (
            q("SELECT \"set_config\"('search_path', 'pg_catalog', false)"),
            "`set_config`",
        ),
        (
            q("SELECT pg_read_file('/etc/passwd')"),
            "may not call `pg_read_file`",
        ),
        (
            q("SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/strata-lo-export')"),
            "may not call `lo_export`",
        ),
        (
            q("SELECT setval('strata.strata_migration_audit_id_seq', 1)"),
            "may not call `setval`",
        ),
        (
            q("SELECT nextval('strata.strata_migration_audit_id_seq')"),
            "is not a sequence of a table of `writes`",
        ),
        (
            Op::Execute(
                "UPDATE pg_settings SET setting = 'pg_catalog' WHERE name = 'search_path'".into(),
                vec![],
            ),
            "system catalogs are read-only",
        ),
        (
            Op::Execute(
                "UPDATE pg_catalog.pg_settings SET setting = 'off' \
                 WHERE name = 'synchronous_commit'"
                    .into(),
                vec![],
            ),
            "system catalogs are read-only",
        ),
        (
            q("SELECT ('/etc/passwd'::text).pg_read_file"),
            "`.pg_read_file`",
        ),
        (q("SELECT definer_read()"), "may not call `definer_read`"),
        (
            q("SELECT public.definer_read()"),
            "may not call `public.definer_read`",
        ),
        (q("SELECT other.f()"), "may not call `other.f`"),
        (
            q("SELECT dblink_exec('dbname=x', 'DELETE FROM secrets')"),
            "may not call `dblink_exec`",
        ),
        (
            q("SELECT pg_advisory_lock(17)"),
            "may not call `pg_advisory_lock`",
        ),
        (
            q("SELECT pg_terminate_backend(1)"),
            "`pg_terminate_backend`",
        ),
        (q("SELECT pg_notify('c', 'x')"), "`pg_notify`"),
        (q("SELECT * FROM secrets"), "may not read `public.secrets`"),
        (
            q("SELECT v FROM people, secrets"),
            "may not read `public.secrets`",
        ),
        (
            q("SELECT * FROM people, secrets FOR SHARE"),
            "may not write (or lock)",
        ),
    ]
}

fn every_attack_is_refused(superuser: bool) {
    let pg = Pg::new(if superuser { "attacks_su" } else { "attacks" });
    let p = attack_project(&pg, superuser);
    let secrets = pg.rows(false, "SELECT string_agg(v, ',') FROM secrets");
    for (op, expect) in attacks() {
        set_component(&p, &[op]);
        assert_refused(&pg, &p, &[expect]);
    }
    // Unqualified names resolve in pg_catalog only while a component runs: an overload the
    // migrations put in `public` (lower(integer)) and a function called in field notation on a
    // table's row (`p.evil`) are not found, so nothing they would do happens.
    set_component(
        &p,
        &[
            Op::Execute("UPDATE people SET nick = lower(1)".into(), vec![]),
            Op::Execute(
                "UPDATE people SET nick = p.evil FROM people p".into(),
                vec![],
            ),
            Op::Execute("UPDATE people SET nick = 'ran'".into(), vec![]),
        ],
    );
    p.strata(&["migrate", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(test_db, "SELECT string_agg(v, ',') FROM secrets"),
            secrets
        );
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT string_agg(id || nick, ',' ORDER BY id) FROM people"
            ),
            ["1ran,2ran"]
        );
    }
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
    if !superuser {
        drop_user(pg);
    }
}

/// Drops the test's databases, then its migrating user.
fn drop_user(pg: Pg) {
    let user = format!("{}_mig", pg.name);
    let mut admin = pg.admin_client();
    drop(pg);
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {user}"))
        .unwrap();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn functions_that_reach_beyond_the_manifest_are_refused_without_superuser() {
    every_attack_is_refused(false);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn functions_that_reach_beyond_the_manifest_are_refused_as_superuser() {
    every_attack_is_refused(true);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn legitimate_statements_still_run_without_superuser() {
    let pg = Pg::new("legit");
    let p = attack_project(&pg, false);
    p.write(
        &format!("{HOSTILE}/migration.toml"),
        "[sandbox]\nreads = [\"people\", \"secrets\"]\nwrites = [\"people\", \"typed\"]\n",
    );
    set_component(
        &p,
        &[
            // A join between two read tables and an aggregate, into a written one.
            Op::Execute(
                "UPDATE people SET nick = (SELECT string_agg(s.v, ',' ORDER BY s.id) \
                 FROM secrets s JOIN people p2 ON p2.id = s.id WHERE p2.id = people.id)"
                    .into(),
                vec![],
            ),
            // INSERT ... RETURNING on a serial table (its default calls nextval), with json.
            Op::Query(
                "INSERT INTO typed (n, j) SELECT count(*), \
                 jsonb_build_object('names', jsonb_agg(name ORDER BY id)) FROM people \
                 RETURNING id, j ->> 'names'"
                    .into(),
            ),
            Op::Cursor {
                sql: "SELECT p.id, upper(p.name), length(s.v) FROM people p \
                      LEFT JOIN secrets s USING (id) ORDER BY 1"
                    .into(),
                max: 10,
                calls: 2,
            },
            Op::Query(
                "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname = 'people'".into(),
            ),
            Op::Execute(
                "UPDATE people SET name = initcap(lower(name)) || to_char(1, 'FM0') \
                 WHERE id = 2"
                    .into(),
                vec![],
            ),
        ],
    );
    p.strata(&["migrate", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT id || ':' || name || ':' || coalesce(nick, '-') FROM people ORDER BY id"
            ),
            ["1:Ada:s3cr3t", "2:Grace1:-"]
        );
        assert_eq!(
            pg.rows(test_db, "SELECT n || '|' || j::text FROM typed"),
            ["2.00|{\"names\": [\"Ada\", \"Grace\"]}"]
        );
    }
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
    drop_user(pg);
}
