//! Commands that read the ledger to plan and then wait for strata's run lock: once a phase
//! holds the lock it reads the ledger again and refuses when a restore, an undo or a repair
//! changed it meanwhile, instead of applying its steps above a migration that is gone.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Output, Stdio};

use crate::harness::{Project, rows, strata_command};
use crate::postgres::Pg;

const ONE: &str = "migrations/app/20240101T000000Z-one";
const TWO: &str = "migrations/app/20240102T000000Z-two";
const THREE: &str = "migrations/app/20240103T000000Z-three";

/// strata's run lock on PostgreSQL (`ledger::RUN_KEY`).
const RUN_KEY: i64 = 0x7374_7261_7472;

/// A chain of two applied migrations (`two` with an undo.sql, applied by a run of its own, so
/// the last run's backup is from before it), and a third one pending.
fn two_applied_one_pending(p: &Project, sql_table: &str) {
    p.write(
        &format!("{ONE}/do.sql"),
        &format!("CREATE TABLE t1 (a {sql_table});"),
    );
    p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    p.write(
        &format!("{TWO}/do.sql"),
        &format!("CREATE TABLE t2 (a {sql_table});"),
    )
    .write(&format!("{TWO}/undo.sql"), "DROP TABLE t2;");
    p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    p.write(
        &format!("{THREE}/do.sql"),
        &format!("CREATE TABLE t3 (a {sql_table});"),
    );
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The migrate refused with nothing applied: the migration the other command took away is
/// named, and the ledger and schema are what that command left.
#[track_caller]
fn refused_over_the_hole(migrated: &Output, ledger: &[String], tables: &[String]) {
    assert_eq!(migrated.status.code(), Some(3), "{}", text(migrated));
    let stderr = String::from_utf8_lossy(&migrated.stderr);
    assert!(
        stderr.contains("app/20240102T000000Z no longer applied")
            && stderr.contains("run the command again"),
        "{stderr}"
    );
    assert_eq!(ledger, ["20240101T000000Z"]);
    assert_eq!(tables, ["t1"]);
}

/// How many sessions of `pg`'s real database wait for an advisory lock.
fn waiting(pg: &Pg) -> usize {
    pg.rows(
        false,
        "SELECT count(*) FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_database d \
         ON d.oid = l.database WHERE d.datname = current_database() \
         AND l.locktype = 'advisory' AND NOT l.granted",
    )[0]
    .parse()
    .unwrap()
}

/// `strata args` in the background, once `waiting` sessions wait for an advisory lock.
fn spawn_until_waiting(p: &Project, pg: &Pg, args: &[&str], waiters: usize) -> Child {
    let mut child = strata_command(p.root(), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while waiting(pg) < waiters {
        if child.try_wait().unwrap().is_some() {
            panic!(
                "`strata {}` ended before it waited for the run lock: {}",
                args.join(" "),
                text(&child.wait_with_output().unwrap())
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`strata {}` never waited for the run lock",
            args.join(" ")
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// On PostgreSQL, `first` (a restore or an undo, which takes the run lock exclusively) waits
/// for this test's hold of the run lock, then `second` reads the ledger (it still holds `two`)
/// and waits behind it; the lock released, `first` runs, then `second`. `prepare` changes the
/// project before the race.
fn pg_race(
    test: &str,
    prepare: impl FnOnce(&Project, &Pg),
    first: &[&str],
    second: &[&str],
) -> (Pg, Project, Output, Output) {
    let pg = Pg::new(test);
    let p = crate::postgres::project(&pg);
    p.write(
        "strata.toml",
        &format!("db = \"{}\"\nbusy_timeout_ms = 120000\n", pg.url()),
    );
    two_applied_one_pending(&p, "integer");
    prepare(&p, &pg);
    let mut holder = pg.client(false);
    holder
        .execute("SELECT pg_catalog.pg_advisory_lock($1)", &[&RUN_KEY])
        .unwrap();
    let first = spawn_until_waiting(&p, &pg, first, 1);
    let second = spawn_until_waiting(&p, &pg, second, 2);
    holder
        .execute("SELECT pg_catalog.pg_advisory_unlock($1)", &[&RUN_KEY])
        .unwrap();
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    (pg, p, first, second)
}

const MIGRATE: &[&str] = &["migrate", "--no-rehearsal"];

fn pg_ledger_and_tables(pg: &Pg) -> (Vec<String>, Vec<String>) {
    (
        pg.rows(
            false,
            "SELECT stamp FROM strata.strata_migration ORDER BY stamp",
        ),
        pg.rows(
            false,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' \
             ORDER BY 1",
        ),
    )
}

/// attack5 #8: a migrate started while a restore runs planned from the ledger before the
/// restore; it now re-reads the ledger under the run lock and refuses, instead of applying
/// `three` above the `two` the restore took away.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_migrate_planned_before_a_restore_on_postgres_refuses_after_it() {
    let (pg, _, _, migrated) = pg_race(
        "race_restore_plan",
        |_, _| {},
        &["restore", "--yes"],
        MIGRATE,
    );
    let (ledger, tables) = pg_ledger_and_tables(&pg);
    refused_over_the_hole(&migrated, &ledger, &tables);
}

/// The same with an undo of `two` that ran while the migrate waited.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_migrate_planned_before_an_undo_on_postgres_refuses_after_it() {
    let (pg, _, undone, migrated) = pg_race("race_undo_plan", |_, _| {}, &["undo"], MIGRATE);
    assert!(
        String::from_utf8_lossy(&undone.stdout).contains("undid app/20240102T000000Z-two"),
        "{}",
        text(&undone)
    );
    let (ledger, tables) = pg_ledger_and_tables(&pg);
    refused_over_the_hole(&migrated, &ledger, &tables);
}

/// On SQLite too the run plans before it takes the run lock (a file lock): this test holds
/// the lock, lets a migrate plan, then, still holding it, takes `two` away as an undo would
/// (its undo.sql and its ledger row), and releases the lock.
#[test]
fn a_migrate_planned_before_the_ledger_changed_on_sqlite_refuses() {
    let p = Project::empty();
    p.write("strata.toml", "busy_timeout_ms = 120000\n");
    two_applied_one_pending(&p, "INTEGER");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p.path("app.db.strata-lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut migrate = strata_command(p.root(), &["migrate", "--no-rehearsal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The phase's first line comes once the run has planned, before it takes the lock.
    let mut stderr = BufReader::new(migrate.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the migrate ended before its phase began: {seen}"
        );
        seen.push_str(&line);
        if line.contains("1 pending") {
            break;
        }
    }
    p.open("app.db")
        .execute_batch(
            "BEGIN; DROP TABLE t2; \
             DELETE FROM strata_migration WHERE stamp = '20240102T000000Z'; COMMIT;",
        )
        .unwrap();
    lock.unlock().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let mut migrated = migrate.wait_with_output().unwrap();
    migrated.stderr = format!("{seen}{rest}").into_bytes();
    let db = p.open("app.db");
    refused_over_the_hole(
        &migrated,
        &rows(&db, "SELECT stamp FROM strata_migration ORDER BY stamp"),
        &rows(
            &db,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'strata%' AND name NOT LIKE 'sqlite%' \
             ORDER BY 1",
        ),
    );
}

/// `repair` reads which checksum it re-pins before it takes the run lock: a restore that took
/// the migration away while the repair waited makes it refuse, instead of auditing a re-pin of
/// a migration that is no longer applied.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_repair_planned_before_a_restore_on_postgres_refuses_after_it() {
    let reword = |p: &Project, _: &Pg| {
        p.write(
            &format!("{TWO}/do.sql"),
            "-- reworded on purpose\nCREATE TABLE t2 (a integer);",
        );
    };
    let (pg, _, _, repaired) = pg_race(
        "race_repair_plan",
        reword,
        &["restore", "--yes"],
        &["repair", "--yes", "app/20240102T000000Z-two"],
    );
    assert_eq!(repaired.status.code(), Some(3), "{}", text(&repaired));
    assert!(
        String::from_utf8_lossy(&repaired.stderr)
            .contains("app/20240102T000000Z no longer applied"),
        "{}",
        text(&repaired)
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM strata.strata_migration_audit WHERE action = 'repair'"
        ),
        ["0"]
    );
}

/// `baseline` reads the schema and the ledger, then records its adoption under the run lock:
/// a restore that changed the ledger in between makes it refuse instead of recording a module
/// over a ledger it never read.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_baseline_read_before_a_restore_on_postgres_refuses_after_it() {
    let by_hand = |_: &Project, pg: &Pg| {
        pg.client(false)
            .batch_execute("CREATE TABLE public.legacy (a integer)")
            .unwrap();
    };
    let (pg, p, _, adopted) = pg_race(
        "race_baseline_plan",
        by_hand,
        &["restore", "--yes"],
        &["baseline", "legacy"],
    );
    assert_eq!(adopted.status.code(), Some(3), "{}", text(&adopted));
    // The module's migration that baseline wrote is gone with the refusal.
    assert!(
        !p.path("migrations/legacy").exists(),
        "{:?}",
        std::fs::read_dir(p.path("migrations/legacy"))
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    assert!(
        String::from_utf8_lossy(&adopted.stderr).contains("app/20240102T000000Z no longer applied"),
        "{}",
        text(&adopted)
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT stamp FROM strata.strata_migration ORDER BY stamp"
        ),
        ["20240101T000000Z"]
    );
}
