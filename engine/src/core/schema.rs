//! A schema's objects and differences as both backends report them: object kinds and
//! references, a diff between two schemas and the delta SQL that turns one into the other. Each
//! backend reads and compares its own model (`crate::sqlite::schema`, `crate::postgres::model`)
//! and reports in these terms.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::sql::sqlite::quote_ident;

/// The kinds of schema object, named as in `sqlite_master.type`; PostgreSQL adds sequences,
/// functions, types and schemas (which SQLite never has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Table,
    Index,
    View,
    Trigger,
    Sequence,
    Function,
    Type,
    Schema,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::Index => "index",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Function => "function",
            ObjectKind::Type => "type",
            ObjectKind::Schema => "schema",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectKind> {
        match s {
            "table" => Some(ObjectKind::Table),
            "index" => Some(ObjectKind::Index),
            "view" => Some(ObjectKind::View),
            "trigger" => Some(ObjectKind::Trigger),
            _ => None,
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema object by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(rename = "type")]
    pub kind: ObjectKind,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.kind,
            crate::core::sql::sqlite::quote_ident(&self.name)
        )
    }
}

/// Every difference from one schema (`from`, the snapshot) to another (`to`, the live one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub tables: Vec<TableChange>,
    pub indexes: Vec<ObjectChange>,
    pub views: Vec<ObjectChange>,
    pub triggers: Vec<ObjectChange>,
    /// PostgreSQL's other kinds: schemas, types, sequences, functions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<ObjectChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<ObjectChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<ObjectChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<ObjectChange>,
    /// Names are already SQL (PostgreSQL's, quoted where they need it): shown as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quoted_names: bool,
}

impl Diff {
    /// Whether the two schemas are the same.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.indexes.is_empty()
            && self.views.is_empty()
            && self.triggers.is_empty()
            && self.schemas.is_empty()
            && self.types.is_empty()
            && self.sequences.is_empty()
            && self.functions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum TableChange {
    Added {
        table: String,
        sql: String,
    },
    Removed {
        table: String,
        sql: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    Altered {
        table: String,
        columns: Vec<ColumnChange>,
        /// Table constraints added (`+`) or removed (`-`), as SQL.
        constraints: Vec<ConstraintChange>,
        /// The kept columns are in a different order.
        reordered: bool,
        /// WITHOUT ROWID, STRICT, a virtual table's USING clause, the name's letter case.
        options: Vec<Attribute>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum ColumnChange {
    Added {
        column: String,
        definition: String,
    },
    Removed {
        column: String,
        definition: String,
    },
    Renamed {
        from: String,
        to: String,
    },
    Changed {
        column: String,
        attributes: Vec<Attribute>,
        before: String,
        after: String,
    },
}

/// One attribute that differs, written as SQL (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub attribute: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstraintChange {
    pub added: bool,
    pub constraint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// An index, view or trigger that differs, with its SQL before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectChange {
    pub name: String,
    pub change: Change,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn or_none(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

impl fmt::Display for Diff {
    /// One line per change: `+` added, `-` removed, `~` changed; a table's changes indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |n: &str| {
            if self.quoted_names {
                n.to_string()
            } else {
                quote_ident(n)
            }
        };
        for t in &self.tables {
            match t {
                TableChange::Added { table, .. } => writeln!(f, "+ table {}", name(table))?,
                TableChange::Removed { table, .. } => writeln!(f, "- table {}", name(table))?,
                TableChange::Renamed { from, to } => {
                    writeln!(f, "~ table {} renamed to {}", name(from), name(to))?
                }
                TableChange::Altered {
                    table,
                    columns,
                    constraints,
                    reordered,
                    options,
                } => {
                    writeln!(f, "~ table {}", name(table))?;
                    for c in columns {
                        match c {
                            ColumnChange::Added { definition, .. } => {
                                writeln!(f, "    + column {definition}")?
                            }
                            ColumnChange::Removed { definition, .. } => {
                                writeln!(f, "    - column {definition}")?
                            }
                            ColumnChange::Renamed { from, to } => {
                                writeln!(f, "    ~ column {} renamed to {}", name(from), name(to))?
                            }
                            ColumnChange::Changed {
                                column, attributes, ..
                            } => {
                                let what: Vec<String> = attributes
                                    .iter()
                                    .map(|a| {
                                        format!(
                                            "{} {} -> {}",
                                            a.attribute,
                                            or_none(&a.before),
                                            or_none(&a.after)
                                        )
                                    })
                                    .collect();
                                writeln!(f, "    ~ column {}: {}", name(column), what.join("; "))?
                            }
                        }
                    }
                    for c in constraints {
                        writeln!(
                            f,
                            "    {} {}",
                            if c.added { "+" } else { "-" },
                            c.constraint
                        )?;
                    }
                    if *reordered {
                        writeln!(f, "    ~ column order")?;
                    }
                    for o in options {
                        writeln!(
                            f,
                            "    ~ {} {} -> {}",
                            o.attribute,
                            or_none(&o.before),
                            or_none(&o.after)
                        )?;
                    }
                }
            }
        }
        for (kind, list) in [
            ("schema", &self.schemas),
            ("type", &self.types),
            ("sequence", &self.sequences),
            ("function", &self.functions),
            ("index", &self.indexes),
            ("view", &self.views),
            ("trigger", &self.triggers),
        ] {
            for o in list {
                let sign = match o.change {
                    Change::Added => "+",
                    Change::Removed => "-",
                    Change::Changed => "~",
                };
                writeln!(f, "{sign} {kind} {}", name(&o.name))?;
            }
        }
        Ok(())
    }
}

/// The generated SQL and what it would destroy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The script, statements separated by `;` and newlines, with explanatory comments.
    pub sql: String,
    /// One line per destructive change, e.g. "drops table `t` and its rows".
    pub destructive: Vec<String>,
    /// Things to check by hand, e.g. a new NOT NULL column without a default in a rebuild.
    pub warnings: Vec<String>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty()
    }
}
