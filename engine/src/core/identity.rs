//! A file's identity in every spelling: its canonical path (its folder's, when the file does
//! not exist yet) and, on Unix, its device and inode, so that another path, `..`, a symbolic
//! link or a hard link all name the same file. [`Reserved`] is a set of files and folders that
//! a database named by a user may never be (strata's own folder, the migrations tree,
//! `strata.toml`, control databases), built once and asked per database.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `p` made absolute with every link resolved; for a file that does not exist yet, its
/// folder's canonical path joined with its name (the current folder when it has none).
pub fn canonical(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = match parent {
        Some(d) => d.canonicalize().ok()?,
        None => std::env::current_dir().ok()?,
    };
    Some(dir.join(p.file_name()?))
}

/// The device and inode of the file `p` names (following links), where there is one.
#[cfg(unix)]
fn inode(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_: &Path) -> Option<(u64, u64)> {
    None
}

/// Whether two paths name one file: the same canonical path, or the same device and inode.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Some(x), Some(y)) = (inode(a), inode(b))
        && x == y
    {
        return true;
    }
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Files and folders no database may be, in any spelling: a path inside one of the folders, one
/// of the files, or a hard link to any file in either.
#[derive(Debug, Default)]
pub struct Reserved {
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
    inodes: HashSet<(u64, u64)>,
}

impl Reserved {
    /// The set of `folders` (everything under them, at any depth) and `files`; paths that do
    /// not exist are kept by their canonical spelling and reserve what is created there later.
    pub fn new(folders: &[PathBuf], files: &[PathBuf]) -> Reserved {
        let mut set = Reserved {
            folders: folders.iter().filter_map(|f| canonical(f)).collect(),
            files: files.iter().filter_map(|f| canonical(f)).collect(),
            inodes: files.iter().filter_map(|f| inode(f)).collect(),
        };
        set.add_inodes_under(folders);
        set
    }

    /// Records the identity of every file under `folders` (links are not followed: a link's
    /// target outside is not reserved by being linked to).
    #[cfg(unix)]
    fn add_inodes_under(&mut self, folders: &[PathBuf]) {
        use std::os::unix::fs::MetadataExt as _;
        let mut pending: Vec<PathBuf> = folders.to_vec();
        while let Some(folder) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if meta.is_file() {
                    self.inodes.insert((meta.dev(), meta.ino()));
                }
            }
        }
    }

    #[cfg(not(unix))]
    fn add_inodes_under(&mut self, _: &[PathBuf]) {}

    /// The project's databases: its real and test databases when they are files, everything
    /// in `.strata/` (the backups, the test database, strata's state) and the SQLite control
    /// databases of its fleet groups. A migration's `ATTACH` may not open one of them, even
    /// read-only.
    pub fn databases_of(project: &crate::core::config::Project) -> Reserved {
        use crate::core::target::Database;
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
        Reserved::new(&[project.state_dir()], &files)
    }

    /// Whether an `ATTACH` of `filename` (the literal as SQLite reads it: a path, relative to
    /// the process's folder, or a `file:` URI) opens one of the reserved files.
    pub fn attached_by(&self, filename: &str) -> bool {
        crate::core::sql::sqlite::attached_path(filename).is_some_and(|path| self.holds(&path))
    }

    /// Whether `db` is (or would be created as) one of the reserved files, or inside one of the
    /// reserved folders.
    pub fn holds(&self, db: &Path) -> bool {
        if inode(db).is_some_and(|i| self.inodes.contains(&i)) {
            return true;
        }
        canonical(db).is_some_and(|c| {
            self.files.contains(&c) || self.folders.iter().any(|f| c.starts_with(f))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_file_is_held_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tree/a")).unwrap();
        std::fs::write(root.join("tree/a/undo.sql"), "").unwrap();
        std::fs::write(root.join("strata.toml"), "").unwrap();
        std::fs::write(root.join("tenant.db"), "").unwrap();
        let set = Reserved::new(&[root.join("tree")], &[root.join("strata.toml")]);
        std::fs::hard_link(root.join("tree/a/undo.sql"), root.join("linked.db")).unwrap();
        std::fs::hard_link(root.join("strata.toml"), root.join("toml.db")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("strata.toml"), root.join("sym.db")).unwrap();
        for held in [
            "tree/a/undo.sql",
            "tree/a/new.db",
            "tree/../tree/a/x.db",
            "strata.toml",
            "./strata.toml",
            "linked.db",
            "toml.db",
            #[cfg(unix)]
            "sym.db",
        ] {
            assert!(set.holds(&root.join(held)), "{held} is reserved");
        }
        for free in ["tenant.db", "new.db", "tree2.db"] {
            assert!(!set.holds(&root.join(free)), "{free} is not reserved");
        }
        assert!(same_file(&root.join("toml.db"), &root.join("strata.toml")));
        assert!(!same_file(
            &root.join("tenant.db"),
            &root.join("strata.toml")
        ));
    }
}
