//! The host side of `wit/` for core modules: the canonical-ABI lowering that wit-bindgen emits
//! for wasm32-wasip1 guests, implemented on a [`wasmtime::Linker`].
//!
//! Import module `famfs:dataset/catalog@0.1.0`:
//!
//! | import | core signature | notes |
//! |---|---|---|
//! | `open` | `(name_ptr, name_len, ret) -> ()` | `ret`: result {u8 disc @0, handle or error-code @4} |
//! | `list` | `(ret) -> ()` | `ret`: {list ptr @0, len @4}; elements {name ptr, name len, u64 len} (16 bytes, align 8) |
//! | `[method]dataset.name` | `(self, ret) -> ()` | `ret`: {ptr @0, len @4} |
//! | `[method]dataset.len` | `(self) -> i64` | |
//! | `[method]dataset.read` | `(self, offset: i64, len, ret) -> ()` | `ret`: {u8 disc @0, list ptr @4, list len @8} |
//! | `[method]dataset.map` | `(self, offset: i64, len, at, flags, ret) -> ()` | `ret`: {u8 disc @0, handle or code @4} |
//! | `[method]dataset.map-into` | `(self, offset: i64, len, at, reserved, flags, ret) -> ()` | as `map` |
//! | `[method]dataset.map-unit` | `(self) -> i64` | |
//! | `[method]mapping.addr` / `.len` | `(self) -> i32` | |
//! | `[resource-drop]dataset` / `mapping` | `(self) -> ()` | |
//!
//! Lists and strings returned to the guest are allocated with its exported `cabi_realloc`.
//! As the canonical ABI requires, a pointer out of bounds or misaligned, invalid UTF-8, and a
//! handle that is unknown or already dropped trap the guest instead of returning.

use crate::catalog::{Catalog, Dataset};
use crate::error::ErrorCode;
use crate::guest::GuestState;
use crate::handles::HandleTable;
use crate::interrupt::Interrupt;
use crate::limits::HostLimits;
use crate::mapper::{LinearMemory, Mapper, MapperError, MappingFault};
use wasmtime::{AsContext, Caller, Linker, Memory, Result, TypedFunc, bail};

/// The import module name.
pub const MODULE: &str = "famfs:dataset/catalog@0.1.0";

/// Per-instance host state behind the imports: the guest's [`GuestState`], and the handle
/// tables the canonical ABI's integers index.
pub struct DatasetHost {
    guest: GuestState,
    datasets: HandleTable<Dataset>,
    /// Mapping handle → guest address of the mapping.
    mappings: HandleTable<u32>,
    /// The host is calling the guest's `cabi_realloc` to lower a result: an import called now
    /// is a re-entrant call, which the canonical ABI forbids (and which would let a guest make
    /// the host hold one more result per level, uncounted).
    lowering: bool,
}

impl DatasetHost {
    /// A guest's view of `catalog` under `limits`, nothing open yet; fails when the process
    /// cannot reserve the guard slots `limits` promise this guest.
    pub fn new(catalog: Catalog, limits: HostLimits) -> std::result::Result<DatasetHost, MapperError> {
        Ok(DatasetHost {
            guest: GuestState::new(catalog, limits)?,
            datasets: HandleTable::default(),
            mappings: HandleTable::default(),
            lowering: false,
        })
    }

    /// Whether one of the guest's mappings has seen a media error (polled every epoch tick).
    pub fn has_media_error(&self) -> bool {
        self.guest.has_media_error()
    }

    /// Stops long host work (populating a mapping, walking a tree) when `interrupt` is raised.
    pub fn set_interrupt(&mut self, interrupt: Interrupt) {
        self.guest.set_interrupt(interrupt);
    }

    /// The mapper (metrics, faults).
    pub fn mapper(&mut self) -> &mut Mapper {
        self.guest.mapper()
    }

    /// Faults seen by this guest's mappings so far; the runtime fails the invocation when
    /// there is one.
    pub fn take_faults(&mut self) -> Vec<MappingFault> {
        self.guest.take_faults()
    }
}

/// Store data that holds a [`DatasetHost`].
pub trait DatasetView {
    /// The host state.
    fn dataset_host(&mut self) -> &mut DatasetHost;
}

fn trap<T>(what: impl std::fmt::Display) -> Result<T> {
    bail!("famfs:dataset: {what}")
}

/// Traps when the guest calls an import from its `cabi_realloc` while the host lowers a
/// result (the canonical ABI's `may_leave` rule, which wasmtime enforces for components).
fn not_reentrant<T: DatasetView>(caller: &mut Caller<'_, T>) -> Result<()> {
    if caller.data_mut().dataset_host().lowering {
        return trap(
            "an import was called from cabi_realloc while the host lowered a result, which the canonical ABI forbids",
        );
    }
    Ok(())
}

/// The guest's exported memory, once [`not_reentrant`] allows the call.
fn memory<T: DatasetView>(caller: &mut Caller<'_, T>) -> Result<Memory> {
    not_reentrant(caller)?;
    match caller.get_export("memory").and_then(|e| e.into_memory()) {
        Some(m) => Ok(m),
        None => trap("the module exports no memory named `memory`"),
    }
}

fn check_range(mem: &Memory, store: impl AsContext, ptr: u32, len: u64, align: u32) -> Result<()> {
    if !ptr.is_multiple_of(align) {
        return trap(format!("pointer {ptr:#x} is not {align}-byte aligned"));
    }
    if u64::from(ptr) + len > mem.data_size(store) as u64 {
        return trap(format!("{len} bytes at {ptr:#x} are outside linear memory"));
    }
    Ok(())
}

fn write<T>(caller: &mut Caller<'_, T>, mem: &Memory, ptr: u32, bytes: &[u8], align: u32) -> Result<()> {
    check_range(mem, &mut *caller, ptr, bytes.len() as u64, align)?;
    mem.write(caller, ptr as usize, bytes)?;
    Ok(())
}

/// Reads a string argument of at most `max` bytes: `None` when it is longer (nothing is read,
/// and nothing allocated, for a longer one).
fn read_string<T>(caller: &mut Caller<'_, T>, mem: &Memory, ptr: u32, len: u32, max: usize) -> Result<Option<String>> {
    check_range(mem, &mut *caller, ptr, u64::from(len), 1)?;
    if len as usize > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    mem.read(caller, ptr as usize, &mut buf)?;
    String::from_utf8(buf).map(Some).or_else(|_| trap("a string argument is not valid UTF-8"))
}

/// Calls the guest's `cabi_realloc(0, 0, align, size)` and checks what it returns.
fn realloc<T: DatasetView>(caller: &mut Caller<'_, T>, mem: &Memory, align: u32, size: u32) -> Result<u32> {
    let f: TypedFunc<(i32, i32, i32, i32), i32> = match caller.get_export("cabi_realloc").and_then(|e| e.into_func()) {
        Some(f) => f.typed(&*caller)?,
        None => {
            return trap("the module exports no `cabi_realloc`, needed to return lists and strings");
        }
    };
    caller.data_mut().dataset_host().lowering = true;
    let called = f.call(&mut *caller, (0, 0, align as i32, size as i32));
    caller.data_mut().dataset_host().lowering = false;
    let ptr = called? as u32;
    check_range(mem, &mut *caller, ptr, u64::from(size), align)?;
    Ok(ptr)
}

/// Writes a string into memory allocated with `cabi_realloc`; returns (ptr, len).
fn lower_string<T: DatasetView>(caller: &mut Caller<'_, T>, mem: &Memory, s: &str) -> Result<(u32, u32)> {
    let ptr = realloc(caller, mem, 1, s.len() as u32)?;
    write(caller, mem, ptr, s.as_bytes(), 1)?;
    Ok((ptr, s.len() as u32))
}

/// Writes `result<u32-like, error-code>` at `ret`.
fn write_result_u32<T>(
    caller: &mut Caller<'_, T>,
    mem: &Memory,
    ret: u32,
    r: std::result::Result<u32, ErrorCode>,
) -> Result<()> {
    let mut buf = [0u8; 8];
    match r {
        Ok(v) => buf[4..8].copy_from_slice(&v.to_le_bytes()),
        Err(code) => {
            buf[0] = 1;
            buf[4] = code as u8;
        }
    }
    write(caller, mem, ret, &buf, 4)
}

fn dataset<T: DatasetView>(caller: &mut Caller<'_, T>, handle: u32) -> Result<Dataset> {
    not_reentrant(caller)?;
    match caller.data_mut().dataset_host().datasets.get(handle) {
        Some(d) => Ok(d.clone()),
        None => trap(format!("unknown or dropped dataset handle {handle}")),
    }
}

/// Adds the `famfs:dataset/catalog@0.1.0` imports to a linker.
///
/// # Safety
/// The engine must be configured with `memory_may_move(false)` and without the pooling
/// allocator: mappings are placed at host addresses inside the guest's memory and must stay
/// where they are for the life of the instance (DESIGN §5).
pub unsafe fn add_to_linker<T: DatasetView + Send + 'static>(linker: &mut Linker<T>) -> Result<()> {
    linker.func_wrap(MODULE, "open", |mut c: Caller<'_, T>, ptr: u32, len: u32, ret: u32| -> Result<()> {
        let mem = memory(&mut c)?;
        // No famfs name is longer; a longer one is refused unread, as the catalog refuses it.
        let Some(name) = read_string(&mut c, &mem, ptr, len, famfs::log::MAX_PATH_LEN)? else {
            return write_result_u32(&mut c, &mem, ret, Err(ErrorCode::NotPermitted));
        };
        let host = c.data_mut().dataset_host();
        let datasets = &mut host.datasets;
        let r = host.guest.open(&name, |d| datasets.insert(d));
        write_result_u32(&mut c, &mem, ret, r)
    })?;
    linker.func_wrap(MODULE, "list", |mut c: Caller<'_, T>, ret: u32| -> Result<()> {
        let mem = memory(&mut c)?;
        let infos = c.data_mut().dataset_host().guest.list();
        let mut elems = Vec::with_capacity(infos.len() * 16);
        for info in &infos {
            let (p, l) = lower_string(&mut c, &mem, &info.name)?;
            elems.extend_from_slice(&p.to_le_bytes());
            elems.extend_from_slice(&l.to_le_bytes());
            elems.extend_from_slice(&info.len.to_le_bytes());
        }
        let arr = realloc(&mut c, &mem, 8, elems.len() as u32)?;
        write(&mut c, &mem, arr, &elems, 8)?;
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&arr.to_le_bytes());
        out[4..].copy_from_slice(&(infos.len() as u32).to_le_bytes());
        write(&mut c, &mem, ret, &out, 4)
    })?;
    linker.func_wrap(MODULE, "[method]dataset.name", |mut c: Caller<'_, T>, h: u32, ret: u32| -> Result<()> {
        let mem = memory(&mut c)?;
        let d = dataset(&mut c, h)?;
        let (p, l) = lower_string(&mut c, &mem, d.name())?;
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&p.to_le_bytes());
        out[4..].copy_from_slice(&l.to_le_bytes());
        write(&mut c, &mem, ret, &out, 4)
    })?;
    linker.func_wrap(MODULE, "[method]dataset.len", |mut c: Caller<'_, T>, h: u32| -> Result<u64> {
        Ok(dataset(&mut c, h)?.len())
    })?;
    linker.func_wrap(
        MODULE,
        "[method]dataset.read",
        |mut c: Caller<'_, T>, h: u32, offset: u64, len: u32, ret: u32| -> Result<()> {
            let mem = memory(&mut c)?;
            let d = dataset(&mut c, h)?;
            let mut out = [0u8; 12];
            let n = match c.data_mut().dataset_host().guest.read_len(&d, offset, len) {
                Ok(n) => n,
                Err(code) => {
                    out[0] = 1;
                    out[4] = code as u8;
                    return write(&mut c, &mem, ret, &out, 4);
                }
            };
            let ptr = realloc(&mut c, &mem, 1, n)?;
            // The list may lie in a shared dataset mapping (cabi_realloc chose it): its pages
            // get their private copies before the kernel writes there.
            let dst_host = mem.data_ptr(&c) as usize + ptr as usize;
            c.data_mut().dataset_host().guest.mapper().prepare_kernel_write(dst_host, n as usize);
            // Read straight into guest memory: no host buffer, and the guest's memory limit
            // bounds the size. A private dataset mapping there takes the write harmlessly.
            let dst = &mut mem.data_mut(&mut c)[ptr as usize..ptr as usize + n as usize];
            match d.read_at(offset, dst) {
                Ok(got) => {
                    out[4..8].copy_from_slice(&ptr.to_le_bytes());
                    out[8..12].copy_from_slice(&(got as u32).to_le_bytes());
                }
                Err(code) => {
                    out[0] = 1;
                    out[4] = code as u8;
                }
            }
            write(&mut c, &mem, ret, &out, 4)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "[method]dataset.map",
        |c: Caller<'_, T>, h: u32, offset: u64, len: u32, at: u32, flags: u32, ret: u32| -> Result<()> {
            let reserved = crate::mapper::room_for(len);
            map_call(c, h, offset, len, at, reserved, flags, ret)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "[method]dataset.map-into",
        |c: Caller<'_, T>, h: u32, offset: u64, len: u32, at: u32, reserved: u32, flags: u32, ret: u32| -> Result<()> {
            map_call(c, h, offset, len, at, u64::from(reserved), flags, ret)
        },
    )?;
    linker.func_wrap(MODULE, "[method]dataset.map-unit", |mut c: Caller<'_, T>, h: u32| -> Result<u64> {
        let d = dataset(&mut c, h)?;
        Ok(c.data_mut().dataset_host().guest.map_unit(&d))
    })?;
    linker.func_wrap(MODULE, "[method]mapping.addr", |mut c: Caller<'_, T>, h: u32| -> Result<u32> {
        not_reentrant(&mut c)?;
        match c.data_mut().dataset_host().mappings.get(h) {
            Some(&at) => Ok(at),
            None => trap(format!("unknown or dropped mapping handle {h}")),
        }
    })?;
    linker.func_wrap(MODULE, "[method]mapping.len", |mut c: Caller<'_, T>, h: u32| -> Result<u32> {
        not_reentrant(&mut c)?;
        let host = c.data_mut().dataset_host();
        match host.mappings.get(h).and_then(|&at| host.guest.mapping_len(at)) {
            Some(len) => Ok(len),
            None => trap(format!("unknown or dropped mapping handle {h}")),
        }
    })?;
    linker.func_wrap(MODULE, "[resource-drop]dataset", |mut c: Caller<'_, T>, h: u32| -> Result<()> {
        not_reentrant(&mut c)?;
        let host = c.data_mut().dataset_host();
        match host.datasets.remove(h) {
            Some(_) => {
                host.guest.closed();
                Ok(())
            }
            None => trap(format!("dropping unknown or already dropped dataset handle {h}")),
        }
    })?;
    linker.func_wrap(MODULE, "[resource-drop]mapping", |mut c: Caller<'_, T>, h: u32| -> Result<()> {
        not_reentrant(&mut c)?;
        let host = c.data_mut().dataset_host();
        match host.mappings.remove(h) {
            Some(at) => {
                host.guest.unmap(at);
                Ok(())
            }
            None => trap(format!("dropping unknown or already dropped mapping handle {h}")),
        }
    })?;
    Ok(())
}

/// `dataset.map` and `dataset.map-into`: maps into the `reserved` bytes at `at` and writes the
/// result (a mapping handle or an error code) at `ret`.
#[allow(clippy::too_many_arguments)]
fn map_call<T: DatasetView + Send + 'static>(
    mut c: Caller<'_, T>,
    h: u32,
    offset: u64,
    len: u32,
    at: u32,
    reserved: u64,
    flags: u32,
    ret: u32,
) -> Result<()> {
    let mem = memory(&mut c)?;
    let d = dataset(&mut c, h)?;
    let base = mem.data_ptr(&c);
    let size = mem.data_size(&c);
    // SAFETY: `base/size` describe the accessible part of this instance's memory right now;
    // `add_to_linker`'s contract makes the engine keep memories in place, and no Rust reference
    // into guest memory is live across this call.
    let lm = unsafe { LinearMemory::new(base, size) };
    let host = c.data_mut().dataset_host();
    let mappings = &mut host.mappings;
    let r = host.guest.map(lm, &d, offset, len, at, reserved, flags & 1 != 0, |at| mappings.insert(at));
    write_result_u32(&mut c, &mem, ret, r)
}
