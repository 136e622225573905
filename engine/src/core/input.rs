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
/// `schema.sql`): 1 GiB.
pub const FILE_BYTES: u64 = 1 << 30;

/// The most strata reads of a component (`transform.wasm`, `seed.wasm`, `check.wasm`, what
/// `strata build` made): 256 MiB (see `components::compile::MAX_COMPONENT_BYTES`).
pub const COMPONENT_BYTES: u64 = crate::components::compile::MAX_COMPONENT_BYTES;

/// Reads a component file as [`read_project_file`] does, refused from its size, before a byte
/// is read, when it is larger than [`COMPONENT_BYTES`].
pub fn read_component(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    read_capped(path, COMPONENT_BYTES, &|size| component_too_big(path, size))
}

/// The sha256 of a component file, read in pieces (never held whole), within the same bound
/// as [`read_component`]; `None` when there is none.
pub fn component_sha256(path: &Path) -> Result<Option<[u8; 32]>, Error> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let Some(file) = open_capped(path, COMPONENT_BYTES, &|size| component_too_big(path, size))?
    else {
        return Ok(None);
    };
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = 0u64;
    let mut file = file.take(COMPONENT_BYTES + 1);
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        if seen > COMPONENT_BYTES {
            return Err(component_too_big(path, seen));
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hasher.finalize().into()))
}

/// Why a component file of `size` bytes is refused.
fn component_too_big(path: &Path, size: u64) -> Error {
    let migration = path
        .ancestors()
        .skip(1)
        .find_map(|d| {
            let name = d.file_name()?.to_str()?;
            (name != "proj-data" && name != "test-data").then(|| name.to_string())
        })
        .unwrap_or_else(|| "?".into());
    Error::input(
        path,
        format!(
            "the file is too large: {} MiB (migration {migration}), where strata takes a \
             component of at most {} MiB (real components are far smaller: a Python or \
             JavaScript guest is about 20 MiB); is it the component you meant? Rebuild it with \
             `strata build`, or move what it embeds into the migration's data files",
            size.div_ceil(1 << 20),
            COMPONENT_BYTES >> 20
        ),
    )
}

/// Reads a file of the project, or any other file strata reads (one a URL, an environment
/// variable or the command line names), which must be a regular file (through a symlink too)
/// of at most `cap` bytes; `None` when there is none. A FIFO, socket or device (`strata.toml ->
/// /dev/zero`, a FIFO named `do.sql`, `sslrootcert=/dev/zero`) is refused from its metadata,
/// never read, and the file is opened without blocking, so nothing in the project or its
/// settings can make strata wait or read without end.
pub fn read_project_file(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, Error> {
    read_capped(path, cap, &|_| too_big(path, cap))
}

/// [`read_project_file`], `too_big` saying why a file of that many bytes is refused.
fn read_capped(
    path: &Path,
    cap: u64,
    too_big: &dyn Fn(u64) -> Error,
) -> Result<Option<Vec<u8>>, Error> {
    use std::io::Read as _;
    let Some(file) = open_capped(path, cap, too_big)? else {
        return Ok(None);
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    // As large as the file was (plus one byte to see it grew), so the buffer never doubles.
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(cap) + 1).unwrap_or(0));
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// Opens a file [`read_project_file`] may read: a regular file of at most `cap` bytes by its
/// metadata (before and after the open); `None` when there is none.
fn open_capped(
    path: &Path,
    cap: u64,
    too_big: &dyn Fn(u64) -> Error,
) -> Result<Option<std::fs::File>, Error> {
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
            Some(too_big(meta.len()))
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
    Ok(Some(file))
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
    fn a_component_larger_than_the_cap_is_refused_from_its_size_unread() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("migrations/app/20240101T000000Z-big/proj-data");
        std::fs::create_dir_all(&folder).unwrap();
        let wasm = folder.join("seed.wasm");
        // Sparse: no disk and, when refused from its size, no memory.
        let file = std::fs::File::create(&wasm).unwrap();
        file.set_len(COMPONENT_BYTES + 1).unwrap();
        for e in [
            read_component(&wasm).unwrap_err(),
            component_sha256(&wasm).unwrap_err(),
        ] {
            let said = e.to_string();
            for part in [
                "seed.wasm",
                "the file is too large: 257 MiB",
                "migration 20240101T000000Z-big",
                "at most 256 MiB",
                "strata build",
            ] {
                assert!(said.contains(part), "{part}: {said}");
            }
        }
        // Below the cap, read and hashed in pieces alike.
        std::fs::write(&wasm, b"\0asm component").unwrap();
        assert_eq!(
            component_sha256(&wasm).unwrap().unwrap(),
            <[u8; 32]>::from(sha2::Sha256::digest(b"\0asm component"))
        );
        assert!(read_component(&folder.join("gone.wasm")).unwrap().is_none());
        assert_eq!(read_component(&wasm).unwrap().unwrap(), b"\0asm component");
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
