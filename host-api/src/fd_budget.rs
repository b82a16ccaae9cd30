//! The process-wide budget of file descriptors that guests may hold.
//!
//! A process has one `RLIMIT_NOFILE`. Past it every `open`, `socket`, `accept` and `pipe` fails
//! with `EMFILE`, the host's as much as a guest's: famfs-serve stops accepting connections, the
//! engine cannot make an event loop. Guests hold descriptors through the datasets they open on a
//! mounted source (one each, up to their `max_open_datasets`) and through the files and
//! directories they open with WASI in a host directory (one each, up to their
//! `max_wasi_resources`). So each guest [`reserve`]s both caps from this budget when it starts:
//! half of the soft `RLIMIT_NOFILE`, the other half being the host's. The caps of the guests
//! running at once add up to at most the budget, a guest under its own cap never finds the
//! descriptors taken by the others, and a guest that cannot have its caps does not start.
//!
//! The budget is read from the limit at each call, so [`raise_limit`] (which the binaries call
//! at start, as Go programs do) widens it for the guests that start afterwards.

use crate::budget::Share;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors promised to guests by [`reserve`] and not yet given back.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// What an unlimited `RLIMIT_NOFILE` counts as: the kernel's default `fs.nr_open`, past which no
/// process gets a descriptor anyway.
const UNLIMITED: u64 = 1 << 20;

/// The soft and hard `RLIMIT_NOFILE`.
fn limit() -> (u64, u64) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live, owned local, and reads
    // nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        // Cannot happen for a valid resource; the kernel's usual default then.
        return (1024, 1024);
    }
    let clamp = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { UNLIMITED } else { v.min(UNLIMITED) };
    (clamp(l.rlim_cur), clamp(l.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one, so the process may use every descriptor it
/// is allowed (the soft limit is often 1,024 for `select`'s sake, which nothing here uses).
/// Returns the soft limit now in force. The famfs-run binaries call it at start; an embedding
/// process decides for itself.
pub fn raise_limit() -> std::io::Result<u64> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: as in `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if l.rlim_cur != l.rlim_max {
        let raised = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
        // SAFETY: setrlimit reads one `rlimit` from a live local; raising the soft limit up to
        // the hard one needs no privilege and changes nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit().0)
}

/// Descriptors guests may hold in this process: half of the soft `RLIMIT_NOFILE`, now.
pub fn total() -> usize {
    usize::try_from(limit().0 / 2).unwrap_or(usize::MAX)
}

/// Descriptors promised to one guest (its caps); given back when dropped.
pub type Reservation = Share;

/// Why a guest cannot have its descriptor caps.
#[derive(Debug, thiserror::Error)]
#[error(
    "this guest's max_open_datasets and max_wasi_resources ({asked} descriptors) are more than the {left} that running guests leave of the process's {total} (half of RLIMIT_NOFILE); run fewer guests at once, lower those caps or raise `ulimit -n`"
)]
pub struct FdBudgetError {
    /// The guest's caps, added.
    pub asked: usize,
    /// Not promised to other guests.
    pub left: usize,
    /// The process's budget.
    pub total: usize,
}

/// Promises `n` descriptors of the budget to one guest; fails when the other guests' promises
/// leave fewer.
pub fn reserve(n: usize) -> Result<Reservation, FdBudgetError> {
    let total = total();
    Share::take(&RESERVED, n, total).ok_or_else(|| FdBudgetError { asked: n, left: unreserved(), total })
}

/// Descriptors of the budget not promised to any guest.
pub fn unreserved() -> usize {
    total().saturating_sub(RESERVED.load(Ordering::Acquire))
}
