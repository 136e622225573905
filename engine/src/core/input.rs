//! Checks on a migration's SQL files (`do.sql`, `checks.sql`) made while it is read, before any
//! backup or step: what SQLite would otherwise get wrong silently or only at run time.
//!
//! A NUL byte ends a script for SQLite (the rest would be skipped, yet pinned), and statements
//! that begin or end a transaction cannot run inside the step's own transaction. Pure functions
//! on text; no database.

use std::path::Path;

use crate::core::error::Error;

/// The most strata reads of a configuration file (`strata.toml`, `migration.toml`) or of a
/// credential a setting names (a TLS certificate or key, a passfile, a service file, a token
/// file): 1 MiB.
pub const CONFIG_BYTES: u64 = 1 << 20;

/// The most strata reads of any other file of the project (a migration's SQL, `data.json`,
/// `schema.sql`, a component's `.wasm`): 1 GiB.
pub const FILE_BYTES: u64 = 1 << 30;

/// Reads a file of the project, or any other file strata reads (one a URL, an environment
/// variable or the command line names), which must be a regular file (through a symlink too)
/// of at most `cap` bytes; `None` when there is none. A FIFO, socket or device (`strata.toml ->
/// /dev/zero`, a FIFO named `do.sql`, `sslrootcert=/dev/zero`) is refused from its metadata,
/// never read, and the file is opened without blocking, so nothing in the project or its
/// settings can make strata wait or read without end.
pub fn read_project_file(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read as _;
    let refuse = |meta: &std::fs::Metadata| -> Option<Error> {
        if meta.is_dir() {
            Some(Error::input(
                path,
                "is a folder, where strata reads a file: remove or rename the folder",
            ))
        } else if !meta.is_file() {
            Some(Error::input(
                path,
                "is not a regular file (a FIFO, socket or device, or a link to one): strata \
                 reads files only as plain files; replace it with a file",
            ))
        } else if meta.len() > cap {
            Some(too_big(path, cap))
        } else {
            None
        }
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            if let Some(e) = refuse(&meta) {
                return Err(e);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Swapped for a FIFO since the look above: the open does not wait for a writer.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if let Some(e) = refuse(&meta) {
        return Err(e);
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(path, cap));
    }
    Ok(Some(bytes))
}

/// [`read_project_file`] of a text file: `None` when there is none; refused when not UTF-8.
pub fn read_project_text(path: &Path, cap: u64) -> Result<Option<String>, Error> {
    match read_project_file(path, cap)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::input(path, "is not UTF-8 text")),
    }
}

fn too_big(path: &Path, cap: u64) -> Error {
    Error::input(
        path,
        format!(
            "is larger than the {} MiB strata reads of such a file; is it the file you meant?",
            cap >> 20
        ),
    )
}

/// Which database's SQL a script is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What a rolled-back transaction does not put back on this database, as a failure
    /// says it: PostgreSQL never rolls back `nextval` or `setval` (strata's own bookkeeping
    /// uses no sequence); SQLite puts everything back.
    pub fn kept_by_rollback(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some("the sequences the step advanced or set, if any"),
        }
    }
}

/// Refuses a script the database would not run as written (see [`check_script`] and
/// `crate::core::sql::postgres`); `path` names it in the message.
pub fn check(dialect: Dialect, path: &Path, text: &str) -> Result<(), Error> {
    match dialect {
        Dialect::Sqlite => check_script(path, text),
        Dialect::Postgres => crate::core::sql::postgres::statements(path, text).map(|_| ()),
    }
}

/// Refuses a script SQLite would not run as written; `path` names it in the message.
pub fn check_script(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(at) = text.find('\0') {
        let line = line_of(text, at);
        return Err(Error::input(
            path,
            format!(
                "line {line}: holds a NUL byte, where SQLite would stop reading the script (the \
                 rest would be skipped without a word); remove it"
            ),
        ));
    }
    // Only what the tokenizer understands is judged here; SQLite reports the rest, with its
    // line, when the step runs.
    let Ok(statements) = crate::core::sql::sqlite::statements(text) else {
        return Ok(());
    };
    for tokens in statements {
        let Some(first) = tokens.first() else {
            continue;
        };
        let ends_or_begins = first.is("BEGIN")
            || first.is("COMMIT")
            || first.is("END")
            || (first.is("ROLLBACK") && !tokens.iter().any(|t| t.is("TO")));
        if ends_or_begins {
            return Err(Error::input(
                path,
                format!(
                    "line {}: `{}` begins or ends a transaction, but strata runs each migration in \
                     one transaction of its own (so a failed step leaves the database as it \
                     was); remove the statement",
                    line_of(text, first.start),
                    first.text.to_uppercase()
                ),
            ));
        }
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), String> {
        check_script(Path::new("m/do.sql"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn transaction_statements_are_refused_with_their_line() {
        for (text, line) in [
            ("BEGIN;\nCREATE TABLE a(x);\nCOMMIT;", "line 1"),
            ("CREATE TABLE a(x);\n  commit;", "line 2"),
            ("CREATE TABLE a(x);\n\nEND TRANSACTION;", "line 3"),
            ("-- c\nROLLBACK;", "line 2"),
        ] {
            let err = check(text).unwrap_err();
            assert!(
                err.contains(line) && err.contains("m/do.sql"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn triggers_savepoints_and_words_in_strings_pass() {
        check(
            "CREATE TABLE a(x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\nEND;\n\
             SAVEPOINT s; ROLLBACK TO s; RELEASE s;\nINSERT INTO a VALUES ('BEGIN; COMMIT;');",
        )
        .unwrap();
    }

    #[test]
    fn a_nul_byte_is_refused() {
        let err = check("CREATE TABLE a(x);\n\0DROP TABLE b;").unwrap_err();
        assert!(err.contains("line 2") && err.contains("NUL"), "{err}");
    }
}
