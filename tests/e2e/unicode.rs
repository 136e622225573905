//! Text of any Unicode never reaches a panic, through every command: a corpus of generated
//! scripts (Unicode names of tables, columns, indexes, views and triggers, string literals,
//! comments, data.json keys and values; and scripts of arbitrary text) runs through `migrate`,
//! `plan --sql`, `status`, `dump`, `diff`, `new --from-diff`, `baseline` and `sandbox`. Every
//! run exits with one of the documented exit codes (docs/src/reference.md; a panic exits 101),
//! and the Unicode names come back unchanged through dump and diff.

use rusqlite::Connection;

use crate::harness::{Project, Run, rows};

/// Names that broke byte-offset code, or that a tokenizer could mistake: multi-byte, combining
/// marks, right-to-left marks, a byte-order mark, letters whose case changes length.
const NAMES: &[&str] = &[
    "用户",
    "名字",
    "é",
    "e\u{301}",
    "😀表",
    "a\u{200f}b",
    "\u{202e}rtl",
    "İstanbul",
    "ß",
    "ǅx",
    "\u{feff}bom",
    "naïve col",
    "Ωmega",
    "日本語の列",
];

/// Literals and comments: quotes of every kind, surrogate-like escapes, a NUL escape.
const TEXTS: &[&str] = &[
    "it''s",
    "\"dq\"",
    "`bt`",
    "[br]",
    "\\ud800",
    "\\u{0}",
    "😀 e\u{301}",
    "-- not a comment",
    "/* not a comment */",
    "$$ not dollar $$",
];

/// A tiny deterministic generator (no dependency, same corpus on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next() % from.len()]
    }
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A valid script: a table, an index, a view and a trigger named in Unicode, with literals and
/// comments of any text; and its data.json.
fn valid_script(g: &mut Lcg, n: usize) -> (String, String, String, Vec<String>) {
    let table = format!("{}{n}", g.pick(NAMES));
    let mut cols: Vec<String> = Vec::new();
    while cols.len() < 3 {
        let c = format!("{}{}", g.pick(NAMES), cols.len());
        cols.push(c);
    }
    let text = g.pick(TEXTS);
    let comment = g.pick(TEXTS).replace("*/", "");
    let sql = format!(
        "-- {comment} {table}\n/* {comment} 用户 */\nCREATE TABLE {t}(id INTEGER PRIMARY KEY, {c0} TEXT DEFAULT {l} CHECK ({c0} <> {l2}), {c1} DECIMAL(15, 2), {c2});\n\
         CREATE INDEX {ix} ON {t}({c1}, lower({c0}));\n\
         CREATE VIEW {v} AS SELECT {c0} AS {alias}, {c1} FROM {t} WHERE {c0} <> {l};\n\
         CREATE TRIGGER {tr} AFTER INSERT ON {t} BEGIN UPDATE {t} SET {c2} = {l} || '😀' WHERE id = new.id; END;\n\
         INSERT INTO {t}({c0}) VALUES ({l});\n",
        t = q(&table),
        c0 = q(&cols[0]),
        c1 = q(&cols[1]),
        c2 = q(&cols[2]),
        l = lit(text),
        l2 = lit(&format!("{text}x")),
        ix = q(&format!("ix_{table}")),
        v = q(&format!("v_{table}")),
        alias = q(&format!("{}_alias", cols[0])),
        tr = q(&format!("tr_{table}")),
    );
    let data = serde_json::json!({
        table.clone(): [ { cols[0].clone(): g.pick(TEXTS), cols[1].clone(): 1.5 } ]
    })
    .to_string();
    (sql, data, table, cols)
}

/// Text that is mostly not SQL: fragments of SQL, quotes of every kind left open, comments
/// left open, multi-byte characters everywhere.
fn garbage(g: &mut Lcg) -> String {
    const PIECES: &[&str] = &[
        "CREATE TABLE ",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "`",
        "[",
        "]",
        "--",
        "/*",
        "*/",
        "$$",
        "é",
        "用户",
        "😀",
        "e\u{301}",
        "\u{200f}",
        "\u{202e}",
        "\u{feff}",
        "\\ud800",
        "->>",
        " ",
        "\n",
        "\t",
        "x'0",
        "?",
        ":a",
        "BEGIN",
        "END",
        "TRIGGER ",
        "ON ",
        "INDEX ",
        "VIEW ",
        " AS ",
        "SELECT ",
        "1",
        "0x",
        "\u{a0}",
        "\u{2028}",
        "ǅ",
        "İ",
    ];
    let len = 5 + g.next() % 40;
    (0..len).map(|_| g.pick(PIECES)).collect()
}

/// The exit codes the book's reference documents; 101 (a panic) is not one.
#[track_caller]
fn documented(run: &Run) {
    assert!(
        [0, 1, 2, 3].contains(&run.code) && !run.stderr.contains("panicked"),
        "exit code {} is not documented (a panic?)\n$ {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.code,
        run.command,
        run.stdout,
        run.stderr
    );
}

fn project_with(sql: &str, data: Option<&str>) -> Project {
    let p = Project::empty();
    p.strata(&["init"]).ok();
    p.write("migrations/uni/20240101T000000Z-zero/do.sql", sql);
    if let Some(d) = data {
        p.write(
            "migrations/uni/20240101T000000Z-zero/proj-data/data.json",
            d,
        );
    }
    p
}

#[test]
fn unicode_names_literals_and_comments_run_and_round_trip_through_every_command() {
    let mut g = Lcg(17);
    for n in 0..6 {
        let (sql, data, table, cols) = valid_script(&mut g, n);
        let p = project_with(&sql, Some(&data));
        let context = format!("script:\n{sql}\ndata.json: {data}");
        for args in [&["plan", "--sql"][..], &["sandbox"][..]] {
            let run = p.strata(args);
            documented(&run);
            assert_eq!(run.code, 0, "{context}\n{}{}", run.stdout, run.stderr);
        }
        let run = p.strata(&["migrate", "--write-snapshots"]);
        documented(&run);
        assert_eq!(run.code, 0, "{context}\n{}{}", run.stdout, run.stderr);
        let app = p.open("app.db");
        // The names are SQLite's, unchanged; the data went in under its Unicode keys.
        let names: Vec<String> = rows(
            &app,
            &format!(
                "SELECT name FROM pragma_table_info({}) ORDER BY cid",
                lit(&table)
            ),
        );
        let mut expected = vec!["id".to_string()];
        expected.extend(cols.iter().cloned());
        assert_eq!(names, expected, "{context}");
        assert_eq!(
            rows(&app, &format!("SELECT count(*) FROM {}", q(&table))),
            ["2"],
            "{context}"
        );
        for args in [&["status"][..], &["plan", "--sql"][..]] {
            documented(&p.strata(args));
        }
        let dump = p.strata(&["dump", "uni"]).ok().stdout;
        for name in cols.iter().chain([&table]) {
            assert!(
                dump.contains(name.as_str()),
                "{name:?} not in the dump:\n{dump}"
            );
        }
        assert!(dump.contains("DECIMAL(15, 2)"), "{dump}");
        // The dump loads into SQLite with the same names, and dumps to itself.
        let fresh = Connection::open_in_memory().unwrap();
        fresh.execute_batch(&dump).unwrap();
        assert_eq!(
            rows(
                &fresh,
                &format!(
                    "SELECT name FROM pragma_table_info({}) ORDER BY cid",
                    lit(&table)
                )
            ),
            expected,
            "{dump}"
        );
        p.strata(&["diff", "uni"])
            .ok()
            .stdout_has("uni: no changes");
        // A change by hand with a Unicode column: diff names it, --from-diff makes it a
        // migration, and the copy gets it.
        let added = format!("{}_新", cols[1]);
        app.execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} TEXT DEFAULT {}",
            q(&table),
            q(&added),
            lit("é😀")
        ))
        .unwrap();
        // The human view shows invisible and bidirectional characters escaped (the name
        // cannot reorder or hide what is printed); the SQL, into a pipe, keeps them as they are.
        let shown: String = added
            .chars()
            .map(|c| {
                let hidden = c.is_control()
                    || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}');
                if hidden {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        let diff = p.strata(&["diff", "uni"]).ok();
        assert!(diff.stdout.contains(&shown), "{}", diff.stdout);
        let diff_sql = p.strata(&["diff", "uni", "--sql"]);
        documented(&diff_sql);
        assert!(diff_sql.stdout.contains(&added), "{}", diff_sql.stdout);
        let made = p.strata(&["new", "uni", "more", "--from-diff"]);
        documented(&made);
        assert_eq!(made.code, 0, "{}{}", made.stdout, made.stderr);
        p.strata(&["diff", "uni"])
            .ok()
            .stdout_has("uni: no changes");
        let run = p.strata(&["migrate"]);
        documented(&run);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        // baseline: a database strata never touched, with the same Unicode objects.
        let other = Project::empty();
        other.strata(&["init"]).ok();
        Connection::open(other.path("app.db"))
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
        let run = other.strata(&["baseline", "uni"]);
        documented(&run);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        other.strata(&["diff"]).ok().stdout_has("uni: no changes");
        let run = other.strata(&["migrate"]);
        documented(&run);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        assert_eq!(
            other.strata(&["dump", "uni"]).ok().stdout,
            other
                .strata(&["--db", ".strata/test.db", "dump", "uni"])
                .ok()
                .stdout
        );
    }
}

#[test]
fn scripts_of_any_text_get_a_documented_exit_code_from_every_command() {
    let mut g = Lcg(4242);
    for _ in 0..12 {
        let text = garbage(&mut g);
        let data = format!(
            "{{\"{}\": [{{\"{}\": 1}}]}}",
            g.pick(NAMES),
            garbage(&mut g).replace(['"', '\\'], "")
        );
        let p = project_with(&text, Some(&data));
        for args in [
            &["plan", "--sql"][..],
            &["migrate"][..],
            &["status"][..],
            &["sandbox"][..],
            &["dump"][..],
            &["diff"][..],
            &["diff", "--sql"][..],
        ] {
            documented(&p.strata(args));
        }
        // The same text as a database's own schema, adopted by baseline.
        let other = Project::empty();
        other.strata(&["init"]).ok();
        let conn = Connection::open(other.path("app.db")).unwrap();
        let _ = conn.execute_batch(&text);
        drop(conn);
        documented(&other.strata(&["baseline", "uni"]));
        documented(&other.strata(&["dump"]));
    }
    // Module and migration names in Unicode are refused as bad input, not a panic.
    let p = Project::empty();
    p.strata(&["init"]).ok();
    for args in [
        &["new", "用户", "zero", "--new-module"][..],
        &["new", "uni", "名字", "--new-module"][..],
        &["new", "uni", "e\u{301}", "--new-module"][..],
    ] {
        documented(&p.strata(args));
    }
    p.write("migrations/用户/20240101T000000Z-名字/do.sql", "SELECT 1;");
    for args in [&["migrate"][..], &["status"][..], &["plan"][..]] {
        documented(&p.strata(args));
    }
}
