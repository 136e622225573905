//! Property test of `delta`: for random schemas A and B (B made from A by random edits: tables
//! and columns added, dropped, renamed, retyped, reordered, constraints and options toggled,
//! indexes, views and triggers following), running the generated SQL on a database in state A
//! holding rows gives exactly schema B, and the rows of the columns both have survive.
//!
//! Two oracles: the canonical dump (strata's own model) and SQLite's pragmas (`table_xinfo`,
//! `index_list`, `index_xinfo`, `foreign_key_list`), compared with a fresh database made from B.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index as Pick;
use rusqlite::Connection;

use super::Schema;
use super::delta::delta;

const TYPES: &[&str] = &["INTEGER", "TEXT", "REAL", "NUMERIC", "BLOB", ""];

#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: &'static str,
    not_null: bool,
    default: Option<u8>,
    check: bool,
    nocase: bool,
    fk: Option<String>,
}

#[derive(Debug, Clone)]
struct Tab {
    name: String,
    cols: Vec<Col>,
    without_rowid: bool,
    unique: bool,
    autoincrement: bool,
}

/// A test schema: tables plus a seed that picks which columns get indexes, views and triggers,
/// so that objects on unchanged tables come out the same in A and B.
#[derive(Debug, Clone)]
struct Spec {
    tables: Vec<Tab>,
    seed: u8,
}

fn pick(seed: u8, a: &str, b: &str) -> u32 {
    let mut h: u32 = seed as u32;
    for c in a.bytes().chain(b.bytes()) {
        h = h.wrapping_mul(31).wrapping_add(c as u32);
    }
    h % 4
}

impl Col {
    fn sql(&self) -> String {
        let mut s = self.name.clone();
        if !self.ty.is_empty() {
            s.push(' ');
            s.push_str(self.ty);
        }
        if self.not_null {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = self.default {
            s.push_str(&format!(" DEFAULT {d}"));
        }
        if self.nocase {
            s.push_str(" COLLATE NOCASE");
        }
        if self.check {
            s.push_str(&format!(" CHECK ({} >= 0)", self.name));
        }
        if let Some(t) = &self.fk {
            s.push_str(&format!(" REFERENCES {t}(id)"));
        }
        s
    }

    fn value(&self, row: u32) -> String {
        match self.ty {
            "TEXT" => format!("'s{row}'"),
            "BLOB" => format!("x'0{}'", row % 10),
            "REAL" => format!("{row}.5"),
            _ => format!("{}", row * 3),
        }
    }
}

impl Spec {
    fn sql(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let mut items = vec![format!(
                "id INTEGER PRIMARY KEY{}",
                if t.autoincrement && !t.without_rowid {
                    " AUTOINCREMENT"
                } else {
                    ""
                }
            )];
            items.extend(t.cols.iter().map(Col::sql));
            if t.unique
                && let Some(c) = t.cols.first()
            {
                items.push(format!("UNIQUE (id, {})", c.name));
            }
            out.push_str(&format!(
                "CREATE TABLE {} ({}){};\n",
                t.name,
                items.join(", "),
                if t.without_rowid {
                    " WITHOUT ROWID"
                } else {
                    ""
                }
            ));
            for c in &t.cols {
                match pick(self.seed, &t.name, &c.name) {
                    0 => out.push_str(&format!(
                        "CREATE INDEX ix_{t}_{c} ON {t} ({c});\n",
                        t = t.name,
                        c = c.name
                    )),
                    1 => out.push_str(&format!(
                        "CREATE UNIQUE INDEX ux_{t}_{c} ON {t} (id, {c} DESC) WHERE {c} IS NOT NULL;\n",
                        t = t.name,
                        c = c.name
                    )),
                    _ => {}
                }
            }
            let cols: Vec<&str> = t.cols.iter().take(2).map(|c| c.name.as_str()).collect();
            if pick(self.seed, &t.name, "view") < 2 {
                out.push_str(&format!(
                    "CREATE VIEW v_{t} AS SELECT id{} FROM {t};\n",
                    cols.iter().map(|c| format!(", {c}")).collect::<String>(),
                    t = t.name
                ));
                if pick(self.seed, &t.name, "view2") == 0 {
                    out.push_str(&format!(
                        "CREATE VIEW w_{t} AS SELECT count(*) AS n FROM v_{t};\n",
                        t = t.name
                    ));
                }
            }
            if let Some(c) = cols.first()
                && pick(self.seed, &t.name, "trigger") < 2
            {
                out.push_str(&format!(
                    "CREATE TRIGGER tr_{t} AFTER UPDATE ON {t} BEGIN UPDATE {t} SET {c} = {c} WHERE id = new.id AND 0; END;\n",
                    t = t.name
                ));
            }
        }
        out
    }
}

fn col_strategy(name: String, tables: Vec<String>) -> impl Strategy<Value = Col> {
    (
        0..TYPES.len(),
        any::<bool>(),
        proptest::option::of(0u8..9),
        any::<bool>(),
        any::<bool>(),
        proptest::option::weighted(
            0.2,
            proptest::sample::select(if tables.is_empty() {
                vec!["t0".to_string()]
            } else {
                tables
            }),
        ),
    )
        .prop_map(move |(ty, nn, default, check, nocase, fk)| Col {
            name: name.clone(),
            ty: TYPES[ty],
            not_null: nn && default.is_some(),
            default,
            check,
            nocase: nocase && TYPES[ty] == "TEXT",
            fk,
        })
}

fn table_strategy(name: String) -> impl Strategy<Value = Tab> {
    let names = ["t0", "t1", "t2", "t3"].map(String::from).to_vec();
    (
        proptest::sample::subsequence((0..6).map(|i| format!("c{i}")).collect::<Vec<_>>(), 1..5),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |(cols, wr, unique, autoincrement)| {
            let name = name.clone();
            let cols: Vec<_> = cols
                .into_iter()
                .map(|c| col_strategy(c, names.clone()))
                .collect();
            (cols, Just(wr), Just(unique)).prop_map(move |(cols, wr, unique)| Tab {
                name: name.clone(),
                cols,
                without_rowid: wr,
                unique,
                autoincrement,
            })
        })
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        proptest::sample::subsequence(vec!["t0", "t1", "t2", "t3"], 1..4),
        any::<u8>(),
    )
        .prop_flat_map(|(names, seed)| {
            let tables: Vec<_> = names
                .into_iter()
                .map(|n| table_strategy(n.to_string()))
                .collect();
            (tables, Just(seed)).prop_map(|(tables, seed)| Spec { tables, seed })
        })
}

/// One edit from A towards B.
#[derive(Debug, Clone)]
enum Edit {
    DropTable(Pick),
    RenameTable(Pick),
    AddTable(Tab),
    DropCol(Pick, Pick),
    RenameCol(Pick, Pick),
    Retype(Pick, Pick, Pick),
    ToggleNotNull(Pick, Pick),
    SetDefault(Pick, Pick, Option<u8>),
    ToggleCheck(Pick, Pick),
    AddCol(Pick, Pick, Col),
    Swap(Pick, Pick, Pick),
    ToggleWithoutRowid(Pick),
    ToggleUnique(Pick),
    ToggleAutoincrement(Pick),
    Reseed(u8),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    let p = any::<Pick>;
    prop_oneof![
        1 => p().prop_map(Edit::DropTable),
        1 => p().prop_map(Edit::RenameTable),
        1 => table_strategy("t9".into()).prop_map(Edit::AddTable),
        3 => (p(), p()).prop_map(|(a, b)| Edit::DropCol(a, b)),
        3 => (p(), p()).prop_map(|(a, b)| Edit::RenameCol(a, b)),
        2 => (p(), p(), p()).prop_map(|(a, b, c)| Edit::Retype(a, b, c)),
        2 => (p(), p()).prop_map(|(a, b)| Edit::ToggleNotNull(a, b)),
        2 => (p(), p(), proptest::option::of(0u8..9)).prop_map(|(a, b, c)| Edit::SetDefault(a, b, c)),
        1 => (p(), p()).prop_map(|(a, b)| Edit::ToggleCheck(a, b)),
        4 => (p(), p(), col_strategy("n".into(), vec!["t0".into(), "t1".into()])).prop_map(|(a, b, c)| Edit::AddCol(a, b, c)),
        1 => (p(), p(), p()).prop_map(|(a, b, c)| Edit::Swap(a, b, c)),
        1 => p().prop_map(Edit::ToggleWithoutRowid),
        1 => p().prop_map(Edit::ToggleUnique),
        1 => p().prop_map(Edit::ToggleAutoincrement),
        1 => any::<u8>().prop_map(Edit::Reseed),
    ]
}

fn fresh_name(taken: &[String], base: &str) -> String {
    (0..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken.contains(n))
        .expect("a free name")
}

fn apply(spec: &Spec, edits: &[Edit]) -> Spec {
    let mut s = spec.clone();
    for e in edits {
        let n = s.tables.len();
        let table_names: Vec<String> = s.tables.iter().map(|t| t.name.clone()).collect();
        match e {
            Edit::DropTable(i) if n > 1 => {
                s.tables.remove(i.index(n));
            }
            Edit::RenameTable(i) if n > 0 => {
                let i = i.index(n);
                let old = s.tables[i].name.clone();
                let new = fresh_name(&table_names, "r");
                s.tables[i].name = new.clone();
                // SQLite's RENAME TO carries the new name into other tables' foreign keys.
                for t in &mut s.tables {
                    for c in &mut t.cols {
                        if c.fk.as_deref() == Some(old.as_str()) {
                            c.fk = Some(new.clone());
                        }
                    }
                }
            }
            Edit::AddTable(t) if !table_names.contains(&t.name) => s.tables.push(t.clone()),
            Edit::Reseed(seed) => s.seed = *seed,
            Edit::ToggleWithoutRowid(i) if n > 0 => {
                let t = &mut s.tables[i.index(n)];
                t.without_rowid = !t.without_rowid;
            }
            Edit::ToggleUnique(i) if n > 0 => {
                let t = &mut s.tables[i.index(n)];
                t.unique = !t.unique;
            }
            Edit::ToggleAutoincrement(i) if n > 0 => {
                let t = &mut s.tables[i.index(n)];
                t.autoincrement = !t.autoincrement;
            }
            _ if n > 0 => edit_columns(&mut s, e),
            _ => {}
        }
    }
    s
}

fn edit_columns(s: &mut Spec, e: &Edit) {
    let n = s.tables.len();
    let t = match e {
        Edit::DropCol(t, _)
        | Edit::RenameCol(t, _)
        | Edit::Retype(t, _, _)
        | Edit::ToggleNotNull(t, _)
        | Edit::SetDefault(t, _, _)
        | Edit::ToggleCheck(t, _)
        | Edit::AddCol(t, _, _)
        | Edit::Swap(t, _, _) => t.index(n),
        _ => return,
    };
    let t = &mut s.tables[t];
    let m = t.cols.len();
    let names: Vec<String> = t.cols.iter().map(|c| c.name.clone()).collect();
    match e {
        Edit::DropCol(_, c) if m > 1 => {
            t.cols.remove(c.index(m));
        }
        Edit::RenameCol(_, c) => {
            let c = c.index(m);
            t.cols[c].name = fresh_name(&names, "k");
        }
        Edit::Retype(_, c, ty) => {
            let c = &mut t.cols[c.index(m)];
            c.ty = TYPES[ty.index(TYPES.len())];
            c.nocase &= c.ty == "TEXT";
        }
        Edit::ToggleNotNull(_, c) => {
            let c = &mut t.cols[c.index(m)];
            c.not_null = !c.not_null && c.default.is_some();
        }
        Edit::SetDefault(_, c, d) => {
            let c = &mut t.cols[c.index(m)];
            c.default = *d;
            c.not_null &= d.is_some();
        }
        Edit::ToggleCheck(_, c) => {
            let c = &mut t.cols[c.index(m)];
            c.check = !c.check;
        }
        Edit::AddCol(_, pos, col) => {
            let mut col = col.clone();
            col.name = fresh_name(&names, "n");
            t.cols.insert(pos.index(m + 1), col);
        }
        Edit::Swap(_, a, b) => {
            t.cols.swap(a.index(m), b.index(m));
        }
        _ => {}
    }
}

fn rows_of(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// SQLite's own view of the structure: every table's and view's columns, indexes and foreign
/// keys, through pragmas.
fn pragmas(conn: &Connection) -> Vec<String> {
    let names: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger', 'index') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for (kind, name) in names {
        out.push(format!("{kind} {name}"));
        // Index order (seq) follows creation order, which is history, not schema.
        for (p, query) in [
            ("table_xinfo", "SELECT * FROM pragma_table_xinfo(?1)"),
            (
                "index_list",
                "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
            ),
            (
                "foreign_key_list",
                "SELECT * FROM pragma_foreign_key_list(?1)",
            ),
        ] {
            out.extend(
                rows_of(conn, &query.replace("?1", &format!("'{name}'")))
                    .into_iter()
                    .map(|r| format!("  {p}: {r}")),
            );
        }
        out.extend(
            rows_of(
                conn,
                &format!(
                    "SELECT il.name, ix.* FROM pragma_index_list('{name}') il, \
                     pragma_index_xinfo(il.name) ix ORDER BY il.name, ix.seqno"
                ),
            )
            .into_iter()
            .map(|r| format!("  index_xinfo: {r}")),
        );
    }
    out
}

fn check(a: &Spec, b: &Spec) -> Result<(), TestCaseError> {
    let (a_sql, b_sql) = (a.sql(), b.sql());
    let conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn.execute_batch(&a_sql)
        .map_err(|e| TestCaseError::reject(format!("A is not valid SQLite: {e}")))?;
    // Rows in A, no NULLs, so NOT NULL in B always holds; ids are the rowids.
    for t in &a.tables {
        for row in 1..=3u32 {
            let cols: Vec<&str> = t.cols.iter().map(|c| c.name.as_str()).collect();
            let vals: Vec<String> = t.cols.iter().map(|c| c.value(row)).collect();
            conn.execute_batch(&format!(
                "INSERT INTO {} (id, {}) VALUES ({}, {})",
                t.name,
                cols.join(", "),
                row * 10,
                vals.join(", ")
            ))
            .unwrap();
        }
        // The newest row is gone: an AUTOINCREMENT counter stays ahead of the rows.
        conn.execute_batch(&format!("DELETE FROM {} WHERE id = 30", t.name))
            .unwrap();
    }
    let expected = Connection::open_in_memory().unwrap();
    expected.pragma_update(None, "foreign_keys", false).unwrap();
    expected
        .execute_batch(&b_sql)
        .map_err(|e| TestCaseError::reject(format!("B is not valid SQLite: {e}")))?;

    let (sa, sb) = (
        Schema::parse(&a_sql).unwrap(),
        Schema::parse(&b_sql).unwrap(),
    );
    let d = delta(&sa, &sb, &sb);
    conn.execute_batch(&format!("BEGIN;\n{}\nCOMMIT;", d.sql))
        .map_err(|e| {
            TestCaseError::fail(format!(
                "the delta failed: {e}\n--- A\n{a_sql}\n--- B\n{b_sql}\n--- delta\n{}",
                d.sql
            ))
        })?;
    let context = || format!("\n--- A\n{a_sql}\n--- B\n{b_sql}\n--- delta\n{}", d.sql);
    let live = Schema::read(&conn).unwrap();
    prop_assert_eq!(live.to_sql(), sb.to_sql(), "{}", context());
    prop_assert_eq!(pragmas(&conn), pragmas(&expected), "{}", context());

    // AUTOINCREMENT counters of the tables A and B share survive.
    let seq = "SELECT name, seq FROM sqlite_sequence ORDER BY name";
    let has_seq = |c: &Connection| {
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            > 0
    };
    let kept: Vec<String> = b
        .tables
        .iter()
        .filter(|t| {
            let counts = |t: &Tab| t.autoincrement && !t.without_rowid;
            counts(t) && a.tables.iter().any(|x| x.name == t.name && counts(x))
        })
        .map(|t| format!("Text(\"{}\")|", t.name))
        .collect();
    let seq_rows = |c: &Connection| {
        if !has_seq(c) {
            return Vec::new();
        }
        rows_of(c, seq)
            .into_iter()
            .filter(|r| kept.iter().any(|k| r.starts_with(k)))
            .collect::<Vec<_>>()
    };

    // Rows of the columns A and B share, in tables of the same name, survive as B stores them.
    for tb in &b.tables {
        let Some(ta) = a.tables.iter().find(|t| t.name == tb.name) else {
            continue;
        };
        let shared: BTreeSet<&str> = ta
            .cols
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| tb.cols.iter().any(|c| c.name == *n))
            .collect();
        let shared: Vec<&str> = shared.into_iter().collect();
        for row in 1..=3u32 {
            let vals: Vec<String> = shared
                .iter()
                .map(|n| ta.cols.iter().find(|c| c.name == *n).unwrap().value(row))
                .collect();
            expected
                .execute_batch(&format!(
                    "INSERT INTO {} (id{}) VALUES ({}{})",
                    tb.name,
                    shared.iter().map(|c| format!(", {c}")).collect::<String>(),
                    row * 10,
                    vals.iter().map(|v| format!(", {v}")).collect::<String>()
                ))
                .unwrap();
        }
        expected
            .execute_batch(&format!("DELETE FROM {} WHERE id = 30", tb.name))
            .unwrap();
        let select = format!(
            "SELECT id{} FROM {} ORDER BY id",
            shared
                .iter()
                .map(|c| format!(", quote({c})"))
                .collect::<String>(),
            tb.name
        );
        prop_assert_eq!(
            rows_of(&conn, &select),
            rows_of(&expected, &select),
            "{}",
            context()
        );
        if !tb.without_rowid && !ta.without_rowid {
            let rowids = format!("SELECT rowid FROM {} ORDER BY rowid", tb.name);
            prop_assert_eq!(
                rows_of(&conn, &rowids),
                rows_of(&expected, &rowids),
                "{}",
                context()
            );
        }
    }
    prop_assert_eq!(seq_rows(&conn), seq_rows(&expected), "{}", context());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_delta_turns_a_into_b_and_keeps_the_rows(
        (a, b) in spec_strategy().prop_flat_map(|a| {
            (Just(a), proptest::collection::vec(edit_strategy(), 0..8))
        }).prop_map(|(a, edits)| { let b = apply(&a, &edits); (a, b) })
    ) {
        check(&a, &b)?;
    }
}

/// How to spell one token: quoting style for names, letter case for keywords, and what goes
/// before it (spaces, a newline, a comment).
#[derive(Debug, Clone, Copy)]
struct Spelling {
    quote: u8,
    upper: bool,
    gap: u8,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (0u8..4, any::<bool>(), 0u8..5).prop_map(|(quote, upper, gap)| Spelling { quote, upper, gap })
}

/// Respells `sql`: names of the spec quoted as `[x]`, `` `x` `` or `"x"` (double quotes only in
/// CREATE TABLE, where a double-quoted column name can never be read as a string), other words
/// in random case, random whitespace and comments between tokens. Views are left alone: their
/// text is kept verbatim by design.
fn respell(sql: &str, names: &BTreeSet<String>, spellings: &[Spelling]) -> String {
    let mut out = String::new();
    let mut k = 0;
    for stmt in super::sql::statements(sql).unwrap() {
        let is_view = stmt.get(1).is_some_and(|t| t.is("VIEW"));
        let is_table = stmt.get(1).is_some_and(|t| t.is("TABLE"));
        if is_view {
            let (start, end) = (stmt[0].start, stmt.last().unwrap().end);
            out.push_str(&sql[start..end]);
            out.push_str(";\n");
            continue;
        }
        let mut prev_dot = false;
        for t in &stmt {
            let s = spellings[k % spellings.len()];
            k += 1;
            let gap = match s.gap {
                _ if prev_dot || t.is_punct(".") => "",
                0 => " ",
                1 => "\n  ",
                2 => " /* c */ ",
                3 => "\t",
                _ => "  -- c\n",
            };
            out.push_str(gap);
            prev_dot = t.is_punct(".");
            let is_name = t.kind == super::sql::Kind::Word && names.contains(&t.text);
            let text = match (is_name, s.quote) {
                (true, 1) => format!("[{}]", t.text),
                (true, 2) => format!("`{}`", t.text),
                (true, 3) if is_table => format!("\"{}\"", t.text),
                (false, _)
                    if t.kind == super::sql::Kind::Word && !t.text.eq_ignore_ascii_case("new") =>
                {
                    if super::sql::is_keyword(&t.text) && !s.upper {
                        t.text.to_ascii_lowercase()
                    } else {
                        t.text.clone()
                    }
                }
                _ => t.text.clone(),
            };
            out.push_str(&text);
        }
        out.push_str(";\n");
    }
    out
}

fn spec_names(s: &Spec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for t in &s.tables {
        names.insert(t.name.clone());
        names.insert(format!("v_{}", t.name));
        names.insert(format!("w_{}", t.name));
        names.insert(format!("tr_{}", t.name));
        for c in &t.cols {
            names.insert(c.name.clone());
            names.insert(format!("ix_{}_{}", t.name, c.name));
            names.insert(format!("ux_{}_{}", t.name, c.name));
        }
    }
    names.insert("id".into());
    names
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_diff_ignores_spelling_and_the_dump_loads_back_to_the_same_structure(
        spec in spec_strategy(),
        spellings in proptest::collection::vec(spelling(), 1..40),
    ) {
        let plain = spec.sql();
        let spelled = respell(&plain, &spec_names(&spec), &spellings);
        let open = |sql: &str| {
            let c = Connection::open_in_memory().unwrap();
            c.pragma_update(None, "foreign_keys", false).unwrap();
            c.execute_batch(sql).map(|()| c)
        };
        let original = open(&spelled)
            .map_err(|e| TestCaseError::fail(format!("respelled SQL does not load: {e}\n{spelled}")))?;
        let dump = Schema::read(&original).unwrap().to_sql();
        let loaded = open(&dump)
            .map_err(|e| TestCaseError::fail(format!("the dump does not load: {e}\n{dump}")))?;
        prop_assert_eq!(pragmas(&loaded), pragmas(&original), "\n{}\n---\n{}", spelled, dump);
        prop_assert_eq!(Schema::read(&loaded).unwrap().to_sql(), dump.clone());
        // The dump keeps what SQLite keeps as written; the diff sees no difference in spelling.
        let read = |sql: &str| Schema::read(&open(sql).unwrap()).unwrap();
        let d = super::diff::diff(&read(&spelled), &read(&plain));
        prop_assert!(d.is_empty(), "{}\n{}", d, spelled);
        prop_assert_eq!(
            read(&spelled).canonical().filter(|kind, _| kind != super::ObjectKind::View).to_sql(),
            read(&plain).canonical().filter(|kind, _| kind != super::ObjectKind::View).to_sql(),
            "\n{}", spelled
        );
    }
}
