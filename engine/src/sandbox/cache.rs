//! The compile cache: each component is compiled once per engine version and configuration and
//! kept under `.strata/cache/`, keyed by the sha256 of its bytes.
//!
//! An entry is the sha256 of the compiled code followed by the code. It is loaded only when that
//! hash matches and wasmtime accepts it for this engine; anything else is recompiled and
//! rewritten, never trusted. Writes go to a temporary file and are renamed into place.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::checksum::hex;

/// Changes whenever the engine configuration changes in a way wasmtime cannot detect itself
/// (NaN canonicalization is one), so old entries are not reused.
const CONFIG_GENERATION: &str = "strata-sandbox-1";

/// Where compiled components are kept; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl Cache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CONFIG_GENERATION.hash(&mut h);
        Cache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    /// The compiled component for `wasm`, from the cache when a valid entry exists.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, wasm);
        };
        let path = dir.join(format!(
            "{}-{}.cwasm",
            hex(&Sha256::digest(wasm)),
            self.engine_key
        ));
        if let Some(component) = read_entry(engine, &path) {
            return Ok(component);
        }
        let component = Component::new(engine, wasm)?;
        // A cache that cannot be written only costs time; the run goes on.
        let _ = write_entry(&path, &component.serialize()?);
        Ok(component)
    }
}

fn read_entry(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let (sum, code) = bytes.split_at(32);
    if Sha256::digest(code).as_slice() != sum {
        return None;
    }
    // SAFETY: `Component::deserialize` requires bytes produced by `Component::serialize` of a
    // compatible engine. The bytes are exactly what `write_entry` stored (their sha256 matches
    // the one written with them), `serialize` produced them, and wasmtime itself refuses
    // entries from another version or configuration; the key adds what it cannot check.
    unsafe { Component::deserialize(engine, code) }.ok()
}

fn write_entry(path: &Path, code: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a folder");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&Sha256::digest(code))?;
    tmp.write_all(code)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &str = r#"(component
      (core module $m (func (export "f")))
      (core instance $i (instantiate $m))
      (func (export "f") (canon lift (core func $i "f"))))"#;

    fn entry(dir: &Path) -> PathBuf {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.pop().unwrap()
    }

    #[test]
    fn a_corrupt_entry_is_rebuilt_not_trusted() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&engine, Some(dir.path().to_path_buf()));
        let wasm = wat::parse_str(COMPONENT).unwrap();
        cache.load(&engine, &wasm).unwrap();
        let path = entry(dir.path());
        let good = std::fs::read(&path).unwrap();

        // Flip a byte of the compiled code: the checksum no longer matches.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let component = cache.load(&engine, &wasm).unwrap();
        assert_eq!(component.component_type().exports(&engine).count(), 1);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "the entry was not rewritten"
        );

        // A truncated entry, too.
        std::fs::write(&path, &good[..10]).unwrap();
        cache.load(&engine, &wasm).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }

    #[test]
    fn entries_are_keyed_by_the_component_bytes() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&engine, Some(dir.path().to_path_buf()));
        let a = wat::parse_str(COMPONENT).unwrap();
        let b = wat::parse_str(COMPONENT.replace("\"f\"", "\"g\"")).unwrap();
        cache.load(&engine, &a).unwrap();
        cache.load(&engine, &b).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
