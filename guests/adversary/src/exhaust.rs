//! Cases that try to take from the host what other guests need, or to keep it busy: mappings,
//! kernel mappings, open datasets, host buffers, and a guest that never stops reading a dataset
//! that failed under it.

use crate::{abi, arg, byte_sum, fail, must, outcome, peek, raw_outcome, reserve, usage};
use famfs_guest::{Dataset, Error, raw};
use std::hint::black_box;
use std::io::Write;

fn number(args: &[String], i: usize) -> u64 {
    arg(args, i).parse().unwrap_or_else(|_| usage())
}

/// `spin-read NAME`: maps NAME, says `ready`, then sums it over and over and never returns (the
/// host must stop it when the dataset fails under it, even without a time limit).
pub fn spin_read(args: &[String]) {
    let name = arg(args, 1);
    let ds = must(name, Dataset::open(name));
    let m = must(name, ds.map());
    println!("ready {}", m.len());
    let _ = std::io::stdout().flush();
    let mut total = 0u64;
    loop {
        total = total.wrapping_add(byte_sum(black_box(m.as_slice())));
        black_box(total);
    }
}

/// `churn NAME N SECONDS`: maps the first 64 KiB of NAME and drops it, N times, each time at
/// another address of a 16 MiB reserved range, storing into the range between cycles, then
/// stays alive SECONDS (its memory and whatever the host left in it with it): the host's kernel
/// mapping count must not grow with N. Prints `churned N`.
pub fn churn(args: &[String]) {
    let name = arg(args, 1);
    let n = number(args, 2);
    let secs = number(args, 3);
    let ds = must(name, raw::open(name).map_err(Error::from));
    const SLOTS: u32 = 256;
    let base = reserve(SLOTS as usize);
    for i in 0..n {
        let slot = (i as u32).wrapping_mul(37) % SLOTS;
        let m = ds.map(0, 65536, base + slot * 65536, raw::MapFlags::empty());
        let m = m.unwrap_or_else(|e| fail(format_args!("map {i}: {}", Error::from(e).code_name())));
        black_box(m.addr());
        drop(m);
        // Touch another page of the range, so the memory around the next mapping has pages of
        // its own.
        let touch = base + ((i as u32).wrapping_mul(101) % SLOTS) * 65536 + 4096;
        // SAFETY: `touch` lies in the range reserved above, plain guest memory (no live mapping).
        unsafe { std::ptr::write_volatile(std::ptr::with_exposed_provenance_mut::<u8>(touch as usize), 1) };
    }
    println!("churned {n}");
    std::thread::sleep(std::time::Duration::from_secs(secs));
}

/// `hold-many NAME N SECONDS`: maps 64 KiB windows of NAME at fresh addresses, keeping them, until
/// N are held or the host refuses one; prints `held K CODE` (CODE `ok` when all N were
/// mapped), then holds them for SECONDS.
pub fn hold_many(args: &[String]) {
    let name = arg(args, 1);
    let n = number(args, 2);
    let secs = number(args, 3);
    let ds = must(name, raw::open(name).map_err(Error::from));
    let base = reserve(n as usize);
    let mut held = Vec::new();
    let mut code = "ok";
    for i in 0..n as u32 {
        match ds.map(0, 65536, base + i * 65536, raw::MapFlags::empty()) {
            Ok(m) => held.push(m),
            Err(e) => {
                code = Error::from(e).code_name();
                break;
            }
        }
    }
    println!("held {} {code}", held.len());
    let _ = std::io::stdout().flush();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    black_box(&held);
}

/// `open-many NAME N [SECONDS]`: opens NAME again and again, keeping every handle, until N are open or
/// the host refuses; prints `opened K CODE`, then writes to stdout once more (`still here`).
pub fn open_many(args: &[String]) {
    let name = arg(args, 1);
    let n = number(args, 2);
    let mut open = Vec::new();
    let mut code = "ok";
    while (open.len() as u64) < n {
        match Dataset::open(name) {
            Ok(d) => open.push(d),
            Err(e) => {
                code = outcome::<()>(&Err(e));
                break;
            }
        }
    }
    println!("opened {} {code}", open.len());
    // Holding them a while, when asked (`open-many NAME N SECONDS`).
    if let Some(secs) = args.get(3).and_then(|s| s.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    println!("still here");
    black_box(&open);
}

/// `wasi-open-many PATH N`: opens PATH (a file in a preopened directory) with WASI N times,
/// keeping every file open; prints `wasi-opened K ERROR` when an open fails (an error the host
/// returns rather than a trap), then `still here`.
pub fn wasi_open_many(args: &[String]) {
    let path = arg(args, 1);
    let n = number(args, 2);
    let mut open = Vec::new();
    let mut code = "ok".to_string();
    while (open.len() as u64) < n {
        match std::fs::File::open(path) {
            Ok(f) => open.push(f),
            Err(e) => {
                code = format!("{:?}", e.kind());
                break;
            }
        }
    }
    println!("wasi-opened {} {code}", open.len());
    println!("still here");
    black_box(&open);
}

/// `long-name MIB`: asks `catalog.open` for a name MIB MiB long (a buffer of that size in guest
/// memory); prints `long-name CODE`. No name is that long: the host must refuse it without
/// copying it.
pub fn long_name(args: &[String]) {
    let mib = number(args, 1) as usize;
    let at = reserve(mib * 16);
    let ret = reserve(1);
    // SAFETY: `at .. at + mib MiB` and `ret .. ret + 8` are fresh pages of this guest's memory;
    // the host reads the name and writes the result there.
    unsafe { abi::open(at as i32, (mib << 20) as i32, ret as i32) };
    // SAFETY: the host wrote the result's discriminant at `ret`.
    let disc: u8 = unsafe { peek(ret) };
    let code = if disc == 0 {
        "ok"
    } else {
        // SAFETY: an error result's code is at `ret + 4`.
        let c: u8 = unsafe { peek(ret + 4) };
        raw_outcome::<()>(&Err(code_of(c)))
    };
    println!("long-name {code}");
}

fn code_of(c: u8) -> raw::ErrorCode {
    match c {
        0 => raw::ErrorCode::NotFound,
        1 => raw::ErrorCode::NotPermitted,
        2 => raw::ErrorCode::InvalidArgument,
        3 => raw::ErrorCode::NoAddressSpace,
        4 => raw::ErrorCode::MediaError,
        _ => raw::ErrorCode::Io,
    }
}

/// `raw-read NAME LEN`: one `dataset.read` call for LEN bytes, without the SDK's loop; prints
/// `raw-read GOT` (how many bytes the host returned) or `raw-read CODE`.
pub fn raw_read(args: &[String]) {
    let name = arg(args, 1);
    let len = number(args, 2);
    let ds = must(name, raw::open(name).map_err(Error::from));
    match ds.read(0, len as u32) {
        Ok(bytes) => println!("raw-read {}", bytes.len()),
        Err(e) => println!("raw-read {}", Error::from(e).code_name()),
    }
}
