//! Running one guest: compile, link (WASI preview 1 + famfs:dataset), instantiate, call, and
//! turn whatever happened into an [`Outcome`] with a typed [`RunError`].

use crate::engine::SandboxEngine;
use crate::limits::{Limiter, Limits};
use famfs_host_api::{Catalog, DatasetHost, DatasetView, MediaError};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;
use wasmtime::{Linker, Module, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Why an invocation failed. Each variant is one line for people and a `kind` for programs.
#[derive(Debug, Clone, Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunError {
    /// The bytes are not a valid WebAssembly module.
    #[error("cannot compile the module: {message}")]
    Compile {
        /// What the compiler said.
        message: String,
    },
    /// A component was given to the core-module runner.
    #[error(
        "this is a WebAssembly component; famfs-run runs core modules (wasm32-wasip1) for now, components come with the components work"
    )]
    Component,
    /// The module imports something the host does not provide.
    #[error("cannot link the module: {message}")]
    Link {
        /// What is missing.
        message: String,
    },
    /// The run was set up wrong (a directory that cannot be opened, ...).
    #[error("{message}")]
    Setup {
        /// What is wrong.
        message: String,
    },
    /// The time limit passed.
    #[error("the guest ran out of time (limit {limit_ms} ms)")]
    Timeout {
        /// The limit.
        limit_ms: u64,
    },
    /// The fuel budget was used up.
    #[error("the guest ran out of fuel (budget {fuel})")]
    FuelExhausted {
        /// The budget.
        fuel: u64,
    },
    /// The guest asked for more memory than allowed.
    #[error(
        "the guest hit its memory limit of {limit} bytes (it asked for {requested}); raise --max-memory or map smaller windows"
    )]
    MemoryLimit {
        /// The limit.
        limit: u64,
        /// The size refused.
        requested: u64,
    },
    /// The guest's call stack overflowed.
    #[error("the guest overflowed its call stack (unbounded recursion?)")]
    StackOverflow,
    /// The memory behind a mapped dataset failed.
    #[error("{0}")]
    Media(#[serde(serialize_with = "ser_display")] MediaError),
    /// The guest trapped.
    #[error("the guest trapped: {message}")]
    Trap {
        /// The trap and where.
        message: String,
    },
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// What an invocation measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Wall time of the whole invocation (set-up, instantiation, run, teardown), milliseconds.
    pub wall_ms: f64,
    /// Instantiation time (linking, memory set-up), milliseconds.
    pub instantiate_ms: f64,
    /// Time in the guest, milliseconds.
    pub run_ms: f64,
    /// Fuel consumed, when fuel is counted.
    pub fuel_used: Option<u64>,
    /// Dataset bytes mapped zero-copy.
    pub bytes_mapped: u64,
    /// Largest linear memory size, bytes.
    pub peak_memory: u64,
}

/// How the guest's standard output and error are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// The host process's own.
    Inherit,
    /// Captured into the [`Outcome`] (up to 64 MiB each).
    Capture,
}

/// One invocation of a command guest (`_start`).
pub struct Invocation {
    /// `argv[0]` as the guest sees it.
    pub program: String,
    /// Further arguments.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Datasets granted through famfs:dataset.
    pub catalog: Catalog,
    /// Read-only WASI preopens: (guest path, host directory).
    pub dirs: Vec<(String, PathBuf)>,
    /// Limits.
    pub limits: Limits,
    /// Stdio handling.
    pub stdio: Stdio,
}

/// What came of an invocation.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The guest's exit code (0 if `_start` returned), or why it failed.
    #[serde(serialize_with = "ser_result")]
    pub result: Result<i32, RunError>,
    /// Measurements.
    pub metrics: Metrics,
    /// Captured standard output.
    #[serde(skip)]
    pub stdout: Option<Vec<u8>>,
    /// Captured standard error.
    #[serde(skip)]
    pub stderr: Option<Vec<u8>>,
}

fn ser_result<S: serde::Serializer>(r: &Result<i32, RunError>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Ok {
        exit_code: i32,
    }
    #[derive(Serialize)]
    struct Err<'a> {
        error: &'a RunError,
        message: String,
    }
    match r {
        Result::Ok(code) => Ok { exit_code: *code }.serialize(s),
        Result::Err(e) => Err { error: e, message: e.to_string() }.serialize(s),
    }
}

/// The store data of a core-module invocation.
struct HostState {
    wasi: WasiP1Ctx,
    datasets: DatasetHost,
    limiter: Limiter,
}

impl DatasetView for HostState {
    fn dataset_host(&mut self) -> &mut DatasetHost {
        &mut self.datasets
    }
}

/// Whether `bytes` is a component rather than a core module (the preamble's layer field).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// Compiles a core module.
pub fn compile(engine: &SandboxEngine, bytes: &[u8]) -> Result<Module, RunError> {
    if is_component(bytes) {
        return Err(RunError::Component);
    }
    Module::new(engine.engine(), bytes).map_err(|e| RunError::Compile { message: format!("{e:#}") })
}

/// A linker with WASI preview 1 and famfs:dataset, reusable across invocations.
pub fn linker(engine: &SandboxEngine) -> wasmtime::Result<Linker<HostStateHandle>> {
    let mut linker: Linker<HostStateHandle> = Linker::new(engine.engine());
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut HostStateHandle| &mut h.0.wasi)?;
    // SAFETY: every engine famfs-run builds (`SandboxEngine::new`) has memory_may_move(false)
    // and the default on-demand allocator, as add_to_linker requires.
    unsafe { famfs_host_api::core_abi::add_to_linker(&mut linker)? };
    Ok(linker)
}

/// The store data type of the core-module runner (opaque).
pub struct HostStateHandle(HostState);

impl DatasetView for HostStateHandle {
    fn dataset_host(&mut self) -> &mut DatasetHost {
        self.0.dataset_host()
    }
}

fn build_wasi(inv: &Invocation, out: Option<(&MemoryOutputPipe, &MemoryOutputPipe)>) -> Result<WasiP1Ctx, RunError> {
    let mut b = WasiCtxBuilder::new();
    // Before preopened_dir: file I/O then runs on this thread (pread straight into guest memory).
    b.allow_blocking_current_thread(true);
    b.arg(&inv.program).args(&inv.args);
    for (k, v) in &inv.env {
        b.env(k, v);
    }
    match out {
        Some((o, e)) => {
            b.stdout(o.clone()).stderr(e.clone());
        }
        None => {
            b.inherit_stdout().inherit_stderr();
        }
    }
    b.inherit_stdin();
    for (guest, host) in &inv.dirs {
        b.preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| RunError::Setup { message: format!("cannot expose {} as {guest}: {e:#}", host.display()) })?;
    }
    Ok(b.build_p1())
}

const CAPTURE_LIMIT: usize = 64 << 20;

/// Runs `module`'s `_start` once, in a fresh store.
pub fn run(engine: &SandboxEngine, linker: &Linker<HostStateHandle>, module: &Module, inv: Invocation) -> Outcome {
    let t0 = Instant::now();
    let mut metrics = Metrics::default();
    let pipes = (inv.stdio == Stdio::Capture)
        .then(|| (MemoryOutputPipe::new(CAPTURE_LIMIT), MemoryOutputPipe::new(CAPTURE_LIMIT)));
    let result = run_inner(engine, linker, module, &inv, pipes.as_ref().map(|(o, e)| (o, e)), &mut metrics);
    metrics.wall_ms = ms(t0.elapsed());
    let (stdout, stderr) = match pipes {
        Some((o, e)) => (Some(o.contents().to_vec()), Some(e.contents().to_vec())),
        None => (None, None),
    };
    Outcome { result, metrics, stdout, stderr }
}

fn run_inner(
    engine: &SandboxEngine,
    linker: &Linker<HostStateHandle>,
    module: &Module,
    inv: &Invocation,
    pipes: Option<(&MemoryOutputPipe, &MemoryOutputPipe)>,
    metrics: &mut Metrics,
) -> Result<i32, RunError> {
    let wasi = build_wasi(inv, pipes)?;
    let state = HostState { wasi, datasets: DatasetHost::new(inv.catalog.clone()), limiter: Limiter::new(&inv.limits) };
    let mut store = Store::new(engine.engine(), HostStateHandle(state));
    store.limiter(|h| &mut h.0.limiter);
    if let Some(fuel) = inv.limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| RunError::Setup { message: format!("{e:#}; build the engine with fuel counting") })?;
    } else if engine.options().fuel {
        store.set_fuel(u64::MAX).expect("fuel is enabled");
    }
    // "No timeout" is a deadline centuries away: wasmtime adds the current epoch to it.
    let ticks = inv.limits.timeout.map_or(u64::MAX / 4, |t| {
        u64::try_from(t.as_nanos() / crate::engine::EPOCH_TICK.as_nanos()).unwrap_or(u64::MAX / 4).max(1)
    });
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();

    let t0 = Instant::now();
    let instance = linker.instantiate(&mut store, module).map_err(|e| classify(e, &mut store, inv))?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(|_| RunError::Link {
        message: "the module exports no `_start` function (is it a wasm32-wasip1 command?)".into(),
    })?;
    metrics.instantiate_ms = ms(t0.elapsed());
    let t1 = Instant::now();
    let r = start.call(&mut store, ());
    metrics.run_ms = ms(t1.elapsed());
    let h = &mut store.data_mut().0;
    metrics.bytes_mapped = h.datasets.mapper().bytes_mapped();
    metrics.peak_memory = h.limiter.peak_memory as u64;
    let faults = h.datasets.take_media_errors();
    if engine.options().fuel {
        let left = store.get_fuel().unwrap_or(0);
        metrics.fuel_used = Some(inv.limits.fuel.unwrap_or(u64::MAX) - left);
    }
    // A media error outranks everything: whatever the guest computed read zeros.
    if let Some(f) = faults.into_iter().next() {
        return Err(RunError::Media(f));
    }
    match r {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(classify(e, &mut store, inv)),
        },
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn classify(e: wasmtime::Error, store: &mut Store<HostStateHandle>, inv: &Invocation) -> RunError {
    let denied = store.data().0.limiter.denied;
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunError::Timeout { limit_ms: inv.limits.timeout.map_or(0, |t| t.as_millis() as u64) },
        Some(Trap::OutOfFuel) => RunError::FuelExhausted { fuel: inv.limits.fuel.unwrap_or(0) },
        Some(Trap::StackOverflow) => RunError::StackOverflow,
        _ if denied.is_some() => {
            RunError::MemoryLimit { limit: inv.limits.max_memory, requested: denied.unwrap_or(0) as u64 }
        }
        Some(_) => RunError::Trap { message: format!("{e:#}") },
        None if format!("{e:#}").contains("unknown import") => RunError::Link { message: format!("{e:#}") },
        None => RunError::Trap { message: format!("{e:#}") },
    }
}
