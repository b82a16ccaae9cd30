//! Helpers shared by the famfs integration tests.
#![allow(dead_code)]

use famfs::SystemIdentity;
// Each test binary uses part of these.
#[allow(unused_imports)]
pub use famfs_test_support::{MASTER_UUID, hex, pattern, scratch, sha256_file, sha256_hex};
use std::io::Read;
use std::path::{Path, PathBuf};

/// `famfs/tests/fixtures`: images written by the famfs project's own library code (see its
/// README.md).
pub fn fixtures_dir() -> PathBuf {
    famfs_test_support::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixtures' manifest.json.
pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

/// Decompresses fixture `name` (e.g. "famfs-simple.img") into `dir` and returns its path.
pub fn fixture_in(dir: &Path, name: &str) -> PathBuf {
    let gz = std::fs::File::open(fixtures_dir().join(format!("{name}.gz"))).expect("open fixture");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).expect("gunzip fixture");
    let out = dir.join(name);
    std::fs::write(&out, bytes).expect("write fixture");
    out
}

/// The identity of the host that made the fixtures (so writes to them are allowed).
pub const FIXTURE_MASTER: &str = "257676c2-4f71-42d7-ac86-57a1f33944ce";

/// A fixed master identity for images the tests make.
pub fn master() -> SystemIdentity {
    SystemIdentity::from_uuid(MASTER_UUID.parse().unwrap())
}

/// Another host.
pub fn client() -> SystemIdentity {
    SystemIdentity::from_uuid("99999999-8888-4777-8666-555555555555".parse().unwrap())
}

/// Makes an image of `size` bytes with default options, as `master()`.
pub fn new_image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    famfs::mkfs(&p, &famfs::MkfsOptions { size: Some(size), ..Default::default() }, &master()).expect("mkfs");
    p
}

/// The famfsctl binary built with these tests.
pub fn famfsctl() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_famfsctl"));
    c.env_remove("FAMFS_DEVICE").env("FAMFS_SYSTEM_UUID", MASTER_UUID);
    c
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}
