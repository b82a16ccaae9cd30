//! TPC-H benchmark of the SQL guest (prints a table; not a test). In one run, one thread on
//! every side, over the same Arrow IPC files:
//! - guest: `famfs-run --json sql.wasm --timing QUERY` over a famfs image holding the tables
//!   (the query's own time, measured inside the guest; and the guest's peak linear memory);
//! - native: the same engine (this crate's library, one partition) over the files memory-mapped
//!   and decoded in place, in this process;
//! - DuckDB (the `duckdb` Python package, if installed), `SET threads = 1`, over the same files
//!   memory-mapped by pyarrow.
//!
//! The data is generated here with `tpchgen-arrow` (scale factor `FAMFS_BENCH_SF`, default 1)
//! into `FAMFS_BENCH_DIR` (default /dev/shm). The guest and the tools come from the host's
//! release build: `FAMFS_RUN`, `FAMFSCTL` (default `$CARGO_TARGET_DIR/release/...`, with
//! `CARGO_TARGET_DIR` defaulting to `~/.cache/famfs-run/target`), and `SQL_WASM` (default the
//! tests' build in `~/.cache/famfs-run/target/sql-target`). `FAMFS_BENCH_RUNS` (default 3) sets the
//! repetitions; medians are reported.
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
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, RegionGenerator,
    SupplierGenerator,
};
use tpchgen_arrow::{CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, RegionArrow, SupplierArrow};

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

fn write_table(path: &Path, batches: impl Iterator<Item = RecordBatch>) -> u64 {
    let mut batches = batches.peekable();
    let schema = batches.peek().expect("rows").schema();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = FileWriter::try_new_with_options(file, &schema, IpcWriteOptions::default()).unwrap();
    for b in batches {
        w.write(&b).unwrap();
    }
    w.finish().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Writes the TPC-H tables the queries use as Arrow IPC files in `dir`; returns their bytes.
fn generate(dir: &Path, sf: f64) -> u64 {
    let mut total = 0;
    total += write_table(
        &dir.join("lineitem.arrow"),
        LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("orders.arrow"),
        OrderArrow::new(OrderGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("customer.arrow"),
        CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("supplier.arrow"),
        SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("part.arrow"),
        PartArrow::new(PartGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("nation.arrow"),
        NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total += write_table(
        &dir.join("region.arrow"),
        RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS).map(|b| b.expect("generate")),
    );
    total
}

const TABLES: [&str; 7] = ["lineitem", "orders", "customer", "supplier", "part", "nation", "region"];

/// The native engine: (CSV result, query seconds).
fn native(dir: &Path, sql: &str, rt: &tokio::runtime::Runtime) -> (String, f64) {
    rt.block_on(async {
        let ctx = new_session(SessionOptions::default()).unwrap();
        let tables: Vec<(String, String)> =
            TABLES.iter().map(|t| (t.to_string(), dir.join(format!("{t}.arrow")).display().to_string())).collect();
        famfs_sql::native::register_tables(&ctx, &tables).await.unwrap();
        let mut out = Vec::new();
        let t = Instant::now();
        famfs_sql::query::run(&ctx, sql, Format::Csv, &mut out).await.unwrap();
        (String::from_utf8(out).unwrap(), t.elapsed().as_secs_f64())
    })
}

/// The guest through famfs-run: (CSV result, query seconds inside the guest, peak memory).
fn guest(famfs_run: &Path, img: &Path, sql_wasm: &Path, cache_dir: &Path, sql: &str) -> (String, f64, u64) {
    let o = Command::new(famfs_run)
        .args(["--json", "--max-memory", "4G", "--cache-dir"])
        .arg(cache_dir)
        .arg("-d")
        .arg(img)
        .args(["--dataset", "tpch"])
        .arg(sql_wasm)
        .args(["--timing", sql])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("famfs-run: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    let stderr = v["stderr"].as_str().unwrap_or_default();
    assert_eq!(v["result"]["exit_code"], 0, "guest failed: {v}");
    let ms: f64 = stderr
        .lines()
        .find_map(|l| l.split_once("query ").and_then(|(_, r)| r.split_once(" ms")).map(|(ms, _)| ms.parse().unwrap()))
        .unwrap_or_else(|| panic!("no timing line: {stderr}"));
    (v["stdout"].as_str().unwrap().to_string(), ms / 1e3, v["metrics"]["peak_memory"].as_u64().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let sf: f64 = std::env::var("FAMFS_BENCH_SF").map_or(1.0, |s| s.parse().expect("FAMFS_BENCH_SF"));
    let runs: usize = std::env::var("FAMFS_BENCH_RUNS").map_or(3, |s| s.parse().expect("FAMFS_BENCH_RUNS"));
    let base = env_path("FAMFS_BENCH_DIR", || {
        if Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() }
    });
    let work = tempfile_dir(&base);
    let famfs_run = env_path("FAMFS_RUN", || host_tool("famfs-run"));
    let famfsctl = env_path("FAMFSCTL", || host_tool("famfsctl"));
    let sql_wasm = env_path("SQL_WASM", || cache().join("target/sql-target/wasm32-wasip1/release/sql.wasm"));
    assert!(sql_wasm.exists(), "{} is missing: build the SQL guest (guests/sql/README.md)", sql_wasm.display());

    let data = work.join("tpch");
    std::fs::create_dir_all(&data).unwrap();
    let t = Instant::now();
    let bytes = generate(&data, sf);
    eprintln!(
        "generated TPC-H SF {sf}: {:.0} MiB of Arrow files in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let img = work.join("tpch.img");
    let img_size = (bytes + (256 << 20)).next_multiple_of(2 << 20);
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
    guest(&famfs_run, &img, &sql_wasm, &cache_dir, "select 1");

    let queries = work.join("queries.json");
    std::fs::write(&queries, serde_json::to_string(&QUERIES).unwrap()).unwrap();
    let duck_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tpch_duckdb.py");
    let duck = Command::new("python3").arg(duck_script).arg(&data).arg(&queries).arg(runs.to_string()).output();
    let duck: serde_json::Value = match duck {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap(),
        Ok(o) => serde_json::json!({"error": String::from_utf8_lossy(&o.stderr)}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };

    let rt = famfs_sql::query::runtime().unwrap();
    let largest_window =
        TABLES.iter().map(|t| std::fs::metadata(data.join(format!("{t}.arrow"))).unwrap().len()).max().unwrap();
    println!("TPC-H SF {sf}, {} MiB of Arrow files; one thread everywhere; medians of {runs}", bytes >> 20);
    println!();
    println!(
        "| query | guest (s) | native DataFusion (s) | guest / native | DuckDB (s) | guest / DuckDB | guest peak memory (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, sql) in QUERIES {
        let mut g = Vec::new();
        let mut n = Vec::new();
        let (mut gout, mut nout, mut peak) = (String::new(), String::new(), 0);
        // Alternate, so that both see the same machine.
        for _ in 0..runs {
            let (out, s, p) = guest(&famfs_run, &img, &sql_wasm, &cache_dir, sql);
            g.push(s);
            gout = out;
            peak = peak.max(p);
            let (out, s) = native(&data, sql, &rt);
            n.push(s);
            nout = out;
        }
        assert_eq!(gout, nout, "{name}: the guest and native DataFusion disagree");
        let (g, n) = (median(g), median(n));
        let (d, dr) = match duck[name]["seconds"].as_f64() {
            Some(d) => (format!("{d:.3}"), format!("{:.2}x", g / d)),
            None => ("-".into(), "-".into()),
        };
        println!("| {name} | {g:.3} | {n:.3} | {:.2}x | {d} | {dr} | {} |", g / n, peak >> 20);
    }
    if let Some(e) = duck["error"].as_str() {
        println!("\nDuckDB not measured: {e}");
    }
    println!("\nlargest table file (the whole file is one window up to 1 GiB): {} MiB", largest_window >> 20);
    std::fs::remove_dir_all(&work).ok();
}

/// A fresh directory under `base` (removed at the end of `main`).
fn tempfile_dir(base: &Path) -> PathBuf {
    let d = base.join(format!("famfs-tpch-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
