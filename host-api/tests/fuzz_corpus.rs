//! Replays the `host_api` fuzz target's corpus (`fuzz/corpus/host_api/`) and any crash
//! artifacts (`fuzz/artifacts/host_api/`) through the target's own logic, so every input the
//! fuzzer kept is a regression test of the normal suite (no nightly, no libFuzzer), and runs a
//! few thousand pseudo-random call sequences besides.

#[path = "../../fuzz/fuzz_targets/host_ops.rs"]
mod host_ops;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

fn message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

fn replay(inputs: impl IntoIterator<Item = (String, Vec<u8>)>) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, data) in inputs {
        n += 1;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| host_ops::run(&data))) {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            failures.push(format!("{name}: {}\n  input: {hex}", message(&*p)));
        }
    }
    (n, failures)
}

#[test]
fn the_corpus_and_artifacts_run_clean() {
    let fuzz = famfs_test_support::package_dir(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files_in(&fuzz.join("corpus/host_api"));
    assert!(corpus.len() >= 20, "the host_api corpus has only {} inputs", corpus.len());
    let artifacts = files_in(&fuzz.join("artifacts/host_api"));
    let inputs = corpus.iter().chain(&artifacts).map(|p| (p.display().to_string(), std::fs::read(p).unwrap()));
    let (n, failures) = replay(inputs);
    assert!(failures.is_empty(), "{} of {n} inputs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn random_call_sequences_run_clean() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let inputs = (0..3000).map(|i| {
        let len = 1 + (i * 7) % 400;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        (format!("random #{i}"), data)
    });
    let (n, failures) = replay(inputs);
    assert!(failures.is_empty(), "{} of {n} random inputs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn fixtures_of_processes_that_are_gone_are_removed() {
    // Each process's fixture lives in a `static` and outlives it: 107 of them (27 MiB each) had
    // piled up in /dev/shm before the next process began removing them.
    let base = tempfile::tempdir().unwrap();
    // Past the largest pid Linux allows (2^22): no such process.
    let gone = base.path().join(format!("{}{}", host_ops::FIXTURE_PREFIX, 1u32 << 30));
    let alive = base.path().join(format!("{}{}", host_ops::FIXTURE_PREFIX, std::process::id()));
    let other = base.path().join("famfs-host-fuzz-notes");
    for d in [&gone, &alive, &other] {
        std::fs::create_dir_all(d.join("mnt")).unwrap();
        std::fs::write(d.join("fs.img"), b"image").unwrap();
    }
    host_ops::remove_stale_fixtures(base.path());
    assert!(!gone.exists(), "the fixture of a process that is gone is left");
    assert!(alive.exists() && other.exists(), "a live process's fixture or another directory was removed");
}
