//! famfs-run zero-copy vs Extism copy-in, in one run (prints a table; not a test).
//!
//! `extism-bench FAMFS_RUN FAMFSCTL SUM_HANDLER EXTISM_SUM`: one dataset (`FAMFS_BENCH_SIZE`,
//! default 1 GiB) is written to a plain file and copied into a famfs image in /dev/shm
//! (`FAMFS_BENCH_DIR`); then, per invocation (compilation excluded), its little-endian u64 words
//! are summed:
//! - famfs-run zero-copy: `sum-handler` maps the dataset (`--invoke handle`, `map:data.bin`);
//!   the time is the invocation's own wall time as famfs-run reports it (instantiate + run);
//! - Extism copy-in: the host reads the file and calls the plugin's `sum` with it (Extism copies
//!   the input into its kernel's memory; the plugin reads it out through host calls);
//! - Extism call only: the same call with the bytes already in host memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let o = cmd.output().expect("run a command");
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

fn parse_size(s: &str) -> u64 {
    let (num, mult) = match s.chars().last() {
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<u64>().expect("FAMFS_BENCH_SIZE") * mult
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [famfs_run, famfsctl, sum_handler, extism_sum] = args.as_slice() else {
        panic!("usage: extism-bench FAMFS_RUN FAMFSCTL SUM_HANDLER.wasm EXTISM_SUM.wasm");
    };
    let size = std::env::var("FAMFS_BENCH_SIZE").map_or(1 << 30, |s| parse_size(&s));
    let runs: usize = std::env::var("FAMFS_BENCH_RUNS").map_or(5, |s| s.parse().expect("FAMFS_BENCH_RUNS"));
    let base = std::env::var("FAMFS_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let dir = Path::new(&base).join(format!("famfs-extism-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("data.bin");
    // Pseudo-random bytes (xorshift), written once.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(&plain, &data).unwrap();
    drop(data);
    let img = dir.join("famfs.img");
    let uuid = ("FAMFS_SYSTEM_UUID", "11111111-2222-4333-8444-555555555555");
    let img_size = format!("{}M", (size >> 20) + 64);
    run(Command::new(famfsctl).env(uuid.0, uuid.1).args(["mkfs", "--size", &img_size]).arg(&img));
    run(Command::new(famfsctl).env(uuid.0, uuid.1).arg("-d").arg(&img).args(["cp", "-q"]).arg(&plain).arg("data.bin"));
    let request = dir.join("request");
    std::fs::write(&request, b"map:data.bin").unwrap();
    let cache = dir.join("cache");

    let plugin_bytes = std::fs::read(extism_sum).expect("the Extism plugin");
    let manifest = extism::Manifest::new([extism::Wasm::data(plugin_bytes)]);
    let mut plugin = extism::Plugin::new(&manifest, [], true).expect("load the Extism plugin");
    let (mut zero, mut copy_in, mut call_only) = (Vec::new(), Vec::new(), Vec::new());
    let mut want: Option<String> = None;
    for _ in 0..runs {
        let out = run(Command::new(famfs_run)
            .args(["--json", "--cache-dir"])
            .arg(&cache)
            .arg("-d")
            .arg(&img)
            .args(["--dataset", "/", "--invoke", "handle", "--input"])
            .arg(&request)
            .arg(sum_handler));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let sum = v["reply"].as_str().expect("a reply").to_string();
        assert_eq!(want.get_or_insert_with(|| sum.clone()), &sum);
        zero.push(v["metrics"]["wall_ms"].as_f64().unwrap() / 1000.0);

        let t = Instant::now();
        let bytes = std::fs::read(&plain).unwrap();
        let sum: String = plugin.call("sum", bytes.as_slice()).expect("the Extism call");
        copy_in.push(t.elapsed().as_secs_f64());
        assert_eq!(want.as_deref(), Some(sum.as_str()), "Extism's sum");

        let t = Instant::now();
        let sum: String = plugin.call("sum", bytes.as_slice()).expect("the Extism call");
        call_only.push(t.elapsed().as_secs_f64());
        assert_eq!(want.as_deref(), Some(sum.as_str()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let z = median(zero);
    println!("famfs-run zero-copy vs Extism 1.20 copy-in: {size} bytes, per invocation, median of {runs}");
    println!();
    println!("| method | seconds | vs famfs-run zero-copy |");
    println!("|---|---:|---:|");
    println!("| famfs-run, zero-copy map | {z:.3} | 1.00x |");
    let c = median(copy_in);
    println!("| Extism, read file + call(sum, bytes) | {c:.3} | {:.1}x |", c / z);
    let o = median(call_only);
    println!("| Extism, call(sum, bytes) only | {o:.3} | {:.1}x |", o / z);
}
