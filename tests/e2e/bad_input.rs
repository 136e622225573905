//! Wrong places and bad input: each is exit 2 with a message naming the file (or folder) and
//! the fix, and nothing is created or changed.

use crate::harness::{Project, rows};

/// Every file under the project, with its content: equal listings mean nothing was touched.
fn listing(p: &Project) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(&path, root, out);
            } else {
                out.push((rel, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(p.root(), p.root(), &mut out);
    out
}

/// A project with one applied migration and one pending.
fn applied_project() -> Project {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    );
    p.strata(&["migrate", "-q", "--write-snapshots"]).ok();
    p
}

#[test]
fn wrong_places_are_errors_not_fresh_starts() {
    let p = Project::empty();
    // --project naming a folder that does not exist.
    p.strata(&["--project", "nowhere", "migrate"])
        .code(2)
        .stderr_has("nowhere")
        .stderr_has("does not exist");
    // A folder that is no project: neither strata.toml nor migrations/.
    for cmd in ["migrate", "status", "plan", "sandbox", "audit", "restore"] {
        p.strata(&[cmd])
            .code(2)
            .stderr_has("is not a strata project")
            .stderr_has("strata init");
    }
    p.strata(&["new", "app", "zero"])
        .code(2)
        .stderr_has("strata init");
    assert!(listing(&p).is_empty(), "{:?}", listing(&p));

    // --db (or --test-db) in a folder that does not exist.
    p.strata(&["init"]).ok();
    let before = listing(&p);
    p.strata(&["--db", "data/prod.db", "migrate"])
        .code(2)
        .stderr_has("data/prod.db")
        .stderr_has("mkdir -p data");
    p.strata(&["--test-db", "tmp/test.db", "migrate"])
        .code(2)
        .stderr_has("tmp/test.db");
    assert_eq!(listing(&p), before);
    // init is how a project starts, also in a folder it creates.
    p.strata(&["--project", "fresh", "init"]).ok();
    assert!(p.path("fresh/strata.toml").is_file());
}

#[test]
fn new_needs_new_module_for_a_module_that_does_not_exist_and_suggests_the_closest() {
    let p = Project::example();
    let before = listing(&p);
    p.strata(&["new", "acounts", "add-x"])
        .code(2)
        .stderr_has("there is no module `acounts`")
        .stderr_has("did you mean `accounts`?")
        .stderr_has("--new-module");
    assert_eq!(listing(&p), before);
    let made = p.strata(&["new", "shipping", "zero", "--new-module"]).ok();
    assert!(p.path(made.stdout.trim()).join("do.sql").is_file());
    // An existing module needs no flag.
    p.strata(&["new", "billing", "add-discounts"]).ok();
}

#[test]
fn init_writes_a_gitignore_for_the_databases_and_strata_state() {
    let p = Project::empty();
    p.write(".gitignore", "target/");
    p.strata(&["init"]).ok();
    let ignore = std::fs::read_to_string(p.path(".gitignore")).unwrap();
    assert!(ignore.starts_with("target/\n"), "{ignore}");
    for line in ["/.strata/", "/app.db", "/app.db-wal"] {
        assert!(
            ignore.lines().any(|l| l == line),
            "{line} missing:\n{ignore}"
        );
    }
}

#[test]
fn malformed_places_and_files_exit_2_naming_them() {
    // migrations is a file.
    let p = Project::empty();
    p.write("strata.toml", "");
    p.write("migrations", "not a folder");
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("migrations: is a file")
        .stderr_has("must be a folder");
    // strata.toml is a folder.
    let p = Project::empty();
    std::fs::create_dir_all(p.path("strata.toml")).unwrap();
    std::fs::create_dir_all(p.path("migrations")).unwrap();
    p.strata(&["status"])
        .code(2)
        .stderr_has("strata.toml: is a folder");
    // data.json that is not UTF-8.
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a);",
    );
    std::fs::create_dir_all(p.path("migrations/app/20240101T000000Z-zero/test-data")).unwrap();
    std::fs::write(
        p.path("migrations/app/20240101T000000Z-zero/test-data/data.json"),
        b"{\"t\": [{\"a\": \"caf\xe9\"}]}",
    )
    .unwrap();
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("test-data/data.json: is not UTF-8");
    assert!(!p.path("app.db").exists() && !p.path(".strata/test.db").exists());
}

#[test]
fn a_db_that_is_no_database_exits_2_and_stays_as_it_was() {
    let p = applied_project();
    for (name, content) in [
        (
            "notes.txt",
            b"just some text, long enough to be a file\n".repeat(40),
        ),
        ("fake.db", {
            let mut b = b"SQLite format 3\0".to_vec();
            b.extend(std::iter::repeat_n(0xA5u8, 4096));
            b
        }),
    ] {
        std::fs::write(p.path(name), &content).unwrap();
        for cmd in [
            &["migrate"][..],
            &["status"],
            &["plan"],
            &["dump"],
            &["audit"],
        ] {
            let mut args = vec!["--db", name];
            args.extend_from_slice(cmd);
            let run = p.strata(&args).code(2).stderr_has(name);
            assert!(
                run.stderr.contains("not a SQLite database"),
                "{}",
                run.stderr
            );
        }
        assert_eq!(std::fs::read(p.path(name)).unwrap(), content);
    }
    std::fs::create_dir_all(p.path("adir")).unwrap();
    p.strata(&["--db", "adir", "migrate"])
        .code(2)
        .stderr_has("adir: is a folder, not a database file");
    // restore of a file that is no backup, and of a folder.
    p.strata(&["restore", "notes.txt"])
        .code(2)
        .stderr_has("notes.txt")
        .stderr_has("is not a strata backup");
    p.strata(&["restore", "adir"])
        .code(2)
        .stderr_has("adir: is a folder, not a backup");
    assert_eq!(rows(&p.open("app.db"), "SELECT count(*) FROM notes"), ["0"]);
}

#[test]
fn dump_and_diff_of_a_module_that_does_not_exist_exit_2() {
    let p = applied_project();
    p.strata(&["dump", "ap"])
        .code(2)
        .stderr_has("there is no module `ap`; did you mean `app`?");
    p.strata(&["diff", "nope"])
        .code(2)
        .stderr_has("no module `nope`");
}

#[test]
fn errors_do_not_repeat_themselves() {
    let p = Project::empty();
    p.write("strata.toml", "");
    p.write("migrations/app/20240101T000000Z-zero/do.sql", "");
    // strata's own folder is a file: an OS error, said once.
    p.write(".strata", "x");
    let run = p.strata(&["migrate"]).code(1);
    let line = run.stderr.lines().next().unwrap().to_string();
    assert!(line.contains(".strata"), "{line}");
    let parts: Vec<&str> = line.split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(w[0], w[1], "repeated: {line}");
    }
}

#[test]
fn data_json_duplicates_big_integers_and_a_bom() {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    let dir = "migrations/app/20240101T000000Z-zero";
    p.write(
        &format!("{dir}/do.sql"),
        "\u{feff}CREATE TABLE t(id INTEGER PRIMARY KEY, a);",
    );
    for (json, expect) in [
        (
            r#"{"t": [{"id": 1}], "t": [{"id": 2}]}"#,
            "the key `t` appears twice",
        ),
        (
            r#"{"t": [{"id": 1, "id": 2}]}"#,
            "the key `id` appears twice",
        ),
        (
            r#"{"t": [{"id": 1, "a": 18446744073709551616}]}"#,
            "does not fit SQLite's 64-bit signed integer",
        ),
        (r#"{"t": [{"id": 1}, 7]}"#, "table `t`, row 2:"),
    ] {
        p.write(&format!("{dir}/test-data/data.json"), json);
        p.strata(&["migrate"])
            .code(2)
            .stderr_has("test-data/data.json")
            .stderr_has(expect);
        assert!(!p.path("app.db").exists());
    }
    // A BOM is accepted in data.json as in do.sql.
    p.write(
        &format!("{dir}/test-data/data.json"),
        "\u{feff}{\"t\": [{\"id\": 1, \"a\": 9223372036854775807}]}",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        rows(&p.open(".strata/test.db"), "SELECT a FROM t"),
        ["9223372036854775807"]
    );
}

#[test]
fn sql_files_are_checked_before_the_backup() {
    let p = applied_project();
    let dir = "migrations/app/20240201T000000Z-next";
    for (sql, expect) in [
        (
            "CREATE TABLE a(x);\nBEGIN;\nCREATE TABLE b(y);\nCOMMIT;",
            "line 2: `BEGIN` begins or ends a transaction",
        ),
        (
            "CREATE TABLE a(x);\0\nDROP TABLE notes;",
            "line 1: holds a NUL byte",
        ),
    ] {
        p.write(&format!("{dir}/do.sql"), sql);
        let backups = std::fs::read_dir(p.path(".strata/backups"))
            .unwrap()
            .count();
        p.strata(&["migrate"])
            .code(2)
            .stderr_has(format!("{dir}/do.sql"))
            .stderr_has(expect);
        p.strata(&["plan"]).code(2).stderr_has(expect);
        assert_eq!(
            std::fs::read_dir(p.path(".strata/backups"))
                .unwrap()
                .count(),
            backups,
            "no backup before validation passes"
        );
    }
}

#[test]
fn unknown_files_in_latest_are_errors_notes_are_welcome_and_links_out_refused() {
    let p = applied_project();
    p.write("migrations/app/LATEST/old.sql", "");
    p.strata(&["status"])
        .code(2)
        .stderr_has("migrations/app/LATEST/old.sql");
    std::fs::remove_file(p.path("migrations/app/LATEST/old.sql")).unwrap();
    p.write("migrations/app/20240101T000000Z-zero/NOTES.md", "# why");
    p.strata(&["migrate"]).ok();
    // A do.sql that is a link to a file outside the project.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.sql"), "DROP TABLE notes;").unwrap();
    std::fs::create_dir_all(p.path("migrations/app/20240201T000000Z-linked")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("evil.sql"),
        p.path("migrations/app/20240201T000000Z-linked/do.sql"),
    )
    .unwrap();
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("symbolic link")
        .stderr_has("outside the migrations folder");
    assert_eq!(rows(&p.open("app.db"), "SELECT count(*) FROM notes"), ["0"]);
}

/// Numbers strata cannot honour are refused with the key and the largest it takes, never a
/// panic (busy_timeout_ms past SQLite's 32-bit milliseconds, a sandbox timeout past the clock).
#[test]
fn numbers_past_what_strata_can_use_are_refused_by_name() {
    let p = Project::example();
    for (key, value) in [
        ("busy_timeout_ms", "2147483648"),
        ("statement_timeout_ms", "99999999999"),
        ("timeout_s", "18446744073709551615"),
    ] {
        let toml = if key == "timeout_s" {
            format!("[sandbox]\n{key} = {value}\n")
        } else {
            format!("{key} = {value}\n")
        };
        p.write("strata.toml", &toml);
        p.strata(&["status"])
            .code(2)
            .stderr_has(key)
            .stderr_has("at most");
    }
}
