//! Backups: verified copies of a database, each recorded with the database it was taken from,
//! and the run lock that keeps a restore from interleaving with a migrate.
//!
//! A backup is `.strata/backups/<db stem>-<id>-<UTC stamp>.db` beside its record
//! `<same name>.db.json`: the source database's absolute path, its identity (the random id
//! strata keeps in the database itself, `strata_database`, so the backup carries it too), when
//! and why it was taken. The copy is written to a private temporary name, checked with
//! `PRAGMA integrity_check`, and only then renamed into place (never over another backup), so a
//! file with a final name is always a complete, verified backup. Putting one back is
//! `crate::core::restore`; this module does not decide when to back up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Refusal};
use crate::core::tree::STAMP_FORMAT;

/// The format version written into every backup record.
pub const RECORD_FORMAT: u32 = 1;

/// What strata knows about a backup, stored beside it as `<backup>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The record's format ([`RECORD_FORMAT`]).
    pub strata_backup: u32,
    /// The absolute path of the database the backup was taken from.
    pub source: PathBuf,
    /// That database's identity (`strata_database.id`), also inside the backup itself.
    pub database_id: String,
    /// When it was taken, UTC, RFC 3339.
    pub taken_at: String,
    /// Why: `before migrate (apply)`, `before restore`, `before baseline`, ...
    pub reason: String,
}

/// A backup and its record.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub path: PathBuf,
    #[serde(flatten)]
    pub record: Record,
    /// The backup file's size in bytes.
    pub size: u64,
}

/// The record file of a backup: its file name with `.json` appended.
pub fn record_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Reads the record beside `backup`; a missing or unreadable record means the file is not a
/// backup strata can put back (exit 2, naming the file).
pub fn read_record(backup: &Path) -> Result<Record, Error> {
    let path = record_path(backup);
    let text = match crate::core::input::read_project_text(&path, crate::core::input::CONFIG_BYTES)?
    {
        Some(text) => text,
        None => {
            return Err(Error::input(
                backup,
                format!(
                    "is not a strata backup: it has no record ({} is missing), so nothing says \
                     which database it was taken from. `strata restore --list` shows the \
                     backups that can go back",
                    file_name(&path)
                ),
            ));
        }
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            &path,
            format!("is not a strata backup record ({e}); the backup beside it cannot go back"),
        )
    })?;
    if record.strata_backup != RECORD_FORMAT {
        return Err(Error::input(
            &path,
            format!(
                "is a backup record of format {}, this strata reads format {RECORD_FORMAT}",
                record.strata_backup
            ),
        ));
    }
    Ok(record)
}

/// `db` as an absolute path with symbolic links resolved, also when the file does not exist
/// (then its folder is resolved): the form backup records compare.
pub fn absolute(db: &Path) -> PathBuf {
    if let Ok(p) = db.canonicalize() {
        return p;
    }
    let parent = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), db.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf()),
    }
}

/// Creates `dir` and the folders above it that are missing with mode 0700 whatever the umask,
/// and narrows `dir` and its parent (`.strata/backups/` and `.strata/`) to 0700 when they are
/// this user's and open to others (made by hand, by an older strata, under umask 000). A folder
/// that belongs to another user is refused: they could delete, replace or add backups.
pub fn private_folder(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))?;
    #[cfg(unix)]
    for folder in [Some(dir), dir.parent().filter(|p| p.ends_with(".strata"))]
        .into_iter()
        .flatten()
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let meta = std::fs::metadata(folder).map_err(|e| Error::io(folder, e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::input(
                folder,
                format!(
                    "belongs to user id {}, not to you (id {me}): strata keeps its backups only \
                     in a folder of its own that no one else can change; remove the folder (or \
                     have its owner remove it) and run again",
                    meta.uid()
                ),
            ));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(folder, e))?;
        }
    }
    Ok(())
}

/// A private temporary file in `dir` for a backup being written.
pub(crate) fn partial(dir: &Path) -> Result<tempfile::NamedTempFile, Error> {
    private_folder(dir)?;
    tempfile::Builder::new()
        .suffix(".db.partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Gives a complete, verified backup in `partial` its final name in `dir` (never over another
/// file) and writes its record. Returns the final path.
pub(crate) fn store(
    partial: tempfile::NamedTempFile,
    db: &Path,
    database_id: &str,
    dir: &Path,
    reason: &str,
) -> Result<PathBuf, Error> {
    let record = Record {
        strata_backup: RECORD_FORMAT,
        source: absolute(db),
        database_id: database_id.to_string(),
        taken_at: crate::core::ledger::now_rfc3339(),
        reason: reason.to_string(),
    };
    let name = file_stem(&stem(db), database_id);
    store_as(partial, &record, &name, "db", dir)
}

/// `<db stem>-<first 8 characters of the identity>-<UTC stamp>`: a backup's name without its
/// extension.
pub(crate) fn file_stem(db_stem: &str, database_id: &str) -> String {
    let stamp = chrono::Utc::now().format(STAMP_FORMAT).to_string();
    let short: String = database_id.chars().take(8).collect();
    format!("{db_stem}-{short}-{stamp}")
}

/// Gives the complete, verified backup in `partial` the name `<name>.<extension>` in `dir`
/// (`<name>-<n>.<extension>` if taken: never over another file) and writes `record` beside
/// it. Returns the final path. Shared by SQLite and PostgreSQL backups.
pub(crate) fn store_as(
    partial: tempfile::NamedTempFile,
    record: &Record,
    name: &str,
    extension: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    let path = place(partial, name, extension, dir)?;
    write_record(&path, record, dir)?;
    Ok(path)
}

/// Gives the file in `partial` the name `<name>.<extension>` in `dir` (`<name>-<n>.<extension>`
/// if taken: never over another file), without its record: no listing or restore sees it until
/// [`write_record`] writes that. Returns the final path.
pub(crate) fn place(
    partial: tempfile::NamedTempFile,
    name: &str,
    extension: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    let mut partial = partial;
    let mut n = 0;
    let path = loop {
        let path = match n {
            0 => dir.join(format!("{name}.{extension}")),
            n => dir.join(format!("{name}-{n}.{extension}")),
        };
        match partial.persist_noclobber(&path) {
            Ok(_) => break path,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                partial = e.file;
                n += 1;
            }
            Err(e) => return Err(Error::io(&path, e.error)),
        }
    };
    Ok(path)
}

/// Writes `record` beside the backup at `path` (durably, then renamed into place), which makes
/// it a backup listings and restores see; on failure the backup is removed.
pub(crate) fn write_record(path: &Path, record: &Record, dir: &Path) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(record).expect("a record serializes");
    let written = tempfile::NamedTempFile::new_in(dir)
        .and_then(|mut tmp| {
            std::io::Write::write_all(&mut tmp, text.as_bytes())?;
            tmp.as_file().sync_all()?;
            Ok(tmp)
        })
        .and_then(|tmp| tmp.persist(record_path(path)).map_err(|e| e.error));
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(Error::io(record_path(path), e));
    }
    Ok(())
}

/// Removes all but the newest `keep` (at least one) backups of `db` in `dir`, record and all.
/// Best effort: a backup that cannot be removed stays.
pub(crate) fn prune(dir: &Path, db: &Path, keep: usize) {
    if let Ok(all) = list(dir, db) {
        for old in all.iter().rev().skip(keep.max(1)) {
            let _ = std::fs::remove_file(&old.path);
            let _ = std::fs::remove_file(record_path(&old.path));
            let _ = std::fs::remove_file(crate::core::restore::state_after_path(&old.path));
        }
    }
}

/// The backups in `dir` taken from `db` (by its absolute path), oldest first. Files without a
/// record (another tool's, or an unfinished backup) are not backups.
pub fn list(dir: &Path, db: &Path) -> Result<Vec<Backup>, Error> {
    let source = absolute(db);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "db") {
            continue;
        }
        let Ok(record) = read_record(&path) else {
            continue;
        };
        if record.source != source {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        found.push(Backup { path, record, size });
    }
    found.sort_by(|a, b| {
        (&a.record.taken_at, taken_order(&a.path)).cmp(&(&b.record.taken_at, taken_order(&b.path)))
    });
    Ok(found)
}

/// The order of backups taken within one clock tick (the same `taken_at`): by name, a name
/// taken first before its `-<n>` variants ([`store_as`] adds them on a collision), those in the
/// order of `n` (`-2` before `-10`). Plain byte order would put `...Z-1.db` before `...Z.db`.
fn taken_order(path: &Path) -> (&str, u64, &str) {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((base, n))
            if base.ends_with('Z') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (base, n.parse().unwrap_or(u64::MAX), stem)
        }
        _ => (stem, 0, stem),
    }
}

/// The name backups of `db` start with: its file name without extension.
pub(crate) fn stem(db: &Path) -> String {
    db.file_stem()
        .map_or_else(|| "db".into(), |s| s.to_string_lossy().into_owned())
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A builder of temporary folders (and files) that only their owner may enter or read,
/// whatever the umask: for copies of a database's rows (a rehearsal copy, a sandbox started
/// from a database or backup, a `pg_dump` archive), which must be no more readable than the
/// backups are.
pub(crate) fn private_dir<'a, 'b>() -> tempfile::Builder<'a, 'b> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder
}

/// A user's login name and id (`eve (uid 1001)`), or the id alone when it has no name.
#[cfg(unix)]
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the name read from it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: getpwuid_r left a NUL-terminated name inside buf.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        format!("{} (uid {uid})", name.to_string_lossy())
    } else {
        format!("uid {uid}")
    }
}

/// The lock a run holds on a database while it changes it, in the file `<db>.strata-lock`
/// beside the database: shared by `migrate` phases (several may run at once; each step also
/// takes SQLite's write lock), exclusive by every other command that changes the ledger
/// (`restore`, `undo`, `repair`, `baseline`), so none of them lands between the steps of a
/// running migrate. Released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock shared, waiting up to `timeout` for a restore to finish; then refuses
    /// (exit 3).
    pub fn shared(db: &Path, timeout: Duration) -> Result<RunLock, Error> {
        RunLock::acquire(db, timeout, false)
    }

    /// Takes the lock exclusively, waiting up to `timeout` for running migrations to finish;
    /// then refuses (exit 3).
    pub fn exclusive(db: &Path, timeout: Duration) -> Result<RunLock, Error> {
        RunLock::acquire(db, timeout, true)
    }

    /// The lock file of `db`.
    pub fn path(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".strata-lock");
        PathBuf::from(name)
    }

    fn acquire(db: &Path, timeout: Duration, exclusive: bool) -> Result<RunLock, Error> {
        let path = RunLock::path(db);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // No wider than the database: whoever may open the lock file may hold the lock and
        // stop every migrate and restore, so only those who may open the database can.
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let mode = std::fs::metadata(db).map_or(0o600, |m| m.permissions().mode() & 0o666);
            options.mode(mode);
            // Never through a symbolic link: a planted link would have strata create, or
            // narrow the mode of, whatever file it points to.
            options.custom_flags(libc::O_NOFOLLOW);
            mode
        };
        let file = options.open(&path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Error::input(
                    &path,
                    "is a symbolic link, and strata opens its lock file only as a plain file; \
                     remove the link (strata makes the file again)",
                );
            }
            Error::io(&path, e)
        })?;
        // A lock file planted by another user (in a shared folder) would let them stop every
        // migrate and restore: only one of ours, or of the database's owner, is used.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            let owner = file.metadata().map_err(|e| Error::io(&path, e))?.uid();
            let db_owner = std::fs::metadata(db).map(|m| m.uid()).unwrap_or(me);
            if owner != me && owner != db_owner {
                return Err(Error::input(
                    &path,
                    format!(
                        "is the lock file of {}, but it belongs to {}, who neither runs strata \
                         here nor owns the database: whoever owns it can hold the lock and stop \
                         every migrate and restore. Remove it (its owner or the folder's owner \
                         can: `rm {}`) and run again; strata then creates its own",
                        db.display(),
                        user_name(owner),
                        path.display()
                    ),
                ));
            }
        }
        // A lock file left wider by an older strata (or a database made narrower since) is
        // narrowed; one that is not ours to change keeps working as a lock.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(m) = file.metadata()
                && m.permissions().mode() & 0o777 & !mode != 0
            {
                let narrowed = m.permissions().mode() & 0o777 & mode;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(narrowed));
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Refused(vec![Refusal::Locked {
                        db: db.to_path_buf(),
                    }]));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backups taken within one clock tick share `taken_at` and their name, told apart by the
    /// `-<n>` that [`store_as`] adds: they list in the order they were taken, and pruning
    /// removes the first ones, whatever the clock said.
    #[test]
    fn backups_of_one_clock_tick_list_in_the_order_they_were_taken() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let record = Record {
            strata_backup: RECORD_FORMAT,
            source: absolute(&db),
            database_id: "abcd1234-0000".into(),
            taken_at: "2024-01-02T03:04:05.678Z".into(),
            reason: "test".into(),
        };
        let name = "app-abcd1234-20240102T030405Z";
        let taken: Vec<PathBuf> = (0..12)
            .map(|_| {
                let partial = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
                store_as(partial, &record, name, "db", dir.path()).unwrap()
            })
            .collect();
        let file = |p: &PathBuf| file_name(p);
        assert_eq!(file(&taken[0]), format!("{name}.db"));
        assert_eq!(file(&taken[11]), format!("{name}-11.db"));
        let listed: Vec<PathBuf> = list(dir.path(), &db)
            .unwrap()
            .into_iter()
            .map(|b| b.path)
            .collect();
        assert_eq!(listed, taken);
        prune(dir.path(), &db, 3);
        let kept: Vec<PathBuf> = list(dir.path(), &db)
            .unwrap()
            .into_iter()
            .map(|b| b.path)
            .collect();
        assert_eq!(kept, taken[9..].to_vec());
        assert!(!taken[0].exists() && !record_path(&taken[0]).exists());
        // An earlier tick still comes first, whatever the names.
        let earlier = Record {
            taken_at: "2024-01-02T03:04:05.677Z".into(),
            ..record
        };
        let partial = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let late_name = store_as(
            partial,
            &earlier,
            "app-abcd1234-20990101T000000Z",
            "db",
            dir.path(),
        )
        .unwrap();
        assert_eq!(list(dir.path(), &db).unwrap()[0].path, late_name);
    }
}
