//! The client `strata --remote` uses: one connection to a `strata serve` (or any server that
//! mounts [`crate::StrataService`]), the bearer token on every call, and answers handed back as
//! the engine's own report types and events, so the CLI renders them as it renders a local run.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use strata_engine::Event;
use strata_engine::commands::migrate::{
    DatabaseStatus, MigrateOptions, MigrateReport, PlannedPhase, SandboxReport,
};
use strata_engine::core::design::{DiffReport, DumpReport};
use strata_engine::core::exit;
use strata_engine::core::ledger::AuditRow;
use strata_engine::core::remote_url::RemoteUrl;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::convert::{self, EventReplay};
use crate::error::RemoteError;
use crate::proto::{self, strata_client::StrataClient};

/// The most audit entries `audit` keeps of a server's log (pass a limit for fewer).
pub const AUDIT_MAX_ROWS: u64 = 1_000_000;

/// The most bytes of audit pages `audit` reads from a server, as sent.
pub const AUDIT_MAX_BYTES: usize = 256 << 20;

/// The audit pages a client has read, held to the paging a server promises: each page's cursor
/// below the one before, an empty page only at the end, and no more than [`AUDIT_MAX_ROWS`]
/// entries or [`AUDIT_MAX_BYTES`] in all.
struct AuditPages {
    limit: Option<u64>,
    pages: Vec<Vec<AuditRow>>,
    got: u64,
    bytes: usize,
    before_id: i64,
}

impl AuditPages {
    fn new(limit: Option<u64>) -> Self {
        AuditPages {
            limit,
            pages: Vec::new(),
            got: 0,
            bytes: 0,
            before_id: 0,
        }
    }

    /// The page size to ask for: what the limit leaves, or the server's default.
    fn want(&self) -> u32 {
        self.limit
            .map_or(0, |l| l.saturating_sub(self.got).min(1000) as u32)
    }

    /// Keeps a page's entries; `true` when it was the last to read, an error (saying why)
    /// when the server broke its paging or sent more than is kept.
    fn take(&mut self, page: proto::AuditResponse) -> Result<bool, String> {
        use prost::Message as _;
        self.bytes = self.bytes.saturating_add(page.encoded_len());
        let mut entries = page.entries;
        if let Some(l) = self.limit {
            entries.truncate(usize::try_from(l.saturating_sub(self.got)).unwrap_or(usize::MAX));
        }
        self.got += entries.len() as u64;
        if self.got > AUDIT_MAX_ROWS || self.bytes > AUDIT_MAX_BYTES {
            return Err(format!(
                "more than {AUDIT_MAX_ROWS} entries or {} MiB; pass --limit N for the newest N",
                AUDIT_MAX_BYTES >> 20
            ));
        }
        let next = page.next_before_id;
        let empty = entries.is_empty();
        self.pages
            .push(entries.into_iter().map(convert::audit_row).collect());
        if next == 0 || self.limit.is_some_and(|l| self.got >= l) {
            return Ok(true);
        }
        if empty {
            return Err(format!("an empty page said more came before id {next}"));
        }
        if next < 0 || (self.before_id != 0 && next >= self.before_id) {
            return Err(format!(
                "asked for the entries before id {}, it said more come before id {next}, which \
                 is not lower: its pages would never end",
                self.before_id
            ));
        }
        self.before_id = next;
        Ok(false)
    }

    /// The entries read, oldest first.
    fn rows(self) -> Vec<AuditRow> {
        self.pages.into_iter().rev().flatten().collect()
    }
}

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `http://host:port` or `https://host:port` (`host:port` means http; other schemes are
    /// refused).
    pub url: String,
    /// The bearer token; `None` sends none (every call but health is then refused).
    pub token: Option<String>,
    /// The CA that signed the server's certificate (needed for https).
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key, for servers that require one.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
    /// The deadline of each call but Migrate and Sandbox (which run as long as they need).
    pub timeout: Duration,
    /// The largest message accepted from the server.
    pub max_message_bytes: usize,
    /// Sends an HTTP/2 PING this often, even while a call is only waiting, and closes the
    /// connection when one is not acknowledged within as long again: a server that stopped
    /// (paused, partitioned away) ends a call within twice this, while a live one answers
    /// pings however long its run takes. `None` sends none.
    pub keepalive: Option<Duration>,
    /// Lets the token be sent in clear text (not https) to a host other than loopback: the
    /// operator's `--allow-insecure`. Without it such a connection is refused before it is made.
    pub allow_clear_text: bool,
}

impl ClientOptions {
    /// Options for `url` with the defaults: no token, no TLS files, 60 s deadline, 16 MiB.
    pub fn new(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            token: None,
            tls_ca: None,
            tls_identity: None,
            timeout: Duration::from_secs(60),
            max_message_bytes: crate::service::DEFAULT_MAX_MESSAGE_BYTES,
            keepalive: None,
            allow_clear_text: false,
        }
    }
}

/// A connection to a strata server.
#[derive(Clone)]
pub struct Client {
    inner: StrataClient<Channel>,
    url: String,
    auth: Option<AsciiMetadataValue>,
    timeout: Duration,
}

/// A TLS file of the command line, read only as a regular file within the cap (a FIFO or a
/// device is refused, never read).
fn file(path: &std::path::Path) -> Result<Vec<u8>, RemoteError> {
    let refused = |m: String| RemoteError::local(exit::BAD_INPUT, "input", m);
    match strata_engine::core::input::read_project_file(
        path,
        strata_engine::core::input::CONFIG_BYTES,
    ) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(refused(format!("{}: no such file", path.display()))),
        Err(e) => Err(refused(e.to_string())),
    }
}

impl Client {
    /// Connects (and fails fast, naming the URL, when nothing answers there).
    pub async fn connect(opts: ClientOptions) -> Result<Client, RemoteError> {
        let usage = |m: String| RemoteError::local(exit::BAD_INPUT, "usage", m);
        let shown = strata_engine::components::escape_controls(&opts.url);
        let parsed =
            RemoteUrl::parse(&opts.url).map_err(|e| usage(format!("--remote {shown}: {e}")))?;
        let url = parsed.url.clone();
        if opts.token.is_some() && parsed.clear_text_off_loopback() && !opts.allow_clear_text {
            return Err(usage(format!(
                "--remote {}: not loopback and not https, so the token would cross the network \
                 in clear text; serve it with TLS and write https://, or pass --allow-insecure \
                 if the network is trusted",
                strata_engine::components::escape_controls(&url)
            )));
        }
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| usage(format!("--remote {url}: not a URL: {e}")))?
            .connect_timeout(Duration::from_secs(10));
        if let Some(every) = opts.keepalive {
            endpoint = endpoint
                .http2_keep_alive_interval(every)
                .keep_alive_timeout(every)
                .keep_alive_while_idle(true);
        }
        if parsed.tls {
            let Some(ca) = &opts.tls_ca else {
                return Err(usage(format!(
                    "--remote {url}: https needs the CA that signed the server's certificate: \
                     --tls-ca FILE"
                )));
            };
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(file(ca)?));
            if let Some((cert, key)) = &opts.tls_identity {
                tls = tls.identity(Identity::from_pem(file(cert)?, file(key)?));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| usage(format!("--remote {url}: TLS: {e}")))?;
        } else if opts.tls_ca.is_some() || opts.tls_identity.is_some() {
            return Err(usage(format!(
                "--remote {url}: TLS files were given but the URL is not https://"
            )));
        }
        let channel = endpoint.connect().await.map_err(|e| {
            RemoteError::local(
                exit::UNAVAILABLE,
                "transport",
                format!(
                    "cannot reach the strata server at {url}: {}. Is `strata serve` running \
                     there?",
                    crate::error::full_message(&e)
                ),
            )
        })?;
        let auth = match &opts.token {
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .map_err(|_| usage("the token holds characters a header cannot".into()))?,
            ),
            None => None,
        };
        Ok(Client {
            inner: StrataClient::new(channel)
                .max_decoding_message_size(opts.max_message_bytes)
                .max_encoding_message_size(opts.max_message_bytes),
            url,
            auth,
            timeout: opts.timeout,
        })
    }

    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request<T>(&self, msg: T, deadline: bool) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(a) = &self.auth {
            req.metadata_mut().insert("authorization", a.clone());
        }
        if deadline {
            req.set_timeout(self.timeout);
        }
        req
    }

    fn err(&self, s: Status) -> RemoteError {
        RemoteError::from_status(&s, &self.url)
    }

    /// A run's stream ending in an error: one the server sent, or the connection lost on this
    /// side (an error of the transport, not the server's: a keepalive ping unanswered, a reset).
    fn lost(&self, s: Status) -> RemoteError {
        let cause = match std::error::Error::source(&s) {
            Some(cause) if crate::error::detail(&s).is_none() => crate::error::full_message(cause),
            _ => return self.err(s),
        };
        RemoteError::local(
            exit::FAILURE,
            "transport",
            format!(
                "the strata server at {} stopped answering during the run ({}): it is paused, \
                 gone or cut off. The run may go on there; `strata --remote {} audit` shows how \
                 it ended",
                self.url, cause, self.url
            ),
        )
    }

    fn parse<T: DeserializeOwned>(&self, json: &str) -> Result<T, RemoteError> {
        serde_json::from_str(json).map_err(|e| {
            RemoteError::local(
                exit::FAILURE,
                "protocol",
                format!(
                    "{} sent a report this strata cannot read ({e}); is it the same strata \
                     version?",
                    self.url
                ),
            )
        })
    }

    /// The server's engine version, project and databases.
    pub async fn info(&mut self) -> Result<proto::InfoResponse, RemoteError> {
        let req = self.request(proto::InfoRequest {}, true);
        let r = self.inner.info(req).await.map_err(|s| self.err(s))?;
        Ok(r.into_inner())
    }

    /// `status`: each database's view, and each database's ledger (with checksums).
    pub async fn status(
        &mut self,
    ) -> Result<(Vec<DatabaseStatus>, Vec<proto::DatabaseLedger>), RemoteError> {
        #[derive(serde::Deserialize)]
        struct Body {
            databases: Vec<DatabaseStatus>,
        }
        let req = self.request(proto::StatusRequest {}, true);
        let r = self.inner.status(req).await.map_err(|s| self.err(s))?;
        let r = r.into_inner();
        let body: Body = self.parse(&r.report_json)?;
        Ok((body.databases, r.ledgers))
    }

    /// `plan`; with `sql`, each step carries the SQL the server's tree would run (`plan --sql`).
    pub async fn plan(
        &mut self,
        opts: &MigrateOptions,
        sql: bool,
    ) -> Result<Vec<PlannedPhase>, RemoteError> {
        #[derive(serde::Deserialize)]
        struct Body {
            phases: Vec<PlannedPhase>,
        }
        let req = self.request(
            proto::PlanRequest {
                options: Some(run_options(opts)),
                sql,
            },
            true,
        );
        let r = self.inner.plan(req).await.map_err(|s| self.err(s))?;
        let body: Body = self.parse(&r.into_inner().report_json)?;
        Ok(body.phases)
    }

    /// `migrate`: `sink` gets the server's events as they come; then the report.
    pub async fn migrate(
        &mut self,
        opts: &MigrateOptions,
        sink: &mut dyn FnMut(&Event<'_>),
    ) -> Result<MigrateReport, RemoteError> {
        let req = self.request(
            proto::MigrateRequest {
                options: Some(run_options(opts)),
                batch_events: true,
            },
            false,
        );
        let stream = self.inner.migrate(req).await.map_err(|s| self.err(s))?;
        self.follow(stream.into_inner(), sink).await
    }

    /// `sandbox` on the server's own tree.
    pub async fn sandbox(
        &mut self,
        to: Option<&str>,
        sink: &mut dyn FnMut(&Event<'_>),
    ) -> Result<SandboxReport, RemoteError> {
        let req = self.request(
            proto::SandboxRequest {
                to: to.unwrap_or_default().to_string(),
                batch_events: true,
            },
            false,
        );
        let stream = self.inner.sandbox(req).await.map_err(|s| self.err(s))?;
        self.follow(stream.into_inner(), sink).await
    }

    async fn follow<T: DeserializeOwned>(
        &self,
        mut stream: tonic::Streaming<proto::RunMessage>,
        sink: &mut dyn FnMut(&Event<'_>),
    ) -> Result<T, RemoteError> {
        let mut replay = EventReplay::default();
        loop {
            let msg = stream.message().await.map_err(|s| self.lost(s))?;
            match msg.and_then(|m| m.kind) {
                Some(proto::run_message::Kind::Event(e)) => replay.replay(e, sink),
                Some(proto::run_message::Kind::Events(batch)) => {
                    for e in batch.events {
                        replay.replay(e, sink);
                    }
                }
                Some(proto::run_message::Kind::ReportJson(json)) => return self.parse(&json),
                None => {
                    return Err(RemoteError::local(
                        exit::FAILURE,
                        "transport",
                        format!(
                            "{} ended the run's stream without a report: the connection was \
                             lost. The run may have finished on the server; `strata --remote \
                             {} audit` shows how it ended",
                            self.url, self.url
                        ),
                    ));
                }
            }
        }
    }

    /// `audit`: the newest `limit` entries (all when `None`), oldest first, page by page.
    /// A server is held to the paging it promises: each page's cursor below the one before
    /// and an empty page only at the end; and what is kept is bounded ([`AUDIT_MAX_ROWS`],
    /// [`AUDIT_MAX_BYTES`]), so a server whose pages never end is stopped with an error naming
    /// it rather than asked for ever.
    pub async fn audit(
        &mut self,
        test: bool,
        limit: Option<u64>,
    ) -> Result<(PathBuf, Vec<AuditRow>), RemoteError> {
        if limit == Some(0) {
            let info = self.info().await?;
            let db = if test { info.test_db } else { info.db };
            return Ok((PathBuf::from(db), Vec::new()));
        }
        let mut pages = AuditPages::new(limit);
        loop {
            let req = self.request(
                proto::AuditRequest {
                    database: database(test),
                    page_size: pages.want(),
                    before_id: pages.before_id,
                },
                true,
            );
            let r = self.inner.audit(req).await.map_err(|s| self.err(s))?;
            let r = r.into_inner();
            let db = PathBuf::from(&r.db);
            let done = pages.take(r).map_err(|why| {
                RemoteError::local(
                    exit::FAILURE,
                    "protocol",
                    format!(
                        "{} sent an audit log strata stopped reading: {why}",
                        self.url
                    ),
                )
            })?;
            if done {
                return Ok((db, pages.rows()));
            }
        }
    }

    /// `dump`: the server's real database, never written on the server.
    pub async fn dump(&mut self, module: Option<&str>) -> Result<DumpReport, RemoteError> {
        let req = self.request(
            proto::DumpRequest {
                module: module.unwrap_or_default().to_string(),
            },
            true,
        );
        let r = self.inner.dump(req).await.map_err(|s| self.err(s))?;
        self.parse(&r.into_inner().report_json)
    }

    /// `diff`.
    pub async fn diff(
        &mut self,
        module: Option<&str>,
        sql: bool,
    ) -> Result<DiffReport, RemoteError> {
        let req = self.request(
            proto::DiffRequest {
                module: module.unwrap_or_default().to_string(),
                sql,
            },
            true,
        );
        let r = self.inner.diff(req).await.map_err(|s| self.err(s))?;
        self.parse(&r.into_inner().report_json)
    }

    /// The backups the server keeps of one database.
    pub async fn list_backups(
        &mut self,
        test: bool,
    ) -> Result<proto::ListBackupsResponse, RemoteError> {
        let req = self.request(
            proto::ListBackupsRequest {
                database: database(test),
            },
            true,
        );
        let r = self
            .inner
            .list_backups(req)
            .await
            .map_err(|s| self.err(s))?;
        Ok(r.into_inner())
    }

    /// `restore`: the named backup (a file name from `list_backups`), or the newest.
    pub async fn restore(
        &mut self,
        test: bool,
        backup: Option<&str>,
    ) -> Result<strata_engine::core::restore::Restored, RemoteError> {
        let req = self.request(
            proto::RestoreRequest {
                database: database(test),
                backup: backup.unwrap_or_default().to_string(),
            },
            true,
        );
        let r = self.inner.restore(req).await.map_err(|s| self.err(s))?;
        let r = r.into_inner();
        Ok(strata_engine::core::restore::Restored {
            db: PathBuf::from(r.db),
            restored_from: PathBuf::from(r.restored_from),
            taken_at: r.taken_at,
            undo: (!r.undo.is_empty()).then(|| PathBuf::from(r.undo)),
            audit_rows_kept: r.audit_rows_kept as usize,
        })
    }

    /// `undo`: the newest applied migration, or every one applied after the stamp `to`
    /// starts with, taken back with its undo.sql on the server. The report's backups are file
    /// names in the server's backups folder (as `list_backups` gives them).
    pub async fn undo(
        &mut self,
        to: Option<&str>,
    ) -> Result<strata_engine::commands::undo::UndoReport, RemoteError> {
        let req = self.request(
            proto::UndoRequest {
                to: to.unwrap_or_default().to_string(),
            },
            true,
        );
        let r = self.inner.undo(req).await.map_err(|s| self.err(s))?;
        self.parse(&r.into_inner().report_json)
    }
}

fn database(test: bool) -> i32 {
    if test {
        proto::Database::Test as i32
    } else {
        proto::Database::RealUnspecified as i32
    }
}

fn run_options(o: &MigrateOptions) -> proto::RunOptions {
    proto::RunOptions {
        to: o.plan.to.clone().unwrap_or_default(),
        allow_out_of_order: o.plan.allow_out_of_order,
        no_rehearsal: !o.rehearse,
        rehearse_on_copy: o.rehearse_on_copy,
        allow_drift: o.allow_drift,
        single_transaction: o.single_transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: std::ops::Range<i64>, detail: usize, next_before_id: i64) -> proto::AuditResponse {
        proto::AuditResponse {
            db: "app.db".into(),
            entries: ids
                .map(|id| proto::AuditEntry {
                    id,
                    detail: Some("d".repeat(detail)),
                    ..Default::default()
                })
                .collect(),
            next_before_id,
        }
    }

    #[test]
    fn honest_pages_are_read_to_the_end_oldest_first() {
        let mut pages = AuditPages::new(None);
        assert_eq!(pages.take(page(21..31, 0, 21)), Ok(false));
        assert_eq!(pages.before_id, 21);
        assert_eq!(pages.take(page(11..21, 0, 11)), Ok(false));
        assert_eq!(pages.take(page(1..11, 0, 0)), Ok(true));
        let ids: Vec<i64> = pages.rows().iter().map(|r| r.id).collect();
        assert_eq!(ids, (1..31).collect::<Vec<_>>());
        // A limit stops at its count, whatever the server says comes next.
        let mut pages = AuditPages::new(Some(15));
        assert_eq!(pages.want(), 15);
        assert_eq!(pages.take(page(21..31, 0, 21)), Ok(false));
        assert_eq!(pages.want(), 5);
        assert_eq!(pages.take(page(11..21, 0, 11)), Ok(true));
        assert_eq!(pages.rows().len(), 15);
    }

    #[test]
    fn pages_that_never_end_are_stopped_naming_why() {
        // The cursor does not go down (attack6 #1: next_before_id = 1 every time).
        let mut pages = AuditPages::new(None);
        assert_eq!(pages.take(page(1..1001, 0, 1)), Ok(false));
        let why = pages.take(page(1..1001, 0, 1)).unwrap_err();
        assert!(why.contains("not lower"), "{why}");
        // It goes up.
        let mut pages = AuditPages::new(None);
        assert_eq!(pages.take(page(1..3, 0, 5)), Ok(false));
        assert!(pages.take(page(1..3, 0, 6)).is_err());
        // It is negative.
        let mut pages = AuditPages::new(None);
        assert!(pages.take(page(1..3, 0, -1)).is_err());
        // An empty page that says more comes.
        let mut pages = AuditPages::new(None);
        let why = pages.take(page(0..0, 0, 7)).unwrap_err();
        assert!(why.contains("empty page"), "{why}");
        // A cursor that goes down by one from the top: stopped by the bytes kept, and by the
        // entries kept however small.
        let endless = |detail: usize| {
            let mut pages = AuditPages::new(None);
            let mut next = i64::MAX;
            loop {
                next -= 1;
                match pages.take(page(0..1000, detail, next)) {
                    Ok(false) => continue,
                    Ok(true) => panic!("ended"),
                    Err(why) => break (why, pages),
                }
            }
        };
        let (why, pages) = endless(4096);
        assert!(why.contains("--limit"), "{why}");
        assert!(
            pages.bytes <= AUDIT_MAX_BYTES + 1000 * 4200,
            "{}",
            pages.bytes
        );
        let (why, pages) = endless(0);
        assert!(why.contains("1000000 entries"), "{why}");
        assert!(pages.got <= AUDIT_MAX_ROWS + 1000);
    }
}
