//! `strata fleet status|plan|migrate`: one chain over many SQLite files (and PostgreSQL
//! databases from a URL template), in stages, with failure policies, resumable.

use crate::harness::{Project, rows};

const PEOPLE: &str = "migrations/app/20260101T000000Z-people";
const STRICT: &str = "migrations/app/20260102T000000Z-strict-names";
const TAGS: &str = "migrations/app/20260103T000000Z-tags";

/// A project whose first migration makes `people` with a nullable name, and `count` empty
/// tenant files `tenants/t00.db`, `tenants/t01.db`, ...
fn fleet(count: usize) -> Project {
    let p = Project::empty();
    p.write("strata.toml", "")
        .write(
            &format!("{PEOPLE}/do.sql"),
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
        )
        .write(
            &format!("{PEOPLE}/test-data/data.json"),
            r#"{"people": [{"id": 1, "name": "Ada"}]}"#,
        );
    for i in 0..count {
        p.write(&tenant(i), "");
    }
    p
}

fn tenant(i: usize) -> String {
    format!("tenants/t{i:02}.db")
}

/// The next two migrations: the names become NOT NULL (a tenant with a NULL name fails
/// there), then a table of tags.
fn strict_names(p: &Project) {
    p.write(
        &format!("{STRICT}/do.sql"),
        "CREATE TABLE people_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people_new SELECT id, name FROM people;\n\
         DROP TABLE people;\n\
         ALTER TABLE people_new RENAME TO people;\n",
    )
    .write(
        &format!("{TAGS}/do.sql"),
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, person INTEGER NOT NULL, tag TEXT NOT NULL);\n",
    );
}

/// Every tenant at the first migration with a row; those in `bad` with a NULL name.
fn people_everywhere(p: &Project, count: usize, bad: &[usize]) {
    p.strata(&["fleet", "migrate", "--targets", "tenants/*.db"])
        .ok();
    for i in 0..count {
        let name = if bad.contains(&i) { "NULL" } else { "'Grace'" };
        p.open(&tenant(i))
            .execute_batch(&format!("INSERT INTO people VALUES (1, {name});"))
            .unwrap();
    }
    strict_names(p);
}

/// The migrations applied to a tenant, by name.
fn applied(p: &Project, i: usize) -> Vec<String> {
    rows(
        &p.open(&tenant(i)),
        "SELECT name FROM strata_migration ORDER BY stamp",
    )
}

/// The targets of a report, by name, with their outcome.
fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["targets"].as_array().unwrap())
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome_of(report: &serde_json::Value, name: &str) -> String {
    outcomes(report)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not in {report}"))
        .1
}

/// Asserts `fleet status` over the tenant files succeeds and says `text`.
#[track_caller]
fn status_says(p: &Project, text: &str) {
    p.strata(&["fleet", "status", "--targets", "tenants/*.db"])
        .ok()
        .stdout_has(text);
}

/// `n` tenants at the first migration with a row each (a NULL name in those of `bad`), the
/// next two migrations pending, and a strata.toml with one group over the tenant files and
/// the stages given.
fn staged_fleet(n: usize, bad: &[usize], stages: &str) -> Project {
    let p = fleet(n);
    people_everywhere(&p, n, bad);
    p.write(
        "strata.toml",
        &format!("[[fleet.group]]\nname = \"tenants\"\nglob = \"tenants/*.db\"\n\n{stages}"),
    );
    p
}

#[test]
fn twenty_four_tenants_get_the_chain_each_with_its_backup_and_audit_and_a_second_run_changes_nothing()
 {
    let n = 24;
    let p = fleet(n);
    strict_names(&p);
    let status = p
        .strata(&["fleet", "status", "--targets", "tenants/*.db", "--json"])
        .ok()
        .json();
    assert_eq!(status["counts"]["pending"], n);
    assert_eq!(status["chain"], 3);
    assert_eq!(status["targets"].as_array().unwrap().len(), n);
    assert_eq!(status["targets"][0]["name"], "t00");
    assert_eq!(status["targets"][0]["pending"].as_array().unwrap().len(), 3);

    let plan = p
        .strata(&["fleet", "plan", "--targets", "tenants/*.db", "--json"])
        .ok()
        .json();
    assert_eq!(plan["rehearsal"]["pending"].as_array().unwrap().len(), 3);
    assert_eq!(plan["stages"][0]["name"], "all");
    assert_eq!(plan["stages"][0]["targets"].as_array().unwrap().len(), n);
    assert!(
        !p.path(".strata/test.db").exists(),
        "plan touched the test db"
    );

    let run = p
        .strata(&[
            "fleet",
            "migrate",
            "--targets",
            "tenants/*.db",
            "--parallel",
            "4",
            "--json",
        ])
        .ok();
    let report = run.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["counts"]["applied"], n);
    assert_eq!(report["rehearsal"]["applied"].as_array().unwrap().len(), 3);
    assert_eq!(report["stages"][0]["parallel"], 4);
    // The rehearsal ran once, on the test database, with its test data.
    assert_eq!(
        rows(&p.open(".strata/test.db"), "SELECT name FROM people"),
        ["Ada"]
    );
    let backups: Vec<String> = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".db"))
        .collect();
    for i in 0..n {
        assert_eq!(
            applied(&p, i),
            ["people", "strict-names", "tags"],
            "{}",
            tenant(i)
        );
        let db = p.open(&tenant(i));
        // No test data on a real database; the audit rows of its own run.
        assert!(rows(&db, "SELECT * FROM people").is_empty());
        let audited = rows(
            &db,
            "SELECT count(*) FROM strata_migration_audit WHERE phase = 'apply' AND outcome = 'ok'",
        );
        assert_ne!(audited, ["0"], "t{i:02} has no audit rows");
        let name = format!("t{i:02}-");
        assert!(
            backups.iter().any(|b| b.starts_with(&name)),
            "no backup of t{i:02} in {backups:?}"
        );
        let target = &report["stages"][0]["targets"][i];
        assert_eq!(target["outcome"], "applied");
        assert_eq!(target["group"], "targets");
        assert!(target["backup"].as_str().unwrap().contains(&name));
    }

    let before: Vec<Vec<u8>> = (0..n)
        .map(|i| std::fs::read(p.path(&tenant(i))).unwrap())
        .collect();
    let again = p
        .strata(&["fleet", "migrate", "--targets", "tenants/*.db", "--json"])
        .ok()
        .json();
    assert_eq!(again["counts"]["up-to-date"], n);
    for (i, bytes) in before.iter().enumerate() {
        assert_eq!(&std::fs::read(p.path(&tenant(i))).unwrap(), bytes);
    }
    status_says(&p, "24 target(s), chain of 3 migration(s): up-to-date 24");
}

#[test]
fn a_failing_tenant_stops_the_stage_and_a_second_run_goes_on_where_it_stopped() {
    let n = 20;
    let p = staged_fleet(
        n,
        &[5],
        "[[fleet.stage]]\nname = \"one-by-one\"\nparallel = 1\non_failure = \"stop\"\n",
    );
    let before = p.app_dump(&tenant(5));
    let run = p
        .strata(&["fleet", "migrate", "--json", "--junit", "fleet.xml"])
        .code(1)
        .stderr_has(
            "t05 FAILED at app/20260102T000000Z-strict-names: NOT NULL constraint failed: people_new.name",
        );
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["stages"][0]["stopped"], true);
    for i in 0..5 {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "applied");
    }
    assert_eq!(outcome_of(&report, "t05"), "failed");
    for i in 6..n {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "not-run");
        assert_eq!(applied(&p, i), ["people"], "t{i:02} was touched");
    }
    let t05 = &report["stages"][0]["targets"][5];
    assert_eq!(t05["failed_step"], "app/20260102T000000Z-strict-names");
    assert_eq!(t05["exit_code"], 1);
    assert!(t05["error"].as_str().unwrap().contains("NOT NULL"), "{t05}");
    // The failed step was rolled back: the tenant is as it was.
    assert_eq!(p.app_dump(&tenant(5)), before);
    assert_eq!(applied(&p, 5), ["people"]);

    let junit = std::fs::read_to_string(p.path("fleet.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), n);
    assert!(
        junit.contains("tests=\"20\" failures=\"1\" skipped=\"14\""),
        "{junit}"
    );
    assert!(junit.contains("name=\"t05\""), "{junit}");

    let status = p.strata(&["fleet", "status", "--json"]).ok().json();
    assert_eq!(status["counts"]["up-to-date"], 5);
    assert_eq!(status["counts"]["failed"], 1);
    assert_eq!(status["counts"]["pending"], 14);
    assert_eq!(status["targets"][5]["state"], "failed");

    // Fixed by hand, the fleet goes on: those done are skipped, the rest applied.
    p.open(&tenant(5))
        .execute_batch("UPDATE people SET name = 'Linus'")
        .unwrap();
    let resumed = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(resumed["counts"]["up-to-date"], 5);
    assert_eq!(resumed["counts"]["applied"], 15);
    for i in 0..n {
        assert_eq!(applied(&p, i), ["people", "strict-names", "tags"]);
    }
    // One tenant back from the backup the resumed run took of it, as `restore` does for any
    // database.
    p.strata(&["restore", "--db", &tenant(7), "--yes"]).ok();
    assert_eq!(applied(&p, 7), ["people"]);
    assert_eq!(applied(&p, 8), ["people", "strict-names", "tags"]);
}

#[test]
fn under_continue_every_other_tenant_is_migrated_and_the_failures_are_named() {
    let n = 21;
    let p = staged_fleet(
        n,
        &[3, 17],
        "[[fleet.stage]]\nname = \"all\"\nparallel = 3\non_failure = \"continue\"\n",
    );
    let report = p
        .strata(&["fleet", "migrate", "--json", "--report", "report.json"])
        .code(1)
        .json();
    assert_eq!(report["counts"]["applied"], n - 2);
    assert_eq!(report["counts"]["failed"], 2);
    assert_eq!(report["stages"][0]["stopped"], false);
    assert_eq!(report["stages"][0]["on_failure"], "continue");
    for i in 0..n {
        let expected = if i == 3 || i == 17 {
            "failed"
        } else {
            "applied"
        };
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), expected);
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path("report.json")).unwrap()).unwrap();
    assert_eq!(written["counts"], report["counts"]);
    // The human report names each failed tenant with its step.
    p.strata(&["fleet", "migrate"])
        .code(1)
        .stdout_has("t03 FAILED at app/20260102T000000Z-strict-names")
        .stdout_has("t17 FAILED at app/20260102T000000Z-strict-names")
        .stdout_has("up-to-date 19");
}

#[test]
fn max_failures_stops_the_stage_after_that_many_and_later_stages_do_not_run() {
    let n = 20;
    let p = staged_fleet(
        n,
        &[2, 6, 9],
        "[[fleet.stage]]\nname = \"first\"\ntargets = [\"t0*\"]\nparallel = 1\nmax_failures = 2\n\n\
         [[fleet.stage]]\nname = \"second\"\ntargets = [\"t1*\"]\n",
    );
    let plan = p.strata(&["fleet", "plan", "--json"]).ok().json();
    assert_eq!(plan["stages"][0]["on_failure"], "stop after 2 failures");
    assert_eq!(plan["stages"][0]["targets"].as_array().unwrap().len(), 10);
    assert_eq!(plan["stages"][1]["targets"].as_array().unwrap().len(), 10);

    let report = p.strata(&["fleet", "migrate", "--json"]).code(1).json();
    let first = &report["stages"][0];
    assert_eq!(first["stopped"], true);
    assert_eq!(outcome_of(&report, "t02"), "failed");
    assert_eq!(outcome_of(&report, "t06"), "failed");
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "applied");
    }
    // Stopped after the second failure: t07.. not started, t09 never reached.
    for i in [7, 8, 9] {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "not-run");
    }
    assert_eq!(report["stages"][1]["name"], "second");
    for i in 10..n {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "not-run");
        assert_eq!(applied(&p, i), ["people"]);
    }
}

#[test]
fn a_canary_stage_that_fails_keeps_the_rest_of_the_fleet_untouched() {
    let n = 20;
    let p = staged_fleet(
        n,
        &[0],
        "[[fleet.stage]]\nname = \"canary\"\ntargets = [\"t00\"]\n\n\
         [[fleet.stage]]\nname = \"everyone\"\nparallel = 4\n",
    );
    let report = p.strata(&["fleet", "migrate", "--json"]).code(1).json();
    assert_eq!(report["stages"][0]["name"], "canary");
    assert_eq!(outcome_of(&report, "t00"), "failed");
    assert_eq!(report["counts"]["not-run"], n - 1);
    for i in 1..n {
        assert_eq!(applied(&p, i), ["people"]);
    }
}

#[test]
fn status_and_plan_exit_3_when_a_target_would_refuse() {
    let p = fleet(20);
    p.strata(&["fleet", "migrate", "--targets", "tenants/*.db"])
        .ok();
    strict_names(&p);
    p.write(&tenant(9), "this is not a SQLite database, it is text");
    let run = p
        .strata(&["fleet", "status", "--targets", "tenants/*.db", "--json"])
        .code(3);
    let status = run.json();
    assert_eq!(status["counts"]["unreachable"], 1);
    assert_eq!(status["counts"]["pending"], 19);
    assert_eq!(status["targets"][9]["state"], "unreachable");
    assert!(
        !status["targets"][9]["problems"][0]
            .as_str()
            .unwrap()
            .is_empty()
    );
    p.strata(&["fleet", "plan", "--targets", "tenants/*.db"])
        .code(3)
        .stdout_has("t09  UNREACHABLE");

    // A changed applied migration: every target would refuse as modified.
    p.write(&tenant(9), "");
    p.write(
        &format!("{PEOPLE}/do.sql"),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, born TEXT);\n",
    );
    let status = p
        .strata(&["fleet", "status", "--targets", "tenants/*.db", "--json"])
        .code(3)
        .json();
    assert_eq!(status["counts"]["modified"], 19);
    let report = p
        .strata(&[
            "fleet",
            "migrate",
            "--targets",
            "tenants/*.db",
            "--no-rehearsal",
            "--json",
        ])
        .code(3)
        .json();
    assert_eq!(outcome_of(&report, "t00"), "refused");
    assert_eq!(report["stages"][0]["targets"][0]["exit_code"], 3);
}

#[test]
fn groups_in_strata_toml_name_targets_and_targets_limits_them() {
    let p = fleet(6);
    p.write("vip/acme.db", "").write("vip/globex.db", "").write(
        "strata.toml",
        "[[fleet.group]]\nname = \"small\"\nglob = \"tenants/t0?.db\"\n\n\
         [[fleet.group]]\nname = \"vip\"\ndatabases = [\"vip/acme.db\", \"vip/globex.db\"]\n\n\
         [[fleet.stage]]\nname = \"vip-first\"\ngroups = [\"vip\"]\nparallel = 1\n",
    );
    let plan = p.strata(&["fleet", "plan", "--json"]).ok().json();
    let stage = |k: usize| -> Vec<String> {
        plan["stages"][k]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(stage(0), ["acme", "globex"]);
    assert_eq!(plan["stages"][1]["name"], "rest");
    assert_eq!(stage(1).len(), 6);

    // --targets with a name pattern limits the configured targets.
    let report = p
        .strata(&["fleet", "migrate", "--targets", "acme", "--json"])
        .ok()
        .json();
    assert_eq!(
        outcomes(&report),
        [("acme".to_string(), "applied".to_string())]
    );
    assert_eq!(
        rows(
            &p.open("vip/globex.db"),
            "SELECT count(*) FROM sqlite_master"
        ),
        ["0"]
    );
    let status = p
        .strata(&["fleet", "status", "--targets", "vip", "--json"])
        .ok()
        .json();
    assert_eq!(status["counts"]["up-to-date"], 1);
    assert_eq!(status["counts"]["pending"], 1);

    // Two files with one name are refused, as is a group strata cannot use.
    p.write("other/acme.db", "").write(
        "strata.toml",
        "[[fleet.group]]\nname = \"a\"\nglob = \"vip/*.db\"\n\n\
         [[fleet.group]]\nname = \"b\"\nglob = \"other/*.db\"\n",
    );
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("two fleet targets are named \"acme\"");
    p.write(
        "strata.toml",
        "[[fleet.group]]\nname = \"pg\"\nurl = \"postgres://app@db/tenant\"\nnames = [\"a\"]\n",
    );
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("has no {name}");
    p.write("strata.toml", "");
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("no fleet targets");
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_postgresql_url_template_names_one_database_per_tenant() {
    let pg = crate::postgres::Pg::new("fleet");
    let tenants = ["acme", "globex", "initech"];
    let mut admin = pg.admin_client();
    for t in tenants {
        admin
            .batch_execute(&format!("CREATE DATABASE {}_{t}", pg.name))
            .unwrap();
    }
    struct Drop<'a>(&'a crate::postgres::Pg, [&'a str; 3]);
    impl std::ops::Drop for Drop<'_> {
        fn drop(&mut self) {
            let mut c = self.0.admin_client();
            for t in self.1 {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {}_{t} WITH (FORCE)",
                    self.0.name
                ));
            }
        }
    }
    let _cleanup = Drop(&pg, tenants);
    let p = crate::postgres::project(&pg);
    let (base, _) = pg
        .url()
        .rsplit_once('/')
        .map(|(b, d)| (b.to_string(), d.to_string()))
        .unwrap();
    p.write(
        "strata.toml",
        &format!(
            "db = \"{}\"\n\n[[fleet.group]]\nname = \"tenants\"\nurl = \"{base}/{}_{{name}}\"\n\
             names = [\"acme\", \"globex\", \"initech\"]\n",
            pg.url(),
            pg.name
        ),
    )
    .write(
        "migrations/app/20260101T000000Z-people/do.sql",
        "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL);\n",
    );
    let run = p.strata(&["fleet", "status", "--json"]).ok();
    pg.hides_password(&run);
    let status = run.json();
    assert_eq!(status["counts"]["pending"], 3);
    assert_eq!(status["targets"][1]["name"], "globex");
    let run = p.strata(&["fleet", "migrate", "--json"]).ok();
    pg.hides_password(&run);
    let report = run.json();
    assert_eq!(report["counts"]["applied"], 3);
    for t in tenants {
        let mut c =
            postgres::Client::connect(&format!("{base}/{}_{t}", pg.name), postgres::NoTls).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM strata_migration", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{t}");
    }
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("up-to-date 3");
}

/// Asserts a tenant holds the whole chain, each step applied once (its row copied once).
fn applied_once(p: &Project, i: usize) {
    let db = p.open(&tenant(i));
    let names = applied(p, i);
    assert_eq!(names, ["people", "strict-names", "tags"], "{}", tenant(i));
    // One row per migration in the ledger (its key), and the rows copied once.
    assert_eq!(
        rows(&db, "SELECT count(*) FROM people"),
        ["1"],
        "{}",
        tenant(i)
    );
}

/// `fleet migrate` over the tenant files, two at a time.
const TWO_AT_A_TIME: [&str; 6] = [
    "fleet",
    "migrate",
    "--targets",
    "tenants/*.db",
    "--parallel",
    "2",
];

#[test]
fn two_fleet_runs_at_once_migrate_each_target_exactly_once() {
    let n = 20;
    let p = fleet(n);
    people_everywhere(&p, n, &[]);
    let run: Vec<String> = TWO_AT_A_TIME.map(String::from).to_vec();
    crate::harness::all_at_once(p.root(), &[run.clone(), run]);
    for i in 0..n {
        applied_once(&p, i);
    }
    status_says(&p, "up-to-date 20");
}

#[test]
fn a_fleet_run_killed_midway_goes_on_where_it_stopped() {
    use std::io::{BufRead, BufReader};
    let n = 40;
    let p = fleet(n);
    people_everywhere(&p, n, &[]);
    let mut child =
        crate::harness::strata_command(p.root(), &[TWO_AT_A_TIME.as_slice(), &["-v"]].concat())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // Killed once a few targets are done, others are running.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().starts_with("[3/") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = (0..n).filter(|&i| applied(&p, i).len() == 3).count();
    assert!(done >= 3, "{done} targets were migrated before the kill");

    let report = p
        .strata(&["fleet", "migrate", "--targets", "tenants/*.db", "--json"])
        .ok()
        .json();
    assert_eq!(report["counts"]["up-to-date"], done);
    assert_eq!(report["counts"]["applied"], n - done);
    for i in 0..n {
        applied_once(&p, i);
    }
}

#[test]
fn the_test_database_is_refused_as_a_target_in_any_spelling() {
    let p = fleet(2);
    p.strata(&["fleet", "migrate", "--targets", "tenants/*.db"])
        .ok();
    assert!(p.path(".strata/test.db").exists());
    std::os::unix::fs::symlink("../.strata/test.db", p.path("tenants/x.db")).unwrap();
    for targets in [
        "./.strata/test.db",
        "tenants/../.strata/test.db",
        // A symlink among the tenants.
        "tenants/*.db",
    ] {
        for command in ["status", "migrate"] {
            p.strata(&["fleet", command, "--targets", targets])
                .code(2)
                .stderr_has("the test database is among the fleet's targets");
        }
    }
    std::fs::remove_file(p.path("tenants/x.db")).unwrap();
    // Nothing of the test data reached a tenant.
    for i in 0..2 {
        assert_eq!(
            rows(&p.open(&tenant(i)), "SELECT count(*) FROM people"),
            ["0"]
        );
    }
}

#[test]
fn a_tenant_file_name_cannot_forge_report_lines() {
    let p = fleet(1);
    let forged = "globex  up-to-date   1 applied\n  initech  FAILED   0 applied\u{1b}[2K";
    p.write(&format!("tenants/{forged}.db"), "");
    let run = p
        .strata(&["fleet", "status", "--targets", "tenants/*.db"])
        .ok();
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("initech")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
    assert!(run.stdout.contains("applied\\n  initech"), "{}", run.stdout);
}
