//! The pool of copy-on-write block states: one state per 2 MiB block of every shared dataset
//! mapping (*shared*, *copying*, *private*), in a static array the SIGSEGV handler
//! ([`super::cow`]) reads and changes without a lock. A shared mapping takes a run of states when
//! it is registered ([`super::Reservation::register_shared`]) and gives it back when dropped.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// The copy-on-write block: 2 MiB.
pub const BLOCK: usize = 2 << 20;

/// Block states in the pool: 2^20 blocks cover 2 TiB of shared mappings at once.
const POOL: usize = 1 << 20;

/// A block still mapped from the dataset.
pub(super) const SHARED: u8 = 0;
/// A block one thread is copying.
pub(super) const COPYING: u8 = 1;
/// A block that has its private copy.
pub(super) const PRIVATE: u8 = 2;

#[allow(clippy::declare_interior_mutable_const)]
const FRESH: AtomicU8 = AtomicU8::new(SHARED);
/// Block states, never freed (the handler reads them without a lock).
pub(super) static STATES: [AtomicU8; POOL] = [FRESH; POOL];
/// Blocks copied since the process started.
pub(super) static COPIES: AtomicU64 = AtomicU64::new(0);

/// How many blocks the handler has copied in this process (each a guest's or the host's first
/// store into a 2 MiB block of a shared mapping).
pub fn copies() -> u64 {
    COPIES.load(Ordering::Relaxed)
}

/// Free runs of [`STATES`]: (first, count), sorted, non-adjacent. Host code only.
static FREE: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
static FREE_INIT: Once = Once::new();

/// The blocks `[start, start + len)` spans: from the 2 MiB boundary at or below `start`.
fn block_count(start: usize, len: usize) -> usize {
    let base = start & !(BLOCK - 1);
    (start + len - base).div_ceil(BLOCK)
}

/// A shared mapping's run of block states; given back when dropped.
#[derive(Debug)]
pub struct Blocks {
    first: u32,
    count: u32,
}

impl Blocks {
    /// States for the blocks of `[start, start + len)`, all *shared*; `None` when the pool has
    /// no such run free.
    pub(crate) fn alloc(start: usize, len: usize) -> Option<Blocks> {
        let count = u32::try_from(block_count(start, len)).ok()?;
        FREE_INIT.call_once(|| FREE.lock().unwrap_or_else(|e| e.into_inner()).push((0, POOL as u32)));
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let i = free.iter().position(|&(_, n)| n >= count)?;
        let (first, n) = free[i];
        if n == count {
            free.remove(i);
        } else {
            free[i] = (first + count, n - count);
        }
        for s in &STATES[first as usize..(first + count) as usize] {
            s.store(SHARED, Ordering::Relaxed);
        }
        Some(Blocks { first, count })
    }

    /// Index of the first state.
    pub(crate) fn first(&self) -> u32 {
        self.first
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let i = free.partition_point(|&(f, _)| f < self.first);
        free.insert(i, (self.first, self.count));
        // Merge with the neighbours.
        if i + 1 < free.len() && free[i].0 + free[i].1 == free[i + 1].0 {
            free[i].1 += free[i + 1].1;
            free.remove(i + 1);
        }
        if i > 0 && free[i - 1].0 + free[i - 1].1 == free[i].0 {
            free[i - 1].1 += free[i].1;
            free.remove(i);
        }
    }
}

/// Kernel mappings a shared mapping of `[start, start + len)` may come to need for its copies.
pub fn kernel_mappings_for(start: usize, len: usize) -> usize {
    2 * block_count(start, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_a_range_from_the_boundary_below_it() {
        assert_eq!(block_count(0, 1), 1);
        assert_eq!(block_count(BLOCK, BLOCK), 1);
        assert_eq!(block_count(BLOCK - 4096, 8192), 2);
        assert_eq!(block_count(3 * BLOCK + 65536, 4 * BLOCK), 5);
        assert_eq!(kernel_mappings_for(BLOCK, 3 * BLOCK), 6);
    }

    #[test]
    fn block_runs_are_reused_after_they_are_given_back() {
        let a = Blocks::alloc(0, 3 * BLOCK).unwrap();
        let b = Blocks::alloc(0, BLOCK).unwrap();
        assert_ne!(a.first(), b.first());
        let first = a.first();
        drop(a);
        let c = Blocks::alloc(0, 2 * BLOCK).unwrap();
        assert_eq!(c.first(), first, "first fit takes the run given back");
        drop((b, c));
    }
}
