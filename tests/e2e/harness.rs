//! The harness: a throwaway project folder and a way to run the real binary in it. A failed
//! expectation prints the command, its exit code, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

/// The repository root (the bundled example lives there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A project in a temp directory, removed when dropped.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty folder.
    pub fn empty() -> Self {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of the bundled example's migrations.
    pub fn example() -> Self {
        let p = Project::empty();
        copy_dir(&repo_root().join("migrations"), &p.path("migrations"));
        p
    }

    /// A checkout-like copy: the bundled migrations, the guest SDK and the guest examples laid
    /// out as in the repository (so migration.toml's `[build]` paths resolve), with a root
    /// Cargo.toml whose workspace holds only the SDK and the wire crate.
    pub fn workspace() -> Self {
        let p = Project::example();
        let root = repo_root();
        for dir in ["sdk", "wire", "guest-examples"] {
            copy_dir(&root.join(dir), &p.path(dir));
        }
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members = manifest.lines().find(|l| l.starts_with("members")).unwrap();
        p.write(
            "Cargo.toml",
            &manifest.replace(members, "members = [\"wire\", \"sdk\"]"),
        );
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its folders.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// Runs `strata ARGS` in the project folder with a cleaned environment.
    pub fn strata(&self, args: &[&str]) -> Run {
        self.strata_in(self.root(), args)
    }

    /// Runs `strata ARGS` in `cwd`.
    pub fn strata_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let output = strata_command(cwd, args).output().unwrap();
        Run::new(args, output)
    }

    /// Opens a database of the project.
    pub fn open(&self, rel: &str) -> Connection {
        let path = self.path(rel);
        assert!(path.exists(), "{} does not exist", path.display());
        Connection::open(path).unwrap()
    }

    /// Every table's rows and the whole schema, as text: equal dumps mean equal databases for
    /// the application (strata's own tables excluded).
    pub fn app_dump(&self, rel: &str) -> String {
        dump(&self.open(rel))
    }
}

/// What survives the cleaned environment: where the toolchain is (a Rust container image
/// keeps rustup and cargo outside `~/.rustup`, and guest builds need its wasm target).
pub const KEPT_VARIABLES: &[&str] = &[
    "PATH",
    "HOME",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "RUSTUP_TOOLCHAIN",
];

/// The `strata` command, ready to run in `cwd` with a cleaned environment.
pub fn strata_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args).current_dir(cwd).env_clear();
    for name in KEPT_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// Runs `strata` in `cwd` once per argument list, all at the same time, and asserts that every
/// run succeeded.
#[track_caller]
pub fn all_at_once(cwd: &Path, runs: &[Vec<String>]) {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            strata_command(cwd, &args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, args) in children.into_iter().zip(runs) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent `strata {}` failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_cleaned_environment_keeps_the_toolchain() {
    let cmd = strata_command(Path::new("."), &[]);
    let passed: Vec<(&std::ffi::OsStr, Option<&std::ffi::OsStr>)> = cmd.get_envs().collect();
    for name in ["HOME", "RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN"] {
        let ours = std::env::var_os(name);
        let theirs = passed
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.map(|v| v.to_os_string()));
        assert_eq!(
            theirs, ours,
            "{name} must reach strata (and the cargo it runs)"
        );
    }
    // HOME is set wherever these tests run, so this test fails when variables are dropped.
    assert!(std::env::var_os("HOME").is_some());
}

/// Schema and rows of every non-strata table, ordered, as text.
pub fn dump(conn: &Connection) -> String {
    let mut out = String::new();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'strata_%' ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, sql) in &objects {
        out.push_str(&format!(
            "{kind} {name}: {}\n",
            sql.as_deref().unwrap_or("")
        ));
        if kind == "table" {
            // strata's own AUTOINCREMENT counter lives in sqlite_sequence: not application data.
            let filter = if name == "sqlite_sequence" {
                " WHERE name NOT LIKE 'strata_%'"
            } else {
                ""
            };
            for row in rows(
                conn,
                &format!("SELECT * FROM \"{name}\"{filter} ORDER BY 1"),
            ) {
                out.push_str(&format!("  {row}\n"));
            }
        }
    }
    out
}

/// What a finished `strata` run printed.
pub struct Run {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], output: Output) -> Self {
        Run {
            command: format!("strata {}", args.join(" ")),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn report(&self) -> String {
        format!(
            "\n$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.code(0)
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code{}", self.report());
        self
    }

    /// Asserts stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(self, text: impl AsRef<str>) -> Self {
        let text = text.as_ref();
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}{}",
            self.report()
        );
        self
    }

    /// Asserts stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(self, text: impl AsRef<str>) -> Self {
        let text = text.as_ref();
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}{}",
            self.report()
        );
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}{}", self.report()))
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Rows of a query as strings, for short assertions.
pub fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}
