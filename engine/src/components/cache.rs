//! The compile cache: each component is compiled once per engine version and configuration and
//! kept in a per-user folder, keyed by the sha256 of its bytes.
//!
//! A cache entry is native code that runs outside the sandbox, so it is trusted only when this
//! user wrote it: entries live in `$XDG_CACHE_HOME/strata/components` (`~/.cache/...`), a folder
//! strata creates with mode 0700 and whose owner and mode it checks (a symlink is refused), and
//! each entry carries a tag, keyed BLAKE3 over its name and code, under a key that never lives
//! beside the entries (`$XDG_STATE_HOME/strata/cache.key`, mode 0600 in a 0700 folder, created
//! on first use). An entry whose tag does not verify (written by someone else, copied from
//! another machine, restored from a CI cache, corrupted) is recompiled and rewritten, never
//! loaded. Writes go to temporary files and are renamed into place.
//!
//! An entry is two files: `<name>.cwasm`, the code exactly as wasmtime serialized it, and
//! `<name>.tag`. The code is memory-mapped, its tag checked over the mapping (on every core),
//! and the same open file handed to wasmtime, which maps it again without copying it and
//! initializes the component's linear memories copy-on-write from it: an 18 MB Python
//! component's 40 MB entry loads without being read into memory or copied.

use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

/// Lowercase hex of `bytes` (a digest in a file name).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Changes whenever the engine configuration changes in a way wasmtime cannot detect itself
/// (NaN canonicalization is one), so old entries are not reused.
/// The entry format is part of it: generation 2 keeps the tag beside the code.
const CONFIG_GENERATION: &str = "strata-sandbox-2";

/// Length of an entry's tag, and of the key.
const TAG_LEN: usize = 32;

/// Where the cache keeps its entries and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The folder of entries (created 0700).
    pub entries: PathBuf,
    /// The key file (created 0600 in a 0700 folder); not in `entries`.
    pub key_file: PathBuf,
}

impl Location {
    /// This user's location: `$XDG_CACHE_HOME/strata/components` (default
    /// `~/.cache/strata/components`) and `$XDG_STATE_HOME/strata/cache.key` (default
    /// `~/.local/state/strata/cache.key`). `None` without a home folder.
    pub fn for_user() -> Option<Location> {
        let base = |var: &str, default: &str| -> Option<PathBuf> {
            match std::env::var_os(var).map(PathBuf::from) {
                Some(p) if p.is_absolute() => Some(p),
                _ => std::env::home_dir()
                    .filter(|h| h.is_absolute())
                    .map(|h| h.join(default)),
            }
        };
        Some(Location {
            entries: base("XDG_CACHE_HOME", ".cache")?
                .join("strata")
                .join("components"),
            key_file: base("XDG_STATE_HOME", ".local/state")?
                .join("strata")
                .join("cache.key"),
        })
    }
}

/// An open cache: the checked folder and the key.
#[derive(Clone)]
struct Store {
    dir: PathBuf,
    key: [u8; TAG_LEN],
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// Where compiled components are kept; without a store every load compiles.
#[derive(Debug, Clone)]
pub struct Cache {
    store: Option<Store>,
    engine_key: String,
    /// Why there is no store although a location was given.
    problem: Option<String>,
}

impl Cache {
    /// A cache at `location` (`None`: compile every time). A location that cannot be made
    /// private disables the cache; [`Cache::problem`] says why.
    pub fn new(engine: &Engine, location: Option<Location>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CONFIG_GENERATION.hash(&mut h);
        let engine_key = format!("{:016x}", h.finish());
        let (store, problem) = match location.map(|l| open_store(&l)) {
            None => (None, None),
            Some(Ok(store)) => (Some(store), None),
            Some(Err(why)) => (None, Some(why)),
        };
        Cache {
            store,
            engine_key,
            problem,
        }
    }

    /// Why the cache is off although a location was given: a folder or key file that is not
    /// private to this user.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The compiled component for `wasm`, from the cache when an authentic entry exists.
    #[cfg(test)]
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        self.load_digested(engine, wasm, &Sha256::digest(wasm).into())
    }

    /// [`Cache::load`] when the caller has `digest`, the sha256 of `wasm`, already.
    pub fn load_digested(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &[u8; 32],
    ) -> wasmtime::Result<Component> {
        let Some(store) = &self.store else {
            let _one = super::compile::one_at_a_time();
            return super::compile::compile(engine, wasm);
        };
        let name = format!("{}-{}", hex(digest), self.engine_key);
        if let Some(component) = read_entry(engine, store, &name) {
            return Ok(component);
        }
        let _one = super::compile::one_at_a_time();
        // Another worker of this process may have compiled it while this one waited.
        if let Some(component) = read_entry(engine, store, &name) {
            return Ok(component);
        }
        let component = super::compile::compile(engine, wasm)?;
        // A cache that cannot be written only costs time; the run goes on.
        let _ = write_entry(store, &name, &component.serialize()?);
        Ok(component)
    }
}

/// The tag of an entry: keyed BLAKE3 over its name (which holds the component's hash and the
/// engine key, so an authentic entry cannot stand in for another component) and its code.
fn tag(key: &[u8; TAG_LEN], name: &str, code: &[u8]) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(key);
    mac.update(&(name.len() as u64).to_le_bytes());
    mac.update(name.as_bytes());
    // Hashing is most of a warm load; large entries use every core.
    if code.len() >= 1 << 20 {
        mac.update_rayon(code);
    } else {
        mac.update(code);
    }
    mac.finalize()
}

/// The paths of entry `name`'s code and tag.
fn entry_paths(store: &Store, name: &str) -> (PathBuf, PathBuf) {
    (
        store.dir.join(format!("{name}.cwasm")),
        store.dir.join(format!("{name}.tag")),
    )
}

fn read_entry(engine: &Engine, store: &Store, name: &str) -> Option<Component> {
    let (code_path, tag_path) = entry_paths(store, name);
    let sum: [u8; TAG_LEN] = std::fs::read(tag_path).ok()?.try_into().ok()?;
    let file = open_nofollow(&code_path).ok()?;
    // SAFETY: the map is private and read-only; only this user can write the file (the folder
    // is theirs and private), and a file changed under the map fails the tag check below, or
    // was changed by someone who could read the key anyway.
    let code = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    // `blake3::Hash` compares in constant time.
    if tag(&store.key, name, &code) != blake3::Hash::from_bytes(sum) {
        return None;
    }
    drop(code);
    // SAFETY: `Component::deserialize_file` requires a file produced by `Component::serialize`
    // of a compatible engine. The tag verified above was made with this user's key (which only
    // this user can read) over exactly this file's bytes and this entry's name, so
    // `write_entry` stored them after `serialize` produced them for this component; wasmtime
    // maps the file already open here (by its descriptor, so a file renamed into its place
    // since is not the one loaded), refuses entries from another version or configuration,
    // and the name's engine key adds what it cannot check.
    unsafe { Component::deserialize_file(engine, fd_path(&file)?) }.ok()
}

/// A path that opens the same file as the open `file`, whatever was renamed into its place.
#[cfg(target_os = "linux")]
fn fd_path(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd as _;
    Some(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())))
}

#[cfg(all(unix, not(target_os = "linux")))]
fn fd_path(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd as _;
    Some(PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd())))
}

#[cfg(not(unix))]
fn fd_path(_: &std::fs::File) -> Option<PathBuf> {
    None
}

#[cfg(unix)]
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Writes entry `name`: the code, then its tag (a reader that finds a tag of other code
/// recompiles).
fn write_entry(store: &Store, name: &str, code: &[u8]) -> std::io::Result<()> {
    let (code_path, tag_path) = entry_paths(store, name);
    let put = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&store.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path)?;
        Ok(())
    };
    put(&code_path, code)?;
    put(&tag_path, tag(&store.key, name, code).as_bytes())
}

fn open_store(location: &Location) -> Result<Store, String> {
    let dir = private_dir(&location.entries)?;
    let key_dir = location
        .key_file
        .parent()
        .ok_or_else(|| format!("{}: not a file path", location.key_file.display()))?;
    if key_dir.starts_with(&dir) {
        return Err(format!(
            "{}: the cache key must not live beside the entries in {}",
            location.key_file.display(),
            dir.display()
        ));
    }
    private_dir(key_dir)?;
    let key = read_or_create_key(&location.key_file)?;
    Ok(Store { dir, key })
}

#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (mode 0700) if needed and checks that it is a real folder, not a symlink,
/// owned by this user, that nobody else may enter; a folder of this user's that is too open is
/// narrowed to 0700.
#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let show = |e: std::io::Error| format!("{}: {e}", dir.display());
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(show)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(show(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(show)?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symlink; strata keeps compiled code only in a real folder of its own \
             (remove the symlink)",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a folder (remove it)", dir.display()));
    }
    if meta.uid() != euid() {
        return Err(format!(
            "{} belongs to user id {}, not to you (id {}); strata loads compiled code only from \
             a folder it can trust: remove that folder or point XDG_CACHE_HOME/XDG_STATE_HOME \
             elsewhere",
            dir.display(),
            meta.uid(),
            euid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(show)?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> Result<PathBuf, String> {
    Err(format!(
        "{}: the compile cache needs a platform with Unix file ownership; components are compiled on every run",
        dir.display()
    ))
}

/// This user's key: read from `path` (a regular file of this user's that nobody else may read),
/// or made from the OS's random source and written there first.
#[cfg(unix)]
fn read_or_create_key(path: &Path) -> Result<[u8; TAG_LEN], String> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let show = |e: std::io::Error| format!("{}: {e}", path.display());
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let mut file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; TAG_LEN];
            getrandom::fill(&mut key).map_err(|e| format!("{}: {e}", path.display()))?;
            let dir = path.parent().expect("checked by the caller");
            // tempfile creates the file with mode 0600; a concurrent first run may win the race.
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(show)?;
            tmp.write_all(&key).map_err(show)?;
            tmp.as_file().sync_all().map_err(show)?;
            match tmp.persist_noclobber(path) {
                Ok(_) => return Ok(key),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(show(e.error)),
            }
            open().map_err(show)?
        }
        Err(e) => {
            return Err(format!(
                "{}: {e} (a symlink is refused: the key must be a file of your own)",
                path.display()
            ));
        }
    };
    let meta = file.metadata().map_err(show)?;
    if !meta.is_file() || meta.uid() != euid() || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a file that only you can read (owner id {}, mode {:o}); remove it and \
             strata makes a new key",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    let mut key = [0u8; TAG_LEN];
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(show)?;
    if rest.len() != TAG_LEN {
        return Err(format!(
            "{} is not a strata cache key ({} bytes); remove it and strata makes a new one",
            path.display(),
            rest.len()
        ));
    }
    key.copy_from_slice(&rest);
    Ok(key)
}

#[cfg(not(unix))]
fn read_or_create_key(path: &Path) -> Result<[u8; TAG_LEN], String> {
    Err(format!(
        "{}: not supported on this platform",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &str = r#"(component
      (core module $m (func (export "f")))
      (core instance $i (instantiate $m))
      (func (export "f") (canon lift (core func $i "f"))))"#;

    fn location(root: &Path) -> Location {
        Location {
            entries: root.join("cache/strata/components"),
            key_file: root.join("state/strata/cache.key"),
        }
    }

    fn entry(dir: &Path) -> PathBuf {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.pop().unwrap()
    }

    fn exports(engine: &Engine, c: &Component) -> Vec<String> {
        c.component_type()
            .exports(engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    #[test]
    fn a_corrupt_entry_is_rebuilt_not_trusted() {
        let engine = Engine::default();
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        let cache = Cache::new(&engine, Some(loc.clone()));
        assert_eq!(cache.problem(), None);
        let wasm = wat::parse_str(COMPONENT).unwrap();
        cache.load(&engine, &wasm).unwrap();
        let path = entry(&loc.entries);
        let good = std::fs::read(&path).unwrap();
        let tag_path = path.with_extension("tag");
        let good_tag = std::fs::read(&tag_path).unwrap();

        // Flip a byte of the compiled code: the tag no longer matches.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let component = cache.load(&engine, &wasm).unwrap();
        assert_eq!(exports(&engine, &component), ["f"]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "the entry was not rewritten"
        );

        // A truncated entry, too.
        std::fs::write(&path, &good[..10]).unwrap();
        cache.load(&engine, &wasm).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);

        // A tag that is missing, short, or of other bytes.
        for bad_tag in [None, Some(vec![1u8; 5]), Some(vec![0u8; TAG_LEN])] {
            match bad_tag {
                None => std::fs::remove_file(&tag_path).unwrap(),
                Some(t) => std::fs::write(&tag_path, t).unwrap(),
            }
            std::fs::write(&path, &bad).unwrap();
            cache.load(&engine, &wasm).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), good);
            assert_eq!(std::fs::read(&tag_path).unwrap(), good_tag);
        }
    }

    #[test]
    fn a_forged_entry_is_recompiled_never_loaded() {
        let engine = Engine::default();
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        let cache = Cache::new(&engine, Some(loc.clone()));
        let wasm = wat::parse_str(COMPONENT).unwrap();
        cache.load(&engine, &wasm).unwrap();
        let path = entry(&loc.entries);
        let tag_path = path.with_extension("tag");
        let good = std::fs::read(&path).unwrap();

        // Someone who can write the folder but has no key puts other native code there, with
        // a checksum as a tag, and with a tag under a key of their own.
        let evil = Component::new(
            &engine,
            wat::parse_str(COMPONENT.replace("\"f\"", "\"evil\"")).unwrap(),
        )
        .unwrap()
        .serialize()
        .unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let forgeries = [
            Sha256::digest(&evil).to_vec(),
            blake3::hash(&evil).as_bytes().to_vec(),
            tag(&[7u8; TAG_LEN], &name, &evil).as_bytes().to_vec(),
        ];
        for forged in forgeries {
            std::fs::write(&path, &evil).unwrap();
            std::fs::write(&tag_path, &forged).unwrap();
            let loaded = cache.load(&engine, &wasm).unwrap();
            assert_eq!(
                exports(&engine, &loaded),
                ["f"],
                "the forged code was loaded"
            );
            assert_eq!(std::fs::read(&path).unwrap(), good, "not rewritten");
        }

        // An authentic entry of another component, copied into this one's place.
        let other = wat::parse_str(COMPONENT.replace("\"f\"", "\"g\"")).unwrap();
        cache.load(&engine, &other).unwrap();
        let other_path = loc.entries.join(format!(
            "{}-{}.cwasm",
            hex(&Sha256::digest(&other)),
            cache.engine_key
        ));
        std::fs::copy(&other_path, &path).unwrap();
        std::fs::copy(other_path.with_extension("tag"), &tag_path).unwrap();
        let loaded = cache.load(&engine, &wasm).unwrap();
        assert_eq!(
            exports(&engine, &loaded),
            ["f"],
            "a swapped entry was loaded"
        );
    }

    #[test]
    fn entries_are_keyed_by_the_component_bytes_and_survive_a_new_process() {
        let engine = Engine::default();
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        let cache = Cache::new(&engine, Some(loc.clone()));
        let a = wat::parse_str(COMPONENT).unwrap();
        let b = wat::parse_str(COMPONENT.replace("\"f\"", "\"g\"")).unwrap();
        cache.load(&engine, &a).unwrap();
        cache.load(&engine, &b).unwrap();
        // Code and tag of each.
        assert_eq!(std::fs::read_dir(&loc.entries).unwrap().count(), 4);
        // A second cache (as in the next run) reads the same key and trusts the entries.
        let again = Cache::new(&engine, Some(loc.clone()));
        let name = format!("{}-{}", hex(&Sha256::digest(&a)), again.engine_key);
        let store = again.store.as_ref().unwrap();
        let loaded = read_entry(&engine, store, &name).expect("the entry loads");
        assert_eq!(exports(&engine, &loaded), ["f"]);
    }

    #[cfg(unix)]
    #[test]
    fn folders_and_keys_that_are_not_private_are_refused_or_narrowed() {
        use std::os::unix::fs::PermissionsExt as _;
        let engine = Engine::default();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

        // Created private.
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        Cache::new(&engine, Some(loc.clone()));
        assert_eq!(mode(&loc.entries), 0o700);
        assert_eq!(mode(loc.key_file.parent().unwrap()), 0o700);
        assert_eq!(mode(&loc.key_file), 0o600);

        // A folder of ours that others could write is narrowed before use.
        std::fs::set_permissions(&loc.entries, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(Cache::new(&engine, Some(loc.clone())).problem(), None);
        assert_eq!(mode(&loc.entries), 0o700);

        // A symlinked entries folder is refused: the cache is off, nothing is written there.
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(loc.entries.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &loc.entries).unwrap();
        let cache = Cache::new(&engine, Some(loc.clone()));
        assert!(
            cache.problem().unwrap().contains("symlink"),
            "{:?}",
            cache.problem()
        );
        let wasm = wat::parse_str(COMPONENT).unwrap();
        cache.load(&engine, &wasm).unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

        // A key others can read, or a symlinked key, is refused.
        let root = tempfile::tempdir().unwrap();
        let loc = location(root.path());
        Cache::new(&engine, Some(loc.clone()));
        std::fs::set_permissions(&loc.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cache = Cache::new(&engine, Some(loc.clone()));
        assert!(
            cache.problem().unwrap().contains("only you"),
            "{:?}",
            cache.problem()
        );
        let planted = root.path().join("planted.key");
        std::fs::write(&planted, [1u8; TAG_LEN]).unwrap();
        std::fs::remove_file(&loc.key_file).unwrap();
        std::os::unix::fs::symlink(&planted, &loc.key_file).unwrap();
        let cache = Cache::new(&engine, Some(loc.clone()));
        assert!(
            cache.problem().unwrap().contains("symlink"),
            "{:?}",
            cache.problem()
        );

        // The key beside the entries is refused.
        let root = tempfile::tempdir().unwrap();
        let mut loc = location(root.path());
        loc.key_file = loc.entries.join("cache.key");
        assert!(
            Cache::new(&engine, Some(loc))
                .problem()
                .unwrap()
                .contains("beside")
        );
    }
}
