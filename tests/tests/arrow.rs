//! Arrow datasets: the `arrow-agg` guest reads Arrow IPC files zero-copy (famfs-guest's
//! `arrow` feature) and its group-by agrees with the same aggregation computed on the host
//! (over arrow-rs arrays) and with pandas (over a file pyarrow wrote); files it cannot read in
//! place are refused with a message that says what to do; famfsctl cp keeps their buffers
//! aligned.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use famfs_run_tests::Flavor;
use famfs_run_tests::harness::{Run, catalog_device, catalog_mount, run, run_flavor, run_with};
use famfs_run_tests::{ImageFile, image_with, mount_with, scratch};
use famfs_runtime::Limits;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A key as the host computes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum K {
    Int(i128),
    Str(String),
    Null,
}

/// A value: integers exactly, floats as f64.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V {
    I(i128),
    F(f64),
}

impl V {
    fn f64(self) -> f64 {
        match self {
            V::I(i) => i as f64,
            V::F(f) => f,
        }
    }
}

/// The keys of a column, row by row.
fn keys_of(a: &dyn Array) -> Vec<K> {
    let ints = |v: Vec<Option<i128>>| v.into_iter().map(|x| x.map_or(K::Null, K::Int)).collect();
    let strs = |v: Vec<Option<&str>>| v.into_iter().map(|x| x.map_or(K::Null, |s| K::Str(s.to_string()))).collect();
    match a.data_type() {
        DataType::Int32 => ints(a.as_primitive::<Int32Type>().iter().map(|x| x.map(i128::from)).collect()),
        DataType::Int64 => ints(a.as_primitive::<Int64Type>().iter().map(|x| x.map(i128::from)).collect()),
        DataType::UInt8 => ints(a.as_primitive::<UInt8Type>().iter().map(|x| x.map(i128::from)).collect()),
        DataType::UInt64 => ints(a.as_primitive::<UInt64Type>().iter().map(|x| x.map(i128::from)).collect()),
        DataType::Utf8 => strs(a.as_string::<i32>().iter().collect()),
        DataType::LargeUtf8 => strs(a.as_string::<i64>().iter().collect()),
        DataType::Dictionary(k, _) if **k == DataType::Int16 => {
            let d = a.as_dictionary::<Int16Type>();
            let values = keys_of(d.values().as_ref());
            d.keys().iter().map(|k| k.map_or(K::Null, |k| values[k as usize].clone())).collect()
        }
        DataType::Dictionary(k, _) if **k == DataType::Int32 => {
            let d = a.as_dictionary::<Int32Type>();
            let values = keys_of(d.values().as_ref());
            d.keys().iter().map(|k| k.map_or(K::Null, |k| values[k as usize].clone())).collect()
        }
        t => panic!("no host keys for {t}"),
    }
}

/// The values of a column, row by row (nulls and NaNs as None).
fn values_of(a: &dyn Array) -> Vec<Option<V>> {
    let f = |x: Option<f64>| x.filter(|v| !v.is_nan()).map(V::F);
    match a.data_type() {
        DataType::Int32 => a.as_primitive::<Int32Type>().iter().map(|x| x.map(|v| V::I(v.into()))).collect(),
        DataType::Int64 => a.as_primitive::<Int64Type>().iter().map(|x| x.map(|v| V::I(v.into()))).collect(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().iter().map(|x| x.map(|v| V::I(v.into()))).collect(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().iter().map(|x| x.map(|v| V::I(v.into()))).collect(),
        DataType::Float64 => a.as_primitive::<Float64Type>().iter().map(f).collect(),
        DataType::Float32 => a.as_primitive::<Float32Type>().iter().map(|x| f(x.map(f64::from))).collect(),
        t => panic!("no host values for {t}"),
    }
}

/// One group as the host computes it.
#[derive(Debug)]
struct Row {
    key: K,
    count: u64,
    sum: V,
    min: Option<V>,
    max: Option<V>,
}

/// The host's group-by of `batches`: rows in order, so float sums add in the guest's order.
fn host_groupby(batches: &[RecordBatch], key: &str, value: &str) -> Vec<Row> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for b in batches {
        let keys = keys_of(b.column_by_name(key).unwrap().as_ref());
        let values = values_of(b.column_by_name(value).unwrap().as_ref());
        let float =
            matches!(b.schema().field_with_name(value).unwrap().data_type(), DataType::Float32 | DataType::Float64);
        for (k, v) in keys.into_iter().zip(values) {
            let i = *index.entry(k.clone()).or_insert_with(|| {
                rows.push(Row { key: k, count: 0, sum: if float { V::F(0.0) } else { V::I(0) }, min: None, max: None });
                rows.len() - 1
            });
            let Some(v) = v else { continue };
            let r = &mut rows[i];
            r.count += 1;
            r.sum = match (r.sum, v) {
                (V::I(a), V::I(b)) => V::I(a + b),
                (a, b) => V::F(a.f64() + b.f64()),
            };
            let pick = |old: Option<V>, less: bool| match old {
                Some(o) if (v.f64() < o.f64()) != less || v.f64() == o.f64() => Some(o),
                _ => Some(v),
            };
            r.min = pick(r.min, true);
            r.max = pick(r.max, false);
        }
    }
    rows.sort_by(|a, b| match (&a.key, &b.key) {
        (K::Null, K::Null) => std::cmp::Ordering::Equal,
        (K::Null, _) => std::cmp::Ordering::Greater,
        (_, K::Null) => std::cmp::Ordering::Less,
        (K::Int(x), K::Int(y)) => x.cmp(y),
        (K::Str(x), K::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => panic!("mixed key kinds"),
    });
    rows
}

fn json_key(v: &Value) -> K {
    match v {
        Value::Null => K::Null,
        Value::String(s) => K::Str(s.clone()),
        Value::Number(n) => K::Int(n.as_i128().or_else(|| n.as_f64().map(|f| f as i128)).unwrap()),
        v => panic!("unexpected key {v}"),
    }
}

fn json_num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        v => Some(v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))),
    }
}

/// `a == b` up to the last bit or two, which serde_json's float parsing (not correctly
/// rounded without its `float_roundtrip` feature) may lose from the guest's shortest-form output.
fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs()),
        (a, b) => a == b,
    }
}

/// The guest's JSON equals the host's group-by (same order of float additions, so the same
/// floats, up to JSON parsing).
fn assert_equals_host(label: &str, out: &str, want: &[Row]) {
    let got: Vec<Value> = serde_json::from_str(out).unwrap_or_else(|e| panic!("{label}: {e}: {out}"));
    assert_eq!(got.len(), want.len(), "{label}: number of groups");
    for (g, w) in got.iter().zip(want) {
        let ctx = format!("{label}: group {g} vs {w:?}");
        assert_eq!(json_key(&g["key"]), w.key, "{ctx}");
        assert_eq!(g["count"].as_u64(), Some(w.count), "{ctx}");
        match w.sum {
            V::I(s) => assert_eq!(g["sum"].as_i64().map(i128::from), Some(s), "{ctx}"),
            V::F(s) => assert!(same(g["sum"].as_f64(), Some(s)), "{ctx}"),
        }
        let mean = (w.count > 0).then(|| w.sum.f64() / w.count as f64);
        assert!(same(json_num(&g["mean"]), mean), "{ctx}");
        assert!(same(json_num(&g["min"]), w.min.map(V::f64)), "{ctx}");
        assert!(same(json_num(&g["max"]), w.max.map(V::f64)), "{ctx}");
    }
}

/// A multi-batch sensor table written with arrow-rs, in an image (plain and striped) and a mount.
struct Fixture {
    _dir: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
    batches: Vec<RecordBatch>,
    len: u64,
}

/// Rows and rows per batch of the fixture: about 5 MiB in 12 batches.
const ROWS: u64 = 90_000;
const BATCH_ROWS: usize = 8_000;

fn fixture() -> Fixture {
    let dir = scratch();
    let batches: Vec<RecordBatch> = arrow_gen::batches(ROWS, BATCH_ROWS).collect();
    let path = dir.path().join("sensors.arrow");
    arrow_gen::write_file(&path, &arrow_gen::schema(), batches.clone(), 64).unwrap();
    let data = std::fs::read(&path).unwrap();
    let files = [
        ImageFile { path: "data/sensors.arrow", data: &data, strips: None },
        ImageFile { path: "striped/sensors.arrow", data: &data, strips: Some(3) },
    ];
    let img = image_with(dir.path(), 128 << 20, &files);
    let mnt = mount_with(dir.path(), &files);
    Fixture { _dir: dir, img, mnt, batches, len: data.len() as u64 }
}

fn agg(catalog: famfs_host_api::Catalog, args: &[&str]) -> Run {
    run("arrow-agg", args, catalog)
}

#[test]
fn group_by_equals_the_hosts_for_every_key_and_value_type() {
    let f = fixture();
    let pairs = [
        ("sensor", "celsius"), // Utf8 key with nulls, f64 with nulls and NaN
        ("site", "count"),     // dictionary key, i64 with nulls
        ("zone", "level"),     // i32 key with nulls, u8
        ("device", "ratio"),   // u64 key beyond 32 bits, f32 with nulls
        ("label", "zone"),     // LargeUtf8 key, i32 with nulls
        ("level", "device"),   // u8 key, u64
        ("count", "count"),    // key and value the same column
    ];
    for (key, value) in pairs {
        let want = host_groupby(&f.batches, key, value);
        let sources = [
            ("image", catalog_device(&f.img, &["/"]), "data/sensors.arrow"),
            ("striped image", catalog_device(&f.img, &["/"]), "striped/sensors.arrow"),
            ("mount", catalog_mount(&f.mnt, &["/"]), "data/sensors.arrow"),
        ];
        for (label, catalog, name) in sources {
            let r = agg(catalog, &["--format", "json", name, key, value]);
            assert_equals_host(&format!("{label} {key}/{value}"), r.ok(), &want);
        }
    }
}

/// arrow-agg built for wasm32-wasip2 (a component) and adapted from wasm32-wasip1 gives the same
/// aggregates, zero-copy.
#[test]
fn arrow_agg_as_a_component() {
    let f = fixture();
    let want = host_groupby(&f.batches, "site", "count");
    for flavor in [Flavor::Component, Flavor::Adapted] {
        for window in ["64M", "1M"] {
            let args = ["--format", "json", "--window", window, "data/sensors.arrow", "site", "count"];
            let r = run_flavor(flavor, "arrow-agg", &args, catalog_device(&f.img, &["/"]), &[], Default::default());
            assert_equals_host(&format!("{flavor:?} --window {window}"), r.ok(), &want);
            assert!(r.outcome.metrics.bytes_mapped >= f.len, "{flavor:?}: zero-copy");
        }
    }
}

#[test]
fn small_windows_walk_the_batches_and_give_the_same_result() {
    let f = fixture();
    let want = host_groupby(&f.batches, "sensor", "celsius");
    let whole = agg(catalog_device(&f.img, &["/"]), &["--format", "json", "data/sensors.arrow", "sensor", "celsius"]);
    for window in ["1M", "2M", "3M"] {
        let r = agg(
            catalog_device(&f.img, &["/"]),
            &["--format", "json", "--window", window, "data/sensors.arrow", "sensor", "celsius"],
        );
        assert_equals_host(&format!("--window {window}"), r.ok(), &want);
        assert_eq!(r.ok(), whole.ok());
    }
    // --info decodes every column of every batch: the windows really were several.
    let r = agg(catalog_device(&f.img, &["/"]), &["--info", "--window", "1M", "data/sensors.arrow"]);
    let info = r.ok();
    assert!(info.contains(&format!("batches: {}\n", f.batches.len())), "{info}");
    assert!(info.contains(&format!("rows: {ROWS}\n")), "{info}");
    let windows: u64 = info.lines().find_map(|l| l.strip_prefix("windows: ")).unwrap().parse().unwrap();
    assert!(windows >= f.len / (1 << 20), "{windows} windows of 1 MiB over {} bytes", f.len);
    // arrow-rs writes 64-byte aligned buffers: everything is read in place.
    assert!(info.ends_with("realigned: 0 buffers, 0 bytes\n"), "{info}");
    assert!(info.starts_with("ts: Int64 not null\nsensor: Utf8\nsite: Dictionary(Int16, Utf8)\n"), "{info}");
}

/// Batches hold their window: with --keep every batch stays alive until all are read, so every
/// window stays mapped at once (more memory) and the aggregates are the same; without it, each
/// window's range is reused and memory stays near one window.
#[test]
fn batches_keep_their_windows_mapped() {
    let f = fixture();
    let want = host_groupby(&f.batches, "site", "celsius");
    let args = ["--format", "json", "--window", "1M", "data/sensors.arrow", "site", "celsius"];
    let streaming = agg(catalog_device(&f.img, &["/"]), &args);
    assert_equals_host("streaming", streaming.ok(), &want);
    let mut keep = vec!["--keep"];
    keep.extend_from_slice(&args);
    let kept = agg(catalog_device(&f.img, &["/"]), &keep);
    assert_equals_host("--keep", kept.ok(), &want);
    let (s, k) = (streaming.outcome.metrics.peak_memory, kept.outcome.metrics.peak_memory);
    assert!(k >= s + f.len * 3 / 4, "--keep peaked at {k} bytes, streaming at {s}: the windows were not all kept");
    assert!(s < f.len, "streaming peaked at {s} bytes for a {}-byte file: windows were not reused", f.len);
}

#[test]
fn csv_output_quotes_keys_and_leaves_missing_values_empty() {
    use arrow_array::{Float64Array, StringArray};
    use std::sync::Arc;
    let dir = scratch();
    let keys = StringArray::from(vec![Some("b"), Some("a,\"1\""), None, Some(""), Some("b"), Some("c")]);
    let values = Float64Array::from(vec![Some(1.5), Some(-2.0), Some(4.0), Some(0.25), Some(2.5), None]);
    let batch = RecordBatch::try_from_iter([("k", Arc::new(keys) as _), ("v", Arc::new(values) as _)]).unwrap();
    let path = dir.path().join("t.arrow");
    arrow_gen::write_file(&path, &batch.schema(), [batch], 64).unwrap();
    let data = std::fs::read(&path).unwrap();
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "t.arrow", data: &data, strips: None }]);
    let r = agg(catalog_device(&img, &["/"]), &["t.arrow", "k", "v"]);
    // Groups sorted by key bytes, the null key last; "c" has no values.
    let want = "k,count,sum,mean,min,max\n\
                \"\",1,0.25,0.25,0.25,0.25\n\
                \"a,\"\"1\"\"\",1,-2,-2,-2,-2\n\
                b,2,4,2,1.5,2.5\n\
                c,0,0,,,\n\
                ,1,4,4,4,4\n";
    assert_eq!(r.ok(), want);
}

/// python3 with pyarrow and pandas (installed by scripts/test-deps.sh, which CI runs).
fn python(args: &[&str]) -> String {
    let script = famfs_run_tests::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/pandas_side.py");
    let probe = std::process::Command::new("python3").args(["-c", "import pyarrow, pandas"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "these tests need python3 with pyarrow and pandas: run `bash scripts/test-deps.sh` (or `python3 -m pip \
             install pyarrow pandas`)"
        ),
    }
    let o = std::process::Command::new("python3").arg(script).args(args).output().unwrap();
    assert!(o.status.success(), "python3 {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
        _ => false,
    }
}

#[test]
fn a_pyarrow_file_gives_what_pandas_computes() {
    let dir = scratch();
    let path = dir.path().join("py.arrow");
    let p = path.to_str().unwrap();
    python(&["write", p, "60000", "7000", "uncompressed"]);
    let data = std::fs::read(&path).unwrap();
    let img = image_with(dir.path(), 64 << 20, &[ImageFile { path: "py/table.arrow", data: &data, strips: None }]);
    let pairs = [("sensor", "celsius"), ("site", "count"), ("zone", "ratio"), ("sensor", "level"), ("zone", "count")];
    for (key, value) in pairs {
        let want: Vec<Value> = serde_json::from_str(&python(&["agg", p, key, value])).unwrap();
        for window in [None, Some("512K")] {
            let mut args = vec!["--format", "json"];
            if let Some(w) = window {
                args.extend(["--window", w]);
            }
            args.extend(["py/table.arrow", key, value]);
            let r = agg(catalog_device(&img, &["/"]), &args);
            let got: Vec<Value> = serde_json::from_str(r.ok()).unwrap();
            let label = format!("{key}/{value} window {window:?}");
            assert_eq!(got.len(), want.len(), "{label}: groups: {got:?} vs {want:?}");
            // pandas orders categories by the dictionary, the guest by key bytes: match by key.
            let by_key: HashMap<K, &Value> = want.iter().map(|w| (json_key(&w[key]), w)).collect();
            for g in &got {
                let w = by_key.get(&json_key(&g["key"])).unwrap_or_else(|| panic!("{label}: pandas has no {g}"));
                for c in ["count", "sum", "mean", "min", "max"] {
                    assert!(close(json_num(&g[c]), json_num(&w[c])), "{label}: {c}: guest {g} pandas {w}");
                }
            }
        }
    }
}

#[test]
fn compressed_files_are_refused_with_what_to_do() {
    let dir = scratch();
    let path = dir.path().join("lz4.arrow");
    python(&["write", path.to_str().unwrap(), "20000", "5000", "lz4"]);
    let data = std::fs::read(&path).unwrap();
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "lz4.arrow", data: &data, strips: None }]);
    let r = agg(catalog_device(&img, &["/"]), &["lz4.arrow", "sensor", "celsius"]);
    assert_eq!(r.code(), 1, "stderr: {}", r.stderr);
    // pyarrow writes the dictionary (of `site`) first: that is the first compressed message.
    assert!(r.stderr.contains("dictionary batch 0 is compressed (LZ4_FRAME)"), "{}", r.stderr);
    assert!(r.stderr.contains("compression=\"uncompressed\""), "{}", r.stderr);
}

/// Moves every record batch of an Arrow IPC file 4 bytes further (4 zero bytes before the first
/// batch, the footer's block offsets edited to match): a well-formed file whose batches are no
/// longer 8-byte aligned.
fn misalign(data: &[u8]) -> Vec<u8> {
    let n = data.len();
    let footer_len = i32::from_le_bytes(data[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer_start = n - 10 - footer_len;
    let footer = arrow_ipc::root_as_footer(&data[footer_start..n - 10]).unwrap();
    let blocks: Vec<arrow_ipc::Block> = footer.recordBatches().unwrap().iter().copied().collect();
    let first = blocks.iter().map(|b| b.offset() as usize).min().unwrap();
    let mut footer_bytes = data[footer_start..n - 10].to_vec();
    // Each Block is a 24-byte struct inline in the footer: offset (i64), metadata length (i32),
    // padding, body length (i64). Find each by its bytes and shift its offset.
    for b in &blocks {
        let mut pattern = b.offset().to_le_bytes().to_vec();
        pattern.extend_from_slice(&b.metaDataLength().to_le_bytes());
        let at = footer_bytes.windows(12).position(|w| w == pattern.as_slice()).expect("block in the footer");
        footer_bytes[at..at + 8].copy_from_slice(&(b.offset() + 4).to_le_bytes());
    }
    let mut out = data[..first].to_vec();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&data[first..footer_start]);
    out.extend_from_slice(&footer_bytes);
    out.extend_from_slice(&data[n - 10..]);
    out
}

/// File offset of the last buffer of the first record batch.
fn last_buffer_offset(data: &[u8]) -> u64 {
    let n = data.len();
    let footer_len = i32::from_le_bytes(data[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer = arrow_ipc::root_as_footer(&data[n - 10 - footer_len..n - 10]).unwrap();
    let block = footer.recordBatches().unwrap().get(0);
    let (off, meta) = (block.offset() as usize, block.metaDataLength() as usize);
    let message = arrow_ipc::root_as_message(&data[off + 8..off + meta]).unwrap();
    let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
    (off + meta) as u64 + buffers.get(buffers.len() - 1).offset() as u64
}

#[test]
fn misaligned_files_are_refused_and_16_byte_values_realigned() {
    let dir = scratch();
    let path = dir.path().join("ok.arrow");
    arrow_gen::write_file(&path, &arrow_gen::schema(), arrow_gen::batches(3000, 1000), 64).unwrap();
    let shifted = misalign(&std::fs::read(&path).unwrap());
    // A Decimal128 column (16-byte values) written with arrow-rs's 8-byte alignment: with as
    // many Int8 columns before it as it takes, its values land 8 bytes off a 16-byte boundary
    // of the file, which arrow-rs will not use in place.
    let decimal = (0..4)
        .map(|prefix| {
            use arrow_array::{ArrayRef, Decimal128Array, Int8Array};
            use std::sync::Arc;
            let d = Decimal128Array::from(vec![Some(1_i128), None, Some(3)]).with_precision_and_scale(20, 2).unwrap();
            let mut cols: Vec<(String, ArrayRef)> = (0..prefix)
                .map(|i| (format!("tiny{i}"), Arc::new(Int8Array::from(vec![Some(1_i8), None, Some(3)])) as ArrayRef))
                .collect();
            cols.push(("price".into(), Arc::new(d)));
            let b = RecordBatch::try_from_iter(cols).unwrap();
            let p = dir.path().join("decimal.arrow");
            arrow_gen::write_file(&p, &b.schema(), [b], 8).unwrap();
            std::fs::read(p).unwrap()
        })
        .find(|data| last_buffer_offset(data) % 16 == 8)
        .expect("some layout puts the decimal values 8 bytes off 16");
    let img = image_with(
        dir.path(),
        16 << 20,
        &[
            ImageFile { path: "shifted.arrow", data: &shifted, strips: None },
            ImageFile { path: "decimal.arrow", data: &decimal, strips: None },
        ],
    );
    let r = agg(catalog_device(&img, &["/"]), &["shifted.arrow", "sensor", "celsius"]);
    assert_eq!(r.code(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("record batch 0 is misaligned"), "{}", r.stderr);
    assert!(r.stderr.contains("64-byte alignment"), "{}", r.stderr);
    // The format's 8-byte alignment holds; only the 16-byte values are off: that one buffer
    // (3 values, 48 bytes) is copied and counted, the rest is read in place.
    let r = agg(catalog_device(&img, &["/"]), &["--info", "decimal.arrow"]);
    assert!(r.ok().contains("price: Decimal128(20, 2)\n"), "{}", r.stdout);
    assert!(r.stdout.ends_with("batches: 1\nrows: 3\nwindows: 1\nrealigned: 1 buffers, 48 bytes\n"), "{}", r.stdout);
}

#[test]
fn a_batch_bigger_than_the_window_is_refused() {
    let f = fixture();
    let r = agg(catalog_device(&f.img, &["/"]), &["--window", "128K", "data/sensors.arrow", "sensor", "celsius"]);
    assert_eq!(r.code(), 1, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("record batch 0 needs a"), "{}", r.stderr);
    assert!(r.stderr.contains("more than the 131072-byte window"), "{}", r.stderr);
    assert!(r.stderr.contains("smaller record batches"), "{}", r.stderr);
}

#[test]
fn wrong_columns_and_types_are_named() {
    let f = fixture();
    let r = agg(catalog_device(&f.img, &["/"]), &["data/sensors.arrow", "sensr", "celsius"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr.contains("no column 'sensr'; its columns are: ts, sensor, site"), "{}", r.stderr);
    let r = agg(catalog_device(&f.img, &["/"]), &["data/sensors.arrow", "celsius", "count"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr.contains("key column 'celsius' has type Float64: group by an integer or string"), "{}", r.stderr);
    let r = agg(catalog_device(&f.img, &["/"]), &["data/sensors.arrow", "sensor", "ok"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr.contains("value column 'ok' has type Boolean"), "{}", r.stderr);
    let r = agg(catalog_device(&f.img, &["/"]), &["data/sensors.arrow", "sensor"]);
    assert_eq!(r.code(), 2, "wrong usage");
}

/// Files that are not Arrow IPC files, or are damaged, fail with an error, never a trap: the
/// checks before arrow-rs keep its panicking slices from seeing bad offsets.
#[test]
fn bad_files_fail_cleanly() {
    let dir = scratch();
    let path = dir.path().join("ok.arrow");
    arrow_gen::write_file(&path, &arrow_gen::schema(), arrow_gen::batches(6000, 1000), 64).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut files: Vec<(String, Vec<u8>, &str)> = vec![
        ("text.csv".into(), b"a,b\n1,2\n3,4\n".repeat(100), "does not start with the ARROW1 magic"),
        ("short.arrow".into(), b"ARROW1".to_vec(), "only 6 bytes long"),
        ("cut.arrow".into(), good[..good.len() - 100].to_vec(), "does not end with the ARROW1 magic"),
        (
            "stream.arrow".into(),
            [b"ARROW1\0\0".as_slice(), &good[8..good.len() - 6], b"ARROW2"].concat(),
            "ARROW1 magic",
        ),
    ];
    // A footer length past the file.
    let mut long_footer = good.clone();
    let n = long_footer.len();
    long_footer[n - 10..n - 6].copy_from_slice(&(n as i32).to_le_bytes());
    files.push(("long-footer.arrow".into(), long_footer, "does not fit in the"));
    // Random damage to the metadata (the footer and each message's flatbuffer): seeded, so a
    // failure reproduces.
    let n = good.len();
    let footer_len = i32::from_le_bytes(good[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer_start = n - 10 - footer_len;
    let footer = arrow_ipc::root_as_footer(&good[footer_start..n - 10]).unwrap();
    let mut meta_ranges = Vec::new();
    meta_ranges.push(footer_start..n - 10);
    for b in footer.recordBatches().unwrap().iter().chain(footer.dictionaries().unwrap().iter()) {
        meta_ranges.push(b.offset() as usize..b.offset() as usize + b.metaDataLength() as usize);
    }
    let noise = famfs_run_tests::pattern(4096, 99);
    for i in 0..120 {
        let mut bad = good.clone();
        let range = &meta_ranges[i % meta_ranges.len()];
        for j in 0..1 + i % 4 {
            let r = u64::from_le_bytes(noise[(i * 4 + j) * 8 % 4088..][..8].try_into().unwrap());
            let at = range.start + (r as usize) % range.len();
            bad[at] = (r >> 32) as u8;
        }
        files.push((format!("damaged-{i}.arrow"), bad, ""));
    }
    let spec: Vec<ImageFile<'_>> =
        files.iter().map(|(p, d, _)| ImageFile { path: p.as_str(), data: d.as_slice(), strips: None }).collect();
    let img = image_with(dir.path(), 512 << 20, &spec);
    let mut failed = 0;
    for (name, _, expect) in &files {
        for args in [vec![name.as_str(), "sensor", "celsius"], vec!["--info", name.as_str()]] {
            let r = run_with("arrow-agg", &args, catalog_device(&img, &["/"]), &[], Limits::default());
            let code = r.code(); // panics (with the trap) if the guest trapped
            assert!(code == 0 || code == 1, "{name}: exit {code}: {}", r.stderr);
            if code == 1 {
                failed += 1;
                assert!(r.stderr.starts_with(&format!("error: {name}: ")), "{name}: {}", r.stderr);
            }
            assert!(expect.is_empty() || r.stderr.contains(expect), "{name}: want '{expect}' in: {}", r.stderr);
        }
    }
    // Most random damage is caught (some lands in padding or in values arrow-rs does not check).
    assert!(failed > files.len(), "only {failed} of {} runs failed", 2 * files.len());
}

/// famfsctl, built beside this test binary by `cargo test --workspace` (scripts/test.sh).
fn famfsctl() -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().and_then(Path::parent).unwrap().join("famfsctl");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test.sh), which builds famfsctl, or \
         `cargo build -p famfs --bin famfsctl` first",
        p.display()
    );
    let mut c = std::process::Command::new(p);
    c.env_remove("FAMFS_DEVICE").env("FAMFS_SYSTEM_UUID", famfs_run_tests::MASTER_UUID);
    c
}

/// famfsctl cp places a file at a 2 MiB-aligned device offset, so the 64-byte alignment of the
/// buffers inside an arrow-rs file holds on the device too, and the guest maps it in place.
#[test]
fn famfsctl_cp_keeps_arrow_buffers_aligned() {
    let dir = scratch();
    let src = dir.path().join("sensors.arrow");
    let batches: Vec<RecordBatch> = arrow_gen::batches(40_000, 6000).collect();
    arrow_gen::write_file(&src, &arrow_gen::schema(), batches.clone(), 64).unwrap();
    let img = dir.path().join("cp.img");
    let img_s = img.to_str().unwrap();
    for args in [vec!["mkfs", "--size", "64M", img_s], vec!["-d", img_s, "mkdir", "-p", "/arrow"]] {
        let o = famfsctl().args(&args).output().unwrap();
        assert!(o.status.success(), "famfsctl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // A small file first, so the Arrow file is not simply at the start of the data area.
    std::fs::write(dir.path().join("note.txt"), b"hello").unwrap();
    for name in ["note.txt", "sensors.arrow"] {
        let o =
            famfsctl().args(["-d", img_s, "cp", dir.path().join(name).to_str().unwrap(), "/arrow/"]).output().unwrap();
        assert!(o.status.success(), "famfsctl cp {name}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // Where each record batch's body (its buffers) lies on the device.
    let fs = famfs::Famfs::open(&img).unwrap();
    let meta = fs.namespace().file("arrow/sensors.arrow").unwrap();
    let data = std::fs::read(&src).unwrap();
    let n = data.len();
    let footer_len = i32::from_le_bytes(data[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer = arrow_ipc::root_as_footer(&data[n - 10 - footer_len..n - 10]).unwrap();
    let blocks = footer.recordBatches().unwrap();
    assert_eq!(blocks.len(), batches.len());
    for b in blocks.iter() {
        let body = (b.offset() + i64::from(b.metaDataLength())) as u64;
        let piece = meta.map.pieces(body, 1).next().expect("the body is in the file's map");
        assert_eq!(
            piece.device_offset % 64,
            0,
            "body at file offset {body} lies at device offset {}",
            piece.device_offset
        );
    }
    let first = meta.map.pieces(0, 1).next().unwrap();
    assert_eq!(first.device_offset % (2 << 20), 0, "the file starts 2 MiB-aligned on the device");
    // And the guest reads it in place from the image famfsctl wrote.
    let want = host_groupby(&batches, "zone", "celsius");
    let r = agg(catalog_device(&img, &["/"]), &["--format", "json", "arrow/sensors.arrow", "zone", "celsius"]);
    assert_equals_host("famfsctl cp", r.ok(), &want);
    assert!(r.outcome.metrics.bytes_mapped >= n as u64, "the file was mapped, not read");
}
