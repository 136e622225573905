//! Connections `strata serve` must not let clients without the token keep (outside test 2026-12,
//! finding 2), through the real `strata serve` on 127.0.0.1:0 and raw HTTP/2 clients from other
//! loopback addresses (127.0.0.2.., all bound on Linux loopback). The h2 client answers the
//! server's keepalive PINGs and acknowledges its SETTINGS by itself, as every HTTP/2 library
//! does: that is not an authenticated call, and must not keep a connection open.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::attack_pg::sockets;
use crate::refused_calls::{grpc_request, peak_rss_kib, runtime};
use crate::remote::{Served, TOKEN};

/// An HTTP/2 connection from `source` to `addr`: the handle to send requests on, and a task
/// that ends when the connection does (the server closed it).
async fn connect(
    source: &str,
    addr: SocketAddr,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, ended)
}

/// A gRPC request to `path` (with `token`, if any); `body`: the message to send and end the
/// request with, or none (the request stays open, its body never sent). Returns the
/// grpc-status of the answer once it comes, or `None` while it does not.
async fn call(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<Bytes>,
) -> Result<tokio::task::JoinHandle<Option<String>>, h2::Error> {
    let mut client = client.clone().ready().await?;
    let req = grpc_request(&addr.to_string(), path, token);
    let (answer, mut send) = client.send_request(req, false)?;
    if let Some(body) = body {
        send.send_data(body, true)?;
    }
    Ok(tokio::spawn(async move {
        let answer = answer.await.ok()?;
        let headers_status = answer.headers().get("grpc-status").cloned();
        let mut body = answer.into_body();
        while let Some(chunk) = body.data().await {
            if chunk.is_err() {
                return None;
            }
        }
        let trailers = body.trailers().await.ok().flatten();
        let status = headers_status.or_else(|| trailers?.get("grpc-status").cloned());
        drop(send);
        Some(status?.to_str().ok()?.to_string())
    }))
}

/// An empty gRPC message (the health Check request for the server as a whole, a Status
/// request).
fn empty() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0])
}

const HEALTH: &str = "/grpc.health.v1.Health/Check";
const STATUS: &str = "/strata.v1.Strata/Status";

fn addr(s: &Served) -> SocketAddr {
    s.srv.url.trim_start_matches("http://").parse().unwrap()
}

/// Waits for `task` to end, for at most `limit` (only so that a broken server cannot hang
/// the test); whether it ended.
async fn ends(task: &mut tokio::task::JoinHandle<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, task).await.is_ok()
}

/// Waits (up to 30 s) for the server's stderr to hold `text`; returns it.
fn stderr_with(s: &Served, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.srv.stderr().contains(text) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    s.srv.stderr()
}

#[test]
fn connections_without_an_authenticated_call_are_closed_whatever_they_answer() {
    // Idle timeout 5 s (so the auth timeout is 5 s too): the server pings every 1.7 s, and the
    // h2 client answers each ping.
    let s = Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        &["--idle-timeout", "5"],
    );
    let addr = addr(&s);
    runtime().block_on(async {
        // Only the preface and SETTINGS, then PING answers.
        let (_bare, mut bare_ended) = connect("127.0.0.2", addr).await;
        // Health calls need no token, so they do not authenticate a connection.
        let (health, mut health_ended) = connect("127.0.0.3", addr).await;
        let answer = call(&health, addr, HEALTH, None, Some(empty()))
            .await
            .unwrap();
        assert_eq!(
            answer.await.unwrap().as_deref(),
            Some("0"),
            "health answers"
        );
        // A wrong token does not either.
        let (wrong, mut wrong_ended) = connect("127.0.0.4", addr).await;
        let answer = call(
            &wrong,
            addr,
            STATUS,
            Some("a-wrong-token-of-length"),
            Some(empty()),
        )
        .await
        .unwrap();
        assert_eq!(answer.await.unwrap().as_deref(), Some("16"));
        // A request whose body never comes (slowloris) on an open call, 20 times.
        let (slow, mut slow_ended) = connect("127.0.0.5", addr).await;
        let mut pending = Vec::new();
        for _ in 0..20 {
            pending.push(call(&slow, addr, HEALTH, None, None).await.unwrap());
        }
        // The token: this connection is kept.
        let (good, mut good_ended) = connect("127.0.0.6", addr).await;
        let answer = call(&good, addr, STATUS, Some(TOKEN), Some(empty()))
            .await
            .unwrap();
        assert_eq!(answer.await.unwrap().as_deref(), Some("0"));

        for (what, task) in [
            ("a connection that only answers pings", &mut bare_ended),
            ("a connection that made a health call", &mut health_ended),
            (
                "a connection that presented a wrong token",
                &mut wrong_ended,
            ),
            (
                "a connection with requests whose body never came",
                &mut slow_ended,
            ),
        ] {
            assert!(
                ends(task, Duration::from_secs(120)).await,
                "{what} is still open; the server said:\n{}",
                s.srv.stderr()
            );
        }
        for p in pending {
            assert_eq!(
                p.await.unwrap(),
                None,
                "a never-ended request was not answered"
            );
        }
        // The authenticated one outlived them all, answering pings, and still serves calls.
        assert!(
            !good_ended.is_finished(),
            "the authenticated connection was closed"
        );
        let answer = call(&good, addr, STATUS, Some(TOKEN), Some(empty()))
            .await
            .unwrap();
        assert_eq!(answer.await.unwrap().as_deref(), Some("0"));
        assert!(!ends(&mut good_ended, Duration::from_millis(10)).await);
    });
    let log = stderr_with(&s, "no authenticated call within 5 s");
    assert!(
        log.contains("no authenticated call within 5 s of connecting (--auth-timeout)")
            && log.contains("refused since the start"),
        "the closings are reported:\n{log}"
    );
}

#[test]
fn idle_connections_from_many_loopback_addresses_cannot_shut_the_server() {
    // The attack: 8 loopback addresses x the per-peer cap fill the global cap, if every
    // address counts as its own peer.
    const PER_PEER: usize = 4;
    let s = Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        &[
            "--max-connections",
            "32",
            "--max-connections-per-peer",
            &PER_PEER.to_string(),
            "--idle-timeout",
            "600",
        ],
    );
    let addr = addr(&s);
    let before = sockets(s.srv.pid());
    let rt = runtime();
    let mut held = rt.block_on(async {
        let mut held = Vec::new();
        for ip in 2..10 {
            for _ in 0..PER_PEER {
                held.push(connect(&format!("127.0.0.{ip}"), addr).await);
            }
        }
        held
    });
    // All of loopback is one peer: the server keeps at most its cap of these connections,
    // and a client with the token still gets in (taking the place of the oldest one).
    s.remote(&["--timeout", "20", "status"])
        .ok()
        .stdout_has("applied");
    let open = sockets(s.srv.pid()).saturating_sub(before);
    assert!(
        open <= PER_PEER + 1,
        "the server holds {open} sockets for the flood's idle connections"
    );
    let closed = rt.block_on(async {
        let mut closed = 0;
        for (_, ended) in held.iter_mut() {
            if ends(ended, Duration::from_millis(1)).await {
                closed += 1;
            }
        }
        closed
    });
    assert!(
        closed >= held.len() - PER_PEER,
        "only {closed} of {} flood connections were closed",
        held.len()
    );
    let log = stderr_with(&s, "--max-connections-per-peer");
    assert!(
        log.contains("loopback had its 4 connections, --max-connections-per-peer")
            && log.contains("strata serve: refused a connection from 127.0.0."),
        "connections over the cap are reported:\n{log}"
    );
}

#[test]
fn open_calls_whose_body_never_comes_cannot_hold_the_strata_calls_places() {
    // 8 connections x 8 streams (the most a connection may open) of health calls whose
    // request never ends: as many as the server runs calls at once.
    let s = Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        &["--idle-timeout", "600"],
    );
    let addr = addr(&s);
    let rt = runtime();
    let _held = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..8 {
            let (client, ended) = connect("127.0.0.2", addr).await;
            let mut pending = Vec::new();
            for _ in 0..8 {
                if let Ok(p) = call(&client, addr, HEALTH, None, None).await {
                    pending.push(p);
                }
            }
            held.push((client, ended, pending));
        }
        // Let the server take them in.
        tokio::time::sleep(Duration::from_millis(500)).await;
        held
    });
    s.remote(&["--timeout", "20", "status"])
        .ok()
        .stdout_has("applied");
}

/// A health call whose headers carry `headers` extra values of 1,000 bytes and whose body
/// never comes, on `client`: whether the client could open it within 2 s (a connection at its
/// stream limit queues it).
async fn open_with_headers(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    headers: usize,
) -> Option<(h2::client::ResponseFuture, h2::SendStream<Bytes>)> {
    let opened = async {
        let mut client = client.clone().ready().await.ok()?;
        let mut req = grpc_request(&addr.to_string(), HEALTH, None);
        for i in 0..headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(format!("x-pad-{i}").as_bytes()).unwrap(),
                http::HeaderValue::from_str(&"p".repeat(1000)).unwrap(),
            );
        }
        client.send_request(req, false).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), opened)
        .await
        .ok()
        .flatten()
}

/// Clients without the token filling every connection place (256) with as many streams as
/// each may open, each a health call holding a large header block and never sending its body
/// (outside test attack7, finding 8: 32 streams of 60 KB blocks per connection grew the server
/// by 72 MB per peer): the server grows by less than 96 MiB, since a header block over 16 KiB
/// is refused before it is kept and a connection opens at most 8 streams.
#[test]
fn unauthenticated_header_blocks_on_every_connection_hold_little_server_memory() {
    let s = Served::example(
        |p| drop(p.strata(&["migrate", "-q"]).ok()),
        &[
            "--max-connections-per-peer",
            "256",
            "--idle-timeout",
            "600",
            "--auth-timeout",
            "600",
        ],
    );
    let addr = addr(&s);
    let rt = runtime();
    s.remote(&["status"]).ok();
    let baseline = peak_rss_kib(s.srv.pid());
    // 60 headers of 1,000 bytes (over the limit), then 15 (within it).
    let (held, conns, opened) = rt.block_on(async {
        let mut held = Vec::new();
        let mut conns = Vec::new();
        let mut opened = [0usize; 2];
        for (round, headers) in [60usize, 15].into_iter().enumerate() {
            for c in 0..128 {
                let source = format!("127.0.0.{}", 2 + c % 8);
                let (client, ended) = connect(&source, addr).await;
                for _ in 0..32 {
                    match open_with_headers(&client, addr, headers).await {
                        Some(call) => {
                            opened[round] += 1;
                            held.push(call);
                        }
                        None => break,
                    }
                }
                conns.push((client, ended));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        (held, conns, opened)
    });
    let peak = peak_rss_kib(s.srv.pid());
    eprintln!(
        "256 connections of unauthenticated header blocks ({opened:?} requests sent): server \
         peak RSS {} MiB -> {} MiB",
        baseline / 1024,
        peak / 1024
    );
    // The requests within the limit were sent (the test did load the server).
    assert!(opened[1] >= 128 * 4, "{opened:?}");
    assert!(
        peak.saturating_sub(baseline) < 96 * 1024,
        "the server grew from {} MiB to {} MiB",
        baseline / 1024,
        peak / 1024
    );
    drop((held, conns));
    // With the token, the server still answers.
    s.remote(&["--timeout", "20", "status"]).ok();
}
