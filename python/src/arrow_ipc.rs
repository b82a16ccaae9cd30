//! Reading a guest's Arrow IPC output into a `pyarrow.Table` without copying it, and without
//! trusting it.
//!
//! The bytes are the guest's, as untrusted as any input: pyarrow's reader checks the messages
//! but not the data (an offset past its buffer, a dictionary index out of range), which code
//! reading the table then trusts. So the table is validated in full before it is handed out:
//! malformed output is an exception, never a read out of bounds. A table that claims more rows
//! than its bytes have bits is refused too: no byte backs them, and reading them would take the
//! host's memory.
//!
//! [`read_arrow_ipc`] exposes the same decoder as `famfs_run._native._read_arrow_ipc(bytes)`, so
//! that `python/fuzz/arrow_outcome.py` can fuzz exactly what `Outcome.arrow()` runs.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// The Arrow IPC stream or file in `bytes` as a `pyarrow.Table` whose buffers point into
/// `bytes`, validated in full. `owner` must own `bytes` and keep them unmoved and unchanged for
/// as long as it lives: the table keeps `owner` alive.
pub fn read<'py>(owner: &Bound<'py, PyAny>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let pa = py.import("pyarrow")?;
    let ipc = py.import("pyarrow.ipc")?;
    // `foreign_buffer` keeps `owner` alive as long as the buffer and every array sliced from it.
    let buffer = pa.call_method1("foreign_buffer", (bytes.as_ptr() as usize, bytes.len(), owner))?;
    let reader = if bytes.starts_with(b"ARROW1") {
        ipc.call_method1("open_file", (buffer,))?
    } else {
        ipc.call_method1("open_stream", (buffer,))?
    };
    let table = reader.call_method0("read_all")?;
    let full = PyDict::new(py);
    full.set_item("full", true)?;
    table.call_method("validate", (), Some(&full))?;
    // Valid Arrow may still claim rows that no byte backs (a batch of no columns, of null
    // columns or of run-end encoded ones says its length in a field): 704 bytes of fuzzed output
    // claimed 2^62 rows, and `to_pylist()` on that table took all the host's memory. A table
    // with more rows than its bytes have bits is refused, the rare honest one (say, a long
    // all-null column) too: reading it would cost the host more than the guest paid for it.
    let rows: u64 = table.getattr("num_rows")?.extract()?;
    let most = (bytes.len() as u64).saturating_mul(8);
    if rows > most {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "the table claims {rows} rows in {} bytes, more rows than its bytes have bits",
            bytes.len()
        )));
    }
    Ok(table)
}

/// `_read_arrow_ipc(data: bytes) -> pyarrow.Table`: what `Outcome.arrow()` does with a guest's
/// output, for the fuzzer. Raises what pyarrow raises for bytes that are not valid Arrow IPC.
#[pyfunction]
#[pyo3(name = "_read_arrow_ipc")]
pub fn read_arrow_ipc<'py>(data: &Bound<'py, PyBytes>) -> PyResult<Bound<'py, PyAny>> {
    // A `bytes` object's contents never move or change while it lives.
    read(data.as_any(), data.as_bytes())
}
