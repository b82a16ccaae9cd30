//! Zero-copy benchmark (prints a table; not a test). In one run, on one file:
//! - native: mmap + wrapping u64 sum, compiled for the host;
//! - guest mapped: `sum-u64` mapping the file zero-copy (famfs:dataset map), faulting pages in
//!   on first touch, and with `--populate` (one MADV_POPULATE_READ when mapping);
//! - guest WASI read: `sum-u64 --mode wasi` reading the same file through WASI fd_read;
//! - map + instantiate: a guest that only maps a 1 MiB and a 3 GiB file.
//!
//! `FAMFS_BENCH_SIZE` (default 1G) sets the file size, `FAMFS_BENCH_DIR` where it is written
//! (default /dev/shm, else the temp dir), `FAMFS_BENCH_RUNS` the repetitions (default 5).

use famfs_host_api::Catalog;
use famfs_run_tests::bench::median;
use famfs_run_tests::harness::{catalog_mount, run_with};
use famfs_runtime::Limits;

fn main() {
    let size = famfs_run_tests::bench::size();
    let runs = famfs_run_tests::bench::runs(5);
    let dir = famfs_run_tests::bench::dir("famfs-bench-");
    let root = dir.path().join("mnt");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("data.bin");
    famfs_run_tests::write_pattern_file(&file, size);
    let gb = size as f64 / 1e9;
    println!("famfs-run zero-copy benchmark: {} byte file in {}", size, dir.path().parent().unwrap().display());
    let (want, _) = famfs_run_tests::bench::native_mmap_sum(&file);
    let mut native = Vec::new();
    let mut mapped = Vec::new();
    let mut populated = Vec::new();
    let mut wasi = Vec::new();
    for _ in 0..runs {
        let (s, t) = famfs_run_tests::bench::native_mmap_sum(&file);
        assert_eq!(s, want);
        native.push(t);
        let r = run_with("sum-u64", &["data.bin"], catalog_mount(&root, &["/"]), &[], Limits::default());
        assert_eq!(r.ok().split_whitespace().next().unwrap(), want.to_string(), "mapped guest sum");
        mapped.push(r.outcome.metrics.run_ms / 1000.0);
        let r = run_with("sum-u64", &["--populate", "data.bin"], catalog_mount(&root, &["/"]), &[], Limits::default());
        assert_eq!(r.ok().split_whitespace().next().unwrap(), want.to_string(), "populated guest sum");
        populated.push(r.outcome.metrics.run_ms / 1000.0);
        let r = run_with(
            "sum-u64",
            &["--mode", "wasi", "/d/data.bin"],
            Catalog::empty(),
            &[("/d", root.clone())],
            Limits::default(),
        );
        assert_eq!(r.ok().split_whitespace().next().unwrap(), want.to_string(), "WASI guest sum");
        wasi.push(r.outcome.metrics.run_ms / 1000.0);
    }
    let (n, m, p, w) = (median(native), median(mapped), median(populated), median(wasi));
    println!();
    println!("| sum of {size} bytes (median of {runs}) | seconds | GB/s | vs native |");
    println!("|---|---:|---:|---:|");
    println!("| native mmap | {n:.4} | {:.2} | 1.00x |", gb / n);
    println!("| guest, mapped zero-copy | {m:.4} | {:.2} | {:.2}x |", gb / m, n / m);
    println!("| guest, mapped zero-copy, --populate | {p:.4} | {:.2} | {:.2}x |", gb / p, n / p);
    println!("| guest, WASI fd_read | {w:.4} | {:.2} | {:.2}x |", gb / w, n / w);

    // Map + instantiate: 1 MiB vs 3 GiB (sparse: mapping never touches the pages).
    let small = root.join("small.bin");
    std::fs::write(&small, famfs_run_tests::pattern(1 << 20, 7)).unwrap();
    let big = root.join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(3 << 30).unwrap();
    let mut table = Vec::new();
    for name in ["small.bin", "big.bin"] {
        let mut times = Vec::new();
        for _ in 0..runs.max(5) {
            let r = run_with("adversary", &["map-only", name], catalog_mount(&root, &["/"]), &[], Limits::default());
            r.ok();
            times.push(r.outcome.metrics.instantiate_ms + r.outcome.metrics.run_ms);
        }
        table.push((name, median(times)));
    }
    println!();
    println!("| map + instantiate (median) | ms | vs 1 MiB |");
    println!("|---|---:|---:|");
    println!("| 1 MiB | {:.3} | 1.00x |", table[0].1);
    println!("| 3 GiB | {:.3} | {:.2}x |", table[1].1, table[1].1 / table[0].1);
}
