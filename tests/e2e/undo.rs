//! `strata undo`: a migration's `undo.sql`, newest first, each in its own transaction, audited,
//! on the test database and then the real one; and `strata sandbox` proving each `undo.sql`.

use crate::harness::{Project, rows};
use crate::postgres::Pg;

const ZERO: &str = "migrations/app/20240101T000000Z-zero";
const EMAIL: &str = "migrations/app/20240102T000000Z-email";
const TAGS: &str = "migrations/app/20240103T000000Z-tags";

fn chain(p: &Project) {
    p.write(
        &format!("{ZERO}/do.sql"),
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    )
    .write(
        &format!("{ZERO}/proj-data/data.json"),
        r#"{"people": [{"id": 1, "name": "Ada"}]}"#,
    )
    .write(
        &format!("{EMAIL}/do.sql"),
        "ALTER TABLE people ADD COLUMN email TEXT;\nCREATE INDEX people_email ON people(email);",
    )
    .write(
        &format!("{EMAIL}/undo.sql"),
        "DROP INDEX people_email;\nALTER TABLE people DROP COLUMN email;",
    )
    .write(
        &format!("{TAGS}/do.sql"),
        "CREATE TABLE tags(id INTEGER PRIMARY KEY, person INTEGER REFERENCES people(id));",
    )
    .write(&format!("{TAGS}/undo.sql"), "DROP TABLE tags;");
}

fn schema(p: &Project, db: &str) -> Vec<String> {
    rows(
        &p.open(db),
        "SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'strata%' \
         AND name NOT LIKE 'sqlite%' ORDER BY 1",
    )
}

fn ledger(p: &Project, db: &str) -> Vec<String> {
    rows(
        &p.open(db),
        "SELECT stamp FROM strata_migration ORDER BY stamp",
    )
}

#[test]
fn undo_takes_the_newest_migration_back_on_both_databases_audited_after_a_backup() {
    let p = Project::empty();
    chain(&p);
    p.strata(&["migrate"]).ok();
    let backups = || {
        std::fs::read_dir(p.path(".strata/backups"))
            .unwrap()
            .count()
    };
    let before = backups();
    p.strata(&["undo"])
        .ok()
        .stdout_has("undid app/20240103T000000Z-tags on .strata/test.db")
        .stdout_has("undid app/20240103T000000Z-tags on app.db");
    assert!(
        backups() >= before + 2,
        "a verified backup of each database first"
    );
    for db in ["app.db", ".strata/test.db"] {
        assert_eq!(ledger(&p, db), ["20240101T000000Z", "20240102T000000Z"]);
        assert!(!schema(&p, db).contains(&"table tags".to_string()));
        let audit = rows(
            &p.open(db),
            "SELECT action, outcome, stamp, length(checksum) FROM strata_migration_audit \
             WHERE action = 'undo.sql'",
        );
        assert_eq!(audit, ["undo.sql|ok|20240103T000000Z|64"]);
    }
    // The rows are kept, the owners of what is gone forgotten, and the step applies again.
    assert_eq!(rows(&p.open("app.db"), "SELECT name FROM people"), ["Ada"]);
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM strata_object WHERE name = 'tags'"
        ),
        ["0"]
    );
    p.strata(&["status"]).ok().stdout_has("pending");
    p.strata(&["migrate"]).ok();
    assert!(schema(&p, "app.db").contains(&"table tags".to_string()));
}

#[test]
fn undo_to_takes_back_every_later_migration_newest_first() {
    let p = Project::empty();
    chain(&p);
    p.strata(&["migrate"]).ok();
    let run = p.strata(&["undo", "--to", "20240101"]).ok();
    let tags = run
        .stdout
        .find("undid app/20240103T000000Z-tags on app.db")
        .unwrap();
    let email = run
        .stdout
        .find("undid app/20240102T000000Z-email on app.db")
        .unwrap();
    assert!(tags < email, "newest first:\n{}", run.stdout);
    assert_eq!(ledger(&p, "app.db"), ["20240101T000000Z"]);
    assert_eq!(schema(&p, "app.db"), ["table people"]);
    let columns = rows(
        &p.open("app.db"),
        "SELECT name FROM pragma_table_info('people')",
    );
    assert_eq!(columns, ["id", "name"]);
    p.strata(&["undo", "--to", "20240101"])
        .code(2)
        .stderr_has("nothing to undo");
    p.strata(&["undo", "--to", "2099"])
        .code(2)
        .stderr_has("--to 2099");
}

#[test]
fn undo_refuses_a_migration_without_undo_sql_or_with_changed_files_and_changes_nothing() {
    let p = Project::empty();
    chain(&p);
    p.strata(&["migrate"]).ok();
    std::fs::remove_file(p.path(&format!("{TAGS}/undo.sql"))).unwrap();
    let audit = |p: &Project| {
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM strata_migration_audit",
        )
    };
    let logged = audit(&p);
    p.strata(&["undo"])
        .code(2)
        .stderr_has("app/20240103T000000Z-tags: it has no undo.sql")
        .stderr_has("strata restore");
    // --to over a migration without one refuses before undoing the others.
    p.strata(&["undo", "--to", "20240101"])
        .code(2)
        .stderr_has("no undo.sql");
    assert_eq!(ledger(&p, "app.db").len(), 3);
    assert_eq!(audit(&p), logged);
    p.write(&format!("{TAGS}/undo.sql"), "DROP TABLE tags;");
    p.write(
        &format!("{TAGS}/do.sql"),
        "CREATE TABLE tags(id INTEGER PRIMARY KEY);",
    );
    p.strata(&["undo"])
        .code(2)
        .stderr_has("files changed since it was applied");
    assert_eq!(ledger(&p, "app.db").len(), 3);
}

/// `strata --remote URL undo` runs the server's undo.sql on the server's databases, with the
/// local command's output, refusals and exit codes; the backups it names are the server's, by
/// the file name `restore --list` and `restore NAME` use.
#[test]
fn undo_over_remote_takes_the_servers_newest_migration_back_as_a_local_undo_would() {
    use crate::remote::{Server, remote};
    let server = Project::empty();
    chain(&server);
    let srv = Server::start(&server, &[]);
    let client = Project::empty();
    // The server's token file, mode 0600 and all.
    std::fs::copy(server.path("token"), client.path("token")).unwrap();
    let over = |args: &[&str]| remote(&client, &srv.url, args);
    over(&["migrate", "-q"]).ok();
    assert_eq!(ledger(&server, "app.db").len(), 3);

    over(&["undo"])
        .ok()
        .stdout_has("undid app/20240103T000000Z-tags on .strata/test.db")
        .stdout_has("undid app/20240103T000000Z-tags on app.db")
        .stderr_has("backed up");
    for db in ["app.db", ".strata/test.db"] {
        assert_eq!(
            ledger(&server, db),
            ["20240101T000000Z", "20240102T000000Z"]
        );
        assert!(!schema(&server, db).contains(&"table tags".to_string()));
    }
    assert!(
        !client.path("app.db").exists() && !client.path(".strata").exists(),
        "nothing ran on the client's side"
    );

    // --json: the backups are file names the server keeps, which restore --list names.
    over(&["migrate", "-q"]).ok();
    let json = over(&["undo", "--to", "20240102", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let real = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["phase"] == "apply")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        real["undone"],
        serde_json::json!(["app/20240103T000000Z-tags"])
    );
    let backup = real["backup"].as_str().unwrap();
    assert!(!backup.contains('/') && backup.ends_with(".db"), "{backup}");
    over(&["restore", "--list"]).ok().stdout_has(backup);

    // Refusals come back with the local message and exit code, and change nothing.
    std::fs::remove_file(server.path(&format!("{EMAIL}/undo.sql"))).unwrap();
    let local = server.strata(&["undo"]).code(2);
    let refused = over(&["undo"]).code(2).stderr_has("it has no undo.sql");
    assert_eq!(refused.stderr, local.stderr);
    over(&["undo", "--to", "2099"])
        .code(2)
        .stderr_has("--to 2099");
    assert_eq!(
        ledger(&server, "app.db"),
        ["20240101T000000Z", "20240102T000000Z"]
    );
    // Without the token nothing is undone.
    client.write("token", "wrong-token-0123456789abcdef");
    over(&["undo"]).code(3);
    assert_eq!(ledger(&server, "app.db").len(), 2);
}

#[test]
fn a_failing_undo_is_rolled_back_and_audited_and_may_not_touch_strata() {
    let p = Project::empty();
    chain(&p);
    p.strata(&["migrate"]).ok();
    p.write(
        &format!("{TAGS}/undo.sql"),
        "DROP TABLE tags;\nDROP TABLE nope;",
    );
    p.strata(&["undo"])
        .code(1)
        .stderr_has("failed during undo.sql on .strata/test.db")
        .stderr_has("line 2")
        .stderr_has("no such table: nope");
    for db in ["app.db", ".strata/test.db"] {
        assert!(
            schema(&p, db).contains(&"table tags".to_string()),
            "rolled back"
        );
        assert_eq!(ledger(&p, db).len(), 3);
    }
    assert_eq!(
        rows(
            &p.open(".strata/test.db"),
            "SELECT outcome FROM strata_migration_audit WHERE action = 'undo.sql'"
        ),
        ["failed"]
    );
    p.write(
        &format!("{TAGS}/undo.sql"),
        "DROP TABLE tags;\nDELETE FROM strata_migration;",
    );
    p.strata(&["undo"]).code(1).stderr_has("strata_migration");
    assert_eq!(ledger(&p, ".strata/test.db").len(), 3);
    // An undo that leaves a dangling reference fails like a step that adds one.
    for db in [".strata/test.db", "app.db"] {
        let conn = p.open(db);
        conn.execute_batch("INSERT INTO tags VALUES (1, 1)")
            .unwrap();
    }
    p.write(&format!("{TAGS}/undo.sql"), "DELETE FROM people;");
    p.strata(&["undo"]).code(1).stderr_has("foreign_key_check");
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM people"),
        ["1"]
    );
}

#[test]
fn sandbox_proves_each_undo_sql_takes_its_step_back_and_the_step_applies_again() {
    let p = Project::empty();
    chain(&p);
    // The proof is said between the step's two applications, once per undo.sql: the second
    // `applied` line of a step reads as what it is.
    let run = p.strata(&["sandbox"]).ok().stdout_has("3 ok");
    let lines: Vec<&str> = run.stderr.lines().map(str::trim).collect();
    let email = "app/20240102T000000Z-email";
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("undid {email} with its undo.sql")))
        .unwrap_or_else(|| panic!("no proof of {email}'s undo.sql:\n{}", run.stderr));
    assert!(
        lines[at - 1].starts_with(&format!("applied {email}")),
        "{}",
        run.stderr
    );
    assert!(
        lines[at + 1].starts_with(&format!("applied {email}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("with its undo.sql").count(),
        2,
        "{}",
        run.stderr
    );
    // Forgets the column: the schema after the undo is not the one before the step.
    p.write(&format!("{EMAIL}/undo.sql"), "DROP INDEX people_email;");
    p.strata(&["sandbox"])
        .code(1)
        .stderr_has("undo.sql does not take the step back")
        .stderr_has("email TEXT");
    // An undo that leaves something the step cannot be applied over again.
    p.write(
        &format!("{EMAIL}/undo.sql"),
        "DROP INDEX people_email;\nALTER TABLE people DROP COLUMN email;",
    );
    p.write(&format!("{TAGS}/undo.sql"), "SELECT 1;");
    p.strata(&["sandbox"]).code(1).stderr_has("tags");
}

#[test]
fn down_rollback_and_revert_point_to_undo_and_restore() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    for word in ["down", "rollback", "revert"] {
        p.strata(&[word])
            .code(2)
            .stderr_has("strata undo")
            .stderr_has("strata restore");
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn undo_and_its_proof_on_postgres() {
    let pg = Pg::new("undo");
    let p = crate::postgres::project(&pg);
    p.write(
        "migrations/shop/20260101T000000Z-zero/do.sql",
        "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL);",
    )
    .write(
        "migrations/shop/20260102T000000Z-email/do.sql",
        "ALTER TABLE people ADD COLUMN email text;\nCREATE INDEX people_email ON people (email);",
    )
    .write(
        "migrations/shop/20260102T000000Z-email/undo.sql",
        "DROP INDEX people_email;\nALTER TABLE people DROP COLUMN email;",
    );
    p.strata(&["sandbox"]).ok().stdout_has("2 ok");
    p.strata(&["migrate"]).ok();
    p.strata(&["undo"])
        .ok()
        .stdout_has("undid shop/20260102T000000Z-email");
    for test_db in [true, false] {
        assert_eq!(
            pg.rows(test_db, "SELECT stamp FROM strata.strata_migration"),
            ["20260101T000000Z"]
        );
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT count(*) FROM information_schema.columns WHERE column_name = 'email'"
            ),
            ["0"]
        );
        assert_eq!(
            pg.rows(
                test_db,
                "SELECT outcome FROM strata.strata_migration_audit WHERE action = 'undo.sql'"
            ),
            ["ok"]
        );
    }
    // A failing undo rolls back; bookkeeping is out of its reach.
    p.strata(&["migrate"]).ok();
    p.write(
        "migrations/shop/20260102T000000Z-email/undo.sql",
        "DROP INDEX people_email;\nDELETE FROM strata.strata_migration;",
    );
    p.strata(&["undo"]).code(1).stderr_has("undo.sql");
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["2"]
    );
    p.write(
        "migrations/shop/20260102T000000Z-email/undo.sql",
        "DROP INDEX people_email;",
    );
    p.strata(&["sandbox"])
        .code(1)
        .stderr_has("does not take the step back");
}

/// undo.sql takes back its own database's step: it may not open another database (the test
/// phase could otherwise change the real one before its backup).
#[test]
fn undo_sql_may_not_attach_another_database() {
    let p = Project::empty();
    chain(&p);
    p.strata(&["migrate"]).ok();
    p.write(
        &format!("{TAGS}/undo.sql"),
        "DROP TABLE tags;\nATTACH 'app.db' AS again;\nDELETE FROM again.people;",
    );
    p.strata(&["undo"]).code(1).stderr_has("line 2");
    assert_eq!(rows(&p.open("app.db"), "SELECT name FROM people"), ["Ada"]);
    for db in ["app.db", ".strata/test.db"] {
        assert!(schema(&p, db).contains(&"table tags".to_string()));
    }
}

/// The state after an undo and a migrate ran at once: the migrate applied m3; the undo either
/// took back the newest migration (m3), or was refused because m3 was applied after it chose
/// m2, never m2 under m3; and the schema (`t2`'s columns) says what the ledger says.
#[track_caller]
fn undo_raced_migrate(
    migrated: &std::process::Output,
    undone: &std::process::Output,
    ledger: &[String],
    t2: &[String],
) {
    let out = |o: &std::process::Output| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(migrated.status.success(), "{:?}", out(migrated));
    let (stdout, stderr) = out(undone);
    match undone.status.code() {
        Some(0) => {
            assert!(stdout.contains("20240103T000000Z-three"), "{stdout}");
            assert_eq!(ledger, ["20240101T000000Z", "20240102T000000Z"]);
            assert_eq!(t2, ["a"]);
        }
        Some(3) => {
            assert!(
                stderr.contains("cannot undo app/20240102T000000Z-two")
                    && stderr.contains("app/20240103T000000Z was applied after it"),
                "{stderr}"
            );
            assert_eq!(
                ledger,
                ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"]
            );
            assert_eq!(t2, ["a", "c"]);
        }
        other => panic!("undo ended {other:?}:\n{stdout}\n{stderr}"),
    }
}

const ONE: &str = "migrations/app/20240101T000000Z-one";
const TWO: &str = "migrations/app/20240102T000000Z-two";
const THREE: &str = "migrations/app/20240103T000000Z-three";

/// An undo that comes in while a migrate is applying m3 (held inside the run: its step waits
/// for SQLite's write lock, which this test holds) waits for the run lock, which the migrate
/// holds for its whole phase. Having chosen m2 before m3 was applied, it then refuses (exit 3)
/// rather than dropping the table m3 just altered; the ledger and schema agree throughout.
#[test]
fn an_undo_racing_a_migrate_waits_and_never_undoes_a_migration_under_a_newer_one() {
    use std::process::Stdio;
    let p = Project::empty();
    p.write(&format!("{ONE}/do.sql"), "CREATE TABLE t1(a INTEGER);")
        .write(&format!("{TWO}/do.sql"), "CREATE TABLE t2(a INTEGER);")
        .write(&format!("{TWO}/undo.sql"), "DROP TABLE t2;");
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        &format!("{THREE}/do.sql"),
        "ALTER TABLE t2 ADD COLUMN c TEXT;",
    )
    .write(
        &format!("{THREE}/undo.sql"),
        "ALTER TABLE t2 DROP COLUMN c;",
    )
    .write("strata.toml", "busy_timeout_ms = 120000\n");
    let holder = p.open("app.db");
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let migrate = crate::harness::strata_command(p.root(), &["migrate", "--no-rehearsal", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the migrate holds the run lock (this test cannot take it exclusively).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p.path("app.db.strata-lock"))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match lock.try_lock() {
            Ok(()) => lock.unlock().unwrap(),
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(e) => panic!("{e:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the migrate never took the run lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let undo = crate::harness::strata_command(p.root(), &["undo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the undo time to read the ledger (m1, m2) before m3 can be applied; whenever it
    // reads it, the outcome checked below must hold.
    std::thread::sleep(std::time::Duration::from_millis(700));
    holder.execute_batch("ROLLBACK").unwrap();
    let migrated = migrate.wait_with_output().unwrap();
    let undone = undo.wait_with_output().unwrap();
    let t2 = rows(
        &p.open("app.db"),
        "SELECT name FROM pragma_table_info('t2') ORDER BY cid",
    );
    undo_raced_migrate(&migrated, &undone, &ledger(&p, "app.db"), &t2);
}

/// A `migrate --no-rehearsal` started in the background, once its step's `pg_sleep(3)` runs on
/// this test's database.
fn migrate_until_it_sleeps(p: &crate::harness::Project, pg: &Pg) -> std::process::Child {
    use std::process::Stdio;
    let migrate = crate::harness::strata_command(p.root(), &["migrate", "--no-rehearsal", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pg.rows(
        false,
        // The step's first statement rides in the batch that begins the step, after strata's
        // own statements: look for it anywhere in another session's query.
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%pg_sleep(3)%'",
    ) == ["0"]
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the migrate never reached the sleeping step"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    migrate
}

/// On PostgreSQL the migrate's step holds strata's advisory lock for its transaction (here
/// a `pg_sleep`); the undo takes the same lock for its whole run and re-reads the ledger in
/// each transaction.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn an_undo_racing_a_migrate_on_postgres_never_undoes_a_migration_under_a_newer_one() {
    let pg = Pg::new("undo_race");
    let p = crate::postgres::project(&pg);
    p.write(&format!("{ONE}/do.sql"), "CREATE TABLE t1 (a integer);")
        .write(&format!("{TWO}/do.sql"), "CREATE TABLE t2 (a integer);")
        .write(&format!("{TWO}/undo.sql"), "DROP TABLE t2;");
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        &format!("{THREE}/do.sql"),
        "SELECT pg_sleep(3);\nALTER TABLE t2 ADD COLUMN c text;",
    )
    .write(
        &format!("{THREE}/undo.sql"),
        "ALTER TABLE t2 DROP COLUMN c;",
    );
    let migrate = migrate_until_it_sleeps(&p, &pg);
    let undone = crate::harness::strata_command(p.root(), &["undo"])
        .output()
        .unwrap();
    let migrated = migrate.wait_with_output().unwrap();
    let ledger = pg.rows(
        false,
        "SELECT stamp FROM strata.strata_migration ORDER BY stamp",
    );
    let t2 = pg.rows(
        false,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 't2' \
         ORDER BY ordinal_position",
    );
    undo_raced_migrate(&migrated, &undone, &ledger, &t2);
}

/// A restore started while a migrate runs on PostgreSQL waits for the whole run (the run lock
/// a migrate phase holds shared), instead of landing between two of its steps and leaving the
/// run's later steps on top of the restored ledger.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_restore_during_a_migrate_on_postgres_waits_for_the_whole_run() {
    let pg = Pg::new("restore_race");
    let p = crate::postgres::project(&pg);
    p.write(&format!("{ONE}/do.sql"), "CREATE TABLE t1 (a integer);");
    p.strata(&["migrate", "-q", "--no-rehearsal"]).ok();
    // A server that closes idle sessions after a second must not close the one holding the
    // run lock, idle by design while the steps run.
    pg.admin_client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET idle_session_timeout = '1s'",
            pg.name
        ))
        .unwrap();
    p.write(
        &format!("{TWO}/do.sql"),
        "SELECT pg_sleep(3);\nCREATE TABLE t2 (a integer);",
    )
    .write(&format!("{THREE}/do.sql"), "CREATE TABLE t3 (a integer);");
    let migrate = migrate_until_it_sleeps(&p, &pg);
    let restored = crate::harness::strata_command(p.root(), &["restore", "--yes"])
        .output()
        .unwrap();
    let migrated = migrate.wait_with_output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    // The restore came after the run and put back the backup the run took: m1 only.
    assert_eq!(
        pg.rows(
            false,
            "SELECT stamp FROM strata.strata_migration ORDER BY stamp"
        ),
        ["20240101T000000Z"]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT string_agg(table_name::text, ',' ORDER BY table_name) \
             FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        ["t1"]
    );
}

/// A PostgreSQL test database that exists but that strata never migrated (made by a DBA, or
/// every run was --no-rehearsal) has nothing to rehearse the undo on: it is left alone, with
/// no backup of it, and the real database's undo goes on.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn undo_on_postgres_passes_over_a_test_database_strata_never_migrated() {
    let pg = Pg::new("undo_untouched");
    pg.admin_client()
        .batch_execute(&format!("CREATE DATABASE {}_test", pg.name))
        .unwrap();
    let p = crate::postgres::project(&pg);
    p.write(&format!("{ONE}/do.sql"), "CREATE TABLE t1 (a integer);")
        .write(&format!("{ONE}/undo.sql"), "DROP TABLE t1;");
    p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    p.strata(&["undo"])
        .ok()
        .stdout_has("undid app/20240101T000000Z-one");
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["0"]
    );
    assert_eq!(
        pg.rows(
            true,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'strata'"
        ),
        ["0"],
        "the test database was given strata's tables"
    );
    let backups: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pgdump"))
        .collect();
    let test_db = format!("{}_test-", pg.name);
    assert!(
        backups.iter().all(|n| !n.starts_with(&test_db)),
        "a backup of the untouched test database was taken: {backups:?}"
    );
    // The migrate's backup of the real database and the undo's.
    assert_eq!(backups.len(), 2, "{backups:?}");
}
