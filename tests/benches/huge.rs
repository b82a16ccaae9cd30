//! Page sizes and copy-on-write (issue 12; prints tables, not a test).
//!
//! 1. **Scan on 2 MiB and on 4 KiB pages.** One file (`FAMFS_BENCH_SIZE`, default 1 GiB) on a
//!    `huge=always` tmpfs (mounted here; needs root) and one on /dev/shm (4 KiB pages); for each,
//!    a native mmap scan and the `sum-u64` guest's mapped scan (core module; private and shared
//!    mappings), medians of `FAMFS_BENCH_RUNS` (default 5) in one run; the ratio guest ÷ native
//!    on the same pages (goal ≥ 0.95).
//! 2. **First writes.** The `adversary write-every` guest stores one byte per 4 KiB page, and one
//!    per 2 MiB block, over a 256 MiB mapping, private (the kernel copies each 4 KiB page) and
//!    shared (famfs-run copies each 2 MiB block on its first write); the time per first write is
//!    the run's time less a run that only maps, over the writes.

use famfs_host_api::MapTechnique;
use famfs_run_tests::bench::{median, native_mmap_sum};
use famfs_run_tests::harness::{catalog_mount, run_with};
use famfs_runtime::Limits;
use std::path::{Path, PathBuf};

/// A `huge=always` tmpfs mounted for the run.
struct HugeTmpfs(PathBuf);

impl HugeTmpfs {
    fn mount(dir: &Path) -> Option<HugeTmpfs> {
        let at = dir.join("huge");
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "huge=always,size=3g", "famfs-run-bench-huge"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(HugeTmpfs(at))
    }
}

impl Drop for HugeTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn limits(technique: MapTechnique) -> Limits {
    Limits { map_technique: technique, ..Limits::default() }
}

/// Seconds of the guest's run.
fn guest(root: &Path, args: &[&str], technique: MapTechnique) -> (String, f64) {
    let r = run_with(args[0], &args[1..], catalog_mount(root, &["/"]), &[], limits(technique));
    (r.ok().to_string(), r.outcome.metrics.run_ms / 1000.0)
}

fn scan_table(size: u64, runs: usize, places: &[(&str, PathBuf)]) {
    println!(
        "| scan of {size} bytes (median of {runs}) | native s | guest private s | ratio | guest shared s | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, root) in places {
        let file = root.join("data.bin");
        famfs_run_tests::write_pattern_file(&file, size);
        let (want, _) = native_mmap_sum(&file);
        let (mut native, mut private, mut shared) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (s, t) = native_mmap_sum(&file);
            assert_eq!(s, want);
            native.push(t);
            for (technique, out) in [(MapTechnique::Private, &mut private), (MapTechnique::Shared, &mut shared)] {
                let (text, t) = guest(root, &["sum-u64", "data.bin"], technique);
                assert_eq!(text.split_whitespace().next().unwrap(), want.to_string());
                out.push(t);
            }
        }
        let (n, p, s) = (median(native), median(private), median(shared));
        println!("| {label} | {n:.4} | {p:.4} | {:.2}x | {s:.4} | {:.2}x |", n / p, n / s);
        std::fs::remove_file(&file).unwrap();
    }
}

fn first_writes(root: &Path, runs: usize) {
    let size: u64 = 256 << 20;
    let file = root.join("w.bin");
    famfs_run_tests::write_pattern_file(&file, size);
    println!();
    println!(
        "| first writes into a {} MiB mapping (median of {runs}) | writes | µs per write | MiB copied per write |",
        size >> 20
    );
    println!("|---|---:|---:|---:|");
    for technique in [MapTechnique::Private, MapTechnique::Shared] {
        let base = median((0..runs).map(|_| guest(root, &["adversary", "map-only", "w.bin"], technique).1).collect());
        for (stride, what) in [(4096usize, "every 4 KiB page"), (2 << 20, "every 2 MiB block")] {
            let stride_arg = stride.to_string();
            let times: Vec<f64> = (0..runs)
                .map(|_| guest(root, &["adversary", "write-every", "w.bin", &stride_arg], technique).1)
                .collect();
            let writes = size as usize / stride;
            let per = (median(times) - base).max(0.0) / writes as f64 * 1e6;
            // Private: the kernel copies the 4 KiB page; shared: famfs-run copies the 2 MiB block
            // at its first store, shared by the stores that follow in it.
            let copied = match technique {
                MapTechnique::Shared => 2.0 * (stride as f64 / (2 << 20) as f64).min(1.0),
                _ => 4096.0 / (1 << 20) as f64,
            };
            println!("| {technique:?}, one store {what} | {writes} | {per:.2} | {copied:.4} |");
        }
    }
    std::fs::remove_file(&file).unwrap();
}

fn main() {
    let size = famfs_run_tests::bench::size();
    let runs = famfs_run_tests::bench::runs(5);
    let dir = famfs_run_tests::bench::dir("famfs-bench-huge-");
    let small = dir.path().join("mnt");
    std::fs::create_dir_all(&small).unwrap();
    let huge = HugeTmpfs::mount(dir.path());
    let mut places: Vec<(&str, PathBuf)> = Vec::new();
    match &huge {
        Some(h) => places.push(("2 MiB pages (huge=always tmpfs)", h.0.clone())),
        None => println!("(cannot mount a huge=always tmpfs here: 2 MiB pages not measured)"),
    }
    places.push(("4 KiB pages (/dev/shm)", small.clone()));
    scan_table(size, runs, &places);
    first_writes(&small, runs);
}
