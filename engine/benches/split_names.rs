//! Benchmark: `split-names` (people.full_name -> first_name, last_name) three ways, in one run, on
//! identical copies of one database:
//!   (a) one SQL statement,
//!   (b) native Rust through rusqlite in one transaction (the baseline),
//!   (c) the committed WebAssembly transform through the strata sandbox and SDK.
//! Prints each median time, the ratio (c)/(b), and the guest's peak linear memory at two table
//! sizes (it should not grow with the table). All three results are checked to be identical.
//!
//! `cargo bench --bench split_names [-- ROWS]` (default 1,000,000 rows).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use strata_engine::config::Limits;
use strata_engine::sandbox::{Call, Guard, Policy, Sandbox, World};

const RUNS: usize = 3;

fn main() {
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let wasm = std::fs::read(component()).expect("read the committed split-names component");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.db");
    seed(&base, rows);
    let sandbox = Sandbox::new(Some(strata_engine::sandbox::CacheLocation {
        entries: dir.path().join("cache"),
        key_file: dir.path().join("state/cache.key"),
    }))
    .unwrap();
    sandbox.exports(&wasm).unwrap(); // compile once, outside the timings

    let fresh = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&base, &path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn
    };

    let mut sql_times = Vec::new();
    let mut native_times = Vec::new();
    let mut wasm_times = Vec::new();
    let mut peak = 0;
    let mut results = Vec::new();
    for run in 0..RUNS {
        let conn = fresh(&format!("sql-{run}.db"));
        sql_times.push(time(|| one_statement(&conn)));
        results.push(digest(&conn));

        let mut conn = fresh(&format!("native-{run}.db"));
        native_times.push(time(|| native(&mut conn)));
        results.push(digest(&conn));

        let mut conn = fresh(&format!("wasm-{run}.db"));
        wasm_times.push(time(|| peak = guest(&sandbox, &mut conn, &wasm)));
        results.push(digest(&conn));
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "the three ways disagree"
    );

    // The guest's memory at a tenth of the rows, to show it does not grow with the table.
    let small = dir.path().join("small.db");
    seed(&small, rows / 10);
    let mut conn = Connection::open(&small).unwrap();
    let small_peak = guest(&sandbox, &mut conn, &wasm);

    let (a, b, c) = (median(sql_times), median(native_times), median(wasm_times));
    println!("split-names on {rows} rows, median of {RUNS} runs each");
    println!("  (a) one SQL statement        {:>8.3} s", a.as_secs_f64());
    println!("  (b) native Rust (rusqlite)   {:>8.3} s", b.as_secs_f64());
    println!("  (c) WASM guest (strata SDK)  {:>8.3} s", c.as_secs_f64());
    println!(
        "  (c)/(b) = {:.2}   (a)/(b) = {:.2}",
        c.as_secs_f64() / b.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "  guest peak linear memory: {} KiB at {} rows, {} KiB at {rows} rows",
        small_peak / 1024,
        rows / 10,
        peak / 1024
    );
}

fn component() -> PathBuf {
    let people = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/people");
    std::fs::read_dir(&people)
        .expect("migrations/people exists")
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-split-names"))
        .expect("a split-names migration in migrations/people")
        .join("transform.wasm")
}

fn seed(path: &Path, rows: u64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE people(id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT NOT NULL,
                             first_name TEXT, last_name TEXT);
         INSERT INTO people(id, full_name, email)
           WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
           SELECT i, 'First' || i || ' Middle Last' || i, 'p' || i || '@example.test' FROM c;"
    ))
    .unwrap();
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A cheap fingerprint of the result: row count and a hash of all first and last names.
fn digest(conn: &Connection) -> (i64, String) {
    conn.query_row(
        "SELECT count(*), sum(length(first_name) * 31 + length(last_name) * 17 + unicode(last_name)) FROM people",
        [],
        |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0).to_string())),
    )
    .unwrap()
}

fn one_statement(conn: &Connection) {
    conn.execute_batch(
        "BEGIN;
         UPDATE people SET
           first_name = CASE WHEN instr(full_name, ' ') > 0 THEN substr(full_name, 1, instr(full_name, ' ') - 1) ELSE full_name END,
           last_name  = CASE WHEN instr(full_name, ' ') > 0 THEN ltrim(substr(full_name, instr(full_name, ' ') + 1)) ELSE '' END;
         COMMIT;",
    )
    .unwrap();
}

fn split(full_name: &str) -> (&str, &str) {
    let full_name = full_name.trim();
    match full_name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first, rest.trim_start()),
        None => (full_name, ""),
    }
}

fn native(conn: &mut Connection) {
    let tx = conn.transaction().unwrap();
    {
        let mut select = tx.prepare("SELECT id, full_name FROM people").unwrap();
        let mut update = tx
            .prepare("UPDATE people SET first_name = ?1, last_name = ?2 WHERE id = ?3")
            .unwrap();
        let mut rows = select.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let id: i64 = row.get(0).unwrap();
            let full_name: String = row.get(1).unwrap();
            let (first, last) = split(&full_name);
            update.execute((first, last, id)).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Runs the component in one transaction, as a step would; returns its peak memory.
fn guest(sandbox: &Sandbox, conn: &mut Connection, wasm: &[u8]) -> usize {
    let guard = Guard::install(conn).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let call = Call {
        world: World::Transform,
        wasm,
        limits: Limits::default(),
        policy: Policy::new(None, None, PathBuf::from("migration.toml")),
        seed_params: "{}",
        progress: Arc::new(AtomicU64::new(0)),
    };
    let called = sandbox.call(conn, &guard, &call);
    called.result.expect("the transform runs");
    let outcome = called.outcome;
    conn.execute_batch("COMMIT").unwrap();
    Guard::uninstall(conn).unwrap();
    outcome.memory_peak_bytes
}
