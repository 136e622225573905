//! Calls the server refuses for a missing or wrong token (issue 17, item 5), through the real
//! `strata serve` on 127.0.0.1:0 and raw HTTP/2 requests (the generated client cannot send a
//! body it has not encoded, nor stop after the headers): a refused call writes nothing anywhere
//! (no database, no audit row, no file), is answered before its body is read, holds a small
//! bounded amount of the server's memory, and is reported on the server's stderr rate-limited
//! and counted. Calls with the token still work.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::harness::rows;
use crate::remote::{Served, Server, remote, write_token};

/// Serve options that let one address open the hundreds of connections these tests make, and
/// give each all the time a loaded machine needs to answer, though none of them authenticates
/// (the caps and the timeouts are serve_connections' and attack_pg's subject, not these
/// tests').
const MANY_CONNECTIONS: &[&str] = &[
    "--max-connections",
    "1024",
    "--max-connections-per-peer",
    "1024",
    "--idle-timeout",
    "600",
    "--auth-timeout",
    "600",
];

/// `http://127.0.0.1:PORT` without the scheme.
fn addr(srv: &Server) -> String {
    srv.url.trim_start_matches("http://").to_string()
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A peak resident size of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The headers of a gRPC request to `path` on `addr` (`host:port`), with `token`, if any.
pub fn grpc_request(addr: &str, path: &str, token: Option<&str>) -> http::Request<()> {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(()).unwrap()
}

/// One gRPC call to `path` over its own HTTP/2 connection: headers (with `token`, if any),
/// then `body` (none: the request stays open, its body never sent). Returns the grpc-status
/// of the answer.
async fn raw_call(addr: &str, path: &str, token: Option<&str>, body: Option<Bytes>) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let (answer, mut send) = client
        .send_request(grpc_request(addr, path, token), false)
        .unwrap();
    if let Some(body) = body {
        // Queued by h2 and sent as the server's flow-control window allows.
        let _ = send.send_data(body, true);
    }
    let answer = match tokio::time::timeout(Duration::from_secs(60), answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return format!("the call failed: {e:?}"),
        Err(_) => return "no answer within 60 s".to_string(),
    };
    let status = answer
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    drop(send);
    status.unwrap_or_else(|| {
        format!(
            "http {} without grpc-status in the headers",
            answer.status()
        )
    })
}

/// A gRPC frame of `len` bytes of payload (not a valid message: it is never meant to be read).
fn frame(len: usize) -> Bytes {
    let mut b = Vec::with_capacity(len + 5);
    b.push(0);
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.resize(len + 5, 0x0a);
    Bytes::from(b)
}

/// A runtime with two workers for the raw clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_refused_call_writes_nothing_anywhere_and_is_reported_counted() {
    // No database yet: a refused call must not create one (nor anything else). 300 calls at
    // once from one address: above the default per-peer cap of connections, which is not
    // what this test is about (see attack_pg for it).
    let s = Served::example(|_| {}, MANY_CONNECTIONS);
    let before = files(s.server.root());
    assert!(!s.server.path("app.db").exists());
    s.client
        .strata(&["--remote", &s.srv.url, "status"])
        .code(3)
        .stderr_has("no token");
    write_token(&s.client, "wrong", "a-wrong-token-of-some-length");
    s.client
        .strata(&["--remote", &s.srv.url, "--token-file", "wrong", "migrate"])
        .code(3)
        .stderr_has("wrong token");
    let addr = addr(&s.srv);
    let rt = runtime();
    rt.block_on(async {
        let calls = (0..300).map(|i| {
            let addr = addr.clone();
            let token = (i % 2 == 0).then_some("a-wrong-token-of-some-length");
            async move {
                // A connection reset before the answer is read is tried again on a new
                // connection, at most twice. Seen about once in five loaded runs among these
                // 300 simultaneous connections; the server logs every connection its limits
                // close and logged none in those runs, so it is not strata closing them (the
                // cause is not found). What this test is about holds either way: a reset call
                // is refused and writes nothing, and the retried one is counted.
                let mut status = String::new();
                for _ in 0..3 {
                    status =
                        raw_call(&addr, "/strata.v1.Strata/Migrate", token, Some(frame(64))).await;
                    if !status.contains("ConnectionReset") {
                        break;
                    }
                }
                status
            }
        });
        for status in futures_join(calls).await {
            assert_eq!(
                status,
                "16",
                "UNAUTHENTICATED; the server said:\n{}",
                s.srv.stderr()
            );
        }
    });
    assert_eq!(
        files(s.server.root()),
        before,
        "a refused call created or removed a file"
    );
    assert!(
        !s.server.path("app.db").exists(),
        "a refused call created the database"
    );

    // With the token, calls work; then refusals still leave the audit log alone.
    s.remote(&["migrate", "-q"]).ok();
    let audit = "SELECT count(*) FROM strata_migration_audit";
    let audited = rows(&s.server.open("app.db"), audit);
    rt.block_on(async {
        for _ in 0..50 {
            assert_eq!(
                raw_call(&addr, "/strata.v1.Strata/Status", None, None).await,
                "16"
            );
        }
    });
    s.client
        .strata(&["--remote", &s.srv.url, "--token-file", "wrong", "audit"])
        .code(3);
    assert_eq!(rows(&s.server.open("app.db"), audit), audited);
    assert_eq!(
        rows(
            &s.server.open("app.db"),
            "SELECT count(*) FROM strata_migration_audit WHERE phase = 'serve'"
        ),
        ["0"]
    );
    s.remote(&["status"]).ok().stdout_has("applied");

    // The server's log: the first refusal at once, the rest counted in one line per 10 s.
    let deadline = Instant::now() + Duration::from_secs(25);
    while !s.srv.stderr().contains("calls in the last 10 s") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.srv.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("refused")).collect();
    assert!(
        lines.len() <= 4 && lines.len() >= 2,
        "refusals are rate-limited, not one line per call:\n{log}"
    );
    assert!(
        lines[0].contains("from 127.0.0.1:") && lines[0].contains("no token"),
        "{log}"
    );
    assert!(log.contains("calls in the last 10 s"), "{log}");
    assert!(
        !log.contains("a-wrong-token-of-some-length"),
        "the token is never logged"
    );
    let counted: u64 = lines
        .iter()
        .filter_map(|l| {
            l.split("refused ")
                .nth(1)?
                .split(' ')
                .next()?
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        counted >= 300,
        "the lines count every refusal: {counted}\n{log}"
    );
}

/// Runs the futures concurrently on the runtime, in order of their results.
async fn futures_join<F>(calls: impl Iterator<Item = F>) -> Vec<String>
where
    F: std::future::Future<Output = String> + Send + 'static,
{
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn the_token_is_checked_before_the_body_is_read() {
    let s = Served::migrated();
    let addr = addr(&s.srv);
    let rt = runtime();
    rt.block_on(async {
        // Headers only, the body never sent: answered at once, not after waiting for it.
        let start = Instant::now();
        let status = raw_call(&addr, "/strata.v1.Strata/Status", None, None).await;
        assert_eq!(status, "16");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn many_large_unauthenticated_requests_hold_little_server_memory() {
    let s = Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        MANY_CONNECTIONS,
    );
    let addr = addr(&s.srv);
    let rt = runtime();
    // Warm up with a few authenticated calls, then take the peak so far as the baseline.
    remote(&s.client, &s.srv.url, &["status"]).ok();
    let baseline = peak_rss_kib(s.srv.pid());
    let body = frame(16 * 1024 * 1024 - 5);
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..2 {
            let calls = (0..48).map(|_| {
                let (addr, body) = (addr.clone(), body.clone());
                async move { raw_call(&addr, "/strata.v1.Strata/Migrate", None, Some(body)).await }
            });
            for status in futures_join(calls).await {
                assert_eq!(status, "16", "the server said:\n{}", s.srv.stderr());
            }
        }
    });
    let peak = peak_rss_kib(s.srv.pid());
    eprintln!(
        "96 unauthenticated 16 MiB requests (48 at a time) in {:?}: server peak RSS {} MiB -> {} MiB",
        start.elapsed(),
        baseline / 1024,
        peak / 1024
    );
    assert!(
        peak.saturating_sub(baseline) < 96 * 1024,
        "the server grew from {} MiB to {} MiB",
        baseline / 1024,
        peak / 1024
    );
    // And with the token, the server still answers.
    remote(&s.client, &s.srv.url, &["status"]).ok();
}

#[test]
fn refusals_not_reported_yet_are_reported_when_the_server_stops() {
    let s = Served::migrated();
    write_token(&s.client, "wrong", "a-wrong-token-of-some-length");
    for _ in 0..5 {
        s.client
            .strata(&["--remote", &s.srv.url, "--token-file", "wrong", "status"])
            .code(3);
    }
    let crate::remote::Served { srv, .. } = s;
    // Stopped within the 10 s window: the four refusals after the first are reported now.
    let (code, stderr) = srv.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("refused 4 calls since the last report"),
        "{stderr}"
    );
    assert!(stderr.contains("5 refused since the start"), "{stderr}");
}
