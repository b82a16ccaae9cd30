//! Helpers for the end-to-end tests: guest paths, datasets, images, the famfs-run binary.

use famfs::{Attrs, Layout, MkfsOptions, RelPath, Source, SystemIdentity, Writer};
use std::path::{Path, PathBuf};

/// A built guest, e.g. `guest("wc")`.
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("GUESTS_DIR")).join(format!("{name}.wasm"));
    assert!(p.exists(), "guest {} was not built", p.display());
    p
}

/// A scratch directory, in /dev/shm when there is one.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new().prefix("famfs-run-test-").tempdir_in(shm)
    {
        return d;
    }
    tempfile::Builder::new().prefix("famfs-run-test-").tempdir().expect("tempdir")
}

/// The master identity the tests write images as.
pub fn master() -> SystemIdentity {
    SystemIdentity::from_uuid("11111111-2222-4333-8444-555555555555".parse().unwrap())
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

/// Deterministic text: lines of words of varied length, some blank lines, tabs.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] =
        ["famfs", "cxl", "memory", "zero-copy", "wasm", "guest", "x", "dataset", "\tshared", "", "needle", "hosts"];
    let r = pattern(len, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        let w = WORDS[r[i % r.len()] as usize % WORDS.len()];
        out.extend_from_slice(w.as_bytes());
        out.push(if r[(i + 1) % r.len()].is_multiple_of(7) { b'\n' } else { b' ' });
        i += 2;
    }
    out.truncate(len);
    out
}

/// One file for [`image_with`].
pub struct ImageFile<'a> {
    /// Path in the famfs.
    pub path: &'a str,
    /// Bytes.
    pub data: &'a [u8],
    /// Interleave over this many strips (2 MiB chunks), or simple.
    pub strips: Option<u64>,
}

/// Makes a famfs image holding `files` (parents created).
pub fn image_with(dir: &Path, size: u64, files: &[ImageFile<'_>]) -> PathBuf {
    let img = dir.join("data.img");
    famfs::mkfs(&img, &MkfsOptions { size: Some(size), ..Default::default() }, &master()).unwrap();
    let mut w = Writer::open(&img, &master()).unwrap();
    let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
    for f in files {
        let p = RelPath::parse(f.path).unwrap();
        if let Some(parent) = p.parent() {
            w.mkdir_all(&parent, Attrs { mode: 0o755, ..attrs }).unwrap();
        }
        let layout = match f.strips {
            None => Layout::Simple,
            Some(n) => Layout::Interleaved(famfs::alloc::Interleave { nstrips: n, nbuckets: n, chunk_size: 2 << 20 }),
        };
        w.create_file(&p, Source::Bytes(f.data), f.data.len() as u64, attrs, layout, &mut |_| {}).unwrap();
    }
    img
}

/// Writes `files` under `dir` (a mount source).
pub fn mount_with(dir: &Path, files: &[ImageFile<'_>]) -> PathBuf {
    let root = dir.join("mnt");
    for f in files {
        let p = root.join(f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f.data).unwrap();
    }
    root
}

/// SHA-256 of a file, hex.
pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Native versions of the example guests' computations.
pub mod native {
    /// (lines, words, bytes) as coreutils wc in the C locale.
    pub fn wc(b: &[u8]) -> (u64, u64, u64) {
        let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let lines = b.iter().filter(|&&c| c == b'\n').count() as u64;
        let mut words = 0;
        let mut in_word = false;
        for &c in b {
            if ws(c) {
                in_word = false;
            } else if !in_word {
                in_word = true;
                words += 1;
            }
        }
        (lines, words, b.len() as u64)
    }

    /// Wrapping sum of little-endian u64 words, the tail zero-padded.
    pub fn sum_u64(b: &[u8]) -> u64 {
        let mut s = 0u64;
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            s = s.wrapping_add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            s = s.wrapping_add(u64::from_le_bytes(w));
        }
        s
    }

    /// Lines containing `pat`.
    pub fn grep(b: &[u8], pat: &[u8]) -> u64 {
        b.split(|&c| c == b'\n').filter(|l| !l.is_empty() && l.windows(pat.len()).any(|w| w == pat)).count() as u64
    }

    /// Byte histogram.
    pub fn histogram(b: &[u8]) -> [u64; 256] {
        let mut h = [0u64; 256];
        for &c in b {
            h[c as usize] += 1;
        }
        h
    }
}

/// Runs guests in this process through the runtime library, with one engine and each guest
/// compiled once per test binary.
pub mod harness {
    use famfs_host_api::Catalog;
    use famfs_runtime::{EngineOptions, Invocation, Limits, Outcome, SandboxEngine, Stdio};
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Mutex, OnceLock};
    use wasmtime::Module;

    struct Shared {
        engine: SandboxEngine,
        linker: wasmtime::Linker<famfs_runtime::run::HostStateHandle>,
        modules: Mutex<HashMap<String, Module>>,
    }

    fn shared() -> &'static Shared {
        static S: OnceLock<Shared> = OnceLock::new();
        S.get_or_init(|| {
            let engine = SandboxEngine::new(EngineOptions::default()).unwrap();
            let linker = famfs_runtime::linker(&engine).unwrap();
            Shared { engine, linker, modules: Mutex::new(HashMap::new()) }
        })
    }

    fn module(name: &str) -> Module {
        let s = shared();
        let mut m = s.modules.lock().unwrap();
        m.entry(name.to_string())
            .or_insert_with(|| famfs_runtime::compile(&s.engine, &std::fs::read(super::guest(name)).unwrap()).unwrap())
            .clone()
    }

    /// One run's essentials.
    pub struct Run {
        /// The outcome (result and metrics).
        pub outcome: Outcome,
        /// Captured stdout as text.
        pub stdout: String,
        /// Captured stderr as text.
        pub stderr: String,
    }

    impl Run {
        /// The exit code, panicking with the error and stderr if the run failed.
        pub fn code(&self) -> i32 {
            match &self.outcome.result {
                Ok(c) => *c,
                Err(e) => panic!("guest failed: {e}\nstderr: {}", self.stderr),
            }
        }

        /// Stdout of a run that must have exited 0.
        pub fn ok(&self) -> &str {
            assert_eq!(self.code(), 0, "stderr: {}", self.stderr);
            &self.stdout
        }
    }

    /// Runs guest `name` with `args` over `catalog`, with read-only `dirs` and `limits`.
    pub fn run_with(name: &str, args: &[&str], catalog: Catalog, dirs: &[(&str, PathBuf)], limits: Limits) -> Run {
        let s = shared();
        let inv = Invocation {
            program: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            catalog,
            dirs: dirs.iter().map(|(g, h)| (g.to_string(), h.clone())).collect(),
            limits,
            stdio: Stdio::Capture,
        };
        let outcome = famfs_runtime::run(&s.engine, &s.linker, &module(name), inv);
        let stdout = String::from_utf8_lossy(outcome.stdout.as_deref().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(outcome.stderr.as_deref().unwrap_or_default()).into_owned();
        Run { outcome, stdout, stderr }
    }

    /// [`run_with`] with default limits and no directories.
    pub fn run(name: &str, args: &[&str], catalog: Catalog) -> Run {
        run_with(name, args, catalog, &[], Limits::default())
    }

    /// A catalog over an image or mount with `grants`.
    pub fn catalog_device(img: &std::path::Path, grants: &[&str]) -> Catalog {
        let mut c = Catalog::open_device(img).unwrap();
        for g in grants {
            c.grant(g).unwrap();
        }
        c
    }

    /// A catalog over a directory with `grants`.
    pub fn catalog_mount(dir: &std::path::Path, grants: &[&str]) -> Catalog {
        let mut c = Catalog::open_mount(dir).unwrap();
        for g in grants {
            c.grant(g).unwrap();
        }
        c
    }
}
