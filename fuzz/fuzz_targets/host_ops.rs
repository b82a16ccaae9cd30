//! What the `host_api` fuzz target does with one input: a sequence of the calls a guest can make
//! through `famfs:dataset` (open, list, len, read, map, unmap, drop, plus stores into its own
//! memory and `memory.grow`), with arbitrary arguments and handles, run against the host's
//! catalog, handle tables and mapper, over a small famfs image and a mounted tree planted with
//! symbolic links and a `.meta`. This file is the single copy of that logic: the fuzz target
//! (`host_api.rs`) includes it as a module, and so does the normal test suite
//! (`host-api/tests/fuzz_corpus.rs`, via `#[path]`), which replays the corpus through it. It may
//! use only `famfs`, `famfs-host-api`, `rustix` and `std`.
//!
//! Checked after every call, a failure being a finding like a panic:
//! - nothing panics;
//! - a mapping the host accepted lies inside the guest's accessible memory, is 64 KiB-aligned,
//!   and its bytes are the dataset's bytes; after unmapping, the range reads zeros;
//! - a read returns the dataset's bytes, at most 1 MiB, and only up to its end;
//! - no name reached through a symbolic link, under `.meta` or outside the grants ever opens,
//!   and every name `list` gives opens;
//! - the caps hold: live mappings, kernel mappings, open datasets;
//! - and after the sequence, every dataset byte the guest stored over is unchanged in the file.
//!
//! Input: byte 0 picks the source (bit 0: image or mount), the grants (bits 1-2) and the map
//! technique (bit 3: private, or shared with the host's copy-on-write); then ops, each one
//! selector byte and its arguments (little-endian); a short read ends the sequence.

#![allow(dead_code)]

use famfs::{Attrs, Layout, MkfsOptions, RelPath, Source, SystemIdentity, Writer};
use famfs_host_api::handles::HandleTable;
use famfs_host_api::limits::MAX_READ;
use famfs_host_api::mapper::{LinearMemory, MapLimits, MapTechnique, Mapper, WASM_PAGE};
use famfs_host_api::{Catalog, Dataset, ErrorCode, Interrupt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Files of both sources: (name, length, interleaved in the image).
const FILES: [(&str, u64, bool); 4] = [
    ("data/a.bin", 3 * WASM_PAGE + 123, false),
    ("data/big.bin", 5 << 20, true),
    ("data/sub/c.bin", 4096, false),
    ("secret/s.bin", 2 * WASM_PAGE, false),
];

/// Names the fuzzer picks from (besides raw bytes): valid, ungranted, escaping, reserved and,
/// on the mount, symbolic links.
const NAMES: [&str; 16] = [
    "data/a.bin",
    "data/big.bin",
    "data/sub/c.bin",
    "secret/s.bin",
    "data/link-secret",
    "data/link-meta",
    "data/link-dir/s.bin",
    "data/link-same",
    ".meta/.superblock",
    "data/../secret/s.bin",
    "/data/a.bin",
    "data",
    "data/sub",
    "data/missing",
    "",
    "data//a.bin",
];

/// Names reached through a symbolic link on the mount: never to open.
const LINKS: [&str; 4] = ["data/link-secret", "data/link-meta", "data/link-dir/s.bin", "data/link-same"];

/// Accessible guest memory at the start, and the most `Grow` may reach.
const MEMORY: usize = 16 << 20;
const MEMORY_MAX: usize = 64 << 20;
/// Caps small enough to reach; the technique comes from the input.
fn limits(technique: MapTechnique) -> MapLimits {
    MapLimits { max_mappings: 8, max_kernel_mappings: 96, technique }
}
const MAX_OPEN: usize = 12;
const MAX_OPS: usize = 64;

/// Byte `i` of the file with index `file`.
fn content(file: usize, i: u64) -> u8 {
    ((i.wrapping_mul(131) >> 3) as u8) ^ ((i >> 12) as u8) ^ (file as u8).wrapping_mul(71)
}

fn file_bytes(file: usize) -> Vec<u8> {
    (0..FILES[file].1).map(|i| content(file, i)).collect()
}

fn file_index(name: &str) -> Option<usize> {
    FILES.iter().position(|f| f.0 == name)
}

/// The image and the mount, made once per process, and a catalog over each with nothing
/// granted (opening the image replays its log: once, not per input). It lives in a `static`,
/// which is never dropped: its directory outlives the process, and the next process removes it
/// ([`remove_stale_fixtures`]).
struct Fixture {
    image: Catalog,
    mount: Catalog,
}

/// The prefix of a fixture's directory; the process's id follows it.
pub const FIXTURE_PREFIX: &str = "famfs-host-fuzz-";

/// Removes from `base` the fixture directories of processes that no longer run (every fuzzing
/// process and every run of the corpus test leaves its own; /dev/shm is memory).
pub fn remove_stale_fixtures(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(FIXTURE_PREFIX)) else { continue };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        remove_stale_fixtures(&base);
        let dir = base.join(format!("{FIXTURE_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("fs.img");
        let me = SystemIdentity::from_uuid("11111111-2222-4333-8444-555555555555".parse().unwrap());
        famfs::mkfs(&image, &MkfsOptions { size: Some(64 << 20), ..Default::default() }, &me).unwrap();
        let mut w = Writer::open(&image, &me).unwrap();
        let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
        let mount = dir.join("mnt");
        for (i, (name, len, interleaved)) in FILES.iter().enumerate() {
            let p = RelPath::parse(name).unwrap();
            if let Some(parent) = p.parent() {
                w.mkdir_all(&parent, Attrs { mode: 0o755, ..attrs }).unwrap();
            }
            let layout = if *interleaved {
                Layout::Interleaved(famfs::alloc::Interleave { nstrips: 3, nbuckets: 3, chunk_size: 2 << 20 })
            } else {
                Layout::Simple
            };
            let bytes = file_bytes(i);
            w.create_file(&p, Source::Bytes(&bytes), *len, attrs, layout, &mut |_| {}).unwrap();
            let host = mount.join(name);
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::fs::write(host, &bytes).unwrap();
        }
        drop(w);
        std::fs::create_dir_all(mount.join(".meta")).unwrap();
        std::fs::write(mount.join(".meta/.superblock"), b"superblock").unwrap();
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, mount.join(at)).unwrap();
        link("../secret/s.bin", "data/link-secret");
        link("../.meta/.superblock", "data/link-meta");
        link("../secret", "data/link-dir");
        link("a.bin", "data/link-same");
        let (image, mount) = (Catalog::open_device(&image).unwrap(), Catalog::open_mount(&mount).unwrap());
        Fixture { image, mount }
    })
}

/// A stand-in guest memory, as wasmtime and the memory creator make them: a `PROT_NONE`,
/// `NORESERVE` reservation whose first `size` bytes are read-write.
struct Memory {
    base: *mut u8,
    size: usize,
}

impl Memory {
    fn new() -> Memory {
        // SAFETY: a fresh anonymous reservation at an address the kernel picks.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                MEMORY_MAX,
                rustix::mm::ProtFlags::empty(),
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .unwrap() as *mut u8;
        let mut m = Memory { base, size: 0 };
        m.grow_to(MEMORY);
        m
    }

    fn grow_to(&mut self, size: usize) {
        if size <= self.size || size > MEMORY_MAX {
            return;
        }
        // SAFETY: the pages from the old size to `size`, still PROT_NONE, of our own reservation
        // (only those: a mapping below may be read-only and shared, as wasmtime's growth also
        // leaves it).
        unsafe {
            rustix::mm::mprotect(
                self.base.add(self.size).cast(),
                size - self.size,
                rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
            )
        }
        .unwrap();
        self.size = size;
    }

    fn lm(&self) -> LinearMemory {
        // SAFETY: the accessible part of our reservation; it never moves and no reference into it
        // is held while mapping.
        unsafe { LinearMemory::new(self.base, self.size) }.unwrap()
    }

    fn load(&self, at: u64) -> u8 {
        assert!((at as usize) < self.size);
        // SAFETY: inside the accessible memory (checked just above).
        unsafe { self.base.add(at as usize).read_volatile() }
    }

    fn store(&self, at: u64, v: u8) {
        assert!((at as usize) < self.size);
        // SAFETY: inside the accessible, writable memory (checked just above).
        unsafe { self.base.add(at as usize).write_volatile(v) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmapping the reservation this value made (file mappings inside it go too).
        unsafe { rustix::mm::munmap(self.base.cast(), MEMORY_MAX).unwrap() };
    }
}

/// Reads little-endian values off the input; `None` past its end.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    /// A handle: one of the `live` ones (high bit clear), or a raw one from the input.
    fn handle(&mut self, live: &[u32]) -> Option<u32> {
        let b = self.u8()?;
        if b & 0x80 != 0 || live.is_empty() { self.u32() } else { Some(live[b as usize % live.len()]) }
    }
    /// A name: one of [`NAMES`], or up to 100 raw bytes.
    fn name(&mut self) -> Option<String> {
        let b = self.u8()?;
        if b < 200 {
            return Some(NAMES[b as usize % NAMES.len()].to_string());
        }
        let len = (self.u8()? % 100) as usize;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(String::from_utf8_lossy(head).into_owned())
    }
    /// An offset: small and aligned mostly, anything sometimes.
    fn offset(&mut self) -> Option<u64> {
        let b = self.u8()?;
        match b % 4 {
            0 => Some(0),
            1 => Some(u64::from(self.u8()?) * WASM_PAGE),
            2 => Some(u64::from(self.u32()?)),
            _ => self.u64(),
        }
    }
}

/// One live mapping, as the harness knows it.
struct LiveMap {
    at: u32,
    len: u32,
    dataset: String,
    offset: u64,
}

/// Runs one input. Panics on a finding.
pub fn run(data: &[u8]) {
    let fx = fixture();
    let mut input = Input(data);
    let Some(setup) = input.u8() else { return };
    let image = setup & 1 == 0;
    let mut catalog = if image { fx.image.clone() } else { fx.mount.clone() };
    let grants: &[&str] = match (setup >> 1) & 3 {
        0 => &["/"],
        1 => &["data"],
        2 => &["data/a.bin", "secret"],
        _ => &["data/sub"],
    };
    for g in grants {
        catalog.grant(g).unwrap();
    }
    let granted = |name: &str| {
        grants.iter().any(|g| *g == "/" || name == *g || name.strip_prefix(g).is_some_and(|r| r.starts_with('/')))
    };
    let mut mem = Memory::new();
    let technique = if setup & 8 == 0 { MapTechnique::Private } else { MapTechnique::Shared };
    let lim = limits(technique);
    famfs_host_api::guard::install();
    let mut mapper = Mapper::new(lim).unwrap();
    let mut datasets: HandleTable<Dataset> = HandleTable::default();
    let mut mappings: HandleTable<LiveMap> = HandleTable::default();
    // Guest addresses the guest stored to inside a mapping: (dataset, dataset offset).
    let mut stored: Vec<(String, u64)> = Vec::new();
    for _ in 0..MAX_OPS {
        let Some(op) = input.u8() else { break };
        let live_ds: Vec<u32> = live_handles(&datasets);
        let live_maps: Vec<u32> = live_handles(&mappings);
        let step = match op % 10 {
            0 => (|| {
                let name = input.name()?;
                let r = if datasets.len() >= MAX_OPEN { Err(ErrorCode::NoAddressSpace) } else { catalog.open(&name) };
                if let Ok(d) = &r {
                    assert!(!LINKS.contains(&name.as_str()) || image, "{name}: opened through a symbolic link");
                    assert!(!name.starts_with(".meta") && granted(&name), "{name}: opened though not granted");
                    let i = file_index(&name).unwrap_or_else(|| panic!("{name} opened, but is no file"));
                    assert_eq!(d.len(), FILES[i].1, "{name}: length");
                }
                if let Ok(d) = r {
                    datasets.insert(d);
                }
                Some(())
            })(),
            1 => {
                let listed = catalog.list_until(&Interrupt::never());
                for info in &listed {
                    assert!(granted(&info.name), "{} listed, not granted", info.name);
                    let d = catalog.open(&info.name).unwrap_or_else(|e| panic!("{} listed but opens {e:?}", info.name));
                    assert_eq!(d.len(), info.len, "{}: listed length", info.name);
                }
                Some(())
            }
            2 => input.handle(&live_ds).map(|h| {
                if let Some(d) = datasets.get(h) {
                    assert!(file_index(d.name()).is_some());
                }
            }),
            3 => (|| {
                let h = input.handle(&live_ds)?;
                let offset = input.offset()?;
                let len = input.u32()? % (3 << 20);
                let Some(d) = datasets.get(h) else { return Some(()) };
                let want = u64::from(len).min(d.len().saturating_sub(offset)).min(u64::from(MAX_READ)) as usize;
                let mut buf = vec![0u8; want];
                match d.read_at(offset, &mut buf) {
                    Ok(n) => {
                        assert!(offset <= d.len());
                        assert_eq!(n, want, "{}: read {n} of {want} at {offset}", d.name());
                        let i = file_index(d.name()).unwrap();
                        assert!(
                            buf.iter().enumerate().all(|(k, &b)| b == content(i, offset + k as u64)),
                            "{}: bytes",
                            d.name()
                        );
                    }
                    Err(ErrorCode::InvalidArgument) => assert!(offset > d.len()),
                    Err(e) => panic!("{}: read failed: {e:?}", d.name()),
                }
                Some(())
            })(),
            4 => (|| {
                let h = input.handle(&live_ds)?;
                let offset = input.offset()?;
                let len = match input.u8()? % 3 {
                    0 => WASM_PAGE as u32,
                    1 => u32::from(input.u8()?) * 4099,
                    _ => input.u32()?,
                };
                let at = match input.u8()? % 3 {
                    0 => u32::from(input.u8()?) * WASM_PAGE as u32,
                    1 => (mem.size as u32).wrapping_sub(WASM_PAGE as u32 * u32::from(input.u8()?)),
                    _ => input.u32()?,
                };
                let populate = input.u8()? & 1 == 1;
                let Some(d) = datasets.get(h) else { return Some(()) };
                let kernel_before = mapper.kernel_mappings();
                match mapper.map(mem.lm(), d, offset, len, at, populate) {
                    Ok(got) => {
                        assert_eq!(got, at);
                        let end = u64::from(at) + u64::from(len).div_ceil(WASM_PAGE) * WASM_PAGE;
                        assert!(
                            end <= mem.size as u64 && u64::from(at).is_multiple_of(WASM_PAGE),
                            "mapping {at:#x}+{len:#x} outside memory"
                        );
                        assert!(
                            mapper.live() <= lim.max_mappings && mapper.kernel_mappings() <= lim.max_kernel_mappings
                        );
                        let i = file_index(d.name()).unwrap();
                        for k in [0, u64::from(len) / 2, u64::from(len) - 1] {
                            assert_eq!(
                                mem.load(u64::from(at) + k),
                                content(i, offset + k),
                                "{}: mapped byte {k}",
                                d.name()
                            );
                        }
                        mappings.insert(LiveMap { at, len, dataset: d.name().to_string(), offset });
                    }
                    Err(_) => assert_eq!(mapper.kernel_mappings(), kernel_before),
                }
                Some(())
            })(),
            5 => input.handle(&live_maps).map(|h| {
                if let Some(m) = mappings.remove(h) {
                    assert!(mapper.unmap(m.at));
                    for k in [0, u64::from(m.len) - 1] {
                        assert_eq!(mem.load(u64::from(m.at) + k), 0, "unmapped range reads {k}");
                    }
                }
            }),
            6 => (|| {
                let at = u64::from(input.u32()?) % mem.size as u64;
                let v = input.u8()?;
                mem.store(at, v);
                for m in mappings.values() {
                    if (u64::from(m.at)..u64::from(m.at) + u64::from(m.len)).contains(&at) {
                        stored.push((m.dataset.clone(), m.offset + at - u64::from(m.at)));
                    }
                }
                Some(())
            })(),
            7 => input.handle(&live_ds).map(|h| {
                datasets.remove(h);
            }),
            8 => input.u8().map(|pages| mem.grow_to(mem.size + usize::from(pages) * WASM_PAGE as usize)),
            _ => (|| {
                // A mapping's address and length, as `mapping.addr`/`len` answer them.
                let h = input.handle(&live_maps)?;
                if let Some(m) = mappings.get(h) {
                    assert_eq!(mapper.mapping_len(m.at), Some(m.len));
                }
                Some(())
            })(),
        };
        if step.is_none() {
            break;
        }
    }
    assert!(mapper.take_faults().is_empty(), "a fault without a shrinking file");
    // The guest's stores changed only its private copies: the files are as they were.
    let mut check = if image { fx.image.clone() } else { fx.mount.clone() };
    check.grant("/").unwrap();
    for (name, offset) in stored {
        let d = check.open(&name).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(d.read_at(offset, &mut b), Ok(1));
        assert_eq!(b[0], content(file_index(&name).unwrap(), offset), "{name}: byte {offset} changed in the file");
    }
    // Registrations go before the memory they guard.
    drop(mapper);
    drop(mem);
}

fn live_handles<T>(t: &HandleTable<T>) -> Vec<u32> {
    t.handles().collect()
}
