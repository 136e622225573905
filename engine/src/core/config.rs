//! The project: where it lives, `strata.toml`, and the paths and settings derived from them.
//!
//! This module reads and writes `strata.toml` and resolves paths; it knows nothing of databases
//! beyond their paths and the busy timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::components::limits::Limits;
use crate::core::error::Error;
use crate::core::target::{Database, is_tenant_schema};

/// The name of the project configuration file.
pub const CONFIG_FILE: &str = "strata.toml";
/// The folder for strata's own files (test database, backups, build output).
pub const STATE_DIR: &str = ".strata";

/// `strata.toml`. Every key is optional; relative paths are relative to the file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The migrations folder.
    pub migrations: PathBuf,
    /// The real database.
    pub db: PathBuf,
    /// The test database that every run rehearses on first.
    pub test_db: PathBuf,
    /// How long to wait for another writer's lock before refusing (exit 3).
    pub busy_timeout_ms: u64,
    /// How many backups of each database to keep in `.strata/backups/`.
    pub backups_keep: usize,
    /// Run all pending steps of a phase in one transaction, as `migrate --single-transaction`.
    pub single_transaction: bool,
    /// PostgreSQL: the longest any one statement of a step may run (`statement_timeout`);
    /// 0 for no limit. On PostgreSQL `busy_timeout_ms` is the `lock_timeout`.
    pub statement_timeout_ms: u64,
    /// The ceiling of every component's limits; migration.toml may only narrow them.
    pub sandbox: Limits,
    /// `strata fleet`: the target groups and the stages a fleet run goes through.
    #[serde(skip_serializing_if = "Fleet::is_empty")]
    pub fleet: Fleet,
}

/// `[fleet]` in strata.toml: `[[fleet.group]]` tables name the databases a fleet command works
/// on, `[[fleet.stage]]` tables the order a fleet run takes them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fleet {
    pub group: Vec<FleetGroup>,
    pub stage: Vec<FleetStage>,
}

impl Fleet {
    fn is_empty(&self) -> bool {
        self.group.is_empty() && self.stage.is_empty()
    }

    /// Refuses a group or stage strata could not use, naming it: exactly one kind of target
    /// per group, a `{name}` in every URL template, names a URL and a file can hold, and
    /// stages that run at least one target at a time.
    fn check(&self, path: &Path) -> Result<(), Error> {
        let bad = |what: String| Err(Error::input(path, what));
        let mut seen = std::collections::HashSet::new();
        for g in &self.group {
            if !seen.insert(g.name.as_str()) {
                return bad(format!("[[fleet.group]] {:?} is named twice", g.name));
            }
            if !is_target_name(&g.name) {
                return bad(format!(
                    "[[fleet.group]] name {:?}: use letters, digits, '-', '_' and '.'",
                    g.name
                ));
            }
            if g.timeout_ms == Some(0) {
                return bad(format!(
                    "[[fleet.group]] {:?}: timeout_ms = 0 would give up on every target at \
                     once; use 1 or more (milliseconds)",
                    g.name
                ));
            }
            let kinds = [
                g.glob.is_some(),
                g.databases.is_some(),
                g.url.is_some() && g.query.is_none(),
                g.remotes.is_some(),
                g.query.is_some(),
                g.postgres.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return bad(format!(
                    "[[fleet.group]] {:?} needs exactly one of `glob` (SQLite files), \
                     `databases` (a list of SQLite files or PostgreSQL URLs), `url` (a \
                     PostgreSQL URL template with {{name}}, and `names`), `remotes` (strata \
                     serve endpoints), `query` (on a `control` database) or `postgres` (one \
                     PostgreSQL database, a schema per tenant, with `schemas` or \
                     `schemas_query`)",
                    g.name
                ));
            }
            if g.postgres.is_some() != (g.schemas.is_some() || g.schemas_query.is_some())
                || (g.schemas.is_some() && g.schemas_query.is_some())
            {
                return bad(format!(
                    "[[fleet.group]] {:?}: a schema per tenant takes `postgres` (the database's \
                     URL) and exactly one of `schemas` (the tenants' schemas) or \
                     `schemas_query` (a query on that database whose rows are a tenant's name \
                     and schema)",
                    g.name
                ));
            }
            if let Some(s) = g.schemas.iter().flatten().find(|s| !is_tenant_schema(s)) {
                return bad(format!(
                    "[[fleet.group]] {:?}: the schema {s:?} cannot be a tenant's: {}",
                    g.name, TENANT_SCHEMA_RULE
                ));
            }
            if g.query.is_some() != g.control.is_some() {
                return bad(format!(
                    "[[fleet.group]] {:?}: `query` and `control` go together: the query whose \
                     rows (name, database) are the targets, and the database it runs on",
                    g.name
                ));
            }
            for r in g.remotes.iter().flatten() {
                if !is_target_name(&r.name) {
                    return bad(format!(
                        "[[fleet.group]] {:?}: the remote name {:?}: use letters, digits, \
                         '-', '_' and '.'",
                        g.name, r.name
                    ));
                }
                if r.token_file.is_some() == r.token_env.is_some() {
                    return bad(format!(
                        "[[fleet.group]] {:?}: the remote {:?} needs exactly one of \
                         `token_file` (a file holding its token) or `token_env` (a variable \
                         holding it)",
                        g.name, r.name
                    ));
                }
            }
            if let (Some(url), Some(_)) = (&g.url, &g.query)
                && !url.contains("{name}")
            {
                return bad(format!(
                    "[[fleet.group]] {:?}: the url template has no {{name}} to put each row's \
                     database in",
                    g.name
                ));
            }
            match (&g.url, &g.names) {
                (Some(_), None) if g.query.is_some() => {}
                (Some(url), Some(names)) => {
                    if !url.contains("{name}") {
                        return bad(format!(
                            "[[fleet.group]] {:?}: the url template has no {{name}} to put each \
                             name in",
                            g.name
                        ));
                    }
                    if let Some(n) = names.iter().find(|n| !is_target_name(n)) {
                        return bad(format!(
                            "[[fleet.group]] {:?}: the name {n:?} cannot go into a URL; use \
                             letters, digits, '-', '_' and '.'",
                            g.name
                        ));
                    }
                }
                (Some(_), None) => {
                    return bad(format!(
                        "[[fleet.group]] {:?}: a url template needs `names`, the names to put \
                         in it",
                        g.name
                    ));
                }
                (None, Some(_)) => {
                    return bad(format!(
                        "[[fleet.group]] {:?}: `names` go with a `url` template",
                        g.name
                    ));
                }
                (None, None) => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.stage {
            if !seen.insert(s.name.as_str()) {
                return bad(format!("[[fleet.stage]] {:?} is named twice", s.name));
            }
            if s.parallel == Some(0) {
                return bad(format!(
                    "[[fleet.stage]] {:?}: parallel = 0 would run nothing; use 1 or more",
                    s.name
                ));
            }
            if s.timeout_ms == Some(0) {
                return bad(format!(
                    "[[fleet.stage]] {:?}: timeout_ms = 0 would give up on every target at \
                     once; use 1 or more (milliseconds)",
                    s.name
                ));
            }
            if s.max_failures == Some(0) {
                return bad(format!(
                    "[[fleet.stage]] {:?}: max_failures = 0 would stop before the first \
                     target; use 1 or more",
                    s.name
                ));
            }
            if let Some(g) = s
                .groups
                .iter()
                .find(|g| !self.group.iter().any(|x| &x.name == *g))
            {
                return bad(format!(
                    "[[fleet.stage]] {:?} names the group {g:?}, which no [[fleet.group]] \
                     defines",
                    s.name
                ));
            }
        }
        Ok(())
    }
}

/// What [`is_tenant_schema`] accepts, for messages.
pub const TENANT_SCHEMA_RULE: &str = "use lower-case letters, digits and '_' (not first a \
     digit), at most 56 bytes, and none of the server's or strata's own schemas (pg_*, \
     information_schema, public, strata*)";

/// Whether `name` can name a fleet target or group: in a URL, a file name and a report.
pub fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One `[[fleet.group]]`: a name and exactly one kind of target list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetGroup {
    pub name: String,
    /// SQLite files: a path whose last part may hold `*` and `?` (`tenants/*.db`). Each
    /// target is named by its file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// An explicit list of SQLite files or PostgreSQL URLs, named by their file stem or
    /// database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<PathBuf>>,
    /// A PostgreSQL URL template: `{name}` is replaced by each of `names`; in a `query`
    /// group, by each row's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// A schema per tenant: the one PostgreSQL database (a URL) whose schemas are the
    /// targets, with `schemas` or `schemas_query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// The tenants' schemas on `postgres`, each a target named by its schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Vec<String>>,
    /// A query on `postgres` whose rows are the targets: a name and a schema each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas_query: Option<String>,
    /// `strata serve` endpoints, each migrating its own databases with its own tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remotes: Option<Vec<FleetRemote>>,
    /// A query on `control` whose rows are the targets: a name and a database (a SQLite file,
    /// relative to strata.toml, or a PostgreSQL URL) each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The control database `query` runs on: a SQLite file or a PostgreSQL URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
    /// How long any one of its targets may keep a fleet command waiting (to answer, or for a
    /// lock another run holds) before it is reported and the run goes on; a stage's own
    /// `timeout_ms` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Lets its remotes be `http://` on an address other than loopback, the token crossing
    /// the network in clear text (as `strata serve --allow-insecure`), when the fleet command's
    /// `--allow-insecure` confirms it: strata.toml alone cannot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure: bool,
    /// Lets its SQLite files (`databases`, `glob`, a query's rows) lie outside the project's
    /// folder: absolute paths and `..`. Nothing in `.strata/` is a target either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_outside: bool,
    /// Lets the rows of its `query` give whole PostgreSQL URLs: any host, port, user and
    /// database, which a matching passfile line's password is then sent to (`PGPASSWORD` only
    /// where the environment names the server too). Without it a row names a database on the
    /// server of the group's `url`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_any_url: bool,
}

/// One remote target of a `[[fleet.group]]`: a `strata serve` and where its token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetRemote {
    pub name: String,
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// A file holding the server's bearer token: under the project's `.strata/` (relative to
    /// strata.toml), reached without symbolic links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding it, named `STRATA_TOKEN_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

/// One `[[fleet.stage]]`: which targets, how many at a time, and when to stop.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetStage {
    pub name: String,
    /// The groups whose targets this stage takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Target names or patterns (`*`, `?`) this stage takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// How many targets run at once (default: 8 per core, at most 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<usize>,
    /// What a failed target does to the stage: `stop` (the default) or `continue`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Stop the stage once this many of its targets failed (`on_failure` is then ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<usize>,
    /// How long any one of its targets may keep the run waiting (see [`FleetGroup`]'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// How long a fleet target may keep a command waiting when neither its stage nor its group
/// says: 30 seconds.
pub const FLEET_TIMEOUT_MS: u64 = 30_000;

/// The most targets a group's query (a `query` group's control query, a `schemas_query`) may
/// give: 100,000. Every target is held in memory and reported, and each is a connection of its
/// own; a query gives rows as fast as the server makes them (a million names in a few seconds),
/// so without a bound a checkout's `strata.toml` or an application's table could grow strata
/// without end. A fleet larger than this is split into several groups.
pub const FLEET_MAX_GROUP_TARGETS: usize = 100_000;

/// What a failed target does to its stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Start no further target; the ones running finish; later stages do not run.
    #[default]
    Stop,
    /// Go on with the stage's other targets; later stages do not run if any failed.
    Continue,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            migrations: PathBuf::from("migrations"),
            db: PathBuf::from("app.db"),
            test_db: PathBuf::from(STATE_DIR).join("test.db"),
            busy_timeout_ms: 5_000,
            backups_keep: 10,
            single_transaction: false,
            statement_timeout_ms: 0,
            sandbox: Limits::default(),
            fleet: Fleet::default(),
        }
    }
}

impl Config {
    /// Refuses numbers strata cannot honour: a wait SQLite cannot take (its busy timeout is a
    /// 32-bit count of milliseconds) or a limit so large that a deadline computed from it would
    /// overflow the clock.
    fn check_ranges(&self, path: &Path) -> Result<(), Error> {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        let checks = [
            (
                "busy_timeout_ms",
                self.busy_timeout_ms,
                i32::MAX as u64,
                "milliseconds",
            ),
            (
                "statement_timeout_ms",
                self.statement_timeout_ms,
                i32::MAX as u64,
                "milliseconds",
            ),
            (
                "[sandbox] timeout_s",
                self.sandbox.timeout_s,
                365 * DAY_MS / 1000,
                "seconds",
            ),
            (
                "[sandbox] memory_mib",
                self.sandbox.memory_mib,
                1 << 20,
                "MiB",
            ),
        ];
        for (key, value, max, unit) in checks {
            if value > max {
                return Err(Error::input(
                    path,
                    format!(
                        "{key} = {value} is more than strata can use ({max} {unit} at most); lower it"
                    ),
                ));
            }
        }
        for (key, value, unit) in [
            ("[sandbox] timeout_s", self.sandbox.timeout_s, "second"),
            ("[sandbox] memory_mib", self.sandbox.memory_mib, "MiB"),
        ] {
            if value == 0 {
                return Err(Error::input(
                    path,
                    format!(
                        "{key} = 0 leaves a component no time or memory to run (it would stop \
                         at once); give at least 1 {unit}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The file `strata init` writes: every key with its default and a comment.
    pub fn template() -> String {
        let d = Config::default();
        format!(
            "# strata project configuration. Relative paths are relative to this file.\n\
             \n\
             # The migrations folder: <module>/<YYYYMMDDTHHMMSSZ>-<slug>/do.sql ...\n\
             migrations = \"{}\"\n\
             # The real database.\n\
             db = \"{}\"\n\
             # The test database every run rehearses on first, with test data.\n\
             test_db = \"{}\"\n\
             # How long to wait for another writer before refusing (exit 3).\n\
             busy_timeout_ms = {}\n\
             # How many backups of each database to keep in .strata/backups/.\n\
             backups_keep = {}\n\
             # Run all pending steps of a phase in one transaction (a savepoint per step), as\n\
             # `strata migrate --single-transaction`: a failure rolls back the whole phase.\n\
             single_transaction = {}\n\
             # PostgreSQL only: the longest one statement of a step may run, 0 for no limit\n\
             # (busy_timeout_ms is the lock_timeout there).\n\
             statement_timeout_ms = {}\n\
             \n\
             # The ceiling of every WebAssembly component's limits; a migration.toml may only\n\
             # narrow them. Fuel is a deterministic instruction budget.\n\
             [sandbox]\n\
             fuel = {}\n\
             memory_mib = {}\n\
             timeout_s = {}\n",
            d.migrations.display(),
            d.db.display(),
            d.test_db.display(),
            d.busy_timeout_ms,
            d.backups_keep,
            d.single_transaction,
            d.statement_timeout_ms,
            d.sandbox.fuel,
            d.sandbox.memory_mib,
            d.sandbox.timeout_s,
        )
    }
}

/// A resolved project: its folder, its configuration and the paths that follow from them.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder, as a path usable from the current directory (empty for `.`).
    pub root: PathBuf,
    pub config: Config,
    /// The real database (after `--db`).
    pub db: Database,
    /// The test database (after `--test-db`).
    pub test_db: Database,
}

impl Project {
    /// Finds the project: `dir` if given, else the nearest folder upwards from the current one
    /// that holds `strata.toml`, else the current folder.
    pub fn discover(dir: Option<&Path>) -> Result<Project, Error> {
        let root = match dir {
            Some(dir) => dir.to_path_buf(),
            None => find_config_dir().unwrap_or_default(),
        };
        Project::open(root)
    }

    /// Opens the project in `root`, reading its `strata.toml` if there is one.
    pub fn open(root: PathBuf) -> Result<Project, Error> {
        let path = root.join(CONFIG_FILE);
        if path.is_dir() {
            return Err(Error::input(
                &path,
                "is a folder, but the project configuration is a file: remove the folder \
                 (`strata init` writes the file)",
            ));
        }
        // A regular file of at most 1 MiB (`strata.toml -> /dev/zero` is refused unread).
        let text = crate::core::input::read_project_text(&path, crate::core::input::CONFIG_BYTES)?;
        let config = match &text {
            Some(text) => {
                toml::from_str(text.strip_prefix('\u{feff}').unwrap_or(text)).map_err(|e| {
                    Error::input(
                        &path,
                        format!("{}; see `strata init` for the keys", e.message()),
                    )
                })?
            }
            None => Config::default(),
        };
        config.check_ranges(&path)?;
        config.fleet.check(&path)?;
        let db = match database_url(&text)? {
            Some(url) => url,
            None => resolve_db(&root, &config.db, "db")?,
        };
        let test_db = match default_test_db(&db, &config)? {
            Some(derived) => derived,
            None => resolve_db(&root, &config.test_db, "test_db")?,
        };
        let (db, test_db) = with_fleet_schemas(db, test_db, &config);
        Ok(Project {
            db,
            test_db,
            root,
            config,
        })
    }

    /// Applies `--db` and `--test-db` (or their `STRATA_*` variables). A PostgreSQL `--db`
    /// without a test database of its own rehearses on `<dbname>_test` on the same server.
    pub fn override_databases(
        &mut self,
        db: Option<&Path>,
        test_db: Option<&Path>,
    ) -> Result<(), Error> {
        if let Some(db) = db {
            self.db = db_flag(db, "--db")?;
            if test_db.is_none() {
                // The test database follows the real one's kind: `<dbname>_test` beside a
                // PostgreSQL one, else strata.toml's `test_db`.
                self.test_db = match default_test_db(&self.db, &self.config)? {
                    Some(derived) => derived,
                    None => resolve_db(&self.root, &self.config.test_db, "test_db")?,
                };
            }
        }
        if let Some(test_db) = test_db {
            self.test_db = db_flag(test_db, "--test-db")?;
        }
        let (db, test_db) = with_fleet_schemas(self.db.clone(), self.test_db.clone(), &self.config);
        (self.db, self.test_db) = (db, test_db);
        Ok(())
    }

    /// Refuses to work in a wrong place rather than start afresh there: the project folder must
    /// exist and hold `strata.toml` or its migrations folder, and each database's folder must
    /// exist (strata creates database files, never the folders a typo would invent). Every
    /// command but `strata init` calls this first.
    pub fn require_existing(&self) -> Result<(), Error> {
        let shown = if self.root.as_os_str().is_empty() {
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
        } else {
            self.root.clone()
        };
        if !shown.is_dir() {
            return Err(Error::Usage(format!(
                "the project folder {} does not exist: pass --project the folder that holds strata.toml, or create a project there with `strata init --project {}`",
                shown.display(),
                shown.display()
            )));
        }
        if !self.root.join(CONFIG_FILE).exists() && !self.migrations_dir().exists() {
            return Err(Error::Usage(format!(
                "{} is not a strata project: it holds neither {CONFIG_FILE} nor {}/. Run the command in the project (or a folder below it), pass --project DIR, or start a project here with `strata init`",
                shown.display(),
                self.config.migrations.display()
            )));
        }
        check_db_path(&self.db, "--db", "db")?;
        check_db_path(&self.test_db, "--test-db", "test_db")
    }

    /// The migrations folder.
    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join(&self.config.migrations)
    }

    /// `.strata/`, strata's own folder in the project.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// `.strata/backups/`, where backups are kept.
    pub fn backups_dir(&self) -> PathBuf {
        self.state_dir().join("backups")
    }

    /// How long a connection waits for another writer.
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.config.busy_timeout_ms)
    }

    /// Creates `.strata/` with a `.gitignore` that keeps it out of version control.
    pub fn ensure_state_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.state_dir();
        // Private to its owner whatever the umask (narrowed if it is open): it holds backups
        // of the databases.
        crate::core::backup::private_folder(&dir)?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# strata's local state: test database, backups, builds\n*\n",
            )
            .map_err(|e| Error::io(&ignore, e))?;
        }
        Ok(dir)
    }
}

/// `DATABASE_URL`, as dbmate and sqlx read it, when strata.toml sets no `db` (the order is
/// `--db`, `STRATA_DB`, strata.toml's `db`, `DATABASE_URL`, `app.db`): a `postgres://` URL, or
/// a SQLite file as `sqlite:path` (also `sqlite://` and `sqlite3:`), relative to the current
/// folder as dbmate takes it.
fn database_url(config_text: &Option<String>) -> Result<Option<Database>, Error> {
    let sets_db = config_text.as_deref().is_some_and(|text| {
        text.strip_prefix('\u{feff}')
            .unwrap_or(text)
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("db"))
    });
    let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if sets_db {
        return Ok(None);
    }
    let url = url.trim();
    if crate::core::target::is_url(url) {
        return db_flag(Path::new(url), "DATABASE_URL").map(Some);
    }
    for scheme in ["sqlite3://", "sqlite://", "sqlite3:", "sqlite:"] {
        if let Some(path) = url.strip_prefix(scheme) {
            return db_flag(Path::new(path), "DATABASE_URL").map(Some);
        }
    }
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    Err(Error::Usage(format!(
        "DATABASE_URL names a {scheme:?} database, but strata runs on SQLite (sqlite:path) and \
         PostgreSQL (postgres://...); set `db` in strata.toml or STRATA_DB for strata, or unset \
         DATABASE_URL"
    )))
}

/// `db` and `test_db` knowing the tenants' schemas that strata.toml's schema-per-tenant groups
/// (`postgres` and `schemas`) list on `db`'s database: the database's own components may not
/// reach them even before a tenant's first run made its bookkeeping. A group's
/// `schemas_query` is not run here (it needs a connection); its tenants are known by their
/// bookkeeping once they have run.
fn with_fleet_schemas(db: Database, test_db: Database, config: &Config) -> (Database, Database) {
    let Database::Postgres(real) = &db else {
        return (db, test_db);
    };
    let mut schemas: Vec<String> = Vec::new();
    for g in &config.fleet.group {
        let (Some(url), Some(listed)) = (&g.postgres, &g.schemas) else {
            continue;
        };
        let same = matches!(
            Database::parse_from(Path::new(url), "postgres", crate::core::target::Origin::Checkout),
            Ok(Database::Postgres(t)) if t.same_database(real)
        );
        if same {
            schemas.extend(listed.iter().cloned());
        }
    }
    if schemas.is_empty() {
        return (db, test_db);
    }
    let with = |d: Database| match d {
        Database::Postgres(t) => {
            Database::Postgres(Box::new(t.with_fleet_schemas(schemas.clone())))
        }
        other => other,
    };
    (with(db), with(test_db))
}

/// For a PostgreSQL `db` and no `test_db` set: `<dbname>_test` on the same server.
fn default_test_db(db: &Database, config: &Config) -> Result<Option<Database>, Error> {
    let Database::Postgres(real) = db else {
        return Ok(None);
    };
    if config.test_db != Config::default().test_db {
        return Ok(None);
    }
    let name = format!("{}_test", real.dbname());
    Ok(Some(Database::Postgres(Box::new(real.with_dbname(&name)))))
}

/// A database as strata.toml names it: a SQLite file relative to the project, or a PostgreSQL
/// URL.
fn resolve_db(root: &Path, value: &Path, key: &str) -> Result<Database, Error> {
    match Database::parse_from(value, key, crate::core::target::Origin::Checkout)? {
        Database::Sqlite(path) => {
            check_db_value(&path, &format!("`{key}` in {CONFIG_FILE}"))?;
            Ok(Database::Sqlite(root.join(path)))
        }
        postgres => Ok(postgres),
    }
}

/// The keywords of libpq's `key=value` connection strings (`host=db dbname=app ...`).
const CONNINFO_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
];

/// Refuses a SQLite database value that cannot be meant as one: an empty value (SQLite would
/// take it as a private temporary database that vanishes when strata closes it), and a libpq
/// `key=value` connection string or anything holding `password=` (it would become a SQLite
/// file named with the password, shown in every message). The value itself is never shown:
/// it may hold a password. `whence` names where the value came from.
pub fn check_db_value(value: &Path, whence: &str) -> Result<(), Error> {
    let text = value.to_string_lossy();
    if text.trim().is_empty() {
        return Err(Error::Usage(format!(
            "{whence} is empty: name the database, a SQLite file (`app.db`) or a PostgreSQL URL \
             (postgres://user@host:5432/dbname); SQLite would take an empty name as a temporary \
             database that vanishes when strata closes it"
        )));
    }
    let conninfo = text.split_whitespace().any(|word| {
        word.split_once('=').is_some_and(|(key, _)| {
            CONNINFO_KEYS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(key.trim()))
        })
    });
    if conninfo || text.to_ascii_lowercase().contains("password=") {
        return Err(Error::Usage(format!(
            "{whence} is a PostgreSQL key=value connection string (`host=... dbname=...`), which \
             strata does not read (as a SQLite file name it would show the password): write it \
             as a URL, postgres://user@host:5432/dbname, with the password in PGPASSWORD or \
             ~/.pgpass (the value is not shown, as it may hold a password)"
        )));
    }
    Ok(())
}

/// Refuses a test database that is the real one, in any spelling: the rehearsal and the test
/// data (`test-data/`) would land on the real database. SQLite files are compared by their
/// canonical path and, when both exist, by device and inode (a symlink or a hard link);
/// PostgreSQL targets by server (any loopback spelling is the same machine) and port, and by
/// the database name as the server keeps it (cut to 63 bytes). A test database name longer
/// than 63 bytes is refused: the server would cut it, maybe back to the real name.
pub fn check_distinct(db: &Database, test_db: &Database) -> Result<(), Error> {
    let fix = "set `test_db` in strata.toml (or --test-db, STRATA_TEST_DB) to another database";
    if let (Database::Postgres(real), Database::Postgres(test)) = (db, test_db) {
        if test.dbname().len() > crate::core::target::NAME_BYTES {
            return Err(Error::Usage(format!(
                "the test database name {:?} is {} bytes, longer than PostgreSQL's {}-byte limit: \
                 the server would cut it (for a default `<dbname>_test`, back to the real \
                 database's name) and the rehearsal could run on the real database; {fix} with \
                 a shorter name",
                test.dbname(),
                test.dbname().len(),
                crate::core::target::NAME_BYTES
            )));
        }
        if real.same_database(test) {
            return Err(Error::Usage(format!(
                "the test database {test} is the real database {real}: the rehearsal and the \
                 test data would run on it; {fix} (by default `<dbname>_test` on the same \
                 server)"
            )));
        }
        return Ok(());
    }
    let (Database::Sqlite(db), Database::Sqlite(test_db)) = (db, test_db) else {
        return Ok(());
    };
    if crate::core::identity::same_file(db, test_db) {
        return Err(Error::Usage(format!(
            "the test database {} is the real database {}: the rehearsal and the test data \
             would run on it; {fix} (by default .strata/test.db)",
            test_db.display(),
            db.display()
        )));
    }
    Ok(())
}

/// A database path must name a file (or nothing yet), not a folder.
fn check_db_path(db: &Database, flag: &str, key: &str) -> Result<(), Error> {
    let Database::Sqlite(db) = db else {
        return Ok(());
    };
    if db.is_dir() {
        return Err(Error::input(
            db,
            format!(
                "is a folder, not a database file: pass {flag} the SQLite file (or the name of a new one), or fix `{key}` in {CONFIG_FILE}"
            ),
        ));
    }
    Ok(())
}

/// The database a `--db`/`--test-db` value names: a SQLite file checked as [`check_db_flag`]
/// does, or a PostgreSQL URL.
pub fn db_flag(db: &Path, flag: &str) -> Result<Database, Error> {
    let db = Database::parse(db, flag)?;
    if let Database::Sqlite(path) = &db {
        check_db_value(path, flag)?;
        check_db_flag(path, flag)?;
    }
    Ok(db)
}

/// `--db` and `--test-db` must name a SQLite file in a folder that exists: a typo in the flag
/// must not create folders and a fresh database (strata.toml's paths are created as needed).
pub fn check_db_flag(db: &Path, flag: &str) -> Result<(), Error> {
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(Error::Usage(format!(
            "{flag} {}: the folder {} does not exist; create it first (`mkdir -p {}`), or fix \
             the path",
            db.display(),
            parent.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// The name of a migration's optional settings file.
pub const MIGRATION_CONFIG_FILE: &str = "migration.toml";

/// `migration.toml`: what a migration's components may touch, their limits, and where the
/// sources of its guest crates are when they are not in the default folders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    pub sandbox: MigrationSandbox,
    pub build: MigrationBuild,
    /// `[[lint.accept]]`: findings of `strata lint` accepted on purpose (see `crate::commands::lint`).
    pub lint: crate::core::config::LintConfig,
}

/// `[sandbox]` of migration.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSandbox {
    /// Tables the components may read; all but strata's own when absent.
    pub reads: Option<Vec<String>>,
    /// Tables the components may write, create, alter or drop; all but strata's own when absent.
    pub writes: Option<Vec<String>>,
    /// Whether the components may create triggers (on tables in `writes`; each trigger's body
    /// is checked against `reads` and `writes` when the component's call ends).
    pub triggers: bool,
    pub fuel: Option<u64>,
    pub memory_mib: Option<u64>,
    pub timeout_s: Option<u64>,
}

/// `[build]` of migration.toml: guest crate folders, relative to the migration folder, for
/// components whose source is not in the default place (`transform/`, `test-data/seed/`,
/// `proj-data/seed/`, `check/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationBuild {
    pub transform: Option<PathBuf>,
    pub test_seed: Option<PathBuf>,
    pub proj_seed: Option<PathBuf>,
    pub check: Option<PathBuf>,
}

impl MigrationConfig {
    /// Reads `<dir>/migration.toml`; the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(MIGRATION_CONFIG_FILE);
        match crate::core::input::read_project_text(&path, crate::core::input::CONFIG_BYTES)? {
            Some(text) => MigrationConfig::parse(&path, &text),
            None => Ok(MigrationConfig::default()),
        }
    }

    /// Parses the text of the migration.toml at `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let config: MigrationConfig = toml::from_str(text).map_err(|e| {
            Error::input(
                path,
                format!(
                    "{}; the keys are [sandbox] reads, writes, triggers, fuel, memory_mib, \
                     timeout_s, [build] transform, test_seed, proj_seed, check and [[lint.accept]] \
                     code, reason, line, object, file",
                    e.message()
                ),
            )
        })?;
        // A component given no time or no memory could only stop at once, with a trap that
        // says nothing of the reason: refused here, with it.
        for (key, value, unit) in [
            ("timeout_s", config.sandbox.timeout_s, "second"),
            ("memory_mib", config.sandbox.memory_mib, "MiB"),
        ] {
            if value == Some(0) {
                return Err(Error::input(
                    path,
                    format!(
                        "[sandbox] {key} = 0 leaves a component no time or memory to run (it \
                         would stop at once); give at least 1 {unit}, or leave {key} out for \
                         the project's limit"
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// This migration's limits: its own where it sets them, never above `ceiling`.
    pub fn limits(&self, ceiling: &Limits) -> Limits {
        let s = &self.sandbox;
        Limits {
            fuel: s.fuel.map_or(ceiling.fuel, |v| v.min(ceiling.fuel)),
            memory_mib: s
                .memory_mib
                .map_or(ceiling.memory_mib, |v| v.min(ceiling.memory_mib)),
            timeout_s: s
                .timeout_s
                .map_or(ceiling.timeout_s, |v| v.min(ceiling.timeout_s)),
        }
    }
}

/// The nearest folder upwards from the current one holding `strata.toml`, relative when it is
/// the current folder itself.
fn find_config_dir() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    if cwd.join(CONFIG_FILE).is_file() {
        return Some(PathBuf::new());
    }
    cwd.ancestors()
        .skip(1)
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_that_is_the_real_one_is_refused_in_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&db, dir.path().join("link.db")).unwrap();
        std::fs::hard_link(&db, dir.path().join("hard.db")).unwrap();
        for same in ["app.db", "sub/../app.db", "./app.db", "link.db", "hard.db"] {
            let e = check_distinct(
                &Database::Sqlite(db.clone()),
                &Database::Sqlite(dir.path().join(same)),
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("is the real database"),
                "{same}: {e}"
            );
        }
        check_distinct(
            &Database::Sqlite(db.clone()),
            &Database::Sqlite(dir.path().join("test.db")),
        )
        .unwrap();
        let url = |u: &str| Database::parse(Path::new(u), "db").unwrap();
        for (real, test) in [
            (
                "postgres://u@127.0.0.1:5432/app",
                "postgres://u@localhost/app",
            ),
            (
                "postgres://u@localhost/app",
                "postgresql://other@[::1]:5432/app?sslmode=disable",
            ),
            (
                "postgres://u@db.example:6000/app",
                "postgres://u@DB.example:6000/app",
            ),
        ] {
            let e = check_distinct(&url(real), &url(test)).unwrap_err();
            assert!(
                e.to_string().contains("is the real database"),
                "{test}: {e}"
            );
        }
        check_distinct(
            &url("postgres://u@localhost/app"),
            &url("postgres://u@localhost:5433/app"),
        )
        .unwrap();
        let long = "x".repeat(63);
        let e = check_distinct(
            &url(&format!("postgres://u@localhost/{long}")),
            &url(&format!("postgres://u@localhost/{long}_test")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("63-byte"), "{e}");
    }

    #[test]
    fn empty_and_key_value_database_values_are_refused_without_showing_them() {
        for value in [
            "",
            "  ",
            "host=db dbname=app password=hunter2",
            "x password=hunter2",
        ] {
            let e = check_db_value(Path::new(value), "db").unwrap_err();
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        check_db_value(Path::new("app.db"), "db").unwrap();
        assert!(
            db_flag(Path::new("postgres://u@h/db?password=x"), "db")
                .unwrap()
                .is_server()
        );
    }

    use super::*;

    #[test]
    fn the_template_parses_back_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::template()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "databse = \"x.db\"\n").unwrap();
        let err = Project::open(dir.path().to_path_buf()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("strata.toml"), "{msg}");
        assert!(msg.contains("databse"), "{msg}");
        assert_eq!(err.exit_code(), crate::core::exit::BAD_INPUT);
    }

    #[test]
    fn migration_limits_are_capped_by_the_project() {
        let m: MigrationConfig =
            toml::from_str("[sandbox]\nfuel = 10\nmemory_mib = 100000\nwrites = [\"people\"]\n")
                .unwrap();
        let l = m.limits(&Limits::default());
        assert_eq!(l.fuel, 10);
        assert_eq!(l.memory_mib, Limits::default().memory_mib);
        assert_eq!(l.timeout_s, Limits::default().timeout_s);
        assert_eq!(m.sandbox.writes, Some(vec!["people".to_string()]));
        assert_eq!(m.sandbox.reads, None);
    }

    #[test]
    fn a_misspelled_migration_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MIGRATION_CONFIG_FILE),
            "[sandbox]\nwrite = []\n",
        )
        .unwrap();
        let err = MigrationConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("migration.toml") && err.contains("write"),
            "{err}"
        );
    }

    #[test]
    fn paths_are_relative_to_the_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "db = \"data/prod.db\"\n").unwrap();
        let p = Project::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(p.db, Database::Sqlite(dir.path().join("data/prod.db")));
        assert_eq!(
            p.test_db,
            Database::Sqlite(dir.path().join(".strata/test.db"))
        );
        assert_eq!(p.migrations_dir(), dir.path().join("migrations"));
    }
}

/// `[lint]` of migration.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LintConfig {
    /// Findings accepted on purpose.
    pub accept: Vec<Accept>,
}

/// One `[[lint.accept]]`: a code, why, and optionally which statement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    pub code: String,
    pub reason: String,
    /// Only the statement starting on this line.
    #[serde(default)]
    pub line: Option<usize>,
    /// Only findings on this table (or `table.column`).
    #[serde(default)]
    pub object: Option<String>,
    /// Only in this file (`do.sql` or `undo.sql`).
    #[serde(default)]
    pub file: Option<String>,
}
