//! The sandbox: runs a migration's WebAssembly components (transform, seed, check) on the step's
//! connection, with no capability but the `sql` and `log` imports, under fuel, memory and
//! wall-clock limits, and with the tables migration.toml declares enforced by the database:
//! SQLite's authorizer ([`Sandbox::call`], `sqlite`, `guard`) or a PostgreSQL role made for the
//! call ([`Sandbox::call_postgres`], `postgres`). What a call does besides the SQL is written once
//! (`run`, `Ended::conclude`) for both.
//!
//! One long-lived wasmtime [`Engine`] per process; a fresh `Store` per call whose data holds that
//! call's connection, capabilities and limits. A call never leaves the connection behind: it is
//! moved into the store and back out, whatever the component does. On SQLite, around the call the
//! connection's statement cache is emptied (SQLite authorizes at prepare time, so a cached
//! host statement must never be reused by a component), SQLite's defensive mode is on, and
//! the largest string, blob or row SQLite will make is the component's memory budget; after
//! it, [`guard::verify`] checks what the authorizer alone cannot. This module does not decide
//! when components run (that is `step`), and does not open transactions.

pub(crate) mod bindings;
mod cache;
pub mod compile;
pub(crate) mod host;
pub use host::{escape_controls, escape_controls_keeping_lines, is_hidden};
pub mod limits;
pub mod policy;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::components::limits::Limits;
pub use cache::Location as CacheLocation;
pub(crate) use host::HostState;
pub use host::LogLine;
pub use policy::Policy;

/// The kind of component, by the WIT world it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Transform,
    Seed,
    Check,
}

impl World {
    /// The world's name in `sdk/wit`.
    pub fn name(self) -> &'static str {
        match self {
            World::Transform => "transform",
            World::Seed => "seed",
            World::Check => "check",
        }
    }

    /// The function the world exports.
    pub fn export(self) -> &'static str {
        match self {
            World::Transform => "run",
            World::Seed => "seed",
            World::Check => "check",
        }
    }
}

/// One component call.
pub struct Call<'a> {
    pub world: World,
    /// The component's bytes.
    pub wasm: &'a [u8],
    /// The sha256 of `wasm` when the caller has it already (a step's pinned manifest hashed
    /// these very bytes), so the sandbox need not hash them again (milliseconds for a Python
    /// component's 18 MB); `None`: the sandbox hashes them. It must be the hash of `wasm`: the
    /// compile cache finds the compiled component by it.
    pub sha256: Option<[u8; 32]>,
    pub limits: Limits,
    pub policy: Policy,
    /// For a seed: the JSON text of its parameters.
    pub seed_params: &'a str,
    /// Rows written so far, counted while the component runs.
    pub progress: Arc<AtomicU64>,
}

/// What a call that did not fail reports.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Fuel the component burned: deterministic for the same component and data.
    pub fuel_used: u64,
    /// Rows the component's statements changed.
    pub rows_changed: u64,
    /// The largest linear memory the component reached, in bytes.
    pub memory_peak_bytes: usize,
    pub logs: Vec<LogLine>,
}

/// What a call did, and whether it failed. The outcome (fuel, rows, logs) is there either way,
/// so a failing component's logs reach the user too.
#[derive(Debug)]
pub struct Called {
    pub outcome: Outcome,
    pub result: Result<(), ComponentError>,
}

/// Why a component call failed. Every case leaves the connection in the caller's hands; the
/// caller rolls the step back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    #[error(
        "the file is not a valid WebAssembly component ({reason}); rebuild it with `strata build`"
    )]
    Invalid { reason: String },
    #[error(
        "{reason}; split its largest functions into smaller ones (or build the guest with \
         optimizations)"
    )]
    CompileBound { reason: String },
    #[error(
        "the component does not implement world `{expected}` (it must export `{export}`): {reason}; \
         check which world the guest crate exports, and that the file is in the right place \
         (transform.wasm, seed.wasm or check.wasm)",
        expected = .world.name(),
        export = .world.export()
    )]
    WrongWorld { world: World, reason: String },
    #[error(
        "the component imports `{import}`, which strata does not offer: a component gets only \
         {} (no WASI: no files, clock, randomness or network); build it for \
         wasm32-unknown-unknown against this strata's strata-sdk with `strata build`",
        OFFERED.join(" and ")
    )]
    Import { import: String },
    #[error(
        "fuel limit exhausted: the component used all {limit} units of fuel; raise `fuel` under [sandbox] in migration.toml (at most strata.toml's) if it needs more"
    )]
    Fuel { limit: u64 },
    #[error(
        "memory limit exceeded: the component tried to grow past {mib} MiB of linear memory; raise `memory_mib` under [sandbox] in migration.toml (at most strata.toml's) if it needs more"
    )]
    Memory { mib: u64 },
    #[error("wall-clock timeout: the component ran longer than {secs} s{}; raise `timeout_s` under [sandbox] in migration.toml (at most strata.toml's) if it needs more", if *.in_sql { " (stopped inside a SQL statement)" } else { "" })]
    Timeout { secs: u64, in_sql: bool },
    #[error("the sandbox refused a statement: {reason}")]
    Denied { reason: String },
    #[error("sandbox limit exceeded: {reason}")]
    Limit { reason: String },
    #[error("the sandbox could not be set up on the connection: {reason}")]
    Setup { reason: String },
    #[error("the component trapped: {message}")]
    Trap { message: String },
    #[error("the component returned an error: {message}")]
    Failed { message: String },
    #[error("the check found {} violation{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n"))]
    Violations(Vec<String>),
}

/// The interfaces a component may import: the host API of `sdk/wit`, nothing else.
pub const OFFERED: &[&str] = &["strata:migrate/sql@0.1.0", "strata:migrate/log@0.1.0"];

/// The process's wasmtime engine and linker, the compile cache, and the components this
/// sandbox has loaded.
pub struct Sandbox {
    engine: Engine,
    /// One linker per kind of host database (`HostState<D>` for each backend's `D`), made
    /// the first time a call on that backend needs it.
    linkers: std::sync::Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    cache: cache::Cache,
    /// Each component once per sandbox, by the sha256 of its bytes: compiled or read from the
    /// compile cache (and its tag checked) once, its imports resolved against the linker once,
    /// so a second call only instantiates.
    loaded: std::sync::Mutex<HashMap<[u8; 32], Arc<Loaded>>>,
}

/// A component ready to instantiate.
pub(crate) struct Loaded {
    component: Component,
    /// The component pre-instantiated against each backend's linker, made the first time a
    /// step on that backend calls it; `None` when its imports do not resolve, and then each
    /// call instantiates from `component` to report why.
    pres: std::sync::Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// A kind of database a component's calls reach: `HostState<D>` implements the host API
/// (`sql` and `log`) for it. Each backend's component host is one (`crate::sqlite::component`,
/// `crate::postgres::component`).
pub(crate) trait HostDb: Sized + 'static {}

impl<D: 'static> HostDb for D where HostState<D>: bindings::sql::Host + bindings::sql::HostCursor {}

/// The configuration of the engine components are compiled and run with (the compile child
/// of [`compile`] uses the same, so its code loads here).
fn engine_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .wasm_features(wasmtime::WasmFeatures::THREADS, false)
        .max_wasm_stack(1 << 20);
    config
}

impl Sandbox {
    /// A sandbox whose compiled components are cached at `cache` (none: no cache), usually
    /// [`CacheLocation::for_user`].
    pub fn new(cache: Option<CacheLocation>) -> wasmtime::Result<Sandbox> {
        let engine = Engine::new(&engine_config())?;
        let cache = cache::Cache::new(&engine, cache);
        Ok(Sandbox {
            engine,
            linkers: std::sync::Mutex::new(HashMap::new()),
            cache,
            loaded: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The component for `wasm`: from this sandbox if it loaded it before, else from the
    /// compile cache (or compiled), pre-instantiated against the linker.
    fn load(&self, wasm: &[u8], sha256: Option<[u8; 32]>) -> wasmtime::Result<Arc<Loaded>> {
        let digest: [u8; 32] = sha256.unwrap_or_else(|| Sha256::digest(wasm).into());
        let loaded = || self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = loaded().get(&digest) {
            return Ok(Arc::clone(l));
        }
        let component = self.cache.load_digested(&self.engine, wasm, &digest)?;
        let l = Arc::new(Loaded {
            component,
            pres: std::sync::Mutex::new(HashMap::new()),
        });
        loaded().insert(digest, Arc::clone(&l));
        Ok(l)
    }

    /// What a component imports that strata does not offer (anything but [`OFFERED`]).
    fn foreign_imports(&self, component: &Component) -> Vec<String> {
        component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .filter(|name| !OFFERED.contains(&name.as_str()))
            .collect()
    }

    /// Why the compile cache is off although a location was given (a folder or key that is not
    /// private to this user); components are then compiled on every run.
    pub fn cache_problem(&self) -> Option<&str> {
        self.cache.problem()
    }

    /// The names a component exports, to tell which world it implements (`sha256` as in
    /// [`Call::sha256`]).
    pub fn exports(&self, wasm: &[u8], sha256: Option<[u8; 32]>) -> wasmtime::Result<Vec<String>> {
        let loaded = self.load(wasm, sha256)?;
        let ty = loaded.component.component_type();
        Ok(ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect())
    }

    /// The host API offered on a database of kind `D`.
    fn linker<D>(&self) -> wasmtime::Result<Arc<Linker<HostState<D>>>>
    where
        D: HostDb,
        HostState<D>: bindings::sql::Host + bindings::sql::HostCursor,
    {
        let mut linkers = self.linkers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = linkers.get(&TypeId::of::<D>())
            && let Ok(l) = Arc::clone(l).downcast::<Linker<HostState<D>>>()
        {
            return Ok(l);
        }
        let mut linker = Linker::new(&self.engine);
        add_to_linker(&mut linker)?;
        let linker = Arc::new(linker);
        linkers.insert(TypeId::of::<D>(), linker.clone());
        Ok(linker)
    }

    /// Runs `loaded` (of `call`) on a database of kind `D` held in `state`, pre-instantiated
    /// against `D`'s linker the first time: what each backend's call does between its own
    /// setup and teardown.
    pub(crate) fn run_on<D>(
        &self,
        state: HostState<D>,
        loaded: &Loaded,
        call: &Call<'_>,
    ) -> (HostState<D>, Invoked, u64)
    where
        D: HostDb,
        HostState<D>: bindings::sql::Host + bindings::sql::HostCursor,
    {
        let linker = match self.linker::<D>() {
            Ok(l) => l,
            Err(e) => return (state, Err(Invoke::Instantiate(e)), 0),
        };
        let pre = {
            let mut pres = loaded.pres.lock().unwrap_or_else(|e| e.into_inner());
            let found = pres.get(&TypeId::of::<D>()).and_then(|p| {
                Arc::clone(p)
                    .downcast::<Option<InstancePre<HostState<D>>>>()
                    .ok()
            });
            match found {
                Some(p) => p,
                None => {
                    let p = Arc::new(linker.instantiate_pre(&loaded.component).ok());
                    pres.insert(TypeId::of::<D>(), p.clone());
                    p
                }
            }
        };
        self.run(
            state,
            &linker,
            pre.as_ref().as_ref(),
            &loaded.component,
            call,
        )
    }

    /// The component of `call`, loaded and its imports checked; or the failed call.
    pub(crate) fn prepare(&self, call: &Call<'_>) -> Result<Arc<Loaded>, Called> {
        let failed = |e: ComponentError| Called {
            outcome: Outcome::default(),
            result: Err(e),
        };
        let loaded = self.load(call.wasm, call.sha256).map_err(|e| {
            failed(match e.downcast_ref::<compile::Bounded>() {
                Some(bound) => ComponentError::CompileBound {
                    reason: bound.0.clone(),
                },
                None => ComponentError::Invalid {
                    reason: first_line(&e),
                },
            })
        })?;
        if let Some(import) = self.foreign_imports(&loaded.component).pop() {
            return Err(failed(ComponentError::Import { import }));
        }
        Ok(loaded)
    }

    /// Runs the component in a fresh store whose data is `state`, under the call's fuel,
    /// memory and wall-clock limits; gives the state back with the result and the fuel left.
    fn run<D: 'static>(
        &self,
        state: HostState<D>,
        linker: &Linker<HostState<D>>,
        pre: Option<&InstancePre<HostState<D>>>,
        component: &Component,
        call: &Call<'_>,
    ) -> (HostState<D>, Invoked, u64) {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(call.limits.fuel).expect("fuel is enabled");
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
        let watchdog = Watchdog::start(
            self.engine.clone(),
            Duration::from_secs(call.limits.timeout_s),
        );
        let result = invoke(&mut store, component, linker, pre, call);
        watchdog.stop();
        let fuel_left = store.get_fuel().unwrap_or(0);
        (store.into_data(), result, fuel_left)
    }
}

/// What the guest's export returned (a check's violations; empty for other worlds), or why it
/// could not be instantiated or called.
pub(crate) type Invoked = Result<Result<Vec<String>, String>, Invoke>;

/// What a component call left behind, from either backend, before it is judged.
pub(crate) struct Ended {
    pub(crate) fuel_left: u64,
    pub(crate) limiter: host::Limiter,
    /// A host-side limit that tripped.
    pub(crate) host_limit: Option<String>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) rows_changed: u64,
    /// Whether the wall-clock timeout stopped a SQL statement.
    pub(crate) timed_out_in_sql: bool,
    /// Why a statement was refused, if one was.
    pub(crate) denied: Option<String>,
    /// Why putting the connection back as it was failed, if it did.
    pub(crate) cleanup: Option<String>,
}

impl Ended {
    pub(crate) fn conclude(
        self,
        call: &Call<'_>,
        result: Result<Result<Vec<String>, String>, Invoke>,
    ) -> Called {
        let outcome = Outcome {
            fuel_used: call.limits.fuel - self.fuel_left,
            rows_changed: self.rows_changed,
            memory_peak_bytes: self.limiter.peak_bytes,
            logs: self.logs,
        };
        // A tripped limit or a refused statement fails the step even if the guest caught the
        // error and carried on: limits and capabilities are not the guest's to waive.
        let result = if self.limiter.tripped {
            Err(ComponentError::Memory {
                mib: call.limits.memory_mib,
            })
        } else if self.timed_out_in_sql {
            Err(ComponentError::Timeout {
                secs: call.limits.timeout_s,
                in_sql: true,
            })
        } else if let Some(reason) = self.host_limit {
            Err(ComponentError::Limit {
                reason: host::bounded_message(&reason),
            })
        } else if let Some(reason) = self.denied {
            // The reason can quote names from the component's SQL.
            Err(ComponentError::Denied {
                reason: host::bounded_message(&reason),
            })
        } else if let Some(reason) = self.cleanup {
            Err(ComponentError::Setup { reason })
        } else {
            match result {
                Ok(Ok(violations)) if violations.is_empty() => Ok(()),
                Ok(Ok(violations)) => {
                    let mut kept: Vec<String> = violations
                        .iter()
                        .take(host::MAX_VIOLATIONS)
                        .map(|v| host::bounded_message(v))
                        .collect();
                    if violations.len() > host::MAX_VIOLATIONS {
                        kept.push(format!(
                            "... and {} more violation(s) not kept",
                            violations.len() - host::MAX_VIOLATIONS
                        ));
                    }
                    Err(ComponentError::Violations(kept))
                }
                Ok(Err(message)) => Err(ComponentError::Failed {
                    message: host::bounded_message(&message),
                }),
                Err(Invoke::Instantiate(e)) if is_resource_limit(&e) => {
                    Err(ComponentError::Limit {
                        reason: format!(
                            "{} (a component may create at most {} core instances, {} tables \
                             and {} memories)",
                            first_line(&e),
                            host::MAX_INSTANCES,
                            host::MAX_TABLES,
                            host::MAX_MEMORIES
                        ),
                    })
                }
                Err(Invoke::Instantiate(e)) => Err(ComponentError::WrongWorld {
                    world: call.world,
                    reason: first_line(&e),
                }),
                Err(Invoke::Call(e)) => Err(classify_trap(&e, &call.limits, &outcome.logs)),
            }
        };
        Called { outcome, result }
    }
}

/// Instantiates the component in its world and calls the export; a check's violations come
/// back as the list, other worlds give an empty one.
fn invoke<T: 'static>(
    store: &mut Store<T>,
    component: &Component,
    linker: &Linker<T>,
    pre: Option<&InstancePre<T>>,
    call: &Call<'_>,
) -> Invoked {
    use bindings::check::{Check, CheckPre};
    use bindings::seed::{Seed, SeedPre};
    use bindings::transform::{Transform, TransformPre};
    match call.world {
        World::Transform => {
            let w = match pre {
                Some(pre) => {
                    TransformPre::new(pre.clone()).and_then(|p| p.instantiate(&mut *store))
                }
                None => Transform::instantiate(&mut *store, component, linker),
            }
            .map_err(Invoke::Instantiate)?;
            w.call_run(store)
                .map_err(Invoke::Call)
                .map(|r| r.map(|()| Vec::new()))
        }
        World::Seed => {
            let w = match pre {
                Some(pre) => SeedPre::new(pre.clone()).and_then(|p| p.instantiate(&mut *store)),
                None => Seed::instantiate(&mut *store, component, linker),
            }
            .map_err(Invoke::Instantiate)?;
            w.call_seed(store, call.seed_params)
                .map_err(Invoke::Call)
                .map(|r| r.map(|()| Vec::new()))
        }
        World::Check => {
            let w = match pre {
                Some(pre) => CheckPre::new(pre.clone()).and_then(|p| p.instantiate(&mut *store)),
                None => Check::instantiate(&mut *store, component, linker),
            }
            .map_err(Invoke::Instantiate)?;
            w.call_check(store).map_err(Invoke::Call)
        }
    }
}

/// Offers the host API (`sql` and `log`, the same for every world) to components on `linker`.
fn add_to_linker<D: 'static>(linker: &mut Linker<HostState<D>>) -> wasmtime::Result<()>
where
    HostState<D>: bindings::sql::Host + bindings::sql::HostCursor,
{
    bindings::transform::Transform::add_to_linker::<HostState<D>, HasSelf<HostState<D>>>(
        linker,
        |s| s,
    )
}

/// Whether wasmtime refused an instantiation for a count limit of the store.
fn is_resource_limit(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().contains("resource limit exceeded"))
}

pub(crate) enum Invoke {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// A one-line account of a wasmtime error: the trap or the root cause, and where in the guest
/// it happened when the component kept its name section.
fn first_line(e: &wasmtime::Error) -> String {
    let what = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string(),
    };
    let what = what.lines().next().unwrap_or_default().to_string();
    let frames: Vec<String> = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .filter_map(|f| f.func_name())
                .take(3)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if frames.is_empty() {
        what
    } else {
        format!("{what}, in {}", frames.join(" < "))
    }
}

fn classify_trap(e: &wasmtime::Error, limits: &Limits, logs: &[LogLine]) -> ComponentError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ComponentError::Fuel { limit: limits.fuel },
        Some(Trap::Interrupt) => ComponentError::Timeout {
            secs: limits.timeout_s,
            in_sql: false,
        },
        Some(Trap::StackOverflow) => ComponentError::Trap {
            message: "stack overflow (recursion too deep)".into(),
        },
        _ => {
            // A guest panic arrives as a bare trap; the SDK logs the panic message first.
            let panic = logs
                .iter()
                .rev()
                .find(|l| l.level == "error")
                .map(|l| l.message.clone());
            let trap = first_line(e);
            ComponentError::Trap {
                message: match panic {
                    Some(p) => format!("{p} ({trap})"),
                    None => trap,
                },
            }
        }
    }
}

/// Bumps the engine's epoch once the timeout passes, unless stopped first. Stopping does not
/// wait for the thread (on a loaded machine, waiting for it to be scheduled and exit cost
/// milliseconds per call): the flag, checked under its lock before the bump, guarantees that
/// no bump happens once `stop` has returned, so a later call on the same engine is never
/// interrupted by this one's watchdog.
struct Watchdog {
    stop: mpsc::Sender<()>,
    stopped: Arc<std::sync::Mutex<bool>>,
}

impl Watchdog {
    fn start(engine: Engine, timeout: Duration) -> Self {
        let (stop, signal) = mpsc::channel::<()>();
        let stopped = Arc::new(std::sync::Mutex::new(false));
        let flag = Arc::clone(&stopped);
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = signal.recv_timeout(timeout) {
                let stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                if !*stopped {
                    engine.increment_epoch();
                }
            }
        });
        Watchdog { stop, stopped }
    }

    fn stop(self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        let _ = self.stop.send(());
    }
}
