//! `multihost-client IMAGE GUEST DONE_MARKER`: a stand-in for a client host of a shared famfs,
//! for the multi-host test. It re-reads the famfs log over and over (no restart) and, for each
//! new file `data/f-{seed}-{len}.bin`, runs GUEST (`sum-u64`, mapping the file zero-copy) and
//! compares the guest's sum with the sum of the bytes the master wrote (`pattern(len, seed)`).
//! It prints `ready` once the guest is compiled. Once DONE_MARKER exists it makes one last pass
//! and prints `verified {files} mismatches {m} passes {p} refresh-errors {e} early {n}` (`early`:
//! files verified before the master was done); exit 0 iff no mismatch.

use famfs_host_api::Catalog;
use famfs_runtime::{EngineOptions, Invocation, Program, SandboxEngine};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn expected(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("data/f-")?.strip_suffix(".bin")?;
    let (seed, len) = rest.split_once('-')?;
    let data = famfs_run_tests::pattern(len.parse().ok()?, seed.parse().ok()?);
    Some(famfs_run_tests::native::sum_u64(&data))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, guest, marker] = args.as_slice() else {
        eprintln!("usage: multihost-client IMAGE GUEST DONE_MARKER");
        std::process::exit(2);
    };
    let engine = SandboxEngine::new(EngineOptions::default()).expect("engine");
    let program = Program::load(&engine, &std::fs::read(guest).expect("guest"), false).expect("compile");
    let mut catalog = Catalog::open_device(Path::new(image)).expect("open the image");
    catalog.grant("/").expect("grant");
    let (mut verified, mut mismatches, mut passes, mut refresh_errors, mut early) = (BTreeSet::new(), 0, 0, 0, 0);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").and_then(|_| out.flush()).expect("stdout");
    }
    loop {
        let last = Path::new(marker).exists();
        passes += 1;
        match catalog.refreshed() {
            Ok(c) => catalog = c,
            // A log caught mid-append is read again on the next pass.
            Err(e) => {
                refresh_errors += 1;
                eprintln!("refresh: {e}");
            }
        }
        for info in catalog.list() {
            if verified.contains(&info.name) {
                continue;
            }
            let Some(want) = expected(&info.name) else { continue };
            let mut inv = Invocation::new("sum-u64");
            inv.args = vec![info.name.clone()];
            inv.catalog = catalog.clone();
            let out = program.run(&engine, inv);
            let stdout = String::from_utf8_lossy(out.stdout.as_deref().unwrap_or_default()).into_owned();
            let got = stdout.split_whitespace().next().and_then(|s| s.parse::<u64>().ok());
            if out.result.as_ref().ok() != Some(&0) || got != Some(want) {
                mismatches += 1;
                eprintln!("{}: guest said {stdout:?} ({:?}), the master wrote sum {want}", info.name, out.result);
            }
            verified.insert(info.name);
            if !last {
                early += 1;
            }
        }
        if last {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "verified {} mismatches {mismatches} passes {passes} refresh-errors {refresh_errors} early {early}",
        verified.len()
    );
    std::process::exit(i32::from(mismatches > 0));
}
