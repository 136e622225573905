use super::*;

/// The findings of `sql` in `dialect`, after `before` built the model.
fn findings(dialect: Dialect, before: &str, sql: &str) -> Vec<Finding> {
    lint_files(dialect, before, &[("b/do.sql", sql)])
}

/// The findings of the last of `files` (path, SQL), linted in order as one migration's files
/// (what one made, the next may take back), after `before` built the model.
fn lint_files(dialect: Dialect, before: &str, files: &[(&str, &str)]) -> Vec<Finding> {
    let mut model = Model::default();
    let mut made = Made::default();
    let mut out = Vec::new();
    for (path, sql) in std::iter::once(&("a/do.sql", before)).chain(files) {
        if *path == "b/do.sql" {
            made = Made::default();
        }
        out.clear();
        lint_file_made(
            dialect,
            "m",
            Path::new(path),
            sql,
            &mut model,
            &mut out,
            &mut made,
        );
    }
    out
}

/// The codes `sql` gets in `dialect`, after `before` built the model, as `code@line`.
fn codes(dialect: Dialect, before: &str, sql: &str) -> Vec<String> {
    findings(dialect, before, sql)
        .iter()
        .map(|f| format!("{}@{}", f.code, f.line))
        .collect()
}

const PEOPLE: &str = "CREATE TABLE people (id bigint PRIMARY KEY, name varchar(200), age bigint, price numeric(12, 2));";

#[test]
fn destructive_statements_on_both_backends() {
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(codes(d, PEOPLE, "DROP TABLE people;"), ["SL101@1"], "{d:?}");
        assert_eq!(
            codes(d, PEOPLE, "\n\nALTER TABLE people DROP COLUMN name;"),
            ["SL102@3"],
            "{d:?}"
        );
        assert_eq!(codes(d, PEOPLE, "DELETE FROM people;"), ["SL106@1"]);
        assert!(codes(d, PEOPLE, "DELETE FROM people WHERE id = 1;").is_empty());
    }
    assert_eq!(
        codes(Dialect::Postgres, PEOPLE, "TRUNCATE people;"),
        ["SL105@1"]
    );
}

#[test]
fn a_rebuild_is_judged_by_the_columns_it_loses() {
    let keep = "CREATE TABLE new_people (id bigint PRIMARY KEY, name text, age bigint, price numeric);\n\
                INSERT INTO new_people SELECT * FROM people;\nDROP TABLE people;\n\
                ALTER TABLE new_people RENAME TO people;";
    assert!(codes(Dialect::Sqlite, PEOPLE, keep).is_empty());
    let lose = "CREATE TABLE new_people (id bigint PRIMARY KEY, name text);\n\
                INSERT INTO new_people SELECT id, name FROM people;\nDROP TABLE people;\n\
                ALTER TABLE new_people RENAME TO people;";
    assert_eq!(codes(Dialect::Sqlite, PEOPLE, lose), ["SL103@3"]);
}

#[test]
fn tables_made_in_the_same_file_are_not_reported() {
    let sql = "CREATE TABLE t (a int);\nCREATE UNIQUE INDEX t_a ON t (a);\n\
               ALTER TABLE t ADD COLUMN b int NOT NULL;\nDELETE FROM t;\nDROP TABLE t;";
    assert!(codes(Dialect::Postgres, "", sql).is_empty());
}

#[test]
fn data_dependent_statements() {
    let pg = Dialect::Postgres;
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD COLUMN email text NOT NULL;"
        ),
        ["SL201@1"]
    );
    assert!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD COLUMN email text NOT NULL DEFAULT '';"
        )
        .is_empty()
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "CREATE UNIQUE INDEX CONCURRENTLY p_name ON people (name);"
        ),
        ["SL202@1"]
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD CONSTRAINT pos CHECK (age > 0);"
        ),
        ["SL203@1", "SL404@1"]
    );
    assert!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD CONSTRAINT pos CHECK (age > 0) NOT VALID;"
        )
        .is_empty()
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN name SET NOT NULL;"
        ),
        ["SL204@1", "SL405@1"]
    );
    assert_eq!(
        codes(
            pg,
            &format!("{PEOPLE} CREATE TABLE org (id bigint PRIMARY KEY);"),
            "ALTER TABLE people ADD CONSTRAINT fk FOREIGN KEY (age) REFERENCES org (id);"
        ),
        ["SL205@1", "SL404@1"]
    );
    assert_eq!(
        codes(
            Dialect::Sqlite,
            PEOPLE,
            "CREATE UNIQUE INDEX p_name ON people (name);"
        ),
        ["SL202@1"]
    );
}

#[test]
fn renames_are_backward_incompatible() {
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(
            codes(d, PEOPLE, "ALTER TABLE people RENAME TO persons;"),
            ["SL301@1"]
        );
        assert_eq!(
            codes(
                d,
                PEOPLE,
                "ALTER TABLE people RENAME COLUMN name TO full_name;"
            ),
            ["SL302@1"]
        );
    }
}

#[test]
fn postgres_locks_and_rewrites() {
    let pg = Dialect::Postgres;
    assert_eq!(
        codes(pg, PEOPLE, "CREATE INDEX p_age ON people (age);"),
        ["SL401@1"]
    );
    assert!(
        codes(
            pg,
            PEOPLE,
            "CREATE INDEX CONCURRENTLY p_age ON people (age);"
        )
        .is_empty()
    );
    assert!(
        codes(
            Dialect::Sqlite,
            PEOPLE,
            "CREATE INDEX p_age ON people (age);"
        )
        .is_empty()
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN age TYPE integer;"
        ),
        ["SL104@1", "SL402@1"]
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN name TYPE varchar(50);"
        ),
        ["SL104@1", "SL402@1"]
    );
    // Longer varchar, or text: binary-coercible, no rewrite, nothing lost.
    assert!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN name TYPE varchar(300);"
        )
        .is_empty()
    );
    assert!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN name TYPE text;"
        )
        .is_empty()
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ALTER COLUMN price TYPE numeric(8, 2);"
        ),
        ["SL104@1", "SL402@1"]
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD COLUMN token uuid DEFAULT gen_random_uuid();"
        ),
        ["SL403@1"]
    );
    assert!(
        codes(
            pg,
            PEOPLE,
            "ALTER TABLE people ADD COLUMN at timestamptz DEFAULT now();"
        )
        .is_empty()
    );
    assert_eq!(codes(pg, PEOPLE, "VACUUM FULL people;"), ["SL406@1"]);
    assert_eq!(
        codes(pg, PEOPLE, "CLUSTER people USING people_pkey;"),
        ["SL406@1"]
    );
}

#[test]
fn what_does_not_parse_is_a_finding_not_a_crash() {
    for text in [
        "CREATE TABLE \u{1F600} (x);",
        "ALTER TABLE people FROBNICATE;",
        "\u{0}\u{FFFF};",
        "SELECT 1 +€;",
        "SELECT a<😀 FROM t;",
        "'unterminated",
        "",
    ] {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let got = codes(d, PEOPLE, text);
            assert!(
                got.iter()
                    .all(|c| c.starts_with("SL000") || c.starts_with("SL001")),
                "{text:?}: {got:?}"
            );
        }
    }
}

#[test]
fn accepts_match_by_code_line_object_and_file() {
    let f = Finding {
        code: "SL101".into(),
        severity: Severity::Error,
        family: DESTRUCTIVE.into(),
        migration: "m".into(),
        file: "x/do.sql".into(),
        line: 3,
        statement: "DROP TABLE tags".into(),
        object: Some("tags".into()),
        message: String::new(),
        fix: String::new(),
        accepted: None,
        index: 1,
        verdict: None,
        rows: None,
    };
    let a = |line: Option<usize>, object: Option<&str>, file: Option<&str>| Accept {
        code: "sl101".into(),
        reason: "r".into(),
        line,
        object: object.map(str::to_string),
        file: file.map(str::to_string),
    };
    assert!(a(None, None, None).matches(&f));
    assert!(a(Some(3), Some("TAGS"), Some("do.sql")).matches(&f));
    assert!(!a(Some(4), None, None).matches(&f));
    assert!(!a(None, Some("other"), None).matches(&f));
    assert!(!a(None, None, Some("undo.sql")).matches(&f));
}

#[test]
fn every_rule_code_is_unique_and_documented() {
    let mut seen = HashSet::new();
    for r in RULES {
        assert!(seen.insert(r.code), "{}", r.code);
        assert!(!r.fix.is_empty() && !r.what.is_empty());
    }
}

#[test]
fn sqlite_strict_and_without_rowid_tables_are_read() {
    let sql = "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT) STRICT, WITHOUT ROWID;\n\
               CREATE UNIQUE INDEX t_b ON t (b);";
    assert!(codes(Dialect::Sqlite, "", sql).is_empty());
    let before = "CREATE TABLE p (id INTEGER PRIMARY KEY, amount REAL) STRICT;";
    let rebuild = "CREATE TABLE new_p (id INTEGER PRIMARY KEY, cents INTEGER) STRICT;\n\
                   DROP TABLE p;\nALTER TABLE new_p RENAME TO p;";
    assert_eq!(codes(Dialect::Sqlite, before, rebuild), ["SL103@2"]);
    // Anything else after the parenthesis is not dropped.
    assert_eq!(
        codes(Dialect::Sqlite, "", "CREATE TABLE t (a) STRICT GARBAGE;"),
        ["SL001@1"]
    );
}

#[test]
fn a_table_the_parser_cannot_read_is_still_made_here() {
    let sql = "CREATE TABLE IF NOT EXISTS t (a TEXT CHECK (a NOT GLOB '*x*'));\n\
               CREATE UNIQUE INDEX t_a ON t (a);";
    let got = codes(Dialect::Sqlite, "", sql);
    assert!(got.iter().all(|c| c.starts_with("SL000")), "{got:?}");
}

/// SQL SQLite's own parser reads is never an error of the linter: each shape is read and
/// analysed, or a note (`SL000`, not analysed), or a rule's own finding; only what SQLite
/// itself rejects is `SL001`.
#[test]
fn every_shape_sqlite_reads_lints_without_an_error() {
    let before = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n\
                  CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;";
    for sql in [
        "CREATE TABLE s (a INTEGER, b TEXT) STRICT;",
        "CREATE TABLE w (k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;",
        "CREATE TABLE g (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, c AS (a + 1) VIRTUAL);",
        "CREATE TABLE [bracket name] (`back tick` TEXT, \"double\" TEXT);",
        "CREATE TABLE \"naïve_表\" (ключ INTEGER PRIMARY KEY, 値 TEXT);",
        "CREATE TABLE f (id INTEGER NOT NULL, d BLOB SUB_TYPE TEXT, PRIMARY KEY (id));",
        "CREATE TABLE a (id INTEGER PRIMARY KEY ASC AUTOINCREMENT, b TEXT COLLATE NOCASE, \
         FOREIGN KEY (id) REFERENCES people (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);",
        "CREATE VIRTUAL TABLE docs USING fts5(title, body);",
        "CREATE TRIGGER people_ai AFTER INSERT ON people BEGIN \
         UPDATE people SET email = lower(new.email) WHERE id = new.id; DELETE FROM kv WHERE k = new.name; END;",
        "CREATE TRIGGER IF NOT EXISTS people_bd BEFORE DELETE ON people FOR EACH ROW \
         WHEN old.id > 0 BEGIN SELECT RAISE(ABORT, 'no'); END;",
        "CREATE INDEX people_lower ON people (lower(email)) WHERE email IS NOT NULL;",
        "CREATE VIEW v AS SELECT id, row_number() OVER (PARTITION BY name ORDER BY id) AS rn FROM people;",
        "INSERT INTO kv (k, v) VALUES ('a', '1') ON CONFLICT (k) DO UPDATE SET v = excluded.v;",
        "INSERT OR REPLACE INTO kv (k, v) VALUES ('b', '2');",
        "INSERT OR IGNORE INTO kv VALUES ('c', '3');",
        "REPLACE INTO kv VALUES ('d', '4');",
        "UPDATE OR IGNORE people SET name = 'x' WHERE id = 1;",
        "SELECT name, sum(id) OVER w FROM people WINDOW w AS (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW);",
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3) \
         INSERT INTO kv SELECT 'n' || i, i FROM c;",
        "UPDATE people SET name = p.n FROM (SELECT 1 AS id, 'z' AS n) AS p WHERE p.id = people.id;",
        "DELETE FROM people WHERE id = 0 RETURNING id;",
        "SELECT x'00' IS NOT NULL, 1 ISNULL, 2 NOTNULL, 'a' GLOB '*';",
        "PRAGMA foreign_keys;",
        "PRAGMA user_version = 3;",
        "REINDEX people;",
        "ANALYZE;",
        "DROP TRIGGER IF EXISTS people_ai;",
        "DROP VIEW IF EXISTS v;",
        "DROP INDEX IF EXISTS people_lower;",
    ] {
        let out = findings(Dialect::Sqlite, before, sql);
        assert!(
            out.iter().all(|f| f.severity != Severity::Error),
            "{sql}: {:?}",
            out.iter()
                .map(|f| (&f.code, &f.message))
                .collect::<Vec<_>>()
        );
        for f in &out {
            if f.code == NOT_LINTED {
                assert!(
                    f.message.contains("SQLite's parser accepts"),
                    "{sql}: {}",
                    f.message
                );
            }
        }
    }
    // What has no rule is read, not a note.
    for sql in [
        "REINDEX people;",
        "ANALYZE;",
        "DROP TRIGGER people_ai;",
        "DETACH DATABASE x;",
    ] {
        assert!(codes(Dialect::Sqlite, before, sql).is_empty(), "{sql}");
    }
    // A trigger is read by SQLite and its body by the linter, also when its table is made later.
    assert!(
        codes(
            Dialect::Sqlite,
            "",
            "CREATE TRIGGER t AFTER INSERT ON later BEGIN SELECT 1; END;"
        )
        .is_empty()
    );
}

#[test]
fn what_sqlite_itself_rejects_is_a_syntax_error_and_vacuum_cannot_run_in_a_migration() {
    assert_eq!(
        codes(
            Dialect::Sqlite,
            "",
            "CREATE TABLE a (x);\n\nCREAT TABLE b (y);"
        ),
        ["SL001@3"]
    );
    let out = findings(Dialect::Sqlite, "", "CREATE TABLE bad (a,, b);");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].severity, Severity::Error);
    assert_eq!(
        out[0].message,
        "SQLite's parser rejects it: near \",\": syntax error"
    );
    assert_eq!(codes(Dialect::Sqlite, "", "VACUUM;"), ["SL407@1"]);
    assert_eq!(codes(Dialect::Sqlite, "", "vacuum main;"), ["SL407@1"]);
    // On PostgreSQL its own parser (libpg_query) judges too.
    let out = findings(Dialect::Postgres, "", "SELECT 1;\nFROBNICATE everything;");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].code.as_str(), out[0].line), (SYNTAX, 2));
    assert_eq!(
        out[0].message,
        "PostgreSQL's parser rejects it: syntax error at or near \"FROBNICATE\""
    );
}

#[test]
fn an_attached_file_is_outside_the_backup_and_a_read_only_or_memory_one_is_not() {
    let s = Dialect::Sqlite;
    assert_eq!(codes(s, PEOPLE, "ATTACH 'other.db' AS o;"), ["SL408@1"]);
    assert_eq!(
        codes(s, PEOPLE, "\nATTACH DATABASE 'other.db' AS o;"),
        ["SL408@2"]
    );
    let f = findings(s, PEOPLE, "ATTACH 'dir/其他.db' AS o;");
    assert!(f[0].message.contains("'dir/其他.db'"), "{f:?}");
    assert_eq!(
        codes(s, PEOPLE, "ATTACH ('other' || '.db') AS o;"),
        ["SL408@1"]
    );
    assert_eq!(
        codes(s, PEOPLE, "ATTACH 'FILE:legacy.db?mode=ro' AS o;"),
        ["SL408@1"]
    );
    for harmless in [
        "ATTACH ':memory:' AS o;",
        "ATTACH DATABASE '' AS o;",
        "ATTACH 'file:x?mode=memory&cache=shared' AS o;",
        "ATTACH 'file:legacy.db?mode=ro' AS o;",
        "DETACH o;",
    ] {
        assert!(codes(s, PEOPLE, harmless).is_empty(), "{harmless}");
    }
}

#[test]
fn a_sqlite_trigger_body_is_linted_statement_by_statement() {
    let s = Dialect::Sqlite;
    let log = "CREATE TABLE log (at text);";
    let sql = "CREATE TRIGGER IF NOT EXISTS main.wipe AFTER INSERT ON people\n\
               WHEN new.id > 0\nBEGIN\n  INSERT INTO log VALUES (datetime('now'));\n  \
               DELETE FROM log;\nEND;";
    let f = findings(s, &format!("{PEOPLE}\n{log}"), sql);
    assert_eq!(
        f.iter()
            .map(|f| format!("{}@{}", f.code, f.line))
            .collect::<Vec<_>>(),
        ["SL106@5"],
        "{f:?}"
    );
    assert!(f[0].message.contains("trigger `wipe`"), "{f:?}");
    assert_eq!(f[0].object.as_deref(), Some("log"));
    // A body that only deletes what it names, and a body the linter reads entirely: no note.
    let fine = "CREATE TEMP TRIGGER t AFTER DELETE ON people BEGIN\n\
                DELETE FROM log WHERE at < '2000'; UPDATE people SET age = 0 WHERE id = old.id;\nEND;";
    assert!(codes(s, &format!("{PEOPLE}\n{log}"), fine).is_empty());
    // A body statement sqlparser cannot read keeps the note that the trigger was not analysed.
    let odd = "CREATE TRIGGER t AFTER DELETE ON people BEGIN\n\
               INSERT OR REPLACE INTO log VALUES (1) ON CONFLICT DO NOTHING RETURNING *;\nEND;";
    let c = codes(s, &format!("{PEOPLE}\n{log}"), odd);
    assert!(
        c.iter()
            .all(|c| c.starts_with("SL000") || c.starts_with("SL001")),
        "{c:?}"
    );
}

#[test]
fn a_server_wide_statement_is_an_error_on_postgres_only() {
    let pg = Dialect::Postgres;
    assert_eq!(codes(pg, PEOPLE, "CREATE ROLE reporting;"), ["SL409@1"]);
    assert_eq!(
        codes(pg, PEOPLE, "\nALTER DATABASE app SET work_mem = '1GB';"),
        ["SL409@2"]
    );
    assert_eq!(codes(pg, PEOPLE, "GRANT reporting TO app;"), ["SL409@1"]);
    assert!(codes(pg, PEOPLE, "GRANT SELECT ON people TO reporting;").is_empty());
    assert!(codes(Dialect::Sqlite, PEOPLE, "CREATE TABLE role (a);").is_empty());
    // Inside the bodies a statement carries (attack5 #3).
    assert_eq!(
        codes(pg, PEOPLE, "DO $$ BEGIN CREATE ROLE reporting; END $$;"),
        ["SL409@1"]
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "CREATE PROCEDURE mk() LANGUAGE sql AS 'CREATE ROLE reporting';"
        ),
        ["SL409@1"]
    );
    assert_eq!(
        codes(
            pg,
            PEOPLE,
            "DO $$ BEGIN RAISE NOTICE 'CREATE ROLE x'; END $$;"
        ),
        ["SL000@1"],
        "a DO block is not analysed otherwise; its notice is no role"
    );
}

/// The codes of a migration's `undo.sql` (`undo`), linted as `strata lint` does: after its
/// `do.sql` (`step`), over the schema `before` built.
fn undo_codes(dialect: Dialect, before: &str, step: &str, undo: &str) -> Vec<String> {
    lint_files(dialect, before, &[("b/do.sql", step), ("b/undo.sql", undo)])
        .iter()
        .map(|f| format!("{}@{}", f.code, f.line))
        .collect()
}

#[test]
fn an_undo_taking_back_what_its_step_made_is_not_a_finding_but_one_destroying_more_is() {
    let step = "CREATE TABLE tags (id bigint PRIMARY KEY, name text);\n\
                ALTER TABLE people ADD COLUMN email text;\n\
                ALTER TABLE people RENAME COLUMN age TO years;\n\
                ALTER TABLE people RENAME TO persons;";
    for d in [Dialect::Sqlite, Dialect::Postgres] {
        // The undo of each statement, newest first.
        let undo = "ALTER TABLE persons RENAME TO people;\n\
                    ALTER TABLE people RENAME COLUMN years TO age;\n\
                    ALTER TABLE people DROP COLUMN email;\n\
                    DROP TABLE tags;";
        assert!(undo_codes(d, PEOPLE, step, undo).is_empty(), "{d:?}");
        // What the step found there is judged as in a do.sql.
        let more = "ALTER TABLE persons DROP COLUMN name;\nDROP TABLE tags;\n\
                    ALTER TABLE persons RENAME TO folk;\nDELETE FROM persons;";
        assert_eq!(
            undo_codes(d, PEOPLE, step, more),
            ["SL102@1", "SL301@3", "SL106@4"],
            "{d:?}"
        );
    }
    // A SQLite undo that rebuilds the table without the column its step added loses nothing
    // the step found; one that also leaves out `age` does.
    let step = "ALTER TABLE people ADD COLUMN email text;";
    let rebuild = |columns: &str| {
        format!(
            "CREATE TABLE new_people ({columns});\n\
             INSERT INTO new_people SELECT {} FROM people;\nDROP TABLE people;\n\
             ALTER TABLE new_people RENAME TO people;",
            columns
                .split(", ")
                .map(|c| c.split(' ').next().unwrap())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let all = "id bigint PRIMARY KEY, name varchar(200), age bigint, price numeric";
    assert!(undo_codes(Dialect::Sqlite, PEOPLE, step, &rebuild(all)).is_empty());
    let without_age = "id bigint PRIMARY KEY, name varchar(200), price numeric";
    assert_eq!(
        undo_codes(Dialect::Sqlite, PEOPLE, step, &rebuild(without_age)),
        ["SL103@3"]
    );
}

#[test]
fn a_table_rebuilt_in_a_file_still_holds_its_rows_for_the_statements_after_it() {
    let rebuild = "CREATE TABLE new_people (id bigint PRIMARY KEY, name text, age bigint, price numeric);\n\
                   INSERT INTO new_people SELECT * FROM people;\nDROP TABLE people;\n\
                   ALTER TABLE new_people RENAME TO people;\n\
                   CREATE UNIQUE INDEX people_name ON people (name);";
    assert_eq!(codes(Dialect::Sqlite, PEOPLE, rebuild), ["SL202@5"]);
}

#[test]
fn a_sqlite_rebuild_that_adds_a_constraint_over_the_rows_it_copies_is_data_dependent() {
    let before = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER);\n\
                  CREATE TABLE teams (id INTEGER PRIMARY KEY);";
    let rebuild = |new: &str| {
        format!(
            "CREATE TABLE new_people ({new});\n\
             INSERT INTO new_people SELECT id, name, email, team FROM people;\n\
             DROP TABLE people;\nALTER TABLE new_people RENAME TO people;"
        )
    };
    let same = "id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER";
    assert!(codes(Dialect::Sqlite, before, &rebuild(same)).is_empty());
    // Each constraint the copy must meet, reported at the CREATE TABLE that declares it.
    for (new, code) in [
        (
            "id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, team INTEGER",
            "SL204@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE, team INTEGER",
            "SL202@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER, UNIQUE (name, email)",
            "SL202@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT CHECK (email LIKE '%@%'), team INTEGER",
            "SL203@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER, CHECK (length(name) > 0)",
            "SL203@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER REFERENCES teams(id)",
            "SL205@1",
        ),
        (
            "id INTEGER PRIMARY KEY, name TEXT, email TEXT, team INTEGER, FOREIGN KEY (team) REFERENCES teams(id)",
            "SL205@1",
        ),
    ] {
        assert_eq!(
            codes(Dialect::Sqlite, before, &rebuild(new)),
            [code],
            "{new}"
        );
    }
    // What the table had already is not reported again, in either spelling; a new NOT NULL
    // column is the INSERT's to fill; a column renamed keeps its constraints.
    let had = "CREATE TABLE people (id INTEGER, name TEXT NOT NULL, email TEXT, team INTEGER, \
               PRIMARY KEY (id), CHECK (length(name) > 0));\n\
               ALTER TABLE people RENAME COLUMN name TO full_name;";
    let rebuilt = "CREATE TABLE new_people (id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, \
                   email TEXT, team INTEGER, added TEXT NOT NULL DEFAULT '', CHECK (length(name) > 0));\n\
                   INSERT INTO new_people (id, full_name, email, team) SELECT id, full_name, email, team FROM people;\n\
                   DROP TABLE people;\nALTER TABLE new_people RENAME TO people;";
    assert!(
        codes(Dialect::Sqlite, had, rebuilt).is_empty(),
        "{:?}",
        codes(Dialect::Sqlite, had, rebuilt)
    );
    // A table the same file made holds no rows yet.
    let fresh = format!(
        "{before}\n{}",
        rebuild("id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, team INTEGER")
    );
    assert!(codes(Dialect::Sqlite, "", &fresh).is_empty());
}
