//! Benchmark: N `CREATE TABLE` migrations on a fresh PostgreSQL database, strata beside `psql`
//! doing the same, measured in the same process run against the same server.
//!
//! Baselines, each the way its best users would write it: `psql -f` of all files at once in
//! autocommit (one process, one connection: the floor for separate commits), `psql -1 -f` of all
//! files (one transaction: the floor for one), and, up to N = 100 (it spawns a process per
//! migration), `psql -1 -f` per migration file, as shell-script migrators run it. For each N every
//! mode runs once per round, the order rotated from round to round, each on a fresh database;
//! medians and spread are printed with the ratio to psql in autocommit, then the regression
//! gate: each ratio of issue 22 beside its target, and the first two-phase run of the process
//! (the server's first) beside the later ones. Every run is verified: the columns of the public
//! schema must equal what psql built (a hash over every table, column and type), and strata's
//! ledger must hold N rows.
//!
//! `STRATA_TEST_POSTGRES=postgres://user:pw@host:port/postgres cargo bench -p strata-cli --bench
//! postgres [-- [N ...] [--rounds R]]`. Without the variable, or without psql on PATH, it says so
//! and exits. With `STRATA_BENCH_BEFORE` naming another strata binary (a build of the change's
//! base), its three modes run in the same rounds too, and each is compared with this build's.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    PsqlPerFile,
    PsqlAutocommit,
    PsqlOneTransaction,
    NoRehearsal,
    NoRehearsalSingle,
    TwoPhase,
    BeforeNoRehearsal,
    BeforeNoRehearsalSingle,
    BeforeTwoPhase,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::PsqlPerFile,
        Mode::PsqlAutocommit,
        Mode::PsqlOneTransaction,
        Mode::NoRehearsal,
        Mode::NoRehearsalSingle,
        Mode::TwoPhase,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::PsqlPerFile => "psql -1 -f, one process per migration",
            Mode::PsqlAutocommit => "psql -f, all files, autocommit (floor)",
            Mode::PsqlOneTransaction => "psql -1 -f, all files, one transaction",
            Mode::NoRehearsal => "strata migrate --no-rehearsal",
            Mode::NoRehearsalSingle => "  ... --single-transaction",
            Mode::TwoPhase => "strata migrate (backup + rehearsal + backup + apply)",
            Mode::BeforeNoRehearsal => "before: strata migrate --no-rehearsal",
            Mode::BeforeNoRehearsalSingle => "before:   ... --single-transaction",
            Mode::BeforeTwoPhase => "before: strata migrate (two phases)",
        }
    }

    fn is_strata(self) -> bool {
        !matches!(
            self,
            Mode::PsqlPerFile | Mode::PsqlAutocommit | Mode::PsqlOneTransaction
        )
    }

    /// The same mode of this build, for a mode of the build before.
    fn after(self) -> Option<Mode> {
        match self {
            Mode::BeforeNoRehearsal => Some(Mode::NoRehearsal),
            Mode::BeforeNoRehearsalSingle => Some(Mode::NoRehearsalSingle),
            Mode::BeforeTwoPhase => Some(Mode::TwoPhase),
            _ => None,
        }
    }
}

/// The process spawns a `psql` per migration in [`Mode::PsqlPerFile`]: a minute at N = 1,000.
const PER_FILE_UP_TO: usize = 100;

fn main() {
    let (sizes, rounds) = common::args(&[100, 1_000], 3);
    let Ok(admin) = std::env::var("STRATA_TEST_POSTGRES") else {
        println!("STRATA_TEST_POSTGRES is not set: no PostgreSQL server to measure against");
        return;
    };
    if Command::new("psql").arg("--version").output().is_err() {
        println!("psql is not on PATH: the baselines cannot run");
        return;
    }
    for n in sizes {
        bench(&admin, n, rounds);
    }
}

/// The URL of database `name` on the server of `admin`.
fn url(admin: &str, name: &str) -> String {
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

fn bench(admin: &str, n: usize, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    let mut all = String::new();
    for i in 0..n {
        let sql = format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, name text NOT NULL, at timestamptz);\n"
        );
        let folder = project.join(format!("migrations/app/{}-t{i}", stamp(i)));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("do.sql"), &sql).unwrap();
        all.push_str(&sql);
    }
    std::fs::write(project.join("all.sql"), &all).unwrap();

    let mut admin_client = Client::connect(admin, NoTls).unwrap();
    let before = std::env::var("STRATA_BENCH_BEFORE").ok();
    let mut modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| *m != Mode::PsqlPerFile || n <= PER_FILE_UP_TO)
        .collect();
    if before.is_some() {
        modes.extend([
            Mode::BeforeNoRehearsal,
            Mode::BeforeNoRehearsalSingle,
            Mode::BeforeTwoPhase,
        ]);
    }
    let mut times: Vec<(Mode, Vec<Duration>)> = modes.iter().map(|m| (*m, vec![])).collect();
    let mut expected: Option<String> = None;
    for round in 0..rounds {
        for k in 0..modes.len() {
            let mode = modes[(k + round) % modes.len()];
            let db = format!("strata_bench_{}", std::process::id());
            for name in [db.clone(), format!("{db}_test")] {
                admin_client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .unwrap();
            }
            admin_client
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap();
            let _ = std::fs::remove_dir_all(project.join(".strata"));
            let target = url(admin, &db);
            let t = Instant::now();
            run(mode, project, &target, n, before.as_deref());
            let elapsed = t.elapsed();
            let shape = verify(&target, mode, n);
            match &expected {
                None => expected = Some(shape),
                Some(e) => assert_eq!(e, &shape, "{:?} built another schema", mode),
            }
            times
                .iter_mut()
                .find(|(m, _)| *m == mode)
                .unwrap()
                .1
                .push(elapsed);
            for name in [db.clone(), format!("{db}_test")] {
                admin_client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .unwrap();
            }
        }
    }
    let of = |mode: Mode| {
        times
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, t)| common::median(t).as_secs_f64())
    };
    let floor = of(Mode::PsqlAutocommit).unwrap();
    println!(
        "\nN = {n} migrations, {rounds} rounds (median, min-max, ratio to psql in autocommit), all verified"
    );
    for (mode, t) in &times {
        let (lo, hi) = (t.iter().min().unwrap(), t.iter().max().unwrap());
        println!(
            "  {:<55} {:>8.3} s ({:.3}-{:.3})  {:>5.2} x",
            mode.label(),
            common::median(t).as_secs_f64(),
            lo.as_secs_f64(),
            hi.as_secs_f64(),
            common::median(t).as_secs_f64() / floor
        );
    }
    let one_tx = of(Mode::PsqlOneTransaction).unwrap();
    let two_phase = &times.iter().find(|(m, _)| *m == Mode::TwoPhase).unwrap().1;
    let later = (two_phase.len() > 1).then(|| common::median(&two_phase[1..]).as_secs_f64());
    common::gate(
        &format!("PostgreSQL, N = {n}"),
        &[
            (
                "migrate --no-rehearsal / psql autocommit",
                of(Mode::NoRehearsal).unwrap() / floor,
                1.5,
            ),
            (
                "migrate (two phases) / psql autocommit",
                of(Mode::TwoPhase).unwrap() / floor,
                3.0,
            ),
            (
                "--no-rehearsal --single-transaction / psql -1",
                of(Mode::NoRehearsalSingle).unwrap() / one_tx,
                1.5,
            ),
        ],
    );
    if let Some(later) = later {
        println!(
            "  first two-phase run of this process {:.3} s, later ones (median) {later:.3} s: {:.2} x",
            two_phase[0].as_secs_f64(),
            two_phase[0].as_secs_f64() / later
        );
    }
    // After the gate, which `gate.sh` reads up to its first line that is not indented.
    let befores: Vec<(Mode, f64)> = times
        .iter()
        .filter_map(|(m, _)| Some((m.after()?, of(*m)?)))
        .collect();
    if !befores.is_empty() {
        println!(
            "\nthis build against STRATA_BENCH_BEFORE, same rounds (ratio of medians; under 1 is faster):"
        );
        for (after, before) in befores {
            let what = format!("{} / before", after.label().trim());
            println!("  {what:<55} {:>6.2} x", of(after).unwrap() / before);
        }
    }
}

fn stamp(i: usize) -> String {
    let t = chrono_like(i);
    format!("2026{t}Z")
}

/// `MMDDTHHMMSS` for the i-th second of the year's first months, enough for 5 x 10^6 steps.
fn chrono_like(i: usize) -> String {
    let (day, rest) = (i / 86_400, i % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let (month, d) = (1 + day / 28, 1 + day % 28);
    format!("{month:02}{d:02}T{h:02}{m:02}{s:02}")
}

fn run(mode: Mode, project: &Path, target: &str, n: usize, before: Option<&str>) {
    let psql = |args: &[&str]| {
        let ok = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "psql {args:?}");
    };
    match mode {
        Mode::PsqlPerFile => {
            let mut folders: Vec<_> = std::fs::read_dir(project.join("migrations/app"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            folders.sort();
            assert_eq!(folders.len(), n);
            for f in folders {
                psql(&["-1", "-f", f.join("do.sql").to_str().unwrap()]);
            }
        }
        Mode::PsqlAutocommit => psql(&["-f", project.join("all.sql").to_str().unwrap()]),
        Mode::PsqlOneTransaction => psql(&["-1", "-f", project.join("all.sql").to_str().unwrap()]),
        _ => {
            let (bin, mode) = match mode.after() {
                Some(after) => (before.expect("STRATA_BENCH_BEFORE"), after),
                None => (STRATA, mode),
            };
            let mut cmd = Command::new(bin);
            cmd.args(["migrate", "--db", target]).current_dir(project);
            if mode != Mode::TwoPhase {
                cmd.arg("--no-rehearsal");
            }
            if mode == Mode::NoRehearsalSingle {
                cmd.arg("--single-transaction");
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "strata failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A hash of the public schema's tables and columns; strata's ledger must hold `n` rows.
fn verify(target: &str, mode: Mode, n: usize) -> String {
    let mut c = Client::connect(target, NoTls).unwrap();
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text
             FROM information_schema.columns WHERE table_schema = 'public'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .unwrap();
    let mut h = Sha256::new();
    for r in &rows {
        for i in 0..3 {
            h.update(r.get::<_, &str>(i).as_bytes());
            h.update([0]);
        }
    }
    if mode.is_strata() {
        let applied: i64 = c
            .query_one("SELECT count(*) FROM strata.strata_migration", &[])
            .unwrap()
            .get(0);
        assert_eq!(applied as usize, n, "{mode:?}: the ledger");
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{} columns, {hex}", rows.len())
}
