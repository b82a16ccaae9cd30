//! Copy-on-write done by the host, for datasets mapped shared (the technique device-dax needs,
//! which refuses private mappings).
//!
//! # Contract
//! A shared dataset mapping is `mmap(MAP_SHARED | MAP_FIXED, PROT_READ)` of the read-only file
//! or device, inside the guest's accessible memory, registered with
//! [`Reservation::register_shared`](super::Reservation::register_shared). Loads read
//! the device's own pages. A store (by the guest, by WASI or a host call writing into guest
//! memory, by wasmtime writing a list where `cabi_realloc` pointed) faults: the kernel raises
//! SIGSEGV with `SEGV_ACCERR`. The handler installed by [`super::install`], after wasmtime's (so it
//! runs first, and hands every other fault to wasmtime's), then gives the 2 MiB block around
//! the address (clipped to the mapping) a private copy:
//!
//! 1. it moves the block's state from *shared* to *copying* (one compare-and-swap, so one thread
//!    copies; another faulting on the block meanwhile returns and faults again until the copy is
//!    in place: no write is lost, and no block is copied twice over a private one);
//! 2. maps fresh anonymous memory elsewhere, copies the block's bytes into it, and `mremap`s it
//!    over the block, which the kernel does atomically for the threads that touch it (all
//!    three are plain memory operations or async-signal-safe system calls);
//! 3. marks the block *private* and returns: the store runs again and lands in the copy.
//!
//! The device never changes (it is mapped read-only, and opened `O_RDONLY`). The copy is part
//! of the guest's memory, which the limiter already counts. Each block copied adds at most two
//! kernel mappings; a mapping charges them to the process budget ([`crate::map_budget`]) when it
//! is made.
//!
//! Should the copy be impossible (no memory: `RLIMIT_AS`, `RLIMIT_DATA`, strict overcommit),
//! the block becomes anonymous zeros in place, a shared map that grows neither limit, and the slot
//! records a [`CopyFailed`](super::FaultCause::CopyFailed) fault: the store lands in
//! the zeros, the runtime stops the guest at its next epoch tick and the invocation fails with
//! "out of memory copying a dataset block". Only when the kernel refuses even that (strict
//! overcommit with less than a block of commit left) is the whole range made inaccessible: a
//! store by guest code then traps, one by host code ends the process.
//!
//! 2 MiB is the split granularity of typical device-dax (a dax mapping can be split only at
//! its alignment), so a block never splits the device mapping anywhere else; image files and
//! mounts mapped shared use the same blocks.

use std::sync::atomic::Ordering;

use super::blocks::{BLOCK, COPIES, COPYING, PRIVATE, SHARED, STATES};
use super::chain::Chain;
use super::registry::{FaultCause, lock, record, registered_shared};

/// `si_code` of a SIGSEGV for an access the page's protection forbids (Linux `SEGV_ACCERR`).
const SEGV_ACCERR: libc::c_int = 2;

static CHAIN: Chain = Chain::new(libc::SIGSEGV);

/// Installs the process-wide SIGSEGV handler (idempotent). Call it after creating the wasmtime
/// engine, so wasmtime's handler is the previous one, to which every fault outside a shared
/// mapping goes.
pub(super) fn install() {
    CHAIN.install(on_sigsegv);
}

/// What the handler did about a fault.
enum Handled {
    /// The block is private now, or another thread is making it so: run the store again.
    Retry,
    /// Not ours, or no copy could be made: the previous handler decides.
    Pass,
}

extern "C" fn on_sigsegv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // A store into a page mapped without write permission.
    if code == SEGV_ACCERR
        && let Handled::Retry = copy_on_write(addr)
    {
        return;
    }
    CHAIN.forward(sig, info, ctx);
}

/// Gives the block around `addr` of a shared registration its private copy.
fn copy_on_write(addr: usize) -> Handled {
    let (slot, start, len, first) = match registered_shared(addr) {
        Ok(Some(hit)) => hit,
        Ok(None) => return Handled::Pass,
        // Torn down on another thread as we looked: whatever is there now decides.
        Err(()) => return Handled::Retry,
    };
    let base = start & !(BLOCK - 1);
    let i = (addr - base) / BLOCK;
    let block_start = (base + i * BLOCK).max(start);
    let block_end = (base + (i + 1) * BLOCK).min(start + len);
    let n = block_end - block_start;
    let Some(state) = STATES.get(first as usize + i) else { return Handled::Pass };
    match state.compare_exchange(SHARED, COPYING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        // Another thread is copying it (the store runs again once the copy is in place), or has
        // put the copy in place since this store faulted: a private block is always writable
        // (its own anonymous copy; the SIGBUS guard's PROT_NONE fallback unregisters the blocks
        // of the range it locks), so the store now succeeds.
        Err(_) => return Handled::Retry,
    }
    if copy_block(block_start, n) {
        state.store(PRIVATE, Ordering::Release);
        COPIES.fetch_add(1, Ordering::Relaxed);
        return Handled::Retry;
    }
    // No memory for the copy. The store must still land somewhere, or host code storing into
    // guest memory (a `memory.fill`, a WASI read, a host call's result) would die here: the
    // block becomes zeros in place, and the fault is recorded, so the runtime stops the guest at
    // its next epoch tick and the zeros never become a result. The zeros are a *shared*
    // anonymous map: not private data, so `RLIMIT_DATA` does not apply (a private one would
    // push the data size past the limit and refuse the next block); replacing as many pages as
    // it adds, so `RLIMIT_AS` cannot refuse it; `MAP_NORESERVE`, so it asks no commit charge
    // unless overcommit is strict.
    record(slot, addr - start, FaultCause::CopyFailed);
    // SAFETY: `block_start .. block_end` lies in the registered mapping, inside the guest's
    // linear memory, page-aligned and a whole number of pages (see `copy_block`); replacing it
    // with zeroed read-write memory that nothing else maps changes only what that guest sees
    // there, and the guest is stopped for it. `mmap` is async-signal-safe.
    let zeroed = unsafe {
        libc::mmap(
            block_start as *mut libc::c_void,
            n,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if zeroed != libc::MAP_FAILED {
        state.store(PRIVATE, Ordering::Release);
        return Handled::Retry;
    }
    // Not even that (strict overcommit with less than a block of commit left): the whole range
    // is made inaccessible (`lock`, which can fail only if a failed `mremap` left a hole), so a
    // wasm store traps in wasmtime's handler; a store by host code ends the process, as any
    // other allocation the kernel refused it would.
    state.store(SHARED, Ordering::Release);
    lock(slot, start, len);
    Handled::Pass
}

/// Copies the `n` bytes of the block at `block_start` into fresh memory and moves that over the
/// block; whether it did. On failure the block holds the device's pages, or (when `mremap`
/// failed after unmapping its target) nothing: the caller puts zeros in place either way.
fn copy_block(block_start: usize, n: usize) -> bool {
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing. MAP_POPULATE
    // has the kernel allocate its pages in one go (an anonymous map: nothing is copied), instead
    // of one page fault per 4 KiB during the copy below.
    let copy = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if copy == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `block_start .. block_start + n` lies in the registered mapping, readable
    // (PROT_READ, shared); `copy` is `n` bytes of fresh read-write memory; the ranges are
    // distinct. A page of the source that is gone raises SIGBUS here, which the SIGBUS guard
    // repairs (zeros) and records as a media error of the guest, whose invocation then fails.
    unsafe { std::ptr::copy_nonoverlapping(block_start as *const u8, copy.cast::<u8>(), n) };
    // SAFETY: moves the private copy over the block: the kernel unmaps the block's shared pages
    // and puts the copy in their place in one step under the process's mapping lock, so another
    // thread touching the block sees the old pages or the copy, never a hole. `block_start` is
    // page-aligned (a mapping starts on a page, blocks on 2 MiB boundaries) and `n` a multiple of
    // the page size (the registered length is).
    let moved = unsafe {
        libc::mremap(copy, n, n, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, block_start as *mut libc::c_void)
    };
    if moved == libc::MAP_FAILED {
        // SAFETY: the copy made above, not moved: ours to unmap.
        unsafe { libc::munmap(copy, n) };
        return false;
    }
    true
}
