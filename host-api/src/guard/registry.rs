//! The registry of guarded ranges: [`CAPACITY`] slots, each naming one dataset mapping (its
//! range packed into one atomic word, its first fault, and for a shared mapping its run of
//! copy-on-write block states in [`super::blocks`]). Guests [`reserve`] slots when they start and
//! [`Reservation::register`] each mapping for as long as it exists; the signal handlers
//! ([`super::sigbus`], [`super::cow`]) look faulting addresses up here without a lock or an
//! allocation, in one bounded pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::blocks::Blocks;

/// How many mappings can be guarded at once, across all guests of the process.
pub const CAPACITY: usize = 16384;

/// Bits of a slot's word that hold the range's length in pages (the rest hold its first page):
/// 2^22 pages of 4 KiB is 16 GiB, more than a 32-bit guest can map.
const LEN_BITS: u32 = 22;

struct Slot {
    /// Claimed by a registration.
    used: AtomicBool,
    /// `start_page << LEN_BITS | len_pages`; 0 while the slot is free, being set up or torn
    /// down, so the handler never matches a half-written slot.
    range: AtomicU64,
    /// The first fault: its offset within the range, plus one, with [`COPY_FAILED`] set when it
    /// was a store whose private copy could not be made; 0 = none.
    fault: AtomicUsize,
    /// For a shared mapping, the first of its copy-on-write block states in
    /// [`super::blocks`]'s pool; [`NOT_SHARED`] for a private one. Written before the range is
    /// published.
    blocks: AtomicU32,
}

/// The bit of [`Slot::fault`] that tells a failed copy-on-write from a media error.
const COPY_FAILED: usize = 1 << (usize::BITS - 1);

/// Why a guarded range stopped showing the dataset's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// A load found the memory behind it gone: poisoned, or the file shrank.
    Media,
    /// A store needed a private copy of its block ([`super::cow`]) and the kernel gave no memory
    /// for one: the block reads zeros now.
    CopyFailed,
}

/// The first fault a guarded range saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Offset within the range.
    pub offset: usize,
    /// What happened there.
    pub cause: FaultCause,
}

/// [`Slot::blocks`] of a private mapping.
pub(crate) const NOT_SHARED: u32 = u32::MAX;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    used: AtomicBool::new(false),
    range: AtomicU64::new(0),
    fault: AtomicUsize::new(0),
    blocks: AtomicU32::new(NOT_SHARED),
};
static SLOTS: [Slot; CAPACITY] = [EMPTY; CAPACITY];
/// One past the highest slot ever claimed: the handler scans no further.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Slots promised to guests by [`reserve`] and not yet given back.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Why a range cannot be guarded.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The guest already guards as many mappings as it reserved slots for.
    #[error("this guest already has {0} live dataset mappings, its limit")]
    GuestFull(usize),
    /// The slots of the process are all promised to other guests.
    #[error("the process's {CAPACITY} SIGBUS guard slots are all reserved by running guests")]
    ProcessFull,
    /// The range cannot be described in a slot (an address beyond 2^54, or longer than 16 GiB).
    #[error("the range {start:#x}+{len:#x} cannot be guarded")]
    Unrepresentable {
        /// Start address.
        start: usize,
        /// Length.
        len: usize,
    },
}

/// Slots promised to one guest: at most `limit` of its mappings can be guarded at once, and
/// those always can. Gives the slots back when dropped.
#[derive(Debug)]
pub struct Reservation {
    limit: usize,
    /// This guest's live registrations (each decrements it when dropped).
    live: Arc<AtomicUsize>,
}

/// Promises `n` guard slots to one guest; fails when the other guests' promises leave fewer.
pub fn reserve(n: usize) -> Result<Reservation, GuardError> {
    if !crate::budget::take(&RESERVED, n, CAPACITY) {
        return Err(GuardError::ProcessFull);
    }
    Ok(Reservation { limit: n, live: Arc::new(AtomicUsize::new(0)) })
}

/// Slots not promised to any guest.
pub fn unreserved() -> usize {
    CAPACITY - RESERVED.load(Ordering::Acquire)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Registrations that outlive their reservation (the mapper drops them first) still
        // hold their slots; the promise goes back now, and the slots when they are dropped.
        RESERVED.fetch_sub(self.limit, Ordering::AcqRel);
    }
}

/// A guarded range; unregistered when dropped.
#[derive(Debug)]
pub struct Registration {
    slot: usize,
    start: usize,
    live: Arc<AtomicUsize>,
    /// A shared mapping's copy-on-write block states, held so they are freed after the slot
    /// stops naming them (the field drops after `Drop::drop` has run).
    _blocks: Option<Blocks>,
}

fn page_shift() -> u32 {
    rustix::param::page_size().trailing_zeros()
}

/// The slot word for `[start, start + len)`, both page-aligned, or `None` if it does not fit.
fn pack(start: usize, len: usize) -> Option<u64> {
    let shift = page_shift();
    let (start_page, len_pages) = ((start >> shift) as u64, (len >> shift) as u64);
    let fits = len_pages > 0 && len_pages < (1 << LEN_BITS) && start_page < (1 << (64 - LEN_BITS));
    fits.then_some((start_page << LEN_BITS) | len_pages)
}

/// `(start, len)` of a slot word.
fn unpack(word: u64) -> (usize, usize) {
    let shift = page_shift();
    (((word >> LEN_BITS) as usize) << shift, ((word & ((1 << LEN_BITS) - 1)) as usize) << shift)
}

impl Reservation {
    /// Guards `[start, start + len)` (page-aligned) in one of this guest's slots. [`super::install`]
    /// must have been called.
    pub fn register(&mut self, start: usize, len: usize) -> Result<Registration, GuardError> {
        self.claim(start, len, None)
    }

    /// [`register`](Self::register) for a shared, read-only mapping whose pages the guest and
    /// the host may store to: the copy-on-write handler ([`super::cow`]) gives each 2 MiB block
    /// a private copy at its first write fault.
    pub fn register_shared(&mut self, start: usize, len: usize) -> Result<Registration, GuardError> {
        let blocks = Blocks::alloc(start, len).ok_or(GuardError::ProcessFull)?;
        self.claim(start, len, Some(blocks))
    }

    fn claim(&mut self, start: usize, len: usize, blocks: Option<Blocks>) -> Result<Registration, GuardError> {
        if self.live.load(Ordering::Acquire) >= self.limit {
            return Err(GuardError::GuestFull(self.limit));
        }
        let word = pack(start, len).ok_or(GuardError::Unrepresentable { start, len })?;
        // A free slot exists: every reservation's live registrations are within its limit, and
        // the limits add up to at most CAPACITY.
        for (i, s) in SLOTS.iter().enumerate() {
            if s.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                s.fault.store(0, Ordering::Relaxed);
                s.blocks.store(blocks.as_ref().map_or(NOT_SHARED, |b| b.first()), Ordering::Relaxed);
                HIGH.fetch_max(i + 1, Ordering::AcqRel);
                // Publishing the range last makes the slot visible to the handlers.
                s.range.store(word, Ordering::Release);
                self.live.fetch_add(1, Ordering::AcqRel);
                return Ok(Registration { slot: i, start, live: self.live.clone(), _blocks: blocks });
            }
        }
        Err(GuardError::ProcessFull)
    }

    /// How many of this guest's ranges are guarded now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Registration {
    /// The range's first fault, if one happened.
    pub fn fault(&self) -> Option<Fault> {
        match SLOTS[self.slot].fault.load(Ordering::Acquire) {
            0 => None,
            n => {
                let cause = if n & COPY_FAILED != 0 { FaultCause::CopyFailed } else { FaultCause::Media };
                Some(Fault { offset: (n & !COPY_FAILED) - 1, cause })
            }
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
        s.range.store(0, Ordering::Release);
        s.blocks.store(NOT_SHARED, Ordering::Release);
        s.used.store(false, Ordering::Release);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Records the first fault of `slot` (later ones keep it). One atomic operation: called from
/// the signal handlers.
pub(super) fn record(slot: usize, offset: usize, cause: FaultCause) {
    let word = (offset + 1) | if cause == FaultCause::CopyFailed { COPY_FAILED } else { 0 };
    let _ = SLOTS[slot].fault.compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed);
}

/// The shared registration covering `addr`: (slot, start, len, first block state), or `None`. The
/// range is read whole, then the block index, then the range again: if it changed (torn down
/// on another thread meanwhile), `Err(())` asks the caller to let the instruction run again.
/// Called from the SIGSEGV handler: no lock, no allocation, one bounded pass.
pub(super) fn registered_shared(addr: usize) -> Result<Option<(usize, usize, usize, u32)>, ()> {
    let Some((slot, start, len)) = registered(addr) else { return Ok(None) };
    let s = &SLOTS[slot];
    let blocks = s.blocks.load(Ordering::Acquire);
    if pack(start, len) != Some(s.range.load(Ordering::Acquire)) {
        return Err(());
    }
    Ok((blocks != NOT_SHARED).then_some((slot, start, len, blocks)))
}

/// The registration covering `addr`, as (slot, start, len): each slot's range is read in one
/// atomic load, so it is a range some registration had, never one made of two. Called from the
/// signal handlers: no lock, no allocation, one bounded pass.
pub(super) fn registered(addr: usize) -> Option<(usize, usize, usize)> {
    let high = HIGH.load(Ordering::Acquire).min(CAPACITY);
    for (i, s) in SLOTS[..high].iter().enumerate() {
        let word = s.range.load(Ordering::Acquire);
        if word == 0 {
            continue;
        }
        let (start, len) = unpack(word);
        if addr >= start && addr < start + len {
            return Some((i, start, len));
        }
    }
    None
}

/// Makes the registered range `[start, start + len)` of `slot` inaccessible (`PROT_NONE`), the
/// last resort of both handlers: whether it could. One system call.
pub(super) fn lock(slot: usize, start: usize, len: usize) -> bool {
    // SAFETY: a registered range (see `repair`): pages the mapper mapped inside a guest's
    // linear memory. PROT_NONE changes no mapping's extent (the range is whole kernel mappings,
    // copied blocks included), and takes memory away rather than asking for it, so it needs no
    // new mapping and no memory. A wasm access to it then traps in wasmtime's own SIGSEGV
    // handler instead of faulting here again.
    if unsafe { libc::mprotect(start as *mut libc::c_void, len, libc::PROT_NONE) } == 0 {
        // A write there now faults for want of any access: not a copy-on-write fault.
        SLOTS[slot].blocks.store(NOT_SHARED, Ordering::Release);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_word_holds_a_range_whole() {
        let page = rustix::param::page_size();
        for (start, len) in [(page, page), (0x7fff_0000_0000, 4 << 30), (0x5555_5555_0000, 65536)] {
            let w = pack(start, len).unwrap();
            assert_ne!(w, 0);
            assert_eq!(unpack(w), (start, len));
        }
        assert!(pack(page, 0).is_none(), "an empty range");
        assert!(pack(page, 1 << (LEN_BITS + page_shift())).is_none(), "too long");
        assert!(pack(usize::MAX & !(page - 1), page).is_none(), "too high");
    }

    /// Defect 9: the handler used to read a slot's end and then its start, so a registration
    /// torn down and replaced on another thread in between could match a range made of two
    /// registrations (the end of one above `target`, the start of the next below it) and take a
    /// fault that was not its own. Another thread churns such registrations while this one looks
    /// `target` up two million times, as the handler does: no lookup ever matches them.
    #[test]
    fn a_lookup_never_sees_a_range_made_of_two_registrations() {
        let page = rustix::param::page_size();
        let target = 0x7100_0000_0000usize;
        let stop = Arc::new(AtomicBool::new(false));
        let mut churner = reserve(1).unwrap();
        let first = churner.register(target + page, page).unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut r = Some(first);
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                drop(r.take());
                let start = if n.is_multiple_of(2) { target - 2 * page } else { target + page };
                r = Some(churner.register(start, page).unwrap());
                n += 1;
            }
            n
        });
        let mut wrong = 0;
        for _ in 0..2_000_000 {
            if registered(target).is_some() {
                wrong += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let churned = thread.join().unwrap();
        assert_eq!(wrong, 0, "{wrong} of 2,000,000 lookups matched a range no registration had ({churned} churns)");
    }

    #[test]
    fn a_guest_cannot_take_another_guests_slots() {
        let mut mine = reserve(2).unwrap();
        let page = rustix::param::page_size();
        let a = mine.register(page * 16, page).unwrap();
        let b = mine.register(page * 32, page).unwrap();
        assert!(matches!(mine.register(page * 48, page), Err(GuardError::GuestFull(2))));
        drop(a);
        let c = mine.register(page * 48, page).unwrap();
        assert_eq!(mine.live(), 2);
        drop((b, c));
        assert_eq!(mine.live(), 0);
        assert!(matches!(reserve(CAPACITY + 1), Err(GuardError::ProcessFull)));
    }
}
