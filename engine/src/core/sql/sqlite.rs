//! SQLite's lexical layer, as far as schema text needs it: a tokenizer that keeps each token's
//! byte span, identifier quoting, the keyword list, splitting a script into statements, and
//! the canonical spacing of a token run.
//!
//! Pure functions on strings; no parsing of statements (that is `parse`) and no database.

use std::collections::HashSet;

/// What kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare word: an identifier or a keyword.
    Word,
    /// `"name"`: an identifier (or, by SQLite's fallback, sometimes a string).
    DoubleQuoted,
    /// `[name]` or `` `name` ``: always an identifier.
    Bracketed,
    /// `'text'`.
    String,
    /// `x'00ff'`.
    Blob,
    /// `12`, `1.5e3`, `0x1f`.
    Number,
    /// `?`, `?1`, `:name`, `@name`, `$name`.
    Variable,
    /// Operators and punctuation: `(`, `)`, `,`, `;`, `.`, `||`, `<=`, ...
    Punct,
}

/// One token: its kind, its text exactly as written, and where it sits in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// Whether this is the bare word `kw` (case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    /// Whether this is the punctuation `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }

    /// Whether the token can name something (a table, a column, ...).
    pub fn is_name(&self) -> bool {
        matches!(
            self.kind,
            Kind::Word | Kind::DoubleQuoted | Kind::Bracketed | Kind::String
        )
    }

    /// The name this token spells, unquoted; `None` for tokens that cannot be names.
    pub fn name(&self) -> Option<String> {
        let t = &self.text;
        match self.kind {
            Kind::Word => Some(t.clone()),
            Kind::DoubleQuoted => Some(t[1..t.len() - 1].replace("\"\"", "\"")),
            Kind::String => Some(t[1..t.len() - 1].replace("''", "'")),
            Kind::Bracketed if t.starts_with('`') => Some(t[1..t.len() - 1].replace("``", "`")),
            Kind::Bracketed => Some(t[1..t.len() - 1].to_string()),
            _ => None,
        }
    }
}

/// A tokenizer error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub offset: usize,
    pub message: String,
}

/// Splits `sql` into tokens; whitespace and comments are dropped.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, LexError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset: usize, message: &str| LexError {
        offset,
        message: message.to_string(),
    };
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\'' | b'"' | b'`' => {
                i = quoted_end(b, i, c).ok_or_else(|| err(start, "unterminated quote"))?;
                match c {
                    b'\'' => Kind::String,
                    b'"' => Kind::DoubleQuoted,
                    _ => Kind::Bracketed,
                }
            }
            b'[' => {
                let n = sql[i..]
                    .find(']')
                    .ok_or_else(|| err(start, "unterminated [identifier]"))?;
                i += n + 1;
                Kind::Bracketed
            }
            b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => {
                i = quoted_end(b, i + 1, b'\'')
                    .ok_or_else(|| err(start, "unterminated blob literal"))?;
                Kind::Blob
            }
            b'0'..=b'9' => {
                i = number_end(b, i);
                Kind::Number
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(b, i);
                Kind::Number
            }
            b'?' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Variable
            }
            b':' | b'@' | b'$' | b'#' if b.get(i + 1).is_some_and(|&n| is_id_char(n)) => {
                i += 1;
                while i < b.len() && (is_id_char(b[i]) || b[i] == b'$') {
                    i += 1;
                }
                Kind::Variable
            }
            _ if is_id_start(c) => {
                while i < b.len() && (is_id_char(b[i]) || b[i] == b'$') {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                // Bytes, not `str` slices: the next character may be wider than one byte.
                let three = &b[i..(i + 3).min(b.len())];
                let two = &b[i..(i + 2).min(b.len())];
                let len = if three == b"->>" {
                    3
                } else if [
                    b"||", b"<=", b">=", b"<>", b"!=", b"==", b"<<", b">>", b"->",
                ]
                .iter()
                .any(|p| p.as_slice() == two)
                {
                    2
                } else if b"()[],;.+-*/%=<>&|~!".contains(&c) {
                    1
                } else {
                    return Err(err(
                        start,
                        &format!("unexpected character {:?}", sql[i..].chars().next()),
                    ));
                };
                i += len;
                Kind::Punct
            }
        };
        out.push(Token {
            kind,
            text: sql[start..i].to_string(),
            start,
            end: i,
        });
    }
    Ok(out)
}

fn is_id_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The end (exclusive) of a quoted token starting at `i` with quote `q`; doubled quotes escape.
fn quoted_end(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    i += 1;
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b'_') {
            i += 1;
        }
        return i;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_' || b[i] == b'.') {
        i += 1;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// SQLite's keywords (<https://sqlite.org/lang_keywords.html>). A name that is one of these is
/// written quoted.
pub const KEYWORDS: &[&str] = &[
    "ABORT",
    "ACTION",
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ALWAYS",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "ATTACH",
    "AUTOINCREMENT",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DATABASE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DESC",
    "DETACH",
    "DISTINCT",
    "DO",
    "DROP",
    "EACH",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXCLUDE",
    "EXCLUSIVE",
    "EXISTS",
    "EXPLAIN",
    "FAIL",
    "FILTER",
    "FIRST",
    "FOLLOWING",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "GENERATED",
    "GLOB",
    "GROUP",
    "GROUPS",
    "HAVING",
    "IF",
    "IGNORE",
    "IMMEDIATE",
    "IN",
    "INDEX",
    "INDEXED",
    "INITIALLY",
    "INNER",
    "INSERT",
    "INSTEAD",
    "INTERSECT",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "KEY",
    "LAST",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MATCH",
    "MATERIALIZED",
    "NATURAL",
    "NO",
    "NOT",
    "NOTHING",
    "NOTNULL",
    "NULL",
    "NULLS",
    "OF",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OTHERS",
    "OUTER",
    "OVER",
    "PARTITION",
    "PLAN",
    "PRAGMA",
    "PRECEDING",
    "PRIMARY",
    "QUERY",
    "RAISE",
    "RANGE",
    "RECURSIVE",
    "REFERENCES",
    "REGEXP",
    "REINDEX",
    "RELEASE",
    "RENAME",
    "REPLACE",
    "RESTRICT",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWS",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "TABLE",
    "TEMP",
    "TEMPORARY",
    "THEN",
    "TIES",
    "TO",
    "TRANSACTION",
    "TRIGGER",
    "UNBOUNDED",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VACUUM",
    "VALUES",
    "VIEW",
    "VIRTUAL",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHOUT",
];

/// Whether `word` is an SQLite keyword (case-insensitive).
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// A name as SQL: bare when it is a plain identifier that is not a keyword, else double-quoted.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if plain && !is_keyword(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Whether an `ATTACH` of `file` (the literal as SQLite reads it) opens nothing strata's backup
/// would miss: an in-memory or temporary database (`:memory:`, `''`, a `file:` URI with
/// `mode=memory`), or a `file:` URI opened read-only (`mode=ro`). Any other file opens for
/// writing, outside the step's backup, and the rehearsal would change the same file. A URI with
/// `%` escapes or parameters other than `mode`, `cache` and `immutable` is not judged allowed.
pub fn attach_is_contained(file: &str) -> bool {
    if file.is_empty() || file == ":memory:" {
        return true;
    }
    // SQLite reads a URI only after a lower-case `file:`; `FILE:x?mode=ro` is a file name.
    let Some(rest) = file.strip_prefix("file:") else {
        return false;
    };
    let Some((_, query)) = rest.split_once('?') else {
        return false;
    };
    // SQLite's URI ends at `#` (the fragment), wherever it stands: `file:x#?mode=ro` opens `x`
    // read-write. A `#` anywhere, or a `%` escape, is not judged.
    if rest.contains('#') || rest.contains('%') {
        return false;
    }
    let mut modes = 0;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key {
            "mode" if value == "ro" || value == "memory" => modes += 1,
            "cache" | "immutable" => {}
            _ => return false,
        }
    }
    modes > 0
}

/// The file an `ATTACH` of `file` (the literal as SQLite reads it) opens, as SQLite takes it
/// (a relative path from the process's folder): the path of a `file:` URI without its authority,
/// query and fragment, or `file` itself; `None` for an in-memory or temporary database
/// (`:memory:`, `''`, `mode=memory`).
pub fn attached_path(file: &str) -> Option<std::path::PathBuf> {
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    let Some(rest) = file.strip_prefix("file:") else {
        return Some(file.into());
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path, query) = rest.split_at(end);
    if query
        .trim_start_matches('?')
        .split(['&', '#'])
        .any(|p| p == "mode=memory")
    {
        return None;
    }
    let path = match path.strip_prefix("//") {
        Some(after) => &after[after.find('/').unwrap_or(after.len())..],
        None => path,
    };
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(path.into())
}

/// A text value as an SQL string literal.
pub fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Keywords after which `(` still gets no space, because they are used as functions.
const FUNCTION_KEYWORDS: &[&str] = &["CAST", "REPLACE", "LIKE", "GLOB", "RAISE", "IF"];
/// Keywords that end an operand, so a following `-` or `+` is binary.
const OPERAND_KEYWORDS: &[&str] = &[
    "NULL",
    "END",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
];

/// Renders a run of tokens canonically: single spaces, none inside parentheses or before
/// commas, none around `.`, none between a function name and its `(`; keywords in upper case
/// (a keyword used as a name means the same in any case); `[x]` and `` `x` `` are written as
/// [`quote_ident`] would; `"x"` is unquoted only when `x` (case-insensitive) is in `known` (names
/// that are certainly identifiers here, such as the table's columns), because a double-quoted
/// word that names nothing is a string in SQLite. Comments are gone already.
pub fn render(tokens: &[Token], known: &HashSet<String>) -> String {
    render_with(tokens, known, true)
}

/// [`render`] with the words' letter case kept (for text SQLite hands to someone else, such as a
/// virtual table's arguments).
pub fn render_keeping_case(tokens: &[Token]) -> String {
    render_with(tokens, &HashSet::new(), false)
}

fn render_with(tokens: &[Token], known: &HashSet<String>, upper: bool) -> String {
    let mut out = String::new();
    let mut prev: Option<&Token> = None;
    let mut prev_unary = false;
    for t in tokens {
        if let Some(p) = prev {
            let tight = p.is_punct("(")
                || p.is_punct(".")
                || t.is_punct(")")
                || t.is_punct(",")
                || t.is_punct(".")
                || t.is_punct(";")
                || prev_unary
                || (t.is_punct("(")
                    && (matches!(p.kind, Kind::DoubleQuoted | Kind::Bracketed)
                        || (p.kind == Kind::Word
                            && (!is_keyword(&p.text)
                                || FUNCTION_KEYWORDS
                                    .iter()
                                    .any(|k| k.eq_ignore_ascii_case(&p.text))))));
            if !tight {
                out.push(' ');
            }
        }
        // A sign is unary where no operand precedes it.
        prev_unary = t.kind == Kind::Punct
            && matches!(t.text.as_str(), "-" | "+" | "~")
            && match prev {
                None => true,
                Some(p) => match p.kind {
                    Kind::Punct => p.text != ")",
                    Kind::Word => {
                        is_keyword(&p.text)
                            && !OPERAND_KEYWORDS
                                .iter()
                                .any(|k| k.eq_ignore_ascii_case(&p.text))
                    }
                    _ => false,
                },
            };
        if upper && t.kind == Kind::Word && is_keyword(&t.text) {
            out.push_str(&t.text.to_ascii_uppercase());
        } else {
            out.push_str(&render_token(t, known));
        }
        prev = Some(t);
    }
    out
}

/// One token, with identifier quoting made canonical where that is safe.
pub fn render_token(t: &Token, known: &HashSet<String>) -> String {
    match t.kind {
        Kind::Bracketed => quote_ident(&t.name().unwrap_or_default()),
        Kind::DoubleQuoted => {
            let name = t.name().unwrap_or_default();
            if known.contains(&name.to_ascii_lowercase()) {
                quote_ident(&name)
            } else {
                t.text.clone()
            }
        }
        _ => t.text.clone(),
    }
}

/// The statements of a script, each as its tokens (without the `;`). A trigger's body keeps
/// its inner `;`s: it ends at the `END` that starts a statement inside `BEGIN`.
pub fn statements(sql: &str) -> Result<Vec<Vec<Token>>, LexError> {
    let tokens = tokenize(sql)?;
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut in_body = false;
    let mut at_body_statement_start = false;
    for t in tokens {
        if t.is_punct(";") {
            if in_body {
                current.push(t);
                at_body_statement_start = true;
                continue;
            }
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let is_trigger = current.first().is_some_and(|f| f.is("CREATE"))
            && current.iter().take(3).any(|x| x.is("TRIGGER"));
        if is_trigger && !in_body && t.is("BEGIN") {
            in_body = true;
            at_body_statement_start = true;
            current.push(t);
            continue;
        }
        if in_body && at_body_statement_start && t.is("END") {
            in_body = false;
        }
        at_body_statement_start = false;
        current.push(t);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Every name a run of tokens mentions, lowercased: the words and quoted identifiers, plus the
/// content of strings (SQLite accepts 'name' for a name in places). Used to find which views
/// and triggers depend on which tables; a false positive only costs a drop and re-create.
pub fn mentioned_names(tokens: &[Token]) -> HashSet<String> {
    tokens
        .iter()
        .filter_map(|t| t.name())
        .map(|n| n.to_ascii_lowercase())
        .collect()
}

/// Replaces identifier tokens naming a key of `renames` (lowercase) with the new name, and
/// renders the result (see [`render`]).
pub fn render_renamed(
    tokens: &[Token],
    renames: &std::collections::HashMap<String, String>,
    known: &HashSet<String>,
) -> String {
    let replaced: Vec<Token> = tokens
        .iter()
        .map(|t| {
            let hit = matches!(t.kind, Kind::Word | Kind::DoubleQuoted | Kind::Bracketed)
                && !(t.kind == Kind::Word && is_keyword(&t.text));
            match t
                .name()
                .filter(|_| hit)
                .and_then(|n| renames.get(&n.to_ascii_lowercase()))
            {
                Some(new) => Token {
                    kind: Kind::Word,
                    text: quote_ident(new),
                    ..t.clone()
                },
                None => t.clone(),
            }
        })
        .collect();
    render(&replaced, known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, String)> {
        tokenize(sql)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn tokens_keep_their_text_and_drop_comments() {
        assert_eq!(
            kinds("SELECT [a b], \"c\"\"d\", `e`, 'f''g', x'00', 1.5e3, ?1 -- c\n/* d */ ->> ||"),
            vec![
                (Kind::Word, "SELECT".into()),
                (Kind::Bracketed, "[a b]".into()),
                (Kind::Punct, ",".into()),
                (Kind::DoubleQuoted, "\"c\"\"d\"".into()),
                (Kind::Punct, ",".into()),
                (Kind::Bracketed, "`e`".into()),
                (Kind::Punct, ",".into()),
                (Kind::String, "'f''g'".into()),
                (Kind::Punct, ",".into()),
                (Kind::Blob, "x'00'".into()),
                (Kind::Punct, ",".into()),
                (Kind::Number, "1.5e3".into()),
                (Kind::Punct, ",".into()),
                (Kind::Variable, "?1".into()),
                (Kind::Punct, "->>".into()),
                (Kind::Punct, "||".into()),
            ]
        );
        let t = tokenize("[a b] \"c\"\"d\" `e``f`").unwrap();
        let names: Vec<String> = t.iter().filter_map(Token::name).collect();
        assert_eq!(names, ["a b", "c\"d", "e`f"]);
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(tokenize("SELECT 'abc").is_err());
        assert!(tokenize("SELECT [abc").is_err());
    }

    #[test]
    fn names_are_quoted_only_when_they_need_it() {
        assert_eq!(quote_ident("Album"), "Album");
        assert_eq!(quote_ident("_x1"), "_x1");
        assert_eq!(quote_ident("Order Details"), "\"Order Details\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    fn norm(sql: &str, known: &[&str]) -> String {
        let known = known.iter().map(|k| k.to_ascii_lowercase()).collect();
        render(&tokenize(sql).unwrap(), &known)
    }

    #[test]
    fn rendering_normalizes_spacing_and_bracket_quotes() {
        assert_eq!(
            norm("[Discount]>=(0)  AND\n [Discount]<=(1)", &[]),
            "Discount >= (0) AND Discount <= (1)"
        );
        assert_eq!(
            norm("datetime ( 'now' , 'utc' )", &[]),
            "datetime('now', 'utc')"
        );
        assert_eq!(norm("x in ( 1,2 )", &[]), "x IN (1, 2)");
        assert_eq!(norm("- 1", &[]), "-1");
        assert_eq!(norm("a - 1", &[]), "a - 1");
        assert_eq!(
            norm("CASE WHEN a THEN -1 ELSE +2 END - 3", &[]),
            "CASE WHEN a THEN -1 ELSE +2 END - 3"
        );
        assert_eq!(norm("t . [c d]", &[]), "t.\"c d\"");
        assert_eq!(norm("CAST ( x AS INT )", &[]), "CAST(x AS INT)");
        assert_eq!(norm("count ( * )", &[]), "count(*)");
    }

    #[test]
    fn double_quotes_go_only_for_known_names() {
        assert_eq!(norm("\"a\" > 0", &["A"]), "a > 0");
        assert_eq!(
            norm("x IN (\"on\", \"off\")", &["x"]),
            "x IN (\"on\", \"off\")"
        );
        assert_eq!(norm("\"order\" > 0", &["order"]), "\"order\" > 0");
    }

    #[test]
    fn statements_split_on_semicolons_but_not_inside_trigger_bodies() {
        let sql = "CREATE TABLE a(x); CREATE TRIGGER t AFTER INSERT ON a BEGIN \
                   UPDATE a SET x = CASE WHEN 1 THEN 2 END; SELECT 1; END; ; CREATE VIEW v AS SELECT 1";
        let s = statements(sql).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s[1].last().unwrap().is("END"));
        assert_eq!(s[2][1].text, "VIEW");
    }

    #[test]
    fn renames_replace_identifiers_only() {
        let renames = [("a".to_string(), "b".to_string())].into_iter().collect();
        let t = tokenize("[a] > 0 AND 'a' <> a AND t.a = 1").unwrap();
        assert_eq!(
            render_renamed(&t, &renames, &HashSet::new()),
            "b > 0 AND 'a' <> b AND t.b = 1"
        );
    }
}
