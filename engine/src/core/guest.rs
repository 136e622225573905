//! Where a migration's guest sources and components are (Rust crates or Python folders, by
//! their place in the folder or `[build]`), and whether a committed component is older than its
//! sources (the record `strata build` writes beside it). `crate::commands::build` builds them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::components::World;
use crate::core::checksum::hex;
use crate::core::config::MigrationBuild;
use crate::core::error::Error;
use crate::core::tree::Migration;

/// The language of a guest: a Rust crate (Cargo.toml) or a Python folder (app.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
}

impl Lang {
    /// The language of the guest in `dir`, if `dir` holds one.
    pub fn of(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if is_python(dir) {
            Some(Lang::Python)
        } else {
            None
        }
    }
}

/// The four places a guest crate can be: its world, its source folder (from `[build]` or the
/// default), whether `[build]` named it, and the `.wasm` it builds.
pub(crate) fn slots(
    m: &Migration,
    build: &MigrationBuild,
) -> [(World, PathBuf, bool, &'static str); 4] {
    let at = |configured: &Option<PathBuf>, default: &str| {
        (
            m.dir
                .join(configured.clone().unwrap_or_else(|| PathBuf::from(default))),
            configured.is_some(),
        )
    };
    let (t, tn) = at(&build.transform, "transform");
    let (ts, tsn) = at(&build.test_seed, "test-data/seed");
    let (ps, psn) = at(&build.proj_seed, "proj-data/seed");
    let (c, cn) = at(&build.check, "check");
    [
        (World::Transform, t, tn, "transform.wasm"),
        (World::Seed, ts, tsn, "test-data/seed.wasm"),
        (World::Seed, ps, psn, "proj-data/seed.wasm"),
        (World::Check, c, cn, "check.wasm"),
    ]
}

/// The suffix of the file beside each built `.wasm` that records what it was built from
/// (`transform.wasm.built-from`): committed with it, never pinned.
pub const BUILT_FROM: &str = ".built-from";

/// Checks a migration's components against their guest crates before anything runs: a crate
/// whose `.wasm` is missing is an error (the step would silently run without it, and be
/// pinned so); a `.wasm` whose crate changed since `strata build` recorded its sources comes
/// back as a warning, one per component.
pub fn check_components(m: &Migration, build: &MigrationBuild) -> Result<Vec<String>, Error> {
    let mut stale = Vec::new();
    for (_, source, configured, output) in slots(m, build) {
        // A default crate folder the tree's listing did not show is not looked for.
        let listed = source
            .strip_prefix(&m.dir)
            .ok()
            .and_then(|rel| m.held(&rel.to_string_lossy()));
        if (!configured && listed == Some(false)) || Lang::of(&source).is_none() {
            continue;
        }
        let wasm = m.file(output);
        if !wasm.is_file() {
            return Err(Error::input(
                &wasm,
                format!(
                    "is missing, but its guest crate {} is there: without it the step would run \
                     without its component and be pinned so. Build it with `strata build {}` \
                     (then commit the .wasm)",
                    source.display(),
                    m.label()
                ),
            ));
        }
        let record = record_path(&wasm);
        let Ok(Some(text)) =
            crate::core::input::read_project_text(&record, crate::core::input::CONFIG_BYTES)
        else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(key)?
                        .trim()
                        .strip_prefix('=')?
                        .trim()
                        .strip_prefix('"')?
                        .strip_suffix('"')
                })
                .map(str::to_string)
        };
        let sha = crate::core::input::component_sha256(&wasm)?
            .ok_or_else(|| Error::input(&wasm, "is gone: it was there a moment ago"))?;
        if field("wasm_sha256").as_deref() != Some(hex(&sha).as_str()) {
            stale.push(format!(
                "{} was not built from the sources {} records (the .wasm changed since): \
                 rebuild it with `strata build {}`",
                wasm.display(),
                record.display(),
                m.label()
            ));
        } else if field("sources_sha256").as_deref() != Some(sources_sha256(&source)?.as_str()) {
            stale.push(format!(
                "{} is older than its sources: {} changed since `strata build` made it; rebuild \
                 it with `strata build {}` (what runs is the committed .wasm)",
                wasm.display(),
                source.display(),
                m.label()
            ));
        }
    }
    Ok(stale)
}

pub(crate) fn record_path(wasm: &Path) -> PathBuf {
    let mut name = wasm.as_os_str().to_owned();
    name.push(BUILT_FROM);
    PathBuf::from(name)
}

/// The sha256 of a guest crate's sources: every file under `dir` but `target/`, `__pycache__/`
/// and hidden entries, by relative path, CRLF read as LF.
pub fn sources_sha256(dir: &Path) -> Result<String, Error> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), Error> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || name == "__pycache__"
                || (rel.as_os_str().is_empty() && name == "target")
            {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &rel.join(&name), out)?;
            } else {
                out.push((rel.join(&name).to_string_lossy().into_owned(), path));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for (rel, path) in files {
        let bytes = crate::core::input::read_project_file(&path, crate::core::input::FILE_BYTES)?
            .ok_or_else(|| Error::input(&path, "is gone: it was there a moment ago"))?;
        let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The file that makes a folder a Python guest: the module componentize-py loads.
pub const ENTRY: &str = "app.py";

/// Whether `dir` holds a Python guest.
pub fn is_python(dir: &Path) -> bool {
    dir.join(ENTRY).is_file()
}
