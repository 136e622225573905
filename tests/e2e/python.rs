//! Python guests: scaffolded, built by the pinned componentize-py, run by migrate and sandbox,
//! leaving the same rows as the Rust component, and refused what a Rust component is refused.
//!
//! Building a Python component takes componentize-py (`python3 -m pip install
//! componentize-py==0.25.1`; .ci/run installs it) and about a minute per component, plus the
//! first compile of its 18 MB by wasmtime: these tests are ignored without `--include-ignored`.

use crate::harness::{Project, repo_root, rows};

const NEEDS: &str = "needs componentize-py 0.25.1 (python3 -m pip install componentize-py==0.25.1)";

/// A Python guest folder at `dir` with `app` as its app.py, against the checkout's SDK.
fn python_guest(p: &Project, dir: &str, app: &str) {
    p.write(&format!("{dir}/app.py"), app);
    let sdk = repo_root().join("sdk-python");
    p.write(
        &format!("{dir}/strata-guest.toml"),
        &format!("sdk = {:?}\n", sdk.display().to_string()),
    );
}

/// Rows whose names exercise the splitting rules: runs of spaces, tabs, NBSP, ideographic
/// space, U+001F (whitespace to Python's str.split, not to Rust), one word, leading blanks.
fn people_sql(count: u32) -> String {
    format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT NOT NULL UNIQUE);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})\n\
         INSERT INTO people SELECT i,\n\
           CASE i % 8\n\
             WHEN 0 THEN 'Ada Lovelace ' || i\n\
             WHEN 1 THEN '  Gabriel  García Márquez'\n\
             WHEN 2 THEN 'Zoë' || char(9) || ' Brontë '\n\
             WHEN 3 THEN 'Søren'\n\
             WHEN 4 THEN 'Li' || char(12288) || 'Wei'\n\
             WHEN 5 THEN 'a' || char(31) || 'b c'\n\
             WHEN 6 THEN 'Jean' || char(160) || 'Paul Sartre'\n\
             ELSE 'Ümit ' || char(8195) || ' Çelik'\n\
           END,\n\
           'p' || i || '@example.test' FROM n;\n"
    )
}

pub(crate) const SPLIT: &str = "migrations/app/20240102T000000Z-split";

/// Every row's split names, exactly (hex).
pub(crate) const SPLIT_ROWS: &str =
    "SELECT id, hex(first_name), hex(last_name) FROM people ORDER BY id";

/// The rows the committed Rust split-names leaves on [`split_project`]`(count)`.
pub(crate) fn rust_split(count: u32) -> Vec<String> {
    let rust = split_project(count);
    std::fs::copy(
        repo_root().join("migrations/people/20240320T100000Z-split-names/transform.wasm"),
        rust.path(&format!("{SPLIT}/transform.wasm")),
    )
    .unwrap();
    rust.strata(&["migrate"]).ok();
    rows(&rust.open("app.db"), SPLIT_ROWS)
}

/// A project whose second migration splits the names with `transform.wasm` (or its guest).
pub(crate) fn split_project(count: u32) -> Project {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-people/do.sql",
        &people_sql(count),
    );
    p.write(
        &format!("{SPLIT}/do.sql"),
        "ALTER TABLE people ADD COLUMN first_name TEXT;\nALTER TABLE people ADD COLUMN last_name TEXT;\n",
    );
    p
}

#[test]
#[ignore = "needs componentize-py 0.25.1 (python3 -m pip install componentize-py==0.25.1)"]
fn a_python_transform_scaffolds_builds_runs_and_leaves_the_rows_the_rust_one_does() {
    let _ = NEEDS;
    // Scaffolded: it builds as it is, and migrate refuses it until it is built.
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t(a);",
    );
    let made = p
        .strata(&["new", "app", "fill", "--transform", "--lang", "python"])
        .ok();
    let dir = p.path(made.stdout.trim());
    let app = std::fs::read_to_string(dir.join("transform/app.py")).unwrap();
    assert!(app.contains("@transform"), "{app}");
    let guest = std::fs::read_to_string(dir.join("transform/strata-guest.toml")).unwrap();
    assert!(
        guest.contains("sdk = \"../../../../strata-sdk/"),
        "the SDK travels with the project: {guest}"
    );
    assert!(
        p.path("strata-sdk").read_dir().unwrap().any(|v| v
            .unwrap()
            .path()
            .join("python/strata_sdk/sql.py")
            .is_file())
    );
    p.strata(&["migrate"]).code(2).stderr_has("strata build");
    p.strata(&["build", "app"]).ok();
    assert!(dir.join("transform.wasm").is_file());
    let record = std::fs::read_to_string(dir.join("transform.wasm.built-from")).unwrap();
    assert!(record.contains("sources_sha256 = \""), "{record}");
    p.strata(&["migrate"]).ok();
    // A change to the sources makes the committed component stale; bytecode caches do not.
    std::fs::create_dir_all(dir.join("transform/__pycache__")).unwrap();
    std::fs::write(dir.join("transform/__pycache__/app.pyc"), "x").unwrap();
    p.strata(&["sandbox"]).ok();
    std::fs::write(dir.join("transform/helpers.py"), "# more\n").unwrap();
    p.strata(&["sandbox"])
        .code(2)
        .stderr_has("older than its sources");

    // The example split-names, in Python and in Rust, on the same 10,000 rows.
    let count = 10_000;
    let py = split_project(count);
    let example =
        std::fs::read_to_string(repo_root().join("guest-examples/python/split-names/app.py"))
            .unwrap();
    python_guest(&py, &format!("{SPLIT}/transform"), &example);
    py.strata(&["build"]).ok();
    py.strata(&["migrate"]).ok();
    // The transform changed every row (the audit row counts what the component wrote).
    let changed = rows(
        &py.open("app.db"),
        "SELECT rows FROM strata_migration_audit WHERE action = 'transform' AND outcome = 'ok'",
    );
    assert_eq!(changed, ["10000"], "{changed:?}");
    let from_python = rows(&py.open("app.db"), SPLIT_ROWS);
    assert_eq!(from_python.len(), count as usize);
    assert_eq!(
        from_python,
        rust_split(count),
        "Python and Rust split differently"
    );
    // And the names were split (not left NULL by both).
    let split = rows(
        &py.open("app.db"),
        "SELECT first_name || '|' || last_name FROM people WHERE id IN (1, 3, 5, 6) ORDER BY id",
    );
    assert_eq!(
        split,
        [
            "Gabriel|García Márquez",
            "Søren|",
            "a\u{1f}b|c",
            "Jean|Paul Sartre"
        ]
    );
}

/// Builds `app` as a transform in a scratch project and returns the component.
fn build_transform(app: &str) -> Vec<u8> {
    let p = split_project(1);
    python_guest(&p, &format!("{SPLIT}/transform"), app);
    p.strata(&["build"]).ok();
    std::fs::read(p.path(&format!("{SPLIT}/transform.wasm"))).unwrap()
}

#[test]
#[ignore = "needs componentize-py 0.25.1 (python3 -m pip install componentize-py==0.25.1)"]
fn a_python_component_is_refused_what_a_rust_one_is_refused() {
    use crate::hostile::{assert_refused, project_with};
    let hostile = build_transform(
        "from strata_sdk import sql, transform\n\n\
         @transform\n\
         def run() -> None:\n    \
         (n,) = sql.query_one(\"SELECT count(*) FROM people\")\n    \
         if n == 3:\n        \
             hog = []\n        \
             while True:\n            \
                 hog.append(bytearray(1 << 20))\n    \
         while True:\n        \
             pass\n",
    );
    // An endless loop stops on fuel.
    let p = project_with(
        &hostile,
        "[sandbox]\nfuel = 3_000_000_000\nmemory_mib = 512\n",
    );
    p.write(
        "migrations/app/20240201T000000Z-hostile/do.sql",
        "ALTER TABLE people ADD COLUMN nick TEXT;\nINSERT INTO people VALUES (4, 'Bob', NULL);",
    );
    assert_refused(&p, &["fuel limit exhausted", "3000000000"]);
    // A memory bomb stops at memory_mib.
    let p = project_with(&hostile, "[sandbox]\nmemory_mib = 128\n");
    assert_refused(&p, &["memory limit exceeded", "128 MiB"]);
    // There is no file to open: WASI is stubbed out, and a call to it traps.
    let files = build_transform(
        "from strata_sdk import transform\n\n\
         @transform\n\
         def run() -> None:\n    \
         open(\"/etc/passwd\").read()\n",
    );
    let p = project_with(&files, "[sandbox]\n");
    assert_refused(&p, &["trapped"]);
}

#[test]
#[ignore = "needs componentize-py 0.25.1 (python3 -m pip install componentize-py==0.25.1)"]
fn a_python_exception_is_reported_with_its_type_message_and_traceback() {
    use crate::hostile::{assert_refused, project_with};
    // Python's own traceback formatting reads source lines from the guest's files, and a lone
    // surrogate cannot cross into the host as a string: either used to end the component in
    // an opaque WASI trap instead of the error.
    let raises = build_transform(
        "from strata_sdk import log, transform\n\n\
         def lookup(rows: dict) -> str:\n    \
         return rows[\"missing\"]\n\n\
         @transform\n\
         def run() -> None:\n    \
         log.info(\"odd \\ud800 text\")\n    \
         try:\n        \
             lookup({})\n    \
         except KeyError as e:\n        \
             raise ValueError(\"no row 7 \\udfff\") from e\n",
    );
    let p = project_with(&raises, "[sandbox]\n");
    assert_refused(
        &p,
        &[
            "ValueError: no row 7 \\udfff",
            "in lookup",
            "KeyError: 'missing'",
        ],
    );
    // The log line with a lone surrogate went through (escaped) instead of trapping.
    let run = p.strata(&["migrate", "-v"]).code(1);
    assert!(run.stderr.contains("odd \\ud800 text"), "{}", run.stderr);
    assert!(!run.stderr.contains("trapped"), "{}", run.stderr);
    // sys.exit(), natural in a script, raises SystemExit, which is not an Exception: it is
    // reported like one, not left to end the component in a trap.
    let exits = build_transform(
        "import sys\nfrom strata_sdk import transform\n\n\
         @transform\n\
         def run() -> None:\n    \
         sys.exit(\"bad data in row 7\")\n",
    );
    let p = project_with(&exits, "[sandbox]\n");
    assert_refused(&p, &["SystemExit: bad data in row 7"]);
    let run = p.strata(&["migrate"]).code(1);
    assert!(!run.stderr.contains("trapped"), "{}", run.stderr);
}

/// Both PostgreSQL tests need the server and componentize-py.
const NEEDS_PG: &str = "needs componentize-py 0.25.1 and a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts both)";

#[test]
#[ignore = "needs componentize-py 0.25.1 and a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts both)"]
fn the_python_split_names_runs_on_postgres() {
    use crate::postgres::Pg;
    use crate::postgres_components::{SPLIT_NAMES, leftover_roles, split_names_project};
    let _ = NEEDS_PG;
    let pg = Pg::new("python_split_names");
    let m = SPLIT_NAMES;
    let p = split_names_project(
        &pg,
        r#"[{"full_name": "Ada Lovelace"}, {"full_name": "  Gabriel  García Márquez"},
            {"full_name": "Søren"}, {"full_name": "Jean\u00a0Paul Sartre"}]"#,
    );
    // The example as it is: `?` placeholders, bound by the types the server infers.
    let example =
        std::fs::read_to_string(repo_root().join("guest-examples/python/split-names/app.py"))
            .unwrap();
    python_guest(&p, &format!("{m}/transform"), &example);
    p.strata(&["build"]).ok();
    let run = p.strata(&["migrate"]).ok();
    pg.hides_password(&run);
    assert_eq!(
        pg.rows(
            true,
            "SELECT first_name || '|' || last_name FROM people ORDER BY id"
        ),
        [
            "Ada|Lovelace",
            "Gabriel|García Márquez",
            "Søren|",
            "Jean|Paul Sartre"
        ]
    );
    // Audited with the fuel it burned, as a Rust component is.
    let audit = pg.rows(
        true,
        "SELECT outcome || '|' || rows || '|' || (fuel_used > 0) FROM strata.strata_migration_audit \
         WHERE action = 'transform'",
    );
    assert_eq!(audit, ["ok|4|true"], "{}", run.stderr);
    assert_eq!(leftover_roles(&pg), Vec::<String>::new());
}

#[test]
#[ignore = "needs componentize-py 0.25.1 and a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts both)"]
fn a_python_component_is_refused_a_table_outside_writes_on_postgres() {
    use crate::postgres::Pg;
    use crate::postgres_components::{
        HOSTILE, PEOPLE_ONLY, SECRETS_REFUSED, assert_refused, project_with,
    };
    let pg = Pg::new("python_undeclared");
    // The Rust case (postgres_components) writes secrets through a WAT component; here the
    // same statement comes from Python, under the same migration.toml.
    let p = project_with(&pg, &[], PEOPLE_ONLY);
    python_guest(
        &p,
        &format!("{HOSTILE}/transform"),
        "from strata_sdk import sql, transform\n\n\
         @transform\n\
         def run() -> None:\n    \
         sql.execute(\"UPDATE secrets SET v = 'owned'\")\n",
    );
    p.strata(&["build"]).ok();
    assert_refused(&pg, &p, SECRETS_REFUSED);
}

/// The `name = "value"` line of a built-from record.
fn record_line(record: &str, name: &str) -> String {
    record
        .lines()
        .find(|l| l.starts_with(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("no {name} in {record}"))
        .to_string()
}

#[test]
#[ignore = "needs componentize-py 0.25.1 (python3 -m pip install componentize-py==0.25.1)"]
fn two_checkouts_of_a_python_guest_build_the_same_bytes() {
    use crate::harness::strata_command;
    // Two checkouts: other absolute paths, each with its own copy of the SDK (no
    // strata-guest.toml: the project's strata-sdk/), sources written at other times, and
    // callers with another temporary folder, hash seed, time zone and locale, building one after
    // the other (another moment, another extraction of componentize-py's standard library).
    let checkouts: Vec<Project> = (0..2).map(|_| split_project(3)).collect();
    let example =
        std::fs::read_to_string(repo_root().join("guest-examples/python/split-names/app.py"))
            .unwrap();
    let envs = [
        [("PYTHONHASHSEED", "1"), ("TZ", "UTC"), ("LANG", "C.UTF-8")],
        [
            ("PYTHONHASHSEED", "4242"),
            ("TZ", "Asia/Tokyo"),
            ("LANG", "de_DE.UTF-8"),
        ],
    ];
    let mut records = Vec::new();
    let mut components = Vec::new();
    for (i, (p, env)) in checkouts.iter().zip(envs).enumerate() {
        p.write(&format!("{SPLIT}/transform/app.py"), &example);
        if i == 1 {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
            std::fs::File::options()
                .write(true)
                .open(p.path(&format!("{SPLIT}/transform/app.py")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let tmp = p.path(&format!("tmp-{i}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let out = strata_command(p.root(), &["build"])
            .envs(env)
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        let run = crate::harness::Run::new(&["build"], out).ok();
        assert!(run.stdout.contains("transform.wasm"), "{}", run.stdout);
        assert!(!run.stderr.contains("differ"), "{}", run.stderr);
        records.push(
            std::fs::read_to_string(p.path(&format!("{SPLIT}/transform.wasm.built-from"))).unwrap(),
        );
        components.push(std::fs::read(p.path(&format!("{SPLIT}/transform.wasm"))).unwrap());
    }
    // What strata derives from the sources is the same in both checkouts (the staleness check
    // compares it): no path, time or environment reaches it.
    assert_eq!(
        record_line(&records[0], "sources_sha256"),
        record_line(&records[1], "sources_sha256")
    );
    assert_eq!(
        record_line(&records[0], "source"),
        record_line(&records[1], "source")
    );
    // And so are the bytes (componentize-py's randomness, clocks, file metadata and directory
    // order are fixed for it: docs/src/components.md, "Reproducible Python builds").
    let (a, b) = (&components[0], &components[1]);
    let first_difference = a.iter().zip(b.iter()).position(|(x, y)| x != y);
    assert!(
        a == b,
        "the two checkouts built {} and {} bytes, first differing at {first_difference:?}",
        a.len(),
        b.len()
    );
    assert_eq!(
        record_line(&records[0], "wasm_sha256"),
        record_line(&records[1], "wasm_sha256")
    );
    // The component is the split-names transform: it runs, and splits alike, in both.
    for p in &checkouts {
        p.strata(&["migrate"]).ok();
    }
    let (from_a, from_b) = (
        rows(&checkouts[0].open("app.db"), SPLIT_ROWS),
        rows(&checkouts[1].open("app.db"), SPLIT_ROWS),
    );
    assert_eq!(from_a.len(), 3);
    assert_eq!(from_a, from_b);
    let split = rows(
        &checkouts[0].open("app.db"),
        "SELECT first_name || '|' || last_name FROM people WHERE id IN (1, 3) ORDER BY id",
    );
    assert_eq!(split, ["Gabriel|García Márquez", "Søren|"]);
}

/// Issue 20's walk, as a new user does it from "In Python" in docs/src/components.md: a seed,
/// a transform and a check, each scaffolded by `strata new ... --lang python`, written with the
/// SDK as the chapter shows, built by `strata build` (one build), then run by `migrate` and
/// `sandbox` on SQLite and, the very same tree and components, on PostgreSQL.
#[test]
#[ignore = "needs componentize-py 0.25.1 and a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts both)"]
fn a_python_seed_transform_and_check_from_the_docs_run_on_sqlite_and_postgres() {
    let _ = NEEDS_PG;
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write(
        "migrations/people/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id integer PRIMARY KEY, full_name text NOT NULL, \
         first_name text, last_name text);\n",
    );
    let new = |world: &str, slug: &str| -> String {
        let made = p
            .strata(&["new", "people", slug, world, "--lang", "python"])
            .ok();
        made.stdout.trim().to_string()
    };
    let seed = new("--seed", "seed-people");
    p.write(
        &format!("{seed}/test-data/seed/app.py"),
        r#"from typing import Any, Dict

from strata_sdk import log, seed, sql

NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Élodie Brontë"]


@seed
def generate(params: Dict[str, Any]) -> None:
    count = int(params.get("count", 0))
    sql.execute_many(
        "INSERT INTO people (id, full_name) VALUES (?, ?)",
        [(i + 1, NAMES[i % len(NAMES)]) for i in range(count)],
    )
    log.info(f"seeded {count} people")
"#,
    )
    .write(
        &format!("{seed}/test-data/data.json"),
        r#"{"$seed": {"count": 10}}"#,
    )
    .write(
        &format!("{seed}/migration.toml"),
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    let split = new("--transform", "split-names");
    p.write(
        &format!("{split}/transform/app.py"),
        r#"from strata_sdk import log, sql, transform


@transform
def run() -> None:
    names = sql.Writer("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?")
    for id, full_name in sql.stream("SELECT id, full_name FROM people"):
        first, _, last = full_name.partition(" ")
        names.push((first, last, id))
    log.info(f"split the names of {names.finish()} people")
"#,
    )
    .write(
        &format!("{split}/migration.toml"),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n",
    );
    let check = new("--check", "capitalized");
    p.write(
        &format!("{check}/check/app.py"),
        r#"from typing import List

from strata_sdk import check, sql


@check
def violations() -> List[str]:
    return [
        f"people {id}: first name {first!r} does not start with a capital letter"
        for id, first in sql.stream("SELECT id, first_name FROM people")
        if not first or not first[0].isupper()
    ]
"#,
    )
    .write(
        &format!("{check}/migration.toml"),
        "[sandbox]\nreads = [\"people\"]\n",
    );
    p.strata(&["migrate"]).code(2).stderr_has("strata build");
    p.strata(&["build"]).ok();
    for component in [
        format!("{seed}/test-data/seed.wasm"),
        format!("{split}/transform.wasm"),
        format!("{check}/check.wasm"),
    ] {
        assert!(p.path(&component).is_file(), "{component} was not built");
        assert!(p.path(&format!("{component}.built-from")).is_file());
    }
    let split_rows = "SELECT id || ' ' || first_name || '|' || last_name FROM people \
                      WHERE id IN (1, 4, 10) ORDER BY id";
    let expected = ["1 Ada|Lovelace", "4 Élodie|Brontë", "10 Alan|Turing"];
    p.strata(&["migrate"]).ok();
    // Seeded on the test database only, split there, and checked.
    assert_eq!(rows(&p.open(".strata/test.db"), split_rows), expected);
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM people"),
        ["0"]
    );
    p.strata(&["sandbox"]).ok().stdout_has("4 ok");
    // The check is not a formality: a row it rejects fails the sandbox, naming the row.
    p.write(
        &format!("{check}/test-data/data.json"),
        r#"{"people": [{"id": 11, "full_name": "bob", "first_name": "bob", "last_name": ""}]}"#,
    );
    p.strata(&["sandbox"])
        .code(1)
        .stderr_has("people 11: first name 'bob' does not start with a capital letter");
    std::fs::remove_dir_all(p.path(&format!("{check}/test-data"))).unwrap();

    // The same tree, components and SDK copy on PostgreSQL, nothing rebuilt.
    use crate::postgres::Pg;
    let pg = Pg::new("python_seed_transform_check");
    let q = crate::postgres::project(&pg);
    for folder in ["migrations", "strata-sdk"] {
        crate::harness::copy_dir(&p.path(folder), &q.path(folder));
    }
    let run = q.strata(&["migrate"]).ok();
    pg.hides_password(&run);
    assert_eq!(pg.rows(true, split_rows), expected);
    assert_eq!(pg.rows(false, "SELECT count(*) FROM people"), ["0"]);
    q.strata(&["sandbox"]).ok().stdout_has("4 ok");
    q.strata(&["status", "--check"]).ok();
}
