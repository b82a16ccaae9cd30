//! Linear memories made by famfs-run itself, so a component's memory can be found (DESIGN §5,
//! item 3).
//!
//! For a core module the mapper finds the guest's memory through its exported `memory`. A
//! component's core memories are internal: wasmtime has no public API that hands them to a host
//! function. So the runtime installs [`TrackingMemoryCreator`] as the engine's memory creator
//! ([`wasmtime::Config::with_host_memory`], which needs `memory_init_cow(false)`), and
//! instantiates inside [`capture`]: every memory created on this thread while the closure runs
//! is reported, as a [`GuestMemory`], to the caller, which gives it to the component's
//! [`crate::component::ComponentHost`].
//!
//! Each memory is one `PROT_NONE` reservation (the engine's 4 GiB plus its guard) whose
//! accessible prefix is made read-write as the guest grows it. It never moves (R5), and it is
//! unmapped as a whole, dataset mappings included, when wasmtime drops it with its store (R6).

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use wasmtime::{LinearMemory as WasmtimeLinearMemory, MemoryCreator, MemoryType};

/// What the host may know of one memory made by [`TrackingMemoryCreator`]: where it starts and
/// how much of it is accessible now.
#[derive(Debug)]
struct Shared {
    base: NonNull<u8>,
    size: AtomicUsize,
    alive: AtomicBool,
}

// SAFETY: `base` is an address, never dereferenced through `Shared`; the size and liveness are
// atomics.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// A handle on a guest memory made by [`TrackingMemoryCreator`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct GuestMemory(Arc<Shared>);

impl GuestMemory {
    /// Host address of byte 0 of the memory.
    pub fn base(&self) -> *mut u8 {
        self.0.base.as_ptr()
    }

    /// Accessible bytes right now (grows with `memory.grow`, never shrinks).
    pub fn size(&self) -> usize {
        self.0.size.load(Ordering::Acquire)
    }

    /// Whether wasmtime still owns the memory (it is freed with its store).
    pub fn is_alive(&self) -> bool {
        self.0.alive.load(Ordering::Acquire)
    }
}

thread_local! {
    /// Memories created on this thread inside [`capture`]; `None` outside it.
    static CAPTURED: RefCell<Option<Vec<GuestMemory>>> = const { RefCell::new(None) };
}

/// Runs `f` (an instantiation) and returns what it returned plus every memory the
/// [`TrackingMemoryCreator`] made on this thread meanwhile, in creation order.
///
/// Instantiation runs synchronously on the calling thread, so a thread-local collects exactly
/// the memories of the store being instantiated, however many stores other threads are
/// instantiating at the same time. Captures nest: an inner capture hides its memories from the
/// outer one.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<GuestMemory>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    // Restore the outer capture if `f` panics (on return, it is restored below and this guard
    // holds nothing).
    struct Restore(Option<Option<Vec<GuestMemory>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                CAPTURED.with(|c| *c.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(outer));
    let r = f();
    let outer = restore.0.take().unwrap_or(None);
    let mine = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    (r, mine)
}

/// The engine's memory creator: plain reservations, recorded for [`capture`].
#[derive(Debug, Default)]
pub struct TrackingMemoryCreator;

/// Default reservation when the engine gives none: the whole 32-bit address space.
const DEFAULT_RESERVATION: usize = 1 << 32;

// SAFETY: every memory is a fresh anonymous reservation of `reserved + guard` bytes whose first
// `minimum` bytes are zeroed read-write pages; it never moves; growth only makes more of the
// reservation accessible and never past it, and the guard stays PROT_NONE, as wasmtime's
// bounds-check elision requires.
unsafe impl MemoryCreator for TrackingMemoryCreator {
    fn new_memory(
        &self,
        ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn WasmtimeLinearMemory>, String> {
        if ty.is_shared() {
            return Err("shared memories are not supported by famfs-run".into());
        }
        let page = rustix::param::page_size();
        let reserved = reserved_size_in_bytes
            .unwrap_or_else(|| maximum.unwrap_or(DEFAULT_RESERVATION).max(minimum))
            .next_multiple_of(page);
        if minimum > reserved {
            return Err(format!("a memory of {minimum} bytes does not fit its {reserved}-byte reservation"));
        }
        let total = reserved.checked_add(guard_size_in_bytes).ok_or("memory reservation overflows")?;
        let base = reserve_aligned(total)?;
        let mut memory = HostMemory {
            shared: Arc::new(Shared { base, size: AtomicUsize::new(0), alive: AtomicBool::new(true) }),
            reserved,
            total,
        };
        memory.grow_to(minimum).map_err(|e| format!("{e:#}"))?;
        CAPTURED.with(|c| {
            if let Some(list) = c.borrow_mut().as_mut() {
                list.push(GuestMemory(memory.shared.clone()));
            }
        });
        Ok(Box::new(memory))
    }
}

/// Where a guest memory starts: 2 MiB-aligned, so that a dataset window whose guest address and
/// file offset agree modulo 2 MiB (the guest SDK places them so) is 2 MiB-aligned in host memory
/// too, and the kernel can map it with 2 MiB pages (DAX, huge-page page cache).
const BASE_ALIGN: usize = 2 << 20;

/// A fresh `PROT_NONE` reservation of `total` bytes at a [`BASE_ALIGN`]-aligned address: one
/// more alignment unit is reserved, and what lies before and after the aligned part is given back.
fn reserve_aligned(total: usize) -> Result<NonNull<u8>, String> {
    let padded = total.checked_add(BASE_ALIGN).ok_or("memory reservation overflows")?;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing; it aliases
    // nothing. PROT_NONE and NORESERVE: address space only, no memory is committed.
    let raw = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            padded,
            rustix::mm::ProtFlags::empty(),
            rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
        )
    }
    .map_err(|e| format!("cannot reserve {total} bytes of address space for a guest memory: {e}"))?;
    let start = raw as usize;
    let aligned = start.next_multiple_of(BASE_ALIGN);
    let (head, tail) = (aligned - start, start + padded - (aligned + total));
    // SAFETY: both ranges are parts of the reservation just made, outside `aligned .. aligned +
    // total`; nothing uses them. A failed trim only leaves unused address space reserved.
    unsafe {
        if head > 0 {
            let _ = rustix::mm::munmap(raw, head);
        }
        if tail > 0 {
            let _ = rustix::mm::munmap((aligned + total) as *mut _, tail);
        }
    }
    NonNull::new(aligned as *mut u8).ok_or_else(|| "mmap returned a null reservation".into())
}

/// One memory made by [`TrackingMemoryCreator`].
struct HostMemory {
    shared: Arc<Shared>,
    /// Bytes the memory may grow to without moving.
    reserved: usize,
    /// Reservation plus guard: what is unmapped on drop.
    total: usize,
}

// SAFETY: see the `MemoryCreator` impl: page-aligned, zero-filled, guarded, never moves.
unsafe impl WasmtimeLinearMemory for HostMemory {
    fn byte_size(&self) -> usize {
        self.shared.size.load(Ordering::Acquire)
    }

    fn byte_capacity(&self) -> usize {
        self.reserved
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        let old = self.byte_size();
        if new_size <= old {
            return Ok(());
        }
        if new_size > self.reserved {
            wasmtime::bail!("cannot grow a guest memory to {new_size} bytes: its reservation is {}", self.reserved);
        }
        let page = rustix::param::page_size();
        let start = old.next_multiple_of(page);
        let end = new_size.next_multiple_of(page);
        if end > start {
            // SAFETY: `start .. end` lies inside this memory's own reservation (end <= reserved,
            // rounded to a page, and the reservation is page-sized); the pages were PROT_NONE
            // and untouched, so making them read-write exposes zeros.
            unsafe {
                rustix::mm::mprotect(
                    self.shared.base.as_ptr().add(start).cast(),
                    end - start,
                    rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
                )
            }
            .map_err(|e| wasmtime::format_err!("cannot grow a guest memory to {new_size} bytes: {e}"))?;
        }
        self.shared.size.store(new_size, Ordering::Release);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.shared.base.as_ptr()
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::Release);
        // SAFETY: the whole reservation is ours (mapped in `new_memory`) and wasmtime drops a
        // memory only when nothing can run against it any more; dataset mappings inside it go
        // with it (R6).
        if let Err(e) = unsafe { rustix::mm::munmap(self.shared.base.as_ptr().cast(), self.total) } {
            tracing::error!("cannot unmap a guest memory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(min: usize) -> (Box<dyn WasmtimeLinearMemory>, Vec<GuestMemory>) {
        capture(|| {
            TrackingMemoryCreator.new_memory(MemoryType::new(1, None), min, None, Some(1 << 30), 1 << 20).unwrap()
        })
    }

    /// A memory made without a capture of its own.
    fn make_plain() -> Box<dyn WasmtimeLinearMemory> {
        TrackingMemoryCreator.new_memory(MemoryType::new(1, None), 65536, None, Some(1 << 20), 0).unwrap()
    }

    #[test]
    fn capture_records_memories_made_inside_it_only() {
        let _outside = make_plain();
        let (mem, seen) = make(65536);
        assert_eq!(seen.len(), 1, "only the memory made inside the capture");
        assert_eq!(seen[0].base(), mem.as_ptr());
        assert_eq!(seen[0].size(), 65536);
        let (_, outer) = capture(|| {
            let _before = make_plain();
            let (_m, inner) = make(65536);
            assert_eq!(inner.len(), 1);
            let _after = make_plain();
        });
        assert_eq!(outer.len(), 2, "the outer capture sees its own memories, not the inner one's");
        let (_, none) = capture(|| {});
        assert!(none.is_empty());
    }

    #[test]
    fn memories_start_two_mib_aligned() {
        for _ in 0..8 {
            let (mem, _) = make(65536);
            assert_eq!(mem.as_ptr() as usize % BASE_ALIGN, 0);
        }
    }

    #[test]
    fn grows_in_place_with_zeros_and_refuses_past_the_reservation() {
        let (mut mem, seen) = make(65536);
        let base = mem.as_ptr();
        mem.grow_to(3 * 65536).unwrap();
        assert_eq!(mem.as_ptr(), base);
        assert_eq!(seen[0].size(), 3 * 65536);
        // SAFETY: the first three pages are accessible read-write memory of this test's own.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, 3 * 65536) };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[3 * 65536 - 1] = 7;
        assert!(mem.grow_to((1 << 30) + 65536).is_err());
        assert_eq!(mem.byte_size(), 3 * 65536);
        drop(mem);
        assert!(!seen[0].is_alive());
    }
}
