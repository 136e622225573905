//! The README's and the book's shell examples, executed: every block fenced as
//! ```` ```sh tested ```` runs, in order (the README first, then the book's chapters in the order
//! of `docs/src/SUMMARY.md`), in one bash session in one temporary folder, with the `strata`
//! under test on `PATH`. Blocks are read from the files when the test runs, so the examples
//! cannot go stale. A block marked `needs=<tool>` (e.g. `needs=sqlite3`) runs only in the test
//! that runs every block, which is `#[ignore]`d with the reason on a fresh clone (`.ci/run` runs
//! it); the other runs the blocks before the first such block. The chapters' order therefore
//! matters: a chapter's blocks continue the project the blocks before them built (the README's
//! tour). Another test keeps the book whole: every chapter SUMMARY.md names exists, every
//! chapter is named there, and every relative link leads to a file and heading that exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{KEPT_VARIABLES, Run, repo_root};

/// How many blocks of each kind the README held before the book took most of them: none may be
/// lost on the way.
const TESTED_BLOCKS_BEFORE_THE_BOOK: usize = 5;
const POSTGRES_BLOCKS_BEFORE_THE_BOOK: usize = 2;

/// One tested block: where it is, what it needs, and its lines (the list indentation removed).
struct Block {
    place: String,
    needs: Vec<String>,
    text: String,
}

/// The book's chapters, in the order `docs/src/SUMMARY.md` lists them (paths relative to the
/// repository's root).
fn chapters() -> Vec<PathBuf> {
    let summary = std::fs::read_to_string(repo_root().join("docs/src/SUMMARY.md"))
        .expect("docs/src/SUMMARY.md");
    links_of(&summary)
        .into_iter()
        .map(|target| Path::new("docs/src").join(target))
        .collect()
}

/// The README, then every chapter of the book in SUMMARY.md's order: (path, text).
fn documents() -> Vec<(PathBuf, String)> {
    std::iter::once(PathBuf::from("README.md"))
        .chain(chapters())
        .map(|rel| {
            let text = std::fs::read_to_string(repo_root().join(&rel))
                .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            (rel, text)
        })
        .collect()
}

/// Every block of `kind` in the README and the book, in the order they run.
fn all_blocks(kind: &str) -> Vec<Block> {
    documents()
        .iter()
        .flat_map(|(rel, text)| blocks_of(&rel.display().to_string(), text, kind))
        .collect()
}

fn tested_blocks() -> Vec<Block> {
    all_blocks("tested")
}

/// The blocks of one file fenced as ```` ```sh <kind> ```` (`tested`, or `tested-postgres` for
/// the chain that needs a server), in order.
fn blocks_of(file: &str, text: &str, kind: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Block)> = None;
    for (number, line) in text.lines().enumerate() {
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
                            place: format!("{file}:{}", number + 1),
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
    assert!(
        current.is_none(),
        "{file}: an unterminated ```sh {kind} block"
    );
    blocks
}

/// The targets of the Markdown links `[text](target)` in `text`, outside fenced code blocks and
/// code spans, in order.
fn links_of(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            links.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    links
}

/// The lines of `text` outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) => {
                if trimmed.starts_with(f) {
                    fence = None;
                }
            }
            None => {
                if trimmed.starts_with("```") {
                    fence = Some("```");
                } else {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// `line` with its code spans (`` `...` ``) removed.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in line.chars() {
        if c == '`' {
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// The anchors of a Markdown file's headings, as mdBook (and GitHub) make them: the heading's
/// text in lower case, spaces as `-`, everything but letters, digits, `-` and `_` dropped.
fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let id: String = heading
            .trim()
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    Some(c.to_lowercase().next().unwrap_or(c))
                } else if c.is_whitespace() {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let mut unique = id.clone();
        let mut n = 1;
        while !anchors.insert(unique.clone()) {
            unique = format!("{id}-{n}");
            n += 1;
        }
    }
    anchors
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
    let blocks = tested_blocks();
    let all: String = blocks.iter().map(|b| b.text.as_str()).collect();
    // The README's own tour is tested, and comes first.
    assert!(
        blocks[0].place.starts_with("README.md:"),
        "the README's tour is the first tested block"
    );
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
        "strata serve",
        "STRATA_REMOTE",
        "strata undo",
    ] {
        assert!(
            all.contains(needle),
            "no tested example of the README or the book runs `{needle}`"
        );
    }
    // No block destroys what an earlier one made without saying so: a line that puts a backup
    // back, undoes, drops a database or removes files carries a comment saying what goes.
    for block in tested_blocks().iter().chain(&all_blocks("tested-postgres")) {
        for line in block.text.lines() {
            let words: Vec<&str> = line
                .split(" #")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let destroys = words
                .windows(2)
                .any(|w| w[0] == "strata" && ["restore", "undo"].contains(&w[1]))
                && !words.contains(&"--list")
                || words
                    .iter()
                    .any(|w| ["rm", "dropdb", "dropuser"].contains(w));
            assert!(
                !destroys || line.contains(" # "),
                "{}: `{}` destroys what an earlier block made; say so in a comment",
                block.place,
                line.trim()
            );
        }
    }
    // The README's first two lines of code stay the two commands of a fresh machine.
    assert!(readme.contains("```sh\ncargo run -- migrate "));
    assert!(readme.contains("\ncargo test --workspace "));
    assert!(
        !all.contains("/path/to"),
        "a guessed path in a tested example"
    );
}

/// What every chain of blocks runs first: stop at the first failure, show each command, and
/// stop what a block started in the background (`strata serve &`) when the chain ends, also
/// when a block fails before it stops it itself (else the test would wait for it forever).
const PROLOGUE: &str =
    "set -euo pipefail\nset -x\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n";

/// Runs the tested blocks in order in one project: all of them, or (`all = false`) those before
/// the first that needs a tool a fresh machine may lack. Returns the work folder.
fn run_blocks(all: bool) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let mut script = String::from(PROLOGUE);
    for (i, block) in tested_blocks().into_iter().enumerate() {
        if !block.needs.is_empty() && !all {
            break;
        }
        if let Some(tool) = block.needs.iter().find(|t| !installed(t)) {
            panic!(
                "example {} ({}) needs `{tool}`, which is not installed",
                i + 1,
                block.place
            );
        }
        script.push_str(&format!(
            ": example {} at {}\n{}",
            i + 1,
            block.place,
            block.text
        ));
    }
    let mut cmd = bash(&script, work.path());
    let run = Run::new(&["(README and book examples)"], cmd.output().unwrap());
    assert_eq!(
        run.code, 0,
        "an example of the README or the book failed (`set -x` shows which):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    work
}

#[test]
fn readme_examples_that_need_no_extra_tool_run_in_order_in_one_project() {
    let work = run_blocks(false);
    // The tour's project went through the tour, the book's transform (which filled the slugs)
    // and CI.
    let shop = work.path().join("shop");
    let conn = rusqlite::Connection::open(shop.join("app.db")).unwrap();
    let slugs = crate::harness::rows(&conn, "SELECT slug FROM products ORDER BY id");
    assert_eq!(slugs, ["blue-mug", "tea-pot"]);
    // The undo chapter's migration was applied, then taken back on both databases.
    let undone = crate::harness::rows(
        &conn,
        "SELECT module || ' ' || outcome FROM strata_migration_audit WHERE action = 'undo.sql'",
    );
    assert_eq!(undone.len(), 1, "{undone:?}");
    assert_eq!(undone, ["catalog ok"]);
}

#[test]
#[ignore = "needs sqlite3 and sqldiff (Debian sqlite3, sqlite3-tools; bash .ci/run installs them)"]
fn readme_examples_run_in_order_in_one_project() {
    let work = run_blocks(true);
    // The tour's project really went through every section: the book's transform filled the
    // slugs, its design-time loop added `tags`, its baseline adopted `suppliers`.
    let shop = work.path().join("shop");
    let conn = rusqlite::Connection::open(shop.join("app.db")).unwrap();
    let slugs = crate::harness::rows(&conn, "SELECT slug FROM products ORDER BY id");
    assert_eq!(slugs, ["blue-mug", "tea-pot"]);
    let tables = crate::harness::rows(
        &conn,
        "SELECT name FROM sqlite_schema WHERE name IN ('tags', 'suppliers') ORDER BY name",
    );
    assert_eq!(tables, ["suppliers", "tags"]);
    // The undo chapter's block took its own example migration back, and the serving chapter's
    // took the baseline back over --remote and applied it again.
    let undone = crate::harness::rows(
        &conn,
        "SELECT outcome FROM strata_migration_audit WHERE action = 'undo.sql' ORDER BY id",
    );
    assert_eq!(undone, ["ok", "ok"]);
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
    let blocks = all_blocks("tested-postgres");
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
    let mut script =
        format!("{PROLOGUE}dropdb --if-exists strata_shop\ndropdb --if-exists strata_shop_test\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!(
            ": PostgreSQL example {} at {}\n{}",
            i + 1,
            block.place,
            block.text
        ));
    }
    let mut cmd = bash(&script, work.path());
    cmd.env("PGHOST", &host)
        .env("PGPORT", &port)
        .env("PGUSER", &user)
        .env("PGPASSWORD", &password)
        .env("PGDATABASE", "postgres");
    let run = Run::new(&["(PostgreSQL examples)"], cmd.output().unwrap());
    let mut admin = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    let dropped = ["strata_shop", "strata_shop_test"]
        .map(|db| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")));
    assert_eq!(
        run.code, 0,
        "a PostgreSQL example failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
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
    // The lint and undo section's index was applied, then taken back on both databases.
    assert!(
        run.stdout.contains("undid shop/") && run.stdout.contains("-customer-name on"),
        "{}",
        run.stdout
    );
}

#[test]
fn readme_and_book_chapters_exist_links_resolve_and_no_tested_block_is_lost() {
    let root = repo_root();
    // Every chapter SUMMARY.md names exists, and every page of the book is named there (a page
    // left out would be neither built nor tested).
    let chapters = chapters();
    assert!(chapters.len() >= 14, "{chapters:?}");
    let named: BTreeSet<PathBuf> = chapters.iter().cloned().collect();
    assert_eq!(named.len(), chapters.len(), "a chapter named twice");
    for chapter in &chapters {
        assert!(
            root.join(chapter).is_file(),
            "SUMMARY.md names {}, which does not exist",
            chapter.display()
        );
    }
    for entry in std::fs::read_dir(root.join("docs/src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" {
            assert!(
                named.contains(&Path::new("docs/src").join(&name)),
                "docs/src/{name} is not named in SUMMARY.md"
            );
        }
    }

    // Every relative link of the README and the book leads to a file (or folder) that exists,
    // and its anchor, if any, to a heading of that file.
    let mut pages = vec![
        PathBuf::from("README.md"),
        PathBuf::from("docs/src/SUMMARY.md"),
    ];
    pages.extend(chapters.iter().cloned());
    let mut checked = 0;
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        for link in links_of(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match link.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                root.join(page)
            } else {
                root.join(page).parent().unwrap().join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let headings = anchors_of(&std::fs::read_to_string(&target).unwrap_or_default());
                if !headings.contains(anchor) {
                    broken.push(format!(
                        "{}: {link}: no heading with that anchor (there are: {headings:?})",
                        page.display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 30, "only {checked} relative links found");

    // No tested block was lost when the README became a book.
    let tested = tested_blocks();
    assert!(
        tested.len() >= TESTED_BLOCKS_BEFORE_THE_BOOK,
        "{} `sh tested` blocks, fewer than the {TESTED_BLOCKS_BEFORE_THE_BOOK} of before",
        tested.len()
    );
    let postgres = all_blocks("tested-postgres");
    assert!(
        postgres.len() >= POSTGRES_BLOCKS_BEFORE_THE_BOOK,
        "{} `sh tested-postgres` blocks, fewer than the {POSTGRES_BLOCKS_BEFORE_THE_BOOK} of before",
        postgres.len()
    );
    // A block spelled slightly wrong (`sh  tested`, `bash tested`) would silently not run.
    for (rel, text) in documents() {
        for (number, line) in text.lines().enumerate() {
            let fence = line.trim_start();
            if fence.starts_with("```") && fence.contains("tested") {
                let info = fence.trim_start_matches('`');
                assert!(
                    info.starts_with("sh tested ")
                        || info == "sh tested"
                        || info.starts_with("sh tested-postgres"),
                    "{}:{}: a block that looks tested but is not run: {fence}",
                    rel.display(),
                    number + 1
                );
            }
        }
    }
}

#[test]
fn readme_link_and_anchor_reading_matches_mdbook() {
    let text = "# How `strata migrate` runs\n\n## What `plan` (and `lint`) check, now\n\
                ```sh\n# not a heading\n[not](a-link.md)\n```\n## How `strata migrate` runs\n\
                See [Serving and `--remote`](serving.md#the-server) and `[code](span.md)`, \
                [here](#how-strata-migrate-runs).\n";
    let anchors = anchors_of(text);
    let expected: BTreeSet<String> = [
        "how-strata-migrate-runs",
        "what-plan-and-lint-check-now",
        "how-strata-migrate-runs-1",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(anchors, expected);
    assert_eq!(
        links_of(text),
        ["serving.md#the-server", "#how-strata-migrate-runs"]
    );
}
