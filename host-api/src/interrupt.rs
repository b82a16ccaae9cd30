//! Tells host work done on a guest's behalf that the guest's invocation is over (its deadline
//! passed, or it was cancelled), so long work (populating a large mapping, walking a large
//! tree) stops early instead of running to completion after the guest's time is up.

use std::sync::Arc;

/// A flag host calls poll between chunks of work; cheap to clone.
#[derive(Clone, Default)]
pub struct Interrupt(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Interrupt {
    /// Never raised.
    pub fn never() -> Interrupt {
        Interrupt(None)
    }

    /// Raised whenever `raised` returns true (it must be cheap: it is polled often).
    pub fn new(raised: impl Fn() -> bool + Send + Sync + 'static) -> Interrupt {
        Interrupt(Some(Arc::new(raised)))
    }

    /// Whether the work should stop now.
    pub fn is_raised(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f())
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Interrupt(..)" } else { "Interrupt(never)" })
    }
}
