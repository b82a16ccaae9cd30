//! Running one SQL statement.

use crate::output::{Format, write_stream};
use datafusion::error::Result;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use std::io::Write;
use std::time::Duration;

/// What a run took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Time to register the tables (read footers and schemas, map files).
    pub tables: Duration,
    /// Time to plan and run the query and write its result.
    pub query: Duration,
}

impl Summary {
    /// The `--timing` line.
    pub fn timing_line(&self) -> String {
        format!(
            "timing: tables {:.3} ms, query {:.3} ms, {} rows",
            self.tables.as_secs_f64() * 1e3,
            self.query.as_secs_f64() * 1e3,
            self.rows
        )
    }
}

/// Runs `sql` (one statement) in `ctx` and writes its result to `out` as `format`; returns the
/// number of rows. Queries, `EXPLAIN`, `SHOW`, `DESCRIBE` and views are allowed; statements
/// that write (`INSERT`, `COPY`) are refused with DataFusion's message.
pub async fn run(ctx: &SessionContext, sql: &str, format: Format, out: &mut dyn Write) -> Result<u64> {
    let options = SQLOptions::new().with_allow_dml(false);
    let frame = ctx.sql_with_options(sql, options).await?;
    let stream = frame.execute_stream().await?;
    write_stream(stream, format, out).await
}

/// A current-thread tokio runtime (the sandbox has one thread) on which to run the engine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().build()
}

/// `error` on one line: DataFusion puts each context it adds on a line of its own.
pub fn one_line(error: &datafusion::error::DataFusionError) -> String {
    error.to_string().trim_end().replace("\ncaused by\n", ": ").replace('\n', " ")
}
