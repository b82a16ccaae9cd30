//! The process-wide budget of kernel memory mappings that dataset mappings may use.
//!
//! The kernel allows a process `vm.max_map_count` mappings (VMAs; 65,530 by default). Past it,
//! every `mmap` and `mprotect` that needs a new mapping fails: new guests cannot reserve memory,
//! threads cannot be created, and the SIGBUS guard could not repair a fault. Each dataset
//! mapping costs kernel mappings (one per file piece, plus up to two where it splits the guest
//! memory around it), so guests draw them from this budget, shared by all guests of the
//! process: half of `vm.max_map_count`. The other half is headroom for everything else the
//! process maps (code, thread stacks, guest memories, the allocator) and for the guard's
//! repairs, which never add a mapping. A map request that would eat into the headroom fails
//! with `no-address-space`. Each guest also has a cap of its own (the mapper's
//! `max_kernel_mappings`), which it [`reserve`]s from the budget when its mapper is made: the caps
//! of the guests running at once add up to at most the budget, so a guest under its own cap never
//! finds the budget taken by the others, and a guest that cannot have its cap does not start.

use crate::budget::Share;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The kernel's default `vm.max_map_count`, used when /proc cannot be read.
const DEFAULT_MAX_MAP_COUNT: usize = 65530;

static TOTAL: OnceLock<usize> = OnceLock::new();
static USED: AtomicUsize = AtomicUsize::new(0);
/// Kernel mappings promised to guests by [`reserve`] and not yet given back.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Kernel mappings dataset mappings may use in this process: half of `vm.max_map_count`.
pub fn total() -> usize {
    *TOTAL.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_MAP_COUNT);
        max / 2
    })
}

/// Kernel mappings charged now, by all guests.
pub fn used() -> usize {
    USED.load(Ordering::Acquire)
}

/// Kernel mappings promised to one guest (its cap); given back when dropped.
pub type Reservation = Share;

/// Promises `n` kernel mappings of the budget to one guest, or `None` when the other guests'
/// promises leave fewer.
pub fn reserve(n: usize) -> Option<Reservation> {
    Share::take(&RESERVED, n, total())
}

/// Kernel mappings of the budget not promised to any guest.
pub fn unreserved() -> usize {
    total().saturating_sub(RESERVED.load(Ordering::Acquire))
}

/// Kernel mappings taken from the budget by live mappings; given back when dropped.
pub type Charge = Share;

/// Takes `n` kernel mappings from the budget, or `None` when fewer are left.
pub fn charge(n: usize) -> Option<Charge> {
    Share::take(&USED, n, total())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_by_the_budget_and_given_back() {
        assert!(total() >= 1000, "half of vm.max_map_count: {}", total());
        assert!(charge(total() + 1).is_none());
        let c = charge(10).unwrap();
        assert_eq!(c.count(), 10);
        assert!(used() >= 10);
        drop(c);
    }

    #[test]
    fn reservations_add_up_to_at_most_the_budget() {
        let a = reserve(total() / 2).unwrap();
        assert!(reserve(total()).is_none(), "more than is left");
        assert!(unreserved() <= total() - total() / 2);
        drop(a);
        assert!(reserve(usize::MAX).is_none());
    }
}
