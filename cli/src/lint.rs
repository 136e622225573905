//! `strata lint`, and the lint findings `plan` and `sandbox` print: rendering and exits.

use anyhow::Result;
use strata_engine::commands::lint::{Finding, LintReport, Severity};

use super::Failed;
use crate::render::Output;

/// One finding as a line: `file:line: severity[CODE]: message` (accepted ones say so), then
/// the statement and the fix, indented.
fn finding_lines(f: &Finding) -> Vec<String> {
    let head = match &f.accepted {
        Some(reason) => format!(
            "{}:{}: accepted[{}]: {} (accepted in migration.toml: {reason})",
            f.file.display(),
            f.line,
            f.code,
            f.message
        ),
        None => format!(
            "{}:{}: {}[{}]: {}",
            f.file.display(),
            f.line,
            f.severity,
            f.code,
            f.message
        ),
    };
    let mut lines = vec![head, format!("    {}", f.statement)];
    if f.accepted.is_none() && f.severity > Severity::Note {
        lines.push(format!("    fix: {}", f.fix));
    }
    lines
}

/// `strata lint`: the report on stdout (text or JSON); exit 1 when a finding is not accepted.
pub fn show(out: &Output, report: &LintReport, warnings: &[String]) -> Result<()> {
    for w in warnings {
        if !out.quiet_mode() {
            errln!("warning: {w}");
        }
    }
    if out.json_mode() {
        out!(
            "{}\n",
            crate::render::json_text(serde_json::to_string_pretty(report)?)
        );
    } else {
        for f in &report.findings {
            if f.severity == Severity::Note && out.quiet_mode() {
                continue;
            }
            for line in finding_lines(f) {
                outln!("{line}");
            }
        }
        for u in &report.unused_accepts {
            errln!(
                "warning: {}: [[lint.accept]] code = \"{}\" matches no finding of {}; remove it \
                 or fix its line/object",
                u.file.display(),
                u.code,
                u.migration
            );
        }
        let failing = report.failing().count();
        let accepted = report
            .findings
            .iter()
            .filter(|f| f.accepted.is_some())
            .count();
        if !out.quiet_mode() {
            outln!(
                "{} migration(s) linted: {failing} finding(s) to fix or accept, {accepted} accepted",
                report.migrations.len()
            );
        }
    }
    if !report.ok {
        let why = format!(
            "{} lint finding(s) not accepted; fix each, or accept it in its migration's \
             migration.toml with [[lint.accept]] code = \"...\" reason = \"...\"",
            report.failing().count()
        );
        errln!("error: {why}");
        return Err(anyhow::Error::new(Failed(why)));
    }
    Ok(())
}

/// One finding as a warning on stderr.
fn warn_one(f: &Finding) {
    let mut lines = finding_lines(f).into_iter();
    if let Some(head) = lines.next() {
        errln!("warning: lint: {head}");
    }
    for l in lines {
        errln!("{l}");
    }
}

/// For `migrate`: the data-dependent findings not accepted on what it ran, with what the
/// rehearsal's rows said, as warnings on stderr (the others are `plan`'s and `lint`'s to show,
/// before the run).
pub fn warn_rows(out: &Output, report: &LintReport) {
    if out.quiet_mode() {
        return;
    }
    for f in report
        .failing()
        .filter(|f| f.family == strata_engine::commands::lint::DATA)
    {
        warn_one(f);
    }
}

/// For `plan` and `sandbox`: the findings that are not accepted, as warnings on stderr; with
/// `strict`, exit 1 when there are any.
pub fn warn(out: &Output, report: &LintReport, strict: bool) -> Result<()> {
    if !out.quiet_mode() || strict {
        for f in report.failing() {
            warn_one(f);
        }
    }
    if strict && !report.ok {
        let why = format!(
            "--strict: {} lint finding(s) not accepted (see `strata lint`)",
            report.failing().count()
        );
        errln!("error: {why}");
        return Err(anyhow::Error::new(Failed(why)));
    }
    Ok(())
}
