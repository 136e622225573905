//! `strata fleet` over a schema per tenant on one PostgreSQL database: each tenant's schema
//! first on the search path, its bookkeeping in `strata_<schema>`, its own lock, ledger, audit,
//! drift and backup; the database's other schemas (and the other tenants) out of its reach.

use crate::components::{Entry, Op, component};
use crate::harness::Project;
use crate::postgres::{Pg, project};

const PEOPLE: &str = "migrations/app/20260101T000000Z-people";
const STRICT: &str = "migrations/app/20260102T000000Z-strict-names";
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// `pg`'s project with a group of the three tenants' schemas on its database, the `people`
/// migration applied to the database's own `public` schema (which writes its snapshot and
/// gives the tenants a neighbour to leave alone).
fn tenants_project(pg: &Pg) -> Project {
    let p = project(pg);
    p.write(
        "strata.toml",
        &format!(
            "db = \"{url}\"\n\n[[fleet.group]]\nname = \"tenants\"\npostgres = \"{url}\"\n\
             schemas = [\"acme\", \"globex\", \"initech\"]\n",
            url = pg.url()
        ),
    )
    .write(
        &format!("{PEOPLE}/do.sql"),
        "CREATE TABLE people (id bigint PRIMARY KEY, name text);\n",
    )
    .write(
        &format!("{PEOPLE}/test-data/data.json"),
        r#"{"people": [{"id": 1, "name": "Ada"}]}"#,
    );
    p.strata(&["migrate", "--write-snapshots", "-q"]).ok();
    pg.client(false)
        .batch_execute("INSERT INTO public.people VALUES (1, 'public')")
        .unwrap();
    p
}

/// The migrations `schema`'s ledger holds, by name.
fn ledger(pg: &Pg, schema: &str) -> Vec<String> {
    pg.rows(
        false,
        &format!("SELECT name FROM strata_{schema}.strata_migration ORDER BY stamp"),
    )
}

/// The outcome of `name` in a run's report.
fn outcome(report: &serde_json::Value, name: &str) -> String {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["targets"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in {report}"))["outcome"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The backup the first target of the run reported in `report` took.
fn first_backup(p: &Project, report: &str) -> String {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path(report)).unwrap()).unwrap();
    run["stages"][0]["targets"][0]["backup"]
        .as_str()
        .unwrap_or_else(|| panic!("no backup in {run}"))
        .to_string()
}

/// What the database's own schema holds: its rows and its ledger, untouched by the tenants.
fn public_untouched(pg: &Pg) {
    assert_eq!(pg.rows(false, "SELECT name FROM public.people"), ["public"]);
    assert_eq!(
        pg.rows(false, "SELECT name FROM strata.strata_migration"),
        ["people"]
    );
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn each_tenant_schema_gets_the_chain_with_its_own_ledger_drift_failure_and_restore() {
    let pg = Pg::new("fleet_schemas");
    let p = tenants_project(&pg);

    let run = p.strata(&["fleet", "status", "--json"]).ok();
    pg.hides_password(&run);
    let status = run.json();
    assert_eq!(status["counts"]["pending"], 3, "{status}");
    assert_eq!(status["targets"][1]["name"], "globex");
    assert!(
        status["targets"][1]["db"]
            .as_str()
            .unwrap()
            .ends_with("#globex"),
        "{status}"
    );

    p.strata(&["fleet", "plan"])
        .ok()
        .stdout_has("initech")
        .stdout_has("20260101T000000Z-people");
    let run = p.strata(&["fleet", "migrate", "--json"]).ok();
    pg.hides_password(&run);
    let report = run.json();
    assert_eq!(report["counts"]["applied"], 3, "{report}");
    for t in TENANTS {
        assert_eq!(ledger(&pg, t), ["people"], "{t}");
        assert_eq!(
            pg.rows(false, &format!("SELECT count(*) FROM {t}.people")),
            ["0"]
        );
        // Each target's own audit and backup, of its two schemas.
        let audit = pg.rows(
            false,
            &format!("SELECT action FROM strata_{t}.strata_migration_audit ORDER BY id"),
        );
        assert!(audit.contains(&"backup".to_string()), "{t}: {audit:?}");
    }
    public_untouched(&pg);
    // Named as the test database names them, the tenants have not drifted.
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("up-to-date 3");
    // The dump of one tenant is its schema alone, named as the chain's.
    let url = format!("{}#globex", pg.url());
    p.strata(&["dump", "--db", &url])
        .ok()
        .stdout_has("CREATE TABLE public.people");

    // A tenant changed outside strata: it alone has drifted.
    pg.client(false)
        .batch_execute("ALTER TABLE globex.people ADD COLUMN secret text")
        .unwrap();
    let status = p.strata(&["fleet", "status", "--json"]).code(3).json();
    assert_eq!(status["counts"]["drifted"], 1, "{status}");
    assert_eq!(status["targets"][1]["state"], "drifted", "{status}");
    let problem = status["targets"][1]["problems"][0].as_str().unwrap();
    assert!(problem.contains("secret"), "{problem}");
    pg.client(false)
        .batch_execute("ALTER TABLE globex.people DROP COLUMN secret")
        .unwrap();

    // A tenant whose rows break the next step fails alone, rolled back, named.
    let mut c = pg.client(false);
    c.batch_execute(
        "INSERT INTO acme.people VALUES (1, 'Grace'); INSERT INTO globex.people VALUES (1, 'Ada');
         INSERT INTO initech.people VALUES (1, NULL)",
    )
    .unwrap();
    p.write(
        &format!("{STRICT}/do.sql"),
        "ALTER TABLE people ALTER COLUMN name SET NOT NULL;\n",
    );
    p.strata(&["migrate", "--write-snapshots", "-q"]).ok();
    public_untouched_but_strict(&pg);
    let report = p
        .strata(&[
            "fleet",
            "migrate",
            "--json",
            "--parallel",
            "1",
            "--report",
            "run.json",
        ])
        .code(1)
        .json();
    assert_eq!(outcome(&report, "acme"), "applied", "{report}");
    assert_eq!(outcome(&report, "globex"), "applied", "{report}");
    assert_eq!(outcome(&report, "initech"), "failed", "{report}");
    assert_eq!(ledger(&pg, "initech"), ["people"]);
    assert_eq!(ledger(&pg, "acme"), ["people", "strict-names"]);
    p.strata(&["fleet", "status"]).ok().stdout_has("FAILED");

    // The stage goes back from that run's backups: each tenant's two schemas, nothing else. A
    // change in the database's own schema is no tenant's; one in acme's rows is acme's.
    pg.client(false)
        .batch_execute(
            "INSERT INTO public.people VALUES (2, 'after'); \
             UPDATE acme.people SET name = 'Changed'",
        )
        .unwrap();
    let restored = p
        .strata(&["fleet", "restore", "--stage", "all", "--json"])
        .code(3)
        .json();
    assert_eq!(restored["counts"]["restored"], 1, "{restored}");
    assert_eq!(restored["counts"]["refused"], 1, "{restored}");
    // The failed tenant's step was rolled back: it has nothing to go back from.
    assert_eq!(restored["counts"]["no-backup"], 1, "{restored}");
    assert_eq!(ledger(&pg, "globex"), ["people"]);
    assert_eq!(ledger(&pg, "acme"), ["people", "strict-names"]);
    // One tenant alone, by its URL and schema, as `strata restore` puts a database back.
    let backup = &first_backup(&p, "run.json");
    assert!(backup.contains("acme-"), "{backup}");
    let acme = format!("{}#acme", pg.url());
    // Naming the backup is the confirmation, as on any database.
    p.strata(&["restore", backup, "--db", &acme]).ok();
    for t in ["acme", "globex"] {
        assert_eq!(ledger(&pg, t), ["people"], "{t}");
    }
    assert_eq!(
        pg.rows(false, "SELECT name FROM acme.people"),
        ["Grace"],
        "acme's rows came back with it"
    );
    let audit = pg.rows(
        false,
        "SELECT action FROM strata_acme.strata_migration_audit ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(audit, ["restore"], "the restore is in acme's own audit log");
    assert_eq!(
        pg.rows(false, "SELECT name FROM public.people ORDER BY id"),
        ["public", "after"],
        "the database's own schema was left alone"
    );
    // Fixed, the fleet goes on where it stopped.
    pg.client(false)
        .batch_execute("UPDATE initech.people SET name = 'Fixed'")
        .unwrap();
    let again = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(again["counts"]["applied"], 3, "{again}");
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("up-to-date 3");
}

/// The database's own schema after the strict migration: its ledger has both, its rows stay.
fn public_untouched_but_strict(pg: &Pg) {
    assert_eq!(pg.rows(false, "SELECT name FROM public.people"), ["public"]);
    assert_eq!(
        pg.rows(
            false,
            "SELECT name FROM strata.strata_migration ORDER BY stamp"
        ),
        ["people", "strict-names"]
    );
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn two_fleet_runs_at_once_give_each_tenant_schema_the_chain_exactly_once() {
    let pg = Pg::new("fleet_schemas_twice");
    let p = tenants_project(&pg);
    // The tenants as the rows of a table of the database.
    pg.client(false)
        .batch_execute(
            "CREATE TABLE public.tenants (name text, schema_name text); \
             INSERT INTO public.tenants VALUES ('acme', 'acme'), ('globex', 'globex'), \
             ('initech', 'initech'), ('gone', NULL)",
        )
        .unwrap();
    p.write(
        "strata.toml",
        &format!(
            "db = \"{url}\"\n\n[[fleet.group]]\nname = \"tenants\"\npostgres = \"{url}\"\n\
             schemas_query = \"SELECT name, schema_name FROM public.tenants \
             WHERE schema_name IS NOT NULL ORDER BY name\"\n",
            url = pg.url()
        ),
    );
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("3 target(s)")
        .stdout_has("initech");
    let run: Vec<String> = ["fleet", "migrate", "--parallel", "3"]
        .map(String::from)
        .to_vec();
    crate::harness::all_at_once(p.root(), &[run.clone(), run]);
    for t in TENANTS {
        assert_eq!(ledger(&pg, t), ["people"], "{t}");
        let runs = pg.rows(
            false,
            &format!(
                "SELECT count(*) FROM strata_{t}.strata_migration_audit \
                 WHERE phase = 'apply' AND action = 'do.sql' AND outcome = 'ok'"
            ),
        );
        assert_eq!(runs, ["1"], "{t}");
    }
    public_untouched(&pg);
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_component_of_one_tenant_cannot_reach_another_tenant_s_schema_or_bookkeeping() {
    let pg = Pg::new("fleet_schemas_reach");
    let p = tenants_project(&pg);
    p.strata(&["fleet", "migrate", "-q"]).ok();
    pg.client(false)
        .batch_execute(
            "INSERT INTO acme.people VALUES (1, 'acme'); \
             INSERT INTO globex.people VALUES (1, 'globex')",
        )
        .unwrap();
    const REACH: &str = "migrations/app/20260103T000000Z-reach";
    p.write(
        &format!("{REACH}/do.sql"),
        "ALTER TABLE people ADD COLUMN nick text;\n",
    );
    // The migration's component runs `sql`, for the tenant `tenant` alone; its exit code.
    let run = |sql: &str, tenant: &str, code: i32| -> serde_json::Value {
        std::fs::write(
            p.path(&format!("{REACH}/transform.wasm")),
            component(Entry::Transform, &[Op::Execute(sql.into(), vec![])]),
        )
        .unwrap();
        let args = [
            "fleet",
            "migrate",
            "--no-rehearsal",
            "--json",
            "--targets",
            tenant,
        ];
        p.strata(&args).code(code).json()
    };
    // Its own tenant's table is fine (acme's run); for every other tenant, it is another's.
    let report = run("UPDATE acme.people SET nick = 'x'", "globex", 1);
    assert_eq!(outcome(&report, "globex"), "failed", "{report}");
    let error = report.to_string();
    assert!(
        error.contains("acme.people") && error.contains("tenant `globex`"),
        "{error}"
    );
    assert_eq!(
        pg.rows(false, "SELECT name FROM acme.people"),
        ["acme"],
        "acme's rows untouched"
    );
    assert_eq!(ledger(&pg, "globex"), ["people"]);
    // Nor its own bookkeeping, nor strata's, nor another tenant's, nor the database's own.
    for sql in [
        "DELETE FROM strata_globex.strata_migration",
        "DELETE FROM strata_acme.strata_migration",
        "DELETE FROM strata.strata_migration",
        "UPDATE public.people SET name = 'owned'",
    ] {
        let report = run(sql, "globex", 1);
        assert!(
            report.to_string().contains("may not write"),
            "{sql}: {report}"
        );
    }
    assert_eq!(ledger(&pg, "globex"), ["people"]);
    assert_eq!(ledger(&pg, "acme"), ["people"]);
    public_untouched(&pg);
    // The tenant the component's table belongs to runs it.
    let report = run("UPDATE acme.people SET nick = 'x'", "acme", 0);
    assert_eq!(outcome(&report, "acme"), "applied", "{report}");
    assert_eq!(pg.rows(false, "SELECT nick FROM acme.people"), ["x"]);
}

#[test]
fn a_schema_group_is_checked_before_anything_is_contacted() {
    let p = Project::empty();
    for (group, says) in [
        (
            "postgres = \"postgres://u@127.0.0.1:1/app\"\nschemas = [\"Acme\"]",
            "cannot be a tenant's",
        ),
        (
            "postgres = \"postgres://u@127.0.0.1:1/app\"\nschemas = [\"strata_x\"]",
            "cannot be a tenant's",
        ),
        (
            "postgres = \"postgres://u@127.0.0.1:1/app\"",
            "exactly one of `schemas`",
        ),
        ("schemas = [\"acme\"]", "needs exactly one of"),
        (
            "postgres = \"postgres://u@127.0.0.1:1/app\"\nschemas = [\"a\"]\nglob = \"t/*.db\"",
            "needs exactly one of",
        ),
    ] {
        p.write(
            "strata.toml",
            &format!("[[fleet.group]]\nname = \"tenants\"\n{group}\n"),
        );
        p.strata(&["fleet", "status"]).code(2).stderr_has(says);
    }
    p.write("strata.toml", "");
    p.strata(&["status", "--db", "postgres://u@127.0.0.1:1/app#pg_x"])
        .code(2)
        .stderr_has("names a tenant's schema");
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn views_and_cascades_keep_a_component_inside_its_run_s_schemas() {
    let pg = Pg::new("fleet_schemas_scope");
    let p = tenants_project(&pg);
    p.strata(&["fleet", "migrate", "-q"]).ok();
    // The application's own objects across the schemas: a view of acme's over globex's rows,
    // globex's rows deleted by acme's deletes, a view of the database's own over acme's rows.
    pg.client(false)
        .batch_execute(
            "INSERT INTO acme.people VALUES (1, 'acme'); \
             INSERT INTO globex.people VALUES (1, 'globex'); \
             CREATE VIEW acme.led AS SELECT id FROM globex.people; \
             CREATE TABLE globex.refs (pid bigint REFERENCES acme.people ON DELETE CASCADE); \
             INSERT INTO globex.refs VALUES (1); \
             CREATE VIEW public.tv AS SELECT id, name FROM acme.people",
        )
        .unwrap();
    const REACH: &str = "migrations/app/20260103T000000Z-reach";
    p.write(&format!("{REACH}/do.sql"), "SELECT 1;\n");
    let component_runs = |sql: &str| {
        std::fs::write(
            p.path(&format!("{REACH}/transform.wasm")),
            component(Entry::Transform, &[Op::Execute(sql.into(), vec![])]),
        )
        .unwrap();
    };
    // The database's own run: its view reads and writes acme's rows as the owner.
    component_runs("UPDATE public.tv SET name = 'owned'");
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("`tv` reaches `acme.people`")
        .stderr_has("acme.people")
        .stderr_has("scope");
    assert_eq!(pg.rows(false, "SELECT name FROM acme.people"), ["acme"]);
    public_untouched(&pg);
    // Acme's run, without lists: its view reaches globex's rows, its deletes cascade there.
    for sql in ["DELETE FROM led", "DELETE FROM people"] {
        component_runs(sql);
        let args = [
            "fleet",
            "migrate",
            "--no-rehearsal",
            "--json",
            "--targets",
            "acme",
        ];
        let report = p.strata(&args).code(1).json();
        assert_eq!(outcome(&report, "acme"), "failed", "{report}");
        let error = report.to_string();
        assert!(
            error.contains("globex.people")
                && error.contains("globex.refs")
                && error.contains("tenant `acme`"),
            "{sql}: {error}"
        );
    }
    assert_eq!(pg.rows(false, "SELECT name FROM globex.people"), ["globex"]);
    assert_eq!(pg.rows(false, "SELECT pid::text FROM globex.refs"), ["1"]);
    assert_eq!(pg.rows(false, "SELECT name FROM acme.people"), ["acme"]);
    assert_eq!(ledger(&pg, "acme"), ["people"]);
    assert_eq!(ledger(&pg, "globex"), ["people"]);
}

/// The names of `pg`'s views, foreign keys and columns of `public.partners` that the restore
/// test builds on acme: what a tenant's restore must leave as it found it.
fn acme_dependents(pg: &Pg) -> Vec<String> {
    pg.rows(
        false,
        "SELECT 'view ' || viewname FROM pg_views WHERE schemaname = 'public' \
           AND viewname = 'tenant_report' \
         UNION ALL SELECT 'key ' || conname FROM pg_constraint WHERE conname = 'referral_from_acme' \
         UNION ALL SELECT 'column ' || attname FROM pg_attribute \
           WHERE attrelid = 'public.partners'::regclass AND attnum > 0 AND NOT attisdropped \
         UNION ALL SELECT 'tier ' || tier::text FROM public.partners \
         ORDER BY 1",
    )
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_tenant_s_restore_is_refused_while_objects_outside_its_schemas_depend_on_them() {
    let pg = Pg::new("fleet_schemas_dependents");
    let p = tenants_project(&pg);
    p.strata(&["fleet", "migrate", "-q"]).ok();
    // What the database's own schema and another tenant build on acme: a view over its
    // table, a foreign key into it, a column typed with its enum (and its values).
    pg.client(false)
        .batch_execute(
            "INSERT INTO acme.people VALUES (1, 'ada');
             CREATE VIEW public.tenant_report AS SELECT name FROM acme.people;
             CREATE TABLE globex.referrals (id int,
                 from_acme bigint CONSTRAINT referral_from_acme REFERENCES acme.people);
             INSERT INTO globex.referrals VALUES (1, 1);
             CREATE TYPE acme.tier AS ENUM ('free', 'gold');
             CREATE TABLE public.partners (id int, tier acme.tier);
             INSERT INTO public.partners VALUES (1, 'gold');",
        )
        .unwrap();
    p.write(
        "migrations/app/20260103T000000Z-nick/do.sql",
        "ALTER TABLE people ADD COLUMN nick text;\n",
    );
    p.strata(&["fleet", "migrate", "-q", "--report", "run.json"])
        .ok();
    let backup = &first_backup(&p, "run.json");
    assert!(backup.contains("acme-"), "{backup}");
    let before = acme_dependents(&pg);
    assert_eq!(
        before,
        [
            "column id",
            "column tier",
            "key referral_from_acme",
            "tier gold",
            "view tenant_report"
        ]
    );
    let acme_backups = || {
        std::fs::read_dir(p.path(".strata/backups"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("acme-")
            })
            .count()
    };
    let files = acme_backups();

    let acme = format!("{}#acme", pg.url());
    p.strata(&["restore", backup, "--db", &acme])
        .code(3)
        .stderr_has("column tier of table public.partners")
        .stderr_has("constraint referral_from_acme on table globex.referrals")
        .stderr_has("view public.tenant_report")
        .stderr_has("Drop them, or move them");
    let restored = p
        .strata(&["fleet", "restore", "--stage", "all", "--json"])
        .code(3)
        .json();
    assert_eq!(
        restored["counts"]["restored"], 2,
        "globex, initech: {restored}"
    );
    assert_eq!(restored["counts"]["refused"], 1, "acme: {restored}");
    // Nothing changed: not the dependents, not acme, and no backup was taken for it.
    assert_eq!(acme_dependents(&pg), before);
    assert_eq!(ledger(&pg, "acme"), ["people", "nick"]);
    assert_eq!(ledger(&pg, "globex"), ["people"]);
    assert_eq!(ledger(&pg, "initech"), ["people"]);
    assert_eq!(acme_backups(), files, "no backup was taken of acme");

    // Moved out of the way, the restore goes through.
    pg.client(false)
        .batch_execute(
            "DROP VIEW public.tenant_report; DROP TABLE globex.referrals; \
             ALTER TABLE public.partners DROP COLUMN tier;",
        )
        .unwrap();
    p.strata(&["restore", backup, "--db", &acme]).ok();
    assert_eq!(ledger(&pg, "acme"), ["people"]);
    assert_eq!(pg.rows(false, "SELECT name FROM acme.people"), ["ada"]);
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn tenants_named_as_sql_keywords_are_migrated_checked_and_restored() {
    let pg = Pg::new("fleet_schemas_keywords");
    let p = tenants_project(&pg);
    p.write(
        "strata.toml",
        &format!(
            "db = \"{url}\"\n\n[[fleet.group]]\nname = \"tenants\"\npostgres = \"{url}\"\n\
             schemas = [\"user\", \"order\", \"select\", \"current_user\"]\n",
            url = pg.url()
        ),
    );
    let run = p.strata(&["fleet", "migrate", "--json"]).ok().json();
    assert_eq!(run["counts"]["applied"], 4, "{run}");
    for t in ["user", "order", "select", "current_user"] {
        assert_eq!(ledger(&pg, t), ["people"], "{t}");
    }
    assert_eq!(
        pg.rows(false, "SELECT count(*)::text FROM \"user\".people"),
        ["0"],
        "the chain's table is in the tenant's own schema"
    );
    p.strata(&["fleet", "status"])
        .ok()
        .stdout_has("up-to-date 4");
    p.write(
        "migrations/app/20260103T000000Z-nick/do.sql",
        "ALTER TABLE people ADD COLUMN nick text;\n",
    );
    p.strata(&["fleet", "migrate", "-q", "--report", "run.json"])
        .ok();
    assert_eq!(ledger(&pg, "user"), ["people", "nick"]);
    let backup = &first_backup(&p, "run.json");
    assert!(backup.contains("user-"), "{backup}");
    p.strata(&["restore", backup, "--db", &format!("{}#user", pg.url())])
        .ok();
    assert_eq!(ledger(&pg, "user"), ["people"]);
    assert_eq!(ledger(&pg, "order"), ["people", "nick"]);
    p.strata(&["dump", "--db", &format!("{}#order", pg.url())])
        .ok()
        .stdout_has("nick");
}

#[test]
#[ignore = "needs PostgreSQL (STRATA_TEST_POSTGRES)"]
fn a_schemas_query_gives_at_most_100000_targets() {
    let pg = Pg::new("fleet_schemas_cap");
    let p = project(&pg);
    let group = |rows: u32| {
        format!(
            "db = \"{url}\"\n\n[[fleet.group]]\nname = \"many\"\npostgres = \"{url}\"\n\
             schemas_query = \"SELECT 'n' || g, 's' || g FROM generate_series(1, {rows}) g\"\n",
            url = pg.url()
        )
    };
    // One past the cap, and far past it: refused, naming the group, before any target.
    for rows in [100_001, 5_000_000] {
        p.write("strata.toml", &group(rows));
        p.strata(&["fleet", "status"])
            .code(2)
            .stderr_has("[[fleet.group]] many postgres: the query gives more than 100000 rows")
            .stderr_has("split the fleet into several groups");
    }
    // Under it, the rows are the targets.
    p.write("strata.toml", &group(3));
    p.strata(&["fleet", "status", "--json"])
        .ok()
        .stdout_has("\"n3\"");
}
