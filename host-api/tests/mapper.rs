//! The mapper and the SIGBUS guard on real files, without wasm: a stand-in linear memory is an
//! anonymous read-write mapping, as wasmtime's is.

use famfs_host_api::mapper::{LinearMemory, Mapper, WASM_PAGE};
use famfs_host_api::{Catalog, ErrorCode};
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
    let mut m = Mapper::new();
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
    let mut m = Mapper::new();
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
    let mut m = Mapper::new();
    let at = WASM_PAGE as u32;
    m.map(mem.lm(), &ds, 0, bytes.len() as u32, at, false).unwrap();
    assert_eq!(mem.bytes(at, 4096), bytes[..4096]);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(2 * WASM_PAGE).unwrap();
    // Past the new end of file: without the guard this load kills the process.
    let past = 5 * WASM_PAGE as u32;
    assert_eq!(mem.bytes(at + past, 16), [0u8; 16]);
    let faults = m.take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].dataset, "f.bin");
    assert_eq!(faults[0].offset, u64::from(past));
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
