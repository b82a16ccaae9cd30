//! Maps dataset bytes into a guest's linear memory without copying (DESIGN §5, technique 1).
//!
//! The guest reserves fresh, 64 KiB-aligned pages at the top of its memory with `memory.grow`
//! and asks for a dataset range to appear there. The mapper checks the request and replaces
//! those pages, piece by piece, with `mmap(MAP_FIXED | MAP_PRIVATE, PROT_READ | PROT_WRITE)` of
//! the `O_RDONLY` file (the famfs device, or the mounted file). How each requirement holds:
//!
//! - R1 zero-copy: the guest's loads read the file's page-cache (or dax) pages; mapping costs
//!   one `mmap` per extent or interleave chunk whatever the size.
//! - R2/R3 read-only, host never crashes: the file is open read-only and the mapping is
//!   private. A store by the guest, by WASI (`fd_read` into the range) or by a host call's
//!   output lands in a private copy of that page and never reaches the file; nothing in the
//!   process can fault on a store there.
//! - R4: every mapping is registered with the SIGBUS guard ([`crate::guard`]) in a slot the
//!   guest reserved when its mapper was made, and [`Mapper::has_fault`] lets the runtime stop
//!   the guest at the next epoch tick after a fault.
//! - R5: the runtime configures memories that never move (`memory_may_move(false)`); mapped
//!   ranges lie below the memory's current size, and memory never shrinks, so the guest's own
//!   `memory.grow` only ever adds pages above them.
//! - R6: unmapping replaces the range with anonymous zero pages made with the same flags as the
//!   guest memory around them (`MAP_PRIVATE | MAP_NORESERVE`, read-write), so the kernel merges
//!   them back into one mapping: however many windows a guest maps and unmaps, the process's
//!   kernel mapping count returns to where it was. When the store is dropped wasmtime unmaps the
//!   whole memory reservation, mappings included (the runtime never uses the pooling allocator,
//!   whose slots outlive instances).

//! - R7: a multi-extent or interleaved file is mapped piece by piece at consecutive addresses,
//!   so the guest sees one contiguous range.
//! - R8: a guest maps windows `(offset, len)` of files larger than its address space and
//!   reuses the range after dropping a window.
//!
//! Process-wide resources are capped per guest ([`MapLimits`]): live mappings (each holds one
//! SIGBUS guard slot, reserved up front) and kernel mappings (drawn from the process budget of
//! [`crate::map_budget`]). A request past a cap fails with `no-address-space`.

use crate::catalog::Dataset;
use crate::error::ErrorCode;
use crate::interrupt::Interrupt;
use crate::{guard, map_budget, map_plan};
use std::collections::BTreeMap;
use std::ptr::NonNull;

/// Wasm page size: `at`, `offset` and reserved lengths are multiples of it.
pub const WASM_PAGE: u64 = 65536;

/// The accessible part of one guest's linear memory, at a fixed host address.
#[derive(Clone, Copy, Debug)]
pub struct LinearMemory {
    base: NonNull<u8>,
    size: usize,
}

impl LinearMemory {
    /// Describes a linear memory.
    ///
    /// # Safety
    /// `base .. base + size` must be the accessible bytes of a wasm linear memory that never
    /// moves (`memory_may_move(false)`), mapped read-write by the runtime, and no Rust
    /// reference into that range may be live while [`Mapper::map`] or [`Mapper::unmap`] runs
    /// (they replace the pages under it).
    pub unsafe fn new(base: *mut u8, size: usize) -> Option<LinearMemory> {
        NonNull::new(base).map(|base| LinearMemory { base, size })
    }

    /// Size of the accessible memory in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// The room `dataset.map` takes the guest to have reserved for `len` bytes: `len` rounded up
/// to the wasm page.
pub fn room_for(len: u32) -> u64 {
    u64::from(len).div_ceil(WASM_PAGE) * WASM_PAGE
}

/// How a dataset is mapped into a guest's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapTechnique {
    /// `MAP_PRIVATE`, read-write: stores land in private copies made by the kernel. Image files
    /// and mounts.
    Private,
    /// `MAP_SHARED`, read-only, with copy-on-write done by the host ([`crate::guard::cow`]): what
    /// device-dax allows. Works on image files and mounts too (which is how it is tested).
    Shared,
    /// Shared on a dax character device, private elsewhere.
    #[default]
    Auto,
}

impl MapTechnique {
    /// Whether `dataset` is mapped shared.
    pub fn is_shared_for(self, dataset: &Dataset) -> bool {
        self.is_shared_on(dataset.is_dax())
    }

    /// Whether datasets of a source are mapped shared, `dax` telling whether it is a dax
    /// character device.
    pub fn is_shared_on(self, dax: bool) -> bool {
        match self {
            MapTechnique::Private => false,
            MapTechnique::Shared => true,
            MapTechnique::Auto => dax,
        }
    }
}

impl std::str::FromStr for MapTechnique {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "private" => Ok(MapTechnique::Private),
            "shared" => Ok(MapTechnique::Shared),
            "auto" => Ok(MapTechnique::Auto),
            _ => Err(format!("'{s}' is not a map technique: private, shared or auto")),
        }
    }
}

/// What one guest may hold of the process's mapping resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLimits {
    /// Live dataset mappings (each holds one SIGBUS guard slot, reserved up front).
    pub max_mappings: usize,
    /// Kernel memory mappings (VMAs) its dataset mappings may occupy: one per file piece (an
    /// extent, or a 2 MiB chunk of an interleaved file) plus two per mapping for splitting the
    /// guest memory around it (and, mapped shared, two per 2 MiB block for its copies).
    pub max_kernel_mappings: usize,
    /// How datasets are mapped.
    pub technique: MapTechnique,
}

impl Default for MapLimits {
    fn default() -> Self {
        MapLimits { max_mappings: 256, max_kernel_mappings: 4096, technique: MapTechnique::Auto }
    }
}

/// Why a mapper cannot be made.
/// Why a guest's mapper cannot be made: the process cannot promise it its caps.
#[derive(Debug, thiserror::Error)]
pub enum MapperError {
    /// The fault guard is not installed, so a mapping's faults would kill the process.
    #[error(
        "the SIGBUS guard is not installed: call famfs_host_api::guard::install() after creating the wasmtime engine"
    )]
    NoGuard,
    /// Not enough SIGBUS guard slots left for `max_mappings`.
    #[error("{0}; run fewer guests at once or lower their max_mappings")]
    Slots(#[from] guard::GuardError),
    /// Not enough of the process's kernel-mapping budget left for `max_kernel_mappings`.
    #[error(
        "this guest's max_kernel_mappings ({asked}) is more than the {left} kernel mappings that running guests leave of the process's {total} (half of vm.max_map_count); run fewer guests at once, lower max_kernel_mappings or raise vm.max_map_count"
    )]
    KernelMappings {
        /// The guest's cap.
        asked: usize,
        /// Not promised to other guests.
        left: usize,
        /// The process's budget.
        total: usize,
    },
}

/// Populate (or copy) at most this much at a time, checking the interrupt in between.
const POPULATE_CHUNK: usize = 64 << 20;

/// One live mapping.
struct Live {
    /// Guest address.
    at: u32,
    /// Mapped shared (read-only, copy-on-write by the host) rather than private.
    shared: bool,
    /// Bytes of the guest range replaced (the request rounded up to the host page, or to the
    /// end of the last device unit mapped whole).
    mapped_len: u64,
    /// Bytes of guest memory the guest reserved for it (no other mapping may overlap them).
    reserved: u64,
    /// Dataset bytes mapped.
    len: u32,
    dataset: String,
    offset: u64,
    guard: guard::Registration,
    /// Kernel mappings taken from the process budget for it.
    charge: map_budget::Charge,
    host_start: usize,
}

impl Live {
    /// The end of the guest range it holds.
    fn end(&self) -> u64 {
        u64::from(self.at) + self.reserved.max(self.mapped_len)
    }
}

/// A media error: the memory behind a dataset failed while mapped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "media error in dataset {dataset} at offset {offset}: the memory behind it failed or the file shrank while mapped"
)]
pub struct MediaError {
    /// Dataset name.
    pub dataset: String,
    /// Byte offset within the dataset.
    pub offset: u64,
}

/// What stopped one of a guest's mappings from showing the dataset's bytes; the guest is
/// stopped for it and its invocation fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingFault {
    /// The memory behind the mapping failed, or the file shrank.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// A store into the mapping (by the guest, or by the host for it) needed a private copy of
    /// its block, and the host had no memory to make one.
    #[error(
        "out of memory copying a dataset block: a store into dataset {dataset} at offset {offset} needed a private copy of its block and the host could not allocate one; give the process more memory or run fewer guests at once"
    )]
    CopyFailed {
        /// Dataset name.
        dataset: String,
        /// Byte offset within the dataset of the store.
        offset: u64,
    },
}

impl MappingFault {
    /// The dataset of the faulting mapping.
    pub fn dataset(&self) -> &str {
        match self {
            MappingFault::Media(m) => &m.dataset,
            MappingFault::CopyFailed { dataset, .. } => dataset,
        }
    }

    /// Byte offset within the dataset of the fault.
    pub fn offset(&self) -> u64 {
        match self {
            MappingFault::Media(m) => m.offset,
            MappingFault::CopyFailed { offset, .. } => *offset,
        }
    }

    /// The fault `fault` of the mapping of `dataset` from `offset`.
    fn of(dataset: &str, offset: u64, fault: guard::Fault) -> MappingFault {
        let (dataset, offset) = (dataset.to_string(), offset + fault.offset as u64);
        match fault.cause {
            guard::FaultCause::Media => MappingFault::Media(MediaError { dataset, offset }),
            guard::FaultCause::CopyFailed => MappingFault::CopyFailed { dataset, offset },
        }
    }
}

/// The live mappings of one guest instance, keyed by guest address.
pub struct Mapper {
    live: BTreeMap<u32, Live>,
    /// Mappings whose range could not be given back (the zero fill failed): their file pages
    /// stay, so they keep their guard slot and budget until the guest memory itself goes.
    stuck: Vec<Live>,
    bytes_mapped: u64,
    bytes_copied: u64,
    faults: Vec<MappingFault>,
    limits: MapLimits,
    /// Kernel mappings the live mappings hold.
    kernel_mappings: usize,
    slots: guard::Reservation,
    /// This guest's share of the process's kernel-mapping budget: `limits.max_kernel_mappings`.
    _budget: map_budget::Reservation,
    interrupt: Interrupt,
}

fn host_page() -> u64 {
    rustix::param::page_size() as u64
}

impl Mapper {
    /// No mappings yet; reserves `limits.max_mappings` SIGBUS guard slots (so this guest's
    /// mappings can always be guarded, and no other guest can take them) and
    /// `limits.max_kernel_mappings` of the process's kernel-mapping budget (likewise), failing
    /// when the process has fewer left.
    pub fn new(limits: MapLimits) -> Result<Mapper, MapperError> {
        if !guard::installed() {
            return Err(MapperError::NoGuard);
        }
        // On the guest's thread, which outlives its mappings (see `ask_early_notices`).
        guard::sigbus::ask_early_notices();
        Ok(Mapper {
            live: BTreeMap::new(),
            stuck: Vec::new(),
            bytes_mapped: 0,
            bytes_copied: 0,
            faults: Vec::new(),
            limits,
            kernel_mappings: 0,
            slots: guard::reserve(limits.max_mappings)?,
            _budget: map_budget::reserve(limits.max_kernel_mappings).ok_or_else(|| MapperError::KernelMappings {
                asked: limits.max_kernel_mappings,
                left: map_budget::unreserved(),
                total: map_budget::total(),
            })?,
            interrupt: Interrupt::never(),
        })
    }

    /// Stops long work on the guest's behalf (populating) when `interrupt` is raised.
    pub fn set_interrupt(&mut self, interrupt: Interrupt) {
        self.interrupt = interrupt;
    }

    /// The limits it enforces.
    pub fn limits(&self) -> MapLimits {
        self.limits
    }

    /// Kernel mappings the live mappings hold.
    pub fn kernel_mappings(&self) -> usize {
        self.kernel_mappings
    }

    /// Total dataset bytes this instance mapped zero-copy.
    pub fn bytes_mapped(&self) -> u64 {
        self.bytes_mapped
    }

    /// Total dataset bytes that `map` copied instead: the partial units at the ends of a range
    /// on a device that maps only whole units (device-dax), when the guest placed or sized the
    /// range so that they could not be mapped.
    pub fn bytes_copied(&self) -> u64 {
        self.bytes_copied
    }

    /// Live mappings.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// What `dataset.map-unit` tells the guest: the unit in which `dataset` maps with no copy
    /// under this mapper's technique. A dax device's alignment (2 MiB typically), or the wasm
    /// page where any page maps, or where a shared map of a device aligned past the
    /// copy-on-write block is copied anyway (`map_plan`).
    pub fn map_unit(&self, dataset: &Dataset) -> u64 {
        let unit = dataset.map_align();
        let shared = self.limits.technique.is_shared_for(dataset);
        if unit <= WASM_PAGE || (shared && unit > guard::BLOCK as u64) { WASM_PAGE } else { unit }
    }

    /// Maps `dataset[offset .. offset + len]` at guest address `at`, into the `len` bytes
    /// rounded up to 64 KiB that the guest reserved there: [`map_into`](Self::map_into) with
    /// exactly that room.
    pub fn map(
        &mut self,
        mem: LinearMemory,
        dataset: &Dataset,
        offset: u64,
        len: u32,
        at: u32,
        populate: bool,
    ) -> Result<u32, ErrorCode> {
        self.map_into(mem, dataset, offset, len, at, room_for(len), populate)
    }

    /// Maps `dataset[offset .. offset + len]` at guest address `at`, where the guest reserved
    /// `reserved` bytes. Checks, in this order, each failing with `invalid-argument`: `len > 0`;
    /// `offset`, `at` and `reserved` 64 KiB-aligned; the range inside the dataset (no overflow);
    /// `reserved` at least `len`; `at .. at + reserved` inside the memory and overlapping no
    /// live mapping's reserved range. Then, each failing with `no-address-space`: fewer than
    /// `max_mappings` live; the kernel mappings it needs within this guest's
    /// `max_kernel_mappings` and within the process budget.
    ///
    /// On a device that maps only whole units (device-dax) the partial units are copied
    /// (`map_plan`); the room reserved past `len` lets the last unit be mapped whole.
    #[allow(clippy::too_many_arguments)]
    pub fn map_into(
        &mut self,
        mem: LinearMemory,
        dataset: &Dataset,
        offset: u64,
        len: u32,
        at: u32,
        reserved: u64,
        populate: bool,
    ) -> Result<u32, ErrorCode> {
        let bad = Err(ErrorCode::InvalidArgument);
        if len == 0
            || !offset.is_multiple_of(WASM_PAGE)
            || !u64::from(at).is_multiple_of(WASM_PAGE)
            || !reserved.is_multiple_of(WASM_PAGE)
        {
            return bad;
        }
        match offset.checked_add(u64::from(len)) {
            Some(end) if end <= dataset.len() && reserved >= u64::from(len) => {}
            _ => return bad,
        }
        let end = match u64::from(at).checked_add(reserved) {
            Some(end) if end <= mem.size as u64 => end,
            _ => return bad,
        };
        // Stuck ranges (still file pages, see `unmap`) count as taken too.
        let overlaps = self.live.values().chain(&self.stuck).any(|l| u64::from(l.at) < end && u64::from(at) < l.end());
        if overlaps {
            return bad;
        }
        let no_room = |why: &str| {
            tracing::debug!(dataset = dataset.name(), "dataset.map: no-address-space: {why}");
            Err(ErrorCode::NoAddressSpace)
        };
        if self.live.len() >= self.limits.max_mappings {
            return no_room("the guest holds max_mappings live mappings");
        }
        let page = host_page();
        let unit = dataset.map_align();
        let want = u64::from(len).div_ceil(page) * page;
        // On a device that maps whole units, the pieces go on through the file's own allocation
        // as far as the guest reserved room, so that the last unit can be mapped whole.
        let cover = if unit > page { reserved.min(dataset.capacity() - offset) } else { u64::from(len) };
        let pieces = dataset.pieces(offset, cover);
        // SAFETY: `at + reserved <= mem.size` (checked above), so the address is inside the
        // accessible memory.
        let host_start = unsafe { mem.base.as_ptr().add(at as usize) } as usize;
        let shared = self.limits.technique.is_shared_for(dataset);
        let plan = map_plan::plan(&pieces, host_start as u64, want, unit, page, shared);
        let mapped_len = plan.span;
        // One per part, plus the two pieces of guest memory it may split off around it, plus
        // (shared) what the copies of written blocks may split off.
        let needed =
            plan.parts.len() + 2 + if shared { guard::kernel_mappings_for(host_start, mapped_len as usize) } else { 0 };
        if self.kernel_mappings + needed > self.limits.max_kernel_mappings {
            return no_room("the guest's max_kernel_mappings would be exceeded");
        }
        let Some(charge) = map_budget::charge(needed) else {
            return no_room("the process's kernel mapping budget is used up");
        };
        let registered = if shared {
            self.slots.register_shared(host_start, mapped_len as usize)
        } else {
            self.slots.register(host_start, mapped_len as usize)
        };
        let guard = match registered {
            Ok(g) => g,
            Err(e) => return no_room(&e.to_string()),
        };
        let (prot, flags) = if shared {
            (rustix::mm::ProtFlags::READ, rustix::mm::MapFlags::FIXED | rustix::mm::MapFlags::SHARED)
        } else {
            (
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::FIXED | rustix::mm::MapFlags::PRIVATE,
            )
        };
        let mut copied = 0u64;
        for part in &plan.parts {
            let addr = host_start + part.range_offset as usize;
            let done = match part.how {
                map_plan::How::Map { piece, file_offset } => {
                    // SAFETY: `addr .. addr + part.len` lies inside `host_start .. host_start +
                    // mapped_len`, inside the range the guest reserved in its accessible memory
                    // (checked above), overlapping no live mapping; per `LinearMemory::new`'s
                    // contract no Rust reference points into it. The file offset is a multiple of
                    // the page (famfs extents are 2 MiB-aligned and `offset` is 64 KiB-aligned)
                    // and, on a dax device, of its alignment, as address and length are
                    // (`map_plan`). MAP_FIXED replaces the guest's pages. The fd is O_RDONLY, so
                    // the file cannot change either way: MAP_PRIVATE (read-write) keeps stores
                    // private; MAP_SHARED is read-only, and a store faults into the copy-on-write
                    // handler, registered above before any page is mapped, which gives the block
                    // a private copy first.
                    let r = unsafe {
                        rustix::mm::mmap(addr as *mut _, part.len as usize, prot, flags, pieces[piece].fd, file_offset)
                    };
                    r.map(|_| ()).map_err(|e| {
                        tracing::warn!(dataset = dataset.name(), unit, "mmap failed: {e}");
                        ErrorCode::Io
                    })
                }
                map_plan::How::Copy => copy_in(dataset, offset + part.range_offset, addr, part.len, &self.interrupt)
                    .map(|n| {
                        copied += n;
                    }),
            };
            if let Err(code) = done {
                let dataset = dataset.name().into();
                let mapped_len = part.range_offset;
                self.roll_back(Live {
                    at,
                    shared,
                    mapped_len,
                    reserved,
                    len,
                    dataset,
                    offset,
                    guard,
                    charge,
                    host_start,
                });
                return Err(code);
            }
        }
        if populate {
            self.populate(host_start, mapped_len as usize);
        }
        let copied = copied.min(u64::from(len));
        self.bytes_mapped += u64::from(len) - copied;
        self.bytes_copied += copied;
        self.kernel_mappings += charge.count();
        let dataset = dataset.name().to_string();
        self.live
            .insert(at, Live { at, shared, mapped_len, reserved, len, dataset, offset, guard, charge, host_start });
        Ok(at)
    }

    /// After a failed `map`: anonymous memory back over the `mapped_len` bytes replaced so far.
    /// Should that fail too, the file pages stay, guarded and counted, until the guest's memory
    /// goes with its store.
    fn roll_back(&mut self, partial: Live) {
        if !zero_fill(partial.host_start, partial.mapped_len) {
            self.kernel_mappings += partial.charge.count();
            self.stuck.push(partial);
        }
    }

    /// Faults `len` bytes at `start` in, `POPULATE_CHUNK` at a time, stopping early when the
    /// invocation is interrupted (populating is only a head start: pages fault in on use).
    fn populate(&self, start: usize, len: usize) {
        let mut done = 0;
        while done < len && !self.interrupt.is_raised() {
            let n = POPULATE_CHUNK.min(len - done);
            // SAFETY: `start .. start + len` was just mapped by `map`; MADV_POPULATE_READ only
            // faults pages in (never MAP_POPULATE, which would copy a private map). Failure is
            // harmless: the pages then fault in on first use.
            let r = unsafe { rustix::mm::madvise((start + done) as *mut _, n, rustix::mm::Advice::LinuxPopulateRead) };
            if r.is_err() {
                return;
            }
            done += n;
        }
    }

    /// Unmaps the mapping at `at`: its pages become anonymous zeros again. Returns whether a
    /// mapping was there. A media error seen on it is kept for [`take_faults`](Self::take_faults).
    pub fn unmap(&mut self, at: u32) -> bool {
        let Some(l) = self.live.remove(&at) else {
            return false;
        };
        self.note_fault(&l);
        if zero_fill(l.host_start, l.mapped_len) {
            self.kernel_mappings -= l.charge.count();
        } else {
            // The file pages are still there: keep them guarded (and counted) until the guest's
            // memory goes with its store.
            self.stuck.push(l);
        }
        true
    }

    /// Readies host memory `[start, start + len)` of this guest for a write by the kernel (a
    /// `read` straight into guest memory): every page there that belongs to a shared mapping is
    /// written once from user space, with the byte already there, so the copy-on-write handler
    /// gives its block a private copy now. The kernel's own writes into a read-only shared page
    /// would fail with `EFAULT` instead of faulting into the handler.
    pub fn prepare_kernel_write(&self, start: usize, len: usize) {
        let end = start.saturating_add(len);
        let page = host_page() as usize;
        for l in self.live.values().filter(|l| l.shared) {
            let (from, to) = (start.max(l.host_start), end.min(l.host_start + l.mapped_len as usize));
            let mut p = from & !(page - 1);
            while p < to {
                let at = p.max(from);
                // SAFETY: `at` lies in a live shared mapping of this guest (inside its accessible
                // memory); the store writes back the byte just read, so no byte changes, and the
                // fault it raises is the copy-on-write handler's to serve.
                unsafe { (at as *mut u8).write_volatile((at as *const u8).read_volatile()) };
                p += page;
            }
        }
    }

    /// Whether any of this guest's mappings, live or unmapped, has seen a fault (cheap
    /// enough for every epoch tick).
    pub fn has_fault(&self) -> bool {
        !self.faults.is_empty()
            || self.live.values().any(|l| l.guard.fault().is_some())
            || self.stuck.iter().any(|l| l.guard.fault().is_some())
    }

    /// Length in bytes of the mapping at `at`.
    pub fn mapping_len(&self, at: u32) -> Option<u32> {
        self.live.get(&at).map(|l| l.len)
    }

    fn note_fault(&mut self, l: &Live) {
        if let Some(f) = l.guard.fault() {
            self.faults.push(MappingFault::of(&l.dataset, l.offset, f));
        }
    }

    /// Faults seen since the last call (on live and unmapped mappings).
    pub fn take_faults(&mut self) -> Vec<MappingFault> {
        let live: Vec<MappingFault> = self
            .live
            .values()
            .chain(&self.stuck)
            .filter_map(|l| l.guard.fault().map(|f| MappingFault::of(&l.dataset, l.offset, f)))
            .collect();
        let mut all = std::mem::take(&mut self.faults);
        all.extend(live);
        all
    }
}

/// Copies `len` dataset bytes from `dataset_offset` into guest memory at host address `dst`
/// (bytes past the dataset's end read as zeros, as a mapping shows them); the bytes copied. A
/// guest may ask for gigabytes placed so that nothing maps: the copy goes `POPULATE_CHUNK` at a
/// time and stops (an `io` error the stopped guest never sees) once `interrupt` is raised.
fn copy_in(
    dataset: &Dataset,
    dataset_offset: u64,
    dst: usize,
    len: u64,
    interrupt: &Interrupt,
) -> Result<u64, ErrorCode> {
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: `map` passes a range inside the guest's accessible memory that it reserved for
    // this mapping and has not mapped a file over (anonymous read-write pages of the guest), and
    // per `LinearMemory::new`'s contract no other Rust reference points into it while `map` runs.
    let buf = unsafe { std::slice::from_raw_parts_mut(dst as *mut u8, len as usize) };
    let avail = dataset.len().saturating_sub(dataset_offset).min(len) as usize;
    let mut done = 0;
    while done < avail {
        if interrupt.is_raised() {
            return Err(ErrorCode::Io);
        }
        let upto = avail.min(done + POPULATE_CHUNK);
        match dataset.read_at(dataset_offset + done as u64, &mut buf[done..upto])? {
            0 => break,
            n => done += n,
        }
    }
    buf[done..].fill(0);
    Ok(done as u64)
}

/// Replaces `[start, start + len)` with anonymous zero pages; false if it could not.
fn zero_fill(start: usize, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: callers pass a range this mapper mapped inside a guest memory (so the runtime
    // owns it and nothing references it); mapping anonymous private memory over it restores
    // what `memory.grow` had put there: zeroed read-write pages. NORESERVE, as wasmtime's and
    // TrackingMemoryCreator's reservations are made, so the flags match the memory around the
    // range and the kernel merges it back into one mapping.
    let r = unsafe {
        rustix::mm::mmap_anonymous(
            start as *mut _,
            len as usize,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::FIXED | rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
        )
    };
    if let Err(e) = &r {
        // Leaving a file mapping in place is still safe (private, read-only file); say so.
        tracing::error!("could not unmap a dataset range from guest memory: {e}");
    }
    r.is_ok()
}
