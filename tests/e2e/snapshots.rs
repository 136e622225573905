//! Snapshots (`schema.sql` after each step) and drift (the real database changed outside
//! strata).

use crate::harness::{Project, rows};

fn one_module() -> Project {
    let p = Project::empty();
    p.write(
        "migrations/shop/20240101T000000Z-zero/do.sql",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    p.write(
        "migrations/shop/20240201T000000Z-price/do.sql",
        "ALTER TABLE items ADD COLUMN cents INTEGER NOT NULL DEFAULT 0;",
    );
    p
}

#[test]
fn write_snapshots_writes_the_missing_ones_and_latest_from_the_test_database() {
    let p = one_module();
    p.strata(&["migrate", "--write-snapshots"])
        .ok()
        .stderr_has("wrote migrations/shop/20240201T000000Z-price/schema.sql");
    let first = std::fs::read_to_string(p.path("migrations/shop/20240101T000000Z-zero/schema.sql"))
        .unwrap();
    let second =
        std::fs::read_to_string(p.path("migrations/shop/20240201T000000Z-price/schema.sql"))
            .unwrap();
    let latest = std::fs::read_to_string(p.path("migrations/shop/LATEST/schema.sql")).unwrap();
    assert!(
        first.contains("CREATE TABLE items") && !first.contains("cents"),
        "{first}"
    );
    assert!(second.contains("cents"), "{second}");
    assert_eq!(latest, second);
    // Snapshots are not part of the checksum: the applied migrations are not "modified".
    p.strata(&["status"]).ok();
    assert!(
        !p.strata(&["status", "--json"])
            .ok()
            .stdout
            .contains("modified")
    );
    // A fresh database compares every step with its snapshot, and passes.
    std::fs::remove_dir_all(p.path(".strata")).unwrap();
    std::fs::remove_file(p.path("app.db")).unwrap();
    p.strata(&["migrate", "-q"]).ok();
}

#[test]
fn a_step_whose_schema_differs_from_its_snapshot_fails_with_the_difference() {
    let p = one_module();
    p.write(
        "migrations/shop/20240101T000000Z-zero/schema.sql",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, sku TEXT);\n",
    );
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("shop/20240101T000000Z-zero failed during schema.sql")
        .stderr_has("migrations/shop/20240101T000000Z-zero/schema.sql")
        .stderr_has("sku")
        .stderr_has("--write-snapshots");
    let test = p.open(".strata/test.db");
    assert!(
        rows(&test, "SELECT name FROM sqlite_master WHERE name = 'items'").is_empty(),
        "the step was not rolled back"
    );
    assert!(!p.path("app.db").exists());
}

#[test]
fn drift_on_the_real_database_refuses_unless_allowed() {
    let p = one_module();
    p.strata(&["migrate", "--write-snapshots", "-q"]).ok();
    p.open("app.db")
        .execute_batch("ALTER TABLE items ADD COLUMN secret TEXT")
        .unwrap();
    p.write(
        "migrations/shop/20240301T000000Z-more/do.sql",
        "CREATE INDEX items_name ON items(name);",
    );
    let before = std::fs::read(p.path("app.db")).unwrap();
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("module `shop` on app.db has drifted")
        .stderr_has("migrations/shop/20240201T000000Z-price/schema.sql")
        .stderr_has("secret")
        .stderr_has("--allow-drift");
    assert_eq!(std::fs::read(p.path("app.db")).unwrap(), before);
    assert!(
        rows(
            &p.open(".strata/test.db"),
            "SELECT name FROM sqlite_master WHERE name = 'items_name'"
        )
        .is_empty()
    );
    p.strata(&["migrate", "--allow-drift", "-q"]).ok();
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT name FROM sqlite_master WHERE name = 'items_name'"
        ),
        ["items_name"]
    );
}
