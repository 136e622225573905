//! The `strata.v1.Strata` service: each RPC checks the bearer token, then runs the same library
//! call as the local command on a blocking thread, on the server's own project. Runs that change
//! databases (Migrate, Restore, Undo) take one lock per service, so a second one waits for the first;
//! a run keeps going when its client disconnects, and shutdown waits for it. A run's events go
//! out one per message, or in batches to a client that asks (`batch_events`; see `Outbox`).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strata_engine::commands::design;
use strata_engine::commands::migrate::{self, MigrateOptions, SandboxOptions};
use strata_engine::core::exit;
use strata_engine::core::plan::PlanOptions;
use strata_engine::{Database, Error, Event, Project, Tree};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Request, Response, Status};

use tonic::service::interceptor::InterceptedService;

use crate::auth::{Authenticate, Refusals, Token};
use crate::convert;
use crate::error::{refuse, to_status};
use crate::proto::{self, strata_server::Strata};
use crate::status::StatusCache;

/// The default limit on one message, either way: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The strata engine of one project as a gRPC service. Cheap to clone; clones share the run
/// lock.
#[derive(Clone)]
pub struct StrataService {
    inner: Arc<Inner>,
    max_message_bytes: usize,
}

struct Inner {
    project: Project,
    /// The token check, shared with the interceptor.
    auth: Authenticate,
    refusals: Arc<Refusals>,
    /// Held by a run that changes databases (Migrate, Restore, Undo).
    run_lock: tokio::sync::Mutex<()>,
    /// Set by [`StrataService::shutdown`]: new runs are refused.
    closing: AtomicBool,
    /// The last Status answer, reused while the tree and databases stay as they were.
    status: Arc<StatusCache>,
}

impl StrataService {
    /// The service for `project`, accepting `token`.
    pub fn new(project: Project, token: Token) -> Self {
        let refusals = Arc::new(Refusals::default());
        StrataService {
            inner: Arc::new(Inner {
                status: Arc::new(StatusCache::new(project.clone())),
                project,
                auth: Authenticate::new(token, Arc::clone(&refusals)),
                refusals,
                run_lock: tokio::sync::Mutex::new(()),
                closing: AtomicBool::new(false),
            }),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Limits each message, received or sent, to `bytes` (default 16 MiB); a bigger one is
    /// RESOURCE_EXHAUSTED.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The tonic server wrapper to mount (`Server::builder().add_service(..)`): the service
    /// behind the token check, which reads only a request's headers, so a call without the
    /// token is refused before its body is read.
    pub fn into_server(
        self,
    ) -> InterceptedService<proto::strata_server::StrataServer<Self>, Authenticate> {
        let (server, auth) = self.server_and_check();
        InterceptedService::new(server, auth)
    }

    /// The server (message limits set) and the token check to put in front of it.
    pub(crate) fn server_and_check(
        self,
    ) -> (proto::strata_server::StrataServer<Self>, Authenticate) {
        let max = self.max_message_bytes;
        let auth = self.inner.auth.clone();
        let server = proto::strata_server::StrataServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        (server, auth)
    }

    /// The project this service runs.
    pub fn project(&self) -> &Project {
        &self.inner.project
    }

    /// Refuses new runs from now on and waits until the run in progress, if any, has finished:
    /// a step is never cut in the middle.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        drop(self.inner.run_lock.lock().await);
        self.inner.refusals.flush();
    }

    /// Checks the bearer token again inside the RPC (the interceptor of [`Self::into_server`]
    /// checked it before the body was read; this keeps a `StrataServer` mounted without it
    /// closed). A refusal writes nothing; it is counted and reported on stderr.
    fn authorize<T>(&self, req: &Request<T>, rpc: &str) -> Result<(), Status> {
        self.inner.auth.check(req.metadata(), req.extensions(), rpc)
    }

    /// Calls refused for a missing or wrong token since the service started.
    pub fn refused_calls(&self) -> u64 {
        self.inner.refusals.total()
    }

    fn open_for_runs(&self) -> Result<(), Status> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(refuse(
                Code::Unavailable,
                exit::UNAVAILABLE,
                "shutting-down",
                "the server is shutting down; nothing was started",
            ));
        }
        Ok(())
    }

    /// Runs `f` on the project on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Project) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let project = self.inner.project.clone();
        tokio::task::spawn_blocking(move || f(&project))
            .await
            .map_err(|e| Status::internal(format!("the call panicked: {e}")))?
            .map_err(|e| to_status(&e))
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Status> {
    serde_json::to_string(value).map_err(|e| Status::internal(format!("cannot encode: {e}")))
}

fn options(o: Option<proto::RunOptions>) -> MigrateOptions {
    let o = o.unwrap_or_default();
    let to = given(&o.to);
    MigrateOptions {
        plan: PlanOptions {
            to,
            allow_out_of_order: o.allow_out_of_order,
        },
        rehearse: !o.no_rehearsal,
        rehearse_on_copy: o.rehearse_on_copy,
        // The server's tree is the service's own; a remote run never writes into it.
        write_snapshots: false,
        allow_drift: o.allow_drift,
        single_transaction: o.single_transaction,
        probes: Default::default(),
    }
}

/// `--to` as the local command reads it: a whole stamp, or the start of one stamp of the
/// server's tree.
fn resolve_to(p: &Project, to: &mut Option<String>) -> Result<(), Error> {
    if let Some(prefix) = to.take() {
        let tree = Tree::load(&p.migrations_dir())?;
        *to = Some(strata_engine::core::tree::resolve_stamp(&tree, &prefix)?);
    }
    Ok(())
}

/// An optional string field: empty is absent.
fn given(m: &str) -> Option<String> {
    (!m.is_empty()).then(|| m.to_string())
}

fn test_db(d: i32) -> bool {
    d == proto::Database::Test as i32
}

type RunStream = Pin<Box<dyn Stream<Item = Result<proto::RunMessage, Status>> + Send>>;

type RunSender = mpsc::UnboundedSender<Result<proto::RunMessage, Status>>;

/// The longest a batched event waits before it is sent: a progress bar fed by batches still
/// moves about 20 times a second.
pub(crate) const BATCH_DELAY: Duration = Duration::from_millis(50);

/// The largest batch, in encoded bytes (smaller when the message size limit is).
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// Where a run's events go: straight into the stream, one per message (what a client that did
/// not set `batch_events` gets, as every v1 client always has), or in `EventBatch` messages, at
/// most one per [`BATCH_DELAY`]: an event after a quiet spell goes out at once, the ones that
/// follow it closely are gathered and go out [`BATCH_DELAY`] after the message before them (or
/// at [`BATCH_BYTES`]), and all before the report. Each event sent is a wake-up of the connection and a frame on the
/// wire; a run of short steps sends hundreds a second, and batching them is most of what a
/// remote run costs over a local one.
pub(crate) struct Outbox {
    tx: RunSender,
    batch: Option<Batch>,
}

struct Batch {
    pending: std::sync::Mutex<Pending>,
    /// Told when a batch gets its first event: the flusher sends it [`BATCH_DELAY`] later.
    started: tokio::sync::Notify,
    max_bytes: usize,
}

#[derive(Default)]
struct Pending {
    events: Vec<proto::Event>,
    bytes: usize,
    /// When the last message went out; `None` before the first.
    sent: Option<std::time::Instant>,
}

impl Outbox {
    /// Events one per message (`batched` false) or in batches of at most `max_message_bytes`.
    pub(crate) fn new(tx: RunSender, batched: bool, max_message_bytes: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            tx,
            batch: batched.then(|| Batch {
                pending: std::sync::Mutex::default(),
                started: tokio::sync::Notify::new(),
                // Room for the RunMessage and EventBatch framing around the events.
                max_bytes: BATCH_BYTES.min(max_message_bytes.saturating_sub(16)),
            }),
        })
    }

    /// Sends `e` now, or adds it to the batch.
    pub(crate) fn event(&self, e: proto::Event) {
        // A client that went away does not stop the run.
        let Some(b) = &self.batch else {
            let _ = self.tx.send(Ok(proto::RunMessage {
                kind: Some(proto::run_message::Kind::Event(e)),
            }));
            return;
        };
        // The event's length-delimited field in the EventBatch.
        let len = prost::Message::encoded_len(&e);
        let len = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        let mut pending = b.lock();
        if !pending.events.is_empty() && pending.bytes + len > b.max_bytes {
            self.send(&mut pending);
        }
        let first = pending.events.is_empty();
        pending.bytes += len;
        pending.events.push(e);
        if first {
            // After a quiet spell (or as the run's first), an event goes out at once: only
            // events that follow one another closely wait to be gathered.
            if pending.sent.is_none_or(|t| t.elapsed() >= BATCH_DELAY) {
                self.send(&mut pending);
            } else {
                b.started.notify_one();
            }
        }
    }

    /// Sends the batch gathered so far, if any.
    pub(crate) fn flush(&self) {
        if let Some(b) = &self.batch {
            self.send(&mut b.lock());
        }
    }

    /// Sends the batch (under the lock, so batches go out in order).
    fn send(&self, pending: &mut Pending) {
        if pending.events.is_empty() {
            return;
        }
        pending.bytes = 0;
        pending.sent = Some(std::time::Instant::now());
        let events = std::mem::take(&mut pending.events);
        let _ = self.tx.send(Ok(proto::RunMessage {
            kind: Some(proto::run_message::Kind::Events(proto::EventBatch {
                events,
            })),
        }));
    }

    /// Sends each batch [`BATCH_DELAY`] after the message before it, until dropped (a task of
    /// its own; `None` when events are not batched).
    pub(crate) fn flusher(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.batch.as_ref()?;
        let outbox = Arc::clone(self);
        Some(tokio::spawn(async move {
            let Some(b) = &outbox.batch else { return };
            loop {
                b.started.notified().await;
                let due = b.lock().sent.map(|t| t + BATCH_DELAY);
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                outbox.flush();
            }
        }))
    }

    /// The last message, after every event.
    pub(crate) fn finish(&self, last: Result<proto::RunMessage, Status>) {
        self.flush();
        let _ = self.tx.send(last);
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Batch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forwards engine events to the outbox, with a ticker for a running component's row count.
struct Forward {
    out: Arc<Outbox>,
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Forward {
    fn event(&mut self, e: &Event<'_>) {
        match e {
            Event::ComponentStarted {
                migration,
                action,
                rows_written,
            } => {
                self.stop();
                let (stop, rows, out) = (
                    Arc::new(AtomicBool::new(false)),
                    Arc::clone(rows_written),
                    Arc::clone(&self.out),
                );
                let (halt, m, a) = (
                    Arc::clone(&stop),
                    convert::migration(migration),
                    convert::action(*action),
                );
                let thread = std::thread::spawn(move || {
                    while !halt.load(Ordering::Relaxed) && !out.is_closed() {
                        std::thread::sleep(Duration::from_millis(200));
                        let kind =
                            proto::event::Kind::ComponentProgress(proto::ComponentProgress {
                                migration: m.clone(),
                                action: a,
                                rows_written: rows.load(Ordering::Relaxed),
                            });
                        out.event(proto::Event { kind: Some(kind) });
                    }
                });
                self.ticker = Some((stop, thread));
            }
            Event::ActionDone { .. } | Event::PhaseFinished { .. } => self.stop(),
            _ => {}
        }
        if let Some(msg) = convert::event(e) {
            self.out.event(msg);
        }
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop();
    }
}

impl StrataService {
    /// Streams a run: events from `run` as it goes (in batches when `batched`), then its report
    /// (or its error).
    fn stream<R: serde::Serialize + Send + 'static>(
        &self,
        exclusive: bool,
        batched: bool,
        run: impl FnOnce(&Project, &mut dyn FnMut(&Event<'_>)) -> Result<R, Error> + Send + 'static,
    ) -> RunStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let out = Outbox::new(tx, batched, self.max_message_bytes);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let _guard = if exclusive {
                Some(inner.run_lock.lock().await)
            } else {
                None
            };
            let flusher = out.flusher();
            let events = Arc::clone(&out);
            let project = inner.project.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut forward = Forward {
                    out: events,
                    ticker: None,
                };
                run(&project, &mut |e| forward.event(e))
            })
            .await;
            if let Some(f) = flusher {
                f.abort();
            }
            let last = match done {
                Ok(Ok(report)) => to_json(&report).map(|json| proto::RunMessage {
                    kind: Some(proto::run_message::Kind::ReportJson(json)),
                }),
                Ok(Err(e)) => Err(to_status(&e)),
                Err(e) => Err(Status::internal(format!("the run panicked: {e}"))),
            };
            out.finish(last);
        });
        Box::pin(UnboundedReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl Strata for StrataService {
    async fn info(
        &self,
        req: Request<proto::InfoRequest>,
    ) -> Result<Response<proto::InfoResponse>, Status> {
        self.authorize(&req, "Info")?;
        let tree = self.blocking(|p| Tree::load(&p.migrations_dir())).await?;
        let p = &self.inner.project;
        Ok(Response::new(proto::InfoResponse {
            engine_version: strata_engine::ENGINE_VERSION.into(),
            wit_version: crate::wit_version().into(),
            api_version: crate::API_VERSION.into(),
            project: crate::project_dir(p),
            db: p.db.to_string(),
            test_db: p.test_db.to_string(),
            modules: tree.modules.clone(),
            migrations: tree.migrations.len() as u32,
        }))
    }

    async fn status(
        &self,
        req: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        self.authorize(&req, "Status")?;
        Ok(Response::new(self.inner.status.get(status).await?))
    }

    async fn plan(
        &self,
        req: Request<proto::PlanRequest>,
    ) -> Result<Response<proto::PlanResponse>, Status> {
        self.authorize(&req, "Plan")?;
        let r = req.into_inner();
        let mut opts = options(r.options);
        let phases = self
            .blocking(move |p| {
                resolve_to(p, &mut opts.plan.to)?;
                if r.sql {
                    // Rendered from the server's own tree; nothing is run.
                    migrate::plan_with_sql(p, &opts)
                } else {
                    migrate::plan(p, &opts)
                }
            })
            .await?;
        Ok(Response::new(proto::PlanResponse {
            report_json: to_json(&serde_json::json!({ "phases": phases }))?,
        }))
    }

    type MigrateStream = RunStream;

    async fn migrate(
        &self,
        req: Request<proto::MigrateRequest>,
    ) -> Result<Response<Self::MigrateStream>, Status> {
        self.authorize(&req, "Migrate")?;
        self.open_for_runs()?;
        let r = req.into_inner();
        let mut opts = options(r.options);
        Ok(Response::new(self.stream(
            true,
            r.batch_events,
            move |p, sink| {
                resolve_to(p, &mut opts.plan.to)?;
                migrate::migrate(p, &opts, sink)
            },
        )))
    }

    type SandboxStream = RunStream;

    async fn sandbox(
        &self,
        req: Request<proto::SandboxRequest>,
    ) -> Result<Response<Self::SandboxStream>, Status> {
        self.authorize(&req, "Sandbox")?;
        self.open_for_runs()?;
        let r = req.into_inner();
        let mut opts = SandboxOptions {
            from: None,
            plan: PlanOptions {
                to: given(&r.to),
                allow_out_of_order: false,
            },
            probes: Default::default(),
        };
        Ok(Response::new(self.stream(
            false,
            r.batch_events,
            move |p, sink| {
                resolve_to(p, &mut opts.plan.to)?;
                migrate::sandbox(p, &opts, sink)
            },
        )))
    }

    async fn audit(
        &self,
        req: Request<proto::AuditRequest>,
    ) -> Result<Response<proto::AuditResponse>, Status> {
        self.authorize(&req, "Audit")?;
        let r = req.into_inner();
        const PAGE: usize = 1000;
        let size = match r.page_size as usize {
            0 => PAGE,
            n => n.min(PAGE),
        };
        // Paged in SQL on the id: a page reads only its own rows.
        let before = (r.before_id > 0).then_some(r.before_id);
        let (db, rows, more) = self
            .blocking(move |p| migrate::audit_page(p, test_db(r.database), before, size as u64))
            .await?;
        let next_before_id = match rows.first() {
            Some(oldest) if more => oldest.id,
            _ => 0,
        };
        let entries = rows.into_iter().map(convert::audit_entry).collect();
        Ok(Response::new(proto::AuditResponse {
            db: db.display().to_string(),
            entries,
            next_before_id,
        }))
    }

    async fn dump(
        &self,
        req: Request<proto::DumpRequest>,
    ) -> Result<Response<proto::DumpResponse>, Status> {
        self.authorize(&req, "Dump")?;
        let m = given(&req.into_inner().module);
        let report = self
            .blocking(move |p| design::dump(p, m.as_deref(), false))
            .await?;
        Ok(Response::new(proto::DumpResponse {
            report_json: to_json(&report)?,
            modules: report
                .modules
                .iter()
                .map(|m| proto::ModuleSchema {
                    module: m.module.clone(),
                    sql: m.sql.clone(),
                })
                .collect(),
        }))
    }

    async fn diff(
        &self,
        req: Request<proto::DiffRequest>,
    ) -> Result<Response<proto::DiffResponse>, Status> {
        self.authorize(&req, "Diff")?;
        let r = req.into_inner();
        let m = given(&r.module);
        let report = self
            .blocking(move |p| design::diff(p, m.as_deref(), r.sql))
            .await?;
        Ok(Response::new(proto::DiffResponse {
            report_json: to_json(&report)?,
        }))
    }

    async fn list_backups(
        &self,
        req: Request<proto::ListBackupsRequest>,
    ) -> Result<Response<proto::ListBackupsResponse>, Status> {
        self.authorize(&req, "ListBackups")?;
        let test = test_db(req.into_inner().database);
        let (db, backups) = self
            .blocking(move |p| strata_engine::commands::restore::list(p, test))
            .await?;
        Ok(Response::new(proto::ListBackupsResponse {
            db: db.display().to_string(),
            backups: backups
                .iter()
                .map(|b| proto::Backup {
                    name: file_name(&b.path),
                    bytes: b.size,
                    taken_at: b.record.taken_at.clone(),
                    reason: b.record.reason.clone(),
                    source: b.record.source.display().to_string(),
                    database_id: b.record.database_id.clone(),
                })
                .collect(),
        }))
    }

    async fn restore(
        &self,
        req: Request<proto::RestoreRequest>,
    ) -> Result<Response<proto::RestoreResponse>, Status> {
        self.authorize(&req, "Restore")?;
        self.open_for_runs()?;
        let r = req.into_inner();
        let test = test_db(r.database);
        let _guard = self.inner.run_lock.lock().await;
        let restored = self
            .blocking(move |p| {
                let chosen = if r.backup.is_empty() {
                    None
                } else {
                    // Only a backup the server keeps, by file name: never a client's path.
                    let (db, known) = strata_engine::commands::restore::list(p, test)?;
                    match known.into_iter().find(|b| file_name(&b.path) == r.backup) {
                        Some(b) => Some(b.path),
                        None => {
                            return Err(Error::Usage(format!(
                                "{} is not a backup of {} kept by the server; ListBackups (or \
                                 `strata --remote URL restore --list`) names them",
                                r.backup,
                                db.display()
                            )));
                        }
                    }
                };
                strata_engine::commands::restore::restore(p, test, chosen.as_deref())
            })
            .await?;
        Ok(Response::new(proto::RestoreResponse {
            db: restored.db.display().to_string(),
            restored_from: restored.restored_from.display().to_string(),
            taken_at: restored.taken_at,
            undo: restored.undo.as_deref().map(file_name).unwrap_or_default(),
            audit_rows_kept: restored.audit_rows_kept as u64,
        }))
    }

    async fn undo(
        &self,
        req: Request<proto::UndoRequest>,
    ) -> Result<Response<proto::UndoResponse>, Status> {
        self.authorize(&req, "Undo")?;
        self.open_for_runs()?;
        let to = given(&req.into_inner().to);
        let _guard = self.inner.run_lock.lock().await;
        let mut report = self
            .blocking(move |p| {
                strata_engine::commands::undo::undo(
                    p,
                    &strata_engine::commands::undo::UndoOptions { to },
                )
            })
            .await?;
        // The backups by file name, as ListBackups names them (a client restores by that name).
        for db in &mut report.databases {
            db.backup = db.backup.as_deref().map(|b| file_name(b).into());
        }
        Ok(Response::new(proto::UndoResponse {
            report_json: to_json(&report)?,
        }))
    }
}

/// What Status answers, read afresh: each database's status and ledger.
pub(crate) fn status(p: &Project) -> Result<proto::StatusResponse, Status> {
    let dbs = migrate::status(p).map_err(|e| to_status(&e))?;
    let mut ledgers = Vec::new();
    for d in &dbs {
        // `status` reads the test database in the rehearsal phase, the real one in apply.
        let db = if d.phase == strata_engine::Phase::Rehearsal {
            &p.test_db
        } else {
            &p.db
        };
        ledgers.push(proto::DatabaseLedger {
            phase: convert::phase(d.phase),
            db: d.db.display().to_string(),
            applied: applied(p, db).map_err(|e| to_status(&e))?,
        });
    }
    Ok(proto::StatusResponse {
        report_json: to_json(&serde_json::json!({ "databases": dbs }))?,
        ledgers,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The ledger of `db` as messages; empty when the database does not exist.
fn applied(p: &Project, db: &Database) -> Result<Vec<proto::AppliedMigration>, Error> {
    Ok(migrate::read_applied(p, db)?
        .into_iter()
        .map(|a| proto::AppliedMigration {
            migration: Some(proto::MigrationRef {
                module: a.id.module,
                stamp: a.id.stamp,
                slug: a.name,
            }),
            checksum: a.checksum,
            applied_at: a.applied_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(i: usize) -> proto::Event {
        proto::Event {
            kind: Some(proto::event::Kind::Warning(format!("event {i:04}"))),
        }
    }

    fn drain(
        rx: &mut mpsc::UnboundedReceiver<Result<proto::RunMessage, Status>>,
    ) -> Vec<proto::run_message::Kind> {
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            got.push(m.unwrap().kind.unwrap());
        }
        got
    }

    fn names(events: &[proto::Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                Some(proto::event::Kind::Warning(w)) => w.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_client_that_does_not_ask_for_batches_gets_one_event_per_message() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = Outbox::new(tx, false, DEFAULT_MAX_MESSAGE_BYTES);
        for i in 0..3 {
            out.event(warning(i));
            // Sent at once, not held for a flush.
            match &drain(&mut rx)[..] {
                [proto::run_message::Kind::Event(e)] => {
                    assert_eq!(names(std::slice::from_ref(e)), [format!("event {i:04}")])
                }
                other => panic!("{other:?}"),
            }
        }
        out.finish(Ok(proto::RunMessage {
            kind: Some(proto::run_message::Kind::ReportJson("{}".into())),
        }));
        assert!(matches!(
            &drain(&mut rx)[..],
            [proto::run_message::Kind::ReportJson(_)]
        ));
    }

    #[test]
    fn batches_keep_every_event_once_in_order_within_the_size_limit() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A 512-byte limit: 35 of these 14-byte events per batch.
        let out = Outbox::new(tx, true, 512);
        for i in 0..200 {
            out.event(warning(i));
        }
        let full = drain(&mut rx);
        // The first at once, then every full batch (more if this thread stalled for 50 ms).
        assert!(full.len() >= 6, "full batches went out: {}", full.len());
        out.finish(Ok(proto::RunMessage {
            kind: Some(proto::run_message::Kind::ReportJson("{}".into())),
        }));
        let mut got = full;
        got.extend(drain(&mut rx));
        assert!(matches!(
            got.pop(),
            Some(proto::run_message::Kind::ReportJson(_))
        ));
        let mut seen = Vec::new();
        for m in got {
            let batch = match m {
                proto::run_message::Kind::Events(b) => b,
                other => panic!("only batches before the report: {other:?}"),
            };
            assert!(!batch.events.is_empty());
            let bytes = prost::Message::encoded_len(&proto::RunMessage {
                kind: Some(proto::run_message::Kind::Events(batch.clone())),
            });
            assert!(bytes <= 512, "{bytes} bytes");
            seen.extend(names(&batch.events));
        }
        let sent: Vec<String> = (0..200).map(|i| format!("event {i:04}")).collect();
        assert_eq!(seen, sent);
    }

    #[tokio::test]
    async fn a_batch_goes_out_on_its_own_while_the_run_is_still_going() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = Outbox::new(tx, true, DEFAULT_MAX_MESSAGE_BYTES);
        let flusher = out.flusher().expect("a flusher for batches");
        // The first event goes out at once, the one right after it with the flusher.
        out.event(warning(0));
        match &drain(&mut rx)[..] {
            [proto::run_message::Kind::Events(b)] => assert_eq!(names(&b.events), ["event 0000"]),
            other => panic!("the first event at once: {other:?}"),
        }
        for round in 1..3 {
            out.event(warning(round));
            // Nobody calls flush: the flusher sends it after BATCH_DELAY.
            let m = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("the batch was sent without a flush")
                .unwrap()
                .unwrap();
            match m.kind {
                Some(proto::run_message::Kind::Events(b)) => {
                    assert_eq!(names(&b.events), [format!("event {round:04}")]);
                }
                other => panic!("{other:?}"),
            }
        }
        flusher.abort();
    }
}
