//! Steps are independent of each other: a chain applied in one `migrate` leaves the same schema
//! and rows as the same chain applied one step per run, whatever connection settings a step
//! changed (issue 8, item 8).

use crate::harness::Project;

/// A chain whose middle step changes connection-level settings and leaves temp objects behind;
/// the step after it depends on each of them if they leak.
fn chain(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-base/do.sql",
        "CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO a(name) VALUES ('alice'), ('Andrew'), ('bob'), ('anna');\n\
         CREATE VIEW a_names AS SELECT name FROM a;\n\
         CREATE TABLE log(n INTEGER);\n",
    );
    p.write(
        "migrations/app/20240102T000000Z-settings/do.sql",
        "PRAGMA legacy_alter_table = ON;\n\
         PRAGMA case_sensitive_like = ON;\n\
         PRAGMA recursive_triggers = ON;\n\
         PRAGMA reverse_unordered_selects = ON;\n\
         CREATE TEMP TABLE scratch(x);\n\
         CREATE TEMP VIEW every_a AS SELECT * FROM a;\n",
    );
    p.write(
        "migrations/app/20240103T000000Z-rename/do.sql",
        "ALTER TABLE a RENAME TO people;\n\
         CREATE TABLE a_people AS SELECT name FROM people WHERE name LIKE 'a%';\n\
         CREATE TEMP TABLE scratch(y);\n\
         CREATE TRIGGER count_log AFTER INSERT ON log WHEN new.n < 5 BEGIN INSERT INTO log VALUES (new.n + 1); END;\n\
         INSERT INTO log VALUES (1);\n\
         CREATE TABLE first_seen AS SELECT name FROM people LIMIT 1;\n",
    );
}

#[test]
fn a_chain_run_once_equals_the_chain_run_step_by_step() {
    let once = Project::empty();
    chain(&once);
    once.strata(&["migrate"]).ok();

    let stepwise = Project::empty();
    chain(&stepwise);
    for to in ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"] {
        stepwise.strata(&["migrate", "--to", to]).ok();
    }

    for db in ["app.db", ".strata/test.db"] {
        assert_eq!(
            once.app_dump(db),
            stepwise.app_dump(db),
            "{db}: one run and three runs left different databases"
        );
    }
    // And what each leaked setting would have broken is right in both.
    let dump = once.app_dump("app.db");
    assert!(
        dump.contains("FROM \"people\""),
        "the view follows the rename:\n{dump}"
    );
    let conn = once.open("app.db");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM a_people"),
        3,
        "LIKE is case-insensitive"
    );
    assert_eq!(
        count("SELECT count(*) FROM log"),
        2,
        "triggers do not recurse"
    );
}
