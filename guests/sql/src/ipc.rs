//! Arrow IPC files decoded by DataFusion's own arrow-rs from bytes in memory: the native
//! engine's tables (memory-mapped files), and in the guest the files the SDK cannot read in
//! place, whose buffers are LZ4- or ZSTD-compressed: they are decoded batch by batch into new
//! memory.
//!
//! The footer is parsed by arrow-rs 59, whose schema conversion can panic on some malformed
//! footers: the guest only comes here for a file whose footer the SDK (arrow-rs 60) already
//! read and validated, and the native engine reads its caller's own files.

use crate::table::{BatchSource, Batches};
use bytes::Bytes;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::FileDecoder;
use datafusion::arrow::ipc::{Block, MetadataVersion};
use datafusion::error::{DataFusionError, Result};
use std::sync::Arc;

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
