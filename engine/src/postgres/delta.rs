//! What differs between two PostgreSQL schemas (`postgres::model`), and the SQL that turns one
//! into the other: pure, two models in, a `schema::diff::Diff` (the same report as on SQLite)
//! or a `schema::delta::Delta` out.
//!
//! Tables are compared column by column (type, collation, NOT NULL, default, identity,
//! generation), constraints by name, and a column whose definition equals a removed one's, in
//! the same place, with no other candidate, is a rename. Other objects are compared as their
//! statements. The SQL uses ALTER TABLE where PostgreSQL can (it needs no table rebuild), and
//! every change that loses data (a table, column, sequence or type dropped) is listed in
//! `destructive`; changes that may fail on existing rows are listed in `warnings`.

use std::collections::BTreeMap;

use super::model::{
    Column, Constraint, Object, PgSchema, Table, add_constraint_sql, schema_of, shown,
};
use crate::core::schema::Delta;
use crate::core::schema::{
    Attribute, Change, ColumnChange, ConstraintChange, Diff, ObjectChange, TableChange,
};

/// Every difference from `from` (the snapshot) to `to` (the live schema).
pub fn diff(from: &PgSchema, to: &PgSchema) -> Diff {
    let mut d = Diff {
        quoted_names: true,
        ..Diff::default()
    };
    d.schemas = objects(&from.schemas, &to.schemas, |o| o.sql.clone());
    d.types = objects(&from.types, &to.types, |o| o.sql.clone());
    d.sequences = objects(&from.sequences, &to.sequences, |s| {
        let mut sql = s.options.clone();
        if let Some(o) = &s.owned_by {
            sql.push_str(&format!(" OWNED BY {o}"));
        }
        sql
    });
    d.functions = objects(&from.functions, &to.functions, |o| o.sql.clone());
    d.indexes = objects(&from.indexes, &to.indexes, |o| o.sql.clone());
    d.views = objects(&from.views, &to.views, |o| o.sql.clone());
    d.triggers = objects(&from.triggers, &to.triggers, |o| o.sql.clone());
    let renames = renamed_tables(from, to);
    for (name, a) in &from.tables {
        if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
            d.tables.push(TableChange::Renamed {
                from: shown(name),
                to: shown(new),
            });
            continue;
        }
        match to.tables.get(name) {
            None => d.tables.push(TableChange::Removed {
                table: shown(name),
                sql: a.create_sql(name),
            }),
            Some(b) => {
                if let Some(change) = table_change(name, a, b) {
                    d.tables.push(change);
                }
            }
        }
    }
    for (name, b) in &to.tables {
        if !from.tables.contains_key(name) && !renames.iter().any(|(_, new)| new == name) {
            d.tables.push(TableChange::Added {
                table: shown(name),
                sql: b.create_sql(name),
            });
        }
    }
    d
}

/// Tables of `from` that `to` has under another name in the same schema: the same columns and
/// constraints (PostgreSQL keeps a constraint's name when its table is renamed), and no other
/// candidate either way. (old key, new key) pairs.
pub fn renamed_tables(from: &PgSchema, to: &PgSchema) -> Vec<(String, String)> {
    let removed: Vec<(&String, &Table)> = from
        .tables
        .iter()
        .filter(|(n, _)| !to.tables.contains_key(*n))
        .collect();
    let added: Vec<(&String, &Table)> = to
        .tables
        .iter()
        .filter(|(n, _)| !from.tables.contains_key(*n))
        .collect();
    let mut out = Vec::new();
    for (old, a) in &removed {
        let same = |(n, b): &&(&String, &Table)| schema_of(n) == schema_of(old) && *b == *a;
        let candidates: Vec<&(&String, &Table)> = added.iter().filter(same).collect();
        if let [(new, b)] = candidates.as_slice()
            && removed
                .iter()
                .filter(|(n, x)| schema_of(n) == schema_of(new) && *x == *b)
                .count()
                == 1
        {
            out.push(((*old).clone(), (*new).clone()));
        }
    }
    out
}

fn objects<V: PartialEq>(
    from: &BTreeMap<String, V>,
    to: &BTreeMap<String, V>,
    sql: impl Fn(&V) -> String,
) -> Vec<ObjectChange> {
    let mut out = Vec::new();
    for (name, a) in from {
        match to.get(name) {
            None => out.push(ObjectChange {
                name: shown(name),
                change: Change::Removed,
                before: Some(sql(a)),
                after: None,
            }),
            Some(b) if sql(a) != sql(b) => out.push(ObjectChange {
                name: shown(name),
                change: Change::Changed,
                before: Some(sql(a)),
                after: Some(sql(b)),
            }),
            Some(_) => {}
        }
    }
    for (name, b) in to {
        if !from.contains_key(name) {
            out.push(ObjectChange {
                name: shown(name),
                change: Change::Added,
                before: None,
                after: Some(sql(b)),
            });
        }
    }
    out
}

/// Columns of `a` renamed in `b`: (old, new) pairs (see the module's rule).
fn renamed_columns(a: &Table, b: &Table) -> Vec<(String, String)> {
    let removed: Vec<(usize, &Column)> = a
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| b.column(&c.name).is_none())
        .collect();
    let added: Vec<(usize, &Column)> = b
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| a.column(&c.name).is_none())
        .collect();
    let same = |x: &Column, y: &Column| {
        Column {
            name: String::new(),
            ..x.clone()
        } == Column {
            name: String::new(),
            ..y.clone()
        }
    };
    let mut out = Vec::new();
    for (i, old) in &removed {
        let candidates: Vec<&(usize, &Column)> = added
            .iter()
            .filter(|(j, new)| i == j && same(old, new))
            .collect();
        if let [(_, new)] = candidates.as_slice()
            && removed
                .iter()
                .filter(|(k, o)| k == i && same(o, new))
                .count()
                == 1
        {
            out.push((old.name.clone(), new.name.clone()));
        }
    }
    out
}

fn attributes(a: &Column, b: &Column) -> Vec<Attribute> {
    let mut out = Vec::new();
    let mut attr = |name: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            out.push(Attribute {
                attribute: name.into(),
                before: x,
                after: y,
            });
        }
    };
    attr("type", Some(a.type_name.clone()), Some(b.type_name.clone()));
    attr("collation", a.collate.clone(), b.collate.clone());
    let yes = |v: bool| Some(if v { "yes" } else { "no" }.to_string());
    attr("not null", yes(a.not_null), yes(b.not_null));
    attr("default", a.default.clone(), b.default.clone());
    attr("identity", a.identity.clone(), b.identity.clone());
    attr("generated", a.generated.clone(), b.generated.clone());
    out
}

fn table_change(name: &str, a: &Table, b: &Table) -> Option<TableChange> {
    let renames = renamed_columns(a, b);
    let renamed_from = |n: &str| renames.iter().find(|(_, new)| new == n).map(|(o, _)| o);
    let mut columns = Vec::new();
    for c in &a.columns {
        if b.column(&c.name).is_none() && !renames.iter().any(|(o, _)| o == &c.name) {
            columns.push(ColumnChange::Removed {
                column: c.name.clone(),
                definition: c.sql(),
            });
        }
    }
    for (old, new) in &renames {
        columns.push(ColumnChange::Renamed {
            from: old.clone(),
            to: new.clone(),
        });
    }
    for c in &b.columns {
        match a.column(&c.name) {
            Some(old) => {
                let attrs = attributes(old, c);
                if !attrs.is_empty() {
                    columns.push(ColumnChange::Changed {
                        column: c.name.clone(),
                        attributes: attrs,
                        before: old.sql(),
                        after: c.sql(),
                    });
                }
            }
            None if renamed_from(&c.name).is_some() => {}
            None => columns.push(ColumnChange::Added {
                column: c.name.clone(),
                definition: c.sql(),
            }),
        }
    }
    let mut constraints = Vec::new();
    let text = |n: &str, c: &Constraint| format!("CONSTRAINT {n} {}", c.definition);
    for (n, c) in &a.constraints {
        if b.constraints.get(n) != Some(c) {
            constraints.push(ConstraintChange {
                added: false,
                constraint: text(n, c),
            });
        }
    }
    for (n, c) in &b.constraints {
        if a.constraints.get(n) != Some(c) {
            constraints.push(ConstraintChange {
                added: true,
                constraint: text(n, c),
            });
        }
    }
    let kept = |t: &Table, other: &Table, old_names: bool| -> Vec<String> {
        t.columns
            .iter()
            .filter_map(|c| {
                let n = if old_names {
                    c.name.clone()
                } else {
                    renamed_from(&c.name).cloned().unwrap_or(c.name.clone())
                };
                let there = if old_names {
                    other.column(&n).is_some() || renames.iter().any(|(o, _)| o == &n)
                } else {
                    a.column(&n).is_some()
                };
                there.then_some(n)
            })
            .collect()
    };
    let reordered = kept(a, b, true) != kept(b, a, false);
    let mut options = Vec::new();
    if a.unlogged != b.unlogged {
        let v = |u: bool| Some(if u { "yes" } else { "no" }.to_string());
        options.push(Attribute {
            attribute: "UNLOGGED".into(),
            before: v(a.unlogged),
            after: v(b.unlogged),
        });
    }
    if a.suffix != b.suffix {
        let v = |s: &str| (!s.is_empty()).then(|| s.trim().to_string());
        options.push(Attribute {
            attribute: "partitioning".into(),
            before: v(&a.suffix),
            after: v(&b.suffix),
        });
    }
    if columns.is_empty() && constraints.is_empty() && !reordered && options.is_empty() {
        return None;
    }
    Some(TableChange::Altered {
        table: shown(name),
        columns,
        constraints,
        reordered,
        options,
    })
}

/// The SQL that turns `from` (the snapshot) into `to` (the live schema).
pub fn delta(from: &PgSchema, to: &PgSchema) -> Delta {
    let mut out = Script::default();
    let pair = Pair {
        from,
        to,
        renames: renamed_tables(from, to),
    };
    pair.drop_first(&mut out);
    pair.create_definitions(&mut out);
    pair.alter_tables(&mut out);
    pair.link_tables(&mut out);
    pair.create_dependents(&mut out);
    pair.drop_last(&mut out);
    out.finish()
}

/// The two schemas [`delta`] goes between, and the tables renamed from one to the other.
struct Pair<'s> {
    from: &'s PgSchema,
    to: &'s PgSchema,
    renames: Vec<(String, String)>,
}

/// Whether an object's definition differs between the two sides (absent on one is a change).
fn changed(a: Option<&Object>, b: Option<&Object>) -> bool {
    a.map(|o| &o.sql) != b.map(|o| &o.sql)
}

impl Pair<'_> {
    /// Whether `n` is a table renamed, by its old name or its new one.
    fn renamed(&self, n: &String) -> bool {
        self.renames.iter().any(|(old, new)| old == n || new == n)
    }

    /// 1. What goes first: triggers, views, indexes and foreign keys that go or change.
    fn drop_first(&self, out: &mut Script) {
        let (from, to, renames) = (self.from, self.to, &self.renames);
        for (n, o) in &from.triggers {
            if !to.triggers.contains_key(n) {
                let table = o.table.as_deref().unwrap_or_default();
                let name = n.split(" on ").next().unwrap_or(n);
                out.push(format!("DROP TRIGGER {name} ON {table}"));
            }
        }
        let mut old_views = from.views_in_order();
        old_views.reverse();
        for (n, o) in old_views {
            let new = to.views.get(n);
            let materialized = o.sql.starts_with("CREATE MATERIALIZED");
            if new.is_none() || (materialized && changed(Some(o), new)) {
                let kind = if materialized {
                    "MATERIALIZED VIEW"
                } else {
                    "VIEW"
                };
                out.push(format!("DROP {kind} {n}"));
            }
        }
        for (n, o) in &from.indexes {
            if changed(Some(o), to.indexes.get(n)) {
                // IF EXISTS: a dropped materialized view took its indexes with it.
                out.push(format!("DROP INDEX IF EXISTS {n}"));
            }
        }
        for (old, new) in renames {
            let name = new.strip_prefix(schema_of(new)).unwrap_or(new);
            out.push(format!(
                "ALTER TABLE {old} RENAME TO {}",
                name.trim_start_matches('.')
            ));
        }
        for (tn, a) in &from.tables {
            let Some(b) = to.tables.get(tn) else { continue };
            for (cn, c) in &a.constraints {
                if c.foreign && b.constraints.get(cn) != Some(c) {
                    out.push(format!("ALTER TABLE {tn} DROP CONSTRAINT {cn}"));
                }
            }
        }
    }

    /// 2. New schemas, types, sequences; functions new or changed.
    fn create_definitions(&self, out: &mut Script) {
        let (from, to) = (self.from, self.to);
        for (n, o) in &to.schemas {
            if !from.schemas.contains_key(n) {
                out.push(o.sql.clone());
            }
        }
        let mut types: Vec<(&String, &Object)> = to.types.iter().collect();
        types.sort_by(|a, b| (a.1.rank, a.0).cmp(&(b.1.rank, b.0)));
        for (n, o) in types {
            match from.types.get(n) {
                None => out.push(o.sql.clone()),
                Some(old) if old.sql != o.sql => {
                    if let Some(values) = added_enum_values(&old.sql, &o.sql) {
                        for v in values {
                            out.push(format!("ALTER TYPE {n} ADD VALUE {v}"));
                        }
                    } else {
                        out.warn(format!(
                            "type {} changed: it is dropped and created again, which fails while a \
                         column or function uses it; change those by hand",
                            shown(n)
                        ));
                        out.destructive(format!("drops type {} and creates it again", shown(n)));
                        out.push(format!("DROP TYPE {n}"));
                        out.push(o.sql.clone());
                    }
                }
                Some(_) => {}
            }
        }
        for (n, s) in &to.sequences {
            match from.sequences.get(n) {
                None => out.push(s.create_sql(n)),
                Some(old) if old.options != s.options => {
                    let cycle = if s.options.ends_with(" CYCLE") {
                        ""
                    } else {
                        " NO CYCLE"
                    };
                    out.push(format!("ALTER SEQUENCE {n} {}{cycle}", s.options));
                }
                Some(_) => {}
            }
        }
        for (n, o) in &to.functions {
            if changed(from.functions.get(n), Some(o)) {
                out.push(o.sql.clone());
            }
        }
    }

    /// 3. Tables: new ones, and the ALTERs of kept ones.
    fn alter_tables(&self, out: &mut Script) {
        let (from, to) = (self.from, self.to);
        for (n, b) in &to.tables {
            match from.tables.get(n) {
                None if self.renamed(n) => {}
                None => out.push(b.create_sql(n)),
                Some(a) => alter_table(out, n, a, b),
            }
        }
    }

    /// 4. Foreign keys (new tables' and changed ones), sequence ownership.
    fn link_tables(&self, out: &mut Script) {
        let (from, to, renames) = (self.from, self.to, &self.renames);
        for (tn, b) in &to.tables {
            let old = renames
                .iter()
                .find(|(_, new)| new == tn)
                .map(|(old, _)| old);
            let a = from.tables.get(old.unwrap_or(tn));
            for (cn, c) in &b.constraints {
                if c.foreign && a.and_then(|a| a.constraints.get(cn)) != Some(c) {
                    out.push(add_constraint_sql(tn, cn, c));
                }
            }
        }
        for (n, s) in &to.sequences {
            let old = from.sequences.get(n).and_then(|o| o.owned_by.as_ref());
            if s.owned_by.as_ref() != old {
                out.push(format!(
                    "ALTER SEQUENCE {n} OWNED BY {}",
                    s.owned_by.as_deref().unwrap_or("NONE")
                ));
            }
        }
    }

    /// 5. Views (dependencies first), indexes, triggers: new or changed.
    fn create_dependents(&self, out: &mut Script) {
        let (from, to) = (self.from, self.to);
        // Materialized views dropped and created again lose their indexes: those come back too.
        let recreated: Vec<&String> = to
            .views
            .iter()
            .filter(|(n, o)| {
                o.sql.starts_with("CREATE MATERIALIZED") && changed(from.views.get(*n), Some(o))
            })
            .map(|(n, _)| n)
            .collect();
        for (n, o) in to.views_in_order() {
            let old = from.views.get(n);
            if old.is_none() || o.sql.starts_with("CREATE MATERIALIZED") && changed(old, Some(o)) {
                out.push(o.sql.clone());
            } else if changed(old, Some(o)) {
                out.push(o.sql.replacen("CREATE VIEW", "CREATE OR REPLACE VIEW", 1));
            }
        }
        for (n, o) in &to.indexes {
            let on_recreated = o.table.as_ref().is_some_and(|t| recreated.contains(&t));
            if changed(from.indexes.get(n), Some(o)) || on_recreated {
                out.push(o.sql.clone());
            }
        }
        for (n, o) in &to.triggers {
            match from.triggers.get(n) {
                None => out.push(o.sql.clone()),
                Some(old) if old.sql != o.sql => out.push(o.sql.replacen(
                    "CREATE TRIGGER",
                    "CREATE OR REPLACE TRIGGER",
                    1,
                )),
                Some(_) => {}
            }
        }
    }

    /// 6. What goes last: tables, functions, sequences, types and schemas that are gone.
    fn drop_last(&self, out: &mut Script) {
        let (from, to) = (self.from, self.to);
        for (n, a) in &from.tables {
            if !to.tables.contains_key(n) && !self.renamed(n) {
                for (cn, c) in &a.constraints {
                    if c.foreign {
                        out.push(format!("ALTER TABLE {n} DROP CONSTRAINT {cn}"));
                    }
                }
            }
        }
        for n in from.tables.keys() {
            if !to.tables.contains_key(n) && !self.renamed(n) {
                out.destructive(format!("drops table {} and its rows", shown(n)));
                out.push(format!("DROP TABLE {n}"));
            }
        }
        for n in from.functions.keys() {
            if !to.functions.contains_key(n) {
                let name = n.split('(').next().unwrap_or(n);
                out.push(format!("DROP FUNCTION {name}"));
            }
        }
        for n in from.sequences.keys() {
            if !to.sequences.contains_key(n) {
                out.destructive(format!("drops sequence {} and its current value", shown(n)));
                // A sequence owned by a dropped column or table is gone already.
                out.push(format!("DROP SEQUENCE IF EXISTS {n}"));
            }
        }
        for (n, o) in &from.types {
            if !to.types.contains_key(n) {
                let domain = o.sql.starts_with("CREATE DOMAIN");
                out.push(format!(
                    "DROP {} {n}",
                    if domain { "DOMAIN" } else { "TYPE" }
                ));
            }
        }
        for n in from.schemas.keys() {
            if !to.schemas.contains_key(n) {
                out.push(format!("DROP SCHEMA {n}"));
            }
        }
    }
}

/// The values appended to an enum, when that is the only change.
fn added_enum_values(before: &str, after: &str) -> Option<Vec<String>> {
    let values = |s: &str| -> Option<Vec<String>> {
        let inner = s.split_once("AS ENUM (")?.1.strip_suffix(')')?;
        Some(
            split_top(inner)
                .into_iter()
                .map(|v| v.trim().to_string())
                .collect(),
        )
    };
    let (a, b) = (values(before)?, values(after)?);
    (b.len() > a.len() && b[..a.len()] == a[..]).then(|| b[a.len()..].to_vec())
}

/// Splits at commas outside quotes.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn alter_table(out: &mut Script, n: &str, a: &Table, b: &Table) {
    let Some(TableChange::Altered {
        columns,
        reordered,
        options,
        ..
    }) = table_change(n, a, b)
    else {
        return;
    };
    // Constraints that go or change first (they may name columns that go).
    for (cn, c) in &a.constraints {
        if !c.foreign && b.constraints.get(cn) != Some(c) {
            out.push(format!("ALTER TABLE {n} DROP CONSTRAINT {cn}"));
        }
    }
    for change in &columns {
        match change {
            ColumnChange::Removed { column, .. } => {
                out.destructive(format!(
                    "drops column {column} of table {} and its values",
                    shown(n)
                ));
                out.push(format!("ALTER TABLE {n} DROP COLUMN {column}"));
            }
            ColumnChange::Renamed { from, to } => {
                out.push(format!("ALTER TABLE {n} RENAME COLUMN {from} TO {to}"))
            }
            ColumnChange::Added { column, definition } => {
                let c = b
                    .column(column)
                    .expect("an added column is in the new table");
                if c.not_null
                    && c.default.is_none()
                    && c.identity.is_none()
                    && c.generated.is_none()
                {
                    out.warn(format!(
                        "column {column} of {} is NOT NULL without a default: adding it fails \
                         if the table has rows",
                        shown(n)
                    ));
                }
                out.push(format!("ALTER TABLE {n} ADD COLUMN {definition}"));
            }
            ColumnChange::Changed { column, .. } => {
                let (x, y) = (
                    a.column(column).expect("a changed column was there"),
                    b.column(column).expect("a changed column is there"),
                );
                alter_column(out, n, x, y);
            }
        }
    }
    for (cn, c) in &b.constraints {
        if !c.foreign && a.constraints.get(cn) != Some(c) {
            out.push(add_constraint_sql(n, cn, c));
        }
    }
    if reordered {
        out.warn(format!(
            "the columns of {} are in another order: PostgreSQL cannot reorder columns, so the \
             SQL leaves the order as it is",
            shown(n)
        ));
    }
    for o in options {
        match o.attribute.as_str() {
            "UNLOGGED" => out.push(format!(
                "ALTER TABLE {n} SET {}",
                if b.unlogged { "UNLOGGED" } else { "LOGGED" }
            )),
            _ => out.warn(format!(
                "the partitioning of {} changed, which needs the table created again: write \
                 that by hand",
                shown(n)
            )),
        }
    }
}

fn alter_column(out: &mut Script, n: &str, a: &Column, b: &Column) {
    let c = &b.name;
    let col = format!("ALTER TABLE {n} ALTER COLUMN {c}");
    if a.generated != b.generated {
        // PostgreSQL 15 cannot change a generation expression: the column is added again.
        out.warn(format!(
            "column {c} of {} is generated differently: it is dropped and added again",
            shown(n)
        ));
        out.push(format!("ALTER TABLE {n} DROP COLUMN {c}"));
        out.push(format!("ALTER TABLE {n} ADD COLUMN {}", b.sql()));
        return;
    }
    if a.identity.is_some() && a.identity != b.identity {
        out.push(format!("{col} DROP IDENTITY"));
    }
    if a.default.is_some() && b.default.is_none() {
        out.push(format!("{col} DROP DEFAULT"));
    }
    if a.type_name != b.type_name || a.collate != b.collate {
        let collate = b
            .collate
            .as_ref()
            .map(|x| format!(" COLLATE {x}"))
            .unwrap_or_default();
        out.warn(format!(
            "column {c} of {} changes type from {} to {}: each value is converted, which fails \
             (or loses precision) where it does not fit",
            shown(n),
            a.type_name,
            b.type_name
        ));
        out.push(format!(
            "{col} TYPE {}{collate} USING {c}::{}",
            b.type_name, b.type_name
        ));
    }
    if let Some(d) = &b.default
        && a.default.as_ref() != Some(d)
    {
        out.push(format!("{col} SET DEFAULT {d}"));
    }
    if a.not_null != b.not_null {
        if b.not_null {
            out.warn(format!(
                "column {c} of {} becomes NOT NULL: that fails if a row holds NULL there",
                shown(n)
            ));
            out.push(format!("{col} SET NOT NULL"));
        } else {
            out.push(format!("{col} DROP NOT NULL"));
        }
    }
    if let Some(i) = &b.identity
        && a.identity.as_ref() != Some(i)
    {
        out.push(format!("{col} ADD {i}"));
    }
}

/// The delta being written.
#[derive(Default)]
struct Script {
    statements: Vec<String>,
    destructive: Vec<String>,
    warnings: Vec<String>,
}

impl Script {
    fn push(&mut self, sql: String) {
        self.statements.push(sql);
    }
    fn destructive(&mut self, what: String) {
        self.destructive.push(what);
    }
    fn warn(&mut self, what: String) {
        self.warnings.push(what);
    }
    fn finish(self) -> Delta {
        let mut sql = String::new();
        for w in &self.destructive {
            sql.push_str(&format!("-- DESTRUCTIVE: {w}\n"));
        }
        for w in &self.warnings {
            sql.push_str(&format!("-- CHECK: {w}\n"));
        }
        if !sql.is_empty() && !self.statements.is_empty() {
            sql.push('\n');
        }
        for s in &self.statements {
            sql.push_str(s);
            sql.push_str(";\n");
        }
        if self.statements.is_empty() {
            sql.clear();
        }
        Delta {
            sql,
            destructive: self.destructive,
            warnings: self.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn schema(text: &str) -> PgSchema {
        PgSchema::parse(Path::new("schema.sql"), text).unwrap()
    }

    const BEFORE: &str = "CREATE TABLE public.t (
    id integer NOT NULL,
    name text,
    gone integer,
    CONSTRAINT t_pkey PRIMARY KEY (id)
);

CREATE TABLE public.u (
    id integer
);

CREATE INDEX t_name ON public.t USING btree (name);
";

    #[test]
    fn equal_schemas_have_no_diff_and_no_sql() {
        let a = schema(BEFORE);
        assert!(diff(&a, &a).is_empty());
        assert!(delta(&a, &a).is_empty());
    }

    #[test]
    fn column_changes_are_named_and_altered_in_place() {
        let after = "CREATE TABLE public.t (
    id integer NOT NULL,
    name character varying(40) NOT NULL DEFAULT 'x'::character varying,
    born date,
    CONSTRAINT t_pkey PRIMARY KEY (id),
    CONSTRAINT t_name_check CHECK ((name <> ''::text))
);

CREATE TABLE public.u (
    id integer
);

CREATE UNIQUE INDEX t_name ON public.t USING btree (name);
";
        let (a, b) = (schema(BEFORE), schema(after));
        let d = diff(&a, &b);
        assert_eq!(
            d.to_string(),
            "~ table t\n    - column gone integer\n    ~ column name: type text -> \
             character varying(40); not null no -> yes; default (none) -> \
             'x'::character varying\n    + column born date\n    + CONSTRAINT t_name_check \
             CHECK ((name <> ''::text))\n~ index t_name\n"
        );
        let sql = delta(&a, &b);
        assert_eq!(
            sql.destructive,
            ["drops column gone of table t and its values"]
        );
        let statements: Vec<&str> = sql.sql.lines().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(
            statements,
            [
                "",
                "DROP INDEX IF EXISTS public.t_name;",
                "ALTER TABLE public.t DROP COLUMN gone;",
                "ALTER TABLE public.t ALTER COLUMN name TYPE character varying(40) USING \
                 name::character varying(40);",
                "ALTER TABLE public.t ALTER COLUMN name SET DEFAULT 'x'::character varying;",
                "ALTER TABLE public.t ALTER COLUMN name SET NOT NULL;",
                "ALTER TABLE public.t ADD COLUMN born date;",
                "ALTER TABLE public.t ADD CONSTRAINT t_name_check CHECK ((name <> ''::text));",
                "CREATE UNIQUE INDEX t_name ON public.t USING btree (name);",
            ]
        );
        assert!(sql.warnings.iter().any(|w| w.contains("becomes NOT NULL")));
    }

    #[test]
    fn a_column_in_the_same_place_with_the_same_definition_is_a_rename() {
        let after = BEFORE.replace("gone integer", "kept integer");
        let (a, b) = (schema(BEFORE), schema(&after));
        assert_eq!(
            diff(&a, &b).to_string(),
            "~ table t\n    ~ column gone renamed to kept\n"
        );
        let sql = delta(&a, &b);
        assert!(sql.destructive.is_empty());
        assert_eq!(
            sql.sql,
            "ALTER TABLE public.t RENAME COLUMN gone TO kept;\n"
        );
    }

    #[test]
    fn a_table_with_the_same_definition_under_another_name_is_a_rename() {
        let after = BEFORE.replace("public.u ", "public.people ");
        let (a, b) = (schema(BEFORE), schema(&after));
        assert_eq!(diff(&a, &b).to_string(), "~ table u renamed to people\n");
        let sql = delta(&a, &b);
        assert!(sql.destructive.is_empty());
        assert_eq!(sql.sql, "ALTER TABLE public.u RENAME TO people;\n");
        // Two candidates of the same shape: no guess.
        let two = after.replace(
            "CREATE INDEX",
            "CREATE TABLE public.folk (\n    id integer\n);\n\nCREATE INDEX",
        );
        assert!(diff(&a, &schema(&two)).to_string().contains("- table u"));
    }

    #[test]
    fn a_changed_materialized_view_comes_back_with_its_indexes() {
        let before = "CREATE MATERIALIZED VIEW public.m AS\n SELECT 1 AS x\n  WITH NO DATA;\n\n\
                      CREATE INDEX m_x ON public.m USING btree (x);\n";
        let after = before.replace("SELECT 1", "SELECT 2");
        let sql = delta(&schema(before), &schema(&after));
        assert_eq!(
            sql.sql,
            "DROP MATERIALIZED VIEW public.m;\n\
             CREATE MATERIALIZED VIEW public.m AS\n SELECT 2 AS x\n  WITH NO DATA;\n\
             CREATE INDEX m_x ON public.m USING btree (x);\n"
        );
    }

    #[test]
    fn dropped_objects_are_destructive_and_go_last() {
        let after = "CREATE SCHEMA app;

CREATE TYPE public.mood AS ENUM ('sad', 'ok');

CREATE TABLE public.t (
    id integer NOT NULL,
    name text,
    gone integer,
    CONSTRAINT t_pkey PRIMARY KEY (id)
);

CREATE VIEW public.v AS
 SELECT t.id
   FROM public.t;
";
        let (a, b) = (schema(BEFORE), schema(after));
        assert_eq!(
            diff(&a, &b).to_string(),
            "- table u\n+ schema app\n+ type mood\n- index t_name\n+ view v\n"
        );
        let sql = delta(&a, &b);
        assert_eq!(sql.destructive, ["drops table u and its rows"]);
        assert!(sql.sql.ends_with("DROP TABLE public.u;\n"), "{}", sql.sql);
        // An enum with a value appended changes in place.
        let more = after.replace("'ok')", "'ok', 'glad')");
        let sql = delta(&b, &schema(&more));
        assert_eq!(sql.sql, "ALTER TYPE public.mood ADD VALUE 'glad';\n");
    }
}
