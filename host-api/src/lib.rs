//! # famfs-host-api
//!
//! What guests may ask of the host: the host side of the `famfs:dataset` WIT package
//! (`wit/dataset.wit`).
//!
//! - [`Catalog`]: the datasets a guest was granted, from a famfs image or dax device or from a
//!   mounted directory.
//! - [`mapper`]: maps dataset ranges zero-copy into a guest's linear memory (DESIGN §5),
//!   with the [`sigbus`] guard.
//! - [`core_abi`]: the canonical-ABI imports for core modules (wasm32-wasip1 guests built with
//!   wit-bindgen).
//! - [`component`]: the same imports for components, through `wasmtime::component::bindgen!`,
//!   and the `handler` world's export; [`guest_memory`] finds a component's memory.
#![deny(missing_docs)]

pub mod catalog;
pub mod component;
pub mod core_abi;
mod error;
pub mod guest_memory;
pub mod handles;
pub mod mapper;
pub mod sigbus;

pub use catalog::{Catalog, CatalogError, Dataset, DatasetInfo};
pub use core_abi::{DatasetHost, DatasetView};
pub use error::ErrorCode;
pub use mapper::{Mapper, MediaError};
