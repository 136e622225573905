//! The connections `strata serve` accepts, bounded before any byte is read, so that clients
//! without the token cannot shut the server to everyone by holding connections open:
//!
//! - at most [`ConnectionLimits::max_connections`] at once, and at most
//!   [`ConnectionLimits::max_connections_per_peer`] from one peer, a peer being an address
//!   prefix ([`PeerGroup`]: an IPv4 /24, the whole loopback, an IPv6 /64), since one machine
//!   holds many addresses of its prefix;
//! - a connection that has not made an authenticated call (one whose token the check accepted,
//!   [`ConnectionState::mark_authenticated`]) within [`ConnectionLimits::auth_timeout`] of being
//!   accepted is closed, whatever it sent meanwhile: answering the server's pings, SETTINGS,
//!   WINDOW_UPDATE, health and reflection calls, a TLS handshake or a header block that never
//!   ends do not count;
//! - a connection over a cap takes the place of the oldest connection of its peer (or, over the
//!   global cap, of all) that has not authenticated, so a client with the token always gets in
//!   unless every place is held by authenticated connections; when there is none to take, the
//!   new connection is closed as soon as it is accepted;
//! - an authenticated connection that sends nothing for [`ConnectionLimits::idle_timeout`] is
//!   closed (the server's HTTP/2 keepalive pings make an honest client, even one waiting on a
//!   long run, answer well within that time).
//!
//! Connections refused or closed by these rules are counted and reported on the server's
//! stderr, rate-limited like refused calls ([`crate::auth::Refusals`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::auth::Refusals;

/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of [`ConnectionLimits::max_connections_per_peer`].
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 32;
/// Default of [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default of [`ConnectionLimits::auth_timeout`].
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept free beside the connections: the database, its lock and WAL files,
/// backups being written, the project's files, the PostgreSQL connections of a run.
pub const FD_HEADROOM: usize = 128;

/// What the server holds open for clients at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, over all clients.
    pub max_connections: usize,
    /// Connections open at once from one peer (an address prefix, see [`PeerGroup`]).
    pub max_connections_per_peer: usize,
    /// An authenticated connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has made no authenticated call this long after it was accepted is
    /// closed, whatever it sent (never later than the idle timeout).
    pub auth_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    /// The keepalive ping interval that keeps an honest client's connection active: a third of
    /// the idle timeout, so two pings can go unanswered before it ends.
    pub fn keepalive_interval(&self) -> Duration {
        (self.idle_timeout / 3).max(Duration::from_millis(100))
    }

    /// How long a connection may stay without an authenticated call: the auth timeout, at most
    /// the idle timeout.
    pub fn effective_auth_timeout(&self) -> Duration {
        self.auth_timeout.min(self.idle_timeout)
    }

    /// Raises the soft limit of open files to the hard limit, and lowers `max_connections` to
    /// what the limit leaves after [`FD_HEADROOM`]; returns the limits to serve with and, when
    /// lowered, a note saying so.
    pub fn fitted(mut self) -> (Self, Option<String>) {
        let Some(files) = raise_open_files_limit() else {
            return (self, None);
        };
        let room = files.saturating_sub(FD_HEADROOM).max(1);
        if self.max_connections <= room {
            return (self, None);
        }
        let note = format!(
            "at most {room} connections instead of {}: the limit of open files is {files} and \
             {FD_HEADROOM} stay free for the database and backups (raise it with `ulimit -n`)",
            self.max_connections
        );
        self.max_connections = room;
        (self, Some(note))
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<usize> {
    // SAFETY: getrlimit and setrlimit read and write this plain struct only.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        if l.rlim_cur < l.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                l = raised;
            }
        }
        usize::try_from(l.rlim_cur).ok()
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<usize> {
    None
}

/// The peer a connection is counted against: addresses one machine (or one network) can hold
/// many of count as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerGroup {
    /// Every loopback address, 127.0.0.0/8 and ::1: all of them are this machine.
    Loopback,
    /// An IPv4 /24 (IPv4-mapped IPv6 addresses too).
    V4([u8; 3]),
    /// An IPv6 /64.
    V6([u16; 4]),
}

impl PeerGroup {
    /// The group of `ip`.
    pub fn of(ip: IpAddr) -> PeerGroup {
        match ip.to_canonical() {
            ip if ip.is_loopback() => PeerGroup::Loopback,
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                PeerGroup::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                PeerGroup::V6([s[0], s[1], s[2], s[3]])
            }
        }
    }
}

impl std::fmt::Display for PeerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerGroup::Loopback => f.write_str("loopback"),
            PeerGroup::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            PeerGroup::V6([a, b, c, d]) => {
                let net = std::net::Ipv6Addr::new(*a, *b, *c, *d, 0, 0, 0, 0);
                write!(f, "{net}/64")
            }
        }
    }
}

/// What a connection and the calls on it share: whether one of its calls presented the
/// token, and whether the gate asked it to close.
#[derive(Debug, Default)]
pub struct ConnectionState {
    authenticated: AtomicBool,
    closing: AtomicBool,
    /// The task driving the connection, woken to close it.
    waker: Mutex<Option<Waker>>,
}

impl ConnectionState {
    /// Marks the connection as having made an authenticated call: from now on it is kept
    /// while active, and never closed to make room.
    pub fn mark_authenticated(&self) {
        self.authenticated.store(true, Ordering::Release);
    }

    /// Whether a call on this connection presented the token.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Asks the connection to close: its next read or write fails.
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn register(&self, cx: &Context<'_>) {
        let mut w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        match &*w {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
    }
}

/// The connect info of an admitted connection, in each request's extensions (inside
/// [`TlsConnectInfo`] with TLS): its addresses and its [`ConnectionState`].
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The connection's addresses.
    pub tcp: TcpConnectInfo,
    /// What its calls share.
    pub state: Arc<ConnectionState>,
}

impl ConnectionInfo {
    /// The info of the connection a request came on, when `strata serve` admitted it.
    pub fn of(extensions: &tonic::Extensions) -> Option<&ConnectionInfo> {
        extensions.get::<ConnectionInfo>().or_else(|| {
            extensions
                .get::<TlsConnectInfo<ConnectionInfo>>()
                .map(|t| t.get_ref())
        })
    }
}

/// The client's address of the connection a request came on, under `strata serve` or a plain
/// tonic server.
pub fn peer_addr(extensions: &tonic::Extensions) -> Option<SocketAddr> {
    if let Some(info) = ConnectionInfo::of(extensions) {
        return info.tcp.remote_addr();
    }
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// The connections open, oldest first.
#[derive(Debug, Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Entry>,
    per_group: HashMap<PeerGroup, usize>,
}

#[derive(Debug)]
struct Entry {
    group: Option<PeerGroup>,
    peer: Option<SocketAddr>,
    state: Arc<ConnectionState>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(g) = entry.group
            && let Some(n) = self.per_group.get_mut(&g)
        {
            *n -= 1;
            if *n == 0 {
                self.per_group.remove(&g);
            }
        }
        Some(entry)
    }

    /// Closes the oldest connection (of `group`, when given) that has not authenticated, and
    /// returns its peer; `None` when every such connection has authenticated.
    fn evict(&mut self, group: Option<PeerGroup>) -> Option<Option<SocketAddr>> {
        let id = self
            .open
            .iter()
            .find(|(_, e)| (group.is_none() || e.group == group) && !e.state.is_authenticated())
            .map(|(id, _)| *id)?;
        let entry = self.remove(id)?;
        entry.state.close();
        Some(entry.peer)
    }
}

/// Hands out places for accepted connections within the limits.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: ConnectionLimits,
    registry: Arc<Mutex<Registry>>,
    refusals: Arc<Refusals>,
}

fn who(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "an unknown peer".to_string(), |a| a.to_string())
}

impl Gate {
    pub fn new(limits: ConnectionLimits) -> Self {
        Gate {
            limits,
            registry: Arc::new(Mutex::new(Registry::default())),
            refusals: Arc::new(Refusals::of_connections()),
        }
    }

    /// Connections refused or closed by the limits since the gate opened.
    pub fn refused(&self) -> u64 {
        self.refusals.total()
    }

    /// Reports the refusals not reported yet (see [`Refusals::flush`]).
    pub fn flush(&self) {
        self.refusals.flush();
    }

    /// Makes room for a connection from `peer` under both caps, closing the oldest
    /// unauthenticated connections it must; whether it may be admitted, and what to report.
    fn make_room(
        &self,
        reg: &mut Registry,
        group: Option<PeerGroup>,
        peer: Option<SocketAddr>,
    ) -> (bool, Vec<String>) {
        let mut reports = Vec::new();
        let per_peer = self.limits.max_connections_per_peer;
        if let Some(g) = group
            && reg.per_group.get(&g).copied().unwrap_or(0) >= per_peer
        {
            let Some(old) = reg.evict(Some(g)) else {
                reports.push(format!(
                    "a connection from {}: {g} has {per_peer} authenticated connections open \
                     (--max-connections-per-peer)",
                    who(peer)
                ));
                return (false, reports);
            };
            reports.push(format!(
                "a connection from {} that had made no authenticated call: closed to admit one \
                 from {} ({g} had its {per_peer} connections, --max-connections-per-peer)",
                who(old),
                who(peer)
            ));
        }
        let max = self.limits.max_connections.max(1);
        if reg.open.len() >= max {
            let Some(old) = reg.evict(None) else {
                reports.push(format!(
                    "a connection from {}: {max} authenticated connections are open \
                     (--max-connections)",
                    who(peer)
                ));
                return (false, reports);
            };
            reports.push(format!(
                "a connection from {} that had made no authenticated call: closed to admit one \
                 from {} (all {max} places were taken, --max-connections)",
                who(old),
                who(peer)
            ));
        }
        (true, reports)
    }

    /// The accepted `stream` with its place held for as long as it lives, or `None` (the
    /// stream dropped, so closed) when a cap is reached and no connection without an
    /// authenticated call can give up its place.
    pub fn admit(&self, stream: TcpStream) -> Option<Limited> {
        let peer = stream.peer_addr().ok();
        let group = peer.map(|a| PeerGroup::of(a.ip()));
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let (admitted, reports) = self.make_room(&mut reg, group, peer);
        if !admitted {
            drop(reg);
            for r in reports {
                self.refusals.record(r);
            }
            return None;
        }
        let id = reg.next;
        reg.next += 1;
        let state = Arc::new(ConnectionState::default());
        reg.open.insert(
            id,
            Entry {
                group,
                peer,
                state: Arc::clone(&state),
            },
        );
        if let Some(g) = group {
            *reg.per_group.entry(g).or_insert(0) += 1;
        }
        drop(reg);
        for r in reports {
            self.refusals.record(r);
        }
        let now = Instant::now();
        let auth_deadline = now + self.limits.effective_auth_timeout();
        let info = ConnectionInfo {
            tcp: stream.connect_info(),
            state: Arc::clone(&state),
        };
        Some(Limited {
            _place: Place {
                id,
                registry: Arc::clone(&self.registry),
            },
            inner: stream,
            info,
            state,
            refusals: Arc::clone(&self.refusals),
            peer,
            idle: self.limits.idle_timeout,
            auth_timeout: self.limits.effective_auth_timeout(),
            auth_deadline,
            idle_deadline: now + self.limits.idle_timeout,
            timer: Box::pin(tokio::time::sleep_until(auth_deadline)),
            timed_out: false,
        })
    }
}

/// One connection's place in the registry, given back when the connection closes.
#[derive(Debug)]
struct Place {
    id: u64,
    registry: Arc<Mutex<Registry>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        reg.remove(self.id);
    }
}

/// An admitted connection: its place, its state, and the deadlines that end it (the
/// authentication deadline while no call presented the token, the idle deadline that reading
/// pushes back).
#[derive(Debug)]
pub struct Limited {
    // Declared first so the place is given back before the socket is closed.
    _place: Place,
    inner: TcpStream,
    info: ConnectionInfo,
    state: Arc<ConnectionState>,
    refusals: Arc<Refusals>,
    peer: Option<SocketAddr>,
    idle: Duration,
    auth_timeout: Duration,
    auth_deadline: Instant,
    idle_deadline: Instant,
    timer: Pin<Box<Sleep>>,
    /// Whether the auth timeout was reported (once per connection).
    timed_out: bool,
}

impl Limited {
    /// The error that ends the connection now, if one does: the gate closed it, or a deadline
    /// passed.
    fn ended(&mut self, now: Instant) -> Option<io::Error> {
        if self.state.is_closing() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for another connection",
            ));
        }
        if !self.state.is_authenticated() && now >= self.auth_deadline {
            if !std::mem::replace(&mut self.timed_out, true) {
                self.refusals.record(format!(
                    "a connection from {}: no authenticated call within {} s of connecting \
                 (--auth-timeout), closed",
                    who(self.peer),
                    self.auth_timeout.as_secs_f64()
                ));
            }
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "no authenticated call within the auth timeout",
            ));
        }
        if now >= self.idle_deadline {
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client sent nothing within the idle timeout",
            ));
        }
        None
    }

    /// Called when the socket is not ready: arranges to be woken when the gate closes the
    /// connection or the next deadline passes, and ends it if either already happened.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.state.register(cx);
        loop {
            if let Some(e) = self.ended(Instant::now()) {
                return Poll::Ready(e);
            }
            let next = if self.state.is_authenticated() {
                self.idle_deadline
            } else {
                self.idle_deadline.min(self.auth_deadline)
            };
            if self.timer.deadline() != next {
                self.timer.as_mut().reset(next);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.ended(Instant::now()) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.idle_deadline = Instant::now() + self.idle;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.wait(cx).map(Err),
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.ended(Instant::now()) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.wait(cx).map(Err),
            done => done,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.wait(cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.ended(Instant::now()) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.wait(cx).map(Err),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Limited {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, per_peer: usize) -> Gate {
        Gate::new(ConnectionLimits {
            max_connections: max,
            max_connections_per_peer: per_peer,
            idle_timeout: Duration::from_secs(60),
            auth_timeout: Duration::from_secs(60),
        })
    }

    /// A connection to `addr` from `source`, as the server accepted it.
    async fn accepted(
        listener: &tokio::net::TcpListener,
        source: &str,
        clients: &mut Vec<TcpStream>,
    ) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        clients.push(
            socket
                .connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
        );
        listener.accept().await.unwrap().0
    }

    #[test]
    fn peers_are_counted_by_prefix() {
        let g = |s: &str| PeerGroup::of(s.parse().unwrap());
        assert_eq!(g("127.0.0.1"), g("127.200.3.9"));
        assert_eq!(g("127.0.0.1"), g("::1"));
        assert_eq!(g("127.0.0.1"), PeerGroup::Loopback);
        assert_eq!(g("10.1.2.3"), g("10.1.2.250"));
        assert_ne!(g("10.1.2.3"), g("10.1.3.3"));
        assert_eq!(g("::ffff:10.1.2.3"), g("10.1.2.9"));
        assert_eq!(g("2001:db8:1:2:aaaa::1"), g("2001:db8:1:2:ffff::7"));
        assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
        assert_eq!(g("10.1.2.3").to_string(), "10.1.2.0/24");
        assert_eq!(g("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(g("127.0.0.9").to_string(), "loopback");
    }

    #[tokio::test]
    async fn a_full_peer_gives_up_its_oldest_unauthenticated_place_and_places_come_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = gate(10, 2);
        let mut clients = Vec::new();
        let a = gate
            .admit(accepted(&listener, "127.0.0.2", &mut clients).await)
            .unwrap();
        let b = gate
            .admit(accepted(&listener, "127.0.0.3", &mut clients).await)
            .unwrap();
        a.info.state.mark_authenticated();
        // Loopback is one peer: a third connection takes the place of b, the oldest that has
        // not authenticated; a is kept.
        let c = gate
            .admit(accepted(&listener, "127.0.0.4", &mut clients).await)
            .unwrap();
        assert!(b.state.is_closing() && !a.state.is_closing() && !c.state.is_closing());
        assert_eq!(gate.refused(), 1);
        c.info.state.mark_authenticated();
        // Every place of the peer authenticated: the newcomer is refused.
        assert!(
            gate.admit(accepted(&listener, "127.0.0.5", &mut clients).await)
                .is_none()
        );
        assert_eq!(gate.refused(), 2);
        drop((a, b, c));
        let reg = gate.registry.lock().unwrap();
        assert!(reg.open.is_empty() && reg.per_group.is_empty());
    }

    #[tokio::test]
    async fn a_full_server_gives_up_its_oldest_unauthenticated_place() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = gate(2, 10);
        let mut clients = Vec::new();
        let a = gate
            .admit(accepted(&listener, "127.0.0.2", &mut clients).await)
            .unwrap();
        let b = gate
            .admit(accepted(&listener, "127.0.0.2", &mut clients).await)
            .unwrap();
        b.info.state.mark_authenticated();
        let c = gate
            .admit(accepted(&listener, "127.0.0.3", &mut clients).await)
            .unwrap();
        assert!(a.state.is_closing() && !b.state.is_closing());
        c.info.state.mark_authenticated();
        assert!(
            gate.admit(accepted(&listener, "127.0.0.3", &mut clients).await)
                .is_none()
        );
        drop((b, c));
        assert!(
            gate.admit(accepted(&listener, "127.0.0.3", &mut clients).await)
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_unauthenticated_connection_ends_at_its_deadline_whatever_it_sends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = Gate::new(ConnectionLimits {
            max_connections: 4,
            max_connections_per_peer: 4,
            idle_timeout: Duration::from_secs(60),
            auth_timeout: Duration::from_millis(300),
        });
        let mut clients = Vec::new();
        let mut chatty = gate
            .admit(accepted(&listener, "127.0.0.1", &mut clients).await)
            .unwrap();
        let mut kept = gate
            .admit(accepted(&listener, "127.0.0.1", &mut clients).await)
            .unwrap();
        kept.info.state.mark_authenticated();
        // Bytes keep coming on both, as PING answers would.
        let writers: Vec<_> = clients
            .drain(..)
            .map(|mut client| {
                tokio::spawn(async move {
                    for _ in 0..100 {
                        if client.write_all(b"x").await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        let mut buf = [0u8; 16];
        let e = loop {
            match chatty.read(&mut buf).await {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // The authenticated one is still read past the deadline.
        let n = kept.read(&mut buf).await.unwrap();
        assert!(n > 0);
        for w in writers {
            w.abort();
        }
        assert_eq!(gate.refused(), 1);
    }
}
