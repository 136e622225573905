//! The eighth outside test's findings on what strata takes in: a column named `rowid` that
//! hid a table's rowid from the random rowid guard, a component file read whole before the
//! compile bound refused it, and the machine's PostgreSQL password offered to hosts the
//! environment does not name.

use crate::components::{Entry, Op, component};
use crate::harness::rows;
use crate::hostile::{assert_refused, project_with};

const HOSTILE_DO: &str = "migrations/app/20240201T000000Z-hostile/do.sql";
const R_ONLY: &str = "[sandbox]\nreads = [\"people\", \"r\"]\nwrites = [\"people\", \"r\"]\n";

#[test]
fn the_random_rowid_guard_reads_the_rowid_whatever_the_columns_are_called() {
    let max = i64::MAX;
    let insert = component(
        Entry::Transform,
        &[Op::Execute(
            "INSERT INTO r(v) VALUES ('drawn')".into(),
            vec![],
        )],
    );
    // A column takes one or two of the rowid's names (any letter case): the rowid is read
    // through the third, and the insert is refused.
    for (columns, set) in [
        ("rowid INTEGER, v TEXT", "_rowid_"),
        ("\"ROWID\" INTEGER, _Rowid_ INTEGER, v TEXT", "oid"),
        ("oid INTEGER, rowid INTEGER, v TEXT", "_rowid_"),
        ("id INTEGER PRIMARY KEY, rowid INTEGER, v TEXT", "id"),
    ] {
        let p = project_with(&insert, R_ONLY);
        p.write(
            HOSTILE_DO,
            &format!(
                "CREATE TABLE r({columns});\nINSERT INTO r({set}, v) VALUES ({max}, 'last');\n"
            ),
        );
        assert_refused(&p, &["inserting into `r`", "random rowid"]);
    }
    // All three names taken: the rowid cannot be read, so the insert is refused, saying how
    // to fix it.
    let p = project_with(&insert, R_ONLY);
    p.write(
        HOSTILE_DO,
        "CREATE TABLE r(rowid INTEGER, _rowid_ INTEGER, OID INTEGER, v TEXT);\n",
    );
    assert_refused(
        &p,
        &[
            "inserting into `r`",
            "`rowid`, `_rowid_` and `oid`",
            "rename one of those columns",
        ],
    );
    // A column named rowid below the largest rowid, an INTEGER PRIMARY KEY and a table
    // WITHOUT ROWID all take the insert.
    for create in [
        "CREATE TABLE r(rowid INTEGER, v TEXT);\nINSERT INTO r(rowid, v) VALUES (9223372036854775807, 'c');",
        "CREATE TABLE r(id INTEGER PRIMARY KEY, rowid INTEGER, v TEXT);",
        "CREATE TABLE r(v TEXT PRIMARY KEY, rowid INTEGER, oid INTEGER, _rowid_ INTEGER) WITHOUT ROWID;",
    ] {
        let p = project_with(&insert, R_ONLY);
        p.write(HOSTILE_DO, &format!("{create}\n"));
        p.strata(&["migrate", "-q"]).ok();
        assert_eq!(
            rows(
                &p.open("app.db"),
                "SELECT count(*) FROM r WHERE v = 'drawn'"
            ),
            ["1"],
            "{create}"
        );
    }
}

#[test]
fn a_component_file_too_large_is_refused_from_its_size_before_it_is_read() {
    let p = project_with(&component(Entry::Transform, &[]), R_ONLY);
    let wasm = p.path("migrations/app/20240201T000000Z-hostile/transform.wasm");
    // Sparse: 300 MiB on no disk, the header of a component and zeros.
    std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&wasm)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    std::fs::create_dir_all(p.path("tenants")).unwrap();
    std::fs::write(p.path("tenants/a.db"), b"").unwrap();
    for args in [
        &["migrate"][..],
        &["status"],
        &["plan"],
        &["sandbox"],
        &["fleet", "migrate", "--targets", "tenants/*.db"],
    ] {
        p.strata(args)
            .code(2)
            .stderr_has("transform.wasm")
            .stderr_has("the file is too large: 300 MiB")
            .stderr_has("migration 20240201T000000Z-hostile")
            .stderr_has("at most 256 MiB");
    }
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'nick'"
        ),
        ["0"],
        "the step did not run"
    );
}
