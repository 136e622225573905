//! Parsing `CREATE TABLE/INDEX/VIEW/TRIGGER` statements, as SQLite stores them in
//! `sqlite_master`, into the typed model of [`super`].
//!
//! Tables and indexes are taken apart completely (columns, constraints, options) so a diff can
//! name what changed and a dump can write them canonically. A view's query is kept verbatim:
//! SQLite names an unaliased result column by its exact source text, so even whitespace there is
//! part of the schema. A trigger keeps its header and statements as normalized token text.
//! Pure: no database.

use std::collections::HashSet;

use super::sql::{self, Kind, Token};
use super::{
    ColumnConstraint, ColumnDef, ConstraintKind, ForeignKey, Index, IndexedColumn, Table,
    TableConstraint, Trigger, View,
};

/// One parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Table(Table),
    Index(Index),
    View(View),
    Trigger(Trigger),
}

/// Words that start a column constraint, so they end a column's type name.
const COLUMN_CONSTRAINT_START: &[&str] = &[
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];
/// Words that start a table constraint.
const TABLE_CONSTRAINT_START: &[&str] = &["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"];

/// Parses one statement (its tokens, without the `;`); `src` is the text the tokens point into.
/// `columns_of` gives the columns of a table, for an index's expressions.
pub fn statement(
    tokens: &[Token],
    src: &str,
    columns_of: &dyn Fn(&str) -> HashSet<String>,
) -> Result<Object, String> {
    let mut p = P { t: tokens, i: 0 };
    p.expect("CREATE")?;
    let _temp = p.eat("TEMP") || p.eat("TEMPORARY");
    let unique = p.eat("UNIQUE");
    let virtual_ = p.eat("VIRTUAL");
    let what = p.next()?.text.to_ascii_uppercase();
    if unique && what != "INDEX" {
        return Err("UNIQUE goes only with CREATE INDEX".into());
    }
    if p.peek_is("IF") {
        p.expect("IF")?;
        p.expect("NOT")?;
        p.expect("EXISTS")?;
    }
    let name = p.qualified_name()?;
    match what.as_str() {
        "TABLE" if virtual_ => {
            p.expect("USING")?;
            let rest = p.rest();
            Ok(Object::Table(Table {
                name,
                columns: Vec::new(),
                constraints: Vec::new(),
                without_rowid: false,
                strict: false,
                virtual_using: Some(sql::render_keeping_case(rest)),
            }))
        }
        "TABLE" => table(&mut p, name).map(Object::Table),
        "INDEX" => index(&mut p, name, unique, columns_of).map(Object::Index),
        "VIEW" => view(&mut p, name, src).map(Object::View),
        "TRIGGER" => trigger(&mut p, name).map(Object::Trigger),
        other => Err(format!(
            "CREATE {other} is not a schema object strata knows"
        )),
    }
}

struct P<'a> {
    t: &'a [Token],
    i: usize,
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.t.get(self.i)
    }

    fn peek_is(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is(kw))
    }

    fn peek_punct(&self, p: &str) -> bool {
        self.peek().is_some_and(|t| t.is_punct(p))
    }

    fn at_end(&self) -> bool {
        self.i >= self.t.len()
    }

    fn next(&mut self) -> Result<&'a Token, String> {
        let t = self
            .t
            .get(self.i)
            .ok_or_else(|| "the statement ends too early".to_string())?;
        self.i += 1;
        Ok(t)
    }

    fn eat(&mut self, kw: &str) -> bool {
        if self.peek_is(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.peek_punct(p) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kw: &str) -> Result<(), String> {
        match self.peek() {
            Some(t) if t.is(kw) => {
                self.i += 1;
                Ok(())
            }
            Some(t) => Err(format!("expected {kw}, found `{}`", t.text)),
            None => Err(format!("expected {kw}, found the end")),
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), String> {
        match self.peek() {
            Some(t) if t.is_punct(p) => {
                self.i += 1;
                Ok(())
            }
            Some(t) => Err(format!("expected `{p}`, found `{}`", t.text)),
            None => Err(format!("expected `{p}`, found the end")),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let t = self.next()?;
        if t.is_name() {
            Ok(t.name().unwrap_or_default())
        } else {
            Err(format!("expected a name, found `{}`", t.text))
        }
    }

    /// `[schema.]name`; the schema is dropped (strata works on `main`).
    fn qualified_name(&mut self) -> Result<String, String> {
        let first = self.name()?;
        if self.eat_punct(".") {
            self.name()
        } else {
            Ok(first)
        }
    }

    /// `( ... )`: the tokens between the parentheses.
    fn parenthesized(&mut self) -> Result<&'a [Token], String> {
        self.expect_punct("(")?;
        let start = self.i;
        let mut depth = 1;
        while let Some(t) = self.peek() {
            if t.is_punct("(") {
                depth += 1;
            } else if t.is_punct(")") {
                depth -= 1;
                if depth == 0 {
                    let inner = &self.t[start..self.i];
                    self.i += 1;
                    return Ok(inner);
                }
            }
            self.i += 1;
        }
        Err("a `(` is never closed".into())
    }

    fn rest(&mut self) -> &'a [Token] {
        let r = &self.t[self.i.min(self.t.len())..];
        self.i = self.t.len();
        r
    }

    fn conflict(&mut self) -> Result<Option<String>, String> {
        if self.peek_is("ON") {
            self.expect("ON")?;
            self.expect("CONFLICT")?;
            let t = self.next()?;
            return Ok(Some(t.text.to_ascii_uppercase()));
        }
        Ok(None)
    }

    fn order(&mut self) -> Option<String> {
        if self.eat("ASC") {
            Some("ASC".into())
        } else if self.eat("DESC") {
            Some("DESC".into())
        } else {
            None
        }
    }
}

/// Splits tokens at commas outside parentheses.
fn split_top_level(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.is_punct("(") {
            depth += 1;
        } else if t.is_punct(")") {
            depth -= 1;
        } else if t.is_punct(",") && depth == 0 {
            out.push(&tokens[start..i]);
            start = i + 1;
        }
    }
    out.push(&tokens[start..]);
    out
}

fn starts_table_constraint(item: &[Token]) -> bool {
    item.first()
        .is_some_and(|t| TABLE_CONSTRAINT_START.iter().any(|k| t.is(k)))
}

fn table(p: &mut P<'_>, name: String) -> Result<Table, String> {
    if p.peek_is("AS") {
        return Err("CREATE TABLE ... AS SELECT is not expected in a stored schema".into());
    }
    let body = p.parenthesized()?;
    let items = split_top_level(body);
    let split = items
        .iter()
        .position(|item| starts_table_constraint(item))
        .unwrap_or(items.len());
    let mut known: HashSet<String> = items[..split]
        .iter()
        .filter_map(|item| item.first().and_then(Token::name))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    known.insert(name.to_ascii_lowercase());
    let mut columns = Vec::new();
    for item in &items[..split] {
        columns.push(column(item, &known)?);
    }
    let mut constraints = Vec::new();
    for item in &items[split..] {
        let mut q = P { t: item, i: 0 };
        if q.at_end() {
            return Err("an empty item in the column list".into());
        }
        while !q.at_end() {
            constraints.push(table_constraint(&mut q, &known)?);
        }
    }
    if columns.is_empty() {
        return Err("a table needs at least one column".into());
    }
    let (mut without_rowid, mut strict) = (false, false);
    while !p.at_end() {
        if p.eat("WITHOUT") {
            let t = p.next()?;
            if !t.text.eq_ignore_ascii_case("ROWID") {
                return Err(format!("expected ROWID after WITHOUT, found `{}`", t.text));
            }
            without_rowid = true;
        } else if p
            .peek()
            .is_some_and(|t| t.text.eq_ignore_ascii_case("STRICT"))
        {
            p.next()?;
            strict = true;
        } else if !p.eat_punct(",") {
            return Err(format!(
                "unexpected `{}` after the column list",
                p.peek().map(|t| t.text.as_str()).unwrap_or("")
            ));
        }
    }
    Ok(Table {
        name,
        columns,
        constraints,
        without_rowid,
        strict,
        virtual_using: None,
    })
}

fn column(item: &[Token], known: &HashSet<String>) -> Result<ColumnDef, String> {
    let mut p = P { t: item, i: 0 };
    let name = p.name()?;
    let mut type_words = Vec::new();
    while let Some(t) = p.peek() {
        let ends = t.kind == Kind::Punct
            || COLUMN_CONSTRAINT_START.iter().any(|k| t.is(k))
            || !t.is_name();
        if ends {
            break;
        }
        type_words.push(t.text.clone());
        p.i += 1;
    }
    let mut type_name = type_words.join(" ");
    if !type_words.is_empty() && p.peek_punct("(") {
        let args = p.parenthesized()?;
        let args: String = args.iter().map(|t| t.text.as_str()).collect();
        type_name.push_str(&format!("({args})"));
    }
    let mut constraints = Vec::new();
    while !p.at_end() {
        constraints.push(column_constraint(&mut p, known)?);
    }
    Ok(ColumnDef {
        name,
        type_name: (!type_name.is_empty()).then_some(type_name),
        constraints,
    })
}

fn column_constraint(
    p: &mut P<'_>,
    known: &HashSet<String>,
) -> Result<(Option<String>, ColumnConstraint), String> {
    let name = if p.eat("CONSTRAINT") {
        Some(p.name()?)
    } else {
        None
    };
    let t = p.next()?;
    let kind = if t.is("PRIMARY") {
        p.expect("KEY")?;
        let order = p.order();
        let conflict = p.conflict()?;
        let autoincrement = p.eat("AUTOINCREMENT");
        ColumnConstraint::PrimaryKey {
            order,
            conflict,
            autoincrement,
        }
    } else if t.is("NOT") {
        p.expect("NULL")?;
        ColumnConstraint::NotNull {
            conflict: p.conflict()?,
        }
    } else if t.is("NULL") {
        ColumnConstraint::Null {
            conflict: p.conflict()?,
        }
    } else if t.is("UNIQUE") {
        ColumnConstraint::Unique {
            conflict: p.conflict()?,
        }
    } else if t.is("CHECK") {
        ColumnConstraint::Check(sql::render(p.parenthesized()?, known))
    } else if t.is("DEFAULT") {
        ColumnConstraint::Default(default_value(p)?)
    } else if t.is("COLLATE") {
        ColumnConstraint::Collate(p.name()?)
    } else if t.is("REFERENCES") {
        ColumnConstraint::References(foreign_key(p)?)
    } else if t.is("GENERATED") || t.is("AS") {
        if t.is("GENERATED") {
            p.expect("ALWAYS")?;
            p.expect("AS")?;
        }
        let expr = sql::render(p.parenthesized()?, known);
        let stored = if p.eat("VIRTUAL") {
            false
        } else {
            p.peek()
                .is_some_and(|t| t.text.eq_ignore_ascii_case("STORED"))
                .then(|| p.i += 1)
                .is_some()
        };
        ColumnConstraint::Generated { expr, stored }
    } else {
        return Err(format!("unexpected `{}` in a column definition", t.text));
    };
    Ok((name, kind))
}

/// `DEFAULT` value: `(expr)`, a signed number, a literal or a bare word.
fn default_value(p: &mut P<'_>) -> Result<String, String> {
    if p.peek_punct("(") {
        let inner = p.parenthesized()?;
        return Ok(format!("({})", sql::render(inner, &HashSet::new())));
    }
    let t = p.next()?;
    if t.is_punct("-") || t.is_punct("+") {
        let n = p.next()?;
        return Ok(format!("{}{}", t.text, n.text));
    }
    if t.kind == Kind::Word && sql::is_keyword(&t.text) {
        return Ok(t.text.to_ascii_uppercase());
    }
    Ok(t.text.clone())
}

fn foreign_key(p: &mut P<'_>) -> Result<ForeignKey, String> {
    let table = p.name()?;
    let columns = if p.peek_punct("(") {
        names(p.parenthesized()?)?
    } else {
        Vec::new()
    };
    let mut fk = ForeignKey {
        table,
        columns,
        on_delete: None,
        on_update: None,
        match_: None,
        deferrable: None,
    };
    loop {
        if p.peek_is("ON") {
            p.expect("ON")?;
            let event = p.next()?.text.to_ascii_uppercase();
            let action = if p.eat("SET") {
                format!("SET {}", p.next()?.text.to_ascii_uppercase())
            } else if p.eat("NO") {
                p.expect("ACTION")?;
                "NO ACTION".to_string()
            } else {
                p.next()?.text.to_ascii_uppercase()
            };
            match event.as_str() {
                "DELETE" => fk.on_delete = Some(action),
                "UPDATE" => fk.on_update = Some(action),
                other => return Err(format!("expected ON DELETE or ON UPDATE, found ON {other}")),
            }
        } else if p.eat("MATCH") {
            fk.match_ = Some(p.name()?);
        } else if p.peek_is("DEFERRABLE")
            || (p.peek_is("NOT") && p.t.get(p.i + 1).is_some_and(|t| t.is("DEFERRABLE")))
        {
            let mut words = Vec::new();
            if p.eat("NOT") {
                words.push("NOT");
            }
            p.expect("DEFERRABLE")?;
            words.push("DEFERRABLE");
            if p.eat("INITIALLY") {
                words.push("INITIALLY");
                if p.eat("DEFERRED") {
                    words.push("DEFERRED");
                } else {
                    p.expect("IMMEDIATE")?;
                    words.push("IMMEDIATE");
                }
            }
            fk.deferrable = Some(words.join(" "));
        } else {
            return Ok(fk);
        }
    }
}

fn names(tokens: &[Token]) -> Result<Vec<String>, String> {
    split_top_level(tokens)
        .into_iter()
        .map(|item| match item {
            [t] if t.is_name() => Ok(t.name().unwrap_or_default()),
            _ => Err("expected a list of column names".to_string()),
        })
        .collect()
}

fn indexed_columns(
    tokens: &[Token],
    known: &HashSet<String>,
) -> Result<Vec<IndexedColumn>, String> {
    let mut out = Vec::new();
    for item in split_top_level(tokens) {
        let mut end = item.len();
        let mut order = None;
        if end > 0 && (item[end - 1].is("ASC") || item[end - 1].is("DESC")) {
            order = Some(item[end - 1].text.to_ascii_uppercase());
            end -= 1;
        }
        let mut collate = None;
        if end >= 2 && item[end - 2].is("COLLATE") && item[end - 1].is_name() {
            collate = item[end - 1].name();
            end -= 2;
        }
        let expr = &item[..end];
        if expr.is_empty() {
            return Err("an empty entry in a column list".into());
        }
        let column = match expr {
            [t] if t.kind != Kind::String && t.is_name() => t.name(),
            _ => None,
        };
        out.push(IndexedColumn {
            expr: match &column {
                Some(c) => sql::quote_ident(c),
                None => sql::render(expr, known),
            },
            column,
            collate,
            order,
        });
    }
    Ok(out)
}

fn table_constraint(p: &mut P<'_>, known: &HashSet<String>) -> Result<TableConstraint, String> {
    let name = if p.eat("CONSTRAINT") {
        Some(p.name()?)
    } else {
        None
    };
    let t = p.next()?;
    let kind = if t.is("PRIMARY") || t.is("UNIQUE") {
        let primary = t.is("PRIMARY");
        if primary {
            p.expect("KEY")?;
        }
        let mut list = p.parenthesized()?;
        let mut autoincrement = false;
        if primary && list.last().is_some_and(|t| t.is("AUTOINCREMENT")) {
            autoincrement = true;
            list = &list[..list.len() - 1];
        }
        let columns = indexed_columns(list, known)?;
        let conflict = p.conflict()?;
        if primary {
            ConstraintKind::PrimaryKey {
                columns,
                conflict,
                autoincrement,
            }
        } else {
            ConstraintKind::Unique { columns, conflict }
        }
    } else if t.is("CHECK") {
        ConstraintKind::Check(sql::render(p.parenthesized()?, known))
    } else if t.is("FOREIGN") {
        p.expect("KEY")?;
        let columns = names(p.parenthesized()?)?;
        p.expect("REFERENCES")?;
        ConstraintKind::ForeignKey {
            columns,
            references: foreign_key(p)?,
        }
    } else {
        return Err(format!("unexpected `{}` in a table constraint", t.text));
    };
    p.eat_punct(",");
    Ok(TableConstraint { name, kind })
}

fn index(
    p: &mut P<'_>,
    name: String,
    unique: bool,
    columns_of: &dyn Fn(&str) -> HashSet<String>,
) -> Result<Index, String> {
    p.expect("ON")?;
    let table = p.qualified_name()?;
    let known = columns_of(&table);
    let columns = indexed_columns(p.parenthesized()?, &known)?;
    let where_ = if p.eat("WHERE") {
        Some(sql::render(p.rest(), &known))
    } else {
        None
    };
    if !p.at_end() {
        return Err("unexpected text after the index's column list".into());
    }
    Ok(Index {
        name,
        table,
        unique,
        columns,
        where_,
    })
}

fn view(p: &mut P<'_>, name: String, src: &str) -> Result<View, String> {
    let columns = if p.peek_punct("(") {
        Some(names(p.parenthesized()?)?)
    } else {
        None
    };
    p.expect("AS")?;
    let body = p.rest();
    let (Some(first), Some(last)) = (body.first(), body.last()) else {
        return Err("a view needs a query after AS".into());
    };
    Ok(View {
        name,
        columns,
        query: src[first.start..last.end].to_string(),
    })
}

fn trigger(p: &mut P<'_>, name: String) -> Result<Trigger, String> {
    let rest = p.rest();
    let begin = rest
        .iter()
        .position(|t| t.is("BEGIN"))
        .ok_or("a trigger needs BEGIN ... END")?;
    let header = &rest[..begin];
    let on = header
        .iter()
        .position(|t| t.is("ON"))
        .ok_or("a trigger needs ON <table>")?;
    let mut q = P {
        t: &header[on + 1..],
        i: 0,
    };
    let table = q.qualified_name()?;
    let body = &rest[begin + 1..];
    let Some((end, body)) = body.split_last() else {
        return Err("a trigger needs END".into());
    };
    if !end.is("END") {
        return Err(format!("a trigger ends with END, not `{}`", end.text));
    }
    let none = HashSet::new();
    let statements = body
        .split(|t| t.is_punct(";"))
        .filter(|s| !s.is_empty())
        .map(|s| sql::render(s, &none))
        .collect();
    Ok(Trigger {
        name,
        table,
        header: sql::render(header, &none),
        statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql_text: &str) -> Object {
        let stmts = sql::statements(sql_text).unwrap();
        statement(&stmts[0], sql_text, &|_| HashSet::new()).unwrap()
    }

    fn table_of(sql_text: &str) -> Table {
        match parse(sql_text) {
            Object::Table(t) => t,
            other => panic!("not a table: {other:?}"),
        }
    }

    #[test]
    fn a_chinook_table_parses_into_columns_and_constraints() {
        let t = table_of(
            "CREATE TABLE [Album]\n(\n    [AlbumId] INTEGER  NOT NULL,\n    [Title] NVARCHAR(160)  NOT NULL,\n    \
             [ArtistId] INTEGER  NOT NULL,\n    CONSTRAINT [PK_Album] PRIMARY KEY  ([AlbumId]),\n    \
             FOREIGN KEY ([ArtistId]) REFERENCES [Artist] ([ArtistId]) \n\t\tON DELETE NO ACTION ON UPDATE NO ACTION\n)",
        );
        assert_eq!(t.name, "Album");
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.columns[1].type_name.as_deref(), Some("NVARCHAR(160)"));
        assert!(t.columns[1].not_null());
        assert_eq!(t.constraints.len(), 2);
        assert_eq!(t.constraints[0].name.as_deref(), Some("PK_Album"));
        let ConstraintKind::ForeignKey {
            columns,
            references,
        } = &t.constraints[1].kind
        else {
            panic!()
        };
        assert_eq!(columns, &["ArtistId"]);
        assert_eq!(references.table, "Artist");
        assert_eq!(references.on_delete.as_deref(), Some("NO ACTION"));
    }

    #[test]
    fn northwind_style_columns_without_spaces_and_checks() {
        let t = table_of(
            "CREATE TABLE [Order Details](\n   [OrderID]INTEGER NOT NULL,\n   [UnitPrice]NUMERIC NOT NULL DEFAULT 0,\n   \
             [Discount]REAL NOT NULL DEFAULT 0,\n    PRIMARY KEY (\"OrderID\",\"ProductID\"),\n    \
             CHECK ([Discount]>=(0) AND [Discount]<=(1)),\n   CHECK ([UnitPrice]>=(0)))",
        );
        assert_eq!(t.name, "Order Details");
        assert_eq!(t.columns[1].type_name.as_deref(), Some("NUMERIC"));
        assert_eq!(t.columns[1].default_value(), Some("0"));
        let ConstraintKind::Check(c) = &t.constraints[1].kind else {
            panic!()
        };
        assert_eq!(c, "Discount >= (0) AND Discount <= (1)");
    }

    #[test]
    fn column_constraints_of_every_kind() {
        let t = table_of(
            "CREATE TABLE IF NOT EXISTS main.t(id INTEGER PRIMARY KEY DESC ON CONFLICT REPLACE AUTOINCREMENT, \
             a TEXT CONSTRAINT nn NOT NULL UNIQUE COLLATE NOCASE DEFAULT 'x' CHECK (length(a) > 0), \
             b BLOB SUB_TYPE TEXT REFERENCES p(x) ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED NOT NULL, \
             c AS (a || 'x') STORED, d GENERATED ALWAYS AS (1), e DEFAULT -1, f DEFAULT (datetime('now')), g) \
             WITHOUT ROWID, STRICT",
        );
        assert_eq!(t.name, "t");
        assert!(t.without_rowid && t.strict);
        assert_eq!(
            t.columns[2].type_name.as_deref(),
            Some("BLOB SUB_TYPE TEXT")
        );
        assert!(t.columns[2].not_null());
        assert_eq!(t.columns[1].collation(), Some("NOCASE"));
        assert_eq!(t.columns[3].generated(), Some(("a || 'x'", true)));
        assert_eq!(t.columns[4].generated(), Some(("1", false)));
        assert_eq!(t.columns[5].default_value(), Some("-1"));
        assert_eq!(t.columns[6].default_value(), Some("(datetime('now'))"));
        assert_eq!(t.columns[7].type_name, None);
        assert!(t.columns[0].primary_key());
    }

    #[test]
    fn indexes_views_and_triggers() {
        let Object::Index(i) =
            parse("CREATE UNIQUE INDEX idx ON t (a COLLATE nocase DESC, lower(b)) WHERE a > 0")
        else {
            panic!()
        };
        assert!(i.unique);
        assert_eq!(i.columns[0].column.as_deref(), Some("a"));
        assert_eq!(i.columns[0].collate.as_deref(), Some("nocase"));
        assert_eq!(i.columns[1].expr, "lower(b)");
        assert_eq!(i.where_.as_deref(), Some("a > 0"));

        let src = "CREATE VIEW [v w] AS\nSELECT a +  b -- c\nFROM t /* x */";
        let Object::View(v) = parse(src) else {
            panic!()
        };
        assert_eq!(v.name, "v w");
        assert_eq!(v.query, "SELECT a +  b -- c\nFROM t");

        let Object::Trigger(t) = parse(
            "CREATE TRIGGER tr AFTER UPDATE OF a ON [t] WHEN new.a > 0 BEGIN UPDATE t SET b = 1; SELECT 2; END",
        ) else {
            panic!()
        };
        assert_eq!(t.table, "t");
        assert_eq!(t.header, "AFTER UPDATE OF a ON t WHEN new.a > 0");
        assert_eq!(t.statements, ["UPDATE t SET b = 1", "SELECT 2"]);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let stmts = sql::statements("CREATE TABLE t(a INTEGER PRIMARY)").unwrap();
        let err = statement(&stmts[0], "", &|_| HashSet::new()).unwrap_err();
        assert!(err.contains("expected KEY"), "{err}");
    }
}
