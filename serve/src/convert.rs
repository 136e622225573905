//! Engine values to `strata.v1` messages and back: phases, actions, migrations and the typed
//! progress events. Reports travel as the JSON the CLI prints with `--json` (serde on both
//! sides), so only what has no JSON form is converted here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_engine::core::checksum::Manifest;
use strata_engine::core::ledger::AuditRow;
use strata_engine::{Action, Event, Migration, MigrationId, Phase};

use crate::proto::{self, event::Kind};

/// Each phase and its wire form; both directions read this one table.
const PHASES: [(Phase, proto::Phase); 4] = [
    (Phase::Rehearsal, proto::Phase::Rehearsal),
    (Phase::Apply, proto::Phase::Apply),
    (Phase::Sandbox, proto::Phase::Sandbox),
    (Phase::Restore, proto::Phase::Restore),
];

/// Each action and its wire form.
const ACTIONS: [(Action, proto::Action); 12] = [
    (Action::DoSql, proto::Action::DoSql),
    (Action::Transform, proto::Action::Transform),
    (Action::TestData, proto::Action::TestData),
    (Action::TestSeed, proto::Action::TestSeed),
    (Action::ProjData, proto::Action::ProjData),
    (Action::ProjSeed, proto::Action::ProjSeed),
    (Action::Checks, proto::Action::Checks),
    (Action::CheckComponent, proto::Action::CheckComponent),
    (Action::ForeignKeyCheck, proto::Action::ForeignKeyCheck),
    (Action::Snapshot, proto::Action::Snapshot),
    (Action::Record, proto::Action::Record),
    (Action::Undo, proto::Action::Undo),
];

/// The wire value of `p` (unspecified for a phase this version does not know).
pub fn phase(p: Phase) -> i32 {
    PHASES
        .iter()
        .find(|(e, _)| *e == p)
        .map_or(proto::Phase::Unspecified, |(_, w)| *w) as i32
}

/// The phase of wire value `p`; an unknown one reads as the apply phase.
pub fn phase_back(p: i32) -> Phase {
    PHASES
        .iter()
        .find(|(_, w)| *w as i32 == p)
        .map_or(Phase::Apply, |(e, _)| *e)
}

/// The wire value of `a` (unspecified for an action this version does not know).
pub fn action(a: Action) -> i32 {
    ACTIONS
        .iter()
        .find(|(e, _)| *e == a)
        .map_or(proto::Action::Unspecified, |(_, w)| *w) as i32
}

/// The action of wire value `a`; an unknown one reads as do.sql.
pub fn action_back(a: i32) -> Action {
    ACTIONS
        .iter()
        .find(|(_, w)| *w as i32 == a)
        .map_or(Action::DoSql, |(e, _)| *e)
}

/// An audit row as its message.
pub fn audit_entry(a: AuditRow) -> proto::AuditEntry {
    proto::AuditEntry {
        id: a.id,
        at: a.at,
        phase: a.phase,
        module: a.module,
        stamp: a.stamp,
        action: a.action,
        outcome: a.outcome,
        detail: a.detail,
        rows: a.rows,
        fuel_used: a.fuel_used,
        duration_ms: a.duration_ms,
        operator: a.operator,
        checksum: a.checksum,
    }
}

/// An audit message as the engine's row.
pub fn audit_row(a: proto::AuditEntry) -> AuditRow {
    AuditRow {
        id: a.id,
        at: a.at,
        phase: a.phase,
        module: a.module,
        stamp: a.stamp,
        action: a.action,
        outcome: a.outcome,
        detail: a.detail,
        rows: a.rows,
        fuel_used: a.fuel_used,
        duration_ms: a.duration_ms,
        operator: a.operator,
        checksum: a.checksum,
    }
}

pub fn migration(m: &Migration) -> Option<proto::MigrationRef> {
    Some(proto::MigrationRef {
        module: m.id.module.clone(),
        stamp: m.id.stamp.clone(),
        slug: m.slug.clone(),
    })
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The message for an engine event; `None` for events with no wire form.
pub fn event(e: &Event<'_>) -> Option<proto::Event> {
    let kind = match e {
        Event::PhaseStarted {
            phase: p,
            db,
            pending,
        } => Kind::PhaseStarted(proto::PhaseStarted {
            phase: phase(*p),
            db: path(db),
            pending: *pending as u64,
        }),
        Event::BackupTaken { db, backup } => Kind::BackupTaken(proto::BackupTaken {
            db: path(db),
            backup: path(backup),
        }),
        Event::StepStarted {
            phase: p,
            migration: m,
        } => Kind::StepStarted(proto::StepStarted {
            phase: phase(*p),
            migration: migration(m),
        }),
        Event::ActionDone {
            phase: p,
            migration: m,
            action: a,
            rows,
            fuel,
            elapsed,
        } => Kind::ActionDone(proto::ActionDone {
            phase: phase(*p),
            migration: migration(m),
            action: action(*a),
            rows: *rows,
            fuel: *fuel,
            elapsed_ms: ms(*elapsed),
        }),
        Event::ComponentStarted {
            migration: m,
            action: a,
            ..
        } => Kind::ComponentStarted(proto::ComponentStarted {
            migration: migration(m),
            action: action(*a),
        }),
        Event::ComponentLog {
            migration: m,
            action: a,
            level,
            message,
        } => Kind::ComponentLog(proto::ComponentLog {
            migration: migration(m),
            action: action(*a),
            level: level.to_string(),
            message: message.to_string(),
        }),
        Event::SnapshotWritten {
            migration: m,
            path: p,
        } => Kind::SnapshotWritten(proto::SnapshotWritten {
            migration: migration(m),
            path: path(p),
        }),
        Event::StepApplied {
            phase: p,
            migration: m,
            elapsed,
        } => Kind::StepApplied(proto::StepApplied {
            phase: phase(*p),
            migration: migration(m),
            elapsed_ms: ms(*elapsed),
        }),
        Event::StepSkipped {
            phase: p,
            migration: m,
        } => Kind::StepSkipped(proto::StepSkipped {
            phase: phase(*p),
            migration: migration(m),
        }),
        Event::PhaseFinished {
            phase: p,
            db,
            applied,
        } => Kind::PhaseFinished(proto::PhaseFinished {
            phase: phase(*p),
            db: path(db),
            applied: *applied as u64,
        }),
        Event::Warning(w) => Kind::Warning(w.clone()),
        _ => return None,
    };
    Some(proto::Event { kind: Some(kind) })
}

/// Turns received event messages back into engine events for a client's renderer: keeps the
/// migrations they name, and the live row counter of the running component.
#[derive(Default)]
pub struct EventReplay {
    migrations: HashMap<(String, String), Migration>,
    rows: HashMap<(String, String, i32), Arc<AtomicU64>>,
}

/// The most migrations and row counters an [`EventReplay`] remembers: a server that names
/// ever new ones has the oldest forgotten (they are kept only to hand the renderer a reference).
const REPLAY_MAX_KEPT: usize = 4096;

impl EventReplay {
    fn migration(&mut self, r: &Option<proto::MigrationRef>) -> &Migration {
        let r = r.clone().unwrap_or_default();
        if self.migrations.len() >= REPLAY_MAX_KEPT
            && !self
                .migrations
                .contains_key(&(r.module.clone(), r.stamp.clone()))
        {
            self.migrations.clear();
        }
        self.migrations
            .entry((r.module.clone(), r.stamp.clone()))
            .or_insert_with(|| Migration {
                dir: PathBuf::from(&r.module).join(format!("{}-{}", r.stamp, r.slug)),
                id: MigrationId {
                    module: r.module,
                    stamp: r.stamp,
                },
                slug: r.slug,
                manifest: Manifest::default(),
                contents: None,
            })
    }

    fn counter(&mut self, r: &Option<proto::MigrationRef>, a: i32) -> Arc<AtomicU64> {
        let r = r.clone().unwrap_or_default();
        let key = (r.module, r.stamp, a);
        if self.rows.len() >= REPLAY_MAX_KEPT && !self.rows.contains_key(&key) {
            self.rows.clear();
        }
        self.rows.entry(key).or_default().clone()
    }

    /// Hands the engine event `e` stands for to `sink` (progress ticks only update counters).
    pub fn replay(&mut self, e: proto::Event, sink: &mut dyn FnMut(&Event<'_>)) {
        let Some(kind) = e.kind else { return };
        match kind {
            Kind::PhaseStarted(p) => sink(&Event::PhaseStarted {
                phase: phase_back(p.phase),
                db: Path::new(&p.db),
                pending: p.pending as usize,
            }),
            Kind::BackupTaken(b) => sink(&Event::BackupTaken {
                db: Path::new(&b.db),
                backup: Path::new(&b.backup),
            }),
            Kind::StepStarted(s) => sink(&Event::StepStarted {
                phase: phase_back(s.phase),
                migration: self.migration(&s.migration),
            }),
            Kind::ActionDone(a) => {
                self.rows.clear();
                sink(&Event::ActionDone {
                    phase: phase_back(a.phase),
                    migration: self.migration(&a.migration),
                    action: action_back(a.action),
                    rows: a.rows,
                    fuel: a.fuel,
                    elapsed: Duration::from_millis(a.elapsed_ms),
                })
            }
            Kind::ComponentStarted(c) => {
                let rows_written = self.counter(&c.migration, c.action);
                sink(&Event::ComponentStarted {
                    migration: self.migration(&c.migration),
                    action: action_back(c.action),
                    rows_written,
                })
            }
            Kind::ComponentProgress(p) => {
                self.counter(&p.migration, p.action)
                    .store(p.rows_written, Ordering::Relaxed);
            }
            Kind::ComponentLog(l) => sink(&Event::ComponentLog {
                migration: self.migration(&l.migration),
                action: action_back(l.action),
                level: &l.level,
                message: &l.message,
            }),
            Kind::SnapshotWritten(s) => sink(&Event::SnapshotWritten {
                migration: self.migration(&s.migration),
                path: Path::new(&s.path),
            }),
            Kind::StepApplied(s) => sink(&Event::StepApplied {
                phase: phase_back(s.phase),
                migration: self.migration(&s.migration),
                elapsed: Duration::from_millis(s.elapsed_ms),
            }),
            Kind::StepSkipped(s) => sink(&Event::StepSkipped {
                phase: phase_back(s.phase),
                migration: self.migration(&s.migration),
            }),
            Kind::PhaseFinished(p) => sink(&Event::PhaseFinished {
                phase: phase_back(p.phase),
                db: Path::new(&p.db),
                applied: p.applied as usize,
            }),
            Kind::Warning(w) => sink(&Event::Warning(w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_and_action_survives_the_round_trip() {
        for p in [
            Phase::Rehearsal,
            Phase::Apply,
            Phase::Sandbox,
            Phase::Restore,
        ] {
            assert_eq!(phase_back(phase(p)), p);
        }
        for a in [
            Action::DoSql,
            Action::Transform,
            Action::TestData,
            Action::TestSeed,
            Action::ProjData,
            Action::ProjSeed,
            Action::Checks,
            Action::CheckComponent,
            Action::ForeignKeyCheck,
            Action::Snapshot,
            Action::Record,
        ] {
            assert_eq!(action_back(action(a)), a);
        }
    }

    #[test]
    fn a_server_naming_ever_new_migrations_is_remembered_within_a_bound() {
        let mut replay = EventReplay::default();
        let mut seen = 0usize;
        for i in 0..3 * REPLAY_MAX_KEPT {
            let migration = Some(proto::MigrationRef {
                module: "m".into(),
                stamp: format!("{i:020}"),
                slug: "s".repeat(100),
            });
            let started = proto::Event {
                kind: Some(Kind::ComponentStarted(proto::ComponentStarted {
                    migration: migration.clone(),
                    action: 0,
                })),
            };
            replay.replay(started, &mut |_| seen += 1);
            let progress = proto::Event {
                kind: Some(Kind::ComponentProgress(proto::ComponentProgress {
                    migration,
                    action: 0,
                    rows_written: 1,
                })),
            };
            replay.replay(progress, &mut |_| seen += 1);
            assert!(replay.migrations.len() <= REPLAY_MAX_KEPT);
            assert!(replay.rows.len() <= REPLAY_MAX_KEPT);
        }
        assert_eq!(seen, 3 * REPLAY_MAX_KEPT);
    }

    #[test]
    fn events_replay_as_the_same_lines() {
        let m = Migration {
            id: MigrationId {
                module: "people".into(),
                stamp: "20240101T000000Z".into(),
            },
            slug: "zero".into(),
            dir: "migrations/people/20240101T000000Z-zero".into(),
            manifest: Manifest::default(),
            contents: None,
        };
        let sent = Event::StepApplied {
            phase: Phase::Apply,
            migration: &m,
            elapsed: Duration::from_millis(12),
        };
        let mut seen = Vec::new();
        EventReplay::default().replay(event(&sent).unwrap(), &mut |e| seen.push(format!("{e:?}")));
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].contains("people") && seen[0].contains("12ms"),
            "{seen:?}"
        );
    }
}
