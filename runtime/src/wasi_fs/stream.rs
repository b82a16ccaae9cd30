//! `read-via-stream`: a `wasi:io` input stream over a famfs file, read chunk by chunk.

use super::node::FsNode;
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

/// Reads a famfs file from `offset` on.
pub(super) struct FileStream {
    pub(super) node: FsNode,
    pub(super) offset: u64,
}

#[async_trait::async_trait]
impl Pollable for FileStream {
    /// Memory-backed: always ready.
    async fn ready(&mut self) {}
}

impl InputStream for FileStream {
    fn read(&mut self, size: usize) -> StreamResult<bytes::Bytes> {
        if self.offset >= self.node.size() {
            return Err(StreamError::Closed);
        }
        let data = self
            .node
            .read(self.offset, size as u64)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!("famfs read failed: {e:?}")))?;
        self.offset += data.len() as u64;
        Ok(data.into())
    }
}
