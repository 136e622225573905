//! Permissions of the files around a database (issue 17, item 6): a token file others may read
//! is refused, as ssh refuses a loose key; the run lock beside a database (and the backups
//! strata writes) are no wider than the database, whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::harness::{Project, Run, strata_command};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A project with one migration, applied once.
fn applied() -> Project {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    p.strata(&["migrate", "-q"]).ok();
    p
}

/// `strata ARGS` in `p` under umask `mask`.
fn under_umask(p: &Project, mask: u32, args: &[&str]) -> Run {
    let mut cmd = strata_command(p.root(), args);
    // SAFETY: umask is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        });
    }
    Run::new(args, cmd.output().unwrap())
}

#[test]
fn a_token_file_others_can_read_is_refused_naming_its_mode_and_the_fix() {
    let p = applied();
    for (file_mode, can) in [
        (0o644, "read"),
        (0o660, "read and change"),
        (0o602, "change"),
    ] {
        p.write("token", "a-token-of-some-length-0123456789");
        chmod(&p.path("token"), file_mode);
        for args in [
            &["serve", "--listen", "127.0.0.1:0", "--token-file", "token"][..],
            &[
                "--remote",
                "http://127.0.0.1:9",
                "--token-file",
                "token",
                "status",
            ][..],
        ] {
            p.strata(args)
                .code(2)
                .stderr_has("token")
                .stderr_has(format!("mode {file_mode:04o}"))
                .stderr_has(format!("can {can} it"))
                .stderr_has("chmod 600 token");
        }
    }
}

#[test]
fn the_run_lock_is_no_wider_than_a_private_database_even_under_umask_0() {
    let p = applied();
    let db = p.path("app.db");
    let lock = p.path("app.db.strata-lock");
    chmod(&db, 0o600);
    std::fs::remove_file(&lock).unwrap();
    p.write(
        "migrations/app/20240201T000000Z-one/do.sql",
        "ALTER TABLE people ADD COLUMN nick TEXT;",
    );
    under_umask(&p, 0, &["migrate", "-q"]).ok();
    assert_eq!(mode(&lock), 0o600, "the lock beside a 0600 database");
    assert_eq!(mode(&db), 0o600, "the database kept its mode");
    // Backups of it are private too, and a restore keeps all of it so.
    let backups: Vec<_> = std::fs::read_dir(p.path(".strata/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!backups.is_empty());
    for b in &backups {
        assert_eq!(mode(b) & 0o077, 0, "{} is {:o}", b.display(), mode(b));
    }
    for dir in [".strata", ".strata/backups"] {
        assert_eq!(
            mode(&p.path(dir)) & 0o077,
            0,
            "{dir} is {:o}",
            mode(&p.path(dir))
        );
    }
    under_umask(&p, 0, &["restore", "--yes"]).ok();
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(
        mode(&db) & 0o077,
        0,
        "the restored database is {:o}",
        mode(&db)
    );
    // A lock left wide by an older strata is narrowed by the next run.
    chmod(&lock, 0o666);
    under_umask(&p, 0, &["migrate", "-q"]).ok();
    assert_eq!(mode(&lock), 0o600);
}

/// A planted symbolic link in place of the lock file is never followed: strata refuses, naming
/// it, and the file it points to is neither created nor changed.
#[test]
fn the_run_lock_is_never_opened_through_a_symbolic_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = crate::harness::Project::example();
    let victim = p.path("victim.txt");
    std::fs::write(&victim, "x").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&victim, p.path("app.db.strata-lock")).unwrap();
    p.strata(&["migrate"]).code(2).stderr_has("symbolic link");
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    std::fs::remove_file(p.path("app.db.strata-lock")).unwrap();
    std::os::unix::fs::symlink(p.path("nowhere"), p.path("app.db.strata-lock")).unwrap();
    p.strata(&["migrate"]).code(2);
    assert!(!p.path("nowhere").exists());
}
