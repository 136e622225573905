//! What CI runs (`.ci/run`): exactly the README's test command, with the ignored tests (those
//! that need a server, a tool or the datasets) included, lints, and the guest examples' own tests.

use crate::harness::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap()
}

/// The README's second line of code: the one command that runs every test.
fn readme_test_command() -> String {
    let readme = read("README.md");
    let block = readme.split("```sh\n").nth(1).expect("a first sh block");
    let line = block.lines().nth(1).expect("a second line");
    line.split('#').next().unwrap().trim().to_string()
}

#[test]
fn ci_runs_the_readme_test_command_with_the_ignored_tests_and_the_guest_tests() {
    let ci = read(".ci/run");
    let command = readme_test_command();
    assert_eq!(command, "cargo test --workspace");
    assert!(
        ci.lines()
            .any(|l| l.trim() == format!("{command} -- --include-ignored")),
        ".ci/run must call `{command} -- --include-ignored`:\n{ci}"
    );
    for gate in [
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
    ] {
        assert!(
            ci.lines().any(|l| l.trim() == gate),
            ".ci/run must run `{gate}`"
        );
    }
    // No tool the ignored tests need may quietly drop out.
    assert!(
        ci.contains("for tool in sqldiff sqlite3 grpcurl componentize-py node; do"),
        ".ci/run must require sqldiff, sqlite3, grpcurl, componentize-py and node"
    );
    // The JavaScript example's test builds with the componentize-js its lock file pins.
    assert!(
        ci.contains("(cd guest-examples/js && npm ci"),
        ".ci/run must install the JavaScript example's componentize-js"
    );
    assert!(
        ci.contains("for example in guest-examples/*/") && ci.contains("cargo test"),
        ".ci/run must run the guest examples' tests:\n{ci}"
    );
    // Every Rust guest example has tests of its own for that loop to run; the Python ones
    // have theirs in guest-examples/python/test_pure.py, which .ci/run runs too.
    for entry in std::fs::read_dir(repo_root().join("guest-examples")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Cargo.toml").is_file() {
            let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
            assert!(lib.contains("#[test]"), "{} has no tests", dir.display());
        }
    }
    let python = std::fs::read_to_string(repo_root().join("guest-examples/python/test_pure.py"))
        .expect("the Python examples' tests");
    assert!(python.contains("def test_"), "test_pure.py has no tests");
    assert!(
        ci.contains("python3 guest-examples/python/test_pure.py"),
        ".ci/run must run the Python examples' tests"
    );
}
