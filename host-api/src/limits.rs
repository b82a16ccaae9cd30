//! What one guest may hold of the process's resources through the `famfs:dataset` imports.
//! Every process-wide resource a guest can consume has a cap here, so that no guest can take
//! from the others what they need: SIGBUS guard slots and kernel mappings (through
//! [`MapLimits`]), open datasets (each a file descriptor on a mounted source), and host buffers
//! made on its behalf (a `read` copies at most [`MAX_READ`] bytes per call).

use crate::mapper::MapLimits;

/// Most bytes one `dataset.read` returns: the host buffer a read needs (components; core modules
/// are read straight into guest memory) is at most this big. A guest asks again for the rest,
/// as the guest SDK does.
pub const MAX_READ: u32 = 1 << 20;

/// Per-guest caps for the `famfs:dataset` imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// Live mappings and the kernel mappings they may occupy.
    pub map: MapLimits,
    /// Datasets open at once (`catalog.open` answers `no-address-space` beyond it).
    pub max_open: usize,
    /// The guest's memory limit: a `read` asking for more than this could never be returned, and
    /// is answered `no-address-space` before anything is read.
    pub max_memory: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits { map: MapLimits::default(), max_open: 256, max_memory: 4 << 30 }
    }
}
