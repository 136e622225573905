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
pub mod model;
pub(crate) mod reach;
pub mod restore;
pub mod run;
pub mod schema;
pub(crate) mod server_wide;
pub(crate) mod server_wide_calls;
pub(crate) mod set_based;
pub(crate) mod statement_cache;
pub(crate) use crate::core::sql::postgres as script;
pub mod step;

use std::path::Path;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, NoTls};

use crate::core::error::{DbCode, Error};
use crate::core::target::{Target, TlsFiles, libpq_file};

impl Target {
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
        if let Some(why) = &self.withheld {
            return Err(Error::Usage(format!("{}: {why}", self.shown)));
        }
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
            Err(e) => return Err(self.connect_error(e)),
        };
        let (setup, user) = session_setup(&mut client, lock_timeout, self.tenant())
            .and_then(|(setup, user)| client.batch_execute(&setup).map(|()| (setup, user)))
            .map_err(|e| self.error("cannot set the session up", e))?;
        Ok(Some(Session {
            client: Some(client),
            setup,
            user,
            checks: None,
            record: None,
            book: self.book(),
            fleet_schemas: self.fleet_schemas().to_vec(),
        }))
    }

    /// A failed connection, with what to check: an unreachable server is
    /// [`Error::Unavailable`]; a refused password, certificate or URL is bad input.
    pub(crate) fn connect_error(&self, e: postgres::Error) -> Error {
        if is_unavailable(&e) {
            return self.error("cannot connect", e);
        }
        Error::Usage(format!(
            "cannot connect to {}: {}; check the URL (db/test_db in strata.toml, --db, \
             --test-db), that the server runs, and the password (PGPASSWORD or ~/.pgpass)",
            self.shown,
            describe_error(&e)
        ))
    }

    /// A database error outside a step, with its SQLSTATE and the driver's error kept; a lock
    /// that did not come free becomes a refusal, a server that cannot be reached
    /// [`Error::Unavailable`].
    pub(crate) fn error(&self, context: impl Into<String>, e: postgres::Error) -> Error {
        if is_lock_timeout(&e) {
            return Error::Refused(vec![crate::core::error::Refusal::Locked {
                db: self.as_path(),
            }]);
        }
        let db = self.as_path();
        let context = context.into();
        let sqlstate = e.code().map(|c| c.code().to_string());
        let message = describe_error(&e);
        let unavailable = is_unavailable(&e);
        let source = Some(Box::new(e) as crate::core::error::BoxError);
        if unavailable {
            return Error::Unavailable {
                db,
                context,
                sqlstate,
                message,
                source,
            };
        }
        Error::Postgres {
            db,
            context,
            sqlstate,
            message,
            source,
        }
    }
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
        let pem = read_credential(file)?;
        CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
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
            let key_der = PrivateKeyDer::from_pem_slice(&read_credential(&key)?).map_err(|e| {
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

/// A TLS file the URL or the environment names, read only as a regular file of at most
/// [`CONFIG_BYTES`](crate::core::input::CONFIG_BYTES) (`sslrootcert=/dev/zero` or a FIFO is
/// refused, never read).
fn read_credential(file: &Path) -> Result<Vec<u8>, String> {
    match crate::core::input::read_project_file(file, crate::core::input::CONFIG_BYTES) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!("{} does not exist", file.display())),
        Err(e) => Err(e.to_string()),
    }
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
/// cursors, listeners, session advisory locks), short of `DEALLOCATE ALL`, which would also
/// drop the client's own prepared statements: a step that prepares statements of its own gets
/// a fresh connection instead. Cached plans are kept: the server replans whatever a change of
/// the catalogs or the settings concerns, so they cannot carry a step's effect to the next, and
/// strata's own checks ([`Checks`]) are planned once per connection instead of twice a step.
const RESET_SESSION: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
                             UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); \
                             DISCARD TEMP; DISCARD SEQUENCES";

/// Whether PostgreSQL's own parser (libpg_query, the server's grammar compiled in) reads one
/// statement: its syntax error otherwise. Names are not resolved: that needs the server.
pub(crate) fn syntax(statement: &str) -> Result<(), String> {
    match pg_query::parse(statement) {
        Ok(_) => Ok(()),
        Err(pg_query::Error::Parse(why)) => Err(why),
        Err(e) => Err(e.to_string()),
    }
}

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
    /// The statement that puts the user's own settings back for the rest of a transaction
    /// (see `session_setup`); empty when none differs from strata's.
    user: String,
    /// strata's checks of a step, prepared on this connection at its first step.
    checks: Option<Checks>,
    /// The statement that records what a step created, kept prepared (the client closes a
    /// statement it no longer holds), with its name (see [`Session::record_name`]).
    record: Option<(postgres::Statement, Option<String>)>,
    /// The schema of strata's bookkeeping here (`strata`, or a tenant's `strata_<schema>`).
    book: String,
    /// The tenants' schemas strata.toml lists on this database (`Target::fleet_schemas`).
    fleet_schemas: Vec<String>,
}

/// The two checks every step makes, prepared once per connection so that the server plans them
/// once (planning them took three times as long as running them, and longer than a step's own
/// `CREATE TABLE`): the fingerprint of strata's bookkeeping (`ledger::SIGNATURE`), and the
/// same with the objects that could write strata's tables later (`ledger::WRITERS`).
///
/// A step's SQL can `DEALLOCATE` a prepared statement and `PREPARE` another of the same name,
/// which would then answer in its place: so before a step commits, [`Checks::VERIFY`] must find
/// both still prepared by the client (`from_sql` false in `pg_prepared_statements`, with their
/// text). SQL (`PREPARE`, from a script or a function) can only make statements with `from_sql`
/// true, and the client prepares each text once a connection, so two found that way are the
/// two strata prepared.
pub struct Checks {
    pub signature: postgres::Statement,
    pub check: postgres::Statement,
    /// `EXECUTE` of [`Checks::signature`] by its name, for a batch of the simple query
    /// protocol (a statement the client prepared is the server's named prepared statement, as
    /// one from SQL's `PREPARE` is, with its plan); `None` if the client did not say its name.
    pub execute_signature: Option<String>,
    /// [`Checks::check_or_fail_sql`], kept prepared (the client closes a statement it no
    /// longer holds).
    pub check_or_fail: postgres::Statement,
    /// Its name, to `EXECUTE` the check of a step's last action in the batch that commits the
    /// step; `None` if the client did not say it.
    pub check_or_fail_name: Option<String>,
}

/// The name the client gave a statement it prepared: the client says it only in the
/// statement's `Debug` form (`Statement { name: "s3", .. }`), so nothing but letters, digits
/// and underscores is taken.
fn statement_name(statement: &postgres::Statement) -> Option<String> {
    let shown = format!("{statement:?}");
    let rest = shown.split_once("name: \"")?.1;
    let name = &rest[..rest.find('"')?];
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then(|| name.to_string())
}

impl Checks {
    /// The text of [`Checks::check`].
    fn check_sql(book: &str) -> String {
        format!(
            "SELECT ({}), pg_catalog.array_to_string(ARRAY({}), ', ')",
            ledger::in_book(book, ledger::SIGNATURE),
            ledger::in_book(book, ledger::WRITERS)
        )
    }

    /// [`Checks::verify_sql`] as a statement that fails (`22P02`, naming
    /// [`Checks::REPLACED`]) unless both are, to stop a batch before its `COMMIT`.
    pub fn verify_or_fail_sql() -> &'static str {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| Checks::build_verify_or_fail_sql(ledger::SCHEMA_NAME));
        &SQL
    }

    fn build_verify_or_fail_sql(book: &str) -> String {
        format!(
            "SELECT CAST(CASE WHEN ({}) THEN '1' ELSE '{}' END AS pg_catalog.int4)",
            Checks::build_verify_sql(book),
            Checks::REPLACED
        )
    }

    /// What [`Checks::verify_or_fail_sql`]'s error names.
    pub const REPLACED: &str = "strata: its prepared checks were replaced";

    /// [`Checks::check`] as a statement that fails (`22P02`, naming [`Checks::CHANGED`])
    /// unless strata's bookkeeping still has the fingerprint `$1` and nothing could write it
    /// later, to stop a batch before its `COMMIT`.
    fn check_or_fail_sql(book: &str) -> String {
        format!(
            "SELECT CAST(CASE WHEN c.signature OPERATOR(pg_catalog.=) $1::pg_catalog.text \
             AND c.writers OPERATOR(pg_catalog.=) '' THEN '1' ELSE '{}' END AS pg_catalog.int4) \
             FROM ({}) AS c(signature, writers)",
            Checks::CHANGED,
            Checks::check_sql(book)
        )
    }

    /// What [`Checks::check_or_fail_sql`]'s error names.
    pub const CHANGED: &str = "strata: its bookkeeping changed";

    /// A query of one row, `t` when the three statements of the checks and the one that
    /// records a step's objects ([`Session::record_name`], prepared at the first step, before
    /// any commit runs this) are still the ones the client prepared.
    ///
    /// The texts are compared by their SHA-256 (the server's `sha256`, PostgreSQL 11+), so a
    /// step sends and the server parses 64-digit digests instead of 8 KB of statement text
    /// (0.25 ms a check against 0.15 ms, 3,000 checks a round, psql on PostgreSQL 15). A
    /// statement `from_sql` false can only be one the client prepared, so the digest guards
    /// against the client's own statements only, and finding a second text with a given
    /// SHA-256 is beyond reach. The texts are ASCII, the same bytes in every server encoding.
    pub fn verify_sql() -> &'static str {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| Checks::build_verify_sql(ledger::SCHEMA_NAME));
        &SQL
    }

    fn build_verify_sql(book: &str) -> String {
        use sha2::Digest as _;
        let digest = |text: &str| crate::core::checksum::hex(&sha2::Sha256::digest(text));
        format!(
            "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 4 \
             FROM pg_catalog.pg_prepared_statements \
             WHERE pg_catalog.sha256(pg_catalog.convert_to(statement, 'UTF8')) \
             OPERATOR(pg_catalog.=) ANY (ARRAY[pg_catalog.decode('{}', 'hex'), \
             pg_catalog.decode('{}', 'hex'), pg_catalog.decode('{}', 'hex'), \
             pg_catalog.decode('{}', 'hex')]) AND NOT from_sql",
            digest(&ledger::in_book(book, ledger::SIGNATURE)),
            digest(&Checks::check_sql(book)),
            digest(&Checks::check_or_fail_sql(book)),
            digest(&schema::record_step_prepared_sql(book))
        )
    }
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
    /// The schema of strata's bookkeeping on this connection's target: `strata`, or a
    /// tenant's `strata_<schema>`.
    pub fn book(&self) -> &str {
        &self.book
    }

    /// The tenants' schemas strata.toml's groups list on this connection's database.
    pub fn fleet_schemas(&self) -> &[String] {
        &self.fleet_schemas
    }

    /// [`Checks::verify_sql`] for this session's bookkeeping.
    pub fn verify_sql(&self) -> std::borrow::Cow<'static, str> {
        if self.book == ledger::SCHEMA_NAME {
            Checks::verify_sql().into()
        } else {
            Checks::build_verify_sql(&self.book).into()
        }
    }

    /// [`Checks::verify_or_fail_sql`] for this session's bookkeeping.
    pub fn verify_or_fail_sql(&self) -> std::borrow::Cow<'static, str> {
        if self.book == ledger::SCHEMA_NAME {
            Checks::verify_or_fail_sql().into()
        } else {
            Checks::build_verify_or_fail_sql(&self.book).into()
        }
    }

    /// Puts the session back as it was after connecting, in one round trip.
    pub fn reset(&mut self) -> Result<(), postgres::Error> {
        let setup = format!("{RESET_SESSION}; {}", self.setup);
        self.batch_execute(&setup)
    }

    /// The name of the `INSERT` that records what a step created
    /// (`schema::record_step_prepared_sql`), prepared on the first call on this connection,
    /// for the batch that commits a step to `EXECUTE` after [`Checks::verify_or_fail_sql`]
    /// found it still the client's; `None` if the client did not say it (the step then sends
    /// the `INSERT` as text). Call it where strata's settings hold (the unqualified operators
    /// of its text are resolved as it is prepared), with strata's tables there.
    pub fn record_name(&mut self) -> Result<Option<String>, postgres::Error> {
        if self.record.is_none() {
            let sql = schema::record_step_prepared_sql(&self.book);
            let record = self.prepare(&sql)?;
            // `plan_cache_mode` is PostgreSQL 12+; before, the statement is sent as text.
            let generic: bool = self
                .query_one(
                    "SELECT pg_catalog.current_setting('plan_cache_mode', true) IS NOT NULL",
                    &[],
                )?
                .get(0);
            let name = statement_name(&record).filter(|_| generic);
            self.record = Some((record, name));
        }
        Ok(self.record.as_ref().and_then(|(_, name)| name.clone()))
    }

    /// strata's checks of a step, prepared on the first call on this connection.
    pub fn checks(&mut self) -> Result<&Checks, postgres::Error> {
        if self.checks.is_none() {
            let book = self.book.clone();
            let signature = self.prepare(&ledger::in_book(&book, ledger::SIGNATURE))?;
            let check = self.prepare(&Checks::check_sql(&book))?;
            let check_or_fail = self.prepare(&Checks::check_or_fail_sql(&book))?;
            let execute_signature =
                statement_name(&signature).map(|name| format!("EXECUTE {name}"));
            self.checks = Some(Checks {
                signature,
                check,
                execute_signature,
                check_or_fail_name: statement_name(&check_or_fail),
                check_or_fail,
            });
        }
        Ok(self.checks.as_ref().expect("prepared above"))
    }

    /// Puts the session's settings back as they were after connecting (strata's, see
    /// [`PIN`]), keeping its locks, temp objects and cursors: between the transactions of a
    /// session that holds session-level locks (an undo's).
    pub fn reset_settings(&mut self) -> Result<(), postgres::Error> {
        let sql = format!("RESET ALL; {}", self.setup);
        self.batch_execute(&sql)
    }

    /// Runs `end` (a `COMMIT`, a `RELEASE SAVEPOINT`) and then, in the same round trip, puts the
    /// session back as [`Session::reset`] does; an error does not say which of the two failed.
    pub fn reset_after(&mut self, end: &str) -> Result<(), postgres::Error> {
        let sql = format!("{end}; {}", self.reset_sql());
        self.batch_execute(&sql)
    }

    /// The statements of [`Session::reset`], to end a batch that has committed.
    pub fn reset_sql(&self) -> String {
        format!("{RESET_SESSION}; {}", self.setup)
    }

    /// The statement that puts the user's settings (the database's and the role's defaults, as
    /// the session had them when it connected) back for the rest of the current transaction,
    /// for the user's SQL there; empty when they are strata's. strata's own statements after
    /// the user's in that transaction run [`PIN`] first.
    pub fn user_settings(&self) -> &str {
        &self.user
    }

    /// Lends the client to `f` by value (a component's store must own what it uses) and takes
    /// it back.
    pub fn lend<R>(&mut self, f: impl FnOnce(Client) -> (Client, R)) -> R {
        let (client, r) = f(self.client.take().expect(LENT));
        self.client = Some(client);
        r
    }
}

/// The settings strata's own statements run under, whatever the database's or the role's
/// defaults or a migration's `SET` say: with another `search_path` an operator (`=`) or a
/// function strata names could be the user's own (an undo once emptied the whole ledger that
/// way), and the others change how the server reads literals and arrays, or how it writes
/// values as text. A session is set to these when it connects and after each step; the user's
/// own values (see [`Session::user_settings`]) are put back only for a step's or an undo's SQL,
/// inside its transaction, and [`PIN`] sets these again before strata's statements that follow
/// it there. `session_replication_role` is only ever set when it differs (setting it needs
/// superuser rights).
const PINNED: &[(&str, &str)] = &[
    ("search_path", "pg_catalog, pg_temp"),
    ("array_nulls", "on"),
    ("transform_null_equals", "off"),
    ("standard_conforming_strings", "on"),
    ("backslash_quote", "safe_encoding"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("TimeZone", "UTC"),
    ("row_security", "on"),
    ("session_replication_role", "origin"),
];

/// Settings the user's SQL runs under as strata pins them, not as the user's defaults say:
/// the lexer's (a migration may still `SET` them itself) and the client's encoding.
const NOT_THE_USERS: &[&str] = &["standard_conforming_strings", "client_encoding"];

/// One statement, immune to any setting, that sets [`PINNED`] for the rest of the current
/// transaction: run after the user's SQL, before strata's own statements in the same
/// transaction. Every function and operator is qualified, every literal is plain.
pub const PIN: &str = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true), pg_catalog.set_config('array_nulls', 'on', true), pg_catalog.set_config('transform_null_equals', 'off', true), pg_catalog.set_config('standard_conforming_strings', 'on', true), pg_catalog.set_config('backslash_quote', 'safe_encoding', true), pg_catalog.set_config('client_encoding', 'UTF8', true), pg_catalog.set_config('DateStyle', 'ISO, MDY', true), pg_catalog.set_config('IntervalStyle', 'postgres', true), pg_catalog.set_config('extra_float_digits', '1', true), pg_catalog.set_config('bytea_output', 'hex', true), pg_catalog.set_config('TimeZone', 'UTC', true), pg_catalog.set_config('row_security', 'on', true), CASE WHEN pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'origin' THEN pg_catalog.set_config('session_replication_role', 'origin', true) END";

/// What every strata session starts with, and goes back to after each step (see
/// [`Session::reset`]): the lock timeout and [`PINNED`]; and the statement that puts the
/// user's own values back inside a transaction (empty when none differs): the session's
/// settings when it connected (the database's and the role's defaults), with strata's own
/// schema left out of the `search_path`. A role named `strata` would otherwise find its
/// `"$user"` schema in strata's bookkeeping schema and create every unqualified table there.
/// A tenant's (a target of a schema-per-tenant group) `search_path` is its schema, then
/// `pg_catalog`, whatever the defaults say.
pub(crate) fn session_setup(
    client: &mut Client,
    lock_timeout: Duration,
    tenant: Option<&str>,
) -> Result<(String, String), postgres::Error> {
    let read: Vec<String> = PINNED
        .iter()
        .map(|(name, _)| format!("pg_catalog.current_setting('{name}')"))
        .collect();
    let row = client.query_one(
        &format!("SELECT CURRENT_USER::pg_catalog.text, {}", read.join(", ")),
        &[],
    )?;
    let user: String = row.get(0);
    let mut setup = format!("SET lock_timeout = {}", lock_timeout.as_millis());
    let mut users = Vec::new();
    for (i, (name, pinned)) in PINNED.iter().enumerate() {
        let mut value: String = row.get(i + 1);
        if *name == "search_path" {
            let kept: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .filter(|s| {
                    let name = s.trim_matches('"');
                    name != ledger::SCHEMA_NAME && !(name == "$user" && user == ledger::SCHEMA_NAME)
                })
                .collect();
            value = kept.join(", ");
            // A tenant's SQL runs in its schema: first on the path, then the catalog only.
            if let Some(tenant) = tenant {
                // Quoted: a tenant may be named as one of SQL's keywords (`user`).
                value = format!("{}, pg_catalog", crate::core::data::quote_ident(tenant));
            }
        }
        if value == *pinned {
            continue;
        }
        setup.push_str(&format!(
            "; SELECT pg_catalog.set_config('{name}', '{pinned}', false)"
        ));
        if !NOT_THE_USERS.contains(name) {
            users.push(format!(
                "pg_catalog.set_config('{name}', {}, true)",
                dollar_quoted(&value)
            ));
        }
    }
    let users = if users.is_empty() {
        String::new()
    } else {
        format!("SELECT {}", users.join(", "))
    };
    Ok((setup, users))
}

/// The first two columns of the rows `sql` returns from `target`, in a read-only
/// transaction, as text, at most `limit` of them: a fleet's targets from a control database.
/// One statement only (the extended protocol), so a query cannot end the transaction and
/// write; read through a portal a thousand rows at a time, so the server sends no more than
/// `limit` (and a few) whatever the query would give.
pub(crate) fn pairs(
    target: &Target,
    lock_timeout: Duration,
    sql: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, Error> {
    let mut session = target.connect(lock_timeout)?;
    let user = session.user_settings().to_string();
    let mut tx = session
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| target.error("cannot start a read-only transaction", e))?;
    // The query is the user's: it runs under the user's settings.
    if !user.is_empty() {
        tx.batch_execute(&user)
            .map_err(|e| target.error("cannot set the user's settings", e))?;
    }
    let portal = tx
        .bind(sql, &[])
        .map_err(|e| target.error("cannot run the fleet's query", e))?;
    let mut out = Vec::new();
    while out.len() < limit {
        let chunk = i32::try_from((limit - out.len()).min(1000)).unwrap_or(1000);
        let rows = tx
            .query_portal(&portal, chunk)
            .map_err(|e| target.error("cannot run the fleet's query", e))?;
        for row in &rows {
            out.push(pair_of(target, row, out.len())?);
        }
        // Fewer than asked for: the query has no more.
        if rows.len() < usize::try_from(chunk).unwrap_or(0) {
            break;
        }
    }
    Ok(out)
}

/// Row `i` (from 0) of a fleet's query as a pair of texts.
fn pair_of(target: &Target, row: &postgres::Row, i: usize) -> Result<(String, String), Error> {
    let pair = (row.len() >= 2)
        .then(|| {
            Some((
                row.try_get::<_, Option<String>>(0).ok()??,
                row.try_get::<_, Option<String>>(1).ok()??,
            ))
        })
        .flatten();
    pair.ok_or_else(|| {
        Error::Usage(format!(
            "{target}: row {} of the fleet's query is not two text values (a target's \
             name and its database; cast others with ::text)",
            i + 1
        ))
    })
}

/// Whether `e` is PostgreSQL giving up on a lock (`lock_not_available`).
pub(crate) fn is_lock_timeout(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

/// Whether `e` means the server cannot be reached or is going away, rather than that it
/// refused what it was asked: connecting failed (refused, a host name that does not resolve,
/// no answer within the connect timeout), the connection broke or was closed, or the server
/// said so (SQLSTATE class 08, connection exception; 57P01-57P03, shutting down or starting).
/// A refused password, a certificate that does not verify or a read-only server are not.
pub(crate) fn is_unavailable(e: &postgres::Error) -> bool {
    if let Some(code) = e.code() {
        return DbCode::SqlState(code.code().to_string()).is_unavailable();
    }
    if e.is_closed() {
        return true;
    }
    // The client's kinds are private; their names are what its errors show first.
    let shown = e.to_string();
    let kind = |name: &str| shown.starts_with(name);
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    if kind("error connecting to server") {
        // `target_session_attrs` not met is a permission, not an outage.
        return io.is_none_or(|io| io.kind() != std::io::ErrorKind::PermissionDenied);
    }
    kind("error communicating with the server") || kind("timeout waiting for server")
}

/// The server's message with its detail and hint, or the client's error.
pub(crate) fn describe_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", bounded(db.message()), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {}", bounded(d)));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {}", bounded(h)));
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

/// The most bytes of one part of a server's error (message, detail, hint) that strata keeps.
const ERROR_PART_BYTES: usize = 2048;

/// `text` cut to [`ERROR_PART_BYTES`] at a character boundary, saying how much was cut: the
/// server quotes values in its errors whole (`invalid input syntax for type integer: "..."`), and
/// a value can be a gigabyte; the error is kept, shown and audited.
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= ERROR_PART_BYTES {
        return text.into();
    }
    let mut end = ERROR_PART_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} more bytes)", &text[..end], text.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::target::{Database, is_url, libpq_tls_options, passfile_lookup};

    #[test]
    fn the_checks_compared_by_digest_are_ascii_in_every_server_encoding() {
        // `convert_to(statement, 'UTF8')` gives the bytes hashed here only if every server
        // encoding stores the texts as they were sent.
        assert!(ledger::SIGNATURE.is_ascii());
        assert!(Checks::check_sql("strata").is_ascii());
        assert!(Checks::check_or_fail_sql("strata").is_ascii());
        assert!(schema::record_step_prepared_sql("strata").is_ascii());
        assert!(Checks::verify_or_fail_sql().contains(Checks::verify_sql()));
    }

    #[test]
    fn a_server_error_keeps_a_bounded_part_of_a_huge_quoted_value() {
        let huge = format!(
            "invalid input syntax for type integer: \"{}\"",
            "é".repeat(1 << 20)
        );
        let kept = bounded(&huge);
        assert!(kept.len() < ERROR_PART_BYTES + 64, "{}", kept.len());
        assert!(kept.starts_with("invalid input syntax"));
        assert!(kept.ends_with("more bytes)"));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("postgres://u@h/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("data/app.db"));
        assert!(!is_url("postgres.db"));
        assert!(
            Database::parse(Path::new("postgres://u@h/db"), "db")
                .unwrap()
                .is_server()
        );
        assert_eq!(
            Database::parse(Path::new("postgres.db"), "db").unwrap(),
            Database::Sqlite("postgres.db".into())
        );
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
    fn a_parsed_database_keeps_its_password_and_options_but_shows_neither() {
        let db = Database::parse(
            Path::new("postgres://app:pw9@127.0.0.1:5999/shop?options=-csearch_path%3Dx"),
            "db",
        )
        .unwrap();
        assert_eq!(db.shown(), Path::new("postgres://app@127.0.0.1:5999/shop"));
        assert_eq!(db.to_string(), "postgres://app@127.0.0.1:5999/shop");
        assert!(!format!("{db:?}").contains("pw9"));
        let Database::Postgres(t) = db else {
            panic!("a URL is a PostgreSQL database")
        };
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
    fn a_server_that_refuses_connections_is_unavailable_with_a_hint() {
        // Port 1 on the loopback: nothing listens there, the connection is refused.
        let t = Target::parse("postgres://app@127.0.0.1:1/db", "db").unwrap();
        let e = t.connect(Duration::from_secs(1)).err().unwrap();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::core::exit::UNAVAILABLE);
        let shown = e.to_string();
        assert!(
            shown.contains("127.0.0.1:1") && shown.contains("PGHOST/PGPORT"),
            "{shown}"
        );
        // The driver's error is kept as the source.
        let source = std::error::Error::source(&e).expect("a source");
        assert!(
            source.downcast_ref::<postgres::Error>().is_some(),
            "{source:?}"
        );
        // A host name that does not resolve (`.invalid` never does, RFC 6761).
        let t = Target::parse("postgres://app@no-such-host.invalid/db", "db").unwrap();
        let e = t.connect(Duration::from_secs(1)).err().unwrap();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn a_step_executes_the_prepared_fingerprint_by_its_name_in_a_batch() {
        let url = std::env::var("STRATA_TEST_POSTGRES").expect("STRATA_TEST_POSTGRES");
        let t = Target::parse(&url, "db").unwrap();
        let mut session = t.connect(Duration::from_secs(5)).unwrap();
        let signature = session.checks().unwrap().signature.clone();
        let execute = session.checks().unwrap().execute_signature.clone();
        let execute = execute.expect("the client names the statements it prepares");
        assert!(execute.starts_with("EXECUTE s"), "{execute}");
        // The batch runs the very statement the client prepared: the same answer, and the
        // server finds it among those the client (not SQL) prepared.
        let prepared: String = session.query_one(&signature, &[]).unwrap().get(0);
        let batch = session
            .simple_query(&format!("SELECT 1; {execute}"))
            .unwrap();
        let rows: Vec<String> = batch
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(rows, vec!["1".to_string(), prepared]);
        let name = execute.trim_start_matches("EXECUTE ");
        let from_sql: bool = session
            .query_one(
                "SELECT from_sql FROM pg_prepared_statements WHERE name = $1",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert!(!from_sql);
    }

    #[test]
    #[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
    fn server_errors_keep_their_sqlstate_and_a_cut_connection_is_unavailable() {
        let url = std::env::var("STRATA_TEST_POSTGRES").expect("STRATA_TEST_POSTGRES");
        let t = Target::parse(&url, "db").unwrap();
        let mut session = t.connect(Duration::from_secs(5)).unwrap();
        let e = session
            .batch_execute("SELECT * FROM no_such_table_here")
            .unwrap_err();
        let e = t.error("cannot read", e);
        assert!(matches!(e, Error::Postgres { .. }), "{e:?}");
        assert_eq!(e.code(), Some(DbCode::SqlState("42P01".into())));
        assert_eq!(e.exit_code(), crate::core::exit::FAILURE);
        assert!(e.to_string().contains("no_such_table_here"), "{e}");

        // Another session ends this one, as a server shutting down does (57P01).
        let pid: i32 = session
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let mut admin = t.connect(Duration::from_secs(5)).unwrap();
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        let e = session.batch_execute("SELECT 1").unwrap_err();
        let e = t.error("cannot read", e);
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::core::exit::UNAVAILABLE);
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
            passfile_lookup(file, "db.example", 5432, "shop", "app", false).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            passfile_lookup(file, "elsewhere", 5433, "x", "y", true).as_deref(),
            Some("fallback")
        );
        // A line for every host is passed over for a host it may not go to.
        assert_eq!(
            passfile_lookup(file, "elsewhere", 5433, "x", "y", false),
            None
        );
        assert_eq!(passfile_lookup("h:1:d:u\n", "h", 1, "d", "u", true), None);
    }
}
