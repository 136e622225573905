//! `strata init` and `strata new`.

use crate::harness::Project;

#[test]
fn init_writes_config_and_migrations_folder_once() {
    let p = Project::empty();
    p.strata(&["init"]).ok().stdout_has("strata.toml");
    assert!(p.path("strata.toml").is_file());
    assert!(p.path("migrations").is_dir());
    let config = std::fs::read_to_string(p.path("strata.toml")).unwrap();
    assert!(config.contains("busy_timeout_ms"), "{config}");
    // A second init is harmless: it keeps the edited file and says so.
    std::fs::write(p.path("strata.toml"), format!("{config}\n# edited\n")).unwrap();
    p.strata(&["init"])
        .ok()
        .stdout_has("strata.toml")
        .stdout_has("already exists");
    let again = std::fs::read_to_string(p.path("strata.toml")).unwrap();
    assert!(again.ends_with("# edited\n"), "{again}");
    let ignore = std::fs::read_to_string(p.path(".gitignore")).unwrap();
    assert!(ignore.contains("/app.db.strata-lock"), "{ignore}");
}

#[test]
fn new_creates_a_stamped_folder_with_an_empty_do_sql_and_prints_it() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let run = p
        .strata(&["new", "accounts", "add-users", "--new-module"])
        .ok();
    let printed = run.stdout.trim();
    let dir = p.root().join(printed);
    assert!(dir.is_dir(), "printed path {printed} is not a folder");
    let name = dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.ends_with("-add-users") && name.len() == 16 + "-add-users".len(),
        "{name}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("do.sql")).unwrap(), "");
    // The new folder is a valid migration at once.
    p.strata(&["status"]).ok().stdout_has("pending");
}

#[test]
fn new_calls_in_the_same_second_get_distinct_increasing_stamps() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let mut stamps = Vec::new();
    for slug in ["a", "b", "c", "d"] {
        let run = p.strata(&["new", "m", slug, "--new-module"]).ok();
        let name = std::path::Path::new(run.stdout.trim())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        stamps.push(name[..16].to_string());
    }
    let mut sorted = stamps.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, stamps, "stamps must be unique and increasing");
    p.strata(&["plan"]).ok().stdout_has("4 step(s)");
}

#[test]
fn concurrent_new_calls_do_not_collide() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let runs: Vec<Vec<String>> = (0..4)
        .map(|i| {
            ["new", "m", &format!("s{i}"), "--new-module"]
                .map(str::to_string)
                .to_vec()
        })
        .collect();
    crate::harness::all_at_once(p.root(), &runs);
    // Four folders, and the tree is valid (no duplicate stamp).
    p.strata(&["plan"]).ok().stdout_has("4 step(s)");
}

#[test]
fn new_rejects_bad_module_names_and_slugs() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.strata(&["new", "Accounts", "x"])
        .code(2)
        .stderr_has("`Accounts` is not a valid module name");
    p.strata(&["new", "accounts", "Add Users"])
        .code(2)
        .stderr_has("`Add Users` is not a valid slug");
    assert!(!p.path("migrations/Accounts").exists());
}
