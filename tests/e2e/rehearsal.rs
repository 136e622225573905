//! Backups, restore, rehearsal on a copy, and `strata sandbox` for CI.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use crate::harness::{Project, rows, strata_command};
use crate::hostile::transform;

fn fingerprint(p: &Project, rel: &str) -> (Vec<u8>, SystemTime) {
    let path = p.path(rel);
    (
        std::fs::read(&path).unwrap(),
        std::fs::metadata(&path).unwrap().modified().unwrap(),
    )
}

fn backups(p: &Project) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn each_phase_backs_up_its_database_first_and_audits_it() {
    let p = Project::example();
    p.strata(&["migrate"])
        .ok()
        .stderr_has("backed up app.db to");
    let names = backups(&p);
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("app-") && n.ends_with(".db")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("test-")), "{names:?}");
    let audit = rows(
        &p.open("app.db"),
        "SELECT phase, action, outcome FROM strata_migration_audit ORDER BY id LIMIT 1",
    );
    assert_eq!(audit, ["apply|backup|ok"]);
    // Nothing pending: no new backup.
    p.strata(&["migrate"]).ok();
    assert_eq!(backups(&p), names);
}

#[test]
fn backups_are_pruned_to_the_configured_number() {
    let p = Project::empty();
    p.write("strata.toml", "backups_keep = 2\n");
    for (i, stamp) in ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"]
        .iter()
        .enumerate()
    {
        p.write(
            &format!("migrations/app/{stamp}-s{i}/do.sql"),
            &format!("CREATE TABLE t{i}(a);"),
        );
        p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    }
    let app: Vec<String> = backups(&p)
        .into_iter()
        .filter(|n| n.starts_with("app-") && n.ends_with(".db"))
        .collect();
    assert_eq!(app.len(), 2, "{app:?}");
}

#[test]
fn restore_undoes_an_unwanted_run_exactly() {
    let p = Project::example();
    p.strata(&["migrate", "--to", "20240215T153000Z", "-q"])
        .ok();
    let before = p.app_dump("app.db");
    p.strata(&["migrate", "-q"]).ok();
    assert_ne!(p.app_dump("app.db"), before);
    p.strata(&["restore"])
        .ok()
        .stdout_has("restored app.db from");
    assert_eq!(
        p.app_dump("app.db"),
        before,
        "restore did not give back the previous schema and rows"
    );
    let audit = rows(
        &p.open("app.db"),
        "SELECT phase, action FROM strata_migration_audit ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(audit, ["restore|restore"]);
    // The undone migrations are pending again, and apply again.
    p.strata(&["status"]).ok().stdout_has("pending");
    p.strata(&["migrate", "-q"]).ok();
    p.strata(&["restore", "--test"])
        .ok()
        .stdout_has("restored .strata/test.db");
}

#[test]
fn restore_refuses_while_another_process_holds_the_database() {
    let p = Project::example();
    p.write("strata.toml", "busy_timeout_ms = 100\n");
    p.strata(&["migrate", "-q"]).ok();
    let holder = p.open("app.db");
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    p.strata(&["restore"]).code(3).stderr_has("locked");
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn restore_without_a_backup_says_so() {
    let p = Project::example();
    p.strata(&["restore"]).code(2).stderr_has("no backup");
}

#[test]
fn a_rehearsal_failure_leaves_the_real_database_byte_identical() {
    let p = Project::example();
    p.strata(&["migrate", "-q"]).ok();
    let before = fingerprint(&p, "app.db");
    std::thread::sleep(Duration::from_millis(20));
    p.write(
        "migrations/billing/20240601T000000Z-broken/do.sql",
        "UPDATE nowhere SET a = 1;",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("no such table: nowhere");
    assert_eq!(fingerprint(&p, "app.db"), before);
}

#[test]
fn rehearsing_on_a_copy_meets_real_data_and_leaves_no_copy() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people(id INTEGER PRIMARY KEY, email TEXT);",
    );
    p.strata(&["migrate", "-q"]).ok();
    // Real data the test data never had: an email that is not lower case.
    p.open("app.db")
        .execute_batch("INSERT INTO people(email) VALUES ('Ada@Example.com')")
        .unwrap();
    p.write(
        "migrations/app/20240201T000000Z-lower/do.sql",
        "CREATE UNIQUE INDEX people_email ON people(email);",
    );
    p.write(
        "migrations/app/20240201T000000Z-lower/checks.sql",
        "SELECT id FROM people WHERE email <> lower(email);",
    );
    let before = fingerprint(&p, "app.db");
    p.strata(&["migrate", "--rehearse-on-copy"])
        .code(1)
        .stderr_has("app/20240201T000000Z-lower failed during checks");
    assert_eq!(
        fingerprint(&p, "app.db"),
        before,
        "the real database changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(p.path(".strata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rehearsal-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the copy was not deleted: {leftovers:?}"
    );
    // The test database rehearsed fine: its data was clean.
    assert_eq!(
        rows(
            &p.open(".strata/test.db"),
            "SELECT count(*) FROM strata_migration"
        ),
        ["2"]
    );
}

#[test]
fn sandbox_runs_the_chain_and_never_touches_the_configured_databases() {
    let p = Project::example();
    p.strata(&["migrate", "--to", "20240130T102000Z", "-q"])
        .ok();
    std::fs::remove_file(p.path(".strata/test.db")).unwrap();
    let real = fingerprint(&p, "app.db");
    std::thread::sleep(Duration::from_millis(20));
    let run = p.strata(&["sandbox", "--json"]).ok();
    let report = run.json();
    assert_eq!(report["ok"], true);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert!(steps.iter().all(|s| s["outcome"] == "ok"), "{report}");
    assert_eq!(
        fingerprint(&p, "app.db"),
        real,
        "sandbox touched the real database"
    );
    assert!(
        !p.path(".strata/test.db").exists(),
        "sandbox created the test database"
    );
    p.strata(&["sandbox"])
        .ok()
        .stdout_has("10 ok, 0 failed, 0 skipped");
}

#[test]
fn sandbox_fails_the_build_on_a_broken_transform_with_a_junit_report() {
    let p = Project::example();
    let dir = "migrations/billing/20240305T000000Z-broken";
    p.write(&format!("{dir}/do.sql"), "");
    std::fs::write(
        p.path(&format!("{dir}/transform.wasm")),
        transform(None, "unreachable"),
    )
    .unwrap();
    let run = p.strata(&["sandbox", "--junit", "report.xml"]).code(1);
    let run = run
        .stderr_has("billing/20240305T000000Z-broken")
        .stderr_has("transform.wasm");
    assert!(
        run.stdout
            .contains("FAILED  billing/20240305T000000Z-broken"),
        "{}",
        run.stdout
    );
    let xml = std::fs::read_to_string(p.path("report.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("not XML: {e}\n{xml}"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 11);
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| {
            format!(
                "{}/{}",
                c.attribute("classname").unwrap(),
                c.attribute("name").unwrap()
            )
        })
        .collect();
    assert_eq!(failed, ["billing/20240305T000000Z-broken"]);
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure
            .attribute("message")
            .unwrap()
            .contains("billing/20240305T000000Z-broken")
    );
    assert!(failure.text().unwrap().contains("trapped"));
    let skipped = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
        .count();
    assert_eq!(skipped, 4, "the steps after the failure are skipped");
    assert!(!p.path("app.db").exists());
}

#[test]
fn sandbox_from_a_database_rehearses_only_what_is_pending() {
    let p = Project::example();
    p.strata(&[
        "migrate",
        "--to",
        "20240215T153000Z",
        "--no-rehearsal",
        "-q",
    ])
    .ok();
    std::fs::copy(p.path("app.db"), p.path("prod-snapshot.db")).unwrap();
    let snap = fingerprint(&p, "prod-snapshot.db");
    let report = p
        .strata(&["sandbox", "--from", "prod-snapshot.db", "--json"])
        .ok()
        .json();
    assert_eq!(report["steps"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(
        fingerprint(&p, "prod-snapshot.db"),
        snap,
        "--from changed its source"
    );
}

#[test]
fn a_process_killed_in_phase_two_leaves_the_step_undone_and_the_next_run_finishes() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a INTEGER);",
    );
    p.strata(&["migrate", "-q"]).ok();
    // A step that takes seconds: a large insert from a recursive CTE.
    p.write(
        "migrations/app/20240201T000000Z-slow/do.sql",
        "CREATE TABLE big(n INTEGER);\n\
         INSERT INTO big WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000000) SELECT i FROM c;",
    );
    let before = p.app_dump("app.db");
    let mut child = strata_command(p.root(), &["migrate", "--no-rehearsal"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the step is running (this run's backup copy of app.db is there: the step
    // starts once it is written, and its audit row is written only when the step commits),
    // then kill.
    let backups = |p: &Project| -> usize {
        std::fs::read_dir(p.path(".strata/backups"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with("app-") && name.ends_with(".db")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let taken = backups(&p);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let started = backups(&p) > taken;
        if started || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the slow step finished before the kill; make it slower"
    );
    assert_eq!(
        p.app_dump("app.db"),
        before,
        "the interrupted step left changes behind"
    );
    assert_eq!(rows(&p.open("app.db"), "PRAGMA integrity_check"), ["ok"]);
    p.strata(&["migrate", "--no-rehearsal", "-q"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM big"),
        ["10000000"]
    );
}
