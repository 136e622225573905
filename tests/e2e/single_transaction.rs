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
fn it_refuses_to_write_snapshots_it_could_not_take_back() {
    let p = project(false);
    p.strata(&["migrate", "--single-transaction", "--write-snapshots"])
        .code(2)
        .stderr_has("--single-transaction cannot be combined with --write-snapshots");
    assert!(!p.path("app.db").exists(), "nothing was touched");
}
