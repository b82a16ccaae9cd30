//! What a warm call of the SQL guest costs before its query runs (issue 22, item 1; prints a
//! table; not a test). The guest is the 90 MB `sql.wasm`, its compiled code already in a
//! `--cache-dir`; the tables are small (10,000 rows, as CSV and as Arrow IPC, in a famfs image),
//! so almost all of a call is fixed cost.
//!
//! - **CLI**: `famfs-run --json --cache-dir C -d IMG --dataset data sql.wasm --timing QUERY`, a
//!   process per call: wall time, the phases famfs-run reports (load: finding and mapping the
//!   compiled guest; instantiate; run) and the guest's own (opening the tables, the query), and
//!   the process's peak RSS (`wait4`). Two baselines in the same run: the same call when the
//!   module's identity is unknown (a fresh copy of `sql.wasm`, so famfs-run reads and hashes its
//!   90 MB before finding the compiled code, as every call did before issue 22), and `true`, a
//!   process that does nothing.
//! - **Embedding**: one [`Runtime`] (the compiled guest mapped from the cache once), then one
//!   invocation per call through [`famfs_runtime::Program::run`].
//!
//! Goals (issue 22): ≤ 50 ms end to end from the CLI, peak RSS well under the compiled guest's
//! size; ≤ 10 ms per call through the embedding.
//!
//! ```sh
//! cargo bench -p famfs-run-tests --bench sql_warm     # FAMFS_BENCH_RUNS (default 15)
//! ```

use famfs_run_tests::harness::catalog_device;
use famfs_run_tests::{Flavor, ImageFile, guest_for, image_with, scratch, sql_compiled_cache};
use famfs_runtime::{Runtime, Stdio};
use std::path::Path;
use std::process::{Command, Stdio as ProcStdio};
use std::sync::Arc;
use std::time::Instant;

const ROWS: usize = 10_000;

const QUERIES: [(&str, &str); 3] = [
    ("SELECT 1", "SELECT 1"),
    ("point query, CSV", "SELECT name, value FROM points_csv WHERE id = 4242"),
    ("point query, Arrow", "SELECT name, value FROM points WHERE id = 4242"),
];

/// The small table as CSV and as an Arrow IPC file.
fn tables() -> (Vec<u8>, Vec<u8>) {
    use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
    let ids: Vec<i64> = (0..ROWS as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("point-{i}")).collect();
    let values: Vec<f64> = ids.iter().map(|i| *i as f64 * 0.5).collect();
    let mut csv = b"id,name,value\n".to_vec();
    for ((i, n), v) in ids.iter().zip(&names).zip(&values) {
        csv.extend_from_slice(format!("{i},{n},{v}\n").as_bytes());
    }
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as _),
        ("name", Arc::new(StringArray::from(names)) as _),
        ("value", Arc::new(Float64Array::from(values)) as _),
    ])
    .unwrap();
    let mut arrow = Vec::new();
    let mut w = arrow_ipc::writer::FileWriter::try_new(&mut arrow, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    (csv, arrow)
}

/// One CLI call: (wall ms, famfs-run's JSON report, peak RSS in bytes).
fn cli_call(module: &Path, cache: &Path, img: &Path, sql: &str) -> (f64, serde_json::Value, u64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"))
        .args(["--json", "--cache-dir"])
        .arg(cache)
        .arg("-d")
        .arg(img)
        .args(["--dataset", "data"])
        .arg(module)
        .args(["--timing", sql])
        .stdout(ProcStdio::piped())
        .stderr(ProcStdio::piped())
        .spawn()
        .unwrap();
    let (out, rss) = wait_with_rss(child);
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("famfs-run printed no report ({e}): {}", String::from_utf8_lossy(&out)));
    assert_eq!(v["result"]["exit_code"], 0, "{sql}: {v}");
    (wall, v, rss)
}

/// Waits for `child`, returning its standard output and its peak RSS (`ru_maxrss`).
fn wait_with_rss(mut child: std::process::Child) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut err = Vec::new();
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unwaited child; `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    (out, usage.ru_maxrss as u64 * 1024)
}

/// The guest's own `timing: tables X ms, query Y ms` line: (tables ms, query ms).
fn guest_timing(report: &serde_json::Value) -> (f64, f64) {
    let stderr = report["stderr"].as_str().unwrap_or_default();
    let line = stderr.lines().find(|l| l.contains("timing: ")).unwrap_or_else(|| panic!("no timing: {stderr}"));
    let ms = |key: &str| -> f64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (ms("tables "), ms("query "))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("FAMFS_BENCH_RUNS").map_or(15, |s| s.parse().expect("FAMFS_BENCH_RUNS"));
    let dir = scratch();
    let (csv, arrow) = tables();
    let img = image_with(
        dir.path(),
        16 << 20,
        &[
            ImageFile { path: "data/points_csv.csv", data: &csv, strips: None },
            ImageFile { path: "data/points.arrow", data: &arrow, strips: None },
        ],
    );
    let sql = guest_for("sql", Flavor::Core);
    let cache = sql_compiled_cache();
    // Compile (or find) the guest, and record the module's identity (it was built long ago).
    cli_call(&sql, &cache, &img, "SELECT 1");
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap_or(0);
    let module_size = std::fs::metadata(&sql).unwrap().len();

    println!(
        "SQL guest: module {} MiB, compiled {} MiB (mapped from the cache); 10,000-row tables; medians of {runs}",
        module_size >> 20,
        artifact >> 20
    );
    println!();
    println!(
        "| CLI call (warm cache) | wall ms | vs `true` | load ms | instantiate ms | guest: tables ms | guest: query ms | rest of run ms | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let nothing = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                assert!(Command::new("true").status().unwrap().success());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!("| `true` (a process doing nothing) | {nothing:.1} | 1.0x | | | | | | |");
    let cli_row = |label: &str, module: &Path, sql: &str| {
        let (mut wall, mut load, mut inst, mut tables, mut query, mut rest, mut rss) =
            (vec![], vec![], vec![], vec![], vec![], vec![], 0);
        for _ in 0..runs {
            let (w, v, r) = cli_call(module, &cache, &img, sql);
            let m = &v["metrics"];
            let (t, q) = guest_timing(&v);
            wall.push(w);
            load.push(m["compile_ms"].as_f64().unwrap());
            inst.push(m["instantiate_ms"].as_f64().unwrap());
            tables.push(t);
            query.push(q);
            rest.push(m["run_ms"].as_f64().unwrap() - t - q);
            rss = rss.max(r);
        }
        let w = median(wall);
        println!(
            "| {label} | {w:.1} | {:.1}x | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            w / nothing,
            median(load),
            median(inst),
            median(tables),
            median(query),
            median(rest),
            rss >> 20
        );
    };
    for (label, q) in QUERIES {
        cli_row(label, &sql, q);
    }
    // The module's identity unknown: a fresh copy, read and hashed by every call (its change
    // time stays within the racy window only for a moment, so copy it again each call).
    let copy = dir.path().join("sql-copy.wasm");
    let (mut wall, mut load, mut rss) = (vec![], vec![], 0);
    for _ in 0..runs {
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&sql, &copy).unwrap();
        let (w, v, r) = cli_call(&copy, &cache, &img, "SELECT 1");
        wall.push(w);
        load.push(v["metrics"]["compile_ms"].as_f64().unwrap());
        assert_eq!(v["metrics"]["load"]["modules_read"], 1, "the copy must be read: {v}");
        rss = rss.max(r);
    }
    let w = median(wall);
    println!(
        "| SELECT 1, module read and hashed (identity unknown) | {w:.1} | {:.1}x | {:.1} | | | | | {} |",
        w / nothing,
        median(load),
        rss >> 20
    );

    // The embedding: one runtime, the guest mapped once, an invocation per call.
    let runtime = Runtime::builder().cache_dir(&cache).max_concurrency(1).build().unwrap();
    let t = Instant::now();
    let program = runtime.load_file(&sql, None, false).unwrap();
    let first_load = t.elapsed().as_secs_f64() * 1e3;
    let stats = runtime.load_stats();
    assert_eq!((stats.modules_read, stats.compiled), (0, 0), "warm: {stats:?}");
    let catalog = catalog_device(&img, &["data"]);
    println!();
    println!(
        "| embedding call (`Program::run`, guest loaded once in {first_load:.1} ms) | ms per call | instantiate ms | guest: tables ms | guest: query ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (label, q) in QUERIES {
        let (mut wall, mut inst, mut tables, mut query) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs.max(30) {
            let mut inv = runtime.invocation("sql");
            inv.args = vec!["--timing".into(), q.into()];
            inv.catalog = catalog.clone();
            inv.stdio = Stdio::Capture;
            let t = Instant::now();
            let outcome = program.run(runtime.engine(), inv);
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(outcome.result.as_ref().ok(), Some(&0), "{q}: {:?}", outcome.result);
            let stderr = String::from_utf8_lossy(outcome.stderr.as_deref().unwrap_or_default()).into_owned();
            let (t, qm) = guest_timing(&serde_json::json!({ "stderr": stderr }));
            inst.push(outcome.metrics.instantiate_ms);
            tables.push(t);
            query.push(qm);
        }
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            median(wall),
            median(inst),
            median(tables),
            median(query)
        );
    }
}
