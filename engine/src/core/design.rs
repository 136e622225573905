//! What the design-time commands share with the backends: the reports of `dump`, `diff`,
//! `new --from-diff` and `baseline`, the snapshot file, and [`Live`], a database's live schema
//! as its backend reads it. The commands' one algorithm over `Live` is `crate::commands::design`;
//! each backend implements `Live` (`crate::sqlite::design`, `crate::postgres::design`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Refusal};
use crate::core::ledger;
use crate::core::schema::{Delta, Diff, ObjectRef};
use crate::core::tree::{LATEST, Migration};

/// The snapshot file of a migration and of `LATEST/`.
pub const SNAPSHOT: &str = "schema.sql";

/// One module's schema as `strata dump` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleDump {
    pub module: String,
    pub sql: String,
    /// Files written with `--write`.
    pub written: Vec<PathBuf>,
}

/// What `strata dump` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpReport {
    pub db: PathBuf,
    pub modules: Vec<ModuleDump>,
    /// Objects no module owns (not part of any module's dump).
    pub unowned: Vec<ObjectRef>,
}

/// One module's differences.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleDiff {
    pub module: String,
    /// The snapshot compared against; `None` when nothing of the module is applied yet.
    pub snapshot: Option<PathBuf>,
    pub diff: Diff,
    /// Objects in `diff` that no module owns yet (they count as this module's additions).
    pub unowned: Vec<ObjectRef>,
    /// The SQL turning the snapshot into the live schema (`--sql`).
    pub delta: Option<Delta>,
}

/// A module `strata diff` could not compare, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub module: String,
    pub reason: String,
}

/// What `strata diff` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffReport {
    pub db: PathBuf,
    pub modules: Vec<ModuleDiff>,
    /// Modules skipped because they have no snapshot.
    pub skipped: Vec<Skipped>,
    /// Objects no module owns that no module's diff includes.
    pub unowned: Vec<ObjectRef>,
}

impl DiffReport {
    /// Refuses (exit 3) when the SQL would drop data, unless allowed.
    /// Whether the live schema differs anywhere from the snapshots (`diff --exit-code`).
    pub fn has_differences(&self) -> bool {
        !self.unowned.is_empty()
            || self
                .modules
                .iter()
                .any(|m| !m.diff.is_empty() || m.delta.as_ref().is_some_and(|d| !d.is_empty()))
    }

    pub fn check_destructive(&self, allow: bool) -> Result<(), Error> {
        let changes: Vec<String> = self
            .modules
            .iter()
            .filter_map(|m| m.delta.as_ref())
            .flat_map(|d| d.destructive.iter().cloned())
            .collect();
        if allow || changes.is_empty() {
            Ok(())
        } else {
            Err(Error::Refused(vec![Refusal::Destructive { changes }]))
        }
    }
}

/// What `strata new --from-diff` and `strata baseline` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adopted {
    /// The new migration folder.
    pub path: PathBuf,
    /// The database it is recorded as applied on.
    pub db: PathBuf,
    /// Objects that were not owned and now belong to the module.
    pub adopted: Vec<ObjectRef>,
    pub diff: Diff,
    /// Destructive changes allowed with `--allow-destructive`, and warnings.
    pub destructive: Vec<String>,
    pub warnings: Vec<String>,
    /// The verified backup taken before the database was changed (`baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
}

/// A database's live schema as its backend reads it for the design-time commands: the schema in
/// the backend's own model, who owns each object (modules, by the ownership rows and by what
/// the applied migrations created), and the ledger, read together.
pub(crate) trait Live {
    /// A schema in the backend's model: the live one, a module's part of it, a snapshot.
    type Schema: Default;

    /// What strata reads, in the "nothing to adopt" of `baseline`.
    const KINDS: &'static str;

    /// The lines after the first of a `new --from-diff` migration's `do.sql`.
    const FROM_DIFF_NOTE: &'static str;

    /// The database, as shown.
    fn db(&self) -> PathBuf;

    /// Its short name (a file name, a database name), in generated files.
    fn name(&self) -> String;

    /// The migrations applied to it.
    fn applied(&self) -> &[ledger::Applied];

    /// The modules that own objects in it.
    fn owners(&self) -> Vec<String>;

    /// The objects no module owns.
    fn unowned(&self) -> Vec<ObjectRef>;

    /// Those of [`Live::unowned`] that `before` does not have.
    fn unowned_beyond(&self, before: &Self::Schema) -> Vec<ObjectRef>;

    /// The objects `module` owns; with `with_unowned`, also those no module owns.
    fn module(&self, module: &str, with_unowned: bool) -> Self::Schema;

    /// The objects no module owns, as a schema.
    fn unowned_schema(&self) -> Self::Schema;

    /// A snapshot file's schema.
    fn parse(path: &Path, text: &str) -> Result<Self::Schema, Error>;

    /// A schema as canonical SQL (a dump, a `schema.sql`).
    fn to_sql(schema: &Self::Schema) -> String;

    /// The differences from `before` to `after`.
    fn diff(before: &Self::Schema, after: &Self::Schema) -> Diff;

    /// The SQL turning `before` into `after` on this database, destructive changes flagged.
    fn delta(&self, before: &Self::Schema, after: &Self::Schema) -> Delta;

    /// A verified backup before the database is changed, audited under `phase`; whatever it
    /// locks stays locked while this is alive.
    fn back_up(&mut self, reason: &str, phase: &str) -> Result<PathBuf, Error>;

    /// Records `m` as applied without running it, audits it as `action` with `detail`, gives
    /// the objects no module owns to `m`'s module and writes down the inferred owners, in one
    /// transaction.
    fn record_adopted(&mut self, m: &Migration, action: &str, detail: &str) -> Result<(), Error>;
}

/// Why a step fails when its module's schema after it is not its `schema.sql`: `difference`
/// is the module's difference from the snapshot (- expected, + actual), on either backend.
pub(crate) fn snapshot_differs(module: &str, difference: &str) -> String {
    format!(
        "module `{module}` after this step differs from its schema.sql (- expected, + actual):\n{}\n\
         Fix do.sql, or if the new schema is what you want, delete schema.sql and run \
         `strata migrate --write-snapshots` to write it again",
        difference.trim_end()
    )
}

/// Writes `sql` as the migration's schema.sql and, when `latest` (the migration is its module's
/// newest), as the module's LATEST/schema.sql. Returns the files written.
pub fn write_snapshot(m: &Migration, sql: &str, latest: bool) -> Result<Vec<PathBuf>, Error> {
    let mut paths = vec![m.file(SNAPSHOT)];
    if latest {
        let module_dir = m
            .dir
            .parent()
            .expect("a migration folder is inside its module");
        let latest_dir = module_dir.join(LATEST);
        std::fs::create_dir_all(&latest_dir).map_err(|e| Error::io(&latest_dir, e))?;
        paths.push(latest_dir.join(SNAPSHOT));
    }
    for path in &paths {
        std::fs::write(path, sql).map_err(|e| Error::io(path, e))?;
    }
    Ok(paths)
}
