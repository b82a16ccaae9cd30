//! The mapper and the SIGBUS guard on real files, without wasm: a stand-in linear memory is an
//! anonymous read-write mapping, as wasmtime's is.

use famfs_host_api::mapper::{LinearMemory, MapLimits, Mapper, WASM_PAGE};
use famfs_host_api::{Catalog, ErrorCode};

/// A mapper under `limits`, with the guard installed first (as the runtime's engine does).
fn guarded_mapper(limits: MapLimits) -> Result<Mapper, famfs_host_api::mapper::MapperError> {
    famfs_host_api::guard::install();
    Mapper::new(limits)
}
use std::path::Path;

/// An anonymous read-write region standing in for a guest's linear memory.
struct FakeMemory {
    base: *mut u8,
    size: usize,
}

impl FakeMemory {
    fn new(size: usize) -> FakeMemory {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                size,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .unwrap() as *mut u8;
        FakeMemory { base, size }
    }

    fn lm(&self) -> LinearMemory {
        // SAFETY: the region is ours, read-write, never moves, and the tests hold no references
        // into it while mapping.
        unsafe { LinearMemory::new(self.base, self.size) }.unwrap()
    }

    fn bytes(&self, at: u32, len: usize) -> Vec<u8> {
        // SAFETY: inside the region; copied out at once.
        unsafe { std::slice::from_raw_parts(self.base.add(at as usize), len) }.to_vec()
    }

    fn store(&self, at: u32, v: u8) {
        // SAFETY: inside the region, which is writable (a private mapping there is too).
        unsafe { self.base.add(at as usize).write_volatile(v) }
    }
}

impl Drop for FakeMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the region this value mapped.
        unsafe { rustix::mm::munmap(self.base as *mut _, self.size).unwrap() };
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

fn catalog(dir: &Path) -> Catalog {
    let mut c = Catalog::open_mount(dir).unwrap();
    c.grant("/").unwrap();
    c
}

#[test]
fn maps_file_bytes_and_unmaps_to_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 * WASM_PAGE as usize + 123, 7);
    std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
    let ds = catalog(dir.path()).open("f.bin").unwrap();
    let mem = FakeMemory::new(64 << 20);
    let mut m = guarded_mapper(MapLimits::default()).unwrap();
    let at = 16 * WASM_PAGE as u32;
    assert_eq!(m.map(mem.lm(), &ds, 0, bytes.len() as u32, at, true), Ok(at));
    assert_eq!(mem.bytes(at, bytes.len()), bytes);
    // A store changes only the private copy.
    mem.store(at, !bytes[0]);
    assert_eq!(mem.bytes(at, 1), [!bytes[0]]);
    assert_eq!(std::fs::read(dir.path().join("f.bin")).unwrap(), bytes);
    // A window from an aligned offset.
    let at2 = 32 * WASM_PAGE as u32;
    assert_eq!(m.map(mem.lm(), &ds, WASM_PAGE, 1000, at2, false), Ok(at2));
    assert_eq!(mem.bytes(at2, 1000), bytes[WASM_PAGE as usize..WASM_PAGE as usize + 1000]);
    assert_eq!(m.live(), 2);
    assert!(m.unmap(at));
    assert!(!m.unmap(at), "already unmapped");
    assert!(mem.bytes(at, bytes.len()).iter().all(|&b| b == 0));
    assert_eq!(m.bytes_mapped(), bytes.len() as u64 + 1000);
    assert!(m.take_faults().is_empty());
}

#[test]
fn bad_requests_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), data(4 * WASM_PAGE as usize, 1)).unwrap();
    let ds = catalog(dir.path()).open("f.bin").unwrap();
    let mem = FakeMemory::new(16 << 20);
    let mut m = guarded_mapper(MapLimits::default()).unwrap();
    let p = WASM_PAGE as u32;
    let inval = Err(ErrorCode::InvalidArgument);
    assert_eq!(m.map(mem.lm(), &ds, 0, 0, p, false), inval, "empty");
    assert_eq!(m.map(mem.lm(), &ds, 0, 5 * p, p, false), inval, "past the end");
    assert_eq!(m.map(mem.lm(), &ds, u64::MAX - 65535, p, p, false), inval, "offset overflow");
    assert_eq!(m.map(mem.lm(), &ds, 4096, p, p, false), inval, "misaligned offset");
    assert_eq!(m.map(mem.lm(), &ds, 0, p, p + 4096, false), inval, "misaligned at");
    assert_eq!(m.map(mem.lm(), &ds, 0, p, (16 << 20) - p / 2, false), inval, "outside memory");
    assert_eq!(m.map(mem.lm(), &ds, 0, p, 16 << 20, false), inval, "at the end of memory");
    assert_eq!(m.map(mem.lm(), &ds, 0, 2 * p, 4 * p, false), Ok(4 * p));
    assert_eq!(m.map(mem.lm(), &ds, 0, p, 5 * p, false), inval, "overlap inside");
    assert_eq!(m.map(mem.lm(), &ds, 0, 2 * p, 3 * p, false), inval, "overlap from below");
    assert_eq!(m.map(mem.lm(), &ds, 0, p, 6 * p, false), Ok(6 * p), "adjacent is fine");
    assert_eq!(m.live(), 2);
}

/// R4: the file shrinks under a live mapping; the load that would SIGBUS reads zeros instead,
/// the process lives, and the fault is reported with the dataset and offset.
#[test]
fn sigbus_on_a_truncated_file_is_caught_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let bytes = data(8 * WASM_PAGE as usize, 3);
    std::fs::write(&path, &bytes).unwrap();
    let ds = catalog(dir.path()).open("f.bin").unwrap();
    let mem = FakeMemory::new(16 << 20);
    let mut m = guarded_mapper(MapLimits::default()).unwrap();
    let at = WASM_PAGE as u32;
    m.map(mem.lm(), &ds, 0, bytes.len() as u32, at, false).unwrap();
    assert_eq!(mem.bytes(at, 4096), bytes[..4096]);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(2 * WASM_PAGE).unwrap();
    // Past the new end of file: without the guard this load kills the process.
    let past = 5 * WASM_PAGE as u32;
    assert_eq!(mem.bytes(at + past, 16), [0u8; 16]);
    let faults = m.take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].dataset(), "f.bin");
    assert_eq!(faults[0].offset(), u64::from(past));
    assert!(faults[0].to_string().contains("media error in dataset f.bin at offset 327680"));
    // Unmapping afterwards is fine and the range is plain memory again.
    assert!(m.unmap(at));
    assert_eq!(mem.bytes(at + past, 16), [0u8; 16]);
}

#[test]
fn catalog_grants_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/x"), b"x").unwrap();
    std::fs::write(dir.path().join("top"), b"top").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("a/out")).unwrap();
    let mut c = Catalog::open_mount(dir.path()).unwrap();
    c.grant("a").unwrap();
    assert!(c.grant("nope").is_err());
    assert_eq!(c.open("a/b/x").unwrap().len(), 1);
    assert_eq!(c.open("top").err(), Some(ErrorCode::NotPermitted), "not granted");
    assert_eq!(c.open("a/../top").err(), Some(ErrorCode::NotPermitted), "dot-dot");
    assert_eq!(c.open("/a/b/x").err(), Some(ErrorCode::NotPermitted), "absolute");
    assert_eq!(c.open("a/out").err(), Some(ErrorCode::NotPermitted), "symlink out");
    assert_eq!(c.open("a/missing").err(), Some(ErrorCode::NotFound));
    assert_eq!(c.open("a/b").err(), Some(ErrorCode::NotFound), "directory");
    assert_eq!(c.open("ab").err(), Some(ErrorCode::NotPermitted), "a prefix of a name is not a grant");
    let names: Vec<String> = c.list().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["a/b/x"]);
    assert_eq!(Catalog::empty().open("x").err(), Some(ErrorCode::NotPermitted));
    // A FIFO in the tree neither blocks the host nor opens as a dataset.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("a/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    assert_eq!(c.open("a/fifo").err(), Some(ErrorCode::NotFound));
}

/// Defect 6: a symbolic link inside a granted directory used to open what it named, however
/// ungranted (`data/l -> ../secret.bin`) or reserved (`data/sb -> ../.meta/.superblock`), while
/// `list` skipped links. Links are now refused wherever they are on the path, and what `list`
/// shows is exactly what `open` opens.
#[test]
fn symbolic_links_inside_the_tree_are_refused_and_list_agrees_with_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data/sub")).unwrap();
    std::fs::create_dir_all(root.join(".meta")).unwrap();
    std::fs::create_dir_all(root.join("other")).unwrap();
    std::fs::write(root.join("data/real.bin"), b"real").unwrap();
    std::fs::write(root.join("data/sub/deep.bin"), b"deep").unwrap();
    std::fs::write(root.join("secret.bin"), b"secret").unwrap();
    std::fs::write(root.join(".meta/.superblock"), b"superblock").unwrap();
    std::fs::write(root.join("other/x.bin"), b"other").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
    link("../secret.bin", "data/l");
    link("../.meta/.superblock", "data/sb");
    link("real.bin", "data/same");
    link("../other", "data/dir");
    link("sub", "data/subdir");
    let mut c = Catalog::open_mount(root).unwrap();
    c.grant("data").unwrap();
    for name in ["data/l", "data/sb", "data/same", "data/dir/x.bin", "data/subdir/deep.bin"] {
        assert_eq!(c.open(name).err(), Some(ErrorCode::NotPermitted), "{name} goes through a symbolic link");
    }
    assert_eq!(c.open("data/real.bin").unwrap().len(), 4);
    assert_eq!(c.open("data/sub/deep.bin").unwrap().len(), 4);
    let listed: Vec<(String, u64)> = c.list().into_iter().map(|i| (i.name, i.len)).collect();
    assert_eq!(listed, [("data/real.bin".to_string(), 4), ("data/sub/deep.bin".to_string(), 4)]);
    for (name, len) in &listed {
        assert_eq!(c.open(name).unwrap().len(), *len, "{name}: listed, so it opens");
    }
    // Granting everything still never reaches .meta, through a link or by name.
    let mut all = Catalog::open_mount(root).unwrap();
    all.grant("/").unwrap();
    assert!(all.list().iter().all(|i| !i.name.starts_with(".meta")), "{:?}", all.list());
    assert_eq!(all.open(".meta/.superblock").err(), Some(ErrorCode::NotPermitted));
    assert_eq!(all.open("data/sb").err(), Some(ErrorCode::NotPermitted));
}

/// Defect 10: `list` walked the whole mount, whatever the grant, on the guest's time. It now
/// walks only the granted subtrees, and stops when the invocation is interrupted.
#[test]
fn list_walks_only_granted_subtrees_and_stops_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("small")).unwrap();
    std::fs::write(root.join("small/a"), b"a").unwrap();
    for d in 0..20 {
        std::fs::create_dir_all(root.join(format!("big/{d}"))).unwrap();
        for f in 0..50 {
            std::fs::write(root.join(format!("big/{d}/{f}")), b"x").unwrap();
        }
    }
    let mut c = Catalog::open_mount(root).unwrap();
    c.grant("small").unwrap();
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = polls.clone();
    let interrupt = famfs_host_api::Interrupt::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    });
    let names: Vec<String> = c.list_until(&interrupt).into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["small/a"]);
    let visited = polls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(visited < 10, "walked {visited} entries for a grant of one file's directory");
    // Everything granted, but the time is up: the walk stops at once.
    let mut all = Catalog::open_mount(root).unwrap();
    all.grant("/").unwrap();
    assert_eq!(all.list().len(), 1001);
    assert!(all.list_until(&famfs_host_api::Interrupt::new(|| true)).is_empty());
}
