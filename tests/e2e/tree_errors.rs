//! A malformed tree is bad input: exit 2, a message naming the offending path, nothing touched.

use crate::harness::Project;

fn assert_refused_naming(p: &Project, path: &str) {
    for cmd in [&["migrate"][..], &["status"], &["plan"]] {
        p.strata(cmd).code(2).stderr_has(path);
    }
    assert!(
        !p.path("app.db").exists(),
        "a bad tree must not create the database"
    );
    assert!(!p.path(".strata/test.db").exists());
}

#[test]
fn a_malformed_folder_name_is_named() {
    let p = Project::example();
    p.write("migrations/accounts/2024-01-05-oops/do.sql", "");
    assert_refused_naming(&p, "migrations/accounts/2024-01-05-oops");
}

#[test]
fn an_impossible_date_is_named() {
    let p = Project::example();
    p.write("migrations/accounts/20240230T000000Z-feb-30/do.sql", "");
    assert_refused_naming(&p, "20240230T000000Z-feb-30");
}

#[test]
fn a_duplicate_stamp_within_a_module_is_named() {
    let p = Project::example();
    p.write("migrations/accounts/20240105T093000Z-twin/do.sql", "");
    assert_refused_naming(&p, "migrations/accounts/20240105T093000Z-zero");
}

#[test]
fn the_same_stamp_in_two_modules_is_fine() {
    let p = Project::example();
    p.write(
        "migrations/audit/20240105T093000Z-zero/do.sql",
        "CREATE TABLE audit_events(id INTEGER PRIMARY KEY);",
    );
    p.strata(&["migrate"]).ok();
}

#[test]
fn an_unknown_file_in_a_migration_is_named() {
    let p = Project::example();
    p.write(
        "migrations/billing/20240215T153000Z-plans/notes.txt",
        "remember",
    );
    assert_refused_naming(&p, "migrations/billing/20240215T153000Z-plans/notes.txt");
}

#[test]
fn an_unknown_file_in_a_data_folder_is_named() {
    let p = Project::example();
    p.write(
        "migrations/billing/20240215T153000Z-plans/test-data/rows.csv",
        "a,b",
    );
    assert_refused_naming(&p, "test-data/rows.csv");
}

#[test]
fn a_bad_module_name_is_named() {
    let p = Project::example();
    p.write("migrations/Billing2/20240101T000000Z-zero/do.sql", "");
    assert_refused_naming(&p, "migrations/Billing2");
}

#[test]
fn a_migration_without_do_sql_is_named() {
    let p = Project::example();
    p.write(
        "migrations/billing/20240501T000000Z-empty/checks.sql",
        "SELECT 1 WHERE 0;",
    );
    assert_refused_naming(&p, "migrations/billing/20240501T000000Z-empty/do.sql");
}

#[test]
fn malformed_data_json_is_named_before_anything_runs() {
    let p = Project::example();
    p.write(
        "migrations/billing/20240402T130000Z-due-dates/test-data/data.json",
        "{\"invoices\": [1, 2]}",
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("migrations/billing/20240402T130000Z-due-dates/test-data/data.json")
        .stderr_has("row 1");
    assert!(!p.path("app.db").exists());
}

#[test]
fn a_bad_config_key_is_named() {
    let p = Project::example();
    p.write("strata.toml", "databse = \"x.db\"\n");
    p.strata(&["status"])
        .code(2)
        .stderr_has("strata.toml")
        .stderr_has("databse");
}
