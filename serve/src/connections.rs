//! The connections `strata serve` accepts, bounded before any byte is read, so that clients
//! without the token cannot shut the server to everyone by holding connections open: at most
//! [`ConnectionLimits::max_connections`] at once, at most
//! [`ConnectionLimits::max_connections_per_peer`] from one IP address, and a connection that
//! sends nothing for [`ConnectionLimits::idle_timeout`] is closed (one that sent only the HTTP/2
//! preface among them; the server's HTTP/2 keepalive pings make an honest client, even one
//! waiting on a long run, answer well within that time). A connection over a cap is closed as
//! soon as it is accepted, so it holds a file descriptor for no longer than that.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of [`ConnectionLimits::max_connections_per_peer`].
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 32;
/// Default of [`ConnectionLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// File descriptors kept free beside the connections: the database, its lock and WAL files,
/// backups being written, the project's files, the PostgreSQL connections of a run.
pub const FD_HEADROOM: usize = 128;

/// What the server holds open for clients at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, over all clients.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_peer: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    /// The keepalive ping interval that keeps an honest client's connection active: a third of
    /// the idle timeout, so two pings can go unanswered before it ends.
    pub fn keepalive_interval(&self) -> Duration {
        (self.idle_timeout / 3).max(Duration::from_millis(100))
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

/// Hands out places for accepted connections within the limits.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: ConnectionLimits,
    all: Arc<Semaphore>,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Gate {
    pub fn new(limits: ConnectionLimits) -> Self {
        Gate {
            limits,
            all: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            peers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The accepted `stream` with its place held for as long as it lives, or `None` (the
    /// stream dropped, so closed) when a cap is reached.
    pub fn admit(&self, stream: TcpStream) -> Option<Limited> {
        let peer = stream.peer_addr().ok().map(|a| a.ip());
        let all = Arc::clone(&self.all).try_acquire_owned().ok()?;
        let peer = match peer {
            Some(ip) => {
                let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
                let n = peers.entry(ip).or_insert(0);
                if *n >= self.limits.max_connections_per_peer {
                    return None;
                }
                *n += 1;
                Some(PeerPlace {
                    ip,
                    peers: Arc::clone(&self.peers),
                })
            }
            None => None,
        };
        Some(Limited {
            inner: stream,
            _all: all,
            _peer: peer,
            idle: self.limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(self.limits.idle_timeout)),
        })
    }
}

/// One connection's place in its peer's count, given back when the connection closes.
#[derive(Debug)]
struct PeerPlace {
    ip: IpAddr,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = peers.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.ip);
            }
        }
    }
}

/// An admitted connection: its places, and the idle deadline that reading pushes back.
#[derive(Debug)]
pub struct Limited {
    inner: TcpStream,
    _all: OwnedSemaphorePermit,
    _peer: Option<PeerPlace>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing within the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_over_the_caps_are_closed_and_places_come_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Gate::new(ConnectionLimits {
            max_connections: 3,
            max_connections_per_peer: 2,
            idle_timeout: Duration::from_secs(60),
        });
        let mut clients = Vec::new();
        let mut admitted = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let (s, _) = listener.accept().await.unwrap();
            admitted.push(gate.admit(s));
        }
        // Two from 127.0.0.1, the third over the per-peer cap.
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 2);
        admitted.clear();
        clients.push(TcpStream::connect(addr).await.unwrap());
        let (s, _) = listener.accept().await.unwrap();
        assert!(
            gate.admit(s).is_some(),
            "places come back when connections close"
        );
        assert!(gate.peers.lock().unwrap().is_empty());
    }
}
