//! A JavaScript guest: the split-names example of guest-examples/js, built by componentize-js
//! (pinned in guest-examples/js/package.json) with every WASI feature disabled, runs unchanged
//! in strata's sandbox and leaves the rows the Rust component leaves.
//!
//! Building takes node and `npm ci` in guest-examples/js (.ci/run does both), and about half a
//! minute; the first wasmtime compile of the 12 MB component takes as long again.

use crate::harness::{repo_root, rows};
use crate::python::{SPLIT, SPLIT_ROWS, rust_split, split_project};

#[test]
#[ignore = "needs node and componentize-js 0.22.0 (npm ci --prefix guest-examples/js)"]
fn the_javascript_split_names_runs_and_leaves_the_rows_the_rust_one_does() {
    let examples = repo_root().join("guest-examples/js");
    assert!(
        examples
            .join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "componentize-js is not installed: npm ci --prefix guest-examples/js"
    );
    let count = 2_000;
    let js = split_project(count);
    let out = js.path(&format!("{SPLIT}/transform.wasm"));
    let built = std::process::Command::new("node")
        .current_dir(&examples)
        .arg("build.mjs")
        .arg("split-names/app.js")
        .arg(repo_root().join("sdk/wit/strata.wit"))
        .arg("transform")
        .arg(&out)
        .output()
        .expect("run node");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    js.strata(&["migrate"]).ok();
    let changed = rows(
        &js.open("app.db"),
        "SELECT rows FROM strata_migration_audit WHERE action = 'transform' AND outcome = 'ok'",
    );
    assert_eq!(changed, [count.to_string()], "{changed:?}");

    let from_js = rows(&js.open("app.db"), SPLIT_ROWS);
    assert_eq!(from_js.len(), count as usize);
    assert_eq!(
        from_js,
        rust_split(count),
        "JavaScript and Rust split differently"
    );
    let split = rows(
        &js.open("app.db"),
        "SELECT first_name || '|' || last_name FROM people WHERE id IN (1, 2, 3, 5) ORDER BY id",
    );
    assert_eq!(
        split,
        [
            "Gabriel|García Márquez",
            "Zoë|Brontë",
            "Søren|",
            "a\u{1f}b|c"
        ]
    );

    // A JavaScript exception out of `run` reaches the user as text: the example turns what its
    // body throws into a string, which componentize-js makes the WIT's `err` (anything else
    // thrown would end the component in an opaque trap).
    let bad = split_project(3);
    bad.write(
        "migrations/app/20240101T000001Z-blob/do.sql",
        "INSERT INTO people(id, full_name, email) VALUES (99, x'00ff', 'blob@example.com');",
    );
    std::fs::copy(&out, bad.path(&format!("{SPLIT}/transform.wasm"))).unwrap();
    let run = bad
        .strata(&["migrate"])
        .code(1)
        .stderr_has("TypeError: people 99: full_name is blob, not text")
        .stderr_has("app.js");
    assert!(!run.stderr.contains("trapped"), "{}", run.stderr);
    assert!(!run.stderr.contains("initializer.js"), "{}", run.stderr);
}
