//! The guest SDK a project carries with it: `strata-sdk/<version>/` in the project, written
//! from the copy of `sdk/` and `wire/` compiled into this binary. A scaffolded guest crate
//! depends on it by a path inside the project, so it builds in any checkout and in CI; a folder
//! is written once per SDK version and never changed afterwards, so a migration written against
//! an older SDK keeps rebuilding against that one after strata moves on.

use std::path::{Path, PathBuf};

use crate::core::error::Error;

/// The folder of the project that holds one subfolder per SDK version.
pub const SDK_DIR: &str = "strata-sdk";

/// The subfolder of a version's folder that holds the Python SDK (`strata_sdk/`).
pub const PYTHON_DIR: &str = "python";

/// The Python SDK's files, relative to the version's folder.
const PYTHON_FILES: &[(&str, &str)] = &[
    (
        "python/strata_sdk/__init__.py",
        include_str!("../../../sdk-python/strata_sdk/__init__.py"),
    ),
    (
        "python/strata_sdk/errors.py",
        include_str!("../../../sdk-python/strata_sdk/errors.py"),
    ),
    (
        "python/strata_sdk/log.py",
        include_str!("../../../sdk-python/strata_sdk/log.py"),
    ),
    (
        "python/strata_sdk/sql.py",
        include_str!("../../../sdk-python/strata_sdk/sql.py"),
    ),
    (
        "python/strata_sdk/py.typed",
        include_str!("../../../sdk-python/strata_sdk/py.typed"),
    ),
    (
        "python/README.md",
        include_str!("../../../sdk-python/README.md"),
    ),
];

/// This binary's SDK version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The SDK's files, relative to its folder, as this binary was built with them.
const FILES: &[(&str, &str)] = &[
    (
        "src/bindings.rs",
        include_str!("../../../sdk/src/bindings.rs"),
    ),
    ("src/de.rs", include_str!("../../../sdk/src/de.rs")),
    ("src/error.rs", include_str!("../../../sdk/src/error.rs")),
    ("src/glue.rs", include_str!("../../../sdk/src/glue.rs")),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/log.rs", include_str!("../../../sdk/src/log.rs")),
    ("src/params.rs", include_str!("../../../sdk/src/params.rs")),
    ("src/sql.rs", include_str!("../../../sdk/src/sql.rs")),
    ("src/value.rs", include_str!("../../../sdk/src/value.rs")),
    (
        "wit/strata.wit",
        include_str!("../../../sdk/wit/strata.wit"),
    ),
    ("wire/src/lib.rs", include_str!("../../../wire/src/lib.rs")),
];

/// The manifests of the copy: the workspace's own inherit their versions, these spell them out
/// (the same requirements as the workspace's Cargo.toml; a unit test keeps them equal).
fn manifests() -> [(&'static str, String); 2] {
    [
        (
            "Cargo.toml",
            format!(
                "# strata's guest SDK {VERSION}, copied into this project by `strata new`.\n\
                 # Guest crates of this project depend on it by path; leave it as it is (a newer\n\
                 # strata adds a folder of its own beside it).\n\
                 [package]\nname = \"strata-sdk\"\nversion = \"{VERSION}\"\nedition = \"2024\"\n\
                 rust-version = \"1.95\"\nlicense = \"Apache-2.0\"\npublish = false\n\n\
                 [dependencies]\n{SERDE}\n{SERDE_JSON}\nstrata-wire = {{ path = \"wire\" }}\n\
                 {WIT_BINDGEN}\n"
            ),
        ),
        (
            "wire/Cargo.toml",
            format!(
                "[package]\nname = \"strata-wire\"\nversion = \"{VERSION}\"\nedition = \"2024\"\n\
                 rust-version = \"1.95\"\nlicense = \"Apache-2.0\"\npublish = false\n\n\
                 [dependencies]\n"
            ),
        ),
    ]
}

const SERDE: &str = "serde = { version = \"1\", features = [\"derive\"] }";
const SERDE_JSON: &str = "serde_json = { version = \"1\", features = [\"preserve_order\"] }";
const WIT_BINDGEN: &str = "wit-bindgen = \"0.61\"";

/// Makes sure `<root>/strata-sdk/<VERSION>/` holds this binary's SDK and returns it. An
/// existing folder is left exactly as it is: it is what earlier guests were built against.
pub fn ensure(root: &Path) -> Result<PathBuf, Error> {
    let dir = root.join(SDK_DIR).join(VERSION);
    if dir.join("Cargo.toml").is_file() {
        ensure_python(&dir)?;
        return Ok(dir);
    }
    // Written beside, then renamed into place: a folder that exists is always complete.
    let parent = root.join(SDK_DIR);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = parent.join(format!(".{VERSION}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let manifests = manifests();
    let files = FILES
        .iter()
        .chain(PYTHON_FILES)
        .map(|(path, text)| (*path, *text))
        .chain(manifests.iter().map(|(path, text)| (*path, text.as_str())));
    for (path, text) in files {
        let file = staging.join(path);
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another `strata new` finished first: its copy is the same.
        Err(_) if dir.join("Cargo.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(Error::io(&dir, e)),
    }
}

/// Adds `python/` to a version's folder written before the Python SDK existed (by an older
/// strata of the same version); an existing `python/` is left as it is.
fn ensure_python(dir: &Path) -> Result<(), Error> {
    let python = dir.join(PYTHON_DIR);
    if python.exists() {
        return Ok(());
    }
    let staging = dir.join(format!(".{PYTHON_DIR}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (path, text) in PYTHON_FILES {
        let rel = path.strip_prefix("python/").unwrap_or(path);
        let file = staging.join(rel);
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    }
    match std::fs::rename(&staging, &python) {
        Ok(()) => Ok(()),
        Err(_) if python.join("strata_sdk").is_dir() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => Err(Error::io(&python, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy's dependency requirements are the workspace's.
    #[test]
    fn the_copy_asks_for_the_workspace_dependencies() {
        let workspace = include_str!("../../../Cargo.toml");
        for line in [SERDE, SERDE_JSON, WIT_BINDGEN] {
            assert!(workspace.lines().any(|l| l == line), "{line}");
        }
        let sdk = include_str!("../../../sdk/Cargo.toml");
        for dep in ["serde", "serde_json", "wit-bindgen", "strata-wire"] {
            assert!(sdk.contains(&format!("{dep}.workspace = true")), "{dep}");
        }
        let deps = sdk
            .split("[dependencies]")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| !l.starts_with('['))
            .filter(|l| !l.trim().is_empty())
            .count();
        assert_eq!(
            deps, 4,
            "a new SDK dependency must be added to the copy's manifest"
        );
    }

    #[test]
    fn every_sdk_source_is_in_the_copy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for folder in ["sdk/src", "sdk/wit"] {
            for entry in std::fs::read_dir(root.join(folder)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let rel = format!("{}/{name}", folder.trim_start_matches("sdk/"));
                assert!(FILES.iter().any(|(p, _)| *p == rel), "{rel} is not copied");
            }
        }
        for entry in std::fs::read_dir(root.join("sdk-python/strata_sdk")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name == "__pycache__" {
                continue;
            }
            let rel = format!("python/strata_sdk/{name}");
            assert!(
                PYTHON_FILES.iter().any(|(p, _)| *p == rel),
                "{rel} is not copied"
            );
        }
    }

    #[test]
    fn ensure_writes_once_and_keeps_what_is_there() {
        let root = tempfile::tempdir().unwrap();
        let dir = ensure(root.path()).unwrap();
        assert_eq!(dir, root.path().join(SDK_DIR).join(VERSION));
        assert!(dir.join("wit/strata.wit").is_file());
        assert!(dir.join("wire/src/lib.rs").is_file());
        assert!(dir.join("python/strata_sdk/sql.py").is_file());
        // A folder from before the Python SDK gets python/ added, and nothing else changed.
        std::fs::remove_dir_all(dir.join("python")).unwrap();
        ensure(root.path()).unwrap();
        assert!(dir.join("python/strata_sdk/__init__.py").is_file());
        std::fs::write(dir.join("src/lib.rs"), "// kept").unwrap();
        ensure(root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
            "// kept"
        );
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join(SDK_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from(VERSION)]);
    }
}
