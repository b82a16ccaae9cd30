//! The connection layer of famfs-serve: HTTP/1.1 connections served by hyper with the limits a
//! server facing slow or flooding clients needs.
//!
//! - **Connection limit.** At most `max_connections` connections are served at once. The next
//!   one is not accepted until one closes: it waits in the kernel's listen backlog, holding no
//!   descriptor of this process, and is accepted (or refused by the kernel once the backlog is
//!   full) in turn.
//! - **Header timeout, which is also the idle timeout.** A request's header must arrive whole
//!   within `header_timeout` of the connection becoming ready for it: a client that trickles a
//!   header, or connects and sends nothing, or keeps an idle keep-alive connection open, is
//!   disconnected when it passes. (Body and invocation time are limited by the handler.)
//! - **Send timeout.** A write of the response that makes no progress for `send_timeout` (the
//!   client reads none of it, its window stays full) fails, and the connection is closed: a
//!   client that stops reading cannot keep its slot ([`SendDeadline`]).
//! - **Graceful shutdown.** On the shutdown signal the listener closes; connections finish their
//!   request in flight and are then closed.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits of the connection layer.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request's header to arrive whole, from the moment the connection is ready
    /// for the next request (so also the longest a connection may sit idle).
    pub header_timeout: Duration,
    /// Longest a write of a response may wait for the client to read.
    pub send_timeout: Duration,
}

/// A connection whose writes fail once one has waited `limit` without the client taking a
/// byte. Reads pass through (the header and body timeouts bound them).
struct SendDeadline<S> {
    inner: S,
    limit: Duration,
    /// Running while a write is pending; dropped at every write that makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        SendDeadline { inner, limit, stalled: None }
    }

    /// `r` from the inner stream, with the clock run while it is pending and stopped when not.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read none of its response for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections finish.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnLimits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then accept: past the limit, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning, keep serving the rest.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stream = SendDeadline::new(stream, limits.send_timeout);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    graceful.shutdown().await;
}
