//! `Runtime`, `Program`, `Outcome` and `Manifest`: famfs-run's embedding API for Python.
//!
//! Every invocation goes through `famfs_runtime::Runtime::invoke` (its concurrency limit, its
//! cancellation) on one small tokio runtime per process, with the GIL released: Python threads
//! run guests in parallel, up to the runtime's `max_concurrency`, and other Python code runs
//! meanwhile.

use crate::convert;
use crate::errors;
use famfs_host_api::Catalog;
use famfs_runtime::request::{self, LimitOverrides, OptionValue, Source, SourceKey, Spelling};
use famfs_runtime::{Cancel, Entry, Invocation, Limits, ProgramKind, RunError, Stdio};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The tokio runtime that drives `famfs_runtime::Runtime::invoke`: a current-thread runtime
/// each calling thread blocks on (the guest itself runs on tokio's blocking pool), with a timer
/// for the signal checks.
fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static TOKIO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    TOKIO.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .thread_name("famfs-run-guest")
            .build()
            .expect("a tokio runtime with only a timer builds")
    })
}

/// How often a thread waiting for a guest lets Python run its signal handlers (Ctrl-C).
const SIGNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs guests: one per process is enough, and it is safe to share between threads.
#[pyclass(module = "famfs_run", frozen)]
pub struct Runtime {
    inner: famfs_runtime::Runtime,
    /// Tells this runtime's programs from other runtimes' (whose engines they cannot run on).
    id: u64,
    /// Whether the engine counts fuel (so `fuel=` budgets can be given).
    fuel: bool,
    max_concurrency: usize,
    /// Opened sources: a famfs log is replayed once, and again only when it changed, not at
    /// every invocation.
    catalogs: Mutex<HashMap<SourceKey, Catalog>>,
}

/// A compiled guest (`Runtime.load`): compile once, run many times.
#[pyclass(module = "famfs_run", frozen)]
pub struct Program {
    program: Arc<famfs_runtime::Program>,
    name: String,
    /// The `Runtime` that compiled it.
    runtime_id: u64,
}

/// What one command invocation came to: its exit code, captured output and metrics.
#[pyclass(module = "famfs_run", frozen)]
pub struct Outcome {
    exit_code: i32,
    /// Never changed after construction, so `arrow()` may hand out its address.
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    reply: Option<Vec<u8>>,
    metrics: famfs_runtime::Metrics,
    program: String,
}

/// A function manifest (TOML): module, datasets, limits, environment.
#[pyclass(module = "famfs_run", frozen)]
pub struct Manifest {
    manifest: famfs_runtime::Manifest,
}

/// A run's `device=`, `mount=`, `datasets=` and `dirs=` as famfs-run's request rules take them.
fn source(
    device: Option<PathBuf>,
    mount: Option<PathBuf>,
    datasets: Option<Vec<String>>,
    dirs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Source> {
    let mut pairs = Vec::new();
    for (guest, path) in dirs.into_iter().flat_map(|d| d.iter()) {
        let guest: String = guest.extract()?;
        let path: PathBuf = path.extract()?;
        let path = path.to_str().ok_or_else(|| PyValueError::new_err("dirs: paths must be UTF-8"))?;
        pairs.push((guest, path.to_string()));
    }
    Ok(Source { device, mount, datasets: datasets.unwrap_or_default(), dirs: pairs })
}

/// The limit keywords of a call (`**limits`), each read by famfs_runtime::request as the command
/// line's flags and a manifest's `[limits]` are: an unknown keyword is a `TypeError`, a bad
/// value a `ValueError` (a value of the wrong type a `TypeError`). `None` leaves a limit as it
/// is.
fn limit_keywords(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<LimitOverrides> {
    let mut limits = LimitOverrides::default();
    for (key, value) in kwargs.into_iter().flat_map(|d| d.iter()) {
        let name: String = key.extract()?;
        // None leaves the limit as it is; an unknown name is still refused below.
        if value.is_none() && request::limit_option(&name).is_some() {
            continue;
        }
        let text;
        let value = if let Ok(n) = value.cast::<PyInt>()
            && !value.is_instance_of::<PyBool>()
        {
            OptionValue::Int(n.extract::<i128>().map_err(|_| PyValueError::new_err(format!("{name}= is too large")))?)
        } else if let Ok(f) = value.cast::<PyFloat>() {
            OptionValue::Float(f.value())
        } else if let Ok(s) = value.cast::<PyString>() {
            text = s.to_cow()?.into_owned();
            OptionValue::Text(&text)
        } else {
            // bool (an int to Python, but no limit's value), list, dict, ...
            text = format!("a {}", value.get_type().name()?);
            OptionValue::Other(&text)
        };
        limits.set(&name, value, Spelling::Python).map_err(errors::request_error)?;
    }
    Ok(limits)
}

impl Runtime {
    /// The catalog of `src` with its grants, from the cache when the source did not change.
    fn catalog(&self, src: &Source) -> PyResult<Catalog> {
        let Some(key) = src.key() else {
            return src.open().map_err(errors::request_error);
        };
        let cached = self.catalogs.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let base = match cached {
            Some(c) if !c.is_stale().map_err(errors::source_error)? => c,
            Some(c) => c.refreshed().map_err(errors::source_error)?,
            None => key.open().map_err(errors::request_error)?,
        };
        self.catalogs.lock().unwrap_or_else(|e| e.into_inner()).insert(key, base.clone());
        src.grant_over(base).map_err(errors::request_error)
    }

    /// The invocation for `program_name` over `src` under `limits` (over the runtime's).
    fn invocation(
        &self,
        program_name: &str,
        args: Vec<String>,
        env: Option<HashMap<String, String>>,
        src: &Source,
        limits: &LimitOverrides,
        entry: Entry,
    ) -> PyResult<Invocation> {
        src.check(Spelling::Python).map_err(errors::request_error)?;
        let mut inv = self.inner.invocation(program_name);
        inv.args = args;
        inv.catalog = self.catalog(src)?;
        let env = env.unwrap_or_default();
        request::check_env(env.keys().map(String::as_str), Spelling::Python).map_err(errors::request_error)?;
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        inv.env = env;
        src.add_dirs(&mut inv, Spelling::Python).map_err(errors::request_error)?;
        inv.entry = entry;
        inv.limits = limits.apply(self.inner.limits());
        if inv.limits.fuel.is_some() && !self.fuel {
            return Err(PyValueError::new_err("fuel= needs a runtime that counts fuel: famfs_run.Runtime(fuel=True)"));
        }
        inv.stdio = Stdio::Capture;
        Ok(inv)
    }

    /// `program` as a loaded program: a `Program`, or a path or bytes to load (as a component
    /// when `component`).
    fn program(&self, py: Python<'_>, program: &Bound<'_, PyAny>, component: bool) -> PyResult<Py<Program>> {
        match program.cast::<Program>() {
            Ok(p) if p.get().runtime_id != self.id => Err(PyValueError::new_err(format!(
                "{} was loaded by another Runtime; load it with this one (compiled code belongs to its runtime's engine)",
                p.get().name
            ))),
            Ok(p) => Ok(p.clone().unbind()),
            Err(_) => Py::new(py, self.load_guest(py, program, component, None)?),
        }
    }

    fn load_guest(
        &self,
        py: Python<'_>,
        guest: &Bound<'_, PyAny>,
        component: bool,
        sha256: Option<&str>,
    ) -> PyResult<Program> {
        let rt = self.inner.clone();
        if let Ok(bytes) = guest.cast::<PyBytes>() {
            if sha256.is_some() {
                return Err(PyValueError::new_err("sha256= checks a file; compare the bytes yourself"));
            }
            let bytes = bytes.as_bytes().to_vec();
            let program = py.detach(move || rt.load(&bytes, component)).map_err(|e| errors::run_error(&e))?;
            return Ok(Program { program, name: "guest.wasm".into(), runtime_id: self.id });
        }
        let path: PathBuf = guest
            .extract()
            .map_err(|_| PyTypeError::new_err("a guest is a path (str or os.PathLike) or the module's bytes"))?;
        let name = path.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
        let sha = sha256.map(str::to_string);
        let program = py.detach(move || rt.load_file(&path, sha.as_deref(), component)).map_err(errors::embed_error)?;
        Ok(Program { program, name, runtime_id: self.id })
    }

    /// Runs `inv` with the GIL released; a failure raises its exception, with the captured
    /// output attached as `stdout`/`stderr`.
    fn execute(&self, py: Python<'_>, program: &Program, mut inv: Invocation) -> PyResult<Outcome> {
        let (rt, compiled) = (self.inner.clone(), program.program.clone());
        // `ray.init` in this process, after the runtime was made, replaces the fault handlers
        // guests trap through; put them back first (see famfs_runtime::signals).
        famfs_runtime::signals::reclaim();
        let cancel = Cancel::new();
        inv.cancel = Some(cancel.clone());
        // Wait with the GIL released, taking it back every SIGNAL_CHECK to run Python's signal
        // handlers: when one raises (Ctrl-C: KeyboardInterrupt), the invocation is dropped,
        // which cancels it (the guest stops within an epoch tick, or never starts if it was
        // still waiting for a slot), and the exception is raised at once.
        let waited = py.detach(move || {
            tokio_runtime().block_on(async move {
                let run = rt.invoke(&compiled, inv);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        outcome = &mut run => break Ok(outcome),
                        _ = tokio::time::sleep(SIGNAL_CHECK) => {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                cancel.cancel();
                                break Err(e);
                            }
                        }
                    }
                }
            })
        });
        let outcome = waited?;
        let stdout = outcome.stdout.unwrap_or_default();
        let stderr = outcome.stderr.unwrap_or_default();
        match outcome.result {
            Ok(exit_code) => Ok(Outcome {
                exit_code,
                stdout,
                stderr,
                reply: outcome.reply,
                metrics: outcome.metrics,
                program: program.name.clone(),
            }),
            Err(e) => {
                let err = errors::run_error(&e);
                let value = err.value(py);
                value.setattr("kind", convert::to_py(py, &e)?.get_item("kind")?)?;
                value.setattr("stdout", PyBytes::new(py, &stdout))?;
                value.setattr("stderr", PyBytes::new(py, &stderr))?;
                value.setattr("metrics", convert::to_py(py, &outcome.metrics)?)?;
                if let RunError::Trap { backtrace: Some(b), .. } = &e {
                    value.setattr("backtrace", b)?;
                }
                Err(err)
            }
        }
    }
}

/// Request bytes from `bytes`, `bytearray` or `str` (UTF-8).
fn request_bytes(input: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = input.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else if let Ok(b) = input.cast::<PyByteArray>() {
        Ok(b.to_vec())
    } else if let Ok(s) = input.cast::<PyString>() {
        Ok(s.extract::<String>()?.into_bytes())
    } else {
        Err(PyTypeError::new_err("input must be bytes, bytearray or str"))
    }
}

/// `Runtime(cache_dir=...)`: a path, `True` (the default) for the user's cache directory, or
/// `None` / `False` for no disk cache.
#[derive(Clone, Debug)]
enum CacheDir {
    /// The user's (`famfs_runtime::cache::default_dir`), if it can be used.
    User,
    /// This directory.
    Path(PathBuf),
    /// None.
    Off,
}

impl<'py> FromPyObject<'_, 'py> for CacheDir {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = ob.cast::<pyo3::types::PyBool>() {
            return Ok(if b.is_true() { CacheDir::User } else { CacheDir::Off });
        }
        Ok(CacheDir::Path(ob.extract()?))
    }
}

#[pymethods]
impl Runtime {
    /// A runtime: engines, a compiled-guest cache (on disk: by default `FAMFS_RUN_CACHE` or the
    /// user's, as the command line's; `cache_dir=PATH` another, `cache_dir=None` none), and a limit
    /// of `max_concurrency` guests at once (default: 4 per core, fewer if the caps of that many
    /// guests would not fit the process: see `famfs_runtime::default_concurrency`). `fuel=True`
    /// makes the engine count fuel (budgets are per call). The limit keywords (every one of
    /// `famfs_run.LIMIT_OPTIONS` but `fuel`, as the command line's flags and a manifest's
    /// `[limits]`) become every invocation's defaults.
    #[new]
    #[pyo3(signature = (*, cache_dir=CacheDir::User, max_concurrency=None, fuel=None, **limits))]
    fn new(
        py: Python<'_>,
        cache_dir: Option<CacheDir>,
        max_concurrency: Option<usize>,
        fuel: Option<&Bound<'_, PyAny>>,
        limits: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Runtime> {
        // `fuel` here turns counting on; budgets are per call (`run(..., fuel=N)`).
        let fuel = match fuel {
            None => false,
            Some(f) => f.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| {
                PyTypeError::new_err(
                    "Runtime(fuel=) is True or False: whether the engine counts fuel; give a budget per call: rt.run(..., fuel=N)",
                )
            })?,
        };
        let limits = limit_keywords(limits)?.apply(Limits::default());
        let mut builder = famfs_runtime::Runtime::builder().limits(limits).fuel(fuel);
        if let Some(n) = max_concurrency {
            if n == 0 {
                return Err(PyValueError::new_err("max_concurrency must be at least 1"));
            }
            builder = builder.max_concurrency(n);
        }
        let cache_dir = match cache_dir {
            Some(CacheDir::Path(dir)) => Some(dir),
            Some(CacheDir::User) => famfs_runtime::cache::user_dir(),
            Some(CacheDir::Off) | None => None,
        };
        if let Some(dir) = cache_dir {
            builder = builder.cache_dir(dir);
        }
        let inner = py.detach(move || builder.build()).map_err(|e| errors::SetupError::new_err(e.to_string()))?;
        let max_concurrency = inner.available_slots();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Runtime { inner, id, fuel, max_concurrency, catalogs: Mutex::new(HashMap::new()) })
    }

    /// Compiles a guest (a path, or the module's bytes) once; later loads of the same bytes
    /// return the same program. `component=True` turns a core module into a component (needed
    /// for handlers and for `dirs` served from a famfs image). `sha256` refuses any other file.
    #[pyo3(signature = (guest, *, component=false, sha256=None))]
    fn load(
        &self,
        py: Python<'_>,
        guest: &Bound<'_, PyAny>,
        component: bool,
        sha256: Option<&str>,
    ) -> PyResult<Program> {
        self.load_guest(py, guest, component, sha256)
    }

    /// Runs a guest's command (`main`) and returns its `Outcome` (output captured). Raises a
    /// `GuestError` subclass when the run fails (`Timeout`, `MemoryLimit`, `Trap`, ...); a
    /// non-zero exit is not an error here: see `Outcome.check()`. The limit keywords
    /// (`famfs_run.LIMIT_OPTIONS`) override the runtime's for this run.
    #[pyo3(signature = (program, args=None, *, device=None, mount=None, datasets=None, dirs=None, env=None, **limits))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        program: &Bound<'_, PyAny>,
        args: Option<Vec<String>>,
        device: Option<PathBuf>,
        mount: Option<PathBuf>,
        datasets: Option<Vec<String>>,
        dirs: Option<&Bound<'_, PyDict>>,
        env: Option<HashMap<String, String>>,
        limits: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Outcome> {
        let src = source(device, mount, datasets, dirs)?;
        let limits = limit_keywords(limits)?;
        let program = self.program(py, program, request::needs_component(&Entry::Command, &src))?;
        let program = program.get();
        let inv = self.invocation(&program.name, args.unwrap_or_default(), env, &src, &limits, Entry::Command)?;
        self.execute(py, program, inv)
    }

    /// Calls a handler's `handle(input)` and returns its reply. Raises `HandlerError` when the
    /// handler returns an error, and the other `GuestError`s as `run` does. Limit keywords as
    /// for `run`.
    #[pyo3(signature = (program, input, *, device=None, mount=None, datasets=None, dirs=None, env=None, **limits))]
    #[allow(clippy::too_many_arguments)]
    fn invoke<'py>(
        &self,
        py: Python<'py>,
        program: &Bound<'py, PyAny>,
        input: &Bound<'py, PyAny>,
        device: Option<PathBuf>,
        mount: Option<PathBuf>,
        datasets: Option<Vec<String>>,
        dirs: Option<&Bound<'py, PyDict>>,
        env: Option<HashMap<String, String>>,
        limits: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let src = source(device, mount, datasets, dirs)?;
        let limits = limit_keywords(limits)?;
        let entry = request::entry(Some("handle"), Some(request_bytes(input)?), Spelling::Python, None)
            .map_err(errors::request_error)?;
        let program = self.program(py, program, request::needs_component(&entry, &src))?;
        let program = program.get();
        let inv = self.invocation(&program.name, Vec::new(), env, &src, &limits, entry)?;
        let outcome = self.execute(py, program, inv)?;
        Ok(PyBytes::new(py, outcome.reply.as_deref().unwrap_or_default()))
    }

    /// Runs what a manifest describes (its module, datasets, limits, env), with `args` after
    /// the manifest's own; `input` is the request when the manifest invokes `handle` (the
    /// reply is `Outcome.reply`).
    #[pyo3(signature = (manifest, args=None, *, input=None))]
    fn run_manifest(
        &self,
        py: Python<'_>,
        manifest: &Manifest,
        args: Option<Vec<String>>,
        input: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Outcome> {
        let m = &manifest.manifest;
        let input = input.map(request_bytes).transpose()?;
        let entry = request::entry(m.module.invoke.as_deref(), input, Spelling::Python, Some(m.file.as_path()))
            .map_err(errors::request_error)?;
        let input = match entry {
            Entry::Handle { input } => input,
            Entry::Command => Vec::new(),
        };
        let rt = self.inner.clone();
        let m2 = m.clone();
        let program = py.detach(move || m2.load(&rt)).map_err(errors::manifest_error)?;
        let name = m.module.path.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
        let mut inv = m.invocation(self.inner.limits(), input).map_err(errors::manifest_error)?;
        inv.args.extend(args.unwrap_or_default());
        inv.stdio = Stdio::Capture;
        self.execute(py, &Program { program, name, runtime_id: self.id }, inv)
    }

    /// The most invocations that run at once.
    #[getter]
    fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Free slots under the concurrency limit right now.
    #[getter]
    fn available_slots(&self) -> usize {
        self.inner.available_slots()
    }

    /// How this runtime's loads were served so far: `compiled`, `from_disk_cache`,
    /// `from_memory`, and `modules_read` (module files read and hashed).
    #[getter]
    fn load_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.load_stats();
        let d = PyDict::new(py);
        d.set_item("compiled", s.compiled)?;
        d.set_item("from_disk_cache", s.from_disk_cache)?;
        d.set_item("from_memory", s.from_memory)?;
        d.set_item("modules_read", s.modules_read)?;
        Ok(d)
    }

    /// The directory compiled guests are kept in, or `None`.
    #[getter]
    fn cache_dir(&self) -> Option<PathBuf> {
        self.inner.cache_dir().map(PathBuf::from)
    }

    fn __repr__(&self) -> String {
        format!("famfs_run.Runtime(max_concurrency={})", self.max_concurrency)
    }
}

#[pymethods]
impl Program {
    /// `"core-module"`, `"component"` or `"adapted-module"` (a core module made a component).
    #[getter]
    fn kind(&self) -> &'static str {
        match self.program.kind() {
            ProgramKind::CoreModule => "core-module",
            ProgramKind::Component => "component",
            ProgramKind::AdaptedModule => "adapted-module",
        }
    }

    /// The sha256 of the module's bytes (hex).
    #[getter]
    fn sha256(&self) -> &str {
        self.program.sha256()
    }

    /// The file name it was loaded from (`argv[0]` of its runs).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("famfs_run.Program({:?}, kind={:?}, sha256={:?})", self.name, self.kind(), &self.sha256()[..12])
    }
}

impl Outcome {
    /// Fails when output past `max_output` was dropped: what was kept is not the whole result.
    fn complete(&self, py: Python<'_>) -> PyResult<()> {
        match self.metrics.output_dropped {
            0 => Ok(()),
            n => {
                let err = errors::GuestError::new_err(format!(
                    "{} wrote more than max_output allows: {n} bytes of its output were dropped; raise max_output=",
                    self.program
                ));
                err.value(py).setattr("kind", "output-dropped")?;
                Err(err)
            }
        }
    }
}

#[pymethods]
impl Outcome {
    /// The guest's exit code (0 when `main` returned).
    #[getter]
    fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// Whether the exit code is 0.
    #[getter]
    fn ok(&self) -> bool {
        self.exit_code == 0
    }

    /// Captured standard output (a new `bytes` each time; see `arrow()` for zero-copy).
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stdout)
    }

    /// Captured standard error.
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stderr)
    }

    /// Standard output decoded as UTF-8 (invalid bytes replaced).
    #[getter]
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// What a handler returned (`run_manifest` of a handler manifest), else `None`.
    #[getter]
    fn reply<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.reply.as_deref().map(|r| PyBytes::new(py, r))
    }

    /// Measurements: wall_ms, instantiate_ms, run_ms, fuel_used, bytes_mapped, bytes_copied, peak_memory,
    /// output_dropped.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.metrics)
    }

    /// Returns self if the guest exited with 0 and all its output was kept; raises
    /// `ExitStatusError` (with the last line of its standard error) for another exit code, and
    /// `GuestError` (kind "output-dropped") when output past `max_output` was dropped.
    fn check(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let me = slf.get();
        me.complete(slf.py())?;
        if me.exit_code == 0 {
            return Ok(slf);
        }
        let stderr = String::from_utf8_lossy(&me.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let message = if last.is_empty() {
            format!("{} exited with status {}", me.program, me.exit_code)
        } else {
            format!("{} exited with status {}: {last}", me.program, me.exit_code)
        };
        let err = errors::ExitStatusError::new_err(message);
        let value = err.value(slf.py());
        value.setattr("kind", "exit-status")?;
        value.setattr("exit_code", me.exit_code)?;
        value.setattr("stderr", PyBytes::new(slf.py(), &me.stderr))?;
        Err(err)
    }

    /// The guest's standard output read as Arrow IPC (a stream, or a file) into a
    /// `pyarrow.Table`, without copying: the table's buffers point into this outcome's output,
    /// which the table keeps alive.
    fn arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let me = slf.get();
        me.complete(py)?;
        if me.stdout.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{} wrote nothing to standard output; run it with its Arrow output option",
                me.program
            )));
        }
        // `slf` owns the bytes: they never move or change (`Outcome` is frozen).
        crate::arrow_ipc::read(slf.as_any(), &me.stdout).map_err(|e| {
            PyValueError::new_err(format!(
                "the standard output of {} is not valid Arrow IPC: {}",
                me.program,
                e.value(py)
            ))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "famfs_run.Outcome(program={:?}, exit_code={}, stdout={} bytes, stderr={} bytes, wall_ms={:.1})",
            self.program,
            self.exit_code,
            self.stdout.len(),
            self.stderr.len(),
            self.metrics.wall_ms
        )
    }
}

#[pymethods]
impl Manifest {
    /// Reads and checks a manifest file (relative paths in it resolve against its directory).
    #[new]
    fn new(path: PathBuf) -> PyResult<Manifest> {
        famfs_runtime::Manifest::from_file(&path).map(|manifest| Manifest { manifest }).map_err(errors::manifest_error)
    }

    /// Parses manifest text as if read from `path`.
    #[staticmethod]
    #[pyo3(signature = (text, path=None))]
    fn from_str(text: &str, path: Option<PathBuf>) -> PyResult<Manifest> {
        let path = path.unwrap_or_else(|| PathBuf::from("manifest.toml"));
        famfs_runtime::Manifest::from_str_at(text, &path)
            .map(|manifest| Manifest { manifest })
            .map_err(errors::manifest_error)
    }

    /// The module's path.
    #[getter]
    fn module(&self) -> PathBuf {
        self.manifest.module.path.clone()
    }

    /// Whether it invokes a handler (`invoke = "handle"`) rather than running a command.
    #[getter]
    fn is_handler(&self) -> bool {
        self.manifest.module.invoke.is_some()
    }

    /// The manifest file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.manifest.file.clone()
    }

    fn __repr__(&self) -> String {
        format!("famfs_run.Manifest({:?})", self.manifest.file)
    }
}
