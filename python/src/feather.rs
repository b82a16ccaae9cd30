//! Publishing a data frame: an Arrow table from Python (through the Arrow C stream interface,
//! so pyarrow's buffers are read where they are) written as an uncompressed Arrow IPC file
//! (Feather v2) with 64-byte aligned buffers straight into a famfs file, no temporary file.
//!
//! famfs needs a file's size before its space is allocated, so the file is serialized twice:
//! once into a byte counter, then into the new file's space (`Writer::create_file_with`), which
//! is logged only once all of it is written and flushed.

use crate::errors::famfs_error;
use crate::famfs::Famfs;
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_ipc::MetadataVersion;
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
use arrow_schema::{ArrowError, Schema};
use famfs::{Attrs, Layout, RelPath};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use std::io::Write;

/// Buffer alignment in the written files: a SIMD-friendly 64 bytes (Arrow's recommendation),
/// so guests and pyarrow read every buffer in place.
const ALIGNMENT: usize = 64;

/// Counts the bytes written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `schema` and `batches` as an Arrow IPC file into `out`.
fn write_ipc(out: impl Write, schema: &Schema, batches: &[RecordBatch]) -> Result<(), ArrowError> {
    let options = IpcWriteOptions::try_new(ALIGNMENT, false, MetadataVersion::V5)?;
    let mut writer = FileWriter::try_new_with_options(out, schema, options)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()
}

/// The batches of a Python object that exports an Arrow C stream (`__arrow_c_stream__`:
/// pyarrow tables and readers, polars, DuckDB results, ...).
fn import_stream(table: &Bound<'_, PyAny>) -> PyResult<(Schema, Vec<RecordBatch>)> {
    if !table.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "{} is not an Arrow table: pass a pyarrow.Table, a RecordBatchReader or a pandas DataFrame",
            table.get_type().name()?
        )));
    }
    let capsule = table.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err("__arrow_c_stream__ did not return a PyCapsule (an Arrow C stream is expected)")
    })?;
    let stream = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: the capsule is named "arrow_array_stream", which by the Arrow PyCapsule protocol
    // means it holds a valid `ArrowArrayStream` that the consumer may move out of; `from_raw`
    // moves it and leaves a released (empty) stream behind, so the capsule's destructor, which
    // releases only unreleased streams, does not release it twice. The capsule stays alive
    // (`capsule` is borrowed) for the duration of the move. The object comes from the calling
    // Python code, which is trusted as any code in this process is (guests never reach here);
    // one that names a capsule so without holding a stream could corrupt the process as
    // surely as through ctypes.
    let reader = unsafe { RecordBatchStreamReader::from_raw(stream.as_ptr().cast::<FFI_ArrowArrayStream>()) }
        .map_err(|e| PyValueError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("cannot read the Arrow stream: {e}")))?;
    Ok((schema.as_ref().clone(), batches))
}

/// Writes `table` into `famfs` as `path`; returns the file's size.
pub fn write_arrow(
    py: Python<'_>,
    famfs: &Famfs,
    table: &Bound<'_, PyAny>,
    path: &RelPath,
    attrs: Attrs,
) -> PyResult<u64> {
    let (schema, batches) = import_stream(table)?;
    // The writer (its lock, which may be waited for, and the log replay) is taken and let go
    // with the GIL released.
    let written = py.detach(|| {
        let mut writer = famfs.writer()?;
        let mut counter = Counter(0);
        write_ipc(&mut counter, &schema, &batches).map_err(|e| famfs_error(format!("cannot write '{path}': {e}")))?;
        let size = counter.0;
        writer
            .create_file_with(path, size, attrs, Layout::Simple, &mut |sink| {
                // A sink that refuses bytes past `size` turns an unstable serialization into an
                // error, never into a short or long file.
                write_ipc(&mut *sink, &schema, &batches).map_err(std::io::Error::other)
            })
            .map_err(famfs_error)
            .map(|meta| meta.size)
    });
    drop(batches);
    written
}
