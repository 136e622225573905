//! `strata serve` and `--remote URL`: the options, and each command run against a server through
//! `strata_serve::Client`, rendered by the same `render::Output` as a local run. A child of `cli`
//! so it reads the parsed arguments directly.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use strata_engine::commands::fleet::{
    Remotes, TargetOutcome, TargetResult, TargetState, TargetStatus,
};
use strata_engine::commands::migrate::{DatabaseStatus, MigrateOptions};
use strata_engine::core::backup::{self, Backup};
use strata_engine::core::config::FleetRemote;
use strata_engine::core::event::{Event, Phase};
use strata_engine::core::exit;
use strata_engine::core::plan::{State, StatusEntry};
use strata_engine::{Error, Project, Tree};
use strata_serve::auth::{self, Token};
use strata_serve::client::{Client, ClientOptions};
use strata_serve::connections::ConnectionLimits;
use strata_serve::proto;
use strata_serve::server::{self, TlsFiles};
use strata_serve::{RemoteError, StrataService};

use super::{Args, Command};
use crate::render::{self, Output};

/// The options of a remote call (global, so they sit before or after the command).
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Run the command on the strata server at URL (http://host:port or https://host:port)
    /// instead of on the local project.
    #[arg(long, global = true, value_name = "URL", env = "STRATA_REMOTE")]
    pub remote: Option<String>,
    /// The file holding the bearer token (of the server for --remote; the one to accept for
    /// `serve`, created with a fresh random token if missing). Else STRATA_TOKEN.
    #[arg(long, global = true, value_name = "FILE", env = "STRATA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// With --remote https://...: the CA certificate (PEM) that signed the server's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// With --remote: a client certificate (PEM) for servers that require one.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// With --remote: the client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// With --remote: the deadline of each call in seconds (migrate and sandbox run as long as
    /// they need).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Lets the token cross the network in clear text (no TLS, a host other than loopback):
    /// `serve` listening so, `--remote http://HOST:PORT`, and the remotes of fleet groups whose
    /// strata.toml says `allow_insecure = true` (strata.toml alone cannot grant it).
    #[arg(long, global = true)]
    pub allow_insecure: bool,
}

/// `strata serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7433")]
    listen: SocketAddr,
    /// The server's TLS certificate chain (PEM); with --tls-key, clients connect with https://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// The largest message accepted or sent, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = strata_serve::service::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Connections open at once over all clients; more are closed as they arrive (lowered to
    /// fit the limit of open files).
    #[arg(long, value_name = "N", default_value_t = strata_serve::connections::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..1_000_000))]
    max_connections: u64,
    /// Connections open at once from one peer: an IPv4 /24, the whole loopback, an IPv6 /64.
    #[arg(long, value_name = "N", default_value_t = strata_serve::connections::DEFAULT_MAX_CONNECTIONS_PER_PEER as u64,
          value_parser = clap::value_parser!(u64).range(1..1_000_000))]
    max_connections_per_peer: u64,
    /// A connection that sends nothing for this many seconds is closed (the server's
    /// keepalive pings keep a waiting client's connection active).
    #[arg(long, value_name = "SECS", default_value_t = strata_serve::connections::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..86_400))]
    idle_timeout: u64,
    /// A connection that has made no call with the token this many seconds after connecting
    /// is closed, whatever it sends (at most --idle-timeout).
    #[arg(long, value_name = "SECS", default_value_t = strata_serve::connections::DEFAULT_AUTH_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..86_400))]
    auth_timeout: u64,
}

fn token_from(args: &RemoteArgs, create: bool) -> Result<Option<(String, String)>> {
    if let Some(path) = &args.token_file {
        if create && !path.exists() {
            let token = auth::create_file(path)?;
            return Ok(Some((
                token,
                format!("new token written to {}", path.display()),
            )));
        }
        let token = auth::read_file(path).map_err(|e| usage(e.to_string()))?;
        return Ok(Some((token, format!("token from {}", path.display()))));
    }
    match std::env::var("STRATA_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(Some((t, "token from STRATA_TOKEN".into()))),
        _ => Ok(None),
    }
}

fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(Error::Usage(message))
}

/// Runs `strata serve` until Ctrl-C or SIGTERM.
pub fn serve(out: &Output, project: Project, remote: &RemoteArgs, args: ServeArgs) -> Result<()> {
    if remote.remote.is_some() {
        return Err(usage("`strata serve` runs here: drop --remote".into()));
    }
    let (token, whence) = token_from(remote, true)?.ok_or_else(|| {
        usage(
            "strata serve needs a token that clients must present: pass --token-file FILE \
             (a missing FILE is created with a fresh random token) or set STRATA_TOKEN"
                .into(),
        )
    })?;
    let token = Token::new(&token).map_err(|e| usage(format!("the server's token: {e}")))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        _ => None,
    };
    if tls.is_none() && !args.listen.ip().is_loopback() && !remote.allow_insecure {
        return Err(anyhow::Error::new(RemoteError::local(
            exit::REFUSED,
            "refused",
            format!(
                "refused to listen on {} without TLS: the token would cross the network in clear \
             text. Pass --tls-cert FILE --tls-key FILE, listen on 127.0.0.1, or pass \
             --allow-insecure if the network is trusted",
                args.listen
            ),
        )));
    }
    // Fail fast on a malformed tree rather than on the first call.
    Tree::load(&project.migrations_dir())?;
    let tls_config = tls.as_ref().map(server::tls_config).transpose()?;
    let service =
        StrataService::new(project.clone(), token).with_max_message_bytes(args.max_message_bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = server::bind(args.listen).await?;
        let addr = listener.local_addr().context("the bound address")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        if out.json_mode() {
            outln!(
                "{}",
                render::json_text(
                    json!({ "url": url, "project": project.root, "db": project.db.shown() })
                        .to_string()
                )
            );
        } else {
            outln!("{url}");
        }
        std::io::stdout().flush().ok();
        if !out.quiet_mode() {
            errln!(
                "strata serve: {} on {url} ({whence}{}); Ctrl-C or SIGTERM stops it after the \
                 run in progress",
                project.db,
                if args.tls_client_ca.is_some() {
                    ", client certificates required"
                } else {
                    ""
                }
            );
        }
        let (limits, lowered) = ConnectionLimits {
            max_connections: args.max_connections as usize,
            max_connections_per_peer: args.max_connections_per_peer as usize,
            idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
            auth_timeout: std::time::Duration::from_secs(args.auth_timeout),
        }
        .fitted();
        if let Some(note) = lowered
            && !out.quiet_mode()
        {
            errln!("strata serve: {note}");
        }
        server::serve_with(service, listener, tls_config, limits, server::signal()).await?;
        if !out.quiet_mode() {
            errln!("strata serve: stopped");
        }
        anyhow::Ok(())
    })
}

/// `strata info` on the local project.
pub fn local_info(out: &Output, project: &Project) -> Result<()> {
    let tree = Tree::load(&project.migrations_dir())?;
    let info = proto::InfoResponse {
        engine_version: strata_engine::ENGINE_VERSION.into(),
        wit_version: strata_serve::wit_version().into(),
        api_version: strata_serve::API_VERSION.into(),
        project: strata_serve::project_dir(project),
        db: project.db.to_string(),
        test_db: project.test_db.to_string(),
        modules: tree.modules.clone(),
        migrations: tree.migrations.len() as u32,
    };
    print_info(out, &info)
}

fn print_info(out: &Output, i: &proto::InfoResponse) -> Result<()> {
    if out.json_mode() {
        outln!(
            "{}",
            render::json_text(serde_json::to_string_pretty(&json!({
                "engine_version": i.engine_version,
                "wit_version": i.wit_version,
                "api_version": i.api_version,
                "project": i.project,
                "db": i.db,
                "test_db": i.test_db,
                "modules": i.modules,
                "migrations": i.migrations,
            }))?)
        );
        return Ok(());
    }
    outln!("engine    strata {}", i.engine_version);
    outln!("api       {}", i.api_version);
    outln!("wit       strata:migrate@{}", i.wit_version);
    outln!("project   {}", i.project);
    outln!("db        {}", i.db);
    outln!("test db   {}", i.test_db);
    outln!(
        "modules   {} ({} migrations)",
        i.modules.join(", "),
        i.migrations
    );
    Ok(())
}

/// Runs the command of `args` on the server `--remote` names.
pub fn run(args: Args, out: &Output, project: &Project) -> Result<()> {
    let url = args.remote.remote.clone().unwrap_or_default();
    let local_only = |name: &str| {
        Err(usage(format!(
            "`strata {name}` works on the local project only: drop --remote (or unset \
             STRATA_REMOTE)"
        )))
    };
    match &args.command {
        Command::Init => return local_only("init"),
        Command::Lint { .. } => return local_only("lint"),
        Command::New { .. } => return local_only("new"),
        Command::Build { .. } => return local_only("build"),
        Command::Baseline { .. } => return local_only("baseline"),
        Command::Serve(_) => return local_only("serve"),
        Command::Repair { .. } => return local_only("repair"),
        Command::Completions { .. } => return local_only("completions"),
        Command::Fleet(_) => return local_only("fleet"),
        Command::Migrate(r) if r.write_snapshots => {
            return Err(usage(
                "--write-snapshots does not work with --remote: the server never writes into \
                 its tree. Run `strata --remote URL dump <module> --write` to store its schema \
                 here"
                    .into(),
            ));
        }
        Command::Sandbox { from: Some(_), .. } => {
            return Err(usage(
                "--from does not work with --remote: the server rehearses only its own \
                 databases"
                    .into(),
            ));
        }
        _ => {}
    }
    let (token, _) = token_from(&args.remote, false)?.unwrap_or_default();
    let opts = ClientOptions {
        token: (!token.is_empty()).then_some(token),
        tls_ca: args.remote.tls_ca.clone(),
        tls_identity: args
            .remote
            .tls_client_cert
            .clone()
            .zip(args.remote.tls_client_key.clone()),
        timeout: Duration::from_secs(args.remote.timeout.max(1)),
        allow_clear_text: args.remote.allow_insecure,
        ..ClientOptions::new(url)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut client = Client::connect(opts).await?;
        remote_command(&mut client, args, out, project).await
    })
}

async fn remote_command(
    client: &mut Client,
    args: Args,
    out: &Output,
    project: &Project,
) -> Result<()> {
    match args.command {
        Command::Status { check } => {
            let (dbs, ledgers) = client.status().await?;
            let compared = compare_local(project, &dbs, &ledgers)?;
            if out.json_mode() {
                outln!(
                    "{}",
                    render::json_text(serde_json::to_string_pretty(
                        &json!({ "databases": dbs, "local": compared })
                    )?)
                );
                return Ok(());
            }
            out.status(&dbs)?;
            if let Some(c) = compared {
                print_comparison(client.url(), &c);
            }
            if check {
                // The server's plan refuses exactly when its migrate would.
                client.plan(&MigrateOptions::default(), false).await?;
            }
            Ok(())
        }
        Command::Plan { run, sql, .. } => {
            let phases = client.plan(&options(&run), sql).await?;
            if sql {
                out.plan_sql(&phases)
            } else {
                out.plan(&phases)
            }
        }
        Command::Migrate(run) => {
            let opts = MigrateOptions {
                rehearse_on_copy: run.rehearse_on_copy,
                single_transaction: run.single_transaction,
                ..options(&run.plan)
            };
            let report = client
                .migrate(&opts, &mut |e| render::event(out, e))
                .await?;
            out.migrate(&report)
        }
        Command::Sandbox { junit, to, .. } => {
            let report = client
                .sandbox(to.as_deref(), &mut |e| render::event(out, e))
                .await?;
            super::show_sandbox(out, &report, junit.as_deref())
        }
        Command::Restore {
            test, list: true, ..
        } => {
            let r = client.list_backups(test).await?;
            let list: Vec<Backup> = r
                .backups
                .into_iter()
                .map(|b| Backup {
                    path: PathBuf::from(b.name),
                    size: b.bytes,
                    record: backup::Record {
                        strata_backup: backup::RECORD_FORMAT,
                        source: PathBuf::from(b.source),
                        database_id: b.database_id,
                        taken_at: b.taken_at,
                        reason: b.reason,
                    },
                })
                .collect();
            out.backups(Path::new(&r.db), &list)
        }
        Command::Restore { backup, test, .. } => {
            let name = backup.map(|b| {
                b.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let restored = client.restore(test, name.as_deref()).await?;
            out.restored(&restored, test)
        }
        Command::Audit { test, limit } => {
            let (db, rows) = client.audit(test, limit).await?;
            out.audit(&db, &rows)
        }
        Command::Dump { module, write } => {
            let mut report = client.dump(module.as_deref()).await?;
            if write {
                let (_, ledgers) = client.status().await?;
                write_dump(project, &mut report, &ledgers, client.url())?;
            }
            out.dump(&report)
        }
        Command::Diff {
            module,
            sql,
            allow_destructive,
            exit_code,
        } => {
            let report = client.diff(module.as_deref(), sql).await?;
            super::show_diff(out, &report, sql, allow_destructive, exit_code)
        }
        Command::Info => print_info(out, &client.info().await?),
        Command::Undo { to } => out.undone(&client.undo(to.as_deref()).await?),
        Command::Init
        | Command::Lint { .. }
        | Command::New { .. }
        | Command::Build { .. }
        | Command::Baseline { .. }
        | Command::Repair { .. }
        | Command::Down { .. }
        | Command::Rollback { .. }
        | Command::Revert { .. }
        | Command::Completions { .. }
        | Command::Fleet(_)
        | Command::Serve(_) => Err(usage("this command works on the local project only".into())),
    }
}

/// `plan`/`migrate` options for the server: `--to` goes as given (the server reads it against
/// its own tree, whole stamp or prefix), the rest as flags.
fn options(run: &super::PlanArgs) -> MigrateOptions {
    MigrateOptions {
        plan: strata_engine::core::plan::PlanOptions {
            to: run.to.clone(),
            allow_out_of_order: run.allow_out_of_order,
        },
        rehearse: !run.no_rehearsal,
        allow_drift: run.allow_drift,
        ..MigrateOptions::default()
    }
}

/// The local tree against the server: migrations it does not know, and migrations it applied
/// with another checksum.
#[derive(Debug, serde::Serialize)]
struct Comparison {
    /// `module/folder` of local migrations the server's tree and ledger lack.
    not_on_server: Vec<String>,
    /// Local migrations applied on the server's real database with another checksum.
    other_checksum: Vec<String>,
}

fn compare_local(
    project: &Project,
    dbs: &[DatabaseStatus],
    ledgers: &[proto::DatabaseLedger],
) -> Result<Option<Comparison>> {
    let dir = project.migrations_dir();
    if !dir.is_dir() {
        return Ok(None);
    }
    let tree = Tree::load(&dir)?;
    let real = ledgers
        .iter()
        .find(|l| l.phase == proto::Phase::Apply as i32);
    let mut c = Comparison {
        not_on_server: Vec::new(),
        other_checksum: Vec::new(),
    };
    for m in &tree.migrations {
        let known = dbs.iter().flat_map(|d| &d.migrations).any(|e| e.id == m.id);
        if !known {
            c.not_on_server.push(m.label());
        }
        let applied = real.into_iter().flat_map(|l| &l.applied).find(|a| {
            a.migration
                .as_ref()
                .is_some_and(|r| r.module == m.id.module && r.stamp == m.id.stamp)
        });
        if let Some(a) = applied
            && a.checksum != m.checksum()
        {
            c.other_checksum.push(m.label());
        }
    }
    Ok(Some(c))
}

fn print_comparison(url: &str, c: &Comparison) {
    if c.not_on_server.is_empty() && c.other_checksum.is_empty() {
        outln!("local tree: every migration here is known to {url} with the same checksum");
        return;
    }
    if !c.not_on_server.is_empty() {
        outln!(
            "local tree: {} migration(s) {url} does not have: {}",
            c.not_on_server.len(),
            c.not_on_server.join(", ")
        );
    }
    if !c.other_checksum.is_empty() {
        outln!(
            "local tree: {} migration(s) applied on {url} with another checksum (the local \
             files differ from what ran there): {}",
            c.other_checksum.len(),
            c.other_checksum.join(", ")
        );
    }
}

/// `dump --write` with --remote: the server's schema of each module becomes the snapshot of the
/// module's newest local migration, which must be applied on the server with the same checksum.
fn write_dump(
    project: &Project,
    report: &mut strata_engine::core::design::DumpReport,
    ledgers: &[proto::DatabaseLedger],
    url: &str,
) -> Result<()> {
    let tree = Tree::load(&project.migrations_dir())?;
    let real = ledgers
        .iter()
        .find(|l| l.phase == proto::Phase::Apply as i32);
    for m in &mut report.modules {
        let module = &m.module;
        let newest = tree.module(module).last().ok_or_else(|| {
            usage(format!(
                "module `{module}` has no migrations in {}: the server's schema has no folder \
                 to go in. Check out the tree the server runs",
                project.migrations_dir().display()
            ))
        })?;
        let applied = real.into_iter().flat_map(|l| &l.applied).find(|a| {
            a.migration
                .as_ref()
                .is_some_and(|r| r.module == newest.id.module && r.stamp == newest.id.stamp)
        });
        match applied {
            None => {
                return Err(usage(format!(
                    "{newest} is not applied on {url}'s real database, so its schema.sql \
                     cannot be taken from there: run `strata --remote {url} migrate` first, or \
                     check out the tree the server runs"
                )));
            }
            Some(a) if a.checksum != newest.checksum() => {
                return Err(anyhow::Error::new(RemoteError::local(
                    exit::REFUSED,
                    "refused",
                    format!(
                        "{newest} here differs from the one applied on {url} (another \
                         checksum): its schema.sql would not describe these files. Check out \
                         the tree the server runs"
                    ),
                )));
            }
            Some(_) => {}
        }
        m.written = strata_engine::core::design::write_snapshot(newest, &m.sql, true)?;
    }
    Ok(())
}

/// A fleet's remote targets, each reached with the same client as `--remote` (the TLS files of
/// the command line apply to every https remote).
pub struct FleetRemotes {
    tls_ca: Option<PathBuf>,
    tls_identity: Option<(PathBuf, PathBuf)>,
    allow_insecure: bool,
}

impl FleetRemotes {
    pub fn new(args: &RemoteArgs) -> Self {
        FleetRemotes {
            tls_ca: args.tls_ca.clone(),
            tls_identity: args
                .tls_client_cert
                .clone()
                .zip(args.tls_client_key.clone()),
            allow_insecure: args.allow_insecure,
        }
    }

    /// Connects to `remote` and has it answer `info` within `timeout`, then runs `call` on
    /// the client (whose other calls have `timeout` as their deadline; migrate has none).
    fn with_client<T>(
        &self,
        remote: &FleetRemote,
        timeout: Duration,
        call: impl AsyncFnOnce(&mut Client) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let token = match (&remote.token_file, &remote.token_env) {
            (Some(file), _) => Some(
                auth::read_file(file)
                    .map_err(|e| RemoteError::local(exit::BAD_INPUT, "input", e.to_string()))?,
            ),
            (None, Some(var)) => match std::env::var(var) {
                Ok(t) if !t.trim().is_empty() => Some(t),
                _ => {
                    return Err(RemoteError::local(
                        exit::BAD_INPUT,
                        "input",
                        format!(
                            "the remote {}: the variable {var} holds no token",
                            remote.name
                        ),
                    ));
                }
            },
            (None, None) => None,
        };
        let opts = ClientOptions {
            token,
            tls_ca: self.tls_ca.clone(),
            tls_identity: self.tls_identity.clone(),
            // A call's own deadline a little past the target's timeout, so that reaching the
            // server is told apart (below) from a call that ran out of time.
            timeout: timeout + Duration::from_secs(1),
            // Migrate has no deadline (a long step is honest), but a server that stops
            // answering pings is given up on within twice the target's timeout.
            keepalive: Some(timeout),
            // The engine checked the group's allow_insecure too.
            allow_clear_text: self.allow_insecure,
            ..ClientOptions::new(remote.url.clone())
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                RemoteError::local(exit::FAILURE, "runtime", format!("cannot start: {e}"))
            })?;
        runtime.block_on(async move {
            let reached = tokio::time::timeout(timeout, async {
                let mut client = Client::connect(opts).await?;
                client.info().await?;
                Ok::<_, RemoteError>(client)
            })
            .await;
            let mut client = match reached {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(client)) => client,
                Err(_) => {
                    return Err(RemoteError::local(
                        exit::UNAVAILABLE,
                        "transport",
                        format!(
                            "cannot reach the strata server at {}: no answer within {} ms (the \
                             target's timeout_ms)",
                            remote.url,
                            timeout.as_millis()
                        ),
                    ));
                }
            };
            call(&mut client).await
        })
    }
}

impl Remotes for FleetRemotes {
    fn status(
        &self,
        remote: &FleetRemote,
        opts: &MigrateOptions,
        timeout: Duration,
        status: &mut TargetStatus,
    ) {
        let answer = self.with_client(remote, timeout, async |client| {
            let (dbs, _) = client.status().await?;
            // The server's plan refuses exactly when its migrate would.
            let refusal = client.plan(opts, false).await.err();
            Ok((dbs, refusal))
        });
        let (dbs, refusal) = match answer {
            Ok(a) => a,
            Err(e) => {
                status.state = if e.exit_code == exit::UNAVAILABLE {
                    TargetState::Unreachable
                } else {
                    TargetState::Refused
                };
                status.problems.push(e.message);
                return;
            }
        };
        let Some(real) = dbs.iter().find(|d| d.phase == Phase::Apply) else {
            status
                .problems
                .push(format!("{} reported no real database", remote.url));
            return;
        };
        let applied: Vec<&StatusEntry> = real
            .migrations
            .iter()
            .filter(|m| matches!(m.state, State::Applied { .. } | State::Modified { .. }))
            .collect();
        status.applied = applied.len();
        status.head = applied.last().map(|m| m.label());
        status.pending = real
            .migrations
            .iter()
            .filter(|m| m.state == State::Pending)
            .map(StatusEntry::label)
            .collect();
        status.state = if real
            .migrations
            .iter()
            .any(|m| matches!(m.state, State::Modified { .. }))
        {
            TargetState::Modified
        } else if !real.drift.is_empty() {
            TargetState::Drifted
        } else if refusal.is_some() {
            TargetState::Refused
        } else if status.pending.is_empty() {
            TargetState::UpToDate
        } else {
            TargetState::Pending
        };
        status.problems.extend(refusal.map(|e| e.message));
    }

    fn migrate(
        &self,
        remote: &FleetRemote,
        opts: &MigrateOptions,
        timeout: Duration,
        progress: &mut dyn FnMut(&Event<'_>),
        result: &mut TargetResult,
    ) {
        match self.with_client(remote, timeout, async |client| {
            client.migrate(opts, progress).await
        }) {
            Ok(report) => result.ran(report.phases.iter().rfind(|p| p.phase == Phase::Apply)),
            Err(e) => {
                result.outcome = if e.exit_code == exit::REFUSED {
                    TargetOutcome::Refused
                } else {
                    TargetOutcome::Failed
                };
                result.exit_code = e.exit_code;
                result.error = Some(e.message);
            }
        }
    }
}
