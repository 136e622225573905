//! Bearer tokens: the one secret a client must present on every RPC but health. Compared in
//! constant time (sha256 digests through `subtle`, so neither content nor length leaks). The
//! check is [`Authenticate`], an interceptor that reads only the request's headers: a missing or
//! wrong token is answered UNAUTHENTICATED before the request body is read, and a refused call
//! writes nothing anywhere (no database, no audit row, no file); it is counted, and reported on
//! the server's stderr at most once per [`REPORT_EVERY`] ([`Refusals`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token a server accepts, kept only as its sha256 digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty: use at least 16 characters")]
    Empty,
    #[error("the token is too short ({0} characters): use at least 16")]
    Short(usize),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw random bytes for a token: {0}")]
    Random(String),
    /// Not a regular file within the cap (a FIFO, a device), or missing.
    #[error("{0}")]
    Unreadable(#[source] strata_engine::Error),
    #[error(
        "{}: the token file has mode {mode:04o}, so other users of this machine can {access} it; \
         a token file must be readable and writable by its owner only (as ssh requires of a \
         private key). Run `chmod 600 {}` and start again",
        path.display(),
        path.display()
    )]
    Loose {
        path: std::path::PathBuf,
        mode: u32,
        access: &'static str,
    },
}

/// The minimum token length.
pub const MIN_LEN: usize = 16;

impl Token {
    /// A token from its text (surrounding whitespace ignored).
    pub fn new(secret: &str) -> Result<Token, TokenError> {
        let secret = secret.trim();
        match secret.len() {
            0 => Err(TokenError::Empty),
            n if n < MIN_LEN => Err(TokenError::Short(n)),
            _ => Ok(Token {
                digest: Sha256::digest(secret.as_bytes()).into(),
            }),
        }
    }

    /// Whether `presented` is this token, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Reads a token file (its content, trimmed). On Unix a file that its group or others may
/// read or write is refused, naming its mode and the fix.
pub fn read_file(path: &Path) -> Result<String, TokenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| TokenError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            let access = match (mode & 0o044 != 0, mode & 0o022 != 0) {
                (true, true) => "read and change",
                (true, false) => "read",
                _ => "change",
            };
            return Err(TokenError::Loose {
                path: path.to_path_buf(),
                mode,
                access,
            });
        }
    }
    // A regular file within the cap only: `token -> /dev/zero` or a FIFO is refused, never read.
    match strata_engine::core::input::read_project_text(
        path,
        strata_engine::core::input::CONFIG_BYTES,
    ) {
        Ok(Some(text)) => Ok(text.trim().to_string()),
        Ok(None) => Err(TokenError::Io {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        }),
        Err(e) => Err(TokenError::Unreadable(e)),
    }
}

/// A fresh random token: 32 bytes from the OS, hex.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a fresh token to `path` (readable by its owner only) and returns it. Refuses to
/// overwrite an existing file.
pub fn create_file(path: &Path) -> Result<String, TokenError> {
    use std::io::Write;
    let token = generate()?;
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{token}").map_err(io)?;
    Ok(token)
}

/// The token a request presents in `authorization: Bearer <token>`, if any.
pub fn presented(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// How often, at most, the server reports refused calls on stderr.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Refused calls: counted, and reported on stderr rate-limited: the first refusal of a quiet
/// spell at once, then one line per [`REPORT_EVERY`] with how many followed, so a flood costs
/// a counter increment per call and a line every 10 s.
#[derive(Debug)]
pub struct Refusals {
    /// What is refused, plural ("calls", "connections").
    what: &'static str,
    total: AtomicU64,
    window: Mutex<Window>,
}

impl Default for Refusals {
    /// Refused calls.
    fn default() -> Self {
        Refusals::of("calls")
    }
}

#[derive(Debug, Default)]
struct Window {
    /// Whether a reporter is waiting out the current window.
    open: bool,
    /// Refusals since the last line.
    pending: u64,
    /// The latest of them.
    latest: String,
}

impl Refusals {
    fn of(what: &'static str) -> Self {
        Refusals {
            what,
            total: AtomicU64::new(0),
            window: Mutex::new(Window::default()),
        }
    }

    /// Connections refused or closed by the connection limits ([`crate::connections`]).
    pub fn of_connections() -> Self {
        Refusals::of("connections")
    }

    /// What is refused, singular.
    fn one(&self) -> &'static str {
        self.what.strip_suffix('s').unwrap_or(self.what)
    }

    /// Refusals since the server started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one refusal (`detail` names the caller and why, never the token).
    pub fn record(self: &Arc<Self>, detail: String) {
        self.record_every(detail, REPORT_EVERY);
    }

    fn record_every(self: &Arc<Self>, detail: String, every: Duration) {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.open {
            w.pending += 1;
            w.latest = detail;
            return;
        }
        w.open = true;
        drop(w);
        eprintln!(
            "strata serve: refused {detail} ({} {} refused since the start; further refusals \
             are counted and reported every {} s)",
            thousands(total),
            if total == 1 { self.one() } else { self.what },
            every.as_secs()
        );
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("strata-refusals".into())
            .spawn(move || this.report_until_quiet(every));
        if spawned.is_err() {
            // No thread for the reporter: report the next refusal at once instead.
            self.window.lock().unwrap_or_else(|e| e.into_inner()).open = false;
        }
    }

    /// Reports at once the refusals not reported yet (the server is stopping: the reporter's
    /// next line would never come).
    pub fn flush(&self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let pending = take_pending(&mut w);
        drop(w);
        if let Some(pending) = pending {
            self.report(pending, "since the last report");
        }
    }

    /// Prints the line for `pending` refusals, `when` saying since when (never under the
    /// window's lock: a slow stderr must not hold up the calls being counted).
    fn report(&self, (n, latest): (u64, String), when: &str) {
        let what = if n == 1 { self.one() } else { self.what };
        eprintln!(
            "strata serve: refused {} {what} {when} (the latest: {latest}); {} refused since \
             the start",
            thousands(n),
            thousands(self.total())
        );
    }

    fn report_until_quiet(&self, every: Duration) {
        loop {
            std::thread::sleep(every);
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let Some(pending) = take_pending(&mut w) else {
                w.open = false;
                return;
            };
            drop(w);
            self.report(pending, &format!("in the last {} s", every.as_secs()));
        }
    }
}

/// `2993` as `2,993`.
/// The refusals of `w` not reported yet (how many, the latest), taken; `None` when none.
fn take_pending(w: &mut Window) -> Option<(u64, String)> {
    (w.pending > 0).then(|| {
        (
            std::mem::take(&mut w.pending),
            std::mem::take(&mut w.latest),
        )
    })
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The token check of every strata RPC, on the request's headers only: it runs before the
/// request body is read, so a refused call holds no more than its headers (and what HTTP/2 flow
/// control lets a client push before the refusal, a window the server sets) and is answered
/// UNAUTHENTICATED at once.
#[derive(Clone, Debug)]
pub struct Authenticate {
    token: Arc<Token>,
    refusals: Arc<Refusals>,
}

impl Authenticate {
    pub fn new(token: Token, refusals: Arc<Refusals>) -> Self {
        Authenticate {
            token: Arc::new(token),
            refusals,
        }
    }

    /// Checks the token in `metadata`; a refusal is counted and reported (never with the
    /// token) and returned as the status to answer.
    /// An accepted token marks the connection the call came on as authenticated
    /// ([`crate::connections::ConnectionState`]), so the server keeps it.
    pub fn check(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        extensions: &tonic::Extensions,
        rpc: &str,
    ) -> Result<(), tonic::Status> {
        let why = match presented(metadata) {
            Some(t) if self.token.matches(t) => {
                if let Some(info) = crate::connections::ConnectionInfo::of(extensions) {
                    info.state.mark_authenticated();
                }
                return Ok(());
            }
            Some(_) => "a wrong token",
            None => "no token",
        };
        let peer = crate::connections::peer_addr(extensions);
        let peer = peer.map_or_else(|| "an unknown peer".to_string(), |a| a.to_string());
        self.refusals.record(format!("{rpc} from {peer}: {why}"));
        Err(crate::error::refuse(
            tonic::Code::Unauthenticated,
            strata_engine::core::exit::REFUSED,
            "unauthenticated",
            format!(
                "the server refused {rpc}: {why}. Pass the server's token with --token-file FILE \
                 or STRATA_TOKEN"
            ),
        ))
    }
}

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.check(req.metadata(), req.extensions(), "a call")?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_and_reported_at_most_once_per_window() {
        let r = Arc::new(Refusals::default());
        for i in 0..1000 {
            r.record_every(format!("call {i}"), Duration::from_millis(200));
        }
        assert_eq!(r.total(), 1000);
        {
            let w = r.window.lock().unwrap();
            assert!(w.open);
            assert_eq!(w.pending, 999);
            assert_eq!(w.latest, "call 999");
        }
        std::thread::sleep(Duration::from_millis(700));
        let w = r.window.lock().unwrap();
        assert!(!w.open, "a quiet window closes the reporter");
        assert_eq!(w.pending, 0);
        assert_eq!(thousands(2993), "2,993");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn matches_only_the_same_token() {
        let t = Token::new("  correct horse battery staple\n").unwrap();
        assert!(t.matches("correct horse battery staple"));
        assert!(!t.matches("correct horse battery stapl"));
        assert!(!t.matches(""));
        assert!(matches!(Token::new(" "), Err(TokenError::Empty)));
        assert!(matches!(Token::new("short"), Err(TokenError::Short(5))));
    }

    #[test]
    fn reads_the_bearer_header() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(presented(&m), None);
        m.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented(&m), Some("abc"));
        m.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&m), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_or_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "a-token-of-some-length-here").unwrap();
        for (mode, access) in [
            (0o644, "read"),
            (0o640, "read"),
            (0o620, "change"),
            (0o666, "read and change"),
            (0o604, "read"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_file(&path).unwrap_err().to_string();
            assert!(
                e.contains(&path.display().to_string())
                    && e.contains(&format!("{mode:04o}"))
                    && e.contains(&format!("can {access} it"))
                    && e.contains(&format!("chmod 600 {}", path.display())),
                "{e}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_file(&path).unwrap(), "a-token-of-some-length-here");
        }
    }

    #[test]
    fn generated_tokens_differ_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token");
        let a = create_file(&path).unwrap();
        assert_eq!(read_file(&path).unwrap(), a);
        assert_ne!(a, generate().unwrap());
        assert!(
            create_file(&path).is_err(),
            "an existing file is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
