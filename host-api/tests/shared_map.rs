//! The shared technique (issue 12): datasets mapped `MAP_SHARED`, read-only, with copy-on-write
//! done by the host (`famfs_host_api::cow`), as device-dax requires, tested on files (whose
//! shared mappings behave like device-dax for every rule here). A store lands in a private copy
//! of its 2 MiB block and never reaches the file; a kernel write is readied first; two threads
//! storing into one block at once lose nothing.

mod common;

use common::{GuestLikeMemory, catalog};
use famfs_host_api::ErrorCode;
use famfs_host_api::guard::BLOCK;
use famfs_host_api::mapper::{MapLimits, MapTechnique, Mapper};
use std::os::unix::fs::FileExt;

fn shared() -> Mapper {
    common::guarded_mapper(MapLimits { technique: MapTechnique::Shared, ..MapLimits::default() }).unwrap()
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
    assert_eq!(faults[0].offset(), BLOCK as u64 + 10);
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
    let mut m = common::guarded_mapper(MapLimits {
        technique: MapTechnique::Shared,
        max_kernel_mappings: 10,
        ..MapLimits::default()
    })
    .unwrap();
    // 1 piece + 2 + 2 × 4 blocks = 11 > 10.
    assert_eq!(m.map(mem.lm(), &ds, 0, (4 * BLOCK) as u32, BLOCK as u32, false), Err(ErrorCode::NoAddressSpace));
    assert_eq!(m.map(mem.lm(), &ds, 0, (3 * BLOCK) as u32, BLOCK as u32, false), Ok(BLOCK as u32));
    assert_eq!(m.kernel_mappings(), 9);
}

/// Environment variable that marks the child process of [`a_copy_the_kernel_refuses_fails_the_guest_not_the_process`].
const COPY_CHILD: &str = "FAMFS_TEST_COPY_REFUSED_CHILD";

/// The process's private writable memory (`VmData`, what `RLIMIT_DATA` limits), in bytes.
fn data_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmData:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Issue 21, item 1: a store whose private copy the kernel refuses (here `RLIMIT_DATA`, which
/// `ulimit -d` sets, leaves no room for a 2 MiB copy) went on to the default action and ended
/// the process with SIGSEGV. Now the store lands in zeros put in place of the block, and the
/// mapping reports a failed copy, for which the runtime stops the guest. Run in a child process:
/// before the fix the child died by SIGSEGV.
#[test]
fn a_copy_the_kernel_refuses_fails_the_guest_not_the_process() {
    const NAME: &str = "a_copy_the_kernel_refuses_fails_the_guest_not_the_process";
    if std::env::var(COPY_CHILD).as_deref() != Ok(NAME) {
        let out = common::run_in_child(NAME, COPY_CHILD, std::time::Duration::from_secs(60));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the child failed ({:?}):\n{text}", out.status);
        assert!(text.contains("copy refused, store landed"), "{text}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 * BLOCK);
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let ds = catalog(dir.path()).open("d.bin").unwrap();
    let mem = GuestLikeMemory::new(32 << 20);
    let mut m = shared();
    let at = BLOCK as u32;
    m.map(mem.lm(), &ds, 0, data.len() as u32, at, false).unwrap();
    // A store with room for its copy: copied.
    mem.store(at + 3, 0x11);
    assert_eq!(mem.load(at + 4), data[4], "a copy made with room for it");

    // No room for another 2 MiB of private memory.
    // SAFETY: getrlimit/setrlimit with valid pointers to a local rlimit.
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut old) }, 0);
    let tight = libc::rlimit { rlim_cur: data_size() + (1 << 20), rlim_max: old.rlim_max };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_DATA, &tight) }, 0);
    // Two blocks: the zeros put in place of the first must not use up the room for the second.
    let (b, c) = (at + BLOCK as u32, at + 2 * BLOCK as u32);
    let untouched = mem.load(c + 9);
    mem.store(b + 7, 0x5A);
    mem.store(c + 1, 0x5B);
    let (stored, after, second) = (mem.load(b + 7), mem.load(b + 8), (mem.load(c + 1), mem.load(c + 9)));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_DATA, &old) }, 0);

    assert_eq!(stored, 0x5A, "the store landed");
    assert_eq!(after, 0, "the block is zeros: its bytes could not be copied");
    assert_eq!(untouched, data[2 * BLOCK + 9], "a block not stored into is still the file's");
    assert_eq!(second, (0x5B, 0), "the second block's store landed in zeros too");
    assert_eq!(mem.load(at + 3), 0x11, "the block copied before keeps its store");
    let faults = m.take_faults();
    assert_eq!(
        faults,
        [famfs_host_api::MappingFault::CopyFailed { dataset: "d.bin".into(), offset: BLOCK as u64 + 7 }],
        "{faults:?}"
    );
    assert!(faults[0].to_string().starts_with("out of memory copying a dataset block"), "{}", faults[0]);
    assert_eq!(std::fs::read(dir.path().join("d.bin")).unwrap(), data, "the file never changed");
    assert!(m.unmap(at));
    println!("copy refused, store landed");
}
