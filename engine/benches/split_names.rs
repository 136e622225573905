//! Benchmark: `split-names` (people.full_name -> first_name, last_name) four ways, in one run, on
//! identical copies of one database:
//!   (a) one SQL statement (the floor),
//!   (b) native Rust through rusqlite, batched the way the guest path is (the fair baseline),
//!   (c) the committed WebAssembly transform through the strata sandbox and SDK,
//!   (d) strata's verified backup and (c), as `migrate` runs them: the copy's integrity check
//!       on a thread beside (c), which waits for it before it commits.
//! One warm-up round, then measured rounds in rotated order; prints medians, spread and ratios,
//! and the guest's peak linear memory at two table sizes (it should not grow with the table).
//! Every result is checked equal by a sha256 over every row.
//!
//! `cargo bench --bench split_names [-- ROWS]` (default 1,000,000 rows); with
//! `STRATA_BENCH_PYTHON=path/to/transform.wasm` (the Python split-names of
//! guest-examples/python, built by `strata build`) it also runs
//!   (e) that Python component through the sandbox and the Python SDK,
//!   (f) the same Python loop run natively by CPython with its sqlite3 module
//!       (`split_names_cpython.py`, run by `python3` or `STRATA_BENCH_CPYTHON`, process start
//!       included),
//! and times the Python component's cold and warm start; with `STRATA_BENCH_PYTHON_BEFORE` too
//! (another build, an earlier SDK's say) it runs
//!   (g) that component in the same rounds, to compare the two side by side.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use strata_engine::components::limits::Limits;
use strata_engine::components::{Call, Outcome, Policy, Sandbox, World};
use strata_engine::sqlite::guard::Guard;

/// Measured rounds, after one warm-up round; the order of the ways rotates from round to round.
const RUNS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    Sql,
    Native,
    Guest,
    BackupAndGuest,
    PythonGuest,
    CPython,
    PythonBefore,
}

impl Way {
    const ALL: [Way; 4] = [Way::Sql, Way::Native, Way::Guest, Way::BackupAndGuest];
    const PYTHON: [Way; 2] = [Way::PythonGuest, Way::CPython];

    fn label(self) -> &'static str {
        match self {
            Way::Sql => "(a) one SQL UPDATE",
            Way::Native => "(b) native Rust, batched like the guest",
            Way::Guest => "(c) WASM guest (strata SDK)",
            Way::BackupAndGuest => "(d) verified backup + (c), as migrate",
            Way::PythonGuest => "(e) Python component (Python SDK)",
            Way::CPython => "(f) the same Python loop in CPython, sqlite3",
            Way::PythonBefore => "(g) another Python component, to compare",
        }
    }
}

fn main() {
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let wasm = Wasm::read(&component());
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.db");
    seed(&base, rows);
    let sandbox = Sandbox::new(Some(strata_engine::components::CacheLocation {
        entries: dir.path().join("cache"),
        key_file: dir.path().join("state/cache.key"),
    }))
    .unwrap();
    sandbox.exports(&wasm.bytes, Some(wasm.sha256)).unwrap(); // compile once, outside the timings
    let python = std::env::var_os("STRATA_BENCH_PYTHON").map(|p| Wasm::read(Path::new(&p)));
    if let Some(py) = &python {
        sandbox.exports(&py.bytes, Some(py.sha256)).unwrap();
    }
    // A second Python component (an earlier build, say) run beside (e) in the same rounds.
    let before = std::env::var_os("STRATA_BENCH_PYTHON_BEFORE").map(|p| Wasm::read(Path::new(&p)));
    if let Some(py) = &before {
        sandbox.exports(&py.bytes, Some(py.sha256)).unwrap();
    }
    let mut ways: Vec<Way> = match python {
        Some(_) => Way::ALL.iter().chain(&Way::PYTHON).copied().collect(),
        None => Way::ALL.to_vec(),
    };
    if before.is_some() && python.is_some() {
        ways.push(Way::PythonBefore);
    }

    let fresh = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&base, &path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        (conn, path)
    };

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    let mut peak = 0;
    let mut python_used = None;
    let mut before_used: Option<Outcome> = None;
    let mut expected: Option<String> = None;
    for round in 0..=RUNS {
        for k in 0..ways.len() {
            let i = (k + round) % ways.len();
            let way = ways[i];
            let (mut conn, path) = fresh(&format!("{i}-{round}.db"));
            let t = Instant::now();
            match way {
                Way::Sql => one_statement(&conn),
                Way::Native => native(&mut conn),
                Way::Guest => peak = guest(&sandbox, &mut conn, &wasm),
                Way::BackupAndGuest => {
                    // As `migrate` runs it: the copy's check beside the step, which waits for
                    // it before it commits.
                    let pending = strata_engine::sqlite::backup::take_overlapped(
                        &conn,
                        &path,
                        "0123abcd",
                        &dir.path().join("backups"),
                        1,
                        "before migrate (apply)",
                    )
                    .unwrap();
                    guest_then(&sandbox, &mut conn, &wasm, || {
                        pending.wait().unwrap();
                    });
                }
                Way::PythonGuest => {
                    python_used =
                        Some(guest_outcome(&sandbox, &mut conn, python.as_ref().unwrap()));
                }
                Way::CPython => cpython(&path),
                Way::PythonBefore => {
                    before_used =
                        Some(guest_outcome(&sandbox, &mut conn, before.as_ref().unwrap()));
                }
            }
            let elapsed = t.elapsed();
            let d = digest(&conn);
            match &expected {
                Some(e) => assert_eq!(&d, e, "{way:?} gives a different result"),
                None => expected = Some(d),
            }
            if round > 0 {
                times[i].push(elapsed);
            }
            drop(conn);
            std::fs::remove_file(&path).ok();
        }
    }

    // The guest's memory at a tenth of the rows, to show it does not grow with the table.
    let small = dir.path().join("small.db");
    seed(&small, rows / 10);
    let mut conn = Connection::open(&small).unwrap();
    let small_peak = guest(&sandbox, &mut conn, &wasm);
    let python_small = python.as_ref().map(|py| {
        let small = dir.path().join("python-small.db");
        seed(&small, rows / 10);
        guest_outcome(&sandbox, &mut Connection::open(&small).unwrap(), py)
    });

    println!(
        "split-names on {rows} rows: median of {RUNS} rounds after a warm-up, order rotated; \
         every result equal (sha256 over every row)"
    );
    let sql = median(times[0].clone()).as_secs_f64();
    let native = median(times[1].clone()).as_secs_f64();
    for (i, way) in ways.iter().enumerate() {
        let m = median(times[i].clone()).as_secs_f64();
        let lo = times[i].iter().min().unwrap().as_secs_f64();
        let hi = times[i].iter().max().unwrap().as_secs_f64();
        println!(
            "  {:<42} {m:>7.3} s ({lo:.3}–{hi:.3})  {:>5.2} x (a)  {:>5.2} x (b)",
            way.label(),
            m / sql,
            m / native
        );
    }
    let of = |way: Way| {
        ways.iter()
            .position(|w| *w == way)
            .map(|i| median(times[i].clone()).as_secs_f64())
    };
    if let (Some(e), Some(f)) = (of(Way::PythonGuest), of(Way::CPython)) {
        println!(
            "  (e) / (f): the Python component takes {:.2} x the time of native CPython",
            e / f
        );
        if let (Some(g), Some(used)) = (of(Way::PythonBefore), &before_used) {
            println!(
                "  (g) / (f): the other Python component takes {:.2} x (fuel {:.0} a row, peak \
                 linear memory {} KiB)",
                g / f,
                used.fuel_used as f64 / rows.max(1) as f64,
                used.memory_peak_bytes / 1024
            );
        }
    }
    // The regression gate of issue 22, in the form of the other benches' gates.
    if let (Some(a), Some(c), Some(d)) = (of(Way::Sql), of(Way::Guest), of(Way::BackupAndGuest)) {
        println!("\nregression gate, components on SQLite, {rows} rows (ratio / target):");
        for (what, ratio, target) in [
            ("split-names component / one UPDATE", c / a, 1.5),
            ("verified backup + component / one UPDATE", d / a, 1.5),
        ] {
            println!(
                "  {what:<55} {ratio:>6.2} x / {target:.2} x  {}",
                if ratio <= target { "met" } else { "MISSED" }
            );
        }
        println!();
    }
    println!(
        "  guest peak linear memory: {} KiB at {} rows, {} KiB at {rows} rows",
        small_peak / 1024,
        rows / 10,
        peak / 1024
    );
    if let (Some(small), Some(all)) = (python_small, python_used) {
        let limits = Limits::default();
        println!(
            "  Python component: fuel {:.2} G at {} rows, {:.2} G at {rows} rows ({:.0} a row; \
             default limit {} G); peak linear memory {} KiB and {} KiB (default limit {} MiB)",
            small.fuel_used as f64 / 1e9,
            rows / 10,
            all.fuel_used as f64 / 1e9,
            all.fuel_used as f64 / rows.max(1) as f64,
            limits.fuel / 1_000_000_000,
            small.memory_peak_bytes / 1024,
            all.memory_peak_bytes / 1024,
            limits.memory_mib
        );
    }
    start(&wasm, dir.path());
    python_start(dir.path());
}

/// The start of a Python component (18 MB: CPython and its heap snapshot), when
/// `STRATA_BENCH_PYTHON` names one built by `strata build` (the Python split-names, say; the
/// guest-examples do not commit theirs): one cold start (compile into an empty cache, then the
/// call), then warm starts from that cache, each on a new sandbox as a new `strata` process has.
fn python_start(dir: &Path) {
    const ROUNDS: usize = 9;
    let Some(path) = std::env::var_os("STRATA_BENCH_PYTHON") else {
        println!("python component start: skipped (set STRATA_BENCH_PYTHON to a built component)");
        return;
    };
    let wasm = Wasm::read(Path::new(&path));
    let db = dir.join("python-start.db");
    seed(&db, 0);
    let mut conn = Connection::open(&db).unwrap();
    let cache = strata_engine::components::CacheLocation {
        entries: dir.join("python-cache/entries"),
        key_file: dir.join("python-cache/key/cache.key"),
    };
    let t = Instant::now();
    let sandbox = Sandbox::new(Some(cache.clone())).unwrap();
    guest(&sandbox, &mut conn, &wasm);
    let cold = t.elapsed();
    let entry = std::fs::read_dir(&cache.entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("the compiled entry");
    let (mut warm, mut load, mut again) = (Vec::new(), Vec::new(), Vec::new());
    let (mut read_hash, mut tag) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // What every run pays before any component runs: the committed file read and hashed
        // for the migration's checksum (outside the warm start; the sandbox reuses the hash).
        let t = Instant::now();
        Wasm::read(Path::new(&path));
        read_hash.push(t.elapsed());
        // The tag check alone: keyed BLAKE3 over the mapped entry, as the cache does it.
        let t = Instant::now();
        let file = std::fs::File::open(&entry).unwrap();
        // SAFETY: a private read-only map of a file nothing else writes during the bench.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        blake3::Hasher::new_keyed(&[7; 32])
            .update_rayon(&map)
            .finalize();
        tag.push(t.elapsed());
        let sandbox = Sandbox::new(Some(cache.clone())).unwrap();
        let t = Instant::now();
        guest(&sandbox, &mut conn, &wasm);
        warm.push(t.elapsed());
        let t = Instant::now();
        guest(&sandbox, &mut conn, &wasm);
        again.push(t.elapsed());
        let sandbox = Sandbox::new(Some(cache.clone())).unwrap();
        let t = Instant::now();
        sandbox.exports(&wasm.bytes, Some(wasm.sha256)).unwrap();
        load.push(t.elapsed());
    }
    println!(
        "python component start ({} MB) on an empty table, warm: median of {ROUNDS}:",
        wasm.bytes.len() / 1_000_000
    );
    println!(
        "  cold: new sandbox, compile into an empty cache, call   {:>8.2} ms",
        cold.as_secs_f64() * 1e3
    );
    print_warm(&warm, &load, &again);
    println!(
        "    of which the tag check of the {} MB entry               {}",
        std::fs::metadata(&entry).unwrap().len() / 1_000_000,
        ms(&tag)
    );
    println!(
        "  before it, every run: read and sha256 the committed file {}",
        ms(&read_hash)
    );
}

/// Component start on an empty table: cold (a new sandbox compiling into an empty cache, then
/// the call), the sandbox itself (wasmtime engine, linker, opening the cache: once per
/// process), warm (the first call on a new sandbox: load from the on-disk compile cache with
/// its tag check, pre-instantiate, instantiate, call), the load alone, and a second call on
/// the same sandbox (the component already loaded in the process).
fn start(wasm: &Wasm, dir: &Path) {
    const ROUNDS: usize = 15;
    let db = dir.join("start.db");
    seed(&db, 0);
    let mut conn = Connection::open(&db).unwrap();
    let (mut cold, mut engine, mut warm, mut load, mut again) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let cache = strata_engine::components::CacheLocation {
            entries: dir.join(format!("start-cache-{round}/entries")),
            key_file: dir.join(format!("start-cache-{round}/key/cache.key")),
        };
        let t = Instant::now();
        let sandbox = Sandbox::new(Some(cache.clone())).unwrap();
        guest(&sandbox, &mut conn, wasm);
        cold.push(t.elapsed());
        let t = Instant::now();
        let sandbox = Sandbox::new(Some(cache.clone())).unwrap();
        engine.push(t.elapsed());
        let t = Instant::now();
        guest(&sandbox, &mut conn, wasm);
        warm.push(t.elapsed());
        let t = Instant::now();
        guest(&sandbox, &mut conn, wasm);
        again.push(t.elapsed());
        let sandbox = Sandbox::new(Some(cache)).unwrap();
        let t = Instant::now();
        sandbox.exports(&wasm.bytes, Some(wasm.sha256)).unwrap();
        load.push(t.elapsed());
    }
    println!("component start on a one-row table, median of {ROUNDS}:");
    println!(
        "  cold: new sandbox, compile into an empty cache, call   {}",
        ms(&cold)
    );
    println!(
        "  new sandbox (engine, linker, cache key): once a process {}",
        ms(&engine)
    );
    print_warm(&warm, &load, &again);
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

/// The native CPython baseline on the database at `path`, in a `python3` process.
fn cpython(path: &Path) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("STRATA_BENCH_CPYTHON").unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(python)
        .arg(here.join("benches/split_names_cpython.py"))
        .arg(path)
        .arg(here.join("../guest-examples/python/split-names/app.py"))
        .output()
        .expect("run python3 (or STRATA_BENCH_CPYTHON)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// The warm-start lines of a start measurement.
fn print_warm(warm: &[Duration], load: &[Duration], again: &[Duration]) {
    println!(
        "  warm: first call, load from the disk cache, instantiate, call {}",
        ms(warm)
    );
    println!(
        "    of which the load (read, tag check, deserialize, pre-instantiate) {}",
        ms(load)
    );
    println!(
        "  again: second call on the same sandbox                 {}",
        ms(again)
    );
}

/// The median of `v` in milliseconds, with its range.
fn ms(v: &[Duration]) -> String {
    let m = median(v.to_vec()).as_secs_f64() * 1e3;
    let lo = v.iter().min().unwrap().as_secs_f64() * 1e3;
    let hi = v.iter().max().unwrap().as_secs_f64() * 1e3;
    format!("{m:>8.2} ms ({lo:.2}–{hi:.2})")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The result: sha256 over every row's id, first name and last name, in id order.
fn digest(conn: &Connection) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut stmt = conn
        .prepare("SELECT id, first_name, last_name FROM people ORDER BY id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        h.update(r.get::<_, i64>(0).unwrap().to_le_bytes());
        for i in 1..3 {
            let v: Option<String> = r.get(i).unwrap();
            h.update(v.as_deref().unwrap_or("\u{0}NULL").as_bytes());
            h.update([0]);
        }
    }
    strata_engine::core::checksum::hex(&h.finalize())
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

/// The fair native baseline: the guest's path in plain Rust. Rows are read in batches of
/// 1,000 by key (as the SDK's cursor pulls them) and written through one prepared UPDATE.
fn native(conn: &mut Connection) {
    const BATCH: i64 = 1_000;
    let tx = conn.transaction().unwrap();
    {
        let mut select = tx
            .prepare("SELECT id, full_name FROM people WHERE id > ?1 ORDER BY id LIMIT ?2")
            .unwrap();
        let mut update = tx
            .prepare("UPDATE people SET first_name = ?1, last_name = ?2 WHERE id = ?3")
            .unwrap();
        let mut after = i64::MIN;
        loop {
            let batch: Vec<(i64, String)> = select
                .query_map((after, BATCH), |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let Some(last) = batch.last() else { break };
            after = last.0;
            for (id, full_name) in &batch {
                let (first, last) = split(full_name);
                update.execute((first, last, id)).unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// A committed component: its bytes and their sha256, as a step's pinned manifest has them
/// (hashed when the migration folder is read, before any component runs).
struct Wasm {
    bytes: Vec<u8>,
    sha256: [u8; 32],
}

impl Wasm {
    fn read(path: &Path) -> Wasm {
        use sha2::Digest as _;
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sha256 = sha2::Sha256::digest(&bytes).into();
        Wasm { bytes, sha256 }
    }
}

/// Runs the component in one transaction, as a step would; returns its peak memory.
fn guest(sandbox: &Sandbox, conn: &mut Connection, wasm: &Wasm) -> usize {
    guest_outcome(sandbox, conn, wasm).memory_peak_bytes
}

/// Runs the component in one transaction, as a step would; returns what the call reported.
fn guest_outcome(sandbox: &Sandbox, conn: &mut Connection, wasm: &Wasm) -> Outcome {
    guest_then(sandbox, conn, wasm, || {})
}

/// [`guest_outcome`], running `before_commit` just before the transaction commits.
fn guest_then(
    sandbox: &Sandbox,
    conn: &mut Connection,
    wasm: &Wasm,
    before_commit: impl FnOnce(),
) -> Outcome {
    let guard = Guard::install(conn).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let call = Call {
        world: World::Transform,
        wasm: &wasm.bytes,
        // As a step gives it: the pinned manifest hashed the bytes when it read them.
        sha256: Some(wasm.sha256),
        limits: Limits::default(),
        policy: Policy::new(None, None, PathBuf::from("migration.toml")),
        seed_params: "{}",
        progress: Arc::new(AtomicU64::new(0)),
    };
    let called = sandbox.call(conn, &guard, &call);
    called.result.expect("the transform runs");
    let outcome = called.outcome;
    before_commit();
    conn.execute_batch("COMMIT").unwrap();
    Guard::uninstall(conn).unwrap();
    outcome
}
