//! How `strata fleet` looks: the status matrix, the plan, the run's lines and its reports.

use std::collections::BTreeMap;

use anyhow::Result;
use strata_engine::commands::fleet::{
    FleetEvent, FleetPlan, FleetReport, FleetRestore, FleetStatus, TargetOutcome, TargetResult,
    TargetStatus,
};

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use strata_engine::components::{escape_controls, escape_controls_keeping_lines};
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
            outln!("  {:<width$}    {}", "", escape_controls(line));
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
            // An error's every line: a refusal's first line only says it was refused, the
            // lines after it say why and what to do.
            let (what, more) = match (&t.restored, &t.error) {
                (Some(x), _) => (format!("from {}", x.restored_from.display()), Vec::new()),
                (None, Some(e)) => {
                    let mut lines = e.lines().map(escape_controls);
                    (lines.next().unwrap_or_default(), lines.collect())
                }
                (None, None) => ("the run took no backup of it".into(), Vec::new()),
            };
            outln!("  {:<width$}  {:<9}  {what}", t.name, shown_state(&state));
            for line in more {
                outln!("  {:<width$}             {line}", "");
            }
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
                    outln!("      {}", escape_controls(line));
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
    let cause = escape_controls(cause);
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

/// A fleet run's live view on a terminal: a bar over each stage's targets and, beside it, the
/// targets running now; failures (every target with `--verbose`) printed above the bar. Off a
/// terminal (or with `--quiet`, `--json`) it writes [`fleet_event`]'s plain lines instead.
/// Called from every worker of the run.
pub struct FleetView {
    quiet: bool,
    verbose: bool,
    live: bool,
    bar: Mutex<Option<ProgressBar>>,
    running: Mutex<Vec<String>>,
}

impl FleetView {
    pub fn new(quiet: bool, verbose: bool, json: bool) -> Self {
        FleetView {
            quiet,
            verbose,
            live: !quiet && !json && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            running: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `acme, globex, initech +5`: the targets running now.
    fn show_running(&self, bar: &ProgressBar) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let shown: Vec<&str> = running.iter().take(4).map(String::as_str).collect();
        let more = running.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" +{more}")
        } else {
            String::new()
        };
        bar.set_message(escape_controls(&format!(
            "running: {}{more}",
            shown.join(", ")
        )));
    }

    pub fn event(&self, e: &FleetEvent<'_>) {
        if !self.live {
            return fleet_event(self.quiet, self.verbose, e);
        }
        match e {
            FleetEvent::StageStarted {
                name,
                targets,
                parallel,
            } => {
                if let Some(old) = self.bar() {
                    old.finish_and_clear();
                }
                let bar = ProgressBar::new(*targets as u64);
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(escape_controls(&format!(
                    "stage {name} ({parallel} at a time)"
                )));
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
            }
            FleetEvent::TargetStarted { target, .. } => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(target.name.clone());
                if let Some(bar) = self.bar() {
                    self.show_running(&bar);
                }
            }
            FleetEvent::TargetProgress { target, event, .. } => {
                if let (true, Some(bar), Some(line)) =
                    (self.verbose, self.bar(), remote_line(&target.name, event))
                {
                    bar.println(escape_controls_keeping_lines(&line));
                }
            }
            FleetEvent::TargetFinished {
                result,
                done,
                total,
                ..
            } => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|n| *n != result.target.name);
                let Some(bar) = self.bar() else { return };
                if result.failed() {
                    bar.println(escape_controls_keeping_lines(&format!(
                        "[{done}/{total}] {}",
                        failure_line(result)
                    )));
                } else if self.verbose {
                    bar.println(escape_controls_keeping_lines(&format!(
                        "[{done}/{total}] {}: {} ({} migration(s))",
                        result.target.name,
                        outcome(result.outcome),
                        result.applied.len()
                    )));
                }
                bar.inc(1);
                self.show_running(&bar);
            }
            FleetEvent::StageStopped { name, failures } => {
                if let Some(bar) = self.bar() {
                    bar.println(escape_controls_keeping_lines(&format!(
                        "stage {name} stopped after {failures} failure(s): later targets not \
                         started"
                    )));
                }
            }
        }
    }

    /// Clears the bar once the run is over.
    pub fn finish(&self) {
        if let Some(bar) = self.bar() {
            bar.finish_and_clear();
        }
    }
}

/// A remote target's server reporting a phase or a step, as one line.
fn remote_line(name: &str, event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::PhaseStarted { phase, pending, .. } => {
            format!("  {name}: {} started, {pending} pending", phase.as_str())
        }
        Event::StepApplied {
            phase, migration, ..
        } => format!("  {name}: {} {}", phase.as_str(), migration.label()),
        Event::PhaseFinished { phase, applied, .. } => {
            format!("  {name}: {} done, {applied} applied", phase.as_str())
        }
        _ => return None,
    })
}

/// A remote target's server reporting a phase or a step, one line each.
fn remote_progress(name: &str, event: &Event<'_>) {
    if let Some(line) = remote_line(name, event) {
        errln!("{line}");
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
