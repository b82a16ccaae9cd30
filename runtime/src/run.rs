//! What one invocation is ([`Invocation`]) and what came of it ([`Outcome`], with a typed
//! [`RunError`]); the set-up shared by the core-module and component runners.

use crate::capture::CapturePipe;
use crate::engine::SandboxEngine;
use crate::limits::Limits;
use famfs_host_api::{Catalog, MappingFault, MediaError, fd_budget};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use wasmtime::{Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

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
    /// The invocation needs what only components have (the handler world, WASI files from a
    /// famfs image), but the program was loaded as a core module.
    #[error(
        "this invocation needs the guest as a component ({needs}); load it with `Program::load(.., as_component: true)`"
    )]
    NeedsComponent {
        /// What needs it.
        needs: String,
    },
    /// The guest lacks the export the invocation calls.
    #[error("{message}")]
    MissingExport {
        /// What is missing and what to do.
        message: String,
    },
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
    /// The invocation was cancelled ([`Cancel`], or its future was dropped).
    #[error("the invocation was cancelled")]
    Cancelled,
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
    /// The guest held more WASI resources (open files and directories, streams) than its cap.
    #[error(
        "the guest held more than {limit} WASI resources at once (open files, directories, streams); close what it no longer needs or raise limits.max_wasi_resources"
    )]
    WasiResources {
        /// `Limits::max_wasi_resources`.
        limit: usize,
    },
    /// The memory behind a mapped dataset failed.
    #[error("{0}")]
    Media(#[serde(serialize_with = "ser_media")] MediaError),
    /// The guest trapped.
    #[error("the guest trapped: {message}")]
    Trap {
        /// One line: the trap and where (the guest function and offset, when known).
        message: String,
        /// The wasm backtrace, innermost frame first, for `-v` and logs (not in the message).
        #[serde(skip_serializing_if = "Option::is_none")]
        backtrace: Option<String>,
    },
    /// A handler returned an error of its own (`handle` returned `err(message)`).
    #[error("the handler returned an error: {message}")]
    Handler {
        /// The guest's message.
        message: String,
    },
    /// The host failed while serving the guest (a resource of the process ran out: threads,
    /// file descriptors, memory maps). The invocation fails; the process goes on serving others.
    #[error("the host failed while running the guest: {message}")]
    Host {
        /// What failed.
        message: String,
    },
}

/// A media error as fields (`{"kind": "media", "dataset": .., "offset": ..}`): the variant's
/// tag needs a map to go into, which a bare string is not.
fn ser_media<S: serde::Serializer>(m: &MediaError, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields<'a> {
        dataset: &'a str,
        offset: u64,
    }
    Fields { dataset: &m.dataset, offset: m.offset }.serialize(s)
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
    /// Dataset bytes `map` copied instead: the partial units at the ends of a window on a
    /// device that maps only whole units (device-dax), placed so that they could not be mapped.
    pub bytes_copied: u64,
    /// Largest linear memory size, bytes.
    pub peak_memory: u64,
    /// Bytes of captured stdout and stderr dropped past [`Limits::max_output`](crate::Limits).
    pub output_dropped: u64,
}

/// How the guest's standard output and error are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// The host process's own.
    Inherit,
    /// Captured into the [`Outcome`] (up to [`Limits::max_output`](crate::Limits) each).
    Capture,
}

/// What an invocation calls.
#[derive(Clone, Debug, Default)]
pub enum Entry {
    /// The command's `main` (`_start`, or `wasi:cli/run` for a component).
    #[default]
    Command,
    /// The handler world's `handle(input) -> result<list<u8>, string>` (components only).
    Handle {
        /// The request bytes.
        input: Vec<u8>,
    },
}

/// One invocation of a guest.
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
    /// Read-only WASI preopens of directories inside a mount, opened beneath it when added
    /// ([`add_dir`](Self::add_dir)): (guest path, the open directory).
    pub mount_dirs: Vec<(String, std::sync::Arc<std::os::fd::OwnedFd>)>,
    /// Read-only WASI preopens served from the famfs image or dax device itself, no mount
    /// needed (components only; see [`crate::wasi_fs`]).
    pub famfs_dirs: Vec<(String, String)>,
    /// What to call.
    pub entry: Entry,
    /// Limits.
    pub limits: Limits,
    /// Stdio handling.
    pub stdio: Stdio,
    /// Cancels the invocation from another thread (checked every epoch tick, 10 ms).
    pub cancel: Option<Cancel>,
}

impl Invocation {
    /// A command invocation of a guest called `argv0`: no arguments, environment, datasets or
    /// directories; default [`Limits`]; output captured.
    pub fn new(argv0: impl Into<String>) -> Invocation {
        Invocation {
            program: argv0.into(),
            args: Vec::new(),
            env: Vec::new(),
            catalog: Catalog::empty(),
            dirs: Vec::new(),
            mount_dirs: Vec::new(),
            famfs_dirs: Vec::new(),
            entry: Entry::Command,
            limits: Limits::default(),
            stdio: Stdio::Capture,
            cancel: None,
        }
    }
}

impl Invocation {
    /// Adds a read-only WASI directory at `guest` for `path` of the run's source: with a famfs
    /// device (`on_device`), a famfs directory served from the image itself (checked when the
    /// run is set up); with a `mount`, a directory inside it, opened now beneath the mount
    /// without following any symbolic link (famfs has none: one planted in the tree could
    /// otherwise hand the guest any directory of the host); without either, a host directory.
    /// Errors are one line for the user.
    pub fn add_dir(
        &mut self,
        guest: impl Into<String>,
        path: &str,
        mount: Option<&std::path::Path>,
        on_device: bool,
    ) -> Result<(), String> {
        if on_device {
            self.famfs_dirs.push((guest.into(), path.to_string()));
            return Ok(());
        }
        if let Some(root) = mount {
            if std::path::Path::new(path)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir))
            {
                return Err(format!("{path} must stay inside the mount (no '..')"));
            }
            let dir = famfs_host_api::beneath::open_dir(root, path).map_err(|e| match e {
                famfs_host_api::ErrorCode::NotFound => {
                    format!("{path} is not a directory of the mount {}", root.display())
                }
                famfs_host_api::ErrorCode::NotPermitted => format!(
                    "{path} in the mount {} is a symbolic link or passes through one (not followed: famfs has none), or is not readable; name the directory itself",
                    root.display()
                ),
                _ => format!("cannot open {path} in the mount {}", root.display()),
            })?;
            self.mount_dirs.push((guest.into(), std::sync::Arc::new(dir)));
            return Ok(());
        }
        let host = PathBuf::from(path);
        if !host.is_dir() {
            return Err(format!("{} is not a directory", host.display()));
        }
        self.dirs.push((guest.into(), host));
        Ok(())
    }
}

/// A cancellation flag shared between an invocation and whoever may cancel it; cheap to clone.
///
/// ```
/// use famfs_runtime::Cancel;
///
/// let all = Cancel::new();
/// let one = all.child();
/// one.cancel();
/// assert!(one.is_cancelled() && !all.is_cancelled());
/// all.cancel();
/// assert!(all.child().is_cancelled());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Cancel(std::sync::Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: std::sync::atomic::AtomicBool,
    parent: Option<Cancel>,
}

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A new flag that also counts as raised when `self` is: cancelling the child leaves the
    /// parent alone.
    pub fn child(&self) -> Cancel {
        Cancel(std::sync::Arc::new(CancelInner { flag: Default::default(), parent: Some(self.clone()) }))
    }

    /// Cancels: the guest is interrupted within one epoch tick and the invocation fails with
    /// [`RunError::Cancelled`].
    pub fn cancel(&self) {
        self.0.flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called on this flag or a parent.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(std::sync::atomic::Ordering::Relaxed)
            || self.0.parent.as_ref().is_some_and(Cancel::is_cancelled)
    }
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
    /// What `handle` returned, for [`Entry::Handle`] invocations that succeeded.
    #[serde(skip)]
    pub reply: Option<Vec<u8>>,
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

/// Captured stdout and stderr of one invocation.
pub(crate) struct Pipes {
    pub(crate) stdout: CapturePipe,
    pub(crate) stderr: CapturePipe,
}

/// What a runner returns: the exit code and, for handlers, the reply.
pub(crate) type Ran = Result<(i32, Option<Vec<u8>>), RunError>;

/// Runs `body` with stdio set up as `inv` asks and wraps what it did into an [`Outcome`].
pub(crate) fn outcome(inv: &Invocation, body: impl FnOnce(Option<&Pipes>, &mut Metrics) -> Ran) -> Outcome {
    let t0 = std::time::Instant::now();
    let mut metrics = Metrics::default();
    let cap = inv.limits.max_output;
    let pipes =
        (inv.stdio == Stdio::Capture).then(|| Pipes { stdout: CapturePipe::new(cap), stderr: CapturePipe::new(cap) });
    // A panic in host code serving the guest (wasmtime-wasi when the process is out of threads
    // or descriptors, say) ends this invocation, not the process: the store and everything of
    // the guest's are dropped with the closure.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(pipes.as_ref(), &mut metrics)))
        .unwrap_or_else(|panic| Err(RunError::Host { message: panic_message(panic.as_ref()) }));
    metrics.wall_ms = ms(t0.elapsed());
    let (stdout, stderr) = match pipes {
        Some(p) => {
            metrics.output_dropped = p.stdout.dropped() + p.stderr.dropped();
            (Some(p.stdout.contents()), Some(p.stderr.contents()))
        }
        None => (None, None),
    };
    let (result, reply) = match r {
        Ok((code, reply)) => (Ok(code), reply),
        Err(e) => (Err(e), None),
    };
    Outcome { result, metrics, stdout, stderr, reply }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<String>(), panic.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => (*s).to_string(),
        (None, None) => "a panic without a message".into(),
    }
}

/// Whether `inv`'s datasets are mapped shared (copy-on-write by the host) rather than private.
/// A dax device allows only shared maps: asking for private ones there is refused up front,
/// rather than every `map` of the guest failing.
fn maps_shared(inv: &Invocation) -> Result<bool, RunError> {
    let on_dax = inv.catalog.on_dax();
    if on_dax && inv.limits.map_technique == famfs_host_api::MapTechnique::Private {
        let device = inv.catalog.famfs().map(|fs| fs.device().path().display().to_string()).unwrap_or_default();
        return Err(RunError::Setup {
            message: format!(
                "the map technique 'private' cannot map dax device {device}: device-dax allows only shared maps; use --map-technique shared or auto"
            ),
        });
    }
    Ok(inv.limits.map_technique.is_shared_on(on_dax))
}

/// The environment variable that tells every guest its memory limit in bytes
/// ([`Limits::max_memory`](crate::Limits::max_memory)).
pub const GUEST_MAX_MEMORY_ENV: &str = "FAMFS_RUN_MAX_MEMORY";

/// A WASI context builder with `inv`'s arguments, environment, stdio and host-directory
/// preopens (read-only). A handler's stdin is empty: its input comes through `handle`.
pub(crate) fn wasi_builder(inv: &Invocation, pipes: Option<&Pipes>) -> Result<WasiCtxBuilder, RunError> {
    let mut b = WasiCtxBuilder::new();
    // Before preopened_dir: file I/O then runs on this thread, reading straight into guest
    // memory. Not when datasets may be mapped shared: the kernel cannot write into a read-only
    // shared page (EFAULT), so reads then go through a buffer copied into guest memory from user
    // space, which the copy-on-write handler serves.
    if !maps_shared(inv)? {
        b.allow_blocking_current_thread(true);
    }
    b.arg(&inv.program).args(&inv.args);
    // The guest's own limits, so that it can size itself (the SQL guest's memory pool does);
    // the environment given may not set the same name, which would lie about them.
    if inv.env.iter().any(|(k, _)| k == GUEST_MAX_MEMORY_ENV) {
        return Err(RunError::Setup {
            message: format!(
                "{GUEST_MAX_MEMORY_ENV} is set by famfs-run to the guest's memory limit: set --max-memory instead"
            ),
        });
    }
    b.env(GUEST_MAX_MEMORY_ENV, inv.limits.max_memory.to_string());
    for (k, v) in &inv.env {
        b.env(k, v);
    }
    match pipes {
        Some(p) => {
            b.stdout(p.stdout.clone()).stderr(p.stderr.clone());
        }
        None => {
            b.inherit_stdout().inherit_stderr();
        }
    }
    if matches!(inv.entry, Entry::Command) {
        b.inherit_stdin();
    }
    for (guest, host) in &inv.dirs {
        b.preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| RunError::Setup { message: format!("cannot expose {} as {guest}: {e:#}", host.display()) })?;
    }
    // A directory opened beneath its mount is exposed through its descriptor's own name in
    // /proc, which reopens that very directory: no path is walked again, so nothing renamed or
    // linked in the tree since can change which directory the guest gets.
    for (guest, dir) in &inv.mount_dirs {
        let own = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&**dir)));
        b.preopened_dir(&own, guest, FsPerms::ReadOnly)
            .map_err(|e| RunError::Setup { message: format!("cannot expose a mount directory as {guest}: {e:#}") })?;
    }
    Ok(b)
}

/// When an invocation must stop: its deadline (the timeout counted from the store's set-up:
/// instantiation and the run) or its cancel flag.
#[derive(Clone)]
pub(crate) struct Deadline {
    at: Option<std::time::Instant>,
    cancel: Option<Cancel>,
}

impl Deadline {
    /// `inv`'s deadline, counted from now.
    pub(crate) fn of(inv: &Invocation) -> Deadline {
        Deadline {
            at: inv.limits.timeout.and_then(|t| std::time::Instant::now().checked_add(t)),
            cancel: inv.cancel.clone(),
        }
    }

    /// Whether the time is up or the invocation was cancelled.
    pub(crate) fn passed(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
            || self.at.is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// The same, for host work done on the guest's behalf.
    pub(crate) fn interrupt(&self) -> famfs_host_api::Interrupt {
        let d = self.clone();
        famfs_host_api::Interrupt::new(move || d.passed())
    }
}

/// Store data that can tell whether a guest's dataset mappings have seen a fault (a media error,
/// or a copy-on-write the host had no memory for).
pub(crate) trait MediaWatch {
    /// Whether a mapping of the guest has faulted (a SIGBUS caught by the guard, or a store
    /// whose copy-on-write failed).
    fn media_fault(&self) -> bool;
}

/// Why an epoch callback stopped a guest: a fault in one of its mappings. The runner then
/// reports the fault itself ([`settle`]), with the dataset and offset.
#[derive(Debug, Error)]
#[error("a dataset mapping failed under the guest")]
pub(crate) struct MediaStop;

/// Applies `inv`'s fuel budget, deadline and cancel flag to a fresh store, and stops the guest
/// at the first epoch tick (10 ms) after a fault in one of its mappings, so it never goes on
/// computing with the zeros the guard put in place of the lost pages.
pub(crate) fn limit_store<T: MediaWatch>(
    store: &mut Store<T>,
    engine: &SandboxEngine,
    inv: &Invocation,
    deadline: &Deadline,
) -> Result<(), RunError> {
    if let Some(fuel) = inv.limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| RunError::Setup { message: format!("{e:#}; build the engine with fuel counting") })?;
    } else if engine.options().fuel {
        store.set_fuel(u64::MAX).map_err(|e| RunError::Setup { message: format!("{e:#}") })?;
    }
    let deadline = deadline.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if ctx.data().media_fault() {
            return Err(MediaStop.into());
        }
        if deadline.passed() {
            Ok(wasmtime::UpdateDeadline::Interrupt)
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    });
    Ok(())
}

/// The invocation cannot start: the process's SIGBUS guard slots, kernel-mapping budget or
/// descriptor budget are promised to other guests (the message says which, and what to change).
pub(crate) fn no_room_for_guest(e: impl std::fmt::Display) -> RunError {
    RunError::Setup { message: e.to_string() }
}

/// Reserves the guest's descriptor caps from the process's budget, for as long as it runs.
pub(crate) fn reserve_descriptors(inv: &Invocation) -> Result<fd_budget::Reservation, RunError> {
    fd_budget::reserve(inv.limits.descriptors()).map_err(no_room_for_guest)
}

/// Fuel the invocation used, when the engine counts fuel.
pub(crate) fn fuel_used<T>(store: &Store<T>, engine: &SandboxEngine, inv: &Invocation) -> Option<u64> {
    engine.options().fuel.then(|| inv.limits.fuel.unwrap_or(u64::MAX) - store.get_fuel().unwrap_or(0))
}

/// After the guest ran: records what it mapped and its peak memory, and fails with the first
/// fault its mappings saw (it outranks everything: whatever the guest computed read zeros). A
/// copy-on-write the host had no memory for is the host's failure, not the medium's.
pub(crate) fn settle(
    metrics: &mut Metrics,
    mapper: &mut famfs_host_api::Mapper,
    limiter: &crate::limits::Limiter,
) -> Result<(), RunError> {
    metrics.bytes_mapped = mapper.bytes_mapped();
    metrics.bytes_copied = mapper.bytes_copied();
    metrics.peak_memory = limiter.peak_memory as u64;
    match mapper.take_faults().into_iter().next() {
        Some(MappingFault::Media(f)) => Err(RunError::Media(f)),
        Some(f @ MappingFault::CopyFailed { .. }) => Err(RunError::Host { message: f.to_string() }),
        None => Ok(()),
    }
}

/// Milliseconds, for [`Metrics`].
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Turns a wasmtime error into a [`RunError`]. `denied` is the memory growth the limiter
/// refused, if any: a guest that traps after that is reported as hitting the memory limit.
pub(crate) fn classify(e: wasmtime::Error, denied: Option<usize>, inv: &Invocation) -> RunError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) if inv.cancel.as_ref().is_some_and(Cancel::is_cancelled) => RunError::Cancelled,
        Some(Trap::Interrupt) => RunError::Timeout { limit_ms: inv.limits.timeout.map_or(0, |t| t.as_millis() as u64) },
        Some(Trap::OutOfFuel) => RunError::FuelExhausted { fuel: inv.limits.fuel.unwrap_or(0) },
        Some(Trap::StackOverflow) => RunError::StackOverflow,
        _ if denied.is_some() => {
            RunError::MemoryLimit { limit: inv.limits.max_memory, requested: denied.unwrap_or(0) as u64 }
        }
        _ if table_full(&e) => RunError::WasiResources { limit: inv.limits.max_wasi_resources },
        Some(_) => trapped(&e),
        None if format!("{e:#}").contains("unknown import") || format!("{e:#}").contains("matching implementation") => {
            RunError::Link { message: format!("{e:#}") }
        }
        None => trapped(&e),
    }
}

/// Whether WASI trapped because the guest's resource table is at its capacity
/// ([`Limits::max_wasi_resources`](crate::Limits::max_wasi_resources)).
fn table_full(e: &wasmtime::Error) -> bool {
    use wasmtime::component::ResourceTableError;
    e.chain().any(|c| matches!(c.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)))
}

/// [`RunError::Trap`] with a one-line message and the backtrace apart.
fn trapped(e: &wasmtime::Error) -> RunError {
    let d = crate::failure::describe(e);
    RunError::Trap { message: d.message, backtrace: d.backtrace }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error serializes with its kind (`--json`, famfs-serve's error bodies); a media
    /// error used to fail to serialize at all (its tag had no map to go into).
    #[test]
    fn errors_serialize_with_their_kind() {
        let media = RunError::Media(MediaError { dataset: "data/x.bin".into(), offset: 4096 });
        let v = serde_json::to_value(&media).unwrap();
        assert_eq!(v, serde_json::json!({ "kind": "media", "dataset": "data/x.bin", "offset": 4096 }));
        let outcome =
            Outcome { result: Err(media), metrics: Metrics::default(), stdout: None, stderr: None, reply: None };
        let v = serde_json::to_value(&outcome).unwrap();
        assert_eq!(v["result"]["error"]["kind"], "media");
        assert!(v["result"]["message"].as_str().unwrap().contains("media error in dataset data/x.bin at offset 4096"));
        for e in [RunError::Timeout { limit_ms: 5 }, RunError::Host { message: "x".into() }, RunError::Cancelled] {
            assert!(serde_json::to_value(&e).unwrap()["kind"].is_string(), "{e}");
        }
    }
}
