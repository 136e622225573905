//! What pins an applied migration: a manifest of the files that run, and one checksum over it.
//!
//! The manifest lists, in a fixed order, each present file of [`PINNED_FILES`] with the sha256 of
//! its content; text files are read with CRLF as LF so a checkout on another OS does not look
//! modified. The checksum is the sha256 of the manifest written as `sha256sum` lines. Guest crate
//! sources and `schema.sql` are not pinned: the committed `.wasm` is what runs, and the snapshot
//! is written by the tool. This module reads files; it never touches a database.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// The files that run, in the order they are hashed.
pub const PINNED_FILES: &[&str] = &[
    "do.sql",
    "migration.toml",
    "transform.wasm",
    "test-data/data.json",
    "test-data/seed.wasm",
    "proj-data/data.json",
    "proj-data/seed.wasm",
    "checks.sql",
    "check.wasm",
];

/// The sha256 of each pinned file present in a migration folder, in [`PINNED_FILES`] order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<(String, String)>,
}

impl Manifest {
    /// Hashes the pinned files of the migration folder `dir`.
    pub fn of_dir(dir: &Path) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for name in PINNED_FILES {
            let path = dir.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path, e)),
            };
            entries.push((name.to_string(), hash_file(name, &bytes)));
        }
        Ok(Manifest { entries })
    }

    /// The migration's checksum: sha256 over the manifest's `<sha256>  <file>` lines.
    pub fn checksum(&self) -> String {
        hex(&Sha256::digest(self.to_lines().as_bytes()))
    }

    /// The manifest as `sha256sum` lines, the form stored in the ledger.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        for (name, sha) in &self.entries {
            let _ = writeln!(out, "{sha}  {name}");
        }
        out
    }

    /// Parses what [`Manifest::to_lines`] wrote; `None` if it is not in that form.
    pub fn from_lines(text: &str) -> Option<Self> {
        let entries = text
            .lines()
            .map(|line| {
                let (sha, name) = line.split_once("  ")?;
                Some((name.to_string(), sha.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest { entries })
    }

    /// The files that differ between `self` (recorded) and `now`, in pinned order:
    /// changed, added or removed.
    pub fn changed_files(&self, now: &Manifest) -> Vec<PathBuf> {
        PINNED_FILES
            .iter()
            .filter(|name| self.get(name) != now.get(name))
            .map(PathBuf::from)
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, sha)| sha.as_str())
    }
}

/// sha256 of one pinned file, reading text files with CRLF as LF.
fn hash_file(name: &str, bytes: &[u8]) -> String {
    if name.ends_with(".wasm") {
        return hex(&Sha256::digest(bytes));
    }
    let mut hasher = Sha256::new();
    let mut rest = bytes;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        hasher.update(&rest[..pos]);
        hasher.update(b"\n");
        rest = &rest[pos + 2..];
    }
    hasher.update(rest);
    hex(&hasher.finalize())
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn crlf_and_lf_text_files_have_the_same_checksum() {
        let lf = dir_with(&[("do.sql", b"CREATE TABLE t(a);\nINSERT INTO t VALUES (1);\n")]);
        let crlf = dir_with(&[(
            "do.sql",
            b"CREATE TABLE t(a);\r\nINSERT INTO t VALUES (1);\r\n",
        )]);
        let a = Manifest::of_dir(lf.path()).unwrap();
        let b = Manifest::of_dir(crlf.path()).unwrap();
        assert_eq!(a.checksum(), b.checksum());
    }

    #[test]
    fn wasm_bytes_are_hashed_as_they_are() {
        let lf = dir_with(&[("do.sql", b""), ("transform.wasm", b"\0asm\n")]);
        let crlf = dir_with(&[("do.sql", b""), ("transform.wasm", b"\0asm\r\n")]);
        let a = Manifest::of_dir(lf.path()).unwrap();
        let b = Manifest::of_dir(crlf.path()).unwrap();
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.changed_files(&b), vec![PathBuf::from("transform.wasm")]);
    }

    #[test]
    fn moving_content_between_files_changes_the_checksum() {
        let a = dir_with(&[("do.sql", b"SELECT 1;"), ("checks.sql", b"")]);
        let b = dir_with(&[("do.sql", b""), ("checks.sql", b"SELECT 1;")]);
        let a = Manifest::of_dir(a.path()).unwrap();
        let b = Manifest::of_dir(b.path()).unwrap();
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(
            a.changed_files(&b),
            vec![PathBuf::from("do.sql"), PathBuf::from("checks.sql")]
        );
    }

    #[test]
    fn unpinned_files_do_not_change_the_checksum() {
        let a = dir_with(&[("do.sql", b"SELECT 1;")]);
        let b = dir_with(&[
            ("do.sql", b"SELECT 1;"),
            ("schema.sql", b"CREATE TABLE t(a);"),
        ]);
        let a = Manifest::of_dir(a.path()).unwrap();
        let b = Manifest::of_dir(b.path()).unwrap();
        assert_eq!(a.checksum(), b.checksum());
    }

    #[test]
    fn an_added_file_is_named() {
        let a = dir_with(&[("do.sql", b"")]);
        let b = dir_with(&[("do.sql", b""), ("proj-data/data.json", b"{}")]);
        let a = Manifest::of_dir(a.path()).unwrap();
        let b = Manifest::of_dir(b.path()).unwrap();
        assert_eq!(
            a.changed_files(&b),
            vec![PathBuf::from("proj-data/data.json")]
        );
    }

    #[test]
    fn manifest_lines_round_trip() {
        let a = dir_with(&[("do.sql", b"SELECT 1;"), ("test-data/data.json", b"{}")]);
        let m = Manifest::of_dir(a.path()).unwrap();
        assert_eq!(Manifest::from_lines(&m.to_lines()), Some(m.clone()));
        assert_eq!(Manifest::from_lines("garbage"), None);
        // The checksum of an empty do.sql is stable across releases: it is stored in ledgers.
        let empty = dir_with(&[("do.sql", b"")]);
        assert_eq!(
            Manifest::of_dir(empty.path()).unwrap().to_lines(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  do.sql\n"
        );
    }
}
