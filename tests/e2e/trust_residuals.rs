//! What remained of the trust issue's sandbox findings: what a component leaves on a SQLite
//! connection (the date functions that hide the clock), what a write grant reaches through
//! foreign keys and views, and where the PostgreSQL password from the environment is sent.

use crate::components::{Entry, Op, component};
use crate::hostile::project_with;
use crate::postgres_components::PEOPLE_ONLY;

const LATER: &str = "migrations/app/20240301T000000Z-later/do.sql";

/// A project whose pending chain runs a harmless component step, then `later` as a do.sql.
fn component_then(later: &str) -> crate::harness::Project {
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute("UPDATE people SET nick = name".into(), vec![])],
        ),
        PEOPLE_ONLY,
    );
    p.write(LATER, later);
    p
}

#[test]
fn after_a_component_sqlite_date_functions_are_sqlites_own() {
    // SQLite refuses 'now' in an index over rows: so must a do.sql that runs after a
    // component step in the same phase (the component's replacements are deterministic).
    let p = component_then("CREATE INDEX people_today ON people(date('now'));\n");
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of date() in an index");
    let p = component_then(
        "CREATE TABLE stamped(d TEXT, g TEXT GENERATED ALWAYS AS (datetime('now', 'localtime')));\n\
         INSERT INTO stamped(d) VALUES ('x');\n",
    );
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of datetime() in a generated column");
    // What SQLite's own allow still runs, and gives what SQLite's own give.
    let p = component_then(
        "CREATE INDEX people_day ON people(date('2024-01-31', '+' || id || ' day'));\n\
         CREATE TABLE days(d TEXT, n INTEGER CHECK (n > 0));\n\
         INSERT INTO days SELECT date('2024-01-31', '+1 day'), unixepoch('1970-01-02');\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        crate::harness::rows(&p.open("app.db"), "SELECT d, n FROM days"),
        ["2024-02-01|86400"]
    );
    // In one transaction there is no fresh connection to hand over: a later script that
    // would put a date function into the schema is refused, naming the fix.
    let p = component_then("CREATE INDEX people_today ON people(\"DATE\"(nick, 'utc'));\n");
    p.strata(&["migrate", "--single-transaction", "--no-rehearsal"])
        .code(1)
        .stderr_has("20240301T000000Z-later")
        .stderr_has("names date() after a component ran")
        .stderr_has("run this phase without --single-transaction");
    // Values computed from the clock in plain statements run as before.
    let p = component_then("CREATE TABLE seen(d TEXT);\nINSERT INTO seen VALUES (date('now'));\n");
    p.strata(&["migrate", "--single-transaction", "--no-rehearsal"])
        .ok();
    assert_eq!(
        crate::harness::rows(
            &p.open("app.db"),
            "SELECT count(*) FROM seen WHERE d = date(d) AND d > '2024'"
        ),
        ["1"]
    );
}
