//! The project: where it lives, `strata.toml`, and the paths and settings derived from them.
//!
//! This module reads and writes `strata.toml` and resolves paths; it knows nothing of databases
//! beyond their paths and the busy timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The name of the project configuration file.
pub const CONFIG_FILE: &str = "strata.toml";
/// The folder for strata's own files (test database, backups, build output).
pub const STATE_DIR: &str = ".strata";

/// `strata.toml`. Every key is optional; relative paths are relative to the file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The migrations folder.
    pub migrations: PathBuf,
    /// The real database.
    pub db: PathBuf,
    /// The test database that every run rehearses on first.
    pub test_db: PathBuf,
    /// How long to wait for another writer's lock before refusing (exit 3).
    pub busy_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            migrations: PathBuf::from("migrations"),
            db: PathBuf::from("app.db"),
            test_db: PathBuf::from(STATE_DIR).join("test.db"),
            busy_timeout_ms: 5_000,
        }
    }
}

impl Config {
    /// The file `strata init` writes: every key with its default and a comment.
    pub fn template() -> String {
        let d = Config::default();
        format!(
            "# strata project configuration. Relative paths are relative to this file.\n\
             \n\
             # The migrations folder: <module>/<YYYYMMDDTHHMMSSZ>-<slug>/do.sql ...\n\
             migrations = \"{}\"\n\
             # The real database.\n\
             db = \"{}\"\n\
             # The test database every run rehearses on first, with test data.\n\
             test_db = \"{}\"\n\
             # How long to wait for another writer before refusing (exit 3).\n\
             busy_timeout_ms = {}\n",
            d.migrations.display(),
            d.db.display(),
            d.test_db.display(),
            d.busy_timeout_ms
        )
    }
}

/// A resolved project: its folder, its configuration and the paths that follow from them.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder, as a path usable from the current directory (empty for `.`).
    pub root: PathBuf,
    pub config: Config,
    /// The real database (after `--db`).
    pub db: PathBuf,
    /// The test database (after `--test-db`).
    pub test_db: PathBuf,
}

impl Project {
    /// Finds the project: `dir` if given, else the nearest folder upwards from the current one
    /// that holds `strata.toml`, else the current folder.
    pub fn discover(dir: Option<&Path>) -> Result<Project, Error> {
        let root = match dir {
            Some(dir) => dir.to_path_buf(),
            None => find_config_dir().unwrap_or_default(),
        };
        Project::open(root)
    }

    /// Opens the project in `root`, reading its `strata.toml` if there is one.
    pub fn open(root: PathBuf) -> Result<Project, Error> {
        let path = root.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Error::input(
                    &path,
                    format!("{}; see `strata init` for the keys", e.message()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(Error::io(path, e)),
        };
        Ok(Project {
            db: root.join(&config.db),
            test_db: root.join(&config.test_db),
            root,
            config,
        })
    }

    /// The migrations folder.
    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join(&self.config.migrations)
    }

    /// `.strata/`, strata's own folder in the project.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// How long a connection waits for another writer.
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.config.busy_timeout_ms)
    }

    /// Creates `.strata/` with a `.gitignore` that keeps it out of version control.
    pub fn ensure_state_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(
                &ignore,
                "# strata's local state: test database, backups, builds\n*\n",
            )
            .map_err(|e| Error::io(&ignore, e))?;
        }
        Ok(dir)
    }
}

/// The nearest folder upwards from the current one holding `strata.toml`, relative when it is
/// the current folder itself.
fn find_config_dir() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    if cwd.join(CONFIG_FILE).is_file() {
        return Some(PathBuf::new());
    }
    cwd.ancestors()
        .skip(1)
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_back_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::template()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "databse = \"x.db\"\n").unwrap();
        let err = Project::open(dir.path().to_path_buf()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("strata.toml"), "{msg}");
        assert!(msg.contains("databse"), "{msg}");
        assert_eq!(err.exit_code(), crate::exit::BAD_INPUT);
    }

    #[test]
    fn paths_are_relative_to_the_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "db = \"data/prod.db\"\n").unwrap();
        let p = Project::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(p.db, dir.path().join("data/prod.db"));
        assert_eq!(p.test_db, dir.path().join(".strata/test.db"));
        assert_eq!(p.migrations_dir(), dir.path().join("migrations"));
    }
}
