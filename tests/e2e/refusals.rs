//! Safety refusals: exit 3, a message naming the migration and the way out, nothing touched.

use crate::harness::{Project, rows};

fn applied_example() -> Project {
    let p = Project::example();
    p.strata(&["migrate", "-q"]).ok();
    p
}

#[test]
fn editing_an_applied_do_sql_refuses_and_names_the_file() {
    let p = applied_example();
    p.write(
        "migrations/billing/20240402T130000Z-due-dates/do.sql",
        "SELECT 1;",
    );
    p.write(
        "migrations/billing/20240501T000000Z-next/do.sql",
        "CREATE TABLE later(a);",
    );
    let before = std::fs::read(p.path("app.db")).unwrap();
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("billing/20240402T130000Z-due-dates was changed after it was applied")
        .stderr_has("migrations/billing/20240402T130000Z-due-dates/do.sql");
    assert_eq!(std::fs::read(p.path("app.db")).unwrap(), before);
    assert!(
        rows(
            &p.open(".strata/test.db"),
            "SELECT name FROM sqlite_master WHERE name = 'later'"
        )
        .is_empty()
    );
    p.strata(&["plan"]).code(3).stderr_has("do.sql");
    p.strata(&["status"]).ok().stdout_has("MODIFIED (do.sql)");
}

#[test]
fn adding_a_data_file_to_an_applied_migration_refuses() {
    let p = applied_example();
    p.write(
        "migrations/accounts/20240130T102000Z-org-billing-email/proj-data/data.json",
        "{}",
    );
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("20240130T102000Z-org-billing-email/proj-data/data.json");
}

#[test]
fn an_out_of_order_migration_refuses_unless_allowed() {
    let p = applied_example();
    p.write(
        "migrations/billing/20240301T000000Z-late/do.sql",
        "CREATE TABLE late_arrival(a);",
    );
    let before = std::fs::read(p.path("app.db")).unwrap();
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("billing/20240301T000000Z-late")
        .stderr_has("older than billing/20240402T130000Z-due-dates")
        .stderr_has("--allow-out-of-order");
    assert_eq!(std::fs::read(p.path("app.db")).unwrap(), before);
    p.strata(&["migrate", "--allow-out-of-order"])
        .ok()
        .stdout_has("applied 1 migration(s)");
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM late_arrival"),
        ["0"]
    );
}

#[test]
fn a_missing_applied_migration_refuses() {
    let p = applied_example();
    std::fs::remove_dir_all(p.path("migrations/accounts/20240318T084500Z-invitations")).unwrap();
    p.strata(&["migrate"])
        .code(3)
        .stderr_has("accounts/20240318T084500Z-invitations is recorded as applied")
        .stderr_has("folder is gone");
    p.strata(&["status"]).ok().stdout_has("MISSING");
}

#[test]
fn a_lock_held_past_the_busy_timeout_refuses() {
    let p = applied_example();
    p.write("strata.toml", "busy_timeout_ms = 200\n");
    p.write(
        "migrations/billing/20240501T000000Z-next/do.sql",
        "CREATE TABLE later(a);",
    );
    let holder = p.open("app.db");
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    p.strata(&["migrate", "--no-rehearsal"])
        .code(3)
        .stderr_has("app.db is locked by another process")
        .stderr_has("busy_timeout_ms");
    holder.execute_batch("ROLLBACK").unwrap();
    p.strata(&["migrate", "--no-rehearsal"])
        .ok()
        .stdout_has("applied 1 migration(s)");
}
