//! The migrations tree: modules, stamped migration folders, and their one global order.
//!
//! `migrations/<module>/<YYYYMMDDTHHMMSSZ>-<slug>/` (DESIGN §3). This module owns name parsing,
//! discovery and validation of the folder layout; it reads directory listings and hashes the
//! pinned files, and never opens a database or runs anything.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::checksum::{Contents, Manifest, Pinned};
use crate::core::error::{Error, TreeProblem};

/// The folder beside the migrations that holds the newest snapshot of a module.
pub const LATEST: &str = "LATEST";

/// Files a migration folder may hold.
const MIGRATION_FILES: &[&str] = &[
    "do.sql",
    "migration.toml",
    "transform.wasm",
    "checks.sql",
    "check.wasm",
    "schema.sql",
    "transform.wasm.built-from",
    "check.wasm.built-from",
    "undo.sql",
];
/// Folders a migration folder may hold (guest crates and data folders).
const MIGRATION_DIRS: &[&str] = &["transform", "check", "test-data", "proj-data"];
/// Entries of `LATEST/`.
const LATEST_FILES: &[&str] = &["schema.sql"];
/// Notes any of these folders may hold: documentation, never run and never pinned.
const NOTES: &str = ".md";
/// Entries of `test-data/` and `proj-data/`.
const DATA_FILES: &[&str] = &["data.json", "seed.wasm", "seed.wasm.built-from"];
const DATA_DIRS: &[&str] = &["seed"];

/// A migration's identity: its module and its stamp. Unique within a project.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MigrationId {
    pub module: String,
    pub stamp: String,
}

impl MigrationId {
    /// The global order: by stamp, then module name.
    pub fn global_cmp(&self, other: &Self) -> Ordering {
        (&self.stamp, &self.module).cmp(&(&other.stamp, &other.module))
    }
}

/// One migration folder as found on disk.
#[derive(Debug, Clone)]
pub struct Migration {
    pub id: MigrationId,
    pub slug: String,
    /// The folder, as a path usable from the current directory.
    pub dir: PathBuf,
    /// The pinned files' hashes.
    pub manifest: Manifest,
    /// What [`Tree::load`] read of the folder, for the step that runs it; `None` for a
    /// migration described from elsewhere (a remote server's), whose folder is read when needed.
    pub contents: Option<Arc<Contents>>,
}

impl Migration {
    /// The folder name: `<stamp>-<slug>`.
    pub fn folder(&self) -> String {
        format!("{}-{}", self.id.stamp, self.slug)
    }

    /// `module/folder`, the name used in messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.id.module, self.folder())
    }

    /// The checksum recorded in the ledger.
    pub fn checksum(&self) -> String {
        self.manifest.checksum()
    }

    /// A file of this migration (which may not exist).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether the folder held `name` (`test-data/seed` for one inside a data folder) when the
    /// tree was read; `None` when it was not read.
    pub fn held(&self, name: &str) -> Option<bool> {
        self.contents.as_ref().map(|c| c.has(name))
    }
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// All migrations of a project, in global order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub root: PathBuf,
    pub modules: Vec<String>,
    pub migrations: Vec<Migration>,
}

impl Tree {
    /// Reads the tree under `root`. A missing root is an empty tree. Every problem found is
    /// reported at once, each naming its path.
    pub fn load(root: &Path) -> Result<Tree, Error> {
        let mut tree = Tree {
            root: root.to_path_buf(),
            ..Tree::default()
        };
        if !root.exists() {
            return Ok(tree);
        }
        if !root.is_dir() {
            return Err(Error::Tree {
                problems: vec![problem(
                    root,
                    "is a file, but the migrations folder must be a folder of modules: move the \
                     file away (`strata init` creates the folder), or point `migrations` in \
                     strata.toml elsewhere",
                )],
            });
        }
        let mut problems = Vec::new();
        let inside = Boundary::of(root)?;
        for Entry {
            name: entry,
            dir,
            link,
        } in list_entries(root)?
        {
            let path = root.join(&entry);
            if link && inside.refuses(&path, &mut problems) {
                continue;
            }
            if !dir {
                problems.push(problem(
                    &path,
                    "only module folders belong in the migrations folder; move this file out",
                ));
                continue;
            }
            if let Err(why) = check_module_name(&entry) {
                problems.push(problem(&path, why));
                continue;
            }
            load_module(&path, &entry, &inside, &mut tree.migrations, &mut problems)?;
            tree.modules.push(entry);
        }
        if !problems.is_empty() {
            return Err(Error::Tree { problems });
        }
        tree.migrations.sort_by(|a, b| a.id.global_cmp(&b.id));
        Ok(tree)
    }

    /// The migrations of one module, oldest first.
    pub fn module(&self, module: &str) -> impl Iterator<Item = &Migration> {
        self.migrations
            .iter()
            .filter(move |m| m.id.module == module)
    }
}

/// What the tree looks like on disk, read from directory listings and file metadata only: every
/// entry [`Tree::load`] looks at, with its inode, size, modification and change times. Two equal
/// fingerprints mean the tree was not touched in between, except by a write that landed in the
/// same clock tick as the fingerprint's own look at the file: [`Fingerprint::is_settled`] tells
/// whether that can be ruled out. Folders that hold guest crates (`transform/`, `check/`,
/// `seed/`) are not entered: loading the tree does not read them.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    entries: Vec<(PathBuf, EntryStamp)>,
    /// The latest modification or change time seen, in nanoseconds since the epoch.
    newest_ns: i128,
    /// Whether a timestamp had no sub-second part (a file system that keeps whole seconds).
    coarse: bool,
    /// The clock just before the first entry was looked at, in nanoseconds since the epoch.
    taken_ns: i128,
}

/// Equal when every entry is (the times of taking are not compared).
impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Fingerprint {}

/// A file's identity and times as compared: device, inode, size, modification time (s, ns),
/// change time (s, ns). The change time moves on every write and cannot be set back.
pub type FileStamp = (u64, u64, u64, i64, i64, i64, i64);

/// The [`FileStamp`] of `m`.
pub fn file_stamp(m: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt as _;
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// One entry's metadata; for a symbolic link, the link's own and its target's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryStamp {
    own: FileStamp,
    target: Option<(FileStamp, PathBuf)>,
}

/// How deep the tree's folders go: module, migration, `test-data/` (through links too).
const FINGERPRINT_DEPTH: usize = 4;

impl Fingerprint {
    /// The fingerprint of the tree under `root` (a missing root is an empty fingerprint).
    pub fn of(root: &Path) -> std::io::Result<Fingerprint> {
        let taken = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let mut f = Fingerprint {
            taken_ns: taken,
            ..Fingerprint::default()
        };
        match std::fs::symlink_metadata(root) {
            Ok(own) => f.visit(root, own, 0)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(f)
    }

    /// Records `path` (whose own metadata is `own`) and, for a folder the tree reads, what it
    /// holds.
    fn visit(&mut self, path: &Path, own: std::fs::Metadata, depth: usize) -> std::io::Result<()> {
        let mut is_dir = own.is_dir();
        let target = if own.file_type().is_symlink() {
            let link = std::fs::read_link(path)?;
            match std::fs::metadata(path) {
                Ok(m) => {
                    is_dir = m.is_dir();
                    Some((self.stamp(&m), link))
                }
                // A dangling link: its own metadata and text are what there is to compare.
                Err(_) => Some(((0, 0, 0, 0, 0, 0, 0), link)),
            }
        } else {
            None
        };
        let own_stamp = self.stamp(&own);
        self.entries.push((
            path.to_path_buf(),
            EntryStamp {
                own: own_stamp,
                target,
            },
        ));
        let guest = path
            .file_name()
            .is_some_and(|n| ["transform", "check", "seed"].contains(&&*n.to_string_lossy()));
        if is_dir && depth < FINGERPRINT_DEPTH && !(depth >= 2 && guest) {
            // Each entry's metadata relative to the open folder: no path walk per entry.
            let mut children = Vec::new();
            for entry in std::fs::read_dir(path)? {
                let entry = entry?;
                children.push((entry.file_name(), entry.metadata()?));
            }
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, meta) in children {
                self.visit(&path.join(name), meta, depth + 1)?;
            }
        }
        Ok(())
    }

    fn stamp(&mut self, m: &std::fs::Metadata) -> FileStamp {
        let stamp = file_stamp(m);
        for (s, ns) in [(stamp.3, stamp.4), (stamp.5, stamp.6)] {
            self.newest_ns = self
                .newest_ns
                .max(i128::from(s) * 1_000_000_000 + i128::from(ns));
            self.coarse |= ns == 0;
        }
        stamp
    }

    /// Whether every entry was old enough, when the fingerprint was taken, that a later write
    /// shows in its times: nothing changed within 100 ms before (2 s on a file system that keeps
    /// whole seconds). A fingerprint that is not settled must not be trusted to stand for the
    /// content.
    pub fn is_settled(&self) -> bool {
        let window: i128 = if self.coarse {
            2_000_000_000
        } else {
            100_000_000
        };
        self.newest_ns + window < self.taken_ns
    }
}

fn load_module(
    dir: &Path,
    module: &str,
    inside: &Boundary,
    out: &mut Vec<Migration>,
    problems: &mut Vec<TreeProblem>,
) -> Result<(), Error> {
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    for Entry {
        name: entry,
        dir: is_dir,
        link,
    } in list_entries(dir)?
    {
        let path = dir.join(&entry);
        if link && inside.refuses(&path, problems) {
            continue;
        }
        if entry == LATEST && is_dir {
            check_entries(
                &path,
                &list_entries(&path)?,
                LATEST_FILES,
                &[],
                inside,
                problems,
            );
            continue;
        }
        if !is_dir {
            problems.push(problem(
                &path,
                "only migration folders and LATEST/ belong in a module folder; move this file out",
            ));
            continue;
        }
        let (stamp, slug) = match parse_folder_name(&entry) {
            Ok(parts) => parts,
            Err(why) => {
                problems.push(problem(&path, why));
                continue;
            }
        };
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == stamp) {
            problems.push(problem(
                &path,
                format!(
                    "has the same stamp as {}; two migrations of one module need different \
                     stamps: recreate one with `strata new {module} <slug>`",
                    other.display()
                ),
            ));
            continue;
        }
        let before = problems.len();
        let present = check_migration_contents(&path, inside, problems)?;
        if problems.len() > before {
            continue;
        }
        seen.push((stamp.to_string(), path.clone()));
        let (manifest, contents) = Pinned::read_present(&path, &present)?.keep(present);
        out.push(Migration {
            id: MigrationId {
                module: module.to_string(),
                stamp: stamp.to_string(),
            },
            slug: slug.to_string(),
            manifest,
            contents: Some(Arc::new(contents)),
            dir: path,
        });
    }
    Ok(())
}

/// Checks a migration folder's entries, and those of its data folders; returns every name
/// they hold (`test-data/data.json` for one inside a data folder), from one listing of each.
fn check_migration_contents(
    dir: &Path,
    inside: &Boundary,
    problems: &mut Vec<TreeProblem>,
) -> Result<Vec<String>, Error> {
    let entries = list_entries(dir)?;
    if !entries.iter().any(|e| e.name == "do.sql" && !e.dir) {
        problems.push(problem(
            &dir.join("do.sql"),
            "is missing; every migration has a do.sql (create an empty one if the step has no SQL)",
        ));
    }
    check_entries(
        dir,
        &entries,
        MIGRATION_FILES,
        MIGRATION_DIRS,
        inside,
        problems,
    );
    let mut present: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    for data in ["test-data", "proj-data"] {
        let Some(e) = entries.iter().find(|e| e.name == data && e.dir) else {
            continue;
        };
        let sub = dir.join(data);
        let inner = list_entries(&sub)?;
        if !e.link {
            check_entries(&sub, &inner, DATA_FILES, DATA_DIRS, inside, problems);
        }
        present.extend(inner.iter().map(|i| format!("{data}/{}", i.name)));
    }
    Ok(present)
}

fn check_entries(
    dir: &Path,
    entries: &[Entry],
    files: &[&str],
    dirs: &[&str],
    inside: &Boundary,
    problems: &mut Vec<TreeProblem>,
) {
    for entry in entries {
        let path = dir.join(&entry.name);
        if entry.link && inside.refuses(&path, problems) {
            continue;
        }
        let name = entry.name.as_str();
        let known = if entry.dir {
            dirs.contains(&name)
        } else {
            files.contains(&name) || name.ends_with(NOTES)
        };
        if !known {
            let mut allowed: Vec<String> = files.iter().map(|f| f.to_string()).collect();
            allowed.extend(dirs.iter().map(|d| format!("{d}/")));
            problems.push(problem(
                &path,
                format!(
                    "is not a file strata knows; a {} may hold only {} and notes (*{NOTES}) \
                     (rename or move it)",
                    if files.contains(&"do.sql") {
                        "migration folder"
                    } else if files == LATEST_FILES {
                        "LATEST folder"
                    } else {
                        "data folder"
                    },
                    allowed.join(", ")
                ),
            ));
        }
    }
}

/// The migrations folder as symbolic links are judged against: a link whose target lies
/// outside it is refused (what runs must be in the tree that pins it, not wherever a link on
/// this machine points); a link inside it is followed like the file it names.
struct Boundary {
    root: PathBuf,
}

impl Boundary {
    fn of(root: &Path) -> Result<Boundary, Error> {
        Ok(Boundary {
            root: std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?,
        })
    }

    /// Records a problem and returns true when `path` is a link leading outside the tree.
    fn refuses(&self, path: &Path, problems: &mut Vec<TreeProblem>) -> bool {
        if !path.is_symlink() {
            return false;
        }
        let why = match std::fs::canonicalize(path) {
            Ok(target) if target.starts_with(&self.root) => return false,
            Ok(target) => format!(
                "leads outside the migrations folder, to {}",
                target.display()
            ),
            Err(e) => format!("leads nowhere ({e})"),
        };
        problems.push(problem(
            path,
            format!(
                "is a symbolic link that {why}; a migration's files must live in the tree that \
                 pins them: copy the file or folder in instead of linking it"
            ),
        ));
        true
    }
}

/// One entry of a folder as listed.
struct Entry {
    name: String,
    /// A folder, or a link to one.
    dir: bool,
    /// A symbolic link.
    link: bool,
}

/// The entries of a folder, sorted, without hidden ones (`.DS_Store`, `.gitkeep`, ...). What
/// each is comes with the listing itself: no look at an entry's metadata except to follow a
/// link.
fn list_entries(dir: &Path) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Tree {
                problems: vec![problem(
                    &entry.path(),
                    "the name is not valid UTF-8; rename it",
                )],
            });
        };
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        let link = kind.is_symlink();
        let dir = if link {
            std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir())
        } else {
            kind.is_dir()
        };
        out.push(Entry {
            name: name.to_string(),
            dir,
            link,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn problem(path: &Path, problem: impl Into<String>) -> TreeProblem {
    TreeProblem {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The message for a name that is no module of the project: the closest existing module, if
/// one is close, and the list of them.
pub fn unknown_module(name: &str, known: &[String]) -> String {
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min();
    let mut msg = format!("there is no module `{name}`");
    if let Some((_, k)) = closest {
        msg.push_str(&format!("; did you mean `{k}`?"));
    }
    if known.is_empty() {
        msg.push_str(" (the project has no modules yet)");
    } else {
        msg.push_str(&format!(" (the modules are: {})", known.join(", ")));
    }
    msg
}

/// A module name: `[a-z][a-z0-9_-]*`.
pub fn check_module_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid module name: use a lowercase letter, then lowercase letters, \
             digits, `_` or `-` (for example `accounts`)"
        ))
    }
}

/// A slug: `[a-z0-9][a-z0-9_-]*`.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let mut chars = slug.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{slug}` is not a valid slug: use lowercase letters, digits, `_` or `-`, starting \
             with a letter or digit (for example `split-names`)"
        ))
    }
}

/// The stamp format: `YYYYMMDDTHHMMSSZ`, UTC.
pub const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Checks that `stamp` is a real UTC time written as `YYYYMMDDTHHMMSSZ`.
pub fn parse_stamp(stamp: &str) -> Result<chrono::NaiveDateTime, String> {
    let shape_ok = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let parsed = if shape_ok {
        chrono::NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT).ok()
    } else {
        None
    };
    parsed.ok_or_else(|| {
        format!("`{stamp}` is not a UTC stamp of the form YYYYMMDDTHHMMSSZ (for example 20240105T093000Z)")
    })
}

/// The stamp `--to` means: a whole stamp as given (it may fall between migrations), or the one
/// migration stamp that starts with a shorter prefix (`2024031`, `20240318T08`).
pub fn resolve_stamp(tree: &Tree, prefix: &str) -> Result<String, Error> {
    if parse_stamp(prefix).is_ok() {
        return Ok(prefix.to_string());
    }
    let mut stamps: Vec<&str> = tree
        .migrations
        .iter()
        .map(|m| m.id.stamp.as_str())
        .filter(|s| !prefix.is_empty() && s.starts_with(prefix))
        .collect();
    stamps.dedup();
    match stamps[..] {
        [one] => Ok(one.to_string()),
        [] => Err(Error::Usage(format!(
            "--to {prefix}: no migration's stamp starts with `{prefix}`; give a stamp \
             (YYYYMMDDTHHMMSSZ) or the start of one that `strata status` lists"
        ))),
        _ => Err(Error::Usage(format!(
            "--to {prefix}: {} migration stamps start with `{prefix}` ({}); give more of the \
             stamp (YYYYMMDDTHHMMSSZ)",
            stamps.len(),
            stamps.join(", ")
        ))),
    }
}

/// Splits a migration folder name into stamp and slug, checking both.
pub fn parse_folder_name(name: &str) -> Result<(&str, &str), String> {
    let hint = "migration folders are named <YYYYMMDDTHHMMSSZ>-<slug>, for example \
                20240105T093000Z-add-users; `strata new <module> <slug>` makes one";
    let Some((stamp, slug)) = name.split_once('-') else {
        return Err(format!("`{name}` is not a migration folder name: {hint}"));
    };
    parse_stamp(stamp).map_err(|e| format!("{e}; {hint}"))?;
    check_slug(slug).map_err(|e| format!("{e}; {hint}"))?;
    Ok((stamp, slug))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_parse_into_stamp_and_slug() {
        assert_eq!(
            parse_folder_name("20240105T093000Z-add-users"),
            Ok(("20240105T093000Z", "add-users"))
        );
        assert_eq!(
            parse_folder_name("20240105T093000Z-a_b-2"),
            Ok(("20240105T093000Z", "a_b-2"))
        );
    }

    #[test]
    fn malformed_folder_names_are_rejected() {
        for bad in [
            "20240105T093000Z",
            "20240105T093000Z-",
            "20240105-add",
            "20240105T093000-add",
            "20241305T093000Z-bad-month",
            "20240230T093000Z-feb-30",
            "20240105T256000Z-bad-hour",
            "2024010ST093000Z-x",
            "20240105T093000Z-Upper",
            "20240105T093000Z-has space",
            "x20240105T093000Z-a",
        ] {
            assert!(parse_folder_name(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn module_names() {
        for good in ["accounts", "a", "billing-v2", "x_1"] {
            assert!(check_module_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Accounts", "1st", "-a", "_a", "a b", "a.b", "ümlaut"] {
            assert!(check_module_name(bad).is_err(), "{bad}");
        }
    }

    fn id(module: &str, stamp: &str) -> MigrationId {
        MigrationId {
            module: module.into(),
            stamp: stamp.into(),
        }
    }

    #[test]
    fn the_fingerprint_changes_with_every_edit_the_tree_would_see() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("migrations");
        let m = root.join("app/20240101T000000Z-zero");
        std::fs::create_dir_all(m.join("transform/src")).unwrap();
        std::fs::write(m.join("do.sql"), "CREATE TABLE t(a);\n").unwrap();
        let first = Fingerprint::of(&root).unwrap();
        assert!(!first.is_settled(), "just written: not to be trusted yet");
        assert_eq!(Fingerprint::of(&root).unwrap(), first);
        // A guest crate's sources are not part of the tree.
        std::fs::write(m.join("transform/src/lib.rs"), "// edited").unwrap();
        assert_eq!(Fingerprint::of(&root).unwrap(), first);

        std::thread::sleep(std::time::Duration::from_millis(150));
        let settled = Fingerprint::of(&root).unwrap();
        assert!(settled.is_settled());
        // Edited in place to the same size.
        std::fs::write(m.join("do.sql"), "CREATE TABLE u(a);\n").unwrap();
        let edited = Fingerprint::of(&root).unwrap();
        assert_ne!(edited, settled);
        assert!(!edited.is_settled());
        // A new file, a new folder, a link pointed elsewhere.
        std::fs::write(m.join("checks.sql"), "").unwrap();
        let added = Fingerprint::of(&root).unwrap();
        assert_ne!(added, edited);
        std::os::unix::fs::symlink("do.sql", m.join("notes.md")).unwrap();
        let linked = Fingerprint::of(&root).unwrap();
        assert_ne!(linked, added);
        std::fs::remove_file(m.join("notes.md")).unwrap();
        std::os::unix::fs::symlink("checks.sql", m.join("notes.md")).unwrap();
        assert_ne!(Fingerprint::of(&root).unwrap(), linked);
        assert_eq!(
            Fingerprint::of(&dir.path().join("none")).unwrap(),
            Fingerprint::default()
        );
    }

    #[test]
    fn global_order_is_stamp_then_module() {
        let mut ids = vec![
            id("billing", "20240102T000000Z"),
            id("accounts", "20240103T000000Z"),
            id("billing", "20240101T000000Z"),
            id("accounts", "20240102T000000Z"),
        ];
        ids.sort_by(MigrationId::global_cmp);
        assert_eq!(
            ids,
            vec![
                id("billing", "20240101T000000Z"),
                id("accounts", "20240102T000000Z"),
                id("billing", "20240102T000000Z"),
                id("accounts", "20240103T000000Z"),
            ]
        );
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn load_orders_globally_and_skips_latest_and_hidden_files() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("b/20240101T000000Z-zero/do.sql"));
        touch(&r.join("a/20240102T000000Z-zero/do.sql"));
        touch(&r.join("a/20240102T000000Z-zero/test-data/data.json"));
        touch(&r.join("b/20240103T000000Z-two/do.sql"));
        touch(&r.join("b/LATEST/schema.sql"));
        touch(&r.join("b/.DS_Store"));
        let tree = Tree::load(r).unwrap();
        let labels: Vec<String> = tree.migrations.iter().map(Migration::label).collect();
        assert_eq!(
            labels,
            [
                "b/20240101T000000Z-zero",
                "a/20240102T000000Z-zero",
                "b/20240103T000000Z-two"
            ]
        );
        assert_eq!(tree.modules, ["a", "b"]);
    }

    #[test]
    fn links_out_of_the_tree_are_refused_and_links_within_it_followed() {
        let outside = tempfile::tempdir().unwrap();
        touch(&outside.path().join("do.sql"));
        touch(&outside.path().join("20240101T000000Z-zero/do.sql"));
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("a/20240101T000000Z-one/checks.sql"));
        std::os::unix::fs::symlink(
            outside.path().join("do.sql"),
            r.join("a/20240101T000000Z-one/do.sql"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("20240101T000000Z-zero"),
            r.join("a/20240102T000000Z-linked"),
        )
        .unwrap();
        let Err(Error::Tree { problems }) = Tree::load(r) else {
            panic!("expected a tree error");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.problem.contains("symbolic link")));
        // Within the tree, a link is followed like the file it names.
        std::fs::remove_file(r.join("a/20240101T000000Z-one/do.sql")).unwrap();
        std::fs::remove_file(r.join("a/20240102T000000Z-linked")).unwrap();
        std::os::unix::fs::symlink("checks.sql", r.join("a/20240101T000000Z-one/do.sql")).unwrap();
        touch(&r.join("a/20240101T000000Z-one/notes.md"));
        assert_eq!(Tree::load(r).unwrap().migrations.len(), 1);
    }

    #[test]
    fn load_reports_every_problem_with_its_path() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("a/20240101T000000Z-one/do.sql"));
        touch(&r.join("a/20240101T000000Z-again/do.sql"));
        touch(&r.join("a/20240102T000000Z-two/notes.txt"));
        touch(&r.join("a/20240103T000000Z-three/do.sql"));
        touch(&r.join("a/20240103T000000Z-three/test-data/rows.csv"));
        touch(&r.join("Bad/20240101T000000Z-x/do.sql"));
        touch(&r.join("a/not-a-stamp/do.sql"));
        touch(&r.join("a/LATEST/schema.sql"));
        touch(&r.join("a/LATEST/old-schema.sql"));
        touch(&r.join("a/20240103T000000Z-three/README.md"));
        let Err(Error::Tree { problems }) = Tree::load(r) else {
            panic!("expected a tree error");
        };
        let paths: Vec<PathBuf> = problems.iter().map(|p| p.path.clone()).collect();
        assert!(paths.contains(&r.join("Bad")), "{problems:?}");
        assert!(
            paths.contains(&r.join("a/20240101T000000Z-one")),
            "{problems:?}"
        );
        assert!(
            paths.contains(&r.join("a/20240102T000000Z-two/do.sql")),
            "{problems:?}"
        );
        assert!(
            paths.contains(&r.join("a/20240102T000000Z-two/notes.txt")),
            "{problems:?}"
        );
        assert!(
            paths.contains(&r.join("a/20240103T000000Z-three/test-data/rows.csv")),
            "{problems:?}"
        );
        assert!(paths.contains(&r.join("a/not-a-stamp")), "{problems:?}");
        assert!(
            paths.contains(&r.join("a/LATEST/old-schema.sql")),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 7, "{problems:?}");
    }
}
