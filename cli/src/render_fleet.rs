//! How `strata fleet` looks: the status matrix, the plan, the run's lines and its reports.

use std::collections::BTreeMap;

use anyhow::Result;
use strata_engine::commands::fleet::{
    FleetEvent, FleetPlan, FleetReport, FleetRestore, FleetStatus, TargetOutcome, TargetResult,
    TargetStatus,
};

use strata_engine::core::event::Event;

use super::Output;

/// A state for people, in capitals where it needs attention (coloured by `highlight`).
fn shown_state(state: &str) -> String {
    match state {
        "up-to-date" | "pending" | "applied" | "not-run" | "restored" | "no-backup" => {
            state.to_string()
        }
        other => other.to_uppercase(),
    }
}

/// `up-to-date 18, pending 2`.
fn counts(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{} {v}", shown_state(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The width of the longest target name of `rows`, to align them.
fn name_width(rows: &[TargetStatus]) -> usize {
    rows.iter().map(|t| t.target.name.len()).max().unwrap_or(0)
}

/// One target's row: name, group, stage, state, applied, head, pending.
fn row(t: &TargetStatus, width: usize) {
    let pending = match t.pending.len() {
        0 => String::new(),
        n => format!(", {n} pending (next {})", t.pending[0]),
    };
    outln!(
        "  {:<width$}  {:<11}  {} applied{}{pending}",
        t.target.name,
        shown_state(t.state.as_str()),
        t.applied,
        t.head
            .as_deref()
            .map(|h| format!(", head {h}"))
            .unwrap_or_default(),
    );
    for p in &t.problems {
        for line in p.lines() {
            outln!("  {:<width$}    {line}", "");
        }
    }
}

impl Output {
    pub fn fleet_restore(&self, r: &FleetRestore) -> Result<()> {
        if self.json {
            return self.print_json(r);
        }
        let width = r.targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
        outln!("stage {}:", r.stage);
        for t in &r.targets {
            let state = serde_json::to_value(t.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let what = match (&t.restored, &t.error) {
                (Some(x), _) => format!("from {}", x.restored_from.display()),
                (None, Some(e)) => e.lines().next().unwrap_or_default().to_string(),
                (None, None) => "the run took no backup of it".into(),
            };
            outln!("  {:<width$}  {:<9}  {what}", t.name, shown_state(&state));
        }
        outln!("{}", counts(&r.counts));
        Ok(())
    }

    pub fn fleet_status(&self, status: &FleetStatus) -> Result<()> {
        if self.json {
            return self.print_json(status);
        }
        let width = name_width(&status.targets);
        let mut groups: Vec<&str> = Vec::new();
        for t in &status.targets {
            if !groups.contains(&t.target.group.as_str()) {
                groups.push(&t.target.group);
            }
        }
        for g in groups {
            let rows: Vec<&TargetStatus> = status
                .targets
                .iter()
                .filter(|t| t.target.group == g)
                .collect();
            let mut c = BTreeMap::new();
            for t in &rows {
                *c.entry(t.state.as_str().to_string()).or_insert(0) += 1;
            }
            outln!("group {g}: {} target(s): {}", rows.len(), counts(&c));
            for t in rows {
                row(t, width);
            }
        }
        outln!(
            "{} target(s), chain of {} migration(s): {}",
            status.targets.len(),
            status.chain,
            counts(&status.counts)
        );
        Ok(())
    }

    pub fn fleet_plan(&self, plan: &FleetPlan) -> Result<()> {
        if self.json {
            return self.print_json(plan);
        }
        match &plan.rehearsal {
            Some(r) => outln!(
                "rehearsal on {}: {} migration(s)",
                r.db.display(),
                r.pending.len()
            ),
            None => outln!("no rehearsal (--no-rehearsal)"),
        }
        for s in &plan.stages {
            let width = name_width(&s.targets);
            let work = s.targets.iter().filter(|t| !t.pending.is_empty()).count();
            outln!(
                "stage {}: {} target(s), {work} with work, {} at a time, on failure {}",
                s.name,
                s.targets.len(),
                s.parallel,
                s.on_failure
            );
            for t in &s.targets {
                row(t, width);
            }
        }
        Ok(())
    }

    pub fn fleet_migrate(&self, report: &FleetReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        if let Some(r) = &report.rehearsal {
            outln!(
                "rehearsal on {}: applied {} migration(s)",
                r.db.display(),
                r.applied.len()
            );
        }
        for s in &report.stages {
            let mut c = BTreeMap::new();
            for t in &s.targets {
                *c.entry(outcome(t.outcome).to_string()).or_insert(0) += 1;
            }
            outln!(
                "stage {}: {}{}",
                s.name,
                counts(&c),
                if s.stopped {
                    format!(" (stopped by its policy: {})", s.on_failure)
                } else {
                    String::new()
                }
            );
            for t in s.targets.iter().filter(|t| t.failed()) {
                outln!("  {}", failure_line(t));
                for line in t.error.as_deref().unwrap_or_default().lines() {
                    outln!("      {line}");
                }
            }
        }
        outln!(
            "{} target(s) in {:.1} s: {}",
            report.counts.values().sum::<usize>(),
            report.duration_ms as f64 / 1000.0,
            counts(&report.counts)
        );
        Ok(())
    }
}

fn outcome(o: TargetOutcome) -> &'static str {
    match o {
        TargetOutcome::Applied => "applied",
        TargetOutcome::UpToDate => "up-to-date",
        TargetOutcome::Failed => "failed",
        TargetOutcome::Refused => "refused",
        TargetOutcome::NotRun => "not-run",
    }
}

/// `acme FAILED at people/2024...: the cause` (the database's error for a failed step, else
/// the error's first line).
fn failure_line(t: &TargetResult) -> String {
    let error = t.error.as_deref().unwrap_or_default();
    let cause = error
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
        .or_else(|| error.lines().next())
        .unwrap_or_default();
    format!(
        "{} {}{}: {cause}",
        t.target.name,
        shown_state(outcome(t.outcome)),
        t.failed_step
            .as_deref()
            .map(|s| format!(" at {s}"))
            .unwrap_or_default(),
    )
}

/// A fleet run's progress on stderr: each stage, each failed target (each target with
/// `--verbose`), a stage stopped by its policy.
pub fn fleet_event(quiet: bool, verbose: bool, e: &FleetEvent<'_>) {
    if quiet {
        return;
    }
    match e {
        FleetEvent::StageStarted {
            name,
            targets,
            parallel,
        } => errln!("stage {name}: {targets} target(s), {parallel} at a time"),
        FleetEvent::TargetStarted { .. } => {}
        FleetEvent::TargetProgress { target, event, .. } => {
            if verbose {
                remote_progress(&target.name, event);
            }
        }
        FleetEvent::TargetFinished {
            result,
            done,
            total,
            ..
        } => {
            if result.failed() {
                errln!("[{done}/{total}] {}", failure_line(result));
            } else if verbose {
                errln!(
                    "[{done}/{total}] {}: {} ({} migration(s))",
                    result.target.name,
                    outcome(result.outcome),
                    result.applied.len()
                );
            }
        }
        FleetEvent::StageStopped { name, failures } => {
            errln!("stage {name} stopped after {failures} failure(s): later targets not started")
        }
    }
}

/// A remote target's server reporting a phase or a step, one line each.
fn remote_progress(name: &str, event: &Event<'_>) {
    match event {
        Event::PhaseStarted { phase, pending, .. } => {
            errln!("  {name}: {} started, {pending} pending", phase.as_str())
        }
        Event::StepApplied {
            phase, migration, ..
        } => errln!("  {name}: {} {}", phase.as_str(), migration.label()),
        Event::PhaseFinished { phase, applied, .. } => {
            errln!("  {name}: {} done, {applied} applied", phase.as_str())
        }
        _ => {}
    }
}

/// The fleet report as JUnit XML: a testsuite per stage, a testcase per target.
pub fn fleet_junit(report: &FleetReport) -> String {
    let esc = super::xml_escape;
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for s in &report.stages {
        let n = |f: fn(&TargetResult) -> bool| s.targets.iter().filter(|t| f(t)).count();
        x.push_str(&format!(
            "  <testsuite name=\"strata fleet {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            esc(&s.name),
            s.targets.len(),
            n(TargetResult::failed),
            n(|t| t.outcome == TargetOutcome::NotRun),
            s.targets.iter().map(|t| t.duration_ms).sum::<u64>() as f64 / 1000.0
        ));
        for t in &s.targets {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(&t.target.group),
                esc(&t.target.name),
                t.duration_ms as f64 / 1000.0
            ));
            match t.outcome {
                TargetOutcome::Applied | TargetOutcome::UpToDate => x.push_str("/>\n"),
                TargetOutcome::NotRun => x.push_str(
                    ">\n      <skipped message=\"not started: its stage or an earlier one stopped\"/>\n    </testcase>\n",
                ),
                TargetOutcome::Failed | TargetOutcome::Refused => {
                    let msg = t.error.as_deref().unwrap_or("failed");
                    x.push_str(&format!(
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        esc(&failure_line(t)),
                        esc(msg)
                    ));
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
