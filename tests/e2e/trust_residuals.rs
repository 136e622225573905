//! What remained of the trust issue's sandbox findings: what a component leaves on a SQLite
//! connection (the date functions that hide the clock), what a write grant reaches through
//! foreign keys and views, and where the PostgreSQL password from the environment is sent.

use crate::components::{Entry, Op, component};
use crate::hostile::project_with;
use crate::postgres_components::PEOPLE_ONLY;

const LATER: &str = "migrations/app/20240301T000000Z-later/do.sql";

/// A project whose pending chain runs a harmless component step, then `later` as a do.sql.
fn component_then(later: &str) -> crate::harness::Project {
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute("UPDATE people SET nick = name".into(), vec![])],
        ),
        PEOPLE_ONLY,
    );
    p.write(LATER, later);
    p
}

#[test]
fn after_a_component_sqlite_date_functions_are_sqlites_own() {
    // SQLite refuses 'now' in an index over rows: so must a do.sql that runs after a
    // component step in the same phase (the component's replacements are deterministic).
    let p = component_then("CREATE INDEX people_today ON people(date('now'));\n");
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of date() in an index");
    let p = component_then(
        "CREATE TABLE stamped(d TEXT, g TEXT GENERATED ALWAYS AS (datetime('now', 'localtime')));\n\
         INSERT INTO stamped(d) VALUES ('x');\n",
    );
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of datetime() in a generated column");
    // What SQLite's own allow still runs, and gives what SQLite's own give.
    let p = component_then(
        "CREATE INDEX people_day ON people(date('2024-01-31', '+' || id || ' day'));\n\
         CREATE TABLE days(d TEXT, n INTEGER CHECK (n > 0));\n\
         INSERT INTO days SELECT date('2024-01-31', '+1 day'), unixepoch('1970-01-02');\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        crate::harness::rows(&p.open("app.db"), "SELECT d, n FROM days"),
        ["2024-02-01|86400"]
    );
    // In one transaction there is no fresh connection to hand over: a later script that
    // would put a date function into the schema is refused, naming the fix.
    let p = component_then("CREATE INDEX people_today ON people(\"DATE\"(nick, 'utc'));\n");
    p.strata(&["migrate", "--single-transaction", "--no-rehearsal"])
        .code(1)
        .stderr_has("20240301T000000Z-later")
        .stderr_has("names date() after a component ran")
        .stderr_has("run this phase without --single-transaction");
    // Values computed from the clock in plain statements run as before.
    let p = component_then("CREATE TABLE seen(d TEXT);\nINSERT INTO seen VALUES (date('now'));\n");
    p.strata(&["migrate", "--single-transaction", "--no-rehearsal"])
        .ok();
    assert_eq!(
        crate::harness::rows(
            &p.open("app.db"),
            "SELECT count(*) FROM seen WHERE d = date(d) AND d > '2024'"
        ),
        ["1"]
    );
}

/// The pending migration's do.sql.
const HOSTILE_DO: &str = "migrations/app/20240201T000000Z-hostile/do.sql";

#[test]
fn sqlite_foreign_keys_from_what_a_component_writes_reach_only_what_it_reads() {
    use crate::hostile::assert_refused;
    let run = |sql: &str| component(Entry::Transform, &[Op::Execute(sql.into(), vec![])]);
    // Inserting a key: whether the step's foreign-key check passes says whether `secrets`
    // holds it.
    let orders = "[sandbox]\nreads = [\"people\", \"orders\"]\nwrites = [\"people\", \"orders\"]\n";
    let p = project_with(&run("INSERT INTO orders VALUES (1, 1)"), orders);
    p.write(
        HOSTILE_DO,
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, secret INTEGER REFERENCES secrets(id));\n",
    );
    assert_refused(
        &p,
        &[
            "`orders(secret)` REFERENCES `secrets`",
            "add \"secrets\" to `reads`",
            "migration.toml",
        ],
    );
    // Once the manifest lists `secrets`, the same component runs.
    p.write(
        "migrations/app/20240201T000000Z-hostile/migration.toml",
        "[sandbox]\nreads = [\"people\", \"orders\", \"secrets\"]\nwrites = [\"people\", \"orders\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    // Deleting a row: whether the check passes says whether `secrets` refers to it, whatever
    // action the key declares.
    for action in ["", " ON DELETE CASCADE", " ON DELETE SET NULL"] {
        let p = project_with(&run("DELETE FROM people WHERE id = 2"), PEOPLE_ONLY);
        p.write(
            HOSTILE_DO,
            &format!("ALTER TABLE secrets ADD COLUMN who INTEGER REFERENCES people(id){action};\n"),
        );
        assert_refused(
            &p,
            &["points at it from `secrets`", "add \"secrets\" to `reads`"],
        );
    }
    // A key the component adds itself is found when it ends.
    let p = project_with(
        &run("ALTER TABLE people ADD COLUMN s INTEGER REFERENCES secrets(id)"),
        PEOPLE_ONLY,
    );
    assert_refused(&p, &["`people(s)` REFERENCES `secrets`"]);
}

/// Runs strata in `p` with `env` added to the cleaned environment.
fn with_env(
    p: &crate::harness::Project,
    env: &[(&str, &str)],
    args: &[&str],
) -> crate::harness::Run {
    let mut cmd = crate::harness::strata_command(p.root(), args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::harness::Run::new(args, cmd.output().unwrap())
}

/// Asserts that `run`'s stderr does not hold `text`.
#[track_caller]
fn lacks(run: &crate::harness::Run, text: &str) {
    assert!(
        !run.stderr.contains(text),
        "{}: {}",
        run.command,
        run.stderr
    );
}

#[test]
fn the_password_of_the_environment_goes_only_to_a_server_the_environment_names() {
    let p = crate::harness::Project::empty();
    let foreign = "collector.invalid";
    p.write(
        "strata.toml",
        &format!("db = \"postgres://ci@{foreign}:5432/app\"\n"),
    );
    let secret = [("PGPASSWORD", "ci-secret")];
    // strata.toml picks a server the environment does not name: refused before connecting
    // (no name lookup of the host either), naming the file, the host and the fixes.
    let refused = with_env(&p, &secret, &["status"])
        .code(2)
        .stderr_has("`db` in strata.toml names the server collector.invalid")
        .stderr_has("set PGHOST=collector.invalid")
        .stderr_has("passfile")
        .stderr_has("STRATA_DB");
    for never in ["ci-secret", "failed to lookup"] {
        lacks(&refused, never);
    }
    // The test database strata.toml names is judged the same way.
    p.write(
        "strata.toml",
        &format!(
            "db = \"postgres://ci@127.0.0.1:1/app\"\ntest_db = \"postgres://ci@{foreign}/t\"\n"
        ),
    );
    with_env(&p, &secret, &["migrate"])
        .code(2)
        .stderr_has("`test_db` in strata.toml names the server collector.invalid");
    // Named by the environment, or given its own password in the URL, the server is tried
    // (and here cannot be found): the refusal is not strata's.
    p.write(
        "strata.toml",
        &format!("db = \"postgres://ci@{foreign}:5432/app\"\n"),
    );
    let url = format!("postgres://ci@{foreign}:5432/app");
    for env in [
        vec![("PGPASSWORD", "ci-secret"), ("PGHOST", foreign)],
        vec![("PGPASSWORD", "ci-secret"), ("STRATA_DB", url.as_str())],
        vec![("PGPASSWORD", "ci-secret"), ("DATABASE_URL", url.as_str())],
        vec![],
    ] {
        let run = with_env(&p, &env, &["status"]);
        assert_ne!(run.code, 0);
        lacks(&run, "names the server");
    }
    p.write(
        "strata.toml",
        &format!("db = \"postgres://ci:own@{foreign}:5432/app\"\n"),
    );
    lacks(&with_env(&p, &secret, &["status"]), "names the server");
    // A hostaddr is where the password would go, whatever the host says.
    p.write(
        "strata.toml",
        "db = \"postgres://ci@localhost:5432/app?hostaddr=192.0.2.7\"\n",
    );
    with_env(&p, &secret, &["status"])
        .code(2)
        .stderr_has("names the server 192.0.2.7");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_views_reach_only_what_the_manifest_lists() {
    use crate::postgres::Pg;
    use crate::postgres_components::{HOSTILE, assert_refused, project_with};
    let pg = Pg::new("trust7_views");
    let with_view = |view: &str, op: &str, toml: &str| {
        let p = project_with(&pg, &[Op::Execute(op.into(), vec![])], toml);
        p.write(
            &format!("{HOSTILE}/do.sql"),
            &format!("ALTER TABLE people ADD COLUMN nick text;\n{view}\n"),
        );
        p
    };
    let read = "UPDATE people SET nick = (SELECT string_agg(v, ',') FROM leak)";
    let reads_leak = "[sandbox]\nreads = [\"people\", \"leak\"]\nwrites = [\"people\"]\n";
    // A view reads with its owner's rights: granted the view, the component would read
    // `secrets`.
    let p = with_view(
        "CREATE VIEW leak AS SELECT * FROM secrets;",
        read,
        reads_leak,
    );
    assert_refused(
        &pg,
        &p,
        &[
            "`leak` (in `reads`): the view reaches `secrets`",
            "add `secrets` to `reads`",
            "security_invoker = true",
        ],
    );
    // Through a nested view, whatever the nested view's own option says.
    let p = with_view(
        "CREATE VIEW inner_v WITH (security_invoker = true) AS SELECT v FROM secrets;\n\
         CREATE VIEW leak AS SELECT v FROM inner_v;",
        read,
        reads_leak,
    );
    assert_refused(&pg, &p, &["the view reaches `secrets`"]);
    // Writing through a view writes its base table as the view's owner.
    let p = with_view(
        "CREATE VIEW leak AS SELECT * FROM secrets;",
        "UPDATE leak SET v = 'gone'",
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"leak\"]\n",
    );
    assert_refused(
        &pg,
        &p,
        &[
            "`leak` (in `writes`): the view reaches `secrets`",
            "add `secrets` to `writes`",
        ],
    );
    // A security_invoker view reads with the component's role's rights, which include
    // PUBLIC's: its relations count against the lists too.
    let p = with_view(
        "CREATE VIEW leak WITH (security_invoker = true) AS SELECT * FROM secrets;",
        read,
        reads_leak,
    );
    assert_refused(
        &pg,
        &p,
        &[
            "`leak` (in `reads`): the view reaches `secrets`, outside the lists",
            "add `secrets` to `reads`",
        ],
    );
    // A view over what the manifest lists runs, with or without the option.
    for option in ["", " WITH (security_invoker = true)"] {
        let pg = Pg::new("trust7_views");
        let p = project_with(&pg, &[Op::Execute(read.into(), vec![])], reads_leak);
        p.write(
            &format!("{HOSTILE}/do.sql"),
            &format!(
                "ALTER TABLE people ADD COLUMN nick text;\n\
                 CREATE VIEW leak{option} AS SELECT id, name AS v FROM people;\n"
            ),
        );
        p.strata(&["migrate", "-q"]).ok();
        assert_eq!(
            pg.rows(false, "SELECT DISTINCT nick FROM people"),
            ["Ada,Grace"]
        );
    }
}

#[test]
fn sqlite_views_reach_only_what_the_manifest_lists() {
    use crate::hostile::assert_refused;
    let run = |sql: &str| component(Entry::Transform, &[Op::Execute(sql.into(), vec![])]);
    // SQLite authorizes what a view reads as reads of its tables, and what an INSTEAD OF
    // trigger does as the trigger's statements.
    let p = project_with(
        &run("UPDATE people SET nick = (SELECT group_concat(v) FROM leak)"),
        "[sandbox]\nreads = [\"people\", \"leak\"]\nwrites = [\"people\"]\n",
    );
    p.write(
        HOSTILE_DO,
        "ALTER TABLE people ADD COLUMN nick TEXT;\nCREATE VIEW leak AS SELECT * FROM secrets;\n",
    );
    assert_refused(&p, &["reading table `secrets` is not allowed"]);
    let p = project_with(
        &run("INSERT INTO leak VALUES (9, 'x', 'y')"),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"leak\"]\n",
    );
    p.write(
        HOSTILE_DO,
        "ALTER TABLE people ADD COLUMN nick TEXT;\nCREATE VIEW leak AS SELECT * FROM people;\n\
         CREATE TRIGGER leak_in INSTEAD OF INSERT ON leak BEGIN DELETE FROM secrets; END;\n",
    );
    assert_refused(&p, &["`secrets`"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_text_built_at_run_time_is_never_read_as_a_date() {
    use crate::components::P;
    use crate::postgres::Pg;
    use crate::postgres_components::{assert_refused, project_with};
    let pg = Pg::new("trust7_clock");
    let no_text = "strata cannot tell is not text";
    for (sql, says) in [
        (
            "INSERT INTO typed(d) SELECT (lower('NO') || 'w')::date",
            no_text,
        ),
        (
            "INSERT INTO typed(d) SELECT pg_catalog.date(lower(' TO') || 'DAY')",
            no_text,
        ),
        (
            "UPDATE people SET nick = (jsonb_populate_record(NULL::pg_stat_archiver, \
             jsonb_build_object('last_archived_time', lower('NO') || 'w'))).last_archived_time::text",
            "may not call `jsonb_populate_record`",
        ),
        (
            "INSERT INTO typed(d) SELECT x.d FROM jsonb_to_record(jsonb_build_object('d', \
             'to' || 'day')) AS x(d date)",
            "a column of type `date`",
        ),
        (
            "UPDATE people SET nick = (SELECT value::timestamptz FROM \
             jsonb_array_elements_text(jsonb_build_array('no' || 'w')))::text",
            no_text,
        ),
    ] {
        let p = project_with(&pg, &[Op::Execute(sql.into(), vec![])], "");
        assert_refused(&pg, &p, &[says]);
    }
    // Dates from columns, literals, parameters and formats still convert.
    let p = project_with(
        &pg,
        &[
            Op::Execute(
                "INSERT INTO typed(d) VALUES ($1::date), (to_date('2024-03-01', 'YYYY-MM-DD'))"
                    .into(),
                vec![P::Text("2024-02-29".into())],
            ),
            Op::Execute(
                "UPDATE typed SET d = (d + 1)::timestamp::date WHERE d::timestamptz > '2024-01-01'"
                    .into(),
                vec![],
            ),
        ],
        "",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT string_agg(d::text, ',' ORDER BY d) FROM typed"
        ),
        ["2024-03-01,2024-03-02"]
    );
}
