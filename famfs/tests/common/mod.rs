//! Helpers shared by the famfs integration tests.
#![allow(dead_code)]

use famfs::SystemIdentity;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `../shared/famfs-fixtures` beside the clone (or `FAMFS_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("FAMFS_FIXTURES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/famfs-fixtures")
}

/// The fixtures' manifest.json.
pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

/// A scratch directory, in /dev/shm when there is one (fsync is free there).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("famfs-test-").tempdir_in(shm)
    {
        return d;
    }
    tempfile::Builder::new().prefix("famfs-test-").tempdir().expect("tempdir")
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
    SystemIdentity::from_uuid("11111111-2222-4333-8444-555555555555".parse().unwrap())
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

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a whole file, hex.
pub fn file_sha256(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).expect("read file"))
}

/// The famfsctl binary built with these tests.
pub fn famfsctl() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_famfsctl"));
    c.env_remove("FAMFS_DEVICE").env("FAMFS_SYSTEM_UUID", "11111111-2222-4333-8444-555555555555");
    c
}

/// Bytes as lowercase hex, for failure messages that must show the input.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}
