//! The layering of the engine's folders, checked: each folder imports only the layers beneath
//! it, and the two backends never import each other.
//!
//! | layer | folder | may import |
//! | --- | --- | --- |
//! | 0 | `components/` (the WebAssembly runtime) | nothing of the crate |
//! | 1 | `core/` (shared model, the seam's traits, the step and phase algorithms) | components |
//! | 2 | `sqlite/`, `postgres/` (one backend each) | core, components |
//! | 3 | `backends.rs` (the one place that knows both) | the backends and below |
//! | 4 | `commands/` | backends, core, components: never a backend by name |
//!
//! Read from the `crate::` paths in each file's code (comments and `mod tests` left out), so a
//! new arrow that runs upwards fails here, naming the file and the path.

use std::path::Path;

/// The layer of a top-level module, `None` for the crate root's own files.
fn rank(module: &str) -> Option<u8> {
    Some(match module {
        "components" => 0,
        "core" => 1,
        "sqlite" | "postgres" => 2,
        "backends" => 3,
        "commands" => 4,
        _ => return None,
    })
}

/// `file`'s code without its unit tests and comment lines.
fn code_of(text: &str) -> String {
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::<module>` that `code` names.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `$crate::` in a macro is the crate too; any other prefix (`strata_crate::`) is not.
        let before = rest[..at].chars().next_back();
        if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_')) || before == Some('$') {
            found.push(name);
        }
        rest = after;
    }
    found
}

fn visit(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, root, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(mine) = rank(top) else { continue };
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        for other in crate_modules(&code) {
            let Some(theirs) = rank(&other) else { continue };
            // A command reaches a backend only through `backends` (the seam).
            let names_a_backend = top == "commands" && theirs == 2;
            if other != top && (theirs >= mine || names_a_backend) {
                out.push(format!("{} imports crate::{other}", rel.display()));
            }
        }
    }
}

#[test]
fn each_folder_imports_only_the_layers_beneath_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    visit(&root, &root, &mut upward);
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that run upwards or across the backends (see engine/src/layers.rs):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let code = code_of(
        "use crate::core::error::Error;\n// crate::commands in a comment\nfn f() { $crate::x::y(); crate::commands::migrate::plan(); }\n#[cfg(test)]\nmod tests { use crate::backends; }",
    );
    assert_eq!(crate_modules(&code), ["core", "x", "commands"]);
}
