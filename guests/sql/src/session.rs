//! A DataFusion session for the sandbox.

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::num::NonZeroUsize;
use std::sync::Arc;

/// The memory pool when the guest's limit is unknown: 1 GiB.
pub const DEFAULT_POOL: usize = 1 << 30;

/// The largest batch size a request may ask for: operators allocate whole batches up front, so
/// a huge one is a failed allocation (a trap) rather than a slow query.
pub const MAX_BATCH_ROWS: usize = 1 << 20;

/// How a session is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Bytes DataFusion's operators may hold (hash tables, sorts, buffered batches): a query
    /// that needs more fails with a "Resources exhausted" error.
    pub memory_pool: usize,
    /// Rows per batch DataFusion's operators produce.
    pub batch_size: usize,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions { memory_pool: DEFAULT_POOL, batch_size: 8192 }
    }
}

impl SessionOptions {
    /// The pool for a guest whose memory limit is `max_memory` bytes: a quarter of it. The pool
    /// counts what operators hold, but a hash table grows by doubling (for a moment the old and
    /// the new table are both there), and linear memory also holds what the pool does not see:
    /// the mapped windows of Arrow files and whole Parquet and CSV files, the engine's own
    /// allocations and the code's data. With half, a self-join's group-by hit the memory limit
    /// (a trap) before the pool's clear error; with a quarter it gets the error.
    pub fn pool_for_memory_limit(max_memory: u64) -> usize {
        usize::try_from(max_memory / 4).unwrap_or(usize::MAX)
    }
}

/// A session that runs every plan in one partition (no threads in the sandbox, and the same
/// plans on the host so that the two are compared like for like), with `information_schema`
/// on (`SHOW TABLES`, `DESCRIBE`), no temporary files (nothing spills: an operator that needs
/// more than the pool fails) and a pool of `options.memory_pool` bytes that names its biggest
/// consumers when it runs out.
pub fn new_session(options: SessionOptions) -> datafusion::error::Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(options.batch_size)
        .with_information_schema(true)
        .with_repartition_joins(false)
        .with_repartition_aggregations(false)
        .with_repartition_windows(false)
        .with_repartition_sorts(false)
        .with_repartition_file_scans(false);
    let pool = TrackConsumersPool::new(GreedyMemoryPool::new(options.memory_pool), NonZeroUsize::new(3).unwrap());
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}
