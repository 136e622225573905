//! Benchmark: N `CREATE TABLE` migrations on a fresh database, strata's modes side by side with
//! the sqlite3 CLI floor, measured in the same process run.
//!
//! For each N (default 100, 1,000 and 5,000) every mode runs once per round, the order rotated
//! from round to round, each on a fresh database; the medians and the spread (min–max) are
//! printed with the ratio to the sqlite3 CLI in autocommit. Every run is verified: the user
//! schema must be the one sqlite3 built (a hash over every object's type, name and SQL) and the
//! ledger must hold N rows. Then the per-step time at step 100 and at the last step of one run
//! (the rehearsal phase, through the library, from the engine's own events) beside SQLite's own
//! for the same statements, for the `CREATE TABLE` chain and for a chain of one-row INSERTs,
//! whose SQLite cost does not grow: what strata adds per step must stay flat.
//!
//! `cargo bench -p strata-cli --bench migrations [-- [N ...] [--rounds R]]`. Without the sqlite3
//! CLI on PATH the floor is skipped, and the output says so.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    SqliteAutocommit,
    SqliteOneTransaction,
    NoRehearsal,
    NoRehearsalSingle,
    TwoPhase,
    TwoPhaseSingle,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::SqliteAutocommit,
        Mode::SqliteOneTransaction,
        Mode::NoRehearsal,
        Mode::NoRehearsalSingle,
        Mode::TwoPhase,
        Mode::TwoPhaseSingle,
    ];

    fn label(self) -> &'static str {
        match self {
            Mode::SqliteAutocommit => "sqlite3 CLI, autocommit (floor)",
            Mode::SqliteOneTransaction => "sqlite3 CLI, one transaction",
            Mode::NoRehearsal => "strata migrate --no-rehearsal",
            Mode::NoRehearsalSingle => "  ... --single-transaction",
            Mode::TwoPhase => "strata migrate (two phases)",
            Mode::TwoPhaseSingle => "  ... --single-transaction",
        }
    }

    fn is_sqlite(self) -> bool {
        matches!(self, Mode::SqliteAutocommit | Mode::SqliteOneTransaction)
    }
}

fn main() {
    let (sizes, rounds) = common::args(&[100, 1_000, 5_000], 5);
    let sqlite3 = Command::new("sqlite3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match &sqlite3 {
        Some(v) => println!("sqlite3 CLI: {v}"),
        None => println!(
            "sqlite3 CLI not found on PATH: the floor is NOT measured and no ratio is printed \
             (install it, e.g. apt-get install sqlite3)"
        ),
    }
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| sqlite3.is_some() || !m.is_sqlite())
        .collect();

    let mut medians: Vec<Medians> = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        let script = write_project(&project, n);
        let expected = reference_schema(&dir.path().join("reference.db"), &script);
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
        // One warm-up run of each mode (page cache, binary), not counted.
        for (i, &mode) in modes.iter().enumerate() {
            run(
                mode,
                &project,
                &script,
                &dir.path().join(format!("warm-{i}")),
                n,
                &expected,
            );
        }
        for round in 0..rounds {
            for k in 0..modes.len() {
                let i = (k + round) % modes.len();
                let out = dir.path().join(format!("r{round}-{i}"));
                times[i].push(run(modes[i], &project, &script, &out, n, &expected));
                std::fs::remove_dir_all(&out).ok();
            }
        }
        println!(
            "\n{n} CREATE TABLE migrations, fresh database; median of {rounds} rounds (min–max), all verified"
        );
        let floor = modes
            .iter()
            .position(|m| *m == Mode::SqliteAutocommit)
            .map(|i| common::median(&times[i]));
        let one_tx = modes
            .iter()
            .position(|m| *m == Mode::SqliteOneTransaction)
            .map(|i| common::median(&times[i]));
        for (i, mode) in modes.iter().enumerate() {
            let m = common::median(&times[i]);
            let (lo, hi) = spread(&times[i]);
            let mut line = format!(
                "  {:<34} {:>8.3} s  ({:.3}–{:.3})",
                mode.label(),
                m.as_secs_f64(),
                lo.as_secs_f64(),
                hi.as_secs_f64()
            );
            if let Some(f) = floor {
                line.push_str(&format!(
                    "  {:>6.2} x autocommit",
                    m.as_secs_f64() / f.as_secs_f64()
                ));
            }
            if let Some(t) =
                one_tx.filter(|_| matches!(mode, Mode::NoRehearsalSingle | Mode::TwoPhaseSingle))
            {
                line.push_str(&format!(
                    "  {:>6.2} x one transaction",
                    m.as_secs_f64() / t.as_secs_f64()
                ));
            }
            println!("{line}");
        }
        medians.push((
            n,
            floor.map(|f| f.as_secs_f64()),
            modes
                .iter()
                .enumerate()
                .map(|(i, m)| (*m, common::median(&times[i]).as_secs_f64()))
                .collect(),
        ));
    }
    sqlite_gate(&medians);

    let n = sizes.iter().copied().max().unwrap_or(5_000).max(200);
    per_step(n, "CREATE TABLE", write_project);
    per_step(n, "one INSERT each", write_insert_project);
}

/// One N's medians, for the gate: N, the floor's (when sqlite3 ran), each mode's.
type Medians = (usize, Option<f64>, Vec<(Mode, f64)>);

/// The regression gate of issue 22 on SQLite: at 1,000 migrations (or the largest N measured
/// below it), `--no-rehearsal` and both phases against the sqlite3 floor; from 1,000 to 5,000,
/// strata's growth against the floor's.
fn sqlite_gate(medians: &[Medians]) {
    let of = |m: &[(Mode, f64)], mode: Mode| m.iter().find(|(k, _)| *k == mode).map(|(_, t)| *t);
    let Some((n, Some(floor), m)) = medians
        .iter()
        .filter(|(n, f, _)| *n <= 1_000 && f.is_some())
        .max_by_key(|(n, _, _)| *n)
    else {
        println!(
            "\nregression gate: not computed (it needs the sqlite3 floor at some N <= 1000; \
             run with `1000 5000` for the growth ratio too)"
        );
        return;
    };
    let mut ratios = vec![
        (
            "migrate --no-rehearsal / sqlite3 autocommit",
            of(m, Mode::NoRehearsal).unwrap() / floor,
            1.1,
        ),
        (
            "migrate (two phases) / sqlite3 autocommit",
            of(m, Mode::TwoPhase).unwrap() / floor,
            1.3,
        ),
    ];
    let big = medians.iter().find(|(b, f, _)| *b == 5 * n && f.is_some());
    if let Some((_, Some(big_floor), big_m)) = big {
        let growth = of(big_m, Mode::NoRehearsal).unwrap() / of(m, Mode::NoRehearsal).unwrap();
        ratios.push((
            "growth x5 of --no-rehearsal / sqlite3's own growth",
            growth / (big_floor / floor),
            1.1,
        ));
    }
    common::gate(&format!("SQLite, N = {n}"), &ratios);
}

/// Writes a project with one module of `n` migrations whose SQL is `sql(i)`, folder slugs
/// `<slug><i>`; returns the same SQL as one script.
fn write_chain(project: &Path, n: usize, slug: &str, sql: impl Fn(usize) -> String) -> String {
    let module = project.join("migrations/app");
    let mut script = String::new();
    for i in 0..n {
        let (h, m, s) = (i / 3600, (i / 60) % 60, i % 60);
        let folder = module.join(format!("20240101T{h:02}{m:02}{s:02}Z-{slug}{i}"));
        std::fs::create_dir_all(&folder).unwrap();
        let sql = sql(i);
        std::fs::write(folder.join("do.sql"), &sql).unwrap();
        script.push_str(&sql);
    }
    std::fs::write(project.join("strata.toml"), "").unwrap();
    script
}

/// `n` `CREATE TABLE` migrations.
fn write_project(project: &Path, n: usize) -> String {
    write_chain(project, n, "t", |i| {
        format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);\n")
    })
}

/// A project of `n` migrations whose SQLite cost does not grow with the history: the first
/// creates a table, each other inserts one row into it. What strata adds per step must not
/// grow with the number of applied migrations either.
fn write_insert_project(project: &Path, n: usize) -> String {
    write_chain(project, n, "r", |i| match i {
        0 => "CREATE TABLE log (id INTEGER PRIMARY KEY, note TEXT NOT NULL);\n".to_string(),
        _ => format!("INSERT INTO log (note) VALUES ('step {i}');\n"),
    })
}

/// The user schema as sqlite3 builds it from the script.
fn reference_schema(db: &Path, script: &str) -> String {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&format!("BEGIN;{script}COMMIT;"))
        .unwrap();
    schema_hash(db)
}

/// A hash over every user object's type, name and SQL, in name order.
fn schema_hash(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'strata_%' ORDER BY name",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut h = Sha256::new();
    while let Some(r) = rows.next().unwrap() {
        for i in 0..3 {
            h.update(r.get::<_, Option<String>>(i).unwrap().unwrap_or_default());
            h.update([0]);
        }
    }
    strata_engine::core::checksum::hex(&h.finalize())
}

fn ledger_rows(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM strata_migration", [], |r| r.get(0))
        .unwrap()
}

/// One timed run of `mode` into the fresh folder `out`; panics if the result is wrong.
fn run(mode: Mode, project: &Path, script: &str, out: &Path, n: usize, expected: &str) -> Duration {
    std::fs::create_dir_all(out).unwrap();
    let db = out.join("app.db");
    let test_db = out.join("test.db");
    let elapsed = if mode.is_sqlite() {
        let sql = if mode == Mode::SqliteOneTransaction {
            format!("BEGIN;\n{script}COMMIT;\n")
        } else {
            script.to_string()
        };
        let file = out.join("script.sql");
        std::fs::write(&file, sql).unwrap();
        let t = Instant::now();
        let status = Command::new("sqlite3")
            .arg(&db)
            .stdin(std::fs::File::open(&file).unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        let e = t.elapsed();
        assert!(status.success(), "sqlite3 failed");
        e
    } else {
        let mut cmd = Command::new(STRATA);
        cmd.arg("--project")
            .arg(project)
            .arg("--db")
            .arg(&db)
            .arg("--test-db")
            .arg(&test_db)
            .arg("-q")
            .arg("migrate")
            .stdout(Stdio::null());
        if matches!(mode, Mode::NoRehearsal | Mode::NoRehearsalSingle) {
            cmd.arg("--no-rehearsal");
        }
        if matches!(mode, Mode::NoRehearsalSingle | Mode::TwoPhaseSingle) {
            cmd.arg("--single-transaction");
        }
        let t = Instant::now();
        let output = cmd.stderr(Stdio::piped()).output().unwrap();
        let e = t.elapsed();
        assert!(
            output.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(ledger_rows(&db), n as i64, "{mode:?}: ledger rows");
        if matches!(mode, Mode::TwoPhase | Mode::TwoPhaseSingle) {
            assert_eq!(
                ledger_rows(&test_db),
                n as i64,
                "{mode:?}: test ledger rows"
            );
            assert_eq!(
                schema_hash(&test_db),
                expected,
                "{mode:?}: test database schema"
            );
        }
        e
    };
    assert_eq!(
        schema_hash(&db),
        expected,
        "{mode:?}: schema differs from sqlite3's"
    );
    // Not timed: the project's backups of this run's databases.
    for entry in std::fs::read_dir(project.join(".strata/backups"))
        .into_iter()
        .flatten()
    {
        std::fs::remove_file(entry.unwrap().path()).ok();
    }
    elapsed
}

/// Per-step time at step 100 and at the last steps of one run of `n` migrations written by
/// `write`, for strata and for SQLite itself doing the same statements. The rehearsal phase is
/// timed, between the engine's own `StepApplied` events (commit and bookkeeping included): the
/// test database is synced as little as SQLite's floor here, so the figures are CPU, not the
/// disk's fsync latency. SQLite re-reads `sqlite_master` on every `CREATE TABLE`, so its own
/// step grows with the schema; on the INSERT chain it does not, and neither may strata's.
fn per_step(n: usize, what: &str, write: fn(&Path, usize) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    let script = write(&root, n);
    let mut project = strata_engine::Project::discover(Some(&root)).unwrap();
    project.db = strata_engine::Database::Sqlite(dir.path().join("app.db"));
    project.test_db = strata_engine::Database::Sqlite(dir.path().join("test.db"));
    let mut stamps: Vec<Instant> = Vec::with_capacity(n + 1);
    strata_engine::commands::migrate::migrate(
        &project,
        &strata_engine::commands::migrate::MigrateOptions::default(),
        &mut |e| match e {
            strata_engine::Event::PhaseStarted {
                phase: strata_engine::core::event::Phase::Rehearsal,
                ..
            } => stamps.push(Instant::now()),
            strata_engine::Event::StepApplied {
                phase: strata_engine::core::event::Phase::Rehearsal,
                ..
            } => stamps.push(Instant::now()),
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(stamps.len(), n + 1);
    let strata: Vec<Duration> = stamps.windows(2).map(|w| w[1] - w[0]).collect();

    // The floor: the same statements, one transaction each, on a file synced the same way.
    let conn = Connection::open(dir.path().join("floor.db")).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let mut floor = Vec::with_capacity(n);
    for sql in script.lines() {
        let t = Instant::now();
        conn.execute_batch(sql).unwrap();
        floor.push(t.elapsed());
    }

    let window = |v: &[Duration]| {
        (
            common::median(&v[90..110]).as_secs_f64() * 1e3,
            common::median(&v[n - 20..]).as_secs_f64() * 1e3,
        )
    };
    let (s_early, s_late) = window(&strata);
    let (f_early, f_late) = window(&floor);
    let ratio = s_late / s_early;
    println!(
        "\nper-step time, {what} migrations, the rehearsal phase of one run of {n} (steps \
         90-110 -> steps {}-{n}, medians):\n  strata       {s_early:.3} ms -> {s_late:.3} ms: {ratio:.2} x {}\n  \
         SQLite alone {f_early:.3} ms -> {f_late:.3} ms: {:.2} x (the same statements, one \
         transaction each)",
        n - 19,
        if ratio <= 2.0 {
            "(within 2 x)"
        } else {
            "(MORE than 2 x)"
        },
        f_late / f_early,
    );
}

fn spread(v: &[Duration]) -> (Duration, Duration) {
    (
        v.iter().copied().min().unwrap(),
        v.iter().copied().max().unwrap(),
    )
}
