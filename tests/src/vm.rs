//! Test machines with a real device-dax: QEMU (TCG) guests of a Debian kernel, each given a
//! backing file as an NVDIMM, which the guest's kernel turns into `/dev/dax0.0` (`docs/dax.md`).
//!
//! A machine runs the host's own programs: the host's `/` is shared read-only over virtio-9p
//! and the command runs chrooted into it, with its own `/proc`, `/sys`, `/dev`, `/run`,
//! `/dev/shm`, `/var/tmp` (its `TMPDIR`) and `/opt/famfs` (its system UUID); the host's `/tmp`
//! stays visible, read-only, so that a clone there works inside too. A writable scratch
//! directory is shared at the same absolute path inside as outside, so paths in it mean the same
//! on both sides (the guest's `/dev/shm` and `/var/tmp` are its own: share files through the
//! scratch directory). Several
//! machines started on one backing file are several hosts sharing one memory device.
//!
//! The usual pattern re-runs the current test binary inside a machine:
//!
//! ```no_run
//! use famfs_run_tests::vm::{self, Machine, Namespace};
//!
//! #[test]
//! fn host_side() {
//!     let dir = famfs_run_tests::scratch();
//!     let out = Machine::new("a")
//!         .memory(dir.path().join("cxl.mem"))
//!         .namespace(Namespace::DevDax)
//!         .run_test("inside")
//!         .unwrap();
//!     out.assert_success();
//! }
//!
//! #[test]
//! #[ignore = "runs inside a VM"]
//! fn inside() {
//!     if !vm::inside() {
//!         return;
//!     }
//!     assert!(std::path::Path::new("/dev/dax0.0").exists());
//! }
//! ```
//!
//! What it needs (`scripts/vm-deps.sh` installs it): `qemu-system-x86_64`, a static busybox at
//! `/bin/busybox`, `ndctl` on the host (it runs inside the machines), `/opt/famfs`, and a kernel
//! unpacked in the cache directory ([`cache_dir`]) whose `current-kernel` file names it. The
//! initramfs (busybox, `tests/vm/init`, the virtio/9p and nvdimm/dax modules) is built here, once
//! per content, and kept in the cache directory.

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `/init` of every machine (a busybox sh script).
const INIT: &str = include_str!("../vm/init");

/// The modules the initramfs loads, in this order, before the host's root is mounted (each one's
/// own dependencies, read from its `.modinfo`, are loaded before it; modules built into the
/// kernel are skipped): virtio-pci and 9p over virtio for the shares, then the NVDIMM (ACPI NFIT)
/// and dax drivers (`dax_pmem` serves both device-dax and, through `nd_pmem`, fs-dax), then ext4
/// (with the crc32c its checksums take), for a file system mounted `-o dax` on fs-dax.
pub const MODULES: [&str; 18] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "libnvdimm",
    "nd_btt",
    "nd_pmem",
    "nfit",
    "device_dax",
    "dax_pmem",
    "crc32c_generic",
    "ext4",
];

/// The environment variable set (to `1`) for commands run inside a machine.
pub const ENV_INSIDE: &str = "FAMFS_VM_INSIDE";
/// The environment variable naming the scratch directory inside a machine.
pub const ENV_SCRATCH: &str = "FAMFS_VM_SCRATCH";
/// The environment variable naming the machine inside it.
pub const ENV_NAME: &str = "FAMFS_VM_NAME";
/// Set on the host (to anything), machines' consoles are copied to stderr as they come.
pub const ENV_ECHO: &str = "FAMFS_VM_ECHO";

/// Whether this process runs inside a test machine (`FAMFS_VM_INSIDE=1`, set by the harness).
pub fn inside() -> bool {
    std::env::var_os(ENV_INSIDE).is_some_and(|v| v == "1")
}

/// Inside a machine, its scratch directory (`FAMFS_VM_SCRATCH`), shared with the host.
pub fn inside_scratch() -> Option<PathBuf> {
    inside().then(|| std::env::var_os(ENV_SCRATCH).map(PathBuf::from)).flatten()
}

/// The cache of kernels and initramfs images: `FAMFS_RUN_VM_CACHE`, else
/// `$HOME/.cache/famfs-run/vm` (as `scripts/vm-deps.sh` uses).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FAMFS_RUN_VM_CACHE") {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/famfs-run/vm")
}

/// A kernel unpacked from its Debian package.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Where the package is unpacked.
    pub dir: PathBuf,
    /// What QEMU boots: `boot/vmlinux-VERSION`, the uncompressed kernel `scripts/vm-deps.sh`
    /// extracts for a direct (PVH) boot, else `boot/vmlinuz-VERSION`.
    pub image: PathBuf,
    /// `lib/modules/VERSION`.
    pub modules: PathBuf,
    /// The release, e.g. `6.1.0-57-amd64`.
    pub version: String,
}

/// The kernel `current-kernel` in the [`cache_dir`] names.
pub fn kernel() -> Result<Kernel, String> {
    let hint = "run scripts/vm-deps.sh";
    let current = cache_dir().join("current-kernel");
    let text = std::fs::read_to_string(&current)
        .map_err(|e| format!("no test-machine kernel: cannot read {} ({e}); {hint}", current.display()))?;
    let dir = PathBuf::from(text.trim());
    let modules_root = dir.join("lib/modules");
    let version = std::fs::read_dir(&modules_root)
        .map_err(|e| format!("kernel {}: cannot list {} ({e}); {hint}", dir.display(), modules_root.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|v| dir.join(format!("boot/vmlinuz-{v}")).is_file())
        .ok_or_else(|| format!("kernel {}: no lib/modules/VERSION with boot/vmlinuz-VERSION; {hint}", dir.display()))?;
    // The uncompressed ELF boots (PVH) without the decompressor, ~3 s faster under TCG.
    let vmlinux = dir.join(format!("boot/vmlinux-{version}"));
    Ok(Kernel {
        image: if vmlinux.is_file() { vmlinux } else { dir.join(format!("boot/vmlinuz-{version}")) },
        modules: modules_root.join(&version),
        version,
        dir,
    })
}

/// The kernel and the initramfs, found and built once per process.
fn boot_files() -> Result<(Kernel, PathBuf), String> {
    static FILES: OnceLock<Result<(Kernel, PathBuf), String>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let k = kernel()?;
            let initrd = initramfs(&k)?;
            Ok((k, initrd))
        })
        .clone()
}

/// The initramfs for `kernel`: `/bin/busybox`, `/init` (`tests/vm/init`) and [`MODULES`] with
/// their dependencies plus their load order (`/lib/modules/load-order`), as an uncompressed newc
/// cpio archive. Built once per content: kept in the [`cache_dir`] under a hash of its inputs.
pub fn initramfs(kernel: &Kernel) -> Result<PathBuf, String> {
    let busybox_path = Path::new("/bin/busybox");
    let busybox = std::fs::read(busybox_path).map_err(|e| {
        format!("cannot read {} ({e}): install busybox-static (scripts/vm-deps.sh)", busybox_path.display())
    })?;
    if elf_has_interpreter(&busybox) {
        return Err(format!(
            "{} is dynamically linked; the initramfs needs busybox-static (scripts/vm-deps.sh)",
            busybox_path.display()
        ));
    }
    let modules = modules_in_load_order(kernel, &MODULES)?;

    let mut hash = Sha256::new();
    hash.update(b"famfs-run vm initramfs v1\0");
    hash.update(INIT.as_bytes());
    hash.update(&busybox);
    for (name, bytes) in &modules {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let key: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = cache_dir();
    let out = dir.join(format!("initramfs-{}-{key}.cpio", kernel.version));
    if out.is_file() {
        return Ok(out);
    }

    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "lib", "lib/modules", "proc", "sys", "host", "tmp"] {
        cpio.dir(d);
    }
    cpio.node("dev/console", 0o020600, (5, 1));
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", 0o755, INIT.as_bytes());
    let mut order = String::new();
    for (name, bytes) in &modules {
        cpio.file(&format!("lib/modules/{name}.ko"), 0o644, bytes);
        order.push_str(name);
        order.push('\n');
    }
    cpio.file("lib/modules/load-order", 0o644, order.as_bytes());
    let bytes = cpio.finish();

    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
    // Another test process may build the same one: write aside, then rename into place.
    let tmp = dir.join(format!(".initramfs-{key}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {} ({e})", tmp.display()))?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot rename {} into place ({e})", tmp.display()))?;
    Ok(out)
}

/// `wanted` modules of `kernel` that are not built in, each preceded by its dependencies
/// (`depends=` of its `.modinfo`): (name, contents of its `.ko`).
fn modules_in_load_order(kernel: &Kernel, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let read = |name: &str| {
        let p = kernel.modules.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("cannot read {} ({e}); run scripts/vm-deps.sh", p.display()))
    };
    let norm = |s: &str| s.replace('-', "_");
    let stem = |line: &str| -> Option<String> {
        let file = line.trim().rsplit('/').next()?;
        file.strip_suffix(".ko").map(norm)
    };
    let builtin: HashSet<String> = read("modules.builtin")?.lines().filter_map(stem).collect();
    let order = read("modules.order")?;
    let path_of = |name: &str| -> Option<PathBuf> {
        order.lines().find(|l| stem(l).as_deref() == Some(name)).map(|l| kernel.modules.join(l.trim()))
    };

    fn visit(
        name: &str,
        path_of: &dyn Fn(&str) -> Option<PathBuf>,
        builtin: &HashSet<String>,
        seen: &mut HashSet<String>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        if builtin.contains(name) || !seen.insert(name.to_string()) {
            return Ok(());
        }
        let path =
            path_of(name).ok_or_else(|| format!("kernel module {name} is neither in modules.order nor built in"))?;
        let bytes = std::fs::read(&path).map_err(|e| {
            format!("cannot read {} ({e}); compressed modules are unpacked by scripts/vm-deps.sh", path.display())
        })?;
        let deps = modinfo(&bytes, "depends").map_err(|e| format!("{}: {e}", path.display()))?;
        for dep in deps.iter().flat_map(|d| d.split(',')).filter(|d| !d.is_empty()) {
            visit(&dep.replace('-', "_"), path_of, builtin, seen, out)?;
        }
        out.push((name.to_string(), bytes));
        Ok(())
    }

    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for w in wanted {
        visit(&norm(w), &path_of, &builtin, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// Little-endian integers of an ELF64 file, checked.
fn le(b: &[u8], off: usize, len: usize) -> Result<u64, String> {
    let s = b.get(off..off + len).ok_or("truncated ELF file")?;
    Ok(s.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

/// Whether an ELF64 file has a `PT_INTERP` program header (is dynamically linked).
fn elf_has_interpreter(b: &[u8]) -> bool {
    let parse = || -> Result<bool, String> {
        if b.get(..5) != Some(b"\x7fELF\x02") {
            return Err("not an ELF64 file".into());
        }
        let (phoff, phentsize, phnum) = (le(b, 0x20, 8)? as usize, le(b, 0x36, 2)? as usize, le(b, 0x38, 2)? as usize);
        for i in 0..phnum {
            if le(b, phoff + i * phentsize, 4)? == 3 {
                return Ok(true);
            }
        }
        Ok(false)
    };
    parse().unwrap_or(true)
}

/// The values of `key` in the `.modinfo` section of a kernel module (`key=value` strings).
fn modinfo(b: &[u8], key: &str) -> Result<Vec<String>, String> {
    if b.get(..5) != Some(b"\x7fELF\x02") {
        return Err("not an ELF64 kernel module".into());
    }
    let (shoff, shentsize) = (le(b, 0x28, 8)? as usize, le(b, 0x3a, 2)? as usize);
    let (shnum, shstrndx) = (le(b, 0x3c, 2)? as usize, le(b, 0x3e, 2)? as usize);
    let section = |i: usize| -> Result<(usize, usize, usize), String> {
        let h = shoff + i * shentsize;
        Ok((le(b, h, 4)? as usize, le(b, h + 0x18, 8)? as usize, le(b, h + 0x20, 8)? as usize))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = b.get(stroff..stroff + strsize).ok_or("truncated section names")?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let n = strtab.get(name..).and_then(|s| s.split(|&c| c == 0).next()).unwrap_or_default();
        if n == b".modinfo" {
            let data = b.get(off..off + size).ok_or("truncated .modinfo")?;
            let prefix = format!("{key}=");
            return Ok(data
                .split(|&c| c == 0)
                .filter_map(|s| std::str::from_utf8(s).ok())
                .filter_map(|s| s.strip_prefix(prefix.as_str()).map(str::to_string))
                .collect());
        }
    }
    Err("no .modinfo section".into())
}

/// A newc ("070701") cpio archive, as the kernel unpacks initramfs images.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: fixed, so the archive depends on its contents only
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32)) {
        self.entry(name, mode, rdev, &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// What the machine's NVDIMM is made into at boot when its namespace is still raw (a fresh
/// backing file). The namespace's info block persists in the backing file, so later boots find
/// it as it was made; a boot asking for another mode than the one found fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Leave it as it is (a fresh one is a raw `/dev/pmem0`).
    None,
    /// Device-dax, 2 MiB aligned: `/dev/dax0.0`.
    DevDax,
    /// fs-dax, 2 MiB aligned: `/dev/pmem0`, for a file system mounted with `-o dax`.
    FsDax,
}

impl Namespace {
    fn arg(self) -> &'static str {
        match self {
            Namespace::None => "none",
            Namespace::DevDax => "devdax",
            Namespace::FsDax => "fsdax",
        }
    }
}

/// A test machine to start: [`Machine::new`], the builder methods, then [`Machine::run`],
/// [`Machine::spawn`] or [`Machine::run_test`].
#[derive(Clone, Debug)]
pub struct Machine {
    name: String,
    memory: Option<PathBuf>,
    memory_size: u64,
    ram_mib: u64,
    system_uuid: Option<String>,
    namespace: Namespace,
    env: Vec<(String, String)>,
    scratch: Option<PathBuf>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

/// 2 MiB, the NVDIMM's and device-dax's alignment.
const ALIGN: u64 = 2 << 20;

impl Machine {
    /// A machine called `name` (letters, digits, `-`, `_`, `.`: its files in the scratch
    /// directory are named after it): no NVDIMM, 1 GiB of RAM, a random system UUID, a fresh
    /// scratch directory, the current directory, a 300 s timeout.
    pub fn new(name: &str) -> Machine {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "machine name {name:?}: use letters, digits, '-', '_' and '.'"
        );
        Machine {
            name: name.to_string(),
            memory: None,
            memory_size: 1 << 30,
            ram_mib: 1024,
            system_uuid: None,
            namespace: Namespace::None,
            env: Vec::new(),
            scratch: None,
            cwd: None,
            timeout: Duration::from_secs(300),
        }
    }

    /// Gives the machine an NVDIMM backed by `file` (shared with the host and with every other
    /// machine on it). A missing file is created, sparse, of [`Machine::memory_size`]; an existing
    /// one is used at its size (a multiple of 2 MiB).
    pub fn memory(mut self, file: impl AsRef<Path>) -> Machine {
        self.memory = Some(file.as_ref().to_path_buf());
        self
    }

    /// The size of a backing file [`Machine::memory`] creates; default 1 GiB (a device-dax of
    /// 1006 MiB). A multiple of 2 MiB.
    pub fn memory_size(mut self, bytes: u64) -> Machine {
        assert!(bytes > 0 && bytes.is_multiple_of(ALIGN), "memory size {bytes}: a multiple of 2 MiB");
        self.memory_size = bytes;
        self
    }

    /// The machine's RAM in MiB (default 1024).
    pub fn ram_mib(mut self, mib: u64) -> Machine {
        self.ram_mib = mib;
        self
    }

    /// The machine's famfs system UUID (its `/opt/famfs/system_uuid`); random by default.
    pub fn system_uuid(mut self, uuid: impl std::fmt::Display) -> Machine {
        let uuid = uuid.to_string();
        assert!(
            uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "system UUID {uuid:?}: expected the 36-character hyphenated form"
        );
        self.system_uuid = Some(uuid);
        self
    }

    /// What the NVDIMM's namespace is made into when it is raw (default: left as it is).
    pub fn namespace(mut self, ns: Namespace) -> Machine {
        self.namespace = ns;
        self
    }

    /// An environment variable of the command (besides `PATH`, `HOME`, [`ENV_INSIDE`],
    /// [`ENV_SCRATCH`], [`ENV_NAME`], and `RUST_BACKTRACE` when the host has it).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Machine {
        assert!(
            !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "environment variable name {key:?}"
        );
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The scratch directory shared (writable) with the machine, at the same path inside; machines
    /// may share one. By default each run gets a fresh one ([`Outcome::scratch`]). Its path must not
    /// contain whitespace, commas or quotes (it goes on the kernel's and QEMU's command lines).
    pub fn scratch(mut self, dir: impl AsRef<Path>) -> Machine {
        self.scratch = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The command's working directory inside (a path of the host); default the current one.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Machine {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// How long the machine may run, boot included, before it is killed (default 300 s).
    pub fn timeout(mut self, secs: u64) -> Machine {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// Boots the machine, runs `argv` (a program of the host and its arguments) inside and waits
    /// for it. `Ok` whenever the command ran to an exit status (look at [`Outcome::code`]);
    /// `Err` when the machine failed to boot, crashed or ran over its timeout.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Outcome, String> {
        self.spawn(argv)?.wait()
    }

    /// [`Machine::run`] without waiting: the machine runs until [`Running::wait`] (or is killed
    /// when the handle is dropped).
    pub fn spawn<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Running, String> {
        assert!(!argv.is_empty(), "machine {}: no command", self.name);
        let (kernel, initrd) = boot_files()?;
        let (scratch, scratch_dir) = match &self.scratch {
            Some(d) => (None, d.clone()),
            None => {
                let t = crate::scratch();
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let scratch_dir = std::fs::canonicalize(&scratch_dir)
            .map_err(|e| format!("scratch directory {}: {e}", scratch_dir.display()))?;
        let scratch_str = scratch_dir
            .to_str()
            .filter(|s| !s.chars().any(|c| c.is_whitespace() || c == ',' || c == '"'))
            .ok_or_else(|| {
                format!("scratch directory {}: not UTF-8, or has whitespace, ',' or '\"'", scratch_dir.display())
            })?
            .to_string();
        ensure_opt_famfs()?;

        // The command and its environment, as files the init script reads.
        let file = |ext: &str| scratch_dir.join(format!("{}.{ext}", self.name));
        for ext in ["exit", "log"] {
            let _ = std::fs::remove_file(file(ext));
        }
        let mut env = vec![
            (ENV_INSIDE.to_string(), "1".to_string()),
            (ENV_SCRATCH.to_string(), scratch_str.clone()),
            (ENV_NAME.to_string(), self.name.clone()),
        ];
        if let Ok(v) = std::env::var("RUST_BACKTRACE") {
            env.push(("RUST_BACKTRACE".into(), v));
        }
        env.extend(self.env.iter().cloned());
        let env_text: String = env.iter().map(|(k, v)| format!("export {k}={}\n", sh_quote(v.as_bytes()))).collect();
        let cwd = match &self.cwd {
            Some(d) => d.clone(),
            None => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
        };
        // The machine's /dev/shm and /var/tmp are its own: a clone or target directory there
        // is missing inside, which would fail as a bare `cd` or `exec` error in the console.
        let first = argv.first().map(|a| std::path::Path::new(a.as_ref()));
        for path in std::iter::once(cwd.as_path()).chain(first) {
            if path.starts_with("/var/tmp") || path.starts_with("/dev/shm") {
                return Err(format!(
                    "{} is under /var/tmp or /dev/shm, which a test machine has its own of; put the clone and CARGO_TARGET_DIR elsewhere (/tmp works)",
                    path.display()
                ));
            }
        }
        let words: Vec<String> = argv.iter().map(|a| sh_quote(a.as_ref().as_encoded_bytes())).collect();
        let cmd_text =
            format!("cd {} || exit 125\nexec {}\n", sh_quote(cwd.as_os_str().as_encoded_bytes()), words.join(" "));
        std::fs::write(file("env"), env_text).map_err(|e| format!("cannot write {}: {e}", file("env").display()))?;
        std::fs::write(file("cmd"), cmd_text).map_err(|e| format!("cannot write {}: {e}", file("cmd").display()))?;

        let mut append = format!(
            "console=ttyS0 panic=-1 famfs.name={} famfs.scratch={scratch_str} famfs.ns={}",
            self.name,
            self.namespace.arg()
        );
        if let Some(u) = &self.system_uuid {
            append.push_str(&format!(" famfs.system_uuid={u}"));
        }

        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-nographic", "-no-reboot", "-nic", "none"]);
        match &self.memory {
            Some(path) => {
                let size = backing_file(path, self.memory_size)?;
                let path = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let path = path
                    .to_str()
                    .filter(|s| !s.contains(','))
                    .ok_or_else(|| format!("backing file {}: not UTF-8 or has a comma", path.display()))?
                    .to_string();
                // The NVDIMM sits in the hot-plug area: room for it above the RAM.
                let maxmem = ((self.ram_mib << 20) + size).next_multiple_of(1 << 30);
                qemu.args(["-machine", "pc,nvdimm=on"]);
                qemu.args(["-m", &format!("{}M,slots=2,maxmem={}M", self.ram_mib, maxmem >> 20)]);
                qemu.args([
                    "-object",
                    &format!("memory-backend-file,id=m1,share=on,mem-path={path},size={size},align=2M"),
                ]);
                qemu.args(["-device", "nvdimm,id=nv1,memdev=m1"]);
            }
            None => {
                qemu.args(["-machine", "pc", "-m", &format!("{}M", self.ram_mib)]);
            }
        }
        qemu.args(["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]);
        qemu.args(["-virtfs", &format!("local,path={scratch_str},mount_tag=scratch,security_model=none")]);
        qemu.arg("-kernel").arg(&kernel.image).arg("-initrd").arg(&initrd).arg("-append").arg(&append);
        qemu.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());

        let started = Instant::now();
        let mut child =
            qemu.spawn().map_err(|e| format!("cannot start qemu-system-x86_64 ({e}): run scripts/vm-deps.sh"))?;
        let console = Arc::new(Mutex::new(Console::default()));
        let marker = format!("famfs-vm: running {}", self.name);
        let echo = std::env::var_os(ENV_ECHO).map(|_| self.name.clone());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(read_console(out, console.clone(), started, Some(marker), echo.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_console(err, console.clone(), started, None, echo));
        }
        Ok(Running {
            name: self.name.clone(),
            child: Some(child),
            console,
            readers,
            started,
            timeout: self.timeout,
            scratch_dir,
            scratch,
            test: None,
        })
    }

    /// Runs test `name` of the current test binary inside the machine (`--exact NAME --ignored
    /// --nocapture --test-threads 1`), with `FAMFS_VM_INSIDE=1`: such tests are
    /// `#[ignore = "runs inside a VM"]` and return early unless [`inside`].
    pub fn run_test(&self, name: &str) -> Result<Outcome, String> {
        self.spawn_test(name)?.wait()
    }

    /// [`Machine::run_test`] without waiting.
    pub fn spawn_test(&self, name: &str) -> Result<Running, String> {
        let exe = std::env::current_exe().map_err(|e| format!("the current test binary: {e}"))?;
        let args = ["--exact", name, "--ignored", "--nocapture", "--test-threads", "1"];
        let argv: Vec<&OsStr> = std::iter::once(exe.as_os_str()).chain(args.iter().map(OsStr::new)).collect();
        let mut running = self.spawn(&argv)?;
        running.test = Some(name.to_string());
        Ok(running)
    }
}

/// Creates `/opt/famfs` on the host if missing: each machine mounts its own over it.
fn ensure_opt_famfs() -> Result<(), String> {
    let p = Path::new("/opt/famfs");
    if p.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(p).map_err(|e| {
        format!(
            "the machines need /opt/famfs on the host as a mount point: cannot create it ({e}); run scripts/vm-deps.sh"
        )
    })
}

/// Creates the backing file (sparse) when missing; its size.
fn backing_file(path: &Path, size: u64) -> Result<u64, String> {
    if !path.exists() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("cannot create backing file {}: {e}", path.display()))?;
        f.set_len(size).map_err(|e| format!("cannot size backing file {}: {e}", path.display()))?;
    }
    let len = std::fs::metadata(path).map_err(|e| format!("backing file {}: {e}", path.display()))?.len();
    if len == 0 || !len.is_multiple_of(ALIGN) {
        return Err(format!("backing file {}: {len} bytes, not a multiple of 2 MiB", path.display()));
    }
    Ok(len)
}

/// `s` quoted for sh.
fn sh_quote(s: &[u8]) -> String {
    format!("'{}'", String::from_utf8_lossy(s).replace('\'', "'\\''"))
}

/// A machine's console (serial output, then QEMU's own messages) and when the command started.
#[derive(Default)]
struct Console {
    text: String,
    boot: Option<Duration>,
}

fn read_console(
    pipe: impl Read + Send + 'static,
    console: Arc<Mutex<Console>>,
    started: Instant,
    marker: Option<String>,
    echo: Option<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            let mut c = console.lock().unwrap_or_else(|e| e.into_inner());
            if c.boot.is_none() && marker.as_deref().is_some_and(|m| text.contains(m)) {
                c.boot = Some(started.elapsed());
            }
            if let Some(name) = &echo {
                eprint!("[{name} {:6.1}] {text}", started.elapsed().as_secs_f64());
            }
            c.text.push_str(&text);
            line.clear();
        }
    })
}

/// A running machine ([`Machine::spawn`]); killed when dropped.
pub struct Running {
    name: String,
    child: Option<Child>,
    console: Arc<Mutex<Console>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    timeout: Duration,
    scratch_dir: PathBuf,
    scratch: Option<tempfile::TempDir>,
    /// The test [`Machine::spawn_test`] runs, which must have run.
    test: Option<String>,
}

impl Running {
    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its scratch directory.
    pub fn scratch(&self) -> &Path {
        &self.scratch_dir
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap_or_else(|e| e.into_inner()).text.clone()
    }

    /// Whether QEMU still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn deadline(&self) -> Instant {
        self.started + self.timeout
    }

    fn failure(&self, what: &str) -> String {
        format!("machine {}: {what}; console tail:\n{}", self.name, tail(&self.console(), 40))
    }

    /// Waits until `path` exists (e.g. a file the command writes into the scratch directory when
    /// it is ready), while the machine runs: `Err` with the console's tail if the machine ends
    /// first or `timeout` (capped by the machine's own) passes.
    pub fn wait_for_file(&mut self, path: impl AsRef<Path>, timeout: Duration) -> Result<(), String> {
        let path = path.as_ref();
        let until = (Instant::now() + timeout).min(self.deadline());
        loop {
            if path.exists() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(self.failure(&format!("ended before {} appeared", path.display())));
            }
            if Instant::now() >= until {
                return Err(self.failure(&format!("no {} after {timeout:?}", path.display())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the machine to power off (killing it at its timeout) and collects the command's
    /// exit status and output.
    pub fn wait(mut self) -> Result<Outcome, String> {
        let status = loop {
            let Some(child) = self.child.as_mut() else { return Err(self.failure("already waited for")) };
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= self.deadline() => {
                    self.kill();
                    return Err(self.failure(&format!("killed after its {:?} timeout", self.timeout)));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(self.failure(&format!("waiting for QEMU: {e}"))),
            }
        };
        self.child = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let total = self.started.elapsed();
        let exit_file = self.scratch_dir.join(format!("{}.exit", self.name));
        let code = match std::fs::read_to_string(&exit_file) {
            Ok(s) => s
                .trim()
                .parse::<i32>()
                .map_err(|_| self.failure(&format!("{} holds {s:?}, not an exit status", exit_file.display())))?,
            Err(_) => {
                return Err(self.failure(&format!("QEMU exited ({status}) without an exit status of the command")));
            }
        };
        let output = std::fs::read_to_string(self.scratch_dir.join(format!("{}.log", self.name))).unwrap_or_default();
        if let Some(test) = &self.test
            && code == 0
            && !output.contains("test result: ok. 1 passed")
        {
            return Err(self.failure(&format!("test {test} did not run inside (no such test?); output:\n{output}")));
        }
        let (console, boot_time) = {
            let c = self.console.lock().unwrap_or_else(|e| e.into_inner());
            (c.text.clone(), c.boot)
        };
        Ok(Outcome {
            name: self.name.clone(),
            code,
            output,
            console,
            boot_time,
            total_time: total,
            scratch: self.scratch_dir.clone(),
            _scratch: self.scratch.take(),
        })
    }

    /// Kills the machine (QEMU) now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A finished machine's command.
pub struct Outcome {
    /// The machine's name.
    pub name: String,
    /// The command's exit status (125: the init script or `cd` failed; 126/127: not executable /
    /// not found; 128+N: killed by signal N).
    pub code: i32,
    /// Its standard output and error, interleaved.
    pub output: String,
    /// The whole serial console (kernel messages, init's, the command's output) and QEMU's own
    /// messages.
    pub console: String,
    /// From starting QEMU to the command starting, when the console showed it.
    pub boot_time: Option<Duration>,
    /// From starting QEMU to its end.
    pub total_time: Duration,
    /// The scratch directory (removed with the outcome when it was the default fresh one).
    pub scratch: PathBuf,
    _scratch: Option<tempfile::TempDir>,
}

impl Outcome {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panics, with the command's output and the console's tail, unless it exited 0.
    pub fn assert_success(&self) -> &Outcome {
        assert!(
            self.success(),
            "machine {}: the command exited {}; output:\n{}\nconsole tail:\n{}",
            self.name,
            self.code,
            self.output,
            tail(&self.console, 40)
        );
        self
    }

    /// One line of timings, for test logs.
    pub fn timings(&self) -> String {
        let boot = self.boot_time.map_or("?".into(), |b| format!("{:.1} s", b.as_secs_f64()));
        format!("machine {}: boot to command {boot}, total {:.1} s", self.name, self.total_time.as_secs_f64())
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Inside a machine (or anywhere): waits until `path` exists, polling; `Err` after `timeout`.
pub fn wait_for_file(path: impl AsRef<Path>, timeout: Duration) -> Result<(), String> {
    let path = path.as_ref();
    let until = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= until {
            return Err(format!("no {} after {timeout:?}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Writes `data` to `path` atomically (a temporary file renamed into place), so that a reader
/// polling for `path` never sees it half written.
pub fn write_signal(path: impl AsRef<Path>, data: &[u8]) -> Result<(), String> {
    let path = path.as_ref();
    let mut tmp: OsString = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, data).map_err(|e| format!("cannot write {}: {e}", Path::new(&tmp).display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename into {}: {e}", path.display()))
}
