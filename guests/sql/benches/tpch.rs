//! TPC-H benchmark of the SQL guest (prints a table; not a test): the 22 queries, over the same
//! tables in Arrow IPC and in Parquet, one thread on every side, in one run:
//! - guest: `famfs-run --json sql.wasm --timing QUERY` over a famfs image holding the tables
//!   (the query's own time, measured inside the guest; and the guest's peak linear memory);
//! - native: the same engine (this crate's library, one partition) over the files memory-mapped
//!   and decoded in place, in this process;
//! - DuckDB (the `duckdb` Python package, if installed), `SET threads = 1`, over the same files
//!   (Arrow memory-mapped by pyarrow; Parquet read by DuckDB's own reader).
//!
//! The guest's answer must equal native DataFusion's byte for byte (the benchmark stops if
//! not), and DuckDB's cell by cell (numbers to 6 significant digits or 4 decimal places; the
//! table says which cell differs if one does).
//!
//! The data is generated here with `tpchgen-arrow` (scale factor `FAMFS_BENCH_SF`, default 1)
//! into `FAMFS_BENCH_DIR` (default /dev/shm). The guest and the tools come from the host's
//! release build: `FAMFS_RUN`, `FAMFSCTL` (default `$CARGO_TARGET_DIR/release/...`, with
//! `CARGO_TARGET_DIR` defaulting to `~/.cache/famfs-run/target`), and `SQL_WASM` (default the
//! tests' build in `~/.cache/famfs-run/target/sql-target`). `FAMFS_BENCH_RUNS` (default 3) sets the
//! repetitions; medians are reported. `FAMFS_BENCH_QUERIES=q1,q6` runs some queries only (and
//! writes only the tables they read); `FAMFS_BENCH_FORMATS=arrow` one format only.
//!
//! ```sh
//! bash scripts/bench-sql.sh        # builds what it needs, then runs this
//! ```

use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::arrow::record_batch::RecordBatch;
use famfs_sql::datafusion;
use famfs_sql::output::Format;
use famfs_sql::session::{SessionOptions, new_session};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator,
    RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow,
};

include!("tpch_queries.rs");

/// Rows per record batch of the generated files.
const BATCH_ROWS: usize = 64 * 1024;

fn env_path(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(default)
}

fn cache() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/famfs-run")
}

fn host_tool(name: &str) -> PathBuf {
    let target = env_path("CARGO_TARGET_DIR", || cache().join("target"));
    let p = target.join("release").join(name);
    assert!(p.exists(), "{} is missing: build it (cargo build --release), or set its variable", p.display());
    p
}

/// The table formats the benchmark writes (the file extension each has).
const FORMATS: [&str; 2] = ["arrow", "parquet"];

/// Writes `batches` to `path` in `format`; returns the file's size.
fn write_table(path: &Path, format: &str, batches: impl Iterator<Item = RecordBatch>) -> u64 {
    let mut batches = batches.peekable();
    let schema = batches.peek().expect("rows").schema();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    if format == "parquet" {
        // Snappy, pyarrow's default, in row groups of about a million rows.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        for b in batches {
            w.write(&b).unwrap();
        }
        w.close().unwrap();
    } else {
        let mut w = FileWriter::try_new_with_options(file, &schema, IpcWriteOptions::default()).unwrap();
        for b in batches {
            w.write(&b).unwrap();
        }
        w.finish().unwrap();
    }
    std::fs::metadata(path).unwrap().len()
}

/// The file of table `table` in `format` in `dir`: `TABLE.FORMAT`.
fn table_file(dir: &Path, table: &str, format: &str) -> PathBuf {
    dir.join(format!("{table}.{format}"))
}

/// Writes the TPC-H tables among `tables` as [`table_file`]s in `dir`; returns their bytes.
fn generate(dir: &Path, sf: f64, format: &str, tables: &[&str]) -> u64 {
    tables.iter().map(|t| write_table(&table_file(dir, t, format), format, rows(t, sf))).sum()
}

/// The record batches of the TPC-H table `table` at scale factor `sf`, generated as they are read.
fn rows(table: &str, sf: f64) -> Box<dyn Iterator<Item = RecordBatch>> {
    fn ok<E: std::fmt::Debug>(b: Result<RecordBatch, E>) -> RecordBatch {
        b.expect("generate")
    }
    let n = BATCH_ROWS;
    match table {
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(n).map(ok)),
        other => panic!("no TPC-H table {other}"),
    }
}

const TABLES: [&str; 8] = ["lineitem", "orders", "customer", "supplier", "part", "partsupp", "nation", "region"];

/// The tables some query of `queries` reads (a name among its words): only those are written,
/// so `FAMFS_BENCH_QUERIES=q1,q6` at a large scale factor writes `lineitem` alone.
fn tables_read(queries: &[(&str, &str)]) -> Vec<&'static str> {
    let reads = |sql: &str, table: &str| {
        sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w.eq_ignore_ascii_case(table))
    };
    TABLES.iter().copied().filter(|t| queries.iter().any(|(_, sql)| reads(sql, t))).collect()
}

/// The native engine: (CSV result, query seconds), or the error.
///
/// Its memory pool is unbounded: its batches are slices of the memory-mapped file, and
/// DataFusion counts each one at the size of the whole mapping (arrow-rs's `capacity` of a
/// foreign buffer), so a pool would refuse joins that hold a few batches of a large file. The
/// guest's batches come through the C data interface and are counted at their own size.
fn native(
    dir: &Path,
    format: &str,
    tables: &[&str],
    sql: &str,
    rt: &tokio::runtime::Runtime,
) -> Result<(String, f64), String> {
    rt.block_on(async {
        let options = SessionOptions { memory_pool: usize::MAX, ..SessionOptions::default() };
        let ctx = new_session(options).map_err(|e| e.to_string())?;
        let tables: Vec<(String, String)> =
            tables.iter().map(|t| (t.to_string(), table_file(dir, t, format).display().to_string())).collect();
        famfs_sql::native::register_tables(&ctx, &tables).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let t = Instant::now();
        famfs_sql::query::run(&ctx, sql, Format::Csv, &mut out).await.map_err(|e| famfs_sql::query::one_line(&e))?;
        Ok((String::from_utf8(out).unwrap(), t.elapsed().as_secs_f64()))
    })
}

/// The guest through famfs-run: (CSV result, query seconds inside the guest, peak memory), or
/// the guest's error.
fn guest(
    famfs_run: &Path,
    img: &Path,
    dataset: &str,
    sql_wasm: &Path,
    cache_dir: &Path,
    sql: &str,
) -> Result<(String, f64, u64), String> {
    let o = Command::new(famfs_run)
        .args(["--json", "--max-memory", "4G", "--cache-dir"])
        .arg(cache_dir)
        .arg("-d")
        .arg(img)
        .args(["--dataset", dataset])
        .arg(sql_wasm)
        .args(["--timing", sql])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("famfs-run: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    let stderr = v["stderr"].as_str().unwrap_or_default();
    if v["result"]["exit_code"] != 0 {
        let why = stderr.lines().last().unwrap_or_default();
        return Err(format!("{}: {why}", v["result"]));
    }
    let ms: f64 = stderr
        .lines()
        .find_map(|l| l.split_once("query ").and_then(|(_, r)| r.split_once(" ms")).map(|(ms, _)| ms.parse().unwrap()))
        .unwrap_or_else(|| panic!("no timing line: {stderr}"));
    Ok((v["stdout"].as_str().unwrap().to_string(), ms / 1e3, v["metrics"]["peak_memory"].as_u64().unwrap()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One CSV text's rows (after the header), its fields unquoted (DataFusion quotes fields
/// holding commas, quotes or line breaks, and doubles quotes inside them).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows.into_iter().skip(1).collect()
}

/// Whether two cells are the same value: equal text, or numbers equal to 6 significant digits
/// or 4 decimal places (engines differ in decimal scales and float summation order).
fn same_cell(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= (1e-6 * x.abs().max(y.abs())).max(1e-4),
        _ => false,
    }
}

/// "yes", or where `ours` (CSV) and DuckDB's rows first differ.
fn compare_with_duckdb(ours: &str, duck: &serde_json::Value) -> String {
    let Some(theirs) = duck.as_array() else {
        return "-".into();
    };
    let ours = csv_rows(ours);
    if ours.len() != theirs.len() {
        return format!("NO: {} rows vs {}", ours.len(), theirs.len());
    }
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let b: Vec<&str> =
            b.as_array().map(|v| v.iter().map(|c| c.as_str().unwrap_or("")).collect()).unwrap_or_default();
        if a.len() != b.len() {
            return format!("NO: row {i} has {} columns vs {}", a.len(), b.len());
        }
        if let Some(j) = (0..a.len()).find(|&j| !same_cell(&a[j], b[j])) {
            return format!("NO: row {i} column {j}: {} vs {}", a[j], b[j]);
        }
    }
    "yes".into()
}

fn main() {
    let sf: f64 = std::env::var("FAMFS_BENCH_SF").map_or(1.0, |s| s.parse().expect("FAMFS_BENCH_SF"));
    let runs: usize = std::env::var("FAMFS_BENCH_RUNS").map_or(3, |s| s.parse().expect("FAMFS_BENCH_RUNS"));
    let only = |var: &str, all: &[&'static str]| -> Vec<&'static str> {
        match std::env::var(var) {
            Ok(v) => all.iter().copied().filter(|x| v.split(',').any(|w| w.trim() == *x)).collect(),
            Err(_) => all.to_vec(),
        }
    };
    let names: Vec<&str> = QUERIES.iter().map(|(n, _)| *n).collect();
    let chosen = only("FAMFS_BENCH_QUERIES", &names);
    let queries: Vec<(&str, &str)> = QUERIES.iter().copied().filter(|(n, _)| chosen.contains(n)).collect();
    let formats = only("FAMFS_BENCH_FORMATS", &FORMATS);
    let tables = tables_read(&queries);
    let base = env_path("FAMFS_BENCH_DIR", || {
        if Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() }
    });
    let work = tempfile_dir(&base);
    let famfs_run = env_path("FAMFS_RUN", || host_tool("famfs-run"));
    let famfsctl = env_path("FAMFSCTL", || host_tool("famfsctl"));
    let sql_wasm = env_path("SQL_WASM", || cache().join("target/sql-target/wasm32-wasip1/release/sql.wasm"));
    assert!(sql_wasm.exists(), "{} is missing: build the SQL guest (guests/sql/README.md)", sql_wasm.display());

    let data = work.join("tpch");
    let mut bytes = Vec::new();
    for format in &formats {
        let dir = data.join(format);
        std::fs::create_dir_all(&dir).unwrap();
        let t = Instant::now();
        bytes.push(generate(&dir, sf, format, &tables));
        eprintln!(
            "generated TPC-H SF {sf}: {:.0} MiB of {format} files in {:.1} s",
            *bytes.last().unwrap() as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64()
        );
    }
    let img = work.join("tpch.img");
    let img_size = (bytes.iter().sum::<u64>() + (256 << 20)).next_multiple_of(2 << 20);
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new(&famfsctl)
        .arg("-d")
        .arg(&img)
        .args(["mkfs", "--size", &img_size.to_string()])
        .env("FAMFS_SYSTEM_UUID_FILE", work.join("uuid")));
    ok(Command::new(&famfsctl)
        .arg("-d")
        .arg(&img)
        .args(["cp", "-r"])
        .arg(&data)
        .arg("/tpch")
        .env("FAMFS_SYSTEM_UUID_FILE", work.join("uuid")));
    let cache_dir = work.join("cache");
    std::fs::create_dir_all(&cache_dir).unwrap();
    // Compile the guest once into the cache; the timed runs load it from there.
    guest(&famfs_run, &img, "tpch", &sql_wasm, &cache_dir, "select 1").expect("the guest runs");

    let queries_file = work.join("queries.json");
    std::fs::write(&queries_file, serde_json::to_string(&queries).unwrap()).unwrap();
    let rt = famfs_sql::query::runtime().unwrap();
    println!("TPC-H SF {sf}; one thread everywhere; medians of {runs}");
    for (format, bytes) in formats.iter().zip(&bytes) {
        let dir = data.join(format);
        let duck_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tpch_duckdb.py");
        let duck = Command::new("python3")
            .arg(duck_script)
            .arg(&dir)
            .arg(format)
            .arg(&queries_file)
            .arg(runs.to_string())
            .output();
        let duck: serde_json::Value = match duck {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap(),
            Ok(o) => serde_json::json!({"error": String::from_utf8_lossy(&o.stderr)}),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        };
        let dataset = format!("tpch/{format}");
        println!();
        println!("{format}: {} MiB of files", bytes >> 20);
        println!();
        println!(
            "| query | guest (s) | native DataFusion (s) | guest / native | DuckDB (s) | guest / DuckDB | guest peak memory (MiB) | same answer as DuckDB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        for (name, sql) in &queries {
            let mut g = Vec::new();
            let mut n = Vec::new();
            let (mut gout, mut nout, mut peak) = (Ok(String::new()), Ok(String::new()), 0);
            // Alternate, so that both see the same machine.
            for _ in 0..runs {
                gout = guest(&famfs_run, &img, &dataset, &sql_wasm, &cache_dir, sql).map(|(out, s, p)| {
                    g.push(s);
                    peak = peak.max(p);
                    out
                });
                nout = native(&dir, format, &tables, sql, &rt).map(|(out, s)| {
                    n.push(s);
                    out
                });
                if gout.is_err() || nout.is_err() {
                    break;
                }
            }
            let (gout, nout) = match (gout, nout) {
                (Ok(g), Ok(n)) => (g, n),
                (g, n) => {
                    let why = |r: Result<String, String>| r.err().unwrap_or_else(|| "ok".into());
                    println!("| {name} | failed | | | | | | guest: {}; native: {} |", why(g), why(n));
                    continue;
                }
            };
            assert_eq!(gout, nout, "{name} ({format}): the guest and native DataFusion disagree");
            let (g, n) = (median(g), median(n));
            let (d, dr) = match duck[name]["seconds"].as_f64() {
                Some(d) => (format!("{d:.3}"), format!("{:.2}x", g / d)),
                None => ("-".into(), "-".into()),
            };
            let same = compare_with_duckdb(&gout, &duck[name]["rows"]);
            println!("| {name} | {g:.3} | {n:.3} | {:.2}x | {d} | {dr} | {} | {same} |", g / n, peak >> 20);
        }
        if let Some(e) = duck["error"].as_str() {
            println!("\nDuckDB not measured: {e}");
        }
    }
    let largest = tables
        .iter()
        .map(|t| std::fs::metadata(table_file(&data.join(formats[0]), t, formats[0])).unwrap().len())
        .max();
    println!("\nlargest {} file: {} MiB", formats[0], largest.unwrap_or(0) >> 20);
    std::fs::remove_dir_all(&work).ok();
}

/// A fresh directory under `base` (removed at the end of `main`).
fn tempfile_dir(base: &Path) -> PathBuf {
    let d = base.join(format!("famfs-tpch-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
