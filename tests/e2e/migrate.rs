//! `strata migrate`, `status`, `plan` and `audit` on real databases.

use crate::harness::{Project, rows};

const EXAMPLE_MIGRATIONS: usize = 10;

#[test]
fn the_example_applies_to_both_databases_and_a_second_run_changes_nothing() {
    let p = Project::example();
    p.strata(&["migrate"])
        .ok()
        .stdout_has("app.db: applied 10 migration(s)");
    let status = p.strata(&["status", "--json"]).ok().json();
    let dbs = status["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 2);
    for db in dbs {
        let migrations = db["migrations"].as_array().unwrap();
        assert_eq!(migrations.len(), EXAMPLE_MIGRATIONS);
        assert!(migrations.iter().all(|m| m["state"] == "applied"), "{db}");
    }
    let real = std::fs::read(p.path("app.db")).unwrap();
    let test = std::fs::read(p.path(".strata/test.db")).unwrap();
    p.strata(&["migrate"]).ok().stdout_has("app.db: up to date");
    assert_eq!(
        std::fs::read(p.path("app.db")).unwrap(),
        real,
        "a second migrate changed app.db"
    );
    assert_eq!(std::fs::read(p.path(".strata/test.db")).unwrap(), test);
}

#[test]
fn test_data_goes_only_to_the_test_database_and_project_data_everywhere() {
    let p = Project::example();
    p.strata(&["migrate"]).ok();
    let real = p.open("app.db");
    let test = p.open(".strata/test.db");
    let count = |c: &rusqlite::Connection, t: &str| {
        rows(c, &format!("SELECT count(*) FROM {t}"))[0].clone()
    };
    assert_eq!(count(&real, "users"), "0");
    assert_ne!(count(&test, "users"), "0");
    assert_ne!(count(&real, "roles"), "0");
    assert_eq!(count(&real, "roles"), count(&test, "roles"));
    assert_eq!(count(&real, "currencies"), count(&test, "currencies"));
}

#[test]
fn the_table_rebuild_step_keeps_and_converts_the_data() {
    let p = Project::example();
    p.strata(&["migrate"]).ok();
    let test = p.open(".strata/test.db");
    let cols = rows(
        &test,
        "SELECT name FROM pragma_table_info('invoices') ORDER BY cid",
    );
    assert!(cols.iter().any(|c| c.contains("cents")), "{cols:?}");
    assert!(rows(&test, "PRAGMA foreign_key_check").is_empty());
}

#[test]
fn to_stops_at_a_stamp_and_plan_shows_the_rest() {
    let p = Project::example();
    p.strata(&["migrate", "--to", "20240215T153000Z"])
        .ok()
        .stdout_has("applied 5 migration(s)");
    let plan = p.strata(&["plan", "--json"]).ok().json();
    let phases = plan["phases"].as_array().unwrap();
    assert_eq!(phases[0]["phase"], "rehearsal");
    assert_eq!(phases[1]["phase"], "apply");
    let steps = phases[1]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    assert_eq!(
        steps[0]["migration"],
        "billing/20240304T110000Z-amount-cents"
    );
    let actions: Vec<&str> = phases[0]["steps"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(actions.contains(&"test-data"), "{actions:?}");
    let real_actions = phases[1]["steps"][0]["actions"].to_string();
    assert!(!real_actions.contains("test-data"), "{real_actions}");
    p.strata(&["plan"])
        .ok()
        .stdout_has("1. billing/20240304T110000Z-amount-cents");
    p.strata(&["migrate", "--to", "2024"])
        .code(2)
        .stderr_has("YYYYMMDDTHHMMSSZ");
}

#[test]
fn status_and_plan_create_no_database() {
    let p = Project::example();
    p.strata(&["status"]).ok().stdout_has("pending");
    p.strata(&["plan"]).ok().stdout_has("10 step(s)");
    p.strata(&["audit"]).ok().stdout_has("empty");
    assert!(!p.path("app.db").exists());
    assert!(!p.path(".strata/test.db").exists());
}

#[test]
fn no_rehearsal_warns_and_leaves_the_test_database_alone() {
    let p = Project::example();
    p.strata(&["migrate", "--no-rehearsal"])
        .ok()
        .stderr_has("warning: --no-rehearsal");
    assert!(!p.path(".strata/test.db").exists());
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM strata_migration"),
        ["10"]
    );
}

#[test]
fn db_flags_and_config_choose_the_databases() {
    let p = Project::example();
    p.write(
        "strata.toml",
        "db = \"data/prod.db\"\ntest_db = \"data/rehearsal.db\"\n",
    );
    std::fs::create_dir_all(p.path("sub")).unwrap();
    // Found from a subfolder through the nearest strata.toml.
    p.strata_in(&p.path("sub"), &["migrate", "-q"]).ok();
    assert!(p.path("data/prod.db").is_file());
    assert!(p.path("data/rehearsal.db").is_file());
    p.strata(&["--db", "other.db", "migrate", "--no-rehearsal", "-q"])
        .ok();
    assert_eq!(
        rows(&p.open("other.db"), "SELECT count(*) FROM strata_migration"),
        ["10"]
    );
}

#[test]
fn a_failing_check_rolls_back_the_step_and_is_audited() {
    let p = Project::example();
    p.strata(&["migrate"]).ok();
    let before_real = p.app_dump("app.db");
    let before_test = p.app_dump(".strata/test.db");
    // A step whose do.sql changes schema and data that its check then rejects.
    p.write(
        "migrations/billing/20240601T000000Z-bad-notes/do.sql",
        "ALTER TABLE invoices ADD COLUMN note TEXT;\nCREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO notes VALUES (1, '');\nDELETE FROM currencies WHERE code = 'GBP';\n",
    );
    p.write(
        "migrations/billing/20240601T000000Z-bad-notes/checks.sql",
        "-- notes are never empty\nSELECT id, body FROM notes WHERE body = '';\n",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("billing/20240601T000000Z-bad-notes failed during checks")
        .stderr_has("migrations/billing/20240601T000000Z-bad-notes/checks.sql, line 2")
        .stderr_has("statement: SELECT id, body FROM notes WHERE body = ''\n")
        .stderr_has("1 violating row")
        .stderr_has("{id=1, body=''}")
        .stderr_has("rolled back");
    assert_eq!(
        p.app_dump(".strata/test.db"),
        before_test,
        "the test database changed"
    );
    assert_eq!(
        p.app_dump("app.db"),
        before_real,
        "phase 2 ran after phase 1 failed"
    );
    let audit = p.strata(&["audit", "--test", "--json"]).ok().json();
    let entries = audit["entries"].as_array().unwrap();
    let last: Vec<(&str, &str)> = entries[entries.len() - 2..]
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(last, [("do.sql", "rolled-back"), ("checks", "failed")]);
    assert!(
        entries.last().unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("violating row")
    );
    p.strata(&["audit", "--test"]).ok().stdout_has("failed");
    // The real database's log has no trace of the step: it never started there.
    let real_audit = p.strata(&["audit", "--json"]).ok().json().to_string();
    assert!(!real_audit.contains("20240601T000000Z"));
    let status = p.strata(&["status"]).ok();
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("bad-notes"))
        .unwrap();
    assert_eq!(line.matches("pending").count(), 2, "{line}");
}

#[test]
fn a_failing_statement_names_its_line_and_undoes_the_statements_before_it() {
    let p = Project::example();
    p.write(
        "migrations/accounts/20240101T000000Z-first/do.sql",
        "CREATE TABLE early(id INTEGER PRIMARY KEY);\nINSERT INTO early VALUES (1);\n\nINSERT INTO nowhere VALUES (2);\n",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("accounts/20240101T000000Z-first")
        .stderr_has("do.sql, line 4")
        .stderr_has("statement: INSERT INTO nowhere VALUES (2)\n")
        .stderr_has("no such table: nowhere");
    let test = p.open(".strata/test.db");
    assert!(rows(&test, "SELECT name FROM sqlite_master WHERE name = 'early'").is_empty());
    assert_eq!(rows(&test, "SELECT count(*) FROM strata_migration"), ["0"]);
    assert!(!p.path("app.db").exists(), "phase 2 must not start");
}

#[test]
fn a_foreign_key_violation_fails_the_step() {
    let p = Project::empty();
    p.write("migrations/app/20240101T000000Z-zero/do.sql", "CREATE TABLE parent(id INTEGER PRIMARY KEY);\nCREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));");
    p.write(
        "migrations/app/20240101T000000Z-zero/proj-data/data.json",
        r#"{"child": [{"id": 1, "parent_id": 42}]}"#,
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("foreign-key-check")
        .stderr_has("`child` row 1 references a missing row of `parent`");
}

#[test]
fn violations_from_before_the_run_are_not_the_steps() {
    // A database whose application never switched foreign keys on (SQLite's default) may hold
    // dangling rows: strata warns about them and fails a step only for violations it adds.
    let p = Project::empty();
    {
        let conn = rusqlite::Connection::open(p.path("app.db")).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
             INSERT INTO child VALUES (1, 42);",
        )
        .unwrap();
    }
    p.write("strata.toml", "");
    p.strata(&["baseline", "app"]).ok();
    p.write(
        "migrations/app/20300101T000000Z-unrelated/do.sql",
        "CREATE TABLE t(x);\n",
    );
    p.strata(&["migrate", "--no-rehearsal"])
        .ok()
        .stderr_has("1 foreign-key violation")
        .stderr_has("`child` row 1 references a missing row of `parent`")
        .stderr_has("a step fails only for violations it adds");
    // A step that adds one fails, naming only its own, and says the old one is not counted.
    p.write(
        "migrations/app/20300102T000000Z-dangling/do.sql",
        "INSERT INTO child VALUES (2, 7);\n",
    );
    let run = p.strata(&["migrate", "--no-rehearsal"]).code(1);
    let run = run
        .stderr_has("`child` row 2 references a missing row of `parent`")
        .stderr_has("besides 1 from before this run");
    let error = run.stderr.split("error: app/").nth(1).unwrap_or_default();
    assert!(
        !error.contains("`child` row 1 references"),
        "{}",
        run.stderr
    );
    assert_eq!(rows(&p.open("app.db"), "SELECT count(*) FROM child"), ["1"]);
    // Fixing the old row is a step like any other.
    p.write(
        "migrations/app/20300102T000000Z-dangling/do.sql",
        "INSERT INTO parent VALUES (42);\n",
    );
    p.strata(&["migrate", "--no-rehearsal"]).ok();
    assert!(rows(&p.open("app.db"), "PRAGMA foreign_key_check").is_empty());
}

#[test]
fn transaction_control_in_do_sql_is_refused() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a);\nCOMMIT;\nCREATE TABLE u(b);\n",
    );
    // Found while the inputs are read, before any backup or step (exit 2, nothing created).
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("do.sql: line 2")
        .stderr_has("one transaction of its own");
    assert!(!p.path(".strata/test.db").exists());
    assert!(!p.path("app.db").exists());
}

#[test]
fn a_writing_statement_in_checks_sql_is_refused() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a);",
    );
    p.write(
        "migrations/app/20240101T000000Z-zero/checks.sql",
        "DELETE FROM t;",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("checks.sql, line 1")
        .stderr_has("move it to do.sql");
}

#[test]
fn bad_data_rows_name_the_file_table_and_row() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    );
    p.write(
        "migrations/app/20240101T000000Z-zero/proj-data/data.json",
        r#"{"t": [{"id": 1, "v": "a"}, {"id": 2, "v": null}]}"#,
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("migrations/app/20240101T000000Z-zero/proj-data/data.json")
        .stderr_has("table `t`, row 2")
        .stderr_has("NOT NULL");
}

#[test]
fn an_error_is_also_json_on_stdout_with_json() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a;",
    );
    let run = p.strata(&["migrate", "--json"]).code(1);
    let v = run.json();
    assert_eq!(v["error"]["exit_code"], 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("syntax error")
    );
}

#[test]
fn crlf_checkouts_do_not_look_modified() {
    let p = Project::example();
    p.strata(&["migrate", "-q"]).ok();
    let path = p.path("migrations/accounts/20240105T093000Z-zero/do.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace('\n', "\r\n")).unwrap();
    let status = p.strata(&["status", "--json"]).ok().json();
    assert!(!status.to_string().contains("modified"), "{status}");
    p.strata(&["migrate"]).ok().stdout_has("up to date");
}

#[test]
fn concurrent_migrates_apply_each_migration_exactly_once() {
    let p = Project::example();
    let migrate = vec!["migrate".to_string()];
    crate::harness::all_at_once(p.root(), &vec![migrate; 4]);
    for db in ["app.db", ".strata/test.db"] {
        let conn = p.open(db);
        assert_eq!(
            rows(&conn, "SELECT count(*) FROM strata_migration"),
            ["10"],
            "{db}"
        );
        // One do.sql run per migration: nobody applied a step twice.
        let runs = rows(
            &conn,
            "SELECT count(*) FROM strata_migration_audit WHERE action = 'do.sql' AND outcome = 'ok'",
        );
        assert_eq!(runs, ["10"], "{db}");
    }
}

#[test]
fn audit_lists_every_action_with_its_outcome() {
    let p = Project::example();
    p.strata(&["migrate", "-q"]).ok();
    let v = p.strata(&["audit", "--json"]).ok().json();
    let entries = v["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["phase"] == "apply" && e["outcome"] == "ok")
    );
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "do.sql").count(),
        10
    );
    assert!(
        entries
            .iter()
            .all(|e| e["operator"].as_str().unwrap().contains('@'))
    );
    let limited = p.strata(&["audit", "--json", "--limit", "2"]).ok().json();
    assert_eq!(limited["entries"].as_array().unwrap().len(), 2);
    assert_eq!(limited["entries"][1]["id"], entries.last().unwrap()["id"]);
    let test = p.strata(&["audit", "--test", "--json"]).ok().json();
    assert!(test.to_string().contains("\"test-data\""));
}

/// The backup's `integrity_check` runs beside the first step, which waits for it before it
/// commits: a database whose copy fails the check still fails the run with the backup's
/// error, the step rolled back, and no backup or audit row of one left behind.
#[test]
fn a_backup_that_fails_its_check_fails_the_run_and_the_step_is_rolled_back() {
    let p = Project::empty();
    p.write("strata.toml", "db = \"app.db\"\n");
    // An index that counts the rows of another table: every page reads, the check fails.
    rusqlite::Connection::open(p.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(a); CREATE TABLE u(a); CREATE INDEX ti ON t(a);
             INSERT INTO t VALUES (1), (2);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET tbl_name = 'u', sql = 'CREATE INDEX ti ON u(a)'
              WHERE name = 'ti';",
        )
        .unwrap();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE v(b); INSERT INTO v VALUES (1); INSERT INTO t VALUES (3);",
    );
    let run = p.strata(&["migrate", "--no-rehearsal"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    let run = run.stderr_has("integrity_check");
    let db = p.open("app.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM t"), ["2"]);
    assert!(
        rows(&db, "SELECT name FROM sqlite_schema WHERE name = 'v'").is_empty(),
        "{}",
        run.stderr
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM strata_migration"), ["0"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM strata_migration_audit WHERE action = 'backup'"
        ),
        ["0"]
    );
    let left: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // With a sound database the same step applies, after its backup's audit row.
    drop(db);
    let db = rusqlite::Connection::open(p.path("app.db")).unwrap();
    db.execute_batch(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET tbl_name = 't', sql = 'CREATE INDEX ti ON t(a)'
          WHERE name = 'ti';",
    )
    .unwrap();
    drop(db);
    p.strata(&["migrate", "--no-rehearsal"]).ok();
    let db = p.open("app.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM t"), ["3"]);
    assert_eq!(
        rows(&db, "SELECT action FROM strata_migration_audit ORDER BY id")[..2],
        ["backup", "do.sql"]
    );
}
