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
                virtual_using: Some(span(src, rest)),
            }))
        }
        "TABLE" => table(&mut p, name, src).map(Object::Table),
        "INDEX" => index(&mut p, name, unique, columns_of, src).map(Object::Index),
        "VIEW" => view(&mut p, name, src).map(Object::View),
        "TRIGGER" => trigger(&mut p, name, src).map(Object::Trigger),
        other => Err(format!(
            "CREATE {other} is not a schema object strata knows"
        )),
    }
}

/// The source text of a run of tokens, exactly as written (comments and spacing inside it
/// included): what SQLite stores and shows for a declared type, a default, an expression.
/// Empty for no tokens.
pub fn span(src: &str, tokens: &[Token]) -> String {
    match (tokens.first(), tokens.last()) {
        (Some(first), Some(last)) => src
            .get(first.start..last.end)
            .map_or_else(|| joined(tokens), str::to_string),
        _ => String::new(),
    }
}

/// Tokens joined by single spaces: the text of tokens that do not point into `src`.
fn joined(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
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

fn table(p: &mut P<'_>, name: String, src: &str) -> Result<Table, String> {
    if p.peek_is("AS") {
        return Err("CREATE TABLE ... AS SELECT is not expected in a stored schema".into());
    }
    let body = p.parenthesized()?;
    let items = split_top_level(body);
    let split = items
        .iter()
        .position(|item| starts_table_constraint(item))
        .unwrap_or(items.len());
    let mut columns = Vec::new();
    for item in &items[..split] {
        columns.push(column(item, src)?);
    }
    let mut constraints = Vec::new();
    for item in &items[split..] {
        let mut q = P { t: item, i: 0 };
        if q.at_end() {
            return Err("an empty item in the column list".into());
        }
        while !q.at_end() {
            constraints.push(table_constraint(&mut q, src)?);
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

fn column(item: &[Token], src: &str) -> Result<ColumnDef, String> {
    let mut p = P { t: item, i: 0 };
    let name = p.name()?;
    let type_start = p.i;
    while let Some(t) = p.peek() {
        let ends = t.kind == Kind::Punct
            || COLUMN_CONSTRAINT_START.iter().any(|k| t.is(k))
            || !t.is_name();
        if ends {
            break;
        }
        p.i += 1;
    }
    if p.i > type_start && p.peek_punct("(") {
        p.parenthesized()?;
    }
    // As written: SQLite keeps the declared type's text, spaces and comments inside it too.
    let type_name = span(src, &item[type_start..p.i]);
    let mut constraints = Vec::new();
    while !p.at_end() {
        constraints.push(column_constraint(&mut p, src)?);
    }
    Ok(ColumnDef {
        name,
        type_name: (!type_name.is_empty()).then_some(type_name),
        constraints,
    })
}

fn column_constraint(
    p: &mut P<'_>,
    src: &str,
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
        ColumnConstraint::Check(span(src, p.parenthesized()?))
    } else if t.is("DEFAULT") {
        ColumnConstraint::Default(default_value(p, src)?)
    } else if t.is("COLLATE") {
        ColumnConstraint::Collate(p.name()?)
    } else if t.is("REFERENCES") {
        ColumnConstraint::References(foreign_key(p)?)
    } else if t.is("GENERATED") || t.is("AS") {
        if t.is("GENERATED") {
            p.expect("ALWAYS")?;
            p.expect("AS")?;
        }
        let expr = span(src, p.parenthesized()?);
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

/// `DEFAULT` value as written: `(expr)`, a signed number, a literal or a bare word.
fn default_value(p: &mut P<'_>, src: &str) -> Result<String, String> {
    let start = p.i;
    if p.peek_punct("(") {
        p.parenthesized()?;
    } else {
        let t = p.next()?;
        if t.is_punct("-") || t.is_punct("+") {
            p.next()?;
        }
    }
    Ok(span(src, &p.t[start..p.i]))
}

/// The canonical form of a `DEFAULT` value as written (see [`default_value`]): `(expr)`
/// rendered, a sign joined to its number, keywords in upper case.
pub fn canonical_default(text: &str) -> String {
    let Ok(tokens) = sql::tokenize(text) else {
        return text.to_string();
    };
    match tokens.as_slice() {
        [open, inner @ .., close] if open.is_punct("(") && close.is_punct(")") => {
            format!("({})", sql::render(inner, &HashSet::new()))
        }
        [sign, n] if sign.is_punct("-") || sign.is_punct("+") => format!("{}{}", sign.text, n.text),
        [t] if t.kind == Kind::Word && sql::is_keyword(&t.text) => t.text.to_ascii_uppercase(),
        [t] => t.text.clone(),
        _ => sql::render(&tokens, &HashSet::new()),
    }
}

/// The canonical form of a declared type as written: its words single-spaced, its arguments
/// without spaces (`DECIMAL (15, 2)` and `decimal(15,2)` differ only in letter case).
pub fn canonical_type(text: &str) -> String {
    let Ok(tokens) = sql::tokenize(text) else {
        return text.to_string();
    };
    let open = tokens
        .iter()
        .position(|t| t.is_punct("("))
        .unwrap_or(tokens.len());
    let mut out = tokens[..open]
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if open < tokens.len() {
        let inner = &tokens[open + 1..tokens.len().saturating_sub(1).max(open + 1)];
        let args: String = inner.iter().map(|t| t.text.as_str()).collect();
        out.push_str(&format!("({args})"));
    }
    out
}

/// The canonical form of an expression as written (see `sql::render`); `known` are the names
/// that are certainly columns here.
pub fn canonical_expr(text: &str, known: &HashSet<String>) -> String {
    match sql::tokenize(text) {
        Ok(tokens) => sql::render(&tokens, known),
        Err(_) => text.to_string(),
    }
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

fn indexed_columns(tokens: &[Token], src: &str) -> Result<Vec<IndexedColumn>, String> {
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
                None => span(src, expr),
            },
            column,
            collate,
            order,
        });
    }
    Ok(out)
}

fn table_constraint(p: &mut P<'_>, src: &str) -> Result<TableConstraint, String> {
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
        let columns = indexed_columns(list, src)?;
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
        ConstraintKind::Check(span(src, p.parenthesized()?))
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
    _columns_of: &dyn Fn(&str) -> HashSet<String>,
    src: &str,
) -> Result<Index, String> {
    p.expect("ON")?;
    let table = p.qualified_name()?;
    let columns = indexed_columns(p.parenthesized()?, src)?;
    let where_ = if p.eat("WHERE") {
        Some(span(src, p.rest()))
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

fn trigger(p: &mut P<'_>, name: String, src: &str) -> Result<Trigger, String> {
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
    let statements = body
        .split(|t| t.is_punct(";"))
        .filter(|s| !s.is_empty())
        .map(|s| span(src, s))
        .collect();
    Ok(Trigger {
        name,
        table,
        header: span(src, header),
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
        // As written (SQLite keeps this text); canonical for comparing.
        assert_eq!(c, "[Discount]>=(0) AND [Discount]<=(1)");
        let mut canonical = t.clone();
        canonical.canonicalize();
        let ConstraintKind::Check(c) = &canonical.constraints[1].kind else {
            panic!()
        };
        assert_eq!(c, "Discount >= (0) AND Discount <= (1)");
    }

    #[test]
    fn declared_types_and_defaults_are_kept_as_written() {
        let t = table_of(
            "CREATE TABLE t(a DECIMAL(15, 2) DEFAULT - 1, b varchar ( 10 ) /* c */ DEFAULT \
             current_timestamp, c \"my type\" DEFAULT ( datetime('now',  'localtime') ), d)",
        );
        assert_eq!(t.columns[0].type_name.as_deref(), Some("DECIMAL(15, 2)"));
        assert_eq!(t.columns[0].default_value(), Some("- 1"));
        assert_eq!(t.columns[1].type_name.as_deref(), Some("varchar ( 10 )"));
        assert_eq!(t.columns[1].default_value(), Some("current_timestamp"));
        assert_eq!(t.columns[2].type_name.as_deref(), Some("\"my type\""));
        assert_eq!(
            t.columns[2].default_value(),
            Some("( datetime('now',  'localtime') )")
        );
        assert_eq!(canonical_type("DECIMAL (15, 2)"), "DECIMAL(15,2)");
        assert_eq!(canonical_default("- 1"), "-1");
        assert_eq!(canonical_default("current_timestamp"), "CURRENT_TIMESTAMP");
        assert_eq!(
            canonical_default("( datetime('now',  'localtime') )"),
            "(datetime('now', 'localtime'))"
        );
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
        assert_eq!(t.header, "AFTER UPDATE OF a ON [t] WHEN new.a > 0");
        assert_eq!(t.statements, ["UPDATE t SET b = 1", "SELECT 2"]);
    }

    #[test]
    fn errors_say_what_was_expected() {
        let stmts = sql::statements("CREATE TABLE t(a INTEGER PRIMARY)").unwrap();
        let err = statement(&stmts[0], "", &|_| HashSet::new()).unwrap_err();
        assert!(err.contains("expected KEY"), "{err}");
    }
}
