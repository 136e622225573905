//! What pins an applied migration: a manifest of the files that run, and one checksum over it.
//!
//! The manifest lists, in a fixed order, each present file of [`PINNED_FILES`] with the sha256 of
//! its content; text files are read with CRLF as LF so a checkout on another OS does not look
//! modified. The checksum is the sha256 of the manifest written as `sha256sum` lines. Guest crate
//! sources and `schema.sql` are not pinned: the committed `.wasm` is what runs, and the snapshot
//! is written by the tool. [`Pinned`] reads a folder's files once and keeps both their bytes and
//! their manifest, so what a step runs is exactly what its checksum covers. This module reads
//! files; it never touches a database.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::core::error::Error;

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

/// The names in `dir` and in its `test-data/` and `proj-data/` folders that could be pinned
/// files (`test-data/data.json` for one inside a data folder); empty when `dir` does not exist.
fn present(dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let list = |dir: &Path, prefix: &str, names: &mut Vec<String>| -> Result<(), Error> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(Error::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(format!("{prefix}{name}"));
            }
        }
        Ok(())
    };
    list(dir, "", &mut names)?;
    for data in ["test-data", "proj-data"] {
        if names.iter().any(|n| n == data) {
            list(&dir.join(data), &format!("{data}/"), &mut names)?;
        }
    }
    Ok(names)
}

/// Pinned files up to this size keep the bytes the tree read for the step that runs them;
/// larger ones (components, big data sets) are read again then, and their hash compared, so a
/// tree in memory stays small.
pub const KEEP_BYTES: usize = 256 * 1024;

/// Pinned file `name` of `dir` as hashed (CRLF read as LF in text files); `None` if it is gone.
fn read_pinned(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let path = dir.join(name);
    let bytes = if name.ends_with(".wasm") {
        crate::core::input::read_component(&path)?
    } else {
        crate::core::input::read_project_file(&path, crate::core::input::FILE_BYTES)?
    };
    Ok(bytes.map(|bytes| normalize(name, bytes)))
}

/// What the tree read of one migration folder, kept for the step that runs it: the names the
/// folder and its data folders hold (`test-data/data.json` for one inside a data folder), and
/// the bytes of each pinned file of at most [`KEEP_BYTES`] (their hashes are in the manifest
/// taken with them). The step then runs the very bytes its checksum was taken from, without
/// reading the folder again.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contents {
    present: Vec<String>,
    kept: Vec<(&'static str, Vec<u8>)>,
}

impl Contents {
    /// Whether the folder held `name` when it was read.
    pub fn has(&self, name: &str) -> bool {
        self.present.iter().any(|p| p == name)
    }
}

/// The names only: the bytes would flood a debug print.
impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents")
            .field("present", &self.present)
            .field(
                "kept",
                &self.kept.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The pinned files of one migration folder, each read once, and their manifest: the bytes
/// here are the bytes the manifest hashes (text files with CRLF already read as LF).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pinned {
    files: Vec<(&'static str, Vec<u8>)>,
    manifest: Manifest,
}

impl Pinned {
    /// Reads each pinned file of the migration folder `dir` once.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        // One listing instead of a failed open per absent file (most folders hold only do.sql).
        Pinned::read_present(dir, &present(dir)?)
    }

    /// Reads each pinned file of the migration folder `dir` whose name is in `present` (the
    /// folder's listing, `test-data/data.json` for one inside a data folder).
    pub fn read_present(dir: &Path, present: &[String]) -> Result<Self, Error> {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for name in PINNED_FILES {
            if !present.iter().any(|p| p == name) {
                continue;
            }
            let Some(bytes) = read_pinned(dir, name)? else {
                continue;
            };
            entries.push((name.to_string(), hex(&Sha256::digest(&bytes))));
            files.push((*name, bytes));
        }
        Ok(Pinned {
            files,
            manifest: Manifest::new(entries),
        })
    }

    /// Splits into the manifest and what a later step needs of the folder: the names in
    /// `present`, and the bytes of each pinned file of at most [`KEEP_BYTES`].
    pub fn keep(self, present: Vec<String>) -> (Manifest, Contents) {
        let kept = self
            .files
            .into_iter()
            .filter(|(_, bytes)| bytes.len() <= KEEP_BYTES)
            .collect();
        (self.manifest, Contents { present, kept })
    }

    /// The pinned files of the migration folder `dir` as `contents` lists them: the kept bytes
    /// as they were read (with their hashes from `manifest`, taken with `contents`), the others
    /// read again now. Whoever compares the manifest with `manifest` sees a file changed in
    /// between.
    pub fn from_contents(
        dir: &Path,
        contents: &Contents,
        manifest: &Manifest,
    ) -> Result<Self, Error> {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for name in PINNED_FILES {
            if !contents.has(name) {
                continue;
            }
            let kept = contents.kept.iter().find(|(n, _)| n == name);
            let (bytes, sha) = match (kept, manifest.hash_of(name)) {
                (Some((_, bytes)), Some(sha)) => (bytes.clone(), sha.to_string()),
                _ => {
                    let Some(bytes) = read_pinned(dir, name)? else {
                        continue;
                    };
                    let sha = hex(&Sha256::digest(&bytes));
                    (bytes, sha)
                }
            };
            entries.push((name.to_string(), sha));
            files.push((*name, bytes));
        }
        Ok(Pinned {
            files,
            manifest: Manifest::new(entries),
        })
    }

    /// The manifest of exactly these bytes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bytes of pinned file `name` (one of [`PINNED_FILES`]), if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        debug_assert!(PINNED_FILES.contains(&name), "{name} is not pinned");
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Takes the bytes of pinned file `name` out, leaving the manifest as it was.
    pub fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        debug_assert!(PINNED_FILES.contains(&name), "{name} is not pinned");
        let i = self.files.iter().position(|(n, _)| *n == name)?;
        Some(self.files.swap_remove(i).1)
    }
}

/// The sha256 of each pinned file present in a migration folder, in [`PINNED_FILES`] order.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    entries: Vec<(String, String)>,
    /// [`Manifest::checksum`], computed at its first call (the entries never change): a fleet
    /// compares each migration's with every target's ledger.
    checksum: std::sync::OnceLock<String>,
}

/// Two manifests are equal when their entries are, whether or not either computed its
/// checksum yet.
impl PartialEq for Manifest {
    fn eq(&self, other: &Manifest) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Manifest {}

impl Manifest {
    fn new(entries: Vec<(String, String)>) -> Manifest {
        Manifest {
            entries,
            checksum: std::sync::OnceLock::new(),
        }
    }

    /// Hashes the pinned files of the migration folder `dir`.
    pub fn of_dir(dir: &Path) -> Result<Self, Error> {
        Ok(Pinned::read(dir)?.manifest)
    }

    /// The recorded sha256 of pinned file `name`, if the manifest lists it.
    pub fn hash_of(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, sha)| sha.as_str())
    }

    /// The recorded sha256 of pinned file `name` as bytes, if the manifest lists it.
    pub fn sha256_of(&self, name: &str) -> Option<[u8; 32]> {
        let hex = self.hash_of(name)?.as_bytes();
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(out)
    }

    /// The migration's checksum: sha256 over the manifest's `<sha256>  <file>` lines.
    pub fn checksum(&self) -> String {
        self.checksum_str().to_string()
    }

    /// [`Manifest::checksum`], borrowed.
    pub fn checksum_str(&self) -> &str {
        self.checksum
            .get_or_init(|| hex(&Sha256::digest(self.to_lines().as_bytes())))
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
        Some(Manifest::new(entries))
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

/// A pinned file as it runs and is hashed: text files with CRLF read as LF, `.wasm` as it is.
fn normalize(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    if name.ends_with(".wasm") || !bytes.windows(2).any(|w| w == b"\r\n") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes.as_slice();
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        out.extend_from_slice(&rest[..pos]);
        out.push(b'\n');
        rest = &rest[pos + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

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
    fn a_manifest_checksummed_once_equals_one_never_checksummed() {
        let a = dir_with(&[("do.sql", b"SELECT 1;")]);
        let m = Manifest::of_dir(a.path()).unwrap();
        let fresh = Manifest::from_lines(&m.to_lines()).unwrap();
        let first = m.checksum();
        assert_eq!(m.checksum(), first);
        assert_eq!(fresh.checksum(), first);
        let other = Manifest::from_lines(&m.to_lines()).unwrap();
        assert_eq!(m, other);
        assert_ne!(
            m,
            Manifest::of_dir(dir_with(&[("do.sql", b"")]).path()).unwrap()
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
