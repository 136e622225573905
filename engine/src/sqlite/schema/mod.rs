//! The schema of a SQLite database as a typed model: tables (columns, constraints, options),
//! indexes, views and triggers, read from `sqlite_master` or parsed from a `schema.sql`
//! snapshot, and what the design-time loop does with it.
//!
//! Submodules: `sql` (tokens and quoting), `parse` (CREATE statements into the model), `dump`
//! (the model as deterministic, normalized SQL), `diff` (pure comparison of two models), `delta`
//! (pure generation of the DDL that turns one into the other, including SQLite's table rebuild)
//! and `owner` (which module owns which object, recorded as steps apply).
//!
//! All SQLite-specific schema knowledge lives here; nothing here knows about the migrations tree,
//! the ledger or the CLI (that is `crate::commands::design`). strata's bookkeeping (`strata_*`) and
//! SQLite's internal objects (`sqlite_*`, autoindexes, virtual-table shadow tables) are never
//! part of a schema.
//!
//! The library API other code relies on (drift detection, issue 4):
//! [`dump_module`] gives a module's live schema as text; [`Schema::parse`] reads a snapshot back;
//! [`diff::diff`] compares two schemas and its result prints readably and is empty when they
//! match; [`compare_module`] does all three: a module's live schema against a `schema.sql`.
use crate::core::schema::ObjectKind;
use crate::core::schema::ObjectRef;

pub mod delta;
pub mod diff;
pub mod dump;
pub mod owner;
pub mod parse;
#[cfg(test)]
mod proptests;
pub(crate) use crate::core::sql::sqlite as sql;

use std::collections::{BTreeMap, HashSet};

use rusqlite::Connection;

/// Why a schema could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A statement strata could not take apart.
    #[error("{what}: {message}")]
    Parse { what: String, message: String },
    /// The database could not be read.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// A schema: every object by lowercase name (SQLite compares names case-insensitively).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub indexes: BTreeMap<String, Index>,
    pub views: BTreeMap<String, View>,
    pub triggers: BTreeMap<String, Trigger>,
}

/// A table. A virtual table has no columns and `virtual_using` holds its `USING` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub constraints: Vec<TableConstraint>,
    pub without_rowid: bool,
    pub strict: bool,
    pub virtual_using: Option<String>,
}

/// A column: name, declared type (as written: `DECIMAL(15, 2)` keeps its space, as in SQLite's
/// `PRAGMA table_info`), and its constraints in the order written, each with its optional
/// `CONSTRAINT name`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub type_name: Option<String>,
    pub constraints: Vec<(Option<String>, ColumnConstraint)>,
}

/// One column constraint. Expressions are kept as written (SQLite keeps and shows that text);
/// [`Schema::canonical`] gives them in canonical form, for comparing.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnConstraint {
    PrimaryKey {
        order: Option<String>,
        conflict: Option<String>,
        autoincrement: bool,
    },
    NotNull {
        conflict: Option<String>,
    },
    Null {
        conflict: Option<String>,
    },
    Unique {
        conflict: Option<String>,
    },
    Check(String),
    /// As written after DEFAULT: `0`, `'x'`, `- 1`, `current_timestamp` or `( expr )`.
    Default(String),
    Collate(String),
    References(ForeignKey),
    Generated {
        expr: String,
        stored: bool,
    },
}

/// The `REFERENCES` part of a foreign key.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub table: String,
    pub columns: Vec<String>,
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
    pub match_: Option<String>,
    pub deferrable: Option<String>,
}

/// A table constraint with its optional name.
#[derive(Debug, Clone, PartialEq)]
pub struct TableConstraint {
    pub name: Option<String>,
    pub kind: ConstraintKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    PrimaryKey {
        columns: Vec<IndexedColumn>,
        conflict: Option<String>,
        autoincrement: bool,
    },
    Unique {
        columns: Vec<IndexedColumn>,
        conflict: Option<String>,
    },
    Check(String),
    ForeignKey {
        columns: Vec<String>,
        references: ForeignKey,
    },
}

/// An entry of an index or a PRIMARY KEY/UNIQUE list: a column or an expression.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedColumn {
    /// The column (canonically quoted) or the expression (as written).
    pub expr: String,
    /// The column's name when the entry is a plain column.
    pub column: Option<String>,
    pub collate: Option<String>,
    pub order: Option<String>,
}

/// `CREATE [UNIQUE] INDEX`.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub table: String,
    pub unique: bool,
    pub columns: Vec<IndexedColumn>,
    pub where_: Option<String>,
}

/// `CREATE VIEW`; the query is kept exactly as written (its text names result columns).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub columns: Option<Vec<String>>,
    pub query: String,
}

/// `CREATE TRIGGER`: the header (timing, event, `ON table`, `WHEN`) and the body's statements,
/// each as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub table: String,
    pub header: String,
    pub statements: Vec<String>,
}

impl ColumnDef {
    fn find<'c, T>(&'c self, f: impl Fn(&'c ColumnConstraint) -> Option<T>) -> Option<T> {
        self.constraints.iter().find_map(|(_, c)| f(c))
    }

    pub fn not_null(&self) -> bool {
        self.find(|c| matches!(c, ColumnConstraint::NotNull { .. }).then_some(()))
            .is_some()
    }

    pub fn primary_key(&self) -> bool {
        self.find(|c| matches!(c, ColumnConstraint::PrimaryKey { .. }).then_some(()))
            .is_some()
    }

    pub fn unique(&self) -> bool {
        self.find(|c| matches!(c, ColumnConstraint::Unique { .. }).then_some(()))
            .is_some()
    }

    pub fn default_value(&self) -> Option<&str> {
        self.find(|c| match c {
            ColumnConstraint::Default(d) => Some(d.as_str()),
            _ => None,
        })
    }

    pub fn collation(&self) -> Option<&str> {
        self.find(|c| match c {
            ColumnConstraint::Collate(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The generating expression and whether it is STORED.
    pub fn generated(&self) -> Option<(&str, bool)> {
        self.find(|c| match c {
            ColumnConstraint::Generated { expr, stored } => Some((expr.as_str(), *stored)),
            _ => None,
        })
    }

    pub fn references(&self) -> Option<&ForeignKey> {
        self.find(|c| match c {
            ColumnConstraint::References(fk) => Some(fk),
            _ => None,
        })
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Whether the table has a rowid (not WITHOUT ROWID, not virtual).
    pub fn has_rowid(&self) -> bool {
        !self.without_rowid && self.virtual_using.is_none()
    }

    /// The column that is an alias for the rowid (`INTEGER PRIMARY KEY`), if any.
    pub fn rowid_alias(&self) -> Option<&ColumnDef> {
        if !self.has_rowid() {
            return None;
        }
        // SQLite takes the quotes off a quoted type before it compares.
        let is_integer = |c: &ColumnDef| {
            c.type_name.as_deref().is_some_and(|t| {
                let bare = ['"', '\'', '`']
                    .iter()
                    .find_map(|q| t.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
                    .or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
                    .unwrap_or(t);
                bare.eq_ignore_ascii_case("INTEGER")
            })
        };
        for c in &self.columns {
            for (_, k) in &c.constraints {
                if let ColumnConstraint::PrimaryKey { order, .. } = k {
                    let desc = order.as_deref() == Some("DESC");
                    return (is_integer(c) && !desc).then_some(c);
                }
            }
        }
        for k in &self.constraints {
            if let ConstraintKind::PrimaryKey { columns, .. } = &k.kind
                && let [only] = columns.as_slice()
            {
                return only
                    .column
                    .as_deref()
                    .and_then(|n| self.column(n))
                    .filter(|c| is_integer(c));
            }
        }
        None
    }

    /// Whether the table counts rows in `sqlite_sequence`.
    pub fn autoincrement(&self) -> bool {
        self.columns.iter().any(|c| {
            c.constraints.iter().any(|(_, k)| {
                matches!(
                    k,
                    ColumnConstraint::PrimaryKey {
                        autoincrement: true,
                        ..
                    }
                )
            })
        }) || self.constraints.iter().any(|k| {
            matches!(
                k.kind,
                ConstraintKind::PrimaryKey {
                    autoincrement: true,
                    ..
                }
            )
        })
    }
}

impl Schema {
    /// Parses a `schema.sql` snapshot (or any script of CREATE statements).
    pub fn parse(text: &str) -> Result<Schema, SchemaError> {
        let statements = sql::statements(text).map_err(|e| SchemaError::Parse {
            what: format!("at byte {}", e.offset),
            message: e.message,
        })?;
        // Tables first, so index expressions know their table's columns.
        let (tables, rest): (Vec<_>, Vec<_>) = statements.into_iter().partition(|s| {
            s.iter().take(4).any(|t| t.is("TABLE")) && !s.iter().take(4).any(|t| t.is("TRIGGER"))
        });
        let mut schema = Schema::default();
        for stmt in tables.iter().chain(rest.iter()) {
            let what = statement_label(stmt);
            let object = parse::statement(stmt, text, &|t| schema.column_names(t))
                .map_err(|message| SchemaError::Parse { what, message })?;
            schema.insert(object);
        }
        Ok(schema)
    }

    /// Reads the schema of `conn`'s main database, without strata's and SQLite's own objects.
    pub fn read(conn: &Connection) -> Result<Schema, SchemaError> {
        let shadow: HashSet<String> = {
            let mut stmt = conn.prepare(
                "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow'",
            )?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        let mut stmt = conn.prepare(
            "SELECT type, name, sql FROM main.sqlite_master
             WHERE sql IS NOT NULL AND type IN ('table', 'index', 'view', 'trigger')
             ORDER BY type = 'table' DESC, name",
        )?;
        let rows: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut schema = Schema::default();
        for (kind, name, text) in rows {
            if is_internal(&name) || shadow.contains(&name) {
                continue;
            }
            let what = format!("{kind} {}", sql::quote_ident(&name));
            let parse_err = |message: String| SchemaError::Parse {
                what: what.clone(),
                message,
            };
            let statements = sql::statements(&text).map_err(|e| parse_err(e.message))?;
            let [stmt] = statements.as_slice() else {
                return Err(parse_err("expected one statement".into()));
            };
            let object =
                parse::statement(stmt, &text, &|t| schema.column_names(t)).map_err(parse_err)?;
            // Objects on strata's own tables (the audit log's triggers) are bookkeeping too.
            let on_internal = match &object {
                parse::Object::Index(i) => is_internal(&i.table),
                parse::Object::Trigger(t) => is_internal(&t.table),
                _ => false,
            };
            if !on_internal {
                schema.insert(object);
            }
        }
        Ok(schema)
    }

    fn column_names(&self, table: &str) -> HashSet<String> {
        self.tables
            .get(&table.to_ascii_lowercase())
            .map(|t| {
                t.columns
                    .iter()
                    .map(|c| c.name.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds an object, replacing one of the same kind and name.
    pub fn insert(&mut self, object: parse::Object) {
        match object {
            parse::Object::Table(t) => {
                self.tables.insert(t.name.to_ascii_lowercase(), t);
            }
            parse::Object::Index(i) => {
                self.indexes.insert(i.name.to_ascii_lowercase(), i);
            }
            parse::Object::View(v) => {
                self.views.insert(v.name.to_ascii_lowercase(), v);
            }
            parse::Object::Trigger(t) => {
                self.triggers.insert(t.name.to_ascii_lowercase(), t);
            }
        }
    }

    /// Every object, by kind then name.
    pub fn objects(&self) -> Vec<ObjectRef> {
        let of = |kind: ObjectKind, names: Vec<&String>| {
            names
                .into_iter()
                .map(move |name| ObjectRef {
                    kind,
                    name: name.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut out = of(
            ObjectKind::Table,
            self.tables.values().map(|t| &t.name).collect(),
        );
        out.extend(of(
            ObjectKind::Index,
            self.indexes.values().map(|t| &t.name).collect(),
        ));
        out.extend(of(
            ObjectKind::View,
            self.views.values().map(|t| &t.name).collect(),
        ));
        out.extend(of(
            ObjectKind::Trigger,
            self.triggers.values().map(|t| &t.name).collect(),
        ));
        out
    }

    /// Whether there is an object of this kind and name (case-insensitive).
    pub fn contains(&self, kind: ObjectKind, name: &str) -> bool {
        let key = name.to_ascii_lowercase();
        match kind {
            ObjectKind::Table => self.tables.contains_key(&key),
            ObjectKind::Index => self.indexes.contains_key(&key),
            ObjectKind::View => self.views.contains_key(&key),
            ObjectKind::Trigger => self.triggers.contains_key(&key),
            _ => false,
        }
    }

    /// The objects for which `keep(kind, name)` holds.
    pub fn filter(&self, keep: impl Fn(ObjectKind, &str) -> bool) -> Schema {
        Schema {
            tables: filtered(&self.tables, |t| keep(ObjectKind::Table, &t.name)),
            indexes: filtered(&self.indexes, |i| keep(ObjectKind::Index, &i.name)),
            views: filtered(&self.views, |v| keep(ObjectKind::View, &v.name)),
            triggers: filtered(&self.triggers, |t| keep(ObjectKind::Trigger, &t.name)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.indexes.is_empty()
            && self.views.is_empty()
            && self.triggers.is_empty()
    }

    /// The schema with every piece kept as written (declared types, defaults, CHECK, generated
    /// and index expressions, trigger text) in canonical form: what two schemas are compared
    /// by, so that spelling alone (spaces, comments, letter case of keywords, `[x]` for `x`) is
    /// no difference. Views keep their text: SQLite names their result columns by it.
    pub fn canonical(&self) -> Schema {
        let mut out = self.clone();
        for t in out.tables.values_mut() {
            t.canonicalize();
        }
        for i in out.indexes.values_mut() {
            let known = self.column_names(&i.table);
            canonicalize_columns(&mut i.columns, &known);
            if let Some(w) = &mut i.where_ {
                *w = parse::canonical_expr(w, &known);
            }
        }
        let none = HashSet::new();
        for t in out.triggers.values_mut() {
            t.header = parse::canonical_expr(&t.header, &none);
            for s in &mut t.statements {
                *s = parse::canonical_expr(s, &none);
            }
        }
        out
    }

    /// The schema as SQL (see `dump`).
    pub fn to_sql(&self) -> String {
        dump::render(self)
    }
}

fn canonicalize_columns(columns: &mut [IndexedColumn], known: &HashSet<String>) {
    for c in columns.iter_mut().filter(|c| c.column.is_none()) {
        c.expr = parse::canonical_expr(&c.expr, known);
    }
}

impl Table {
    /// See [`Schema::canonical`].
    fn canonicalize(&mut self) {
        if let Some(using) = &mut self.virtual_using {
            if let Ok(tokens) = sql::tokenize(using) {
                *using = sql::render_keeping_case(&tokens);
            }
            return;
        }
        let mut known: HashSet<String> = self
            .columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect();
        known.insert(self.name.to_ascii_lowercase());
        for c in &mut self.columns {
            c.type_name = c.type_name.as_deref().map(parse::canonical_type);
            for (_, k) in &mut c.constraints {
                match k {
                    ColumnConstraint::Check(e) => *e = parse::canonical_expr(e, &known),
                    ColumnConstraint::Default(d) => *d = parse::canonical_default(d),
                    ColumnConstraint::Generated { expr, .. } => {
                        *expr = parse::canonical_expr(expr, &known)
                    }
                    _ => {}
                }
            }
        }
        for k in &mut self.constraints {
            match &mut k.kind {
                ConstraintKind::Check(e) => *e = parse::canonical_expr(e, &known),
                ConstraintKind::PrimaryKey { columns, .. }
                | ConstraintKind::Unique { columns, .. } => canonicalize_columns(columns, &known),
                ConstraintKind::ForeignKey { .. } => {}
            }
        }
    }
}

fn filtered<T: Clone>(map: &BTreeMap<String, T>, keep: impl Fn(&T) -> bool) -> BTreeMap<String, T> {
    map.iter()
        .filter(|(_, v)| keep(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// strata's bookkeeping (`strata_*`) and SQLite's own objects (`sqlite_*`).
pub fn is_internal(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower.starts_with("strata_")
}

fn statement_label(tokens: &[sql::Token]) -> String {
    let words: Vec<&str> = tokens.iter().take(6).map(|t| t.text.as_str()).collect();
    format!("`{} ...`", words.join(" "))
}

/// The live schema of `module`: the objects it owns (see `owner`), as a model.
pub fn module_schema(conn: &Connection, module: &str) -> Result<Schema, SchemaError> {
    let owned = owner::owned_by(conn, module)?;
    Ok(Schema::read(conn)?.filter(|kind, name| owned.contains(&(kind, name.to_ascii_lowercase()))))
}

/// The live schema of `module` as normalized SQL: what `strata dump <module>` prints and what a
/// migration's `schema.sql` holds.
pub fn dump_module(conn: &Connection, module: &str) -> Result<String, SchemaError> {
    Ok(module_schema(conn, module)?.to_sql())
}

/// What differs between a `schema.sql` snapshot (`expected`) and the live schema of `module`:
/// empty when they match; `to_string()` lists the differences one per line.
pub fn compare_module(
    conn: &Connection,
    module: &str,
    expected: &str,
) -> Result<crate::core::schema::Diff, SchemaError> {
    let expected = Schema::parse(expected)?;
    Ok(diff::diff(&expected, &module_schema(conn, module)?))
}
