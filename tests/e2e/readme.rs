//! The README's shell examples, executed: every block fenced as ```` ```sh tested ```` runs, in
//! README order, in one bash session in one temporary folder, with the `strata` under test on
//! `PATH`. Blocks are read from README.md when the test runs, so the examples cannot go stale.
//! A block marked `needs=<tool>` (e.g. `needs=sqlite3`) runs only in the test that runs every
//! block, which is `#[ignore]`d with the reason on a fresh clone (`.ci/run` runs it); the other
//! runs the blocks before the first such block.

use std::path::Path;
use std::process::Command;

use crate::harness::{KEPT_VARIABLES, Run, repo_root};

/// One tested block: what it needs, and its lines (the list indentation removed).
struct Block {
    needs: Vec<String>,
    text: String,
}

fn tested_blocks(readme: &str) -> Vec<Block> {
    blocks_of(readme, "tested")
}

/// The blocks fenced as ```` ```sh <kind> ```` (`tested`, or `tested-postgres` for the chain
/// that needs a server), in order.
fn blocks_of(readme: &str, kind: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Block)> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None => {
                if let Some(info) = trimmed
                    .strip_prefix("```sh ")
                    .filter(|info| info.split_whitespace().next() == Some(kind))
                {
                    let needs = info
                        .split_whitespace()
                        .filter_map(|w| w.strip_prefix("needs="))
                        .map(str::to_string)
                        .collect();
                    current = Some((
                        indent,
                        Block {
                            needs,
                            text: String::new(),
                        },
                    ));
                }
            }
            Some((indent, block)) => {
                if trimmed.starts_with("```") {
                    blocks.push(current.take().unwrap().1);
                    continue;
                }
                let cut = line.len().min(*indent);
                block.text.push_str(&line[cut..]);
                block.text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated ```sh tested block");
    blocks
}

/// `bash -c script` in `dir`, with a cleaned environment and the `strata` under test first on
/// `PATH`, as a reader's shell would have it.
fn bash(script: &str, dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_strata")).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(dir).env_clear();
    for name in KEPT_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    cmd.env("PATH", path);
    cmd
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_readme_marks_its_examples_for_this_test() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = tested_blocks(&readme);
    let all: String = blocks.iter().map(|b| b.text.as_str()).collect();
    // The tour, the transform section, the design-time loop, baseline, sandbox and restore.
    for needle in [
        "strata init",
        "--transform",
        "strata build",
        "strata diff --sql",
        "--from-diff",
        "strata baseline",
        "strata sandbox",
        "strata restore",
    ] {
        assert!(
            all.contains(needle),
            "no tested README example runs `{needle}`"
        );
    }
    // The README's first two lines of code stay the two commands of a fresh machine.
    assert!(readme.contains("```sh\ncargo run -- migrate "));
    assert!(readme.contains("\ncargo test --workspace "));
    assert!(
        !all.contains("/path/to"),
        "a guessed path in a tested example"
    );
}

/// Runs the tested blocks in order in one project: all of them, or (`all = false`) those before
/// the first that needs a tool a fresh machine may lack. Returns the work folder.
fn run_blocks(all: bool) -> tempfile::TempDir {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut script = String::from("set -euo pipefail\nset -x\n");
    for (i, block) in tested_blocks(&readme).into_iter().enumerate() {
        if !block.needs.is_empty() && !all {
            break;
        }
        if let Some(tool) = block.needs.iter().find(|t| !installed(t)) {
            panic!(
                "README example {} needs `{tool}`, which is not installed",
                i + 1
            );
        }
        script.push_str(&format!(": README example {}\n{}", i + 1, block.text));
    }
    let mut cmd = bash(&script, work.path());
    let run = Run::new(&["(README examples)"], cmd.output().unwrap());
    assert_eq!(
        run.code, 0,
        "a README example failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    work
}

#[test]
fn readme_examples_that_need_no_extra_tool_run_in_order_in_one_project() {
    let work = run_blocks(false);
    // The tour's project went through the tour, the transform and CI.
    let shop = work.path().join("shop");
    let conn = rusqlite::Connection::open(shop.join("app.db")).unwrap();
    let slugs = crate::harness::rows(&conn, "SELECT slug FROM products ORDER BY id");
    assert_eq!(slugs, ["blue-mug", "tea-pot"]);
}

#[test]
#[ignore = "needs sqlite3 and sqldiff (Debian sqlite3, sqlite3-tools; bash .ci/run installs them)"]
fn readme_examples_run_in_order_in_one_project() {
    let work = run_blocks(true);
    // The tour's project really went through every section.
    let shop = work.path().join("shop");
    let conn = rusqlite::Connection::open(shop.join("app.db")).unwrap();
    let slugs = crate::harness::rows(&conn, "SELECT slug FROM products ORDER BY id");
    assert_eq!(slugs, ["blue-mug", "tea-pot"]);
}

/// The PostgreSQL chain (blocks fenced ```` ```sh tested-postgres ````), run as a user would
/// paste it: in a copy of the repository's `examples/`, with the server given the libpq way
/// (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`), `createdb` and `psql` from PostgreSQL's client
/// package, and the example's own `postgres://localhost/strata_shop`.
#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn readme_postgres_examples_run_in_order() {
    let admin = std::env::var("STRATA_TEST_POSTGRES").expect("STRATA_TEST_POSTGRES");
    let config: postgres::Config = admin.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap().to_string();
    let password = String::from_utf8_lossy(config.get_password().unwrap_or_default()).into_owned();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = blocks_of(&readme, "tested-postgres");
    assert!(
        blocks.len() >= 2,
        "the PostgreSQL tour and its schema loop are tested"
    );
    let work = tempfile::tempdir().unwrap();
    crate::harness::copy_dir(
        &repo_root().join("examples/postgres"),
        &work.path().join("examples/postgres"),
    );
    // The example's databases belong to this test alone; made afresh.
    let mut script = String::from(
        "set -euo pipefail\nset -x\n\
         dropdb --if-exists strata_shop\ndropdb --if-exists strata_shop_test\n",
    );
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!(
            ": README PostgreSQL example {}\n{}",
            i + 1,
            block.text
        ));
    }
    let mut cmd = bash(&script, work.path());
    cmd.env("PGHOST", &host)
        .env("PGPORT", &port)
        .env("PGUSER", &user)
        .env("PGPASSWORD", &password)
        .env("PGDATABASE", "postgres");
    let run = Run::new(&["(README PostgreSQL examples)"], cmd.output().unwrap());
    let mut admin = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    let dropped = ["strata_shop", "strata_shop_test"]
        .map(|db| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")));
    assert_eq!(
        run.code, 0,
        "a README PostgreSQL example failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    for d in dropped {
        d.unwrap();
    }
    assert!(
        run.stdout.contains("ADD COLUMN nickname text"),
        "{}",
        run.stdout
    );
}
