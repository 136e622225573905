//! `strata build`: compiles a migration's guest crates to WebAssembly components and writes the
//! `.wasm` files that get committed and checksummed.
//!
//! Each crate is built with cargo for wasm32-unknown-unknown under a pinned release profile, seen
//! through a fixed path (a symlink under /tmp/strata-build) and with that path remapped, so the
//! same source and toolchain give the same bytes wherever the project is checked out (cargo
//! hashes the absolute path of a path dependency outside the guest's workspace into every
//! symbol, which `--remap-path-prefix` does not change). The fixed folder is checked and kept
//! private to the user building (see `BuildRoot`); the core module is then encoded as a component with `wit-component`
//! (no external tools) and checked against the world its place in the folder implies. Build
//! output goes under `.strata/build/`, never into the migrations tree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::components::{Sandbox, World};
use crate::core::checksum::hex;
use crate::core::config::{MigrationConfig, Project};
use crate::core::error::Error;
use crate::core::event::{Event, EventSink};
use crate::core::guest::Lang;
use crate::core::guest::record_path;
use crate::core::guest::sources_sha256;
use crate::core::tree::{Migration, Tree};

pub mod python;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The release profile every guest is built with, whatever its own Cargo.toml says: these
/// settings decide the bytes, so they are part of the pin.
const PINNED_PROFILE: &[&str] = &[
    "profile.release.opt-level=3",
    "profile.release.codegen-units=1",
    "profile.release.lto=true",
    "profile.release.debug=false",
    "profile.release.incremental=false",
    "profile.release.panic=\"abort\"",
    "profile.release.strip=\"debuginfo\"",
];

/// One guest crate of a migration and the component it builds.
#[derive(Debug, Clone)]
pub struct GuestCrate {
    /// `module/folder` of the migration.
    pub migration: String,
    pub world: World,
    /// The crate folder (holding Cargo.toml), or a Python guest's folder (holding app.py).
    pub source: PathBuf,
    pub lang: Lang,
    /// The `.wasm` to write.
    pub output: PathBuf,
}

/// A component that was built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub migration: String,
    pub output: PathBuf,
    pub sha256: String,
    pub bytes: usize,
}

/// The guest crates of the migrations `selector` names: everything when `None`, a module
/// (`accounts`), or one migration (`accounts/20240105T093000Z-zero`, or just its stamp).
pub fn find(project: &Project, selector: Option<&str>) -> Result<Vec<GuestCrate>, Error> {
    let tree = Tree::load(&project.migrations_dir())?;
    let chosen: Vec<&Migration> = match selector {
        None => tree.migrations.iter().collect(),
        Some(sel) => {
            let (module, folder) = sel.split_once('/').unwrap_or((sel, ""));
            let chosen: Vec<&Migration> = tree
                .module(module)
                .filter(|m| folder.is_empty() || m.folder() == folder || m.id.stamp == folder)
                .collect();
            if chosen.is_empty() {
                return Err(Error::Usage(format!(
                    "no migration matches `{sel}`: use a module name, or <module>/<folder> as \
                     `strata status` lists them"
                )));
            }
            chosen
        }
    };
    let mut crates = Vec::new();
    for m in chosen {
        let build = MigrationConfig::load(&m.dir)?.build;
        for (world, source, named, output) in crate::core::guest::slots(m, &build) {
            if let Some(lang) = Lang::of(&source) {
                crates.push(GuestCrate {
                    migration: m.label(),
                    world,
                    source,
                    lang,
                    output: m.file(output),
                });
            } else if named {
                return Err(Error::input(
                    m.file(crate::core::config::MIGRATION_CONFIG_FILE),
                    format!(
                        "[build] names {} as a guest, but it has no Cargo.toml (Rust) or app.py \
                         (Python)",
                        source.display()
                    ),
                ));
            }
        }
    }
    Ok(crates)
}

/// Writes the record of what `c`'s component was built from, beside it.
fn write_record(c: &GuestCrate, component: &[u8]) -> Result<(), Error> {
    let record = record_path(&c.output);
    let source = c
        .output
        .parent()
        .and_then(|dir| c.source.strip_prefix(dir).ok())
        .unwrap_or(&c.source);
    let text = format!(
        "# What `strata build` made {} from. Committed with it, not pinned: `strata plan` and\n\
         # `migrate` warn, and `sandbox` fails, when the sources no longer match.\n\
         source = \"{}\"\n\
         sources_sha256 = \"{}\"\n\
         wasm_sha256 = \"{}\"\n",
        c.output.file_name().unwrap_or_default().to_string_lossy(),
        source.display(),
        sources_sha256(&c.source)?,
        hex(&Sha256::digest(component)),
    );
    std::fs::write(&record, text).map_err(|e| Error::io(&record, e))
}

/// Builds every crate in `crates`, writing each component; stops at the first failure.
pub fn build(
    project: &Project,
    crates: &[GuestCrate],
    sandbox: &Sandbox,
    events: &mut EventSink<'_>,
) -> Result<Vec<Built>, Error> {
    if crates.is_empty() {
        return Ok(Vec::new());
    }
    if crates.iter().any(|c| c.lang == Lang::Rust) {
        check_target_installed()?;
    }
    let target_dir = absolute(&project.ensure_state_dir()?.join("build"))?;
    let root = if project.root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        project.root.as_path()
    };
    crates
        .iter()
        .map(|c| {
            events(&Event::BuildStarted {
                migration: &c.migration,
                source: &c.source,
            });
            let component = match c.lang {
                Lang::Rust => {
                    let core = compile(c, &target_dir, events)?;
                    encode(&c.source, &core)?
                }
                Lang::Python => {
                    let source = absolute(&c.source)?;
                    let build_root = BuildRoot::enter(&source)?;
                    let staging = build_root.staging();
                    python::compile(root, c, &staging, events)?
                }
            };
            check_world(sandbox, c, &component)?;
            std::fs::write(&c.output, &component).map_err(|e| Error::io(&c.output, e))?;
            write_record(c, &component)?;
            Ok(Built {
                migration: c.migration.clone(),
                output: c.output.clone(),
                sha256: hex(&Sha256::digest(&component)),
                bytes: component.len(),
            })
        })
        .collect()
}

/// The core module `core` of the crate at `source`, encoded as a component.
#[cfg(feature = "build")]
fn encode(source: &Path, core: &[u8]) -> Result<Vec<u8>, Error> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| {
            build_error(
                source,
                format!("cannot encode the module as a component: {e:#}"),
            )
        })
}

/// Without the `build` feature there is no component encoder.
#[cfg(not(feature = "build"))]
fn encode(source: &Path, _core: &[u8]) -> Result<Vec<u8>, Error> {
    Err(build_error(
        source,
        "this strata was built without `strata build` (the `build` feature): build the \
         component with `cargo component build`, or with a strata that has the feature",
    ))
}

pub(crate) fn build_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Build {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// Refuses early, with the one command that fixes it, when the wasm target is missing.
fn check_target_installed() -> Result<(), Error> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot run rustc ({e}); `strata build` needs a Rust toolchain (rustup.rs)"
            ))
        })?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the {TARGET} target is not installed, and guest crates are built for it; install it with:\n    \
         rustup target add {TARGET}"
    )))
}

/// Where guest sources are seen from while they build: a fixed path, so that what cargo
/// derives from absolute paths (the `-C metadata` of path dependencies outside the guest's
/// workspace, and through it every symbol hash) is the same in every checkout.
#[cfg(unix)]
const BUILD_ROOT: &str = "/tmp/strata-build";

/// The local packages a guest crate builds (itself and its path dependencies), and the
/// workspace roots they inherit settings from.
fn local_dirs(source: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(source.join("Cargo.toml"))
        .output()
        .map_err(|e| build_error(source, format!("cannot run cargo metadata: {e}")))?;
    if !out.status.success() {
        return Err(build_error(
            source,
            format!(
                "cargo metadata failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        build_error(
            source,
            format!("cargo metadata gave unreadable output: {e}"),
        )
    })?;
    let mut dirs: Vec<PathBuf> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["source"].is_null())
        .filter_map(|p| {
            Some(
                Path::new(p["manifest_path"].as_str()?)
                    .parent()?
                    .to_path_buf(),
            )
        })
        .collect();
    let inherited: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| {
            d.ancestors().skip(1).find(|a| {
                std::fs::read_to_string(a.join("Cargo.toml"))
                    .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
            })
        })
        .map(Path::to_path_buf)
        .collect();
    dirs.extend(inherited);
    Ok(dirs)
}

/// The deepest folder holding every one of `dirs`.
fn common_ancestor(dirs: &[PathBuf]) -> PathBuf {
    let mut common = dirs.first().cloned().unwrap_or_default();
    for d in dirs {
        while !d.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// Holds the fixed build root for one build: a symlink to the sources' common ancestor, under
/// a lock so concurrent builds on one machine take turns.
///
/// The root's path must be the same everywhere (it decides the bytes), so it cannot be private
/// by name; it is made private by ownership instead: a real folder (never a symlink), owned by
/// this user, mode 0700, in a parent that other users cannot rename it out of (sticky, like
/// /tmp). Anything planted in it while it was open to others (a symlinked lock, a swapped
/// `src`) is replaced, never followed or truncated. A root another user owns is refused.
struct BuildRoot {
    path: PathBuf,
    _lock: std::fs::File,
}

impl BuildRoot {
    /// A folder inside the root where a Python guest is staged (fixed path, private).
    fn staging(&self) -> PathBuf {
        self.path.with_file_name("py")
    }
}

#[cfg(unix)]
impl BuildRoot {
    fn enter(real: &Path) -> Result<BuildRoot, Error> {
        BuildRoot::enter_at(Path::new(BUILD_ROOT), real)
    }

    fn enter_at(base: &Path, real: &Path) -> Result<BuildRoot, Error> {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
        use std::os::unix::fs::{PermissionsExt as _, symlink};
        let refuse = |why: String| build_error(base, why);
        let io = |path: &Path, e: std::io::Error| Error::io(path, e);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };

        let parent = base.parent().unwrap_or(Path::new("/"));
        let pmeta = std::fs::metadata(parent).map_err(|e| io(parent, e))?;
        if pmeta.mode() & 0o002 != 0 && pmeta.mode() & 0o1000 == 0 {
            return Err(refuse(format!(
                "{} is writable by every user but not sticky, so another user could swap the \
                 build root; fix it with `chmod +t {}`",
                parent.display(),
                parent.display()
            )));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(base, e)),
        }
        // Open the folder itself, never what a symlink there points to, and check the folder
        // that was opened.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
            .open(base)
            .map_err(|e| {
                refuse(format!(
                    "cannot open the build root as a folder of its own ({e}); it may be a symlink \
                     planted by another user: remove it (`rm {}`) and build again",
                    base.display()
                ))
            })?;
        let meta = dir.metadata().map_err(|e| io(base, e))?;
        if meta.uid() != me {
            return Err(refuse(format!(
                "the build root belongs to user id {}, not to you (id {me}); strata builds only \
                 in a folder no one else controls: ask its owner (or root) to remove it",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            dir.set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(base, e))?;
        }

        // The lock: opened without following a symlink and without truncating anything.
        let lock_path = base.join("lock");
        let open_lock = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
        };
        // Removes whatever is at `path` (a symlink itself, never its target).
        let clear = |path: &Path| match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| io(path, e)),
            Ok(_) => std::fs::remove_file(path).map_err(|e| io(path, e)),
            Err(_) => Ok(()),
        };
        let lock = match open_lock() {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file() && m.uid() == me) => f,
            _ => {
                // Something else was planted there while the folder was open to others.
                clear(&lock_path)?;
                open_lock().map_err(|e| io(&lock_path, e))?
            }
        };
        lock.lock().map_err(|e| io(&lock_path, e))?;
        let link = base.join("src");
        clear(&link)?;
        symlink(real, &link).map_err(|e| io(&link, e))?;
        Ok(BuildRoot {
            path: link,
            _lock: lock,
        })
    }
}

/// Builds one crate and returns its core module.
fn compile(
    c: &GuestCrate,
    target_dir: &Path,
    events: &mut EventSink<'_>,
) -> Result<Vec<u8>, Error> {
    let source = absolute(&c.source)?;
    let real_root = common_ancestor(&local_dirs(&source)?);
    let root = BuildRoot::enter(&real_root)?;
    let rel = source
        .strip_prefix(&real_root)
        .expect("the crate is under the common ancestor");
    let mut flags = vec![format!("--remap-path-prefix={}=/src", root.path.display())];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        flags.insert(0, format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    let mut cmd = Command::new(cargo());
    cmd.args([
        "build",
        "--release",
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(root.path.join(rel).join("Cargo.toml"));
    for setting in PINNED_PROFILE {
        cmd.args(["--config", setting]);
    }
    let mut child = cmd
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| build_error(&c.source, format!("cannot run cargo: {e}")))?;
    // stdout (JSON messages) is read on a thread while cargo's progress on stderr is passed on
    // line by line, so the user sees the build move.
    let mut stdout_pipe = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout_pipe, &mut text);
        text
    });
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let stderr_pipe = child.stderr.take().expect("piped");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)) {
        let Ok(line) = line else { break };
        events(&Event::BuildOutput(&line));
        if tail.len() == 40 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child
        .wait()
        .map_err(|e| build_error(&c.source, format!("cannot run cargo: {e}")))?;
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(build_error(
            &c.source,
            format!(
                "cargo build failed:\n{}",
                tail.into_iter().collect::<Vec<_>>().join("\n")
            ),
        ));
    }
    let mut wasm = None;
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        if let Some(file) = msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"))
        {
            wasm = Some(PathBuf::from(file));
        }
    }
    let wasm = wasm.ok_or_else(|| {
        build_error(
            &c.source,
            "the crate built no .wasm; a guest crate needs `[lib] crate-type = [\"cdylib\"]` in its Cargo.toml",
        )
    })?;
    crate::core::input::read_component(&wasm)?
        .ok_or_else(|| Error::input(&wasm, "is gone: the build had just made it"))
}

/// Refuses a component whose exports do not match the world its folder stands for.
fn check_world(sandbox: &Sandbox, c: &GuestCrate, component: &[u8]) -> Result<(), Error> {
    let exports = sandbox
        .exports(component, None)
        .map_err(|e| build_error(&c.source, format!("the component does not load: {e:#}")))?;
    if exports.iter().any(|e| e == c.world.export()) {
        return Ok(());
    }
    Err(build_error(
        &c.source,
        format!(
            "this crate is in the place of a {} component (world `{}`, exporting `{}`), but its \
             component exports {}; use the SDK's `{}!` macro (in Python its `@{}` decorator), or \
             move the crate to the folder of its world (transform/, test-data/seed/, \
             proj-data/seed/, check/)",
            c.world.name(),
            c.world.name(),
            c.world.export(),
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            },
            c.world.name(),
            c.world.name(),
        ),
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_fresh_build_root_is_private_and_points_at_the_sources() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("strata-build");
        let sources = tmp.path().join("checkout");
        std::fs::create_dir_all(&sources).unwrap();
        let root = BuildRoot::enter_at(&base, &sources).unwrap();
        assert_eq!(root.path, base.join("src"));
        assert_eq!(std::fs::read_link(&root.path).unwrap(), sources);
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(&base.join("lock")), 0o600);
    }

    #[test]
    fn a_symlinked_build_root_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        // Another user pre-created the fixed path as a symlink to a folder of the victim's.
        let victim = tmp.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("lock"), "precious").unwrap();
        let victim_mode = mode(&victim);
        let base = tmp.path().join("strata-build");
        symlink(&victim, &base).unwrap();
        let sources = tmp.path().join("checkout");
        std::fs::create_dir_all(&sources).unwrap();
        let err = BuildRoot::enter_at(&base, &sources)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("symlink"), "{err}");
        assert_eq!(
            std::fs::read_to_string(victim.join("lock")).unwrap(),
            "precious"
        );
        assert!(!victim.join("src").exists());
        assert_eq!(
            mode(&victim),
            victim_mode,
            "the victim's folder was not chmod-ed"
        );
    }

    #[test]
    fn what_was_planted_in_an_open_build_root_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("strata-build");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        // A symlinked lock aimed at a victim's file, and `src` aimed at an attacker's code.
        let victim = tmp.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        symlink(&victim, base.join("lock")).unwrap();
        let attacker = tmp.path().join("attacker");
        std::fs::create_dir_all(&attacker).unwrap();
        symlink(&attacker, base.join("src")).unwrap();
        let sources = tmp.path().join("checkout");
        std::fs::create_dir_all(&sources).unwrap();

        let root = BuildRoot::enter_at(&base, &sources).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            std::fs::symlink_metadata(base.join("lock"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read_link(&root.path).unwrap(), sources);
        assert_eq!(mode(&base), 0o700, "the folder is closed to others again");
    }

    #[test]
    fn a_build_root_in_an_open_parent_or_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let sources = tmp.path().join("checkout");
        std::fs::create_dir_all(&sources).unwrap();
        let err = BuildRoot::enter_at(&open.join("strata-build"), &sources)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod +t"), "{err}");

        // Sticky, like /tmp: fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        BuildRoot::enter_at(&open.join("strata-build"), &sources).unwrap();

        // Another user's folder (only root can make one here to test with).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let theirs = open.join("theirs");
            std::fs::create_dir_all(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let err = BuildRoot::enter_at(&theirs, &sources)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("belongs to user id 65534"), "{err}");
            assert!(!theirs.join("src").exists());
            assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
        }
    }
}
