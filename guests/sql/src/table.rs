//! Tables whose record batches come from a [`BatchSource`]: read when a query scans them, one
//! batch at a time, decoding only the columns the query uses.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use std::fmt::Debug;
use std::sync::Arc;

/// Record batches, in order, of the projected columns.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// Where a table's batches come from.
pub trait BatchSource: Debug + Send + Sync + 'static {
    /// Every column.
    fn schema(&self) -> SchemaRef;

    /// The batches with only the columns at `projection` (indices into [`BatchSource::schema`],
    /// in that order), or every column for `None`. Called once per scan: a query that reads the
    /// table twice (a self-join) reads it twice.
    fn scan(&self, projection: Option<&[usize]>) -> Result<Batches>;
}

/// A [`TableProvider`] over a [`BatchSource`].
#[derive(Debug)]
pub struct SourceTable {
    source: Arc<dyn BatchSource>,
}

impl SourceTable {
    /// The table of `source`.
    pub fn new(source: Arc<dyn BatchSource>) -> SourceTable {
        SourceTable { source }
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        self.source.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The projection is pushed into the source (which decodes only those columns); the
        // plan above sees a table of exactly those columns.
        let schema = match projection {
            Some(p) => Arc::new(self.source.schema().project(p)?),
            None => self.source.schema(),
        };
        let partition =
            Arc::new(ScanPartition { source: Arc::clone(&self.source), projection: projection.cloned(), schema });
        let schema = Arc::clone(&partition.schema);
        Ok(Arc::new(StreamingTableExec::try_new(schema, vec![partition], None, [], false, limit)?))
    }
}

/// One scan of a source: its only partition.
#[derive(Debug)]
struct ScanPartition {
    source: Arc<dyn BatchSource>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
}

impl PartitionStream for ScanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches: Batches = match self.source.scan(self.projection.as_deref()) {
            Ok(b) => b,
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        let schema = Arc::clone(&self.schema);
        // A batch whose schema differs from the table's (a source that lied) fails the query
        // rather than confusing the operators above.
        let checked = batches.map(move |b| match b {
            Ok(b) if b.schema().fields() != schema.fields() => Err(DataFusionError::Execution(format!(
                "a batch has the columns {:?}, not the table's {:?}",
                b.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            ))),
            other => other,
        });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), futures::stream::iter(checked)))
    }
}
