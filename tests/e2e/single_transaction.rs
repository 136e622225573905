//! `migrate --single-transaction` (and `single_transaction` in strata.toml): every pending step
//! of a phase in one transaction, a savepoint per step; a failure rolls back the whole phase.

use crate::harness::{Project, rows};

/// Three steps; the third fails when `fail` is set.
fn project(fail: bool) -> Project {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-one/do.sql",
        "CREATE TABLE one(id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO one(v) VALUES ('a');\n",
    );
    p.write(
        "migrations/app/20240102T000000Z-two/do.sql",
        "CREATE TABLE two(id INTEGER PRIMARY KEY);\nCREATE INDEX two_id ON two(id);\nALTER TABLE one RENAME TO first;\n",
    );
    p.write(
        "migrations/app/20240103T000000Z-three/do.sql",
        if fail {
            "CREATE TABLE three(id INTEGER PRIMARY KEY);\nINSERT INTO nowhere VALUES (1);\n"
        } else {
            "CREATE TABLE three(id INTEGER PRIMARY KEY);\n"
        },
    );
    p
}

#[test]
fn a_failure_rolls_back_every_step_of_the_phase() {
    let p = project(true);
    p.strata(&["migrate", "--no-rehearsal", "--single-transaction"])
        .code(1)
        .stderr_has("app/20240103T000000Z-three failed during do.sql")
        .stderr_has("no such table: nowhere");
    let db = p.open("app.db");
    assert_eq!(
        rows(
            &db,
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'strata_%' AND name NOT LIKE 'sqlite_%'"
        ),
        Vec::<String>::new(),
        "the steps before the failure were rolled back too"
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM strata_migration"), ["0"]);
    // The log survives: the failure, and the two steps undone with it.
    let audit = rows(
        &db,
        "SELECT action || ' ' || outcome || ' ' || coalesce(detail, '') FROM strata_migration_audit ORDER BY id",
    );
    assert!(
        audit.iter().any(|a| a.starts_with("do.sql failed")),
        "{audit:?}"
    );
    let undone: Vec<&String> = audit
        .iter()
        .filter(|a| a.starts_with("single-transaction rolled-back"))
        .collect();
    assert_eq!(undone.len(), 2, "{audit:?}");
    assert!(undone[0].contains("app/20240101T000000Z-one"), "{audit:?}");
    // The backup was taken inside the rolled-back transaction: its audit row is written again
    // (first), and the database keeps the identity the backup records, so it can go back.
    assert!(audit[0].starts_with("backup ok"), "{audit:?}");
    let record = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.to_string_lossy().ends_with(".db.json"))
        .expect("a backup record");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record).unwrap()).unwrap();
    assert_eq!(
        rows(&db, "SELECT id FROM strata_database"),
        [record["database_id"].as_str().unwrap()]
    );
    drop(db);
    p.strata(&["restore"]).ok();

    // Without the flag, the steps before the failure stay applied.
    let p = project(true);
    p.strata(&["migrate", "--no-rehearsal"]).code(1);
    let db = p.open("app.db");
    assert_eq!(rows(&db, "SELECT count(*) FROM strata_migration"), ["2"]);
}

#[test]
fn the_config_key_runs_both_phases_in_one_transaction_each() {
    let p = project(false);
    p.write("strata.toml", "single_transaction = true\n");
    p.strata(&["migrate"]).ok();
    for db in ["app.db", ".strata/test.db"] {
        let conn = p.open(db);
        assert_eq!(rows(&conn, "SELECT count(*) FROM strata_migration"), ["3"]);
        assert_eq!(rows(&conn, "SELECT v FROM first"), ["a"]);
        // Ownership is recorded step by step inside the transaction, renames included.
        assert_eq!(
            rows(
                &conn,
                "SELECT type || ' ' || name || ' ' || stamp FROM strata_object ORDER BY name"
            ),
            [
                "table first 20240101T000000Z",
                "table three 20240103T000000Z",
                "table two 20240102T000000Z",
                "index two_id 20240102T000000Z",
            ]
        );
    }
    p.strata(&["migrate", "--single-transaction"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM strata_migration"),
        ["3"]
    );
}

#[test]
fn a_later_step_that_reads_ownership_sees_the_steps_before_it() {
    // The ownership rows of a phase in one transaction are written at its end, unless a step's
    // SQL names strata_object: then the earlier steps' rows are there when it runs.
    let p = project(false);
    p.write(
        "migrations/app/20240104T000000Z-four/do.sql",
        "CREATE TABLE owners AS SELECT name, stamp FROM strata_object;\n",
    );
    p.write(
        "migrations/app/20240104T000000Z-four/checks.sql",
        "SELECT 'three is not owned yet' WHERE NOT EXISTS \
         (SELECT 1 FROM strata_object WHERE name = 'three');\n",
    );
    p.strata(&["migrate", "--single-transaction", "--no-rehearsal"])
        .ok();
    let conn = p.open("app.db");
    assert_eq!(
        rows(
            &conn,
            "SELECT name || ' ' || stamp FROM owners ORDER BY name"
        ),
        [
            "first 20240101T000000Z",
            "three 20240103T000000Z",
            "two 20240102T000000Z",
            "two_id 20240102T000000Z",
        ]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT stamp FROM strata_object WHERE name = 'owners'"
        ),
        ["20240104T000000Z"]
    );
}

#[test]
fn it_refuses_to_write_snapshots_it_could_not_take_back() {
    let p = project(false);
    p.strata(&["migrate", "--single-transaction", "--write-snapshots"])
        .code(2)
        .stderr_has("--single-transaction cannot be combined with --write-snapshots");
    assert!(!p.path("app.db").exists(), "nothing was touched");
}

/// The file change counter in a rollback-journal database's header: one more per committed
/// write transaction.
fn commits(db: &std::path::Path) -> u32 {
    let header = std::fs::read(db).unwrap();
    u32::from_be_bytes(header[24..28].try_into().unwrap())
}

#[test]
fn a_phase_in_one_transaction_commits_once_bookkeeping_and_backup_included() {
    let p = project(false);
    p.strata(&["migrate", "--no-rehearsal", "--single-transaction"])
        .ok();
    let db = p.path("app.db");
    // A fresh database: the ledger tables, the identity, the backup's audit row and the three
    // steps are one commit, as sqlite3 makes for the same SQL in one transaction.
    assert_eq!(commits(&db), 1);
    let conn = p.open("app.db");
    assert_eq!(rows(&conn, "SELECT count(*) FROM strata_migration"), ["3"]);
    let audit = rows(
        &conn,
        "SELECT action || ' ' || outcome FROM strata_migration_audit ORDER BY id",
    );
    assert_eq!(audit[0], "backup ok", "{audit:?}");
    drop(conn);
    // The backup holds the database as it was before the first step: bookkeeping, no tables.
    let backup = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "db"))
        .expect("a backup");
    let b = rusqlite::Connection::open(&backup).unwrap();
    assert_eq!(
        rows(
            &b,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'strata_%' AND name NOT LIKE 'sqlite_%'"
        ),
        Vec::<String>::new()
    );
    assert_eq!(rows(&b, "PRAGMA journal_mode"), ["delete"]);
    assert_eq!(rows(&b, "PRAGMA integrity_check"), ["ok"]);
}
