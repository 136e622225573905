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

#[test]
fn new_with_transform_scaffolds_a_crate_that_builds_with_progress_and_runs() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a);",
    );
    let made = p.strata(&["new", "app", "fill", "--transform"]).ok();
    let dir = p.path(made.stdout.trim());
    let manifest = std::fs::read_to_string(dir.join("transform/Cargo.toml")).unwrap();
    assert!(manifest.contains("strata-sdk = { path = \""), "{manifest}");
    assert!(manifest.contains("crate-type = [\"cdylib\"]") && manifest.contains("[workspace]"));
    let sdk = dir.join("transform").join(
        manifest
            .split("path = \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    );
    assert!(sdk.join("wit").is_dir(), "{}", sdk.display());
    // The SDK travels with the project: its own copy, by a path inside it.
    let sdk = sdk.canonicalize().unwrap();
    assert!(
        sdk.starts_with(p.root().canonicalize().unwrap().join("strata-sdk")),
        "{}",
        sdk.display()
    );
    assert!(
        manifest.contains("path = \"../../../../strata-sdk/"),
        "{manifest}"
    );
    assert!(
        !dir.join("transform/.git").exists(),
        "no nested git repository"
    );
    let toml = std::fs::read_to_string(dir.join("migration.toml")).unwrap();
    assert!(toml.contains("[sandbox]"), "{toml}");
    // Without its component, the migration is refused until it is built.
    p.strata(&["migrate"]).code(2).stderr_has("strata build");
    let run = p.strata(&["build", "app"]).ok();
    assert!(
        run.stderr.contains("building ") && run.stderr.contains("Compiling"),
        "cargo's progress is shown:\n{}",
        run.stderr
    );
    assert!(dir.join("transform.wasm").is_file());
    let record = std::fs::read_to_string(dir.join("transform.wasm.built-from")).unwrap();
    assert!(record.contains("sources_sha256 = \""), "{record}");
    p.strata(&["migrate"]).ok();
    // A change to the sources makes the committed component stale.
    std::fs::write(dir.join("transform/src/extra.rs"), "// more").unwrap();
    // (plan and migrate warn about pending steps only; this one is applied. The sandbox runs
    // the whole chain.)
    p.strata(&["sandbox"])
        .code(2)
        .stderr_has("older than its sources");
    // Seeds and checks scaffold the same way (their building is the same code path).
    let seed = p.strata(&["new", "app", "people", "--seed"]).ok();
    assert!(
        p.path(seed.stdout.trim())
            .join("test-data/seed/src/lib.rs")
            .is_file()
    );
    let check = p.strata(&["new", "app", "rules", "--check"]).ok();
    assert!(
        p.path(check.stdout.trim())
            .join("check/src/lib.rs")
            .is_file()
    );
    // The scaffolded seed and check compile and run as they are.
    p.strata(&["build", "app"]).ok();
    p.strata(&["migrate"]).ok();
    p.strata(&["sandbox"]).ok();
}
