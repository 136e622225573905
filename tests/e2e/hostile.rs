//! Hostile and broken components, hand-written in WAT: each is refused with a clear error,
//! exit 1, the database exactly as before the step, and an audit row for the failure.

use crate::harness::{Project, rows};

/// A transform component whose `run` executes `body` (core wasm instructions) after calling
/// `sql.execute` on `sql` (when given), then returns ok.
pub fn transform(sql: Option<&str>, body: &str) -> Vec<u8> {
    let call = match sql {
        Some(s) => format!(
            "(call $execute (i32.const 0) (i32.const {}) (i32.const 0) (i32.const 0) (i32.const 2048))",
            s.len()
        ),
        None => String::new(),
    };
    let data = sql.unwrap_or("").replace('\\', "\\\\").replace('"', "\\\"");
    let wat = format!(
        r#"(component
  (import "strata:migrate/sql@0.1.0" (instance $sql
    (type $value (variant (case "null") (case "integer" s64) (case "real" f64) (case "text" string) (case "blob" (list u8))))
    (export "value" (type $value' (eq $value)))
    (type $error (variant (case "syntax" string) (case "constraint" string) (case "denied" string) (case "limit" string) (case "other" string)))
    (export "error" (type $error' (eq $error)))
    (export "execute" (func (param "sql" string) (param "params" (list $value')) (result (result u64 (error $error')))))
  ))
  (core module $libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (core func $execute (canon lower (func $sql "execute") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))))
  (core module $main
    (import "libc" "memory" (memory 1))
    (import "sql" "execute" (func $execute (param i32 i32 i32 i32 i32)))
    (data (i32.const 0) "{data}")
    (func $recurse (param i32) (result i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
    (func (export "run") (result i32)
      {call}
      {body}
      (i32.store8 (i32.const 1024) (i32.const 0))
      (i32.const 1024)))
  (core instance $main (instantiate $main
    (with "libc" (instance $libc))
    (with "sql" (instance (export "execute" (func $execute))))))
  (func (export "run") (result (result (error string)))
    (canon lift (core func $main "run") (memory (core memory $libc "memory"))))
)"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"))
}

/// A seed component (exports `seed`), to put where a transform belongs.
fn seed_component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "seed") (param i32 i32) (result i32) (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024)))
  (core instance $i (instantiate $m))
  (func (export "seed") (param "params" string) (result (result (error string)))
    (canon lift (core func $i "seed") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
)"#,
    )
    .unwrap()
}

/// A project with one applied migration (people, secrets) and a pending one running
/// `transform.wasm` under `migration_toml`.
pub fn project_with(wasm: &[u8], migration_toml: &str) -> Project {
    let p = Project::empty();
    p.write(
        "migrations/app/20240101T000000Z-zero/do.sql",
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         CREATE TABLE secrets(id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    );
    p.write(
        "migrations/app/20240101T000000Z-zero/proj-data/data.json",
        r#"{"people": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Edsger"}],
            "secrets": [{"id": 1, "v": "s3cr3t"}]}"#,
    );
    p.strata(&["migrate", "-q"]).ok();
    p.write(
        "migrations/app/20240201T000000Z-hostile/do.sql",
        "ALTER TABLE people ADD COLUMN nick TEXT;\nUPDATE people SET nick = 'x';",
    );
    p.write(
        "migrations/app/20240201T000000Z-hostile/migration.toml",
        migration_toml,
    );
    let path = p.path("migrations/app/20240201T000000Z-hostile/transform.wasm");
    std::fs::write(path, wasm).unwrap();
    p
}

/// Runs migrate and checks everything a refused component must leave behind.
#[track_caller]
pub fn assert_refused(p: &Project, expect: &[&str]) {
    let before_test = p.app_dump(".strata/test.db");
    let before_real = p.app_dump("app.db");
    let mut run = p.strata(&["migrate"]).code(1);
    run = run
        .stderr_has("app/20240201T000000Z-hostile")
        .stderr_has("transform.wasm");
    for e in expect {
        run = run.stderr_has(e);
    }
    assert_eq!(
        p.app_dump(".strata/test.db"),
        before_test,
        "the test database changed"
    );
    assert_eq!(
        p.app_dump("app.db"),
        before_real,
        "the real database changed"
    );
    let audit = p.open(".strata/test.db");
    let last = rows(
        &audit,
        "SELECT action, outcome FROM strata_migration_audit WHERE stamp = '20240201T000000Z' ORDER BY id",
    );
    assert_eq!(
        last,
        ["do.sql|rolled-back", "transform|failed"],
        "{}",
        run.stderr
    );
}

const GENEROUS: &str = "[sandbox]\nfuel = 100000000000\ntimeout_s = 600\n";

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let p = project_with(
        &transform(None, "(loop $l (br $l))"),
        "[sandbox]\nfuel = 50000000\n",
    );
    assert_refused(&p, &["fuel limit exhausted", "50000000", "migration.toml"]);
}

#[test]
fn an_infinite_loop_hits_the_timeout() {
    let p = project_with(
        &transform(None, "(loop $l (br $l))"),
        "[sandbox]\nfuel = 100000000000\ntimeout_s = 1\n",
    );
    assert_refused(&p, &["wall-clock timeout", "1 s"]);
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let bomb = "(loop $l (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable)) (br $l))";
    let p = project_with(&transform(None, bomb), "[sandbox]\nmemory_mib = 8\n");
    assert_refused(&p, &["memory limit exceeded", "8 MiB"]);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let p = project_with(
        &transform(None, "(drop (call $recurse (i32.const 0)))"),
        GENEROUS,
    );
    assert_refused(&p, &["stack overflow"]);
}

#[test]
fn a_trap_is_reported() {
    let p = project_with(&transform(None, "unreachable"), GENEROUS);
    assert_refused(&p, &["trapped", "unreachable"]);
}

#[test]
fn a_component_of_the_wrong_world_is_refused() {
    let p = project_with(&seed_component(), GENEROUS);
    assert_refused(
        &p,
        &["does not implement world `transform`", "export `run`"],
    );
}

/// A transform (it exports `run`) that also imports `name`, an interface strata does not offer.
fn importing(name: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
  (import "{name}" (instance $other (export "open" (func (param "path" string)))))
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (result i32) (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024)))
  (core instance $i (instantiate $m))
  (func (export "run") (result (result (error string)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
)"#
    ))
    .unwrap()
}

#[test]
fn a_component_importing_what_strata_does_not_offer_is_told_which_import() {
    for import in ["strata:migrate/sql@0.2.0", "wasi:filesystem/types@0.2.0"] {
        let p = project_with(&importing(import), GENEROUS);
        let run = p.strata(&["migrate"]).code(1);
        assert!(
            run.stderr.contains(&format!("imports `{import}`"))
                && run.stderr.contains("strata:migrate/sql@0.1.0")
                && !run.stderr.contains("does not implement world"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let p = project_with(b"\0asm\x01\0\0\0", GENEROUS);
    assert_refused(&p, &["not a valid WebAssembly component", "strata build"]);
    let p = project_with(b"this is not wasm at all", GENEROUS);
    assert_refused(&p, &["not a valid WebAssembly component"]);
}

#[test]
fn attach_is_refused() {
    let p = project_with(
        &transform(Some("ATTACH DATABASE 'other.db' AS other"), ""),
        GENEROUS,
    );
    assert_refused(&p, &["refused", "ATTACH"]);
    assert!(!p.path("other.db").exists());
}

#[test]
fn writable_schema_is_refused() {
    let p = project_with(
        &transform(Some("PRAGMA writable_schema = ON"), ""),
        GENEROUS,
    );
    assert_refused(&p, &["refused", "writable_schema"]);
}

#[test]
fn writing_strata_bookkeeping_is_refused() {
    let p = project_with(
        &transform(Some("DELETE FROM strata_migration"), ""),
        GENEROUS,
    );
    assert_refused(&p, &["refused", "strata_migration", "bookkeeping"]);
    assert_eq!(
        rows(
            &p.open(".strata/test.db"),
            "SELECT count(*) FROM strata_migration"
        ),
        ["1"]
    );
}

#[test]
fn writing_an_undeclared_table_is_refused_naming_the_line_to_change() {
    let toml = "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\n";
    let p = project_with(
        &transform(Some("UPDATE secrets SET v = 'stolen'"), ""),
        toml,
    );
    assert_refused(
        &p,
        &[
            "`secrets`",
            "writes",
            "migrations/app/20240201T000000Z-hostile/migration.toml",
        ],
    );
}

#[test]
fn a_statement_past_the_timeout_is_interrupted() {
    let cross = "DELETE FROM people WHERE id IN (SELECT a.id FROM people a, people b, people c, \
                 (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT i FROM n) d \
                 WHERE a.id + b.id + c.id + d.i < 0)";
    let p = project_with(
        &transform(Some(cross), ""),
        "[sandbox]\nfuel = 100000000000\ntimeout_s = 1\n",
    );
    assert_refused(&p, &["wall-clock timeout", "inside a SQL statement"]);
}

#[test]
fn a_well_behaved_component_commits_with_fuel_and_rows_audited() {
    let p = project_with(
        &transform(Some("UPDATE people SET name = upper(name)"), ""),
        "[sandbox]\nwrites = [\"people\"]\n",
    );
    p.strata(&["migrate"]).ok();
    for db in ["app.db", ".strata/test.db"] {
        let conn = p.open(db);
        assert_eq!(
            rows(&conn, "SELECT name FROM people ORDER BY id"),
            ["ADA", "GRACE", "EDSGER"],
            "{db}"
        );
        let audit = rows(
            &conn,
            "SELECT rows, fuel_used > 0 FROM strata_migration_audit WHERE action = 'transform' AND outcome = 'ok'",
        );
        assert_eq!(audit, ["3|1"], "{db}");
    }
    // Fuel is deterministic: the same component on the same data burns the same fuel.
    let fuel = |db: &str| {
        rows(
            &p.open(db),
            "SELECT fuel_used FROM strata_migration_audit WHERE action = 'transform'",
        )
    };
    assert_eq!(fuel("app.db"), fuel(".strata/test.db"));
}

/// A compile bomb (outside test attack7, finding 7): one function of a million constants and
/// adds, 3 MB, cost cranelift 15 s and 718 MB before any of the migration's limits applied.
/// Compiling is bounded (a child process with an address-space limit, here set by the
/// operator's variable to 512 MiB, below what this bomb needs): the component is refused
/// naming the bound, the databases as they were.
#[test]
fn a_compile_bomb_is_stopped_at_the_compile_bound() {
    let body = format!(
        "i64.const 0 {} drop",
        "i64.const 1 i64.add ".repeat(1_000_000)
    );
    let p = project_with(
        &transform(None, &body),
        "[sandbox]\nmemory_mib = 64\ntimeout_s = 1\nfuel = 1000000\n",
    );
    let before = (p.app_dump(".strata/test.db"), p.app_dump("app.db"));
    let output = crate::harness::strata_command(p.root(), &["migrate"])
        .env("STRATA_COMPILE_MEMORY_MIB", "512")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for says in [
        "app/20240201T000000Z-hostile",
        "transform.wasm",
        "transform component: compiling the component needed more than 512 MiB of memory",
        "split its largest functions",
    ] {
        assert!(stderr.contains(says), "stderr lacks {says:?}: {stderr}");
    }
    assert_eq!(
        (p.app_dump(".strata/test.db"), p.app_dump("app.db")),
        before,
        "a database changed"
    );
}

/// Components compiled in the bounded child still fill the compile cache: the second run
/// loads the entry.
#[test]
fn a_component_compiled_under_the_bound_is_cached() {
    let p = project_with(&transform(None, "nop"), GENEROUS);
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::harness::strata_command(p.root(), args)
            .env("XDG_CACHE_HOME", cache.path())
            .env("XDG_STATE_HOME", cache.path().join("state"))
            .output()
            .unwrap()
    };
    assert!(run(&["sandbox"]).status.success());
    let entries = |ext: &str| {
        std::fs::read_dir(cache.path().join("strata/components"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    assert_eq!((entries("cwasm"), entries("tag")), (1, 1));
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(entries("cwasm"), 1);
}

/// `timeout_s = 0` (or `memory_mib = 0`) would stop a component at once with a trap that
/// names another cause: refused when migration.toml is read, saying why.
#[test]
fn a_zero_timeout_or_memory_is_refused_naming_it() {
    for (key, unit) in [("timeout_s", "1 second"), ("memory_mib", "1 MiB")] {
        let p = project_with(&transform(None, "nop"), &format!("[sandbox]\n{key} = 0\n"));
        p.strata(&["migrate"])
            .code(2)
            .stderr_has(format!("{key} = 0 leaves a component no time or memory"))
            .stderr_has(format!("at least {unit}"));
    }
}
