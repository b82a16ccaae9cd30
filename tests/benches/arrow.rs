//! Arrow group-by benchmark (prints a table; not a test). In one run, on one Arrow IPC file
//! written here with arrow-rs (about 1 GiB, the sensor table of examples/arrow-gen), for a few
//! group-by queries:
//! - native: the `arrow_agg` kernel compiled for the host over the file mmapped and decoded
//!   zero-copy with arrow-rs's `FileDecoder` (the same code the guest runs);
//! - guest: `arrow-agg` mapping the file zero-copy (compile and instantiate excluded; mapping
//!   and unmapping included, as for native);
//! - pandas: `pd.read_feather(path, columns=[key, value])` then the same groupby, timed inside
//!   Python (interpreter start and imports excluded), the group-by alone and read + group-by.
//!
//! `FAMFS_BENCH_SIZE` (default 1G) sets the file size, `FAMFS_BENCH_DIR` where it is written
//! (default /dev/shm, else the temp dir), `FAMFS_BENCH_RUNS` the repetitions (default 3).

use arrow_agg::{GroupBy, write_csv};
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use famfs_run_tests::bench::median;
use famfs_run_tests::harness::{catalog_mount, run_with};
use famfs_runtime::Limits;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

/// Rows per record batch.
const BATCH_ROWS: usize = 128 * 1024;

/// The guest's computation, natively: mmap, decode the two columns zero-copy, group, format.
fn native(path: &Path, key: &str, value: &str) -> (String, f64) {
    let t = Instant::now();
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the benchmark owns this file and nothing truncates it while it is mapped.
    let mmap = unsafe { memmap2::Mmap::map(&file).unwrap() };
    let (ptr, len) = (NonNull::new(mmap.as_ptr().cast_mut()).unwrap(), mmap.len());
    // SAFETY: the mapping is valid for `len` bytes while `mmap` lives, and the buffer owns it.
    let data = unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(mmap)) };
    let footer_len = i32::from_le_bytes(data[len - 10..len - 6].try_into().unwrap()) as usize;
    let footer = arrow_ipc::root_as_footer(&data[len - 10 - footer_len..len - 10]).unwrap();
    let schema = Arc::new(arrow_ipc::convert::try_fb_to_schema(footer.schema().unwrap()).unwrap());
    let (k, v) = (schema.index_of(key).unwrap(), schema.index_of(value).unwrap());
    let mut agg = GroupBy::new(schema.field(k), schema.field(v)).unwrap();
    let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version())
        .with_require_alignment(true)
        .with_projection(vec![k, v]);
    for b in footer.dictionaries().iter().flatten() {
        let bytes = data.slice_with_length(b.offset() as usize, b.metaDataLength() as usize + b.bodyLength() as usize);
        decoder.read_dictionary(b, &bytes).unwrap();
    }
    for b in footer.recordBatches().unwrap() {
        let bytes = data.slice_with_length(b.offset() as usize, b.metaDataLength() as usize + b.bodyLength() as usize);
        let batch = decoder.read_record_batch(b, &bytes).unwrap().unwrap();
        agg.update(batch.column(0), batch.column(1)).unwrap();
    }
    let mut out = String::new();
    write_csv(&mut out, key, &agg.finish());
    // The guest's time includes unmapping, so this one does too.
    drop(decoder);
    drop(data);
    (out, t.elapsed().as_secs_f64())
}

/// pandas' medians (read, group-by) in seconds, and its total count.
fn pandas(path: &Path, key: &str, value: &str, runs: usize) -> (f64, f64, u64) {
    let script = famfs_run_tests::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/pandas_side.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .args(["time", path.to_str().unwrap(), key, value, &runs.to_string()])
        .output()
        .expect("python3 (with pyarrow and pandas: bash scripts/test-deps.sh)");
    assert!(
        o.status.success(),
        "pandas failed (install pyarrow and pandas: bash scripts/test-deps.sh): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["read_s"].as_f64().unwrap(), v["groupby_s"].as_f64().unwrap(), v["count"].as_u64().unwrap())
}

/// The sum of the count column of a CSV result.
fn total_count(csv: &str) -> u64 {
    // Fields after the key; the key may be quoted and hold commas, so count from the right.
    csv.lines().skip(1).map(|l| l.rsplit(',').nth(4).unwrap().parse::<u64>().unwrap()).sum()
}

fn main() {
    let size = famfs_run_tests::bench::size();
    let runs = famfs_run_tests::bench::runs(3);
    let dir = famfs_run_tests::bench::dir("famfs-bench-arrow-");
    let root = dir.path().join("mnt");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("sensors.arrow");
    // Size one batch, then write as many as fit in `size`.
    let one = dir.path().join("one.arrow");
    arrow_gen::write_file(&one, &arrow_gen::schema(), [arrow_gen::batch(0, BATCH_ROWS)], 64).unwrap();
    let per_batch = std::fs::metadata(&one).unwrap().len();
    let rows = (size / per_batch).max(1) * BATCH_ROWS as u64;
    let t = Instant::now();
    arrow_gen::write_file(&file, &arrow_gen::schema(), arrow_gen::batches(rows, BATCH_ROWS), 64).unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    println!(
        "famfs-run Arrow group-by benchmark: {len} byte file, {rows} rows in {} batches, in {} (written in {:.1} s)",
        rows / BATCH_ROWS as u64,
        dir.path().parent().unwrap().display(),
        t.elapsed().as_secs_f64()
    );

    let queries = [
        ("sensor", "celsius", "Utf8 key, f64"),
        ("site", "count", "dictionary key, i64"),
        ("zone", "count", "i32 key, i64"),
    ];
    let mut table = Vec::new();
    for (key, value, what) in queries {
        let (want, _) = native(&file, key, value);
        let (mut n, mut g) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (out, t) = native(&file, key, value);
            assert_eq!(out, want);
            n.push(t);
            let r = run_with(
                "arrow-agg",
                &["sensors.arrow", key, value],
                catalog_mount(&root, &["/"]),
                &[],
                Limits::default(),
            );
            assert_eq!(r.ok(), want, "guest and native results differ");
            g.push(r.outcome.metrics.run_ms / 1000.0);
        }
        let (read, group, count) = pandas(&file, key, value, runs);
        assert_eq!(count, total_count(&want), "pandas and the kernel count different values");
        table.push((key, value, what, median(n), median(g), group, read + group));
    }
    println!();
    println!(
        "| group-by over {len} bytes (median of {runs}) | native arrow-rs, mmap | guest, mapped zero-copy | pandas groupby only | pandas read_feather + groupby |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (key, value, what, n, g, pg, pt) in table {
        println!(
            "| `{key}` / `{value}` ({what}) | {n:.3} s (1.00x) | {g:.3} s ({:.2}x) | {pg:.3} s ({:.2}x) | {pt:.3} s ({:.2}x) |",
            g / n,
            pg / n,
            pt / n
        );
    }
    println!();
    println!(
        "Ratios are time / native time (lower is faster). pandas is timed inside Python, interpreter start and imports excluded."
    );
}
