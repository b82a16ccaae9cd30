//! Zero-copy vs copy-in vs WASI read, end to end per invocation (prints a table; not a test).
//!
//! One 1 GiB dataset (`FAMFS_BENCH_SIZE`), in a famfs image in /dev/shm (`FAMFS_BENCH_DIR`),
//! summed as little-endian u64 words by a guest invoked through the embedding API
//! ([`famfs_runtime::Runtime::invoke`]), each way timed from the request to the reply,
//! instantiation included (compilation excluded: the guest is loaded once):
//! - zero-copy: the `sum-handler` component maps the dataset (`map:data.bin`);
//! - copy-in (what Extism-style runtimes do): the host reads the dataset into a buffer and
//!   passes it as the handler's input, which the canonical ABI copies into guest memory;
//! - WASI read: the `sum-u64` component reads the same bytes through `wasi:filesystem` (the
//!   plain-file copy of the dataset, preopened read-only).
//!
//! Peak memory is the guest's linear memory at its largest (for zero-copy that is address space
//! over the shared page cache, not new memory), plus the host buffer copy-in needs.

use famfs_run_tests::bench::median;
use famfs_run_tests::{Flavor, big_dataset, guest_for};
use famfs_runtime::{Entry, Runtime};
use std::time::Instant;

fn main() {
    let size = famfs_run_tests::bench::size();
    let runs = famfs_run_tests::bench::runs(5);
    let dir = famfs_run_tests::bench::dir("famfs-bench-");
    let (img, plain) = big_dataset(dir.path(), size);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let runtime = Runtime::new().unwrap();
    let read = |name: &str| std::fs::read(guest_for(name, Flavor::Component)).unwrap();
    let sum_handler = runtime.load(&read("sum_handler"), false).unwrap();
    let sum_u64 = runtime.load(&read("sum-u64"), false).unwrap();
    let catalog = || {
        let mut c = famfs_host_api::Catalog::open_device(&img).unwrap();
        c.grant("/").unwrap();
        c
    };

    let mut rows: Vec<(&str, Vec<f64>, u64, u64)> = vec![
        ("zero-copy map", vec![], 0, 0),
        ("copy-in (host buffer → guest memory)", vec![], 0, 0),
        ("WASI read", vec![], 0, 0),
    ];
    let mut want = None;
    for _ in 0..runs {
        // Zero-copy.
        let t = Instant::now();
        let mut inv = runtime.invocation("sum-handler");
        inv.catalog = catalog();
        inv.entry = Entry::Handle { input: b"map:data.bin".to_vec() };
        let out = rt.block_on(runtime.invoke(&sum_handler, inv));
        rows[0].1.push(t.elapsed().as_secs_f64());
        let got = String::from_utf8(out.reply.clone().expect("zero-copy reply")).unwrap();
        assert_eq!(*want.get_or_insert_with(|| got.clone()), got);
        rows[0].2 = rows[0].2.max(out.metrics.peak_memory);

        // Copy-in: the host reads the dataset (through famfs) and passes the bytes in.
        let t = Instant::now();
        let fs = famfs::Famfs::open(&img).unwrap();
        let bytes = fs.read_to_vec(fs.namespace().file("data.bin").unwrap()).unwrap();
        let host_buffer = bytes.len() as u64;
        let mut inv = runtime.invocation("sum-handler");
        inv.entry = Entry::Handle { input: bytes };
        let out = rt.block_on(runtime.invoke(&sum_handler, inv));
        rows[1].1.push(t.elapsed().as_secs_f64());
        assert_eq!(
            want.as_deref(),
            Some(String::from_utf8(out.reply.clone().expect("copy-in reply")).unwrap().as_str())
        );
        rows[1].2 = rows[1].2.max(out.metrics.peak_memory);
        rows[1].3 = host_buffer;

        // WASI read of the plain-file copy.
        let t = Instant::now();
        let mut inv = runtime.invocation("sum-u64");
        inv.args = vec!["--mode".into(), "wasi".into(), "/d/data.bin".into()];
        inv.dirs = vec![("/d".into(), plain.parent().unwrap().to_path_buf())];
        let out = rt.block_on(runtime.invoke(&sum_u64, inv));
        rows[2].1.push(t.elapsed().as_secs_f64());
        let stdout = String::from_utf8(out.stdout.clone().unwrap()).unwrap();
        assert_eq!(out.result.as_ref().ok(), Some(&0), "{stdout}");
        assert_eq!(stdout.split_whitespace().next(), want.as_deref(), "WASI sum");
        rows[2].2 = rows[2].2.max(out.metrics.peak_memory);
    }
    let zero = median(rows[0].1.clone());
    println!("famfs-run zero-copy vs copy-in: {size} bytes, end to end per invocation, median of {runs}");
    println!();
    println!("| method | seconds | time vs zero-copy | guest linear memory (peak) | host buffer |");
    println!("|---|---:|---:|---:|---:|");
    for (label, times, peak, host) in &rows {
        let t = median(times.clone());
        println!("| {label} | {t:.3} | {:.2}x | {} MiB | {} MiB |", t / zero, peak >> 20, host >> 20);
    }
    println!();
    println!("(zero-copy's linear memory is mostly the mapped dataset: shared page-cache pages, not copies)");
}
