//! The engine on the host, for comparing with the guest: tables from files memory-mapped,
//! Arrow files decoded in place (as the guest does), Parquet and CSV files read from the mapping.
//!
//! For files the caller trusts (its own test data): arrow-rs 59's schema conversion panics on
//! some malformed footers, which the guest's SDK (arrow-rs 60) turns into errors.

use crate::files::{FileFormat, InPlaceFiles};
use crate::table::{BatchSource, Batches, SourceTable};
use bytes::Bytes;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::FileDecoder;
use datafusion::arrow::ipc::{Block, MetadataVersion};
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

/// An Arrow IPC file in memory, decoded in place.
#[derive(Debug)]
pub struct IpcSource {
    buffer: Buffer,
    schema: SchemaRef,
    version: MetadataVersion,
    dictionaries: Vec<Block>,
    batches: Vec<Block>,
}

impl IpcSource {
    /// Reads the footer of the Arrow IPC file `bytes`.
    pub fn new(bytes: Bytes) -> Result<IpcSource> {
        let bad = |what: &str| DataFusionError::Plan(format!("not an Arrow IPC file: {what}"));
        let n = bytes.len();
        if n < 18 || &bytes[..6] != b"ARROW1" || &bytes[n - 6..] != b"ARROW1" {
            return Err(bad("no ARROW1 magic at both ends"));
        }
        let footer_len = i32::from_le_bytes(bytes[n - 10..n - 6].try_into().expect("4 bytes"));
        let footer_len =
            usize::try_from(footer_len).ok().filter(|l| *l <= n - 18).ok_or_else(|| bad("bad footer length"))?;
        let footer = datafusion::arrow::ipc::root_as_footer(&bytes[n - 10 - footer_len..n - 10])
            .map_err(|e| bad(&format!("bad footer: {e}")))?;
        let schema = datafusion::arrow::ipc::convert::fb_to_schema(footer.schema().ok_or_else(|| bad("no schema"))?);
        Ok(IpcSource {
            schema: Arc::new(schema),
            version: footer.version(),
            dictionaries: footer.dictionaries().map(|v| v.iter().copied().collect()).unwrap_or_default(),
            batches: footer.recordBatches().map(|v| v.iter().copied().collect()).unwrap_or_default(),
            buffer: Buffer::from(bytes),
        })
    }

    fn message(&self, block: &Block) -> Result<Buffer> {
        let start = usize::try_from(block.offset()).map_err(|_| DataFusionError::Plan("bad block offset".into()))?;
        let len =
            usize::try_from(block.bodyLength()).unwrap_or(usize::MAX).saturating_add(block.metaDataLength() as usize);
        if start.checked_add(len).is_none_or(|end| end > self.buffer.len()) {
            return Err(DataFusionError::Plan("a block lies outside the file".into()));
        }
        Ok(self.buffer.slice_with_length(start, len))
    }
}

impl BatchSource for IpcSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn scan(&self, projection: Option<&[usize]>) -> Result<Batches> {
        let mut decoder = FileDecoder::new(Arc::clone(&self.schema), self.version);
        if let Some(p) = projection {
            decoder = decoder.with_projection(p.to_vec());
        }
        for block in &self.dictionaries {
            decoder.read_dictionary(block, &self.message(block)?)?;
        }
        let messages = self.batches.iter().map(|b| Ok((*b, self.message(b)?))).collect::<Result<Vec<_>>>()?;
        Ok(Box::new(messages.into_iter().filter_map(move |(block, message)| {
            decoder.read_record_batch(&block, &message).map_err(DataFusionError::from).transpose()
        })))
    }
}
