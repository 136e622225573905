//! Findings of the outside test of session 7 on what a component's grants mean: on
//! PostgreSQL, functions a statement fires that run as another role (`SECURITY DEFINER`
//! triggers, defaults, domain checks, ...) and partitions listed one by one; on both backends,
//! `reads` without `writes` (no writes) and check components (read-only); and a PostgreSQL
//! baseline of what `CREATE TYPE`/`CREATE TABLE` make by themselves.

use crate::components::{Entry, Op, component};
use crate::postgres::{Pg, project};
use crate::postgres_components::{HOSTILE, assert_refused, project_with};

/// `pg`'s project whose pending step's do.sql adds `schema` and whose component runs `sql`.
pub(crate) fn pg_with(pg: &Pg, schema: &str, sql: &str, toml: &str) -> crate::harness::Project {
    let p = project_with(pg, &[Op::Execute(sql.into(), vec![])], toml);
    p.write(
        &format!("{HOSTILE}/do.sql"),
        &format!("ALTER TABLE people ADD COLUMN nick text;\n{schema}\n"),
    );
    p
}

const AUDIT: &str = "CREATE TABLE audit (x text); INSERT INTO audit VALUES ('kept');\n\
    CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS \
    $$BEGIN DELETE FROM public.audit; RETURN 1; END$$;\n";

const WRITES_TG: &str = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"tg\"]\n";

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_functions_a_write_fires_may_not_run_as_another_role() {
    let pg = Pg::new("fix7a_definer");
    let insert = "INSERT INTO tg (k) VALUES ('x')";
    for (schema, expect) in [
        (
            "CREATE FUNCTION tgf() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS \
             $$BEGIN PERFORM public.wipe(); RETURN NEW; END$$;\n\
             CREATE TABLE tg (k text);\n\
             CREATE TRIGGER tgr BEFORE INSERT ON tg FOR EACH ROW EXECUTE FUNCTION tgf();",
            "`tg` (in `writes`): its trigger `tgr` runs `tgf()`",
        ),
        (
            "CREATE TABLE tg (k text, n int DEFAULT public.wipe());",
            "the default or generated value of column `n` runs `wipe()`",
        ),
        (
            "CREATE DOMAIN stamped AS int CHECK (public.wipe() = 1);\n\
             CREATE TABLE tg (k text, n stamped);",
            "`stamped` (a type of a column in `writes`): its constraint",
        ),
        (
            "CREATE TABLE tg (k text CHECK (public.wipe() = 1));",
            "`tg` (in `writes`): its constraint `tg_check` runs `wipe()`",
        ),
        (
            "CREATE TABLE tg (k text);\nALTER TABLE tg ENABLE ROW LEVEL SECURITY;\n\
             CREATE POLICY p ON tg USING (public.wipe() = 1);",
            "its row security policy `p` runs `wipe()`",
        ),
        // Through a function of the database's own that is not SECURITY DEFINER itself: its
        // body may call one every role may execute.
        (
            "CREATE FUNCTION tgf() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN PERFORM public.wipe(); RETURN NEW; END$$;\n\
             CREATE TABLE tg (k text);\n\
             CREATE TRIGGER tgr BEFORE INSERT ON tg FOR EACH ROW EXECUTE FUNCTION tgf();",
            "which may call `wipe()`",
        ),
    ] {
        let p = pg_with(&pg, &format!("{AUDIT}{schema}"), insert, WRITES_TG);
        assert_refused(&pg, &p, &[expect, "migration.toml"]);
    }
    // A trigger function of the database's own runs as the component when nothing it could
    // call runs as another role for every role.
    let pg = Pg::new("fix7a_definer");
    let p = pg_with(
        &pg,
        &format!(
            "{AUDIT}REVOKE EXECUTE ON FUNCTION wipe() FROM PUBLIC;\n\
             CREATE FUNCTION tgf() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN NEW.k := upper(NEW.k); RETURN NEW; END$$;\n\
             CREATE TABLE tg (k text);\n\
             CREATE TRIGGER tgr BEFORE INSERT ON tg FOR EACH ROW EXECUTE FUNCTION tgf();"
        ),
        insert,
        WRITES_TG,
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(pg.rows(false, "SELECT k FROM tg"), ["X"]);
    assert_eq!(pg.rows(false, "SELECT x FROM audit"), ["kept"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_a_listed_partition_covers_neither_its_siblings_nor_its_parent() {
    let schema = "CREATE TABLE cust (id int PRIMARY KEY); INSERT INTO cust VALUES (1);\n\
        CREATE TABLE orders_part (id int, region text, c int REFERENCES cust (id) ON DELETE CASCADE) \
        PARTITION BY LIST (region);\n\
        CREATE TABLE orders_p1 PARTITION OF orders_part FOR VALUES IN ('eu');\n\
        CREATE TABLE orders_p2 PARTITION OF orders_part FOR VALUES IN ('us');\n\
        INSERT INTO orders_part VALUES (1, 'us', 1);";
    let delete = "DELETE FROM cust WHERE id = 1";
    let pg = Pg::new("fix7a_partitions");
    let p = pg_with(
        &pg,
        schema,
        delete,
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"cust\", \"orders_p1\"]\n",
    );
    assert_refused(
        &pg,
        &p,
        &[
            "runs foreign key `orders_part_c_fkey`",
            "add `orders_p2` to `writes`",
        ],
    );
    // The partitioned table covers its partitions.
    let pg = Pg::new("fix7a_partitions");
    let p = pg_with(
        &pg,
        schema,
        delete,
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"cust\", \"orders_part\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(pg.rows(false, "SELECT count(*) FROM orders_part"), ["0"]);
}

#[test]
fn sqlite_reads_without_writes_grants_no_writes() {
    use crate::hostile::{assert_refused, project_with};
    for sql in ["UPDATE secrets SET v = 'gone'", "DELETE FROM people"] {
        let p = project_with(
            &component(Entry::Transform, &[Op::Execute(sql.into(), vec![])]),
            "[sandbox]\nreads = [\"people\"]\n",
        );
        assert_refused(&p, &["is not allowed: this component writes nothing"]);
    }
    // `writes` alone still writes what it lists.
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute("UPDATE people SET nick = name".into(), vec![])],
        ),
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    p.strata(&["migrate", "-q"]).ok();
}

#[test]
fn sqlite_check_components_only_read_whatever_the_manifest_grants() {
    use crate::hostile::project_with;
    for sql in ["UPDATE people SET name = 'x'", "DELETE FROM secrets"] {
        let p = project_with(
            &component(Entry::Transform, &[]),
            "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\", \"secrets\"]\n",
        );
        std::fs::remove_file(p.path(&format!("{HOSTILE}/transform.wasm"))).unwrap();
        std::fs::write(
            p.path(&format!("{HOSTILE}/check.wasm")),
            component(Entry::Check, &[Op::Execute(sql.into(), vec![])]),
        )
        .unwrap();
        p.strata(&["migrate"])
            .code(1)
            .stderr_has("check.wasm")
            .stderr_has("this component writes nothing");
        assert_eq!(
            crate::harness::rows(
                &p.open("app.db"),
                "SELECT count(*) FROM secrets WHERE v = 's3cr3t'"
            ),
            ["1"]
        );
    }
    // A check that reads runs.
    let p = project_with(
        &component(Entry::Transform, &[]),
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    std::fs::write(
        p.path(&format!("{HOSTILE}/check.wasm")),
        component(
            Entry::Check,
            &[Op::Query("SELECT count(*) FROM secrets".into())],
        ),
    )
    .unwrap();
    p.strata(&["migrate", "-q"]).ok();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_check_components_only_read_whatever_the_manifest_grants() {
    let pg = Pg::new("fix7a_checks");
    let p = project_with(
        &pg,
        &[],
        "[sandbox]\nreads = [\"people\"]\nwrites = [\"secrets\"]\n",
    );
    std::fs::write(
        p.path(&format!("{HOSTILE}/check.wasm")),
        component(
            Entry::Check,
            &[Op::Execute("DELETE FROM secrets".into(), vec![])],
        ),
    )
    .unwrap();
    p.strata(&["migrate"])
        .code(1)
        .stderr_has("check.wasm")
        .stderr_has("may not write (or lock) `public.secrets`");
    assert_eq!(pg.rows(false, "SELECT count(*) FROM secrets"), ["1"]);
    assert_eq!(pg.rows(true, "SELECT count(*) FROM secrets"), ["1"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_reads_without_writes_grants_no_writes() {
    let pg = Pg::new("fix7a_reads_only");
    let p = project_with(
        &pg,
        &[Op::Execute("DELETE FROM secrets".into(), vec![])],
        "[sandbox]\nreads = [\"people\"]\n",
    );
    assert_refused(&pg, &p, &["`public.secrets`"]);
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn postgres_baseline_leaves_out_what_postgres_makes_by_itself_and_replays_from_zero() {
    let pg = Pg::new("fix7a_baseline");
    pg.client(false)
        .batch_execute(
            "CREATE TYPE fr AS RANGE (subtype = float8);
             CREATE TYPE pair AS (a int, b text);
             CREATE TYPE mood AS ENUM ('ok', 'sad');
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);
             CREATE TABLE spans (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 n serial, r fr, rs fr_multirange, p pair, m mood, v positive, a fr[]);
             INSERT INTO spans (r, p, m, v) VALUES ('[1,2)', ROW(1, 'x'), 'ok', 3);",
        )
        .unwrap();
    let p = project(&pg);
    p.write("migrations/.keep", "");
    p.strata(&["baseline", "app"]).ok();
    let zero = std::fs::read_dir(p.path("migrations/app"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.to_string_lossy().ends_with("-zero"))
        .expect("the zero migration");
    let sql = std::fs::read_to_string(zero.join("do.sql")).unwrap();
    assert!(sql.contains("CREATE TYPE public.fr AS RANGE"), "{sql}");
    for implicit in ["LANGUAGE internal", "FUNCTION public.fr", "spans_n_seq\n"] {
        assert!(!sql.contains(implicit), "{implicit} in {sql}");
    }
    p.strata(&["sandbox"]).ok();
    p.strata(&["diff"])
        .ok()
        .stdout_has("app: no changes against");
}
