//! The engine on the host, for comparing with the guest: tables from files memory-mapped,
//! Arrow files decoded in place (as the guest does), Parquet and CSV files read from the mapping.
//!
//! For files the caller trusts (its own test data): arrow-rs 59's schema conversion panics on
//! some malformed footers, which the guest's SDK (arrow-rs 60) turns into errors.

use crate::files::{FileFormat, InPlaceFiles};
pub use crate::ipc::IpcSource;
use crate::table::SourceTable;
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use std::path::Path;
use std::sync::Arc;

/// The bytes of `path`, memory-mapped (empty files are empty `Bytes`).
pub fn map_file(path: &Path) -> Result<Bytes> {
    let file = std::fs::File::open(path).map_err(|e| DataFusionError::Plan(format!("{}: {e}", path.display())))?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and private; like every reader of a memory-mapped file
    // (ripgrep's contract), this one assumes the file is not truncated or rewritten while it
    // is mapped: these are the caller's own test and benchmark files.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// Registers every `(name, path)` as a table, its format from its name or first bytes.
pub async fn register_tables(ctx: &SessionContext, tables: &[(String, String)]) -> Result<()> {
    let mut files = InPlaceFiles::new(ctx);
    for (name, path) in tables {
        let bytes = map_file(Path::new(path))?;
        let format = FileFormat::detect(path, &bytes[..bytes.len().min(8)])
            .ok_or_else(|| DataFusionError::Plan(format!("{path}: not an Arrow, Parquet or CSV file")))?;
        match format {
            FileFormat::Arrow => {
                let source = IpcSource::new(bytes).map_err(|e| e.context(path.clone()))?;
                ctx.register_table(name.as_str(), Arc::new(SourceTable::new(Arc::new(source))))?;
            }
            _ => files.register(ctx, name, format, bytes).await?,
        }
    }
    Ok(())
}
