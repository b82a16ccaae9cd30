//! Guest SDK of famfs-run: open the datasets the host granted and read them in place.
//!
//! A famfs-run guest is a Wasm module (`wasm32-wasip1`, or a `wasm32-wasip2` component) that
//! imports the `famfs:dataset/catalog@0.1.0` interface (`wit/dataset.wit`, the one contract
//! between host and guests). This crate wraps those imports in a safe API:
//!
//! ```no_run
//! use famfs_guest::Dataset;
//!
//! # fn main() -> Result<(), famfs_guest::Error> {
//! let ds = Dataset::open("data/sensors.bin")?;
//! // Zero-copy: the dataset's own pages, mapped into this guest's memory.
//! let mapped = ds.map()?;
//! let zeros = mapped.as_slice().iter().filter(|&&b| b == 0).count();
//! println!("{} has {zeros} zero bytes", ds.name());
//!
//! // Bigger than the free address space? Walk it in windows.
//! let mut total = 0u64;
//! for window in ds.windows(64 << 20) {
//!     let window = window?;
//!     total += window.as_slice().iter().map(|&b| u64::from(b)).sum::<u64>();
//! }
//! # let _ = total;
//! # Ok(())
//! # }
//! ```
//!
//! # What is zero-copy
//!
//! [`Dataset::map`], [`Dataset::map_range`] and [`Dataset::windows`] are zero-copy: the host maps
//! the dataset's file pages (famfs memory, or the page cache of an image file) into this
//! guest's linear memory, and [`Mapped::as_slice`] is a plain `&[u8]` over them. No byte is
//! copied; mapping costs about the same (tens of microseconds) for 1 MiB and for 1 GiB, and
//! pages are faulted in as they are first read (ask for [`MapOptions::populate`] to fault them
//! in up front). [`Dataset::read`] is the copying path: the host copies the bytes into a new
//! `Vec<u8>`.
//!
//! # Stores into a mapped range
//!
//! A mapped range is read-only in effect, never in the dataset: it is a private copy-on-write
//! mapping. Safe code cannot write to it (it only gets `&[u8]`), but a raw store, a WASI read or
//! a host call that writes into the range changes only this guest's private copy of that page,
//! never the dataset, and the copied page counts toward the guest's memory limit. When the
//! mapping is dropped, the range reads as zeros again.
//!
//! # Address space
//!
//! Each mapping needs a 64 KiB-aligned range of linear memory. The SDK reserves fresh pages
//! with `memory.grow` (never through the allocator, which must not hand them out) and keeps
//! them in a free list when a [`Mapped`] is dropped, so the next mapping reuses them instead of
//! growing memory again. Reserved pages count toward the guest's memory limit (`famfs-run
//! --max-memory`); a wasm32 memory is at most 4 GiB, so a dataset that does not fit is read in
//! windows.
//!
//! # Windows
//!
//! [`Dataset::windows`] yields consecutive [`Mapped`] windows covering the whole dataset, in
//! order: window `i` covers bytes `i * size .. min((i + 1) * size, len)`, where `size` is the
//! requested window size rounded up to a multiple of 64 KiB (so every window but the last has a
//! length that is a multiple of 64 KiB, and 8-byte words never straddle two windows). Records
//! that cross a window boundary (a line, a word) are the caller's to carry over. Drop each
//! window before asking for the next (as a `for` loop does): the next window is then mapped at
//! the same reserved address, and memory use stays at one window. A window that is kept alive
//! keeps its own range, and the next one gets another.
//!
//! # Raw dax devices
//!
//! On a raw `/dev/daxX.Y` source the host cannot map yet: `map` answers `io` (device-dax refuses
//! the private mappings used for images and mounts), and `read` copies. Should a future host
//! place a mapping above the guest's accessible memory ([`Mapped::within_memory`] tells), plain
//! loads from it work while bulk copies (`copy_from_slice`, `to_vec`, which compile to
//! `memory.copy`) trap; [`copy_with_loads`] copies small pieces with loads.
//!
//! # Arrow files
//!
//! With the `arrow` feature, `arrow::ArrowFile` reads an Arrow IPC file (Feather v2) as
//! arrow-rs record batches whose column buffers are the mapped dataset bytes, window by window.
//!
//! # Raw bindings
//!
//! [`raw`] re-exports what `wit-bindgen` generates from the WIT, for code that needs the
//! imports themselves.
#![deny(missing_docs)]

#[cfg(feature = "arrow")]
pub mod arrow;
mod pool;

use pool::{PAGE, Reservation};
use std::fmt;
use std::marker::PhantomData;

/// The `wit-bindgen` bindings of the `analytics` world (`famfs:dataset@0.1.0`), unwrapped.
///
/// [`raw::Dataset`], [`raw::Mapping`], [`raw::open`] and [`raw::list`] are the catalog
/// interface's resources and functions; [`raw::ErrorCode`], [`raw::DatasetInfo`] and
/// [`raw::MapFlags`] its types. Dropping a [`raw::Mapping`] unmaps it, dropping a
/// [`raw::Dataset`] closes it.
#[allow(missing_docs)]
pub mod raw {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "analytics",
    });

    pub use famfs::dataset::catalog::{Dataset, Mapping, list, open};
    pub use famfs::dataset::types::{DatasetInfo, ErrorCode, MapFlags};
}

/// Bytes in a Wasm page: offsets and addresses of mappings are multiples of this.
pub const PAGE_SIZE: u64 = PAGE;

/// Window size of [`Dataset::windows_default`] for datasets bigger than [`WHOLE_LIMIT`]: 256 MiB.
pub const DEFAULT_WINDOW: u64 = 256 << 20;

/// [`Dataset::windows_default`] maps datasets up to this size (1 GiB) as a single window.
pub const WHOLE_LIMIT: u64 = 1 << 30;

/// [`Dataset::windows_default`] halves its window down to this many pages (1 MiB).
const SHRINK_MIN_PAGES: u32 = 16;

/// The largest window or mapping: 4 GiB minus one page (a mapping length is a `u32`).
pub const MAX_WINDOW: u64 = (u32::MAX as u64) & !(PAGE - 1);

/// Why a famfs request failed.
///
/// The first six variants are the WIT `error-code`s the host returns; [`Error::MemoryGrow`]
/// is the guest's own `memory.grow` failing while reserving address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No dataset of that name exists.
    NotFound,
    /// The dataset was not granted to this guest, or the name escapes the granted tree.
    NotPermitted,
    /// A range past the end of the dataset, a misaligned offset or address, an overflowing
    /// length, or a target range outside memory or overlapping another mapping.
    InvalidArgument,
    /// No address space for the mapping (also: a range longer than a wasm32 memory can hold).
    NoAddressSpace,
    /// The memory behind the dataset failed (poisoned memory, or the file shrank while mapped).
    MediaError,
    /// Any other I/O failure on the host.
    Io,
    /// `memory.grow` of `pages` 64 KiB pages failed: the guest reached its memory limit or the
    /// 4 GiB of a wasm32 memory.
    MemoryGrow {
        /// The pages asked for.
        pages: u64,
    },
}

impl Error {
    /// The kebab-case name: the WIT `error-code` case (`not-found`, `invalid-argument`, ...), or
    /// `memory-grow-failed`.
    pub fn code_name(&self) -> &'static str {
        match self {
            Error::NotFound => "not-found",
            Error::NotPermitted => "not-permitted",
            Error::InvalidArgument => "invalid-argument",
            Error::NoAddressSpace => "no-address-space",
            Error::MediaError => "media-error",
            Error::Io => "io",
            Error::MemoryGrow { .. } => "memory-grow-failed",
        }
    }
}

impl From<raw::ErrorCode> for Error {
    fn from(e: raw::ErrorCode) -> Error {
        match e {
            raw::ErrorCode::NotFound => Error::NotFound,
            raw::ErrorCode::NotPermitted => Error::NotPermitted,
            raw::ErrorCode::InvalidArgument => Error::InvalidArgument,
            raw::ErrorCode::NoAddressSpace => Error::NoAddressSpace,
            raw::ErrorCode::MediaError => Error::MediaError,
            raw::ErrorCode::Io => Error::Io,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str(
                "no such dataset: names are paths relative to the famfs root, '/'-separated, \
                 without a leading '/' (famfs_guest::list() shows what this guest may open)",
            ),
            Error::NotPermitted => f.write_str(
                "not permitted: the dataset was not granted to this guest (grant it with \
                 famfs-run --dataset PATH), or the name leaves the granted tree ('..', an \
                 absolute path or a symbolic link)",
            ),
            Error::InvalidArgument => f.write_str(
                "invalid argument: the range lies past the end of the dataset, the offset or \
                 address is not a multiple of 64 KiB, or the target range is outside the \
                 guest's memory or overlaps another mapping",
            ),
            Error::NoAddressSpace => f.write_str(
                "no address space for the mapping: map a smaller range, or read the dataset in \
                 windows (Dataset::windows) with a smaller window",
            ),
            Error::MediaError => f.write_str(
                "media error: the memory behind the dataset failed (poisoned memory, or the file \
                 shrank while mapped); the dataset cannot be read, tell its owner",
            ),
            Error::Io => f.write_str(
                "I/O error on the host while reading the dataset; retry, or ask the operator to \
                 check the famfs device",
            ),
            Error::MemoryGrow { pages } => write!(
                f,
                "memory.grow of {pages} pages ({} MiB) failed: the guest reached its memory \
                 limit or 4 GiB; raise famfs-run --max-memory, or use smaller windows \
                 (Dataset::windows)",
                pages * PAGE / (1 << 20)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// One dataset this guest may open, as [`list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatasetInfo {
    /// Its name, for [`Dataset::open`].
    pub name: String,
    /// Its size in bytes.
    pub len: u64,
}

/// Makes the module export `cabi_realloc`, through which the host returns the lists and
/// strings of `list` and `read`: put `famfs_guest::export_cabi_realloc!();` at the root of a
/// guest built without link-time optimisation (the SQL guest is).
///
/// wit-bindgen defines `cabi_realloc` in its runtime library, and the linker only takes an
/// archive member something refers to. With LTO the whole program is one object and the symbol
/// survives; without it, a command that never exports a function of its own (whose glue would
/// refer to it) lost it, and its first `list` trapped. A `#[used]` reference in the final
/// crate's own object, which is always linked, keeps it.
#[macro_export]
macro_rules! export_cabi_realloc {
    () => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            unsafe extern "C" {
                fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8;
            }
            #[used]
            static KEEP_CABI_REALLOC: unsafe extern "C" fn(*mut u8, usize, usize, usize) -> *mut u8 = cabi_realloc;
        };
    };
}

/// Every dataset this guest may open (files only), in name order.
pub fn list() -> Vec<DatasetInfo> {
    raw::list().into_iter().map(|i| DatasetInfo { name: i.name, len: i.len }).collect()
}

/// Options of a mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    /// Fault every page in before the map call returns (`MADV_POPULATE_READ`), so the first
    /// pass over the data does not pay for page faults one by one.
    pub populate: bool,
}

impl MapOptions {
    fn flags(self) -> raw::MapFlags {
        if self.populate { raw::MapFlags::POPULATE } else { raw::MapFlags::empty() }
    }
}

/// An open dataset. Dropping it closes it (after every [`Mapped`] of it is gone: they borrow it).
#[derive(Debug)]
pub struct Dataset {
    raw: raw::Dataset,
    name: String,
    len: u64,
    /// `dataset.map-unit` in wasm pages: more than 1 on a device that maps only whole units
    /// (device-dax), where every mapping is placed and reserved by them ([`pool::placement`]).
    unit_pages: u32,
}

impl Dataset {
    /// Opens the dataset `name` (a path relative to the famfs root, e.g. `data/x.arrow`).
    pub fn open(name: &str) -> Result<Dataset, Error> {
        let raw = raw::open(name)?;
        let len = raw.len();
        // At most 1 GiB units are meaningful to a 4 GiB memory; anything odd counts as none.
        let unit = raw.map_unit();
        let unit_pages =
            if unit.is_power_of_two() && (PAGE..=1 << 30).contains(&unit) { (unit / PAGE) as u32 } else { 1 };
        Ok(Dataset { raw, name: name.to_string(), len, unit_pages })
    }

    /// Every dataset this guest may open: the same as [`list`].
    pub fn list() -> Vec<DatasetInfo> {
        list()
    }

    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes (as of opening).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying `wit-bindgen` resource (e.g. for its `handle()`).
    pub fn raw(&self) -> &raw::Dataset {
        &self.raw
    }

    /// Copies up to `len` bytes starting at `offset` (fewer at the end of the dataset, none at
    /// or past it). This is the copying path; [`Dataset::map`] is the zero-copy one. The host
    /// returns at most 1 MiB per call; this asks as often as it takes.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let len = u32::try_from(len).map_err(|_| Error::InvalidArgument)?;
        let first = self.raw.read(offset, len)?;
        if first.len() == len as usize || first.is_empty() {
            return Ok(first);
        }
        let mut all = Vec::with_capacity(len as usize);
        all.extend_from_slice(&first);
        drop(first);
        while all.len() < len as usize {
            let chunk = self.raw.read(offset + all.len() as u64, len - all.len() as u32)?;
            if chunk.is_empty() {
                break;
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// Maps the whole dataset, zero-copy. Fails with [`Error::NoAddressSpace`] if it is longer
    /// than a mapping can be ([`MAX_WINDOW`]) and [`Error::MemoryGrow`] if the guest cannot
    /// reserve that much memory; use [`Dataset::windows`] then.
    pub fn map(&self) -> Result<Mapped<'_>, Error> {
        self.map_range_with(0, self.len, MapOptions::default())
    }

    /// Maps bytes `offset .. offset + len`, zero-copy. `offset` need not be aligned: the SDK
    /// maps from the 64 KiB page below it (on a device that maps whole units, the unit below
    /// it) and the slice starts at `offset`.
    pub fn map_range(&self, offset: u64, len: u64) -> Result<Mapped<'_>, Error> {
        self.map_range_with(offset, len, MapOptions::default())
    }

    /// [`Dataset::map_range`] with options.
    pub fn map_range_with(&self, offset: u64, len: u64, options: MapOptions) -> Result<Mapped<'_>, Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Err(Error::InvalidArgument),
        }
        // From the 64 KiB page below `offset`; on a device that maps whole units, from the unit
        // below it, so that the partial unit before `offset` is mapped rather than copied.
        let align = PAGE * u64::from(self.unit_pages);
        let aligned = offset & !(align - 1);
        let skip = offset - aligned;
        let map_len = len + skip;
        if map_len > MAX_WINDOW {
            return Err(Error::NoAddressSpace);
        }
        if len == 0 {
            return Ok(Mapped::empty(offset));
        }
        let reservation = pool::reserve(aligned, map_len, self.unit_pages)?;
        let mut mapped = self.map_at(aligned, map_len as u32, reservation, options)?;
        // The slice starts at `offset`, `skip` bytes into the mapping (`map_len = len + skip`).
        mapped.base = mapped.base.wrapping_add(skip as usize);
        mapped.len -= skip as usize;
        mapped.offset = offset;
        Ok(mapped)
    }

    /// Maps `len` bytes from `offset` (a multiple of [`PAGE_SIZE`]) into `reservation`, which is
    /// returned to the pool if the host refuses.
    fn map_at(
        &self,
        offset: u64,
        len: u32,
        reservation: Reservation,
        options: MapOptions,
    ) -> Result<Mapped<'_>, Error> {
        let reserved = reservation.pages * PAGE as u32;
        let mapping = match self.raw.map_into(offset, len, reservation.addr(), reserved, options.flags()) {
            Ok(m) => m,
            Err(e) => {
                pool::release(reservation);
                return Err(e.into());
            }
        };
        // Check what the host returned before building slices over it: the whole range
        // `addr .. addr + len` must exist in a 32-bit address space.
        let addr = mapping.addr();
        if mapping.len() < len || u64::from(addr) + u64::from(len) > 1 << 32 {
            drop(mapping);
            pool::release(reservation);
            return Err(Error::Io);
        }
        Ok(Mapped {
            mapping: Some(mapping),
            reservation: Some(reservation),
            base: std::ptr::with_exposed_provenance(addr as usize),
            len: len as usize,
            offset,
            _dataset: PhantomData,
        })
    }

    /// Consecutive zero-copy windows over the whole dataset, each at most `window_size` bytes
    /// rounded up to a multiple of 64 KiB (at least 64 KiB, at most [`MAX_WINDOW`]); see the
    /// crate docs on windows.
    pub fn windows(&self, window_size: u64) -> Windows<'_> {
        // Never more than the dataset needs.
        let needed = self.len.max(1).div_ceil(PAGE) * PAGE;
        let mut window = window_size.max(1).div_ceil(PAGE).saturating_mul(PAGE).min(MAX_WINDOW).min(needed);
        // On a device that maps whole units, windows of whole units keep every window in phase.
        let unit = u64::from(self.unit_pages) * PAGE;
        if window < self.len && window.div_ceil(unit) * unit <= MAX_WINDOW {
            window = window.div_ceil(unit) * unit;
        }
        Windows { dataset: self, next: 0, window, options: MapOptions::default(), shrink: false, done: false }
    }

    /// [`Dataset::windows`] with the default window: the whole dataset as one window if it is
    /// at most [`WHOLE_LIMIT`] (1 GiB), else [`DEFAULT_WINDOW`] (256 MiB) windows. If the guest
    /// cannot reserve that much memory (its limit is lower), the window (of this and later
    /// windows) is halved until it fits, down to 1 MiB, rather than failing.
    pub fn windows_default(&self) -> Windows<'_> {
        let mut w = if self.len <= WHOLE_LIMIT { self.windows(self.len.max(1)) } else { self.windows(DEFAULT_WINDOW) };
        w.shrink = true;
        w
    }
}

/// Zero-copy windows over a dataset, from [`Dataset::windows`].
///
/// Yields `Result<Mapped>`; after an error it yields nothing more.
#[derive(Debug)]
pub struct Windows<'a> {
    dataset: &'a Dataset,
    next: u64,
    window: u64,
    options: MapOptions,
    /// Halve the window when memory.grow fails (`windows_default`).
    shrink: bool,
    done: bool,
}

impl Windows<'_> {
    /// Fault each window's pages in when it is mapped ([`MapOptions::populate`]).
    pub fn populate(mut self, populate: bool) -> Self {
        self.options.populate = populate;
        self
    }

    /// The window size in bytes: a multiple of 64 KiB.
    pub fn window_size(&self) -> u64 {
        self.window
    }
}

impl<'a> Iterator for Windows<'a> {
    type Item = Result<Mapped<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.dataset.len {
            return None;
        }
        let offset = self.next;
        // Every full window reserves the same number of pages, so a dropped window's range is
        // reused exactly by the next one (the last, shorter one fits in it too).
        let unit = u64::from(self.dataset.unit_pages);
        let mut reserved = pool::reserve(offset, self.window, self.dataset.unit_pages);
        while let Err(Error::MemoryGrow { .. }) = reserved
            && self.shrink
            && self.window / PAGE > u64::from(SHRINK_MIN_PAGES).max(unit)
        {
            self.window = (self.window / 2).div_ceil(PAGE) * PAGE;
            reserved = pool::reserve(offset, self.window, self.dataset.unit_pages);
        }
        let len = self.window.min(self.dataset.len - offset);
        let r = reserved.and_then(|r| self.dataset.map_at(offset, len as u32, r, self.options));
        match &r {
            Ok(_) => self.next = offset + len,
            Err(_) => self.done = true,
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.done { 0 } else { self.dataset.len.saturating_sub(self.next).div_ceil(self.window) as usize };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Windows<'_> {}

impl std::iter::FusedIterator for Windows<'_> {}

/// A zero-copy view of dataset bytes in this guest's memory, from [`Dataset::map`],
/// [`Dataset::map_range`] or [`Dataset::windows`]. Dropping it unmaps the bytes and returns the
/// address range to the SDK's pool.
#[derive(Debug)]
pub struct Mapped<'a> {
    /// `None` only for an empty view.
    mapping: Option<raw::Mapping>,
    reservation: Option<Reservation>,
    base: *const u8,
    len: usize,
    offset: u64,
    _dataset: PhantomData<&'a Dataset>,
}

impl Mapped<'_> {
    fn empty(offset: u64) -> Self {
        Mapped {
            mapping: None,
            reservation: None,
            base: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            offset,
            _dataset: PhantomData,
        }
    }

    /// The mapped bytes. The slice borrows `self`: it cannot outlive the mapping.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `base .. base + len` lies inside a live mapping the host made (checked in
        // `map_at`: at most the mapping's length, inside the 32-bit address space) or is the
        // empty dangling slice. The mapping stays until `self` is dropped, and the returned
        // slice borrows `self`. No Rust code holds `&mut` to these bytes: the pages came from
        // `memory.grow`, never from the allocator, and the SDK hands out only shared slices.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    /// Dataset offset of the first byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Guest address of the first byte (for code that must reach the bytes through raw
    /// pointers, such as tests of the sandbox).
    pub fn addr(&self) -> u32 {
        self.base.addr() as u32
    }

    /// Whether the bytes lie inside the guest's accessible linear memory (always with today's
    /// hosts; a mapping placed above it allows only plain loads: see the crate docs).
    pub fn within_memory(&self) -> bool {
        #[cfg(target_arch = "wasm32")]
        let size = core::arch::wasm32::memory_size(0) as u64 * PAGE;
        #[cfg(not(target_arch = "wasm32"))]
        let size = u64::MAX;
        self.base.addr() as u64 + self.len as u64 <= size
    }
}

impl std::ops::Deref for Mapped<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Mapped<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Mapped<'_> {
    fn drop(&mut self) {
        // Unmap first (the resource drop: the host puts zeroed anonymous memory back), then
        // the range may be reused.
        drop(self.mapping.take());
        if let Some(r) = self.reservation.take() {
            pool::release(r);
        }
    }
}

/// Copies `src` into `dst[..src.len()]` with plain byte loads, never `memory.copy`, so it also
/// works on a mapping placed above the accessible memory. Meant for small
/// pieces (it is slow for big ones). Panics if `dst` is shorter than `src`.
pub fn copy_with_loads(src: &[u8], dst: &mut [u8]) {
    let dst = &mut dst[..src.len()];
    for (i, d) in dst.iter_mut().enumerate() {
        // SAFETY: `i < src.len()`, so the pointer is in bounds of `src` and valid for a read.
        // The volatile read keeps LLVM from turning the loop into `memory.copy`.
        *d = unsafe { std::ptr::read_volatile(src.as_ptr().add(i)) };
    }
}
