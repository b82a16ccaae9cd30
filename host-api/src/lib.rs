//! # famfs-host-api
//!
//! What guests may ask of the host: the host side of the `famfs:dataset` WIT package
//! (`wit/dataset.wit`).
//!
//! - [`Catalog`]: the datasets a guest was granted, from a famfs image or dax device or from a
//!   mounted directory.
//! - [`mapper`]: maps dataset ranges zero-copy into a guest's linear memory, with the
//!   [`guard`] and the process-wide [`map_budget`] of kernel mappings.
//! - [`guest::GuestState`]: one guest's catalog, mapper, caps and interrupt, shared by both
//!   ABIs below, so that each check and cap exists once.
//! - [`HostLimits`]: what one guest may hold of the process's resources (mappings, open
//!   datasets, host buffers), and [`Interrupt`], which stops long host work when its time is up.
//! - [`core_abi`]: the canonical-ABI imports for core modules (wasm32-wasip1 guests built with
//!   wit-bindgen).
//! - [`component`]: the same imports for components, through `wasmtime::component::bindgen!`,
//!   and the `handler` world's export; [`guest_memory`] finds a component's memory.
#![deny(missing_docs)]

pub mod beneath;
mod budget;
pub mod catalog;
#[cfg(feature = "wasmtime")]
pub mod component;
#[cfg(feature = "wasmtime")]
pub mod core_abi;
mod error;
pub mod fd_budget;
pub mod guard;
#[cfg(feature = "wasmtime")]
pub mod guest;
#[cfg(feature = "wasmtime")]
pub mod guest_memory;
pub mod handles;
pub mod interrupt;
pub mod limits;
pub mod map_budget;
mod map_plan;
pub mod mapper;

pub use budget::Share;
pub use catalog::{Catalog, CatalogError, Dataset, DatasetInfo};
#[cfg(feature = "wasmtime")]
pub use core_abi::{DatasetHost, DatasetView};
pub use error::ErrorCode;
pub use interrupt::Interrupt;
pub use limits::HostLimits;
pub use mapper::{MapLimits, MapTechnique, Mapper, MappingFault, MediaError};
