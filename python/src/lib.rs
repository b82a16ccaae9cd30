//! `famfs_run._native`: the Rust side of the `famfs_run` Python package (PyO3, abi3).
//!
//! - [`runtime`]: `Runtime`, `Program`, `Outcome` and `Manifest`, over famfs-run's embedding API
//!   (`famfs_runtime::Runtime`); guests run with the GIL released.
//! - [`famfs`]: `Famfs`, a famfs image or device: mkfs, ls, stat, cat, mkdir, cp, fsck.
//! - [`feather`]: Arrow tables written as aligned Arrow IPC files straight into a famfs.
//! - [`errors`]: one exception class per way a run can fail, with the CLI's message.
//! - [`arrow_ipc`]: a guest's Arrow IPC output as a validated, zero-copy `pyarrow.Table`.
//!
//! The pure-Python part (`python/famfs_run/`) adds what is easier there: `Outcome.arrow()` is
//! here, but `Famfs.open` (a memoryview over Python's `mmap`), recursive copies and the Ray
//! helpers are Python.

mod arrow_ipc;
mod convert;
mod errors;
mod famfs;
mod feather;
mod runtime;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<runtime::Runtime>()?;
    m.add_class::<runtime::Program>()?;
    m.add_class::<runtime::Outcome>()?;
    m.add_class::<runtime::Manifest>()?;
    m.add_class::<famfs::Famfs>()?;
    m.add_function(wrap_pyfunction!(arrow_ipc::read_arrow_ipc, m)?)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The limit keywords of Runtime.run and Runtime.invoke (Runtime() takes all but `fuel`): the
    // command line's limit flags and a manifest's [limits] keys, from one table.
    let names = famfs_runtime::LIMIT_OPTIONS.iter().map(|o| o.name);
    m.add("LIMIT_OPTIONS", pyo3::types::PyTuple::new(m.py(), names)?)?;
    Ok(())
}
