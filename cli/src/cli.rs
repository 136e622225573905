//! Arguments and dispatch: one function per command, each a thin call into the library followed
//! by rendering. No behaviour lives here.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::builder::BoolishValueParser;
use clap::{CommandFactory, Parser, Subcommand};
use strata_engine::commands::migrate::{self, MigrateOptions};
use strata_engine::commands::{build as guest, design, fleet, restore, scaffold};
use strata_engine::components::Sandbox;
use strata_engine::core::backup::Backup;
use strata_engine::core::plan::PlanOptions;
use strata_engine::core::tree;
use strata_engine::{Error, Project};

use crate::render::{self, Output};

/// The exit codes, as every command's help ends (a literal, for `concat!`).
macro_rules! exit_codes {
    () => {
        "Exit codes: 0 done; 1 a step, check, component or build failed (a failed step is rolled \
         back); 2 bad input or usage (nothing touched); 3 refused for safety (nothing touched); \
         4 a server unavailable (try again once it answers)."
    };
}

/// A command's `after_help`: examples, then the exit codes.
macro_rules! examples {
    ($($example:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $example, "\n",)+ "\n", exit_codes!())
    };
}

#[path = "remote.rs"]
mod remote;

#[path = "lint.rs"]
mod lint;

/// strata: migrations, test data and seed data for SQLite and PostgreSQL in one ordered chain,
/// rehearsed on a test database before they touch the real one.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    propagate_version = true,
    after_help = examples!(
        "strata init && strata new catalog zero --new-module",
        "strata plan && strata migrate",
        "strata status --check   # in CI: exit 3 when migrate would refuse",
    )
)]
pub struct Args {
    /// The project folder (default: the nearest folder upwards holding strata.toml, else the
    /// current folder).
    #[arg(long, global = true, value_name = "DIR", env = "STRATA_PROJECT")]
    project: Option<PathBuf>,
    /// The real database, a file or a postgres:// URL (default: `db` in strata.toml, else
    /// DATABASE_URL, else app.db in the project).
    #[arg(long, global = true, value_name = "PATH", env = "STRATA_DB")]
    db: Option<PathBuf>,
    /// The test database (default: `test_db` in strata.toml, else .strata/test.db; on
    /// PostgreSQL <dbname>_test on the real database's server).
    #[arg(long, global = true, value_name = "PATH", env = "STRATA_TEST_DB")]
    test_db: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true, env = "STRATA_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
    /// Print only results and errors.
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        env = "STRATA_QUIET",
        value_parser = BoolishValueParser::new()
    )]
    quiet: bool,
    /// Also print each action of each step.
    #[arg(
        short,
        long,
        global = true,
        env = "STRATA_VERBOSE",
        value_parser = BoolishValueParser::new()
    )]
    verbose: bool,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    #[command(subcommand)]
    command: Command,
}

/// The on/off variables, read as clap reads them but refused with the variable's name rather than
/// the flag's when they hold something else (clap names only `--json`).
const SWITCHES: [(&str, &str); 3] = [
    ("STRATA_JSON", "--json"),
    ("STRATA_QUIET", "--quiet"),
    ("STRATA_VERBOSE", "--verbose"),
];

/// Checks the on/off environment variables before the arguments are parsed.
pub fn check_switches() -> std::result::Result<(), String> {
    for (name, flag) in SWITCHES {
        let Some(value) = std::env::var_os(name) else {
            continue;
        };
        let text = value.to_string_lossy();
        let known = [
            "1", "0", "true", "false", "yes", "no", "y", "n", "on", "off", "t", "f", "",
        ];
        if !known.contains(&text.trim().to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{name}={text:?} is neither on nor off: use 1 or 0 (also true/false, yes/no, \
                 on/off), or unset it; it stands for {flag}"
            ));
        }
    }
    Ok(())
}

/// The language of a guest `strata new` starts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GuestLang {
    Rust,
    Python,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write strata.toml, an empty migrations folder and the .gitignore lines for the databases.
    #[command(after_help = examples!("strata init", "strata init --project shop"))]
    Init,
    /// Create the next stamped migration folder of a module, with an empty do.sql.
    #[command(after_help = examples!(
        "strata new billing add-discounts",
        "strata new catalog zero --new-module",
        "strata new people split-names --transform",
        "strata new people split-names --transform --lang python",
        "strata new app add-tags --from-diff",
    ))]
    New {
        /// The module: [a-z][a-z0-9_-]*.
        module: String,
        /// What the migration does: [a-z0-9][a-z0-9_-]*, e.g. add-users.
        slug: String,
        /// Fill do.sql with what `strata diff <module> --sql` prints, store schema.sql, and
        /// record the migration as applied on the database it was diffed from.
        #[arg(long)]
        from_diff: bool,
        /// With --from-diff: accept SQL that drops tables or columns.
        #[arg(long, requires = "from_diff")]
        allow_destructive: bool,
        /// Start a module that does not exist yet (without it, an unknown module is an error
        /// that suggests the closest one).
        #[arg(long)]
        new_module: bool,
        /// Also start a transform guest crate (transform/), with migration.toml's [sandbox].
        #[arg(long, group = "guest", conflicts_with = "from_diff")]
        transform: bool,
        /// Also start a seed guest crate (test-data/seed/, test database only).
        #[arg(long, group = "guest", conflicts_with = "from_diff")]
        seed: bool,
        /// Also start a check guest crate (check/).
        #[arg(long, group = "guest", conflicts_with = "from_diff")]
        check: bool,
        /// The language of the guest --transform/--seed/--check starts: rust (a crate) or
        /// python (app.py, built with componentize-py).
        #[arg(long, value_enum, default_value = "rust", requires = "guest")]
        lang: GuestLang,
    },
    /// Compile guest crates to WebAssembly components and write the .wasm files to commit.
    #[command(after_help = examples!("strata build", "strata build people/20240320T100000Z"))]
    Build {
        /// A module, or <module>/<migration folder or stamp>; everything when absent.
        selector: Option<String>,
    },
    /// Per module: which migrations are applied, pending, modified or missing, on both databases,
    /// and which modules drifted.
    #[command(after_help = examples!("strata status", "strata status --check", "strata status --json"))]
    Status {
        /// Exit 3 when `migrate` would refuse (2 for bad input), after printing the status.
        #[arg(long)]
        check: bool,
    },
    /// The steps `migrate` would run, in order, without running them; refuses exactly when
    /// `migrate` would.
    /// Also checks, without touching a database, each pending do.sql statement against the
    /// schema the steps before it build and each data.json's tables and columns (exit 2 naming
    /// the file and line), and prints `strata lint`'s findings as warnings.
    #[command(after_help = examples!("strata plan", "strata plan --sql", "strata plan --to 202403", "strata plan --strict   # exit 1 on a lint finding not accepted"))]
    Plan {
        #[command(flatten)]
        run: PlanArgs,
        /// Print the SQL each step would run (a dry run), in order.
        #[arg(long)]
        sql: bool,
        /// Exit 1 when `strata lint` has a finding that is not accepted (after printing the plan).
        #[arg(long)]
        strict: bool,
    },
    /// Findings on the hand-written SQL of the pending migrations (do.sql, undo.sql):
    /// destructive, data-dependent and backward-incompatible changes, and PostgreSQL locks and
    /// rewrites; each with a code (see docs/src/lint.md) and its fix. Accept one on
    /// purpose in the migration's migration.toml: [[lint.accept]] code = "SL101" reason = "...".
    #[command(after_help = concat!(
        "Examples:\n  strata lint\n  strata lint --all --json\n\n",
        "Exit codes: 0 no finding, or only accepted ones and notes; 1 a finding not accepted; 2 bad \
         input or usage (a do.sql statement the database refuses, an accept without a reason); 3 \
         refused for safety."
    ))]
    Lint {
        /// Lint every migration, not only those pending on the real database (which is then
        /// not opened).
        #[arg(long)]
        all: bool,
    },
    /// Rehearse pending migrations on the test database, then apply them to the real one.
    #[command(after_help = examples!(
        "strata migrate",
        "strata migrate --to 20240318",
        "strata migrate --rehearse-on-copy",
    ))]
    Migrate(MigrateArgs),
    /// CI mode: the whole chain from zero on a throwaway database, with test data, project data,
    /// components and checks; never opens the real or test database. Exit 1 on any failure.
    #[command(after_help = examples!(
        "strata sandbox --junit report.xml",
        "strata sandbox --from prod-copy.db",
    ))]
    Sandbox {
        /// Exit 1 when `strata lint` has a finding that is not accepted on a step the sandbox ran.
        #[arg(long)]
        strict: bool,
        /// Write a JUnit XML report (one testcase per step) to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Rehearse only the pending migrations on a copy of this database (no test data).
        #[arg(long, value_name = "DB")]
        from: Option<PathBuf>,
        /// Stop after the migrations with this stamp (or any prefix of it naming one), inclusive.
        #[arg(long, value_name = "STAMP")]
        to: Option<String>,
    },
    /// Take back the newest applied migration (or every one after --to) with its undo.sql:
    /// newest first, each in its own transaction, audited, on the test database and then the
    /// real one, each after a verified backup.
    #[command(after_help = examples!(
        "strata undo",
        "strata undo --to 20240318",
        "strata undo --remote http://127.0.0.1:7433   # on the server's databases",
        "strata sandbox   # proves each undo.sql: the schema after it is the one before the step",
    ))]
    Undo {
        /// Undo every migration applied after the one whose stamp starts with this (it stays
        /// applied).
        #[arg(long, value_name = "STAMP")]
        to: Option<String>,
    },
    #[command(hide = true)]
    Down {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    #[command(hide = true)]
    Rollback {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    #[command(hide = true)]
    Revert {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Put a backup back into the real database (the latest by default), after a verified
    /// backup of its current state; only a backup taken from that database goes back.
    #[command(after_help = examples!("strata restore", "strata restore --list", "strata restore --test", "strata restore app-20240105T093000Z.db --yes"))]
    Restore {
        /// A backup file, or its name in .strata/backups/.
        backup: Option<PathBuf>,
        /// Restore the test database instead of the real one.
        #[arg(long)]
        test: bool,
        /// List the backups that can go back to the database, oldest first; change nothing.
        #[arg(long, conflicts_with = "backup")]
        list: bool,
        /// Do not ask before overwriting the database (asked only on a terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// A module's normalized schema (every module's without a name), from the real database.
    #[command(after_help = examples!("strata dump billing", "strata dump billing --write"))]
    Dump {
        /// The module; all of them if omitted.
        module: Option<String>,
        /// Store it as the newest migration's schema.sql and as LATEST/schema.sql.
        #[arg(long)]
        write: bool,
    },
    /// The live schema of a module against its last snapshot (schema.sql).
    #[command(after_help = examples!("strata diff", "strata diff billing --sql", "strata diff --exit-code"))]
    Diff {
        /// The module; all of them if omitted.
        module: Option<String>,
        /// Print the DDL (SQLite or PostgreSQL) that turns the snapshot into the live schema.
        #[arg(long)]
        sql: bool,
        /// With --sql: do not refuse (exit 3) when the SQL drops tables or columns.
        #[arg(long, requires = "sql")]
        allow_destructive: bool,
        /// Exit 1 when there is a difference (like `git diff --exit-code`).
        #[arg(long)]
        exit_code: bool,
    },
    /// Adopt an existing database: its objects that no module owns become the module's zero
    /// migration, recorded as applied without running it.
    #[command(after_help = examples!("strata baseline shop"))]
    Baseline {
        /// The new module: [a-z][a-z0-9_-]*.
        module: String,
    },
    /// Re-pin applied migrations whose files were changed on purpose: shows what changed, and
    /// with --yes records the new checksums (audited with the operator) on both databases.
    #[command(after_help = examples!(
        "strata repair billing/20240402T130000Z-due-dates",
        "strata repair billing/20240402T130000Z-due-dates --yes",
    ))]
    Repair {
        /// The migrations, as `strata status` lists them: <module>/<folder> (or
        /// <module>/<stamp>).
        #[arg(required = true, value_name = "MIGRATION")]
        migrations: Vec<String>,
        /// Do it: without this, repair only shows what it would re-pin and changes nothing.
        #[arg(long)]
        yes: bool,
    },
    /// The audit log: every step on the database, with outcome, rows and duration.
    #[command(after_help = examples!("strata audit", "strata audit --limit 20", "strata audit --test --json"))]
    Audit {
        /// Read the test database's log instead of the real one's.
        #[arg(long)]
        test: bool,
        /// Show only the newest N entries.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Print a shell completion script.
    #[command(after_help = examples!(
        "strata completions bash > ~/.local/share/bash-completion/completions/strata",
        "strata completions zsh > ~/.zfunc/_strata",
    ))]
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Serve this project's engine over gRPC (strata.v1) for `--remote` clients and other
    /// services; prints the URL it listens on as the first line of stdout.
    #[command(after_help = examples!(
        "strata serve --token-file .strata/token",
        "strata serve --listen 0.0.0.0:7433 --tls-cert cert.pem --tls-key key.pem --token-file token",
        "STRATA_REMOTE=http://127.0.0.1:7433 STRATA_TOKEN=$(cat .strata/token) strata status",
    ))]
    Serve(remote::ServeArgs),
    /// One chain applied to many databases (a database per tenant): status, plan and migrate
    /// over the targets of `[[fleet.group]]` in strata.toml or `--targets 'tenants/*.db'`.
    #[command(subcommand, after_help = examples!(
        "strata fleet status --targets 'tenants/*.db'",
        "strata fleet plan --targets 'tenants/*.db'",
        "strata fleet migrate --targets 'tenants/*.db' --junit fleet.xml",
    ))]
    Fleet(FleetCommand),
    /// The engine version, the project, its databases and modules (with --remote: the server's).
    #[command(after_help = examples!(
        "strata info",
        "strata info --json",
        "strata info --remote http://127.0.0.1:7433",
    ))]
    Info,
}

/// Which targets a fleet command works on.
#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// A glob of SQLite files (`tenants/*.db`: a value with a `/` or ending in .db, .sqlite or
    /// .sqlite3), or a pattern of target or group names (`acme*`) limiting the configured ones.
    #[arg(long, value_name = "PATTERN")]
    targets: Option<String>,
    /// How many targets run (or are read) at once in stages without their own `parallel`
    /// (default: 8 per core, at most 32: a target's run mostly waits for its disk or server).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    parallel: Option<u16>,
    /// Confirms that the remotes of groups whose strata.toml says `allow_insecure = true` may
    /// be reached over http:// off loopback, their tokens crossing the network in clear text
    /// (strata.toml alone cannot grant it: a checkout could name any host).
    #[arg(long)]
    allow_insecure: bool,
}

impl FleetArgs {
    fn selection(&self) -> fleet::Selection {
        fleet::Selection {
            targets: self.targets.clone(),
            parallel: self.parallel.map(usize::from),
            allow_insecure: self.allow_insecure,
        }
    }
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Every target's state: applied, pending, failed, modified, drifted, unreachable; counted.
    /// Exit 3 when `fleet migrate` would refuse any target.
    #[command(after_help = examples!(
        "strata fleet status --targets 'tenants/*.db'",
        "strata fleet status --json",
    ))]
    Status {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// What `fleet migrate` would do where: the rehearsal, then each stage's targets and their
    /// pending migrations. Exit 3 when it would refuse any target.
    #[command(after_help = examples!(
        "strata fleet plan --targets 'tenants/*.db'",
        "strata fleet plan --targets 'acme*'",
    ))]
    Plan {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        run: PlanArgs,
    },
    /// Rehearse once on the test database, then migrate every target stage by stage, each with
    /// its own backup, run and audit rows. Run it again after a failure to go on where it
    /// stopped. Exit 1 when any target failed, 3 when any was refused.
    #[command(after_help = examples!(
        "strata fleet migrate --targets 'tenants/*.db'",
        "strata fleet migrate --junit fleet.xml --report fleet.json",
        "strata restore --db tenants/acme.db   # one target back from its backup",
    ))]
    Migrate {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        run: PlanArgs,
        /// Run all pending steps of each target in one transaction (a savepoint per step).
        #[arg(long)]
        single_transaction: bool,
        /// Write a JUnit XML report (one testcase per target) to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write the JSON report (what --json prints) to this file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Put the targets of one stage of a fleet run back from the backups that run took, each
    /// with `restore`'s checks. A target whose rows changed outside strata since the run is
    /// refused unless --yes. Exit 1 when a restore failed, 3 when one was refused.
    #[command(after_help = examples!(
        "strata fleet restore --stage canary",
        "strata fleet restore --stage everyone --run fleet.json --yes",
    ))]
    Restore {
        #[command(flatten)]
        fleet: FleetArgs,
        /// The stage whose targets go back.
        #[arg(long, value_name = "NAME")]
        stage: String,
        /// The run's JSON report (`fleet migrate --report FILE`); default: the last run's,
        /// kept in .strata/fleet/last-run.json.
        #[arg(long, value_name = "FILE")]
        run: Option<PathBuf>,
        /// Put targets back even when their rows changed outside strata since the run.
        #[arg(long)]
        yes: bool,
    },
}

/// What `plan` and `migrate` share: which migrations, and which refusals to waive.
#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Stop after the migrations with this stamp (YYYYMMDDTHHMMSSZ, or any prefix of it that
    /// names one migration's stamp), inclusive.
    #[arg(long, value_name = "STAMP")]
    to: Option<String>,
    /// Run pending migrations that are older than the newest applied one of their module.
    #[arg(long)]
    allow_out_of_order: bool,
    /// Skip phase 1: apply to the real database without rehearsing on the test database.
    #[arg(long)]
    no_rehearsal: bool,
    /// Go on even when a module's live schema drifted from its last applied snapshot.
    #[arg(long)]
    allow_drift: bool,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Also rehearse on a throwaway copy of the real database before the real run.
    #[arg(long)]
    rehearse_on_copy: bool,
    /// Write missing schema.sql snapshots (and LATEST/schema.sql) from the test database.
    #[arg(long)]
    write_snapshots: bool,
    /// Run all pending steps of a phase in one transaction (a savepoint per step): a failure
    /// rolls back the whole phase. Also `single_transaction = true` in strata.toml.
    #[arg(long)]
    single_transaction: bool,
}

impl PlanArgs {
    fn options(&self, project: &Project) -> Result<MigrateOptions, Error> {
        Ok(MigrateOptions {
            plan: PlanOptions {
                to: resolve_to(project, self.to.as_deref())?,
                allow_out_of_order: self.allow_out_of_order,
            },
            rehearse: !self.no_rehearsal,
            rehearse_on_copy: false,
            write_snapshots: false,
            allow_drift: self.allow_drift,
            single_transaction: false,
            probes: Default::default(),
        })
    }
}

impl MigrateArgs {
    fn options(&self, project: &Project) -> Result<MigrateOptions, Error> {
        Ok(MigrateOptions {
            rehearse_on_copy: self.rehearse_on_copy,
            write_snapshots: self.write_snapshots,
            single_transaction: self.single_transaction,
            ..self.plan.options(project)?
        })
    }
}

/// `--to`: a whole stamp, or a prefix naming one migration's stamp.
fn resolve_to(project: &Project, to: Option<&str>) -> Result<Option<String>, Error> {
    to.map(|prefix| {
        let tree = tree::Tree::load(&project.migrations_dir())?;
        tree::resolve_stamp(&tree, prefix)
    })
    .transpose()
}

/// Prints a `diff` report (local or remote) and gives its exit: 3 when `--sql` would drop data
/// without `--allow-destructive`, 1 with `--exit-code` when there is a difference.
fn show_diff(
    out: &Output,
    report: &strata_engine::core::design::DiffReport,
    sql: bool,
    allow_destructive: bool,
    exit_code: bool,
) -> Result<()> {
    let refusal = report.check_destructive(allow_destructive || !sql);
    if !(out.json_mode() && refusal.is_err()) {
        out.diff(report, sql)?;
    }
    refusal?;
    if exit_code && report.has_differences() {
        return Err(anyhow::Error::new(Failed(
            "the live schema differs from the snapshot".into(),
        )));
    }
    Ok(())
}

/// Prints a `sandbox` report (local or remote), writes its JUnit file when asked, and gives
/// its exit: 1 when any step failed.
fn show_sandbox(
    out: &Output,
    report: &migrate::SandboxReport,
    junit: Option<&std::path::Path>,
) -> Result<()> {
    if let Some(path) = junit {
        std::fs::write(path, render::junit(report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    out.sandbox(report)?;
    if !report.ok {
        return Err(anyhow::Error::new(Failed("the sandbox run failed".into())));
    }
    Ok(())
}

/// Runs the command the arguments name.
pub fn run(args: Args) -> Result<()> {
    let out = Output::new(args.json, args.quiet, args.verbose);
    if let Command::Completions { shell } = args.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Args::command(), "strata", &mut script);
        return out.raw(&script);
    }
    let project = project(&args)?;
    if args.remote.remote.is_some() {
        return remote::run(args, &out, &project);
    }
    if !matches!(args.command, Command::Init) {
        project.require_existing()?;
    }
    match args.command {
        Command::Init => out.init(&scaffold::init(&project)?),
        Command::New {
            module,
            slug,
            from_diff: true,
            allow_destructive,
            new_module,
            ..
        } => {
            scaffold::require_module(&project, &module, new_module)?;
            out.adopted(&design::new_from_diff(
                &project,
                &module,
                &slug,
                allow_destructive,
            )?)
        }
        Command::New {
            module,
            slug,
            new_module,
            transform,
            seed,
            check,
            lang,
            ..
        } => {
            let dir = scaffold::new_migration(&project, &module, &slug, new_module)?;
            let guest = match (transform, seed, check) {
                (true, _, _) => Some(scaffold::Guest::Transform),
                (_, true, _) => Some(scaffold::Guest::Seed),
                (_, _, true) => Some(scaffold::Guest::Check),
                _ => None,
            };
            if let Some(guest) = guest {
                let label = format!(
                    "{module}/{}",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                );
                match lang {
                    GuestLang::Rust => scaffold::guest_crate(&project, &dir, &label, guest)?,
                    GuestLang::Python => scaffold::python_guest(&project, &dir, &label, guest)?,
                };
            }
            out.new_migration(&dir)
        }
        Command::Build { selector } => {
            let crates = guest::find(&project, selector.as_deref())?;
            let sandbox = Sandbox::new(strata_engine::components::CacheLocation::for_user())
                .map_err(|e| anyhow::anyhow!("cannot start the WebAssembly engine: {e:#}"))?;
            out.build(&guest::build(&project, &crates, &sandbox, &mut |e| {
                render::event(&out, e)
            })?)
        }
        Command::Dump { module, write } => {
            out.dump(&design::dump(&project, module.as_deref(), write)?)
        }
        Command::Diff {
            module,
            sql,
            allow_destructive,
            exit_code,
        } => {
            let report = design::diff(&project, module.as_deref(), sql)?;
            show_diff(&out, &report, sql, allow_destructive, exit_code)
        }
        Command::Baseline { module } => out.adopted(&design::baseline(&project, &module)?),
        Command::Status { check } => {
            out.status(&migrate::status(&project)?)?;
            if check {
                migrate::check(&project, &MigrateOptions::default())?;
            }
            Ok(())
        }
        Command::Plan { run, sql, strict } => {
            let opts = run.options(&project)?;
            let phases = if sql {
                migrate::plan_with_sql(&project, &opts)?
            } else {
                migrate::plan(&project, &opts)?
            };
            let warnings = strata_engine::commands::lint::syntax::check_pending(&project)?;
            let report = strata_engine::commands::lint::lint_project(
                &project,
                strata_engine::commands::lint::Scope::Pending,
            )?;
            if sql {
                out.plan_sql(&phases)?;
            } else {
                out.plan(&phases)?;
            }
            if !out.quiet_mode() {
                for w in &warnings {
                    errln!("warning: {w}");
                }
            }
            lint::warn(&out, &report, strict)
        }
        Command::Lint { all } => {
            let scope = if all {
                strata_engine::commands::lint::Scope::All
            } else {
                strata_engine::commands::lint::Scope::Pending
            };
            let warnings = if all {
                Vec::new()
            } else {
                strata_engine::commands::lint::syntax::check_pending(&project)?
            };
            lint::show(
                &out,
                &strata_engine::commands::lint::lint_project(&project, scope)?,
                &warnings,
            )
        }
        Command::Completions { .. } => unreachable!("handled before the project is opened"),
        Command::Migrate(run) => {
            use strata_engine::commands::lint as lint_;
            let mut opts = run.options(&project)?;
            // The findings on what this run applies: the rehearsal counts the rows under each
            // data-dependent one, and they are printed after the run with what the rows said.
            // What stops lint (a database it cannot read, a bad accept) is the run's to report
            // (or `plan`'s and `lint`'s): it does not print twice.
            let findings = lint_::lint_project(&project, lint_::Scope::Pending).ok();
            if opts.rehearse {
                opts.probes = findings.as_ref().map(lint_::probes).unwrap_or_default();
            }
            let mut verdicts = lint_::Verdicts::for_migrate(project.test_db.shown());
            let result = migrate::migrate(&project, &opts, &mut |e| {
                verdicts.event(e);
                render::event(&out, e)
            });
            if let Err(Error::Step(f)) = &result {
                verdicts.failure(f);
            }
            let findings = findings.map(|mut f| {
                verdicts.judge(&mut f);
                f
            });
            let shown = result.map_err(anyhow::Error::from).and_then(|mut r| {
                r.lint = findings.clone();
                out.migrate(&r)
            });
            if let Some(findings) = &findings {
                lint::warn_rows(&out, findings);
            }
            shown
        }
        Command::Sandbox {
            junit,
            from,
            to,
            strict,
        } => {
            let opts = migrate::SandboxOptions {
                from,
                plan: PlanOptions {
                    to: resolve_to(&project, to.as_deref())?,
                    allow_out_of_order: false,
                },
                probes: Default::default(),
            };
            use strata_engine::commands::lint as lint_;
            // Linted before the run (every migration it may run), so that the sandbox counts
            // the rows under each data-dependent finding; shown for the steps it ran.
            let all = lint_::lint_project(&project, lint_::Scope::All)?;
            let opts = migrate::SandboxOptions {
                probes: lint_::probes(&all),
                ..opts
            };
            let mut verdicts = lint_::Verdicts::for_sandbox(opts.from.is_some());
            let report = migrate::sandbox(&project, &opts, &mut |e| {
                verdicts.event(e);
                render::event(&out, e)
            })?;
            let ran: Vec<String> = report
                .steps
                .iter()
                .map(|s| format!("{}/{}", s.module, s.migration))
                .collect();
            let mut findings = all.only(&ran);
            for step in &report.steps {
                verdicts.sandbox_failure(step);
            }
            verdicts.judge(&mut findings);
            let report = migrate::SandboxReport {
                lint: Some(findings.clone()),
                ..report
            };
            // The findings are shown after a failed step too: its rows may confirm one.
            let shown = show_sandbox(&out, &report, junit.as_deref());
            let linted = lint::warn(&out, &findings, strict);
            shown.and(linted)
        }
        Command::Restore {
            test, list: true, ..
        } => {
            let (db, backups) = restore::list(&project, test)?;
            out.backups(&db, &backups)
        }
        Command::Restore {
            backup, test, yes, ..
        } => {
            let mut backup = backup;
            let mut confirmed = yes;
            if !yes && std::io::stdin().is_terminal() {
                let chosen = restore::choose(&project, test, backup.as_deref())?;
                let changed = restore::changes_since(&project, test, &chosen)?.unwrap_or_default();
                if !confirm(&restore::target(&project, test).shown(), &chosen, &changed)? {
                    return Err(anyhow::Error::new(Declined));
                }
                backup = Some(chosen.path);
                confirmed = true;
            }
            out.restored(
                &restore::restore_confirmed(&project, test, backup.as_deref(), confirmed)?,
                test,
            )
        }
        Command::Repair { migrations, yes } => {
            let report = strata_engine::commands::repair::repair(&project, &migrations, yes)?;
            out.repair(&report)?;
            if !yes && !out.json_mode() {
                // A preview, like `plan`: it succeeds, and says how to go on.
                errln!(
                    "note: nothing was changed: re-pinning makes strata trust the changed files as \
                     if they had been applied; if that is right, run again with --yes \
                     (`strata repair {} --yes`)",
                    migrations.join(" ")
                );
            }
            Ok(())
        }
        Command::Undo { to } => {
            let report = strata_engine::commands::undo::undo(
                &project,
                &strata_engine::commands::undo::UndoOptions { to },
            )?;
            out.undone(&report)
        }
        Command::Down { .. } | Command::Rollback { .. } | Command::Revert { .. } => {
            Err(Error::Usage(
                "strata has no down migrations by that name: `strata undo` takes the newest \
                 migration back with its undo.sql (`--to STAMP` for more), and `strata restore` \
                 puts a whole backup back"
                    .into(),
            )
            .into())
        }
        Command::Audit { test, limit } => {
            let (db, rows) = migrate::audit(&project, test, limit)?;
            out.audit(&db, &rows)
        }
        Command::Serve(serve) => remote::serve(&out, project, &args.remote, serve),
        Command::Info => remote::local_info(&out, &project),
        Command::Fleet(command) => run_fleet(&out, &project, &args.remote, command),
    }
}

/// `strata fleet ...`.
fn run_fleet(
    out: &Output,
    project: &Project,
    remote: &remote::RemoteArgs,
    command: FleetCommand,
) -> Result<()> {
    let remotes = remote::FleetRemotes::new(remote);
    match command {
        FleetCommand::Status { fleet } => {
            let status = fleet::fleet_status(
                project,
                &fleet.selection(),
                &MigrateOptions::default(),
                &remotes,
            )?;
            out.fleet_status(&status)?;
            if status.refuses() {
                return Err(refused_targets());
            }
            Ok(())
        }
        FleetCommand::Plan { fleet, run } => {
            let plan = fleet::fleet_plan(
                project,
                &fleet.selection(),
                &run.options(project)?,
                &remotes,
            )?;
            out.fleet_plan(&plan)?;
            if plan.refuses() {
                return Err(refused_targets());
            }
            Ok(())
        }
        FleetCommand::Restore {
            fleet,
            stage,
            run,
            yes,
        } => run_fleet_restore(out, project, &fleet.selection(), &stage, run, yes),
        FleetCommand::Migrate {
            fleet,
            run,
            single_transaction,
            junit,
            report,
        } => {
            let opts = MigrateOptions {
                single_transaction,
                ..run.options(project)?
            };
            let view =
                render::FleetView::new(out.quiet_mode(), out.verbose_mode(), out.json_mode());
            let done = fleet::fleet_migrate(
                project,
                &fleet.selection(),
                &opts,
                &mut |e| render::event(out, e),
                &|e| view.event(e),
                &remotes,
            );
            view.finish();
            let done = done?;
            if let Some(path) = junit {
                std::fs::write(&path, render::fleet_junit(&done))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_string_pretty(&done)?)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            if let Err(e) = fleet::keep_report(project, &done) {
                errln!("warning: the run's report was not kept for `fleet restore`: {e}");
            }
            out.fleet_migrate(&done)?;
            if done.ok {
                return Ok(());
            }
            let failed = done.stages.iter().flat_map(|s| &s.targets);
            if failed
                .clone()
                .any(|t| t.outcome == fleet::TargetOutcome::Failed)
            {
                Err(anyhow::Error::new(Failed("a fleet target failed".into())))
            } else {
                Err(refused_targets())
            }
        }
    }
}

/// `strata fleet restore`.
fn run_fleet_restore(
    out: &Output,
    project: &Project,
    selection: &fleet::Selection,
    stage: &str,
    run: Option<PathBuf>,
    yes: bool,
) -> Result<()> {
    let path = run.unwrap_or_else(|| fleet::last_run_path(project));
    let text = strata_engine::core::input::read_project_text(
        &path,
        strata_engine::core::input::FILE_BYTES,
    )
    .map_err(|e| e.to_string())
    .and_then(|t| t.ok_or_else(|| format!("{}: no such file", path.display())))
    .map_err(|e| {
        Error::Usage(format!(
            "cannot read the fleet run's report ({e}); `fleet migrate` keeps its last run's \
             there, or pass --run FILE (a `fleet migrate --report FILE`)",
        ))
    })?;
    let report: fleet::FleetReport = serde_json::from_str(&text).map_err(|e| Error::Input {
        path: path.clone(),
        message: format!("is not a fleet run's JSON report: {e}"),
    })?;
    let done = fleet::fleet_restore(project, selection, &report, stage, yes)?;
    out.fleet_restore(&done)?;
    if done.ok() {
        return Ok(());
    }
    if done
        .targets
        .iter()
        .any(|t| t.outcome == fleet::RestoreOutcome::Failed)
    {
        Err(anyhow::Error::new(Failed(
            "a fleet target's restore failed".into(),
        )))
    } else {
        Err(anyhow::Error::new(Refused(
            "fleet restore refused one or more targets (see above)".into(),
        )))
    }
}

/// Exit 3 for a fleet command, the targets already reported on stdout.
fn refused_targets() -> anyhow::Error {
    anyhow::Error::new(Refused(
        "fleet migrate would refuse one or more targets (see above)".into(),
    ))
}

/// Asks on the terminal whether to put `chosen` back into `db`; `changed` are the tables whose
/// rows changed outside strata since the run it undoes.
fn confirm(
    db: &Path,
    chosen: &Backup,
    changed: &[strata_engine::core::restore::TableDifference],
) -> Result<bool> {
    if !changed.is_empty() {
        errln!(
            "{} changed outside strata since the run that took this backup ended; the rows of \
             these tables would go back (the undo backup keeps them): {}",
            db.display(),
            changed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let question = format!(
        "Put {} (taken {}, {}) back into {}? Its current state is backed up first, so the \
         restore can be undone. [y/N] ",
        chosen.path.display(),
        chosen.record.taken_at,
        chosen.record.reason,
        db.display()
    );
    render::write_stderr(format_args!(
        "{}",
        strata_engine::components::escape_controls(&question)
    ));
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// The person at the terminal said no to a restore.
#[derive(Debug, thiserror::Error)]
#[error("restore cancelled; nothing was changed")]
pub struct Declined;

/// A refusal already reported on stdout (exit 3), the message on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A failure already reported on stdout; only the exit code is left to give.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

fn project(args: &Args) -> Result<Project, Error> {
    let mut project = Project::discover(args.project.as_deref())?;
    project.override_databases(args.db.as_deref(), args.test_db.as_deref())?;
    Ok(project)
}
