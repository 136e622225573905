//! The model as SQL: one canonical `CREATE` statement per object, and a whole schema as a
//! deterministic script that SQLite loads into an empty database to give the same schema back.
//!
//! Order: each table (by name) followed by its indexes, then indexes on tables outside the
//! schema, then views (a view after the views it reads), then triggers (by name). Names are
//! quoted only where they need it; keywords strata writes are upper case; a view's query is
//! kept as written. Pure: no database.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::sql::{self, quote_ident};
use super::{
    ColumnConstraint, ColumnDef, ConstraintKind, ForeignKey, Index, IndexedColumn, Schema, Table,
    TableConstraint, Trigger, View,
};

/// The whole schema as a script; empty for an empty schema.
pub fn render(schema: &Schema) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    for (key, t) in &schema.tables {
        let mut block = format!("{};\n", table_sql(t));
        for (ikey, i) in &schema.indexes {
            if i.table.eq_ignore_ascii_case(key) {
                block.push_str(&format!("{};\n", index_sql(i)));
                placed.insert(ikey);
            }
        }
        blocks.push(block);
    }
    let mut others: Vec<&Index> = schema
        .indexes
        .iter()
        .filter(|(k, _)| !placed.contains(k.as_str()))
        .map(|(_, i)| i)
        .collect();
    others.sort_by_key(|i| (i.table.to_ascii_lowercase(), i.name.to_ascii_lowercase()));
    if !others.is_empty() {
        blocks.push(
            others
                .iter()
                .map(|i| format!("{};\n", index_sql(i)))
                .collect(),
        );
    }
    for v in views_in_order(&schema.views) {
        blocks.push(format!("{};\n", view_sql(v)));
    }
    for t in schema.triggers.values() {
        blocks.push(format!("{};\n", trigger_sql(t)));
    }
    blocks.join("\n")
}

/// Views so that each comes after the views its query mentions; ties by name.
pub fn views_in_order(views: &BTreeMap<String, View>) -> Vec<&View> {
    let deps: BTreeMap<&String, BTreeSet<&String>> = views
        .iter()
        .map(|(k, v)| {
            let names = sql::tokenize(&v.query)
                .map(|t| sql::mentioned_names(&t))
                .unwrap_or_default();
            let on: BTreeSet<&String> = views
                .keys()
                .filter(|other| *other != k && names.contains(*other))
                .collect();
            (k, on)
        })
        .collect();
    let mut done: BTreeSet<&String> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < views.len() {
        let ready = deps
            .iter()
            .find(|(k, on)| !done.contains(*k) && on.iter().all(|d| done.contains(d)))
            .map(|(k, _)| *k)
            // A cycle cannot be created in SQLite; should one appear, fall back to name order.
            .or_else(|| views.keys().find(|k| !done.contains(k)))
            .expect("a view is left");
        done.insert(ready);
        out.push(&views[ready]);
    }
    out
}

/// `CREATE TABLE` for `t`, one column or constraint per line.
pub fn table_sql(t: &Table) -> String {
    table_sql_named(t, &t.name)
}

/// `CREATE TABLE` for `t` under another name (a rebuild's new table).
pub fn table_sql_named(t: &Table, name: &str) -> String {
    if let Some(using) = &t.virtual_using {
        return format!("CREATE VIRTUAL TABLE {} USING {using}", quote_ident(name));
    }
    let mut items: Vec<String> = t.columns.iter().map(column_sql).collect();
    items.extend(t.constraints.iter().map(constraint_sql));
    let mut out = format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_ident(name),
        items.join(",\n  ")
    );
    let mut options = Vec::new();
    if t.without_rowid {
        options.push("WITHOUT ROWID");
    }
    if t.strict {
        options.push("STRICT");
    }
    if !options.is_empty() {
        out.push(' ');
        out.push_str(&options.join(", "));
    }
    out
}

/// A column definition: `name type constraints...`.
pub fn column_sql(c: &ColumnDef) -> String {
    let mut out = quote_ident(&c.name);
    if let Some(t) = &c.type_name {
        out.push(' ');
        out.push_str(t);
    }
    for (name, k) in &c.constraints {
        out.push(' ');
        if let Some(n) = name {
            out.push_str(&format!("CONSTRAINT {} ", quote_ident(n)));
        }
        out.push_str(&column_constraint_sql(k));
    }
    out
}

fn conflict(c: &Option<String>) -> String {
    c.as_ref()
        .map(|c| format!(" ON CONFLICT {c}"))
        .unwrap_or_default()
}

pub fn column_constraint_sql(k: &ColumnConstraint) -> String {
    match k {
        ColumnConstraint::PrimaryKey {
            order,
            conflict: c,
            autoincrement,
        } => format!(
            "PRIMARY KEY{}{}{}",
            order.as_ref().map(|o| format!(" {o}")).unwrap_or_default(),
            conflict(c),
            if *autoincrement { " AUTOINCREMENT" } else { "" }
        ),
        ColumnConstraint::NotNull { conflict: c } => format!("NOT NULL{}", conflict(c)),
        ColumnConstraint::Null { conflict: c } => format!("NULL{}", conflict(c)),
        ColumnConstraint::Unique { conflict: c } => format!("UNIQUE{}", conflict(c)),
        ColumnConstraint::Check(e) => format!("CHECK ({e})"),
        ColumnConstraint::Default(d) => format!("DEFAULT {d}"),
        ColumnConstraint::Collate(n) => format!("COLLATE {}", quote_ident(n)),
        ColumnConstraint::References(fk) => format!("REFERENCES {}", foreign_key_sql(fk)),
        ColumnConstraint::Generated { expr, stored } => format!(
            "GENERATED ALWAYS AS ({expr}) {}",
            if *stored { "STORED" } else { "VIRTUAL" }
        ),
    }
}

pub fn foreign_key_sql(fk: &ForeignKey) -> String {
    let mut out = quote_ident(&fk.table);
    if !fk.columns.is_empty() {
        out.push_str(&format!(" ({})", names(&fk.columns)));
    }
    if let Some(a) = &fk.on_delete {
        out.push_str(&format!(" ON DELETE {a}"));
    }
    if let Some(a) = &fk.on_update {
        out.push_str(&format!(" ON UPDATE {a}"));
    }
    if let Some(m) = &fk.match_ {
        out.push_str(&format!(" MATCH {}", quote_ident(m)));
    }
    if let Some(d) = &fk.deferrable {
        out.push_str(&format!(" {d}"));
    }
    out
}

fn names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn indexed_columns_sql(cols: &[IndexedColumn]) -> String {
    cols.iter()
        .map(|c| {
            let mut out = c.expr.clone();
            if let Some(coll) = &c.collate {
                out.push_str(&format!(" COLLATE {}", quote_ident(coll)));
            }
            if let Some(o) = &c.order {
                out.push_str(&format!(" {o}"));
            }
            out
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn constraint_sql(c: &TableConstraint) -> String {
    let mut out = c
        .name
        .as_ref()
        .map(|n| format!("CONSTRAINT {} ", quote_ident(n)))
        .unwrap_or_default();
    out.push_str(&match &c.kind {
        ConstraintKind::PrimaryKey {
            columns,
            conflict: cf,
            autoincrement,
        } => format!(
            "PRIMARY KEY ({}{}){}",
            indexed_columns_sql(columns),
            if *autoincrement { " AUTOINCREMENT" } else { "" },
            conflict(cf)
        ),
        ConstraintKind::Unique {
            columns,
            conflict: cf,
        } => format!("UNIQUE ({}){}", indexed_columns_sql(columns), conflict(cf)),
        ConstraintKind::Check(e) => format!("CHECK ({e})"),
        ConstraintKind::ForeignKey {
            columns,
            references,
        } => format!(
            "FOREIGN KEY ({}) REFERENCES {}",
            names(columns),
            foreign_key_sql(references)
        ),
    });
    out
}

pub fn index_sql(i: &Index) -> String {
    format!(
        "CREATE {}INDEX {} ON {} ({}){}",
        if i.unique { "UNIQUE " } else { "" },
        quote_ident(&i.name),
        quote_ident(&i.table),
        indexed_columns_sql(&i.columns),
        i.where_
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default()
    )
}

pub fn view_sql(v: &View) -> String {
    format!(
        "CREATE VIEW {}{} AS{}{}",
        quote_ident(&v.name),
        v.columns
            .as_ref()
            .map(|c| format!(" ({})", names(c)))
            .unwrap_or_default(),
        if v.query.contains('\n') { "\n" } else { " " },
        v.query
    )
}

pub fn trigger_sql(t: &Trigger) -> String {
    let mut out = format!(
        "CREATE TRIGGER {} {}\nBEGIN\n",
        quote_ident(&t.name),
        t.header
    );
    for s in &t.statements {
        out.push_str(&format!("  {s};\n"));
    }
    out.push_str("END");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSY: &str = "
        CREATE TABLE [Order Details](
           [OrderID]INTEGER NOT NULL,
           [Discount]REAL NOT NULL DEFAULT 0,
           \"key\" TEXT,
            PRIMARY KEY (\"OrderID\"),
            CHECK ([Discount]>=(0) AND [Discount]<=(1))
        );
        create view b_view as select * from a_view;
        CREATE VIEW a_view AS SELECT OrderID FROM [Order Details];
        CREATE INDEX i1 ON [Order Details] ( [Discount] DESC );
        CREATE TRIGGER t1 AFTER INSERT ON [Order Details]
        BEGIN
          UPDATE [Order Details] SET Discount = 0 WHERE rowid = new.rowid;
        END;
        CREATE TABLE a (x) ;
    ";

    #[test]
    fn the_dump_keeps_what_sqlite_keeps_as_written_and_is_stable() {
        let schema = Schema::parse(MESSY).unwrap();
        let dumped = render(&schema);
        assert_eq!(
            dumped,
            "CREATE TABLE a (\n  x\n);\n\
             \n\
             CREATE TABLE \"Order Details\" (\n  OrderID INTEGER NOT NULL,\n  Discount REAL NOT NULL DEFAULT 0,\n  \
             \"key\" TEXT,\n  PRIMARY KEY (OrderID),\n  CHECK ([Discount]>=(0) AND [Discount]<=(1))\n);\n\
             CREATE INDEX i1 ON \"Order Details\" (Discount DESC);\n\
             \n\
             CREATE VIEW a_view AS SELECT OrderID FROM [Order Details];\n\
             \n\
             CREATE VIEW b_view AS select * from a_view;\n\
             \n\
             CREATE TRIGGER t1 AFTER INSERT ON [Order Details]\nBEGIN\n  \
             UPDATE [Order Details] SET Discount = 0 WHERE rowid = new.rowid;\nEND;\n"
        );
        // Parsing the dump gives the same model, and so the same dump.
        let again = Schema::parse(&dumped).unwrap();
        assert_eq!(again, schema);
        assert_eq!(render(&again), dumped);
    }

    #[test]
    fn an_empty_schema_dumps_to_nothing() {
        assert_eq!(render(&Schema::default()), "");
    }
}
