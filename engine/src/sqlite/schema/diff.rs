//! What changed between two schemas: tables added, removed, renamed or altered (columns added,
//! removed, renamed or changed in type, nullability, default, primary key, collation, generation
//! or other constraints; table constraints; column order; options), and indexes, views and
//! triggers added, removed or changed.
//!
//! Pure: two models in, a [`Diff`] out, which prints readably (`Display`) and serializes to JSON.
//! Renames are inferred conservatively: a table whose definition equals a removed one but for its
//! name, and a column whose definition equals a removed one's, in the same place among the kept
//! columns, with no other candidate either way. Generating SQL is `delta`'s job.

use std::collections::{HashMap, HashSet};

use super::dump::{column_sql, constraint_sql, index_sql, table_sql, trigger_sql, view_sql};
use super::sql::{self, quote_ident};
use super::{ColumnDef, Schema, Table};
use crate::core::schema::ColumnChange;
use crate::core::schema::ConstraintChange;
use crate::core::schema::Diff;
use crate::core::schema::ObjectChange;
use crate::core::schema::TableChange;
use crate::core::schema::{Attribute, Change};

/// Canonical text for comparing definitions: tokens re-rendered, with identifiers renamed.
fn canon(text: &str, renames: &HashMap<String, String>) -> String {
    match sql::tokenize(text) {
        Ok(tokens) => sql::render_renamed(&tokens, renames, &HashSet::new()),
        Err(_) => text.to_string(),
    }
}

fn rename_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(from, to)| (from.to_ascii_lowercase(), to.to_string()))
        .collect()
}

/// Tables of `from` that `to` has under another name: same definition but for the name, and
/// no other candidate either way. (old name, new name) pairs.
pub fn renamed_tables(from: &Schema, to: &Schema) -> Vec<(String, String)> {
    let (from, to) = (&from.canonical(), &to.canonical());
    let removed: Vec<&Table> = from
        .tables
        .iter()
        .filter(|(k, _)| !to.tables.contains_key(*k))
        .map(|(_, t)| t)
        .collect();
    let added: Vec<&Table> = to
        .tables
        .iter()
        .filter(|(k, _)| !from.tables.contains_key(*k))
        .map(|(_, t)| t)
        .collect();
    let same_but_name = |a: &Table, b: &Table| {
        canon(&table_sql(a), &rename_map(&[(&a.name, &b.name)]))
            == canon(&table_sql(b), &HashMap::new())
    };
    let mut out = Vec::new();
    for a in &removed {
        let candidates: Vec<&&Table> = added.iter().filter(|b| same_but_name(a, b)).collect();
        if let [b] = candidates.as_slice()
            && removed.iter().filter(|x| same_but_name(x, b)).count() == 1
        {
            out.push((a.name.clone(), b.name.clone()));
        }
    }
    out
}

/// `schema` with foreign keys that name a renamed table pointing to its new name, as SQLite's
/// `ALTER TABLE ... RENAME TO` leaves them.
pub fn with_references_renamed(schema: &Schema, renames: &[(String, String)]) -> Schema {
    let mut out = schema.clone();
    let follow = |fk: &mut super::ForeignKey| {
        if let Some((_, new)) = renames
            .iter()
            .find(|(old, _)| old.eq_ignore_ascii_case(&fk.table))
        {
            fk.table = new.clone();
        }
    };
    for t in out.tables.values_mut() {
        for c in &mut t.columns {
            for (_, k) in &mut c.constraints {
                if let super::ColumnConstraint::References(fk) = k {
                    follow(fk);
                }
            }
        }
        for k in &mut t.constraints {
            if let super::ConstraintKind::ForeignKey { references, .. } = &mut k.kind {
                follow(references);
            }
        }
    }
    out
}

/// Compares two schemas, in canonical form (see [`Schema::canonical`]): spelling alone is no
/// difference.
pub fn diff(from: &Schema, to: &Schema) -> Diff {
    let (from, to) = (&from.canonical(), &to.canonical());
    let renames = renamed_tables(from, to);
    let from = &with_references_renamed(from, &renames);
    let mut out = Diff::default();
    let removed: Vec<&Table> = from
        .tables
        .iter()
        .filter(|(k, _)| !to.tables.contains_key(*k))
        .map(|(_, t)| t)
        .collect();
    let added: Vec<&Table> = to
        .tables
        .iter()
        .filter(|(k, _)| !from.tables.contains_key(*k))
        .map(|(_, t)| t)
        .collect();
    let renamed: Vec<(&Table, &Table)> = renames
        .iter()
        .map(|(a, b)| {
            (
                &from.tables[&a.to_ascii_lowercase()],
                &to.tables[&b.to_ascii_lowercase()],
            )
        })
        .collect();
    for a in &removed {
        if let Some((_, b)) = renamed.iter().find(|(x, _)| std::ptr::eq(*x, *a)) {
            out.tables.push(TableChange::Renamed {
                from: a.name.clone(),
                to: b.name.clone(),
            });
        } else {
            out.tables.push(TableChange::Removed {
                table: a.name.clone(),
                sql: table_sql(a),
            });
        }
    }
    for (key, a) in &from.tables {
        if let Some(b) = to.tables.get(key)
            && let Some(change) = table_diff(a, b)
        {
            out.tables.push(change);
        }
    }
    for b in &added {
        if !renamed.iter().any(|(_, x)| std::ptr::eq(*x, *b)) {
            out.tables.push(TableChange::Added {
                table: b.name.clone(),
                sql: table_sql(b),
            });
        }
    }
    out.indexes = objects(&from.indexes, &to.indexes, index_sql, |i| &i.name);
    out.views = objects(&from.views, &to.views, view_sql, |v| &v.name);
    out.triggers = objects(&from.triggers, &to.triggers, trigger_sql, |t| &t.name);
    out
}

fn objects<T>(
    from: &std::collections::BTreeMap<String, T>,
    to: &std::collections::BTreeMap<String, T>,
    sql_of: impl Fn(&T) -> String,
    name_of: impl Fn(&T) -> &String,
) -> Vec<ObjectChange> {
    let mut out = Vec::new();
    for (k, a) in from {
        match to.get(k) {
            None => out.push(ObjectChange {
                name: name_of(a).clone(),
                change: Change::Removed,
                before: Some(sql_of(a)),
                after: None,
            }),
            Some(b) if sql_of(a) != sql_of(b) => out.push(ObjectChange {
                name: name_of(b).clone(),
                change: Change::Changed,
                before: Some(sql_of(a)),
                after: Some(sql_of(b)),
            }),
            Some(_) => {}
        }
    }
    for (k, b) in to {
        if !from.contains_key(k) {
            out.push(ObjectChange {
                name: name_of(b).clone(),
                change: Change::Added,
                before: None,
                after: Some(sql_of(b)),
            });
        }
    }
    out
}

/// How the columns of two versions of a table correspond.
#[derive(Debug, Clone, Default)]
pub struct ColumnMatch {
    /// (index in `from`, index in `to`) of each kept column, in `from` order; renamed ones too.
    pub kept: Vec<(usize, usize)>,
    /// Indexes in `from` of columns that are gone.
    pub removed: Vec<usize>,
    /// Indexes in `to` of new columns.
    pub added: Vec<usize>,
    /// lowercase old name -> new name, for renamed columns.
    pub renames: HashMap<String, String>,
}

/// Matches columns by name, then pairs a removed column with an added one as a rename when
/// their definitions are equal but for the name, they follow the same kept column, and neither
/// has another candidate.
pub fn match_columns(a: &Table, b: &Table) -> ColumnMatch {
    let find = |t: &Table, name: &str| {
        t.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    };
    let by_name: Vec<Option<usize>> = a.columns.iter().map(|c| find(b, &c.name)).collect();
    let removed: Vec<usize> = (0..a.columns.len())
        .filter(|&i| by_name[i].is_none())
        .collect();
    let added: Vec<usize> = (0..b.columns.len())
        .filter(|&j| !by_name.contains(&Some(j)))
        .collect();
    // The nearest kept-by-name column before a position, by lowercase name.
    let anchor = |t: &Table, pos: usize, kept: &dyn Fn(usize) -> bool| {
        (0..pos)
            .rev()
            .find(|&k| kept(k))
            .map(|k| t.columns[k].name.to_ascii_lowercase())
    };
    let kept_a = |k: usize| by_name[k].is_some();
    let kept_b = |k: usize| by_name.contains(&Some(k));
    let candidate = |i: usize, j: usize| {
        let (ca, cb) = (&a.columns[i], &b.columns[j]);
        same_column(ca, cb, &rename_map(&[(&ca.name, &cb.name)]))
            && anchor(a, i, &kept_a) == anchor(b, j, &kept_b)
    };
    let mut pairs = Vec::new();
    for &i in &removed {
        let mine: Vec<usize> = added.iter().copied().filter(|&j| candidate(i, j)).collect();
        if let [j] = mine.as_slice()
            && removed.iter().filter(|&&x| candidate(x, *j)).count() == 1
        {
            pairs.push((i, *j));
        }
    }
    let mut m = ColumnMatch::default();
    for (i, matched) in by_name.iter().enumerate() {
        if let Some(j) = *matched {
            m.kept.push((i, j));
        } else if let Some(&(_, j)) = pairs.iter().find(|(x, _)| *x == i) {
            m.kept.push((i, j));
            m.renames.insert(
                a.columns[i].name.to_ascii_lowercase(),
                b.columns[j].name.clone(),
            );
        } else {
            m.removed.push(i);
        }
    }
    m.added = added
        .into_iter()
        .filter(|j| !pairs.iter().any(|(_, x)| x == j))
        .collect();
    m
}

/// Whether two column definitions are the same once `renames` is applied to the first.
pub fn same_column(a: &ColumnDef, b: &ColumnDef, renames: &HashMap<String, String>) -> bool {
    canon(&column_sql(a), renames) == canon(&column_sql(b), &HashMap::new())
}

/// The table constraints of `a` (with `renames` applied) and `b`, canonical, for comparison.
pub fn constraints_canon(t: &Table, renames: &HashMap<String, String>) -> Vec<String> {
    t.constraints
        .iter()
        .map(|c| canon(&constraint_sql(c), renames))
        .collect()
}

fn table_diff(a: &Table, b: &Table) -> Option<TableChange> {
    if a == b {
        return None;
    }
    let m = match_columns(a, b);
    let mut columns = Vec::new();
    for &i in &m.removed {
        columns.push(ColumnChange::Removed {
            column: a.columns[i].name.clone(),
            definition: column_sql(&a.columns[i]),
        });
    }
    for &(i, j) in &m.kept {
        let (ca, cb) = (&a.columns[i], &b.columns[j]);
        if !ca.name.eq_ignore_ascii_case(&cb.name) {
            columns.push(ColumnChange::Renamed {
                from: ca.name.clone(),
                to: cb.name.clone(),
            });
        }
        if !same_column(ca, cb, &m.renames) {
            columns.push(ColumnChange::Changed {
                column: cb.name.clone(),
                attributes: attributes(ca, cb, &m.renames),
                before: column_sql(ca),
                after: column_sql(cb),
            });
        }
    }
    for &j in &m.added {
        columns.push(ColumnChange::Added {
            column: b.columns[j].name.clone(),
            definition: column_sql(&b.columns[j]),
        });
    }
    let before = constraints_canon(a, &m.renames);
    let after = constraints_canon(b, &HashMap::new());
    let mut constraints = Vec::new();
    for (k, c) in before.iter().enumerate() {
        if !after.contains(c) {
            constraints.push(ConstraintChange {
                added: false,
                constraint: constraint_sql(&a.constraints[k]),
            });
        }
    }
    for (k, c) in after.iter().enumerate() {
        if !before.contains(c) {
            constraints.push(ConstraintChange {
                added: true,
                constraint: constraint_sql(&b.constraints[k]),
            });
        }
    }
    let order_b: Vec<usize> = m.kept.iter().map(|&(_, j)| j).collect();
    let reordered = order_b.windows(2).any(|w| w[0] > w[1]);
    let mut options = Vec::new();
    let yes_no = |v: bool| Some(if v { "yes" } else { "no" }.to_string());
    if a.without_rowid != b.without_rowid {
        options.push(attr(
            "WITHOUT ROWID",
            yes_no(a.without_rowid),
            yes_no(b.without_rowid),
        ));
    }
    if a.strict != b.strict {
        options.push(attr("STRICT", yes_no(a.strict), yes_no(b.strict)));
    }
    if a.virtual_using != b.virtual_using {
        options.push(attr(
            "USING",
            a.virtual_using.clone(),
            b.virtual_using.clone(),
        ));
    }
    if a.name != b.name {
        options.push(attr(
            "name",
            Some(quote_ident(&a.name)),
            Some(quote_ident(&b.name)),
        ));
    }
    if columns.is_empty() && constraints.is_empty() && !reordered && options.is_empty() {
        return None;
    }
    Some(TableChange::Altered {
        table: b.name.clone(),
        columns,
        constraints,
        reordered,
        options,
    })
}

fn attr(name: &str, before: Option<String>, after: Option<String>) -> Attribute {
    Attribute {
        attribute: name.to_string(),
        before,
        after,
    }
}

/// The attributes that differ between two versions of a column.
fn attributes(a: &ColumnDef, b: &ColumnDef, renames: &HashMap<String, String>) -> Vec<Attribute> {
    let mut out = Vec::new();
    let yes_no = |v: bool| Some(if v { "yes" } else { "no" }.to_string());
    let mut check = |name: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            out.push(attr(name, x, y));
        }
    };
    check("type", a.type_name.clone(), b.type_name.clone());
    check("not null", yes_no(a.not_null()), yes_no(b.not_null()));
    check(
        "default",
        a.default_value().map(|d| canon(d, renames)),
        b.default_value().map(|d| canon(d, &HashMap::new())),
    );
    check(
        "primary key",
        yes_no(a.primary_key()),
        yes_no(b.primary_key()),
    );
    check(
        "collation",
        a.collation().map(str::to_string),
        b.collation().map(str::to_string),
    );
    let generated = |c: &ColumnDef, r: &HashMap<String, String>| {
        c.generated().map(|(e, stored)| {
            format!(
                "AS ({}) {}",
                canon(e, r),
                if stored { "STORED" } else { "VIRTUAL" }
            )
        })
    };
    check(
        "generated",
        generated(a, renames),
        generated(b, &HashMap::new()),
    );
    if a.name != b.name && a.name.eq_ignore_ascii_case(&b.name) {
        check("name", Some(a.name.clone()), Some(b.name.clone()));
    }
    if out.is_empty() {
        // Something else: CHECK, UNIQUE, REFERENCES, a constraint's name or conflict clause.
        out.push(attr(
            "constraints",
            Some(canon(&column_sql(a), renames)),
            Some(canon(&column_sql(b), &HashMap::new())),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> Diff {
        diff(&Schema::parse(a).unwrap(), &Schema::parse(b).unwrap())
    }

    #[test]
    fn equal_schemas_have_no_diff_whatever_their_spelling() {
        let a = "CREATE TABLE [t] ( [a]  INTEGER PRIMARY KEY, b TEXT ) ; CREATE INDEX i ON t(b)";
        let b = "create table t(a INTEGER primary key,\n \"b\" TEXT);\nCREATE INDEX \"i\" ON \"t\" ( b )";
        let diff = d(a, b);
        assert!(diff.is_empty(), "{diff}");
        assert_eq!(diff.to_string(), "");
    }

    #[test]
    fn column_changes_are_named_attribute_by_attribute() {
        let diff = d(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c REAL)",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL DEFAULT 'x' COLLATE NOCASE, c REAL, d BLOB)",
        );
        assert_eq!(
            diff.to_string(),
            "~ table t\n\
             \x20   - column b INT\n\
             \x20   ~ column a: not null no -> yes; default (none) -> 'x'; collation (none) -> NOCASE\n\
             \x20   + column d BLOB\n"
        );
    }

    #[test]
    fn a_column_in_the_same_place_with_the_same_definition_is_a_rename() {
        let diff = d(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT CHECK (a <> ''), z INT)",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, b TEXT CHECK (b <> ''), z INT)",
        );
        assert_eq!(diff.to_string(), "~ table t\n    ~ column a renamed to b\n");
        // Two candidates of the same shape: no guess.
        let diff = d(
            "CREATE TABLE t(id, a TEXT, b TEXT)",
            "CREATE TABLE t(id, c TEXT)",
        );
        assert!(diff.to_string().contains("- column a TEXT"), "{diff}");
        assert!(diff.to_string().contains("- column b TEXT"), "{diff}");
        assert!(diff.to_string().contains("+ column c TEXT"), "{diff}");
    }

    #[test]
    fn tables_added_removed_renamed_and_other_objects() {
        let diff = d(
            "CREATE TABLE a(x); CREATE TABLE gone(y INT); CREATE TABLE old(q TEXT, r INT);
             CREATE VIEW v AS SELECT x FROM a; CREATE INDEX i ON a(x);
             CREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END",
            "CREATE TABLE a(x); CREATE TABLE new(q TEXT, r INT); CREATE TABLE fresh(z);
             CREATE VIEW v AS SELECT x AS y FROM a; CREATE UNIQUE INDEX i ON a(x)",
        );
        assert_eq!(
            diff.to_string(),
            "- table gone\n~ table old renamed to new\n+ table fresh\n~ index i\n~ view v\n- trigger tr\n"
        );
        let json = serde_json::to_value(&diff).unwrap();
        assert_eq!(json["tables"][1]["change"], "renamed");
        assert_eq!(json["views"][0]["change"], "changed");
    }

    #[test]
    fn constraints_order_and_options() {
        let diff = d(
            "CREATE TABLE t(a, b, CHECK (a > 0))",
            "CREATE TABLE t(b, a, UNIQUE (a)) STRICT",
        );
        assert_eq!(
            diff.to_string(),
            "~ table t\n    - CHECK (a > 0)\n    + UNIQUE (a)\n    ~ column order\n    ~ STRICT no -> yes\n"
        );
    }
}
