//! Property tests: no text reaches a panic. Every tokenizer, parser and guard that reads SQL or
//! data written by a user (or read back from a database) is fed arbitrary Unicode: multi-byte
//! characters, combining marks, right-to-left marks, NUL, text that looks like a lone surrogate
//! escape, quotes of every kind, unterminated strings and comments. Each must return a value or
//! an error; a panic fails the test. A second group checks that names and literals of any
//! Unicode text survive: a schema made of them parses, dumps and loads back into SQLite with the
//! same names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rusqlite::Connection;

use crate::components::policy::Policy;
use crate::postgres;
use crate::sqlite::guard::{Guard, Mode, Snapshot};
use crate::sqlite::schema::{self, Schema, sql};

/// Pieces that break byte-offset assumptions or confuse a tokenizer, mixed with SQL words.
const FRAGMENTS: &[&str] = &[
    "CREATE",
    "TABLE",
    "INDEX",
    "VIEW",
    "TRIGGER",
    "UNIQUE",
    "ON",
    "AS",
    "SELECT",
    "FROM",
    "BEGIN",
    "END",
    "INSERT",
    "INTO",
    "VALUES",
    "DEFAULT",
    "CHECK",
    "COLLATE",
    "GENERATED",
    "ALWAYS",
    "PRIMARY",
    "KEY",
    "REFERENCES",
    "WITHOUT",
    "ROWID",
    "STRICT",
    "NOT",
    "NULL",
    "IF",
    "EXISTS",
    "CONCURRENTLY",
    "OR",
    "REPLACE",
    "FUNCTION",
    "SCHEMA",
    "SEQUENCE",
    "TYPE",
    "strata_",
    "sqlite_",
    "(",
    ")",
    ",",
    ";",
    ".",
    "*",
    "-",
    "+",
    "->",
    "->>",
    "||",
    "<=",
    "<>",
    "=",
    "?",
    "?1",
    ":a",
    "@b",
    "$c",
    "$1",
    "#",
    "'",
    "''",
    "\"",
    "\"\"",
    "`",
    "[",
    "]",
    "$$",
    "$t$",
    "E'",
    "U&\"",
    "B'",
    "x'",
    "X'0F'",
    "--",
    "/*",
    "*/",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "  ",
    "\u{0c}",
    "\u{0b}",
    "\0",
    "é",
    "e\u{301}",
    "用户",
    "名字",
    "😀",
    "\u{200f}",
    "\u{202e}",
    "\u{feff}",
    "\u{a0}",
    "\u{2028}",
    "\u{85}",
    "\u{ffff}",
    "\u{10ffff}",
    "\\ud800",
    "\\u{d800}",
    "\\",
    "1",
    "0x1F",
    "1.5e3",
    ".5",
    "1_000",
    "ß",
    "İ",
    "Σ",
    "ǅ",
    "ﬀ",
];

/// Text built from [`FRAGMENTS`] and arbitrary characters.
fn sqlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => any::<char>().prop_map(|c| c.to_string()),
        1 => "\\PC{0,4}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Names of any Unicode text but NUL (SQLite ends a name at NUL) and not empty.
fn unicode_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "用户",
                "名字",
                "é",
                "e\u{301}",
                "😀",
                "a\u{200f}b",
                "İx",
                "ǅ"
            ][..]
        )
        .prop_map(str::to_string),
        "[^\u{0}]{1,8}",
    ]
}

fn policy_guard(conn: &mut Connection) -> Guard {
    let guard = Guard::install(conn).unwrap();
    let reads = ["people".to_string(), "用户".to_string()];
    let policy = Policy::new(
        Some(&reads),
        Some(&reads[..1]),
        PathBuf::from("m/migration.toml"),
    );
    guard.set_mode(Mode::Component {
        policy: Arc::new(policy),
        deadline: Instant::now() + Duration::from_secs(60),
    });
    guard.set_schema_names(Snapshot::take(conn).unwrap().names());
    guard
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// SQLite's side: tokenizer, statement splitter, the schema parser (and what a parsed schema
    /// goes through: dump, diff, delta), the script checks and the statement walk.
    #[test]
    fn sqlite_text_never_panics(text in sqlish(), other in sqlish()) {
        let _ = sql::tokenize(&text);
        if let Ok(statements) = sql::statements(&text) {
            for s in &statements {
                let _ = sql::render(s, &HashSet::new());
                let _ = sql::mentioned_names(s);
            }
        }
        let _ = crate::core::input::check_script(Path::new("m/do.sql"), &text);
        let a = Schema::parse(&text);
        let b = Schema::parse(&other);
        if let Ok(a) = &a {
            let dumped = a.to_sql();
            let _ = Schema::parse(&dumped);
            let _ = schema::diff::diff(a, &Schema::default()).to_string();
            let _ = schema::delta::delta(&Schema::default(), a, a);
            if let Ok(b) = &b {
                let _ = schema::diff::diff(a, b).to_string();
                let _ = schema::delta::delta(a, b, b);
            }
        }
        let conn = Connection::open_in_memory().unwrap();
        let script = crate::sqlite::ScriptText::new(&text);
        let mut walk = crate::sqlite::Script::new(&conn, &script);
        for _ in 0..64 {
            match walk.next_statement() {
                Ok(Some((mut stmt, _))) => {
                    let _ = stmt.raw_execute();
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// The component guard: statements of any text run under a policy, and names of any text
    /// are judged, without a panic in the authorizer.
    #[test]
    fn the_sqlite_guard_never_panics(text in sqlish(), name in unicode_name()) {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE \"用户\"(\"名字\" TEXT);",
        )
        .unwrap();
        let _guard = policy_guard(&mut conn);
        let _ = conn.execute_batch(&text);
        let quoted = sql::quote_ident(&name);
        for statement in [
            format!("CREATE TABLE {quoted}(x)"),
            format!("SELECT * FROM {quoted}"),
            format!("INSERT INTO people(name) VALUES ({})", sql::quote_string(&name)),
            format!("CREATE INDEX {quoted} ON people(name)"),
        ] {
            let _ = conn.execute_batch(&statement);
        }
        let _ = crate::components::policy::is_strata(&name);
    }

    /// data.json of any text.
    #[test]
    fn data_files_never_panic(text in sqlish(), key in unicode_name(), value in "\\PC{0,12}") {
        let _ = crate::core::data::DataSet::parse(Path::new("m/data.json"), &text);
        let json = serde_json::json!({ key.clone(): [{ key: value }] }).to_string();
        let _ = crate::core::data::DataSet::parse(Path::new("m/data.json"), &json);
    }

    /// PostgreSQL's side: the script splitter, placeholder numbering, the schema.sql format,
    /// and the design code's reading of CREATE statements.
    #[test]
    fn postgres_text_never_panics(text in sqlish(), other in sqlish(), params in 0usize..4) {
        let _ = postgres::script::statements(Path::new("m/do.sql"), &text);
        let _ = postgres::script::number_placeholders(&text, params);
        let _ = postgres::model::Column::parse(&text);
        let _ = postgres::model::ident(&text);
        let _ = postgres::model::schema_of(&text);
        let _ = postgres::design::created_object(&text);
        for kind in ["TABLE", "INDEX", "UNIQUE INDEX", "VIEW", "SEQUENCE", "FUNCTION", "TRIGGER"] {
            let _ = postgres::design::created_object(&format!("CREATE {kind} {text}"));
            let _ = postgres::design::created_object(&format!("create {kind} é{text}"));
        }
        let _ = postgres::design::bare(&text);
        let a = postgres::model::PgSchema::parse(Path::new("m/schema.sql"), &text);
        let b = postgres::model::PgSchema::parse(Path::new("m/schema.sql"), &other);
        if let (Ok(a), Ok(b)) = (&a, &b) {
            let _ = postgres::delta::diff(a, b);
            let _ = postgres::delta::delta(a, b);
            let _ = postgres::model::PgSchema::parse(Path::new("m/schema.sql"), &a.to_sql());
        }
    }

    /// Names of any Unicode text survive a table: parsed, dumped, loaded into SQLite and read
    /// back, they are the same names, and the dump of the loaded database is the same dump.
    #[test]
    fn unicode_names_round_trip_through_the_dump(
        table in unicode_name(),
        cols in proptest::collection::btree_set(unicode_name(), 1..4),
        literal in "\\PC{0,8}",
        comment in "[^\u{0}]{0,8}",
    ) {
        let cols: Vec<String> = cols.into_iter().collect();
        // SQLite compares names without regard to ASCII case.
        let lower: HashSet<String> = cols.iter().map(|c| c.to_ascii_lowercase()).collect();
        prop_assume!(lower.len() == cols.len());
        prop_assume!(!schema::is_internal(&table));
        let defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} TEXT DEFAULT {}", sql::quote_ident(c), sql::quote_string(&literal)))
            .collect();
        let create = format!(
            "/* {} */ CREATE TABLE {}({}); -- {}\n",
            comment.replace("*/", ""),
            sql::quote_ident(&table),
            defs.join(", "),
            comment.replace('\n', " ")
        );
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&create).unwrap();
        let live = Schema::read(&conn).unwrap();
        let t = live.tables.values().next().unwrap();
        prop_assert_eq!(&t.name, &table);
        let names: Vec<&String> = t.columns.iter().map(|c| &c.name).collect();
        prop_assert_eq!(names, cols.iter().collect::<Vec<_>>());
        let dumped = live.to_sql();
        let again = Connection::open_in_memory().unwrap();
        again.execute_batch(&dumped).unwrap();
        prop_assert_eq!(Schema::read(&again).unwrap().to_sql(), dumped.clone());
        prop_assert!(schema::diff::diff(&live, &Schema::parse(&dumped).unwrap()).is_empty());
    }
}
