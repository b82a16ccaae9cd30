//! Counting against a process-wide budget: the one compare-and-swap loop that the SIGBUS guard's
//! slots, the kernel-mapping budget ([`crate::map_budget`]) and the descriptor budget
//! ([`crate::fd_budget`]) all draw through, and the share it hands out.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Adds `n` to `counter` unless that would pass `limit` (one compare-and-swap loop, so
/// concurrent takers never pass it together); whether it did.
pub(crate) fn take(counter: &AtomicUsize, n: usize, limit: usize) -> bool {
    let mut cur = counter.load(Ordering::Relaxed);
    loop {
        let Some(next) = cur.checked_add(n).filter(|&t| t <= limit) else { return false };
        match counter.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// `n` units taken from a process-wide counter; given back when dropped.
#[derive(Debug)]
pub struct Share {
    counter: &'static AtomicUsize,
    n: usize,
}

impl Share {
    /// Takes `n` from `counter` unless that would pass `limit`.
    pub(crate) fn take(counter: &'static AtomicUsize, n: usize, limit: usize) -> Option<Share> {
        // Made only once taken: a Share made and dropped on refusal would give back what it
        // never took (so not `then_some`, which makes it either way).
        if take(counter, n, limit) { Some(Share { counter, n }) } else { None }
    }

    /// How many units this share holds.
    pub fn count(&self) -> usize {
        self.n
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_pass_the_limit_and_are_given_back() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let a = Share::take(&COUNTER, 6, 10).unwrap();
        assert!(Share::take(&COUNTER, 5, 10).is_none(), "6 + 5 > 10");
        assert!(Share::take(&COUNTER, usize::MAX, usize::MAX).is_none(), "overflow is a refusal");
        let b = Share::take(&COUNTER, 4, 10).unwrap();
        assert_eq!((a.count(), b.count(), COUNTER.load(Ordering::Acquire)), (6, 4, 10));
        drop(a);
        assert_eq!(COUNTER.load(Ordering::Acquire), 4, "a refused take gave back nothing");
        drop(b);
        assert_eq!(COUNTER.load(Ordering::Acquire), 0);
    }
}
