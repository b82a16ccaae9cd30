//! The SIGBUS guard and the kernel mappings a guest's dataset mappings take, on real files and
//! real faults, without wasm. Tests that count the process's kernel mappings or push it to the
//! kernel's limit run in a child process of their own (this test binary, run again for that one
//! test), so that nothing else in the process moves the count.

mod common;

use common::{GuestLikeMemory, catalog};
use famfs_host_api::mapper::{MapLimits, Mapper, WASM_PAGE};
use famfs_host_api::{ErrorCode, Interrupt, guard};
use std::time::Duration;

/// Set in the child process, to the test it is to run.
const CHILD: &str = "FAMFS_GUARD_TEST_CHILD";

fn kernel_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// Runs test `name` in a child process (with [`CHILD`] set), waiting at most `limit`; returns
/// its output. A child still running after `limit` is killed and the test fails.
fn in_child(name: &str, limit: Duration) -> String {
    let out = common::run_in_child(name, CHILD, limit);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} failed in its child process: {:?}\n{text}", out.status);
    text
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == name)
}

/// Defect 4: each map/unmap at a new address used to split the guest's memory into kernel
/// mappings that never merged back (about one more per cycle), until the process hit
/// `vm.max_map_count`. After 20,000 cycles at varying addresses, with the guest storing into its
/// memory between them, the count is back where it was.
#[test]
fn unmapping_gives_back_every_kernel_mapping() {
    const NAME: &str = "unmapping_gives_back_every_kernel_mapping";
    if !is_child(NAME) {
        let out = in_child(NAME, Duration::from_secs(120));
        assert!(out.contains("kernel mappings:"), "{out}");
        println!("{}", out.lines().find(|l| l.contains("kernel mappings:")).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), vec![7u8; WASM_PAGE as usize]).unwrap();
    let ds = catalog(dir.path()).open("w.bin").unwrap();
    let mem = GuestLikeMemory::new(64 << 20);
    let mut m = common::guarded_mapper(MapLimits::default()).unwrap();
    let slots = (64 << 20) / WASM_PAGE as u32;
    let cycle = |m: &mut Mapper, i: u32| {
        let at = (i.wrapping_mul(7919) % (slots - 1)) * WASM_PAGE as u32;
        assert_eq!(m.map(mem.lm(), &ds, 0, WASM_PAGE as u32, at, false), Ok(at));
        assert_eq!(mem.load(at), 7);
        assert!(m.unmap(at));
        mem.store((i.wrapping_mul(104_729) % (slots - 1)) * WASM_PAGE as u32 + 4096, 1);
    };
    // Warm up (the first cycles fault in the allocator and the guard), then count.
    for i in 0..16 {
        cycle(&mut m, i);
    }
    let before = kernel_mappings();
    for i in 16..20_016 {
        cycle(&mut m, i);
    }
    let after = kernel_mappings();
    println!("kernel mappings: {before} before, {after} after 20000 map/unmap cycles");
    assert!(after <= before, "{} kernel mappings leaked over 20000 cycles", after - before);
    assert_eq!(m.kernel_mappings(), 0);
}

/// Defect 2: at the kernel's `vm.max_map_count`, the handler's old one-page repair needed a new
/// kernel mapping, failed, and the faulting load ran again forever at 100% CPU. The repair now
/// replaces the whole registered range, which needs no new mapping: the child pushes its
/// mapping count to the limit, faults, and finishes.
#[test]
fn a_fault_at_the_kernel_mapping_limit_is_repaired_without_looping() {
    const NAME: &str = "a_fault_at_the_kernel_mapping_limit_is_repaired_without_looping";
    if !is_child(NAME) {
        let out = in_child(NAME, Duration::from_secs(60));
        assert!(out.contains("repaired at the limit: fault at 131072"), "{out}");
        println!("{}", out.lines().find(|l| l.contains("repaired at the limit")).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![1u8; 4 * WASM_PAGE as usize]).unwrap();
    let ds = catalog(dir.path()).open("f.bin").unwrap();
    let mem = GuestLikeMemory::new(16 << 20);
    let mut m = common::guarded_mapper(MapLimits::default()).unwrap();
    let at = 4 * WASM_PAGE as u32;
    m.map(mem.lm(), &ds, 0, 4 * WASM_PAGE as u32, at, false).unwrap();
    assert_eq!(mem.load(at + 2 * WASM_PAGE as u32), 1);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(WASM_PAGE).unwrap();
    let mut report = String::with_capacity(256);
    // Split a region page by page until the kernel refuses another mapping.
    let page = rustix::param::page_size();
    let pages = 200_000;
    // SAFETY: a fresh anonymous reservation; only its protection is changed below.
    let filler = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            pages * page,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
        )
    }
    .unwrap() as usize;
    let mut split = 0;
    for i in (1..pages).step_by(2) {
        // SAFETY: a page of the filler region made above; nothing references it.
        let r =
            unsafe { rustix::mm::mprotect((filler + i * page) as *mut _, page, rustix::mm::MprotectFlags::empty()) };
        if r.is_err() {
            break;
        }
        split += 1;
    }
    // The load past the new end of file: SIGBUS, repaired, zeros.
    let v = mem.load(at + 2 * WASM_PAGE as u32);
    let fault = m.take_faults();
    use std::fmt::Write;
    let _ = write!(report, "repaired at the limit: fault at {} ({} splits, read {v})", fault[0].offset(), split);
    println!("{report}");
    assert_eq!(v, 0);
}

/// Defect 9: the handler read a slot's end, then its start, so a registration torn down and
/// replaced on another thread in between could make it match a range made of two
/// registrations, and charge this thread's fault to someone else's slot (zeros without a media
/// error). Another thread now churns registrations around the faulting address as fast as it
/// can, in a slot scanned before ours, while this one faults 20,000 times: every fault is ours.
#[test]
fn a_concurrent_teardown_never_takes_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mem = GuestLikeMemory::new(16 << 20);
    let page = rustix::param::page_size();
    let target = mem.addr(8 << 20);
    // The churner's slot first (a lower index: the handler scans it before ours).
    let mut theirs = guard::reserve(1).unwrap();
    let first = theirs.register(target + page, page).unwrap();
    let mut mine = guard::reserve(1).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = Some(first);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Above the target, then below it: a start from one and an end from the other
                // would cover it.
                drop(r.take());
                let (start, len) = if n.is_multiple_of(2) { (target - 2 * page, page) } else { (target + page, page) };
                r = Some(theirs.register(start, len).unwrap());
                n += 1;
            }
            n
        })
    };
    guard::install();
    let mut wrong = 0;
    for _ in 0..20_000 {
        // A page of an empty file: any load from it is a SIGBUS.
        // SAFETY: `target` is a page of our stand-in memory; MAP_FIXED replaces it.
        unsafe {
            rustix::mm::mmap(
                target as *mut _,
                page,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::FIXED | rustix::mm::MapFlags::PRIVATE,
                &file,
                0,
            )
        }
        .unwrap();
        let r = mine.register(target, page).unwrap();
        // SAFETY: a readable page of our stand-in memory (its file is empty: SIGBUS, repaired).
        let v = unsafe { (target as *const u8).read_volatile() };
        assert_eq!(v, 0);
        if r.fault().is_none() {
            wrong += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churner.join().unwrap();
    println!("20000 faults while another thread re-registered {churned} times: {wrong} charged elsewhere");
    assert_eq!(wrong, 0, "{wrong} of 20000 faults were charged to another registration");
}

/// Defect 5: the caps are the guest's own. A guest at its `max_mappings` or
/// `max_kernel_mappings` gets `no-address-space`, and another guest still maps.
#[test]
fn a_guest_at_its_caps_is_refused_and_others_still_map() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), vec![3u8; WASM_PAGE as usize]).unwrap();
    let ds = catalog(dir.path()).open("f.bin").unwrap();
    let mem = GuestLikeMemory::new(16 << 20);
    let p = WASM_PAGE as u32;
    let mut greedy =
        common::guarded_mapper(MapLimits { max_mappings: 3, max_kernel_mappings: 1000, ..MapLimits::default() })
            .unwrap();
    for i in 0..3 {
        assert_eq!(greedy.map(mem.lm(), &ds, 0, p, i * 2 * p, false), Ok(i * 2 * p));
    }
    assert_eq!(greedy.map(mem.lm(), &ds, 0, p, 6 * p, false), Err(ErrorCode::NoAddressSpace));
    assert!(greedy.unmap(0));
    assert_eq!(greedy.map(mem.lm(), &ds, 0, p, 6 * p, false), Ok(6 * p), "a slot is free again");
    // One simple-file mapping takes 3 kernel mappings (its piece, and the memory split around it).
    let mut tight =
        common::guarded_mapper(MapLimits { max_mappings: 100, max_kernel_mappings: 7, ..MapLimits::default() })
            .unwrap();
    assert_eq!(tight.map(mem.lm(), &ds, 0, p, 20 * p, false), Ok(20 * p));
    assert_eq!(tight.map(mem.lm(), &ds, 0, p, 22 * p, false), Ok(22 * p));
    assert_eq!(tight.kernel_mappings(), 6);
    assert_eq!(tight.map(mem.lm(), &ds, 0, p, 24 * p, false), Err(ErrorCode::NoAddressSpace));
    let mut other = common::guarded_mapper(MapLimits::default()).unwrap();
    assert_eq!(other.map(mem.lm(), &ds, 0, p, 40 * p, false), Ok(40 * p));
    assert_eq!(mem.load(40 * p), 3);
}

/// Defect 10: `MADV_POPULATE_READ` of a large range ran to completion whatever the guest's
/// deadline. Populating now goes in chunks and stops when the invocation is interrupted: with
/// the interrupt raised, nothing of a 256 MiB mapping is faulted in.
#[test]
fn populating_stops_when_the_invocation_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let len = 256usize << 20;
    let f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.set_len(len as u64).unwrap();
    drop(f);
    let ds = catalog(dir.path()).open("big.bin").unwrap();
    let mem = GuestLikeMemory::new(512 << 20);
    let resident = |at: u32| -> u64 {
        // Rss of the kernel mapping that starts at the mapping's address.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", mem.addr(at));
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        lines.find_map(|l| l.strip_prefix("Rss:")).map_or(0, |v| v.trim().trim_end_matches(" kB").parse().unwrap())
    };
    let mut m = common::guarded_mapper(MapLimits::default()).unwrap();
    m.set_interrupt(Interrupt::new(|| true));
    assert_eq!(m.map(mem.lm(), &ds, 0, len as u32, 0, true), Ok(0));
    assert_eq!(resident(0), 0, "an interrupted populate faulted pages in");
    let mut m2 = common::guarded_mapper(MapLimits::default()).unwrap();
    let at = len as u32;
    assert_eq!(m2.map(mem.lm(), &ds, 0, len as u32, at, true), Ok(at));
    assert!(resident(at) >= (len as u64 >> 10) / 2, "populate did nothing: {} kB", resident(at));
}

/// Marks the child process of [`kernel_mapping_caps_add_up_under_the_process_budget`].
const BUDGET_CHILD: &str = "FAMFS_TEST_BUDGET_CHILD";

/// Issue 21, item 9: each guest's `max_kernel_mappings` was checked only against its own count,
/// so sixteen guests with 4,096 each could be promised twice the process's budget (half of
/// `vm.max_map_count`), and a guest well under its own cap got `no-address-space` because
/// others had used the budget up. Each mapper now reserves its cap when it is made: the caps of
/// live mappers add up to at most the budget, and a mapper that cannot have its cap is not made.
/// In a child process, as it takes nearly the whole budget.
#[test]
fn kernel_mapping_caps_add_up_under_the_process_budget() {
    const NAME: &str = "kernel_mapping_caps_add_up_under_the_process_budget";
    if std::env::var(BUDGET_CHILD).as_deref() != Ok(NAME) {
        let o = common::run_in_child(NAME, BUDGET_CHILD, std::time::Duration::from_secs(60));
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{out}");
        assert!(out.contains("budget held"), "{out}");
        return;
    }
    let total = famfs_host_api::map_budget::total();
    // Eight of these would be more than the budget.
    let cap = total / 8 + 1;
    let limits = MapLimits { max_kernel_mappings: cap, ..MapLimits::default() };
    let mut held = Vec::new();
    let refused = loop {
        match common::guarded_mapper(limits) {
            Ok(m) => held.push(m),
            Err(e) => break e,
        }
        assert!(held.len() <= 16, "sixteen guests were each promised {cap} of {total} kernel mappings");
    };
    assert_eq!(held.len(), 7, "{refused}");
    assert!(
        matches!(refused, famfs_host_api::mapper::MapperError::KernelMappings { asked, .. } if asked == cap),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("vm.max_map_count"), "{refused}");
    // Given back when a guest ends.
    held.pop();
    held.push(common::guarded_mapper(limits).expect("the cap of the guest that ended is free again"));
    println!("budget held: 7 × {cap} of {total}");
}
