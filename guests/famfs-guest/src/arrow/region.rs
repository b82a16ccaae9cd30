//! Mapped regions of the file as arrow-rs [`Buffer`]s that own their mapping.
//!
//! A region is mapped like any [`Mapped`] range, then handed to arrow-rs as a custom
//! allocation: `Buffer::from_custom_allocation(ptr, len, owner)`, where `owner` is an
//! `Arc<MappedRegion>` holding the mapping, its reserved address range and the dataset.
//! arrow-rs clones that `Arc` into every buffer sliced from the region, and so into every array
//! and record batch decoded from it; the region is unmapped (and its address range returned to
//! the SDK's pool) when the last of them is dropped.

use super::ArrowError;
use crate::pool::{self, Reservation};
use crate::{Dataset, MapOptions, Mapped, raw};
use arrow_buffer::Buffer;
use std::ptr::NonNull;
use std::sync::Arc;

/// The owner of one mapped region: what [`Mapped`] holds, without its borrow of the dataset
/// (an `Arc` of the dataset instead, so the dataset handle is closed only after its last
/// mapping, whatever the host thinks of mappings that outlive their dataset).
#[derive(Debug)]
struct MappedRegion {
    mapping: Option<raw::Mapping>,
    reservation: Option<Reservation>,
    _dataset: Arc<Dataset>,
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // As `Mapped::drop`: unmap first (the host puts zeroed memory back), then the range
        // may be reused.
        drop(self.mapping.take());
        if let Some(r) = self.reservation.take() {
            pool::release(r);
        }
    }
}

impl Mapped<'_> {
    /// Moves the mapping and its reserved range out of `self` (which then drops as an empty
    /// view): the start of the mapped bytes, their length, and the mapping and range.
    fn into_parts(mut self) -> (*const u8, usize, Option<raw::Mapping>, Option<Reservation>) {
        (self.base, self.len, self.mapping.take(), self.reservation.take())
    }
}

/// Maps `len` bytes from `offset` (a multiple of 64 KiB) of `dataset`, zero-copy, as a
/// [`Buffer`] that keeps the mapping alive.
pub(crate) fn map(dataset: &Arc<Dataset>, offset: u64, len: u64, options: MapOptions) -> Result<Buffer, ArrowError> {
    let mapped = dataset.map_range_with(offset, len, options)?;
    let (base, len, mapping, reservation) = mapped.into_parts();
    let owner = Arc::new(MappedRegion { mapping, reservation, _dataset: Arc::clone(dataset) });
    // An empty range has no mapping; the callers never ask for one, and NonNull::dangling
    // stands in for its pointer.
    let ptr = NonNull::new(base.cast_mut()).unwrap_or(NonNull::dangling());
    // SAFETY: `ptr .. ptr + len` is the range `Dataset::map_range_with` mapped and checked (it
    // lies inside the 32-bit address space and inside the host's mapping), and it stays mapped
    // and reserved until `owner` is dropped. arrow-rs keeps `owner` alive in every buffer that
    // can reach these bytes, so no buffer, array or batch outlives the mapping however it is
    // cloned or stored. Nothing writes through the pointer: the pages came from `memory.grow`
    // (never the allocator), and arrow-rs refuses to turn a custom allocation into a mutable
    // buffer (`Buffer::into_mutable` fails for it).
    Ok(unsafe { Buffer::from_custom_allocation(ptr, len, owner) })
}
