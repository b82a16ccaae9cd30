//! Read-only `wasi:filesystem` (WASI preview 2) served straight from a famfs image or dax
//! device, through its log-replayed [`famfs::Namespace`]: guests list, stat and read famfs
//! files with `std::fs` when no famfs is mounted (`famfs-run --device IMAGE --dir GUEST=PATH`).
//!
//! How it is wired: the runner adds all of WASI (`wasmtime_wasi::p2::add_to_linker_sync`), then,
//! shadowing, this module's `wasi:filesystem/types` and `wasi:filesystem/preopens` ([`add_to_linker`]).
//! Everything else (streams, clocks, stdio) stays wasmtime-wasi's: the file streams this module
//! returns are ordinary `wasi:io` input streams in the same resource table.
//!
//! Semantics:
//! - Paths resolve beneath their preopen only: an absolute path, or `..` that would leave the
//!   preopened directory, is `not-permitted`. famfs has no symbolic links (`readlink-at` is
//!   `invalid`).
//! - Everything that would change the file system — opening for write, create, truncate,
//!   exclusive, write, append, set-size, set-times, mkdir, link, rename, symlink, unlink,
//!   rmdir — is `read-only`. `sync` and `sync-data` succeed (nothing to flush).
//! - famfs logs no timestamps: stat reports none; the link count is 1; `metadata-hash` is a
//!   hash of the famfs path and size (stable per file).
//! - Reads go through [`famfs::Famfs::read_at`], at most 1 MiB per call; a media or I/O error is
//!   `io`.
//!
//! Descriptors: the generated host traits name wasmtime-wasi's own `Descriptor` and
//! `DirectoryEntryStream` types. This module keeps its own [`FsNode`] and directory listings in
//! the store's resource table and hands the guest handles with the same table index (`rep`). That
//! is sound because both filesystem interfaces are replaced in the linker: every descriptor and
//! directory stream in such a store was made here, and the table's typed lookup turns any other
//! entry into an error (a trap), never a wrong cast.

mod host;
mod node;
mod stream;

use famfs::Famfs;
use std::sync::Arc;
use thiserror::Error;
use wasmtime::component::{HasData, Linker, ResourceTable};

pub use node::FsNode;

/// Why a famfs directory cannot be preopened.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FamfsDirError {
    /// The famfs has no such directory.
    #[error("--dir {guest}={path}: {why} (famfsctl -d IMAGE ls -R shows what is there)")]
    NotADirectory {
        /// The guest path.
        guest: String,
        /// The famfs path.
        path: String,
        /// What the namespace said.
        why: String,
    },
    /// The guest path is not absolute.
    #[error("--dir {guest}=...: the guest path must be absolute, e.g. /data")]
    GuestPath {
        /// The guest path.
        guest: String,
    },
}

/// The famfs directories one guest sees as read-only WASI preopens; cheap to clone (shared).
#[derive(Clone)]
pub struct FamfsDirs(Arc<DirsInner>);

struct DirsInner {
    fs: Arc<Famfs>,
    preopens: Vec<(String, FsNode)>,
}

impl FamfsDirs {
    /// Preopens each `(guest path, famfs directory)` of `fs` (`/` or empty: the famfs root).
    pub fn new(fs: Arc<Famfs>, dirs: &[(String, String)]) -> Result<FamfsDirs, FamfsDirError> {
        let mut preopens = Vec::new();
        for (guest, path) in dirs {
            if !guest.starts_with('/') {
                return Err(FamfsDirError::GuestPath { guest: guest.clone() });
            }
            let node = FsNode::preopen(&fs, path).map_err(|why| FamfsDirError::NotADirectory {
                guest: guest.clone(),
                path: path.clone(),
                why,
            })?;
            preopens.push((guest.clone(), node));
        }
        Ok(FamfsDirs(Arc::new(DirsInner { fs, preopens })))
    }

    /// The famfs.
    pub fn famfs(&self) -> &Arc<Famfs> {
        &self.0.fs
    }

    fn preopens(&self) -> &[(String, FsNode)] {
        &self.0.preopens
    }
}

/// Store data that can serve the famfs file system: the WASI resource table plus the dirs.
pub trait WasiFamfsView: wasmtime_wasi::WasiView {
    /// The preopened famfs directories of this store (`None`: no preopens at all).
    fn famfs_dirs(&self) -> Option<&FamfsDirs>;
}

/// What the generated traits are implemented on: the store's WASI table and its famfs dirs.
pub struct FamfsFsCtx<'a> {
    table: &'a mut ResourceTable,
    dirs: Option<FamfsDirs>,
}

struct FamfsFs<T>(std::marker::PhantomData<T>);

impl<T: 'static> HasData for FamfsFs<T> {
    type Data<'a> = FamfsFsCtx<'a>;
}

fn view<T: WasiFamfsView>(t: &mut T) -> FamfsFsCtx<'_> {
    // A refcount bump: `ctx()` borrows all of `t`, so the dirs cannot be borrowed beside it.
    let dirs = t.famfs_dirs().cloned();
    FamfsFsCtx { table: t.ctx().table, dirs }
}

/// Replaces `wasi:filesystem/types` and `wasi:filesystem/preopens` in `linker` (which must
/// already have wasmtime-wasi's preview 2; shadowing is turned on for this).
pub fn add_to_linker<T: WasiFamfsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::{filesystem::preopens, sync::filesystem::types};
    linker.allow_shadowing(true);
    types::add_to_linker::<T, FamfsFs<T>>(linker, view::<T>)?;
    preopens::add_to_linker::<T, FamfsFs<T>>(linker, view::<T>)?;
    linker.allow_shadowing(false);
    Ok(())
}
