//! `cargo bench -p strata-serve --bench remote`: what the wire costs.
//!
//! 1. Status over loopback: 2,000 calls from 1 client, then 2,000 calls from each of 8
//!    concurrent clients (each its own connection); p50 and p99 latency.
//! 2. A 100-migration Migrate (test database, then real database) run locally through the
//!    library, and the same run over gRPC on a fresh copy, in rotated rounds (odd rounds local
//!    first, even rounds remote first, so neither always runs on a warmer or busier machine);
//!    the median of each and the ratio of each round, `STRATA_BENCH_ROUNDS` rounds (default 6;
//!    0 measures Status only). Each run also notes when its first and last progress events
//!    arrived, so the extra time of a remote run splits into before the first event (the call,
//!    the run's start), between (the steps and their events) and after the last (the report).
//!
//! For profiling: `STRATA_BENCH_STATUS=0` skips part 1, `STRATA_BENCH_ONLY=local` (or `remote`)
//! runs only that kind of Migrate in part 2.
//!
//! The server runs in this process on 127.0.0.1 (port 0), the real `StrataService` behind the
//! real tonic server, so the figures are the engine plus gRPC plus loopback TCP.

use std::path::Path;
use std::time::{Duration, Instant};

use strata_engine::Project;
use strata_engine::commands::migrate::{self, MigrateOptions};
use strata_serve::auth::Token;
use strata_serve::client::{Client, ClientOptions};
use strata_serve::{StrataService, server};

const TOKEN: &str = "bench-token-0123456789abcdef";

fn project(dir: &Path, migrations: usize) -> Project {
    for i in 0..migrations {
        let stamp = format!(
            "2024{:02}{:02}T{:02}0000Z",
            1 + i / 28 % 12,
            1 + i % 28,
            i / 336
        );
        let m = dir.join(format!("migrations/m{}/{stamp}-step", i % 5));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("do.sql"),
            format!(
                "CREATE TABLE t{i}(id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n\
                 INSERT INTO t{i}(v) VALUES ('a'), ('b'), ('c');\n\
                 CREATE INDEX t{i}_v ON t{i}(v);\n"
            ),
        )
        .unwrap();
    }
    // Written to disk before any run starts: else the first fsync of a run that starts right
    // away (the local one) also pays for the tree's files, and one started later does not.
    // SAFETY: sync() takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Project::open(dir.to_path_buf()).unwrap()
}

async fn start(project: Project) -> (String, tokio::sync::oneshot::Sender<()>) {
    let service = StrataService::new(project, Token::new(TOKEN).unwrap());
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server::serve(service, listener, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (url, stop)
}

async fn client(url: &str) -> Client {
    let mut opts = ClientOptions::new(url);
    opts.token = Some(TOKEN.into());
    Client::connect(opts).await.unwrap()
}

/// CPU time used by this process so far, every thread's (user + system, to the nanosecond):
/// a figure other processes' load does not inflate the way it inflates wall time.
fn cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for clock_gettime to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } == 0;
    assert!(ok, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn status_latency(url: &str, clients: usize, calls: usize) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut c = client(url).await;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                c.status().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

/// One Migrate run: wall and CPU time, and when its first and last events arrived (after
/// the start).
#[derive(Clone, Copy, Default)]
struct Run {
    wall: Duration,
    cpu: Duration,
    first_event: Duration,
    last_event: Duration,
}

/// Notes the arrival of each event.
struct Arrivals {
    start: Instant,
    first: Option<Duration>,
    last: Duration,
    events: usize,
}

impl Arrivals {
    fn new() -> Self {
        Arrivals {
            start: Instant::now(),
            first: None,
            last: Duration::ZERO,
            events: 0,
        }
    }

    fn event(&mut self) {
        let at = self.start.elapsed();
        self.first.get_or_insert(at);
        self.last = at;
        self.events += 1;
    }

    fn run(&self, cpu: Duration) -> Run {
        Run {
            wall: self.start.elapsed(),
            cpu,
            first_event: self.first.unwrap_or_default(),
            last_event: self.last,
        }
    }
}

/// 100 migrations applied through the library on a fresh project.
fn migrate_local() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let p = project(dir.path(), 100);
    let cpu = cpu_time();
    let mut seen = Arrivals::new();
    let r = tokio::task::block_in_place(|| {
        migrate::migrate(&p, &MigrateOptions::default(), &mut |_| seen.event()).unwrap()
    });
    let run = seen.run(cpu_time() - cpu);
    assert_eq!(r.phases.last().unwrap().applied.len(), 100);
    run
}

/// The same over gRPC, on a fresh project served in this process.
async fn migrate_remote() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let p = project(dir.path(), 100);
    let (url, stop) = start(p).await;
    let mut c = client(&url).await;
    let cpu = cpu_time();
    let mut seen = Arrivals::new();
    let r = c
        .migrate(&MigrateOptions::default(), &mut |_| seen.event())
        .await
        .unwrap();
    let run = seen.run(cpu_time() - cpu);
    assert_eq!(r.phases.last().unwrap().applied.len(), 100);
    assert!(
        seen.events > 400,
        "every step's events arrive ({})",
        seen.events
    );
    let _ = stop.send(());
    run
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    runtime.block_on(async {
        if env("STRATA_BENCH_STATUS") != "0" {
            status_part().await;
        }
        let rounds: usize = env("STRATA_BENCH_ROUNDS").parse().unwrap_or(6);
        migrate_part(rounds, &env("STRATA_BENCH_ONLY")).await;
    });
}

/// Part 1: Status latency, on a migrated project of 10 migrations.
async fn status_part() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(dir.path(), 10);
    migrate::migrate(&p, &MigrateOptions::default(), &mut |_| {}).unwrap();
    let db = p.db.file().expect("a SQLite project").to_path_buf();
    let (url, stop) = start(p).await;
    status_latency(&url, 1, 100).await; // warm up
    for clients in [1, 8] {
        let cpu = cpu_time();
        let lat = status_latency(&url, clients, 2000).await;
        let cpu = cpu_time() - cpu;
        println!(
            "Status, {clients} client(s) x 2000 calls: p50 {}, p99 {}, max {}; CPU (server and \
             clients) {:.0} us per call",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap()),
            cpu.as_secs_f64() * 1e6 / lat.len() as f64
        );
    }
    // The answer cannot be reused: another connection committed before every call.
    let writer = rusqlite::Connection::open(&db).unwrap();
    let mut c = client(&url).await;
    let mut lat = Vec::new();
    writer.execute_batch("CREATE TABLE bench_touch(n)").unwrap();
    for _ in 0..200 {
        writer
            .execute("INSERT INTO bench_touch VALUES (1)", [])
            .unwrap();
        let t = Instant::now();
        c.status().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "Status after a commit by another connection (computed afresh), 1 client x 200 calls: \
         p50 {}, p99 {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
    );
    let _ = stop.send(());
}

/// Part 2: 100 migrations, local vs remote, in rotated rounds; `only` (`local` or `remote`)
/// runs just that kind.
async fn migrate_part(rounds: usize, only: &str) {
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (l, r) = match only {
            "local" => (migrate_local(), Run::default()),
            "remote" => (Run::default(), migrate_remote().await),
            _ if round % 2 == 0 => {
                let l = migrate_local();
                (l, migrate_remote().await)
            }
            _ => {
                let r = migrate_remote().await;
                (migrate_local(), r)
            }
        };
        println!(
            "  round {}: local {}, remote {} ({:+.1}%)",
            round + 1,
            ms(l.wall),
            ms(r.wall),
            (r.wall.as_secs_f64() / l.wall.as_secs_f64() - 1.0) * 100.0
        );
        local.push(l);
        remote.push(r);
    }
    if rounds == 0 || !only.is_empty() {
        return;
    }
    let mut ratios: Vec<f64> = local
        .iter()
        .zip(&remote)
        .map(|(l, r)| r.wall.as_secs_f64() / l.wall.as_secs_f64() - 1.0)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let med = |runs: &[Run], f: fn(&Run) -> Duration| median(runs.iter().map(f).collect());
    let (l, r) = (med(&local, |r| r.wall), med(&remote, |r| r.wall));
    println!(
        "Migrate, 100 migrations (rehearsal + apply), {rounds} rotated rounds: median local {}, \
         median remote {} ({:+.1}%); per round {:+.1}% to {:+.1}%",
        ms(l),
        ms(r),
        (r.as_secs_f64() / l.as_secs_f64() - 1.0) * 100.0,
        ratios[0] * 100.0,
        ratios[ratios.len() - 1] * 100.0
    );
    let (lc, rc) = (med(&local, |r| r.cpu), med(&remote, |r| r.cpu));
    println!(
        "  CPU time of the process (server and client alike), median: local {}, remote {} \
         ({:+.1}%)",
        ms(lc),
        ms(rc),
        (rc.as_secs_f64() / lc.as_secs_f64() - 1.0) * 100.0
    );
    for (name, runs) in [("local", &local), ("remote", &remote)] {
        println!(
            "  {name}, median: first event at {}, last event at {}, done {} after the last event",
            ms(med(runs, |r| r.first_event)),
            ms(med(runs, |r| r.last_event)),
            ms(med(runs, |r| r.wall - r.last_event)),
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
