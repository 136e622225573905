//! [`Error`], [`ErrorKind`] and [`Result`].

use std::fmt;

use crate::bindings::sql_api;

/// The result type of every fallible SDK call, and of the functions the export macros wrap.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
///
/// The first five are the cases of the host's `error` variant in `strata.wit`; the last two
/// arise in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The statement does not parse, names a missing table or column, or got the wrong number
    /// of parameters.
    Syntax,
    /// A constraint refused a row: UNIQUE, NOT NULL, CHECK, PRIMARY KEY or FOREIGN KEY.
    Constraint,
    /// The sandbox refused: an undeclared table, ATTACH, a PRAGMA, a transaction statement, or
    /// strata's own tables.
    Denied,
    /// A limit ran out during the statement (the wall-clock deadline).
    Limit,
    /// Anything else SQLite reported.
    Other,
    /// A row, a value or the seed parameters do not fit the Rust type asked for.
    Decode,
    /// An error raised by guest code, with [`Error::msg`] or from a `String`/`&str`.
    Custom,
}

impl ErrorKind {
    fn label(self) -> Option<&'static str> {
        match self {
            ErrorKind::Syntax => Some("syntax"),
            ErrorKind::Constraint => Some("constraint"),
            ErrorKind::Denied => Some("denied"),
            ErrorKind::Limit => Some("limit"),
            ErrorKind::Other => Some("sqlite"),
            ErrorKind::Decode => Some("decode"),
            ErrorKind::Custom => None,
        }
    }
}

/// An error from the host's SQL API, from decoding rows, or from guest code.
///
/// Displays as `kind: message`, followed by the statement for SQL errors, for example
/// ``constraint: UNIQUE constraint failed: people.email (in `INSERT INTO people ...`)``.
/// The export macros turn it into the string the host reports.
///
/// Other error types convert with [`Error::msg`]: `"42".parse::<i64>().map_err(Error::msg)?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

/// Boxed, so that `Result<T, Error>` stays small on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    message: String,
    statement: Option<String>,
}

/// How much of a statement an error message quotes.
const STATEMENT_QUOTE_CHARS: usize = 120;

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            statement: None,
        }))
    }

    /// A [`ErrorKind::Custom`] error with the message `message` displays as.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Custom, message.to_string())
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without the kind and the statement.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The SQL statement the error came from, if it came from one.
    pub fn statement(&self) -> Option<&str> {
        self.0.statement.as_deref()
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Decode, message)
    }

    /// Records the statement the error came from (kept if one is already recorded).
    pub(crate) fn in_statement(mut self, sql: &str) -> Self {
        if self.0.statement.is_none() {
            self.0.statement = Some(sql.to_owned());
        }
        self
    }

    /// Puts `context` in front of the message.
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Self {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }

    /// The error of a host call running `sql`.
    pub(crate) fn from_host(e: sql_api::Error, sql: &str) -> Self {
        let (kind, message) = match e {
            sql_api::Error::Syntax(m) => (ErrorKind::Syntax, m),
            sql_api::Error::Constraint(m) => (ErrorKind::Constraint, m),
            sql_api::Error::Denied(m) => (ErrorKind::Denied, m),
            sql_api::Error::Limit(m) => (ErrorKind::Limit, m),
            sql_api::Error::Other(m) => (ErrorKind::Other, m),
        };
        Error::new(kind, message).in_statement(sql)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(label) = self.0.kind.label() {
            write!(f, "{label}: ")?;
        }
        f.write_str(&self.0.message)?;
        if let Some(sql) = &self.0.statement {
            let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            match sql.char_indices().nth(STATEMENT_QUOTE_CHARS) {
                Some((cut, _)) => write!(f, " (in `{} ...`)", &sql[..cut])?,
                None => write!(f, " (in `{sql}`)")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    /// A [`ErrorKind::Custom`] error.
    fn from(message: String) -> Self {
        Error::new(ErrorKind::Custom, message)
    }
}

impl From<&str> for Error {
    /// A [`ErrorKind::Custom`] error.
    fn from(message: &str) -> Self {
        Error::new(ErrorKind::Custom, message)
    }
}

impl From<serde_json::Error> for Error {
    /// A [`ErrorKind::Decode`] error.
    fn from(e: serde_json::Error) -> Self {
        Error::decode(e.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::decode(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_keep_their_kind_and_statement() {
        let e = Error::from_host(
            sql_api::Error::Constraint("UNIQUE constraint failed: people.email".into()),
            "INSERT INTO people (email)\n  VALUES (?)",
        );
        assert_eq!(e.kind(), ErrorKind::Constraint);
        assert_eq!(e.message(), "UNIQUE constraint failed: people.email");
        assert_eq!(
            e.statement(),
            Some("INSERT INTO people (email)\n  VALUES (?)")
        );
        assert_eq!(
            e.to_string(),
            "constraint: UNIQUE constraint failed: people.email \
             (in `INSERT INTO people (email) VALUES (?)`)"
        );
    }

    #[test]
    fn long_statements_are_cut_in_messages() {
        let sql = format!("SELECT {} FROM t", "é, ".repeat(100));
        let shown = Error::from_host(sql_api::Error::Syntax("bad".into()), &sql).to_string();
        assert!(
            shown.starts_with("syntax: bad (in `SELECT é, é,"),
            "{shown}"
        );
        assert!(shown.ends_with(" ...`)"), "{shown}");
    }

    #[test]
    fn custom_errors_show_only_their_message() {
        assert_eq!(Error::msg(3.5).to_string(), "3.5");
        assert_eq!(Error::from("no rows").kind(), ErrorKind::Custom);
        assert_eq!(
            Error::decode("bad").context("row 2").to_string(),
            "decode: row 2: bad"
        );
    }
}
