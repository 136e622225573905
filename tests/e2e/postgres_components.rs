//! WebAssembly components on PostgreSQL: the committed `split-names` transform (built once for
//! SQLite, run unchanged), and hostile components written in WAT, each refused by the server's
//! grants or by strata's statement check, with the step rolled back whole, audited, and no
//! role left behind. Skipped without a server, like every PostgreSQL test (see `postgres`).

use crate::components::{Entry, Op, P, component};
use crate::harness::{Project, repo_root};
use crate::postgres::{Pg, project};

pub(crate) const HOSTILE: &str = "migrations/app/20240201T000000Z-hostile";

/// Applies the first migration of these projects: people, secrets (both with rows) and a table
/// of many types.
pub(crate) fn apply_zero(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL);\n\
         CREATE TABLE secrets (id int PRIMARY KEY, v text NOT NULL);\n\
         CREATE TABLE typed (id serial PRIMARY KEY, n numeric(8, 2), d date, u uuid, j jsonb, \
         b boolean, f double precision);\n",
    )
    .write(
        "migrations/app/20240101T000000Z-zero/proj-data/data.json",
        r#"{"people": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
            "secrets": [{"id": 1, "v": "s3cr3t"}]}"#,
    );
    p.strata(&["migrate", "-q"]).ok();
}

/// `pg`'s project with one applied migration (people, secrets, both with rows) and a pending
/// one whose do.sql adds a column and whose transform is `ops`, under `migration_toml`.
pub(crate) fn project_with(pg: &Pg, ops: &[Op], migration_toml: &str) -> Project {
    let p = project(pg);
    apply_zero(&p);
    p.write(
        &format!("{HOSTILE}/do.sql"),
        "ALTER TABLE people ADD COLUMN nick text;\nUPDATE people SET nick = 'x';\n",
    )
    .write(&format!("{HOSTILE}/migration.toml"), migration_toml);
    std::fs::write(
        p.path(&format!("{HOSTILE}/transform.wasm")),
        component(Entry::Transform, ops),
    )
    .unwrap();
    p
}

/// Everything of the application's a component could have touched, on one database.
pub(crate) fn state(pg: &Pg, test_db: bool) -> Vec<String> {
    pg.rows(
        test_db,
        "SELECT 'people', count(*)::text || ':' || coalesce(string_agg(id || name, ',' ORDER BY id), '') FROM people
         UNION ALL SELECT 'secrets', string_agg(id || v, ',') FROM secrets
         UNION ALL SELECT 'typed', count(*)::text FROM typed
         UNION ALL SELECT 'tables', string_agg(table_schema || '.' || table_name || '.' || column_name, ',' ORDER BY 1)
           FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
         UNION ALL SELECT 'ledger', count(*)::text FROM strata.strata_migration",
    )
}

/// Roles strata made for components that are still there (none, ever, after a step).
pub(crate) fn leftover_roles(pg: &Pg) -> Vec<String> {
    pg.rows(
        false,
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'strata_component%'",
    )
}

/// Runs migrate and checks everything a refused component must leave behind: exit 1, the
/// messages, both databases as before, the failure audited after the rollback, no role left.
#[track_caller]
pub(crate) fn assert_refused(pg: &Pg, p: &Project, expect: &[&str]) {
    let (test_before, real_before) = (state(pg, true), state(pg, false));
    let audited_before = pg.rows(
        true,
        "SELECT coalesce(max(id), 0) FROM strata.strata_migration_audit",
    );
    let mut run = p
        .strata(&["migrate"])
        .code(1)
        .stderr_has("app/20240201T000000Z-hostile")
        .stderr_has("transform.wasm");
    for e in expect {
        run = run.stderr_has(e);
    }
    pg.hides_password(&run);
    assert_eq!(state(pg, true), test_before, "the test database changed");
    assert_eq!(state(pg, false), real_before, "the real database changed");
    assert_eq!(
        pg.rows(
            true,
            &format!(
                "SELECT action || '|' || outcome FROM strata.strata_migration_audit \
                 WHERE id > {} ORDER BY id",
                audited_before[0]
            )
        ),
        ["backup|ok", "do.sql|rolled-back", "transform|failed"],
        "{}",
        run.stderr
    );
    assert_eq!(leftover_roles(pg), Vec::<String>::new());
}

pub(crate) const PEOPLE_ONLY: &str = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n";

/// What a component that updates `secrets` under [`PEOPLE_ONLY`] is told.
pub(crate) const SECRETS_REFUSED: &[&str] = &[
    "may not write (or lock) `public.secrets`",
    "writes",
    "migration.toml",
];

/// The split-names migration of [`split_names_project`].
pub(crate) const SPLIT_NAMES: &str = "migrations/people/20240320T100000Z-split-names";

/// `pg`'s project with people (`people_json`, test data) and a pending split-names migration
/// that adds the name columns under [`PEOPLE_ONLY`] and checks every row got a first name; its
/// component is for the caller to put in place.
pub(crate) fn split_names_project(pg: &Pg, people_json: &str) -> Project {
    let p = project(pg);
    let m = SPLIT_NAMES;
    p.write(
        "migrations/people/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         full_name text NOT NULL);\n",
    )
    .write(
        "migrations/people/20240101T000000Z-zero/test-data/data.json",
        &format!("{{\"people\": {people_json}}}"),
    )
    .write(
        &format!("{m}/do.sql"),
        "ALTER TABLE people ADD COLUMN first_name text, ADD COLUMN last_name text;\n",
    )
    .write(&format!("{m}/migration.toml"), PEOPLE_ONLY)
    .write(
        &format!("{m}/checks.sql"),
        "SELECT id FROM people WHERE first_name IS NULL;\n",
    );
    p
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn the_committed_split_names_component_runs_unchanged_on_postgres() {
    let pg = Pg::new("split_names");
    let m = SPLIT_NAMES;
    let p = split_names_project(
        &pg,
        r#"[{"full_name": "Ada Lovelace"}, {"full_name": "Gabriel  García Márquez"},
            {"full_name": "Søren"}]"#,
    );
    // The bytes the SQLite example commits: `?` placeholders and all.
    std::fs::copy(
        repo_root().join(format!("{m}/transform.wasm")),
        p.path(&format!("{m}/transform.wasm")),
    )
    .unwrap();
    let run = p.strata(&["migrate"]).ok();
    pg.hides_password(&run);
    assert_eq!(
        pg.rows(
            true,
            "SELECT full_name || '|' || first_name || '|' || last_name FROM people ORDER BY id"
        ),
        [
            "Ada Lovelace|Ada|Lovelace",
            "Gabriel  García Márquez|Gabriel|García Márquez",
            "Søren|Søren|"
        ]
    );
    // The audit log keeps the fuel the component burned, as on SQLite.
    let fuel = pg.rows(
        true,
        "SELECT fuel_used FROM strata.strata_migration_audit WHERE action = 'transform'",
    );
    assert_eq!(fuel.len(), 1);
    assert!(fuel[0].parse::<u64>().unwrap() > 0, "{fuel:?}");
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn parameters_are_bound_by_the_types_the_server_infers() {
    let pg = Pg::new("typed_params");
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let p = project_with(
        &pg,
        &[Op::Execute(
            "INSERT INTO typed (n, d, u, j, b, f) VALUES ($1, $2, $3, $4, $5, $6)".into(),
            vec![
                P::Text("12.50".into()),
                P::Text("2024-02-29".into()),
                P::Text(uuid.into()),
                P::Text(r#"{"a": [1, 2]}"#.into()),
                P::Int(1),
                P::Int(3),
            ],
        )],
        "[sandbox]\nreads = [\"typed\"]\nwrites = [\"typed\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT n || '|' || d || '|' || u || '|' || j::text || '|' || b || '|' || f FROM typed"
            ),
            [format!("12.50|2024-02-29|{uuid}|{{\"a\": [1, 2]}}|true|3")]
        );
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_failed_statement_the_guest_ignores_does_not_poison_the_step() {
    let pg = Pg::new("ignored_error");
    // The first insert breaks the primary key; the guest ignores the error and goes on, as it
    // may on SQLite. PostgreSQL would refuse every later statement of an aborted transaction:
    // each call runs in a savepoint, so only the failed statement is undone.
    let p = project_with(
        &pg,
        &[
            Op::Execute(
                "INSERT INTO people (id, name) VALUES (1, 'dup')".into(),
                vec![],
            ),
            Op::Execute("UPDATE people SET nick = 'after'".into(), vec![]),
        ],
        PEOPLE_ONLY,
    );
    p.strata(&["migrate", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(test_db, "SELECT id || nick FROM people ORDER BY id"),
            ["1after", "2after"]
        );
    }
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn writing_or_reading_an_undeclared_table_is_refused() {
    let pg = Pg::new("undeclared");
    let p = project_with(
        &pg,
        &[Op::Execute("UPDATE secrets SET v = 'owned'".into(), vec![])],
        PEOPLE_ONLY,
    );
    assert_refused(&pg, &p, SECRETS_REFUSED);
    // Read through a subquery, a view-like CTE and a function's argument alike.
    for read in [
        "UPDATE people SET nick = (SELECT v FROM secrets LIMIT 1)",
        "WITH s AS (SELECT v FROM secrets) UPDATE people SET nick = (SELECT v FROM s)",
    ] {
        let p = project_with(&pg, &[Op::Execute(read.into(), vec![])], PEOPLE_ONLY);
        assert_refused(&pg, &p, &["may not read `public.secrets`"]);
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn strata_bookkeeping_is_out_of_reach_even_without_lists() {
    let pg = Pg::new("bookkeeping");
    for sql in [
        "DELETE FROM strata.strata_migration",
        "UPDATE strata.strata_migration_audit SET outcome = 'ok'",
        "INSERT INTO strata.strata_migration (module, stamp, name, checksum, applied_at) \
         VALUES ('app', '20990101T000000Z', 'x', 'x', 'x')",
    ] {
        let p = project_with(&pg, &[Op::Execute(sql.into(), vec![])], "");
        assert_refused(
            &pg,
            &p,
            &["`strata.strata_migration", "strata's bookkeeping"],
        );
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn schema_changes_and_session_settings_are_refused_before_they_reach_the_server() {
    let pg = Pg::new("ddl");
    for sql in [
        "DROP TABLE secrets",
        "CREATE TABLE evil (a int)",
        "CREATE TRIGGER t AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION f()",
        "RESET ROLE",
        "SET ROLE NONE",
        "SET LOCAL statement_timeout = 0",
        "COMMIT",
        "DO $$ BEGIN RESET ROLE; END $$",
    ] {
        let p = project_with(&pg, &[Op::Execute(sql.into(), vec![])], "");
        assert_refused(&pg, &p, &["may only read and change rows"]);
    }
    // Taking the role back inside a query, then writing what the role may not.
    let p = project_with(
        &pg,
        &[
            Op::Query("SELECT pg_catalog.set_config('role', 'none', false)".into()),
            Op::Execute("UPDATE secrets SET v = 'owned'".into(), vec![]),
        ],
        PEOPLE_ONLY,
    );
    assert_refused(&pg, &p, &["may not call `set_config`"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_statement_past_the_timeout_is_cancelled_by_the_server() {
    let pg = Pg::new("timeout");
    let p = project_with(
        &pg,
        &[Op::Query("SELECT pg_sleep(60)".into())],
        "[sandbox]\ntimeout_s = 1\n",
    );
    let started = std::time::Instant::now();
    assert_refused(&pg, &p, &["wall-clock timeout", "inside a SQL statement"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the statement was not cancelled"
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_runaway_guest_runs_out_of_fuel_on_postgres_too() {
    let pg = Pg::new("fuel");
    let p = project(&pg);
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL);\n\
         CREATE TABLE secrets (id int PRIMARY KEY, v text NOT NULL);\n\
         CREATE TABLE typed (id serial PRIMARY KEY);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        &format!("{HOSTILE}/do.sql"),
        "ALTER TABLE people ADD COLUMN nick text;\n",
    )
    .write(
        &format!("{HOSTILE}/migration.toml"),
        "[sandbox]\nfuel = 1000000\n",
    );
    std::fs::write(
        p.path(&format!("{HOSTILE}/transform.wasm")),
        crate::hostile::transform(Some("UPDATE people SET nick = 'x'"), "(loop $l (br $l))"),
    )
    .unwrap();
    assert_refused(&pg, &p, &["fuel limit exhausted"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn components_need_createrole_and_say_so_and_run_without_superuser() {
    let pg = Pg::new("createrole");
    // A user who owns both databases but may not create roles, as many applications' are.
    let user = format!("{}_owner", pg.name);
    let mut admin = pg.give_to(
        &user,
        &format!("CREATE ROLE {user} LOGIN PASSWORD 'owner-pw-7c1e' NOCREATEROLE NOSUPERUSER"),
    );
    let server = pg.server();
    let p = Project::empty();
    p.write(
        "strata.toml",
        &format!("db = \"postgres://{user}:owner-pw-7c1e@{server}\"\n"),
    )
    .write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL);\n",
    )
    .write(
        "migrations/app/20240101T000000Z-zero/proj-data/data.json",
        r#"{"people": [{"id": 1, "name": "Ada"}]}"#,
    )
    .write(&format!("{HOSTILE}/do.sql"), "SELECT 1;\n")
    .write(&format!("{HOSTILE}/migration.toml"), PEOPLE_ONLY);
    std::fs::write(
        p.path(&format!("{HOSTILE}/transform.wasm")),
        component(
            Entry::Transform,
            &[Op::Execute(
                "UPDATE people SET name = upper(name)".into(),
                vec![],
            )],
        ),
    )
    .unwrap();
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("needs CREATEROLE")
        .stderr_has("ALTER ROLE <user> CREATEROLE");
    admin
        .batch_execute(&format!("ALTER ROLE {user} CREATEROLE"))
        .unwrap();
    p.strata(&["migrate", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(pg.rows(test_db, "SELECT name FROM people"), ["ADA"]);
    }
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
    drop(pg);
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {user}"))
        .unwrap();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_function_that_takes_the_role_back_fails_the_step_and_undoes_it() {
    let pg = Pg::new("role_escape");
    // A function the migrations defined (EXECUTE is granted to PUBLIC by default) that resets
    // the role inside: called by a component, it would run as the migrating user.
    let p = project_with(&pg, &[Op::Query("SELECT wipe()".into())], PEOPLE_ONLY);
    p.write(
        &format!("{HOSTILE}/do.sql"),
        "ALTER TABLE people ADD COLUMN nick text;\n\
         CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql AS $$\n\
         BEGIN\n    RESET ROLE;\n    DELETE FROM secrets;\n    RETURN 1;\nEND\n$$;\n",
    );
    // Refused before it runs: a component calls no function of the database's own.
    assert_refused(&pg, &p, &["may not call `wipe`", "SECURITY DEFINER"]);
}

/// The committed split-names writes its rows in batches of 1,000 (`execute-packed` of one
/// keyed `UPDATE`), which the host runs set-based: every row comes out as the component
/// splits it; a row a constraint refuses fails the step with the error the row-by-row path
/// gives, and nothing is applied.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn batches_of_the_committed_component_run_set_based_with_the_same_rows_and_errors() {
    let m = SPLIT_NAMES;
    let names: Vec<String> = (0..2_500)
        .map(|i| match i % 5 {
            0 => format!("\"First{i}  Last {i}\""),
            1 => format!("\"  Søren{i}\""),
            2 => format!("\"Zoë{i}\\t Brontë \\\"{i}\\\" \\\\ {{a,b}}\""),
            3 => format!("\"N{i} NULL\""),
            _ => format!("\"$q$ {i} ' x\""),
        })
        .map(|n| format!("{{\"full_name\": {n}}}"))
        .collect();
    let people = format!("[{}]", names.join(", "));
    for fails in [false, true] {
        let pg = Pg::new(if fails {
            "set_based_fails"
        } else {
            "set_based"
        });
        let p = split_names_project(&pg, &people);
        std::fs::copy(
            repo_root().join(format!("{m}/transform.wasm")),
            p.path(&format!("{m}/transform.wasm")),
        )
        .unwrap();
        if fails {
            p.write(
                &format!("{m}/do.sql"),
                "ALTER TABLE people ADD COLUMN first_name text, ADD COLUMN last_name text \
                 CONSTRAINT no_null_word CHECK (last_name <> 'NULL');\n",
            );
            let run = p.strata(&["migrate"]);
            assert_ne!(run.code, 0, "{}", run.stdout);
            run.stderr_has("no_null_word");
            assert_eq!(
                pg.rows(
                    true,
                    "SELECT count(*) FROM information_schema.columns WHERE column_name = 'first_name'"
                ),
                ["0"]
            );
            assert_eq!(leftover_roles(&pg), Vec::<String>::new());
            continue;
        }
        p.strata(&["migrate", "-q"]).ok();
        let split = |full: &str| -> String {
            let full = full.trim();
            match full.split_once(char::is_whitespace) {
                Some((first, rest)) => format!("{first}|{}", rest.trim_start()),
                None => format!("{full}|"),
            }
        };
        let expected: Vec<String> = pg
            .rows(true, "SELECT full_name FROM people ORDER BY id")
            .iter()
            .map(|f| split(f))
            .collect();
        assert_eq!(expected.len(), 2_500);
        assert_eq!(
            pg.rows(
                true,
                "SELECT first_name || '|' || last_name FROM people ORDER BY id"
            ),
            expected
        );
        assert_eq!(leftover_roles(&pg), Vec::<String>::new());
    }
}
