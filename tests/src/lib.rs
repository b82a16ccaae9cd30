//! Helpers for the end-to-end tests: guest paths, datasets, images, the famfs-run binary.

use famfs::{Attrs, Layout, MkfsOptions, RelPath, Source, SystemIdentity, Writer};
pub use famfs_test_support::{
    MASTER_UUID, hex, package_dir, pattern, scratch, sha256_file, sha256_hex, write_pattern_file,
};
use std::path::{Path, PathBuf};

/// How a guest is built and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// wasm32-wasip1 core module, run as is.
    Core,
    /// wasm32-wasip2 component.
    Component,
    /// wasm32-wasip1 core module turned into a component at load time (preview-1 adapter).
    Adapted,
}

impl Flavor {
    /// Every flavor.
    pub const ALL: [Flavor; 3] = [Flavor::Core, Flavor::Component, Flavor::Adapted];
    /// The component flavors.
    pub const COMPONENTS: [Flavor; 2] = [Flavor::Component, Flavor::Adapted];
}

/// A built wasm32-wasip1 guest, e.g. `guest("wc")`.
pub fn guest(name: &str) -> PathBuf {
    guest_for(name, Flavor::Core)
}

/// A built guest of `flavor` (the wasm32-wasip2 build for [`Flavor::Component`]). The SQL
/// guest (`sql`, `sql_handler`) has its own build, for wasm32-wasip1 only.
pub fn guest_for(name: &str, flavor: Flavor) -> PathBuf {
    let dir = match flavor {
        _ if SQL_GUESTS.contains(&name) => {
            assert_ne!(flavor, Flavor::Component, "the SQL guest is built for wasm32-wasip1 only");
            env!("SQL_GUEST_DIR")
        }
        Flavor::Core | Flavor::Adapted => env!("GUESTS_DIR"),
        Flavor::Component => env!("GUESTS_P2_DIR"),
    };
    let p = Path::new(dir).join(format!("{name}.wasm"));
    assert!(p.exists(), "guest {} was not built", p.display());
    p
}

/// The SQL guest's modules (`guests/sql`): the command and the handler.
pub const SQL_GUESTS: [&str; 2] = ["sql", "sql_handler"];

/// `sql-native`: the SQL guest's engine built for the host.
pub fn sql_native() -> PathBuf {
    PathBuf::from(env!("SQL_NATIVE"))
}

/// The compiled-guest cache the tests share for the SQL guest (in its target directory): its
/// module is about 90 MB and takes a minute to compile, so the harness, famfs-run and
/// famfs-serve in the tests all load it through this cache (`--cache-dir`), compiling it once.
/// Entries for other builds of the guest (each is hundreds of megabytes) are deleted the first
/// time it is asked for.
pub fn sql_compiled_cache() -> PathBuf {
    static PRUNED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PRUNED
        .get_or_init(|| {
            let dir = Path::new(env!("SQL_GUEST_DIR")).join("../../compiled-guests");
            let current: Vec<String> = SQL_GUESTS
                .iter()
                .map(|g| {
                    sha256_hex(&std::fs::read(Path::new(env!("SQL_GUEST_DIR")).join(format!("{g}.wasm"))).unwrap())
                })
                .collect();
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Dot-files are entries another test process is writing; `.sha256` files record
                // module files' identities (tiny, and what spares a warm load the hashing).
                let keep = name.starts_with('.') || name.ends_with(".sha256");
                if !keep && !current.iter().any(|sha| name.starts_with(sha.as_str())) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            dir
        })
        .clone()
}

/// The master identity the tests write images as.
pub fn master() -> SystemIdentity {
    SystemIdentity::from_uuid(MASTER_UUID.parse().unwrap())
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

/// A big dataset for the benchmarks: `size` pseudo-random bytes written to `dir/plain/data.bin`
/// (a plain file, for mount sources and WASI) and copied into the famfs image `dir/big.img` as
/// `data.bin`, without holding it all in memory. Returns (image, plain file).
pub fn big_dataset(dir: &Path, size: u64) -> (PathBuf, PathBuf) {
    let plain = dir.join("plain/data.bin");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    write_pattern_file(&plain, size);
    let img = dir.join("big.img");
    let img_size = (size + (64 << 20)).next_multiple_of(2 << 20);
    famfs::mkfs(&img, &MkfsOptions { size: Some(img_size), ..Default::default() }, &master()).unwrap();
    let mut wr = Writer::open(&img, &master()).unwrap();
    let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
    let f = std::fs::File::open(&plain).unwrap();
    wr.create_file(&RelPath::parse("data.bin").unwrap(), Source::File(&f), size, attrs, Layout::Simple, &mut |_| {})
        .unwrap();
    (img, plain)
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
/// What the benchmarks share: their environment knobs and the median.
pub mod bench {
    use std::path::PathBuf;

    /// `FAMFS_BENCH_SIZE` (k/M/G suffixes), default 1 GiB: the dataset size.
    pub fn size() -> u64 {
        std::env::var("FAMFS_BENCH_SIZE").map_or(1 << 30, |s| famfs::units::parse_size(&s).expect("FAMFS_BENCH_SIZE"))
    }

    /// `FAMFS_BENCH_RUNS`, else `default`: the repetitions.
    pub fn runs(default: usize) -> usize {
        std::env::var("FAMFS_BENCH_RUNS").map_or(default, |s| s.parse().expect("FAMFS_BENCH_RUNS"))
    }

    /// A fresh directory under `FAMFS_BENCH_DIR`, else /dev/shm when there is one, else the
    /// temp dir; removed when dropped.
    pub fn dir(prefix: &str) -> tempfile::TempDir {
        let base: PathBuf = std::env::var_os("FAMFS_BENCH_DIR").map_or_else(
            || if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() },
            Into::into,
        );
        tempfile::Builder::new().prefix(prefix).tempdir_in(base).unwrap()
    }

    /// mmap of `path` and a wrapping u64 sum of its bytes, compiled for the host, unmapped
    /// again (as a guest's window is): (sum, seconds).
    pub fn native_mmap_sum(path: &std::path::Path) -> (u64, f64) {
        let f = std::fs::File::open(path).unwrap();
        let t = std::time::Instant::now();
        // SAFETY: the benchmark owns this file and nothing truncates it while it is mapped.
        let m = unsafe { memmap2::Mmap::map(&f).unwrap() };
        let mut acc = [0u64; 4];
        let mut chunks = m.chunks_exact(32);
        for c in &mut chunks {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = a.wrapping_add(u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().unwrap()));
            }
        }
        let mut s = acc.iter().fold(0u64, |x, y| x.wrapping_add(*y));
        s = s.wrapping_add(crate::native::sum_u64(chunks.remainder()));
        drop(m);
        (s, t.elapsed().as_secs_f64())
    }

    /// The median (upper middle) of `v`.
    pub fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }
}

pub mod no_room;
pub mod vm;

pub mod harness {
    use super::Flavor;
    use famfs_host_api::Catalog;
    use famfs_host_api::MapTechnique;
    use famfs_runtime::{EngineOptions, Entry, Invocation, Limits, Outcome, Program, SandboxEngine, Stdio};
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex, OnceLock};

    struct Shared {
        engine: SandboxEngine,
        programs: Mutex<HashMap<(String, Flavor), Arc<Program>>>,
    }

    fn shared() -> &'static Shared {
        static S: OnceLock<Shared> = OnceLock::new();
        S.get_or_init(|| Shared {
            engine: SandboxEngine::new(EngineOptions::default()).unwrap(),
            programs: Mutex::new(HashMap::new()),
        })
    }

    /// Guest `name` of `flavor`, compiled once per test process.
    pub fn program(name: &str, flavor: Flavor) -> Arc<Program> {
        let s = shared();
        let mut m = s.programs.lock().unwrap();
        m.entry((name.to_string(), flavor))
            .or_insert_with(|| {
                let bytes = std::fs::read(super::guest_for(name, flavor)).unwrap();
                let cache = super::SQL_GUESTS
                    .contains(&name)
                    .then(|| famfs_runtime::ModuleCache::open(super::sql_compiled_cache()).unwrap());
                Arc::new(Program::load_cached(&s.engine, &bytes, flavor == Flavor::Adapted, cache.as_ref()).unwrap())
            })
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

        /// The handler's reply as text, panicking if there is none.
        pub fn reply(&self) -> String {
            self.code();
            String::from_utf8(self.outcome.reply.clone().expect("a reply")).expect("a UTF-8 reply")
        }
    }

    /// Everything one run can be given; [`Spec::new`] fills in the defaults.
    pub struct Spec<'a> {
        /// Guest name.
        pub name: &'a str,
        /// How it is built and run.
        pub flavor: Flavor,
        /// Arguments.
        pub args: &'a [&'a str],
        /// Datasets.
        pub catalog: Catalog,
        /// Host-directory preopens.
        pub dirs: Vec<(String, PathBuf)>,
        /// famfs-directory preopens (components).
        pub famfs_dirs: Vec<(String, String)>,
        /// Limits.
        pub limits: Limits,
        /// What to call.
        pub entry: Entry,
    }

    impl<'a> Spec<'a> {
        /// Guest `name` of `flavor` with `args` over `catalog`; no directories, default limits.
        pub fn new(name: &'a str, flavor: Flavor, args: &'a [&'a str], catalog: Catalog) -> Spec<'a> {
            Spec {
                name,
                flavor,
                args,
                catalog,
                dirs: Vec::new(),
                famfs_dirs: Vec::new(),
                limits: Limits::default(),
                entry: Entry::Command,
            }
        }

        /// Runs it (with this thread's [`TechniqueScope`], if there is one).
        pub fn run(mut self) -> Run {
            let s = shared();
            if let Some(t) = TECHNIQUE.get() {
                self.limits.map_technique = t;
            }
            let inv = Invocation {
                program: self.name.to_string(),
                args: self.args.iter().map(|a| a.to_string()).collect(),
                env: Vec::new(),
                catalog: self.catalog,
                dirs: self.dirs,
                mount_dirs: Vec::new(),
                famfs_dirs: self.famfs_dirs,
                entry: self.entry,
                limits: self.limits,
                stdio: Stdio::Capture,
                cancel: None,
            };
            let outcome = program(self.name, self.flavor).run(&s.engine, inv);
            let stdout = String::from_utf8_lossy(outcome.stdout.as_deref().unwrap_or_default()).into_owned();
            let stderr = String::from_utf8_lossy(outcome.stderr.as_deref().unwrap_or_default()).into_owned();
            Run { outcome, stdout, stderr }
        }
    }

    thread_local! {
        /// The map technique runs on this thread use instead of their limits' own (see
        /// [`with_techniques`]).
        static TECHNIQUE: std::cell::Cell<Option<MapTechnique>> = const { std::cell::Cell::new(None) };
    }

    /// Makes the runs on this thread map datasets with a technique until dropped.
    pub struct TechniqueScope(Option<MapTechnique>);

    impl TechniqueScope {
        /// Runs on this thread use `technique` until the scope is dropped.
        pub fn new(technique: MapTechnique) -> TechniqueScope {
            TechniqueScope(TECHNIQUE.replace(Some(technique)))
        }
    }

    impl Drop for TechniqueScope {
        fn drop(&mut self) {
            TECHNIQUE.set(self.0);
        }
    }

    /// The technique of this thread's [`TechniqueScope`], if one is live.
    pub fn current_technique() -> Option<MapTechnique> {
        TECHNIQUE.get()
    }

    /// Both map techniques (issue 12: every guest and adversarial case runs under each): the
    /// private mappings images and mounts use, and the shared, read-only mappings with
    /// copy-on-write by the host that device-dax requires, forced here on files.
    pub const TECHNIQUES: [MapTechnique; 2] = [MapTechnique::Private, MapTechnique::Shared];

    /// Every (flavor, technique) pair of `flavors` and [`TECHNIQUES`]; while the scope lives,
    /// runs on this thread map with that technique. `for (flavor, _scope) in ...`.
    pub fn with_techniques(flavors: &[Flavor]) -> impl Iterator<Item = (Flavor, TechniqueScope)> + '_ {
        TECHNIQUES.into_iter().flat_map(move |t| flavors.iter().map(move |&f| (f, t))).map(|(f, t)| {
            eprintln!("-- {f:?}, {t:?} mappings");
            (f, TechniqueScope::new(t))
        })
    }

    /// Runs wasm32-wasip1 guest `name` with `args` over `catalog`, with read-only `dirs` and
    /// `limits`.
    pub fn run_with(name: &str, args: &[&str], catalog: Catalog, dirs: &[(&str, PathBuf)], limits: Limits) -> Run {
        run_flavor(Flavor::Core, name, args, catalog, dirs, limits)
    }

    /// [`run_with`] for a guest of `flavor`.
    pub fn run_flavor(
        flavor: Flavor,
        name: &str,
        args: &[&str],
        catalog: Catalog,
        dirs: &[(&str, PathBuf)],
        limits: Limits,
    ) -> Run {
        let mut spec = Spec::new(name, flavor, args, catalog);
        spec.dirs = dirs.iter().map(|(g, h)| (g.to_string(), h.clone())).collect();
        spec.limits = limits;
        spec.run()
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
