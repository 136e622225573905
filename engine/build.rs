//! Builds the library `strata build` preloads into componentize-py so that Python guests build
//! reproducibly (src/commands/build/pyrepro.c), on the platform it is written for: Linux on
//! x86_64 with glibc, built natively. strata carries it (`include_bytes!`) under the cfg
//! `strata_pyrepro`; elsewhere Python guests still build, without it.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/commands/build/pyrepro.c";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(strata_pyrepro)");
    println!("cargo::rerun-if-changed={SOURCE}");
    println!("cargo::rerun-if-env-changed=CC");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    if std::env::var_os("CARGO_FEATURE_BUILD").is_none()
        || !native
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    let out = PathBuf::from(var("OUT_DIR")).join("pyrepro.so");
    // The C compiler that links Rust on this platform.
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    // No -Werror: a newer compiler's new warning must not stop strata from building.
    let status = Command::new(&cc)
        .args(["-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-o"])
        .arg(&out)
        .arg(SOURCE)
        .arg("-ldl")
        .status();
    // Without the library strata still builds Python guests, and `strata build` says that
    // their bytes will differ from one checkout to another.
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=strata_pyrepro"),
        Ok(s) => println!(
            "cargo::warning={} failed to build {SOURCE} ({s}): Python guests will build, but not reproducibly",
            cc.to_string_lossy()
        ),
        Err(e) => println!(
            "cargo::warning=cannot run the C compiler {} ({e}): Python guests will build, but not reproducibly",
            cc.to_string_lossy()
        ),
    }
}
