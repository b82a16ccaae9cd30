//! Many guests, one physical copy (prints a table; not a test).
//!
//! One 1 GiB dataset (`FAMFS_BENCH_SIZE`) in a famfs image in /dev/shm. K = 1, 8 and 64 guests
//! each map the whole dataset, read every page, and hold the mapping while the proportional set
//! size (PSS, from /proc/PID/smaps_rollup: shared pages divided among the processes mapping
//! them) is measured:
//! - as K separate `famfs-run` processes (stand-ins for hosts sharing one famfs), the compiled
//!   guest taken from a shared `--cache-dir`: the sum of their PSS, taken once every guest has
//!   said it is ready;
//! - as K concurrent invocations in one embedding process ([`famfs_runtime::Runtime`]): that
//!   process's largest PSS while they run.
//!
//! Target: ≤ 1.2× the dataset size for 64 guests.

use famfs_run_tests::{Flavor, big_dataset, guest_for};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// PSS of process `pid` in bytes.
fn pss(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let line = text.lines().find(|l| l.starts_with("Pss:")).expect("a Pss line");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn processes(img: &Path, cache: &Path, k: usize) -> u64 {
    let adversary = guest_for("adversary", Flavor::Core);
    let mut children: Vec<_> = (0..k)
        .map(|_| {
            // The compiled guest comes from the cache: no process compiles it again.
            Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"))
                .arg("--cache-dir")
                .arg(cache)
                .args([
                    "-d",
                    img.to_str().unwrap(),
                    "--dataset",
                    "/",
                    adversary.to_str().unwrap(),
                    "hold",
                    "data.bin",
                    "600",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut first = None;
    for c in &mut children {
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "a guest failed: {line:?}");
        assert_eq!(*first.get_or_insert_with(|| line.clone()), line, "every guest sums the same bytes");
    }
    let total = children.iter().map(|c| pss(&c.id().to_string())).sum();
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    total
}

fn in_process(runtime: &famfs_runtime::Runtime, img: &Path, k: usize) -> (u64, u64) {
    let program = runtime.load(&std::fs::read(guest_for("adversary", Flavor::Core)).unwrap(), false).unwrap();
    let baseline = pss("self");
    let (done, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(pss("self"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(k + 4).build().unwrap();
    rt.block_on(async {
        let invocations = (0..k).map(|_| {
            let mut inv = runtime.invocation("adversary");
            let mut catalog = famfs_host_api::Catalog::open_device(img).unwrap();
            catalog.grant("/").unwrap();
            inv.catalog = catalog;
            inv.args = vec!["hold".into(), "data.bin".into(), "3".into()];
            let (runtime, program) = (runtime.clone(), program.clone());
            tokio::spawn(async move { runtime.invoke(&program, inv).await })
        });
        for h in invocations.collect::<Vec<_>>() {
            let out = h.await.unwrap();
            assert_eq!(out.result.as_ref().ok(), Some(&0), "{:?}", out.result);
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (peak.load(Ordering::Relaxed), baseline)
}

fn main() {
    let size = famfs_run_tests::bench::size();
    let dir = famfs_run_tests::bench::dir("famfs-bench-");
    let (img, plain) = big_dataset(dir.path(), size);
    // Only the image's pages are shared by the guests; drop the plain copy from memory.
    std::fs::remove_file(plain).unwrap();
    let runtime = famfs_runtime::Runtime::builder().max_concurrency(64).build().unwrap();
    let cache = dir.path().join("cache");
    processes(&img, &cache, 1);
    let gib = size as f64;
    println!("famfs-run: summed PSS of K guests mapping one {size}-byte dataset");
    println!();
    println!("| guests | K processes: summed PSS | vs dataset | 1 process, K invocations: PSS | vs dataset |");
    println!("|---:|---:|---:|---:|---:|");
    for k in [1, 8, 64] {
        let p = processes(&img, &cache, k);
        let (ip, baseline) = in_process(&runtime, &img, k);
        println!(
            "| {k} | {} MiB | {:.2}x | {} MiB (idle {} MiB) | {:.2}x |",
            p >> 20,
            p as f64 / gib,
            ip >> 20,
            baseline >> 20,
            ip as f64 / gib
        );
    }
}
