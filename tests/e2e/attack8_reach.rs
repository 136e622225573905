//! Findings of the outside test of session 8 on what a component reaches past its grants on
//! PostgreSQL: a deferrable trigger fires at COMMIT, after strata reset the role, so as the
//! migrating user; a user-defined cast runs on a plain `INSERT`; a `security_invoker` view reads
//! with the role's rights, and those include PUBLIC's; and a foreign key's referential action
//! runs, with the triggers, defaults and checks it fires, as the referencing table's owner.
//! Each is refused before the component runs, nothing changed; what only runs built-in code
//! (a cascade, a deferred key) still runs.

use crate::attack7_reach::pg_with;
use crate::postgres::Pg;
use crate::postgres_components::assert_refused;

/// A table in neither list, what the attacks of these tests empty, and a function of the
/// database's own (SECURITY INVOKER) that empties it.
const AUDIT: &str = "CREATE TABLE audit (x text); INSERT INTO audit VALUES ('kept');\n\
    CREATE FUNCTION wipe_tg() RETURNS trigger LANGUAGE plpgsql AS \
    $$BEGIN DELETE FROM public.audit; RETURN NULL; END$$;\n\
    CREATE FUNCTION wipe_int() RETURNS int LANGUAGE plpgsql AS \
    $$BEGIN DELETE FROM public.audit; RETURN 1; END$$;\n";

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_deferred_triggers_casts_and_public_grants_reach_no_further_than_the_lists() {
    let writes_tg = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"tg\"]\n";
    for (schema, sql, toml, expect) in [
        // Fires at COMMIT, as the migrating user.
        (
            "CREATE TABLE tg (k text);\n\
             CREATE CONSTRAINT TRIGGER dtr AFTER INSERT ON tg DEFERRABLE INITIALLY DEFERRED \
             FOR EACH ROW EXECUTE FUNCTION wipe_tg();",
            "INSERT INTO tg VALUES ('x')",
            writes_tg,
            vec![
                "`tg` (in `writes`): its deferrable trigger `dtr` runs `wipe_tg()`",
                "at COMMIT or SET CONSTRAINTS",
                "make the trigger NOT DEFERRABLE",
            ],
        ),
        // Initially immediate, but do.sql may have run SET CONSTRAINTS ALL DEFERRED.
        (
            "CREATE TABLE tg (k text);\n\
             CREATE CONSTRAINT TRIGGER itr AFTER INSERT ON tg DEFERRABLE INITIALLY IMMEDIATE \
             FOR EACH ROW EXECUTE FUNCTION wipe_tg();",
            "INSERT INTO tg VALUES ('x')",
            writes_tg,
            vec!["its deferrable trigger `itr` runs `wipe_tg()`"],
        ),
        // A deferrable unique constraint computes its index expression again at COMMIT.
        (
            "CREATE FUNCTION key_of(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \
             $$BEGIN RETURN t; END$$;\n\
             CREATE TABLE tg (k text);\n\
             ALTER TABLE tg ADD CONSTRAINT tg_u EXCLUDE USING btree (key_of(k) WITH =) \
             DEFERRABLE INITIALLY DEFERRED;",
            "INSERT INTO tg VALUES ('x')",
            writes_tg,
            vec![
                "`tg` (in `writes`): its deferrable constraint `tg_u` runs `key_of(text)`",
                "make the constraint NOT DEFERRABLE",
            ],
        ),
        // An assignment cast whose function is SECURITY DEFINER runs on a plain INSERT.
        (
            "CREATE TYPE mood AS ENUM ('ok', 'bad');\n\
             CREATE TABLE tg (m mood);\n\
             CREATE FUNCTION int_to_mood(i int) RETURNS mood LANGUAGE plpgsql SECURITY DEFINER \
             AS $$BEGIN DELETE FROM public.audit; RETURN 'ok'; END$$;\n\
             CREATE CAST (int AS mood) WITH FUNCTION int_to_mood(int) AS ASSIGNMENT;",
            "INSERT INTO tg (m) VALUES (1)",
            writes_tg,
            vec![
                "the cast from `integer` to `mood`",
                "runs `int_to_mood(integer)`, which runs as its owner",
                "make it SECURITY INVOKER",
            ],
        ),
        // An implicit cast from the type of a column of `reads` runs in a comparison.
        (
            "CREATE TYPE mood AS ENUM ('ok', 'bad');\n\
             CREATE TABLE tg (m mood);\n\
             CREATE FUNCTION mood_text(m mood) RETURNS text LANGUAGE plpgsql SECURITY DEFINER \
             AS $$BEGIN DELETE FROM public.audit; RETURN m::text; END$$;\n\
             CREATE CAST (mood AS text) WITH FUNCTION mood_text(mood) AS IMPLICIT;",
            "UPDATE people SET nick = (SELECT count(*) FROM tg WHERE m = 'ok'::text)::text",
            "[sandbox]\nreads = [\"people\", \"tg\"]\nwrites = [\"people\"]\n",
            vec!["the cast from `mood` to `text`", "runs `mood_text(mood)`"],
        ),
        // A security_invoker view reads with the role's rights, and the role inherits
        // PUBLIC's.
        (
            "CREATE TABLE secret (s text); INSERT INTO secret VALUES ('s3cr3t');\n\
             GRANT SELECT ON secret TO PUBLIC;\n\
             CREATE VIEW sv WITH (security_invoker = true) AS SELECT s FROM secret;",
            "UPDATE people SET nick = (SELECT s FROM sv)",
            "[sandbox]\nreads = [\"people\", \"sv\"]\nwrites = [\"people\"]\n",
            vec![
                "`sv` (in `reads`): the view reaches `secret`, outside the lists",
                "add `secret` to `reads`",
            ],
        ),
        // So does a row security policy's subquery.
        (
            "CREATE TABLE secret (s text); GRANT SELECT ON secret TO PUBLIC;\n\
             CREATE TABLE tg (k text); ALTER TABLE tg ENABLE ROW LEVEL SECURITY;\n\
             CREATE POLICY pp ON tg USING (k IN (SELECT s FROM secret));",
            "UPDATE people SET nick = (SELECT count(*) FROM tg)::text",
            "[sandbox]\nreads = [\"people\", \"tg\"]\nwrites = [\"people\"]\n",
            vec![
                "`tg` (in `reads`): its row security policy `pp` reads `secret`, outside the lists",
                "add `secret` to `reads`",
            ],
        ),
        // A function of the database's own runs as the role, which may use what PUBLIC holds.
        (
            "GRANT SELECT, DELETE ON audit TO PUBLIC;\n\
             CREATE TABLE tg (k text);\n\
             CREATE TRIGGER tr AFTER INSERT ON tg FOR EACH ROW EXECUTE FUNCTION wipe_tg();",
            "INSERT INTO tg VALUES ('x')",
            writes_tg,
            vec![
                "its trigger `tr` runs `wipe_tg()`",
                "which inherits what PUBLIC is granted: it may use `audit`",
                "REVOKE ALL ON audit FROM PUBLIC",
            ],
        ),
    ] {
        let pg = Pg::new("fix8a_deferred");
        let p = pg_with(&pg, &format!("{AUDIT}{schema}"), sql, toml);
        let mut expect = expect;
        expect.push("migration.toml");
        assert_refused(&pg, &p, &expect);
        // do.sql went with the step: the audit table it made is not there, so not emptied.
        assert_eq!(pg.rows(false, "SELECT to_regclass('audit')"), ["NULL"]);
    }
}

/// cust (one row) and its referencing tables are in `writes`.
const WRITES_CUST: &str =
    "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"cust\", \"ord\", \"line\"]\n";

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_what_a_referential_action_fires_may_run_no_function_of_the_database() {
    let cust = "CREATE TABLE cust (id int PRIMARY KEY); INSERT INTO cust VALUES (1);\n\
                CREATE TABLE line (id int);\n";
    for (schema, expect) in [
        (
            "CREATE TABLE ord (id int, cust_id int REFERENCES cust ON DELETE CASCADE);\n\
             INSERT INTO ord VALUES (1, 1);\n\
             CREATE TRIGGER otr BEFORE DELETE ON ord FOR EACH ROW EXECUTE FUNCTION wipe_tg();",
            vec![
                "`ord` (changed by foreign key `ord_cust_id_fkey` of `ord` (ON DELETE CASCADE) \
                 from `cust`",
                "its trigger `otr` runs `wipe_tg()`, a function of the database's own, as the \
                 owner of the table",
                "make the foreign key NO ACTION and have the component change `ord` itself",
            ],
        ),
        (
            "CREATE TABLE ord (id int, cust_id int DEFAULT wipe_int() \
             REFERENCES cust ON DELETE SET DEFAULT);\n\
             INSERT INTO ord VALUES (1, 1);",
            vec!["the default or generated value of column `cust_id` runs `wipe_int()`"],
        ),
        (
            "CREATE TABLE ord (id int, cust_id int REFERENCES cust ON DELETE SET NULL \
             CONSTRAINT ord_c CHECK (cust_id IS NOT NULL OR wipe_int() = 1));\n\
             INSERT INTO ord VALUES (1, 1);",
            vec![
                "(ON DELETE SET NULL)",
                "its constraint `ord_c` runs `wipe_int()`",
            ],
        ),
        // Two actions deep, into a partitioned table whose trigger its partitions carry.
        (
            "CREATE TABLE ord (id int PRIMARY KEY, cust_id int REFERENCES cust ON DELETE CASCADE);\n\
             INSERT INTO ord VALUES (1, 1);\n\
             DROP TABLE line;\n\
             CREATE TABLE line (ord_id int REFERENCES ord ON DELETE CASCADE) \
             PARTITION BY RANGE (ord_id);\n\
             CREATE TABLE line_1 PARTITION OF line FOR VALUES FROM (0) TO (100);\n\
             INSERT INTO line VALUES (1);\n\
             CREATE TRIGGER ltr BEFORE DELETE ON line FOR EACH ROW EXECUTE FUNCTION wipe_tg();",
            vec![
                "`line_1` (changed by foreign key",
                "from `ord`",
                "its trigger `ltr` runs `wipe_tg()`",
            ],
        ),
        // A trigger's WHEN condition runs with it.
        (
            "CREATE TABLE ord (id int, cust_id int REFERENCES cust ON DELETE CASCADE);\n\
             INSERT INTO ord VALUES (1, 1);\n\
             CREATE TRIGGER wtr AFTER DELETE ON ord FOR EACH ROW WHEN (wipe_int() = 1) \
             EXECUTE FUNCTION suppress_redundant_updates_trigger();",
            vec!["its trigger `wtr` runs `wipe_int()`"],
        ),
        // The check of a domain of the changed column.
        (
            "CREATE DOMAIN cref AS int CHECK (VALUE IS NOT NULL OR wipe_int() = 1);\n\
             CREATE TABLE ord (id int, cust_id cref REFERENCES cust ON UPDATE SET NULL);\n\
             INSERT INTO ord VALUES (1, 1);",
            vec![
                "`cref` (a type of a column of a table a referential action changes)",
                "runs `wipe_int()`",
            ],
        ),
    ] {
        let pg = Pg::new("fix8a_cascade");
        let p = pg_with(
            &pg,
            &format!("{AUDIT}{cust}{schema}"),
            "DELETE FROM cust WHERE id = 1",
            WRITES_CUST,
        );
        let mut expect = expect;
        expect.push("migration.toml");
        assert_refused(&pg, &p, &expect);
        assert_eq!(pg.rows(false, "SELECT to_regclass('cust')"), ["NULL"]);
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_a_cascade_of_built_in_behaviour_and_a_deferred_key_still_run() {
    let pg = Pg::new("fix8a_legit");
    let p = pg_with(
        &pg,
        "CREATE TABLE cust (id int PRIMARY KEY); INSERT INTO cust VALUES (1), (2);\n\
         CREATE TABLE ord (id serial PRIMARY KEY, \
         cust_id int REFERENCES cust ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, \
         note text DEFAULT 'n' CHECK (length(note) < 10));\n\
         CREATE INDEX ord_note ON ord (lower(note));\n\
         CREATE TRIGGER same BEFORE UPDATE ON ord FOR EACH ROW \
         EXECUTE FUNCTION suppress_redundant_updates_trigger();\n\
         CREATE TABLE line (ord_id int REFERENCES ord ON DELETE SET NULL \
         DEFERRABLE INITIALLY DEFERRED, qty int DEFAULT 1);\n\
         INSERT INTO ord (cust_id) VALUES (1), (1), (2);\n\
         INSERT INTO line VALUES (1), (3);",
        "DELETE FROM cust WHERE id = 1",
        WRITES_CUST,
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        pg.rows(
            false,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM cust"
        ),
        ["2"]
    );
    assert_eq!(
        pg.rows(false, "SELECT string_agg(cust_id::text, ',') FROM ord"),
        ["2"]
    );
    assert_eq!(
        pg.rows(
            false,
            "SELECT string_agg(coalesce(ord_id::text, 'null'), ',' ORDER BY ord_id) FROM line"
        ),
        ["3,null"]
    );
}
