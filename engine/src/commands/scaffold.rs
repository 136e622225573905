//! Creating project files: `strata init` (strata.toml and the migrations folder) and
//! `strata new` (the next stamped migration folder of a module).
//!
//! Writes only new files and folders (and the lines `init` adds to `.gitignore`); never
//! overwrites, never opens a database.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::core::config::{CONFIG_FILE, Config, Project, STATE_DIR};
use crate::core::error::Error;
use crate::core::tree::{self, STAMP_FORMAT};

/// Writes `strata.toml` and an empty migrations folder in `project.root`.
pub fn init(project: &Project) -> Result<Initialized, Error> {
    let path = project.root.join(CONFIG_FILE);
    let created = !path.exists();
    if !project.root.as_os_str().is_empty() {
        std::fs::create_dir_all(&project.root).map_err(|e| Error::io(&project.root, e))?;
    }
    if created {
        // Never overwrites: a second `init` keeps the file the user may have edited.
        std::fs::write(&path, Config::template()).map_err(|e| Error::io(&path, e))?;
    }
    let migrations = project.migrations_dir();
    std::fs::create_dir_all(&migrations).map_err(|e| Error::io(&migrations, e))?;
    let ignore = project.root.join(".gitignore");
    let existing = crate::core::input::read_project_text(&ignore, crate::core::input::FILE_BYTES)?
        .unwrap_or_default();
    let missing: Vec<String> = ignored(&project.config)
        .into_iter()
        .filter(|l| !existing.lines().any(|e| e.trim() == l))
        .collect();
    if !missing.is_empty() {
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# strata: local databases, the test database, backups and builds\n");
        for l in &missing {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&ignore, text).map_err(|e| Error::io(&ignore, e))?;
    }
    Ok(Initialized {
        config: path,
        created,
        ignore_lines: missing.len(),
    })
}

/// What `init` did: a project that already has its strata.toml is left as it is (only missing
/// folders and `.gitignore` lines are added), so running `init` twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initialized {
    /// The project's strata.toml.
    pub config: PathBuf,
    /// Whether this run wrote it (false: it was there already and is unchanged).
    pub created: bool,
    /// How many `.gitignore` lines this run added.
    pub ignore_lines: usize,
}

/// Creates `<migrations>/<module>/<stamp>-<slug>/do.sql` and returns the folder.
///
/// The stamp is now (UTC), or one second past the module's newest stamp if that is not older,
/// so two calls in the same second, or a clock behind the tree, never collide or fall out of
/// order. Concurrent calls are serialized by a lock file in `.strata/`.
/// A module that does not exist yet is started only with `new_module` (`--new-module`), so a
/// typo in the name is an error that suggests the closest module, not a new module.
pub fn new_migration(
    project: &Project,
    module: &str,
    slug: &str,
    new_module: bool,
) -> Result<PathBuf, Error> {
    tree::check_module_name(module).map_err(Error::Usage)?;
    tree::check_slug(slug).map_err(Error::Usage)?;
    require_module(project, module, new_module)?;
    let state = project.ensure_state_dir()?;
    let lock_path = state.join("new.lock");
    let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;

    let module_dir = project.migrations_dir().join(module);
    let existing = if module_dir.is_dir() {
        let tree = tree::Tree::load(&project.migrations_dir())?;
        tree.module(module).map(|m| m.id.stamp.clone()).collect()
    } else {
        Vec::new()
    };
    let stamp = next_stamp(Utc::now(), &existing);
    let dir = module_dir.join(format!("{stamp}-{slug}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let do_sql = dir.join("do.sql");
    std::fs::write(&do_sql, "").map_err(|e| Error::io(&do_sql, e))?;
    Ok(dir)
}

/// Which guest crate `strata new --transform/--seed/--check` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// `transform/`, building `transform.wasm`.
    Transform,
    /// `test-data/seed/`, building `test-data/seed.wasm` (test database only).
    Seed,
    /// `check/`, building `check.wasm`.
    Check,
}

impl Guest {
    fn dir(self) -> &'static str {
        match self {
            Guest::Transform => "transform",
            Guest::Seed => "test-data/seed",
            Guest::Check => "check",
        }
    }

    fn lib_rs(self, label: &str) -> String {
        let body = match self {
            Guest::Transform => {
                "use strata_sdk::{Result, log};\n\n\
                 /// Runs once, after do.sql, inside the step's transaction. Read with\n\
                 /// `sql::stream`/`sql::query`, write with `sql::Writer`/`sql::execute`.\n\
                 fn run() -> Result<()> {\n    log::info(\"nothing to do yet\");\n    Ok(())\n}\n\n\
                 strata_sdk::transform!(run);\n"
            }
            Guest::Seed => {
                "use serde::Deserialize;\nuse strata_sdk::{Result, log};\n\n\
                 /// The parameters: the \"$seed\" entry of the data.json beside seed.wasm.\n\
                 #[derive(Deserialize, Default)]\n#[serde(default)]\nstruct Params {\n    count: u32,\n}\n\n\
                 fn seed(params: Params) -> Result<()> {\n    \
                 log::info(format!(\"asked for {} rows\", params.count));\n    Ok(())\n}\n\n\
                 strata_sdk::seed!(seed);\n"
            }
            Guest::Check => {
                "use strata_sdk::Result;\n\n\
                 /// One message per violation; an empty list passes.\n\
                 fn check() -> Result<Vec<String>> {\n    Ok(Vec::new())\n}\n\n\
                 strata_sdk::check!(check);\n"
            }
        };
        format!("//! The {} component of {label}.\n\n{body}", self.dir())
    }
}

/// Where a new guest's SDK is: `STRATA_SDK` (a strata checkout's `sdk/`, for working on
/// strata itself), else the project's own copy, `strata-sdk/<version>/`, written if missing.
fn sdk_dir(root: &Path) -> Result<PathBuf, Error> {
    let dir = match std::env::var_os("STRATA_SDK") {
        Some(dir) => PathBuf::from(dir),
        None => crate::commands::sdk_copy::ensure(root)?,
    };
    std::fs::canonicalize(&dir)
        .ok()
        .filter(|d| d.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "cannot find strata-sdk at {}: set STRATA_SDK to the sdk/ folder of a strata \
                 checkout, or unset it to use the project's own copy",
                dir.display()
            ))
        })
}

/// `to` as a path relative to `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for c in to.components().skip(common) {
        out.push(c);
    }
    out
}

/// Starts a guest crate in the migration folder `dir`: Cargo.toml with the SDK as a path
/// dependency, a `lib.rs` that compiles, and a `migration.toml` with its `[sandbox]` section.
/// Plain files: no `cargo new`, so no nested git repository. Returns the crate folder.
pub fn guest_crate(
    project: &Project,
    dir: &Path,
    label: &str,
    guest: Guest,
) -> Result<PathBuf, Error> {
    let crate_dir = dir.join(guest.dir());
    let src = crate_dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| Error::io(&src, e))?;
    let absolute = std::fs::canonicalize(&crate_dir).map_err(|e| Error::io(&crate_dir, e))?;
    let root = if project.root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        project.root.as_path()
    };
    let sdk = relative(&absolute, &sdk_dir(root)?);
    let name = label.replace('/', "-").to_lowercase();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let manifest = format!(
        "[package]\nname = \"{name}-{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nstrata-sdk = {{ path = \"{}\" }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
         # A guest builds on its own, for wasm32-unknown-unknown (`strata build`).\n[workspace]\n",
        crate_dir.file_name().unwrap_or_default().to_string_lossy(),
        sdk.display()
    );
    for (path, text) in [
        (crate_dir.join("Cargo.toml"), manifest),
        (src.join("lib.rs"), guest.lib_rs(label)),
    ] {
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    write_sandbox_toml(dir)?;
    Ok(crate_dir)
}

/// The `app.py` of a new Python guest: it builds, and does nothing yet.
fn app_py(guest: Guest, label: &str) -> String {
    let body = match guest {
        Guest::Transform => {
            "from strata_sdk import log, sql, transform\n\n\n\
             @transform\n\
             def run() -> None:\n    \
             \"\"\"Runs once, after do.sql, inside the step's transaction. Read with\n    \
             `sql.stream`/`sql.query`, write with `sql.Writer`/`sql.execute`.\"\"\"\n    \
             log.info(\"nothing to do yet\")\n"
        }
        Guest::Seed => {
            "from typing import Any, Dict\n\n\
             from strata_sdk import log, seed, sql\n\n\n\
             @seed\n\
             def generate(params: Dict[str, Any]) -> None:\n    \
             \"\"\"`params`: the \"$seed\" entry of the data.json beside seed.wasm.\"\"\"\n    \
             count = int(params.get(\"count\", 0))\n    \
             log.info(f\"asked for {count} rows\")\n"
        }
        Guest::Check => {
            "from typing import List\n\n\
             from strata_sdk import check, sql\n\n\n\
             @check\n\
             def violations() -> List[str]:\n    \
             \"\"\"One message per violation; an empty list passes.\"\"\"\n    \
             return []\n"
        }
    };
    format!(
        "\"\"\"The {} component of {label}.\"\"\"\n\n{body}",
        guest.dir()
    )
}

/// Starts a Python guest in the migration folder `dir`: `app.py`, a `strata-guest.toml` naming
/// the project's Python SDK by a relative path, and `migration.toml` with its `[sandbox]`
/// section. Returns the guest folder.
pub fn python_guest(
    project: &Project,
    dir: &Path,
    label: &str,
    guest: Guest,
) -> Result<PathBuf, Error> {
    let guest_dir = dir.join(guest.dir());
    std::fs::create_dir_all(&guest_dir).map_err(|e| Error::io(&guest_dir, e))?;
    let absolute = std::fs::canonicalize(&guest_dir).map_err(|e| Error::io(&guest_dir, e))?;
    let root = if project.root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        project.root.as_path()
    };
    let sdk = match std::env::var_os("STRATA_SDK_PYTHON") {
        Some(dir) => PathBuf::from(dir),
        None => {
            crate::commands::sdk_copy::ensure(root)?.join(crate::commands::sdk_copy::PYTHON_DIR)
        }
    };
    let sdk = std::fs::canonicalize(&sdk)
        .ok()
        .filter(|d| d.join("strata_sdk/__init__.py").is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "cannot find the Python SDK (strata_sdk/) at {}: set STRATA_SDK_PYTHON to the \
                 sdk-python/ folder of a strata checkout, or unset it to use the project's own copy",
                sdk.display()
            ))
        })?;
    let manifest = format!(
        "# A Python guest: `strata build` turns app.py (and the modules beside it) into {} with\n\
         # componentize-py {}. `sdk` is the Python SDK it builds against, relative to this folder.\n\
         sdk = \"{}\"\n",
        match guest {
            Guest::Transform => "transform.wasm",
            Guest::Seed => "seed.wasm",
            Guest::Check => "check.wasm",
        },
        crate::commands::build::python::COMPONENTIZE_PY_VERSION,
        relative(&absolute, &sdk).display()
    );
    for (path, text) in [
        (
            guest_dir.join(crate::commands::build::python::GUEST_FILE),
            manifest,
        ),
        (
            guest_dir.join(crate::core::guest::ENTRY),
            app_py(guest, label),
        ),
    ] {
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    write_sandbox_toml(dir)?;
    Ok(guest_dir)
}

fn write_sandbox_toml(dir: &Path) -> Result<(), Error> {
    let toml = dir.join(crate::core::config::MIGRATION_CONFIG_FILE);
    if !toml.exists() {
        let text = "# What this migration's components may touch, and their limits (capped by\n\
                    # strata.toml's [sandbox]). Without reads and writes: every table but\n\
                    # strata's own, read and written. With reads alone: no writes. With writes\n\
                    # alone: every table read. A check component never writes.\n\
                    [sandbox]\n\
                    # reads = [\"people\"]\n\
                    # writes = [\"people\"]\n\
                    # fuel = 50_000_000_000\n\
                    # memory_mib = 256\n\
                    # timeout_s = 600\n";
        std::fs::write(&toml, text).map_err(|e| Error::io(&toml, e))?;
    }
    Ok(())
}

/// Refuses a module that does not exist unless `new_module` says to start it.
pub fn require_module(project: &Project, module: &str, new_module: bool) -> Result<(), Error> {
    if new_module || project.migrations_dir().join(module).is_dir() {
        return Ok(());
    }
    let known = tree::Tree::load(&project.migrations_dir())?.modules;
    Err(Error::Usage(format!(
        "{}. To start a new module `{module}`, pass --new-module",
        tree::unknown_module(module, &known)
    )))
}

/// The `.gitignore` lines `strata init` makes sure of: strata's own folder and the databases.
fn ignored(config: &Config) -> Vec<String> {
    let db = config.db.display().to_string();
    vec![
        format!("/{STATE_DIR}/"),
        format!("/{db}"),
        format!("/{db}-journal"),
        format!("/{db}-wal"),
        format!("/{db}-shm"),
        format!("/{db}.strata-lock"),
    ]
}

/// `now` as a stamp, or one second past the newest of `existing` if that is not older.
pub fn next_stamp(now: DateTime<Utc>, existing: &[String]) -> String {
    let newest = existing
        .iter()
        .filter_map(|s| tree::parse_stamp(s).ok())
        .max()
        .map(|t| t.and_utc());
    let now = now.trunc_subsecs(0);
    let stamp = match newest {
        Some(newest) if newest >= now => newest + TimeDelta::seconds(1),
        _ => now,
    };
    stamp.format(STAMP_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        tree::parse_stamp(s).unwrap().and_utc()
    }

    #[test]
    fn the_stamp_is_now_when_the_module_is_older() {
        let s = next_stamp(at("20240102T000000Z"), &["20240101T000000Z".into()]);
        assert_eq!(s, "20240102T000000Z");
    }

    #[test]
    fn the_same_second_moves_on_by_one() {
        let s = next_stamp(at("20240102T000000Z"), &["20240102T000000Z".into()]);
        assert_eq!(s, "20240102T000001Z");
    }

    #[test]
    fn fractions_of_a_second_do_not_count() {
        let now = at("20240102T000000Z") + TimeDelta::milliseconds(700);
        let s = next_stamp(now, &["20240102T000000Z".into()]);
        assert_eq!(s, "20240102T000001Z");
    }

    #[test]
    fn a_clock_behind_the_tree_stays_in_order() {
        let s = next_stamp(at("20230101T000000Z"), &["20240102T235959Z".into()]);
        assert_eq!(s, "20240103T000000Z");
    }
}
