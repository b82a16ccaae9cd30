//! The exceptions of `famfs_run`: one class per way a run fails, each carrying the one-line
//! message `famfs-run` would print. They live in the `famfs_run` module (so they pickle, and a
//! Ray task's failure arrives on the driver as the same class).
//!
//! ```text
//! FamfsRunError
//! ├── GuestError            an invocation failed (RunError); `.kind` as in `famfs-run --json`
//! │   ├── CompileError, LinkError, NeedsComponent, MissingExport, SetupError, Cancelled,
//! │   ├── Timeout, FuelExhausted, MemoryLimit, StackOverflow, WasiResources, MediaError, Trap,
//! │   ├── HandlerError, HostError
//! │   └── ExitStatusError   the guest exited with a non-zero status (Outcome.check())
//! ├── LoadError             a guest could not be read, verified or loaded
//! ├── ManifestError         a manifest could not be used
//! ├── SourceError           a device or mount could not be opened, a dataset not granted
//! └── FamfsError            a famfs operation failed (mkfs, mkdir, cp, write_feather, ...)
//! ```

use famfs_runtime::{EmbedError, ManifestError as RustManifestError, RequestError, RunError};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;

create_exception!(famfs_run, FamfsRunError, PyException, "Base class of every famfs_run error.");
create_exception!(famfs_run, GuestError, FamfsRunError, "An invocation of a guest failed; `kind` names how.");
create_exception!(famfs_run, CompileError, GuestError, "The bytes are not a valid WebAssembly module.");
create_exception!(famfs_run, LinkError, GuestError, "The module imports something the host does not provide.");
create_exception!(
    famfs_run,
    NeedsComponent,
    GuestError,
    "The invocation needs the guest as a component; load it with component=True."
);
create_exception!(famfs_run, MissingExport, GuestError, "The guest lacks the export the invocation calls.");
create_exception!(famfs_run, SetupError, GuestError, "The run was set up wrong.");
create_exception!(famfs_run, Cancelled, GuestError, "The invocation was cancelled.");
create_exception!(famfs_run, Timeout, GuestError, "The guest ran out of time.");
create_exception!(famfs_run, FuelExhausted, GuestError, "The guest used up its fuel budget.");
create_exception!(famfs_run, MemoryLimit, GuestError, "The guest asked for more memory than its limit.");
create_exception!(famfs_run, StackOverflow, GuestError, "The guest overflowed its call stack.");
create_exception!(famfs_run, WasiResources, GuestError, "The guest held more WASI resources than its cap.");
create_exception!(famfs_run, MediaError, GuestError, "The memory behind a mapped dataset failed.");
create_exception!(famfs_run, Trap, GuestError, "The guest trapped.");
create_exception!(famfs_run, HandlerError, GuestError, "A handler returned an error of its own.");
create_exception!(famfs_run, HostError, GuestError, "The host failed while serving the guest.");
create_exception!(famfs_run, ExitStatusError, GuestError, "The guest exited with a non-zero status.");
create_exception!(famfs_run, LoadError, FamfsRunError, "A guest could not be read, verified or loaded.");
create_exception!(famfs_run, ManifestError, FamfsRunError, "A function manifest could not be used.");
create_exception!(famfs_run, SourceError, FamfsRunError, "A dataset source could not be opened or granted.");
create_exception!(famfs_run, FamfsError, FamfsRunError, "A famfs operation failed.");

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    macro_rules! add {
        ($($name:ident),*) => { $( m.add(stringify!($name), py.get_type::<$name>())?; )* };
    }
    add!(
        FamfsRunError,
        GuestError,
        CompileError,
        LinkError,
        NeedsComponent,
        MissingExport,
        SetupError,
        Cancelled,
        Timeout,
        FuelExhausted,
        MemoryLimit,
        StackOverflow,
        WasiResources,
        MediaError,
        Trap,
        HandlerError,
        HostError,
        ExitStatusError,
        LoadError,
        ManifestError,
        SourceError,
        FamfsError
    );
    Ok(())
}

/// The exception for a failed invocation, with the message famfs-run prints.
pub fn run_error(e: &RunError) -> PyErr {
    let message = e.to_string();
    match e {
        RunError::Compile { .. } => CompileError::new_err(message),
        RunError::NeedsComponent { needs } => NeedsComponent::new_err(format!(
            "this invocation needs the guest as a component ({needs}); load it with Runtime.load(..., component=True)"
        )),
        RunError::MissingExport { .. } => MissingExport::new_err(message),
        RunError::Link { .. } => LinkError::new_err(message),
        RunError::Setup { .. } => SetupError::new_err(message),
        RunError::Cancelled => Cancelled::new_err(message),
        RunError::Timeout { .. } => Timeout::new_err(message),
        RunError::FuelExhausted { .. } => FuelExhausted::new_err(message),
        RunError::MemoryLimit { limit, requested } => MemoryLimit::new_err(format!(
            "the guest hit its memory limit of {limit} bytes (it asked for {requested}); raise max_memory= or map smaller windows"
        )),
        RunError::StackOverflow => StackOverflow::new_err(message),
        RunError::WasiResources { .. } => WasiResources::new_err(message),
        RunError::Media(_) => MediaError::new_err(message),
        RunError::Trap { .. } => Trap::new_err(message),
        RunError::Handler { .. } => HandlerError::new_err(message),
        RunError::Host { .. } => HostError::new_err(message),
    }
}

/// The exception for a guest that could not be loaded.
pub fn embed_error(e: EmbedError) -> PyErr {
    match e {
        EmbedError::Load(run) => run_error(&run),
        other => LoadError::new_err(other.to_string()),
    }
}

/// The exception for a manifest that cannot be used.
pub fn manifest_error(e: RustManifestError) -> PyErr {
    match e {
        RustManifestError::Load { cause, .. } => embed_error(cause),
        other => ManifestError::new_err(other.to_string()),
    }
}

/// The exception for a request famfs-run's rules refuse (famfs_runtime::request): `TypeError`
/// for an unknown keyword or a value of the wrong type, as Python raises for any call;
/// `SourceError` when the source cannot be opened or a grant is refused; else `ValueError`.
pub fn request_error(e: RequestError) -> PyErr {
    match e {
        RequestError::Unknown { .. } | RequestError::Type { .. } => PyTypeError::new_err(e.to_string()),
        RequestError::Open { .. } | RequestError::Catalog(_) => source_error(e),
        RequestError::Value { .. } | RequestError::Usage(_) => PyValueError::new_err(e.to_string()),
    }
}

/// The exception for a famfs operation that failed.
pub fn famfs_error(e: impl std::fmt::Display) -> PyErr {
    FamfsError::new_err(e.to_string())
}

/// The exception for a dataset source that cannot be used.
pub fn source_error(e: impl std::fmt::Display) -> PyErr {
    SourceError::new_err(e.to_string())
}
