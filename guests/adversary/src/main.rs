//! `adversary CASE [ARGS...]`: guests that try to change a dataset, crash the host or escape the
//! sandbox, for famfs-run's adversarial tests. Each case prints the lines the tests expect;
//! see README.md for the list. Exit 0 unless a case says otherwise; a setup failure prints
//! `error: ...` and exits 1, wrong usage exits 2.

mod exhaust;

use famfs_guest::{Dataset, Error, raw};
use std::hint::black_box;
use std::io::Read;
use std::process::exit;

/// The canonical-ABI imports of `famfs:dataset/catalog@0.1.0`, declared by hand (as wit-bindgen
/// lowers them for wasm32) so that cases can pass any handle and any return pointer.
/// Pointers are plain `i32` guest addresses.
mod abi {
    #[link(wasm_import_module = "famfs:dataset/catalog@0.1.0")]
    unsafe extern "C" {
        /// `open(name: string) -> result<dataset, error-code>`; `ret`: {u8 disc @0, handle or
        /// error-code @4}.
        #[link_name = "open"]
        pub fn open(name_ptr: i32, name_len: i32, ret: i32);
        /// `[method]dataset.len(self) -> u64`.
        #[link_name = "[method]dataset.len"]
        pub fn dataset_len(handle: i32) -> i64;
        /// `[method]dataset.read(self, offset: u64, len: u32) -> result<list<u8>, error-code>`;
        /// `ret`: {u8 disc @0, list ptr @4, list len @8} or {u8 disc @0, error-code @4}.
        #[link_name = "[method]dataset.read"]
        pub fn dataset_read(handle: i32, offset: i64, len: i32, ret: i32);
        /// `[resource-drop]dataset`.
        #[link_name = "[resource-drop]dataset"]
        pub fn dataset_drop(handle: i32);
    }
}

const USAGE: &str = "usage: adversary CASE [ARGS...]
cases: store NAME | fd-read-into-map NAME WASI_PATH | hostcall-into-map NAME | sum NAME | spin |
       memory-bomb | recurse | bad-maps NAME | forge-handle | double-drop NAME |
       escape NAME_INSIDE | not-granted NAME | grow NAME | list | map-only NAME |
       realloc-into-map NAME OTHER | hold NAME SECONDS | big-read NAME LEN |
       spin-read NAME | churn NAME N SECONDS | hold-many NAME N SECONDS | open-many NAME N [SECONDS] | wasi-open-many PATH N |
       long-name MIB | raw-read NAME LEN | write-every NAME STRIDE | map-unplaced NAME |
       fill-later NAME MS | print NAME";

fn usage() -> ! {
    eprintln!("{USAGE}");
    exit(2)
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    exit(1)
}

/// Unwraps a famfs result, or fails naming `what`.
fn must<T>(what: &str, r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| fail(format_args!("{what}: {e}")))
}

/// `ok` or the error code's kebab-case name.
fn outcome<T>(r: &Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code_name(),
    }
}

fn raw_outcome<T>(r: &Result<T, raw::ErrorCode>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => Error::from(*e).code_name(),
    }
}

/// Sum of all bytes, read with plain loads.
fn byte_sum(b: &[u8]) -> u64 {
    b.iter().map(|&x| u64::from(x)).sum()
}

/// Reads the byte at guest address `addr`.
///
/// # Safety
/// `addr` must be inside the guest's memory (or a live mapping).
unsafe fn peek<T: Copy>(addr: u32) -> T {
    // SAFETY: the caller guarantees `addr .. addr + size_of::<T>()` is readable guest memory;
    // volatile because the host, not Rust code, wrote it.
    unsafe { std::ptr::read_volatile(std::ptr::with_exposed_provenance::<T>(addr as usize)) }
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match arg(&args, 0) {
        "store" => store(arg(&args, 1)),
        "fd-read-into-map" => fd_read_into_map(arg(&args, 1), arg(&args, 2)),
        "hostcall-into-map" => hostcall_into_map(arg(&args, 1)),
        "sum" => sum(arg(&args, 1)),
        "spin" => spin(),
        "memory-bomb" => memory_bomb(),
        "recurse" => recurse_case(),
        "bad-maps" => bad_maps(arg(&args, 1)),
        "forge-handle" => forge_handle(),
        "double-drop" => double_drop(arg(&args, 1)),
        "escape" => escape(arg(&args, 1)),
        "not-granted" => not_granted(arg(&args, 1)),
        "grow" => grow(arg(&args, 1)),
        "list" => list(),
        "map-only" => map_only(arg(&args, 1)),
        "realloc-into-map" => realloc_into_map(arg(&args, 1), arg(&args, 2)),
        "hold" => hold(arg(&args, 1), arg(&args, 2)),
        "big-read" => big_read(arg(&args, 1), arg(&args, 2)),
        "write-every" => write_every(arg(&args, 1), arg(&args, 2)),
        "map-unplaced" => map_unplaced(arg(&args, 1)),
        "fill-later" => fill_later(arg(&args, 1), arg(&args, 2)),
        "print" => print(arg(&args, 1)),
        "spin-read" => exhaust::spin_read(&args),
        "churn" => exhaust::churn(&args),
        "hold-many" => exhaust::hold_many(&args),
        "open-many" => exhaust::open_many(&args),
        "wasi-open-many" => exhaust::wasi_open_many(&args),
        "long-name" => exhaust::long_name(&args),
        "raw-read" => exhaust::raw_read(&args),
        _ => usage(),
    }
}

/// Stores 0xAA into the first 4096 mapped bytes: only the guest's private copy changes.
fn store(name: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    let n = m.len().min(4096);
    let p = std::ptr::with_exposed_provenance_mut::<u8>(m.addr() as usize);
    for i in 0..n {
        // SAFETY: `p .. p + n` is inside the live mapping `m` (n <= m.len()), which stays alive
        // until the end of this function. No slice over it exists while we store; the stores
        // land in the guest's private copy-on-write pages (that is what this case tests).
        unsafe { std::ptr::write_volatile(p.add(i), 0xAA) };
    }
    let first: u8 = if n == 0 {
        0
    } else {
        // SAFETY: the first byte of the live mapping `m`.
        unsafe { std::ptr::read_volatile(p) }
    };
    println!("stored {first}");
}

/// WASI `fd_read` straight into a mapped range.
fn fd_read_into_map(name: &str, wasi_path: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    let mut file = std::fs::File::open(wasi_path).unwrap_or_else(|e| fail(format_args!("{wasi_path}: {e}")));
    let file_len = file.metadata().unwrap_or_else(|e| fail(format_args!("{wasi_path}: {e}"))).len();
    let n = (m.len() as u64).min(file_len) as usize;
    // SAFETY: `addr .. addr + n` lies inside the live mapping `m` (n <= m.len()), which outlives
    // `buf` (both end with this function). No other reference to those bytes is used while
    // `buf` lives (`m.as_slice()` is not called). Writes go to the private copy.
    let buf: &mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(std::ptr::with_exposed_provenance_mut(m.addr() as usize), n) };
    let mut done = 0;
    while done < n {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => fail(format_args!("{wasi_path}: {e}")),
        }
    }
    println!("read {done}");
}

/// Host calls whose return area lies inside a mapped range.
fn hostcall_into_map(name: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    // The reserved range is whole 64 KiB pages, so 128 bytes from `at` are always guest memory.
    let at = m.addr();
    let handle = ds.raw().handle() as i32;
    // SAFETY: a valid handle; `at` is 64 KiB-aligned and has room for the 12-byte result. The
    // host writes the result there (into the guest's private copy) and allocates the list with
    // cabi_realloc; the list is leaked.
    unsafe { abi::dataset_read(handle, 0, 16, at as i32) };
    // SAFETY: `at` is inside the live mapping.
    let disc: u8 = unsafe { peek(at) };
    println!("hostcall ok {disc}");
    let ret = at + 64;
    // SAFETY: `name` is a live string; `ret` is 4-aligned with 8 bytes of room in the mapping.
    unsafe { abi::open(name.as_ptr() as i32, name.len() as i32, ret as i32) };
    // SAFETY: `ret` is inside the live mapping.
    let disc: u8 = unsafe { peek(ret) };
    if disc == 0 {
        // SAFETY: on success the new handle is at ret + 4; it is ours to drop, once.
        unsafe { abi::dataset_drop(peek::<i32>(ret + 4)) };
    }
    println!("hostcall ok {disc}");
}

/// Guest address `cabi_realloc` returns on its next call instead of allocating (0: allocate).
static HIJACK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The canonical ABI's allocator, through which the host returns lists and strings. It
/// overrides wit-bindgen's weak one: the same allocation, except that once after a case sets
/// [`HIJACK`] it answers with that address, which lies inside a mapped dataset range.
///
/// # Safety
/// As the canonical ABI requires: `old` is null or a block this function returned with
/// `old_len` and `align`; `align` is a power of two.
#[unsafe(export_name = "cabi_realloc")]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    let hijack = HIJACK.swap(0, std::sync::atomic::Ordering::Relaxed);
    if hijack != 0 {
        return std::ptr::with_exposed_provenance_mut(hijack as usize);
    }
    if new_len == 0 {
        return std::ptr::without_provenance_mut(align);
    }
    // SAFETY: `align` is a power of two and `new_len` is non-zero (the caller's contract and
    // the check above); `old`, when not null, came from here with this layout.
    let p = unsafe {
        let layout = std::alloc::Layout::from_size_align_unchecked(new_len, align);
        if old.is_null() {
            std::alloc::alloc(layout)
        } else {
            std::alloc::realloc(old, std::alloc::Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if p.is_null() {
        std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align(new_len, align).unwrap());
    }
    p
}

/// The host returns a list into memory that `cabi_realloc` placed inside a mapped range of
/// NAME: OTHER's bytes must land in the guest's private copy of those pages (so the guest sees
/// them there), while NAME itself stays unchanged; the host must not crash.
fn realloc_into_map(name: &str, other: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    let od = must(other, Dataset::open(other));
    let n = (m.len() as u64).min(od.len()).min(65536) as usize;
    let expect = must(other, od.read(0, n));
    let ret = [0u32; 3];
    HIJACK.store(m.addr(), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: a live handle; `ret` is a 4-aligned 12-byte return area on our stack. The host
    // allocates the list with cabi_realloc, which answers with the mapping's address; the list
    // is never freed (it is not the allocator's).
    unsafe { abi::dataset_read(od.raw().handle() as i32, 0, n as i32, ret.as_ptr() as i32) };
    HIJACK.store(0, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the host wrote the return area; volatile because Rust did not.
    let (disc, ptr, len) = unsafe {
        (
            std::ptr::read_volatile(ret.as_ptr().cast::<u8>()),
            std::ptr::read_volatile(&ret[1]),
            std::ptr::read_volatile(&ret[2]) as usize,
        )
    };
    if disc != 0 {
        fail(format_args!("read failed with code {ptr}"));
    }
    // The private copy holds OTHER's bytes where the list landed, NAME's bytes after it.
    let view = m.as_slice();
    let landed = ptr == m.addr() && len == n && view[..n] == expect[..];
    let rest_ok = view.len() <= n || view[n..].iter().take(4096).eq(must(name, ds.read(n as u64, 4096)).iter());
    println!("realloc-into-map landed={landed} rest={rest_ok} len={len}");
}

/// Sums the mapped bytes (the tests truncate the file first: a media error).
fn sum(name: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    println!("sum {}", byte_sum(m.as_slice()));
}

fn spin() {
    let flag = 0u8;
    // A volatile read the optimiser must redo on every iteration.
    // SAFETY: `flag` is a live local.
    while unsafe { std::ptr::read_volatile(&flag) } == 0 {}
    println!("unreachable");
}

fn memory_bomb() {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut v = vec![0u8; 16 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        kept.push(black_box(v));
        black_box(&kept);
    }
}

/// Not a tail call: the result is combined after the recursive call returns, in a way LLVM
/// cannot turn into an accumulator loop. Only wasm locals, no shadow-stack frame, so the
/// engine's call-stack limit is what overflows.
#[inline(never)]
fn recurse(n: u64, limit: u64) -> u64 {
    if n == limit {
        return n;
    }
    recurse(n + 1, limit).rotate_left((n & 63) as u32) ^ n
}

fn recurse_case() {
    let r = recurse(0, black_box(u64::MAX));
    println!("recursion ended: {}", black_box(r));
}

/// Fresh pages from memory.grow: the guest address of the first.
fn reserve(pages: usize) -> u32 {
    match core::arch::wasm32::memory_grow(0, pages) {
        usize::MAX => fail(format_args!("memory.grow of {pages} pages failed")),
        old => (old * 65536) as u32,
    }
}

/// Maps all of NAME with the plain `map` (no reserved room past it), at an address 64 KiB out
/// of phase with the dataset modulo 2 MiB, as a guest written without `map-unit` might: on a
/// device that maps only whole 2 MiB units the host must copy instead, and the bytes must be
/// the same. Then stores into every page of the range (copied or mapped, it is the guest's own).
/// Prints `unplaced {len} {byte sum}`.
fn map_unplaced(name: &str) {
    let ds = must(name, raw::open(name).map_err(Error::from));
    let len = u32::try_from(ds.len()).unwrap_or_else(|_| fail(format_args!("{name}: over 4 GiB")));
    let pages = (len as usize).div_ceil(65536);
    // One page more than 2 MiB of padding, so that some address in it is out of phase.
    let base = reserve(pages + 33);
    // The first address at or after `base` that is 64 KiB past a 2 MiB boundary: at most 32
    // pages in, so the range still fits.
    let at = base + ((65536 + (2 << 20) - base % (2 << 20)) % (2 << 20));
    let m = must(name, ds.map(0, len, at, raw::MapFlags::empty()).map_err(Error::from));
    let addr = m.addr();
    // SAFETY: the host mapped (or filled) `len` bytes at `addr`, inside pages this guest
    // reserved with memory.grow and that no Rust allocation uses; the slice lives only while
    // the mapping does, and no store happens while it exists.
    let sum = byte_sum(unsafe {
        std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(addr as usize), len as usize)
    });
    for off in (0..len).step_by(4096) {
        // SAFETY: inside the same range; a store lands in the guest's own copy of the page.
        unsafe { std::ptr::write_volatile(std::ptr::with_exposed_provenance_mut::<u8>((addr + off) as usize), 0x5A) };
    }
    drop(m);
    println!("unplaced {len} {sum}");
}

/// Map requests the host must refuse, then one it must accept.
fn bad_maps(name: &str) {
    let ds = must(name, raw::open(name).map_err(Error::from));
    let len = ds.len();
    if len < 128 << 10 {
        fail(format_args!("{name}: {len} bytes; bad-maps needs at least 128 KiB"));
    }
    let none = raw::MapFlags::empty();
    let pages = (len + 65536).div_ceil(65536) as usize + 1;
    let at = reserve(pages);
    let past_end_len = u32::try_from(len + 65536).unwrap_or(u32::MAX);
    let tries: [(&str, u64, u32, u32); 6] = [
        ("past-end", 0, past_end_len, at),
        ("offset-overflow", u64::MAX - 65535, 65536, at),
        ("len-overflow", 0, u32::MAX, at),
        ("misaligned-offset", 4096, 65536, at),
        ("misaligned-at", 0, 65536, at + 4096),
        ("outside-memory", 0, 65536, {
            let size = core::arch::wasm32::memory_size(0) as u64 * 65536;
            (size + 65536 * 16).min(0xFFFF_0000) as u32
        }),
    ];
    for (label, offset, len, at) in tries {
        let r = ds.map(offset, len, at, none);
        println!("{label}: {}", raw_outcome(&r));
        drop(r);
    }
    let first = ds.map(0, 65536, at, none);
    let second = ds.map(0, 65536, at, none);
    match &first {
        Ok(_) => println!("overlap: {}", raw_outcome(&second)),
        Err(e) => println!("overlap: first map failed: {}", Error::from(*e).code_name()),
    }
    drop(second);
    drop(first);
    let fresh = reserve(1);
    let r = ds.map(0, 65536, fresh, none);
    println!("valid: {}", raw_outcome(&r));
}

fn forge_handle() {
    // SAFETY: handle 12345 was never issued: the host must trap the guest.
    let v = unsafe { abi::dataset_len(12345) };
    println!("returned {v}");
    exit(3)
}

fn double_drop(name: &str) {
    #[repr(C, align(4))]
    struct Ret([u8; 8]);
    let mut ret = Ret([0; 8]);
    let addr = std::ptr::from_mut(&mut ret).expose_provenance() as i32;
    // SAFETY: `name` is a live string; `ret` is an 8-byte, 4-aligned return area.
    unsafe { abi::open(name.as_ptr() as i32, name.len() as i32, addr) };
    // The host wrote `ret` behind the compiler's back.
    let ret = black_box(ret);
    if ret.0[0] != 0 {
        fail(format_args!("{name}: open failed: error code {}", ret.0[4]));
    }
    let handle = i32::from_le_bytes(ret.0[4..8].try_into().unwrap());
    // SAFETY: the first drop is legitimate; the second is the attack (the host must trap).
    unsafe {
        abi::dataset_drop(handle);
        abi::dataset_drop(handle);
    }
    println!("survived");
    exit(3)
}

fn escape(inside: &str) {
    let inside_up = format!("{inside}/../../x");
    for name in ["../etc/passwd", "/etc/passwd", inside_up.as_str(), "link-out"] {
        println!("{name}: {}", outcome(&Dataset::open(name)));
    }
    for path in ["/data/../../../etc/passwd", "/data/link-out"] {
        let r = std::fs::read(path);
        println!("wasi {path}: {}", if r.is_ok() { "ok" } else { "err" });
    }
}

fn not_granted(name: &str) {
    println!("{name}: {}", outcome(&Dataset::open(name)));
    for info in famfs_guest::list() {
        println!("listed {}", info.name);
    }
}

/// memory.grow after a mapping: new pages are fresh zeros, the mapping is untouched, and 4 GiB
/// more is refused.
fn grow(name: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    let before = byte_sum(m.as_slice());
    let broken = |detail: String| -> ! {
        println!("grow broken: {detail}");
        exit(1)
    };
    let old = core::arch::wasm32::memory_grow(0, 16);
    if old == usize::MAX {
        broken("memory.grow of 16 pages failed".into());
    }
    let start = old as u64 * 65536;
    let (map_start, map_end) = (u64::from(m.addr()), u64::from(m.addr()) + m.len() as u64);
    if start < map_end && map_start < start + (16 << 16) {
        broken(format!("new pages {start:#x}.. overlap the mapping {map_start:#x}..{map_end:#x}"));
    }
    // SAFETY: the 16 pages from `start` were just added by memory.grow; nothing else uses them.
    let fresh: &[u8] =
        unsafe { std::slice::from_raw_parts(std::ptr::with_exposed_provenance(start as usize), 16 << 16) };
    if let Some(i) = fresh.iter().position(|&b| b != 0) {
        broken(format!("new page byte at {:#x} is {:#x}, not 0", start + i as u64, fresh[i]));
    }
    let after = byte_sum(m.as_slice());
    if after != before {
        broken(format!("mapping checksum changed from {before} to {after}"));
    }
    let huge = core::arch::wasm32::memory_grow(0, 65536);
    if huge != usize::MAX {
        broken(format!("memory.grow of 65536 pages succeeded (old size {huge} pages)"));
    }
    println!("grow ok");
}

fn list() {
    for info in famfs_guest::list() {
        println!("{} {}", info.name, info.len);
    }
}

/// Maps the whole dataset and touches nothing (the map + instantiate benchmark).
/// Maps NAME, reads every page, prints `ready {sum}`, then keeps the mapping for SECONDS (the
/// memory benchmarks measure PSS meanwhile).
fn hold(name: &str, seconds: &str) {
    let secs: u64 = seconds.parse().unwrap_or_else(|_| usage());
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    println!("ready {}", byte_sum(m.as_slice()));
    std::thread::sleep(std::time::Duration::from_secs(secs));
    black_box(&m);
}

/// Maps NAME and stores one byte every STRIDE bytes of it (the first store into each page or
/// block is what a copy-on-write costs): `wrote {count}`.
fn write_every(name: &str, stride: &str) {
    let stride: usize = stride.parse().ok().filter(|&s| s > 0).unwrap_or_else(|| usage());
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    let p = std::ptr::with_exposed_provenance_mut::<u8>(m.addr() as usize);
    let mut count = 0u64;
    for i in (0..m.len()).step_by(stride) {
        // SAFETY: `i < m.len()`, inside the live mapping `m`; the store lands in this guest's
        // private copy of the page (that is what this case measures).
        unsafe { std::ptr::write_volatile(p.add(i), 1) };
        count += 1;
    }
    println!("wrote {count}");
}

/// Writes NAME's bytes to standard output as they are (hostile output for the Python host's
/// decoders).
fn print(name: &str) {
    use std::io::Write;
    let ds = must(name, Dataset::open(name));
    let bytes = must(name, ds.read(0, ds.len() as usize));
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes).and_then(|()| out.flush()).unwrap_or_else(|e| fail(format_args!("stdout: {e}")));
}

/// Maps NAME, waits MS milliseconds (for a test to tighten the host's limits), then fills the
/// whole mapping with 0xAB in one `memory.fill`, which the host's code performs, not the
/// guest's: `filled {len} {sum}`.
fn fill_later(name: &str, ms: &str) {
    let ms: u64 = ms.parse().unwrap_or_else(|_| usage());
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let p = std::ptr::with_exposed_provenance_mut::<u8>(m.addr() as usize);
    // SAFETY: `p .. p + m.len()` is the live mapping `m`, which outlives this store and has no
    // other reference in use; the stores land in the guest's private copies of its blocks.
    unsafe { std::ptr::write_bytes(p, 0xAB, black_box(m.len())) };
    println!("filled {} {}", m.len(), byte_sum(m.as_slice()));
}

/// Asks for LEN bytes at once through the copying `read`: `big-read {outcome}`.
fn big_read(name: &str, len: &str) {
    let len: usize = len.parse().unwrap_or_else(|_| usage());
    let ds = must(name, Dataset::open(name));
    let r = ds.read(0, len);
    println!("big-read {}", outcome(&r));
}

fn map_only(name: &str) {
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    println!("mapped {}", m.len());
}
