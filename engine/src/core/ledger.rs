//! The bookkeeping both backends keep, as values: an applied migration, an audit entry and
//! row, their outcomes, and who ran them. Each backend stores them in its own tables
//! (`crate::sqlite::ledger`, `crate::postgres::ledger`).

use serde::{Deserialize, Serialize};

use crate::core::checksum::Manifest;
use crate::core::tree::{Migration, MigrationId};

/// The SQLite ownership table: which module owns which schema object.
pub const OBJECT_TABLE: &str = "strata_object";

/// The applied-migrations table.
pub const MIGRATION_TABLE: &str = "strata_migration";

/// The audit log table.
pub const AUDIT_TABLE: &str = "strata_migration_audit";

/// A row of `strata_migration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    #[serde(flatten)]
    pub id: MigrationId,
    pub name: String,
    pub checksum: String,
    /// The per-file hashes at the time it was applied; `None` if unreadable.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    pub applied_at: String,
    pub duration_ms: i64,
    pub engine_version: String,
}

impl Applied {
    /// `module/stamp-name`, as in messages about the tree.
    pub fn label(&self) -> String {
        format!("{}/{}-{}", self.id.module, self.id.stamp, self.name)
    }
}

/// A row of `strata_migration` to write: taken when the step ran (its `applied_at` then),
/// written now or at the end of a phase run in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub(crate) module: String,
    pub(crate) stamp: String,
    pub(crate) name: String,
    pub(crate) checksum: String,
    pub(crate) manifest: String,
    pub(crate) applied_at: String,
    pub(crate) duration_ms: u64,
}

impl Record {
    /// `m` applied now, in `duration_ms`; `checksum` is `m.checksum()`.
    pub fn of(m: &Migration, checksum: String, duration_ms: u64) -> Record {
        Record {
            module: m.id.module.clone(),
            stamp: m.id.stamp.clone(),
            name: m.slug.clone(),
            checksum,
            manifest: m.manifest.to_lines(),
            applied_at: now_rfc3339(),
            duration_ms,
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    /// It succeeded, but a later action of the same step failed and the step was rolled back.
    RolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled-back",
        }
    }
}

/// One audit log entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub phase: String,
    pub module: Option<String>,
    pub stamp: Option<String>,
    pub action: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub rows: Option<u64>,
    pub fuel_used: Option<u64>,
    pub duration_ms: Option<u64>,
    pub checksum: Option<String>,
}

impl Entry {
    /// A successful action of a whole run rather than of one step (`backup`, `restore`).
    pub fn for_run(phase: &str, action: &str, detail: String) -> Entry {
        Entry {
            phase: phase.into(),
            module: None,
            stamp: None,
            action: action.into(),
            outcome: Outcome::Ok,
            detail: Some(detail),
            rows: None,
            fuel_used: None,
            duration_ms: None,
            checksum: None,
        }
    }

    /// `m` recorded as applied without running it (`baseline`, `new --from-diff`).
    pub fn adopted(m: &crate::core::tree::Migration, action: &str, detail: &str) -> Entry {
        Entry {
            phase: "baseline".into(),
            module: Some(m.id.module.clone()),
            stamp: Some(m.id.stamp.clone()),
            action: action.into(),
            outcome: Outcome::Ok,
            detail: Some(detail.into()),
            rows: None,
            fuel_used: None,
            duration_ms: Some(0),
            checksum: Some(m.checksum()),
        }
    }
}

/// A row of the audit log as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub phase: String,
    pub module: Option<String>,
    pub stamp: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub rows: Option<i64>,
    pub fuel_used: Option<i64>,
    pub duration_ms: Option<i64>,
    pub operator: String,
    pub checksum: Option<String>,
}

/// The table holding the database's identity: one row, a random id strata gives a database the
/// first time it backs it up. It travels inside every backup, so `restore` can tell whether a
/// backup came from the database it is asked to overwrite.
pub const IDENTITY_TABLE: &str = "strata_database";

/// Every table strata keeps in a SQLite database (the PostgreSQL ones live in the `strata`
/// schema). Other `strata_*` names are reserved for strata's use (a migration cannot create
/// one), but a database strata adopts may already hold such a table: it is the application's.
pub const OWN_TABLES: &[&str] = &[MIGRATION_TABLE, AUDIT_TABLE, OBJECT_TABLE, IDENTITY_TABLE];

/// `user@host` of whoever runs strata.
pub fn operator() -> String {
    static OPERATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OPERATOR.get_or_init(read_operator).clone()
}

fn read_operator() -> String {
    let user = whoami::username().unwrap_or_else(|_| "unknown".into());
    let host = whoami::hostname().unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// Now, UTC, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
