//! The project's own files in every spelling: folders (all they hold) and single files, known by
//! their canonical paths and, on Unix, by the identity (device and inode) of each file, so that
//! no other path, symbolic link or hard link passes for something else. Fleet targets may not be
//! one of them, and a migration's read-only `ATTACH` may not open one of the project's
//! databases.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::core::config::Project;
use crate::core::target::Database;

/// A set of files and folders, each in every spelling.
#[derive(Debug, Default, Clone)]
pub struct OwnFiles {
    /// Canonical folders: everything under one is held.
    dirs: Vec<PathBuf>,
    /// Canonical files.
    files: Vec<PathBuf>,
    /// Device and inode of every file held (those in the folders too).
    #[cfg(unix)]
    inodes: HashSet<(u64, u64)>,
}

impl OwnFiles {
    /// `dirs` (with every file in them, at any depth) and `files`, as they are now.
    pub fn new(dirs: &[PathBuf], files: &[PathBuf]) -> OwnFiles {
        let dirs: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
        let mut all: Vec<PathBuf> = files.to_vec();
        let mut folders = dirs.clone();
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => folders.push(entry.path()),
                    Ok(t) if t.is_file() => all.push(entry.path()),
                    Ok(_) => {}
                    Err(_) => {}
                }
            }
        }
        #[cfg(unix)]
        let inodes: HashSet<(u64, u64)> = {
            use std::os::unix::fs::MetadataExt as _;
            all.iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .filter(|m| m.is_file())
                .map(|m| (m.dev(), m.ino()))
                .collect()
        };
        OwnFiles {
            dirs,
            files: files.iter().filter_map(|f| canonical(f)).collect(),
            #[cfg(unix)]
            inodes,
        }
    }

    /// The project's databases: its real and test databases when they are files, every file of
    /// `.strata/` (the backups, the test database, strata's state) and the SQLite control
    /// databases of its fleet groups.
    pub fn databases_of(project: &Project) -> OwnFiles {
        let mut files = Vec::new();
        for db in [&project.db, &project.test_db] {
            if let Database::Sqlite(f) = db {
                files.push(project.root.join(f));
            }
        }
        for g in &project.config.fleet.group {
            if let Some(control) = &g.control
                && !crate::core::target::is_url(&control.to_string_lossy())
            {
                files.push(project.root.join(control));
            }
        }
        OwnFiles::new(&[project.state_dir()], &files)
    }

    /// Whether an `ATTACH` of `filename` (the literal as SQLite reads it) opens one of the files
    /// held.
    pub fn attached_by(&self, filename: &str) -> bool {
        crate::core::sql::sqlite::attached_path(filename).is_some_and(|path| self.holds(&path))
    }

    /// Whether `path` is (or would be made) one of the files held, in any spelling.
    pub fn holds(&self, path: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            if let Ok(meta) = std::fs::metadata(path)
                && self.inodes.contains(&(meta.dev(), meta.ino()))
            {
                return true;
            }
        }
        canonical(path)
            .is_some_and(|c| self.files.contains(&c) || self.dirs.iter().any(|d| c.starts_with(d)))
    }
}

/// `path` with every link resolved; for a file that does not exist yet, its folder's canonical
/// path and its name.
fn canonical(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok().or_else(|| {
        let parent = path.parent().filter(|d| !d.as_os_str().is_empty());
        let parent = parent.map_or_else(|| Path::new(".").canonicalize(), Path::canonicalize);
        Some(parent.ok()?.join(path.file_name()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another path, a symbolic link or a hard link to a file held is held; a file beside it
    /// is not.
    #[test]
    fn a_file_is_held_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".strata/backups")).unwrap();
        std::fs::write(root.join("app.db"), "x").unwrap();
        std::fs::write(root.join(".strata/backups/b.db"), "x").unwrap();
        std::fs::write(root.join("other.db"), "x").unwrap();
        let own = OwnFiles::new(&[root.join(".strata")], &[root.join("app.db")]);
        std::fs::hard_link(root.join("app.db"), root.join("link.db")).unwrap();
        std::fs::hard_link(root.join(".strata/backups/b.db"), root.join("b-link.db")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("app.db"), root.join("sym.db")).unwrap();
        for held in [
            root.join("app.db"),
            root.join("./.strata/../app.db"),
            root.join("link.db"),
            root.join("b-link.db"),
            root.join(".strata/backups/b.db"),
            root.join(".strata/test.db"),
        ] {
            assert!(own.holds(&held), "{}", held.display());
        }
        #[cfg(unix)]
        assert!(own.holds(&root.join("sym.db")));
        assert!(!own.holds(&root.join("other.db")));
        assert!(!own.holds(&root.join("missing.db")));
    }
}
