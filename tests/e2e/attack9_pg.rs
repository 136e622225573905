//! Findings of the outside test of session 9 on the PostgreSQL component sandbox: PostgreSQL
//! computes a written table's index expressions and predicates and its expression statistics
//! again after the step, as the table's owner (ANALYZE, autovacuum's too, REINDEX, CLUSTER,
//! VACUUM FULL), so a function of the database's own there ran as the migrating user over the
//! component's rows; and `nextval('schema.seq')` names its sequence in a string, so a
//! component drew from (and learned the row count of) a sequence PUBLIC may use, of a table in
//! neither list. Each is refused before the component runs, nothing changed; a component
//! drawing from its own written table's sequence still runs.

use crate::attack7_reach::pg_with;
use crate::postgres::Pg;
use crate::postgres_components::assert_refused;

/// A table in neither list, and a plain (SECURITY INVOKER) function of the database's own that
/// empties it, declared IMMUTABLE so that an index may use it.
const AUDIT: &str = "CREATE TABLE audit (x text); INSERT INTO audit VALUES ('kept');\n\
    CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \
    $$BEGIN DELETE FROM public.audit; RETURN lower(t); END$$;\n";

const WRITES_TG: &str = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"tg\"]\n";

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_what_analyze_computes_again_as_the_owner_runs_no_function_of_the_database() {
    for (schema, expect) in [
        (
            "CREATE INDEX tg_norm ON tg (norm(k));",
            vec![
                "`tg` (in `writes`): the expression or predicate of its index `tg_norm` runs \
                 `norm(text)`, a function of the database's own, after the step, as the table's \
                 owner",
                "index built-in functions only on tables a component writes",
            ],
        ),
        (
            "CREATE INDEX tg_part ON tg (k) WHERE norm(k) = 'x';",
            vec!["the expression or predicate of its index `tg_part` runs `norm(text)`"],
        ),
        (
            "CREATE STATISTICS tg_stat ON (norm(k)) FROM tg;",
            vec![
                "`tg` (in `writes`): its extended statistics `tg_stat` runs `norm(text)`",
                "computes the statistics again",
            ],
        ),
    ] {
        let pg = Pg::new("fix9c_analyze");
        let p = pg_with(
            &pg,
            &format!("{AUDIT}CREATE TABLE tg (k text);\n{schema}"),
            "INSERT INTO tg VALUES ('x')",
            WRITES_TG,
        );
        let mut expect = expect;
        expect.push("migration.toml");
        assert_refused(&pg, &p, &expect);
        // do.sql went with the step: the audit table it made is not there, so not emptied.
        assert_eq!(pg.rows(false, "SELECT to_regclass('audit')"), ["NULL"]);
    }
}

/// `orders` (in neither list, three rows) numbered by a sequence PUBLIC may use.
const ORDERS: &str = "CREATE TABLE orders (id serial PRIMARY KEY, v text);\n\
    INSERT INTO orders (v) VALUES ('a'), ('b'), ('c');\n\
    GRANT USAGE, SELECT ON SEQUENCE orders_id_seq TO PUBLIC;\n";

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_sequences_outside_the_lists_are_neither_drawn_nor_read() {
    let not_ours = "only with a constant naming a sequence owned by a table of `writes`";
    for (sql, expect) in [
        (
            "UPDATE people SET nick = nextval('public.orders_id_seq')::text",
            vec![
                not_ours,
                "`public.orders_id_seq` is not a sequence of a table of `writes`",
            ],
        ),
        (
            "UPDATE people SET nick = currval('orders_id_seq'::regclass)::text",
            vec![not_ours],
        ),
        (
            "UPDATE people SET nick = nextval(nick)::text",
            vec![not_ours, "its argument is not a constant"],
        ),
        (
            "UPDATE people SET nick = (SELECT last_value FROM orders_id_seq)::text",
            vec!["orders_id_seq"],
        ),
        (
            "UPDATE people SET nick = lastval()::text",
            vec!["`lastval`"],
        ),
    ] {
        let pg = Pg::new("fix9c_nextval");
        let p = pg_with(&pg, ORDERS, sql, "[sandbox]\nwrites = [\"people\"]\n");
        let mut expect = expect;
        expect.push("migration.toml");
        assert_refused(&pg, &p, &expect);
        // do.sql went with the step, its sequence too.
        assert_eq!(pg.rows(false, "SELECT to_regclass('orders')"), ["NULL"]);
    }
    // A function of the database's own that a written table fires could draw from it too.
    let pg = Pg::new("fix9c_public_seq");
    let p = pg_with(
        &pg,
        &format!(
            "{ORDERS}CREATE FUNCTION draw() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN PERFORM nextval('public.orders_id_seq'); RETURN NEW; END$$;\n\
         CREATE TABLE tg (k text);\n\
         CREATE TRIGGER tr BEFORE INSERT ON tg FOR EACH ROW EXECUTE FUNCTION draw();"
        ),
        "INSERT INTO tg VALUES ('x')",
        WRITES_TG,
    );
    assert_refused(
        &pg,
        &p,
        &[
            "its trigger `tr` runs `draw()`",
            "it may use `orders_id_seq` (granted to PUBLIC, outside the lists)",
        ],
    );
    assert_eq!(pg.rows(false, "SELECT to_regclass('orders')"), ["NULL"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_a_component_draws_from_its_own_tables_sequence_and_indexes_built_in_expressions() {
    let pg = Pg::new("fix9c_own_seq");
    let p = pg_with(
        &pg,
        &format!(
            "{ORDERS}CREATE TABLE tk (id serial PRIMARY KEY, n bigint, k text);\n\
         CREATE INDEX tk_lower ON tk (lower(k)) WHERE n > 0;\n\
         CREATE STATISTICS tk_stat ON (abs(n)) FROM tk;"
        ),
        "INSERT INTO tk (n, k) VALUES (nextval('tk_id_seq') + 100, 'A'), \
         (currval('public.tk_id_seq') + 100, 'B')",
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"tk\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT count(*)::text || ':' || count(DISTINCT n)::text || ':' \
             || (min(n) > 100)::text FROM tk"
        ),
        ["2:2:true"]
    );
    assert_eq!(
        pg.rows(false, "SELECT last_value::text FROM orders_id_seq"),
        ["3"]
    );
}
