//! Fleets: one chain applied to many databases (a database per tenant), in stages.
//!
//! A fleet's targets come from `[[fleet.group]]` tables in strata.toml (a glob of SQLite files,
//! a list of files or URLs, a PostgreSQL URL template over names) or from `--targets GLOB` on
//! the command line. `fleet_status` and `fleet_plan` read every target; `fleet_migrate`
//! rehearses once on the project's test database, then runs the stages in order, each target
//! through the same per-database part of `migrate` (`migrate::run_database`): its own backup,
//! run and audit rows. The inputs are read and the components compiled once per process, and
//! the sandbox is shared by the workers of a stage. A run that stopped continues where it
//! stopped when started again: a target at the head of the chain has nothing pending.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backends;
use crate::commands::migrate::{self, MigrateOptions};
use crate::core::backend::{Backend as _, Inspect as _, Run as _};
use crate::core::config::{
    FLEET_TIMEOUT_MS, FleetGroup, FleetRemote, FleetStage, OnFailure, Project,
};
use crate::core::error::{Error, Refusal};
use crate::core::event::{Event, Phase};
use crate::core::identity::{self, Reserved};
use crate::core::phase::{PhaseReport, Runner};
use crate::core::target::{Database, Origin};
use crate::core::tree::{Migration, Tree};

/// One database of a fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetTarget {
    /// The file's stem, the database's name, or the name put in a URL template.
    pub name: String,
    /// The `[[fleet.group]]` it comes from (`targets` for `--targets GLOB`).
    pub group: String,
    /// A SQLite file or a PostgreSQL URL (without its password), or a remote's URL: as shown.
    pub db: PathBuf,
    /// The database strata opens; `None` for a remote (its server opens its own).
    #[serde(skip)]
    pub database: Option<Database>,
    /// A `strata serve` that migrates its own databases (its token file made absolute).
    #[serde(skip)]
    pub remote: Option<FleetRemote>,
}

impl FleetTarget {
    /// A target strata opens itself: `db` of `group`, named `name`.
    fn local(name: String, group: String, db: Database) -> FleetTarget {
        FleetTarget {
            name,
            group,
            db: db.shown(),
            database: Some(db),
            remote: None,
        }
    }
}

/// What a fleet asks of a remote target, a `strata serve`: implemented by the CLI over its
/// gRPC client (the engine does not speak gRPC). Each call is bounded by `timeout` for reaching
/// the server; a migrate runs as long as the server needs once it answered.
pub trait Remotes: Sync {
    /// Fills `status` (prefilled with the target and its stage, `unreachable`) from the
    /// server's status and plan.
    fn status(
        &self,
        remote: &FleetRemote,
        opts: &MigrateOptions,
        timeout: Duration,
        status: &mut TargetStatus,
    );

    /// Runs `migrate` on the server (its own rehearsal unless `opts` says not), the server's
    /// events going to `progress` as they come, and fills `result` (prefilled `failed`).
    fn migrate(
        &self,
        remote: &FleetRemote,
        opts: &MigrateOptions,
        timeout: Duration,
        progress: &mut dyn FnMut(&Event<'_>),
        result: &mut TargetResult,
    );
}

/// Which targets a fleet command works on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--targets`: a glob of SQLite files (a value with a `/` or ending in `.db`,
    /// `.sqlite` or `.sqlite3`), or else a pattern of target or group names that limits the
    /// configured groups.
    pub targets: Option<String>,
    /// `--parallel`: how many targets the stages without their own `parallel` run at once.
    pub parallel: Option<usize>,
    /// `--allow-insecure`: the operator confirms that the groups whose strata.toml says
    /// `allow_insecure = true` may send their tokens in clear text off loopback.
    pub allow_insecure: bool,
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters and `?` for
/// one.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a `--targets` value names files rather than targets.
fn is_file_glob(value: &str) -> bool {
    value.contains('/')
        || value.contains(std::path::MAIN_SEPARATOR)
        || [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| value.ends_with(ext))
}

/// The SQLite files `pattern` names: a path whose last part may hold `*` and `?`, relative to
/// `base`; sorted by path.
fn glob_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, Error> {
    let path = base.join(pattern);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(Error::Usage(format!(
            "{pattern}: only the file name of a fleet glob may hold `*` or `?`, not its folders"
        )));
    }
    let listed = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir.as_path()
    };
    let entries = std::fs::read_dir(listed).map_err(|e| Error::io(listed, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(listed, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Whatever matches but a folder: a FIFO, a device or a dangling link among the
        // tenants is a target that fails, with the reason, rather than one that silently
        // drops out of the fleet. The entry's type comes with the listing; only a symlink
        // needs a look at where it leads.
        let is_dir = || match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => entry.path().is_dir(),
        };
        if matches(&file, &name) && !is_dir() {
            found.push(dir.join(name));
        }
    }
    found.sort();
    Ok(found)
}

/// A target's name from its database: a file's stem, a URL's database name; control and
/// invisible characters written as escapes (`\n`, `\u{202e}`), since the name is printed in
/// reports a file name must not be able to forge lines of.
fn name_of(db: &Database) -> String {
    let name = match db {
        Database::Postgres(target) => {
            let path = target.shown().split(['?', '#']).next().unwrap_or_default();
            path.rsplit('/').next().unwrap_or_default().to_string()
        }
        Database::Sqlite(db) => db
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| db.to_string_lossy().into_owned()),
    };
    crate::components::host::escape_controls(&name)
}

/// Refuses a remote whose URL carries a user or password (the token is the credential, and a
/// URL is shown in reports), whose token comes from a source the operator did not choose, or
/// that would send its token in clear text over the network: anything but `https://`
/// (`http://` or a bare `HOST:PORT`; other schemes are refused) to an address other than
/// loopback, unless its group says `allow_insecure` and the command line confirms it with
/// `--allow-insecure` (strata.toml is the checkout's: a pull request can change it).
fn check_remote(
    root: &Path,
    group: &FleetGroup,
    r: &FleetRemote,
    confirmed: bool,
) -> Result<(), Error> {
    let name = crate::components::host::escape_controls(&r.name);
    let rest = r
        .url
        .split_once("://")
        .map_or(r.url.as_str(), |(_, rest)| rest);
    if rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .contains('@')
    {
        return Err(Error::Usage(format!(
            "the remote {name} of [[fleet.group]] {}: its url holds a user or password, which \
             would be shown in reports; write url = \"https://HOST:PORT\" and give the \
             server's token with token_file or token_env",
            group.name
        )));
    }
    let parsed = crate::core::remote_url::RemoteUrl::parse(&r.url).map_err(|e| {
        Error::Usage(format!(
            "the remote {name} of [[fleet.group]] {}: {e}",
            group.name
        ))
    })?;
    check_token_source(root, group, r)?;
    if !parsed.clear_text_off_loopback() || (group.allow_insecure && confirmed) {
        return Ok(());
    }
    let authority = crate::components::host::escape_controls(&parsed.url);
    Err(Error::Usage(if group.allow_insecure {
        format!(
            "the remote {name} of [[fleet.group]] {}: {authority} is not loopback and not https, \
             so its token would cross the network in clear text; the group says allow_insecure = \
             true, which strata.toml alone cannot grant (a checkout could send a token anywhere): \
             pass --allow-insecure to confirm the network is trusted, or serve it with TLS and \
             write https://",
            group.name
        )
    } else {
        format!(
            "the remote {name} of [[fleet.group]] {}: {authority} is not loopback and not https, \
             so its token would cross the network in clear text; serve it with TLS and write \
             https://, or set allow_insecure = true in the group and pass --allow-insecure if \
             the network is trusted",
            group.name
        )
    }))
}

/// The prefix of the environment variables a remote's `token_env` may name: strata.toml is the
/// checkout's, so it may not pick any variable of the environment (`AWS_SECRET_ACCESS_KEY`,
/// `STRATA_DB` with its password) to send to a server it names.
pub const TOKEN_ENV_PREFIX: &str = "STRATA_TOKEN_";

/// A remote's token comes from a source the operator chose, not one the checkout picks: a
/// variable named `STRATA_TOKEN_*`, or a file under the project's own `.strata/` (reached
/// without symbolic links, so `.strata/t -> ~/.git-credentials` is refused).
fn check_token_source(root: &Path, group: &FleetGroup, r: &FleetRemote) -> Result<(), Error> {
    let name = crate::components::host::escape_controls(&r.name);
    if let Some(var) = &r.token_env {
        let suffix = var.strip_prefix(TOKEN_ENV_PREFIX).unwrap_or_default();
        if suffix.is_empty()
            || !suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::Usage(format!(
                "the remote {name} of [[fleet.group]] {}: token_env = {:?}: a remote's token \
                 comes only from a variable named {TOKEN_ENV_PREFIX}* (letters, digits, '_'), \
                 so that strata.toml cannot send any other variable of the environment to the \
                 server it names; export the token as, say, {TOKEN_ENV_PREFIX}{} and name that",
                group.name,
                crate::components::host::escape_controls(var),
                token_env_suggestion(&r.name)
            )));
        }
    }
    if let Some(file) = &r.token_file {
        let refuse = |why: &str| {
            Error::Usage(format!(
                "the remote {name} of [[fleet.group]] {}: token_file = {:?}: {why}; a remote's \
                 token file lies in the project's own {dir}/ folder (say token_file = \
                 \"{dir}/{}.token\", mode 0600), so that strata.toml cannot send any other file \
                 of yours to the server it names",
                group.name,
                crate::components::host::escape_controls(&file.to_string_lossy()),
                token_env_suggestion(&r.name).to_ascii_lowercase(),
                dir = crate::core::config::STATE_DIR,
            ))
        };
        let mut parts = file.components();
        let first = parts.next();
        if first
            != Some(std::path::Component::Normal(
                crate::core::config::STATE_DIR.as_ref(),
            ))
        {
            return Err(refuse("it is not under .strata/"));
        }
        let rest: Vec<_> = parts.collect();
        if rest.is_empty()
            || !rest
                .iter()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(refuse("it is not a file under .strata/ (no '..')"));
        }
        let mut at = root.join(crate::core::config::STATE_DIR);
        for (i, part) in std::iter::once(None)
            .chain(rest.iter().map(Some))
            .enumerate()
        {
            if let Some(part) = part {
                at.push(part);
            }
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(refuse(&format!(
                        "{} is a symbolic link",
                        crate::components::host::escape_controls(&at.to_string_lossy())
                    )));
                }
                Ok(meta) if i < rest.len() && !meta.is_dir() => {
                    return Err(refuse("a folder on its way is not a folder"));
                }
                // A missing file is reported when its token is read.
                _ => {}
            }
        }
    }
    Ok(())
}

/// A remote's name as the tail of a variable name: `billing-eu` -> `BILLING_EU`.
fn token_env_suggestion(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The targets `selection` names, in order: the configured groups' (or `--targets GLOB`'s),
/// each once. Two databases under one name are refused: reports, stages and `--targets` speak
/// of targets by name.
pub fn targets(project: &Project, selection: &Selection) -> Result<Vec<FleetTarget>, Error> {
    let mut all = Vec::new();
    let limit = match selection.targets.as_deref() {
        Some(glob) if is_file_glob(glob) => {
            for db in glob_files(Path::new(""), glob)? {
                let db = Database::Sqlite(db);
                all.push(FleetTarget::local(name_of(&db), "targets".into(), db));
            }
            if all.is_empty() {
                return Err(Error::Usage(format!("--targets {glob}: no file matches")));
            }
            None
        }
        other => {
            for g in &project.config.fleet.group {
                let root = &project.root;
                let mut add = |name: String, db: Database| {
                    all.push(FleetTarget::local(name, g.name.clone(), db))
                };
                if let Some(glob) = &g.glob {
                    inside_project(
                        g,
                        &format!("[[fleet.group]] {} glob", g.name),
                        Path::new(glob),
                    )?;
                    for db in glob_files(root, glob)? {
                        resolves_inside(g, &format!("[[fleet.group]] {} glob", g.name), root, &db)?;
                        let db = Database::Sqlite(db);
                        add(name_of(&db), db);
                    }
                } else if let Some(dbs) = &g.databases {
                    for db in dbs {
                        let key = format!("[[fleet.group]] {} databases", g.name);
                        let db = match Database::parse_from(db, &key, Origin::Checkout)? {
                            Database::Sqlite(db) => {
                                inside_project(g, &key, &db)?;
                                resolves_inside(g, &key, root, &root.join(&db))?;
                                Database::Sqlite(root.join(db))
                            }
                            postgres => postgres,
                        };
                        add(name_of(&db), db);
                    }
                } else if let (Some(url), Some(names)) = (&g.url, &g.names) {
                    for name in names {
                        let db = Database::postgres_from(
                            &url.replace("{name}", name),
                            &format!("[[fleet.group]] {} url", g.name),
                            Origin::Checkout,
                        )?;
                        add(name.clone(), db);
                    }
                } else if let Some(url) = &g.postgres {
                    for (name, schema) in tenant_schemas(project, g, url)? {
                        add(name, schema);
                    }
                } else if let (Some(sql), Some(control)) = (&g.query, &g.control) {
                    let timeout = Duration::from_millis(g.timeout_ms.unwrap_or(FLEET_TIMEOUT_MS));
                    for (name, db) in control_rows(project, g, control, sql, timeout)? {
                        add(name, db);
                    }
                } else if let Some(remotes) = &g.remotes {
                    for r in remotes {
                        check_remote(root, g, r, selection.allow_insecure)?;
                        let mut r = r.clone();
                        r.token_file = r.token_file.map(|f| root.join(f));
                        all.push(FleetTarget {
                            name: r.name.clone(),
                            group: g.name.clone(),
                            db: PathBuf::from(&r.url),
                            database: None,
                            remote: Some(r),
                        });
                    }
                }
            }
            other
        }
    };
    if all.is_empty() {
        return Err(Error::Usage(
            "no fleet targets: pass --targets 'tenants/*.db' (a glob of SQLite files) or add a \
             [[fleet.group]] to strata.toml"
                .into(),
        ));
    }
    let mut by_name: HashMap<String, PathBuf> = HashMap::new();
    let mut out = Vec::new();
    for t in all {
        match by_name.get(&t.name) {
            Some(db) if *db == t.db => continue,
            Some(db) => {
                return Err(Error::Usage(format!(
                    "two fleet targets are named {:?}: {} and {}; a target's name is its \
                     file's stem or its database's name, and must be unique",
                    t.name,
                    db.display(),
                    t.db.display()
                )));
            }
            None => {
                by_name.insert(t.name.clone(), t.db.clone());
                out.push(t);
            }
        }
    }
    if let Some(pattern) = limit {
        out.retain(|t| matches(pattern, &t.name) || matches(pattern, &t.group));
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "--targets {pattern}: no configured target or group matches"
            )));
        }
    }
    let test = &project.test_db;
    if let Some(t) = out
        .iter()
        .filter_map(|t| Some((t, t.database.as_ref()?)))
        .find(|(_, db)| db.is_server() != test.is_server())
        .map(|(t, _)| t)
    {
        return Err(Error::Usage(format!(
            "the fleet target {} ({}) is not the same kind of database as the test database \
             {}: a rehearsal on another kind proves nothing; set test_db (or --test-db) to a \
             database of the targets' kind",
            t.name,
            t.db.display(),
            test
        )));
    }
    // In any spelling: another path, `..`, a symlink or a hard link to the test database's
    // file, another spelling of its server and name.
    for t in &out {
        let Some(db) = &t.database else {
            continue;
        };
        crate::core::config::check_distinct(db, &project.test_db).map_err(|_| {
            Error::Usage(format!(
                "the test database is among the fleet's targets ({} is {}): the rehearsal and \
                 the test data would run on a real database; set test_db (or --test-db) to a \
                 database of its own",
                t.name,
                t.db.display()
            ))
        })?;
    }
    let state = Reserved::new(&[project.state_dir()], &[]);
    let own = project_files(project);
    for t in &out {
        let Some(Database::Sqlite(db)) = &t.database else {
            continue;
        };
        let shown = crate::components::host::escape_controls(&t.db.to_string_lossy());
        if state.holds(db) {
            return Err(Error::Usage(format!(
                "the fleet target {} ({shown}) is inside {}, strata's own folder (backups, the \
                 test database, state): it can never be a target",
                t.name,
                crate::core::config::STATE_DIR
            )));
        }
        if own.holds(db) {
            return Err(Error::Usage(format!(
                "the fleet target {} ({shown}) is one of the project's own files (the \
                 migrations tree, strata.toml or a control database): it can never be a \
                 target; fix the row or the list that names it",
                t.name,
            )));
        }
    }
    refuse_control_databases(project, &out)?;
    Ok(out)
}

/// The project's own files a SQLite target may never be, in any spelling: a file of the
/// migrations tree (an empty `undo.sql` or `.gitkeep` would become a database, and the tree
/// would no longer read), `strata.toml`, or a query group's control database.
fn project_files(project: &Project) -> Reserved {
    let mut files = vec![project.root.join(crate::core::config::CONFIG_FILE)];
    files.extend(
        project
            .config
            .fleet
            .group
            .iter()
            .filter_map(|g| g.control.as_ref())
            .map(|c| project.root.join(c)),
    );
    Reserved::new(&[project.migrations_dir()], &files)
}

/// Refuses a PostgreSQL target that is a query group's control database in any spelling (a
/// control table is application data: a row naming its own database through the group's
/// `{name}` template would have the tenants' chain applied to it): the same server, port and
/// database name (every loopback spelling is one host), or, for a target of the same database
/// name, the server showing one database under both URLs (two names of one host, a port
/// forward). A SQLite control database is one of the project's files
/// ([`project_files`]).
fn refuse_control_databases(project: &Project, targets: &[FleetTarget]) -> Result<(), Error> {
    for g in &project.config.fleet.group {
        let Some(control) = &g.control else { continue };
        let where_ = format!("[[fleet.group]] {} control", g.name);
        let Database::Postgres(control) = Database::parse_from(control, &where_, Origin::Checkout)?
        else {
            continue;
        };
        for t in targets {
            let Some(Database::Postgres(target)) = &t.database else {
                continue;
            };
            let same = target.same_database(&control)
                || (crate::core::target::server_name(target.dbname())
                    == crate::core::target::server_name(control.dbname())
                    && backends::same_database_on_server(project, target, &control));
            if same {
                return Err(Error::Usage(format!(
                    "the fleet target {} of [[fleet.group]] {} ({}) is the group's control \
                     database {control}: the table that lists the targets is application data, \
                     and its own database can never be a target; fix the row that names it",
                    crate::components::host::escape_controls(&t.name),
                    t.group,
                    crate::components::host::escape_controls(&t.db.to_string_lossy()),
                )));
            }
        }
    }
    Ok(())
}

/// Refuses a SQLite path of `group` (from `origin`) that leaves the project's folder: an
/// absolute path, or one with `..`; unless the group says `allow_outside = true`.
fn inside_project(group: &FleetGroup, origin: &str, db: &Path) -> Result<(), Error> {
    use std::path::Component;
    if group.allow_outside {
        return Ok(());
    }
    let leaves = db
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if leaves {
        return Err(Error::Usage(format!(
            "{origin}: {} is outside the project's folder (an absolute path or `..`); fleet \
             files are relative to strata.toml and inside its folder, unless the group sets \
             allow_outside = true",
            crate::components::host::escape_controls(&db.to_string_lossy())
        )));
    }
    Ok(())
}

/// Refuses a SQLite file of `group` (from `origin`, at `db` under `root`) whose canonical path
/// leaves the project's folder: a symbolic link (the file or a folder on its way) pointing
/// out; unless the group says `allow_outside = true`. A checkout can commit such a link, and
/// [`inside_project`] only reads the path as written.
fn resolves_inside(group: &FleetGroup, origin: &str, root: &Path, db: &Path) -> Result<(), Error> {
    if group.allow_outside {
        return Ok(());
    }
    let shown = |p: &Path| crate::components::host::escape_controls(&p.to_string_lossy());
    let here = Path::new(".");
    let root_dir = if root.as_os_str().is_empty() {
        here
    } else {
        root
    };
    let Ok(root_real) = root_dir.canonicalize() else {
        return Ok(());
    };
    let real = match db.canonicalize() {
        Ok(real) => Some(real),
        // A dangling link: SQLite would create the file where it points.
        Err(_)
            if db
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            None
        }
        // Not there yet: where its folder really is.
        Err(_) => match identity::canonical(db) {
            Some(real) => Some(real),
            None => return Ok(()),
        },
    };
    if real.as_ref().is_some_and(|r| r.starts_with(&root_real)) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{origin}: {} leads outside the project's folder through a symbolic link ({}); fleet \
         files stay inside it: replace the link with the file (or a link inside the project), \
         or set allow_outside = true in the group",
        shown(db.strip_prefix(root).unwrap_or(db)),
        real.map_or_else(
            || "a dangling one".to_string(),
            |r| format!("to {}", shown(&r))
        ),
    )))
}

/// A stage as a run takes it: its targets (indexes into the target list) and its policy.
#[derive(Debug, Clone)]
struct Stage {
    name: String,
    parallel: usize,
    on_failure: OnFailure,
    /// The stage stops once this many of its targets failed.
    max_failures: usize,
    /// Its own `timeout_ms`, which wins over its targets' groups'.
    timeout: Option<Duration>,
    targets: Vec<usize>,
}

impl Stage {
    /// How long `target` of this stage may keep the run waiting: the stage's `timeout_ms`,
    /// else its group's, else [`FLEET_TIMEOUT_MS`].
    fn timeout_of(&self, project: &Project, target: &FleetTarget) -> Duration {
        self.timeout.unwrap_or_else(|| {
            let group = project
                .config
                .fleet
                .group
                .iter()
                .find(|g| g.name == target.group);
            Duration::from_millis(group.and_then(|g| g.timeout_ms).unwrap_or(FLEET_TIMEOUT_MS))
        })
    }
}

/// The stages of a run, in order: each configured `[[fleet.stage]]` takes the targets of its
/// groups and name patterns (all remaining ones when it names none) that no earlier stage
/// took; the targets no stage took form a last stage, `rest` (`all` when none is configured).
fn stages(project: &Project, targets: &[FleetTarget], selection: &Selection) -> Vec<Stage> {
    // A target's run is mostly waiting for its disk to sync (or its server to answer), so
    // more targets than cores run at once: 8 per core, at most 32.
    let default_parallel = selection.parallel.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_mul(8)
            .min(32)
    });
    let policy = |s: &FleetStage| match (s.max_failures, s.on_failure) {
        (Some(k), _) => k,
        (None, OnFailure::Stop) => 1,
        (None, OnFailure::Continue) => usize::MAX,
    };
    let mut taken = vec![false; targets.len()];
    let mut out = Vec::new();
    for s in &project.config.fleet.stage {
        let everything = s.groups.is_empty() && s.targets.is_empty();
        let mine: Vec<usize> = (0..targets.len())
            .filter(|&i| {
                let t = &targets[i];
                !taken[i]
                    && (everything
                        || s.groups.contains(&t.group)
                        || s.targets.iter().any(|p| matches(p, &t.name)))
            })
            .collect();
        for &i in &mine {
            taken[i] = true;
        }
        out.push(Stage {
            name: s.name.clone(),
            parallel: s.parallel.unwrap_or(default_parallel),
            on_failure: s.on_failure,
            max_failures: policy(s),
            timeout: s.timeout_ms.map(Duration::from_millis),
            targets: mine,
        });
    }
    let rest: Vec<usize> = (0..targets.len()).filter(|&i| !taken[i]).collect();
    if !rest.is_empty() {
        out.push(Stage {
            name: if out.is_empty() { "all" } else { "rest" }.into(),
            parallel: default_parallel,
            on_failure: OnFailure::Stop,
            max_failures: 1,
            timeout: None,
            targets: rest,
        });
    }
    out
}

/// A target's state in `fleet status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// Every migration of the chain is applied.
    UpToDate,
    /// Migrations are pending; `migrate` would apply them.
    Pending,
    /// The last step run on it failed (its audit log ends with a failure) and migrations
    /// are pending: `fleet migrate` tries it again.
    Failed,
    /// An applied migration's files changed since it was applied.
    Modified,
    /// A module's live schema differs from its last applied snapshot.
    Drifted,
    /// `migrate` would refuse for another reason (out of order, missing folder).
    Refused,
    /// The database could not be opened or read.
    Unreachable,
}

impl TargetState {
    /// Whether `migrate` would refuse this target (`fleet status` then exits 3).
    pub fn refuses(self) -> bool {
        matches!(
            self,
            TargetState::Modified
                | TargetState::Drifted
                | TargetState::Refused
                | TargetState::Unreachable
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::UpToDate => "up-to-date",
            TargetState::Pending => "pending",
            TargetState::Failed => "failed",
            TargetState::Modified => "modified",
            TargetState::Drifted => "drifted",
            TargetState::Refused => "refused",
            TargetState::Unreachable => "unreachable",
        }
    }
}

/// One row of `fleet status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStatus {
    #[serde(flatten)]
    pub target: FleetTarget,
    /// The stage a run would take it in.
    pub stage: String,
    pub state: TargetState,
    /// How many migrations of the chain are applied.
    pub applied: usize,
    /// The newest applied migration, `module/stamp-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The migrations a run would apply, in order.
    pub pending: Vec<String>,
    /// Why it refuses, is unreachable, or what its last failure said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// `fleet status`: every target's row, and how many are in each state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetStatus {
    pub targets: Vec<TargetStatus>,
    pub counts: BTreeMap<String, usize>,
    /// The migrations of the chain.
    pub chain: usize,
}

impl FleetStatus {
    /// Whether `migrate` would refuse any target.
    pub fn refuses(&self) -> bool {
        self.targets.iter().any(|t| t.state.refuses())
    }
}

/// Reads one target: its ledger, its plan, its drift and the end of its audit log. Read-only;
/// an error here makes the target unreachable, not the command fail.
fn read_target(
    project: &Project,
    tree: &Tree,
    target: &FleetTarget,
    opts: &MigrateOptions,
    drift: &DriftAnswers,
    (stage, timeout): (&str, Duration),
    remotes: &dyn Remotes,
) -> TargetStatus {
    let mut status = TargetStatus {
        target: target.clone(),
        stage: stage.to_string(),
        state: TargetState::Unreachable,
        applied: 0,
        head: None,
        pending: Vec::new(),
        problems: Vec::new(),
    };
    if let Some(remote) = &target.remote {
        remotes.status(remote, opts, timeout, &mut status);
        return status;
    }
    let project = for_target(project, target, timeout);
    if let Err(e) = reach(&project, timeout)
        .and_then(|()| fill_status(&project, tree, opts, drift, &mut status))
    {
        status.state = TargetState::Unreachable;
        status.problems.push(e.to_string());
    }
    status
}

fn fill_status(
    project: &Project,
    tree: &Tree,
    opts: &MigrateOptions,
    drift: &DriftAnswers,
    status: &mut TargetStatus,
) -> Result<(), Error> {
    if let Database::Sqlite(file) = &project.db
        && !file.exists()
    {
        return Err(Error::Usage(format!("{} does not exist", file.display())));
    }
    let seen = drift.survey(project, tree, !opts.allow_drift)?;
    status.applied = seen.applied.len();
    status.head = seen
        .applied
        .iter()
        .max_by(|a, b| a.id.stamp.cmp(&b.id.stamp))
        .map(|a| {
            tree.migrations
                .iter()
                .find(|m| m.id == a.id)
                .map_or_else(|| format!("{}/{}", a.id.module, a.id.stamp), |m| m.label())
        });
    let mut refusals =
        match crate::core::plan::plan(&seen.shown, &tree.migrations, &seen.applied, &opts.plan) {
            Ok(pending) => {
                status.pending = pending.iter().map(|m| m.label()).collect();
                Vec::new()
            }
            Err(r) => r,
        };
    refusals.extend(seen.drift);
    status.state = if let Some(r) = refusals.first() {
        match r {
            Refusal::Modified { .. } => TargetState::Modified,
            Refusal::Drift { .. } => TargetState::Drifted,
            _ => TargetState::Refused,
        }
    } else if status.pending.is_empty() {
        TargetState::UpToDate
    } else {
        TargetState::Pending
    };
    status.problems = refusals.iter().map(ToString::to_string).collect();
    if status.state == TargetState::Pending
        && let Some(last) = seen.last_audit
        && last.outcome != "ok"
    {
        status.state = TargetState::Failed;
        status.problems.push(format!(
            "{} {}{}: {}",
            last.at,
            last.module.unwrap_or_default(),
            last.stamp.map(|s| format!("/{s}")).unwrap_or_default(),
            last.detail.unwrap_or_else(|| last.outcome.clone())
        ));
    }
    Ok(())
}

/// What [`DriftAnswers::survey`] read of one target.
struct Surveyed {
    /// The database, as shown.
    shown: PathBuf,
    applied: Vec<crate::core::ledger::Applied>,
    last_audit: Option<crate::core::ledger::AuditRow>,
    /// What the drift check found (empty when it was not asked for).
    drift: Vec<Refusal>,
}

/// How many drift answers [`DriftAnswers`] keeps at most (each a hash and what was found), so
/// that its memory stays bounded whatever the number of targets.
const DRIFT_ANSWERS: usize = 4096;

/// The drift check over the targets of one command: targets whose digests match (one live
/// schema, one set of owners and one list of applied migrations, as the tenants of one chain
/// usually have) share one answer, so the live schema of each kind of target is taken apart
/// and compared with its snapshots once, not once per target.
#[derive(Default)]
struct DriftAnswers(Mutex<HashMap<[u8; 32], Vec<Refusal>>>);

impl DriftAnswers {
    /// The real database of `project` in one read (see `Inspect::survey`): its ledger, its
    /// newest audit row and, with `check_drift`, whether it drifted. Refuses as `migrate` does
    /// when there is no database on a server.
    fn survey(&self, project: &Project, tree: &Tree, check_drift: bool) -> Result<Surveyed, Error> {
        let known = |d: &[u8; 32]| lock(&self.0).contains_key(d);
        let read_live = |d: Option<&[u8; 32]>| check_drift && !d.is_some_and(known);
        backends::with_backend!(backends::open_typed(project, &project.db)?, |b| {
            let shown = b.shown();
            let seen = b.survey(tree, &read_live)?;
            let applied = match (seen.applied, b.missing()) {
                (Some(applied), _) => applied,
                (None, Some(e)) => return Err(e),
                (None, None) => Vec::new(),
            };
            let drift = match (seen.live, seen.digest) {
                (Some(live), digest) => {
                    let found = crate::commands::design::drift_of(tree, Some(live))?;
                    let mut answers = lock(&self.0);
                    if let Some(d) = digest
                        && answers.len() < DRIFT_ANSWERS
                    {
                        answers.insert(d, found.clone());
                    }
                    found
                }
                (None, Some(d)) if check_drift => lock(&self.0)
                    .get(&d)
                    .into_iter()
                    .flatten()
                    .map(|r| on_db(r, &shown))
                    .collect(),
                (None, _) => Vec::new(),
            };
            Ok(Surveyed {
                shown,
                applied,
                last_audit: seen.last_audit,
                drift,
            })
        })
    }
}

/// A drift refusal found on one database, said of `db`, which has the same digest.
fn on_db(r: &Refusal, db: &Path) -> Refusal {
    match r {
        Refusal::Drift {
            module,
            snapshot,
            difference,
            ..
        } => Refusal::Drift {
            db: db.to_path_buf(),
            module: module.clone(),
            snapshot: snapshot.clone(),
            difference: difference.clone(),
        },
        other => other.clone(),
    }
}

/// The project as one target sees it: its real database is the target's, and no lock is
/// waited for longer than the target's `timeout`.
fn for_target(project: &Project, target: &FleetTarget, timeout: Duration) -> Project {
    let mut p = project.clone();
    if let Some(db) = &target.database {
        p.db = db.clone();
    }
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    p.config.busy_timeout_ms = p.config.busy_timeout_ms.min(timeout_ms);
    p
}

/// The targets of a schema-per-tenant group: each of its `schemas` (named by its schema), or
/// each row of its `schemas_query` on the database (a name and a schema), on `url`.
fn tenant_schemas(
    project: &Project,
    group: &FleetGroup,
    url: &str,
) -> Result<Vec<(String, Database)>, Error> {
    let where_ = format!("[[fleet.group]] {} postgres", group.name);
    let database = Database::postgres_from(url, &where_, Origin::Checkout)?;
    let Database::Postgres(target) = &database else {
        return Err(Error::Usage(format!("{where_}: not a PostgreSQL URL")));
    };
    let rows = match (&group.schemas, &group.schemas_query) {
        (Some(schemas), _) => schemas.iter().map(|s| (s.clone(), s.clone())).collect(),
        (None, Some(sql)) => {
            let timeout = Duration::from_millis(group.timeout_ms.unwrap_or(FLEET_TIMEOUT_MS));
            let rows = pairs_within(project, &database, sql, timeout, &where_)?;
            for (name, schema) in &rows {
                let row = format!(
                    "the row {name:?} of [[fleet.group]] {}'s schemas_query",
                    group.name
                );
                if !crate::core::config::is_target_name(name) {
                    return Err(Error::Usage(format!(
                        "{row}: a target's name is letters, digits, '-', '_' and '.'"
                    )));
                }
                if !crate::core::target::is_tenant_schema(schema) {
                    return Err(Error::Usage(format!(
                        "{row} gives the schema {schema:?}, which cannot be a tenant's: {}",
                        crate::core::config::TENANT_SCHEMA_RULE
                    )));
                }
            }
            rows
        }
        (None, None) => Vec::new(),
    };
    Ok(rows
        .into_iter()
        .map(|(name, schema)| {
            (
                name,
                Database::Postgres(Box::new(target.with_schema(&schema))),
            )
        })
        .collect())
}

/// The rows of `sql` on `db` (`where_` names it in messages), each two text values, read
/// within `timeout` (a server that says nothing is not waited on); refused when there are
/// more than [`FLEET_MAX_GROUP_TARGETS`](crate::core::config::FLEET_MAX_GROUP_TARGETS).
fn pairs_within(
    project: &Project,
    db: &Database,
    sql: &str,
    timeout: Duration,
    where_: &str,
) -> Result<Vec<(String, String)>, Error> {
    const MAX: usize = crate::core::config::FLEET_MAX_GROUP_TARGETS;
    let (tx, rx) = mpsc::channel();
    let (p, db2, sql) = (project.clone(), db.clone(), sql.to_string());
    std::thread::Builder::new()
        .name("fleet-control".into())
        .spawn(move || {
            let _ = tx.send(backends::control_pairs(&p, &db2, &sql, MAX + 1));
        })
        .map_err(|e| Error::io(Path::new("fleet-control"), e))?;
    let rows = rx.recv_timeout(timeout).map_err(|_| Error::Unavailable {
        db: db.shown(),
        context: format!("cannot read the targets of {where_}"),
        sqlstate: None,
        message: format!("no answer within {} ms", timeout.as_millis()),
        source: None,
    })??;
    if rows.len() > MAX {
        return Err(Error::Usage(format!(
            "{where_}: the query gives more than {MAX} rows, the most targets a group may \
             have; split the fleet into several groups whose queries give fewer (a range of \
             names each, say)"
        )));
    }
    Ok(rows)
}

/// The targets of a `query` group: the rows of `sql` on `control`, each a name and a
/// database, read within `timeout` (a control server that says nothing is not waited on).
fn control_rows(
    project: &Project,
    group: &FleetGroup,
    control: &Path,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<(String, Database)>, Error> {
    let where_ = format!("[[fleet.group]] {} control", group.name);
    let control = match Database::parse_from(control, &where_, Origin::Checkout)? {
        Database::Sqlite(control) => Database::Sqlite(project.root.join(control)),
        postgres => postgres,
    };
    let rows = pairs_within(project, &control, sql, timeout, &where_)?;
    let mut out = Vec::new();
    for (name, db) in rows {
        if !crate::core::config::is_target_name(&name) {
            return Err(Error::Usage(format!(
                "{}: the fleet's query gave the target name {name:?}; a name is letters, \
                 digits, '-', '_' and '.'",
                control
            )));
        }
        let row = format!("the row {name:?} of [[fleet.group]] {}'s query", group.name);
        let key = format!("[[fleet.group]] {} query", group.name);
        let db = if let Some(template) = &group.url {
            // A database on the group's server, as the configuration names it.
            if !crate::core::config::is_target_name(&db) {
                return Err(Error::Usage(format!(
                    "{row} gives the database {db:?}: with the group's `url`, a row names a \
                     database (letters, digits, '-', '_' and '.'), never a server or a user"
                )));
            }
            Database::postgres_from(
                &template.replace("{name}", &db),
                &format!("[[fleet.group]] {} url", group.name),
                Origin::Checkout,
            )?
        } else {
            match Database::parse_from(Path::new(&db), &key, Origin::Checkout)? {
                Database::Sqlite(db) => {
                    inside_project(group, &row, &db)?;
                    resolves_inside(group, &row, &project.root, &project.root.join(&db))?;
                    Database::Sqlite(project.root.join(db))
                }
                Database::Postgres(_) if !group.allow_any_url => {
                    return Err(Error::Usage(format!(
                        "{row} gives a PostgreSQL URL: a control table is application data, so \
                         its rows do not pick a server, a user or a database for your password \
                         to go to; give the group a `url` template (postgres://user@host/{{name}}) \
                         and let the rows name databases, or set allow_any_url = true in the group"
                    )));
                }
                postgres => postgres,
            }
        };
        out.push((name, db));
    }
    Ok(out)
}

/// Whether a server target answers (connects and reads its ledger) within `timeout`. A server
/// can accept a connection and then say nothing, and the driver would wait for it forever: the
/// first contact is made on a thread of its own, left behind (it holds nothing of the run's)
/// when it does not answer in time. A SQLite file needs no such probe: its waits are for
/// locks, bounded by the target's `busy_timeout_ms` (see [`for_target`]).
fn reach(project: &Project, timeout: Duration) -> Result<(), Error> {
    if !project.db.is_server() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel();
    let probe = project.clone();
    let spawned = std::thread::Builder::new()
        .name("fleet-probe".into())
        .spawn(move || {
            let answer = backends::open(&probe, &probe.db).and_then(|db| db.applied().map(drop));
            let _ = tx.send(answer);
        });
    if let Err(e) = spawned {
        return Err(Error::io(Path::new("fleet-probe"), e));
    }
    match rx.recv_timeout(timeout) {
        Ok(answer) => answer,
        Err(_) => Err(Error::Unavailable {
            db: project.db.shown(),
            context: "cannot reach the fleet target".into(),
            sqlstate: None,
            message: format!(
                "no answer within {} ms (the target's timeout_ms)",
                timeout.as_millis()
            ),
            source: None,
        }),
    }
}

/// `f` of every index below `count`, `parallel` at a time, in order.
fn par_map<T: Send>(count: usize, parallel: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let row = f(i);
                    lock(&rows)[i] = Some(row);
                }
            });
        }
    });
    rows.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Every target's stage and timeout, by target index.
fn placement(
    project: &Project,
    stages: &[Stage],
    targets: &[FleetTarget],
) -> Vec<(String, Duration)> {
    let mut out = vec![(String::new(), Duration::from_millis(FLEET_TIMEOUT_MS)); targets.len()];
    for s in stages {
        for &i in &s.targets {
            out[i] = (s.name.clone(), s.timeout_of(project, &targets[i]));
        }
    }
    out
}

/// A mutex's guard, whether or not another worker panicked holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tree, the stages and every target's row, read as many at a time as the widest stage
/// runs: what `fleet status` and `fleet plan` show.
fn read_fleet(
    project: &Project,
    selection: &Selection,
    opts: &MigrateOptions,
    remotes: &dyn Remotes,
) -> Result<(Tree, Vec<Stage>, Vec<TargetStatus>, bool), Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let targets = targets(project, selection)?;
    let stages = stages(project, &targets, selection);
    let placed = placement(project, &stages, &targets);
    let parallel = stages.iter().map(|s| s.parallel).max().unwrap_or(1);
    let drift = DriftAnswers::default();
    let rows = par_map(targets.len(), parallel, |i| {
        read_target(
            project,
            &tree,
            &targets[i],
            opts,
            &drift,
            (&placed[i].0, placed[i].1),
            remotes,
        )
    });
    let local = targets.iter().any(|t| t.remote.is_none());
    Ok((tree, stages, rows, local))
}

/// `strata fleet status`: every target's state. Reads each target read-only and creates
/// nothing; a target that cannot be read is `unreachable`.
pub fn fleet_status(
    project: &Project,
    selection: &Selection,
    opts: &MigrateOptions,
    remotes: &dyn Remotes,
) -> Result<FleetStatus, Error> {
    let (tree, _, rows, _) = read_fleet(project, selection, opts, remotes)?;
    let mut counts = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.state.as_str().to_string()).or_insert(0) += 1;
    }
    Ok(FleetStatus {
        targets: rows,
        counts,
        chain: tree.migrations.len(),
    })
}

/// One stage of `fleet plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStage {
    pub name: String,
    pub parallel: usize,
    /// `stop`, `continue`, or `stop after K failures`.
    pub on_failure: String,
    pub targets: Vec<TargetStatus>,
}

/// `strata fleet plan`: the rehearsal, then each stage's targets and what each would get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetPlan {
    /// The test database and the migrations the rehearsal would apply to it (`None` with
    /// `--no-rehearsal`).
    pub rehearsal: Option<PlannedRehearsal>,
    pub stages: Vec<PlannedStage>,
}

impl FleetPlan {
    /// Whether `migrate` would refuse any target.
    pub fn refuses(&self) -> bool {
        self.stages
            .iter()
            .flat_map(|s| &s.targets)
            .any(|t| t.state.refuses())
    }
}

/// The rehearsal a fleet run starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedRehearsal {
    pub db: PathBuf,
    pub pending: Vec<String>,
}

fn policy_text(s: &Stage) -> String {
    match (s.max_failures, s.on_failure) {
        (1, _) => "stop".into(),
        (usize::MAX, _) => "continue".into(),
        (k, _) => format!("stop after {k} failures"),
    }
}

/// `strata fleet plan`: what `fleet migrate` would do where, without doing it. Refuses (as
/// `plan` does) when the rehearsal would; a target that would refuse is shown with why.
pub fn fleet_plan(
    project: &Project,
    selection: &Selection,
    opts: &MigrateOptions,
    remotes: &dyn Remotes,
) -> Result<FleetPlan, Error> {
    let (tree, stages, rows, local) = read_fleet(project, selection, opts, remotes)?;
    // Remote targets rehearse on their servers' own test databases.
    let rehearsal = if opts.rehearse && local {
        let db = backends::open(project, &project.test_db)?;
        let (pending, _) =
            migrate::plan_database(&*db, Phase::Rehearsal, &tree, opts)?.map_err(Error::Refused)?;
        read_inputs(&pending, db.dialect())?;
        Some(PlannedRehearsal {
            db: db.shown(),
            pending: pending.iter().map(|m| m.label()).collect(),
        })
    } else {
        None
    };
    let mut rows = rows.into_iter().map(Some).collect::<Vec<_>>();
    Ok(FleetPlan {
        rehearsal,
        stages: stages
            .iter()
            .map(|s| PlannedStage {
                name: s.name.clone(),
                parallel: s.parallel,
                on_failure: policy_text(s),
                targets: s.targets.iter().filter_map(|&i| rows[i].take()).collect(),
            })
            .collect(),
    })
}

/// Reads every input of `pending` as a run would (refusing bad input with exit 2), without
/// running anything.
fn read_inputs(pending: &[&Migration], dialect: crate::core::input::Dialect) -> Result<(), Error> {
    for m in pending {
        crate::core::step::Prepared::load_for(m, dialect)?;
    }
    Ok(())
}

/// How one target of a fleet run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetOutcome {
    /// Migrations were applied.
    Applied,
    /// Nothing was pending.
    UpToDate,
    /// A step failed (rolled back, as in `migrate`), or the target could not be opened.
    Failed,
    /// Refused before anything was touched (changed files, drift, out of order, locked).
    Refused,
    /// Not started: its stage stopped, or an earlier stage did.
    NotRun,
}

/// What a fleet run did to one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    #[serde(flatten)]
    pub target: FleetTarget,
    pub outcome: TargetOutcome,
    /// The migrations this run applied to it.
    pub applied: Vec<String>,
    /// The verified backup taken before its first step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
    /// The migration that failed, `module/stamp-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// The error, as `migrate` would print it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code `migrate` would have given for this target.
    pub exit_code: i32,
    pub duration_ms: u64,
}

impl TargetResult {
    pub fn new(target: FleetTarget, outcome: TargetOutcome) -> Self {
        TargetResult {
            target,
            outcome,
            applied: Vec::new(),
            backup: None,
            failed_step: None,
            error: None,
            exit_code: 0,
            duration_ms: 0,
        }
    }

    /// A target whose run ended well, `phase` its real database's phase: applied, or up to
    /// date when that applied nothing.
    pub fn ran(&mut self, phase: Option<&PhaseReport>) {
        if let Some(p) = phase {
            self.applied = p.applied.clone();
            self.backup = p.backup.clone();
        }
        self.outcome = if self.applied.is_empty() {
            TargetOutcome::UpToDate
        } else {
            TargetOutcome::Applied
        };
    }

    /// A target that failed with `e` (refused, when `e` is a refusal).
    fn failed_with(target: FleetTarget, e: &Error) -> Self {
        let mut result = TargetResult::new(target, TargetOutcome::Failed);
        if matches!(e, Error::Refused(_)) {
            result.outcome = TargetOutcome::Refused;
        }
        if let Error::Step(f) = e {
            result.failed_step = Some(f.migration.clone());
            result.applied = f.applied_before.clone();
        }
        result.exit_code = e.exit_code();
        result.error = Some(e.to_string());
        result
    }

    /// Whether the target failed or was refused.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, TargetOutcome::Failed | TargetOutcome::Refused)
    }
}

/// What a fleet run did in one stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    pub name: String,
    pub parallel: usize,
    pub on_failure: String,
    /// The stage stopped by its failure policy before all its targets started.
    pub stopped: bool,
    pub targets: Vec<TargetResult>,
}

/// `strata fleet migrate`'s report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetReport {
    /// Every target succeeded (applied or up to date).
    pub ok: bool,
    /// The rehearsal on the test database (`None` with `--no-rehearsal`).
    pub rehearsal: Option<PhaseReport>,
    pub stages: Vec<StageReport>,
    /// How many targets ended each way.
    pub counts: BTreeMap<String, usize>,
    pub duration_ms: u64,
}

/// What a fleet run reports while it runs, from any of its workers.
#[derive(Debug)]
pub enum FleetEvent<'a> {
    StageStarted {
        name: &'a str,
        targets: usize,
        parallel: usize,
    },
    TargetStarted {
        stage: &'a str,
        target: &'a FleetTarget,
    },
    TargetFinished {
        stage: &'a str,
        result: &'a TargetResult,
        /// Targets of the run finished so far, and in all.
        done: usize,
        total: usize,
    },
    /// What a remote target's server reported while it runs (its phases and steps).
    TargetProgress {
        stage: &'a str,
        target: &'a FleetTarget,
        event: &'a Event<'a>,
    },
    /// The stage's failure policy stopped it.
    StageStopped { name: &'a str, failures: usize },
}

/// The fleet run's event sink, called from every worker.
pub type FleetSink<'a> = dyn Fn(&FleetEvent<'_>) + Sync + 'a;

/// `strata fleet migrate`: rehearse once on the project's test database (its events go to
/// `rehearsal_events`), then each stage in
/// order, its targets `parallel` at a time, each exactly as `migrate --no-rehearsal` would
/// run it (its backup, its steps, its audit rows). A stage stops starting targets when its
/// failure policy says so; the stages after a stage with a failure do not run. A target
/// failing is reported, not returned as an error; the rehearsal failing ends the run before
/// any target is touched.
pub fn fleet_migrate(
    project: &Project,
    selection: &Selection,
    opts: &MigrateOptions,
    rehearsal_events: &mut crate::core::event::EventSink<'_>,
    events: &FleetSink<'_>,
    remotes: &dyn Remotes,
) -> Result<FleetReport, Error> {
    let started = Instant::now();
    if opts.write_snapshots {
        return Err(Error::Usage(
            "--write-snapshots writes from the test database: run `strata migrate \
             --write-snapshots` once, then the fleet"
                .into(),
        ));
    }
    backends::check_project(project)?;
    let tree = Tree::load(&project.migrations_dir())?;
    let targets = targets(project, selection)?;
    let stages = stages(project, &targets, selection);
    // Remote targets rehearse on their servers' own test databases.
    let rehearse = opts.rehearse && targets.iter().any(|t| t.remote.is_none());

    // What each target needs, read once: the inputs of every migration pending anywhere.
    let test_db = backends::open(project, &project.test_db)?;
    let dialect = test_db.dialect();
    let (rehearsal_pending, rehearsal_planned) = if rehearse {
        if project
            .test_db
            .file()
            .is_some_and(|f| f.starts_with(project.state_dir()))
        {
            project.ensure_state_dir()?;
        }
        migrate::plan_database(&*test_db, Phase::Rehearsal, &tree, opts)?.map_err(Error::Refused)?
    } else {
        (Vec::new(), Vec::new())
    };
    // Read in parallel, each within its timeout: a target that does not answer is told so
    // at its turn, without waiting for it again.
    let placed = placement(project, &stages, &targets);
    let parallel = stages.iter().map(|s| s.parallel).max().unwrap_or(1);
    let first_look = par_map(targets.len(), parallel, |i| {
        if targets[i].remote.is_some() {
            return Ok(Vec::new());
        }
        let p = for_target(project, &targets[i], placed[i].1);
        reach(&p, placed[i].1)?;
        let db = backends::open(&p, &p.db)?;
        Ok(migrate::plan_database(&*db, Phase::Apply, &tree, opts)?
            .map(|(pending, _)| pending)
            .unwrap_or_default())
    });
    let mut wanted: Vec<&Migration> = rehearsal_pending.clone();
    let mut unreachable: HashMap<usize, Error> = HashMap::new();
    for (i, look) in first_look.into_iter().enumerate() {
        match look {
            Ok(pending) => {
                for m in pending {
                    if !wanted.iter().any(|w| w.id == m.id) {
                        wanted.push(m);
                    }
                }
            }
            Err(e @ Error::Unavailable { .. }) => {
                unreachable.insert(i, e);
            }
            Err(_) => {}
        }
    }
    let runner = Runner::new(project, wanted.iter().copied(), dialect)?;
    let single_transaction = opts.single_transaction || project.config.single_transaction;

    let rehearsal = if rehearse {
        let sink = rehearsal_events;
        runner.warn_about_cache(sink);
        for stale in runner.stale() {
            sink(&Event::Warning(stale));
        }
        if single_transaction {
            migrate::check_single_transaction(&runner, &*test_db, &rehearsal_pending)?;
        }
        let mut reports = migrate::run_database(
            &runner,
            &*test_db,
            Phase::Rehearsal,
            &rehearsal_planned,
            &rehearsal_pending,
            opts,
            single_transaction,
            sink,
        )?;
        reports.pop()
    } else {
        None
    };
    if rehearse {
        // No target is the test database under another URL (asked of the server, as
        // `migrate` does; the rehearsal has made the test database if it was missing). A
        // target that did not answer its first look within its timeout is not asked again.
        backends::check_not_test_database(
            project,
            targets
                .iter()
                .enumerate()
                .filter(|(i, _)| !unreachable.contains_key(i))
                .filter_map(|(_, t)| Some((t.name.as_str(), t.database.as_ref()?))),
        )?;
    }

    let apply_opts = MigrateOptions {
        rehearse: false,
        ..opts.clone()
    };
    let total = targets.len();
    let done = AtomicUsize::new(0);
    let mut reports = Vec::new();
    let mut halted = false;
    for stage in &stages {
        if halted {
            reports.push(StageReport {
                name: stage.name.clone(),
                parallel: stage.parallel,
                on_failure: policy_text(stage),
                stopped: false,
                targets: stage
                    .targets
                    .iter()
                    .map(|&i| TargetResult::new(targets[i].clone(), TargetOutcome::NotRun))
                    .collect(),
            });
            continue;
        }
        events(&FleetEvent::StageStarted {
            name: &stage.name,
            targets: stage.targets.len(),
            parallel: stage.parallel,
        });
        let report = run_stage(
            project,
            &tree,
            &runner,
            &targets,
            stage,
            &apply_opts,
            single_transaction,
            (&done, total),
            &unreachable,
            events,
            remotes,
        );
        halted = report.targets.iter().any(TargetResult::failed);
        reports.push(report);
    }
    let mut counts = BTreeMap::new();
    for r in reports.iter().flat_map(|s| &s.targets) {
        let key = serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(FleetReport {
        ok: reports
            .iter()
            .flat_map(|s| &s.targets)
            .all(|t| matches!(t.outcome, TargetOutcome::Applied | TargetOutcome::UpToDate)),
        rehearsal,
        stages: reports,
        counts,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// One stage: workers take its targets in order until none is left or the policy stops it.
#[allow(clippy::too_many_arguments)]
fn run_stage(
    project: &Project,
    tree: &Tree,
    runner: &Runner<'_>,
    targets: &[FleetTarget],
    stage: &Stage,
    opts: &MigrateOptions,
    single_transaction: bool,
    (done, total): (&AtomicUsize, usize),
    unreachable: &HashMap<usize, Error>,
    events: &FleetSink<'_>,
    remotes: &dyn Remotes,
) -> StageReport {
    let drift = DriftAnswers::default();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<TargetResult>>> = Mutex::new(vec![None; stage.targets.len()]);
    let workers = stage.parallel.clamp(1, stage.targets.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = stage.targets.get(k) else {
                        break;
                    };
                    let target = &targets[i];
                    events(&FleetEvent::TargetStarted {
                        stage: &stage.name,
                        target,
                    });
                    let timeout = stage.timeout_of(project, target);
                    let result = match (unreachable.get(&i), &target.remote) {
                        (Some(e), _) => TargetResult::failed_with(target.clone(), e),
                        (None, Some(remote)) => {
                            let started = Instant::now();
                            let mut result =
                                TargetResult::new(target.clone(), TargetOutcome::Failed);
                            let mut progress = |event: &Event<'_>| {
                                events(&FleetEvent::TargetProgress {
                                    stage: &stage.name,
                                    target,
                                    event,
                                })
                            };
                            remotes.migrate(remote, opts, timeout, &mut progress, &mut result);
                            result.duration_ms = started.elapsed().as_millis() as u64;
                            result
                        }
                        (None, None) => migrate_target(
                            project,
                            tree,
                            (runner, &drift),
                            target,
                            timeout,
                            opts,
                            single_transaction,
                        ),
                    };
                    if result.failed() {
                        let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                        if n >= stage.max_failures {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                    let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                    events(&FleetEvent::TargetFinished {
                        stage: &stage.name,
                        result: &result,
                        done: finished,
                        total,
                    });
                    lock(&results)[k] = Some(result);
                }
            });
        }
    });
    let stopped = stop.load(Ordering::SeqCst)
        && next.load(Ordering::SeqCst) < stage.targets.len()
        && failures.load(Ordering::SeqCst) > 0;
    if stopped {
        events(&FleetEvent::StageStopped {
            name: &stage.name,
            failures: failures.load(Ordering::SeqCst),
        });
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    StageReport {
        name: stage.name.clone(),
        parallel: stage.parallel,
        on_failure: policy_text(stage),
        stopped,
        targets: results
            .into_iter()
            .zip(&stage.targets)
            .map(|(r, &i)| {
                r.unwrap_or_else(|| TargetResult::new(targets[i].clone(), TargetOutcome::NotRun))
            })
            .collect(),
    }
}

/// One target, as `migrate --no-rehearsal` would run it on the project whose real database
/// it is: plan (fresh: another run may have moved it), refuse on changed files or drift, then
/// the per-database part of `migrate`. Never an error: what went wrong is in the result.
fn migrate_target(
    project: &Project,
    tree: &Tree,
    (runner, drift): (&Runner<'_>, &DriftAnswers),
    target: &FleetTarget,
    timeout: Duration,
    opts: &MigrateOptions,
    single_transaction: bool,
) -> TargetResult {
    let started = Instant::now();
    let mut result = TargetResult::new(target.clone(), TargetOutcome::Failed);
    let project = for_target(project, target, timeout);
    let run = || -> Result<Vec<PhaseReport>, Error> {
        reach(&project, timeout)?;
        let db = backends::open(&project, &project.db)?;
        if let Database::Sqlite(file) = &project.db
            && !file.exists()
        {
            return Err(Error::Usage(format!(
                "{} does not exist (was it removed after the targets were listed?)",
                file.display()
            )));
        }
        let seen = drift.survey(&project, tree, !opts.allow_drift)?;
        let mut refusals = Vec::new();
        let pending =
            match crate::core::plan::plan(&seen.shown, &tree.migrations, &seen.applied, &opts.plan)
            {
                Ok(pending) => pending,
                Err(r) => {
                    refusals = r;
                    Vec::new()
                }
            };
        refusals.extend(seen.drift);
        if !refusals.is_empty() {
            return Err(Error::Refused(refusals));
        }
        if single_transaction {
            migrate::check_single_transaction(runner, &*db, &pending)?;
        }
        let mut ignore = |_: &Event<'_>| {};
        let planned: Vec<_> = seen.applied.iter().map(|a| a.id.clone()).collect();
        migrate::run_database(
            runner,
            &*db,
            Phase::Apply,
            &planned,
            &pending,
            opts,
            single_transaction,
            &mut ignore,
        )
    };
    match run() {
        Ok(phases) => result.ran(phases.last()),
        Err(e) => result = TargetResult::failed_with(result.target, &e),
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// Where `fleet migrate` keeps the report of its last run, for `fleet restore`.
pub fn last_run_path(project: &Project) -> PathBuf {
    project.state_dir().join("fleet").join("last-run.json")
}

/// Keeps `report` as the last run's (see [`last_run_path`]).
pub fn keep_report(project: &Project, report: &FleetReport) -> Result<PathBuf, Error> {
    let path = last_run_path(project);
    project.ensure_state_dir()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| Error::input(&path, format!("cannot write the report: {e}")))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// How one target of `fleet restore` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreOutcome {
    /// The run's backup was put back.
    Restored,
    /// The run took no backup of it (nothing was applied, or it was not run).
    NoBackup,
    /// Rows changed outside strata since the run (without `--yes`), or a remote target.
    Refused,
    /// The restore failed; the target is as it was.
    Failed,
}

/// What `fleet restore` did to one target.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredTarget {
    pub name: String,
    pub outcome: RestoreOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<crate::core::restore::Restored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `strata fleet restore --stage NAME`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct FleetRestore {
    pub stage: String,
    pub targets: Vec<RestoredTarget>,
    pub counts: BTreeMap<String, usize>,
}

impl FleetRestore {
    /// Whether every target with a backup was put back.
    pub fn ok(&self) -> bool {
        self.targets.iter().all(|t| {
            matches!(
                t.outcome,
                RestoreOutcome::Restored | RestoreOutcome::NoBackup
            )
        })
    }
}

/// `strata fleet restore --stage NAME`: puts each target of that stage of `run` (a fleet
/// run's report) back from the backup that run took of it, with the per-database restore and
/// every check it makes, `parallel` at a time. Without `yes`, a target whose rows changed
/// outside strata since the run is refused, not restored. Targets are found by name among the
/// fleet's targets now (a URL's password is never in a report).
pub fn fleet_restore(
    project: &Project,
    selection: &Selection,
    run: &FleetReport,
    stage: &str,
    yes: bool,
) -> Result<FleetRestore, Error> {
    let Some(report) = run.stages.iter().find(|s| s.name == stage) else {
        return Err(Error::Usage(format!(
            "the fleet run has no stage {stage:?}; its stages: {}",
            run.stages
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let known = targets(project, selection)?;
    let parallel = selection.parallel.unwrap_or(8);
    let rows = par_map(report.targets.len(), parallel, |i| {
        let r = &report.targets[i];
        let mut out = RestoredTarget {
            name: r.target.name.clone(),
            outcome: RestoreOutcome::NoBackup,
            restored: None,
            error: None,
        };
        let Some(backup) = &r.backup else {
            return out;
        };
        // Ok(Err(tables)): refused, rows of those tables changed since the run.
        type Outcome = Result<crate::core::restore::Restored, Vec<String>>;
        let result = (|| -> Result<Outcome, Error> {
            let target = known
                .iter()
                .find(|t| t.name == r.target.name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{} is not among the fleet's targets now",
                        r.target.name
                    ))
                })?;
            if target.remote.is_some() {
                return Err(Error::Refused(vec![Refusal::Restore {
                    db: target.db.clone(),
                    message: format!(
                        "{} is a remote target: restore it on its server (`strata --remote {} \
                         restore`)",
                        target.name,
                        target.db.display()
                    ),
                }]));
            }
            let p = for_target(project, target, Duration::from_millis(FLEET_TIMEOUT_MS));
            // By its name in the backups folder: the report may hold a path relative to
            // wherever the run was started from.
            let name = PathBuf::from(backup.file_name().unwrap_or(backup.as_os_str()));
            let chosen = crate::commands::restore::choose(&p, false, Some(&name))?;
            if !yes {
                let changed = crate::commands::restore::changes_since(&p, false, &chosen)?
                    .unwrap_or_default();
                if !changed.is_empty() {
                    return Ok(Err(changed.iter().map(ToString::to_string).collect()));
                }
            }
            crate::commands::restore::restore_confirmed(&p, false, Some(&chosen.path), true).map(Ok)
        })();
        match result {
            Ok(Ok(restored)) => {
                out.outcome = RestoreOutcome::Restored;
                out.restored = Some(restored);
            }
            Ok(Err(tables)) => {
                out.outcome = RestoreOutcome::Refused;
                out.error = Some(format!(
                    "changed outside strata since the run took its backup: the rows of {} \
                     differ; `--yes` puts it back anyway (the restore keeps them in its undo \
                     backup)",
                    tables.join(", ")
                ));
            }
            Err(e) => {
                out.outcome = if matches!(e, Error::Refused(_)) {
                    RestoreOutcome::Refused
                } else {
                    RestoreOutcome::Failed
                };
                out.error = Some(e.to_string());
            }
        }
        out
    });
    let mut counts = BTreeMap::new();
    for t in &rows {
        let key = serde_json::to_value(t.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(FleetRestore {
        stage: stage.to_string(),
        targets: rows,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names() {
        assert!(matches("*", "acme"));
        assert!(matches("t*", "t001"));
        assert!(matches("t??1", "t001"));
        assert!(!matches("t??1", "t0011"));
        assert!(matches("*.db", "acme.db"));
        assert!(!matches("*.db", "acme.db-wal"));
        assert!(matches("a*c*e", "abcde"));
        assert!(!matches("acme", "acm"));
    }

    #[test]
    fn file_globs_are_told_from_name_patterns() {
        assert!(is_file_glob("tenants/*.db"));
        assert!(is_file_glob("*.sqlite"));
        assert!(!is_file_glob("acme*"));
    }

    #[test]
    fn names_come_from_file_stems_and_database_names() {
        let db = |value: &str| Database::parse(Path::new(value), "db").unwrap();
        assert_eq!(name_of(&db("tenants/acme.db")), "acme");
        assert_eq!(
            name_of(&db("postgres://app@host/tenant_acme?sslmode=disable")),
            "tenant_acme"
        );
    }
}
