//! The shared technique (issue 12): datasets mapped `MAP_SHARED`, read-only, with copy-on-write
//! done by the host (`famfs_host_api::cow`), as device-dax requires, tested on files (whose
//! shared mappings behave like device-dax for every rule here). A store lands in a private copy
//! of its 2 MiB block and never reaches the file; a kernel write is readied first; two threads
//! storing into one block at once lose nothing.

mod common;

use common::{GuestLikeMemory, catalog};
use famfs_host_api::ErrorCode;
use famfs_host_api::cow::BLOCK;
use famfs_host_api::mapper::{MapLimits, MapTechnique, Mapper};
use std::os::unix::fs::FileExt;

fn shared() -> Mapper {
    Mapper::new(MapLimits { technique: MapTechnique::Shared, ..MapLimits::default() }).unwrap()
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13) ^ (i >> 12) as u8).collect()
}

#[test]
fn stores_into_a_shared_mapping_land_in_private_copies_of_their_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 * BLOCK);
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(32 << 20);
    let mut m = shared();
    let at = (4 * BLOCK) as u32;
    assert_eq!(m.map(mem.lm(), &ds, 0, data.len() as u32, at, false), Ok(at));
    assert_eq!(mem.load(at + 12345), data[12345], "loads read the file's pages");
    // A store into the second block: it lands, the rest of the block is still the file's.
    let b = at + BLOCK as u32;
    mem.store(b + 7, !data[BLOCK + 7]);
    assert_eq!(mem.load(b + 7), !data[BLOCK + 7]);
    for off in [0usize, 6, 8, 4096, BLOCK - 1] {
        assert_eq!(mem.load(b + off as u32), data[BLOCK + off], "byte {off} of the copied block");
    }
    // The other blocks are still the file's, and the file never changed.
    assert_eq!(mem.load(at + 7), data[7]);
    assert_eq!(mem.load(at + 2 * BLOCK as u32 + 7), data[2 * BLOCK + 7]);
    assert_eq!(std::fs::read(dir.path().join("d.bin")).unwrap(), data);
    assert!(m.take_faults().is_empty());
    assert!(m.unmap(at));
    assert_eq!(mem.load(b + 7), 0, "unmapped: zeros again");
}

/// The kernel cannot write into a read-only shared page: a `read` straight into guest memory
/// fails with EFAULT unless the pages were readied from user space first.
#[test]
fn a_kernel_write_into_a_shared_mapping_is_readied_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(2 * BLOCK);
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    std::fs::write(dir.path().join("src.bin"), vec![0xEEu8; 8192]).unwrap();
    let src = std::fs::File::open(dir.path().join("src.bin")).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(16 << 20);
    let mut m = shared();
    let at = BLOCK as u32;
    m.map(mem.lm(), &ds, 0, data.len() as u32, at, false).unwrap();
    let dst = mem.addr(at + 100);
    // SAFETY: 8192 bytes of a live mapping in our stand-in memory; nothing else references them.
    let buf = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, 8192) };
    let e = src.read_at(buf, 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFAULT), "the kernel's write into a read-only shared page");
    m.prepare_kernel_write(dst, 8192);
    assert_eq!(src.read_at(buf, 0).unwrap(), 8192);
    assert_eq!(mem.load(at + 100), 0xEE);
    assert_eq!(mem.load(at + 99), data[99]);
    assert_eq!(std::fs::read(dir.path().join("d.bin")).unwrap(), data);
}

/// Two threads storing into the same block at once (a host thread writing into guest memory
/// while the guest does): one copies the block, the other waits for the copy; every store of
/// both is there afterwards, for every block.
#[test]
fn concurrent_first_stores_into_one_block_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = 8;
    let data = content(blocks * BLOCK);
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(64 << 20);
    let mut m = shared();
    let at = (2 * BLOCK) as u32;
    m.map(mem.lm(), &ds, 0, data.len() as u32, at, false).unwrap();
    let base = mem.addr(at);
    let writer = |parity: usize| {
        std::thread::spawn(move || {
            for b in 0..blocks {
                for k in (parity..65536).step_by(2) {
                    // SAFETY: inside the live shared mapping (blocks * BLOCK bytes from `base`);
                    // each thread writes its own bytes.
                    unsafe { ((base + b * BLOCK + k) as *mut u8).write_volatile(0xA0 | parity as u8) };
                }
            }
        })
    };
    let (a, b) = (writer(0), writer(1));
    a.join().unwrap();
    b.join().unwrap();
    for blk in 0..blocks {
        for k in 0..65536usize {
            let got = mem.load(at + (blk * BLOCK + k) as u32);
            assert_eq!(got, 0xA0 | (k % 2) as u8, "block {blk} byte {k}: a store was lost");
        }
        assert_eq!(mem.load(at + (blk * BLOCK + 65536) as u32), data[blk * BLOCK + 65536]);
    }
    assert_eq!(std::fs::read(dir.path().join("d.bin")).unwrap(), data);
}

/// A page gone under a shared mapping is a media error as under a private one, and the store
/// path still works on the repaired range.
#[test]
fn sigbus_under_a_shared_mapping_is_caught_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.bin");
    let data = content(2 * BLOCK);
    std::fs::write(&path, &data).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(16 << 20);
    let mut m = shared();
    let at = BLOCK as u32;
    m.map(mem.lm(), &ds, 0, data.len() as u32, at, false).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(BLOCK as u64).unwrap();
    assert_eq!(mem.load(at + BLOCK as u32 + 10), 0);
    let faults = m.take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].offset, BLOCK as u64 + 10);
    mem.store(at + 5, 1);
    assert_eq!(mem.load(at + 5), 1);
}

/// A shared mapping needs room for its copies: two kernel mappings per block, charged up front.
#[test]
fn a_shared_mapping_is_charged_for_its_copies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.bin"), content(4 * BLOCK)).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(32 << 20);
    let mut m =
        Mapper::new(MapLimits { technique: MapTechnique::Shared, max_kernel_mappings: 10, ..MapLimits::default() })
            .unwrap();
    // 1 piece + 2 + 2 × 4 blocks = 11 > 10.
    assert_eq!(m.map(mem.lm(), &ds, 0, (4 * BLOCK) as u32, BLOCK as u32, false), Err(ErrorCode::NoAddressSpace));
    assert_eq!(m.map(mem.lm(), &ds, 0, (3 * BLOCK) as u32, BLOCK as u32, false), Ok(BLOCK as u32));
    assert_eq!(m.kernel_mappings(), 9);
}
