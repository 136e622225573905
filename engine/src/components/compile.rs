//! Compiling a component, bounded. Compilation runs before any of a migration's limits
//! (`fuel`, `memory_mib`, `timeout_s`) can apply, and its cost grows with the size of the
//! component's functions: a 3 MB function of constants costs cranelift seconds and hundreds of
//! MB. So a binary that calls [`serve_as_child`] first thing in `main` (strata does) compiles
//! each component in a child process of itself, under an address-space limit
//! ([`COMPILE_MEMORY_MIB`], `RLIMIT_AS`) and a deadline ([`COMPILE_TIMEOUT`]), and fails with
//! a clear error naming the bound it hit. The child returns the serialized code, which the
//! compile cache stores as before. Without [`serve_as_child`] (a library user, unit tests)
//! components compile in-process, unbounded.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

/// The address space a compile may use, in MiB. A 19 MB CPython component peaks at about
/// 415 MB of resident memory compiling with [`COMPILE_THREADS`] threads, but address space is
/// more than residence (the executable, thread stacks, allocator arenas): 512 MiB refused the
/// JavaScript and Python guests of the test suite on a debug build. 2 GiB leaves them room and
/// still bounds a hostile component (a 4.5 MB function of constants once took 1.34 GB), and
/// [`one_at_a_time`] keeps it the bound of the whole process, not of each fleet worker.
pub const COMPILE_MEMORY_MIB: u64 = 2048;
/// The variable that sets another address-space limit for compiles, in MiB (at least 64):
/// the operator's (the environment), never the checkout's.
pub const COMPILE_MEMORY_VAR: &str = "STRATA_COMPILE_MEMORY_MIB";
/// The threads a compile uses (each holds a function's working memory, within the limit).
pub const COMPILE_THREADS: usize = 2;
/// How long a compile may take.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(180);
/// The argument that makes the binary a compile child.
const CHILD_ARG: &str = "__strata-compile-component";
/// The largest component strata takes: 256 MiB, checked from a file's size before it is read
/// (`core::input::read_component`) and again here before a compile. The largest real guests
/// (Python through componentize-py, JavaScript through componentize-js) are about 20 MiB, a
/// Rust guest far less; a component near this size would need more than the compile's memory
/// bound anyway, so a larger file is refused as one, never held whole.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// A compile stopped at its bound (memory or time): the component is refused for it, not
/// taken for an invalid one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Bounded(pub String);

/// The binary compile children run, set by [`serve_as_child`].
static CHILD_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Call first in `main`: when this process is a compile child, compiles the component on
/// stdin with [`engine_config`]'s engine, writes its serialized code to stdout and exits;
/// otherwise makes later compiles run in children of this executable.
pub fn serve_as_child() {
    if std::env::args_os().nth(1).is_some_and(|a| a == CHILD_ARG) {
        std::process::exit(child_main());
    }
    if let Ok(exe) = std::env::current_exe() {
        let _ = CHILD_EXE.set(exe);
    }
}

fn child_main() -> i32 {
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_COMPONENT_BYTES)
        .read_to_end(&mut wasm)
    {
        eprintln!("cannot read the component: {e}");
        return 1;
    }
    let code = Engine::new(&super::engine_config())
        .and_then(|engine| Component::new(&engine, &wasm))
        .and_then(|c| c.serialize());
    match code {
        Ok(code) => match std::io::stdout().lock().write_all(&code) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cannot write the compiled code: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// Held while a component is compiled: one compile at a time in a process, so that fleet
/// workers starting the same (or different) uncached components wait for each other instead
/// of holding a bounded child each; the cache is looked at again once it is held.
pub(crate) fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    COMPILING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The compiled component for `wasm`: in a bounded child when [`serve_as_child`] set one up,
/// else in-process.
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
    if wasm.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(wasmtime::Error::new(Bounded(format!(
            "the component is {} MiB, larger than the {} MiB strata takes of a component",
            wasm.len() >> 20,
            MAX_COMPONENT_BYTES >> 20
        ))));
    }
    match CHILD_EXE.get() {
        Some(exe) => {
            let code = compile_in_child(exe, wasm)?;
            // SAFETY: `code` is what `Component::serialize` produced, in a child process of
            // this same executable, with the same engine configuration (`engine_config`);
            // wasmtime checks the version and configuration in it and refuses a mismatch.
            unsafe { Component::deserialize(engine, &code) }
        }
        None => Component::new(engine, wasm),
    }
}

/// The address-space limit of a compile, in MiB: [`COMPILE_MEMORY_VAR`] or
/// [`COMPILE_MEMORY_MIB`].
pub fn compile_memory_mib() -> u64 {
    std::env::var(COMPILE_MEMORY_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(COMPILE_MEMORY_MIB, |v| v.clamp(64, 1 << 20))
}

fn compile_in_child(exe: &Path, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
    let mib = compile_memory_mib();
    let limit = mib << 20;
    let mut command = Command::new(exe);
    command
        .arg(CHILD_ARG)
        .env_clear()
        // Few malloc arenas: their reservations count against the address space.
        .env("MALLOC_ARENA_MAX", "2")
        .env("RAYON_NUM_THREADS", COMPILE_THREADS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let cap = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| wasmtime::Error::msg(format!("cannot start the compile process: {e}")))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(wasmtime::Error::msg("the compile process has no pipes"));
    };
    let started = Instant::now();
    let (code, err, status) = std::thread::scope(|s| {
        s.spawn(move || {
            // A child that died stops reading: its status says why.
            let _ = stdin.write_all(wasm);
        });
        let out = s.spawn(move || {
            let mut code = Vec::new();
            let _ = stdout.read_to_end(&mut code);
            code
        });
        let err = s.spawn(move || {
            let mut text = String::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
            text
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= COMPILE_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => {
                    let _ = child.kill();
                    break child.wait().map_err(|_| ());
                }
            }
        };
        (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
            status,
        )
    });
    let Ok(status) = status else {
        return Err(wasmtime::Error::new(Bounded(format!(
            "compiling the component took longer than {} s, the bound on compiling a \
             component (its functions are too large or too many)",
            COMPILE_TIMEOUT.as_secs()
        ))));
    };
    if status.success() {
        return Ok(code);
    }
    let out_of_memory = status.signal().is_some()
        || err.contains("memory allocation")
        || err.contains("out of memory")
        || err.contains("Cannot allocate memory");
    if out_of_memory {
        return Err(wasmtime::Error::new(Bounded(format!(
            "compiling the component needed more than {mib} MiB of memory, the bound on \
             compiling a component (its functions are too large or too many; {COMPILE_MEMORY_VAR} \
             sets another)"
        ))));
    }
    let why = err.trim();
    Err(wasmtime::Error::msg(if why.is_empty() {
        format!("compiling the component failed ({status})")
    } else {
        why.to_string()
    }))
}
