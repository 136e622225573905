//! Creating project files: `strata init` (strata.toml and the migrations folder) and
//! `strata new` (the next stamped migration folder of a module).
//!
//! Writes only new files and folders (and the lines `init` adds to `.gitignore`); never
//! overwrites, never opens a database.

use std::fs::File;
use std::path::PathBuf;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::config::{CONFIG_FILE, Config, Project, STATE_DIR};
use crate::error::Error;
use crate::tree::{self, STAMP_FORMAT};

/// Writes `strata.toml` and an empty migrations folder in `project.root`.
pub fn init(project: &Project) -> Result<PathBuf, Error> {
    let path = project.root.join(CONFIG_FILE);
    if path.exists() {
        return Err(Error::input(
            &path,
            "already exists: this folder is a strata project; edit the file instead",
        ));
    }
    if !project.root.as_os_str().is_empty() {
        std::fs::create_dir_all(&project.root).map_err(|e| Error::io(&project.root, e))?;
    }
    std::fs::write(&path, Config::template()).map_err(|e| Error::io(&path, e))?;
    let migrations = project.migrations_dir();
    std::fs::create_dir_all(&migrations).map_err(|e| Error::io(&migrations, e))?;
    let ignore = project.root.join(".gitignore");
    let existing = match std::fs::read_to_string(&ignore) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&ignore, e)),
    };
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
        for l in missing {
            text.push_str(&l);
            text.push('\n');
        }
        std::fs::write(&ignore, text).map_err(|e| Error::io(&ignore, e))?;
    }
    Ok(path)
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
