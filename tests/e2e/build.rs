//! `strata build`: guest crates to committed components, reproducibly.
//!
//! These tests compile real guest crates for wasm32 with cargo, so they take a minute or two.

use crate::harness::Project;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const SPLIT: &str = "migrations/people/20240320T100000Z-split-names";

#[test]
fn builds_are_reproducible_wherever_the_project_lives_and_match_the_committed_component() {
    let committed = std::fs::read(
        crate::harness::repo_root()
            .join(SPLIT)
            .join("transform.wasm"),
    )
    .unwrap();
    let mut built = Vec::new();
    for _ in 0..2 {
        let p = Project::workspace();
        // Different absolute paths, and a stale file to overwrite.
        std::fs::write(p.path(&format!("{SPLIT}/transform.wasm")), b"stale").unwrap();
        let run = p
            .strata(&["build", "people/20240320T100000Z-split-names"])
            .ok();
        let wasm = std::fs::read(p.path(&format!("{SPLIT}/transform.wasm"))).unwrap();
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains("transform.wasm"))
            .unwrap()
            .to_string();
        assert_eq!(
            line.split_whitespace().next().unwrap().len(),
            64,
            "a sha256 is printed: {line}"
        );
        assert!(run.stdout.contains("check.wasm"), "{}", run.stdout);
        built.push(sha256(&wasm));
        assert!(!p.path(&format!("{SPLIT}/transform/target")).exists());
    }
    assert_eq!(built[0], built[1], "two checkouts built different bytes");
    assert_eq!(
        built[0],
        sha256(&committed),
        "the committed transform.wasm is not what its source builds to"
    );
}

#[test]
fn a_missing_wasm_target_names_the_command_that_installs_it() {
    let p = Project::workspace();
    p.write("fake-rustc", "#!/bin/sh\necho /nonexistent/sysroot\n");
    let fake = p.path("fake-rustc");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap();
    let out = crate::harness::strata_command(p.root(), &["build", "people"])
        .env("RUSTC", &fake)
        .output()
        .unwrap();
    let run = crate::harness::Run::new(&["build", "people"], out);
    run.code(2)
        .stderr_has("rustup target add wasm32-unknown-unknown");
}

#[test]
fn an_unknown_selector_is_a_usage_error() {
    let p = Project::example();
    p.strata(&["build", "nosuchmodule"])
        .code(2)
        .stderr_has("no migration matches `nosuchmodule`");
    p.strata(&["build", "accounts"])
        .ok()
        .stdout_has("no guest crates to build");
}
