//! Python guests: a folder holding `app.py` (and any modules beside it), built by a pinned
//! componentize-py into a component of the same WIT worlds as a Rust guest.
//!
//! `strata build` runs `componentize-py -d strata.wit -w <world> componentize --stub-wasi -p app
//! -p sdk app` on a copy of the sources staged at a fixed path (inside the private build root),
//! with every file's mtime set to one fixed time, so neither the checkout's path nor its times
//! reach the component (the sources' hash in the built-from record is the same in every checkout).
//! The output is byte-reproducible on Linux x86_64 (glibc): componentize-py 0.25.1 reads the
//! OS's randomness (the order of its WASI stub adapters, CPython's hash secret), the clocks, the
//! inode numbers and times of the standard library it extracts afresh for every build, and the
//! order in which the kernel lists folders, and all of it reaches the component, so `strata
//! build` preloads into it a library (`pyrepro.c`, built by engine/build.rs and carried inside
//! strata) that makes each of them fixed (docs/src/components.md, "Reproducible Python builds").
//! Elsewhere the build still works, without it, and says its bytes will differ.
//! `--stub-wasi` leaves WASI out: the component imports only `strata:migrate/sql` and
//! `strata:migrate/log`, like a Rust one. componentize-py is needed to build, never to migrate:
//! the built `.wasm` is committed and pinned.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::components::World;
use crate::core::error::Error;
use crate::core::event::{Event, EventSink};

use super::{GuestCrate, build_error};

/// The optional file of a Python guest that names its SDK folder (relative to the guest).
pub const GUEST_FILE: &str = "strata-guest.toml";

/// The componentize-py every Python guest is built with: part of the pin, since it decides the
/// bytes (it bundles CPython and its standard library).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The library preloaded into componentize-py to make its output reproducible, where it is
/// built (see the module's comment).
#[cfg(strata_pyrepro)]
const PYREPRO: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/pyrepro.so")));
#[cfg(not(strata_pyrepro))]
const PYREPRO: Option<&[u8]> = None;

/// The one fixed time staged files get (1980-01-01, the zip epoch), so no mtime reaches the
/// output.
const FIXED_MTIME_S: u64 = 315_532_800;

fn install_hint() -> String {
    format!(
        "install it with `python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}` \
         (offline: `pip download componentize-py=={COMPONENTIZE_PY_VERSION} -d wheels/` where \
         there is network, then `pip install --no-index --find-links wheels/ \
         componentize-py=={COMPONENTIZE_PY_VERSION}`), or point STRATA_COMPONENTIZE_PY at that \
         version's executable. Only `strata build` needs it; migrate runs the committed .wasm"
    )
}

/// The pinned componentize-py: `STRATA_COMPONENTIZE_PY`, else `componentize-py` on PATH;
/// refused unless it says it is [`COMPONENTIZE_PY_VERSION`].
pub fn componentize_py(source: &Path) -> Result<OsString, Error> {
    let exe =
        std::env::var_os("STRATA_COMPONENTIZE_PY").unwrap_or_else(|| "componentize-py".into());
    let out = Command::new(&exe).arg("--version").output().map_err(|e| {
        build_error(
            source,
            format!(
                "cannot run {} ({e}); Python guests are built with componentize-py \
                 {COMPONENTIZE_PY_VERSION}: {}",
                exe.to_string_lossy(),
                install_hint()
            ),
        )
    })?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = said.rsplit(' ').next().unwrap_or_default();
    if !out.status.success() || version != COMPONENTIZE_PY_VERSION {
        return Err(build_error(
            source,
            format!(
                "{} is `{said}`, but Python guests are built with componentize-py \
                 {COMPONENTIZE_PY_VERSION} exactly (another version gives other bytes); {}",
                exe.to_string_lossy(),
                install_hint()
            ),
        ));
    }
    Ok(exe)
}

/// The Python SDK folder (holding `strata_sdk/`) a guest builds against: the `sdk` its
/// `strata-guest.toml` names, else `STRATA_SDK_PYTHON`, else the project's own copy.
pub fn sdk_dir(root: &Path, guest: &Path) -> Result<PathBuf, Error> {
    let file = guest.join(GUEST_FILE);
    let named = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let table: toml::Table = text
                .parse()
                .map_err(|e| Error::input(&file, format!("is not valid TOML: {e}")))?;
            match table.get("sdk") {
                Some(toml::Value::String(s)) => Some(guest.join(s)),
                Some(_) => {
                    return Err(Error::input(
                        &file,
                        "`sdk` must be a string: the path of the Python SDK folder, relative to \
                         the guest",
                    ));
                }
                None => None,
            }
        }
        Err(_) => None,
    };
    let dir = match named.or_else(|| std::env::var_os("STRATA_SDK_PYTHON").map(PathBuf::from)) {
        Some(dir) => dir,
        None => {
            crate::commands::sdk_copy::ensure(root)?.join(crate::commands::sdk_copy::PYTHON_DIR)
        }
    };
    if dir.join("strata_sdk/__init__.py").is_file() {
        return Ok(dir);
    }
    Err(build_error(
        guest,
        format!(
            "cannot find the Python SDK (strata_sdk/__init__.py) in {}: fix `sdk` in {GUEST_FILE}, \
             or remove it to use the project's strata-sdk/<version>/{}",
            dir.display(),
            crate::commands::sdk_copy::PYTHON_DIR
        ),
    ))
}

/// The WIT a Python SDK folder goes with: `wit/` beside it (the project's copy) or the strata
/// checkout's `sdk/wit/`.
fn wit_file(sdk: &Path) -> Option<PathBuf> {
    [
        sdk.join("wit/strata.wit"),
        sdk.join("../wit/strata.wit"),
        sdk.join("../sdk/wit/strata.wit"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Copies `from` into `to` (a new folder): every file but hidden entries, `__pycache__` and
/// `target/`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text.starts_with('.') || text == "__pycache__" || text == "target" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else {
            let dest = to.join(&name);
            std::fs::copy(&path, &dest).map_err(|e| Error::io(&dest, e))?;
        }
    }
    Ok(())
}

/// Sets the mtime (and atime) of everything under `dir`, and `dir` itself, to the fixed time.
fn fix_times(dir: &Path) -> Result<(), Error> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXED_MTIME_S);
    let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            fix_times(&path)?;
        } else {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_times(times))
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|f| f.set_times(times))
        .map_err(|e| Error::io(dir, e))
}

/// Builds one Python guest and returns its component.
pub fn compile(
    root: &Path,
    c: &GuestCrate,
    staging: &Path,
    events: &mut EventSink<'_>,
) -> Result<Vec<u8>, Error> {
    let exe = componentize_py(&c.source)?;
    let sdk = sdk_dir(root, &c.source)?;
    let wit = wit_file(&sdk).ok_or_else(|| {
        build_error(
            &c.source,
            format!(
                "no strata.wit beside the Python SDK {} (looked in wit/ and ../wit/)",
                sdk.display()
            ),
        )
    })?;

    // The staged copy: the same path and times in every checkout.
    let _ = std::fs::remove_dir_all(staging);
    copy_tree(&c.source, &staging.join("app"))?;
    copy_tree(&sdk.join("strata_sdk"), &staging.join("sdk/strata_sdk"))?;
    let staged_wit = staging.join("strata.wit");
    std::fs::copy(&wit, &staged_wit).map_err(|e| Error::io(&staged_wit, e))?;
    let tmp = staging.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    fix_times(staging)?;
    // Beside the staged folders, never inside one componentize-py mounts.
    let preload = staging.join("pyrepro.so");
    match PYREPRO {
        Some(bytes) => std::fs::write(&preload, bytes).map_err(|e| Error::io(&preload, e))?,
        None => events(&Event::Warning(format!(
            "{}: Python guests build reproducibly only on Linux x86_64 with glibc; this \
             component's bytes will differ from another build of the same sources",
            c.source.display()
        ))),
    }

    let world = match c.world {
        World::Transform => "transform",
        World::Seed => "seed",
        World::Check => "check",
    };
    let output = staging.join("component.wasm");
    let mut cmd = Command::new(&exe);
    cmd.current_dir(staging)
        .args([
            "-d",
            "strata.wit",
            "-w",
            world,
            "componentize",
            "--stub-wasi",
        ])
        .args(["-p", "app", "-p", "sdk", "app", "-o"])
        .arg(&output)
        // componentize-py's temporary folders (the extracted standard library, the generated
        // bindings) inside the staging folder; the rest fixes the host-side Python that launches
        // it. None of it reaches the CPython it pre-initializes (see the module's comment).
        .env("TMPDIR", &tmp)
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SOURCE_DATE_EPOCH", FIXED_MTIME_S.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if PYREPRO.is_some() {
        let mut paths = OsString::from(&preload);
        if let Some(theirs) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            paths.push(":");
            paths.push(theirs);
        }
        cmd.env("LD_PRELOAD", paths);
        // Inode numbers are derived from paths relative to it (as the kernel names them).
        let root = staging.canonicalize().map_err(|e| Error::io(staging, e))?;
        cmd.env("STRATA_PYREPRO_ROOT", root);
    }
    let mut child = cmd.spawn().map_err(|e| {
        build_error(
            &c.source,
            format!("cannot run {}: {e}", exe.to_string_lossy()),
        )
    })?;
    let mut stdout_pipe = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout_pipe, &mut text);
        text
    });
    let mut tail = Vec::new();
    let stderr_pipe = child.stderr.take().expect("piped");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)) {
        let Ok(line) = line else { break };
        events(&Event::BuildOutput(&line));
        tail.push(line);
    }
    let status = child.wait().map_err(|e| {
        build_error(
            &c.source,
            format!("cannot run {}: {e}", exe.to_string_lossy()),
        )
    })?;
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        let mut said: Vec<&str> = stdout
            .lines()
            .chain(tail.iter().map(String::as_str))
            .collect();
        if said.len() > 40 {
            said.drain(..said.len() - 40);
        }
        // Paths in componentize-py's messages are of the staged copy: name the real folder.
        let said = said.join("\n").replace(
            &staging.join("app").display().to_string(),
            &c.source.display().to_string(),
        );
        return Err(build_error(
            &c.source,
            format!("componentize-py failed:\n{said}"),
        ));
    }
    if PYREPRO.is_some() && !staging.join("pyrepro.active").exists() {
        events(&Event::Warning(format!(
            "{}: the library that makes Python builds reproducible could not filter \
             componentize-py's system calls (seccomp refused?); this component's bytes will \
             differ from another build of the same sources",
            c.source.display()
        )));
    }
    let bytes = crate::core::input::read_component(&output)?
        .ok_or_else(|| Error::input(&output, "is gone: componentize-py had just made it"))?;
    let _ = std::fs::remove_dir_all(staging);
    Ok(bytes)
}
