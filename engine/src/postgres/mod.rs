//! PostgreSQL as a target database: where a `postgres://` URL in `db`/`test_db` (or `--db`,
//! `--test-db`) leads.
//!
//! This module owns the connection: parsing the URL, finding the password (the URL,
//! `PGPASSWORD`, or a passfile, as libpq does), and showing the target without its password.
//! `ledger` keeps the bookkeeping tables in the `strata` schema, `script` splits a PostgreSQL
//! script into statements with their lines, `step` applies one migration in one transaction (or
//! a savepoint of the phase's), `backup` and `restore` are `pg_dump` and `pg_restore`, and `run`
//! is a phase of a run (through `crate::core::phase`), the ledger and audit outside a run and the
//! throwaway databases of `--rehearse-on-copy` and `sandbox`. The commands reach all of it
//! through `crate::postgres::backend`, the PostgreSQL side of the backend seam; their algorithms
//! (`crate::commands::migrate`, `crate::core::restore`, ...) and tree, checksum, plan, events, phases and
//! rendering are shared with SQLite; components run through `crate::components` on the step's
//! connection.
//!
//! The schema side: `schema` reads the live schema from the catalogs and records which module
//! owns which object, `model` is that schema as canonical text (dump, `schema.sql`), `delta` the
//! pure diff and delta SQL, and `design` is `dump`, `diff`, `new --from-diff`, `baseline` and
//! drift on PostgreSQL.
//!
//! No SQLite code path ever receives a PostgreSQL URL (see `crate::sqlite::open`).

pub mod backend;
pub mod backup;
pub(crate) mod component;
pub mod delta;
pub mod design;
pub(crate) mod guard;
pub mod ledger;
mod libpq;
pub mod model;
pub mod restore;
pub mod run;
pub mod schema;
pub(crate) use crate::core::sql::postgres as script;
pub mod step;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, NoTls};

use crate::core::error::Error;

/// The targets [`remember`]ed in this process, by their shown form.
fn known() -> &'static std::sync::Mutex<std::collections::HashMap<String, Target>> {
    static KNOWN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Target>>> =
        std::sync::OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Parses `url` and returns the form strata shows and passes around (`postgres://user@host/db`,
/// no password, no options); [`Target::parse`] of that form gives back the full target, password
/// and options included. So a password written in strata.toml or `--db` reaches the connection
/// and nothing else: no message, report, event, audit row or gRPC reply can hold it.
pub fn remember(url: &str, key: &str) -> Result<PathBuf, Error> {
    Ok(Target::parse(url, key)?.remember())
}

impl Target {
    /// Keeps this target for [`Target::parse`] of its shown form, which it returns.
    pub fn remember(self) -> PathBuf {
        let shown = self.as_path();
        if let Ok(mut known) = known().lock() {
            known.insert(self.shown.clone(), self);
        }
        shown
    }
}

/// A database value as it may be shown: a PostgreSQL URL without its password and options.
pub fn redacted(db: &Path) -> String {
    match Target::parse(&db.to_string_lossy(), "db") {
        Ok(t) => t.shown,
        Err(_) => "a PostgreSQL URL".into(),
    }
}

/// Whether `db` (a path as strata.toml or a flag gave it) is a PostgreSQL URL.
pub fn is_url(db: &Path) -> bool {
    db.to_str().is_some_and(|s| {
        let s = s.trim_start();
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    })
}

/// A PostgreSQL database strata connects to.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    /// `postgres://user@host:port/dbname`: never the password.
    shown: String,
    /// The URL's TLS files (`sslrootcert`, `sslcert`, `sslkey`).
    tls: TlsFiles,
}

/// The files libpq's TLS options name, as the URL gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct TlsFiles {
    /// `sslrootcert`: the authority to verify the server with.
    root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`: the client certificate (chain) and its private key.
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Target").field(&self.shown).finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses a `postgres://` URL; `key` names where it came from (`db`, `--test-db`, ...) in
    /// errors. The user defaults to `PGUSER` or the login name, the database to the user, the
    /// password to `PGPASSWORD` or the passfile (`PGPASSFILE`, else `~/.pgpass`).
    pub fn parse(url: &str, key: &str) -> Result<Target, Error> {
        if let Some(known) = known().lock().ok().and_then(|k| k.get(url.trim()).cloned()) {
            return Ok(known);
        }
        let (url, service_name) = take_service(url.trim());
        let (url, mut tls) = libpq_tls_options(&url);
        let service = libpq::service(service_name.as_deref())
            .map_err(|e| Error::Usage(format!("{key}: {e}")))?;
        let service = service.as_ref();
        // A port the URL leaves out comes from the service or PGPORT (the client would
        // otherwise take 5432 for a host written without one).
        let port = match libpq::fallback(service, "port", "PGPORT") {
            Some(port) => Some(port.trim().parse::<u16>().map_err(|_| {
                Error::Usage(format!(
                    "{key}: the port {port:?} (PGPORT or the service file) is not a port number"
                ))
            })?),
            None => None,
        };
        let url = match port {
            Some(port) => libpq::with_default_port(&url, port),
            None => url,
        };
        let mut config = postgres::Config::from_str(&url).map_err(|e| {
            Error::Usage(format!(
                "{key}: not a PostgreSQL URL ({e}); write it as \
                 postgres://user@host:5432/dbname (the password from PGPASSWORD or ~/.pgpass)"
            ))
        })?;
        // What the URL leaves out comes from the service, then the PG* variables, as in libpq.
        if config.get_ports().is_empty()
            && let Some(port) = port
        {
            config.port(port);
        }
        if config.get_hosts().is_empty() {
            let hosts = libpq::fallback(service, "host", "PGHOST").unwrap_or_else(|| {
                libpq::default_host(config.get_ports().first().copied().unwrap_or(5432))
            });
            for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                if host.starts_with('/') {
                    config.host_path(host);
                } else {
                    config.host(host);
                }
            }
        }
        if !url.contains("sslmode=")
            && let Some(mode) = libpq::fallback(service, "sslmode", "PGSSLMODE")
        {
            let mode =
                libpq::ssl_mode(mode.trim()).map_err(|e| Error::Usage(format!("{key}: {e}")))?;
            config.ssl_mode(match mode {
                "disable" => SslMode::Disable,
                "require" => SslMode::Require,
                _ => SslMode::Prefer,
            });
        }
        if let Some(service) = service {
            for (field, slot) in [
                ("sslrootcert", &mut tls.root_cert),
                ("sslcert", &mut tls.cert),
                ("sslkey", &mut tls.key),
            ] {
                if slot.is_none() {
                    *slot = service.get(field).map(PathBuf::from);
                }
            }
            if config.get_password().is_none()
                && let Some(password) = service.get("password")
            {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none()
            && let Some(secs) = libpq::fallback(service, "connect_timeout", "PGCONNECT_TIMEOUT")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&s| s > 0)
        {
            config.connect_timeout(Duration::from_secs(secs));
        }
        // A password holding an unencoded `@` splits the URL at its first `@` (as libpq does),
        // so the rest of the password would read as the host, and be shown.
        if config.get_hosts().iter().any(|h| match h {
            Host::Tcp(h) => h.contains('@'),
            Host::Unix(_) => false,
        }) {
            return Err(Error::Usage(format!(
                "{key}: the URL has an `@` after the one that ends the user and password: write \
                 an `@` inside a password as %40 (the password is not shown)"
            )));
        }
        if config.get_user().is_none() {
            let user = libpq::fallback(service, "user", "PGUSER")
                .or_else(|| whoami::username().ok())
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let name = libpq::fallback(service, "dbname", "PGDATABASE")
                .unwrap_or_else(|| config.get_user().unwrap_or_default().to_string());
            config.dbname(&name);
        }
        let mut target = Target {
            shown: String::new(),
            config,
            tls,
        };
        target.shown = target.describe();
        if target.config.get_password().is_none()
            && let Some(password) = target.password_from_environment()
        {
            target.config.password(&password);
        }
        Ok(target)
    }

    /// The URL without its password, as messages, events and reports show it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The target as the path-typed fields of events and reports carry it (no password).
    pub fn as_path(&self) -> PathBuf {
        PathBuf::from(&self.shown)
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The same server and user, another database.
    pub fn with_dbname(&self, dbname: &str) -> Target {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t.shown = t.describe();
        t
    }

    fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string().replace('/', "%2F"),
            None => String::new(),
        };
        let port = self
            .config
            .get_ports()
            .first()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "postgres://{}@{host}{port}/{}",
            self.config.get_user().unwrap_or_default(),
            self.dbname()
        )
    }

    /// The `PG*` variables that connect libpq's programs (`pg_dump`, `pg_restore`) to this
    /// target; the password travels here, never on a command line.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGDATABASE", self.dbname().to_string()),
            (
                "PGUSER",
                self.config.get_user().unwrap_or_default().to_string(),
            ),
            ("PGAPPNAME", "strata".to_string()),
        ];
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => env.push(("PGHOST", h.clone())),
            Some(Host::Unix(p)) => env.push(("PGHOST", p.display().to_string())),
            None => {}
        }
        if let Some(port) = self.config.get_ports().first() {
            env.push(("PGPORT", port.to_string()));
        }
        if let Some(p) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(p).into_owned()));
        }
        if let Some(o) = self.config.get_options() {
            env.push(("PGOPTIONS", o.to_string()));
        }
        if self.config.get_ssl_mode() == SslMode::Require {
            // As strata connects: verified against the same authority, with the same client
            // certificate. Without an authority file strata verified against the system's
            // store, which libpq before 16 cannot use: the tools then encrypt without verifying
            // a server strata has just verified.
            let root = libpq_file(self.tls.root_cert.as_deref(), "PGSSLROOTCERT", "root.crt");
            let mode = if root.is_some() {
                "verify-full"
            } else {
                "require"
            };
            env.push(("PGSSLMODE", mode.to_string()));
            let files = [
                ("PGSSLROOTCERT", root),
                (
                    "PGSSLCERT",
                    libpq_file(self.tls.cert.as_deref(), "PGSSLCERT", "postgresql.crt"),
                ),
                (
                    "PGSSLKEY",
                    libpq_file(self.tls.key.as_deref(), "PGSSLKEY", "postgresql.key"),
                ),
            ];
            for (var, file) in files {
                if let Some(file) = file {
                    env.push((var, file.display().to_string()));
                }
            }
        }
        env
    }

    /// `PGPASSWORD`, else the first matching line of the passfile.
    fn password_from_environment(&self) -> Option<String> {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            return Some(p);
        }
        let file = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
        let text = std::fs::read_to_string(file).ok()?;
        let host = match self.config.get_hosts().first()? {
            Host::Tcp(h) => h.clone(),
            // libpq matches a socket connection as `localhost`.
            Host::Unix(_) => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        passfile_lookup(
            &text,
            &host,
            port,
            self.dbname(),
            self.config.get_user().unwrap_or_default(),
        )
    }

    /// Connects, with `lock_timeout` as the longest wait for another writer's lock.
    pub fn connect(&self, lock_timeout: Duration) -> Result<Session, Error> {
        self.open(lock_timeout)?.ok_or_else(|| {
            Error::Usage(format!(
                "{}: the database does not exist; create it (`createdb {}`) or fix the URL \
                     (db/test_db in strata.toml, --db, --test-db)",
                self.shown,
                self.dbname()
            ))
        })
    }

    /// Connects; `None` when the server has no such database.
    pub fn open(&self, lock_timeout: Duration) -> Result<Option<Session>, Error> {
        let mut config = self.config.clone();
        config.application_name("strata");
        config.connect_timeout(Duration::from_secs(10));
        let connected = if self.config.get_ssl_mode() == SslMode::Require {
            config.connect(tls_connector(&self.tls).map_err(|why| {
                Error::Usage(format!("{}: sslmode=require, but {why}", self.shown))
            })?)
        } else {
            // `prefer`, the default, stays plain: TLS is what `sslmode=require` asks for, and
            // then the server's certificate is verified.
            config.connect(NoTls)
        };
        let mut client = match connected {
            Ok(c) => c,
            Err(e) if e.code() == Some(&postgres::error::SqlState::INVALID_CATALOG_NAME) => {
                return Ok(None);
            }
            Err(e) => return Err(self.connect_error(&e)),
        };
        let setup = session_setup(&mut client, lock_timeout)
            .and_then(|setup| client.batch_execute(&setup).map(|()| setup))
            .map_err(|e| self.error("cannot set the session up", e))?;
        Ok(Some(Session {
            client: Some(client),
            setup,
        }))
    }

    /// A failed connection, with what to check.
    pub(crate) fn connect_error(&self, e: &postgres::Error) -> Error {
        Error::Usage(format!(
            "cannot connect to {}: {}; check the URL (db/test_db in strata.toml, --db, \
             --test-db), that the server runs, and the password (PGPASSWORD or ~/.pgpass)",
            self.shown,
            describe_error(e)
        ))
    }

    /// A database error outside a step; a lock that did not come free becomes a refusal.
    pub(crate) fn error(&self, context: impl Into<String>, e: postgres::Error) -> Error {
        if is_lock_timeout(&e) {
            return Error::Refused(vec![crate::core::error::Refusal::Locked {
                db: self.as_path(),
            }]);
        }
        Error::Postgres {
            db: self.as_path(),
            context: context.into(),
            message: describe_error(&e),
        }
    }
}

/// libpq's TLS options that tokio-postgres does not read, taken out of `url`: `sslmode`
/// `verify-ca`/`verify-full` become `require` (which strata always verifies, name included),
/// and `sslrootcert`, `sslcert` and `sslkey` are returned apart. Other options stay for
/// tokio-postgres to judge.
/// The URL without its `service=` parameter (which the client does not know), and the service.
fn take_service(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut service = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("service=") {
            Some(name) => {
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                service = Some(name.into_owned());
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), service)
    } else {
        (format!("{base}?{}", kept.join("&")), service)
    }
}

fn libpq_tls_options(url: &str) -> (String, TlsFiles) {
    let mut files = TlsFiles::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), files);
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let path = |value: &str| {
            let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            Some(PathBuf::from(decoded.into_owned()))
        };
        match pair.split_once('=') {
            Some(("sslmode", "verify-full" | "verify-ca")) => kept.push("sslmode=require".into()),
            Some(("sslrootcert", value)) => files.root_cert = path(value),
            Some(("sslcert", value)) => files.cert = path(value),
            Some(("sslkey", value)) => files.key = path(value),
            _ => kept.push(pair.to_string()),
        }
    }
    if kept.is_empty() {
        (base.to_string(), files)
    } else {
        (format!("{base}?{}", kept.join("&")), files)
    }
}

/// A file libpq would use: the URL's, else the environment variable's, else `default` under
/// `~/.postgresql` when it exists.
fn libpq_file(given: Option<&Path>, variable: &str, default: &str) -> Option<PathBuf> {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(variable).map(PathBuf::from))
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let file = Path::new(&home).join(".postgresql").join(default);
            file.is_file().then_some(file)
        })
}

/// A TLS connector that verifies the server's certificate (and its name) against the
/// authority in `sslrootcert` (the URL), else `PGSSLROOTCERT`, else `~/.postgresql/root.crt`
/// (where libpq looks), else the system's store; and that presents a client certificate when
/// `sslcert` and `sslkey` (else `PGSSLCERT`/`PGSSLKEY`, else `~/.postgresql/postgresql.crt`
/// and `.key`) name one.
fn tls_connector(files: &TlsFiles) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certificates = |file: &Path| {
        CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{} cannot be read as PEM certificates: {e}", file.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    match libpq_file(files.root_cert.as_deref(), "PGSSLROOTCERT", "root.crt") {
        Some(file) => {
            const FIX: &str = "point sslrootcert (or PGSSLROOTCERT) at the certificate of the \
                               authority that signed the server's";
            let certs = certificates(&file).map_err(|e| format!("{e}; {FIX}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{} holds no usable certificate; {FIX}",
                    file.display()
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "the system has no root certificates to verify the server with; \
                            point sslrootcert (or PGSSLROOTCERT) at the certificate of the \
                            authority that signed the server's"
                        .into(),
                );
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS cannot be set up: {e}"))?
        .with_root_certificates(roots);
    let cert = libpq_file(files.cert.as_deref(), "PGSSLCERT", "postgresql.crt");
    let key = libpq_file(files.key.as_deref(), "PGSSLKEY", "postgresql.key");
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            private_to_user(&key)?;
            let chain = certificates(&cert)?;
            if chain.is_empty() {
                return Err(format!("{} holds no certificate", cert.display()));
            }
            let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                format!("{} cannot be read as a PEM private key: {e}", key.display())
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!(
                    "the client certificate {} and key {} do not go together: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        (Some(cert), None) => {
            return Err(format!(
                "the client certificate {} has no key; name it with sslkey (or PGSSLKEY)",
                cert.display()
            ));
        }
        (None, Some(key)) => {
            return Err(format!(
                "the client key {} has no certificate; name it with sslcert (or PGSSLCERT)",
                key.display()
            ));
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Refuses a private key others may read, as libpq does.
fn private_to_user(key: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key)
            .map_err(|e| format!("the client key {} cannot be read: {e}", key.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "the client key {} has group or world access; make it private (chmod 600)",
                key.display()
            ));
        }
    }
    Ok(())
}

/// Resets what a step may have changed on the session (settings, role, temp objects,
/// cursors, listeners, session advisory locks, cached plans), short of `DEALLOCATE ALL`, which
/// would also drop the client's own prepared statements: a step that prepares statements of its
/// own gets a fresh connection instead.
const RESET_SESSION: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
                             UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); \
                             DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES";

/// `s` as a dollar-quoted string constant (`$v$...$v$`, with a tag `s` does not contain), which
/// reads the same whatever the session's `standard_conforming_strings`, and which nothing in `s`
/// can end early.
pub(crate) fn dollar_quoted(s: &str) -> String {
    if !s.contains("$v") {
        return format!("$v${s}$v$");
    }
    let tag = (1..)
        .map(|n| format!("$v{n}$"))
        .find(|tag| !s.contains(tag.as_str()) && !format!("{s}$").contains(tag.as_str()))
        .expect("some tag is free");
    format!("{tag}{s}{tag}")
}

/// A connection, and the settings its session starts from (see `session_setup`).
pub struct Session {
    /// Always here, except while [`Session::lend`] has lent it out.
    client: Option<Client>,
    setup: String,
}

const LENT: &str = "the session's client is back once a lend returns";

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect(LENT)
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect(LENT)
    }
}

impl Session {
    /// Puts the session back as it was after connecting, in one round trip.
    pub fn reset(&mut self) -> Result<(), postgres::Error> {
        let setup = format!("{RESET_SESSION}; {}", self.setup);
        self.batch_execute(&setup)
    }

    /// Lends the client to `f` by value (a component's store must own what it uses) and takes
    /// it back.
    pub fn lend<R>(&mut self, f: impl FnOnce(Client) -> (Client, R)) -> R {
        let (client, r) = f(self.client.take().expect(LENT));
        self.client = Some(client);
        r
    }
}

/// What every strata session starts with, and goes back to after each step (see
/// [`Session::reset`]): the lock timeout, standard strings, and the user's `search_path`
/// without strata's own schema. A role named `strata` would otherwise find its `"$user"` schema
/// in strata's bookkeeping schema and create every unqualified table there.
pub(crate) fn session_setup(
    client: &mut Client,
    lock_timeout: Duration,
) -> Result<String, postgres::Error> {
    let row = client.query_one(
        "SELECT current_setting('search_path'), current_user::text",
        &[],
    )?;
    let (path, user): (String, String) = (row.get(0), row.get(1));
    let kept: Vec<&str> = path
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|s| {
            let name = s.trim_matches('"');
            name != ledger::SCHEMA_NAME && !(name == "$user" && user == ledger::SCHEMA_NAME)
        })
        .collect();
    let search_path = if kept.is_empty() {
        "''".to_string()
    } else {
        kept.join(", ")
    };
    Ok(format!(
        "SET lock_timeout = {}; SET standard_conforming_strings = on; SET search_path = {search_path}",
        lock_timeout.as_millis()
    ))
}

/// Whether `e` is PostgreSQL giving up on a lock (`lock_not_available`).
pub(crate) fn is_lock_timeout(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

/// The server's message with its detail and hint, or the client's error.
pub(crate) fn describe_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            // The client's own errors keep their cause (a TLS handshake names the certificate
            // problem there) one level down.
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// The password of the first passfile line matching the connection, as libpq reads
/// `hostname:port:database:username:password` (`*` matches anything, `\` escapes `:` and `\`).
fn passfile_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        let [h, p, d, u, password] = fields.as_slice() else {
            continue;
        };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(h, host) && matches(p, &port) && matches(d, db) && matches(u, user) {
            return Some(password.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url(Path::new("postgres://u@h/db")));
        assert!(is_url(Path::new("postgresql://h/db")));
        assert!(!is_url(Path::new("data/app.db")));
        assert!(!is_url(Path::new("postgres.db")));
    }

    #[test]
    fn the_password_is_never_shown() {
        let t = Target::parse("postgres://app:s3cret@db.example:6543/shop", "db").unwrap();
        assert_eq!(t.shown(), "postgres://app@db.example:6543/shop");
        assert!(!format!("{t:?} {t}").contains("s3cret"));
        assert_eq!(
            t.with_dbname("shop_test").shown(),
            "postgres://app@db.example:6543/shop_test"
        );
    }

    #[test]
    fn a_remembered_target_keeps_its_password_and_options_but_shows_neither() {
        let shown = remember(
            "postgres://app:pw9@127.0.0.1:5999/shop?options=-csearch_path%3Dx",
            "db",
        )
        .unwrap();
        assert_eq!(shown, Path::new("postgres://app@127.0.0.1:5999/shop"));
        let t = Target::parse(shown.to_str().unwrap(), "db").unwrap();
        assert_eq!(t.config.get_password(), Some(&b"pw9"[..]));
        assert_eq!(t.config.get_options(), Some("-csearch_path=x"));
    }

    #[test]
    fn libpq_tls_options_are_understood() {
        let (url, files) = libpq_tls_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x\
             &sslcert=c.crt&sslkey=c%20k.key",
        );
        assert_eq!(url, "postgres://u@h/db?sslmode=require&application_name=x");
        assert_eq!(
            files,
            TlsFiles {
                root_cert: Some("/etc/ca.pem".into()),
                cert: Some("c.crt".into()),
                key: Some("c k.key".into()),
            }
        );
        let t = Target::parse(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=ca.pem",
            "db",
        )
        .unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.tls.root_cert.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(
            libpq_tls_options("postgres://u@h/db").0,
            "postgres://u@h/db"
        );
    }

    #[test]
    fn the_database_defaults_to_the_user() {
        let t = Target::parse("postgres://app@localhost", "db").unwrap();
        assert_eq!(t.dbname(), "app");
    }

    #[test]
    fn sslmode_require_with_an_unreadable_root_certificate_says_what_to_fix() {
        let t = Target::parse("postgres://app@127.0.0.1:1/db?sslmode=require", "--db").unwrap();
        // SAFETY of the test: no other test in this binary reads PGSSLROOTCERT.
        unsafe { std::env::set_var("PGSSLROOTCERT", "/nonexistent/root.crt") };
        let e = t.connect(Duration::from_secs(1)).err().unwrap().to_string();
        unsafe { std::env::remove_var("PGSSLROOTCERT") };
        assert!(
            e.contains("PGSSLROOTCERT") && e.contains("/nonexistent/root.crt"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_url_names_its_key() {
        let e = Target::parse("postgres://app@h:notaport/db", "test_db").unwrap_err();
        assert!(e.to_string().starts_with("test_db:"), "{e}");
    }

    #[test]
    fn the_passfile_is_read_as_libpq_reads_it() {
        let file = "# comment\n\
                    other:5432:*:app:wrong\n\
                    db.example:5432:shop:app:pa\\:ss\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            passfile_lookup(file, "db.example", 5432, "shop", "app").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            passfile_lookup(file, "elsewhere", 5433, "x", "y").as_deref(),
            Some("fallback")
        );
        assert_eq!(passfile_lookup("h:1:d:u\n", "h", 1, "d", "u"), None);
    }
}
