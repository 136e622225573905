//! The sixth outside test's findings on components: what a component reaches
//! past its manifest through the schema on PostgreSQL (foreign keys' actions and checks,
//! inheritance, rules) and the clock and randomness it must not read through SQL.

use crate::components::Op;
use crate::postgres::Pg;
use crate::postgres_components::{HOSTILE, PEOPLE_ONLY, assert_refused, project_with};

/// `people` with `schema` added by the pending migration's do.sql, then the component's `ops`
/// under `toml`.
fn with_schema(pg: &Pg, schema: &str, ops: &[Op], toml: &str) -> crate::harness::Project {
    let p = project_with(pg, ops, toml);
    p.write(&format!("{HOSTILE}/do.sql"), schema);
    p
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn tables_the_schema_reaches_past_the_grants_must_be_in_the_manifest() {
    let pg = Pg::new("reach");
    let delete = [Op::Execute(
        "DELETE FROM people WHERE id = 1".into(),
        vec![],
    )];
    // Referential actions run as the referencing table's owner: each kind, on delete and on
    // update, is refused while the referencing table is outside `writes`.
    for action in [
        "ON DELETE CASCADE",
        "ON DELETE SET NULL",
        "ON DELETE SET DEFAULT",
        "ON UPDATE CASCADE",
        "ON UPDATE SET NULL",
    ] {
        let p = with_schema(
            &pg,
            &format!(
                "CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES people(id) \
                 {action});\nINSERT INTO orders VALUES (10, 1);\n"
            ),
            &delete,
            PEOPLE_ONLY,
        );
        assert_refused(
            &pg,
            &p,
            &[&format!("({action})"), "add `orders` to `writes`"],
        );
    }
    // A foreign key's check answers "is this key in that table": the other end must be
    // readable, whichever way the key points.
    let p = with_schema(
        &pg,
        "ALTER TABLE people ADD COLUMN secret int REFERENCES secrets(id);\n",
        &delete,
        PEOPLE_ONLY,
    );
    assert_refused(
        &pg,
        &p,
        &["links it to `secrets`", "add `secrets` to `reads`"],
    );
    let p = with_schema(
        &pg,
        "ALTER TABLE secrets ADD COLUMN who int REFERENCES people(id);\n",
        &delete,
        PEOPLE_ONLY,
    );
    assert_refused(
        &pg,
        &p,
        &["which keys `secrets` holds", "add `secrets` to `reads`"],
    );
    // Inheritance children are read and written through the parent on its grants alone.
    let p = with_schema(
        &pg,
        "CREATE TABLE hidden (note text) INHERITS (people);\n\
         INSERT INTO hidden VALUES (7, 'x', 'kept');\n",
        &delete,
        PEOPLE_ONLY,
    );
    assert_refused(
        &pg,
        &p,
        &["inheritance child `hidden`", "add `hidden` to `writes`"],
    );
    // Rules run as the table's owner.
    let p = with_schema(
        &pg,
        "CREATE RULE spill AS ON DELETE TO people DO ALSO DELETE FROM secrets;\n",
        &delete,
        PEOPLE_ONLY,
    );
    assert_refused(&pg, &p, &["rule `spill`"]);

    // Listed, the same cascade runs: the manifest now says what the component changes.
    let p = with_schema(
        &pg,
        "CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES people(id) \
         ON DELETE CASCADE);\nINSERT INTO orders VALUES (10, 1), (11, 2);\n\
         CREATE TABLE parts (id int, customer int) PARTITION BY RANGE (id);\n\
         CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100);\n\
         ALTER TABLE parts ADD FOREIGN KEY (customer) REFERENCES people(id) ON DELETE CASCADE;\n\
         INSERT INTO parts VALUES (1, 1), (2, 2);\n",
        &delete,
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"orders\", \"parts\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM orders) || ' ' || \
             (SELECT string_agg(id::text, ',' ORDER BY id) FROM parts)"
        ),
        ["11 2"]
    );
}

#[test]
fn a_component_reads_neither_the_clock_nor_randomness_on_sqlite() {
    use crate::components::{Entry, P, component};
    use crate::hostile::{assert_refused, project_with};
    let update = |set: &str| format!("UPDATE people SET nick = {set}");
    for (set, says) in [
        ("datetime('now')", "`datetime` given 'now'"),
        ("date()", "`date` without a time value"),
        ("time(' NOW ')", "`time` given 'now'"),
        ("julianday('now')", "`julianday` given 'now'"),
        ("unixepoch()", "`unixepoch` without a time value"),
        ("strftime('%s')", "`strftime` without a time value"),
        ("strftime('%Y', 'now')", "`strftime` given 'now'"),
        ("timediff('now', '2024-01-01')", "`timediff` given 'now'"),
        (
            "datetime('2024-01-01', 'localtime')",
            "the machine's time zone",
        ),
        ("date('2024-01-01', 'utc')", "the machine's time zone"),
        ("CURRENT_TIMESTAMP", "current_timestamp is not available"),
        ("current_date", "current_date is not available"),
        ("current_time", "current_time is not available"),
        (
            "random()",
            "random is not available to components: it reads randomness",
        ),
        ("hex(randomblob(8))", "randomblob is not available"),
    ] {
        let p = project_with(
            &component(Entry::Transform, &[Op::Execute(update(set), vec![])]),
            PEOPLE_ONLY,
        );
        assert_refused(&p, &[says]);
    }
    // Given as a parameter, 'now' is read the same way.
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute(update("date(?1)"), vec![P::Text("now".into())])],
        ),
        PEOPLE_ONLY,
    );
    assert_refused(&p, &["`date` given 'now'"]);
    // With a time value the functions compute as SQLite's own; after the component, the
    // step's checks and later steps have SQLite's own functions again.
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute(
                update("date('2024-01-31', '+1 day') || ' ' || strftime('%H', '2024-01-01 07:00')"),
                vec![],
            )],
        ),
        PEOPLE_ONLY,
    );
    p.write(
        "migrations/app/20240201T000000Z-hostile/checks.sql",
        "SELECT id FROM people WHERE date('now') < '2000-01-01';\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        crate::harness::rows(&p.open("app.db"), "SELECT DISTINCT nick FROM people"),
        ["2024-02-01 07"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_component_reads_neither_the_clock_nor_randomness_on_postgres() {
    use crate::components::P;
    let pg = Pg::new("clock");
    for (op, says) in [
        (
            Op::Execute("UPDATE people SET nick = now()::text".into(), vec![]),
            "may not use `now`: it reads the clock",
        ),
        (
            Op::Execute("UPDATE people SET nick = random()::text".into(), vec![]),
            "may not use `random`: it reads randomness",
        ),
        (
            Op::Execute("UPDATE people SET nick = current_date::text".into(), vec![]),
            "`CURRENT_DATE`",
        ),
        (
            Op::Execute(
                "UPDATE people SET nick = 'x' WHERE id = 1 AND 'now' > 'a'".into(),
                vec![],
            ),
            "the value 'now'",
        ),
        // A text parameter the server reads as a date.
        (
            Op::Execute(
                "UPDATE typed SET d = $1".into(),
                vec![P::Text(" Today".into())],
            ),
            "(a parameter of type date given as text)",
        ),
    ] {
        let p = project_with(&pg, &[op], "");
        assert_refused(&pg, &p, &[says]);
    }
}
