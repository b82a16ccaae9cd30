//! Replays the cargo-fuzz corpus (`fuzz/corpus/decode/`) and any crash artifacts
//! (`fuzz/artifacts/decode/`) through the fuzz target's own logic, so every input the fuzzer
//! ever kept is a regression test of the normal suite. Needs no nightly and no libFuzzer.

mod common;

use common::{hex, panic_message};

#[path = "../../fuzz/fuzz_targets/dispatch.rs"]
mod dispatch;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    famfs_test_support::package_dir(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Runs every file; returns the outcome per file and the failures (name, message, input hex).
fn replay(files: &[PathBuf]) -> (Vec<(PathBuf, dispatch::Outcome)>, Vec<String>) {
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        match catch_unwind(AssertUnwindSafe(|| dispatch::run(&data))) {
            Ok(o) => outcomes.push((f.clone(), o)),
            Err(p) => failures.push(format!("{}: {}\n  input: {}", f.display(), panic_message(&*p), hex(&data))),
        }
    }
    (outcomes, failures)
}

#[test]
fn corpus_replays_without_findings() {
    let corpus = fuzz_dir().join("corpus/decode");
    assert!(corpus.is_dir(), "the fuzz corpus {} is missing", corpus.display());
    let files = files_in(&corpus);
    assert!(!files.is_empty(), "the fuzz corpus {} is empty", corpus.display());
    let (outcomes, failures) = replay(&files);
    assert!(failures.is_empty(), "{} corpus input(s) fail:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(outcomes.len(), files.len());
}

#[test]
fn crash_artifacts_replay_without_findings() {
    // cargo fuzz writes crashes here (git-ignored); once the library is fixed they must pass.
    let artifacts = fuzz_dir().join("artifacts/decode");
    if !artifacts.is_dir() {
        return;
    }
    let (_, failures) = replay(&files_in(&artifacts));
    assert!(failures.is_empty(), "{} artifact(s) still fail:\n{}", failures.len(), failures.join("\n"));
}

/// The seeds are real structures from the fixtures: each selector has an input that decodes,
/// and the image seeds replay files. Guards against a corpus of junk or a dispatch that
/// silently does nothing.
#[test]
fn corpus_seeds_reach_every_decoder() {
    let files = files_in(&fuzz_dir().join("corpus/decode"));
    let (outcomes, _) = replay(&files);
    for sel in [
        dispatch::SEL_SUPERBLOCK,
        dispatch::SEL_HEADER,
        dispatch::SEL_ENTRY,
        dispatch::SEL_IMAGE,
        dispatch::SEL_IMAGE_FILE,
    ] {
        let reached = outcomes.iter().any(|(path, o)| {
            let first = std::fs::read(path).unwrap().first().copied();
            first.is_some_and(|b| b & 7 == sel) && o.decoded > 0
        });
        assert!(reached, "no corpus input with selector {sel} decodes anything");
    }
    for sel in [dispatch::SEL_IMAGE, dispatch::SEL_IMAGE_FILE] {
        let files =
            outcomes.iter().filter(|(path, _)| std::fs::read(path).unwrap().first().is_some_and(|b| b & 7 == sel));
        assert!(
            files.clone().any(|(_, o)| o.files >= 3),
            "no image input with selector {sel} replays the fixtures' files: {:?}",
            files.collect::<Vec<_>>()
        );
    }
    // And a corrupt input is rejected, not accepted: flip a CRC-covered superblock bit of a seed.
    let sb = files.iter().find(|p| p.file_name().unwrap() == "sb-simple").expect("seed sb-simple");
    let mut data = std::fs::read(sb).unwrap();
    data[1 + 50] ^= 1;
    let o = dispatch::run(&data);
    assert_eq!((o.decoded, o.rejected), (0, 1));
}
