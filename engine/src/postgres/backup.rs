//! Backups of a PostgreSQL database: `pg_dump --format=custom` into `.strata/backups/`,
//! verified by `pg_restore --list` reading the whole archive's table of contents, then renamed
//! into place beside a record (the same [`crate::core::backup::Record`] as SQLite backups: the
//! database as shown, its identity from `strata.strata_database`, when and why).
//!
//! The password reaches `pg_dump` through its environment (`PGPASSWORD`), never its command
//! line, which other users can read in the process list.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ledger;
use crate::core::backup::{RECORD_FORMAT, Record, record_path};
use crate::core::error::Error;
use crate::core::target::Target;

/// The extension of PostgreSQL backups.
pub const EXTENSION: &str = "pgdump";

/// A client program (`pg_dump`, `pg_restore`): on PATH, else the newest in Debian's
/// `/usr/lib/postgresql/<version>/bin`.
pub(crate) fn program(name: &str) -> Result<PathBuf, Error> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return Ok(p);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    versions.pop().ok_or_else(|| {
        Error::Usage(format!(
            "{name} is not installed, and strata backs up a PostgreSQL database with it before \
             changing it; install the PostgreSQL client programs (Debian: `apt-get install \
             postgresql-client`)"
        ))
    })
}

/// A client program's command, connected to `target` through its environment.
pub(crate) fn command(name: &str, target: &Target) -> Result<Command, Error> {
    let mut cmd = Command::new(program(name)?);
    for (var, value) in target.environment() {
        cmd.env(var, value);
    }
    if target.withheld.is_some() {
        cmd.env_remove("PGPASSWORD");
    }
    cmd.arg("--no-password");
    Ok(cmd)
}

/// Runs `cmd`; its stderr becomes the error.
pub(crate) fn run(mut cmd: Command, what: &str, target: &Target) -> Result<Vec<u8>, Error> {
    let out = cmd
        .output()
        .map_err(|e| Error::Usage(format!("cannot run {what} for {target}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Postgres {
            db: target.as_path(),
            context: format!("{what} failed"),
            sqlstate: None,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            source: None,
        });
    }
    Ok(out.stdout)
}

/// Takes a verified backup of `target` into `dir` and keeps only the newest `keep` backups of
/// it. Returns the backup's path. The bookkeeping tables must exist (they hold the identity).
pub fn take(
    client: &mut postgres::Client,
    target: &Target,
    dir: &Path,
    keep: usize,
    reason: &str,
) -> Result<PathBuf, Error> {
    let id = ledger::database_id(client, &target.book())
        .map_err(|e| target.error("cannot read the database's identity", e))?
        .unwrap_or_default();
    crate::core::backup::private_folder(dir)?;
    let partial = tempfile::Builder::new()
        .suffix(".pgdump.partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let mut dump = command("pg_dump", target)?;
    // zlib's fastest level: a 1,000,000-row table dumped in 0.7-1.0 s instead of 1.4-2.7 s at
    // the default level, the archive 8.2 MB instead of 6.6 MB; pg_restore reads either.
    dump.arg("--format=custom")
        .arg("--compress=1")
        .arg("--file")
        .arg(partial.path());
    // A tenant's backup is of its schema and its bookkeeping schema, nothing else.
    if let Some(tenant) = target.tenant() {
        dump.arg(format!("--schema={tenant}"))
            .arg(format!("--schema={}", target.book()));
    }
    run(dump, "pg_dump", target)?;
    verify(partial.path(), target)?;

    let record = Record {
        strata_backup: RECORD_FORMAT,
        source: target.as_path(),
        database_id: id.clone(),
        taken_at: crate::core::ledger::now_rfc3339(),
        reason: reason.to_string(),
    };
    let name = crate::core::backup::file_stem(target.tenant().unwrap_or(target.dbname()), &id);
    let path = crate::core::backup::store_as(partial, &record, &name, EXTENSION, dir)?;
    prune(dir, target, keep);
    Ok(path)
}

/// Reads the archive's whole table of contents with `pg_restore --list`.
pub fn verify(path: &Path, target: &Target) -> Result<(), Error> {
    let mut list = Command::new(program("pg_restore")?);
    list.arg("--list").arg(path);
    let toc = run(list, "pg_restore --list (verifying the backup)", target)?;
    if toc.is_empty() {
        return Err(Error::input(path, "is an empty archive, not a backup"));
    }
    Ok(())
}

/// The backups of `target` in `dir`, oldest first.
pub fn list(dir: &Path, target: &Target) -> Vec<(PathBuf, Record)> {
    let mut found: Vec<(PathBuf, Record)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
        .filter_map(|p| {
            let record = crate::core::backup::read_record(&p).ok()?;
            (record.source == target.as_path()).then_some((p, record))
        })
        .collect();
    found.sort_by(|a, b| (&a.1.taken_at, &a.0).cmp(&(&b.1.taken_at, &b.0)));
    found
}

/// Removes all but the newest `keep` (at least one) backups of `target`. Best effort.
fn prune(dir: &Path, target: &Target, keep: usize) {
    for (old, _) in list(dir, target).iter().rev().skip(keep.max(1)) {
        let _ = std::fs::remove_file(old);
        let _ = std::fs::remove_file(record_path(old));
    }
}
