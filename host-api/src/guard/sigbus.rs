//! The SIGBUS guard (R4 in `docs/architecture.md`).
//!
//! # Contract
//! A load from a file mapping raises SIGBUS when the page behind it is gone: the file was
//! truncated below the mapped range, or the CXL memory behind a dax device is poisoned.
//! wasmtime installs no SIGBUS handler on Linux, so without this guard such a fault, whether it
//! happens in guest code or in host code copying out of guest memory, kills the process.
//!
//! - [`super::install`] installs one process-wide handler (once; later calls only ask for early notices
//!   on their own thread, see below) and keeps the handler that was there before.
//! - Each dataset mapping is [`Reservation::register`](super::Reservation::register)ed for as long as it exists, in a slot a
//!   guest [`reserve`](super::reserve)d for itself beforehand: one guest can never take the slots another
//!   needs, and the table holds [`CAPACITY`](super::CAPACITY) slots, enough for every concurrent guest's cap
//!   (the runtime checks its concurrency × the per-guest cap against it).
//! - [`super::install`], and every new mapper on its guest's thread, also ask for early
//!   memory-failure notices ([`ask_early_notices`]): a page found poisoned before any
//!   load from it is signalled (`BUS_MCEERR_AO`) to this process at once, naming its address.
//! - A fault that the kernel raised (`si_code > 0`, an early notice included) inside a
//!   registered range is repaired by
//!   replacing **the whole registered range** with anonymous zero pages, in one
//!   `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)` (async-signal-safe). The
//!   range is exactly the pages the mapper mapped, whole kernel mappings, so the replacement
//!   splits nothing: it merges them into one anonymous mapping, which merges with the guest
//!   memory around it. It never needs a new kernel mapping, even at `vm.max_map_count`, and the
//!   runtime keeps a headroom below that limit besides ([`crate::map_budget`]). The first
//!   fault's offset is recorded in the slot and the faulting instruction resumes, reading zeros;
//!   the runtime polls [`Registration::fault`](super::Registration::fault) at every epoch tick and stops the invocation with
//!   a media error naming the dataset and offset, so the zeros never become a result.
//! - The handler never loops. Should the replacement fail all the same, the range is made
//!   `PROT_NONE` (a wasm load from it then traps with an out-of-bounds access, which wasmtime
//!   handles); should that fail too, the default action is restored and the process dies with
//!   SIGBUS, as it would have unguarded. It never returns to a load that will fault again.
//! - An early notice outside every registered range is ignored: the page is unmapped already,
//!   and a load from it later faults (`BUS_MCEERR_AR`) and is handled as below.
//! - A fault outside every registered range, or one sent by a process (`kill`, `sigqueue`:
//!   `si_code <= 0`), goes to the previous handler: called directly when it is a function; when
//!   it was the default action (or ignore), the default action is restored and the faulting
//!   instruction re-runs, so the process dies with SIGBUS as it would have without the guard.
//! - Each slot packs its range (start page and length in pages) into one atomic word, so the
//!   handler reads a registration whole or not at all: a concurrent teardown on another thread
//!   can never make it see one registration's start with another's end. It takes no lock and
//!   allocates nothing.

use super::chain::Chain;
use super::registry::{FaultCause, lock, record, registered};

static CHAIN: Chain = Chain::new(libc::SIGBUS);

/// Installs the process-wide handler (idempotent). Call it after creating the wasmtime engine,
/// so wasmtime's handlers, if it ever installs one for SIGBUS, are chained behind ours.
pub(super) fn install() {
    CHAIN.install(on_sigbus);
    ask_early_notices();
}

/// Asks the kernel for *early* memory-failure signals on the calling thread (and the threads
/// it starts afterwards): `prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY)`. When the
/// kernel learns that a page is poisoned before anyone loads from it (a patrol scrub, a CXL
/// device's poison list, a `MADV_HWPOISON`), it unmaps the page everywhere and sends SIGBUS
/// `BUS_MCEERR_AO`, naming the process's address of it, to one thread of each process mapping it
/// that asked. The handler is process-wide, so any such thread will do, but one must be alive:
/// [`super::install`] asks on the engine's thread, and every mapper on its guest's thread, which
/// lives as long as the guest's mappings. A guest mapping the page is then stopped with a media
/// error at once, instead of at its next load (or never, should that load run into the poison
/// itself).
pub(crate) fn ask_early_notices() {
    // Failure costs only the early notice: the load that finds the page gone still faults.
    let _ = rustix::process::set_machine_check_memory_corruption_kill_policy(Some(
        rustix::process::MachineCheckMemoryCorruptionKillPolicy::Early,
    ));
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only a fault the kernel raised names a faulting address; a SIGBUS sent by a process
    // (si_code <= 0) carries whatever address the sender chose, and one the kernel sent
    // (SI_KERNEL) none.
    if code > 0
        && code != libc::SI_KERNEL
        && let Some((slot, start, len)) = registered(addr)
    {
        record(slot, addr - start, FaultCause::Media);
        repair(slot, start, len);
        return;
    }
    // An early notice of a poisoned page mapped elsewhere in the process (not a dataset
    // mapping): advisory, no instruction faulted, and the kernel has unmapped the page, so a
    // later load from it faults (`BUS_MCEERR_AR`) and is dealt with then. Passed on, it would
    // reach the default action and end the process for a page it may never touch again.
    if code == libc::BUS_MCEERR_AO {
        return;
    }
    // Not ours: hand it to whoever was there before.
    CHAIN.forward(sig, info, ctx);
}

/// Makes the registered range `[start, start + len)` safe to resume on: anonymous zeros, else
/// `PROT_NONE`, else the process dies on return. Three system calls at most; no loop.
fn repair(slot: usize, start: usize, len: usize) {
    // SAFETY: `start .. start + len` is a registered range: pages the mapper mapped inside a
    // guest's linear memory, which the runtime owns and nothing outside the guest's own store
    // references. Replacing them with anonymous zeroed read-write memory is what unmapping does
    // (same flags as the guest memory around them, so the kernel merges them back), and `mmap`
    // is async-signal-safe. The slot's range was loaded in one atomic read, so it is the range
    // of a single registration as it was when the fault was matched.
    let replaced = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if replaced != libc::MAP_FAILED {
        return;
    }
    if !lock(slot, start, len) {
        CHAIN.die_on_return();
    }
}
