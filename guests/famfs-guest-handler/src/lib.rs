//! The `handler` world of `famfs:dataset` (`wit/dataset.wit`) for guests that serve requests:
//! the host calls `handle(input) -> result<list<u8>, string>` once per invocation
//! (`famfs-run --invoke handle --input FILE|- guest.wasm`, or the embedding API).
//!
//! ```ignore
//! use famfs_guest::Dataset;
//!
//! struct Size;
//!
//! impl famfs_guest_handler::Guest for Size {
//!     fn handle(input: Vec<u8>) -> Result<Vec<u8>, String> {
//!         let name = String::from_utf8(input).map_err(|_| "the request is not UTF-8".to_string())?;
//!         let ds = Dataset::open(name.trim()).map_err(|e| e.to_string())?;
//!         Ok(ds.len().to_string().into_bytes())
//!     }
//! }
//!
//! famfs_guest_handler::export!(Size);
//! ```
//!
//! This lives apart from `famfs-guest` on purpose: the world a crate's bindings describe is
//! embedded in every module that links the crate, and a command that declared the `handle`
//! export without defining it could not be turned into a component. Datasets are opened with
//! `famfs_guest` as in any guest; the imports are shared with it, not generated twice.
//!
//! Build for `wasm32-wasip2` (a component) or `wasm32-wasip1` (famfs-run turns the module into
//! a component when it is invoked). A binary crate may also keep a `main`, which then runs when
//! the guest is started as a command.
#![deny(missing_docs)]

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "handler",
        with: {
            "famfs:dataset/types@0.1.0": famfs_guest::raw::famfs::dataset::types,
            "famfs:dataset/catalog@0.1.0": famfs_guest::raw::famfs::dataset::catalog,
        },
        pub_export_macro: true,
        default_bindings_module: "famfs_guest_handler",
    });
}

/// What a handler implements: `handle(input) -> result<list<u8>, string>`.
pub use bindings::Guest;
#[doc(hidden)]
pub use bindings::*;
