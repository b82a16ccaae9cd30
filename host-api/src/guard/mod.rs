//! The fault guard of dataset mappings (R4 in `docs/architecture.md`): everything between a
//! signal the kernel raises on a dataset mapping and the fault the runtime reports.
//!
//! - [`registry`]: the process-wide table of guarded ranges, which guests [`reserve`] slots of
//!   and [`Reservation::register`] each mapping in; the handlers look faulting addresses up there.
//! - [`blocks`]: the pool of copy-on-write block states of shared mappings.
//! - [`sigbus`]: the SIGBUS handler (a page gone under a mapping: zeros and a media error).
//! - [`cow`]: the SIGSEGV handler (a store into a shared mapping: a private copy of its block).
//! - `chain`: how both keep the handler they replaced and hand it every fault not theirs.
//!
//! [`install`] installs both handlers, once per process, and is called in one place: where the
//! runtime creates its wasmtime engines (after them, so wasmtime's handlers are the previous
//! ones). A [`Mapper`](crate::Mapper) refuses to start before it.

mod chain;

pub mod blocks;
pub mod cow;
pub mod registry;
pub mod sigbus;

use std::sync::atomic::{AtomicBool, Ordering};

pub use blocks::{BLOCK, copies, kernel_mappings_for};
pub use registry::{CAPACITY, Fault, FaultCause, GuardError, Registration, Reservation, reserve, unreserved};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the SIGBUS and SIGSEGV handlers of the guard (idempotent), and asks the kernel for
/// early memory-failure notices ([`sigbus`]). Call it after creating the wasmtime engine, so
/// wasmtime's handlers are chained behind these.
pub fn install() {
    sigbus::install();
    cow::install();
    INSTALLED.store(true, Ordering::Release);
}

/// Whether [`install`] has run in this process.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}
