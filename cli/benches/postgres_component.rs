//! Benchmark: the committed `split-names` component (people.full_name -> first_name,
//! last_name) on PostgreSQL through `strata migrate --no-rehearsal`, beside `psql` doing the
//! same split in one `UPDATE` (the floor), in the same process run against the same server.
//!
//! Each run starts from a fresh database holding ROWS people (filled outside the timing); what
//! is timed is the migration alone: psql runs `ALTER TABLE` and the `UPDATE` in one transaction
//! (`psql -1`), strata runs the migration's do.sql (the same `ALTER TABLE`) and the transform in
//! its step's transaction, with its lock, ledger and audit. Rounds rotate the order; every run
//! is verified by an md5 over every row, which must equal psql's.
//!
//! `STRATA_TEST_POSTGRES=postgres://user:pw@host:port/postgres cargo bench -p strata-cli --bench
//! postgres_component [-- [ROWS ...] [--rounds R]]` (default 100,000 and 1,000,000 rows, 3
//! rounds). Without the variable, or without psql on PATH, it says so and exits. With
//! `STRATA_BENCH_BEFORE` naming another strata binary (a build of the change's base), it runs in
//! the same rounds too, and this build is compared with it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");
const ADD_COLUMNS: &str =
    "ALTER TABLE people ADD COLUMN first_name text, ADD COLUMN last_name text;";
/// The component's split in SQL: the first word, and the rest without its leading spaces.
const SPLIT: &str = "UPDATE people SET first_name = split_part(btrim(full_name), ' ', 1), \
     last_name = ltrim(substr(btrim(full_name), length(split_part(btrim(full_name), ' ', 1)) + 1));";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Psql,
    Strata,
    Before,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Psql => "psql -1: ALTER TABLE + one UPDATE (the floor)",
            Mode::Strata => "strata migrate --no-rehearsal: do.sql + split-names component",
            Mode::Before => "before: the same with STRATA_BENCH_BEFORE",
        }
    }
}

fn main() {
    let (sizes, rounds) = common::args(&[100_000, 1_000_000], 3);
    let Ok(admin) = std::env::var("STRATA_TEST_POSTGRES") else {
        println!("STRATA_TEST_POSTGRES is not set: no PostgreSQL server to measure against");
        return;
    };
    if Command::new("psql").arg("--version").output().is_err() {
        println!("psql is not on PATH: the floor cannot be measured");
        return;
    }
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations/people/20240320T100000Z-split-names/transform.wasm");
    for &rows in &sizes {
        bench(&admin, &wasm, rows, rounds);
    }
}

fn url(admin: &str, name: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

fn bench(admin: &str, wasm: &Path, rows: usize, rounds: usize) {
    let before = std::env::var("STRATA_BENCH_BEFORE").ok();
    let mut modes = vec![Mode::Psql, Mode::Strata];
    if before.is_some() {
        modes.push(Mode::Before);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut expected: Option<String> = None;
    let mut peaks: Vec<u64> = Vec::new();
    for round in 0..=rounds {
        for k in 0..modes.len() {
            let i = (k + round) % modes.len();
            let mode = modes[i];
            let name = format!("strata_bench_component_{}_{round}_{i}", std::process::id());
            let mut c = Client::connect(admin, NoTls).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            let target = url(admin, &name);
            let dir = tempfile::tempdir().unwrap();
            let (elapsed, peak) = run(mode, dir.path(), &target, wasm, rows, before.as_deref());
            let digest = verify(&target, rows);
            match &expected {
                None => expected = Some(digest),
                Some(e) => assert_eq!(&digest, e, "{mode:?} split the names differently"),
            }
            c.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .unwrap();
            // Round 0 warms up (server caches, the component's compile cache): not counted.
            if round > 0 {
                times[i].push(elapsed);
                peaks.extend(peak);
            }
        }
    }
    println!("\n{rows} rows, {rounds} rounds (medians, min-max):");
    let floor = common::median(&times[0]);
    for (i, mode) in modes.iter().enumerate() {
        let m = common::median(&times[i]);
        let (min, max) = (
            times[i].iter().min().unwrap(),
            times[i].iter().max().unwrap(),
        );
        println!(
            "  {:<62} {:>8.3} s ({:.3}-{:.3})  {:>6.2} x the floor",
            mode.label(),
            m.as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            m.as_secs_f64() / floor.as_secs_f64()
        );
    }
    if modes.contains(&Mode::Before) {
        println!(
            "  this build against STRATA_BENCH_BEFORE, same rounds: {:.2} x (under 1 is faster)",
            common::median(&times[1]).as_secs_f64() / common::median(&times[2]).as_secs_f64()
        );
    }
    peaks.sort_unstable();
    println!(
        "  strata's peak resident memory (the whole process: host, guest, driver): {} MiB \
         median, {} MiB max",
        peaks[peaks.len() / 2] / 1024,
        peaks.last().unwrap() / 1024
    );
    common::gate(
        &format!("PostgreSQL component, {rows} rows"),
        &[(
            "split-names component, --no-rehearsal / one UPDATE",
            common::median(&times[1]).as_secs_f64() / floor.as_secs_f64(),
            1.5,
        )],
    );
}

/// Fills the database, then times the migration alone; with strata, also its peak memory (KiB).
fn run(
    mode: Mode,
    project: &Path,
    target: &str,
    wasm: &Path,
    rows: usize,
    before: Option<&str>,
) -> (Duration, Option<u64>) {
    let fill = format!(
        "CREATE TABLE people (id bigint PRIMARY KEY, full_name text NOT NULL);\n\
         INSERT INTO people SELECT g, 'First' || g || ' Last' || (g % 977) \
         FROM generate_series(1, {rows}) g;\n"
    );
    match mode {
        Mode::Psql => {
            psql(target, &["-c", &fill]);
            let started = Instant::now();
            psql(target, &["-1", "-c", &format!("{ADD_COLUMNS}\n{SPLIT}")]);
            (started.elapsed(), None)
        }
        Mode::Strata | Mode::Before => {
            let bin = match mode {
                Mode::Before => before.expect("STRATA_BENCH_BEFORE"),
                _ => STRATA,
            };
            let zero = project.join("migrations/people/20240101T000000Z-zero");
            let split = project.join("migrations/people/20240102T000000Z-split-names");
            std::fs::create_dir_all(&zero).unwrap();
            std::fs::write(project.join("strata.toml"), format!("db = \"{target}\"\n")).unwrap();
            std::fs::write(zero.join("do.sql"), &fill).unwrap();
            strata(project, bin);
            std::fs::create_dir_all(&split).unwrap();
            std::fs::write(split.join("do.sql"), ADD_COLUMNS).unwrap();
            std::fs::write(
                split.join("migration.toml"),
                "[sandbox]\nreads = [\"people\"]\nwrites = [\"people\"]\ntimeout_s = 3600\n\
                 fuel = 1000000000000\n",
            )
            .unwrap();
            std::fs::copy(wasm, split.join("transform.wasm")).unwrap();
            let started = Instant::now();
            let peak = strata(project, bin);
            (started.elapsed(), Some(peak))
        }
    }
}

fn psql(target: &str, args: &[&str]) {
    let status = Command::new("psql")
        .args(["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", target])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "psql failed");
}

/// Runs `strata migrate --no-rehearsal` (the binary `bin`) in `project`; returns the process's peak resident
/// memory in KiB (its own rusage, from `wait4`, which also reaps it).
#[allow(clippy::zombie_processes)]
fn strata(project: &Path, bin: &str) -> u64 {
    let stderr = tempfile::tempfile().unwrap();
    let child = Command::new(bin)
        .args(["migrate", "--no-rehearsal", "-q"])
        .current_dir(project)
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid std gave; both pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let mut message = String::new();
    let mut stderr = stderr;
    std::io::Seek::rewind(&mut stderr).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut message).unwrap();
    assert!(ok, "strata failed: {message}");
    usage.ru_maxrss as u64
}

/// An md5 over every row, after checking every row was split.
fn verify(target: &str, rows: usize) -> String {
    let mut c = Client::connect(target, NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE first_name IS NOT NULL), \
             md5(string_agg(id || '|' || first_name || '|' || last_name, ',' ORDER BY id)) \
             FROM people",
            &[],
        )
        .unwrap();
    let (split, digest): (i64, String) = (row.get(0), row.get(1));
    assert_eq!(split as usize, rows, "not every row was split");
    digest
}
