//! One guest's share of the host, whatever its ABI: its catalog, its mapper, its caps, its
//! interrupt and the faults its mappings saw. The core-module host ([`crate::core_abi`]) and the
//! component host ([`crate::component`]) differ only in how handles and results cross the
//! canonical ABI; every check and every cap is here, once.

use crate::catalog::{Catalog, Dataset, DatasetInfo};
use crate::error::ErrorCode;
use crate::interrupt::Interrupt;
use crate::limits::{HostLimits, MAX_READ};
use crate::mapper::{LinearMemory, Mapper, MapperError, MappingFault};

/// The per-guest state behind the `famfs:dataset` imports.
pub struct GuestState {
    catalog: Catalog,
    mapper: Mapper,
    limits: HostLimits,
    interrupt: Interrupt,
    /// Datasets the guest holds open now (at most `limits.max_open`).
    open: usize,
}

impl GuestState {
    /// A guest's view of `catalog` under `limits`, nothing open yet; fails when the process
    /// cannot reserve the guard slots and kernel mappings `limits` promise this guest.
    pub fn new(catalog: Catalog, limits: HostLimits) -> Result<GuestState, MapperError> {
        Ok(GuestState { catalog, mapper: Mapper::new(limits.map)?, limits, interrupt: Interrupt::never(), open: 0 })
    }

    /// Whether one of the guest's mappings has seen a media error (polled every epoch tick).
    pub fn has_media_error(&self) -> bool {
        self.mapper.has_fault()
    }

    /// Stops long host work (populating a mapping, walking a tree) when `interrupt` is raised.
    pub fn set_interrupt(&mut self, interrupt: Interrupt) {
        self.mapper.set_interrupt(interrupt.clone());
        self.interrupt = interrupt;
    }

    /// The mapper (metrics, faults).
    pub fn mapper(&mut self) -> &mut Mapper {
        &mut self.mapper
    }

    /// Faults seen by this guest's mappings so far; the runtime fails the invocation when
    /// there is one.
    pub fn take_faults(&mut self) -> Vec<MappingFault> {
        self.mapper.take_faults()
    }

    /// `catalog.open`: opens `name` unless the guest holds `max_open` datasets already, and
    /// hands it to `keep`, which stores it under a handle (`None`: no handle left). Answers
    /// `no-address-space` at either cap.
    pub(crate) fn open<H>(&mut self, name: &str, keep: impl FnOnce(Dataset) -> Option<H>) -> Result<H, ErrorCode> {
        let r = if self.open >= self.limits.max_open {
            Err(ErrorCode::NoAddressSpace)
        } else {
            self.catalog.open(name).and_then(|d| keep(d).ok_or(ErrorCode::NoAddressSpace))
        };
        if r.is_ok() {
            self.open += 1;
        }
        tracing::debug!(name, ok = r.is_ok(), "catalog.open");
        r
    }

    /// The guest dropped a dataset that [`open`](Self::open) gave it.
    pub(crate) fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// `catalog.list`, stopping early when the guest's time is up.
    pub(crate) fn list(&self) -> Vec<DatasetInfo> {
        self.catalog.list_until(&self.interrupt)
    }

    /// How many bytes `dataset.read(offset, len)` returns: `invalid-argument` past the end,
    /// `no-address-space` for more than the guest's memory could ever hold, and at most
    /// [`MAX_READ`] (the guest asks again for the rest), so no call holds the host long or makes
    /// it a large buffer.
    pub(crate) fn read_len(&self, d: &Dataset, offset: u64, len: u32) -> Result<u32, ErrorCode> {
        if offset > d.len() {
            return Err(ErrorCode::InvalidArgument);
        }
        let n = u64::from(len).min(d.len() - offset);
        if n > self.limits.max_memory {
            return Err(ErrorCode::NoAddressSpace);
        }
        Ok((n as u32).min(MAX_READ))
    }

    /// `dataset.map` and `dataset.map-into`: maps `len` bytes of `d` from `offset` into the
    /// `reserved` bytes at `at` of `memory` (`None`: the guest's memory cannot be used), and hands
    /// the mapping's address to `keep`, which stores it under a handle; when it cannot (`None`),
    /// the mapping is undone and the answer is `no-address-space`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map<H>(
        &mut self,
        memory: Option<LinearMemory>,
        d: &Dataset,
        offset: u64,
        len: u32,
        at: u32,
        reserved: u64,
        populate: bool,
        keep: impl FnOnce(u32) -> Option<H>,
    ) -> Result<H, ErrorCode> {
        let r = match memory {
            None => Err(ErrorCode::NoAddressSpace),
            Some(lm) => self.mapper.map_into(lm, d, offset, len, at, reserved, populate),
        }
        .and_then(|mapped| match keep(mapped) {
            Some(handle) => Ok(handle),
            None => {
                self.mapper.unmap(mapped);
                Err(ErrorCode::NoAddressSpace)
            }
        });
        tracing::debug!(dataset = d.name(), offset, len, at, reserved, ok = r.is_ok(), "dataset.map");
        r
    }

    /// `mapping.drop`: unmaps the mapping at guest address `at`.
    pub(crate) fn unmap(&mut self, at: u32) {
        self.mapper.unmap(at);
    }

    /// `mapping.len` of the live mapping at `at`.
    pub(crate) fn mapping_len(&self, at: u32) -> Option<u32> {
        self.mapper.mapping_len(at)
    }

    /// `dataset.map-unit`.
    pub(crate) fn map_unit(&self, d: &Dataset) -> u64 {
        self.mapper.map_unit(d)
    }
}
