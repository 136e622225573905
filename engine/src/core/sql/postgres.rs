//! A PostgreSQL script (`do.sql`, `checks.sql`) as statements, each with its text and first
//! line, and the checks made on it before anything runs.
//!
//! Statement boundaries come from sqlparser's PostgreSQL tokenizer, so a `;` inside a string,
//! a quoted identifier, a comment or a dollar-quoted function body does not split. The step runs
//! each statement on its own, so an error names its line. Statements that would end the step's
//! transaction (or need the client to stream data) are refused here, with their line.

use std::path::Path;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

use crate::core::error::Error;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement as written, without its `;`.
    pub text: String,
    /// Its first line in the file, from 1.
    pub line: usize,
}

/// Splits `sql` into statements; `path` names the file in errors. Refuses transaction control
/// (`BEGIN`, `COMMIT`, `ROLLBACK`, ...), which would end the step's own transaction, and
/// `COPY ... FROM STDIN`/`TO STDOUT`, which needs psql to stream the data.
pub fn statements(path: &Path, sql: &str) -> Result<Vec<Statement>, Error> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .map_err(|e| {
            Error::input(
                path,
                format!(
                    "line {}: {} (PostgreSQL could not read the script either); fix the quoting \
                     or comment there",
                    e.location.line, e.message
                ),
            )
        })?;
    let lines = LineIndex::new(sql);
    let mut out = Vec::new();
    let mut current: Vec<(&Token, Location)> = Vec::new();
    let mut flush = |current: &mut Vec<(&Token, Location)>, end: Option<Location>| {
        let Some(&(_, start)) = current.first() else {
            return Ok(());
        };
        let from = lines.offset(start);
        let to = end.map_or(sql.len(), |l| lines.offset(l));
        let words: Vec<String> = current
            .iter()
            .filter_map(|(t, _)| match t {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect();
        let statement = Statement {
            text: sql[from..to].trim_end().to_string(),
            line: start.line as usize,
        };
        refuse(path, &statement, &words)?;
        out.push(statement);
        current.clear();
        Ok::<(), Error>(())
    };
    for t in &tokens {
        match &t.token {
            Token::Whitespace(
                Whitespace::Space
                | Whitespace::Newline
                | Whitespace::Tab
                | Whitespace::SingleLineComment { .. }
                | Whitespace::MultiLineComment(_),
            ) => {}
            Token::SemiColon => flush(&mut current, Some(t.span.start))?,
            Token::EOF => {}
            token => current.push((token, t.span.start)),
        }
    }
    flush(&mut current, None)?;
    Ok(out)
}

/// Refuses what cannot run inside the step's transaction; `words` are the statement's
/// unquoted words, upper-cased.
fn refuse(path: &Path, s: &Statement, words: &[String]) -> Result<(), Error> {
    let first = words.first().map(String::as_str).unwrap_or("");
    let second = words.get(1).map(String::as_str).unwrap_or("");
    let ends_transaction = matches!(first, "BEGIN" | "START" | "COMMIT" | "END" | "ABORT")
        || (first == "ROLLBACK" && second != "TO")
        || (first == "PREPARE" && second == "TRANSACTION");
    if ends_transaction {
        return Err(Error::input(
            path,
            format!(
                "line {}: `{first}` controls the transaction, but strata runs each step in a \
                 transaction of its own (a failure rolls the whole step back); remove it, and \
                 split work that must commit separately into two migrations",
                s.line
            ),
        ));
    }
    if first == "COPY" && words.iter().any(|w| w == "STDIN" || w == "STDOUT") {
        return Err(Error::input(
            path,
            format!(
                "line {}: `COPY ... STDIN/STDOUT` needs psql to stream the data, which a \
                 migration cannot do; put the rows in data.json or in INSERT statements",
                s.line
            ),
        ));
    }
    Ok(())
}

/// `sql` with SQLite-style `?` placeholders numbered for PostgreSQL (`$1`, `$2`, ...), so that
/// a component written against SQLite's placeholders runs unchanged; `None` when the statement
/// is to be sent as written: it numbers its own parameters (`$1`), or its `?` are not exactly
/// the `params` values passed (a jsonb `?` operator in a statement without parameters stays
/// an operator). A `?` inside a string, a quoted name or a comment is not a placeholder.
pub fn number_placeholders(sql: &str, params: usize) -> Option<String> {
    if params == 0 || !sql.contains('?') {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .ok()?;
    let mut marks = Vec::new();
    for t in &tokens {
        match &t.token {
            Token::Question => marks.push(t.span.start),
            Token::Placeholder(p) if p.starts_with('$') => return None,
            _ => {}
        }
    }
    if marks.len() != params {
        return None;
    }
    let lines = LineIndex::new(sql);
    let mut out = String::with_capacity(sql.len() + 2 * params);
    let mut from = 0;
    for (n, at) in marks.into_iter().enumerate() {
        let offset = lines.offset(at);
        out.push_str(&sql[from..offset]);
        out.push_str(&format!("${}", n + 1));
        from = offset + 1;
    }
    out.push_str(&sql[from..]);
    Some(out)
}

/// Byte offsets of the tokenizer's (line, column) locations; columns count characters.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, at: Location) -> usize {
        let Some(&start) = self.starts.get((at.line as usize).saturating_sub(1)) else {
            return self.text.len();
        };
        let column = (at.column as usize).saturating_sub(1);
        self.text[start..]
            .char_indices()
            .nth(column)
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_become_numbered_placeholders_only_when_they_are_the_parameters() {
        let n = number_placeholders;
        assert_eq!(
            n(
                "UPDATE people SET first_name = ?, last_name = ? WHERE id = ?",
                3
            )
            .as_deref(),
            Some("UPDATE people SET first_name = $1, last_name = $2 WHERE id = $3")
        );
        assert_eq!(
            n("SELECT '?', \"a?\" /* ? */ FROM t WHERE x = ? -- ?\n", 1).as_deref(),
            Some("SELECT '?', \"a?\" /* ? */ FROM t WHERE x = $1 -- ?\n")
        );
        assert_eq!(
            n("SELECT é, ? FROM t", 1).as_deref(),
            Some("SELECT é, $1 FROM t")
        );
        // Its own numbering, a jsonb operator without parameters, a count that differs.
        assert_eq!(n("SELECT $1, ?", 1), None);
        assert_eq!(n("SELECT data ? 'k' FROM t", 0), None);
        assert_eq!(n("SELECT ?, ?", 1), None);
    }

    fn split(sql: &str) -> Vec<(usize, String)> {
        statements(Path::new("do.sql"), sql)
            .unwrap()
            .into_iter()
            .map(|s| (s.line, s.text))
            .collect()
    }

    #[test]
    fn statements_come_with_their_first_line() {
        assert_eq!(
            split("CREATE TABLE a (x int);\n\n-- note\nINSERT INTO a VALUES (1);\n"),
            vec![
                (1, "CREATE TABLE a (x int)".to_string()),
                (4, "INSERT INTO a VALUES (1)".to_string())
            ]
        );
    }

    #[test]
    fn semicolons_inside_strings_comments_and_dollar_quotes_do_not_split() {
        let sql = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$\n\
                   BEGIN\n  NEW.x := 'a;b';\n  RETURN NEW;\nEND;\n$body$;\n\
                   /* a; /* nested; */ comment */ SELECT 'it''s; fine', \"odd;name\" FROM t;\n\
                   SELECT $$;$$";
        let got = split(sql);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(got[0].0, 1);
        assert!(got[0].1.ends_with("$body$"), "{}", got[0].1);
        assert_eq!(got[1].0, 7);
        assert!(got[1].1.ends_with("FROM t"), "{}", got[1].1);
        assert_eq!(got[2], (8, "SELECT $$;$$".to_string()));
    }

    #[test]
    fn a_plpgsql_body_with_begin_and_end_is_not_transaction_control() {
        let sql = "DO $$ BEGIN PERFORM 1; END $$;";
        assert_eq!(split(sql).len(), 1);
    }

    #[test]
    fn transaction_control_is_refused_with_its_line() {
        for (sql, word) in [
            ("SELECT 1;\nCOMMIT;", "COMMIT"),
            ("begin;", "BEGIN"),
            ("START TRANSACTION;", "START"),
            ("ROLLBACK;", "ROLLBACK"),
            ("END", "END"),
            ("PREPARE TRANSACTION 'x';", "PREPARE"),
        ] {
            let e = statements(Path::new("m/do.sql"), sql)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(word) && e.starts_with("m/do.sql: line"),
                "{sql}: {e}"
            );
        }
        assert_eq!(split("SAVEPOINT a; ROLLBACK TO a; RELEASE a").len(), 3);
    }

    #[test]
    fn copy_from_stdin_is_refused() {
        let e = statements(Path::new("do.sql"), "COPY t FROM STDIN;").unwrap_err();
        assert!(e.to_string().contains("data.json"), "{e}");
        assert_eq!(split("COPY t TO '/tmp/x'").len(), 1);
    }

    #[test]
    fn an_unterminated_string_names_its_line() {
        let e = statements(Path::new("do.sql"), "SELECT 1;\nSELECT 'oops;").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn multibyte_text_keeps_its_offsets() {
        assert_eq!(
            split("SELECT 'ünïcødé';SELECT 2"),
            vec![
                (1, "SELECT 'ünïcødé'".to_string()),
                (1, "SELECT 2".to_string())
            ]
        );
    }
}
