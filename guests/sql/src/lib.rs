//! SQL over famfs datasets: [Apache DataFusion](https://datafusion.apache.org) as a famfs-run
//! guest.
//!
//! The engine is plain DataFusion, configured for the sandbox ([`session`]): one partition, a
//! current-thread executor, a memory pool sized from the guest's memory limit, no temporary
//! files. Tables come from files:
//!
//! - **Arrow IPC** (Feather v2) files are streamed batch by batch from a
//!   [`table::BatchSource`]: in the guest, the SDK's `ArrowFile` windows, whose record batches
//!   are the mapped pages themselves; only the columns a query uses are decoded. Files with
//!   LZ4- or ZSTD-compressed buffers are decoded into new memory instead ([`ipc`]).
//! - **Parquet** and **CSV** files are handed to DataFusion's own readers as `Bytes` that are the
//!   mapped file ([`files`]): DataFusion reads them in place, through an in-memory object store
//!   that holds the mapping, not a copy.
//!
//! [`query`] runs one statement and writes its result as CSV, JSON or an Arrow IPC stream
//! ([`output`]). The `sql` binary (the guest), the `sql-native` binary (the same engine on the
//! host, over files memory-mapped) and the `sql-handler` crate (the guest as a handler) are thin
//! layers over these modules.
#![deny(missing_docs)]

pub mod args;
pub mod files;
pub mod ipc;
pub mod output;
pub mod query;
pub mod session;
pub mod table;

#[cfg(feature = "guest")]
pub mod famfs;
#[cfg(feature = "native")]
pub mod native;

pub use datafusion;
