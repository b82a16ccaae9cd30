//! The SIGBUS guard (DESIGN §5, R4).
//!
//! # Contract
//! A load from a file mapping raises SIGBUS when the page behind it is gone: the file was
//! truncated below the mapped range, or the CXL memory behind a dax device is poisoned.
//! wasmtime installs no SIGBUS handler on Linux, so without this guard such a fault, whether it
//! happens in guest code or in host code copying out of guest memory, kills the process.
//!
//! - [`install`] installs one process-wide handler (once; later calls do nothing) and keeps
//!   the handler that was there before.
//! - Each dataset mapping is [`register`]ed for as long as it exists. A fault inside a
//!   registered range is repaired: the faulting page is replaced with an anonymous zero page
//!   (`mmap(MAP_FIXED | MAP_ANONYMOUS)`, which is async-signal-safe), the first fault's offset
//!   is recorded in the registration, and the faulting instruction is resumed, so it reads
//!   zeros. The runtime checks [`Registration::fault`] after every guest call and fails the
//!   invocation with a media error naming the dataset and offset: the zeros never become a
//!   result.
//! - A fault outside every registered range goes to the previous handler: called directly
//!   when it is a function; when it was the default action (or ignore), the default action is
//!   restored and the faulting instruction re-runs, so the process dies with SIGBUS as it
//!   would have without the guard.
//! - The registry is a fixed array of atomics, so the handler takes no lock and allocates
//!   nothing. At most [`MAX_REGISTRATIONS`] mappings can be guarded at once; [`register`]
//!   fails beyond that and the mapper then refuses the mapping.

use std::mem::MaybeUninit;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many mappings can be guarded at once, across all stores of the process.
pub const MAX_REGISTRATIONS: usize = 4096;

struct Slot {
    /// Claimed by a registration.
    used: AtomicBool,
    start: AtomicUsize,
    /// One past the end; 0 while the slot is being set up or torn down, so the handler
    /// never matches a half-written slot.
    end: AtomicUsize,
    /// Offset of the first fault within the range, plus one; 0 = none.
    fault: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    fault: AtomicUsize::new(0),
};
static SLOTS: [Slot; MAX_REGISTRATIONS] = [EMPTY; MAX_REGISTRATIONS];

/// The handler that was installed before ours; written once, before ours is installed.
struct Previous(std::cell::UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written exactly once inside `INSTALL.call_once`, before our handler (the only other
// reader) can run; read-only afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(MaybeUninit::uninit()));
static INSTALL: Once = Once::new();

/// Installs the process-wide handler (idempotent). Call it after creating the wasmtime engine,
/// so wasmtime's handlers, if it ever installs one for SIGBUS, are chained behind ours.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `sigaction` is called with a zeroed struct filled in here and a valid out
        // pointer into `PREVIOUS`, which nothing else reads until this returns (the handler we
        // install only reads it after installation). `on_sigbus` has the SA_SIGINFO signature.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut act.sa_mask);
            let prev = (*PREVIOUS.0.get()).as_mut_ptr();
            if libc::sigaction(libc::SIGBUS, &act, prev) != 0 {
                panic!("cannot install the SIGBUS handler: {}", std::io::Error::last_os_error());
            }
        }
    });
}

/// A guarded range; unregistered when dropped.
#[derive(Debug)]
pub struct Registration {
    slot: usize,
    start: usize,
}

/// All guard slots are in use.
#[derive(Debug, thiserror::Error)]
#[error("too many live dataset mappings in this process (at most {MAX_REGISTRATIONS})")]
pub struct GuardFull;

/// Guards `[start, start + len)`. [`install`] must have been called.
pub fn register(start: usize, len: usize) -> Result<Registration, GuardFull> {
    for (i, s) in SLOTS.iter().enumerate() {
        if s.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            s.fault.store(0, Ordering::Relaxed);
            s.start.store(start, Ordering::Relaxed);
            // Publishing `end` last makes the slot visible to the handler.
            s.end.store(start + len, Ordering::Release);
            return Ok(Registration { slot: i, start });
        }
    }
    Err(GuardFull)
}

impl Registration {
    /// Offset within the range of the first fault, if one happened.
    pub fn fault(&self) -> Option<usize> {
        match SLOTS[self.slot].fault.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Start of the guarded range.
    pub fn start(&self) -> usize {
        self.start
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let s = &SLOTS[self.slot];
        s.end.store(0, Ordering::Release);
        s.start.store(0, Ordering::Relaxed);
        s.used.store(false, Ordering::Release);
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for SIGBUS `si_addr`
    // is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in &SLOTS {
        let end = s.end.load(Ordering::Acquire);
        if end == 0 {
            continue;
        }
        let start = s.start.load(Ordering::Relaxed);
        if addr >= start && addr < end {
            let page = addr & !(page_size() - 1);
            // SAFETY: `page` lies in a registered mapping the mapper placed inside a guest's
            // linear memory; replacing that one page with anonymous zeroed memory is exactly
            // what unmapping does, and `mmap` is async-signal-safe. If it fails, the
            // instruction faults again and the process dies, as it would have unguarded.
            unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    page_size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
            }
            let _ = s.fault.compare_exchange(0, addr - start + 1, Ordering::AcqRel, Ordering::Relaxed);
            return;
        }
    }
    // Not ours: hand it to whoever was there before.
    // SAFETY: PREVIOUS was fully written before this handler was installed (see `install`).
    let prev = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
    let handler = prev.sa_sigaction;
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restoring the default disposition; returning re-runs the faulting
        // instruction, which then terminates the process with SIGBUS.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
        }
    } else {
        // SAFETY: a plain (non-SA_SIGINFO) handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}
