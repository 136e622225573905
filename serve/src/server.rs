//! A standalone server for [`StrataService`], as `strata serve` runs it: the strata service,
//! `grpc.health.v1` health (no token needed) and server reflection (v1 and v1alpha), TLS through
//! rustls with optional client certificates, and graceful shutdown: on the signal the server
//! stops accepting calls, lets calls in flight finish, and waits for a run whose client went away.
//! Its limits bound what any client, with or without the token, can make it hold: the strata
//! calls it runs at once ([`MAX_CONCURRENT_CALLS`], taken only by calls whose token was
//! accepted), the health and reflection calls at once ([`MAX_OPEN_CALLS`], apart, so calls
//! without a token cannot hold the strata calls' places), the streams per connection, the
//! HTTP/2 windows (what a client may push before the server reads) and the header block; and
//! the connections themselves ([`crate::connections`]: how many, how many from one peer, how
//! long without an authenticated call, how long idle).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;

use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::StrataService;
use crate::connections::{ConnectionLimits, Gate, PeerGroup};
use crate::proto::strata_server::StrataServer;

/// Strata calls the server runs at once, over all connections; more wait for a free slot
/// (their bodies unread). A call takes a slot only once its token was accepted.
pub const MAX_CONCURRENT_CALLS: usize = 64;
/// Health and reflection calls (which need no token) the server runs at once, apart from the
/// strata calls; more wait for a free slot.
pub const MAX_OPEN_CALLS: usize = 16;
/// Of those, what one peer (an IPv4 /24, an IPv6 /64, this machine) may hold at once; its
/// other calls wait apart, holding none, so one client cannot keep health checks from others.
pub const MAX_OPEN_CALLS_PER_PEER: usize = 4;
/// HTTP/2 streams one connection may have open at once (advertised to clients, which queue
/// more; beyond it HTTP/2 itself refuses them). With [`MAX_HEADER_BYTES`] and the connection
/// caps it bounds the header blocks clients without the token can make the server hold:
/// connections x streams x header block (256 x 8 x 16 KiB = 32 MiB by default).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 8;
/// What a client may send on one stream before the server reads it: the most an unread
/// (for example refused) request can make the server hold.
pub const STREAM_WINDOW_BYTES: u32 = 256 * 1024;
/// The same for all streams of one connection together.
pub const CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;
/// The largest header block a request may send (the token travels in it; a gRPC call's
/// headers take a few hundred bytes). A larger one is refused by HTTP/2 before it is kept.
pub const MAX_HEADER_BYTES: u32 = 16 * 1024;
/// The largest request health and reflection read (they need no token; their requests are
/// a few bytes).
pub const MAX_OPEN_REQUEST_BYTES: usize = 64 * 1024;

/// The PEM files of a TLS server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A TLS file of the command line, read only as a regular file within the cap (a FIFO or a
/// device is refused, never read).
fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    match strata_engine::core::input::read_project_file(
        path,
        strata_engine::core::input::CONFIG_BYTES,
    ) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(ServeError::Io {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        }),
        Err(e) => Err(ServeError::Tls(e.to_string())),
    }
}

/// The rustls configuration from PEM files.
pub fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// Binds `addr` (port 0 picks a free port; the listener knows which).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

/// Serves `service` with health and reflection on `listener` until `shutdown` completes, then
/// drains: calls in flight finish, and a run still going (its client gone) is waited for.
/// Connections are bounded by the default [`ConnectionLimits`].
pub async fn serve(
    service: StrataService,
    listener: tokio::net::TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with(
        service,
        listener,
        tls,
        ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with the connections bounded by `limits` (see [`crate::connections`]).
pub async fn serve_with(
    service: StrataService,
    listener: tokio::net::TcpListener,
    tls: Option<ServerTlsConfig>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let health = health.max_decoding_message_size(MAX_OPEN_REQUEST_BYTES);
    reporter.set_serving::<StrataServer<StrataService>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?
        .max_decoding_message_size(MAX_OPEN_REQUEST_BYTES);
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?
        .max_decoding_message_size(MAX_OPEN_REQUEST_BYTES);
    let mut builder = Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .http2_max_header_list_size(MAX_HEADER_BYTES)
        // Pings that an honest client answers (so its connection never goes idle, even while
        // it waits on a long run) and that end a connection whose client stopped reading.
        .http2_keepalive_interval(Some(limits.keepalive_interval()))
        .http2_keepalive_timeout(Some(limits.keepalive_interval()))
        .http2_max_pending_accept_reset_streams(Some(MAX_STREAMS_PER_CONNECTION as usize));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let drained = service.clone();
    // tonic ignores its tcp_nodelay setting for an incoming stream: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs add about 40 ms to every small reply.
    // Each connection is admitted within the limits before any of its bytes is read; one over
    // a cap is dropped, so closed, at once.
    let gate = Gate::new(limits);
    let flushed = gate.clone();
    let calls = Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS));
    let open = Arc::new(Semaphore::new(MAX_OPEN_CALLS));
    let (strata, check) = service.server_and_check();
    let strata = InterceptedService::new(Capped::new(strata, calls), check);
    let incoming = TcpListenerStream::new(listener).filter_map(move |conn| match conn {
        Ok(stream) => {
            let _ = stream.set_nodelay(true);
            gate.admit(stream).map(Ok)
        }
        Err(e) => Some(Err(e)),
    });
    let signal = async {
        shutdown.await;
        reporter
            .set_not_serving::<StrataServer<StrataService>>()
            .await;
    };
    let peers = PerPeer::default();
    builder
        .add_service(Capped::new(health, Arc::clone(&open)).per_peer(peers.clone()))
        .add_service(Capped::new(reflection_v1, Arc::clone(&open)).per_peer(peers.clone()))
        .add_service(Capped::new(reflection_v1alpha, open).per_peer(peers))
        .add_service(strata)
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    drained.shutdown().await;
    flushed.flush();
    Ok(())
}

/// A service whose calls each hold one of `permits` until their response (its headers) is
/// ready, waiting for one when none is free. Unlike a tower concurrency layer it waits in the
/// call, not in `poll_ready`, so behind the token check ([`InterceptedService`] checks the
/// headers before it calls the service) a call without the token never takes or waits for one.
#[derive(Debug, Clone)]
struct Capped<S> {
    inner: S,
    permits: Arc<Semaphore>,
    /// Each peer's own share, taken before a permit.
    per_peer: Option<PerPeer>,
}

impl<S> Capped<S> {
    fn new(inner: S, permits: Arc<Semaphore>) -> Self {
        Capped {
            inner,
            permits,
            per_peer: None,
        }
    }

    /// Each peer holds at most [`MAX_OPEN_CALLS_PER_PEER`] of the permits at once.
    fn per_peer(mut self, peers: PerPeer) -> Self {
        self.per_peer = Some(peers);
        self
    }
}

/// Each peer group's semaphore of [`MAX_OPEN_CALLS_PER_PEER`] places; a group's entry goes when
/// none of its places is taken (the gate bounds how many groups hold connections).
#[derive(Debug, Clone, Default)]
struct PerPeer(Arc<std::sync::Mutex<HashMap<PeerGroup, Arc<Semaphore>>>>);

impl PerPeer {
    fn of(&self, group: PeerGroup) -> Arc<Semaphore> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| Arc::strong_count(s) > 1);
        Arc::clone(
            map.entry(group)
                .or_insert_with(|| Arc::new(Semaphore::new(MAX_OPEN_CALLS_PER_PEER))),
        )
    }
}

impl<S: NamedService> NamedService for Capped<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Capped<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The instance made ready goes with the call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let permits = Arc::clone(&self.permits);
        let share = self.per_peer.as_ref().and_then(|peers| {
            let addr = crate::connections::peer_addr(req.extensions())?;
            Some(peers.of(PeerGroup::of(addr.ip())))
        });
        Box::pin(async move {
            // The semaphores are never closed, so a permit always comes; the peer's own share
            // first, so a call waiting on it holds none of the others' places.
            let _share = match share {
                Some(s) => s.acquire_owned().await.ok(),
                None => None,
            };
            let _permit = permits.acquire_owned().await.ok();
            ready.call(req).await
        })
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic::transport::server::TcpConnectInfo;
    use tower::Service as _;

    fn request(ip: &str, path: &str) -> http::Request<()> {
        let mut req = http::Request::builder().uri(path).body(()).unwrap();
        req.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(ip.parse().unwrap(), 40000)),
        });
        req
    }

    /// Calls whose request never ends, from one peer, hold at most its share of the open
    /// places: another peer's health check is still answered.
    #[tokio::test]
    async fn one_peer_holds_at_most_its_share_of_the_open_places() {
        let open = Arc::new(Semaphore::new(MAX_OPEN_CALLS));
        let svc = tower::service_fn(|req: http::Request<()>| async move {
            if req.uri().path() == "/hang" {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::convert::Infallible>(())
        });
        let mut capped = Capped::new(svc, Arc::clone(&open)).per_peer(PerPeer::default());
        let hung: Vec<_> = (0..64)
            .map(|i| tokio::spawn(capped.call(request(&format!("10.0.0.{}", i % 200), "/hang"))))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            open.available_permits(),
            MAX_OPEN_CALLS - MAX_OPEN_CALLS_PER_PEER,
            "one /24 holds only its share"
        );
        tokio::time::timeout(
            Duration::from_secs(5),
            capped.call(request("10.0.1.7", "/ok")),
        )
        .await
        .expect("another peer is answered")
        .unwrap();
        // Without a known peer (not admitted by the gate) only the global cap applies.
        tokio::time::timeout(Duration::from_secs(5), capped.call(http::Request::new(())))
            .await
            .expect("answered")
            .unwrap();
        for h in hung {
            h.abort();
        }
    }
}
