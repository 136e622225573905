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

    /// A PostgreSQL database could not be read or written outside of a step. `db` is the
    /// URL as shown (never with its password); `message` is the server's error.
    #[error("{}: {context}: {message}", db.display())]
    Postgres {
        db: PathBuf,
        context: String,
        message: String,
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

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Tree { .. } | Error::Input { .. } | Error::Usage(_) => exit::BAD_INPUT,
            Error::Refused(_) => exit::REFUSED,
            Error::Step(_)
            | Error::Database { .. }
            | Error::Postgres { .. }
            | Error::Io { .. }
            | Error::Build { .. } => exit::FAILURE,
        }
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
            let context = context.into();
            return Error::Input {
                path: db,
                message: format!(
                    "{context}: this is not a SQLite database, or it is damaged ({source}); \
                     check the path (--db, --test-db, strata.toml, the backup named), or put a \
                     good copy back (`strata restore`)"
                ),
            };
        }
        Error::Database {
            db,
            context: context.into(),
            source,
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
    pub message: String,
    /// Migrations this run applied to this database before the failure (they stay applied).
    pub applied_before: Vec<String>,
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
        if crate::core::target::is_url(&self.db) {
            // PostgreSQL never rolls back nextval or setval; strata's bookkeeping uses no sequence.
            write!(
                f,
                ", except for the sequences the step advanced or set, if any"
            )?;
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
