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
    // The migration's snapshot, for the drift check below.
    p.strata(&["migrate", "--write-snapshots", "-q"]).ok();
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

    // One tenant changed outside strata: it alone has drifted, named by its own database.
    postgres::Client::connect(&format!("{base}/{}_globex", pg.name), postgres::NoTls)
        .unwrap()
        .batch_execute("ALTER TABLE people ADD COLUMN secret text")
        .unwrap();
    let status = p.strata(&["fleet", "status", "--json"]).code(3).json();
    assert_eq!(status["counts"]["drifted"], 1, "{status}");
    assert_eq!(status["counts"]["up-to-date"], 2, "{status}");
    assert_eq!(status["targets"][1]["state"], "drifted");
    let problem = status["targets"][1]["problems"][0].as_str().unwrap();
    assert!(
        problem.contains(&format!("{}_globex", pg.name)) && problem.contains("secret"),
        "{problem}"
    );
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

/// Another process holding `file`'s write lock (an open `BEGIN EXCLUSIVE` in the sqlite3
/// shell) until the returned child's stdin is closed.
fn hold_write_lock(file: &std::path::Path) -> std::process::Child {
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new("sqlite3")
        .arg(file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("this test needs the sqlite3 shell");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN EXCLUSIVE;\nSELECT 'locked';\n")
        .unwrap();
    child.stdin = Some(stdin);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_target_locked_by_another_process_is_reported_within_its_timeout_and_left_as_it_was() {
    let n = 4;
    let p = staged_fleet(
        n,
        &[],
        "[[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\ntimeout_ms = 500\n",
    );
    // busy_timeout_ms stays at its default, 5 s: the stage's timeout is the shorter wait.
    let mut holder = hold_write_lock(&p.path(&tenant(1)));
    let run = p.strata(&["fleet", "migrate", "--json"]).code(3);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let report = run.json();
    assert_eq!(outcome_of(&report, "t01"), "refused");
    let t01 = outcomes(&report);
    assert_eq!(t01.iter().filter(|(_, o)| o == "applied").count(), n - 1);
    let error = report["stages"][0]["targets"][1]["error"].as_str().unwrap();
    assert!(error.contains("lock"), "{error}");
    assert_eq!(applied(&p, 1), ["people"], "the locked tenant was touched");
    // Nothing lost: once the lock is gone, the next run gives it the rest.
    let again = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(outcome_of(&again, "t01"), "applied");
    applied_once(&p, 1);
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn unreachable_postgresql_targets_are_named_within_their_timeout_and_the_others_migrated() {
    let pg = crate::postgres::Pg::new("fleet_timeout");
    let p = crate::postgres::project(&pg);
    // A port that takes connections and never says a word (the driver alone would wait for
    // it forever), and one where nothing listens.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    p.write(
        "strata.toml",
        &format!(
            "db = \"{url}\"\n\n[[fleet.group]]\nname = \"tenants\"\ndatabases = [\"{url}\", \
             \"postgres://strata@127.0.0.1:{silent_port}/silent\", \
             \"postgres://strata@127.0.0.1:{closed_port}/closed\"]\ntimeout_ms = 1500\n\n\
             [[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\n",
            url = pg.url()
        ),
    )
    .write(
        "migrations/app/20260101T000000Z-people/do.sql",
        "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL);\n",
    );
    let status = p.strata(&["fleet", "status", "--json"]).code(3).json();
    assert_eq!(status["counts"]["unreachable"], 2, "{status}");
    assert_eq!(status["counts"]["pending"], 1, "{status}");
    let silent_row = &status["targets"][1];
    assert_eq!(silent_row["name"], "silent");
    assert!(
        silent_row["problems"][0]
            .as_str()
            .unwrap()
            .contains("no answer within 1500 ms"),
        "{silent_row}"
    );

    let run = p.strata(&["fleet", "migrate", "--json"]).code(1);
    pg.hides_password(&run);
    let report = run.json();
    assert_eq!(outcome_of(&report, &pg.name), "applied");
    assert_eq!(outcome_of(&report, "silent"), "failed");
    assert_eq!(outcome_of(&report, "closed"), "failed");
    let targets = report["stages"][0]["targets"].as_array().unwrap();
    assert!(
        targets[1]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 1500 ms"),
        "{report}"
    );
    assert!(
        targets[2]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{report}"
    );
    assert_eq!(
        pg.rows(false, "SELECT name FROM strata_migration"),
        ["people"]
    );
    drop(silent);
}

/// A tiny tmpfs mounted on a folder, unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &std::path::Path) -> TinyDisk {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success());
        assert!(
            matches!(mounted, Ok(true)),
            "this test mounts a 256 KiB tmpfs to have a full disk: run it as root"
        );
        TinyDisk(dir.to_path_buf())
    }

    /// Fills the disk with `filler` until a write fails.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: mounts a tiny tmpfs for a full disk"]
fn a_target_on_a_full_disk_fails_alone_named_and_keeps_what_it_had() {
    let n = 3;
    let p = staged_fleet(n, &[], "");
    let disk = TinyDisk::mount(&p.path("full"));
    std::fs::copy(p.path(&tenant(2)), p.path("full/tfull.db")).unwrap();
    p.write(
        "strata.toml",
        "[[fleet.group]]\nname = \"tenants\"\nglob = \"tenants/*.db\"\n\n\
         [[fleet.group]]\nname = \"full\"\ndatabases = [\"full/tfull.db\"]\n\n\
         [[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\n",
    );
    // A few thousand rows, so the step's copy of the table needs pages the disk lacks.
    p.open("full/tfull.db")
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             INSERT INTO people SELECT i, 'name number ' || i FROM n;",
        )
        .unwrap();
    disk.fill();
    let report = p.strata(&["fleet", "migrate", "--json"]).code(1).json();
    assert_eq!(outcome_of(&report, "tfull"), "failed", "{report}");
    for i in 0..n {
        assert_eq!(outcome_of(&report, &format!("t{i:02}")), "applied");
    }
    let error = report["stages"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tfull")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("disk is full"), "{error}");
    let db = p.open("full/tfull.db");
    assert_eq!(rows(&db, "PRAGMA integrity_check"), ["ok"]);
    assert_eq!(
        rows(&db, "SELECT name FROM strata_migration ORDER BY stamp"),
        ["people"]
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM people"), ["3000"]);
    drop(db);
    // Room again: the next run gives it the rest.
    std::fs::remove_file(p.path("full/filler")).unwrap();
    let again = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(outcome_of(&again, "tfull"), "applied");
    let db = p.open("full/tfull.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM people"), ["3000"]);
    assert_eq!(
        rows(&db, "SELECT name FROM strata_migration ORDER BY stamp"),
        ["people", "strict-names", "tags"]
    );
    drop(db);
    drop(disk);
}

/// A project served by `strata serve` on 127.0.0.1:0: the people migration and the next two.
fn served_tenant() -> (Project, crate::remote::Server) {
    let p = fleet(0);
    strict_names(&p);
    let srv = crate::remote::Server::start(&p, &[]);
    (p, srv)
}

#[test]
fn remote_targets_are_migrated_in_parallel_over_grpc_and_an_unreachable_one_is_named_in_time() {
    let (a, srv_a) = served_tenant();
    let (b, srv_b) = served_tenant();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let client = Project::empty();
    crate::remote::write_token(&client, ".strata/a.token", "e2e-token-0123456789abcdef");
    client.write(
        "strata.toml",
        &format!(
            "[[fleet.group]]\nname = \"services\"\ntimeout_ms = 1500\nremotes = [\n  \
             {{ name = \"billing\", url = \"{}\", token_file = \".strata/a.token\" }},\n  \
             {{ name = \"orders\", url = \"{}\", token_env = \"STRATA_TOKEN_ORDERS\" }},\n  \
             {{ name = \"silent\", url = \"{silent_url}\", token_file = \".strata/a.token\" }},\n]\n\n\
             [[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\n",
            srv_a.url, srv_b.url
        ),
    );
    let run = |args: &[&str]| {
        let output = crate::harness::strata_command(client.root(), args)
            .env("STRATA_TOKEN_ORDERS", "e2e-token-0123456789abcdef")
            .output()
            .unwrap();
        crate::harness::Run::new(args, output)
    };
    let status = run(&["fleet", "status", "--json"]).code(3).json();
    assert_eq!(status["counts"]["pending"], 2, "{status}");
    assert_eq!(status["counts"]["unreachable"], 1, "{status}");
    assert_eq!(status["targets"][0]["pending"].as_array().unwrap().len(), 3);
    assert!(
        status["targets"][2]["problems"][0]
            .as_str()
            .unwrap()
            .contains("no answer within 1500 ms"),
        "{status}"
    );

    let migrated = run(&["fleet", "migrate", "--json", "-v"]).code(1);
    let report = migrated.json();
    assert_eq!(outcome_of(&report, "billing"), "applied");
    assert_eq!(outcome_of(&report, "orders"), "applied");
    assert_eq!(outcome_of(&report, "silent"), "failed");
    assert_eq!(
        report["stages"][0]["targets"][0]["applied"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Each server's progress, streamed into the fleet's lines.
    assert!(
        migrated
            .stderr
            .contains("billing: apply app/20260103T000000Z-tags"),
        "{}",
        migrated.stderr
    );
    assert!(
        migrated
            .stderr
            .contains("orders: apply app/20260103T000000Z-tags"),
        "{}",
        migrated.stderr
    );
    // The servers' own databases hold the chain, each step once, with a backup each.
    for p in [&a, &b] {
        assert_eq!(
            rows(
                &p.open("app.db"),
                "SELECT name FROM strata_migration ORDER BY stamp"
            ),
            ["people", "strict-names", "tags"]
        );
        assert!(
            std::fs::read_dir(p.path(".strata/backups"))
                .unwrap()
                .count()
                > 0
        );
    }
    let again = run(&["fleet", "migrate", "--json", "--targets", "billing"])
        .ok()
        .json();
    assert_eq!(outcome_of(&again, "billing"), "up-to-date");
    drop((srv_a, srv_b, silent));
}

/// strata.toml with one group whose targets are the rows of `query` on `control`, every
/// stage under `continue`.
fn query_group(p: &Project, control: &str, query: &str) {
    p.write(
        "strata.toml",
        &format!(
            "[[fleet.group]]\nname = \"tenants\"\ncontrol = \"{control}\"\nquery = \"{query}\"\n"
        ),
    );
}

#[test]
fn targets_come_from_the_rows_of_a_query_on_a_control_database() {
    let p = fleet(4);
    strict_names(&p);
    // Three of the four tenants are active; the query names them.
    p.write("control.db", "");
    p.open("control.db")
        .execute_batch(
            "CREATE TABLE tenants (name TEXT, database TEXT, active INTEGER);
             INSERT INTO tenants VALUES ('acme', 'tenants/t00.db', 1), ('globex', 'tenants/t01.db', 1),
                                        ('gone', 'tenants/t02.db', 0), ('initech', 'tenants/t03.db', 1);",
        )
        .unwrap();
    query_group(
        &p,
        "control.db",
        "SELECT name, database FROM tenants WHERE active ORDER BY name",
    );
    let status = p.strata(&["fleet", "status", "--json"]).ok().json();
    let names: Vec<&str> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "globex", "initech"]);
    let report = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(report["counts"]["applied"], 3);
    assert_eq!(applied(&p, 3), ["people", "strict-names", "tags"]);
    assert_eq!(
        rows(&p.open(&tenant(2)), "SELECT count(*) FROM sqlite_master"),
        ["0"],
        "the inactive tenant was touched"
    );
    // The control database was only read.
    assert_eq!(
        rows(&p.open("control.db"), "SELECT count(*) FROM tenants"),
        ["4"]
    );
    // A query whose rows are not a name and a database is refused, naming the row.
    query_group(&p, "control.db", "SELECT name, NULL FROM tenants");
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("row 1 of the fleet's query");
    query_group(&p, "control.db", "SELECT 'a b', database FROM tenants");
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("the target name \"a b\"");
    // At most 100,000 targets: one row more is refused, naming the group, as is a query with
    // no end (the rows past the cap are never read).
    for n in ["100001", "-1"] {
        query_group(
            &p,
            "control.db",
            &format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g LIMIT {n}) \
                 SELECT 'n' || n, 'tenants/t00.db' FROM g"
            ),
        );
        p.strata(&["fleet", "status"])
            .code(2)
            .stderr_has("[[fleet.group]] tenants control: the query gives more than 100000 rows");
    }
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_postgresql_control_database_names_the_targets_read_only() {
    let pg = crate::postgres::Pg::new("fleet_control");
    let mut c = pg.client(false);
    c.batch_execute(
        "CREATE TABLE tenants (name text, database text);
         INSERT INTO tenants VALUES ('acme', 'tenants/t00.db'), ('globex', 'tenants/t01.db');",
    )
    .unwrap();
    let p = fleet(2);
    query_group(
        &p,
        &pg.url(),
        "SELECT name, database FROM tenants ORDER BY name",
    );
    let run = p.strata(&["fleet", "migrate", "--json"]).ok();
    pg.hides_password(&run);
    assert_eq!(run.json()["counts"]["applied"], 2);
    assert_eq!(applied(&p, 1), ["people"]);
    // One statement, read-only: a query that writes is refused by the server.
    query_group(
        &p,
        &pg.url(),
        "WITH gone AS (DELETE FROM tenants RETURNING name, database) SELECT * FROM gone",
    );
    let run = p.strata(&["fleet", "status"]).code(1);
    assert!(run.stderr.contains("read-only"), "{}", run.stderr);
    assert_eq!(pg.rows(false, "SELECT count(*) FROM tenants"), ["2"]);
}

/// attack5 #6: a control row that names the control database itself through the group's
/// `{name}` template, in any spelling of its server (`localhost` for `127.0.0.1`, another
/// group naming it by URL), is refused before anything runs, naming the row; the control
/// database is never migrated.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_postgresql_control_database_is_never_its_own_target() {
    let pg = crate::postgres::Pg::new("fleet_control_self");
    let mut c = pg.client(false);
    c.batch_execute(&format!(
        "CREATE TABLE tenants (name text, database text);
         INSERT INTO tenants VALUES ('ctl', '{}');",
        pg.name
    ))
    .unwrap();
    let p = fleet(0);
    let template = pg.url().replace(&format!("/{}", pg.name), "/{name}");
    // The server's port, and another that forwards to it (the server shows one database).
    let port = pg
        .url()
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let forwarded = crate::attack4_pg::forward(port.parse().unwrap());
    for url in [
        template.clone(),
        template.replace("127.0.0.1", "localhost"),
        template.replace(&format!(":{port}/"), &format!(":{forwarded}/")),
    ] {
        p.write(
            "strata.toml",
            &format!(
                "db = \"{}\"\n[[fleet.group]]\nname = \"tenants\"\n\
                 control = \"{}\"\nquery = \"SELECT name, database FROM tenants\"\n\
                 url = \"{url}\"\n",
                pg.url(),
                pg.url()
            ),
        );
        let run = p
            .strata(&["fleet", "migrate"])
            .code(2)
            .stderr_has("the fleet target ctl of [[fleet.group]] tenants")
            .stderr_has("control database");
        pg.hides_password(&run);
    }
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'strata'"
        ),
        ["0"],
        "the control database was migrated"
    );
    assert_eq!(
        pg.rows(false, "SELECT to_regclass('people') IS NULL"),
        ["t"]
    );
}

/// A control table is application data: a row that gives a PostgreSQL URL (any host, port,
/// user, database, which the operator's PGPASSWORD would go to) is refused before anything is
/// contacted, unless the group sets `allow_any_url`; with the group's `url` template a row
/// names only a database.
#[test]
fn a_control_row_picks_no_postgresql_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = fleet(1);
    p.write("control.db", "");
    p.open("control.db")
        .execute_batch(&format!(
            "CREATE TABLE tenants (name TEXT, database TEXT);
             INSERT INTO tenants VALUES ('signup42', 'postgres://app@127.0.0.1:{port}/x');"
        ))
        .unwrap();
    let group = "[[fleet.group]]\nname = \"tenants\"\ncontrol = \"control.db\"\n\
                 query = \"SELECT name, database FROM tenants\"\n";
    p.write("strata.toml", group);
    let run = p
        .strata(&["fleet", "status"])
        .code(2)
        .stderr_has("the row \"signup42\"")
        .stderr_has("allow_any_url");
    assert!(!run.stderr.contains("UNREACHABLE"), "{}", run.stderr);
    // With the group's server named in `url`, a row gives a database name, nothing else.
    p.write(
        "strata.toml",
        &format!("{group}url = \"postgres://app@127.0.0.1:{port}/tenant_{{name}}\"\n"),
    );
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("never a server or a user");
    assert!(
        listener.accept().is_err(),
        "a row's server was contacted before the row was refused"
    );
    // A url template in a query group needs {name}.
    p.write(
        "strata.toml",
        &format!("{group}url = \"postgres://app@127.0.0.1:{port}/tenant\"\n"),
    );
    p.strata(&["fleet", "status"]).code(2).stderr_has("{name}");
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_control_row_names_a_database_on_the_group_s_server() {
    let pg = crate::postgres::Pg::new("fleet_rows");
    let (base, _) = pg
        .url()
        .rsplit_once('/')
        .map(|(b, d)| (b.to_string(), d.to_string()))
        .unwrap();
    let p = Project::empty();
    p.write(
        "migrations/app/20260101T000000Z-people/do.sql",
        "CREATE TABLE people (id bigint PRIMARY KEY);\n",
    );
    p.write("control.db", "");
    p.open("control.db")
        .execute_batch(&format!(
            "CREATE TABLE tenants (name TEXT, database TEXT);
             INSERT INTO tenants VALUES ('acme', '{}');",
            pg.name
        ))
        .unwrap();
    let group = format!(
        "db = \"{}\"\n\n[[fleet.group]]\nname = \"tenants\"\ncontrol = \"control.db\"\n\
         query = \"SELECT name, database FROM tenants\"\n",
        pg.url()
    );
    p.write(
        "strata.toml",
        &format!("{group}url = \"{base}/{{name}}\"\n"),
    );
    let run = p.strata(&["fleet", "migrate", "--json"]).ok();
    pg.hides_password(&run);
    assert_eq!(run.json()["counts"]["applied"], 1);
    assert_eq!(
        pg.rows(false, "SELECT count(*) FROM strata.strata_migration"),
        ["1"]
    );
    // A whole URL in a row, once the group allows it.
    p.open("control.db")
        .execute_batch(&format!("UPDATE tenants SET database = '{}'", pg.url()))
        .unwrap();
    p.write("strata.toml", &group);
    p.strata(&["fleet", "status"])
        .code(2)
        .stderr_has("allow_any_url");
    p.write("strata.toml", &format!("{group}allow_any_url = true\n"));
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("up-to-date 1");
}

#[test]
fn fleet_restore_puts_one_stage_back_from_the_backups_of_that_run() {
    let n = 4;
    let p = staged_fleet(
        n,
        &[],
        "[[fleet.stage]]\nname = \"canary\"\ntargets = [\"t00\"]\n\n\
         [[fleet.stage]]\nname = \"everyone\"\n",
    );
    p.strata(&["fleet", "migrate", "--report", "run.json"]).ok();
    for i in 0..n {
        applied_once(&p, i);
    }
    // The canary goes back to where it was before the run; the others stay migrated.
    let canary = p
        .strata(&["fleet", "restore", "--stage", "canary", "--json"])
        .ok()
        .json();
    assert_eq!(canary["counts"]["restored"], 1, "{canary}");
    assert_eq!(applied(&p, 0), ["people"]);
    assert_eq!(
        rows(&p.open(&tenant(0)), "SELECT name FROM people"),
        ["Grace"]
    );
    applied_once(&p, 1);

    // A tenant whose rows changed since the run is refused without --yes, the others put back.
    p.open(&tenant(2))
        .execute_batch("UPDATE people SET name = 'Changed'")
        .unwrap();
    let run = p.strata(&[
        "fleet", "restore", "--stage", "everyone", "--run", "run.json",
    ]);
    let run = run.code(3).stdout_has("t02");
    assert!(run.stdout.contains("REFUSED"), "{}", run.stdout);
    // The text says why, not only that it was refused (as --json does).
    assert!(
        run.stdout.contains("changed outside strata"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("--yes"), "{}", run.stdout);
    // And which table's rows differ.
    assert!(run.stdout.contains("the rows of people"), "{}", run.stdout);
    assert_eq!(applied(&p, 1), ["people"]);
    assert_eq!(applied(&p, 3), ["people"]);
    assert_eq!(applied(&p, 2).len(), 3, "the changed tenant was put back");
    p.strata(&[
        "fleet", "restore", "--stage", "everyone", "--run", "run.json", "--yes",
    ])
    .ok();
    assert_eq!(applied(&p, 2), ["people"]);
    // Nothing lost: the next run gives them the chain again.
    let again = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(again["counts"]["applied"], n);
    p.strata(&["fleet", "restore", "--stage", "nope"])
        .code(2)
        .stderr_has("no stage \"nope\"");
}

#[test]
fn on_a_terminal_a_bar_shows_the_stage_and_the_targets_running_and_failures_above_it() {
    let n = 6;
    let p = staged_fleet(
        n,
        &[2],
        "[[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\nparallel = 2\n",
    );
    // `script` gives the run a terminal; its output is what the terminal got.
    let exe = env!("CARGO_BIN_EXE_strata");
    let output = std::process::Command::new("script")
        .args(["-qec", &format!("{exe} fleet migrate"), "/dev/null"])
        .current_dir(p.root())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("this test needs `script` (util-linux) for a terminal");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(screen.contains("stage all (2 at a time) ["), "{screen}");
    assert!(screen.contains("/6"), "{screen}");
    assert!(
        screen.contains("t02 FAILED at app/20260102T000000Z-strict-names"),
        "{screen}"
    );
    // Off a terminal the same run writes plain lines, no bar.
    let plain = p.strata(&["fleet", "migrate"]).code(1);
    assert!(!plain.stderr.contains('\u{1b}'), "{}", plain.stderr);
    assert!(plain.stderr.contains("t02 FAILED"), "{}", plain.stderr);
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

#[test]
fn control_characters_in_a_failure_keep_the_junit_report_well_formed_and_the_terminal_clean() {
    let p = fleet(2);
    // SQLite puts the constraint's name, controls and markup included, in its error.
    let name = "bad\u{1b}[2J\u{7}\u{c}\n[2/2] b applied ]]> <x>";
    p.write(
        &format!("{PEOPLE}/do.sql"),
        &format!(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, \
             CONSTRAINT \"{name}\" CHECK (id > 0));\n\
             INSERT INTO people SELECT 0, 'x' WHERE (SELECT count(*) FROM sqlite_master \
             WHERE name = 'marker') > 0;\n"
        ),
    );
    std::fs::remove_dir_all(p.path(&format!("{PEOPLE}/test-data"))).unwrap();
    for i in 0..2 {
        p.open(&tenant(i))
            .execute_batch("CREATE TABLE marker (x);")
            .unwrap();
    }
    let run = p
        .strata(&[
            "fleet",
            "migrate",
            "--targets",
            "tenants/*.db",
            "--junit",
            "fleet.xml",
        ])
        .code(1);
    let junit = std::fs::read_to_string(p.path("fleet.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("{e}: {junit}"));
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap_or_else(|| panic!("no failure in {junit}"));
    let message = failure.attribute("message").unwrap_or_default().to_string()
        + failure.text().unwrap_or_default();
    assert!(message.contains("\\u{1b}[2J"), "{junit}");
    assert!(message.contains("]]> <x>"), "{junit}");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(['\u{1b}', '\u{7}', '\u{c}']), "{text:?}");
    }
    assert!(run.stderr.contains("t00 FAILED"), "{}", run.stderr);
}

/// strata.toml with one group of one remote `url`, and `extra` lines in the group.
fn one_remote(p: &Project, url: &str, extra: &str) {
    p.write(
        "strata.toml",
        &format!(
            "[[fleet.group]]\nname = \"services\"\ntimeout_ms = 1000\n{extra}remotes = [\n  \
             {{ name = \"billing\", url = \"{url}\", token_file = \".strata/a.token\" }},\n]\n"
        ),
    );
}

#[test]
fn a_remote_token_is_not_sent_in_clear_text_off_loopback_unless_the_group_allows_it() {
    let client = Project::empty();
    crate::remote::write_token(&client, ".strata/a.token", "e2e-token-0123456789abcdef");
    // An address of TEST-NET-1: refused before anything is sent.
    one_remote(&client, "http://192.0.2.1:7433", "");
    for command in ["status", "migrate"] {
        client
            .strata(&["fleet", command])
            .code(2)
            .stderr_has("http://192.0.2.1:7433 is not loopback")
            .stderr_has("allow_insecure = true");
    }
    // The group's consent alone is strata.toml's, which a checkout writes: refused too.
    one_remote(&client, "http://192.0.2.1:7433", "allow_insecure = true\n");
    client
        .strata(&["fleet", "status"])
        .code(2)
        .stderr_has("strata.toml alone cannot grant")
        .stderr_has("pass --allow-insecure");
    // Confirmed on the command line it is tried (and, with nothing there, reported
    // unreachable within the timeout).
    let status = client
        .strata(&["fleet", "status", "--json", "--allow-insecure"])
        .code(3)
        .json();
    assert_eq!(status["counts"]["unreachable"], 1, "{status}");
    // Whatever the spelling: a bare HOST:PORT is clear text (refused off loopback), and a
    // scheme the client would also speak clear text to (grpc://, h2c://) is not accepted at
    // all, not even on loopback.
    one_remote(&client, "192.0.2.1:7433", "");
    client
        .strata(&["fleet", "status"])
        .code(2)
        .stderr_has("http://192.0.2.1:7433 is not loopback and not https");
    for url in [
        "grpc://192.0.2.1:7433",
        "h2c://192.0.2.1:7433",
        "GRPC://127.0.0.1:7433",
    ] {
        one_remote(&client, url, "");
        client
            .strata(&["fleet", "status"])
            .code(2)
            .stderr_has("is not one strata speaks");
    }
    // https is not refused for it (here it wants the server's CA, --tls-ca), in any case.
    one_remote(&client, "HTTPS://192.0.2.1:7433", "");
    client
        .strata(&["fleet", "status"])
        .code(3)
        .stdout_has("--tls-ca FILE");
    one_remote(&client, "https://192.0.2.1:7433", "");
    client
        .strata(&["fleet", "status"])
        .code(3)
        .stdout_has("--tls-ca FILE");
}

#[test]
fn a_checkout_cannot_choose_which_secret_is_sent_as_a_remote_token() {
    use std::os::unix::fs::PermissionsExt as _;
    // A listener on loopback that would take the token: nothing may connect to it.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let url = format!("http://{}", trap.local_addr().unwrap());
    let client = Project::empty();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("git-credentials");
    std::fs::write(&secret, "https://alice:ghp_SECRET@github.com").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let remote = |source: &str| {
        client.write(
            "strata.toml",
            &format!(
                "[[fleet.group]]\nname = \"svc\"\nremotes = [\n  \
                 {{ name = \"billing\", url = \"{url}\", {source} }},\n]\n"
            ),
        );
    };
    let refused = |source: &str, why: &str| {
        remote(source);
        for command in ["status", "migrate"] {
            let output = crate::harness::strata_command(client.root(), &["fleet", command])
                .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/EXAMPLEKEY")
                .env("STRATA_DB", "postgres://u:PASSWORD@db/x")
                .output()
                .unwrap();
            crate::harness::Run::new(&["fleet", command], output)
                .code(2)
                .stderr_has(why);
        }
    };
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "STRATA_DB",
        "STRATA_TOKEN_",
        "STRATA_TOKEN_A-B",
    ] {
        refused(&format!("token_env = \"{var}\""), "STRATA_TOKEN_*");
    }
    let shown = secret.display().to_string();
    for file in [
        shown.as_str(),
        "../git-credentials",
        ".strata/../x",
        "secrets/a.token",
    ] {
        refused(&format!("token_file = \"{file}\""), "under .strata/");
    }
    // A link inside .strata/ to a private file elsewhere.
    std::fs::create_dir_all(client.path(".strata")).unwrap();
    std::os::unix::fs::symlink(&secret, client.path(".strata/a.token")).unwrap();
    refused("token_file = \".strata/a.token\"", "is a symbolic link");
    // .strata itself a link to a folder elsewhere.
    std::fs::remove_dir_all(client.path(".strata")).unwrap();
    std::os::unix::fs::symlink(outside.path(), client.path(".strata")).unwrap();
    refused(
        "token_file = \".strata/git-credentials\"",
        "is a symbolic link",
    );
    assert!(
        trap.accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a refused remote was connected to"
    );
}

#[test]
fn a_password_in_a_remote_url_is_refused_and_written_nowhere() {
    let (_served, srv) = served_tenant();
    let client = Project::empty();
    crate::remote::write_token(&client, ".strata/a.token", "e2e-token-0123456789abcdef");
    let url = srv
        .url
        .replacen("http://", "http://admin:PASSW0RDINURL@", 1);
    one_remote(&client, &url, "");
    for args in [
        &["fleet", "status", "--json"][..],
        &["fleet", "migrate", "--json", "--report", "report.json"],
    ] {
        let run = client
            .strata(args)
            .code(2)
            .stderr_has("its url holds a user or password");
        assert!(!run.stdout.contains("PASSW0RD"), "{}", run.stdout);
        assert!(!run.stderr.contains("PASSW0RD"), "{}", run.stderr);
        assert!(!run.stderr.contains("   "), "{:?}", run.stderr);
    }
    assert!(!client.path("report.json").exists());
    assert!(!client.path(".strata/fleet/last-run.json").exists());
    drop(srv);
}

#[test]
fn a_query_row_or_a_group_cannot_name_a_file_outside_the_project_or_inside_dot_strata() {
    let p = fleet(1);
    p.strata(&["fleet", "migrate", "--targets", "tenants/*.db"])
        .ok();
    let backup = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|x| x == "db"))
        .expect("a backup of t00");
    let backup_name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let before = std::fs::read(&backup).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.db");
    std::fs::write(&victim, "").unwrap();
    strict_names(&p);
    // A symlink and a hard link to the backup among the tenants.
    std::os::unix::fs::symlink(&backup, p.path("tenants/soft.db")).unwrap();
    std::fs::hard_link(&backup, p.path("tenants/hard.db")).unwrap();
    p.write("control.db", "");
    let rows_of = |database: &str| {
        p.open("control.db")
            .execute_batch(&format!(
                "DROP TABLE IF EXISTS tenants; CREATE TABLE tenants (name TEXT, database TEXT);
                 INSERT INTO tenants VALUES ('acme', 'tenants/t00.db'), ('x', '{database}');"
            ))
            .unwrap();
    };
    query_group(&p, "control.db", "SELECT name, database FROM tenants");
    let escapes = [
        victim.to_string_lossy().into_owned(),
        "../victim.db".to_string(),
        "tenants/../../victim.db".to_string(),
    ];
    for database in &escapes {
        rows_of(database);
        for command in ["status", "migrate"] {
            p.strata(&["fleet", command])
                .code(2)
                .stderr_has("is outside the project's folder");
        }
    }
    for database in [
        format!(".strata/backups/{backup_name}"),
        format!("./.strata/backups/{backup_name}"),
        format!(".strata//backups/{backup_name}"),
        "tenants/soft.db".to_string(),
        "tenants/hard.db".to_string(),
        ".strata/new.db".to_string(),
    ] {
        rows_of(&database);
        for command in ["status", "migrate"] {
            p.strata(&["fleet", command])
                .code(2)
                .stderr_has("strata's own folder");
        }
    }
    // Nor one of the project's own files: an empty file of the migrations tree would become a
    // database (and the tree would no longer read), and so would strata.toml or the control
    // database itself.
    let migration = std::fs::read_dir(p.path("migrations/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .min()
        .unwrap();
    p.write(&format!("migrations/app/{migration}/undo.sql"), "");
    // Hard links too, which no path comparison sees.
    std::fs::hard_link(
        p.path(&format!("migrations/app/{migration}/undo.sql")),
        p.path("tenants/linked-undo.db"),
    )
    .unwrap();
    std::fs::hard_link(p.path("control.db"), p.path("tenants/linked-control.db")).unwrap();
    for database in [
        "tenants/linked-undo.db".to_string(),
        "tenants/linked-control.db".to_string(),
        format!("migrations/app/{migration}/undo.sql"),
        format!("./migrations//app/{migration}/undo.sql"),
        "strata.toml".to_string(),
        "control.db".to_string(),
    ] {
        rows_of(&database);
        for command in ["status", "migrate"] {
            p.strata(&["fleet", command])
                .code(2)
                .stderr_has("one of the project's own files");
        }
    }
    assert_eq!(
        std::fs::read(p.path(&format!("migrations/app/{migration}/undo.sql"))).unwrap(),
        b""
    );
    std::fs::remove_file(p.path(&format!("migrations/app/{migration}/undo.sql"))).unwrap();
    std::fs::remove_file(p.path("tenants/linked-undo.db")).unwrap();
    std::fs::remove_file(p.path("tenants/linked-control.db")).unwrap();
    // The same for a group's list of files and its glob, and for --targets.
    for group in [
        format!("databases = [\"{}\"]", victim.display()),
        "databases = [\"tenants/../../victim.db\"]".to_string(),
        "glob = \"../*.db\"".to_string(),
    ] {
        p.write(
            "strata.toml",
            &format!("[[fleet.group]]\nname = \"g\"\n{group}\n"),
        );
        p.strata(&["fleet", "status"])
            .code(2)
            .stderr_has("is outside the project's folder");
    }
    for group in [
        format!("databases = [\".strata/backups/{backup_name}\"]"),
        "glob = \".strata/backups/*.db\"".to_string(),
        "glob = \"tenants/*.db\"".to_string(),
    ] {
        p.write(
            "strata.toml",
            &format!("[[fleet.group]]\nname = \"g\"\n{group}\n"),
        );
        p.strata(&["fleet", "migrate"])
            .code(2)
            .stderr_has("strata's own folder");
    }
    p.strata(&["fleet", "migrate", "--targets", ".strata/backups/*.db"])
        .code(2)
        .stderr_has("strata's own folder");
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        before,
        "the backup changed"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"",
        "the outside file changed"
    );
    // A group that opts in may name files outside the project.
    std::fs::remove_file(p.path("tenants/soft.db")).unwrap();
    std::fs::remove_file(p.path("tenants/hard.db")).unwrap();
    p.write(
        "strata.toml",
        &format!(
            "[[fleet.group]]\nname = \"g\"\nallow_outside = true\ndatabases = [\"{}\"]\n",
            victim.display()
        ),
    );
    let report = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(outcome_of(&report, "victim"), "applied", "{report}");
}

/// A symbolic link committed in a group's folder is followed by SQLite: a glob, a group's
/// list or a control row reaching a file outside the project through one (the file's own link,
/// a folder's, or a dangling one SQLite would create the file through) is refused, naming the
/// link, unless the group sets allow_outside.
#[test]
fn a_link_among_a_groups_files_cannot_lead_outside_the_project() {
    let p = fleet(1);
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious.sqlite");
    rusqlite::Connection::open(&precious)
        .unwrap()
        .execute_batch("CREATE TABLE bookmarks (u TEXT);")
        .unwrap();
    std::os::unix::fs::symlink(&precious, p.path("tenants/out.db")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("new.db"), p.path("dangling.db")).unwrap();
    let group = |lines: &str| {
        p.write(
            "strata.toml",
            &format!("[[fleet.group]]\nname = \"g\"\n{lines}\n"),
        );
    };
    for (lines, link) in [
        ("glob = \"tenants/*.db\"", "tenants/out.db"),
        (
            "databases = [\"elsewhere/precious.sqlite\"]",
            "elsewhere/precious.sqlite",
        ),
        ("databases = [\"dangling.db\"]", "dangling.db"),
    ] {
        group(lines);
        for command in ["status", "migrate"] {
            p.strata(&["fleet", command])
                .code(2)
                .stderr_has(format!("{link} leads outside the project's folder"))
                .stderr_has("allow_outside = true");
        }
    }
    p.write("control.db", "");
    p.open("control.db")
        .execute_batch(
            "CREATE TABLE tenants (name TEXT, database TEXT);
             INSERT INTO tenants VALUES ('acme', 'tenants/t00.db'), ('x', 'tenants/out.db');",
        )
        .unwrap();
    query_group(&p, "control.db", "SELECT name, database FROM tenants");
    p.strata(&["fleet", "migrate"])
        .code(2)
        .stderr_has("tenants/out.db leads outside the project's folder");
    assert!(!outside.path().join("new.db").exists());
    let kept = rusqlite::Connection::open(&precious)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'bookmarks'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(kept, 1, "the file outside the project was migrated");
    // The group's opt-in lets the link through.
    group("allow_outside = true\nglob = \"tenants/*.db\"");
    let report = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(outcome_of(&report, "out"), "applied", "{report}");
}

/// A served project whose one step counts to `n` (a while, for large `n`), and a client
/// project whose one group lists it with `timeout_ms`.
fn slow_remote(n: u64, timeout_ms: u64) -> (Project, crate::remote::Server, Project) {
    let server = Project::empty();
    server.write("strata.toml", "db = \"app.db\"\n").write(
        "migrations/app/20260101T000000Z-slow/do.sql",
        &format!(
            "CREATE TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
             WHERE x < {n}) SELECT count(*) AS n FROM c;\n"
        ),
    );
    let srv = crate::remote::Server::start(&server, &[]);
    let client = Project::empty();
    crate::remote::write_token(&client, ".strata/a.token", crate::remote::TOKEN);
    one_remote(&client, &srv.url, "");
    let toml = std::fs::read_to_string(client.path("strata.toml")).unwrap();
    client.write(
        "strata.toml",
        &toml.replace("timeout_ms = 1000", &format!("timeout_ms = {timeout_ms}")),
    );
    (server, srv, client)
}

#[test]
fn a_remote_that_stops_answering_mid_migrate_fails_its_target_instead_of_holding_the_fleet() {
    use std::io::BufRead as _;
    // A step that keeps the server busy long enough to be paused in.
    let (_server, srv, client) = slow_remote(200_000_000, 1000);
    let mut fleet = crate::harness::strata_command(
        client.root(),
        &["fleet", "migrate", "--no-rehearsal", "-v", "--json"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = fleet.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    // Once the server reports its run begun, it is paused (a stopped VM, a partition).
    let mut stderr = std::io::BufReader::new(fleet.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
        if line.contains("billing:") && line.contains("started") {
            break;
        }
    }
    crate::remote::signal(srv.pid(), "STOP");
    // The fleet ends by itself (the limit only keeps a broken build from hanging the suite).
    let code = crate::remote::wait(&mut fleet, std::time::Duration::from_secs(300));
    crate::remote::signal(srv.pid(), "CONT");
    assert_eq!(code, 1, "{seen}");
    let report: serde_json::Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(outcome_of(&report, "billing"), "failed", "{report}");
    let error = report["stages"][0]["targets"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("stopped answering"), "{report}");
    drop(srv);
}

#[test]
fn a_remote_whose_step_runs_longer_than_the_timeout_is_not_cut_off() {
    // Keepalive pings every 100 ms, each to be answered within 100 ms: the server answers
    // them while its step runs, however long it takes.
    let (server, srv, client) = slow_remote(5_000_000, 100);
    let report = client
        .strata(&["fleet", "migrate", "--no-rehearsal", "--json"])
        .ok()
        .json();
    assert_eq!(outcome_of(&report, "billing"), "applied", "{report}");
    assert_eq!(rows(&server.open("app.db"), "SELECT n FROM t"), ["5000000"]);
    drop(srv);
}

/// Drift is told target by target, though targets with one schema share one check: two
/// tenants changed the same way outside strata and a third another way are each named with
/// their own file and change; the rest are up to date, and `fleet migrate` applies the next
/// migrations to them only.
#[test]
fn drifted_tenants_are_each_named_with_their_own_file_and_the_rest_migrate() {
    let n = 9;
    let p = fleet(n);
    // The first migration with its snapshot, then on every tenant.
    p.strata(&["migrate", "--write-snapshots", "-q"]).ok();
    assert!(p.path(&format!("{PEOPLE}/schema.sql")).is_file());
    p.strata(&["fleet", "migrate", "--targets", "tenants/*.db", "-q"])
        .ok();
    let drift = |i: usize, sql: &str| p.open(&tenant(i)).execute_batch(sql).unwrap();
    drift(2, "ALTER TABLE people ADD COLUMN secret TEXT");
    drift(5, "ALTER TABLE people ADD COLUMN secret TEXT");
    drift(6, "ALTER TABLE people ADD COLUMN other INTEGER");
    let drifted = [2, 5, 6];
    let status = p
        .strata(&["fleet", "status", "--targets", "tenants/*.db", "--json"])
        .code(3)
        .json();
    assert_eq!(status["counts"]["drifted"], 3);
    assert_eq!(status["counts"]["up-to-date"], n - 3);
    let problem = |i: usize| {
        status["targets"][i]["problems"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    for i in 0..n {
        let state = if drifted.contains(&i) {
            "drifted"
        } else {
            "up-to-date"
        };
        assert_eq!(status["targets"][i]["state"], state, "t{i:02}");
    }
    for (i, change, not) in [
        (2, "secret", "other"),
        (5, "secret", "other"),
        (6, "other", "secret"),
    ] {
        let text = problem(i);
        assert!(text.contains(&format!("t{i:02}.db")), "{text}");
        assert!(text.contains(change) && !text.contains(not), "{text}");
        for j in drifted.iter().filter(|&&j| j != i) {
            assert!(!text.contains(&format!("t{j:02}.db")), "{text}");
        }
    }

    // The next migrations go to the tenants that did not drift, under `continue`.
    strict_names(&p);
    p.write(
        "strata.toml",
        "[[fleet.stage]]\nname = \"all\"\non_failure = \"continue\"\n\n\
         [[fleet.group]]\nname = \"tenants\"\nglob = \"tenants/*.db\"\n",
    );
    let report = p
        .strata(&["fleet", "migrate", "--no-rehearsal", "--json"])
        .code(3)
        .json();
    for i in 0..n {
        let expected = if drifted.contains(&i) {
            "refused"
        } else {
            "applied"
        };
        assert_eq!(
            outcome_of(&report, &format!("t{i:02}")),
            expected,
            "t{i:02}"
        );
        let tags = rows(
            &p.open(&tenant(i)),
            "SELECT count(*) FROM sqlite_master WHERE name = 'tags'",
        );
        assert_eq!(
            tags,
            [if drifted.contains(&i) { "0" } else { "1" }],
            "t{i:02}"
        );
    }
}
