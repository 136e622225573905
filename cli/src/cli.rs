//! Arguments and dispatch: one function per command, each a thin call into the library followed
//! by rendering. No behaviour lives here.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use strata_engine::migrator::{self, MigrateOptions};
use strata_engine::plan::PlanOptions;
use strata_engine::sandbox::Sandbox;
use strata_engine::{Error, Project, design, guest, scaffold, tree};

use crate::render::{self, Output};

#[path = "remote.rs"]
mod remote;

/// strata: migrations, test data and seed data for SQLite in one ordered chain, rehearsed on a
/// test database before they touch the real one.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true)]
pub struct Args {
    /// The project folder (default: the nearest folder upwards holding strata.toml, else the
    /// current folder).
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The real database (default: `db` in strata.toml, else app.db in the project).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The test database (default: `test_db` in strata.toml, else .strata/test.db).
    #[arg(long, global = true, value_name = "PATH")]
    test_db: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print each action of each step.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write strata.toml and an empty migrations folder.
    Init,
    /// Create the next stamped migration folder of a module, with an empty do.sql.
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
    },
    /// Compile guest crates to WebAssembly components and write the .wasm files to commit.
    Build {
        /// A module, or <module>/<migration folder or stamp>; everything when absent.
        selector: Option<String>,
    },
    /// Per module: which migrations are applied, pending, modified or missing, on both databases.
    Status,
    /// The steps `migrate` would run, in order, without running them.
    Plan(RunArgs),
    /// Rehearse pending migrations on the test database, then apply them to the real one.
    Migrate(RunArgs),
    /// CI mode: the whole chain from zero on a throwaway database, with test data, project data,
    /// components and checks; never opens the real or test database. Exit 1 on any failure.
    Sandbox {
        /// Write a JUnit XML report (one testcase per step) to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Rehearse only the pending migrations on a copy of this database (no test data).
        #[arg(long, value_name = "DB")]
        from: Option<PathBuf>,
        /// Stop after the migrations with this stamp, inclusive.
        #[arg(long, value_name = "STAMP", value_parser = parse_stamp)]
        to: Option<String>,
    },
    /// Put a backup back in place of the real database (the latest by default).
    Restore {
        /// A backup file, or its name in .strata/backups/.
        backup: Option<PathBuf>,
        /// Restore the test database instead of the real one.
        #[arg(long)]
        test: bool,
        /// List the backups kept (oldest first) instead of restoring one.
        #[arg(long, conflicts_with = "backup")]
        list: bool,
    },
    /// A module's normalized schema (every module's without a name), from the real database.
    Dump {
        /// The module; all of them if omitted.
        module: Option<String>,
        /// Store it as the newest migration's schema.sql and as LATEST/schema.sql.
        #[arg(long)]
        write: bool,
    },
    /// The live schema of a module against its last snapshot (schema.sql).
    Diff {
        /// The module; all of them if omitted.
        module: Option<String>,
        /// Print the SQLite DDL that turns the snapshot into the live schema.
        #[arg(long)]
        sql: bool,
        /// With --sql: do not refuse (exit 3) when the SQL drops tables or columns.
        #[arg(long, requires = "sql")]
        allow_destructive: bool,
    },
    /// Adopt an existing database: its objects that no module owns become the module's zero
    /// migration, recorded as applied without running it.
    Baseline {
        /// The new module: [a-z][a-z0-9_-]*.
        module: String,
    },
    /// The audit log: every step on the database, with outcome, rows and duration.
    Audit {
        /// Read the test database's log instead of the real one's.
        #[arg(long)]
        test: bool,
        /// Show only the newest N entries.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Serve this project's engine over gRPC (strata.v1) for `--remote` clients and other
    /// services; prints the URL it listens on as the first line of stdout.
    Serve(remote::ServeArgs),
    /// The engine version, the project, its databases and modules (with --remote: the server's).
    Info,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Stop after the migrations with this stamp (YYYYMMDDTHHMMSSZ), inclusive.
    #[arg(long, value_name = "STAMP", value_parser = parse_stamp)]
    to: Option<String>,
    /// Run pending migrations that are older than the newest applied one of their module.
    #[arg(long)]
    allow_out_of_order: bool,
    /// Skip phase 1: apply to the real database without rehearsing on the test database.
    #[arg(long)]
    no_rehearsal: bool,
    /// Also rehearse on a throwaway copy of the real database before the real run.
    #[arg(long)]
    rehearse_on_copy: bool,
    /// Write missing schema.sql snapshots (and LATEST/schema.sql) from the test database.
    #[arg(long)]
    write_snapshots: bool,
    /// Migrate even when a module's live schema drifted from its last applied snapshot.
    #[arg(long)]
    allow_drift: bool,
}

impl RunArgs {
    fn options(&self) -> MigrateOptions {
        MigrateOptions {
            plan: PlanOptions {
                to: self.to.clone(),
                allow_out_of_order: self.allow_out_of_order,
            },
            rehearse: !self.no_rehearsal,
            rehearse_on_copy: self.rehearse_on_copy,
            write_snapshots: self.write_snapshots,
            allow_drift: self.allow_drift,
        }
    }
}

fn parse_stamp(s: &str) -> Result<String, String> {
    tree::parse_stamp(s).map(|_| s.to_string())
}

/// Runs the command the arguments name.
pub fn run(args: Args) -> Result<()> {
    let out = Output::new(args.json, args.quiet, args.verbose);
    let project = project(&args)?;
    if args.remote.remote.is_some() {
        return remote::run(args, &out, &project);
    }
    match args.command {
        Command::Init => out.init(&scaffold::init(&project)?),
        Command::New {
            module,
            slug,
            from_diff: true,
            allow_destructive,
        } => out.adopted(&design::new_from_diff(
            &project,
            &module,
            &slug,
            allow_destructive,
        )?),
        Command::New { module, slug, .. } => {
            out.new_migration(&scaffold::new_migration(&project, &module, &slug)?)
        }
        Command::Build { selector } => {
            let crates = guest::find(&project, selector.as_deref())?;
            let sandbox = Sandbox::new(Some(project.state_dir().join("cache")))
                .map_err(|e| anyhow::anyhow!("cannot start the WebAssembly engine: {e:#}"))?;
            out.build(&guest::build(&project, &crates, &sandbox)?)
        }
        Command::Dump { module, write } => {
            out.dump(&design::dump(&project, module.as_deref(), write)?)
        }
        Command::Diff {
            module,
            sql,
            allow_destructive,
        } => {
            let report = design::diff(&project, module.as_deref(), sql)?;
            let refusal = report.check_destructive(allow_destructive || !sql);
            if !(args.json && refusal.is_err()) {
                out.diff(&report, sql)?;
            }
            Ok(refusal?)
        }
        Command::Baseline { module } => out.adopted(&design::baseline(&project, &module)?),
        Command::Status => out.status(&migrator::status(&project)?),
        Command::Plan(run) => out.plan(&migrator::plan(&project, &run.options())?),
        Command::Migrate(run) => {
            let report =
                migrator::migrate(&project, &run.options(), &mut |e| render::event(&out, e))?;
            out.migrate(&report)
        }
        Command::Sandbox { junit, from, to } => {
            let opts = migrator::SandboxOptions {
                from,
                plan: PlanOptions {
                    to,
                    allow_out_of_order: false,
                },
            };
            let report = migrator::sandbox(&project, &opts, &mut |e| render::event(&out, e))?;
            if let Some(path) = junit {
                std::fs::write(&path, render::junit(&report))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            out.sandbox(&report)?;
            if !report.ok {
                return Err(anyhow::Error::new(Failed("the sandbox run failed".into())));
            }
            Ok(())
        }
        Command::Restore {
            backup: _,
            test,
            list: true,
        } => {
            let db = if test { &project.test_db } else { &project.db };
            remote::print_backups(
                &out,
                db,
                &strata_engine::backup::list(&project.backups_dir(), db)?,
            )
        }
        Command::Restore { backup, test, .. } => {
            let (db, from) = migrator::restore(&project, test, backup.as_deref())?;
            out.restored(&db, &from)
        }
        Command::Audit { test, limit } => {
            let (db, rows) = migrator::audit(&project, test, limit)?;
            out.audit(&db, &rows)
        }
        Command::Serve(serve) => remote::serve(&out, project, &args.remote, serve),
        Command::Info => remote::local_info(&out, &project),
    }
}

/// A failure already reported on stdout; only the exit code is left to give.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

fn project(args: &Args) -> Result<Project, Error> {
    let mut project = Project::discover(args.project.as_deref())?;
    if let Some(db) = &args.db {
        project.db = db.clone();
    }
    if let Some(db) = &args.test_db {
        project.test_db = db.clone();
    }
    Ok(project)
}
