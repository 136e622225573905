//! Where a database is: a SQLite path, or a PostgreSQL target read as libpq reads it (the URL,
//! a service file, `PGHOST`/`PGPORT`/`PGDATABASE`/`PGUSER`, `PGPASSWORD` or the passfile, and
//! the TLS files a URL names), shown without its password. A target is configuration: the
//! PostgreSQL backend connects to it (`crate::postgres`).
//!
//! A database is configuration's [`Database`]: which of the two it is is decided once, when the
//! value is parsed, and the PostgreSQL target keeps its password inside, shown nowhere.

#[cfg(feature = "postgres")]
mod libpq;

use std::fmt;
use std::path::{Path, PathBuf};
#[cfg(feature = "postgres")]
use std::str::FromStr;
#[cfg(feature = "postgres")]
use std::time::Duration;

#[cfg(feature = "postgres")]
use postgres::config::{Host, SslMode};

use crate::core::error::Error;
#[cfg(feature = "postgres")]
use crate::core::remote_url::is_loopback_host;

/// Where a database value came from, which decides where the password of the environment
/// may go (see [`Target::parse_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A flag or a variable of the environment (`--db`, `STRATA_DB`, `DATABASE_URL`): the
    /// operator's choice of server.
    Operator,
    /// The checkout's strata.toml (`db`, `test_db`, a fleet group): its own password is fine,
    /// but `PGPASSWORD` goes only to a server the environment itself names.
    Checkout,
}

/// A database strata works on, as strata.toml, a flag or a fleet group names it: a SQLite file,
/// or a PostgreSQL target (its password kept for the connection alone). Shown (`Display`,
/// [`Database::shown`]) as the path, or as the URL without its password and options.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A database on a PostgreSQL server.
    Postgres(Box<Target>),
}

impl Database {
    /// Reads a database value: a `postgres://` (or `postgresql://`) URL is a PostgreSQL target
    /// (parsed as [`Target::parse`] does, `key` naming where it came from in errors), anything
    /// else the path of a SQLite file, as given.
    pub fn parse(value: &Path, key: &str) -> Result<Database, Error> {
        Database::parse_from(value, key, Origin::Operator)
    }

    /// [`Database::parse`] for a value from `origin`.
    pub fn parse_from(value: &Path, key: &str, origin: Origin) -> Result<Database, Error> {
        match value.to_str() {
            Some(text) if is_url(text) => Database::postgres_from(text, key, origin),
            _ => Ok(Database::Sqlite(value.to_path_buf())),
        }
    }

    /// The PostgreSQL database at `url` (see [`Target::parse`]).
    pub fn postgres(url: &str, key: &str) -> Result<Database, Error> {
        Database::postgres_from(url, key, Origin::Operator)
    }

    /// [`Database::postgres`] for a URL from `origin`.
    pub fn postgres_from(url: &str, key: &str, origin: Origin) -> Result<Database, Error> {
        Ok(Database::Postgres(Box::new(Target::parse_from(
            url, key, origin,
        )?)))
    }

    /// The database as the path-typed fields of events, reports and errors carry it: the file,
    /// or the URL without its password and options.
    pub fn shown(&self) -> PathBuf {
        match self {
            Database::Sqlite(path) => path.clone(),
            Database::Postgres(target) => PathBuf::from(target.shown()),
        }
    }

    /// Whether it is a database on a server rather than a file.
    pub fn is_server(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// The SQLite file, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(target) => f.write_str(target.shown()),
        }
    }
}

/// Two values are one database when they are shown alike: the same path, or the same URL
/// without its password (see [`Target::same_database`] for every spelling of one server).
impl PartialEq for Database {
    fn eq(&self, other: &Database) -> bool {
        match (self, other) {
            (Database::Sqlite(a), Database::Sqlite(b)) => a == b,
            (Database::Postgres(a), Database::Postgres(b)) => a.shown() == b.shown(),
            _ => false,
        }
    }
}

impl Eq for Database {}

impl PartialEq<Path> for Database {
    fn eq(&self, other: &Path) -> bool {
        match self {
            Database::Sqlite(path) => path == other,
            Database::Postgres(target) => Path::new(target.shown()) == other,
        }
    }
}

impl PartialEq<Database> for PathBuf {
    fn eq(&self, other: &Database) -> bool {
        other == self.as_path()
    }
}

impl PartialEq<Database> for &Path {
    fn eq(&self, other: &Database) -> bool {
        other == *self
    }
}

/// Whether a database value is a PostgreSQL URL (asked once, where a value is parsed).
pub(crate) fn is_url(value: &str) -> bool {
    let value = value.trim_start();
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

/// A PostgreSQL database, in a strata built without PostgreSQL (the `postgres` feature): none
/// can be made, so [`Database::Postgres`] never occurs.
#[cfg(not(feature = "postgres"))]
#[derive(Clone, Debug)]
pub struct Target {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "postgres"))]
impl Target {
    /// Refuses a PostgreSQL URL, which this strata cannot connect to.
    pub fn parse_from(_url: &str, key: &str, _origin: Origin) -> Result<Target, Error> {
        Err(Error::Usage(format!(
            "{key}: a PostgreSQL URL, but this strata was built without PostgreSQL (the \
             `postgres` feature)"
        )))
    }

    pub fn shown(&self) -> &str {
        match self.never {}
    }

    pub fn dbname(&self) -> &str {
        match self.never {}
    }

    pub fn same_database(&self, _other: &Target) -> bool {
        match self.never {}
    }

    pub fn with_dbname(&self, _dbname: &str) -> Target {
        match self.never {}
    }

    pub fn with_schema(&self, _schema: &str) -> Target {
        match self.never {}
    }

    pub fn with_fleet_schemas(&self, _schemas: Vec<String>) -> Target {
        match self.never {}
    }

    pub fn tenant(&self) -> Option<&str> {
        match self.never {}
    }

    /// What a match arm on [`Database::Postgres`] does when there is no PostgreSQL.
    pub(crate) fn absent(&self) -> ! {
        match self.never {}
    }
}

#[cfg(not(feature = "postgres"))]
impl fmt::Display for Target {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

/// Whether `name` can be a tenant's schema: a lower-case unquoted identifier (`a`-`z`, digits,
/// `_`, not starting with a digit) of at most 56 bytes (its bookkeeping schema `strata_<name>`
/// must fit [`NAME_BYTES`]), and none of the server's or strata's own schemas (`pg_*`,
/// `information_schema`, `public`, `strata`, `strata_*`).
pub fn is_tenant_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= NAME_BYTES - "strata_".len()
        && !name.starts_with("pg_")
        && !name.starts_with("strata")
        && !matches!(name, "information_schema" | "public")
}

/// The longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes); it cuts longer ones.
pub const NAME_BYTES: usize = 63;

/// A name as the server keeps it: cut to [`NAME_BYTES`] bytes, on a character boundary.
pub fn server_name(name: &str) -> &str {
    let mut end = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// A PostgreSQL database strata connects to.
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub struct Target {
    pub(crate) config: postgres::Config,
    /// `postgres://user@host:port/dbname`: never the password.
    pub(crate) shown: String,
    /// The URL's TLS files (`sslrootcert`, `sslcert`, `sslkey`).
    pub(crate) tls: TlsFiles,
    /// Why the password of the environment (`PGPASSWORD`, a service file's) was kept back:
    /// strata.toml named a server the environment does not (see [`Target::parse_from`]);
    /// connecting is refused with this message.
    pub(crate) withheld: Option<String>,
    /// A tenant's schema (a schema-per-tenant fleet group): the run's `search_path` starts
    /// with it, and strata's bookkeeping is in `strata_<schema>` (see [`Target::book`]).
    pub(crate) tenant: Option<String>,
    /// The tenants' schemas strata.toml's schema-per-tenant groups list on this database (see
    /// [`Target::with_fleet_schemas`]): out of the database's own components' reach even
    /// before a tenant's first run made its bookkeeping.
    pub(crate) fleet_schemas: Vec<String>,
}

/// The files libpq's TLS options name, as the URL gave them.
#[cfg(feature = "postgres")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// `sslrootcert`: the authority to verify the server with.
    pub(crate) root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`: the client certificate (chain) and its private key.
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

#[cfg(feature = "postgres")]
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Target").field(&self.shown).finish()
    }
}

#[cfg(feature = "postgres")]
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(feature = "postgres")]
impl Target {
    /// Parses a `postgres://` URL; `key` names where it came from (`db`, `--test-db`, ...) in
    /// errors. The user defaults to `PGUSER` or the login name, the database to the user, the
    /// password to `PGPASSWORD` or the passfile (`PGPASSFILE`, else `~/.pgpass`).
    pub fn parse(url: &str, key: &str) -> Result<Target, Error> {
        Target::parse_from(url, key, Origin::Operator)
    }

    /// [`Target::parse`] for a URL from `origin`. A URL from the checkout (strata.toml) gets
    /// the password of the environment (`PGPASSWORD`, or a service file's) only when every
    /// server it names is one the environment itself names: loopback or a Unix socket, a host
    /// of `PGHOST`/`PGHOSTADDR` or the service, or the host of `STRATA_DB` or `DATABASE_URL`.
    /// Otherwise a hostile checkout could name its own server and collect the password of the
    /// machine it runs on; the passfile, which libpq matches by host, and a password written
    /// in the URL itself are used as ever. A password kept back makes [`Target::connect`]
    /// refuse, naming the host and the fix.
    pub fn parse_from(url: &str, key: &str, origin: Origin) -> Result<Target, Error> {
        // `#schema` after the URL: a tenant's schema on that database (as targets of a
        // schema-per-tenant group are shown).
        if let Some((base, schema)) = url.trim().rsplit_once('#')
            && !schema.contains(['@', '/', ':', '?', '&', '='])
        {
            if !is_tenant_schema(schema) {
                return Err(Error::Usage(format!(
                    "{key}: `#{schema}` names a tenant's schema, but a tenant's schema is \
                     lower-case letters, digits and '_', at most 56 bytes, and none of the \
                     server's or strata's own (pg_*, information_schema, public, strata*)"
                )));
            }
            return Ok(Target::parse_from(base, key, origin)?.with_schema(schema));
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
        let mut service_password = None;
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
                service_password = Some(password.clone());
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
            withheld: None,
            tenant: None,
            fleet_schemas: Vec::new(),
        };
        target.shown = target.describe();
        if target.config.get_password().is_none() {
            let named = environment_hosts(service);
            let foreign = match origin {
                Origin::Operator => None,
                Origin::Checkout => target.host_the_environment_does_not_name(&named),
            };
            // A passfile line for every host (`*`) is the operator's for the servers the
            // environment names, not for one only the checkout names.
            let wildcard_ok = |h: &Host| origin == Origin::Operator || environments(h, &named);
            let passfile = || target.password_from_passfile(&wildcard_ok);
            let (password, refusal) = match (&foreign, service_password) {
                (None, Some(p)) => (Some(p), None),
                (None, None) => match std::env::var("PGPASSWORD") {
                    Ok(p) => (Some(p), None),
                    Err(_) => passfile().settle(key, None),
                },
                // The passfile matches by host: a line naming every host the connection may
                // try, the same password for all, is the operator's for them.
                (Some(host), withheld) => {
                    let environment =
                        withheld.is_some() || std::env::var_os("PGPASSWORD").is_some();
                    passfile().settle(key, Some((host, environment)))
                }
            };
            target.withheld = refusal;
            if let Some(password) = password {
                target.config.password(&password);
            }
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

    /// Whether `other` names the same database on the same server as this target: the same
    /// port, the same host (every loopback spelling, `localhost`, `127.0.0.1`, `::1` and a
    /// Unix socket folder, is this machine), and the same database name as the server keeps
    /// it (cut to [`NAME_BYTES`]). Judged from the configuration alone; two host names of one
    /// server are told apart only after connecting.
    pub fn same_database(&self, other: &Target) -> bool {
        fn hosts(t: &Target) -> Vec<String> {
            t.config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(h) => {
                        let h = h.trim_start_matches('[').trim_end_matches(']');
                        let h = h.to_ascii_lowercase();
                        // Generous on purpose: two spellings taken for one server refuse a
                        // test database that might be the real one (`*.localhost` resolves to
                        // loopback on most systems), never send anything anywhere.
                        let here = is_loopback_host(&h) || h.ends_with(".localhost");
                        if here { "this machine".into() } else { h }
                    }
                    Host::Unix(_) => "this machine".into(),
                })
                .collect()
        }
        fn ports(t: &Target) -> Vec<u16> {
            match t.config.get_ports() {
                [] => vec![5432],
                p => p.to_vec(),
            }
        }
        let (a, b) = (hosts(self), hosts(other));
        let shared_host = a.iter().any(|h| b.contains(h));
        let shared_port = ports(self).iter().any(|p| ports(other).contains(p));
        shared_host && shared_port && server_name(self.dbname()) == server_name(other.dbname())
    }

    /// The same server and user, another database.
    pub fn with_dbname(&self, dbname: &str) -> Target {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t.shown = t.describe();
        t
    }

    /// The same database, as the tenant whose objects are in `schema` (a name
    /// [`is_tenant_schema`] accepts): shown with `#schema` after the URL.
    pub fn with_schema(&self, schema: &str) -> Target {
        let mut t = self.clone();
        t.tenant = Some(schema.to_string());
        t.shown = t.describe();
        t
    }

    /// The same target, knowing `schemas` as the tenants' schemas strata.toml's groups list
    /// on its database.
    pub fn with_fleet_schemas(&self, schemas: Vec<String>) -> Target {
        let mut t = self.clone();
        t.fleet_schemas = schemas;
        t
    }

    /// The tenants' schemas strata.toml's groups list on this database.
    pub fn fleet_schemas(&self) -> &[String] {
        &self.fleet_schemas
    }

    /// The tenant's schema, for a target of a schema-per-tenant group.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The schema of strata's bookkeeping on this target: `strata`, or `strata_<schema>` for
    /// a tenant's schema, so two tenants never share a ledger, an audit log or a lock.
    pub fn book(&self) -> String {
        match &self.tenant {
            None => "strata".to_string(),
            Some(schema) => format!("strata_{schema}"),
        }
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
        let schema = self
            .tenant
            .as_ref()
            .map(|s| format!("#{s}"))
            .unwrap_or_default();
        format!(
            "postgres://{}@{host}{port}/{}{schema}",
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

    /// The first server (host, socket folder or `hostaddr`) this target would connect to that
    /// the environment does not name (see [`environments`]), if any.
    fn host_the_environment_does_not_name(&self, named: &[String]) -> Option<String> {
        let hosts = self
            .config
            .get_hosts()
            .iter()
            .find(|h| !environments(h, named))
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            });
        hosts.or_else(|| {
            self.config
                .get_hostaddrs()
                .iter()
                .map(|a| a.to_string())
                .find(|a| !environments(&Host::Tcp(a.clone()), named))
        })
    }

    /// What the passfile (`PGPASSFILE`, else `~/.pgpass`) gives every host this target may
    /// try, each looked up as libpq looks it up (its host, its port); a line for every host
    /// (`*`) counts only for hosts `wildcard_ok` takes.
    fn password_from_passfile(&self, wildcard_ok: &dyn Fn(&Host) -> bool) -> Passfile {
        let Some(file) = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))
        else {
            return Passfile::default();
        };
        // A passfile that is not a regular file within the cap (`/dev/zero`, a FIFO) is not
        // read, as one that is missing.
        let Ok(Some(text)) =
            crate::core::input::read_project_text(&file, crate::core::input::CONFIG_BYTES)
        else {
            return Passfile::default();
        };
        let ports = self.config.get_ports();
        let user = self.config.get_user().unwrap_or_default();
        let mut found = Passfile::default();
        let addrs = self.config.get_hostaddrs();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            // libpq looks a host up by its name even when `hostaddr` sends the connection
            // elsewhere; where the address is one `wildcard_ok` does not take (only the
            // checkout names it), only a line naming the address is meant for it.
            let host = match addrs.get(i).map(|a| Host::Tcp(a.to_string())) {
                Some(addr) if !wildcard_ok(&addr) => addr,
                _ => host.clone(),
            };
            let host = &host;
            let name = passfile_host(host);
            let wildcard = wildcard_ok(host);
            let line = passfile_lookup(&text, &name, port, self.dbname(), user, wildcard);
            if !wildcard
                && line.is_none()
                && passfile_lookup(&text, &name, port, self.dbname(), user, true).is_some()
            {
                found.wildcard_skipped = true;
            }
            found.per_host.push(line);
        }
        found
    }
}

/// What the passfile gives each host of a target, in order.
#[cfg(feature = "postgres")]
#[derive(Debug, Default)]
struct Passfile {
    per_host: Vec<Option<String>>,
    /// A line for every host (`*`) matched a host it may not go to.
    wildcard_skipped: bool,
}

#[cfg(feature = "postgres")]
impl Passfile {
    /// The password to send, and why the connection is refused, if it is. The client sends
    /// one password to every host it tries, so the passfile gives one only when every host
    /// gets the same from a line naming it. `foreign`: the host only the checkout names, and
    /// whether the environment holds a password (`PGPASSWORD`, a service file's) kept back
    /// from it.
    fn settle(
        self,
        key: &str,
        foreign: Option<(&String, bool)>,
    ) -> (Option<String>, Option<String>) {
        let first = self.per_host.first().cloned().flatten();
        let same = first.is_some() && self.per_host.iter().all(|p| *p == first);
        if same {
            return (first, None);
        }
        let some = self.per_host.iter().any(Option::is_some);
        let refusal = match foreign {
            Some((host, environment)) if environment || some || self.wildcard_skipped => {
                let which = if host.starts_with('/') {
                    " (a Unix socket folder that other users can write to, or whose folder they \
                     can)"
                } else {
                    ""
                };
                Some(format!(
                    "`{key}` in strata.toml names the server {host}{which}, which the environment \
                     does not name, so the password of the environment (PGPASSWORD, a service \
                     file's, a passfile line for every host `*`) is not sent to it: a \
                     checkout's strata.toml could otherwise collect the password of the machine \
                     it runs on. If that server is meant, set PGHOST={host}, put its password in \
                     the passfile on a line naming it (~/.pgpass or PGPASSFILE; with several \
                     hosts, the same password on a line for each), or pass the URL in STRATA_DB \
                     (or --db) instead"
                ))
            }
            None if some => Some(format!(
                "the passfile (~/.pgpass or PGPASSFILE) gives the hosts of `{key}` different \
                 passwords (or some none), and the client sends one password to every host it \
                 tries, so none is sent: name one host in the URL, or give every host the same \
                 password on a line naming it"
            )),
            _ => None,
        };
        (None, refusal)
    }
}

/// The servers the environment names, to compare a checkout's hosts with: the hosts of
/// `PGHOST` and `PGHOSTADDR`, of the service (`host`, `hostaddr`), and of `STRATA_DB` and
/// `DATABASE_URL` (socket folders too), as [`name_key`] writes them.
#[cfg(feature = "postgres")]
fn environment_hosts(service: Option<&libpq::Service>) -> Vec<String> {
    let mut named: Vec<String> = Vec::new();
    let mut add =
        |list: &str| named.extend(list.split(',').map(name_key).filter(|h| !h.is_empty()));
    for var in ["PGHOST", "PGHOSTADDR"] {
        if let Ok(v) = std::env::var(var) {
            add(&v);
        }
    }
    if let Some(service) = service {
        for field in ["host", "hostaddr"] {
            if let Some(v) = service.get(field) {
                add(v);
            }
        }
    }
    for var in ["STRATA_DB", "DATABASE_URL"] {
        let Ok(url) = std::env::var(var) else {
            continue;
        };
        if !is_url(&url) {
            continue;
        }
        let (url, _) = take_service(url.trim());
        let (url, _) = libpq_tls_options(&url);
        if let Ok(config) = postgres::Config::from_str(&url) {
            for h in config.get_hosts() {
                match h {
                    Host::Tcp(h) => add(h),
                    Host::Unix(p) => add(&p.to_string_lossy()),
                }
            }
            for a in config.get_hostaddrs() {
                add(&a.to_string());
            }
        }
    }
    named
}

/// A host as [`environment_hosts`] compares it: brackets off and lowercase, a socket folder
/// without its trailing `/`.
#[cfg(feature = "postgres")]
fn name_key(host: &str) -> String {
    let host = host.trim();
    if host.starts_with('/') {
        let trimmed = host.trim_end_matches('/');
        return if trimmed.is_empty() { "/" } else { trimmed }.to_string();
    }
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// Whether `host` is a server the environment itself names, to which its password may go:
/// loopback ([`is_loopback_host`]), one of `named` ([`environment_hosts`]), or a Unix socket
/// folder that is libpq's default ([`libpq::DEFAULT_SOCKET_DIRS`]), that `named` holds, or
/// that no other user can put a socket in ([`private_folder`]).
#[cfg(feature = "postgres")]
fn environments(host: &Host, named: &[String]) -> bool {
    match host {
        Host::Tcp(h) => is_loopback_host(h) || named.contains(&name_key(h)),
        Host::Unix(p) => {
            let key = name_key(&p.to_string_lossy());
            libpq::DEFAULT_SOCKET_DIRS.contains(&key.as_str())
                || named.contains(&key)
                || private_folder(p)
        }
    }
}

/// Whether no other user can put a socket in the folder `dir` (or swap the folder): it and the
/// folder holding it, links followed, belong to this user or root and are writable by neither
/// group nor others (the holding folder may be a sticky one, as `/tmp`, where others cannot
/// move what is not theirs).
#[cfg(all(feature = "postgres", unix))]
pub(crate) fn private_folder(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let owned = |m: &std::fs::Metadata| m.uid() == me || m.uid() == 0;
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata(&dir) else {
        return false;
    };
    if !meta.is_dir() || !owned(&meta) || meta.mode() & 0o022 != 0 {
        return false;
    }
    let Some(parent) = dir.parent() else {
        return true;
    };
    std::fs::metadata(parent)
        .is_ok_and(|m| owned(&m) && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0))
}

#[cfg(all(feature = "postgres", not(unix)))]
pub(crate) fn private_folder(_dir: &Path) -> bool {
    false
}

/// The host name libpq looks a passfile line up by: the host, or for a Unix socket `localhost`
/// when the folder is a default one, else the folder (`passwordFromFile`).
#[cfg(feature = "postgres")]
fn passfile_host(host: &Host) -> String {
    match host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => {
            let key = name_key(&p.to_string_lossy());
            if libpq::DEFAULT_SOCKET_DIRS.contains(&key.as_str()) {
                "localhost".into()
            } else {
                p.to_string_lossy().into_owned()
            }
        }
    }
}

/// libpq's TLS options that tokio-postgres does not read, taken out of `url`: `sslmode`
/// `verify-ca`/`verify-full` become `require` (which strata always verifies, name included),
/// and `sslrootcert`, `sslcert` and `sslkey` are returned apart. Other options stay for
/// tokio-postgres to judge.
/// The URL without its `service=` parameter (which the client does not know), and the service.
#[cfg(feature = "postgres")]
pub(crate) fn take_service(url: &str) -> (String, Option<String>) {
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

#[cfg(feature = "postgres")]
pub(crate) fn libpq_tls_options(url: &str) -> (String, TlsFiles) {
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
#[cfg(feature = "postgres")]
pub(crate) fn libpq_file(given: Option<&Path>, variable: &str, default: &str) -> Option<PathBuf> {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(variable).map(PathBuf::from))
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let file = Path::new(&home).join(".postgresql").join(default);
            file.is_file().then_some(file)
        })
}

/// The password of the first passfile line matching the connection, as libpq reads
/// `hostname:port:database:username:password` (`*` matches anything, `\` escapes `:` and `\`).
/// Without `wildcard_host`, a line whose host is `*` is passed over.
#[cfg(feature = "postgres")]
pub(crate) fn passfile_lookup(
    text: &str,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
    wildcard_host: bool,
) -> Option<String> {
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
        if h == "*" && !wildcard_host {
            continue;
        }
        if matches(h, host) && matches(p, &port) && matches(d, db) && matches(u, user) {
            return Some(password.clone());
        }
    }
    None
}

#[cfg(all(test, feature = "postgres", unix))]
mod tests {
    use super::*;

    fn settle(
        per_host: &[Option<&str>],
        skipped: bool,
        foreign: Option<bool>,
    ) -> (Option<String>, bool) {
        let passfile = Passfile {
            per_host: per_host.iter().map(|p| p.map(str::to_string)).collect(),
            wildcard_skipped: skipped,
        };
        let host = "192.0.2.2".to_string();
        let (password, refusal) = passfile.settle("db", foreign.map(|e| (&host, e)));
        (password, refusal.is_some())
    }

    #[test]
    fn the_passfile_gives_one_password_only_when_every_host_gets_it() {
        let same = Some("pw".to_string());
        assert_eq!(
            settle(&[Some("pw"), Some("pw")], false, None),
            (same.clone(), false)
        );
        assert_eq!(
            settle(&[Some("pw"), Some("pw")], false, Some(true)),
            (same, false)
        );
        // One host without a line, or another password: none is sent, and that is said.
        for per_host in [
            &[Some("pw"), None][..],
            &[Some("a"), Some("b")],
            &[None, Some("b")],
        ] {
            assert_eq!(settle(per_host, false, None), (None, true), "{per_host:?}");
            assert_eq!(
                settle(per_host, false, Some(false)),
                (None, true),
                "{per_host:?}"
            );
        }
        // No line at all: nothing to send, refused only when the environment kept one back.
        assert_eq!(settle(&[None], false, None), (None, false));
        assert_eq!(settle(&[None], false, Some(false)), (None, false));
        assert_eq!(settle(&[None], false, Some(true)), (None, true));
        assert_eq!(settle(&[None], true, Some(false)), (None, true));
        assert_eq!(settle(&[], false, None), (None, false));
    }

    #[test]
    fn a_host_is_the_environments_when_it_names_it() {
        let named = vec![name_key("[DB.Example]"), name_key("/srv/pg/")];
        let tcp = |h: &str| Host::Tcp(h.into());
        for host in ["localhost", "127.0.0.1", "::1", "db.example", "DB.EXAMPLE"] {
            assert!(environments(&tcp(host), &named), "{host}");
        }
        for host in ["db.localhost", "192.0.2.2", "0.0.0.0", "other.example"] {
            assert!(!environments(&tcp(host), &named), "{host}");
        }
        let unix = |p: &Path| Host::Unix(p.to_path_buf());
        for dir in [
            "/var/run/postgresql",
            "/tmp",
            "/tmp/",
            "/srv/pg",
            "/srv/pg/",
        ] {
            assert!(environments(&unix(Path::new(dir)), &named), "{dir}");
        }
        // A folder of the checkout's: only when no other user can write it or its folder.
        use std::os::unix::fs::PermissionsExt as _;
        let top = tempfile::tempdir().unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = top.path().join("sock");
        std::fs::create_dir(&dir).unwrap();
        for (mode, top_mode, ok) in [
            (0o700, 0o700, true),
            (0o755, 0o1777, true),
            (0o1777, 0o700, false),
            (0o770, 0o700, false),
            (0o700, 0o777, false),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(top_mode))
                .unwrap();
            assert_eq!(
                environments(&unix(&dir), &[]),
                ok,
                "{mode:o} in {top_mode:o}"
            );
        }
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!environments(&unix(&top.path().join("gone")), &[]));
        // libpq looks a socket up as `localhost` only in its default folders.
        assert_eq!(passfile_host(&unix(Path::new("/tmp/"))), "localhost");
        assert_eq!(passfile_host(&unix(&dir)), dir.display().to_string());
        assert_eq!(passfile_host(&tcp("db.example")), "db.example");
    }
}
