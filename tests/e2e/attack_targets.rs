//! Findings of the outside test of session 7 about what strata takes as a target and which files
//! it trusts (reproductions under `attack/` on the attack branch): the test database that is the
//! real one, empty and key=value database values, restore after commands that back up, the
//! files strata reads from the project, the permissions of `.strata/`, and lock files.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use crate::harness::{Project, Run, rows, strata_command};
use crate::postgres::{Pg, project};

/// A project whose one migration has a table and a row of test data (test database only).
fn with_test_data(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE users (id integer PRIMARY KEY, email text);\n",
    )
    .write(
        "migrations/app/20240101T000000Z-zero/test-data/data.json",
        r#"{"users": [{"id": 1, "email": "fake-test-user@example.com"}]}"#,
    );
}

/// `strata ARGS` in `p` under umask `mask`, with `env` set.
fn run_with(p: &Project, mask: u32, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = strata_command(p.root(), args);
    cmd.envs(env.iter().copied());
    // SAFETY: umask is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        });
    }
    Run::new(args, cmd.output().unwrap())
}

/// The real SQLite database of `p` never got the `users` table (nothing ran on it).
fn untouched(p: &Project, what: &str) {
    if p.path("app.db").exists() {
        assert_eq!(
            rows(
                &p.open("app.db"),
                "SELECT count(*) FROM sqlite_master WHERE name = 'users'"
            ),
            ["0"],
            "{what}: the rehearsal ran on the real database"
        );
    }
}

// ---- #1 The test database is the real one ----------------------------------------------------

#[test]
fn a_test_database_that_is_the_real_database_is_refused_on_sqlite() {
    for spelling in ["app.db", "./app.db", "sub/../app.db", "link.db", "hard.db"] {
        let p = Project::empty();
        std::fs::create_dir_all(p.path("sub")).unwrap();
        drop(rusqlite::Connection::open(p.path("app.db")).unwrap());
        std::os::unix::fs::symlink("app.db", p.path("link.db")).unwrap();
        std::fs::hard_link(p.path("app.db"), p.path("hard.db")).unwrap();
        p.write(
            "strata.toml",
            &format!("db = \"app.db\"\ntest_db = \"{spelling}\"\n"),
        );
        with_test_data(&p);
        p.strata(&["migrate"])
            .code(2)
            .stderr_has("is the real database")
            .stderr_has("test_db");
        untouched(&p, spelling);
    }
}

#[test]
fn a_test_database_flag_or_variable_naming_the_real_database_is_refused() {
    let p = Project::empty();
    with_test_data(&p);
    p.strata(&["migrate", "--test-db", "./app.db"])
        .code(2)
        .stderr_has("is the real database");
    run_with(&p, 0o022, &[("STRATA_TEST_DB", "app.db")], &["migrate"])
        .code(2)
        .stderr_has("is the real database");
    // Both flags at once, the real one spelled another way.
    std::fs::create_dir_all(p.path("data")).unwrap();
    p.strata(&["migrate", "--db", "data/../app.db", "--test-db", "app.db"])
        .code(2)
        .stderr_has("is the real database");
    untouched(&p, "flags");
    // A test database of its own still works.
    p.strata(&["migrate", "--test-db", "other.db"]).ok();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_test_database_that_is_the_real_database_is_refused_on_postgres() {
    let pg = Pg::new("same_test_db");
    let url = pg.url();
    let localhost = url.replace("127.0.0.1", "localhost");
    let spellings = [
        url.clone(),
        localhost.clone(),
        url.replacen("postgres://", "postgresql://", 1),
        format!("{url}?sslmode=disable"),
    ];
    for test_db in &spellings {
        let p = project(&pg);
        p.write(
            "strata.toml",
            &format!("db = \"{url}\"\ntest_db = \"{test_db}\"\n"),
        );
        with_test_data(&p);
        let run = p.strata(&["migrate"]);
        assert!(
            run.code == 2 && run.stderr.contains("is the real database"),
            "test_db = {test_db}: not refused\n{}",
            run.stderr
        );
        pg.hides_password(&run);
    }
    let p = project(&pg);
    with_test_data(&p);
    p.strata(&["migrate", "--test-db", &localhost])
        .code(2)
        .stderr_has("is the real database");
    let leaked = pg.rows(
        false,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'users'",
    );
    assert_eq!(leaked, ["0"], "the rehearsal ran on the real database");
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_test_database_under_another_host_name_is_found_to_be_the_real_one_on_the_server() {
    let pg = Pg::new("alias_test_db");
    let url = pg.url();
    // Another host name for the same server: the URLs differ, the database is one.
    let alias = format!(
        "{}?hostaddr=127.0.0.1",
        url.replace("127.0.0.1", "db-alias.invalid")
    );
    let p = project(&pg);
    with_test_data(&p);
    let run = p.strata(&["migrate", "--test-db", &alias]);
    assert!(
        run.code == 2 && run.stderr.contains("the server shows one database"),
        "not refused\n{}",
        run.stderr
    );
    pg.hides_password(&run);
    let leaked = pg.rows(
        false,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'users'",
    );
    assert_eq!(leaked, ["0"], "the rehearsal ran on the real database");
    // Another database on the same server is a test database like any other.
    p.strata(&["migrate"]).ok();
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn the_default_test_database_of_a_63_byte_name_is_not_the_real_database() {
    let pg = Pg::new("long_name");
    // PostgreSQL truncates names to 63 bytes, so `<63 bytes>_test` names the real database.
    for fill in ['x', 'ж'] {
        let mut name = format!("t_strata_long_{}_", std::process::id());
        while name.len() + fill.len_utf8() <= 63 {
            name.push(fill);
        }
        let quoted = format!("\"{name}\"");
        let mut admin = pg.admin_client();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .unwrap();
        let url = format!("{}/{name}", pg.url().rsplit_once('/').unwrap().0);
        let p = project(&pg);
        p.write("strata.toml", &format!("db = \"{url}\"\n"));
        with_test_data(&p);
        let run = p.strata(&["migrate"]);
        let mut real = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let tables: i64 = real
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'users'",
                &[],
            )
            .unwrap()
            .get(0);
        drop(real);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            .unwrap();
        assert_eq!(tables, 0, "{name}: the rehearsal ran on the real database");
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("63-byte"), "{}", run.stderr);
    }
}

// ---- #13 Empty database values ----------------------------------------------------------------

#[test]
fn an_empty_database_path_is_refused() {
    let p = Project::empty();
    p.write("strata.toml", "db = \"\"\n").write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("`db`")
        .stderr_has("is empty");
    p.write("strata.toml", "test_db = \"  \"\n");
    p.strata(&["migrate"]).code(2).stderr_has("`test_db`");
    p.write("strata.toml", "");
    p.strata(&["migrate", "--db", ""])
        .code(2)
        .stderr_has("--db");
    p.strata(&["migrate", "--test-db", ""])
        .code(2)
        .stderr_has("--test-db");
    run_with(&p, 0o022, &[("STRATA_DB", "")], &["status"])
        .code(2)
        .stderr_has("--db");
    assert!(
        !p.path(".strata-lock").exists() && !p.path(".strata/backups").exists(),
        "a run started on the empty name"
    );
}

// ---- #6 libpq key=value connection strings ----------------------------------------------------

#[test]
fn a_key_value_connection_string_is_never_a_sqlite_file_and_its_password_never_shows() {
    let conninfo = "host=127.0.0.1 port=1 user=app password=hunter2-secret dbname=app";
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE users (id int PRIMARY KEY);\n",
    );
    let runs = [
        {
            p.write("strata.toml", &format!("db = \"{conninfo}\"\n"));
            p.strata(&["migrate"])
        },
        {
            p.write("strata.toml", &format!("test_db = \"{conninfo}\"\n"));
            p.strata(&["status"])
        },
        {
            p.write("strata.toml", "");
            p.strata(&["migrate", "--db", conninfo])
        },
        run_with(&p, 0o022, &[("STRATA_DB", conninfo)], &["plan"]),
        run_with(
            &p,
            0o022,
            &[("DATABASE_URL", &format!("sqlite:{conninfo}"))],
            &["status"],
        ),
        p.strata(&["migrate", "--db", "dbname=app"]),
    ];
    for run in runs {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("postgres://"), "{}", run.stderr);
        assert!(
            !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
            "the password was shown:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
    let names: Vec<String> = std::fs::read_dir(p.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("hunter2") || n.contains("dbname")),
        "a file named with the connection string: {names:?}"
    );
}

// ---- #2 restore with no name after commands that back up --------------------------------------

/// The application writes the row `name` into `people` of app.db; then `strata restore` with
/// no name and no --yes must refuse, naming the table, and leave `people` holding `names`.
fn restore_refuses_to_lose(p: &Project, name: &str, names: &[&str]) {
    p.open("app.db")
        .execute("INSERT INTO people(name) VALUES (?1)", [name])
        .unwrap();
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed outside strata")
        .stderr_has("people");
    assert_eq!(
        rows(&p.open("app.db"), "SELECT name FROM people ORDER BY id"),
        names,
        "restore dropped the application's row without --yes"
    );
}

/// Applies a table `people`, then a column with an `undo.sql`, then undoes that one.
fn migrate_twice_and_undo(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id integer PRIMARY KEY, name text);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        "migrations/app/20240102T000000Z-nick/do.sql",
        "ALTER TABLE people ADD COLUMN nick text;\n",
    )
    .write(
        "migrations/app/20240102T000000Z-nick/undo.sql",
        "ALTER TABLE people DROP COLUMN nick;\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.strata(&["undo"]).ok();
}

#[test]
fn restore_after_an_undo_refuses_to_drop_rows_written_since() {
    let p = Project::empty();
    migrate_twice_and_undo(&p);
    restore_refuses_to_lose(&p, "written after the undo", &["written after the undo"]);
    // With --yes it goes back, and the restore's undo backup keeps the row.
    p.strata(&["restore", "--yes"]).ok();
    assert_eq!(
        rows(&p.open("app.db"), "SELECT count(*) FROM people"),
        ["0"]
    );
}

#[test]
fn restore_after_a_baseline_refuses_to_drop_rows_written_since() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("migrations")).unwrap();
    {
        let conn = rusqlite::Connection::open(p.path("app.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n\
             INSERT INTO people(name) VALUES ('existing');",
        )
        .unwrap();
    }
    p.strata(&["baseline", "base"]).ok();
    restore_refuses_to_lose(
        &p,
        "written after the baseline",
        &["existing", "written after the baseline"],
    );
}

#[test]
fn restore_of_a_backup_without_its_end_state_refuses_without_yes() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    p.open("app.db")
        .execute("INSERT INTO people(name) VALUES ('kept')", [])
        .unwrap();
    // The end-state record is gone (an older strata, or removed by hand): strata cannot tell
    // what would be lost, so it does not guess.
    for entry in std::fs::read_dir(p.path(".strata/backups")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".after.json") {
            std::fs::remove_file(path).unwrap();
        }
    }
    p.strata(&["restore"])
        .code(3)
        .stderr_has("cannot tell")
        .stderr_has("--yes");
    assert_eq!(rows(&p.open("app.db"), "SELECT name FROM people"), ["kept"]);
    p.strata(&["restore", "--yes"]).ok();
    assert_eq!(
        rows(
            &p.open("app.db"),
            "SELECT count(*) FROM sqlite_master WHERE name = 'people'"
        ),
        ["0"]
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn restore_after_an_undo_refuses_to_drop_rows_written_since_on_postgres() {
    let pg = Pg::new("restore_after_undo");
    let p = project(&pg);
    migrate_twice_and_undo(&p);
    pg.client(false)
        .batch_execute("INSERT INTO people VALUES (7, 'written after the undo')")
        .unwrap();
    p.strata(&["restore"])
        .code(3)
        .stderr_has("changed outside strata")
        .stderr_has("people");
    assert_eq!(
        pg.rows(false, "SELECT name FROM people"),
        ["written after the undo"]
    );
}

// ---- #10 Files strata reads from the project --------------------------------------------------

#[test]
fn a_strata_toml_that_is_a_device_or_fifo_is_refused_unread() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    std::os::unix::fs::symlink("/dev/zero", p.path("strata.toml")).unwrap();
    p.strata(&["status"])
        .code(2)
        .stderr_has("strata.toml")
        .stderr_has("not a regular file");
    std::fs::remove_file(p.path("strata.toml")).unwrap();
    mkfifo(&p.path("strata.toml"));
    p.strata(&["status"])
        .code(2)
        .stderr_has("not a regular file");
    std::fs::remove_file(p.path("strata.toml")).unwrap();
    // A regular strata.toml past the cap (1 MiB) is refused too, naming the file.
    p.write("strata.toml", &format!("# {}\n", "x".repeat(1 << 20)));
    p.strata(&["status"])
        .code(2)
        .stderr_has("strata.toml")
        .stderr_has("larger than");
}

#[test]
fn a_fifo_in_a_migration_is_refused_and_never_waited_on() {
    for name in ["do.sql", "migration.toml", "checks.sql"] {
        let p = Project::empty();
        p.write(
            "migrations/app/20240101T000000Z-zero/do.sql",
            "CREATE TABLE t (x);\n",
        );
        let fifo = p.path(&format!("migrations/app/20240101T000000Z-zero/{name}"));
        let _ = std::fs::remove_file(&fifo);
        mkfifo(&fifo);
        for command in ["status", "migrate"] {
            let run = p.strata(&[command]);
            assert_ne!(run.code, 0, "{name}, {command}: {}", run.stderr);
            assert!(
                run.stderr.contains(name) && run.stderr.contains("not a regular file"),
                "{name}, {command}: {}",
                run.stderr
            );
        }
        assert!(!p.path("app.db").exists() || name != "do.sql");
    }
}

/// Files a database URL or the environment names (`sslrootcert`, `sslcert`, `sslkey`, a service
/// file, a passfile): a device or FIFO is refused from its metadata, never read or waited on.
/// The server named is not there: every refusal comes before connecting.
#[test]
fn files_a_database_url_or_the_environment_names_are_refused_unread_when_not_plain() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
    p.write("ca.pem", &ca.pem());
    // Private, as a key must be (it stands for one below, and is refused for what it holds).
    std::fs::set_permissions(p.path("ca.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    mkfifo(&p.path("fifo"));
    let fifo = p.path("fifo").display().to_string();
    let ca = p.path("ca.pem").display().to_string();
    let base = "postgres://atk@127.0.0.1:1/x?sslmode=require";
    let cases: [(String, &[(&str, &str)]); 6] = [
        (format!("{base}&sslrootcert=/dev/zero"), &[]),
        (format!("{base}&sslrootcert={fifo}"), &[]),
        (
            format!("{base}&sslrootcert={ca}&sslcert={fifo}&sslkey={ca}"),
            &[],
        ),
        (
            format!("{base}&sslrootcert={ca}&sslcert={ca}&sslkey={fifo}"),
            &[],
        ),
        (base.to_string(), &[("PGSSLROOTCERT", "/dev/zero")]),
        (
            "postgres://atk@127.0.0.1:1/x?service=nowhere".to_string(),
            &[("PGSERVICEFILE", fifo.as_str())],
        ),
    ];
    for (url, env) in cases {
        p.write("strata.toml", &format!("db = \"{url}\"\n"));
        for command in ["status", "plan"] {
            let mut cmd = crate::harness::strata_command(p.root(), &[command]);
            cmd.envs(env.iter().copied());
            let run = crate::harness::Run::new(&[command], cmd.output().unwrap());
            assert_eq!(run.code, 2, "{url} {env:?}: {}", run.stderr);
            assert!(
                run.stderr.contains("not a regular file"),
                "{url} {env:?}: {}",
                run.stderr
            );
        }
    }
    // A passfile that is a FIFO is passed over, as a missing one: the command goes on to the
    // server (not there) instead of waiting on it.
    p.write("strata.toml", "db = \"postgres://atk@127.0.0.1:1/x\"\n");
    // A token file and the TLS files of `--remote` (the command line's, checked the same).
    for args in [
        &[
            "--remote",
            "http://127.0.0.1:1",
            "--token-file",
            fifo.as_str(),
            "status",
        ][..],
        &[
            "--remote",
            "https://127.0.0.1:1",
            "--tls-ca",
            fifo.as_str(),
            "status",
        ],
    ] {
        let run = p.strata(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("not a regular file"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let output = crate::harness::strata_command(p.root(), &["status"])
        .env("PGPASSFILE", &fifo)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let run = crate::harness::Run::new(&["status"], output);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("127.0.0.1"), "{}", run.stderr);
}

/// The other files strata reads beside a project's migrations: a `.gitignore` that `init`
/// extends, and a lint's do.sql, as FIFOs: refused or passed over, never waited on.
#[test]
fn a_gitignore_or_a_linted_file_that_is_a_fifo_is_never_waited_on() {
    let p = Project::empty();
    mkfifo(&p.path(".gitignore"));
    p.strata(&["init"])
        .code(2)
        .stderr_has(".gitignore")
        .stderr_has("not a regular file");
    std::fs::remove_file(p.path(".gitignore")).unwrap();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    mkfifo(&p.path("migrations/app/20240101T000000Z-zero/undo.sql"));
    let run = p.strata(&["lint"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
}

#[test]
fn a_database_that_is_a_fifo_or_device_is_refused_never_waited_on() {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    mkfifo(&p.path("fifo.db"));
    std::os::unix::fs::symlink("/dev/zero", p.path("zero.db")).unwrap();
    for db in ["fifo.db", "zero.db"] {
        for command in ["status", "migrate", "plan", "dump"] {
            p.strata(&["--db", db, command])
                .code(2)
                .stderr_has(db)
                .stderr_has("not a regular file");
        }
        p.strata(&["--test-db", db, "migrate"])
            .code(2)
            .stderr_has("not a regular file");
    }
    // Among a fleet's tenants: named, with the reason, not silently left out.
    std::fs::create_dir(p.path("tenants")).unwrap();
    mkfifo(&p.path("tenants/f.db"));
    std::os::unix::fs::symlink("/dev/zero", p.path("tenants/z.db")).unwrap();
    p.write("tenants/ok.db", "");
    p.strata(&["fleet", "status", "--targets", "tenants/*.db"])
        .code(3)
        .stdout_has("f   UNREACHABLE")
        .stdout_has("z   UNREACHABLE")
        .stdout_has("not a regular file")
        .stdout_has("ok  pending");
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

// ---- #11 Permissions of .strata/ ----------------------------------------------------------------

fn assert_private(p: &Project, dirs: &[&str]) {
    for dir in dirs {
        let mode = std::fs::metadata(p.path(dir)).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "{dir} has mode {mode:o}: other users can delete, replace or plant backups"
        );
    }
}

/// Under umask 000, with a `.strata/` that exists already at 0777 (made by hand, an older
/// strata, a checkout tool), a migrate leaves `.strata/` and its backups private.
fn migrate_leaves_strata_private(p: &Project) {
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x int);\n",
    );
    std::fs::create_dir(p.path(".strata")).unwrap();
    std::fs::set_permissions(p.path(".strata"), std::fs::Permissions::from_mode(0o777)).unwrap();
    run_with(p, 0, &[], &["migrate", "-q"]).ok();
    assert_private(p, &[".strata", ".strata/backups"]);
}

#[test]
fn an_open_strata_folder_is_narrowed_under_umask_000_on_sqlite() {
    migrate_leaves_strata_private(&Project::empty());
}

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn the_postgres_backups_folder_is_private_whatever_the_umask() {
    let pg = Pg::new("backups_mode");
    migrate_leaves_strata_private(&project(&pg));
}

// ---- #12 A lock file of another user ----------------------------------------------------------

#[test]
#[ignore = "needs root or passwordless sudo, to make a file that belongs to another user"]
fn a_lock_file_of_another_user_is_refused_naming_its_owner() {
    use std::os::unix::fs::MetadataExt;
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE t (x);\n",
    );
    p.strata(&["migrate", "-q"]).ok();
    std::fs::write(p.path("app.db.strata-lock"), b"").unwrap();
    // uid 65534 is `nobody`, neither the user running strata nor the database's owner. Root
    // gives the file away itself; another user needs passwordless sudo (as CI's package
    // installs do), and without either the test fails saying so.
    let lock = p.path("app.db.strata-lock");
    if std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).is_err() {
        let status = std::process::Command::new("sudo")
            .args(["-n", "chown", "65534:65534"])
            .arg(&lock)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "this test needs root or passwordless sudo, to make a file that belongs to another user"
        );
    }
    assert_eq!(
        std::fs::metadata(p.path("app.db.strata-lock"))
            .unwrap()
            .uid(),
        65534
    );
    p.write(
        "migrations/app/20240102T000000Z-one/do.sql",
        "CREATE TABLE u (x);\n",
    );
    p.strata(&["migrate"])
        .code(2)
        .stderr_has("uid 65534")
        .stderr_has("Remove it");
    p.strata(&["restore", "--yes"])
        .code(2)
        .stderr_has("uid 65534");
    std::fs::remove_file(p.path("app.db.strata-lock")).unwrap();
    p.strata(&["migrate", "-q"]).ok();
}

// ---- #8 PostgreSQL throwaway databases ----------------------------------------------------------

#[test]
#[ignore = "needs a PostgreSQL server: STRATA_TEST_POSTGRES (bash .ci/run starts one)"]
fn a_throwaway_database_of_a_non_ascii_database_keeps_its_random_name_and_is_dropped() {
    let pg = Pg::new("cyrillic");
    // 24 Cyrillic letters are 48 bytes: `strata_sandbox_` and the name alone fill 63 bytes.
    let name = format!("{}{}", "ж".repeat(24), std::process::id());
    let quoted = format!("\"{name}\"");
    let mut admin = pg.admin_client();
    admin
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .unwrap();
    let url = format!("{}/{name}", pg.url().rsplit_once('/').unwrap().0);
    let p = project(&pg);
    p.write("strata.toml", &format!("db = \"{url}\"\n")).write(
        "migrations/app/20260101T000000Z-where/do.sql",
        "DO $$ BEGIN RAISE EXCEPTION 'running on %', current_database(); END $$;\n",
    );
    let run = p.strata(&["sandbox", "--from", &url]);
    let leftover: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'strata\\_sandbox\\_ж%'",
            &[],
        )
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let used = run
        .stderr
        .split("running on ")
        .filter_map(|rest| rest.split_whitespace().next())
        .find(|word| word.starts_with("strata_sandbox_"))
        .unwrap_or_default()
        .to_string();
    assert!(used.len() <= 63, "{used}");
    let random = used.rsplit('_').next().unwrap_or_default();
    assert!(
        random.len() == 20 && random.chars().all(|c| c.is_ascii_hexdigit()),
        "the throwaway database {used:?} lost its random part"
    );
    assert_eq!(leftover, 0, "the throwaway database was left behind");
}
