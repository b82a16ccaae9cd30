//! Captured standard output and error of one invocation, kept in host memory up to a limit
//! ([`crate::Limits::max_output`]).
//!
//! Past the limit, output is counted and dropped, and the guest's writes still succeed: a guest
//! that logs too much loses its excess log, not its run (wasmtime-wasi's own memory pipe fails
//! the write instead, and a Rust guest's `println!` then panics). The outcome reports how many
//! bytes were dropped.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Most bytes one write is told it may make (the guest writes in pieces of this size).
const WRITE_BUDGET: usize = 64 << 10;

/// One captured stream; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct CapturePipe {
    kept: Arc<Mutex<BytesMut>>,
    dropped: Arc<AtomicU64>,
    capacity: usize,
}

impl CapturePipe {
    /// Keeps up to `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> CapturePipe {
        CapturePipe { kept: Arc::default(), dropped: Arc::default(), capacity }
    }

    /// What was kept.
    pub(crate) fn contents(&self) -> Vec<u8> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).to_vec()
    }

    /// How many bytes were dropped past the limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Keeps what fits of `bytes`, counts the rest.
    fn take(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(kept.len());
        let n = bytes.len().min(room);
        kept.extend_from_slice(&bytes[..n]);
        self.dropped.fetch_add((bytes.len() - n) as u64, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturePipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_limit_and_counts_the_rest() {
        let mut p = CapturePipe::new(10);
        p.write(Bytes::from_static(b"hello ")).unwrap();
        p.write(Bytes::from_static(b"world, again")).unwrap();
        assert_eq!(p.contents(), b"hello worl");
        assert_eq!(p.dropped(), 8);
        assert_eq!(p.check_write().unwrap(), WRITE_BUDGET, "writes keep succeeding");
    }
}
