//! Instantiation cost with and without famfs-run's memory creator (prints a table; not a test).
//!
//! Components need `TrackingMemoryCreator` so the host can find their memory, and a custom
//! memory creator needs `memory_init_cow(false)`: data segments are then copied at every
//! instantiation instead of being mapped copy-on-write from a memory image. This measures, in
//! one run, the same core modules instantiated on the core engine (wasmtime's memories,
//! copy-on-write images) and on the component engine (the memory creator):
//! - a module with one 1 MiB data segment (the cost DESIGN §5 item 3 asks about);
//! - the `wc` example guest (a typical Rust guest).
//!
//! And, for scale, a full component invocation of `wc` (instantiation as the runner reports it).
//!
//! `FAMFS_BENCH_RUNS` sets the repetitions (default 200).

use famfs_runtime::{EngineOptions, SandboxEngine};
use std::time::Instant;
use wasmtime::{Engine, Linker, Module, Store};

/// Appends `v` as unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    leb(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A core module with a memory of `pages` 64 KiB pages and one active data segment of
/// `data_len` non-zero bytes at address 1024, encoded by hand (no `wat` in the build).
fn module_with_data(pages: u32, data_len: usize) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let mut mem = vec![1, 0];
    leb(&mut mem, u64::from(pages));
    section(&mut m, 5, &mem);
    let mut data = vec![1, 0, 0x41];
    leb(&mut data, 1024);
    data.push(0x0b);
    leb(&mut data, data_len as u64);
    data.extend((0..data_len).map(|i| (i % 251) as u8 + 1));
    section(&mut m, 11, &data);
    m
}

fn median_us(engine: &Engine, module: &Module, runs: usize) -> f64 {
    let mut linker: Linker<()> = Linker::new(engine);
    linker.define_unknown_imports_as_traps(module).unwrap();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let mut store = Store::new(engine, ());
            store.set_epoch_deadline(u64::MAX / 4);
            let t = Instant::now();
            let instance = linker.instantiate(&mut store, module).unwrap();
            let dt = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(instance);
            dt
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

fn main() {
    let runs = famfs_run_tests::bench::runs(200);
    let engine = SandboxEngine::new(EngineOptions::default()).unwrap();
    let wc = std::fs::read(famfs_run_tests::guest("wc")).unwrap();
    let cases = [("1 MiB data segment", module_with_data(17, 1 << 20)), ("wc guest (core module)", wc)];
    println!("instantiation, median of {runs} (microseconds; ratio to wasmtime's own memories)");
    println!("| module | wasmtime memories (CoW) | TrackingMemoryCreator | ratio |");
    println!("|---|---:|---:|---:|");
    for (label, bytes) in &cases {
        let base = median_us(engine.engine(), &Module::new(engine.engine(), bytes).unwrap(), runs);
        let tracked =
            median_us(engine.component_engine(), &Module::new(engine.component_engine(), bytes).unwrap(), runs);
        println!("| {label} | {base:.1} | {tracked:.1} | {:.2} |", tracked / base);
    }
    // A whole component invocation of wc (no arguments: it prints usage), as the runner reports it.
    let component = std::fs::read(famfs_run_tests::guest_for("wc", famfs_run_tests::Flavor::Component)).unwrap();
    let program = famfs_runtime::Program::load(&engine, &component, false).unwrap();
    let mut inst: Vec<f64> = (0..runs.min(100))
        .map(|_| {
            let inv = famfs_runtime::Invocation::new("wc");
            program.run(&engine, inv).metrics.instantiate_ms * 1000.0
        })
        .collect();
    inst.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "\nwc as a component (memory creator, WASI p2 linker): instantiate {:.1} us (median)",
        inst[inst.len() / 2]
    );
}
