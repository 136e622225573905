//! The library's error type: every way a command can end without doing what it was asked.
//!
//! Each variant knows its exit code (see [`crate::core::exit`]) and each message says what went wrong,
//! where, and how to recover. This module owns no behaviour beyond formatting.

use std::fmt;
use std::path::PathBuf;

use crate::core::event::{Action, Phase};
use crate::core::exit;

/// Everything that can stop a strata command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The migrations tree is malformed; every problem found is listed.
    #[error("the migrations tree is malformed:\n{}", list(problems))]
    Tree { problems: Vec<TreeProblem> },

    /// A configuration or input file could not be read or does not parse.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// A wrong argument on the command line.
    #[error("{0}")]
    Usage(String),

    /// Refused for safety; nothing was touched.
    #[error("refused, nothing was changed:\n{}", list(.0))]
    Refused(Vec<Refusal>),

    /// A step failed and was rolled back.
    #[error(transparent)]
    Step(Box<StepFailure>),

    /// The database could not be opened, read or written outside of a step.
    #[error("{}: {context}: {source}", db.display())]
    Database {
        db: PathBuf,
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// A file given as a SQLite database is not one, or is damaged.
    #[error(
        "{}: {context}: this is not a SQLite database, or it is damaged ({source}); check the \
         path (--db, --test-db, strata.toml, the backup named), or put a good copy back \
         (`strata restore`)",
        db.display()
    )]
    NotADatabase {
        db: PathBuf,
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// A PostgreSQL database could not be read or written outside of a step. `db` is the
    /// URL as shown (never with its password); `message` is the server's error as shown (with
    /// its SQLSTATE, detail and hint), `source` the driver's error when there is one (`pg_dump`
    /// and `pg_restore` fail with only their output).
    #[error("{}: {context}: {message}", db.display())]
    Postgres {
        db: PathBuf,
        context: String,
        /// The SQLSTATE, when the server sent one.
        sqlstate: Option<String>,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The database server could not be reached, or it is shutting down or cut the
    /// connection: connection refused, a host name that does not resolve, no answer in time,
    /// SQLSTATE class 08 or 57P01-57P03. Nothing is wrong with the input; run again once the
    /// server answers.
    #[error(
        "{}: {context}: the server is unavailable: {message}\n  hint: is the server up and \
         reachable at that host and port? Check the URL (db/test_db in strata.toml, --db, \
         --test-db) and PGHOST/PGPORT, then run the command again",
        db.display()
    )]
    Unavailable {
        db: PathBuf,
        context: String,
        /// The SQLSTATE, when the server sent one (class 08, 57P0x).
        sqlstate: Option<String>,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// A guest crate did not build into a component.
    #[error("{}: {message}", path.display())]
    Build { path: PathBuf, message: String },

    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Declares [`ErrorKind`] and its list from one table, so the list cannot miss a kind.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        /// What kind of error an [`Error`] is: one per variant, for callers in other crates that
        /// must map every kind (the gRPC service's status codes), which `#[non_exhaustive]` on
        /// [`Error`] would not let them match exhaustively.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$kind,)*];

            /// The kind's name on the wire (`strata.v1.ErrorDetail.kind`).
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)*
                }
            }
        }
    };
}

kinds! {
    /// [`Error::Tree`].
    Tree => "tree",
    /// [`Error::Input`].
    Input => "input",
    /// [`Error::Usage`].
    Usage => "usage",
    /// [`Error::Refused`].
    Refused => "refused",
    /// [`Error::Step`].
    Step => "step",
    /// [`Error::Database`].
    Database => "database",
    /// [`Error::NotADatabase`].
    NotADatabase => "not-a-database",
    /// [`Error::Postgres`].
    Postgres => "postgres",
    /// [`Error::Unavailable`].
    Unavailable => "unavailable",
    /// [`Error::Build`].
    Build => "build",
    /// [`Error::Io`].
    Io => "io",
}

impl Error {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Tree { .. } => ErrorKind::Tree,
            Error::Input { .. } => ErrorKind::Input,
            Error::Usage(_) => ErrorKind::Usage,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Step(_) => ErrorKind::Step,
            Error::Database { .. } => ErrorKind::Database,
            Error::NotADatabase { .. } => ErrorKind::NotADatabase,
            Error::Postgres { .. } => ErrorKind::Postgres,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Build { .. } => ErrorKind::Build,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Tree { .. } | Error::Input { .. } | Error::Usage(_) => exit::BAD_INPUT,
            Error::NotADatabase { .. } => exit::BAD_INPUT,
            Error::Refused(_) => exit::REFUSED,
            Error::Unavailable { .. } => exit::UNAVAILABLE,
            // The server went away during the step (which it rolled back).
            Error::Step(f) if f.code.as_ref().is_some_and(DbCode::is_unavailable) => {
                exit::UNAVAILABLE
            }
            Error::Step(_)
            | Error::Database { .. }
            | Error::Postgres { .. }
            | Error::Io { .. }
            | Error::Build { .. } => exit::FAILURE,
        }
    }

    /// The driver's code for this error, when a database gave one: PostgreSQL's SQLSTATE or
    /// SQLite's extended result code.
    pub fn code(&self) -> Option<DbCode> {
        match self {
            Error::Database { source, .. } | Error::NotADatabase { source, .. } => {
                DbCode::of_sqlite(source)
            }
            Error::Postgres { sqlstate, .. } | Error::Unavailable { sqlstate, .. } => {
                sqlstate.clone().map(DbCode::SqlState)
            }
            Error::Step(f) => f.code.clone(),
            _ => None,
        }
    }

    /// Whether the database server could not be reached; running again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        self.exit_code() == exit::UNAVAILABLE
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A database error outside a step; a lock that did not come free becomes a refusal.
    pub(crate) fn db(
        db: impl Into<PathBuf>,
        context: impl Into<String>,
        source: rusqlite::Error,
    ) -> Self {
        let db = db.into();
        if is_busy(&source) {
            return Error::Refused(vec![Refusal::Locked { db }]);
        }
        if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
        ) {
            return Error::NotADatabase {
                db,
                context: context.into(),
                source,
            };
        }
        Error::Database {
            db,
            context: context.into(),
            source,
        }
    }
}

/// A driver's error kept as the source of one of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The code a database gave an error, for callers that decide by it (retry on a serialization
/// failure, report a unique violation) rather than by the message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbCode {
    /// A PostgreSQL SQLSTATE, five characters: `23505`, `40001`, `08006`.
    SqlState(String),
    /// A SQLite extended result code: `2067` is SQLITE_CONSTRAINT_UNIQUE; its low byte is the
    /// primary code (`19`, SQLITE_CONSTRAINT).
    Sqlite(i32),
}

impl DbCode {
    /// The extended result code of a SQLite error, if SQLite gave one.
    pub fn of_sqlite(e: &rusqlite::Error) -> Option<DbCode> {
        e.sqlite_error().map(|e| DbCode::Sqlite(e.extended_code))
    }

    /// Whether the code says the server cannot serve the connection: SQLSTATE class 08
    /// (connection exception) or 57P01-57P03 (shutting down, crashed, not yet accepting).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbCode::SqlState(s) => {
                s.starts_with("08") || matches!(s.as_str(), "57P01" | "57P02" | "57P03")
            }
            DbCode::Sqlite(_) => false,
        }
    }
}

impl fmt::Display for DbCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbCode::SqlState(s) => write!(f, "SQLSTATE {s}"),
            DbCode::Sqlite(c) => write!(f, "SQLite result code {c}"),
        }
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("  - {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem in the migrations tree, naming the path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeProblem {
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for TreeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// Why a run refuses to start. Each one names the migration and the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// An applied migration's files changed since it was applied.
    Modified {
        db: PathBuf,
        migration: String,
        /// The files that differ, were added or were removed.
        files: Vec<PathBuf>,
        /// Those of `files` that were added since (nothing to check out for them).
        added: Vec<PathBuf>,
    },
    /// A pending migration is older than the newest applied one of its module.
    OutOfOrder {
        db: PathBuf,
        migration: String,
        newest_applied: String,
    },
    /// A file of a migration changed between the validation of the tree and the moment the
    /// run read what it will execute.
    ChangedDuringRun {
        migration: String,
        /// The files that differ, were added or were removed.
        files: Vec<PathBuf>,
    },
    /// A migration recorded as applied has no folder any more.
    Missing { db: PathBuf, migration: String },
    /// Another process held the database longer than the busy timeout.
    Locked { db: PathBuf },
    /// `undo` found, under its lock, migrations applied after the one it was to undo (a run
    /// came in after it chose): undo takes back the newest applied migration first.
    NotNewest {
        db: PathBuf,
        migration: String,
        /// The applied migrations newer than it, oldest first.
        newer: Vec<String>,
    },
    /// A phase found, once it held the run lock, that the ledger changed since the run planned
    /// it (a restore, undo or repair ran while the run waited for the lock, or a run of another
    /// plan applied migrations): it applied nothing.
    ChangedSincePlanned {
        db: PathBuf,
        /// Migrations the plan took as applied that are applied no longer.
        gone: Vec<String>,
        /// Migrations applied since the plan that it did not expect.
        new: Vec<String>,
    },
    /// Generated SQL would drop tables or columns (`diff --sql`, `new --from-diff`).
    Destructive { changes: Vec<String> },
    /// `restore` without a backup named would not undo what the user expects: the last run
    /// changed nothing in the database, or rows changed outside strata since the run the
    /// backup would undo. The message says what and how to go on.
    Restore { db: PathBuf, message: String },
    /// A module's live schema differs from its last applied snapshot.
    Drift {
        db: PathBuf,
        module: String,
        snapshot: PathBuf,
        /// The differences, one per line.
        difference: String,
    },
}

impl Refusal {
    /// The refusal of a command that found, under its lock, that `m` is no longer applied to
    /// `db` as it read it before (undone, restored away, or re-pinned meanwhile).
    pub(crate) fn changed_since_planned(
        db: &std::path::Path,
        m: &crate::core::tree::Migration,
    ) -> Error {
        Error::Refused(vec![Refusal::ChangedSincePlanned {
            db: db.to_path_buf(),
            gone: vec![format!("{}/{}", m.id.module, m.id.stamp)],
            new: Vec::new(),
        }])
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Modified {
                db,
                migration,
                files,
                added,
            } => {
                let show = |list: &[&PathBuf]| {
                    list.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let changed: Vec<&PathBuf> = files.iter().filter(|p| !added.contains(p)).collect();
                let added: Vec<&PathBuf> = files.iter().filter(|p| added.contains(p)).collect();
                write!(
                    f,
                    "{migration} was changed after it was applied to {}:",
                    db.display()
                )?;
                if !changed.is_empty() {
                    write!(
                        f,
                        " {} differ{}",
                        show(&changed),
                        if changed.len() == 1 { "s" } else { "" }
                    )?;
                }
                if !added.is_empty() {
                    write!(
                        f,
                        "{} {} {} added",
                        if changed.is_empty() { "" } else { ";" },
                        show(&added),
                        if added.len() == 1 { "was" } else { "were" }
                    )?;
                }
                write!(f, ". An applied migration is history: ")?;
                match (changed.is_empty(), added.is_empty()) {
                    (false, true) => write!(f, "restore the file (`git checkout -- <file>`)")?,
                    (true, false) => write!(f, "remove the added file")?,
                    _ => write!(
                        f,
                        "restore the changed files (`git checkout -- <file>`), remove the added ones"
                    )?,
                }
                write!(
                    f,
                    " and put the change in a new migration (`strata new <module> <slug>`). If \
                     the change was deliberate and must not run again (a comment, a fix already \
                     made by hand), re-pin it: `strata repair {migration} --yes`."
                )
            }
            Refusal::OutOfOrder {
                db,
                migration,
                newest_applied,
            } => write!(
                f,
                "{migration} is pending on {} but is older than {newest_applied}, which is \
                 already applied. Give it a newer stamp (recreate it with `strata new`), or pass \
                 --allow-out-of-order if running it after the newer one is safe.",
                db.display()
            ),
            Refusal::ChangedDuringRun { migration, files } => {
                let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "{migration} changed while strata was reading it: {} differ{} from what \
                     was validated a moment before. strata runs only the bytes it checksums; \
                     finish editing (or stop the process writing there) and run the command again.",
                    files.join(", "),
                    if files.len() == 1 { "s" } else { "" },
                )
            }
            Refusal::Missing { db, migration } => write!(
                f,
                "{migration} is recorded as applied to {} but its folder is gone. Restore the \
                 folder from version control; applied migrations must stay in the tree.",
                db.display()
            ),
            Refusal::Restore { db, message } => write!(f, "{}: {message}", db.display()),
            Refusal::NotNewest {
                db,
                migration,
                newer,
            } => write!(
                f,
                "{}: cannot undo {migration}: {} applied after it (a run applied it after undo \
                 read the ledger); undo takes back only the newest applied migration, so \
                 {migration} was left applied. Check `strata status` and run `strata undo` \
                 again.",
                db.display(),
                match newer.as_slice() {
                    [one] => format!("{one} was"),
                    many => format!("{} were", many.join(", ")),
                }
            ),
            Refusal::ChangedSincePlanned { db, gone, new } => {
                let mut what = Vec::new();
                if !gone.is_empty() {
                    what.push(format!("{} no longer applied as read", gone.join(", ")));
                }
                if !new.is_empty() {
                    what.push(format!("{} applied meanwhile", new.join(", ")));
                }
                write!(
                    f,
                    "{}: the ledger changed after this run read it ({}): a restore, undo or \
                     repair ran while the run waited for strata's run lock, or another run \
                     applied other migrations. This phase applied nothing; check `strata \
                     status` and run the command again to plan from what is applied now.",
                    db.display(),
                    what.join("; ")
                )
            }
            Refusal::Locked { db } => write!(
                f,
                "{} is locked by another process and did not come free within the busy \
                 timeout. Wait for the other strata or application writer to finish, or raise \
                 busy_timeout_ms in strata.toml.",
                db.display()
            ),
            Refusal::Drift {
                db,
                module,
                snapshot,
                difference,
            } => write!(
                f,
                "module `{module}` on {} has drifted from its last applied snapshot {}:\n{}\n    \
                 Someone changed the database outside strata. Turn the change into a migration \
                 (`strata new {module} <slug> --from-diff`), undo it, or pass --allow-drift to \
                 migrate anyway.",
                db.display(),
                snapshot.display(),
                difference
                    .lines()
                    .map(|l| format!("      {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Refusal::Destructive { changes } => write!(
                f,
                "the generated SQL destroys data: it {}. strata cannot know whether the \
                 databases it will run on hold rows there. If that is what you want, pass \
                 --allow-destructive; if a table or column was renamed, rename it in the SQL \
                 instead.",
                changes.join("; it ")
            ),
        }
    }
}

/// A step that failed and was rolled back: which migration, on which database, at which action,
/// in which file and statement, and what had applied before it in this run.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub phase: Phase,
    pub db: PathBuf,
    /// `module/folder`, for example `accounts/20240105T093000Z-zero`.
    pub migration: String,
    pub action: Action,
    /// The file that failed, relative to the project.
    pub file: Option<PathBuf>,
    /// The failing statement and its 1-based line in `file`, when there is one.
    pub statement: Option<(usize, String)>,
    /// The failing statement's position among the statements of `file`, from 1, when the
    /// failure is a script's statement.
    pub index: Option<usize>,
    pub message: String,
    /// The database's code for the failure, when the database gave one (a statement it
    /// refused); `None` for a failed check, component or data file.
    pub code: Option<DbCode>,
    /// Migrations this run applied to this database before the failure (they stay applied).
    pub applied_before: Vec<String>,
    /// What the rollback did not put back ([`Dialect::kept_by_rollback`]).
    ///
    /// [`Dialect::kept_by_rollback`]: crate::core::input::Dialect::kept_by_rollback
    pub kept_by_rollback: Option<&'static str>,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed during {} on {} ({})",
            self.migration,
            self.action,
            self.db.display(),
            self.phase.database_role()
        )?;
        if let Some(file) = &self.file {
            write!(f, "\n  file: {}", file.display())?;
            if let Some((line, _)) = &self.statement {
                write!(f, ", line {line}")?;
            }
        }
        if let Some((_, sql)) = &self.statement {
            write!(f, "\n  statement: {sql}")?;
        }
        write!(f, "\n  error: {}", self.message.replace('\n', "\n    "))?;
        write!(
            f,
            "\n  The step was rolled back: {} is exactly as it was before {}",
            self.db.display(),
            self.migration
        )?;
        if let Some(kept) = self.kept_by_rollback {
            write!(f, ", except for {kept}")?;
        }
        write!(f, ".")?;
        if !self.applied_before.is_empty() {
            write!(
                f,
                "\n  Applied before the failure in this run: {}.",
                self.applied_before.join(", ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StepFailure {}

impl From<StepFailure> for Error {
    fn from(f: StepFailure) -> Self {
        Error::Step(Box::new(f))
    }
}

/// Whether an error means another connection holds the lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
