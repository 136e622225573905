//! PostgreSQL as the target: the real `strata` binary against a real server.
//!
//! The server comes from `STRATA_TEST_POSTGRES` (a URL with a user allowed to create
//! databases; `.ci/run` starts a throwaway cluster and sets it). These tests are `#[ignore]`d
//! with that reason, so a fresh clone counts them as ignored; `.ci/run` runs them with
//! `--include-ignored`, and then a missing server is a failure. Each test works in databases of
//! its own, dropped at the end.

use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::{Client, NoTls};

use crate::harness::{Project, Run};

/// A database of one test on the test server, with its `_test` sibling; both dropped on drop.
pub(crate) struct Pg {
    admin: String,
    pub(crate) name: String,
    /// The password in the server URL, which must never be shown.
    pub(crate) password: String,
}

impl Pg {
    /// A database of its own for `test`. The tests that call this are `#[ignore]`d with the
    /// reason (a fresh clone has no server): one that runs anyway, with `--include-ignored` as
    /// `.ci/run` does, needs `STRATA_TEST_POSTGRES` and fails without it.
    pub(crate) fn new(test: &str) -> Pg {
        let Ok(admin) = std::env::var("STRATA_TEST_POSTGRES") else {
            panic!(
                "{test} needs a PostgreSQL server: set STRATA_TEST_POSTGRES to a URL of a user \
                 that may create databases, or run `bash .ci/run`, which starts one"
            );
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t_strata_{test}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let config: postgres::Config = admin.parse().expect("STRATA_TEST_POSTGRES is a URL");
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let pg = Pg {
            admin,
            name,
            password,
        };
        pg.admin_client()
            .batch_execute(&format!("CREATE DATABASE {}", pg.name))
            .unwrap();
        pg
    }

    pub(crate) fn admin_client(&self) -> Client {
        Client::connect(&self.admin, NoTls).expect("the test server accepts connections")
    }

    /// The URL of this test's real database (password included, as a user would write it).
    pub(crate) fn url(&self) -> String {
        let (base, _) = self.admin.rsplit_once('/').unwrap();
        format!("{base}/{}", self.name)
    }

    /// A client on this test's real database, or its `_test` sibling.
    pub(crate) fn client(&self, test_db: bool) -> Client {
        let (base, _) = self.admin.rsplit_once('/').unwrap();
        let suffix = if test_db { "_test" } else { "" };
        Client::connect(&format!("{base}/{}{suffix}", self.name), NoTls).unwrap()
    }

    /// The rows of a query as text, one string per row, columns joined with `|`.
    pub(crate) fn rows(&self, test_db: bool, sql: &str) -> Vec<String> {
        self.client(test_db)
            .simple_query(sql)
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    }

    /// Makes `role` (with `create_role`) and gives it this test's real database and a new
    /// `_test` one; returns the admin client, to drop the role with at the end.
    pub(crate) fn give_to(&self, role: &str, create_role: &str) -> Client {
        let mut admin = self.admin_client();
        for sql in [
            create_role.to_string(),
            format!("ALTER DATABASE {} OWNER TO {role}", self.name),
            format!("CREATE DATABASE {}_test OWNER {role}", self.name),
        ] {
            admin.batch_execute(&sql).unwrap();
        }
        admin
    }

    /// `host:port/dbname` of this test's real database, for a URL with another user.
    pub(crate) fn server(&self) -> String {
        self.url().split_once('@').unwrap().1.to_string()
    }

    /// How many databases strata made for this test's project and left behind (`what` is
    /// `sandbox` or `copy`; their names start with the first 24 characters of the database they
    /// serve: the `_test` one, or the real one).
    pub(crate) fn throwaways(&self, what: &str, of_test_db: bool) -> usize {
        let suffix = if of_test_db { "_test" } else { "" };
        let prefix: String = format!("{}{suffix}", self.name).chars().take(24).collect();
        self.rows(
            false,
            &format!(
                "SELECT count(*) FROM pg_database \
                 WHERE starts_with(datname, 'strata_{what}_{prefix}_')"
            ),
        )[0]
        .parse()
        .unwrap()
    }

    /// Asserts no output of `run` shows the password.
    #[track_caller]
    pub(crate) fn hides_password(&self, run: &Run) {
        assert!(!self.password.is_empty(), "the test server has a password");
        for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(&self.password),
                "{what} of `{}` shows the password:\n{text}",
                run.command
            );
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let mut c = self.admin_client();
        for suffix in ["", "_test"] {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}{suffix} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A project whose databases are `pg`'s, with the password in strata.toml's URL.
pub(crate) fn project(pg: &Pg) -> Project {
    let p = Project::empty();
    p.write("strata.toml", &format!("db = \"{}\"\n", pg.url()));
    p
}

const ORDERS: &str = "
CREATE TABLE customer (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text NOT NULL,
    vip     boolean NOT NULL DEFAULT false,
    born    date,
    balance numeric(12, 2) NOT NULL DEFAULT 0,
    prefs   jsonb
);
-- PL/pgSQL with BEGIN/END and semicolons inside a dollar-quoted body
CREATE FUNCTION customer_name_trim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := trim(NEW.name);
    RETURN NEW;
END;
$$;
CREATE TRIGGER customer_name_trim BEFORE INSERT ON customer
    FOR EACH ROW EXECUTE FUNCTION customer_name_trim();
";

const TEST_DATA: &str = r#"{"customer": [
    {"name": "  Ada ", "vip": true, "born": "1815-12-10", "balance": "12.50",
     "prefs": "{\"lang\": \"en\"}"},
    {"name": "O'Brien $v$ \\ ", "vip": 0, "born": null, "balance": 3}
]}"#;

const PROJ_DATA: &str = r#"{"customer": [{"name": "house account", "balance": 0}]}"#;

fn orders_chain(p: &Project) {
    p.write("migrations/shop/20260101T000000Z-customers/do.sql", ORDERS)
        .write(
            "migrations/shop/20260101T000000Z-customers/test-data/data.json",
            TEST_DATA,
        )
        .write(
            "migrations/shop/20260101T000000Z-customers/proj-data/data.json",
            PROJ_DATA,
        )
        .write(
            "migrations/shop/20260101T000000Z-customers/checks.sql",
            "SELECT id, name FROM customer WHERE name <> trim(name);\n",
        )
        .write(
            "migrations/shop/20260102T000000Z-orders/do.sql",
            "CREATE TABLE orders (\n    id bigserial PRIMARY KEY,\n    \
             customer_id bigint NOT NULL REFERENCES customer(id),\n    \
             placed timestamptz NOT NULL DEFAULT now()\n);\n\
             CREATE INDEX orders_customer ON orders (customer_id);\n",
        );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn migrate_rehearses_on_the_test_database_then_applies_to_the_real_one() {
    let pg = Pg::new("migrate");
    let p = project(&pg);
    orders_chain(&p);

    let run = p.strata(&["migrate"]).ok();
    pg.hides_password(&run);
    let run = run
        .stderr_has("rehearsal")
        .stderr_has(format!("/{}_test", pg.name));

    // The test database got the test data (converted to each column's type), the real one
    // only the project data.
    assert_eq!(
        pg.rows(
            true,
            "SELECT name, vip, born, balance, prefs->>'lang' FROM customer ORDER BY id"
        ),
        vec![
            "Ada|t|1815-12-10|12.50|en",
            "O'Brien $v$ \\|f|NULL|3.00|NULL",
            "house account|f|NULL|0.00|NULL",
        ]
    );
    assert_eq!(
        pg.rows(false, "SELECT name FROM customer"),
        vec!["house account"]
    );
    // The role is named like strata's bookkeeping schema: its `"$user"` schema must not
    // swallow the migration's tables.
    assert_eq!(
        pg.rows(
            false,
            "SELECT schemaname || '.' || tablename FROM pg_tables \
             WHERE schemaname <> 'pg_catalog' AND schemaname <> 'information_schema' ORDER BY 1"
        ),
        vec![
            "public.customer",
            "public.orders",
            "strata.strata_database",
            "strata.strata_migration",
            "strata.strata_migration_audit",
            "strata.strata_object"
        ]
    );
    // The ledger and the audit log, in the strata schema.
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT module, stamp, name FROM strata.strata_migration ORDER BY stamp"
            ),
            vec![
                "shop|20260101T000000Z|customers",
                "shop|20260102T000000Z|orders"
            ]
        );
    }
    let audit = pg.rows(
        false,
        "SELECT action, outcome FROM strata.strata_migration_audit ORDER BY id",
    );
    assert!(audit.contains(&"do.sql|ok".to_string()), "{audit:?}");
    assert!(audit.contains(&"proj-data|ok".to_string()), "{audit:?}");
    assert!(
        !audit.iter().any(|a| a.starts_with("test-data")),
        "{audit:?}"
    );
    assert_eq!(
        audit.first().map(String::as_str),
        Some("backup|ok"),
        "{audit:?}"
    );
    drop(run);

    // Each phase took a verified pg_dump backup first, recorded without the password.
    let mut backups: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    backups.sort();
    // Beside the real database's backup, the state its run left (for `restore`).
    let states: Vec<&String> = backups
        .iter()
        .filter(|b| b.ends_with(".after.json"))
        .collect();
    assert_eq!(states.len(), 1, "{backups:?}");
    let state = std::fs::read_to_string(p.path(".strata/backups").join(states[0])).unwrap();
    assert!(
        state.contains("\"customer\"") && !state.contains(&pg.password),
        "{state}"
    );
    backups.retain(|b| !b.ends_with(".after.json"));
    assert_eq!(backups.len(), 4, "{backups:?}");
    assert_eq!(
        backups.iter().filter(|b| b.ends_with(".pgdump")).count(),
        2,
        "{backups:?}"
    );
    for b in backups.iter().filter(|b| b.ends_with(".json")) {
        let record = std::fs::read_to_string(p.path(".strata/backups").join(b)).unwrap();
        assert!(!record.contains(&pg.password), "{record}");
        assert!(record.contains("before migrate"), "{record}");
    }

    // Nothing left: a second run applies nothing; status and audit read the same tables.
    let again = p.strata(&["migrate"]).ok();
    pg.hides_password(&again);
    let status = p.strata(&["status", "--json"]).ok();
    pg.hides_password(&status);
    let json = status.json();
    let text = json.to_string();
    assert!(text.contains("20260102T000000Z"), "{text}");
    assert!(!text.contains("pending"), "{text}");
    let audit = p.strata(&["audit"]).ok().stdout_has("proj-data");
    pg.hides_password(&audit);
    // The audit log is append-only on PostgreSQL too.
    let e = pg
        .client(false)
        .batch_execute("DELETE FROM strata.strata_migration_audit")
        .unwrap_err();
    assert!(e.to_string().contains("append-only") || format!("{e:?}").contains("append-only"));
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_failed_step_rolls_back_whole_and_is_audited_after_the_rollback() {
    let pg = Pg::new("failed");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-first/do.sql",
        "CREATE TABLE kept (id int);\n",
    )
    .write(
        "migrations/shop/20260102T000000Z-broken/do.sql",
        "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n\nINSERT INTO half\n  VALUES ('not a number');\n",
    );
    let run = p
        .strata(&["migrate"])
        .code(1)
        .stderr_has("20260102T000000Z-broken")
        .stderr_has("do.sql, line 5")
        .stderr_has("invalid input syntax for type integer")
        .stderr_has("rolled back");
    pg.hides_password(&run);
    // Transactional DDL: the table of the failed step's first statement is gone too; the step
    // before it stays; phase 2 never started.
    assert_eq!(
        pg.rows(
            true,
            "SELECT to_regclass('half') IS NULL, to_regclass('kept') IS NOT NULL"
        ),
        vec!["t|t"]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        vec!["0"]
    );
    assert_eq!(
        broken_audit(&pg, true),
        vec!["20260102T000000Z|do.sql|failed"]
    );
}

/// The audit rows of the step `20260102T000000Z` on the test database or the real one.
fn broken_audit(pg: &Pg, test_db: bool) -> Vec<String> {
    pg.rows(
        test_db,
        "SELECT stamp, action, outcome FROM strata.strata_migration_audit \
         WHERE stamp = '20260102T000000Z' ORDER BY id",
    )
}

/// The first statement of a step's do.sql goes to the server in the batch that begins the step:
/// its failure is still the statement's, located on its line (counted within do.sql, not the
/// batch), audited, and rolled back with the step, whether the server failed it as it ran or
/// could not read it at all (a syntax error stops the whole batch before strata's part runs),
/// or the client could not send it (a NUL), in a transaction per step and in one for the phase.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn the_first_statement_rides_with_the_step_and_fails_as_its_own() {
    for (i, (sql, line, message)) in [
        (
            "-- ünïcode first\nSELECT 'é',\n  no_such_column;\nCREATE TABLE later (id int);\n",
            3,
            "column \"no_such_column\" does not exist",
        ),
        (
            "-- ünïcode first\nCREATE TABLE half (id int)\n  WITH WITH;\n",
            3,
            "syntax error at or near \"WITH\"",
        ),
        (
            "SELECT 'a\0b';\nCREATE TABLE later (id int);\n",
            1,
            "string contains embedded null",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        for single in [false, true] {
            let pg = Pg::new(&format!("first{i}{}", u8::from(single)));
            let p = project(&pg);
            p.write(
                "migrations/shop/20260101T000000Z-first/do.sql",
                "CREATE TABLE kept (id int);\n",
            )
            .write("migrations/shop/20260102T000000Z-broken/do.sql", sql);
            let mut args = vec!["migrate", "--no-rehearsal"];
            if single {
                args.push("--single-transaction");
            }
            p.strata(&args)
                .code(1)
                .stderr_has("20260102T000000Z-broken")
                .stderr_has(format!("do.sql, line {line}"))
                .stderr_has(message)
                .stderr_has("rolled back");
            let kept = if single { "f" } else { "t" };
            assert_eq!(
                pg.rows(
                    false,
                    "SELECT to_regclass('half') IS NULL AND to_regclass('later') IS NULL, \
                     to_regclass('kept') IS NOT NULL"
                ),
                vec![format!("t|{kept}")]
            );
            assert_eq!(
                broken_audit(&pg, false),
                vec!["20260102T000000Z|do.sql|failed"]
            );
            assert_eq!(
                pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
                vec![if single { "0" } else { "1" }]
            );
        }
    }
}

/// Waits until a session of strata waits for a lock of `kind` (`relation`, `transactionid`).
fn await_strata_waiting(pg: &Pg, kind: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg.rows(
        false,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'strata' \
             AND wait_event_type = 'Lock' AND wait_event = '{kind}'"
        ),
    ) == ["0"]
    {
        assert!(std::time::Instant::now() < deadline, "strata never {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A step records itself, its ledger row and its audit rows and commits in one round trip;
/// when another process takes the audit id the step's row was given (its insert waits for that
/// process and then fails), the step goes back to before its records and writes them again as
/// before, the audit row with the next free id, and commits.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn an_audit_id_another_process_takes_during_the_commit_is_given_up_and_the_step_commits() {
    use std::process::Stdio;
    let pg = Pg::new("audit_id");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-gate/do.sql",
        "CREATE TABLE gate (id int);\n",
    );
    p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    p.write(
        "migrations/shop/20260102T000000Z-second/do.sql",
        "LOCK TABLE gate IN EXCLUSIVE MODE;\nCREATE TABLE second (id int);\n",
    );
    // The step waits at its first statement for the gate...
    let mut gate = pg.client(false);
    gate.batch_execute("BEGIN; LOCK TABLE gate IN EXCLUSIVE MODE")
        .unwrap();
    let migrate = crate::harness::strata_command(p.root(), &["migrate", "--no-rehearsal", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    await_strata_waiting(&pg, "relation", "reached the second step");
    // ...while another process takes the next audit id, uncommitted; then the step goes on
    // and its audit row, given the same id, waits for that process.
    let mut other = pg.client(false);
    other
        .batch_execute(
            "BEGIN; INSERT INTO strata.strata_migration_audit \
             (id, at, phase, action, outcome, operator) OVERRIDING SYSTEM VALUE \
             SELECT max(id) + 1, 'then', 'apply', 'other', 'ok', 'another process' \
             FROM strata.strata_migration_audit",
        )
        .unwrap();
    gate.batch_execute("COMMIT").unwrap();
    await_strata_waiting(&pg, "transactionid", "waited for the audit id");
    other.batch_execute("COMMIT").unwrap();
    let out = migrate.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT stamp FROM strata.strata_migration ORDER BY stamp"
        ),
        vec!["20260101T000000Z", "20260102T000000Z"]
    );
    assert_eq!(
        pg.rows(false, "SELECT to_regclass('second') IS NOT NULL"),
        vec!["t"]
    );
    // Both rows are there, the step's after the other process's.
    assert_eq!(
        pg.rows(
            false,
            "SELECT action, outcome FROM strata.strata_migration_audit \
             WHERE action = 'other' OR stamp = '20260102T000000Z' ORDER BY id"
        ),
        vec!["other|ok", "do.sql|ok"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_violated_check_fails_the_step_and_a_check_cannot_write() {
    let pg = Pg::new("checks");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-prices/do.sql",
        "CREATE TABLE price (cents int);\nINSERT INTO price VALUES (5), (-1);\n",
    )
    .write(
        "migrations/shop/20260101T000000Z-prices/checks.sql",
        "WITH gone AS (DELETE FROM price WHERE cents < 0 RETURNING 1) SELECT 1 WHERE false;\n\
         SELECT cents FROM price WHERE cents < 0;\n",
    );
    // A check that writes fails the step: checks run read-only (a sequence's nextval, which no
    // rollback undoes, included).
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("checks.sql, line 1")
        .stderr_has("checks.sql runs read-only");
    p.write(
        "migrations/shop/20260101T000000Z-prices/checks.sql",
        "SELECT 1 WHERE false;
SELECT cents FROM price WHERE cents < 0;
",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("checks.sql, line 2")
        .stderr_has("1 violating row")
        .stderr_has("cents='-1'");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn transaction_control_in_do_sql_is_refused_before_anything_runs() {
    let pg = Pg::new("txn");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-a/do.sql",
        "CREATE TABLE a (id int);\n",
    )
    .write(
        "migrations/shop/20260102T000000Z-b/do.sql",
        "CREATE TABLE b (id int);\nCOMMIT;\n",
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("20260102T000000Z-b/do.sql")
        .stderr_has("line 2")
        .stderr_has("COMMIT");
    // Refused while reading inputs: not even the test database was created.
    assert_eq!(
        pg.rows(
            false,
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}_test'",
                pg.name
            )
        ),
        vec!["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_setting_made_by_one_step_does_not_reach_the_next() {
    let pg = Pg::new("leak");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-elsewhere/do.sql",
        "CREATE SCHEMA side;\nSET search_path = side;\nCREATE TABLE inside (id int);\n\
         CREATE TEMP TABLE scratch (id int);\nPREPARE q AS SELECT 1;\n",
    )
    .write(
        "migrations/shop/20260102T000000Z-default/do.sql",
        "CREATE TABLE outside (id int);\nCREATE TEMP TABLE scratch (id int);\nPREPARE q AS SELECT 2;\n",
    );
    p.strata(&["migrate", "--no-rehearsal"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT schemaname || '.' || tablename FROM pg_tables \
             WHERE tablename IN ('inside', 'outside') ORDER BY 1"
        ),
        vec!["public.outside", "side.inside"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn concurrent_runs_apply_each_migration_exactly_once() {
    let pg = Pg::new("concurrent");
    let p = project(&pg);
    for i in 0..6 {
        p.write(
            &format!("migrations/shop/2026010{}T000000Z-step/do.sql", i + 1),
            &format!("CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    let migrate = vec!["migrate".to_string()];
    crate::harness::all_at_once(p.root(), &vec![migrate; 4]);
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(test_db, "SELECT count(*) FROM strata.strata_migration"),
            vec!["6"]
        );
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT count(*) FROM strata.strata_migration_audit \
                 WHERE action = 'do.sql' AND outcome = 'ok'"
            ),
            vec!["6"]
        );
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn what_cannot_run_on_these_databases_is_refused_before_anything_runs() {
    let pg = Pg::new("refusals");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-a/do.sql",
        "CREATE TABLE a (id int);\n",
    );
    let run = p
        .strata(&["migrate", "--write-snapshots", "--single-transaction"])
        .code(2)
        .stderr_has("cannot be combined");
    pg.hides_password(&run);
    // A real database that does not exist: refused before the rehearsal touches anything.
    let (base, _) = pg
        .url()
        .rsplit_once('/')
        .map(|(b, n)| (b.to_string(), n.to_string()))
        .unwrap();
    let missing = format!("{base}/{}_missing", pg.name);
    p.strata(&["migrate", "--db", &missing])
        .code(2)
        .stderr_has("the database does not exist")
        .stderr_has("nothing was changed");
    assert_eq!(
        pg.rows(
            false,
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{}_missing%'",
                pg.name
            )
        ),
        vec!["0"]
    );
    // A SQLite test database beside a PostgreSQL real one proves nothing: refused.
    p.write(
        "strata.toml",
        &format!("db = \"{}\"\ntest_db = \"test.db\"\n", pg.url()),
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("both PostgreSQL URLs or both SQLite files");
    assert!(!p.path("test.db").exists());
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn plan_and_status_read_the_server_without_changing_it() {
    let pg = Pg::new("plan");
    let p = project(&pg);
    orders_chain(&p);
    let plan = p
        .strata(&["plan"])
        .ok()
        .stdout_has("20260101T000000Z-customers");
    pg.hides_password(&plan);
    let status = p.strata(&["status"]).ok();
    pg.hides_password(&status);
    // plan --sql shows PostgreSQL's SQL: its lock, the data as the step sends it, no PRAGMA.
    let sql = p.strata(&["plan", "--sql"]).ok();
    assert!(
        sql.stdout.contains("pg_advisory_xact_lock"),
        "{}",
        sql.stdout
    );
    assert!(
        sql.stdout.contains(
            "INSERT INTO \"customer\" (\"name\", \"balance\") VALUES ($v$house account$v$, $v$0$v$)"
        ),
        "{}",
        sql.stdout
    );
    assert!(!sql.stdout.contains("PRAGMA"), "{}", sql.stdout);
    // Reading created nothing: no strata schema on the real database, no test database.
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'strata'"
        ),
        vec!["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn sandbox_runs_the_chain_on_a_throwaway_database_and_drops_it() {
    let pg = Pg::new("sandbox");
    let p = project(&pg);
    orders_chain(&p);
    p.write(
        "migrations/shop/20260103T000000Z-broken/do.sql",
        "ALTER TABLE orders ADD COLUMN total numeric NOT NULL CHECK (total > 0);\n\
         INSERT INTO orders (customer_id, total) VALUES (1, 0);\n",
    )
    .write(
        "migrations/shop/20260104T000000Z-after/do.sql",
        "CREATE TABLE later (id int);\n",
    );
    let run = p
        .strata(&["sandbox", "--junit", "report.xml"])
        .code(1)
        .stdout_has("20260103T000000Z-broken");
    pg.hides_password(&run);
    let junit = std::fs::read_to_string(p.path("report.xml")).unwrap();
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(junit.contains("orders_total_check"), "{junit}");
    assert!(!junit.contains(&pg.password), "{junit}");
    // The throwaway database is gone; the project's own databases were never touched.
    assert_eq!(pg.throwaways("sandbox", true), 0);
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'strata'"
        ),
        vec!["0"]
    );
    // Without the broken step the chain passes.
    std::fs::remove_dir_all(p.path("migrations/shop/20260103T000000Z-broken")).unwrap();
    p.strata(&["sandbox"]).ok();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn the_postgres_example_migrates_as_the_readme_says() {
    let pg = Pg::new("example");
    let p = Project::empty();
    crate::harness::copy_dir(
        &crate::harness::repo_root().join("examples/postgres"),
        p.root(),
    );
    let url = pg.url();
    let run = p.strata(&["migrate", "--db", &url]).ok();
    pg.hides_password(&run);
    assert_eq!(
        pg.rows(true, "SELECT name, lifetime_spend FROM top_customer"),
        vec![
            "Grace Hopper|120.00",
            "Ada Lovelace|24.90",
            "House account|0.00"
        ]
    );
    assert_eq!(
        pg.rows(false, "SELECT email FROM customer"),
        vec!["house@shop.example"]
    );
    // The SQLite example's committed split-names component, run unchanged on PostgreSQL.
    assert_eq!(
        pg.rows(
            true,
            "SELECT first_name || '|' || last_name FROM people ORDER BY id"
        ),
        vec!["Ada|Lovelace", "Gabriel|García Márquez", "Søren|"]
    );
    p.strata(&["status", "--db", &url])
        .ok()
        .stdout_has("5 applied, 0 pending");
    p.strata(&["sandbox", "--db", &url]).ok();
    // The example's schema.sql is what the chain builds; a hand ALTER shows in diff --sql.
    p.strata(&["diff", "--db", &url])
        .ok()
        .stdout_has("shop: no changes against");
    pg.client(false)
        .batch_execute("ALTER TABLE customer ADD COLUMN phone text")
        .unwrap();
    p.strata(&["diff", "--sql", "--db", &url])
        .ok()
        .stdout_has("ALTER TABLE public.customer ADD COLUMN phone text;");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn serve_drives_a_postgres_project_over_the_wire() {
    use crate::remote::{Server, remote};
    let pg = Pg::new("serve");
    let server = project(&pg);
    orders_chain(&server);
    let srv = Server::start(&server, &[]);
    assert!(!srv.stderr().contains(&pg.password), "{}", srv.stderr());
    let client = Project::empty();
    let status = remote(&client, &srv.url, &["status"])
        .ok()
        .stdout_has("20260101T000000Z-customers");
    pg.hides_password(&status);
    let migrate = remote(&client, &srv.url, &["migrate"]).ok();
    pg.hides_password(&migrate);
    // Status is not served from a cache that cannot see a PostgreSQL commit.
    let after = remote(&client, &srv.url, &["status"]).ok();
    assert_eq!(
        after.stdout.matches("2 applied, 0 pending").count(),
        2,
        "{}",
        after.stdout
    );
    remote(&client, &srv.url, &["audit"])
        .ok()
        .stdout_has("proj-data");
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        vec!["2"]
    );
    // The schema over the wire: the service's dump and diff of its PostgreSQL database.
    remote(&client, &srv.url, &["dump", "shop"])
        .ok()
        .stdout_has("CREATE TABLE public.orders (");
    remote(&client, &srv.url, &["diff", "--sql"])
        .code(2)
        .stderr_has("has no schema.sql to compare with");
    // A call with a wrong token is refused and writes nothing, not even an audit row.
    crate::remote::write_token(&client, "wrong", "a-wrong-token-of-some-length");
    client
        .strata(&["--remote", &srv.url, "--token-file", "wrong", "status"])
        .code(3);
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM strata.strata_migration_audit WHERE phase = 'serve'"
        ),
        vec!["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_migration_cannot_touch_strata_bookkeeping() {
    let pg = Pg::new("tamper");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-first/do.sql",
        "CREATE TABLE first (id int);\n",
    );
    p.strata(&["migrate", "--no-rehearsal"]).ok();
    let audit_before = pg.rows(false, "SELECT count(*) FROM strata.strata_migration_audit");
    let attacks = [
        "DELETE FROM strata.strata_migration;",
        "UPDATE strata.strata_migration SET checksum = 'x';",
        "INSERT INTO strata.strata_migration_audit (at, phase, action, outcome, operator) \
         VALUES ('now', 'apply', 'forged', 'ok', 'me');",
        "ALTER TABLE strata.strata_migration_audit DISABLE TRIGGER ALL;\n\
         DELETE FROM strata.strata_migration_audit;",
        "SET session_replication_role = replica;\nDELETE FROM strata.strata_migration_audit;\n\
         SET session_replication_role = origin;",
        "CREATE OR REPLACE FUNCTION strata.append_only() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RETURN OLD; END $$;",
        "ALTER TABLE strata.strata_migration_audit DISABLE TRIGGER strata_migration_audit_no_change;\n\
         ALTER TABLE strata.strata_migration_audit ENABLE TRIGGER strata_migration_audit_no_change;\n\
         CREATE TABLE strata.planted (id int);",
        "DROP SCHEMA strata CASCADE;",
        "ALTER SCHEMA strata RENAME TO elsewhere;",
        "CREATE TRIGGER sneaky BEFORE INSERT ON strata.strata_migration FOR EACH ROW \
         EXECUTE FUNCTION strata.append_only();",
        "DO $$ BEGIN EXECUTE 'TRUNCATE strata.' || 'strata_database'; END $$;",
        "CREATE VIEW strata.looks_like_a_ledger AS SELECT 1 AS one;",
        "CREATE FUNCTION strata.helper() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        "CREATE TEMP TABLE pg_depend (classid oid);\nSET search_path = public, pg_catalog;\n\
         DELETE FROM strata.strata_migration;",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let folder = format!("migrations/shop/20260102T0000{i:02}Z-attack");
        p.write(&format!("{folder}/do.sql"), attack);
        let run = p.strata(&["migrate", "--no-rehearsal"]).code(1);
        assert!(
            run.stderr.contains("strata's bookkeeping")
                || run.stderr.contains("append-only")
                || run.stderr.contains("permission denied"),
            "attack {i} ({attack}) was not stopped as tampering:\n{}",
            run.stderr
        );
        std::fs::remove_dir_all(p.path(&folder)).unwrap();
        assert_eq!(
            pg.rows(
                false,
                "SELECT module || '/' || stamp FROM strata.strata_migration"
            ),
            vec!["shop/20260101T000000Z"],
            "attack {i}"
        );
    }
    // Nothing forged, nothing lost: each attempt appended its backup and its failure.
    let audit_after: i64 = pg.rows(false, "SELECT count(*) FROM strata.strata_migration_audit")[0]
        .parse()
        .unwrap();
    assert_eq!(
        audit_after,
        audit_before[0].parse::<i64>().unwrap() + 2 * attacks.len() as i64
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM strata.strata_migration_audit WHERE outcome = 'failed'"
        ),
        vec![attacks.len().to_string()]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM strata.strata_migration_audit WHERE action = 'forged'"
        ),
        vec!["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn restore_puts_a_backup_back_whole_and_keeps_the_audit_log() {
    let pg = Pg::new("restore");
    let p = project(&pg);
    orders_chain(&p);
    p.strata(&["migrate"]).ok();
    // A later migration, and rows the application wrote since.
    p.write(
        "migrations/shop/20260105T000000Z-later/do.sql",
        "CREATE TABLE later (id int);\nCREATE SCHEMA extra;\nCREATE TABLE extra.t (id int);\n",
    );
    p.strata(&["migrate"]).ok();
    pg.client(false)
        .batch_execute("INSERT INTO customer (name) VALUES ('written by the app')")
        .unwrap();
    let audit_before: i64 = pg.rows(false, "SELECT count(*) FROM strata.strata_migration_audit")[0]
        .parse()
        .unwrap();

    // The newest backup of the real database is the one taken before `later` was applied.
    let list = p.strata(&["restore", "--list"]).ok();
    pg.hides_password(&list);
    let run = p.strata(&["restore", "--yes"]).ok();
    pg.hides_password(&run);
    assert_eq!(
        pg.rows(
            false,
            "SELECT to_regclass('later') IS NULL, to_regnamespace('extra') IS NULL, \
             (SELECT count(*) FROM customer)"
        ),
        vec!["t|t|1"]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT stamp FROM strata.strata_migration ORDER BY stamp"
        ),
        vec!["20260101T000000Z", "20260102T000000Z"]
    );
    // Nothing of the audit log is lost; the restore is in it; ids keep counting up.
    let audit = pg.rows(
        false,
        "SELECT count(*), max(id) = count(*) FROM strata.strata_migration_audit",
    );
    assert_eq!(audit, vec![format!("{}|t", audit_before + 1)]);
    assert_eq!(
        pg.rows(
            false,
            "SELECT action FROM strata.strata_migration_audit ORDER BY id DESC LIMIT 1"
        ),
        vec!["restore"]
    );
    pg.client(false)
        .batch_execute("INSERT INTO customer (name) VALUES ('after the restore')")
        .unwrap();
    // The trigger and the append-only log came back too.
    assert_eq!(
        pg.rows(false, "SELECT name FROM customer ORDER BY id DESC LIMIT 1"),
        vec!["after the restore"]
    );
    assert!(
        pg.client(false)
            .batch_execute("DELETE FROM strata.strata_migration_audit")
            .is_err()
    );
    // A deliberate change to an applied migration: refused, then re-pinned with repair.
    p.write(
        "migrations/shop/20260102T000000Z-orders/do.sql",
        &format!(
            "-- orders, with a comment added later\n{}",
            std::fs::read_to_string(p.path("migrations/shop/20260102T000000Z-orders/do.sql"))
                .unwrap()
        ),
    );
    p.strata(&["migrate"]).code(3).stderr_has("strata repair");
    p.strata(&["repair", "shop/20260102T000000Z-orders", "--yes"])
        .ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM strata.strata_migration_audit WHERE action = 'repair'"
        ),
        vec!["1"]
    );
    // And `strata migrate` applies `later` again.
    p.strata(&["migrate"]).ok();
    assert_eq!(
        pg.rows(false, "SELECT to_regclass('later') IS NOT NULL"),
        vec!["t"]
    );
    // A backup of the test database does not go back into the real one.
    let test_backup = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "pgdump") && p.to_string_lossy().contains("_test-")
        })
        .unwrap();
    p.strata(&["restore", "--yes", test_backup.to_str().unwrap()])
        .code(2)
        .stderr_has("a backup goes back only to the database it was taken from");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn sslmode_require_connects_over_verified_tls() {
    let pg = Pg::new("tls");
    let ca = std::env::var("STRATA_TEST_POSTGRES_CA")
        .expect("STRATA_TEST_POSTGRES_CA names the authority of the test server (.ci/postgres.sh)");
    let p = Project::empty();
    // libpq's spelling: verify-full, and the authority in the URL.
    p.write(
        "strata.toml",
        &format!(
            "db = \"{}?sslmode=verify-full&sslrootcert={}\"\n",
            pg.url(),
            ca.replace('/', "%2F")
        ),
    )
    .write(
        "migrations/shop/20260101T000000Z-a/do.sql",
        "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    );
    // Verified against the authority that signed the server's certificate.
    let run = crate::harness::strata_command(p.root(), &["migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains(&pg.password), "{stderr}");
    assert_eq!(pg.rows(false, "SELECT count(*) FROM a"), vec!["1"]);
    // An authority that did not sign the server's certificate: refused, nothing applied.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
    p.write("other-ca.pem", &other.pem()).write(
        "strata.toml",
        &format!("db = \"{}?sslmode=require\"\n", pg.url()),
    );
    p.write(
        "migrations/shop/20260102T000000Z-b/do.sql",
        "CREATE TABLE b (id int);\n",
    );
    let refused = crate::harness::strata_command(p.root(), &["migrate"])
        .env("PGSSLROOTCERT", p.path("other-ca.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect") && stderr.contains("certificate"),
        "{stderr}"
    );
    assert_eq!(pg.rows(false, "SELECT to_regclass('b') IS NULL"), vec!["t"]);
}

/// The text of `strata dump` for `module` (stdout, which is the dump and nothing else).
fn dump_of(p: &Project, module: &str, extra: &[&str]) -> String {
    let mut args = vec!["dump", module];
    args.extend_from_slice(extra);
    p.strata(&args).ok().stdout
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn dump_diff_and_diff_sql_follow_a_hand_alter() {
    let pg = Pg::new("schema_diff");
    let p = project(&pg);
    orders_chain(&p);
    p.strata(&["migrate"]).ok();

    // The module's dump: schema-qualified, ordered, without strata's own objects.
    let dump = dump_of(&p, "shop", &[]);
    for part in [
        "CREATE OR REPLACE FUNCTION public.customer_name_trim()",
        "CREATE TABLE public.customer (\n    id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,\n",
        "    balance numeric(12,2) NOT NULL DEFAULT 0,\n",
        "ALTER TABLE public.orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY \
         (customer_id) REFERENCES public.customer(id);",
        "ALTER SEQUENCE public.orders_id_seq OWNED BY public.orders.id;",
        "CREATE INDEX orders_customer ON public.orders USING btree (customer_id);",
        "CREATE TRIGGER customer_name_trim BEFORE INSERT ON public.customer",
    ] {
        assert!(dump.contains(part), "the dump lacks {part:?}:\n{dump}");
    }
    assert!(!dump.contains("strata."), "{dump}");
    // The test database, migrated the same way, dumps the same.
    assert_eq!(
        dump_of(&p, "shop", &["--db", &format!("{}_test", pg.url())]),
        dump
    );

    // --write stores it as the newest migration's schema.sql and LATEST's.
    let run = p.strata(&["dump", "shop", "--write"]).ok();
    pg.hides_password(&run);
    let stored =
        std::fs::read_to_string(p.path("migrations/shop/20260102T000000Z-orders/schema.sql"))
            .unwrap();
    assert_eq!(stored, dump);
    assert_eq!(
        std::fs::read_to_string(p.path("migrations/shop/LATEST/schema.sql")).unwrap(),
        dump
    );
    p.strata(&["diff"])
        .ok()
        .stdout_has("shop: no changes against");

    // Changes by hand, with the postgres crate as psql would send them.
    pg.client(false)
        .batch_execute(
            "ALTER TABLE customer ADD COLUMN email text NOT NULL DEFAULT '';
             ALTER TABLE customer DROP COLUMN prefs;
             ALTER TABLE customer ALTER COLUMN vip DROP NOT NULL;
             ALTER TABLE orders ALTER COLUMN placed DROP DEFAULT;
             CREATE INDEX customer_email ON customer (email);",
        )
        .unwrap();
    let diff = p.strata(&["diff"]).ok();
    pg.hides_password(&diff);
    assert_eq!(
        diff.stdout,
        "shop (against migrations/shop/20260102T000000Z-orders/schema.sql):\n\
         \x20 ~ table customer\n\
         \x20     - column prefs jsonb\n\
         \x20     ~ column vip: not null yes -> no\n\
         \x20     + column email text NOT NULL DEFAULT ''::text\n\
         \x20 ~ table orders\n\
         \x20     ~ column placed: default now() -> (none)\n\
         \x20 + index customer_email\n\
         \x20 not owned by any module yet: index customer_email; `strata new shop <slug> \
         --from-diff` makes them shop's\n",
        "{}",
        diff.stderr
    );
    p.strata(&["status"])
        .ok()
        .stdout_has("module `shop` DRIFTED from")
        .stdout_has("1 object(s) no module owns: index customer_email");
    let json = p.strata(&["--json", "diff"]).ok().json();
    assert_eq!(json["modules"][0]["diff"]["tables"][0]["change"], "altered");
    assert_eq!(json["modules"][0]["unowned"][0]["name"], "customer_email");

    // The SQL drops a column: refused unless allowed, then printed with the warning on top.
    p.strata(&["diff", "--sql"])
        .code(3)
        .stderr_has("drops column prefs of table customer");
    let sql = p
        .strata(&["diff", "--sql", "--allow-destructive"])
        .ok()
        .stdout;
    for statement in [
        "ALTER TABLE public.customer DROP COLUMN prefs;",
        "ALTER TABLE public.customer ALTER COLUMN vip DROP NOT NULL;",
        "ALTER TABLE public.customer ADD COLUMN email text NOT NULL DEFAULT ''::text;",
        "ALTER TABLE public.orders ALTER COLUMN placed DROP DEFAULT;",
        "CREATE INDEX customer_email ON public.customer USING btree (email);",
    ] {
        assert!(
            sql.contains(statement),
            "the SQL lacks {statement:?}:\n{sql}"
        );
    }
    // Applied to the test database (still as the snapshot has it), the SQL gives it the real
    // database's schema: the diffs agree, and so do the tables' dumps.
    pg.client(true).batch_execute(&sql).unwrap();
    let test_db = format!("{}_test", pg.url());
    assert_eq!(
        p.strata(&["diff", "--db", &test_db]).ok().stdout,
        diff.stdout
    );

    // A new migration on top is refused while the real database has drifted.
    p.write(
        "migrations/shop/20260103T000000Z-notes/do.sql",
        "CREATE TABLE note (id int);\n",
    );
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("has drifted from its last applied snapshot")
        .stderr_has("+ column email");
    std::fs::remove_dir_all(p.path("migrations/shop/20260103T000000Z-notes")).unwrap();

    // new --from-diff makes the change a migration; migrate rehearses it on a fresh test
    // database, where its do.sql (the SQL above) must give exactly its schema.sql.
    pg.admin_client()
        .batch_execute(&format!("DROP DATABASE {}_test WITH (FORCE)", pg.name))
        .unwrap();
    p.strata(&[
        "new",
        "shop",
        "by-hand",
        "--from-diff",
        "--allow-destructive",
    ])
    .ok();
    p.strata(&["migrate"]).ok();
    p.strata(&["diff"])
        .ok()
        .stdout_has("shop: no changes against");
    p.strata(&["diff", "--db", &test_db])
        .ok()
        .stdout_has("shop: no changes against");
    let real = dump_of(&p, "shop", &[]);
    assert!(real.contains("CREATE INDEX customer_email"), "{real}");
    assert_eq!(dump_of(&p, "shop", &["--db", &test_db]), real);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_step_that_does_not_match_its_schema_sql_fails_and_rolls_back() {
    let pg = Pg::new("schema_check");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-a/do.sql",
        "CREATE TABLE a (id int PRIMARY KEY, n text);\n",
    )
    .write(
        "migrations/shop/20260101T000000Z-a/schema.sql",
        "CREATE TABLE public.a (\n    id integer NOT NULL,\n    CONSTRAINT a_pkey PRIMARY KEY (id)\n);\n",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("differs from its schema.sql")
        .stderr_has("+ column n text");
    assert_eq!(
        pg.rows(true, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'"),
        vec!["0"]
    );
    // With the right snapshot, the step goes through on both databases.
    p.write(
        "migrations/shop/20260101T000000Z-a/schema.sql",
        "CREATE TABLE public.a (\n    id integer NOT NULL,\n    n text,\n    \
         CONSTRAINT a_pkey PRIMARY KEY (id)\n);\n",
    );
    p.strata(&["migrate"]).ok();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn each_module_owns_what_its_steps_created_through_renames() {
    let pg = Pg::new("schema_owner");
    let p = project(&pg);
    p.write(
        "migrations/people/20260101T000000Z-a/do.sql",
        "CREATE TABLE person (id int PRIMARY KEY, name text);\n",
    )
    .write(
        "migrations/audit/20260102T000000Z-b/do.sql",
        "CREATE SCHEMA audit;\nCREATE TABLE audit.event (id int, person int REFERENCES person(id));\n\
         CREATE INDEX person_name ON person (name);\n",
    )
    .write(
        "migrations/people/20260103T000000Z-c/do.sql",
        "ALTER TABLE person RENAME TO human;\n",
    );
    p.strata(&["migrate"]).ok();
    let people = dump_of(&p, "people", &[]);
    let audit = dump_of(&p, "audit", &[]);
    assert!(people.contains("CREATE TABLE public.human ("), "{people}");
    assert!(!people.contains("person_name"), "{people}");
    assert_eq!(
        audit,
        "CREATE SCHEMA audit;\n\n\
         CREATE TABLE audit.event (\n    id integer,\n    person integer\n);\n\n\
         ALTER TABLE audit.event ADD CONSTRAINT event_person_fkey FOREIGN KEY (person) \
         REFERENCES public.human(id);\n\n\
         CREATE INDEX person_name ON public.human USING btree (name);\n"
    );
    // A table made by hand belongs to no module (the test role is named `strata`: its
    // `"$user"` schema would be strata's own, which is never part of a dump), even when a later
    // step alters it; the index that step creates on it is the step's module's.
    for test_db in [false, true] {
        pg.client(test_db)
            .batch_execute("CREATE TABLE public.by_hand (x int)")
            .unwrap();
    }
    p.write(
        "migrations/people/20260104T000000Z-d/do.sql",
        "ALTER TABLE by_hand ADD COLUMN y int;\nCREATE INDEX by_hand_y ON by_hand (y);\n",
    );
    p.strata(&["migrate"]).ok();
    let json = p.strata(&["--json", "dump"]).ok().json();
    assert_eq!(json["unowned"][0]["name"], "by_hand");
    assert_eq!(json["unowned"].as_array().unwrap().len(), 1);
    assert!(
        dump_of(&p, "people", &[]).contains("CREATE INDEX by_hand_y ON public.by_hand"),
        "{}",
        dump_of(&p, "people", &[])
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn baseline_adopts_an_existing_postgres_database() {
    let pg = Pg::new("baseline");
    pg.client(false)
        .batch_execute(
            "CREATE TABLE genre (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
             CREATE TABLE track (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                 genre_id int REFERENCES genre(id) ON DELETE SET NULL,
                 title text NOT NULL CHECK (title <> ''));
             CREATE VIEW track_genre AS SELECT t.title, g.name FROM track t JOIN genre g ON g.id = t.genre_id;
             INSERT INTO genre (name) VALUES ('Rock');",
        )
        .unwrap();
    let p = project(&pg);
    p.write("migrations/.keep", "");
    let run = p.strata(&["baseline", "music"]).ok();
    pg.hides_password(&run);
    let zero = std::fs::read_dir(p.path("migrations/music"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.to_string_lossy().ends_with("-zero"))
        .expect("the zero migration");
    let schema = std::fs::read_to_string(zero.join("schema.sql")).unwrap();
    assert!(
        schema.contains("CREATE VIEW public.track_genre AS"),
        "{schema}"
    );
    assert!(
        std::fs::read_to_string(zero.join("do.sql"))
            .unwrap()
            .ends_with(&schema)
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT module, name FROM strata.strata_migration; \
             SELECT count(*) FROM strata.strata_object WHERE module = 'music'"
        ),
        vec!["music|zero", "4"]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT action FROM strata.strata_migration_audit ORDER BY id"
        ),
        vec!["backup", "baseline"]
    );
    assert_eq!(dump_of(&p, "music", &[]), schema);
    p.strata(&["diff"])
        .ok()
        .stdout_has("music: no changes against");
    // The data stayed; migrate builds the test database from the zero migration, whose
    // schema.sql the step checks.
    assert_eq!(pg.rows(false, "SELECT name FROM genre"), vec!["Rock"]);
    p.strata(&["migrate"]).ok();
    assert_eq!(
        dump_of(&p, "music", &["--db", &format!("{}_test", pg.url())]),
        schema
    );
    p.strata(&["baseline", "music"])
        .code(2)
        .stderr_has("already has migrations");
}

/// A realistic schema for PostgreSQL: Chinook's tables with foreign keys, indexes, identity
/// and serial columns, a sequence, defaults, checks, an enum, a domain, a view over a view, a
/// materialized view, a function with its trigger, quoted names and a second schema.
const CHINOOK: &str = r#"
CREATE SCHEMA sales;
CREATE TYPE media_kind AS ENUM ('audio', 'video');
CREATE DOMAIN price AS numeric(10,2) NOT NULL CHECK (VALUE >= 0);
CREATE SEQUENCE invoice_number START 1000 INCREMENT 10;
CREATE TABLE artist (
    artist_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name varchar(120) NOT NULL
);
CREATE TABLE album (
    album_id serial PRIMARY KEY,
    title varchar(160) NOT NULL,
    artist_id int NOT NULL REFERENCES artist (artist_id) ON DELETE CASCADE
);
CREATE TABLE genre (genre_id smallint PRIMARY KEY, name varchar(120) COLLATE "C");
CREATE TABLE media_type (media_type_id int PRIMARY KEY, name varchar(120), kind media_kind NOT NULL DEFAULT 'audio');
CREATE TABLE track (
    track_id int GENERATED BY DEFAULT AS IDENTITY (START WITH 100) PRIMARY KEY,
    name varchar(200) NOT NULL,
    album_id int REFERENCES album (album_id),
    media_type_id int NOT NULL REFERENCES media_type (media_type_id),
    genre_id smallint REFERENCES genre (genre_id),
    composer varchar(220),
    milliseconds int NOT NULL CHECK (milliseconds > 0),
    bytes bigint,
    unit_price price,
    seconds numeric GENERATED ALWAYS AS (milliseconds / 1000.0) STORED,
    UNIQUE (album_id, name)
);
CREATE INDEX track_album ON track (album_id);
CREATE INDEX track_lower_name ON track (lower(name)) WHERE composer IS NOT NULL;
CREATE TABLE sales."Customer" (
    customer_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "First Name" varchar(40) NOT NULL,
    email varchar(60) NOT NULL,
    support_rep_id int,
    created timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customer_email_format CHECK (email LIKE '%@%')
);
CREATE UNIQUE INDEX customer_email ON sales."Customer" (lower(email));
CREATE TABLE sales.invoice (
    invoice_id int PRIMARY KEY DEFAULT nextval('invoice_number'),
    customer_id int NOT NULL REFERENCES sales."Customer" (customer_id),
    invoice_date date NOT NULL DEFAULT CURRENT_DATE,
    total numeric(10,2) NOT NULL DEFAULT 0
);
CREATE TABLE sales.invoice_line (
    invoice_line_id bigserial PRIMARY KEY,
    invoice_id int NOT NULL REFERENCES sales.invoice (invoice_id) ON DELETE CASCADE,
    track_id int NOT NULL REFERENCES track (track_id),
    unit_price numeric(10,2) NOT NULL,
    quantity int NOT NULL DEFAULT 1 CHECK (quantity > 0)
);
CREATE VIEW track_detail AS
    SELECT t.track_id, t.name, a.title AS album, ar.name AS artist
    FROM track t LEFT JOIN album a USING (album_id) LEFT JOIN artist ar USING (artist_id);
CREATE VIEW artist_tracks AS
    SELECT artist, count(*) AS tracks FROM track_detail GROUP BY artist;
CREATE MATERIALIZED VIEW sales.revenue AS
    SELECT i.customer_id, sum(l.unit_price * l.quantity) AS revenue
    FROM sales.invoice i JOIN sales.invoice_line l USING (invoice_id) GROUP BY i.customer_id;
CREATE FUNCTION sales.invoice_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sales.invoice SET total = total + NEW.unit_price * NEW.quantity
     WHERE invoice_id = NEW.invoice_id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER invoice_line_total AFTER INSERT ON sales.invoice_line
    FOR EACH ROW EXECUTE FUNCTION sales.invoice_total();
CREATE FUNCTION track_count(a int) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM track WHERE album_id = a $$;
CREATE PROCEDURE sales.close_day(day date) LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', day; END $$;
CREATE TYPE sales.money_pair AS (amount numeric, currency char(3));
CREATE UNLOGGED TABLE sales.cart (id uuid PRIMARY KEY, items jsonb NOT NULL DEFAULT '[]', tags text[]);
CREATE INDEX cart_items ON sales.cart USING gin (items);
CREATE TABLE sales.booking (room int, during tstzrange, EXCLUDE USING gist (during WITH &&));
CREATE TABLE sales.play (at date NOT NULL, track_id int) PARTITION BY RANGE (at);
CREATE INDEX play_track ON sales.play (track_id) INCLUDE (at);
"#;

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_realistic_schema_round_trips_through_its_dump() {
    let pg = Pg::new("schema_rt");
    let p = project(&pg);
    p.write("migrations/chinook/20260101T000000Z-zero/do.sql", CHINOOK);
    p.strata(&["migrate"]).ok();
    let first = dump_of(&p, "chinook", &[]);
    for part in [
        "CREATE SCHEMA sales;",
        "CREATE TYPE public.media_kind AS ENUM ('audio', 'video');",
        "CREATE DOMAIN public.price AS numeric(10,2) NOT NULL CONSTRAINT price_check CHECK ((VALUE >= (0)::numeric));",
        "CREATE SEQUENCE public.invoice_number AS bigint START WITH 1000 INCREMENT BY 10",
        "    track_id integer NOT NULL GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 1),",
        "    seconds numeric GENERATED ALWAYS AS (((milliseconds)::numeric / 1000.0)) STORED,",
        "CREATE TABLE sales.\"Customer\" (",
        "    \"First Name\" character varying(40) NOT NULL,",
        "    name character varying(120) COLLATE \"C\"",
        "CREATE UNIQUE INDEX customer_email ON sales.\"Customer\" USING btree (lower((email)::text));",
        "CREATE MATERIALIZED VIEW sales.revenue AS",
        "CREATE TRIGGER invoice_line_total AFTER INSERT ON sales.invoice_line",
        "SET check_function_bodies = false;",
        "CREATE UNLOGGED TABLE sales.cart (",
        ") PARTITION BY RANGE (at);",
        "CONSTRAINT booking_during_excl EXCLUDE USING gist (during WITH &&)",
        "CREATE TYPE sales.money_pair AS (amount numeric, currency character(3));",
        "CREATE OR REPLACE PROCEDURE sales.close_day(IN day date)",
    ] {
        assert!(first.contains(part), "the dump lacks {part:?}:\n{first}");
    }
    // A view comes after the view it reads.
    assert!(
        first.find("CREATE VIEW public.track_detail").unwrap()
            < first.find("CREATE VIEW public.artist_tracks").unwrap(),
        "{first}"
    );

    // The dump as the only migration of another project, on an empty database: the same
    // dump comes back (and each step there was checked against it as its schema.sql).
    let pg2 = Pg::new("schema_rt2");
    let p2 = project(&pg2);
    p2.write("migrations/chinook/20260101T000000Z-zero/do.sql", &first)
        .write(
            "migrations/chinook/20260101T000000Z-zero/schema.sql",
            &first,
        );
    p2.strata(&["migrate"]).ok();
    let second = dump_of(&p2, "chinook", &[]);
    assert_eq!(second, first);
    p2.strata(&["diff"])
        .ok()
        .stdout_has("chinook: no changes against");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn ownership_follows_objects_through_a_restore_and_a_later_rename() {
    let pg = Pg::new("schema_restore");
    let p = project(&pg);
    p.write(
        "migrations/people/20260101T000000Z-a/do.sql",
        "CREATE TABLE person (id int PRIMARY KEY);\n",
    );
    p.strata(&["migrate"]).ok();
    p.write(
        "migrations/people/20260102T000000Z-b/do.sql",
        "CREATE TABLE pet (id int);\n",
    );
    p.strata(&["migrate"]).ok();
    // The newest backup is the one taken before b: every object comes back with a new oid.
    p.strata(&["restore", "--yes"]).ok();
    p.write(
        "migrations/people/20260103T000000Z-c/do.sql",
        "ALTER TABLE person RENAME TO human;\n",
    );
    p.strata(&["migrate"]).ok();
    let dump = dump_of(&p, "people", &[]);
    assert!(dump.contains("CREATE TABLE public.human ("), "{dump}");
    assert!(dump.contains("CREATE TABLE public.pet ("), "{dump}");
    let json = p.strata(&["--json", "dump"]).ok().json();
    assert_eq!(json["unowned"], serde_json::json!([]));
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn owners_are_inferred_where_no_row_records_them() {
    let pg = Pg::new("schema_infer");
    let p = project(&pg);
    orders_chain(&p);
    p.strata(&["migrate"]).ok();
    let before = dump_of(&p, "shop", &[]);
    // As databases migrated before strata recorded ownership on PostgreSQL.
    for test_db in [false, true] {
        pg.client(test_db)
            .batch_execute("DELETE FROM strata.strata_object")
            .unwrap();
    }
    assert_eq!(dump_of(&p, "shop", &[]), before);
    let json = p.strata(&["--json", "dump"]).ok().json();
    assert_eq!(json["unowned"], serde_json::json!([]));
    // A change by hand made into a migration writes the inferred owners down.
    p.strata(&["dump", "shop", "--write"]).ok();
    pg.client(false)
        .batch_execute("CREATE TABLE public.extra (id int)")
        .unwrap();
    p.strata(&["new", "shop", "extra", "--from-diff"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT stamp, count(*) FROM strata.strata_object GROUP BY stamp ORDER BY stamp"
        )[..2],
        [
            "20260101T000000Z|3".to_string(),
            "20260102T000000Z|3".to_string()
        ]
    );
    // The rehearsal of that migration on the test database (no rows there either) compares
    // the module with its schema.sql, owners inferred the same way.
    p.strata(&["migrate"]).ok();
    p.strata(&["diff", "--db", &format!("{}_test", pg.url())])
        .ok()
        .stdout_has("shop: no changes against");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn single_transaction_applies_a_phase_whole_or_not_at_all() {
    let pg = Pg::new("single");
    let p = project(&pg);
    orders_chain(&p);
    p.write(
        "migrations/shop/20260103T000000Z-bad/do.sql",
        "CREATE TABLE ok_so_far (id int);\nINSERT INTO orders (customer_id) VALUES (424242);\n",
    );
    let run = p
        .strata(&["migrate", "--single-transaction"])
        .code(1)
        .stderr_has("shop/20260103T000000Z-bad")
        .stderr_has("foreign key");
    pg.hides_password(&run);
    // Nothing of the phase stayed: no table, no ledger row; the real database was not touched.
    assert_eq!(
        pg.rows(
            true,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        ["0"]
    );
    assert_eq!(
        pg.rows(true, "SELECT count(*) FROM strata.strata_migration"),
        ["0"]
    );
    assert_eq!(
        pg.rows(
            true,
            "SELECT action || '|' || outcome || '|' || coalesce(stamp, '') FROM \
             strata.strata_migration_audit WHERE action <> 'backup' ORDER BY id"
        ),
        [
            "do.sql|failed|20260103T000000Z",
            "single-transaction|rolled-back|",
            "single-transaction|rolled-back|",
        ]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        ["0"]
    );
    // Fixed, the same command applies every step in one transaction per database.
    p.write(
        "migrations/shop/20260103T000000Z-bad/do.sql",
        "CREATE TABLE ok_so_far (id int);\n",
    );
    p.strata(&["migrate", "--single-transaction", "-q"]).ok();
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(test_db, "SELECT count(*) FROM strata.strata_migration"),
            ["3"]
        );
    }
    // A step that prepares statements needs a fresh connection after it: refused up front.
    p.write(
        "migrations/shop/20260104T000000Z-prepared/do.sql",
        "PREPARE q AS SELECT 1;\nDEALLOCATE q;\n",
    );
    p.strata(&["migrate", "--single-transaction"])
        .code(2)
        .stderr_has("shop/20260104T000000Z-prepared")
        .stderr_has("run without --single-transaction");
    assert_eq!(
        pg.rows(true, "SELECT count(*) FROM strata.strata_migration"),
        ["3"]
    );
    p.strata(&["migrate", "-q"]).ok();
}

/// `pg`'s project with a table `t` applied, two equal rows in it in the real database only (the
/// test database does not have them), and a pending step that makes `t.a` unique, which only
/// the real rows break. With `backed_up`, a step that changes nothing runs after the rows are
/// in, so that the real database's newest backup holds them.
fn breakable_by_real_rows(pg: &Pg, backed_up: bool) -> Project {
    let p = project(pg);
    p.write(
        "migrations/app/20260101T000000Z-t/do.sql",
        "CREATE TABLE t (a int);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    pg.client(false)
        .batch_execute("INSERT INTO t VALUES (1), (1)")
        .unwrap();
    if backed_up {
        p.write("migrations/app/20260101T120000Z-noop/do.sql", "SELECT 1;\n");
        p.strata(&["migrate", "-q"]).ok();
    }
    p.write(
        "migrations/app/20260102T000000Z-unique/do.sql",
        "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a);\n",
    );
    p
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn rehearse_on_copy_catches_what_only_the_real_data_breaks() {
    let pg = Pg::new("copy");
    let p = breakable_by_real_rows(&pg, false);
    let copies = || pg.throwaways("copy", false);
    let run = p
        .strata(&["migrate", "--rehearse-on-copy"])
        .code(1)
        .stderr_has("app/20260102T000000Z-unique")
        .stderr_has("could not create unique index");
    pg.hides_password(&run);
    assert_eq!(copies(), 0, "the copy was not dropped");
    // The real database was not touched: no constraint, no ledger row for the step.
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["1"]
    );
    pg.client(false)
        .batch_execute("DELETE FROM t WHERE ctid <> (SELECT min(ctid) FROM t)")
        .unwrap();
    let run = p.strata(&["migrate", "--rehearse-on-copy", "--json"]).ok();
    let report = run.json();
    let copy_of: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|ph| ph["copy_of"].as_str())
        .collect();
    assert_eq!(copy_of.len(), 1, "{report}");
    assert!(copy_of[0].ends_with(&pg.name), "{report}");
    pg.hides_password(&run);
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["2"]
    );
    assert_eq!(copies(), 0);
}

/// The backend makes each throwaway database on the server of the database it serves, named
/// after it: the sandbox's beside the test database, `--rehearse-on-copy`'s beside the real one.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn throwaway_databases_are_made_beside_the_database_they_serve() {
    let pg = Pg::new("beside");
    let p = project(&pg);
    p.write(
        "migrations/app/20260101T000000Z-where/do.sql",
        "DO $$ BEGIN RAISE EXCEPTION 'running on %', current_database(); END $$;\n",
    );
    let named = |of: &str| -> String { of.chars().take(24).collect() };
    let test_db = format!("{}_test", pg.name);
    p.strata(&["sandbox"])
        .code(1)
        .stderr_has(format!("running on strata_sandbox_{}_", named(&test_db)));
    assert_eq!(pg.throwaways("sandbox", true), 0);
    p.strata(&["migrate", "--no-rehearsal", "--rehearse-on-copy"])
        .code(1)
        .stderr_has(format!("running on strata_copy_{}_", named(&pg.name)));
    assert_eq!(pg.throwaways("copy", false), 0);
    // Nothing reached the real database.
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'strata'"
        ),
        vec!["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn sandbox_from_a_database_or_a_backup_runs_only_its_pending_steps() {
    let pg = Pg::new("sandbox_from");
    let p = breakable_by_real_rows(&pg, true);
    // From the real database (its password in the URL): the pending step meets the real rows.
    let run = p
        .strata(&["sandbox", "--from", &pg.url(), "--json"])
        .code(1);
    pg.hides_password(&run);
    let report = run.json();
    assert_eq!(
        report["from"].as_str().unwrap(),
        pg.url().replace(&format!(":{}@", pg.password), "@")
    );
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "only the pending step runs: {report}");
    assert_eq!(steps[0]["outcome"], "failed");
    // From a backup strata took (the real database's newest, with the rows and one step fewer).
    // Newest by its record's time: two backups taken within one second are named `<stamp>` and
    // `<stamp>-1`, which sort the other way round.
    let real_backup = format!("{}-", pg.name);
    let backup = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "pgdump")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&real_backup)
        })
        .max_by_key(|p| {
            let record = std::fs::read_to_string(format!("{}.json", p.display())).unwrap();
            let record: serde_json::Value = serde_json::from_str(&record).unwrap();
            record["taken_at"].as_str().unwrap().to_string()
        })
        .expect("a backup of the real database");
    let report = p
        .strata(&["sandbox", "--from", &backup.to_string_lossy(), "--json"])
        .code(1)
        .json();
    let outcomes: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "failed"], "{report}");
    assert_eq!(pg.rows(false, "SELECT count(*) FROM t"), ["2"]);
    assert_eq!(pg.throwaways("sandbox", true), 0);
    p.strata(&["sandbox", "--from", "nothing.db"])
        .code(2)
        .stderr_has("takes a postgres:// URL of a database to copy or a .pgdump backup");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let pg = Pg::new("client_cert");
    let vars = [
        "STRATA_TEST_POSTGRES_CA",
        "STRATA_TEST_POSTGRES_CLIENT_CERT",
        "STRATA_TEST_POSTGRES_CLIENT_KEY",
    ]
    .map(std::env::var);
    let [Ok(ca), Ok(cert), Ok(key)] = vars else {
        panic!("the client certificate variables are not set: .ci/postgres.sh sets them up");
    };
    // The server takes strata_cert only with a certificate its authority signed (pg_hba `cert`).
    let mut admin = pg.give_to(
        "strata_cert",
        "DO $$ BEGIN CREATE ROLE strata_cert LOGIN; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    );
    let server = pg.server();
    let enc = |p: &str| p.replace('/', "%2F");
    let url = |cert: &str, key: &str| {
        format!(
            "postgres://strata_cert@{server}?sslmode=verify-full&sslrootcert={}&sslcert={}\
             &sslkey={}",
            enc(&ca),
            enc(cert),
            enc(key)
        )
    };
    let p = Project::empty();
    p.write(
        "migrations/app/20260101T000000Z-a/do.sql",
        "CREATE TABLE a (id int);\n",
    )
    .write("strata.toml", &format!("db = \"{}\"\n", url(&cert, &key)));
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(pg.rows(false, "SELECT to_regclass('a') IS NOT NULL"), ["t"]);
    // Without the certificate the server refuses the role.
    p.write(
        "strata.toml",
        &format!(
            "db = \"postgres://strata_cert@{server}?sslmode=verify-full&sslrootcert={}\"\n",
            enc(&ca)
        ),
    );
    p.strata(&["status"]).code(2).stderr_has("cannot connect");
    // A key others may read is refused before it is used, as libpq refuses it.
    let open_key = p.path("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    p.write(
        "strata.toml",
        &format!("db = \"{}\"\n", url(&cert, &open_key.to_string_lossy())),
    );
    p.strata(&["status"])
        .code(2)
        .stderr_has("group or world access");
    drop(pg);
    admin
        .batch_execute("DROP ROLE IF EXISTS strata_cert")
        .unwrap();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn write_snapshots_stores_each_steps_schema_and_the_next_run_checks_it() {
    let pg = Pg::new("write_snapshots");
    let p = project(&pg);
    orders_chain(&p);
    let run = p.strata(&["migrate", "--write-snapshots"]).ok();
    pg.hides_password(&run);
    let first =
        std::fs::read_to_string(p.path("migrations/shop/20260101T000000Z-customers/schema.sql"))
            .unwrap();
    let latest = std::fs::read_to_string(p.path("migrations/shop/LATEST/schema.sql")).unwrap();
    assert!(first.contains("CREATE TABLE public.customer"), "{first}");
    assert!(!first.contains("orders"), "{first}");
    assert!(latest.contains("CREATE TABLE public.orders"), "{latest}");
    // What was written is what the database holds: diff is clean, and a step whose result
    // differs from its written schema.sql fails.
    p.strata(&["diff"]).ok().stdout_has("no changes");
    p.write(
        "migrations/shop/20260103T000000Z-extra/do.sql",
        "CREATE TABLE extra (id int);\n",
    )
    .write("migrations/shop/20260103T000000Z-extra/schema.sql", &latest);
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("differs from its schema.sql");
}

/// Unicode identifiers (quoted and bare), literals and comments run on PostgreSQL through
/// plan --sql, migrate, sandbox, dump, diff and new --from-diff, with documented exit codes,
/// and the names come back unchanged.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn unicode_names_literals_and_comments_run_and_round_trip_on_postgres() {
    let pg = Pg::new("unicode");
    let p = project(&pg);
    p.write(
        "migrations/uni/20260101T000000Z-zero/do.sql",
        "-- 注释 'not closed\n/* e\u{301} \u{202e} */\n\
         CREATE TABLE \"用户\" (id int PRIMARY KEY, \"名字\" text DEFAULT 'é😀''s', \"e\u{301}\" numeric(15, 2));\n\
         CREATE TABLE café (naïve text, ǅx int);\n\
         CREATE INDEX \"ix_名字\" ON \"用户\" (lower(\"名字\"));\n\
         CREATE VIEW \"视图\" AS SELECT \"名字\" AS \"別名\" FROM \"用户\" WHERE \"名字\" <> '$$';\n\
         INSERT INTO \"用户\" (id, \"名字\") VALUES (1, E'\\u00e9 \\\\ud800');\n",
    );
    p.write(
        "migrations/uni/20260101T000000Z-zero/proj-data/data.json",
        r#"{"用户": [{"id": 2, "名字": "😀 e\u0301"}]}"#,
    );
    for args in [&["plan", "--sql"][..], &["sandbox"][..]] {
        let run = p.strata(args);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    }
    p.strata(&["migrate", "--write-snapshots"]).ok();
    assert_eq!(
        pg.rows(false, "SELECT \"名字\" FROM \"用户\" ORDER BY id"),
        vec!["é \\ud800".to_string(), "😀 e\u{301}".to_string()]
    );
    let dump = p.strata(&["dump", "uni"]).ok().stdout;
    for name in [
        "\"用户\"",
        "\"名字\"",
        "\"e\u{301}\"",
        "café",
        "naïve",
        "\"ix_名字\"",
        "\"视图\"",
    ] {
        assert!(dump.contains(name), "{name} not in\n{dump}");
    }
    p.strata(&["diff", "uni"])
        .ok()
        .stdout_has("uni: no changes");
    pg.client(false)
        .batch_execute("ALTER TABLE \"用户\" ADD COLUMN \"新しい\" text DEFAULT 'ü'")
        .unwrap();
    p.strata(&["diff", "uni"]).ok().stdout_has("新しい");
    p.strata(&["new", "uni", "more", "--from-diff"]).ok();
    p.strata(&["diff", "uni"])
        .ok()
        .stdout_has("uni: no changes");
    p.strata(&["migrate"]).ok();
    assert_eq!(
        pg.rows(
            true,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = '新しい'"
        ),
        vec!["1"]
    );
    // Text of any kind in a script: a documented exit code, never a panic.
    for text in [
        "CREATE TABLE é(",
        "'😀",
        "$tag$ é",
        "/* 用户",
        "\"\u{200f}",
        "SELECT 'e\u{301}' ->> ;",
    ] {
        p.write("migrations/uni/20260301T000000Z-bad/do.sql", text);
        for args in [&["plan", "--sql"][..], &["migrate"][..], &["status"][..]] {
            let run = p.strata(args);
            assert!(
                [0, 1, 2, 3].contains(&run.code) && !run.stderr.contains("panicked"),
                "{text:?}: {} exited {}\n{}",
                run.command,
                run.code,
                run.stderr
            );
        }
    }
}

/// restore without a name on PostgreSQL: after a run that failed in the rehearsal it refuses
/// and names the backup; rows the application changed since the run are named and need --yes.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn restore_without_a_name_undoes_only_the_last_run_that_changed_the_database_on_postgres() {
    let pg = Pg::new("restore_default");
    let p = project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-zero/do.sql",
        "CREATE TABLE t (a text); INSERT INTO t VALUES ('seeded');",
    );
    p.strata(&["migrate", "-q"]).ok();
    // Nothing changed outside strata: the run is undone, and the next restore undoes that.
    p.strata(&["restore"]).ok();
    assert_eq!(pg.rows(false, "SELECT to_regclass('t') IS NULL"), vec!["t"]);
    p.strata(&["migrate", "-q"]).ok();
    pg.client(false)
        .batch_execute("INSERT INTO t VALUES ('written by the app')")
        .unwrap();
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed outside strata")
        .stderr_has("t (1 -> 2 rows)");
    // A run that fails in the rehearsal leaves the real database alone: nothing to undo.
    p.write(
        "migrations/shop/20260201T000000Z-broken/do.sql",
        "INSERT INTO nowhere VALUES (1);",
    );
    p.strata(&["migrate", "-q"]).code(1);
    p.strata(&["restore", "--yes"])
        .code(3)
        .stderr_has("changed nothing in this database")
        .stderr_has("failed during the rehearsal");
    assert_eq!(pg.rows(false, "SELECT count(*) FROM t"), vec!["2"]);
    // Named, the backup of the run that changed it goes back.
    let listed = p.strata(&["restore", "--list", "--json"]).ok().json();
    let newest = listed["backups"].as_array().unwrap().last().unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    p.strata(&["restore", &newest]).ok();
    assert_eq!(pg.rows(false, "SELECT to_regclass('t') IS NULL"), vec!["t"]);
}
