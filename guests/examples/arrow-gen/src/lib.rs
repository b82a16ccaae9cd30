//! A deterministic "sensor readings" table with columns of several types and nulls, written as
//! an uncompressed Arrow IPC file with arrow-rs: the demo's dataset (the `arrow-gen` binary) and
//! the data of the Arrow tests and benchmark (`famfs-run-tests`).

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, LargeStringBuilder, StringBuilder,
    StringDictionaryBuilder, UInt8Builder, UInt64Builder,
};
use arrow_array::types::Int16Type;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_ipc::writer::{FileWriter, IpcWriteOptions};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::path::Path;
use std::sync::Arc;

/// Distinct sensors (`sensor` keys, besides null).
pub const SENSORS: u64 = 1000;

/// The table's schema:
/// - `ts` Int64, not null: a timestamp in seconds, increasing;
/// - `sensor` Utf8: `s000`..`s999` (one is `s,007 "x"`, to exercise CSV quoting), null every
///   101st row;
/// - `site` Dictionary(Int16, Utf8): 12 sites, null every 53rd row;
/// - `zone` Int32: -25..25, null every 71st row;
/// - `device` UInt64: multiples of 2^40 (beyond 32 bits);
/// - `label` LargeUtf8: 5 labels;
/// - `celsius` Float64: readings, null every 17th row, NaN every 997th;
/// - `count` Int64: -500_000..500_000, null every 29th row;
/// - `level` UInt8, not null;
/// - `ratio` Float32: null every 13th row;
/// - `ok` Boolean.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("sensor", DataType::Utf8, true),
        Field::new("site", DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)), true),
        Field::new("zone", DataType::Int32, true),
        Field::new("device", DataType::UInt64, true),
        Field::new("label", DataType::LargeUtf8, true),
        Field::new("celsius", DataType::Float64, true),
        Field::new("count", DataType::Int64, true),
        Field::new("level", DataType::UInt8, false),
        Field::new("ratio", DataType::Float32, true),
        Field::new("ok", DataType::Boolean, true),
    ]))
}

/// A small, fast generator (xorshift), so that every run makes the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Rows `first .. first + rows` of the table as one record batch.
pub fn batch(first: u64, rows: usize) -> RecordBatch {
    const SITES: [&str; 12] = [
        "amsterdam",
        "berlin",
        "chennai",
        "denver",
        "essen",
        "fargo",
        "ghent",
        "hanoi",
        "izmir",
        "juneau",
        "kyoto",
        "lima",
    ];
    const LABELS: [&str; 5] = ["indoor", "outdoor", "cellar", "roof", "lab"];
    let mut ts = Int64Builder::with_capacity(rows);
    let mut sensor = StringBuilder::with_capacity(rows, rows * 4);
    // The same dictionary in every batch: the file format cannot replace one.
    let mut site = StringDictionaryBuilder::<Int16Type>::new_with_dictionary(rows, &StringArray::from(SITES.to_vec()))
        .expect("distinct sites");
    let mut zone = Int32Builder::with_capacity(rows);
    let mut device = UInt64Builder::with_capacity(rows);
    let mut label = LargeStringBuilder::with_capacity(rows, rows * 6);
    let mut celsius = Float64Builder::with_capacity(rows);
    let mut count = Int64Builder::with_capacity(rows);
    let mut level = UInt8Builder::with_capacity(rows);
    let mut ratio = Float32Builder::with_capacity(rows);
    let mut ok = BooleanBuilder::with_capacity(rows);
    let mut rng = Rng(first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for i in first..first + rows as u64 {
        let r = rng.next();
        ts.append_value(1_700_000_000 + i as i64);
        let s = r % SENSORS;
        match (i % 101, s) {
            (0, _) => sensor.append_null(),
            (_, 7) => sensor.append_value("s,007 \"x\""),
            _ => sensor.append_value(format!("s{s:03}")),
        }
        if i % 53 == 0 {
            site.append_null();
        } else {
            site.append_value(SITES[(r >> 10) as usize % SITES.len()]);
        }
        zone.append_option((i % 71 != 0).then_some(((r >> 20) % 51) as i32 - 25));
        device.append_value(((r >> 26) % 40) << 40);
        label.append_value(LABELS[(r >> 32) as usize % LABELS.len()]);
        celsius.append_option(match i {
            i if i % 17 == 0 => None,
            i if i % 997 == 0 => Some(f64::NAN),
            _ => Some(-10.0 + ((r >> 11) % 4000) as f64 / 100.0 + (s as f64) / 64.0),
        });
        count.append_option((i % 29 != 0).then_some(((r >> 7) % 1_000_001) as i64 - 500_000));
        level.append_value((r >> 40) as u8);
        ratio.append_option((i % 13 != 0).then_some(((r >> 44) % 1000) as f32 / 7.0));
        ok.append_option((i % 3 != 0).then_some(r & 1 == 1));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(sensor.finish()),
        Arc::new(site.finish()),
        Arc::new(zone.finish()),
        Arc::new(device.finish()),
        Arc::new(label.finish()),
        Arc::new(celsius.finish()),
        Arc::new(count.finish()),
        Arc::new(level.finish()),
        Arc::new(ratio.finish()),
        Arc::new(ok.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("the columns match the schema")
}

/// The whole table: `rows` rows in batches of `batch_rows`.
pub fn batches(rows: u64, batch_rows: usize) -> impl Iterator<Item = RecordBatch> {
    (0..rows).step_by(batch_rows).map(move |first| batch(first, (rows - first).min(batch_rows as u64) as usize))
}

/// Writes `batches` as an Arrow IPC file with arrow-rs: uncompressed, buffers aligned to
/// `alignment` bytes (arrow-rs's default is 64; 8, 16, 32 and 64 are allowed).
pub fn write_file(
    path: &Path,
    schema: &Schema,
    batches: impl IntoIterator<Item = RecordBatch>,
    alignment: usize,
) -> Result<(), ArrowError> {
    let file = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path)?);
    write(file, schema, batches, alignment)
}

/// [`write_file`] to any writer (standard output, say).
pub fn write(
    out: impl std::io::Write,
    schema: &Schema,
    batches: impl IntoIterator<Item = RecordBatch>,
    alignment: usize,
) -> Result<(), ArrowError> {
    let options = IpcWriteOptions::try_new(alignment, false, arrow_ipc::MetadataVersion::V5)?;
    let mut w = FileWriter::try_new_with_options(out, schema, options)?;
    for b in batches {
        w.write(&b)?;
    }
    w.finish()?;
    w.into_inner()?.flush()?;
    Ok(())
}
