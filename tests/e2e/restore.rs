//! `strata restore` loses nothing: a backup goes back only to the database it was taken from,
//! through SQLite's online backup API into the live file (open connections and WAL readers see
//! the switch), never between the steps of a running migrate, after a backup of the current
//! state (so it can be undone), with the audit log kept whole; `restore --list`; `baseline`
//! backs up first.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::harness::{Project, rows, strata_command};

/// A project with one table `t`, a test-data row in it, and a second migration adding `u`.
fn two_steps(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a TEXT);",
    );
    p.write(
        "migrations/app/20240101T000000Z-zero/test-data/data.json",
        r#"{"t": [{"a": "test-row"}]}"#,
    );
    p.write(
        "migrations/app/20240201T000000Z-more/do.sql",
        "CREATE TABLE u(b);",
    );
}

/// The audit log as `id|phase|action|outcome` lines.
fn audit(conn: &Connection) -> Vec<String> {
    rows(
        conn,
        "SELECT id, phase, action, outcome FROM strata_migration_audit ORDER BY id",
    )
}

/// The `.db` files in `.strata/backups`, sorted.
fn backup_files(p: &Project) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".db"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_real_database_named_test_db_never_gets_the_test_databases_backup() {
    let p = Project::empty();
    p.write("strata.toml", "db = \"data/test.db\"\n");
    two_steps(&p);
    p.strata(&["migrate", "--to", "20240101T000000Z", "-q"])
        .ok();
    p.open("data/test.db")
        .execute("INSERT INTO t VALUES ('production-row')", [])
        .unwrap();
    p.strata(&["migrate", "-q"]).ok();
    // A failed rehearsal: the test database's backup is now the newest file named test-*.
    p.write(
        "migrations/app/20240301T000000Z-broken/do.sql",
        "UPDATE nowhere SET a = 1;",
    );
    p.strata(&["migrate"]).code(1);
    // Without a name, restore will not undo an earlier run for a last one that changed nothing
    // here; named, the real database's own newest backup goes back.
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed nothing in this database");
    let listed = p.strata(&["restore", "--list", "--json"]).ok().json();
    let own = listed["backups"].as_array().unwrap().last().unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    p.strata(&["restore", &own])
        .ok()
        .stdout_has("restored data/test.db from");
    let real = p.open("data/test.db");
    assert_eq!(
        rows(&real, "SELECT a FROM t"),
        ["production-row"],
        "the real database got another database's backup"
    );
    assert_eq!(
        rows(&real, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"),
        ["0"],
        "the restore did not go back to the real database's own backup"
    );
    // Naming the test database's backup explicitly is refused, and names both databases.
    let listed = p
        .strata(&["restore", "--list", "--test", "--json"])
        .ok()
        .json();
    let newest = listed["backups"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        newest["source"]
            .as_str()
            .unwrap()
            .ends_with(".strata/test.db")
    );
    let test_backup = std::path::Path::new(newest["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let before = p.app_dump("data/test.db");
    p.strata(&["restore", &test_backup])
        .code(2)
        .stderr_has(&test_backup)
        .stderr_has("is a backup of")
        .stderr_has("add --test");
    assert_eq!(p.app_dump("data/test.db"), before);
    p.strata(&["restore", "--test", &test_backup]).ok();
    assert_eq!(
        rows(&p.open(".strata/test.db"), "SELECT a FROM t"),
        ["test-row"]
    );
}

#[test]
fn a_file_that_is_not_a_backup_is_refused_naming_it() {
    let p = Project::empty();
    two_steps(&p);
    p.strata(&["migrate", "-q"]).ok();
    let before = p.app_dump("app.db");
    // Not SQLite at all.
    p.write("junk.db", "this is not a database");
    p.strata(&["restore", "junk.db"])
        .code(2)
        .stderr_has("junk.db")
        .stderr_has("not a strata backup");
    // A real SQLite database, but no record says where it came from.
    std::fs::copy(p.path("app.db"), p.path("copy.db")).unwrap();
    p.strata(&["restore", "copy.db"])
        .code(2)
        .stderr_has("copy.db")
        .stderr_has("no record");
    // A record whose backup file was replaced by another database.
    let real = backup_files(&p)
        .into_iter()
        .find(|n| n.starts_with("app-"))
        .unwrap();
    let path = p.path(&format!(".strata/backups/{real}"));
    std::fs::copy(p.path(".strata/test.db"), &path).unwrap();
    p.strata(&["restore", &real])
        .code(2)
        .stderr_has(&real)
        .stderr_has("does not hold the database its record names");
    // Missing file.
    p.strata(&["restore", "nowhere.db"])
        .code(2)
        .stderr_has("nowhere.db");
    assert_eq!(
        p.app_dump("app.db"),
        before,
        "a refused restore changed the database"
    );
}

#[test]
fn an_idle_connection_and_a_wal_reader_see_the_restore() {
    let p = Project::empty();
    two_steps(&p);
    p.strata(&["migrate", "--to", "20240101T000000Z", "-q"])
        .ok();
    let setup = p.open("app.db");
    setup.pragma_update(None, "journal_mode", "WAL").unwrap();
    setup.execute("INSERT INTO t VALUES ('one')", []).unwrap();
    drop(setup);
    p.strata(&["migrate", "-q"]).ok();
    std::fs::set_permissions(p.path("app.db"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let inode = std::fs::metadata(p.path("app.db")).unwrap().ino();

    // An idle connection and a reader in the middle of a read transaction.
    let idle = p.open("app.db");
    assert_eq!(
        rows(&idle, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"),
        ["1"]
    );
    let reader = p.open("app.db");
    reader.execute_batch("BEGIN").unwrap();
    assert_eq!(
        rows(
            &reader,
            "SELECT count(*) FROM sqlite_master WHERE name = 'u'"
        ),
        ["1"]
    );

    p.strata(&["restore", "-q"]).ok();

    // The reader's snapshot is consistent: the old state until its transaction ends.
    assert_eq!(
        rows(
            &reader,
            "SELECT count(*) FROM sqlite_master WHERE name = 'u'"
        ),
        ["1"]
    );
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(
        rows(
            &reader,
            "SELECT count(*) FROM sqlite_master WHERE name = 'u'"
        ),
        ["0"]
    );
    // The idle connection sees the restored database, and what it writes stays in it.
    assert_eq!(
        rows(&idle, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"),
        ["0"]
    );
    idle.execute("INSERT INTO t VALUES ('after')", []).unwrap();
    let fresh = p.open("app.db");
    assert_eq!(rows(&fresh, "SELECT a FROM t ORDER BY a"), ["after", "one"]);
    assert_eq!(rows(&fresh, "PRAGMA journal_mode"), ["wal"]);
    assert_eq!(rows(&fresh, "PRAGMA integrity_check"), ["ok"]);
    // The same file: same inode, same mode; its WAL was not removed under the readers.
    let meta = std::fs::metadata(p.path("app.db")).unwrap();
    assert_eq!(meta.ino(), inode, "the database file was replaced");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "the mode changed");
    assert!(p.path("app.db-wal").exists() && p.path("app.db-shm").exists());
}

#[test]
fn a_restore_can_be_undone_and_the_audit_log_survives_both() {
    let p = Project::example();
    p.strata(&["migrate", "--to", "20240215T153000Z", "-q"])
        .ok();
    let partial = p.app_dump("app.db");
    p.strata(&["migrate", "-q"]).ok();
    let full = p.app_dump("app.db");
    let log_before = audit(&p.open("app.db"));

    let restored = p.strata(&["restore", "--json"]).ok().json();
    assert_eq!(p.app_dump("app.db"), partial);
    let log = audit(&p.open("app.db"));
    assert_eq!(
        log[..log_before.len()],
        log_before[..],
        "audit rows written since the backup were lost"
    );
    let n = log_before.len();
    assert_eq!(
        log[n..],
        [
            format!("{}|restore|backup|ok", n + 1),
            format!("{}|restore|restore|ok", n + 2)
        ],
        "{log:?}"
    );
    assert_eq!(restored["audit_rows_kept"].as_u64().unwrap() as usize, {
        // Everything after the backup migrate took before the second run: its audit row on.
        let first_backup_after_partial = log_before
            .iter()
            .rposition(|l| l.ends_with("|apply|backup|ok"))
            .unwrap();
        n - first_backup_after_partial
    });

    // Undo: the backup of the state before the restore goes back.
    let undo = restored["undo"].as_str().unwrap().to_string();
    let name = std::path::Path::new(&undo)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    p.strata(&["restore", &name]).ok().stderr_has("undoes this");
    assert_eq!(
        p.app_dump("app.db"),
        full,
        "the undo did not give back the state"
    );
    let after_undo = audit(&p.open("app.db"));
    assert_eq!(after_undo[..log.len()], log[..], "the undo lost audit rows");
    assert_eq!(after_undo.len(), log.len() + 2);
    p.strata(&["plan"])
        .ok()
        .stdout_has("apply on app.db: nothing to do");
}

#[test]
fn restore_list_shows_only_the_backups_that_can_go_back() {
    let p = Project::empty();
    two_steps(&p);
    p.strata(&["migrate", "--to", "20240101T000000Z", "-q"])
        .ok();
    p.strata(&["migrate", "-q"]).ok();
    let listed = p.strata(&["restore", "--list"]).ok();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("app-") && l.contains("before migrate (apply)")),
        "{lines:?}"
    );
    let json = p
        .strata(&["restore", "--list", "--test", "--json"])
        .ok()
        .json();
    let backups = json["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{json}");
    assert!(
        backups
            .iter()
            .all(|b| b["reason"] == "before migrate (rehearsal)")
    );
    assert!(
        backups
            .iter()
            .all(|b| b["source"].as_str().unwrap().ends_with(".strata/test.db"))
    );
    // Listing changes nothing.
    assert_eq!(backup_files(&p).len(), 4);
    p.strata(&["restore", "--list", "some.db"]).code(2);
}

#[test]
fn a_restore_during_a_migrate_refuses_and_the_migrate_loses_no_step() {
    let p = Project::empty();
    p.write("strata.toml", "busy_timeout_ms = 200\n");
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a INTEGER);",
    );
    p.strata(&["migrate", "-q"]).ok();
    // Fifteen steps, each slow enough that a restore lands in the middle of the run.
    for i in 1..=15 {
        p.write(
            &format!("migrations/app/20240201T0000{i:02}Z-slow/do.sql"),
            &format!(
                "CREATE TABLE big{i}(n INTEGER);\n\
                 INSERT INTO big{i} WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000) SELECT i FROM c;"
            ),
        );
    }
    let child = strata_command(p.root(), &["migrate", "--no-rehearsal", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run applied its first step, then try to restore.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let applied = Connection::open_with_flags(
            p.path("app.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM strata_migration", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        })
        .unwrap_or(0);
        if applied >= 2 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let restore = p.strata(&["restore"]);
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the migrate finished before the restore; make its steps slower"
    );
    let out = child.wait_with_output().unwrap();
    let migrate = crate::harness::Run::new(&["migrate", "--no-rehearsal", "--json"], out).ok();
    restore.code(3).stderr_has("locked");
    let report = migrate.json();
    let applied = report["phases"][0]["applied"].as_array().unwrap().len();
    assert_eq!(applied, 15, "{report}");
    let db = p.open("app.db");
    assert_eq!(
        rows(&db, "SELECT count(*) FROM strata_migration"),
        ["16"],
        "steps the migrate reported are not in the database"
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM big15"), ["300000"]);
}

#[test]
fn a_restore_waits_for_a_running_migrate_to_finish() {
    let p = Project::empty();
    p.write("strata.toml", "busy_timeout_ms = 120000\n");
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a INTEGER);",
    );
    p.strata(&["migrate", "-q"]).ok();
    for i in 1..=3 {
        p.write(
            &format!("migrations/app/20240201T0000{i:02}Z-slow/do.sql"),
            &format!(
                "CREATE TABLE big{i}(n INTEGER);\n\
                 INSERT INTO big{i} WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000000) SELECT i FROM c;"
            ),
        );
    }
    let child = strata_command(p.root(), &["migrate", "--no-rehearsal", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && Connection::open_with_flags(p.path("app.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM strata_migration", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            })
            .unwrap_or(0)
            < 2
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The restore waits for the whole run, then puts back the backup the run took first.
    p.strata(&["restore", "-q"]).ok();
    let mut child = child;
    assert!(child.wait().unwrap().success());
    let log = rows(
        &p.open("app.db"),
        "SELECT action FROM strata_migration_audit ORDER BY id",
    );
    let last_step = log.iter().rposition(|a| a == "do.sql").unwrap();
    let restore = log.iter().position(|a| a == "restore").unwrap();
    assert!(
        last_step < restore,
        "the restore ran before the migrate finished: {log:?}"
    );
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM strata_migration"),
        ["1"]
    );
}

#[test]
fn baseline_backs_up_first_and_restore_undoes_it() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let db = p.path("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE shop(id INTEGER PRIMARY KEY); INSERT INTO shop VALUES (7);")
        .unwrap();
    p.strata(&["baseline", "shop"])
        .ok()
        .stderr_has("backed up app.db to");
    let list = p.strata(&["restore", "--list"]).ok();
    assert!(list.stdout.contains("before baseline"), "{}", list.stdout);
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM strata_migration"),
        ["1"]
    );
    p.strata(&["restore", "-q"]).ok();
    let conn = p.open("app.db");
    assert_eq!(rows(&conn, "SELECT count(*) FROM strata_migration"), ["0"]);
    assert_eq!(rows(&conn, "SELECT id FROM shop"), ["7"]);
    let log = rows(
        &conn,
        "SELECT phase || '|' || action FROM strata_migration_audit ORDER BY id",
    );
    assert_eq!(
        log,
        [
            "baseline|backup",
            "baseline|baseline",
            "restore|backup",
            "restore|restore"
        ]
    );
}

/// Runs `strata ARGS` with a terminal as its stdin (through util-linux `script`), typing
/// `input`.
fn on_a_terminal(p: &Project, args: &str, input: &str) -> crate::harness::Run {
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_strata"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    crate::harness::Run::new(&[args], out)
}

#[test]
fn on_a_terminal_restore_asks_first() {
    let p = Project::empty();
    two_steps(&p);
    p.strata(&["migrate", "--to", "20240101T000000Z", "-q"])
        .ok();
    p.strata(&["migrate", "-q"]).ok();
    let before = p.app_dump("app.db");
    let backups = backup_files(&p).len();
    let no = on_a_terminal(&p, "restore", "n\n").code(3);
    assert!(no.stdout.contains("[y/N]"), "{}", no.stdout);
    assert!(no.stdout.contains("cancelled"), "{}", no.stdout);
    assert_eq!(
        p.app_dump("app.db"),
        before,
        "declining changed the database"
    );
    assert_eq!(backup_files(&p).len(), backups, "declining took a backup");
    on_a_terminal(&p, "restore", "y\n").ok();
    assert_ne!(p.app_dump("app.db"), before);
    // --yes does not ask: nothing is typed, and it restores (here: undoes the restore).
    let yes = on_a_terminal(&p, "restore --yes", "").ok();
    assert!(!yes.stdout.contains("[y/N]"), "{}", yes.stdout);
}

/// The issue's case: the last run failed during the rehearsal, so the real database was never
/// touched; `restore --yes` must not put back the backup of an earlier run (which would drop
/// the rows the application wrote since). It refuses, says why, and names that backup.
#[test]
fn restore_without_a_name_does_not_undo_an_earlier_run_when_the_last_one_changed_nothing() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a TEXT);",
    );
    p.strata(&["migrate", "-q"]).ok();
    let first = backup_files(&p)
        .into_iter()
        .find(|n| n.starts_with("app-"))
        .unwrap();
    p.open("app.db")
        .execute("INSERT INTO t VALUES ('written by the app')", [])
        .unwrap();
    p.write(
        "migrations/app/20240201T000000Z-broken/do.sql",
        "INSERT INTO nowhere VALUES (1);",
    );
    p.strata(&["migrate", "-q"]).code(1);
    for args in [&["restore", "--yes"][..], &["restore"][..]] {
        p.strata(args)
            .code(3)
            .stderr_has("changed nothing in this database")
            .stderr_has("failed during the rehearsal")
            .stderr_has(format!("strata restore {first}"));
    }
    assert_eq!(
        rows(&p.open("app.db"), "SELECT a FROM t"),
        ["written by the app"]
    );
    // Named, it goes back.
    p.strata(&["restore", &first]).ok();
    assert!(
        rows(
            &p.open("app.db"),
            "SELECT name FROM sqlite_master WHERE name = 't'"
        )
        .is_empty()
    );
}

/// Rows the application changed after the run are named, and restore goes on only with --yes
/// (or a backup named); without outside changes it undoes the run, and a second restore
/// undoes the first.
#[test]
fn restore_without_a_name_refuses_to_drop_rows_written_since_the_run_unless_told() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a TEXT); CREATE TABLE kept(k); INSERT INTO t VALUES ('seeded');",
    );
    p.strata(&["migrate", "-q"]).ok();
    // Nothing changed outside strata: the run is undone.
    p.strata(&["restore"]).ok();
    assert!(
        rows(
            &p.open("app.db"),
            "SELECT name FROM sqlite_master WHERE name = 't'"
        )
        .is_empty()
    );
    // A second restore undoes the restore.
    p.strata(&["restore"]).ok();
    assert_eq!(rows(&p.open("app.db"), "SELECT a FROM t"), ["seeded"]);
    p.open("app.db")
        .execute_batch(
            "INSERT INTO t VALUES ('app'); CREATE TABLE notes(n); INSERT INTO notes VALUES (1);",
        )
        .unwrap();
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed outside strata")
        .stderr_has("t (1 -> 2 rows)")
        .stderr_has("notes (new since, 1 row(s))")
        .stderr_has("--yes");
    let err = p.strata(&["restore"]).stderr;
    assert!(!err.contains("kept"), "{err}");
    assert_eq!(rows(&p.open("app.db"), "SELECT count(*) FROM t"), ["2"]);
    p.strata(&["restore", "--yes"]).ok();
    assert!(
        rows(
            &p.open("app.db"),
            "SELECT name FROM sqlite_master WHERE name = 'notes'"
        )
        .is_empty()
    );
}

/// An application table whose name starts with `strata_` (a geology application's
/// `strata_layers`, there before strata adopted the database) is the application's: rows
/// written there after the run stop a restore as any other table's do.
#[test]
fn restore_counts_an_application_table_named_like_strata_tables() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    Connection::open(p.path("app.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE strata_layers(id INTEGER PRIMARY KEY, depth INT); \
             INSERT INTO strata_layers VALUES (1, 100);",
        )
        .unwrap();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people(id INTEGER PRIMARY KEY);",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.open("app.db")
        .execute_batch("INSERT INTO strata_layers VALUES (2, 500);")
        .unwrap();
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed outside strata")
        .stderr_has("strata_layers (1 -> 2 rows)");
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM strata_layers"),
        ["2"]
    );
}

/// The family of attack5 #7 on SQLite: what the application added to the schema after the run
/// (an index, a view, a trigger: no rows of their own) is a change outside strata too, which
/// a restore would drop without a word.
#[test]
fn restore_without_a_name_refuses_to_drop_schema_the_application_added_since() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a TEXT);",
    );
    for added in [
        "CREATE INDEX t_a ON t(a)",
        "CREATE VIEW t_view AS SELECT a FROM t",
        "CREATE TRIGGER t_trim AFTER INSERT ON t BEGIN SELECT 1; END",
    ] {
        p.strata(&["migrate", "-q"]).ok();
        p.open("app.db").execute_batch(added).unwrap();
        p.strata(&["restore"])
            .code(3)
            .stderr_has("changed outside strata")
            .stderr_has("sqlite_master");
        p.strata(&["restore", "--yes"]).ok();
        assert_eq!(
            rows(
                &p.open("app.db"),
                "SELECT count(*) FROM sqlite_master WHERE name IN ('t', 't_a', 't_view', 't_trim')"
            ),
            ["0"],
            "{added}"
        );
    }
}
