//! Issue 21, item 1: under the shared technique (the one dax devices use) a store into a mapped
//! dataset needs a private copy of its 2 MiB block. When the kernel refused that copy (an
//! address-space or data limit, strict overcommit), the fault went on to the default action and
//! famfs-run died with SIGSEGV (exit 139). Now the invocation fails with "out of memory copying
//! a dataset block" and the process ends normally. The same check runs on a real device-dax in
//! tests/tests/dax.rs.

use famfs_run_tests::no_room;
use famfs_run_tests::{ImageFile, guest, image_with, pattern, scratch};
use serde_json::Value;
use std::path::Path;

const NAME: &str = "data/fill.bin";

/// famfs-run built for the tests.
fn famfs_run() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_famfs-run-under-test"))
}

#[test]
fn a_store_with_no_memory_for_its_copy_fails_the_invocation_not_the_process() {
    let dir = scratch();
    let data = pattern(6 << 20, 21);
    let image = image_with(dir.path(), 64 << 20, &[ImageFile { path: NAME, data: &data, strips: None }]);
    let adversary = guest("adversary");

    // With room: every block copied, the fill lands whole.
    let o = std::process::Command::new(famfs_run())
        .arg("-d")
        .arg(&image)
        .args(["--dataset", "/", "--map-technique", "shared", "--json"])
        .arg(&adversary)
        .args(["fill-later", NAME, "0"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], format!("filled {} {}\n", data.len(), 0xABu64 * data.len() as u64), "{v}");

    let r = no_room::fill_without_room(famfs_run(), &image, &adversary, NAME);
    no_room::assert_copy_refused(&r, NAME);
    println!(
        "limit {} MiB set {} ms after the start: {}",
        r.limit >> 20,
        r.limited_after.as_millis(),
        String::from_utf8_lossy(&r.output.stderr).trim()
    );
}
