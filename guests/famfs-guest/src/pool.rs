//! Address space for mappings: fresh 64 KiB pages obtained with `memory.grow` (never through
//! the allocator), kept in a free list so windows and repeated maps reuse them.
//!
//! A mapping of 2 MiB or more is placed so that its guest address and its dataset offset agree
//! modulo 2 MiB ([`HUGE`]): famfs places file data 2 MiB-aligned on the device, and the host's
//! guest memories start 2 MiB-aligned, so the kernel can then map the window with 2 MiB pages (on
//! DAX and on huge-page page cache), which scans markedly faster than 4 KiB pages. On a
//! device-dax, which maps only whole units of its alignment, every mapping is placed so and
//! reserved through the end of its last unit ([`placement`]).

use crate::Error;
use std::cell::RefCell;

/// A Wasm page, the unit of `memory.grow` and of mapping alignment.
pub(crate) const PAGE: u64 = 65536;

/// Pages in a 4 GiB (wasm32) memory.
pub(crate) const MAX_PAGES: u64 = 65536;

/// Wasm pages in a 2 MiB huge page.
pub(crate) const HUGE: u32 = 32;

/// The first page at or after `x` that is `phase` modulo `align`.
fn align_up(x: u32, align: u32, phase: u32) -> u32 {
    x + (phase + align - x % align) % align
}

/// A run of pages reserved for one mapping: `start .. start + pages`, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) start: u32,
    pub(crate) pages: u32,
}

impl Reservation {
    /// Guest address of the first byte. `start < 65536`, so this cannot overflow.
    pub(crate) fn addr(&self) -> u32 {
        self.start * PAGE as u32
    }
}

/// The free list: disjoint, non-adjacent runs sorted by start.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<(u32, u32)>,
}

impl Pool {
    pub(crate) const fn new() -> Pool {
        Pool { free: Vec::new() }
    }

    /// Reserves `pages` pages starting at a page that is `phase` modulo `align` (`align` 1: any
    /// page): the smallest free run with such a place (the rest of the run stays free); else the
    /// topmost free run extended by growing memory, if it ends where memory ends; else fresh
    /// pages, the ones skipped to reach the place going to the free list. `mem_pages` is the
    /// current memory size; `grow(n)` is `memory.grow(n)` (the old size in pages, or `None` if
    /// memory cannot grow).
    pub(crate) fn take(
        &mut self,
        pages: u32,
        align: u32,
        phase: u32,
        mem_pages: u32,
        mut grow: impl FnMut(u32) -> Option<u32>,
    ) -> Result<Reservation, Error> {
        debug_assert!(pages > 0 && align > 0 && phase < align);
        let place = |(start, n): (u32, u32)| {
            let s = align_up(start, align, phase);
            (u64::from(s) + u64::from(pages) <= u64::from(start) + u64::from(n)).then_some(s)
        };
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, run)| place(**run).is_some())
            .min_by_key(|(_, (_, n))| *n)
            .map(|(i, _)| i);
        if let Some(i) = best {
            let (start, n) = self.free.remove(i);
            let s = place((start, n)).unwrap_or(start);
            self.give_pages(start, s - start);
            self.give_pages(s + pages, start + n - (s + pages));
            return Ok(Reservation { start: s, pages });
        }
        if let Some(&(start, n)) = self.free.last()
            && start + n == mem_pages
        {
            let s = align_up(start, align, phase);
            let extra = s + pages - mem_pages;
            match grow(extra) {
                Some(old) if old == mem_pages => {
                    self.free.pop();
                    self.give_pages(start, s - start);
                    return Ok(Reservation { start: s, pages });
                }
                // Someone else grew memory in between (cannot happen in a single-threaded
                // guest): keep what we got and fall through to fresh pages.
                Some(old) => self.give(Reservation { start: old, pages: extra }),
                None => return Err(Error::MemoryGrow { pages: u64::from(pages) }),
            }
        }
        let pad = align_up(mem_pages, align, phase) - mem_pages;
        match grow(pad + pages) {
            Some(old) if old == mem_pages => {
                self.give_pages(old, pad);
                Ok(Reservation { start: old + pad, pages })
            }
            // Memory grew meanwhile: the place is off, but the pages are ours all the same.
            Some(old) => {
                self.give_pages(old + pages, pad);
                Ok(Reservation { start: old, pages })
            }
            None => Err(Error::MemoryGrow { pages: u64::from(pad + pages) }),
        }
    }

    /// [`give`](Self::give)s `pages` pages from `start`, if any.
    fn give_pages(&mut self, start: u32, pages: u32) {
        if pages > 0 {
            self.give(Reservation { start, pages });
        }
    }

    /// Returns a run to the free list, merging it with its neighbours.
    pub(crate) fn give(&mut self, r: Reservation) {
        let i = self.free.partition_point(|&(s, _)| s < r.start);
        let (mut start, mut n) = (r.start, r.pages);
        if i < self.free.len() && start + n == self.free[i].0 {
            n += self.free[i].1;
            self.free.remove(i);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == start {
            start = self.free[i - 1].0;
            n += self.free[i - 1].1;
            self.free[i - 1] = (start, n);
        } else {
            self.free.insert(i, (start, n));
        }
    }

    #[cfg(test)]
    fn runs(&self) -> &[(u32, u32)] {
        &self.free
    }
}

thread_local! {
    // A wasm32 guest without the threads proposal has one thread, and this is then a plain
    // static; with threads, each thread keeps its own free list (still correct: every run came
    // from memory.grow, which never hands the same pages out twice).
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::new()) };
}

#[cfg(target_arch = "wasm32")]
fn memory_pages() -> u32 {
    core::arch::wasm32::memory_size(0) as u32
}

#[cfg(target_arch = "wasm32")]
fn memory_grow(pages: u32) -> Option<u32> {
    match core::arch::wasm32::memory_grow(0, pages as usize) {
        usize::MAX => None,
        old => Some(old as u32),
    }
}

// Off wasm there is no linear memory to grow (lets the crate build and its tests run natively).
#[cfg(not(target_arch = "wasm32"))]
fn memory_pages() -> u32 {
    0
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_grow(_pages: u32) -> Option<u32> {
    None
}

/// Where and how much to reserve for `len` bytes of a dataset from `offset` (a multiple of
/// 64 KiB) whose memory maps without copy in units of `unit_pages` pages (`dataset.map-unit`):
/// `(pages, align, phase)`. On such a device (device-dax: 32 pages, 2 MiB) the range is placed
/// to agree with `offset` modulo the unit and reserved through the end of the unit holding its
/// last byte, so that the host maps it all and copies nothing. Elsewhere 2 MiB or more are
/// placed to agree with `offset` modulo 2 MiB (2 MiB pages), and smaller ranges anywhere.
pub(crate) fn placement(offset: u64, len: u64, unit_pages: u32) -> (u64, u32, u32) {
    let phase_in = |align: u32| ((offset / PAGE) % u64::from(align)) as u32;
    if unit_pages > 1 {
        let unit = u64::from(unit_pages) * PAGE;
        let end = (offset + len).div_ceil(unit) * unit;
        return ((end - offset) / PAGE, unit_pages, phase_in(unit_pages));
    }
    let pages = len.div_ceil(PAGE);
    if pages >= u64::from(HUGE) { (pages, HUGE, phase_in(HUGE)) } else { (pages, 1, 0) }
}

/// Reserves fresh or reused pages for `len` bytes of a dataset from `offset`, placed as
/// [`placement`] says.
pub(crate) fn reserve(offset: u64, len: u64, unit_pages: u32) -> Result<Reservation, Error> {
    let (pages, align, phase) = placement(offset, len, unit_pages);
    // A whole 4 GiB memory could not also hold the program, and its size would not fit the
    // `u32` that `map-into` takes.
    if pages >= MAX_PAGES {
        return Err(Error::NoAddressSpace);
    }
    POOL.with_borrow_mut(|p| p.take(pages as u32, align, phase, memory_pages(), memory_grow))
}

/// Gives a reservation back once nothing is mapped in it any more.
pub(crate) fn release(r: Reservation) {
    // `try_with`: during thread teardown the pool may be gone; the pages are then simply lost.
    let _ = POOL.try_with(|p| p.borrow_mut().give(r));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake memory: `size` pages, growing up to `max`.
    struct Mem {
        size: u32,
        max: u32,
    }

    impl Mem {
        fn grow(&mut self) -> impl FnMut(u32) -> Option<u32> + '_ {
            |n| {
                if self.size + n > self.max {
                    return None;
                }
                let old = self.size;
                self.size += n;
                Some(old)
            }
        }
    }

    #[test]
    fn reuses_freed_runs_exactly() {
        let mut mem = Mem { size: 10, max: 100 };
        let mut p = Pool::new();
        let a = p.take(4, 1, 0, mem.size, mem.grow()).unwrap();
        assert_eq!(a, Reservation { start: 10, pages: 4 });
        assert_eq!(a.addr(), 10 * 65536);
        p.give(a);
        let size = mem.size;
        let b = p.take(4, 1, 0, size, mem.grow()).unwrap();
        assert_eq!(b, a);
        assert_eq!(mem.size, 14);
    }

    #[test]
    fn splits_best_fit_and_merges() {
        let mut mem = Mem { size: 0, max: 100 };
        let mut p = Pool::new();
        let a = p.take(8, 1, 0, mem.size, mem.grow()).unwrap();
        let b = p.take(2, 1, 0, mem.size, mem.grow()).unwrap();
        let c = p.take(3, 1, 0, mem.size, mem.grow()).unwrap();
        p.give(a);
        p.give(c);
        assert_eq!(p.runs(), &[(0, 8), (10, 3)]);
        // Best fit: the 3-page run, not the 8-page one.
        let d = p.take(2, 1, 0, mem.size, mem.grow()).unwrap();
        assert_eq!(d, Reservation { start: 10, pages: 2 });
        assert_eq!(p.runs(), &[(0, 8), (12, 1)]);
        p.give(d);
        p.give(b);
        assert_eq!(p.runs(), &[(0, 13)]);
    }

    #[test]
    fn extends_the_top_run() {
        let mut mem = Mem { size: 5, max: 100 };
        let mut p = Pool::new();
        let a = p.take(4, 1, 0, mem.size, mem.grow()).unwrap();
        p.give(a);
        let size = mem.size;
        let b = p.take(6, 1, 0, size, mem.grow()).unwrap();
        assert_eq!(b, Reservation { start: 5, pages: 6 });
        assert_eq!(mem.size, 11);
        assert!(p.runs().is_empty());
    }

    #[test]
    fn does_not_extend_a_run_below_other_memory() {
        let mut mem = Mem { size: 5, max: 100 };
        let mut p = Pool::new();
        let a = p.take(4, 1, 0, mem.size, mem.grow()).unwrap();
        p.give(a);
        mem.size += 3; // the allocator grew memory above the run
        let size = mem.size;
        let b = p.take(6, 1, 0, size, mem.grow()).unwrap();
        assert_eq!(b, Reservation { start: 12, pages: 6 });
        assert_eq!(p.runs(), &[(5, 4)]);
    }

    #[test]
    fn large_reservations_agree_with_their_offset_modulo_two_mib() {
        let mut mem = Mem { size: 5, max: 1000 };
        let mut p = Pool::new();
        // Phase 0: a 2 MiB boundary; the 27 pages skipped to reach it stay free.
        let a = p.take(64, HUGE, 0, mem.size, mem.grow()).unwrap();
        assert_eq!(a, Reservation { start: 32, pages: 64 });
        assert_eq!(p.runs(), &[(5, 27)]);
        // Phase 3: three pages past a boundary; the free run below has no such place for 20
        // pages, so fresh pages, three skipped.
        let b = p.take(20, HUGE, 3, mem.size, mem.grow()).unwrap();
        assert_eq!(b, Reservation { start: 99, pages: 20 });
        // Given back, then taken again aligned from the merged run.
        p.give(a);
        p.give(b);
        let size = mem.size;
        let c = p.take(40, HUGE, 0, size, mem.grow()).unwrap();
        assert_eq!(c.start % HUGE, 0);
        let d = p.take(1, 1, 0, mem.size, mem.grow()).unwrap();
        assert_eq!(d.start, 5, "small requests take the padding");
    }

    #[test]
    fn failed_grow_is_an_error() {
        let mut mem = Mem { size: 5, max: 8 };
        let mut p = Pool::new();
        let size = mem.size;
        assert_eq!(p.take(4, 1, 0, size, mem.grow()), Err(Error::MemoryGrow { pages: 4 }));
        assert!(p.runs().is_empty());
    }

    #[test]
    fn dax_ranges_are_placed_in_phase_and_reserved_to_the_end_of_their_unit() {
        // A 3,903,488-byte file on a 2 MiB-aligned device: two whole units.
        assert_eq!(placement(0, 3_903_488, HUGE), (64, HUGE, 0));
        // A small file still takes its unit, so that it is mapped, not copied.
        assert_eq!(placement(0, 100, HUGE), (32, HUGE, 0));
        // A window from 64 KiB before a unit boundary: phase 31, through the next unit's end.
        assert_eq!(placement(31 * PAGE, 2 * PAGE, HUGE), (33, HUGE, 31));
        // Elsewhere: small ranges anywhere, 2 MiB or more in phase, no more than needed.
        assert_eq!(placement(0, 100, 1), (1, 1, 0));
        assert_eq!(placement(3 * PAGE, 3_903_488, 1), (60, HUGE, 3));
    }
}
