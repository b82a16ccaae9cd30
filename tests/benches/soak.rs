//! Soak (issue 21): 10,000 invocations, 16 at a time, on one `Runtime`, with hostile guests
//! mixed in (prints a table; not a test). Every twentieth invocation is well-behaved (`wc` and
//! a mapped byte sum, whose answers are checked); the rest cycle through the adversary's cases:
//! infinite loops stopped by the time limit, memory bombs, unbounded recursion, forged handles,
//! stores into mappings under both map techniques, refused maps, mapping churn, out-of-phase
//! maps. The process's resident memory, open descriptors and kernel mappings are sampled after
//! a warm-up and at the end, with the SIGBUS guard slots and the kernel-mapping budget the
//! guests reserve, which must all be back.
//!
//! `FAMFS_SOAK_INVOCATIONS` (default 10000) and `FAMFS_SOAK_CONCURRENCY` (default 16).

use famfs_host_api::{Catalog, MapTechnique};
use famfs_run_tests::{ImageFile, guest, image_with, native, text};
use famfs_runtime::{Limits, Runtime};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (resident KiB, open descriptors, kernel mappings) of this process.
fn sample() -> (u64, usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    (rss, fds, maps)
}

/// The adversary's cases and the well-behaved guests, by invocation number: (guest, args,
/// technique).
fn case(i: usize) -> (&'static str, Vec<&'static str>, MapTechnique) {
    const HOSTILE: [&[&str]; 11] = [
        &["spin"],
        &["memory-bomb"],
        &["recurse"],
        &["forge-handle"],
        &["store", "data/big.txt"],
        &["bad-maps", "data/big.txt"],
        &["churn", "data/big.txt", "200", "0"],
        &["write-every", "data/big.txt", "65536"],
        &["map-unplaced", "data/odd.txt"],
        &["fill-later", "data/big.txt", "0"],
        &["double-drop", "data/odd.txt"],
    ];
    let technique = if (i / 7).is_multiple_of(2) { MapTechnique::Private } else { MapTechnique::Shared };
    match i % 20 {
        0 => ("wc", vec!["data/odd.txt", "data/big.txt"], technique),
        10 => ("adversary", vec!["sum", "data/big.txt"], technique),
        n => ("adversary", HOSTILE[(n + i / 20) % HOSTILE.len()].to_vec(), technique),
    }
}

fn main() {
    let total = env("FAMFS_SOAK_INVOCATIONS", 10_000);
    let concurrency = env("FAMFS_SOAK_CONCURRENCY", 16);
    let dir = famfs_run_tests::bench::dir("famfs-soak-");
    let odd = text(3_903_488, 1);
    let big = text(9 << 20, 2);
    let img = image_with(
        dir.path(),
        64 << 20,
        &[
            ImageFile { path: "data/odd.txt", data: &odd, strips: None },
            ImageFile { path: "data/big.txt", data: &big, strips: None },
        ],
    );
    let (l1, w1, b1) = native::wc(&odd);
    let (l2, w2, b2) = native::wc(&big);
    let want_wc = format!("{l1} {w1} {b1} data/odd.txt\n{l2} {w2} {b2} data/big.txt\n");
    let want_sum = format!("sum {}\n", big.iter().map(|&x| u64::from(x)).sum::<u64>());
    // Caps whose sum over 16 guests fits the process (the default 4096 kernel mappings each
    // would allow 7 at once).
    let limits = Limits {
        timeout: Some(Duration::from_millis(300)),
        max_memory: 64 << 20,
        max_kernel_mappings: 1024,
        ..Limits::default()
    };
    let runtime = Runtime::builder().limits(limits).max_concurrency(concurrency).build().unwrap();
    let programs: BTreeMap<&str, _> = ["wc", "adversary"]
        .into_iter()
        .map(|g| (g, runtime.load(&std::fs::read(guest(g)).unwrap(), false).unwrap()))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency * 2));
    let run = |range: std::ops::Range<usize>| -> BTreeMap<String, usize> {
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in range {
                let permit = slots.clone().acquire_owned().await.unwrap();
                let (g, args, technique) = case(i);
                let program = programs[g].clone();
                let runtime = runtime.clone();
                let mut inv = runtime.invocation(g);
                inv.args = args.iter().map(|a| a.to_string()).collect();
                inv.limits.map_technique = technique;
                // Hostile guests get 300 ms (the spinning ones end by it); the well-behaved ones
                // time enough that a busy machine never fails them.
                let well_behaved = g == "wc" || args.first() == Some(&"sum");
                inv.limits.timeout = Some(Duration::from_millis(if well_behaved { 60_000 } else { 300 }));
                let mut catalog = Catalog::open_device(&img).unwrap();
                catalog.grant("/").unwrap();
                inv.catalog = catalog;
                let (want_wc, want_sum) = (want_wc.clone(), want_sum.clone());
                tasks.push(tokio::spawn(async move {
                    let out = runtime.invoke(&program, inv).await;
                    drop(permit);
                    let stdout = String::from_utf8_lossy(out.stdout.as_deref().unwrap_or_default()).into_owned();
                    match (g, args.first().copied(), &out.result) {
                        ("wc", _, r) => assert!(matches!(r, Ok(0)) && stdout == want_wc, "wc: {r:?} {stdout}"),
                        (_, Some("sum"), r) => assert!(matches!(r, Ok(0)) && stdout == want_sum, "sum: {r:?} {stdout}"),
                        _ => {}
                    }
                    let kind = match &out.result {
                        Ok(code) => format!("exit {code}"),
                        Err(e) => serde_json::to_value(e)
                            .ok()
                            .and_then(|v| v["kind"].as_str().map(String::from))
                            .unwrap_or_default(),
                    };
                    format!("{g} {}: {kind}", args.first().copied().unwrap_or(""))
                }));
            }
            let mut counts = BTreeMap::new();
            for t in tasks {
                *counts.entry(t.await.unwrap()).or_insert(0) += 1;
            }
            counts
        })
    };
    let warm = 200.min(total);
    run(0..warm);
    let (guard0, budget0) = (famfs_host_api::guard::unreserved(), famfs_host_api::map_budget::unreserved());
    let fds0 = famfs_host_api::fd_budget::unreserved();
    let start = sample();
    let t = Instant::now();
    // In tenths, sampling the process after each, to tell a plateau from growth.
    let mut counts = BTreeMap::new();
    let mut series = Vec::new();
    let step = ((total - warm) / 10).max(1);
    let mut at = warm;
    while at < total {
        let next = (at + step).min(total);
        for (k, n) in run(at..next) {
            *counts.entry(k).or_insert(0) += n;
        }
        series.push((next, sample()));
        at = next;
    }
    let secs = t.elapsed().as_secs_f64();
    let end = sample();
    let (guard1, budget1) = (famfs_host_api::guard::unreserved(), famfs_host_api::map_budget::unreserved());
    let fds1 = famfs_host_api::fd_budget::unreserved();
    println!(
        "famfs-run soak: {} invocations after {warm} to warm up, {concurrency} at a time, {secs:.1} s",
        total - warm
    );
    println!();
    println!("| outcome | count |");
    println!("|---|---:|");
    for (k, n) in &counts {
        println!("| {k} | {n} |");
    }
    println!();
    println!("| process | after warm-up | at the end |");
    println!("|---|---:|---:|");
    println!("| resident memory (MiB) | {:.1} | {:.1} |", start.0 as f64 / 1024.0, end.0 as f64 / 1024.0);
    println!("| open descriptors | {} | {} |", start.1, end.1);
    println!("| kernel mappings | {} | {} |", start.2, end.2);
    println!("| SIGBUS guard slots unreserved | {guard0} | {guard1} |");
    println!("| kernel-mapping budget unreserved | {budget0} | {budget1} |");
    println!("| descriptor budget unreserved | {fds0} | {fds1} |");
    println!();
    println!("| after invocation | resident MiB | descriptors | kernel mappings |");
    println!("|---:|---:|---:|---:|");
    for (n, (rss, fds, maps)) in &series {
        println!("| {n} | {:.1} | {fds} | {maps} |", *rss as f64 / 1024.0);
    }
    assert_eq!((guard0, budget0), (guard1, budget1), "reservations were not all given back");
}
