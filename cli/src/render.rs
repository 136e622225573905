//! How results, progress and errors look: human text (results on stdout, progress and errors
//! on stderr) or JSON on stdout with `--json`. The library never prints; this module does.

/// `println!` on stdout. A closed pipe (`strata audit | head`) ends the process quietly: the
/// command's work is done by the time results are printed, and nobody reads the rest.
macro_rules! outln {
    () => {
        $crate::render::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::render::write_stdout(format_args!(
            "{}\n",
            $crate::render::highlight_line(&format!($($arg)*))
        ))
    };
}

/// `print!` on stdout, with [`outln!`]'s handling of a closed pipe, for data (SQL, JSON): as
/// it is into a file or pipe, escaped on a terminal ([`render::data_for_stdout`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::render::write_data(format_args!(
            "{}",
            $crate::render::data_for_stdout(&format!($($arg)*))
        ))
    };
}

/// `eprintln!` that never panics: progress and errors on a closed stderr are dropped, and the
/// command carries on to its real exit code.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::render::write_stderr(format_args!(
            "{}\n",
            $crate::render::highlight_line(&format!($($arg)*))
        ))
    };
}

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use strata_engine::components::{escape_controls, escape_controls_keeping_lines, is_hidden};

use anyhow::Result;
use serde_json::json;
use strata_engine::commands::build::Built;
use strata_engine::commands::migrate::{
    DatabaseStatus, MigrateReport, PlannedPhase, SandboxReport, StepOutcome,
};
use strata_engine::commands::repair::RepairReport;
use strata_engine::commands::scaffold;
use strata_engine::core::backup::Backup;
use strata_engine::core::design::{Adopted, DiffReport, DumpReport};
use strata_engine::core::ledger::AuditRow;
use strata_engine::core::plan::State;
use strata_engine::core::restore::Restored;
use strata_engine::core::schema::ObjectRef;
use strata_engine::{Action, Event};

/// Writes to stdout; exits quietly (code 0) when the reader has gone away.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // anstream drops the colours when stdout is no terminal, or NO_COLOR is set.
    let mut out = anstream::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(strata_engine::core::exit::OK);
    }
}

/// Writes data (SQL, JSON) to stdout as it is, with [`write_stdout`]'s handling of a closed
/// pipe: not through anstream, which strips every escape sequence it finds when stdout is no
/// terminal, and would so change the SQL a view or a name holds (`'\x1b[31m'`); on a terminal
/// the text comes already escaped ([`data_for_stdout`]).
pub fn write_data(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(strata_engine::core::exit::OK);
    }
}

/// Writes to stderr, ignoring failures (a closed stderr must not stop a migration).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = anstream::stderr().lock().write_fmt(args);
}

/// A line for the macros: every control character but newline and tab, and every
/// bidirectional or invisible formatting character, escaped (`\u{1b}`, `\r`, `\u{202e}`), then
/// strata's own colours added ([`highlight`]). So nothing printed, whatever it quotes (a
/// server's strings, a database's message quoting do.sql, a folder's name), can move the
/// cursor, clear the screen, set the window title or reorder what is shown; only strata writes
/// escape sequences.
pub fn highlight_line(line: &str) -> String {
    highlight(&escape_controls_keeping_lines(line))
}

/// Data written as it is (SQL, a dump, JSON) when stdout is not a terminal, so a file or pipe
/// gets the bytes unchanged; on a terminal escaped as lines are ([`highlight_line`]).
pub fn data_for_stdout(text: &str) -> std::borrow::Cow<'_, str> {
    if std::io::stdout().is_terminal()
        && text.chars().any(|c| is_hidden(c) && c != '\n' && c != '\t')
    {
        std::borrow::Cow::Owned(escape_controls_keeping_lines(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// JSON text with every control, bidirectional or invisible character still raw in it (serde
/// escapes only those below U+0020) written as `\uXXXX`: the same JSON value, and nothing in it
/// that a terminal acts on.
pub fn json_text(json: String) -> String {
    if !json.chars().any(is_hidden_unescaped) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hidden_unescaped(c) {
            // Every such character is in the Basic Multilingual Plane: one \u escape.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A hidden character serde_json leaves raw: not its own whitespace between tokens.
fn is_hidden_unescaped(c: char) -> bool {
    is_hidden(c) && !matches!(c, '\n' | ' ' | '\t' | '\r')
}

/// `text` in a colour (shown only where colours are, see [`write_stdout`]).
fn paint(text: &str, color: anstyle::AnsiColor) -> String {
    let style = color.on_default().bold();
    format!("{style}{text}{style:#}")
}

/// The `error:` and `warning:` prefixes, and the states that need attention, in colour.
fn highlight(line: &str) -> String {
    let mut out = line.to_string();
    for (word, color) in [
        ("MODIFIED", anstyle::AnsiColor::Red),
        ("MISSING", anstyle::AnsiColor::Red),
        ("DRIFTED", anstyle::AnsiColor::Red),
        ("FAILED", anstyle::AnsiColor::Red),
    ] {
        out = out.replace(word, &paint(word, color));
    }
    if let Some(rest) = out.strip_prefix("error:") {
        out = format!("{}{rest}", paint("error:", anstyle::AnsiColor::Red));
    } else if let Some(rest) = out.strip_prefix("warning:") {
        out = format!("{}{rest}", paint("warning:", anstyle::AnsiColor::Yellow));
    }
    out
}

#[path = "render_fleet.rs"]
mod fleet;
pub use fleet::{FleetView, fleet_junit};

/// Where and how to write.
pub struct Output {
    json: bool,
    quiet: bool,
    verbose: bool,
    /// Progress bars on a terminal; plain lines otherwise.
    progress: Option<RefCell<Progress>>,
}

impl Output {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Self {
        let live = !json && !quiet && std::io::stderr().is_terminal();
        Output {
            json,
            quiet,
            verbose,
            progress: live.then(|| RefCell::new(Progress::default())),
        }
    }

    /// Whether results go out as JSON.
    pub fn json_mode(&self) -> bool {
        self.json
    }

    /// Whether only results and errors are printed.
    pub fn quiet_mode(&self) -> bool {
        self.quiet
    }

    /// Whether each action is printed too.
    pub fn verbose_mode(&self) -> bool {
        self.verbose
    }

    fn print_json(&self, value: &impl serde::Serialize) -> Result<()> {
        out!("{}\n", json_text(serde_json::to_string_pretty(value)?));
        Ok(())
    }

    pub fn init(&self, done: &scaffold::Initialized) -> Result<()> {
        if self.json {
            return self.print_json(&json!({
                "config": done.config,
                "created": done.created,
                "gitignore_lines_added": done.ignore_lines,
            }));
        }
        if done.created {
            outln!("wrote {}", done.config.display());
        } else {
            outln!(
                "{} already exists: this folder is a strata project; nothing was overwritten{}",
                done.config.display(),
                match done.ignore_lines {
                    0 => String::new(),
                    n => format!(
                        " ({n} .gitignore line{} added)",
                        if n == 1 { "" } else { "s" }
                    ),
                }
            );
        }
        Ok(())
    }

    pub fn new_migration(&self, dir: &Path) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "path": dir }));
        }
        outln!("{}", dir.display());
        Ok(())
    }

    pub fn build(&self, built: &[Built]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "components": built }));
        }
        if built.is_empty() {
            outln!("no guest crates to build");
        }
        for b in built {
            outln!("{}  {} ({} bytes)", b.sha256, b.output.display(), b.bytes);
        }
        Ok(())
    }

    pub fn status(&self, dbs: &[DatabaseStatus]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "databases": dbs }));
        }
        let Some(first) = dbs.first() else {
            return Ok(());
        };
        let heads: Vec<String> = dbs
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.phase.database_role().trim_start_matches("the "),
                    d.db.display()
                )
            })
            .collect();
        let label = |i: usize| {
            format!(
                "{}-{}",
                first.migrations[i].id.stamp, first.migrations[i].name
            )
        };
        let name_width = (0..first.migrations.len())
            .map(|i| label(i).len())
            .max()
            .unwrap_or(0)
            .max(9)
            + 2;
        let col = heads.iter().map(String::len).max().unwrap_or(0) + 2;
        // Per module, oldest first; every database lists the same entries in the same order.
        let mut order: Vec<usize> = (0..first.migrations.len()).collect();
        order.sort_by(|&a, &b| first.migrations[a].id.cmp(&first.migrations[b].id));
        let mut line = format!("  {:name_width$}", "migration");
        for h in &heads {
            line.push_str(&format!("{h:col$}"));
        }
        outln!("{}", line.trim_end());
        let mut module = None;
        for i in order {
            let entry = &first.migrations[i];
            if module != Some(&entry.id.module) {
                outln!("{}", entry.id.module);
                module = Some(&entry.id.module);
            }
            let mut line = format!("  {:name_width$}", label(i));
            for db in dbs {
                let state = match db.migrations.get(i).map(|e| &e.state) {
                    Some(State::Applied { .. }) => "applied".to_string(),
                    Some(State::Pending) => "pending".to_string(),
                    Some(State::Missing) => "MISSING".to_string(),
                    Some(State::Modified { files }) => {
                        let files: Vec<String> =
                            files.iter().map(|f| f.display().to_string()).collect();
                        format!("MODIFIED ({})", files.join(", "))
                    }
                    None => "-".to_string(),
                };
                line.push_str(&format!("{state:col$}"));
            }
            outln!("{}", line.trim_end());
        }
        for db in dbs {
            let count =
                |f: fn(&State) -> bool| db.migrations.iter().filter(|e| f(&e.state)).count();
            outln!(
                "{}: {} applied, {} pending{}{}",
                db.db.display(),
                count(|s| matches!(s, State::Applied { .. })),
                count(|s| matches!(s, State::Pending)),
                match count(|s| matches!(s, State::Modified { .. })) {
                    0 => String::new(),
                    n => format!(", {n} modified"),
                },
                match count(|s| matches!(s, State::Missing)) {
                    0 => String::new(),
                    n => format!(", {n} missing"),
                },
            );
            for d in &db.drift {
                outln!(
                    "{}: module `{}` DRIFTED from {}:",
                    db.db.display(),
                    d.module,
                    d.snapshot.display()
                );
                for l in d.difference.lines() {
                    outln!("    {l}");
                }
            }
            if !db.unowned.is_empty() {
                outln!(
                    "{}: {} object(s) no module owns: {}. Adopt them with `strata baseline \
                     <module>` or `strata new <module> <slug> --from-diff`",
                    db.db.display(),
                    db.unowned.len(),
                    objects(&db.unowned)
                );
            }
        }
        Ok(())
    }

    pub fn dump(&self, report: &DumpReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        let several = report.modules.len() > 1;
        for m in &report.modules {
            if !m.written.is_empty() {
                for path in &m.written {
                    outln!("wrote {}", path.display());
                }
                continue;
            }
            if several {
                outln!("-- module {}", m.module);
            }
            if m.sql.is_empty() {
                outln!(
                    "-- module {} owns no objects in {}",
                    m.module,
                    report.db.display()
                );
            } else {
                out!("{}", m.sql);
            }
            if several {
                outln!();
            }
        }
        if !report.unowned.is_empty() && !self.quiet {
            errln!(
                "note: {} object(s) in {} belong to no module and are not in the dump: {}",
                report.unowned.len(),
                report.db.display(),
                objects(&report.unowned)
            );
        }
        Ok(())
    }

    pub fn diff(&self, report: &DiffReport, sql: bool) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        for s in &report.skipped {
            errln!("warning: {}: skipped: {}", s.module, s.reason);
        }
        let several = report.modules.len() > 1;
        for m in &report.modules {
            let against = match &m.snapshot {
                Some(p) => p.display().to_string(),
                None => "an empty schema (nothing of it is applied)".to_string(),
            };
            if sql {
                let Some(delta) = &m.delta else { continue };
                if delta.is_empty() {
                    if !self.quiet {
                        errln!("{}: no changes against {against}", m.module);
                    }
                    continue;
                }
                if several {
                    outln!("-- module {}", m.module);
                }
                out!("{}", delta.sql);
                for w in &delta.warnings {
                    errln!("warning: {}: {w}", m.module);
                }
                continue;
            }
            if m.diff.is_empty() {
                outln!("{}: no changes against {against}", m.module);
                continue;
            }
            outln!("{} (against {against}):", m.module);
            for line in m.diff.to_string().lines() {
                outln!("  {line}");
            }
            if !m.unowned.is_empty() {
                outln!(
                    "  not owned by any module yet: {}; `strata new {} <slug> --from-diff` \
                     makes them {}'s",
                    objects(&m.unowned),
                    m.module,
                    m.module
                );
            }
        }
        if !report.unowned.is_empty() {
            outln!(
                "not owned by any module: {}; name a module (`strata diff <module>`) to see them \
                 as its changes",
                objects(&report.unowned)
            );
        }
        Ok(())
    }

    /// `new --from-diff` and `baseline`: the folder on stdout, what happened on stderr.
    pub fn adopted(&self, a: &Adopted) -> Result<()> {
        if self.json {
            return self.print_json(a);
        }
        outln!("{}", a.path.display());
        if self.quiet {
            return Ok(());
        }
        if let Some(b) = &a.backup {
            errln!("backed up {} to {}", a.db.display(), b.display());
        }
        errln!(
            "recorded as applied to {} without running it (it already has this schema); \
             `strata migrate` applies it to the test database and other copies",
            a.db.display()
        );
        if !a.adopted.is_empty() {
            errln!(
                "{} object(s) now belong to this module: {}",
                a.adopted.len(),
                objects(&a.adopted)
            );
        }
        for d in &a.destructive {
            errln!("warning: allowed destructive change: {d}");
        }
        for w in &a.warnings {
            errln!("warning: {w}");
        }
        Ok(())
    }

    pub fn plan(&self, phases: &[PlannedPhase]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "phases": phases }));
        }
        // A stale component is stale on every database: say it once.
        let mut warned = std::collections::HashSet::new();
        for p in phases {
            if p.steps.is_empty() {
                outln!("{} on {}: nothing to do", p.phase, p.db.display());
                continue;
            }
            outln!(
                "{} on {}: {} step(s)",
                p.phase,
                p.db.display(),
                p.steps.len()
            );
            for (i, s) in p.steps.iter().enumerate() {
                let actions: Vec<&str> = s.actions.iter().map(|a| a.as_str()).collect();
                outln!("  {}. {}: {}", i + 1, s.migration, actions.join(", "));
                for w in &s.warnings {
                    if warned.insert(w) {
                        errln!("warning: {w}");
                    }
                }
            }
        }
        Ok(())
    }

    pub fn migrate(&self, report: &MigrateReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        for p in &report.phases {
            let db = match &p.copy_of {
                Some(original) => format!("copy of {} (deleted)", original.display()),
                None => p.db.display().to_string(),
            };
            let mut line = match p.applied.len() {
                0 => format!("{db}: up to date"),
                n => format!("{db}: applied {n} migration(s)"),
            };
            if let Some(b) = &p.backup {
                line.push_str(&format!(", backup {}", b.display()));
            }
            if !p.skipped.is_empty() {
                line.push_str(&format!(
                    ", {} applied meanwhile by another process",
                    p.skipped.len()
                ));
            }
            outln!("{line}");
        }
        Ok(())
    }

    pub fn sandbox(&self, report: &SandboxReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        for s in &report.steps {
            let mark = match s.outcome {
                StepOutcome::Ok => "ok     ",
                StepOutcome::Failed => "FAILED ",
                StepOutcome::Skipped => "skipped",
            };
            outln!("{mark} {}/{} ({} ms)", s.module, s.migration, s.duration_ms);
        }
        let count = |o: StepOutcome| report.steps.iter().filter(|s| s.outcome == o).count();
        outln!(
            "sandbox: {} ok, {} failed, {} skipped in {} ms",
            count(StepOutcome::Ok),
            count(StepOutcome::Failed),
            count(StepOutcome::Skipped),
            report.duration_ms
        );
        for s in report
            .steps
            .iter()
            .filter(|s| s.outcome == StepOutcome::Failed)
        {
            errln!("error: {}", s.message.as_deref().unwrap_or("failed"));
        }
        Ok(())
    }

    pub fn repair(&self, report: &RepairReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        for r in &report.repins {
            let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
            outln!(
                "{} {} on {}: {} changed; checksum {} -> {}",
                if report.done {
                    "re-pinned"
                } else {
                    "would re-pin"
                },
                r.migration,
                r.db.display(),
                files.join(", "),
                short(&r.old_checksum),
                short(&r.new_checksum)
            );
        }
        Ok(())
    }

    /// Bytes as they are (a completion script).
    pub fn raw(&self, bytes: &[u8]) -> Result<()> {
        out!("{}", String::from_utf8_lossy(bytes));
        Ok(())
    }

    /// `plan --sql`: each phase's steps as the SQL they run.
    pub fn plan_sql(&self, phases: &[PlannedPhase]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "phases": phases }));
        }
        for p in phases {
            outln!(
                "-- {} on {}: {}",
                p.phase,
                p.db.display(),
                match p.steps.len() {
                    0 => "nothing to do".to_string(),
                    n => format!("{n} step(s)"),
                }
            );
            for s in &p.steps {
                out!("{}", s.sql.as_deref().unwrap_or_default());
                for w in &s.warnings {
                    errln!("warning: {w}");
                }
            }
            outln!();
        }
        Ok(())
    }

    pub fn restored(&self, r: &Restored, test: bool) -> Result<()> {
        if self.json {
            return self.print_json(r);
        }
        outln!(
            "restored {} from {}",
            r.db.display(),
            r.restored_from.display()
        );
        if self.quiet {
            return Ok(());
        }
        if r.audit_rows_kept > 0 {
            errln!(
                "kept the {} audit row(s) written since that backup",
                r.audit_rows_kept
            );
        }
        if let Some(undo) = &r.undo {
            errln!(
                "the state before the restore is in {}; `strata restore {}{}` undoes this",
                undo.display(),
                undo.file_name().unwrap_or_default().to_string_lossy(),
                if test { " --test" } else { "" }
            );
        }
        Ok(())
    }

    /// `strata undo`: each database, its backup and what was undone.
    pub fn undone(&self, r: &strata_engine::commands::undo::UndoReport) -> Result<()> {
        if self.json {
            return self.print_json(r);
        }
        for db in &r.databases {
            if let Some(backup) = &db.backup
                && !self.quiet
            {
                errln!("  backed up {} to {}", db.db.display(), backup.display());
            }
            if db.undone.is_empty() {
                outln!("{}: nothing to undo", db.db.display());
            }
            for m in &db.undone {
                outln!("undid {m} on {}", db.db.display());
            }
        }
        Ok(())
    }

    /// `restore --list`: one backup per line, oldest first.
    pub fn backups(&self, db: &Path, backups: &[Backup]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "db": db, "backups": backups }));
        }
        if backups.is_empty() {
            outln!("{}: no backup can go back to it", db.display());
        }
        for b in backups {
            outln!(
                "{}  {}  {:>10}  {}",
                b.path.file_name().unwrap_or_default().to_string_lossy(),
                b.record.taken_at,
                size(b.size),
                b.record.reason
            );
        }
        Ok(())
    }

    pub fn audit(&self, db: &Path, rows: &[AuditRow]) -> Result<()> {
        if self.json {
            return self.print_json(&json!({ "db": db, "entries": rows }));
        }
        if rows.is_empty() {
            outln!("{}: the audit log is empty", db.display());
            return Ok(());
        }
        let table: Vec<[String; 10]> = rows
            .iter()
            .map(|r| {
                [
                    r.id.to_string(),
                    r.at.clone(),
                    r.phase.clone(),
                    match (&r.module, &r.stamp) {
                        (Some(m), Some(s)) => format!("{m}/{s}"),
                        _ => "-".to_string(),
                    },
                    r.action.clone(),
                    r.outcome.clone(),
                    r.rows.map_or("-".into(), |n| n.to_string()),
                    r.fuel_used.map_or("-".into(), |n| n.to_string()),
                    r.duration_ms.map_or("-".into(), |n| n.to_string()),
                    r.operator.clone(),
                ]
            })
            .collect();
        let head = [
            "ID",
            "AT",
            "PHASE",
            "MIGRATION",
            "ACTION",
            "OUTCOME",
            "ROWS",
            "FUEL",
            "MS",
            "OPERATOR",
        ];
        let widths: Vec<usize> = (0..head.len())
            .map(|i| {
                table
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // Numbers right-aligned, text left-aligned.
        let numeric = [
            true, false, false, false, false, false, true, true, true, false,
        ];
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if numeric[i] {
                        format!("{c:>w$}", w = widths[i])
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        outln!("{}", line(&head.map(String::from)));
        for (r, cells) in rows.iter().zip(&table) {
            outln!("{}", line(cells));
            if let Some(detail) = &r.detail {
                for l in detail.lines() {
                    outln!("{:w$}  {l}", "", w = widths[0]);
                }
            }
        }
        Ok(())
    }
}

/// The first 12 hex digits of a checksum, enough to tell two apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A short list of objects: the first few, then how many more.
fn objects(list: &[ObjectRef]) -> String {
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = list.iter().take(SHOWN).map(ToString::to_string).collect();
    if list.len() > SHOWN {
        parts.push(format!("and {} more", list.len() - SHOWN));
    }
    parts.join(", ")
}

/// Renders a progress event on stderr (nothing in `--json` or `-q` mode).
pub fn event(out: &Output, e: &Event<'_>) {
    if let Some(progress) = &out.progress {
        progress.borrow_mut().event(out.verbose, e);
        return;
    }
    if let Event::Warning(w) = e {
        errln!("warning: {w}");
        return;
    }
    if out.json || out.quiet {
        return;
    }
    if let Some(line) = line(out.verbose, e) {
        errln!("{line}");
    }
}

/// The plain line an event prints, if any.
fn line(verbose: bool, e: &Event<'_>) -> Option<String> {
    Some(match e {
        Event::Warning(w) => format!("warning: {w}"),
        Event::PhaseStarted { phase, db, pending } => {
            format!("{phase} on {}: {pending} pending", db.display())
        }
        Event::BackupTaken { db, backup } => {
            format!("  backed up {} to {}", db.display(), backup.display())
        }
        Event::StepStarted { migration, .. } if verbose => format!("  {migration}"),
        // Only the sandbox reports an undo this way: its proof of an undo.sql, between the
        // step's first and second application.
        Event::ActionDone {
            migration,
            action: Action::Undo,
            elapsed,
            ..
        } => format!(
            "  undid {migration} with its undo.sql: the schema is as before the step ({} ms); applying it again",
            elapsed.as_millis()
        ),
        Event::ActionDone {
            action,
            rows,
            fuel,
            elapsed,
            ..
        } if verbose => {
            let fuel = fuel.map(|f| format!(", {f} fuel")).unwrap_or_default();
            format!(
                "    {action}: {rows} row(s){fuel}, {} ms",
                elapsed.as_millis()
            )
        }
        Event::ComponentLog {
            migration,
            action,
            level,
            message,
        } if verbose || *level == "warn" || *level == "error" => {
            format!("    [{migration} {action}] {level}: {message}")
        }
        Event::StepApplied {
            migration, elapsed, ..
        } => format!("  applied {migration} ({} ms)", elapsed.as_millis()),
        Event::SnapshotWritten { path, .. } => format!("  wrote {}", path.display()),
        Event::BuildStarted { migration, source } => {
            format!("building {} for {migration}", source.display())
        }
        Event::BuildOutput(line) => format!("  {}", line.trim_end()),
        Event::StepSkipped { migration, .. } => {
            format!("  skipped {migration}: another process applied it first")
        }
        _ => return None,
    })
}

/// A progress bar over a phase's steps, and a live row count while a component runs.
#[derive(Default)]
struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Progress {
    fn event(&mut self, verbose: bool, e: &Event<'_>) {
        match e {
            Event::PhaseStarted { phase, db, pending } => {
                let bar = ProgressBar::new(*pending as u64);
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(escape_controls(&format!("{phase} on {}", db.display())));
                self.bar = Some(bar);
            }
            Event::StepStarted { migration, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(escape_controls(&migration.label()));
                }
            }
            Event::ComponentStarted {
                migration,
                action,
                rows_written,
            } => {
                self.stop_ticker();
                if let Some(bar) = self.bar.clone() {
                    let stop = Arc::new(AtomicBool::new(false));
                    let (rows, halt, label) = (
                        Arc::clone(rows_written),
                        Arc::clone(&stop),
                        escape_controls(&format!("{migration} {action}")),
                    );
                    let started = std::time::Instant::now();
                    let thread = std::thread::spawn(move || {
                        while !halt.load(Ordering::Relaxed) {
                            let n = rows.load(Ordering::Relaxed);
                            let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
                            bar.set_message(format!("{label}: {n} rows ({rate:.0}/s)"));
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    });
                    self.ticker = Some((stop, thread));
                }
            }
            Event::ActionDone { .. } => self.stop_ticker(),
            Event::StepApplied { .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Event::PhaseFinished { .. } => {
                self.stop_ticker();
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        if let Some(text) = line(verbose, e).filter(|_| !matches!(e, Event::PhaseStarted { .. })) {
            match &self.bar {
                Some(bar) => bar.println(escape_controls_keeping_lines(&text)),
                None => errln!("{text}"),
            }
        }
    }

    fn stop_ticker(&mut self) {
        if let Some((stop, thread)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

/// `text` escaped for an XML attribute or element.
/// `text` for an XML attribute or element: markup escaped, and every character XML 1.0
/// forbids (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF) written as a
/// visible escape (`\u{1b}`), so a message holding them still gives a well-formed report.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    out
}

/// The sandbox report as JUnit XML: one testsuite, one testcase per step.
pub fn junit(report: &SandboxReport) -> String {
    let esc = xml_escape;
    let count = |o: StepOutcome| report.steps.iter().filter(|s| s.outcome == o).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites>\n  <testsuite name=\"strata sandbox\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        report.steps.len(),
        count(StepOutcome::Failed),
        count(StepOutcome::Skipped),
        report.duration_ms as f64 / 1000.0
    ));
    for s in &report.steps {
        x.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&s.module),
            esc(&s.migration),
            s.duration_ms as f64 / 1000.0
        ));
        match s.outcome {
            StepOutcome::Ok => x.push_str("/>\n"),
            StepOutcome::Skipped => x.push_str(
                ">\n      <skipped message=\"an earlier step failed\"/>\n    </testcase>\n",
            ),
            StepOutcome::Failed => {
                let msg = s.message.as_deref().unwrap_or("failed");
                let first = msg.lines().next().unwrap_or("failed");
                x.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    esc(first),
                    esc(msg)
                ));
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Prints an error (stderr; also a JSON object on stdout with `--json`) and returns its exit code.
pub fn error(err: &anyhow::Error, json: bool) -> i32 {
    if err.downcast_ref::<crate::cli::Failed>().is_some() {
        return strata_engine::core::exit::FAILURE;
    }
    if let Some(refused) = err.downcast_ref::<crate::cli::Refused>() {
        errln!("error: {refused}");
        return strata_engine::core::exit::REFUSED;
    }
    let code = if err.downcast_ref::<crate::cli::Declined>().is_some() {
        strata_engine::core::exit::REFUSED
    } else if let Some(remote) = err.downcast_ref::<strata_serve::RemoteError>() {
        remote.exit_code
    } else {
        err.downcast_ref::<strata_engine::Error>().map_or(
            strata_engine::core::exit::FAILURE,
            strata_engine::Error::exit_code,
        )
    };
    // strata's own errors already say what their causes said: print them once, not "X: X".
    let message = match err.downcast_ref::<strata_engine::Error>() {
        Some(e) => e.to_string(),
        None => format!("{err:#}"),
    };
    errln!("error: {message}");
    if json {
        let value = json!({ "error": { "exit_code": code, "message": message } });
        outln!(
            "{}",
            json_text(serde_json::to_string_pretty(&value).unwrap_or_default())
        );
    }
    code
}

/// A byte count for people: B, KiB, MiB or GiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
