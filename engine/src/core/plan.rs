//! Planning: a pure function from what a database has applied and what the tree holds to the
//! steps a run would take, or the reasons it must refuse.
//!
//! No I/O here: everything is decided from [`Migration`]s and ledger rows, so each rule has a
//! unit test without a database. Execution lives in `step` and `migrator`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::checksum::PINNED_FILES;
use crate::core::error::Refusal;
use crate::core::ledger::Applied;
use crate::core::tree::{Migration, MigrationId};

/// What the user allows beyond the safe default.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Stop after the migrations with this stamp (inclusive).
    pub to: Option<String>,
    /// Run pending migrations older than the newest applied one of their module.
    pub allow_out_of_order: bool,
}

/// Where one migration stands on one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum State {
    Applied {
        applied_at: String,
    },
    Pending,
    /// Applied, but its pinned files changed since.
    Modified {
        files: Vec<PathBuf>,
    },
    /// Applied, but its folder is gone.
    Missing,
}

/// One line of `strata status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    #[serde(flatten)]
    pub id: MigrationId,
    pub name: String,
    #[serde(flatten)]
    pub state: State,
}

impl StatusEntry {
    /// `module/stamp-name`.
    pub fn label(&self) -> String {
        format!("{}/{}-{}", self.id.module, self.id.stamp, self.name)
    }
}

/// The state of every migration, on disk or applied, in global order.
pub fn status(discovered: &[Migration], applied: &[Applied]) -> Vec<StatusEntry> {
    let by_id: HashMap<&MigrationId, &Applied> = applied.iter().map(|a| (&a.id, a)).collect();
    let mut out: Vec<StatusEntry> = discovered
        .iter()
        .map(|m| {
            let state = match by_id.get(&m.id) {
                None => State::Pending,
                Some(a) if a.checksum == m.manifest.checksum_str() => State::Applied {
                    applied_at: a.applied_at.clone(),
                },
                Some(a) => State::Modified {
                    files: match &a.manifest {
                        Some(recorded) => recorded.changed_files(&m.manifest),
                        None => PINNED_FILES.iter().map(PathBuf::from).collect(),
                    },
                },
            };
            StatusEntry {
                id: m.id.clone(),
                name: m.slug.clone(),
                state,
            }
        })
        .collect();
    let on_disk: std::collections::HashSet<&MigrationId> =
        discovered.iter().map(|m| &m.id).collect();
    out.extend(
        applied
            .iter()
            .filter(|a| !on_disk.contains(&a.id))
            .map(|a| StatusEntry {
                id: a.id.clone(),
                name: a.name.clone(),
                state: State::Missing,
            }),
    );
    out.sort_by(|a, b| a.id.global_cmp(&b.id));
    out
}

/// The migrations a run applies to `db`, in global order, or every reason to refuse.
pub fn plan<'m>(
    db: &Path,
    discovered: &'m [Migration],
    applied: &[Applied],
    opts: &PlanOptions,
) -> Result<Vec<&'m Migration>, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut newest: HashMap<&str, &Applied> = HashMap::new();
    for a in applied {
        let e = newest.entry(a.id.module.as_str()).or_insert(a);
        if a.id.stamp > e.id.stamp {
            *e = a;
        }
    }
    let by_label: HashMap<&MigrationId, &Migration> =
        discovered.iter().map(|m| (&m.id, m)).collect();
    for entry in status(discovered, applied) {
        match &entry.state {
            State::Modified { files } => {
                let dir = &by_label[&entry.id].dir;
                let recorded = applied
                    .iter()
                    .find(|a| a.id == entry.id)
                    .and_then(|a| a.manifest.as_ref())
                    .map(|m| m.to_lines())
                    .unwrap_or_default();
                let added = files
                    .iter()
                    .filter(|f| {
                        let line_end = format!("  {}", f.display());
                        dir.join(f).exists() && !recorded.lines().any(|l| l.ends_with(&line_end))
                    })
                    .map(|f| dir.join(f))
                    .collect();
                refusals.push(Refusal::Modified {
                    db: db.to_path_buf(),
                    migration: entry.label(),
                    files: files.iter().map(|f| dir.join(f)).collect(),
                    added,
                });
            }
            State::Missing => refusals.push(Refusal::Missing {
                db: db.to_path_buf(),
                migration: entry.label(),
            }),
            State::Pending | State::Applied { .. } => {}
        }
    }
    let applied_ids: std::collections::HashSet<&MigrationId> =
        applied.iter().map(|a| &a.id).collect();
    let mut pending = Vec::new();
    for m in discovered {
        if applied_ids.contains(&m.id) {
            continue;
        }
        if let Some(newer) = newest.get(m.id.module.as_str())
            && newer.id.stamp > m.id.stamp
            && !opts.allow_out_of_order
        {
            refusals.push(Refusal::OutOfOrder {
                db: db.to_path_buf(),
                migration: m.label(),
                newest_applied: newer.label(),
            });
            continue;
        }
        if opts.to.as_ref().is_some_and(|to| m.id.stamp > *to) {
            continue;
        }
        pending.push(m);
    }
    if refusals.is_empty() {
        Ok(pending)
    } else {
        Err(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::checksum::Manifest;

    fn manifest(sql: &str) -> Manifest {
        Manifest::from_lines(&format!("{sql:0>64}  do.sql\n")).unwrap()
    }

    fn mig(module: &str, stamp: &str, sql: &str) -> Migration {
        Migration {
            id: MigrationId {
                module: module.into(),
                stamp: stamp.into(),
            },
            slug: "s".into(),
            dir: PathBuf::from(format!("migrations/{module}/{stamp}-s")),
            manifest: manifest(sql),
            contents: None,
        }
    }

    fn applied(m: &Migration) -> Applied {
        Applied {
            id: m.id.clone(),
            name: m.slug.clone(),
            checksum: m.checksum(),
            manifest: Some(m.manifest.clone()),
            applied_at: "2024-01-01T00:00:00.000Z".into(),
            duration_ms: 1,
            engine_version: "0.1.0".into(),
        }
    }

    fn labels(ms: &[&Migration]) -> Vec<String> {
        ms.iter().map(|m| m.label()).collect()
    }

    const T1: &str = "20240101T000000Z";
    const T2: &str = "20240102T000000Z";
    const T3: &str = "20240103T000000Z";

    #[test]
    fn everything_is_pending_on_an_empty_database() {
        let d = vec![mig("a", T1, "1"), mig("b", T1, "2"), mig("a", T2, "3")];
        let p = plan(Path::new("db"), &d, &[], &PlanOptions::default()).unwrap();
        assert_eq!(
            labels(&p),
            [
                "a/20240101T000000Z-s",
                "b/20240101T000000Z-s",
                "a/20240102T000000Z-s"
            ]
        );
    }

    #[test]
    fn applied_migrations_are_not_planned_again() {
        let d = vec![mig("a", T1, "1"), mig("a", T2, "2")];
        let p = plan(
            Path::new("db"),
            &d,
            &[applied(&d[0])],
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(labels(&p), ["a/20240102T000000Z-s"]);
    }

    #[test]
    fn a_changed_applied_migration_refuses_and_names_its_files() {
        let d = vec![mig("a", T1, "1")];
        let mut a = applied(&d[0]);
        a.checksum = "other".into();
        a.manifest = Some(manifest("9"));
        let r = plan(Path::new("db"), &d, &[a], &PlanOptions::default()).unwrap_err();
        assert_eq!(
            r,
            vec![Refusal::Modified {
                db: "db".into(),
                migration: "a/20240101T000000Z-s".into(),
                files: vec![PathBuf::from("migrations/a/20240101T000000Z-s/do.sql")],
                added: vec![],
            }]
        );
    }

    #[test]
    fn an_older_pending_migration_refuses_unless_allowed() {
        let d = vec![mig("a", T1, "1"), mig("a", T2, "2"), mig("b", T1, "3")];
        let done = [applied(&d[1])];
        let r = plan(Path::new("db"), &d, &done, &PlanOptions::default()).unwrap_err();
        assert!(
            matches!(&r[..], [Refusal::OutOfOrder { migration, .. }] if migration == "a/20240101T000000Z-s"),
            "{r:?}"
        );
        let opts = PlanOptions {
            allow_out_of_order: true,
            ..PlanOptions::default()
        };
        let p = plan(Path::new("db"), &d, &done, &opts).unwrap();
        assert_eq!(labels(&p), ["a/20240101T000000Z-s", "b/20240101T000000Z-s"]);
    }

    #[test]
    fn out_of_order_is_judged_per_module() {
        // b's older stamp is fine: only a has a newer applied migration.
        let d = vec![mig("b", T1, "1"), mig("a", T2, "2")];
        let p = plan(
            Path::new("db"),
            &d,
            &[applied(&d[1])],
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(labels(&p), ["b/20240101T000000Z-s"]);
    }

    #[test]
    fn a_missing_applied_migration_refuses() {
        let gone = mig("a", T1, "1");
        let d = vec![mig("a", T2, "2")];
        let r = plan(
            Path::new("db"),
            &d,
            &[applied(&gone)],
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(&r[..], [Refusal::Missing { .. }]), "{r:?}");
    }

    #[test]
    fn to_stops_after_the_given_stamp() {
        let d = vec![mig("a", T1, "1"), mig("b", T2, "2"), mig("a", T3, "3")];
        let opts = PlanOptions {
            to: Some(T2.into()),
            ..PlanOptions::default()
        };
        let p = plan(Path::new("db"), &d, &[], &opts).unwrap();
        assert_eq!(labels(&p), ["a/20240101T000000Z-s", "b/20240102T000000Z-s"]);
    }

    #[test]
    fn status_lists_every_state_in_global_order() {
        let gone = mig("z", T1, "0");
        let mut changed = mig("a", T2, "1");
        let d = vec![mig("a", T1, "1"), changed.clone(), mig("a", T3, "3")];
        let mut rec = vec![applied(&d[0]), applied(&gone)];
        changed.manifest = manifest("7");
        rec.push(applied(&changed));
        let s = status(&d, &rec);
        let states: Vec<&State> = s.iter().map(|e| &e.state).collect();
        assert!(matches!(states[0], State::Applied { .. }));
        assert_eq!(states[1], &State::Missing);
        assert_eq!(
            states[2],
            &State::Modified {
                files: vec!["do.sql".into()]
            }
        );
        assert_eq!(states[3], &State::Pending);
    }
}
