//! Sandbox escapes, each by a hostile component written in WAT (see `components`): planted
//! triggers and views, statements reused from the host's statement cache, reads that slipped
//! past the authorizer, and changes to strata's own bookkeeping. Each is refused with a clear
//! error, exit 1, and both databases exactly as before the step.

use crate::components::{Entry, Op, P, component, executing};
use crate::harness::{Project, rows};
use crate::hostile::{assert_refused, project_with};

const PEOPLE_ONLY: &str = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n";

fn secrets(p: &Project, db: &str) -> Vec<String> {
    rows(&p.open(db), "SELECT id, v FROM secrets ORDER BY id")
}

// ---- 1. Planted triggers and views -------------------------------------------------------

#[test]
fn a_trigger_is_refused_unless_migration_toml_grants_it() {
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER INSERT ON people BEGIN UPDATE secrets SET v = 'planted'; END",
        ]),
        PEOPLE_ONLY,
    );
    assert_refused(
        &p,
        &["trigger `plant`", "triggers = true", "migration.toml"],
    );
}

#[test]
fn a_granted_trigger_whose_body_writes_outside_writes_is_refused() {
    let toml = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER INSERT ON people BEGIN UPDATE secrets SET v = 'planted'; END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `plant`", "`secrets`", "writes"]);
}

#[test]
fn a_granted_trigger_whose_body_reads_outside_reads_is_refused() {
    let toml =
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"loot\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TABLE loot(v TEXT)",
            "CREATE TRIGGER plant AFTER UPDATE OF name ON people WHEN (SELECT count(*) FROM secrets) > 0 \
             BEGIN INSERT INTO loot SELECT v FROM secrets; END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `plant`", "`secrets`", "reads"]);
}

#[test]
fn a_granted_trigger_may_not_write_strata_bookkeeping() {
    let toml = "[sandbox]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER DELETE ON people BEGIN DELETE FROM strata_migration; END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `plant`", "strata_migration", "bookkeeping"]);
}

#[test]
fn a_granted_trigger_within_its_tables_is_created_and_fires_later() {
    let toml =
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"people_log\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TABLE people_log(id INTEGER, name TEXT)",
            "CREATE TRIGGER people_logged AFTER UPDATE ON people BEGIN \
             INSERT INTO people_log VALUES (new.id, new.name); END",
        ]),
        toml,
    );
    p.strata(&["migrate", "-q"]).ok();
    let conn = p.open("app.db");
    conn.execute("UPDATE people SET name = 'Ada L.' WHERE id = 1", [])
        .unwrap();
    assert_eq!(rows(&conn, "SELECT * FROM people_log"), ["1|Ada L."]);
}

// ---- 1b. Triggers checked in full, whatever they name (issue 17, item 4) ------------------
//
// SQLite compiles a trigger only when a statement fires it, and an `UPDATE OF` trigger only
// when the UPDATE sets one of its columns: a trigger that nothing can fire today is never
// compiled, so it must be refused rather than left to fire unchecked once the schema changes.

const GRANTED: &str = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\ntriggers = true\n";

#[test]
fn a_trigger_on_a_column_that_does_not_exist_yet_is_refused() {
    // The attack: a later, innocent migration adding `nick2` and updating it would have moved
    // the secrets into `people` and emptied `secrets`.
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER UPDATE OF nick2 ON people BEGIN \
             INSERT INTO people(id, name) SELECT 1000 + id, v FROM secrets; DELETE FROM secrets; END",
        ]),
        GRANTED,
    );
    assert_refused(&p, &["trigger `plant`", "`nick2`", "existing columns"]);
    assert_eq!(secrets(&p, "app.db"), ["1|s3cr3t"]);
}

#[test]
fn a_trigger_emptying_the_ledger_through_a_future_column_is_refused() {
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER UPDATE OF later ON people BEGIN DELETE FROM strata_migration; END",
        ]),
        "[sandbox]\ntriggers = true\n",
    );
    assert_refused(&p, &["trigger `plant`", "`later`"]);
}

#[test]
fn a_trigger_on_an_existing_column_outside_the_set_list_is_checked() {
    // `UPDATE OF rowid` fires on `UPDATE people SET rowid = ...`, which sets no declared
    // column; it is compiled by a probe setting exactly its columns.
    for of in ["rowid", "oid", "name, rowid"] {
        let p = project_with(
            &executing(&[&format!(
                "CREATE TRIGGER plant AFTER UPDATE OF {of} ON people BEGIN DELETE FROM secrets; END"
            )]),
            GRANTED,
        );
        assert_refused(&p, &["trigger `plant`", "`secrets`", "writes"]);
    }
}

#[test]
fn a_column_dropped_under_its_trigger_in_the_same_call_is_refused() {
    // Created on an existing column, then the column dropped: SQLite keeps the trigger, which
    // then names a column that does not exist. (Components cannot DROP COLUMN today: the
    // authorizer refuses it first; should that open, the trigger check refuses the leftover.)
    let toml = "[sandbox]\nreads = [\"people\", \"stage\"]\nwrites = [\"people\", \"stage\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TABLE stage(id INTEGER PRIMARY KEY, flag TEXT)",
            "CREATE TRIGGER plant AFTER UPDATE OF flag ON stage BEGIN DELETE FROM secrets; END",
            "ALTER TABLE stage DROP COLUMN flag",
        ]),
        toml,
    );
    assert_refused(&p, &["refused"]);
}

#[test]
fn an_instead_of_trigger_on_a_view_column_that_does_not_exist_is_refused() {
    let toml =
        "[sandbox]\nreads = [\"people\", \"v\"]\nwrites = [\"people\", \"v\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE VIEW v AS SELECT id, name FROM people",
            "CREATE TRIGGER plant INSTEAD OF UPDATE OF ghost ON v BEGIN DELETE FROM secrets; END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `plant`", "`ghost`"]);
}

#[test]
fn a_trigger_body_that_hides_behind_a_view_error_is_refused() {
    // The body does not compile today (`v` has no INSTEAD OF INSERT trigger); once one is
    // added, the DELETE before it would run unchecked.
    let toml =
        "[sandbox]\nreads = [\"people\", \"v\"]\nwrites = [\"people\", \"v\"]\ntriggers = true\n";
    for body in [
        "INSERT INTO v VALUES (1); DELETE FROM strata_migration;",
        "DELETE FROM strata_migration; INSERT INTO v VALUES (1);",
    ] {
        let p = project_with(
            &executing(&[
                "CREATE VIEW v AS SELECT id FROM people",
                &format!("CREATE TRIGGER plant AFTER INSERT ON people BEGIN {body} END"),
            ]),
            toml,
        );
        assert_refused(&p, &["trigger `plant`"]);
    }
}

#[test]
fn a_trigger_body_naming_a_table_that_does_not_exist_yet_is_refused() {
    let toml =
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"later\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TRIGGER plant AFTER DELETE ON people BEGIN INSERT INTO later VALUES (old.id); END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `plant`", "later"]);
}

#[test]
fn a_nested_trigger_is_checked_on_its_own() {
    // `plant` only writes people_log; `relay` on people_log fires on a column it lacks.
    let toml =
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"people_log\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TABLE people_log(id INTEGER, name TEXT)",
            "CREATE TRIGGER plant AFTER INSERT ON people BEGIN \
             INSERT INTO people_log VALUES (new.id, new.name); END",
            "CREATE TRIGGER relay AFTER UPDATE OF seen ON people_log BEGIN DELETE FROM secrets; END",
        ]),
        toml,
    );
    assert_refused(&p, &["trigger `relay`", "`seen`"]);
}

#[test]
fn a_raise_or_when_clause_reading_outside_reads_is_refused() {
    for sql in [
        "CREATE TRIGGER plant BEFORE UPDATE OF name ON people \
         WHEN (SELECT count(*) FROM secrets) > 0 BEGIN SELECT RAISE(ABORT, 'no'); END",
        "CREATE TRIGGER plant BEFORE DELETE ON people BEGIN \
         SELECT RAISE(ABORT, 'no') WHERE EXISTS (SELECT 1 FROM secrets); END",
        "CREATE TRIGGER plant BEFORE UPDATE OF ghost ON people BEGIN SELECT RAISE(IGNORE); END",
    ] {
        let p = project_with(&executing(&[sql]), GRANTED);
        assert_refused(&p, &["trigger `plant`"]);
    }
}

#[test]
fn a_checked_trigger_still_works_after_its_table_is_renamed() {
    // A trigger within the grant passes, and follows its table through a later rename.
    let toml =
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"people_log\"]\ntriggers = true\n";
    let p = project_with(
        &executing(&[
            "CREATE TABLE people_log(id INTEGER, nick TEXT)",
            "CREATE TRIGGER logged AFTER UPDATE OF nick ON people BEGIN \
             INSERT INTO people_log VALUES (new.id, new.nick); END",
        ]),
        toml,
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        "migrations/app/20240301T000000Z-rename/do.sql",
        "ALTER TABLE people RENAME TO persons;\nUPDATE persons SET nick = 'n' WHERE id = 1;",
    );
    p.strata(&["migrate", "-q"]).ok();
    let conn = p.open("app.db");
    assert_eq!(rows(&conn, "SELECT * FROM people_log"), ["1|n"]);
    assert_eq!(secrets(&p, "app.db"), ["1|s3cr3t"]);
}

#[test]
fn a_temp_trigger_is_refused() {
    let p = project_with(
        &executing(&[
            "CREATE TEMP TRIGGER plant AFTER INSERT ON main.people BEGIN UPDATE secrets SET v = 'x'; END",
        ]),
        "[sandbox]\ntriggers = true\n",
    );
    assert_refused(&p, &["refused", "temp"]);
}

#[test]
fn a_view_reading_outside_reads_is_refused_when_created() {
    let toml = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"leak\"]\n";
    let p = project_with(
        &executing(&["CREATE VIEW leak AS SELECT id, v FROM secrets"]),
        toml,
    );
    assert_refused(&p, &["view `leak`", "`secrets`", "reads"]);
    let p = project_with(
        &executing(&["CREATE VIEW leak AS SELECT count(*) AS n FROM secrets"]),
        toml,
    );
    assert_refused(&p, &["view `leak`", "`secrets`"]);
}

#[test]
fn a_view_within_reads_is_created() {
    let toml = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"names\"]\n";
    let p = project_with(
        &executing(&["CREATE VIEW names AS SELECT name FROM people"]),
        toml,
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(rows(&p.open("app.db"), "SELECT count(*) FROM names"), ["3"]);
}

// ---- 2. The statement cache ---------------------------------------------------------------

/// data.json inserts through the connection's statement cache in host mode; a seed sending the
/// same text must not get the host's authorized statement.
#[test]
fn a_seed_cannot_reuse_the_hosts_cached_data_json_insert() {
    let seed = component(
        Entry::Seed,
        &[Op::Execute(
            "INSERT INTO \"secrets\" (\"id\", \"v\") VALUES (?, ?)".into(),
            vec![P::Int(3), P::Text("forged".into())],
        )],
    );
    let p = project_with(&executing(&[]), PEOPLE_ONLY);
    let dir = "migrations/app/20240201T000000Z-hostile";
    p.write(
        &format!("{dir}/proj-data/data.json"),
        r#"{"secrets": [{"id": 2, "v": "from data.json"}]}"#,
    );
    std::fs::write(p.path(&format!("{dir}/proj-data/seed.wasm")), seed).unwrap();
    let before = secrets(&p, "app.db");
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("proj-data/seed.wasm")
        .stderr_has("`secrets`")
        .stderr_has("writes");
    assert_eq!(secrets(&p, "app.db"), before);
    assert_eq!(secrets(&p, ".strata/test.db"), before);
}

/// The ledger's audit insert is cached by the step before; a transform of the next step in the
/// same run sends the same text. (Today each step installs its guard, and SQLite expires every
/// prepared statement when an authorizer is installed, so this one was re-authorized even
/// before the cache was flushed around component calls; the test keeps it that way.)
#[test]
fn a_transform_cannot_reuse_the_ledgers_cached_audit_insert() {
    let audit_insert = "INSERT INTO strata_migration_audit
             (at, phase, module, stamp, action, outcome, detail, rows, fuel_used, duration_ms,
              operator, checksum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
    let mut params = vec![P::Text("1970-01-01T00:00:00Z".into())];
    params.extend(
        ["apply", "app", "19700101T000000Z", "do.sql", "ok", "forged"]
            .iter()
            .map(|s| P::Text(s.to_string())),
    );
    params.extend([
        P::Null,
        P::Null,
        P::Null,
        P::Text("mallory".into()),
        P::Null,
    ]);
    let wasm = component(
        Entry::Transform,
        &[Op::Execute(audit_insert.into(), params)],
    );
    let p = project_with(&wasm, "[sandbox]\n");
    // No DDL in the hostile step: a schema change alone would make SQLite re-prepare (and so
    // re-authorize) the cached statement.
    p.write(
        "migrations/app/20240201T000000Z-hostile/do.sql",
        "UPDATE people SET name = name;",
    );
    // A step without components before the hostile one, in the same run.
    p.write(
        "migrations/app/20240115T000000Z-plain/do.sql",
        "CREATE TABLE plain(a);",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("transform.wasm")
        .stderr_has("strata_migration_audit");
    for db in ["app.db", ".strata/test.db"] {
        assert_eq!(
            rows(
                &p.open(db),
                "SELECT count(*) FROM strata_migration_audit WHERE operator = 'mallory'"
            ),
            ["0"],
            "{db}"
        );
    }
}

// ---- 3. Reads that leaked -----------------------------------------------------------------

#[test]
fn count_of_an_undeclared_table_is_refused() {
    let wasm = component(
        Entry::Transform,
        &[Op::Query("SELECT count(*) FROM secrets".into())],
    );
    let p = project_with(&wasm, PEOPLE_ONLY);
    assert_refused(&p, &["`secrets`", "reads"]);
}

#[test]
fn a_rename_to_an_undeclared_name_is_refused() {
    let p = project_with(
        &executing(&["ALTER TABLE people RENAME TO elsewhere"]),
        PEOPLE_ONLY,
    );
    assert_refused(&p, &["`elsewhere`", "writes"]);
    let p = project_with(
        &executing(&["ALTER TABLE people RENAME TO strata_people"]),
        "[sandbox]\n",
    );
    assert_refused(&p, &["strata_people", "bookkeeping"]);
}

#[test]
fn a_rename_to_a_declared_name_works() {
    let p = project_with(
        &executing(&["ALTER TABLE people RENAME TO persons"]),
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"persons\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM persons"),
        ["3"]
    );
}

// ---- 7. The bookkeeping is strata's alone -------------------------------------------------

#[test]
fn sqlite_sequence_rows_of_strata_tables_cannot_be_changed() {
    for sql in [
        "UPDATE sqlite_sequence SET seq = 1 WHERE name = 'strata_migration_audit'",
        "DELETE FROM sqlite_sequence WHERE name = 'strata_migration_audit'",
        "INSERT INTO sqlite_sequence(name, seq) VALUES ('strata_migration', 7)",
    ] {
        let p = project_with(&executing(&[sql]), "[sandbox]\n");
        let before = rows(&p.open("app.db"), "SELECT name, seq FROM sqlite_sequence");
        assert_refused(&p, &["sqlite_sequence"]);
        assert_eq!(
            rows(&p.open("app.db"), "SELECT name, seq FROM sqlite_sequence"),
            before,
            "{sql}"
        );
    }
}

#[test]
fn strata_named_objects_cannot_be_created_by_a_component() {
    for sql in [
        "CREATE INDEX strata_people_name ON people(name)",
        "CREATE TABLE strata_extra(a)",
    ] {
        let p = project_with(&executing(&[sql]), "[sandbox]\n");
        assert_refused(&p, &["strata_", "bookkeeping"]);
    }
}

/// `PRAGMA writable_schema` would let a script write a trigger's row into the schema table
/// itself, past the check of the `CREATE TRIGGER` that names strata's tables: refused in
/// do.sql and undo.sql alike, and the application's later insert leaves the ledger whole.
#[test]
fn a_script_may_not_plant_a_trigger_through_writable_schema() {
    let p = Project::empty();
    let plant = "PRAGMA writable_schema = ON;\n\
                 INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) VALUES ('trigger', \
                 'people_audit', 'people', 0, 'CREATE TRIGGER people_audit AFTER INSERT ON people \
                 BEGIN DELETE FROM strata_migration; END');\nPRAGMA writable_schema = OFF;";
    p.write(
        "migrations/app/20240101T000000Z-one/do.sql",
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);",
    )
    .write(
        "migrations/app/20240102T000000Z-two/do.sql",
        &format!("CREATE TABLE t2(x);\n{plant}"),
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("migrations/app/20240102T000000Z-two/do.sql")
        .stderr_has("line 2")
        .stderr_has("PRAGMA writable_schema is refused");
    // undo.sql is held to the same rule.
    p.write(
        "migrations/app/20240102T000000Z-two/do.sql",
        "CREATE TABLE t2(x);",
    )
    .write(
        "migrations/app/20240102T000000Z-two/undo.sql",
        &format!("DROP TABLE t2;\n{plant}"),
    );
    p.strata(&["migrate"]).ok();
    p.strata(&["undo"])
        .code(1)
        .stderr_has("PRAGMA writable_schema is refused");
    for db in ["app.db", ".strata/test.db"] {
        let conn = p.open(db);
        conn.execute("INSERT INTO people(name) VALUES ('the application')", [])
            .unwrap();
        assert_eq!(
            rows(&conn, "SELECT count(*) FROM strata_migration"),
            ["2"],
            "{db}"
        );
        assert!(
            rows(
                &conn,
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            )
            .iter()
            .all(|t| t != "people_audit"),
            "{db}"
        );
    }
}

#[test]
fn do_sql_touching_strata_bookkeeping_is_refused_naming_the_file() {
    let p = project_with(&executing(&[]), "[sandbox]\n");
    p.write(
        "migrations/app/20240201T000000Z-hostile/do.sql",
        "ALTER TABLE people ADD COLUMN nick TEXT;\nDELETE FROM strata_migration WHERE module = 'app';",
    );
    let before = rows(
        &p.open("app.db"),
        "SELECT module, stamp FROM strata_migration",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("migrations/app/20240201T000000Z-hostile/do.sql")
        .stderr_has("line 2")
        .stderr_has("`strata_migration` is strata's own bookkeeping");
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT module, stamp FROM strata_migration"
        ),
        before
    );
}

#[test]
fn component_log_lines_are_printed_with_control_characters_escaped() {
    let forged = "\u{1b}[2K\r  applied app/20240201T000000Z-hostile (1 ms)\nall good\u{202e}";
    let wasm = component(Entry::Transform, &[Op::Log(forged.into())]);
    let p = project_with(&wasm, "[sandbox]\n");
    let run = p.strata(&["migrate"]).ok();
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{202e}'), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            r"\u{1b}[2K\r  applied app/20240201T000000Z-hostile (1 ms)\nall good\u{202e}"
        ),
        "{}",
        run.stderr
    );
}

/// A component's error message is what it chooses to send; what strata keeps of it (printed,
/// in the append-only audit log, over gRPC) is bounded: a 20 MB message is cut, the cut
/// counted, and the databases do not grow by it.
#[test]
fn a_huge_component_error_is_kept_to_its_bound() {
    let len = 20 * 1024 * 1024;
    let wasm = component(Entry::Transform, &[Op::FailLong { fill: b'x', len }]);
    let p = project_with(&wasm, "[sandbox]\n");
    let size = |db: &str| std::fs::metadata(p.path(db)).unwrap().len();
    let (test_before, real_before) = (size(".strata/test.db"), size("app.db"));
    let run = p
        .strata(&["migrate"])
        .code(1)
        .stderr_has("more bytes not kept");
    assert!(
        run.stderr.len() < 200_000,
        "{} bytes of stderr",
        run.stderr.len()
    );
    let details = rows(
        &p.open(".strata/test.db"),
        "SELECT length(detail) FROM strata_migration_audit WHERE action = 'transform'",
    );
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        details[0].parse::<usize>().unwrap() < 100_000,
        "{details:?}"
    );
    assert!(size(".strata/test.db") < test_before + 1_000_000);
    assert_eq!(size("app.db"), real_before);
}

/// An import from another SQLite file: attached for writing, the rehearsal would move its rows
/// for real before the real run (and no backup holds them), so it is refused; attached
/// read-only, the import runs in both phases and the other file is never changed.
#[test]
fn do_sql_may_attach_another_file_only_read_only() {
    let p = Project::empty();
    let legacy = p.path("legacy.db");
    rusqlite::Connection::open(&legacy)
        .unwrap()
        .execute_batch("CREATE TABLE old(a); INSERT INTO old VALUES (1), (2);")
        .unwrap();
    let bytes = || std::fs::read(&legacy).unwrap();
    let before = bytes();
    p.write(
        "migrations/app/20240101T000000Z-import/do.sql",
        "CREATE TABLE t(a);\nATTACH 'legacy.db' AS l;\nINSERT INTO t SELECT a FROM l.old;\n\
         DELETE FROM l.old;",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("line 2")
        .stderr_has("ATTACH of 'legacy.db' for writing is refused")
        .stderr_has("mode=ro");
    p.strata(&["sandbox"])
        .code(1)
        .stderr_has("for writing is refused");
    assert_eq!(bytes(), before);
    p.write(
        "migrations/app/20240101T000000Z-import/do.sql",
        "CREATE TABLE t(a);\nATTACH 'file:legacy.db?mode=ro' AS l;\n\
         INSERT INTO t SELECT a FROM l.old;",
    );
    p.strata(&["migrate"]).ok();
    for db in ["app.db", ".strata/test.db"] {
        assert_eq!(
            rows(&p.open(db), "SELECT a FROM t ORDER BY a"),
            ["1", "2"],
            "{db}"
        );
    }
    assert_eq!(bytes(), before);
}

/// attack5 #9: read-only is not enough for the project's own databases: an ATTACH of the real
/// database (in any spelling), the test database or a backup is refused in do.sql and
/// checks.sql, by `migrate`, `sandbox` and lint (SL408): the rehearsal would copy production
/// rows into the test database, the sandbox would read them, and the real run would wait on
/// its own lock.
#[test]
fn a_migration_may_not_attach_the_project_s_own_databases_even_read_only() {
    let p = Project::empty();
    const ZERO: &str = "migrations/app/20240101T000000Z-zero";
    const LEAK: &str = "migrations/app/20240102T000000Z-leak";
    p.write(&format!("{ZERO}/do.sql"), "CREATE TABLE people(name TEXT);");
    p.strata(&["migrate", "-q"]).ok();
    p.open("app.db")
        .execute_batch("INSERT INTO people VALUES ('REAL CUSTOMER')")
        .unwrap();
    std::fs::hard_link(p.path("app.db"), p.path("alias.db")).unwrap();
    let backup = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|f| !f.to_string_lossy().ends_with(".json"))
        .expect("a backup");
    let backup = backup.strip_prefix(p.root()).unwrap().display().to_string();
    for file in [
        "file:app.db?mode=ro".to_string(),
        "file:./app.db?mode=ro&cache=shared".to_string(),
        format!("file:{}?mode=ro", p.path("app.db").display()),
        "file:alias.db?mode=ro".to_string(),
        "file:.strata/test.db?mode=ro".to_string(),
        format!("file:{backup}?mode=ro"),
    ] {
        p.write(
            &format!("{LEAK}/do.sql"),
            &format!(
                "CREATE TABLE leak(name TEXT);\nATTACH '{file}' AS r;\n\
                 INSERT INTO leak SELECT name FROM r.people;"
            ),
        );
        let linted = p.strata(&["lint"]);
        assert!(linted.stdout.contains("SL408"), "{file}: {}", linted.stdout);
        p.strata(&["migrate"])
            .code(1)
            .stderr_has("line 2")
            .stderr_has("one of the project's own databases");
        p.strata(&["sandbox"])
            .code(1)
            .stderr_has("one of the project's own databases");
    }
    // checks.sql is held to the same rule.
    p.write(&format!("{LEAK}/do.sql"), "CREATE TABLE leak(name TEXT);")
        .write(
            &format!("{LEAK}/checks.sql"),
            "ATTACH 'file:app.db?mode=ro' AS r;\nSELECT name FROM r.people WHERE 0;",
        );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("one of the project's own databases");
    for db in [".strata/test.db", "app.db"] {
        assert_eq!(
            rows(
                &p.open(db),
                "SELECT count(*) FROM sqlite_master WHERE name = 'leak'"
            ),
            ["0"],
            "{db}"
        );
    }
}
