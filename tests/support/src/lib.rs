//! Helpers shared by the tests and benchmarks of every crate in the workspace (`famfs`'s own
//! integration tests and the end-to-end tests in `famfs-run-tests`): deterministic data, scratch
//! directories in memory, hashes. It depends on nothing of the workspace, so that `famfs` can
//! use it without a dependency cycle.

use std::io::Write;
use std::path::Path;

/// The directory of the package whose tests are running, given `env!("CARGO_MANIFEST_DIR")`
/// as compiled: cargo's `CARGO_MANIFEST_DIR` of this run when it sets one (`cargo test`,
/// `cargo bench`), else the compiled path. The compiled path alone goes stale when clones at
/// different paths share one target directory: cargo reuses a test binary whose sources did not
/// change, and the binary then reads files from the other clone, or from nowhere.
pub fn package_dir(compiled: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| compiled.into(), Into::into)
}

/// The system UUID the tests write images as (the master host of every image they make).
pub const MASTER_UUID: &str = "11111111-2222-4333-8444-555555555555";

/// Deterministic pseudo-random bytes (xorshift64 seeded from `seed`): the same `len` and `seed`
/// give the same bytes on every run and host.
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

/// Writes `size` pseudo-random bytes to `path`, 8 MiB at a time (pattern seeds 1, 2, ...), without
/// holding them all in memory, and syncs the file.
pub fn write_pattern_file(path: &Path, size: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create the pattern file"));
    let (mut left, mut seed) = (size as usize, 1);
    while left > 0 {
        let chunk = pattern(left.min(8 << 20), seed);
        w.write_all(&chunk).expect("write the pattern file");
        left -= chunk.len();
        seed += 1;
    }
    w.into_inner().expect("flush the pattern file").sync_all().expect("sync the pattern file");
}

/// A fresh scratch directory, removed when dropped: in /dev/shm when there is one (fsync is
/// free there, and images of many MiB cost no disk), else in the temp dir.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("famfs-test-").tempdir_in(shm)
    {
        return d;
    }
    tempfile::Builder::new().prefix("famfs-test-").tempdir().expect("create a temp dir")
}

/// Bytes as lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// SHA-256 of a whole file, lowercase hex.
pub fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// The sum of all bytes of `b`, the native baseline of the scan measurements. Not generic and
/// not `#[inline]`, so it is compiled here, at this crate's opt-level 3 (set in the workspace
/// manifest for test builds too), whatever the calling test's profile.
pub fn byte_sum(b: &[u8]) -> u64 {
    b.iter().map(|&x| u64::from(x)).sum()
}
