//! libpq's habits: what a `postgres://` URL leaves out comes from the service file, then the
//! `PG*` variables (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`), and
//! `DATABASE_URL` names the database when strata.toml does not, as dbmate and sqlx read it.

use crate::harness::{Project, Run, strata_command};
use crate::postgres::Pg;

/// The parts of the test server's URL: host, port, user, password.
fn parts(pg: &Pg) -> (String, String, String, String) {
    let server = pg.server(); // host:port/dbname
    let (authority, _) = server.split_once('/').unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    let admin = std::env::var("STRATA_TEST_POSTGRES").unwrap();
    let user = admin
        .trim_start_matches("postgres://")
        .split([':', '@'])
        .next()
        .unwrap()
        .to_string();
    (host.into(), port.into(), user, pg.password.clone())
}

fn with_env(p: &Project, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = strata_command(p.root(), args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::new(args, cmd.output().unwrap())
}

fn one_table(p: &Project) {
    p.write(
        "migrations/app/20260101T000000Z-zero/do.sql",
        "CREATE TABLE t(id int PRIMARY KEY);",
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn pg_variables_fill_what_the_url_leaves_out() {
    let pg = Pg::new("libpq_env");
    let (host, port, user, password) = parts(&pg);
    let p = Project::empty();
    p.write("strata.toml", "db = \"postgres://\"\n");
    one_table(&p);
    let env = [
        ("PGHOST", host.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", user.as_str()),
        ("PGPASSWORD", password.as_str()),
        ("PGDATABASE", pg.name.as_str()),
    ];
    with_env(&p, &env, &["migrate"]).ok();
    assert_eq!(pg.rows(false, "SELECT count(*) FROM t"), ["0"]);
    // The port alone from PGPORT, with the host in the URL (psql's behaviour).
    p.write(
        "strata.toml",
        &format!("db = \"postgres://{host}/{}\"\n", pg.name),
    );
    with_env(&p, &env[1..], &["status"])
        .ok()
        .stdout_has(format!("{host}:{port}/{}", pg.name));
    // Without PGPORT the URL's host is tried on 5432, where no test server listens.
    let refused = with_env(&p, &env[2..], &["status"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    // PGSSLMODE=require: TLS, verified against PGSSLROOTCERT.
    if let Ok(ca) = std::env::var("STRATA_TEST_POSTGRES_CA") {
        let mut tls = env.to_vec();
        tls.push(("PGSSLMODE", "require"));
        tls.push(("PGSSLROOTCERT", ca.as_str()));
        with_env(&p, &tls, &["status"]).ok();
        tls.pop();
        tls.push(("PGSSLROOTCERT", "/nonexistent/ca.crt"));
        let failed = with_env(&p, &tls, &["status"]);
        assert_ne!(failed.code, 0, "{}", failed.stdout);
        tls.pop();
        tls.pop();
        tls.push(("PGSSLMODE", "sometimes"));
        with_env(&p, &tls, &["status"])
            .code(2)
            .stderr_has("verify-full");
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_service_file_names_the_server_and_the_url_wins_over_it() {
    let pg = Pg::new("libpq_service");
    let (host, port, user, password) = parts(&pg);
    let p = Project::empty();
    let services = p.path("services.conf");
    std::fs::write(
        &services,
        format!(
            "# team services\n[other]\nhost=192.0.2.1\n\n[shop]\nhost={host}\nport={port}\n\
             dbname={}\nuser={user}\n",
            pg.name
        ),
    )
    .unwrap();
    let file = services.to_str().unwrap();
    p.write("strata.toml", "db = \"postgres://?service=shop\"\n");
    one_table(&p);
    let env = [("PGSERVICEFILE", file), ("PGPASSWORD", password.as_str())];
    with_env(&p, &env, &["migrate"]).ok();
    assert_eq!(pg.rows(false, "SELECT count(*) FROM t"), ["0"]);
    // PGSERVICE names it too; a database in the URL wins over the service's.
    p.write("strata.toml", "db = \"postgres:///elsewhere\"\n");
    let mut named = env.to_vec();
    named.push(("PGSERVICE", "shop"));
    with_env(&p, &named, &["status"])
        .ok()
        .stdout_has(format!("{host}:{port}/elsewhere_test"));
    p.write("strata.toml", "db = \"postgres://?service=nope\"\n");
    with_env(&p, &env, &["status"])
        .code(2)
        .stderr_has("\"nope\" is not defined");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn database_url_names_the_database_when_strata_toml_does_not() {
    let pg = Pg::new("libpq_database_url");
    let p = Project::empty();
    one_table(&p);
    let url = pg.url();
    with_env(&p, &[("DATABASE_URL", url.as_str())], &["migrate"]).ok();
    assert_eq!(pg.rows(false, "SELECT count(*) FROM t"), ["0"]);
    assert!(!p.path("app.db").exists());
    // dbmate's SQLite form.
    with_env(&p, &[("DATABASE_URL", "sqlite:tenant.db")], &["migrate"]).ok();
    assert!(p.path("tenant.db").is_file());
    // strata.toml's `db` and STRATA_DB come first.
    p.write("strata.toml", "db = \"mine.db\"\n");
    with_env(&p, &[("DATABASE_URL", url.as_str())], &["migrate"]).ok();
    assert!(p.path("mine.db").is_file());
    std::fs::remove_file(p.path("strata.toml")).unwrap();
    with_env(
        &p,
        &[("DATABASE_URL", url.as_str()), ("STRATA_DB", "env.db")],
        &["migrate"],
    )
    .ok();
    assert!(p.path("env.db").is_file());
    with_env(&p, &[("DATABASE_URL", "mysql://x/y")], &["status"])
        .code(2)
        .stderr_has("DATABASE_URL names a \"mysql\" database");
}

/// A password with an unencoded `@` would have its tail read as the host and shown; the URL is
/// refused without showing any of it.
#[test]
fn a_password_with_an_unencoded_at_sign_is_refused_and_never_shown() {
    let p = Project::empty();
    p.write("migrations/.keep", "");
    for (env, args) in [
        (
            vec![],
            vec!["--db", "postgres://u:SeKr@tPW@127.0.0.1:1/d", "status"],
        ),
        (
            vec![("DATABASE_URL", "postgres://u:SeKr@tPW@127.0.0.1:1/d")],
            vec!["status"],
        ),
    ] {
        let run = with_env(&p, &env, &args).code(2).stderr_has("%40");
        assert!(
            !run.stderr.contains("tPW") && !run.stdout.contains("tPW"),
            "{}",
            run.stderr
        );
    }
}

/// `--help` gives the documented order for the real database: `db` in strata.toml, then
/// `DATABASE_URL`, then app.db.
#[test]
fn the_help_of_db_names_database_url_in_its_place() {
    let run = Project::empty().strata(&["--help"]).ok();
    let flat = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "(default: `db` in strata.toml, else DATABASE_URL, else app.db in the project)"
        ),
        "{}",
        run.stdout
    );
}
