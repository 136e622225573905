//! The seventh outside test's SQLite findings: the clock read through what SQLite's date
//! parser reads (to the first NUL), randomness through rowids, a schema's `DEFAULT
//! CURRENT_TIMESTAMP` refused as if the component wrote it, the date functions left
//! deterministic after a component, and SQL changed on its way into a pipe.

use crate::components::{Entry, Op, P, component};
use crate::harness::{Project, rows};
use crate::hostile::{assert_refused, project_with};
use crate::postgres_components::PEOPLE_ONLY;

const HOSTILE_DO: &str = "migrations/app/20240201T000000Z-hostile/do.sql";

fn executing(sql: &str) -> Vec<u8> {
    component(Entry::Transform, &[Op::Execute(sql.into(), vec![])])
}

#[test]
fn a_date_argument_is_judged_as_sqlites_parser_reads_it() {
    let update = |set: &str| format!("UPDATE people SET nick = {set}");
    for (set, says) in [
        ("datetime('now' || char(0))", "`datetime` given 'now'"),
        (
            "strftime('%s', 'NOW' || char(0) || 'garbage')",
            "`strftime` given 'now'",
        ),
        ("date(CAST(x'6e6f7700' AS TEXT))", "`date` given 'now'"),
        ("date(x'6e6f7700')", "`date` given 'now'"),
        ("datetime('subsec')", "`datetime` given 'subsec'"),
        ("julianday(' SubSecond ')", "`julianday` given 'subsecond'"),
        (
            "timediff('2024-01-01', 'now' || char(0))",
            "`timediff` given 'now'",
        ),
        (
            "datetime('2020-01-01 00:00', 'localtime' || char(0))",
            "the machine's time zone",
        ),
        (
            "time('12:00', '+1 hour', 'UTC' || char(0) || 'x')",
            "the machine's time zone",
        ),
    ] {
        let p = project_with(&executing(&update(set)), PEOPLE_ONLY);
        assert_refused(&p, &[says]);
    }
    // A parameter is read the same way.
    let p = project_with(
        &component(
            Entry::Transform,
            &[Op::Execute(
                update("datetime('2024-01-01', ?1)"),
                vec![P::Text("localtime\0".into())],
            )],
        ),
        PEOPLE_ONLY,
    );
    assert_refused(&p, &["the machine's time zone"]);
    // Modifiers that read neither pass and compute as SQLite's own.
    let p = project_with(
        &executing(&update(
            "datetime(0, 'unixepoch', 'subsec') || ' ' || datetime(1700000000, 'auto')",
        )),
        PEOPLE_ONLY,
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT DISTINCT nick FROM people"),
        ["1970-01-01 00:00:00.000 2023-11-14 22:13:20"]
    );
}

#[test]
fn a_component_never_sees_sqlites_random_rowids() {
    let max = i64::MAX;
    // The table already holds the largest rowid: a row without one would get a random one.
    let p = project_with(
        &executing("INSERT INTO people(name) VALUES ('x')"),
        PEOPLE_ONLY,
    );
    p.write(
        HOSTILE_DO,
        &format!("ALTER TABLE people ADD COLUMN nick TEXT;\nINSERT INTO people VALUES ({max}, 'max', NULL);\n"),
    );
    assert_refused(
        &p,
        &[
            "inserting into `people`",
            "holds rowid 9223372036854775807",
            "random rowid",
        ],
    );
    // The component puts it there itself and inserts again, in one statement or two, and
    // through a query that returns the rowid: refused before the rows reach it.
    for ops in [
        vec![Op::Execute(
            format!("INSERT INTO people(id, name) VALUES ({max}, 'a'), (NULL, 'b')"),
            vec![],
        )],
        vec![
            Op::Execute(
                format!("INSERT INTO people(id, name) VALUES ({max}, 'a')"),
                vec![],
            ),
            Op::Query("INSERT INTO people(name) VALUES ('b') RETURNING id".into()),
        ],
        vec![
            Op::Execute(format!("UPDATE people SET id = {max} WHERE id = 3"), vec![]),
            Op::Cursor {
                sql: "INSERT INTO people(name) VALUES ('b') RETURNING id".into(),
                max: 10,
                calls: 1,
            },
        ],
    ] {
        let p = project_with(&component(Entry::Transform, &ops), PEOPLE_ONLY);
        assert_refused(&p, &["inserting into `people`", "random rowid"]);
    }
    // The largest rowid alone, and inserts below it, are fine.
    let p = project_with(
        &executing(&format!("INSERT INTO people(id, name) VALUES ({max}, 'a')")),
        PEOPLE_ONLY,
    );
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT max(id) FROM people"),
        [max.to_string()]
    );
}

#[test]
fn a_schema_default_of_the_clock_is_the_schemas_not_the_components() {
    let toml = "[sandbox]\nreads = [\"people\", \"d\"]\nwrites = [\"people\", \"d\"]\n";
    let schema = "ALTER TABLE people ADD COLUMN nick TEXT;\n\
         CREATE TABLE d(k TEXT, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         r INTEGER DEFAULT (random()));\n\
         INSERT INTO d(k, created_at) VALUES ('a', '2024-01-01 00:00:00');\n\
         CREATE VIEW d_now AS SELECT k, CURRENT_TIMESTAMP AS t FROM d;\n";
    // Reading the column, updating others and inserting with the default all work (the
    // default fills the column, as PostgreSQL's DEFAULT now() does).
    let p = project_with(
        &component(
            Entry::Transform,
            &[
                Op::Query("SELECT k, created_at FROM d".into()),
                Op::Execute("UPDATE d SET k = 'b'".into(), vec![]),
                Op::Execute("INSERT INTO d(k) VALUES ('c')".into(), vec![]),
            ],
        ),
        toml,
    );
    p.write(HOSTILE_DO, schema);
    p.strata(&["migrate", "-q"]).ok();
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT k, created_at > '2024-01-02', r IS NOT NULL FROM d ORDER BY k"
        ),
        ["b|0|1", "c|1|1"]
    );
    // The same keywords written by the component, in any spelling, or in a view it reads,
    // are still refused.
    let toml_view =
        "[sandbox]\nreads = [\"people\", \"d\", \"d_now\"]\nwrites = [\"people\", \"d\"]\n";
    for (sql, says) in [
        (
            "INSERT INTO d(k, created_at) VALUES ('x', CURRENT_TIMESTAMP)",
            "current_timestamp is not available",
        ),
        (
            "UPDATE d SET created_at = Current_Date",
            "current_date is not available",
        ),
        ("UPDATE d SET r = [RANDOM]()", "random is not available"),
        (
            "UPDATE d SET k = (SELECT max(t) FROM d_now)",
            "current_timestamp is not available",
        ),
    ] {
        let p = project_with(&executing(sql), toml_view);
        p.write(HOSTILE_DO, schema);
        assert_refused(&p, &[says]);
    }
    // A default the component defines itself is not the schema's.
    let toml_x = "[sandbox]\nreads = [\"people\", \"x\"]\nwrites = [\"people\", \"x\"]\n";
    for sql in [
        "CREATE TABLE x(a TEXT, t TEXT DEFAULT CURRENT_TIMESTAMP)",
        "CREATE TABLE x(a TEXT, r INTEGER DEFAULT (\"random\"()))",
    ] {
        let p = project_with(
            &component(
                Entry::Transform,
                &[
                    Op::Execute(sql.into(), vec![]),
                    Op::Execute("INSERT INTO x(a) VALUES ('a')".into(), vec![]),
                ],
            ),
            toml_x,
        );
        assert_refused(
            &p,
            &["defining table `x` with", "only the reviewed schema's"],
        );
    }
}

#[test]
fn after_a_component_julianday_now_stays_out_of_indexes() {
    // The attack's shape: an index on julianday('now') and a stored generated column of
    // datetime('now') in a do.sql after a component step are refused as SQLite's own do.
    let p = project_with(&executing("UPDATE people SET nick = name"), PEOPLE_ONLY);
    p.write(
        "migrations/app/20240301T000000Z-later/do.sql",
        "CREATE INDEX ix ON people(nick, julianday('now'));\n",
    );
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of julianday() in an index");
    let p = project_with(&executing("UPDATE people SET nick = name"), PEOPLE_ONLY);
    p.write(
        "migrations/app/20240301T000000Z-later/do.sql",
        "CREATE TABLE g(a TEXT, d TEXT GENERATED ALWAYS AS (datetime('now')) STORED);\n\
         INSERT INTO g(a) VALUES ('x');\n",
    );
    p.strata(&["migrate", "--no-rehearsal"])
        .code(1)
        .stderr_has("non-deterministic use of datetime() in a generated column");
    let check: String = p
        .open("app.db")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

const ZERO: &str = "migrations/app/20240101T000000Z-zero";

/// SQL on stdout (here a pipe) holds the database's bytes: the escape sequences in a view's
/// text and a table's name are not removed.
#[test]
fn sql_into_a_pipe_is_byte_exact() {
    let red = "\u{1b}[31m";
    let green = "\u{1b}[32m";
    let title = "t\u{1b}]0;x\u{7}";
    let p = Project::empty();
    p.write(
        &format!("{ZERO}/do.sql"),
        &format!(
            "CREATE TABLE msg(body TEXT);\nCREATE VIEW red_msg AS SELECT '{red}' || body AS shown FROM msg;\n\
             CREATE TABLE \"{title}\"(a TEXT);\n"
        ),
    );
    p.strata(&["migrate", "-q"]).ok();
    let dump = p.strata(&["dump", "app"]).ok().stdout;
    assert!(
        dump.contains(&format!("SELECT '{red}' || body")),
        "{dump:?}"
    );
    assert!(dump.contains(&format!("\"{title}\"")), "{dump:?}");
    p.strata(&["dump", "app", "--write"]).ok();
    assert_eq!(
        std::fs::read_to_string(p.path(&format!("{ZERO}/schema.sql"))).unwrap(),
        dump
    );
    // plan --sql: a pending do.sql as it will run.
    p.write(
        "migrations/app/20240201T000000Z-more/do.sql",
        &format!("CREATE VIEW v2 AS SELECT '{green}' AS c;\n"),
    );
    let plan = p.strata(&["plan", "--sql"]).ok().stdout;
    assert!(plan.contains(&format!("SELECT '{green}' AS c")), "{plan:?}");
    // diff --sql: the database drifted to another coloured view.
    p.open("app.db")
        .execute_batch(&format!(
            "DROP VIEW red_msg; CREATE VIEW red_msg AS SELECT '{green}' || body AS shown FROM msg;"
        ))
        .unwrap();
    let diff = p.strata(&["diff", "--sql"]).ok().stdout;
    assert!(
        diff.contains(&format!("SELECT '{green}' || body")),
        "{diff:?}"
    );
    // JSON keeps the same text as JSON escapes (the same value).
    let json = p.strata(&["--json", "dump", "app"]).ok().json();
    assert!(
        json["modules"][0]["sql"].as_str().unwrap().contains(green),
        "{json}"
    );
}
