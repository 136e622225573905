//! `strata lint`: findings on the hand-written SQL of migrations (`do.sql`, and `undo.sql` where
//! a migration has one), made without a database.
//!
//! Each statement is split off with the backend's own tokenizer (`crate::core::sql::sqlite` for SQLite,
//! `crate::core::sql::postgres` for PostgreSQL, so lines are those of the file) and parsed with
//! sqlparser in the backend's dialect; the rules walk the AST, never the words. A statement
//! sqlparser cannot parse is reported as a note ([`NOT_LINTED`]), never an error. What a
//! statement does to a table is judged against a model of the schema the chain builds up to it
//! ([`Model`]: tables and their columns, from every earlier migration's `do.sql` in order), so
//! `DROP TABLE x` followed by `ALTER TABLE new_x RENAME TO x` reads as a rebuild and is judged by
//! the columns it loses, and a statement on a table created in the same migration (no rows yet,
//! no one else using it) is not reported.
//!
//! The codes, their severity and their fix are in [`RULES`] (and the book's lint chapter, docs/src/lint.md). A
//! finding is accepted in the migration's `migration.toml` with `[[lint.accept]]` and a reason;
//! `syntax` holds `plan`'s checks against a throwaway database.

pub mod syntax;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, CharacterLength, ColumnOption, DataType,
    ExactNumberInfo, Expr, ObjectName, ObjectType, RenameTableNameKind, Statement, TableConstraint,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::core::config::{Accept, MIGRATION_CONFIG_FILE, Project};
use crate::core::error::Error;
use crate::core::input::Dialect;
use crate::core::tree::{Migration, Tree};

/// A table's columns, with their declared types where they could be read.
type Columns = Vec<(String, Option<DataType>)>;

/// The file name of a migration's optional undo script.
pub const UNDO_FILE: &str = "undo.sql";

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Said for information; never fails a run (a statement that was not linted).
    Note,
    /// May lose data or block the application, depending on the rows or the traffic.
    Warning,
    /// Loses data as written.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One rule: its stable code, what it finds, and the fix the book's lint chapter documents.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub code: &'static str,
    pub severity: Severity,
    pub family: &'static str,
    pub what: &'static str,
    pub fix: &'static str,
}

const DESTRUCTIVE: &str = "destructive";
/// The family of findings whose verdict depends on the rows.
pub const DATA: &str = "data-dependent";
const BACKWARD: &str = "backward-incompatible";
const LOCK: &str = "postgres-lock";

/// The code of a statement that could not be parsed, so was not linted.
pub const NOT_LINTED: &str = "SL000";

/// The code of a statement the database's own parser rejects.
pub const SYNTAX: &str = "SL001";

/// Every rule, in code order.
pub const RULES: &[Rule] = &[
    Rule {
        code: NOT_LINTED,
        severity: Severity::Note,
        family: "not-linted",
        what: "a statement the linter's parser (sqlparser) cannot read, which the database's own parser accepts (SQLite's or PostgreSQL's, checked here); nothing was checked in it",
        fix: "nothing to fix if the database accepts it (the rehearsal runs it); review it by hand",
    },
    Rule {
        code: SYNTAX,
        severity: Severity::Error,
        family: "syntax",
        what: "a statement the database's own parser rejects (SQLite's; PostgreSQL's, libpg_query): a syntax error; it would fail the run",
        fix: "fix the statement; `strata plan` also checks it against the schema the steps before it build",
    },
    Rule {
        code: "SL101",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "DROP TABLE of a table that holds rows",
        fix: "keep the table until no release reads it, or copy its rows elsewhere first; accept with the reason once they are not needed",
    },
    Rule {
        code: "SL102",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "ALTER TABLE ... DROP COLUMN",
        fix: "stop reading and writing the column in one release, drop it in a later one; accept with the reason",
    },
    Rule {
        code: "SL103",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "a table rebuilt (DROP TABLE x, then ALTER TABLE new RENAME TO x) without columns it had",
        fix: "carry every column over into the new table, or accept with the reason the lost columns are not needed",
    },
    Rule {
        code: "SL104",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "a column's type narrowed (bigint to integer, varchar(n) shorter, numeric with less precision, text to varchar(n))",
        fix: "check the longest and largest values first (the rehearsal fails on one that does not fit) or keep the wider type",
    },
    Rule {
        code: "SL105",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "TRUNCATE",
        fix: "delete only the rows meant to go, with a WHERE clause, or accept with the reason",
    },
    Rule {
        code: "SL106",
        severity: Severity::Error,
        family: DESTRUCTIVE,
        what: "DELETE without WHERE: every row of the table",
        fix: "add the WHERE clause meant, or accept with the reason",
    },
    Rule {
        code: "SL201",
        severity: Severity::Warning,
        family: DATA,
        what: "a NOT NULL column added without a default to a table that may hold rows (SQLite refuses it when the table holds a row)",
        fix: "add it with a DEFAULT, or nullable, backfill it, then make it NOT NULL",
    },
    Rule {
        code: "SL202",
        severity: Severity::Warning,
        family: DATA,
        what: "a UNIQUE index or constraint (or primary key) added over existing rows: fails on duplicates",
        fix: "remove the duplicates in the same migration before the index, and let the rehearsal's rows prove it",
    },
    Rule {
        code: "SL203",
        severity: Severity::Warning,
        family: DATA,
        what: "a CHECK constraint added over existing rows: fails on a row that breaks it",
        fix: "fix the rows first in the same migration; on PostgreSQL add it NOT VALID, then VALIDATE CONSTRAINT",
    },
    Rule {
        code: "SL204",
        severity: Severity::Warning,
        family: DATA,
        what: "SET NOT NULL over existing rows: fails on a NULL",
        fix: "backfill the NULLs first in the same migration",
    },
    Rule {
        code: "SL205",
        severity: Severity::Warning,
        family: DATA,
        what: "a FOREIGN KEY added over existing rows: fails on an orphan row",
        fix: "delete or fix the orphans first; on PostgreSQL add it NOT VALID, then VALIDATE CONSTRAINT",
    },
    Rule {
        code: "SL301",
        severity: Severity::Warning,
        family: BACKWARD,
        what: "a table renamed: the release still running reads the old name until it is replaced",
        fix: "create the new table (or a view under the old name) and move readers over a release, or accept when the application is stopped during the migration",
    },
    Rule {
        code: "SL302",
        severity: Severity::Warning,
        family: BACKWARD,
        what: "a column renamed: the release still running reads the old name until it is replaced",
        fix: "add the new column, write both, backfill, then drop the old one in a later release; or accept when the application is stopped",
    },
    Rule {
        code: "SL401",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: CREATE INDEX without CONCURRENTLY takes a SHARE lock: writes to the table wait until it is built",
        fix: "on a large, busy table build it with CREATE INDEX CONCURRENTLY outside strata's transaction (by hand or a job) and keep IF NOT EXISTS here; accept for a small table",
    },
    Rule {
        code: "SL402",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: ALTER COLUMN TYPE takes an ACCESS EXCLUSIVE lock and rewrites the table (and its indexes) unless the change is binary-coercible",
        fix: "add a new column of the new type, backfill it in batches, switch over; accept for a small table",
    },
    Rule {
        code: "SL403",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: ADD COLUMN with a volatile default (random(), clock_timestamp(), gen_random_uuid(), serial, a stored generated column) rewrites the table under an ACCESS EXCLUSIVE lock",
        fix: "add the column without the default (or with a constant one), set the default after, backfill in batches",
    },
    Rule {
        code: "SL404",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: ADD CONSTRAINT without NOT VALID scans the whole table under lock (a UNIQUE or PRIMARY KEY builds its index under ACCESS EXCLUSIVE)",
        fix: "CHECK or FOREIGN KEY: add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (a weaker lock); UNIQUE: build the index CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX",
    },
    Rule {
        code: "SL405",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
        fix: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan), then drop the check",
    },
    Rule {
        code: "SL406",
        severity: Severity::Warning,
        family: LOCK,
        what: "PostgreSQL: VACUUM FULL or CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock (and VACUUM cannot run inside a migration's transaction at all)",
        fix: "run it by hand in a maintenance window, or use pg_repack; not in a migration",
    },
    Rule {
        code: "SL407",
        severity: Severity::Error,
        family: "transaction",
        what: "SQLite: VACUUM, which cannot run inside the transaction each migration runs in",
        fix: "run VACUUM by hand outside strata (after `strata migrate`), not in a migration",
    },
    Rule {
        code: "SL409",
        severity: Severity::Error,
        family: "server-wide",
        what: "PostgreSQL: a statement that changes the whole server, not the database (roles, a database by its name, tablespaces, ALTER SYSTEM, and grants, comments, renames or owners of those), which the run refuses: the rehearsal on the test database of the same server would do it for real first",
        fix: "do it once per server, by hand or with your provisioning, outside strata; keep the migrations to what lives in the database",
    },
    Rule {
        code: "SL408",
        severity: Severity::Error,
        family: "other-database",
        what: "SQLite: ATTACH of a database file for writing, which the run refuses: what the migration changed there would be outside strata's backup, restore and undo, and the rehearsal would change the same file first (in-memory and temporary databases, and files attached read-only, are allowed); or of one of the project's own databases even read-only (the real or test database, a backup, a control database, in any spelling)",
        fix: "attach it read-only to read from it (`ATTACH 'file:legacy.db?mode=ro' AS legacy`); change the other database with its own migrations",
    },
];

/// The rule with `code`.
pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}

impl Accept {
    fn matches(&self, f: &Finding) -> bool {
        self.code.eq_ignore_ascii_case(&f.code)
            && self.line.is_none_or(|l| l == f.line)
            && self.file.as_deref().is_none_or(|file| {
                f.file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy() == file)
            })
            && self.object.as_deref().is_none_or(|o| {
                f.object.as_deref().is_some_and(|fo| {
                    fo.eq_ignore_ascii_case(o)
                        || fo
                            .split('.')
                            .next()
                            .is_some_and(|t| t.eq_ignore_ascii_case(o))
                })
            })
    }
}

/// One finding on one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub family: String,
    /// `module/folder`.
    pub migration: String,
    pub file: PathBuf,
    /// The statement's first line in the file, from 1.
    pub line: usize,
    /// The statement on one line, shortened if long.
    pub statement: String,
    /// The table, or `table.column`, the finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
    pub fix: String,
    /// The reason given in migration.toml when the finding is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
    /// The statement's position among its file's statements, from 1: with `file`, what a
    /// failed step is matched against.
    #[serde(skip)]
    pub index: usize,
    /// What a run's rows said of a data-dependent finding (see [`Verdicts`]); `None` when no
    /// rehearsal or sandbox ran its statement (always for `strata lint`) and for the other
    /// families.
    pub verdict: Option<Verdict>,
    /// The rows the finding's table held when its statement ran in that run, counted up to
    /// [`crate::core::step::PROBE_LIMIT`] (that number means at least as many); `None` without
    /// a verdict, or when the statement failed before they were counted.
    pub rows: Option<u64>,
}

/// What the rows of a rehearsal or sandbox said of a data-dependent finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The table had no rows when the statement ran: an empty table proves nothing.
    NotTested,
    /// The statement ran over rows of its table without a failure: ruled out for those rows.
    RuledOut,
    /// The step failed on this very statement (its file and position).
    Confirmed,
}

impl Finding {
    /// Whether it fails `strata lint` (and `--strict` runs): not accepted, and more than a note.
    pub fn fails(&self) -> bool {
        self.accepted.is_none() && self.severity > Severity::Note
    }
}

/// An `[[lint.accept]]` that matched no finding: stale, or a typo in its line or object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedAccept {
    pub migration: String,
    pub file: PathBuf,
    pub code: String,
}

/// What `strata lint` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintReport {
    /// `module/folder` of each migration linted, in order.
    pub migrations: Vec<String>,
    pub findings: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unused_accepts: Vec<UnusedAccept>,
    /// Whether no finding fails the run.
    pub ok: bool,
}

impl LintReport {
    /// The part of the report on the migrations `labels` names (`module/folder`).
    pub fn only(&self, labels: &[String]) -> LintReport {
        let findings: Vec<Finding> = self
            .findings
            .iter()
            .filter(|f| labels.contains(&f.migration))
            .cloned()
            .collect();
        LintReport {
            migrations: self
                .migrations
                .iter()
                .filter(|m| labels.contains(m))
                .cloned()
                .collect(),
            ok: !findings.iter().any(Finding::fails),
            findings,
            unused_accepts: self
                .unused_accepts
                .iter()
                .filter(|u| labels.contains(&u.migration))
                .cloned()
                .collect(),
        }
    }

    /// The findings that fail the run.
    pub fn failing(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.fails())
    }
}

/// The statements of `report`'s data-dependent findings in a `do.sql`, by migration
/// (`module/folder`), as probes: a rehearsal or sandbox given them counts each table's rows
/// before the statement runs ([`crate::core::step::Probe`]), which [`Verdicts`] reads.
pub fn probes(report: &LintReport) -> HashMap<String, Vec<crate::core::step::Probe>> {
    let mut probes: HashMap<String, Vec<crate::core::step::Probe>> = HashMap::new();
    for f in &report.findings {
        if f.family != DATA || f.file.file_name().is_none_or(|n| n != "do.sql") {
            continue;
        }
        let Some(table) = f.object.as_deref().and_then(|o| o.split('.').next()) else {
            continue;
        };
        let probe = crate::core::step::Probe {
            index: f.index,
            line: f.line,
            table: table.to_string(),
        };
        let list = probes.entry(f.migration.clone()).or_default();
        if !list.contains(&probe) {
            list.push(probe);
        }
    }
    probes
}

/// Which run's rows counted, as a verdict names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// `migrate`'s rehearsal on the test database (its earlier steps' test and project data).
    Rehearsal,
    /// `migrate --rehearse-on-copy`: a copy of the real database.
    RehearsalOnCopy,
    /// `strata sandbox` from an empty database (the earlier steps' test and project data).
    Sandbox,
    /// `strata sandbox --from` a copy.
    SandboxFrom,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Rehearsal | Run::RehearsalOnCopy => "the rehearsal",
            Run::Sandbox | Run::SandboxFrom => "the sandbox",
        }
    }

    /// The database its rows were in.
    fn on(self) -> &'static str {
        match self {
            Run::Rehearsal => "the test database",
            Run::RehearsalOnCopy => "a copy of the real database",
            Run::Sandbox => "the sandbox's database",
            Run::SandboxFrom => "a copy of the `--from` database",
        }
    }

    /// Where its rows came from, and how to try real ones when they are test rows.
    fn rows(self) -> &'static str {
        match self {
            Run::Rehearsal => {
                " (the earlier steps' test and project data; `strata migrate --rehearse-on-copy` \
                 tries the real ones)"
            }
            Run::Sandbox => {
                " (the earlier steps' test and project data; `strata sandbox --from` a copy of \
                 production tries real ones)"
            }
            Run::RehearsalOnCopy | Run::SandboxFrom => "",
        }
    }
}

/// A statement of a step that failed in a run that judges (not the real database's).
#[derive(Debug, Clone)]
struct FailedStatement {
    migration: String,
    file: PathBuf,
    index: usize,
    run: Run,
}

/// What a rehearsal or `strata sandbox` showed of the rows under data-dependent findings, from
/// its events ([`Event::TableRows`](crate::core::event::Event::TableRows), counted before each
/// probed statement: see [`probes`]) and its failed step; then [`Verdicts::judge`] gives each
/// such finding its verdict. Only the statement's own rows count: a finding is confirmed when
/// the statement that failed is its own (same file, same position), ruled out when its table
/// had rows when it ran, and not tested when the table was empty then.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// The real run's test database, to tell its rehearsal from one on a copy.
    test_db: Option<PathBuf>,
    /// For a sandbox: whether it started from a copy (`--from`).
    sandbox_from: bool,
    /// The run of the phase under way.
    current: Option<Run>,
    /// `(migration, index, line)` → the rows counted there, by which run.
    counted: HashMap<(String, usize, usize), (u64, Run, String)>,
    failed: Option<FailedStatement>,
}

impl Verdicts {
    /// For `migrate` (and its rehearsals) on a project whose test database is `test_db`.
    pub fn for_migrate(test_db: PathBuf) -> Self {
        Verdicts {
            test_db: Some(test_db),
            sandbox_from: false,
            current: None,
            counted: HashMap::new(),
            failed: None,
        }
    }

    /// For `strata sandbox` (`from`: it starts from a copy).
    pub fn for_sandbox(from: bool) -> Self {
        Verdicts {
            test_db: None,
            sandbox_from: from,
            current: None,
            counted: HashMap::new(),
            failed: None,
        }
    }

    /// Reads one event of the run.
    pub fn event(&mut self, e: &crate::core::event::Event<'_>) {
        use crate::core::event::{Event, Phase};
        match e {
            Event::PhaseStarted { phase, db, .. } => {
                self.current = match phase {
                    Phase::Rehearsal if self.test_db.as_deref() == Some(*db) => {
                        Some(Run::Rehearsal)
                    }
                    Phase::Rehearsal => Some(Run::RehearsalOnCopy),
                    Phase::Sandbox if self.sandbox_from => Some(Run::SandboxFrom),
                    Phase::Sandbox => Some(Run::Sandbox),
                    Phase::Apply | Phase::Restore => None,
                };
            }
            Event::TableRows {
                phase,
                migration,
                index,
                line,
                table,
                rows,
            } if *phase != Phase::Apply => {
                let Some(run) = self.current else { return };
                let key = (migration.label(), *index, *line);
                // Over several runs (the test database, then a copy), the most rows say most.
                if self.counted.get(&key).is_none_or(|(n, _, _)| *rows >= *n) {
                    self.counted.insert(key, (*rows, run, table.to_string()));
                }
            }
            _ => {}
        }
    }

    /// The run's failed step, if it failed in a phase that judges (a step of the real
    /// database's phase proves nothing here: its rows are not test rows, and it is done).
    pub fn failure(&mut self, f: &crate::core::error::StepFailure) {
        self.failed_at(&f.migration, f.phase, f.file.as_deref(), f.index);
    }

    /// A sandbox step that failed, from its report.
    pub fn sandbox_failure(&mut self, step: &crate::commands::migrate::SandboxStep) {
        if let Some(at) = &step.failed_at {
            let label = format!("{}/{}", step.module, step.migration);
            self.failed_at(
                &label,
                crate::core::event::Phase::Sandbox,
                Some(&at.file),
                Some(at.index),
            );
        }
    }

    fn failed_at(
        &mut self,
        migration: &str,
        phase: crate::core::event::Phase,
        file: Option<&Path>,
        index: Option<usize>,
    ) {
        use crate::core::event::Phase;
        let run = match phase {
            Phase::Rehearsal | Phase::Sandbox => self.current,
            Phase::Apply | Phase::Restore => None,
        };
        if let (Some(run), Some(file), Some(index)) = (run, file, index) {
            self.failed = Some(FailedStatement {
                migration: migration.to_string(),
                file: file.to_path_buf(),
                index,
                run,
            });
        }
    }

    /// Gives each data-dependent finding of `report` on a statement the run reached its
    /// verdict (in place of "the rehearsal confirms or rules it out"), with the rows counted.
    pub fn judge(&self, report: &mut LintReport) {
        for f in &mut report.findings {
            if f.family != DATA {
                continue;
            }
            let counted = self.counted.get(&(f.migration.clone(), f.index, f.line));
            let table = f
                .object
                .as_deref()
                .and_then(|o| o.split('.').next())
                .unwrap_or("the table");
            let rows_of = |n: u64| {
                let many = if n >= crate::core::step::PROBE_LIMIT {
                    "at least "
                } else {
                    ""
                };
                format!(
                    "{many}{n} row{} of `{table}`",
                    if n == 1 { "" } else { "s" }
                )
            };
            let own_failure = self
                .failed
                .as_ref()
                .filter(|x| x.migration == f.migration && x.file == f.file && x.index == f.index);
            let (verdict, said) = if let Some(x) = own_failure {
                let over = match counted {
                    Some((n, _, _)) => format!(", over {}", rows_of(*n)),
                    None => String::new(),
                };
                (
                    Verdict::Confirmed,
                    format!(
                        "confirmed: {}'s step failed on this statement{over} on {}",
                        x.run.name(),
                        x.run.on()
                    ),
                )
            } else if let Some((n, run, _)) = counted {
                if *n == 0 {
                    (
                        Verdict::NotTested,
                        format!(
                            "not tested: `{table}` had no rows in {} (an empty table proves \
                             nothing; rows for it in an earlier migration's test-data/ would \
                             test it)",
                            run.name()
                        ),
                    )
                } else {
                    (
                        Verdict::RuledOut,
                        format!(
                            "{} ran it over {} on {} without a failure: ruled out for those \
                             rows only{}",
                            run.name(),
                            rows_of(*n),
                            run.on(),
                            run.rows()
                        ),
                    )
                }
            } else {
                continue;
            };
            f.message = match f.message.strip_suffix(RUN_CONFIRMS) {
                Some(base) => format!("{base}{said}"),
                None => format!("{}; {said}", f.message),
            };
            f.rows = counted.map(|(n, _, _)| *n);
            f.verdict = Some(verdict);
        }
    }
}

/// Which migrations to lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those not applied to the real database (all of them when it does not exist).
    Pending,
    /// Every migration of the tree.
    All,
}

/// The dialect of the project's migrations, from the real database's value.
pub fn dialect_of(project: &Project) -> Dialect {
    if project.db.is_server() {
        Dialect::Postgres
    } else {
        Dialect::Sqlite
    }
}

/// `strata lint`: the migrations `scope` names, linted in chain order. Opens the real database
/// only to read its ledger for [`Scope::Pending`].
pub fn lint_project(project: &Project, scope: Scope) -> Result<LintReport, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let selected: Vec<&Migration> = match scope {
        Scope::All => tree.migrations.iter().collect(),
        Scope::Pending => {
            let applied = crate::commands::migrate::read_applied(project, &project.db)?;
            let done: HashSet<_> = applied.iter().map(|a| &a.id).collect();
            tree.migrations
                .iter()
                .filter(|m| !done.contains(&m.id))
                .collect()
        }
    };
    let own = crate::core::identity::Reserved::databases_of(project);
    lint_migrations(&tree, &selected, dialect_of(project), Some(&own))
}

/// Lints `selected` (migrations of `tree`, in its order); the earlier migrations of the tree
/// only feed the schema model. `own`: the project's databases, which a SQLite script may not
/// attach even read-only (SL408).
pub fn lint_migrations(
    tree: &Tree,
    selected: &[&Migration],
    dialect: Dialect,
    own: Option<&crate::core::identity::Reserved>,
) -> Result<LintReport, Error> {
    let wanted: HashSet<_> = selected.iter().map(|m| &m.id).collect();
    let mut model = Model::default();
    let mut report = LintReport::default();
    for m in &tree.migrations {
        let do_path = m.file("do.sql");
        if !wanted.contains(&m.id) {
            // Only the model: an unreadable file is the run's to report, not the linter's.
            if let Ok(Some(text)) =
                crate::core::input::read_project_text(&do_path, crate::core::input::FILE_BYTES)
            {
                let mut sink = Vec::new();
                lint_file(dialect, &m.label(), &do_path, &text, &mut model, &mut sink);
            }
            continue;
        }
        let config = crate::core::config::MigrationConfig::load(&m.dir)?;
        let accepts = &config.lint.accept;
        check_accepts(&m.file(MIGRATION_CONFIG_FILE), accepts)?;
        let mut found = Vec::new();
        let label = m.label();
        let mut made = Made::default();
        if let Some(text) = read_optional(&do_path)? {
            lint_file_made(
                dialect, &label, &do_path, &text, &mut model, &mut found, &mut made,
            );
            if let (Dialect::Sqlite, Some(own)) = (dialect, own) {
                own_attachments(&label, &do_path, &text, own, &mut found);
            }
        }
        let undo_path = m.file(UNDO_FILE);
        if let Some(text) = read_optional(&undo_path)? {
            // The undo runs against the schema the step made, and taking back what the step
            // made (dropping its tables and columns, renaming back what it renamed) is what an
            // undo is for: only what the step found there is judged.
            let mut after = model.clone();
            lint_file_made(
                dialect, &label, &undo_path, &text, &mut after, &mut found, &mut made,
            );
        }
        let mut used = vec![false; accepts.len()];
        for f in &mut found {
            if let Some(i) = accepts.iter().position(|a| a.matches(f)) {
                used[i] = true;
                f.accepted = Some(accepts[i].reason.trim().to_string());
            }
        }
        for (a, used) in accepts.iter().zip(used) {
            if !used {
                report.unused_accepts.push(UnusedAccept {
                    migration: m.label(),
                    file: m.file(MIGRATION_CONFIG_FILE),
                    code: a.code.clone(),
                });
            }
        }
        report.migrations.push(m.label());
        report.findings.extend(found);
    }
    report.ok = !report.findings.iter().any(Finding::fails);
    Ok(report)
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match crate::core::input::read_project_file(path, crate::core::input::FILE_BYTES)? {
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| Error::input(path, "is not UTF-8 text; save it as UTF-8")),
        None => Ok(None),
    }
}

/// Refuses an accept without a reason or with a code no rule has (exit 2).
fn check_accepts(path: &Path, accepts: &[Accept]) -> Result<(), Error> {
    for a in accepts {
        if a.reason.trim().is_empty() {
            return Err(Error::input(
                path,
                format!(
                    "[[lint.accept]] code = \"{}\" has an empty reason: say why the finding is \
                     acceptable (reason = \"the column was unused since v3\")",
                    a.code
                ),
            ));
        }
        if rule(&a.code.to_ascii_uppercase()).is_none() {
            let mut codes: Vec<&str> = RULES.iter().map(|r| r.code).collect();
            codes.sort_unstable();
            return Err(Error::input(
                path,
                format!(
                    "[[lint.accept]] code = \"{}\" is not a lint code; the codes are {}",
                    a.code,
                    codes.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A statement of a script: its text, first line, and the parse (when sqlparser can read it).
struct Parsed {
    line: usize,
    /// The statement's position among its file's statements, from 1 (a trigger body's
    /// statements: the trigger's).
    index: usize,
    /// The statement as written.
    text: String,
    one_line: String,
    ast: Option<Statement>,
    /// The first words, upper-cased, when it did not parse (for the few rules that apply).
    words: Vec<String>,
}

/// The statements of `text` with their lines, split with the backend's own tokenizer; none when
/// it cannot be read at all (the run reports that, with its line).
fn split(dialect: Dialect, path: &Path, text: &str) -> Vec<(usize, String)> {
    match dialect {
        Dialect::Postgres => crate::core::sql::postgres::statements(path, text)
            .map(|s| s.into_iter().map(|s| (s.line, s.text)).collect())
            .unwrap_or_default(),
        Dialect::Sqlite => crate::core::sql::sqlite::statements(text)
            .map(|stmts| {
                stmts
                    .into_iter()
                    .filter_map(|tokens| {
                        let (first, last) = (tokens.first()?, tokens.last()?);
                        let line = text[..first.start].matches('\n').count() + 1;
                        Some((line, text[first.start..last.end].to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn parse(dialect: Dialect, line: usize, text: &str) -> Parsed {
    let d: Box<dyn SqlDialect> = match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    };
    let ast = match Parser::parse_sql(&*d, text) {
        Ok(mut v) if v.len() == 1 => v.pop(),
        _ if dialect == Dialect::Sqlite => without_table_options(&*d, text),
        _ => None,
    };
    let words = {
        sqlparser::tokenizer::Tokenizer::new(&*d, text)
            .tokenize()
            .map(|toks| {
                toks.into_iter()
                    .filter_map(|t| match t {
                        sqlparser::tokenizer::Token::Word(w) if w.quote_style.is_none() => {
                            Some(w.value.to_ascii_uppercase())
                        }
                        sqlparser::tokenizer::Token::Whitespace(_) => None,
                        _ => Some(String::new()),
                    })
                    .take(8)
                    .collect()
            })
            .unwrap_or_default()
    };
    Parsed {
        line,
        index: 0,
        text: text.to_string(),
        one_line: crate::core::sql::one_line(text),
        ast,
        words,
    }
}

/// A SQLite `CREATE TABLE` parsed without its table options (`STRICT`, `WITHOUT ROWID`, which
/// sqlparser does not read): the tokens after the last `)` are dropped when they are only those.
fn without_table_options(d: &dyn SqlDialect, text: &str) -> Option<Statement> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let mut tokens = Tokenizer::new(d, text).tokenize().ok()?;
    let close = tokens.iter().rposition(|t| *t == Token::RParen)?;
    let mut options = false;
    for t in &tokens[close + 1..] {
        match t {
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(
                        w.value.to_ascii_uppercase().as_str(),
                        "STRICT" | "WITHOUT" | "ROWID"
                    ) =>
            {
                options = true
            }
            Token::Comma | Token::Whitespace(_) | Token::SemiColon => {}
            _ => return None,
        }
    }
    if !options {
        return None;
    }
    tokens.truncate(close + 1);
    let mut v = Parser::new(d).with_tokens(tokens).parse_statements().ok()?;
    match v.pop() {
        Some(s @ Statement::CreateTable(_)) if v.is_empty() => Some(s),
        _ => None,
    }
}

/// What the chain has built so far: each table's columns and their declared types
/// (lower-cased names; `None` for a table whose columns are not known, as one made by
/// `CREATE TABLE ... AS SELECT`).
#[derive(Debug, Clone, Default)]
pub struct Model {
    tables: HashMap<String, Option<Columns>>,
    /// Each table's constraints as the chain declared them (for a rebuild that adds one).
    constraints: HashMap<String, BTreeSet<Constraint>>,
}

/// What a constraint makes the rows obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Holds {
    NotNull,
    Unique,
    Check,
    ForeignKey,
}

/// One constraint of a table: what it holds, and its columns or expression as text (lower
/// case, blanks collapsed; a foreign key as `columns -> table`).
type Constraint = (Holds, String);

fn normalized(text: impl std::fmt::Display) -> String {
    text.to_string()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The constraints one column's options declare.
fn column_constraints(column: &str, options: &[&ColumnOption]) -> Vec<Constraint> {
    options
        .iter()
        .filter_map(|o| match o {
            ColumnOption::NotNull => Some((Holds::NotNull, column.to_string())),
            ColumnOption::Unique { .. } => Some((Holds::Unique, column.to_string())),
            ColumnOption::Check(e) => Some((Holds::Check, normalized(e))),
            ColumnOption::ForeignKey { foreign_table, .. } => Some((
                Holds::ForeignKey,
                format!("{column} -> {}", table_name(foreign_table)),
            )),
            _ => None,
        })
        .collect()
}

/// The constraint a table constraint declares (`None` for one no rule looks at).
fn table_constraint(c: &TableConstraint) -> Option<Constraint> {
    let columns = |cols: &[sqlparser::ast::IndexColumn]| {
        cols.iter().map(normalized).collect::<Vec<_>>().join(", ")
    };
    match c {
        TableConstraint::Unique { columns: c, .. }
        | TableConstraint::PrimaryKey { columns: c, .. } => Some((Holds::Unique, columns(c))),
        TableConstraint::Check { expr, .. } => Some((Holds::Check, normalized(expr))),
        TableConstraint::ForeignKey {
            columns,
            foreign_table,
            ..
        } => Some((
            Holds::ForeignKey,
            format!(
                "{} -> {}",
                columns
                    .iter()
                    .map(|c| ident(&c.value))
                    .collect::<Vec<_>>()
                    .join(", "),
                table_name(foreign_table)
            ),
        )),
        _ => None,
    }
}

/// The constraints a `CREATE TABLE` declares.
fn create_constraints(ct: &sqlparser::ast::CreateTable) -> BTreeSet<Constraint> {
    let mut all = BTreeSet::new();
    for c in &ct.columns {
        let options: Vec<&ColumnOption> = c.options.iter().map(|o| &o.option).collect();
        all.extend(column_constraints(&ident(&c.name.value), &options));
    }
    all.extend(ct.constraints.iter().filter_map(table_constraint));
    all
}

impl Model {
    fn columns(&self, table: &str) -> Option<&Vec<(String, Option<DataType>)>> {
        self.tables.get(table).and_then(|c| c.as_ref())
    }

    fn column_type(&self, table: &str, column: &str) -> Option<&DataType> {
        self.columns(table)?
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, t)| t.as_ref())
    }

    /// Whether the model knows `table` with its columns.
    pub fn has_table(&self, table: &str) -> Option<Vec<String>> {
        self.columns(table)
            .map(|cols| cols.iter().map(|(c, _)| c.clone()).collect())
    }

    fn apply(&mut self, s: &Statement) {
        match s {
            Statement::CreateTable(ct) => {
                let cols = if ct.query.is_some() {
                    None
                } else {
                    Some(
                        ct.columns
                            .iter()
                            .map(|c| {
                                let t = (c.data_type != DataType::Unspecified)
                                    .then(|| c.data_type.clone());
                                (ident(&c.name.value), t)
                            })
                            .collect(),
                    )
                };
                self.tables.insert(table_name(&ct.name), cols);
                self.constraints
                    .insert(table_name(&ct.name), create_constraints(ct));
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for n in names {
                    self.tables.remove(&table_name(n));
                    self.constraints.remove(&table_name(n));
                }
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.rename(&table_name(&r.old_name), &table_name(&r.new_name));
                }
            }
            Statement::AlterTable {
                name, operations, ..
            } => {
                for (table, op) in alter_ops(name, operations) {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            if let Some(Some(cols)) = self.tables.get_mut(&table) {
                                let t = (column_def.data_type != DataType::Unspecified)
                                    .then(|| column_def.data_type.clone());
                                cols.push((ident(&column_def.name.value), t));
                            }
                            let options: Vec<&ColumnOption> =
                                column_def.options.iter().map(|o| &o.option).collect();
                            self.constraints.entry(table.clone()).or_default().extend(
                                column_constraints(&ident(&column_def.name.value), &options),
                            );
                        }
                        AlterTableOperation::AddConstraint { constraint, .. } => {
                            if let Some(c) = table_constraint(constraint) {
                                self.constraints.entry(table.clone()).or_default().insert(c);
                            }
                        }
                        AlterTableOperation::AlterColumn {
                            column_name,
                            op: AlterColumnOperation::SetNotNull,
                        } => {
                            self.constraints
                                .entry(table.clone())
                                .or_default()
                                .insert((Holds::NotNull, ident(&column_name.value)));
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            if let Some(Some(cols)) = self.tables.get_mut(&table) {
                                let gone: HashSet<String> =
                                    column_names.iter().map(|c| ident(&c.value)).collect();
                                cols.retain(|(c, _)| !gone.contains(c));
                            }
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name,
                            new_column_name,
                        } => {
                            let old = ident(&old_column_name.value);
                            let new = ident(&new_column_name.value);
                            if let Some(Some(cols)) = self.tables.get_mut(&table) {
                                for (c, _) in cols.iter_mut() {
                                    if *c == old {
                                        *c = new.clone();
                                    }
                                }
                            }
                            if let Some(set) = self.constraints.get_mut(&table) {
                                for holds in [Holds::NotNull, Holds::Unique] {
                                    if set.remove(&(holds, old.clone())) {
                                        set.insert((holds, new.clone()));
                                    }
                                }
                            }
                        }
                        AlterTableOperation::RenameTable {
                            table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
                        } => self.rename(&table, &table_name(n)),
                        AlterTableOperation::AlterColumn {
                            column_name,
                            op: AlterColumnOperation::SetDataType { data_type, .. },
                        } => {
                            if let Some(Some(cols)) = self.tables.get_mut(&table) {
                                let name = ident(&column_name.value);
                                for (c, t) in cols.iter_mut() {
                                    if *c == name {
                                        *t = Some(data_type.clone());
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn rename(&mut self, from: &str, to: &str) {
        if let Some(cols) = self.tables.remove(from) {
            self.tables.insert(to.to_string(), cols);
        }
        if let Some(c) = self.constraints.remove(from) {
            self.constraints.insert(to.to_string(), c);
        }
    }
}

fn ident(s: &str) -> String {
    s.to_lowercase()
}

/// A table's name without its schema, lower-cased.
fn table_name(n: &ObjectName) -> String {
    n.0.last()
        .and_then(|p| p.as_ident())
        .map(|i| ident(&i.value))
        .unwrap_or_else(|| n.to_string().to_lowercase())
}

/// What a migration's `do.sql` made, which its `undo.sql` may take back without a finding:
/// the tables it created (no rows before the step), the columns it added to tables that were
/// there, and the renames it made (`(table, old, new)`; a table's column empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct Made {
    tables: HashSet<String>,
    columns: HashSet<(String, String)>,
    renames: HashSet<(String, String, String)>,
}

impl Made {
    /// Whether renaming `old` to `new` (on `table`, or a table when `table` is empty) takes
    /// back a rename the step made.
    fn renames_back(&self, table: &str, old: &str, new: &str) -> bool {
        self.renames
            .contains(&(table.to_string(), new.to_string(), old.to_string()))
    }

    /// Records what `ast` made on tables that were there before the file (`created` is false).
    fn record(&mut self, ast: &Statement) {
        match ast {
            Statement::CreateTable(ct) => {
                self.tables.insert(table_name(&ct.name));
            }
            Statement::AlterTable {
                name, operations, ..
            } => {
                for (t, op) in alter_ops(name, operations) {
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            self.columns
                                .insert((t.clone(), ident(&column_def.name.value)));
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name,
                            new_column_name,
                        } => {
                            let (o, n) =
                                (ident(&old_column_name.value), ident(&new_column_name.value));
                            if self.columns.remove(&(t.clone(), o.clone())) {
                                self.columns.insert((t.clone(), n));
                            } else {
                                self.renames.insert((t.clone(), o, n));
                            }
                        }
                        AlterTableOperation::RenameTable {
                            table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
                        } => self.rename_table(&t, &table_name(n)),
                        _ => {}
                    }
                }
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.rename_table(&table_name(&r.old_name), &table_name(&r.new_name));
                }
            }
            _ => {}
        }
    }

    fn rename_table(&mut self, from: &str, to: &str) {
        if self.tables.remove(from) {
            self.tables.insert(to.to_string());
        } else {
            self.renames
                .insert((String::new(), from.to_string(), to.to_string()));
        }
        self.move_columns(from, to);
    }

    /// The columns the step added to `from`, recorded for `to` as well.
    fn copy_columns(&mut self, from: &str, to: &str) {
        let columns: Vec<String> = self
            .columns
            .iter()
            .filter(|(t, _)| t == from)
            .map(|(_, c)| c.clone())
            .collect();
        for c in columns {
            self.columns.insert((to.to_string(), c));
        }
    }

    /// The columns the step added to `from`, now `to`'s.
    fn move_columns(&mut self, from: &str, to: &str) {
        self.copy_columns(from, to);
        self.columns.retain(|(t, _)| t != from);
    }
}

/// Lints one file of one migration (`label`), updating `model` as its statements run; returns
/// how many statements could not be parsed.
pub(crate) fn lint_file(
    dialect: Dialect,
    label: &str,
    path: &Path,
    text: &str,
    model: &mut Model,
    out: &mut Vec<Finding>,
) -> usize {
    lint_file_made(dialect, label, path, text, model, out, &mut Made::default())
}

/// [`lint_file`], where what `made` holds (what the migration's `do.sql` made, for its
/// `undo.sql`) is not judged, and what the file makes is added to it.
pub(crate) fn lint_file_made(
    dialect: Dialect,
    label: &str,
    path: &Path,
    text: &str,
    model: &mut Model,
    out: &mut Vec<Finding>,
    made: &mut Made,
) -> usize {
    let parsed: Vec<Parsed> = split(dialect, path, text)
        .into_iter()
        .enumerate()
        .map(|(i, (line, t))| Parsed {
            index: i + 1,
            ..parse(dialect, line, &t)
        })
        .collect();
    // Rebuilds: DROP TABLE x at i, then ALTER TABLE y RENAME TO x later in the file.
    let mut rebuild_of: HashMap<usize, (usize, String)> = HashMap::new(); // drop index -> (rename index, new table)
    let mut rebuild_renames: HashSet<usize> = HashSet::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some(Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        }) = &p.ast
            && names.len() == 1
        {
            let dropped = table_name(&names[0]);
            for (j, q) in parsed.iter().enumerate().skip(i + 1) {
                if let Some((from, to)) = q.ast.as_ref().and_then(renamed_table)
                    && to == dropped
                {
                    rebuild_of.insert(i, (j, from));
                    rebuild_renames.insert(j);
                    break;
                }
            }
        }
    }
    let unparsed = parsed.iter().filter(|p| p.ast.is_none()).count();
    let mut ctx = Ctx {
        dialect,
        label,
        path,
        out,
    };
    for (i, p) in parsed.iter().enumerate() {
        let Some(ast) = &p.ast else {
            ctx.unparsed(p);
            // A table sqlparser cannot read is still a table made here, whose columns are not
            // known: nothing is reported on it, and a rebuild of it is not judged.
            if let Some(t) = created_table(&p.words) {
                made.tables.insert(t.clone());
                model.tables.insert(t, None);
            }
            continue;
        };
        if let Some((_, new_table)) = rebuild_of.get(&i) {
            let create = parsed[..i].iter().rev().find(|q| {
                matches!(&q.ast, Some(Statement::CreateTable(ct)) if table_name(&ct.name) == *new_table)
            });
            ctx.rebuild(p, create, ast, model, new_table, made);
            // The rebuilt table keeps what the step made of the old one.
            if let Some(old) = dropped_table(ast) {
                made.tables.remove(new_table);
                made.copy_columns(&old, new_table);
            }
        } else if rebuild_renames.contains(&i) {
            // `ALTER TABLE new_x RENAME TO x` of a rebuild: `x` is the table it was.
            if let Some((from, to)) = renamed_table(ast) {
                made.move_columns(&from, &to);
            }
        } else {
            ctx.statement(p, ast, model, made);
            made.record(ast);
        }
        model.apply(ast);
    }
    unparsed
}

/// The table a `CREATE [TEMP] TABLE [IF NOT EXISTS] name` creates, from its first words
/// (upper-cased; a quoted or dotted name is not recognised).
fn created_table(words: &[String]) -> Option<String> {
    let mut w = words.iter().map(String::as_str).peekable();
    (w.next()? == "CREATE").then_some(())?;
    if matches!(w.peek(), Some(&"TEMP" | &"TEMPORARY")) {
        w.next();
    }
    (w.next()? == "TABLE").then_some(())?;
    let mut name = w.next()?;
    if name == "IF" {
        (w.next()? == "NOT" && w.next()? == "EXISTS").then_some(())?;
        name = w.next()?;
    }
    (!name.is_empty()).then(|| name.to_lowercase())
}

/// The operations of `ALTER TABLE name ...`, each with the table's name when it runs (a
/// `RENAME TO` renames the table for the operations after it).
fn alter_ops<'a>(
    name: &ObjectName,
    operations: &'a [AlterTableOperation],
) -> Vec<(String, &'a AlterTableOperation)> {
    let mut table = table_name(name);
    operations
        .iter()
        .map(|op| {
            let now = table.clone();
            if let AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
            } = op
            {
                table = table_name(n);
            }
            (now, op)
        })
        .collect()
}

/// The table a `DROP TABLE` of one table drops.
fn dropped_table(s: &Statement) -> Option<String> {
    match s {
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } if names.len() == 1 => Some(table_name(&names[0])),
        _ => None,
    }
}

/// `(from, to)` of a statement that renames a table.
fn renamed_table(s: &Statement) -> Option<(String, String)> {
    match s {
        Statement::AlterTable {
            name, operations, ..
        } => operations.iter().find_map(|op| match op {
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
            } => Some((table_name(name), table_name(n))),
            _ => None,
        }),
        Statement::RenameTable(r) if r.len() == 1 => {
            Some((table_name(&r[0].old_name), table_name(&r[0].new_name)))
        }
        _ => None,
    }
}

struct Ctx<'a> {
    dialect: Dialect,
    label: &'a str,
    path: &'a Path,
    out: &'a mut Vec<Finding>,
}

const RUN_CONFIRMS: &str = "whether it holds depends on the rows: the rehearsal on the test \
     database runs it over the test data (and `strata migrate --rehearse-on-copy` or `strata \
     sandbox --from` a copy, over real rows), which confirms or rules it out";

impl Ctx<'_> {
    fn push(&mut self, code: &str, p: &Parsed, object: Option<String>, message: String) {
        let r = rule(code).expect("every code used has a rule");
        self.out.push(Finding {
            code: code.to_string(),
            severity: r.severity,
            family: r.family.to_string(),
            migration: self.label.to_string(),
            file: self.path.to_path_buf(),
            line: p.line,
            index: p.index,
            statement: p.one_line.clone(),
            object,
            message,
            fix: r.fix.to_string(),
            accepted: None,
            verdict: None,
            rows: None,
        });
    }

    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// The database's name, as a message says whose parser judged.
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        }
    }

    /// A statement sqlparser cannot read: SQLite's own parser judges its syntax (a statement it
    /// rejects is an error, one it reads is a note: not analysed); on PostgreSQL, a note.
    fn unparsed(&mut self, p: &Parsed) {
        if self.beyond_the_step(p) {
            return;
        }
        match crate::backends::syntax(self.dialect, &p.text) {
            Some(Err(why)) => self.push(
                SYNTAX,
                p,
                None,
                format!("{}'s parser rejects it: {why}", self.backend()),
            ),
            Some(Ok(())) if self.trigger(p) => {}
            Some(Ok(())) => {
                let w: Vec<&str> = p.words.iter().map(String::as_str).collect();
                // Statements no rule looks at (they change no table's rows or columns).
                let inert = matches!(
                    w.as_slice(),
                    ["REINDEX", ..] | ["ANALYZE", ..] | ["DETACH", ..] | ["DROP", "TRIGGER", ..]
                );
                if !inert {
                    self.push(
                        NOT_LINTED,
                        p,
                        None,
                        format!(
                            "not analysed: {}'s parser accepts this statement, the linter's \
                             parser cannot read it",
                            self.backend()
                        ),
                    );
                }
            }
            None => self.push(
                NOT_LINTED,
                p,
                None,
                "not linted: the linter's PostgreSQL parser cannot read this statement".into(),
            ),
        }
    }

    /// The statements whose reach goes beyond one step's transaction on its own database,
    /// judged whether sqlparser reads them or not: PostgreSQL's server-wide statements,
    /// SQLite's ATTACH of another file, and VACUUM and CLUSTER (which cannot run inside the
    /// step's transaction or rewrite a table under its heaviest lock); whether one was found.
    fn beyond_the_step(&mut self, p: &Parsed) -> bool {
        if let Some(what) = crate::backends::server_wide(self.dialect, &p.text) {
            self.push(
                "SL409",
                p,
                None,
                format!(
                    "this statement changes {what}, which the run refuses: the rehearsal on the \
                     test database (same server) would do it for real first"
                ),
            );
            return true;
        }
        let w: Vec<&str> = p.words.iter().map(String::as_str).collect();
        if !self.pg() && w.first() == Some(&"ATTACH") {
            if let Some(file) = attached_file(&p.text) {
                self.push(
                    "SL408",
                    p,
                    None,
                    format!(
                        "ATTACH opens {file} for writing, which the run refuses: the file is \
                         outside strata's backup, and the rehearsal would change it first"
                    ),
                );
            }
            return true;
        }
        if !self.pg() && w.first() == Some(&"VACUUM") {
            self.push(
                "SL407",
                p,
                None,
                "VACUUM cannot run inside the migration's transaction (SQLite refuses it: \
                 `cannot VACUUM from within a transaction`)"
                    .into(),
            );
            return true;
        }
        if self.pg() {
            match w.as_slice() {
                ["VACUUM", ..] => {
                    let full = w.contains(&"FULL");
                    self.push(
                        "SL406",
                        p,
                        None,
                        if full {
                            "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock, and VACUUM cannot run inside the migration's transaction".into()
                        } else {
                            "VACUUM cannot run inside the migration's transaction".into()
                        },
                    );
                    return true;
                }
                ["CLUSTER", ..] => {
                    self.push(
                        "SL406",
                        p,
                        None,
                        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock".into(),
                    );
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    /// A SQLite `CREATE TRIGGER` (which sqlparser cannot read): the statements of its body
    /// are linted as what they are, statements that run each time the trigger fires. Whether
    /// every statement of the body was read (when one was not, the trigger gets the note that
    /// it was not analysed).
    fn trigger(&mut self, p: &Parsed) -> bool {
        let Some((name, body)) = trigger_body(&p.text) else {
            return false;
        };
        let body: Vec<Parsed> = body
            .into_iter()
            .map(|(offset, text)| {
                let line = p.line + p.text[..offset].matches('\n').count();
                Parsed {
                    index: p.index,
                    ..parse(self.dialect, line, &text)
                }
            })
            .collect();
        if body.iter().any(|b| b.ast.is_none()) {
            return false;
        }
        for b in &body {
            if let Some(Statement::Delete(d)) = &b.ast
                && d.selection.is_none()
            {
                for t in deleted_tables(d) {
                    self.push(
                        "SL106",
                        b,
                        Some(t.clone()),
                        format!(
                            "trigger `{name}`: DELETE without WHERE deletes every row of `{t}` \
                             each time the trigger fires"
                        ),
                    );
                }
            }
        }
        true
    }

    /// `DROP TABLE old` (`p`) of a rebuild whose new table is `new_table`, made by `create`
    /// when that is in the same file: the columns the rebuild loses, and the constraints it
    /// adds over the rows it copies (SQLite's only way to add a CHECK, a foreign key, a
    /// UNIQUE or NOT NULL to a column that is there).
    fn rebuild(
        &mut self,
        p: &Parsed,
        create: Option<&Parsed>,
        ast: &Statement,
        model: &Model,
        new_table: &str,
        made: &Made,
    ) {
        let Statement::Drop { names, .. } = ast else {
            return;
        };
        let old = table_name(&names[0]);
        let (Some(before), Some(after)) = (model.has_table(&old), model.has_table(new_table))
        else {
            return;
        };
        let lost: Vec<String> = before
            .iter()
            .filter(|c| !after.contains(c) && !made.columns.contains(&(old.clone(), (*c).clone())))
            .cloned()
            .collect();
        if !made.tables.contains(&old) {
            self.added_constraints(create.unwrap_or(p), model, &old, new_table, &before);
        }
        if !lost.is_empty() && !made.tables.contains(&old) {
            self.push(
                "SL103",
                p,
                Some(old.clone()),
                format!(
                    "`{old}` is rebuilt from `{new_table}`, which has no column {}: its values are lost",
                    lost.iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    /// The constraints `new_table` declares that `old` did not, each a data-dependent finding
    /// on `old`, whose rows the rebuild copies under them; `columns`: those `old` had.
    fn added_constraints(
        &mut self,
        p: &Parsed,
        model: &Model,
        old: &str,
        new_table: &str,
        columns: &[String],
    ) {
        let empty = BTreeSet::new();
        let had = model.constraints.get(old).unwrap_or(&empty);
        let Some(has) = model.constraints.get(new_table) else {
            return;
        };
        for (holds, what) in has.difference(had) {
            let (code, object, message) = match holds {
                // A NOT NULL column the old table did not have is the copy's to fill.
                Holds::NotNull if columns.contains(what) => (
                    "SL204",
                    format!("{old}.{what}"),
                    format!(
                        "`{old}` is rebuilt with `{what}` NOT NULL, which it was not: the copy \
                         fails if `{old}.{what}` holds a NULL"
                    ),
                ),
                Holds::NotNull => continue,
                Holds::Unique => (
                    "SL202",
                    old.to_string(),
                    format!(
                        "`{old}` is rebuilt with UNIQUE ({what}), which it did not have: the copy \
                         fails if its rows hold duplicates"
                    ),
                ),
                Holds::Check => (
                    "SL203",
                    old.to_string(),
                    format!(
                        "`{old}` is rebuilt with CHECK ({what}), which it did not have: the copy \
                         fails if a row of `{old}` breaks it"
                    ),
                ),
                Holds::ForeignKey => (
                    "SL205",
                    old.to_string(),
                    format!(
                        "`{old}` is rebuilt with a foreign key {what}, which it did not have: \
                         the step fails if a row points at nothing"
                    ),
                ),
            };
            self.push(code, p, Some(object), format!("{message}; {RUN_CONFIRMS}"));
        }
    }

    fn statement(&mut self, p: &Parsed, ast: &Statement, model: &Model, made: &Made) {
        let existing = |t: &str| !made.tables.contains(t);
        if self.beyond_the_step(p) {
            return;
        }
        match ast {
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => {
                for n in names {
                    let t = table_name(n);
                    if existing(&t) {
                        self.push(
                            "SL101",
                            p,
                            Some(t.clone()),
                            format!("drops table `{t}` and every row in it"),
                        );
                    }
                }
            }
            Statement::Truncate { table_names, .. } => {
                for n in table_names {
                    let t = table_name(&n.name);
                    self.push(
                        "SL105",
                        p,
                        Some(t.clone()),
                        format!("deletes every row of `{t}`"),
                    );
                }
            }
            Statement::Delete(d) if d.selection.is_none() => {
                for t in deleted_tables(d) {
                    if existing(&t) {
                        self.push(
                            "SL106",
                            p,
                            Some(t.clone()),
                            format!("DELETE without WHERE deletes every row of `{t}`"),
                        );
                    }
                }
            }
            Statement::CreateIndex(ci) => {
                let t = table_name(&ci.table_name);
                if !existing(&t) {
                    return;
                }
                if ci.unique {
                    self.push(
                        "SL202",
                        p,
                        Some(t.clone()),
                        format!("a unique index on `{t}` fails if its rows hold duplicates; {RUN_CONFIRMS}"),
                    );
                }
                if self.pg() && !ci.concurrently {
                    self.push(
                        "SL401",
                        p,
                        Some(t.clone()),
                        format!(
                            "builds the index under a SHARE lock: inserts, updates and deletes on `{t}` wait until it is built"
                        ),
                    );
                }
            }
            Statement::RenameTable(r) => {
                for r in r {
                    let (from, to) = (table_name(&r.old_name), table_name(&r.new_name));
                    if existing(&from) && !made.renames_back("", &from, &to) {
                        self.renamed_table(p, &from, &to);
                    }
                }
            }
            Statement::AlterTable {
                name, operations, ..
            } => {
                let t = table_name(name);
                if !existing(&t) {
                    return;
                }
                for op in operations {
                    self.alter(p, &t, op, model, made);
                }
            }
            _ => {}
        }
    }

    fn renamed_table(&mut self, p: &Parsed, from: &str, to: &str) {
        self.push(
            "SL301",
            p,
            Some(from.to_string()),
            format!(
                "renames table `{from}` to `{to}`: the application release still running reads and writes `{from}` until it is replaced"
            ),
        );
    }

    fn alter(&mut self, p: &Parsed, t: &str, op: &AlterTableOperation, model: &Model, made: &Made) {
        match op {
            AlterTableOperation::DropColumn { column_names, .. } => {
                for c in column_names {
                    let c = ident(&c.value);
                    if made.columns.contains(&(t.to_string(), c.clone())) {
                        continue;
                    }
                    self.push(
                        "SL102",
                        p,
                        Some(format!("{t}.{c}")),
                        format!("drops column `{t}.{c}` and its values"),
                    );
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (o, n) = (ident(&old_column_name.value), ident(&new_column_name.value));
                if made.columns.contains(&(t.to_string(), o.clone()))
                    || made.renames_back(t, &o, &n)
                {
                    return;
                }
                self.push(
                    "SL302",
                    p,
                    Some(format!("{t}.{o}")),
                    format!(
                        "renames column `{t}.{o}` to `{n}`: the application release still running reads and writes `{o}` until it is replaced"
                    ),
                );
            }
            AlterTableOperation::RenameTable {
                table_name: RenameTableNameKind::As(n) | RenameTableNameKind::To(n),
            } => {
                let to = table_name(n);
                if !made.renames_back("", t, &to) {
                    self.renamed_table(p, t, &to);
                }
            }
            AlterTableOperation::AddColumn { column_def, .. } => {
                let c = ident(&column_def.name.value);
                let opts: Vec<&ColumnOption> =
                    column_def.options.iter().map(|o| &o.option).collect();
                let not_null = opts.iter().any(|o| matches!(o, ColumnOption::NotNull))
                    || opts.iter().any(|o| {
                        matches!(
                            o,
                            ColumnOption::Unique {
                                is_primary: true,
                                ..
                            }
                        )
                    });
                let default = opts.iter().find_map(|o| match o {
                    ColumnOption::Default(e) => Some(e),
                    _ => None,
                });
                let generated = opts.iter().find_map(|o| match o {
                    ColumnOption::Generated {
                        generation_expr, ..
                    } => Some(generation_expr.is_some()),
                    _ => None,
                });
                let serial = is_serial(&column_def.data_type);
                if not_null && default.is_none() && generated.is_none() && !serial {
                    let sqlite = if self.pg() {
                        String::new()
                    } else {
                        " (SQLite refuses it as soon as the table holds a row: \"Cannot add a NOT NULL column with default value NULL\")".into()
                    };
                    self.push(
                        "SL201",
                        p,
                        Some(format!("{t}.{c}")),
                        format!(
                            "adds NOT NULL column `{t}.{c}` without a default: fails if `{t}` holds any row{sqlite}; {RUN_CONFIRMS}"
                        ),
                    );
                }
                if self.pg() {
                    let why = if serial {
                        Some("a serial column fills every row from its sequence".to_string())
                    } else if generated == Some(true) {
                        Some("a stored generated column is computed for every row".to_string())
                    } else {
                        default.and_then(volatile_call).map(|f| {
                            format!("the default calls {f}(), which is volatile, so every row gets its own value")
                        })
                    };
                    if let Some(why) = why {
                        self.push(
                            "SL403",
                            p,
                            Some(format!("{t}.{c}")),
                            format!("rewrites `{t}` under an ACCESS EXCLUSIVE lock: {why}"),
                        );
                    }
                }
                for o in &opts {
                    match o {
                        ColumnOption::Unique { .. } => self.push(
                            "SL202",
                            p,
                            Some(format!("{t}.{c}")),
                            format!("a unique column on `{t}` fails if its default repeats over existing rows; {RUN_CONFIRMS}"),
                        ),
                        ColumnOption::Check(_) if default.is_some() || not_null => self.push(
                            "SL203",
                            p,
                            Some(format!("{t}.{c}")),
                            format!("the column's CHECK is tested on every existing row of `{t}`; {RUN_CONFIRMS}"),
                        ),
                        _ => {}
                    }
                }
            }
            AlterTableOperation::AddConstraint {
                constraint,
                not_valid,
            } => self.constraint(p, t, constraint, *not_valid),
            AlterTableOperation::AlterColumn { column_name, op } => {
                let c = ident(&column_name.value);
                let object = Some(format!("{t}.{c}"));
                match op {
                    AlterColumnOperation::SetNotNull => {
                        self.push(
                            "SL204",
                            p,
                            object.clone(),
                            format!("fails if `{t}.{c}` holds a NULL; {RUN_CONFIRMS}"),
                        );
                        if self.pg() {
                            self.push(
                                "SL405",
                                p,
                                object,
                                format!(
                                    "scans all of `{t}` under an ACCESS EXCLUSIVE lock to prove `{c}` has no NULL"
                                ),
                            );
                        }
                    }
                    AlterColumnOperation::SetDataType { data_type, .. } => {
                        let old = model.column_type(t, &c);
                        if let Some(old) = old
                            && let Some(why) = narrows(old, data_type)
                        {
                            self.push(
                                "SL104",
                                p,
                                object.clone(),
                                format!(
                                    "narrows `{t}.{c}` from {old} to {data_type}: {why}; a value that does not fit fails the step or is cut"
                                ),
                            );
                        }
                        if self.pg() && !old.is_some_and(|o| binary_coercible(o, data_type)) {
                            self.push(
                                "SL402",
                                p,
                                object,
                                format!(
                                    "changes the type of `{t}.{c}` to {data_type}: ACCESS EXCLUSIVE lock on `{t}` while the table and its indexes are rewritten"
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn constraint(&mut self, p: &Parsed, t: &str, c: &TableConstraint, not_valid: bool) {
        let object = Some(t.to_string());
        match c {
            TableConstraint::Unique { .. } | TableConstraint::PrimaryKey { .. } => {
                self.push(
                    "SL202",
                    p,
                    object.clone(),
                    format!("fails if the rows of `{t}` hold duplicates; {RUN_CONFIRMS}"),
                );
                if self.pg() {
                    self.push(
                        "SL404",
                        p,
                        object,
                        format!("builds a unique index on `{t}` under an ACCESS EXCLUSIVE lock: reads and writes wait"),
                    );
                }
            }
            TableConstraint::Check { .. } if !not_valid => {
                self.push(
                    "SL203",
                    p,
                    object.clone(),
                    format!("fails if a row of `{t}` breaks the check; {RUN_CONFIRMS}"),
                );
                if self.pg() {
                    self.push(
                        "SL404",
                        p,
                        object,
                        format!("scans all of `{t}` under an ACCESS EXCLUSIVE lock; add it NOT VALID and VALIDATE it later"),
                    );
                }
            }
            TableConstraint::ForeignKey { foreign_table, .. } if !not_valid => {
                let f = table_name(foreign_table);
                self.push(
                    "SL205",
                    p,
                    object.clone(),
                    format!("fails if a row of `{t}` points at no row of `{f}`; {RUN_CONFIRMS}"),
                );
                if self.pg() {
                    self.push(
                        "SL404",
                        p,
                        object,
                        format!("scans all of `{t}` under a SHARE ROW EXCLUSIVE lock on `{t}` and `{f}`; add it NOT VALID and VALIDATE it later"),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The tables a `DELETE` deletes from.
fn deleted_tables(d: &sqlparser::ast::Delete) -> Vec<String> {
    let tables = match &d.from {
        sqlparser::ast::FromTable::WithFromKeyword(t)
        | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
    };
    tables
        .iter()
        .filter_map(|t| match &t.relation {
            sqlparser::ast::TableFactor::Table { name, .. } => Some(table_name(name)),
            _ => None,
        })
        .collect()
}

/// The file of an `ATTACH` named by a string literal (as SQLite reads the literal), or `None`
/// when the statement is no such `ATTACH`.
fn attached_literal(text: &str) -> Option<String> {
    use crate::core::sql::sqlite::{Kind, tokenize};
    let tokens = tokenize(text).ok()?;
    let mut rest = tokens.iter().peekable();
    if !rest.next()?.is("ATTACH") {
        return None;
    }
    if rest.peek().is_some_and(|t| t.is("DATABASE")) {
        rest.next();
    }
    let first = rest.next()?;
    (first.kind == Kind::String && rest.peek().is_some_and(|t| t.is("AS")))
        .then(|| first.name().unwrap_or_default())
}

/// SL408 for a read-only `ATTACH` in `text` (a SQLite script at `path`) of one of the project's
/// databases (`own`), which the run refuses; an `ATTACH` for writing is reported already.
fn own_attachments(
    label: &str,
    path: &Path,
    text: &str,
    own: &crate::core::identity::Reserved,
    out: &mut Vec<Finding>,
) {
    let mut ctx = Ctx {
        dialect: Dialect::Sqlite,
        label,
        path,
        out,
    };
    for (line, statement) in split(Dialect::Sqlite, path, text) {
        let Some(file) = attached_literal(&statement) else {
            continue;
        };
        if crate::core::sql::sqlite::attach_is_contained(&file) && own.attached_by(&file) {
            let p = parse(Dialect::Sqlite, line, &statement);
            ctx.push(
                "SL408",
                &p,
                None,
                format!(
                    "ATTACH opens '{file}', one of the project's own databases (the real or \
                     test database, a backup, a control database), which the run refuses even \
                     read-only: the rehearsal would copy its rows into the test database"
                ),
            );
        }
    }
}

/// The file a SQLite `ATTACH [DATABASE] expr AS name` opens for writing, as written (a string
/// literal, or the expression's text); `None` for what the run allows (see
/// `attach_is_contained`: in-memory, temporary, or read-only).
fn attached_file(text: &str) -> Option<String> {
    use crate::core::sql::sqlite::{Kind, tokenize};
    let tokens = tokenize(text).ok()?;
    let mut rest = tokens.iter().skip(1).peekable();
    if rest.peek().is_some_and(|t| t.is("DATABASE")) {
        rest.next();
    }
    let first = rest.next()?;
    let mut shown = first.text.clone();
    if first.kind == Kind::String && rest.peek().is_some_and(|t| t.is("AS")) {
        let file = first.name().unwrap_or_default();
        if crate::core::sql::sqlite::attach_is_contained(&file) {
            return None;
        }
        return Some(shown);
    }
    for t in rest.take_while(|t| !t.is("AS")) {
        shown.push(' ');
        shown.push_str(&t.text);
    }
    Some(shown)
}

/// A SQLite trigger's name and the statements of its body (between its `BEGIN` and its last
/// `END`), each with its byte offset in `text`; `None` when `text` is not a trigger or its body
/// cannot be found.
fn trigger_body(text: &str) -> Option<(String, Vec<(usize, String)>)> {
    let tokens = crate::core::sql::sqlite::tokenize(text).ok()?;
    let mut words = tokens.iter();
    if !words.next()?.is("CREATE") {
        return None;
    }
    let mut next = words.next()?;
    if next.is("TEMP") || next.is("TEMPORARY") {
        next = words.next()?;
    }
    if !next.is("TRIGGER") {
        return None;
    }
    let mut name = words.next()?;
    if name.is("IF") {
        words.next().filter(|t| t.is("NOT"))?;
        words.next().filter(|t| t.is("EXISTS"))?;
        name = words.next()?;
    }
    let mut name = name.name()?;
    if words.clone().next().is_some_and(|t| t.is_punct(".")) {
        words.next();
        name = words.next()?.name()?;
    }
    let begin = tokens.iter().position(|t| t.is("BEGIN"))?;
    let end = tokens.iter().rposition(|t| t.is("END"))?;
    if end <= begin {
        return None;
    }
    let body = tokens[begin + 1..end]
        .split(|t| t.is_punct(";"))
        .filter_map(|s| {
            let (first, last) = (s.first()?, s.last()?);
            Some((first.start, text[first.start..last.end].to_string()))
        })
        .collect();
    Some((name, body))
}

fn is_serial(t: &DataType) -> bool {
    match t {
        DataType::Custom(n, _) => {
            let n = table_name(n);
            matches!(
                n.as_str(),
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
            )
        }
        _ => false,
    }
}

const VOLATILE: &[&str] = &[
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "nextval",
    "statement_timestamp",
    "txid_current",
];

/// The first volatile function a default calls, looked for through casts, parentheses and
/// operators.
fn volatile_call(e: &Expr) -> Option<String> {
    match e {
        Expr::Function(f) => {
            let n = table_name(&f.name);
            if VOLATILE.contains(&n.as_str()) {
                return Some(n);
            }
            if let sqlparser::ast::FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    if let sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(e),
                    ) = a
                        && let Some(v) = volatile_call(e)
                    {
                        return Some(v);
                    }
                }
            }
            None
        }
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::UnaryOp { expr, .. } => {
            volatile_call(expr)
        }
        Expr::BinaryOp { left, right, .. } => volatile_call(left).or_else(|| volatile_call(right)),
        _ => None,
    }
}

/// The byte width of an integer type, when it is one.
fn int_width(t: &DataType) -> Option<u8> {
    match t {
        DataType::SmallInt(_) | DataType::Int2(_) => Some(2),
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => Some(4),
        DataType::BigInt(_) | DataType::Int8(_) => Some(8),
        DataType::Custom(n, _) => match table_name(n).as_str() {
            "smallserial" | "serial2" => Some(2),
            "serial" | "serial4" => Some(4),
            "bigserial" | "serial8" => Some(8),
            _ => None,
        },
        _ => None,
    }
}

/// The length limit of a character type: `Some(None)` for an unlimited one.
fn char_limit(t: &DataType) -> Option<Option<u64>> {
    let len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
        _ => None,
    };
    match t {
        DataType::Text | DataType::String(_) => Some(None),
        DataType::Varchar(l) | DataType::CharacterVarying(l) => Some(len(l)),
        DataType::Char(l) | DataType::Character(l) => Some(Some(len(l).unwrap_or(1))),
        _ => None,
    }
}

fn numeric(t: &DataType) -> Option<&ExactNumberInfo> {
    match t {
        DataType::Numeric(i) | DataType::Decimal(i) => Some(i),
        _ => None,
    }
}

/// Why `to` holds less than `from`, when it does.
fn narrows(from: &DataType, to: &DataType) -> Option<String> {
    if let (Some(a), Some(b)) = (int_width(from), int_width(to))
        && b < a
    {
        return Some(format!("{b}-byte integers hold less than {a}-byte ones"));
    }
    if let (Some(a), Some(Some(b))) = (char_limit(from), char_limit(to)) {
        match a {
            None => return Some(format!("at most {b} characters, where any length fitted")),
            Some(a) if b < a => return Some(format!("at most {b} characters, where {a} fitted")),
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (numeric(from), numeric(to)) {
        let ps = |i: &ExactNumberInfo| match i {
            ExactNumberInfo::None => None,
            ExactNumberInfo::Precision(p) => Some((*p, 0i64)),
            ExactNumberInfo::PrecisionAndScale(p, s) => Some((*p, *s)),
        };
        match (ps(a), ps(b)) {
            (None, Some(_)) => return Some("a bounded precision, where any fitted".into()),
            (Some((pa, sa)), Some((pb, sb)))
                if sb < sa || (pb as i64).saturating_sub(sb) < (pa as i64).saturating_sub(sa) =>
            {
                return Some("fewer digits than before".into());
            }
            _ => {}
        }
    }
    if numeric(from).is_some() && int_width(to).is_some() {
        return Some("an integer type drops the fraction and bounds the range".into());
    }
    None
}

/// Whether PostgreSQL changes `from` to `to` without rewriting the table: a longer or
/// unlimited varchar, varchar to text.
fn binary_coercible(from: &DataType, to: &DataType) -> bool {
    let varying = |t: &DataType| {
        matches!(
            t,
            DataType::Varchar(_) | DataType::CharacterVarying(_) | DataType::Text
        )
    };
    if varying(from) && varying(to) {
        return match (char_limit(from), char_limit(to)) {
            (Some(_), Some(None)) => true,
            (Some(Some(a)), Some(Some(b))) => b >= a,
            _ => false,
        };
    }
    from == to
}

#[cfg(test)]
mod tests;
