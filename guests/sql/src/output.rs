//! Query results written as CSV, JSON or an Arrow IPC stream.

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::ArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use std::io::Write;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// CSV with a header row (the header alone for no rows).
    #[default]
    Csv,
    /// One JSON array of objects, one per row (`[]` for no rows); nulls are left out.
    Json,
    /// An Arrow IPC stream (what `pyarrow.ipc.open_stream` reads), schema first.
    Arrow,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "arrow" => Ok(Format::Arrow),
            other => Err(format!("unknown format `{other}`: use csv, json or arrow")),
        }
    }
}

/// Writes every batch of `stream` to `out` as `format`, batch by batch (nothing but the
/// current batch is held); returns the number of rows.
pub async fn write_stream(mut stream: SendableRecordBatchStream, format: Format, out: &mut dyn Write) -> Result<u64> {
    let schema = stream.schema();
    let mut rows = 0;
    match format {
        Format::Csv => {
            let mut w = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            // The header, even for no rows.
            w.write(&RecordBatch::new_empty(schema))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                w.write(&batch)?;
            }
        }
        Format::Json => {
            let mut w = ArrayWriter::new(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                w.write(&batch)?;
            }
            // `[]` for no rows.
            w.finish()?;
            out.write_all(b"\n")?;
        }
        Format::Arrow => {
            let mut w = StreamWriter::try_new(&mut *out, &schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                w.write(&batch)?;
            }
            w.finish()?;
        }
    }
    out.flush()?;
    Ok(rows)
}
