//! # famfs
//!
//! The famfs on-media format and the tools around it, bit-compatible with the famfs user space
//! (`cxl-micron-reskit/famfs`, versions 47/OMF 2.1 and 48/OMF 2.2).
//!
//! famfs is a file system for sharable, fabric-attached (CXL) memory. A 2 MiB superblock area
//! and an append-only metadata log at the start of a dax device say which byte ranges of the
//! device belong to which file; every host replays the same log and maps the same files.
//!
//! - [`Superblock`], [`LogHeader`], [`LogEntry`]: decode and encode by explicit offsets; every
//!   decode error is a [`FormatError`] naming the byte offset and the field.
//! - [`Device`]: an image file, block device or `/dev/daxX.Y`, read-only unless writing.
//! - [`Famfs`]: an opened file system: the log replayed into a [`Namespace`] as famfs logplay
//!   does, and file bytes read through their [`FileMap`] (simple or interleaved).
//! - [`Writer`] and [`mkfs`]: the master's crash-safe writer.
//! - [`fsck()`](fsck::fsck): every consistency check, as a [`FsckReport`].
//!
//! ```no_run
//! let fs = famfs::Famfs::open("demo.img")?;
//! let file = fs.namespace().file("data/table.arrow")?;
//! let bytes = fs.read_to_vec(file)?;
//! # Ok::<(), famfs::Error>(())
//! ```
#![deny(missing_docs)]

pub mod alloc;
mod cache;
mod codec;
mod device;
mod error;
pub mod fmap;
mod fs;
pub mod fsck;
pub mod identity;
pub mod locate;
pub mod log;
pub mod logging;
mod mapped;
pub mod namespace;
pub mod path;
pub mod superblock;
pub mod units;
mod writer;

pub use device::{Access, Device, DeviceError, DeviceKind, IoMode};
pub use error::FormatError;
pub use fmap::{Extent, FileMap, MapError, Piece};
pub use fs::{Famfs, FileReader, read_log_entries, read_log_header, read_superblock};
pub use fsck::{FsckReport, Problem};
pub use identity::{Role, SystemIdentity};
pub use log::{EntryBody, LogEntry, LogHeader};
pub use namespace::{FileMeta, Lookup, LookupError, Namespace};
pub use path::{PathError, RelPath};
pub use superblock::{FormatVersion, Superblock};
pub use writer::{Attrs, FileSink, Layout, MkfsOptions, Source, Writer, free_bytes, mkfs};

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong reading or writing a famfs.
#[derive(Debug, Error)]
pub enum Error {
    /// Opening or accessing the device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The superblock, log header or an entry did not decode.
    #[error("{device}: {error}")]
    Format {
        /// The device.
        device: PathBuf,
        /// What is wrong and where (part of the message, so not also a `source()`).
        error: FormatError,
    },
    /// A path lookup failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// A path breaks the rules.
    #[error(transparent)]
    Path(#[from] PathError),
    /// This host's identity could not be established.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The device was re-made by mkfs while open.
    #[error("{device}: the file system was replaced (UUID {old} is now {new}); open it again")]
    Replaced {
        /// The device.
        device: PathBuf,
        /// UUID when opened.
        old: uuid::Uuid,
        /// UUID now.
        new: uuid::Uuid,
    },
    /// Only the master may write.
    #[error(
        "{device}: this host is a client (system UUID {local} from {origin}); only the master ({owner}) may change this file system. Run the command on the master"
    )]
    NotMaster {
        /// The device.
        device: PathBuf,
        /// This host's system UUID.
        local: uuid::Uuid,
        /// Where it came from.
        origin: String,
        /// The master's system UUID.
        owner: uuid::Uuid,
    },
    /// The log has no free slot.
    #[error(
        "log full: all {slots} entries of the {log_len}-byte log are used; make a new file system with a larger --log-len"
    )]
    LogFull {
        /// Slots in the log.
        slots: u64,
        /// Log length.
        log_len: u64,
    },
    /// Not enough space for a file.
    #[error("out of space for '{path}': it needs {needed} bytes but the largest free range is {largest} bytes")]
    NoSpace {
        /// The file.
        path: String,
        /// Bytes needed (whole allocation units).
        needed: u64,
        /// Largest free range.
        largest: u64,
    },
    /// Bad interleave parameters.
    #[error("{0}")]
    Interleave(String),
    /// The name is taken.
    #[error("'{0}' already exists; famfs files cannot be replaced or deleted")]
    Exists(String),
    /// The parent directory is missing.
    #[error("cannot create '{path}': directory '{parent}' does not exist (use mkdir -p)")]
    NoParent {
        /// The path.
        path: String,
        /// Its missing parent.
        parent: String,
    },
    /// famfs cannot hold empty files.
    #[error("'{0}' would be empty; famfs files must hold at least one byte")]
    EmptyFile(String),
    /// The source did not deliver the bytes expected.
    #[error("the source of '{path}' changed while it was copied: expected {expected} bytes, got {got}")]
    SourceChanged {
        /// The destination path.
        path: String,
        /// Bytes expected.
        expected: u64,
        /// Bytes delivered.
        got: u64,
    },
    /// mkfs would overwrite a file system.
    #[error(
        "{device} already holds a famfs file system (version {version}{}); pass --force to overwrite it",
        uuid.map(|u| format!(", UUID {u}")).unwrap_or_default()
    )]
    AlreadyFormatted {
        /// The device.
        device: PathBuf,
        /// Its UUID, when the superblock is readable.
        uuid: Option<uuid::Uuid>,
        /// Its version.
        version: u64,
    },
    /// Bad mkfs parameters.
    #[error("mkfs: {0}")]
    Mkfs(String),
    /// The log has an invalid entry; writing is refused until it is looked at.
    #[error("the log stops at invalid entry {index} ({error}); run `famfsctl fsck` before writing")]
    LogInvalid {
        /// Index of the entry.
        index: u64,
        /// What is wrong.
        error: FormatError,
    },
    /// The metadata contradicts itself.
    #[error("{0}")]
    Inconsistent(String),
    /// A file too large for this process's address space.
    #[error("a {0}-byte file does not fit in memory; read it in pieces")]
    TooLarge(u64),
    /// Other I/O.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error (part of the message, so not also a `source()`).
        cause: std::io::Error,
    },
}

impl Error {
    fn format(device: &Device, error: FormatError) -> Error {
        Error::Format { device: device.path().to_path_buf(), error }
    }
}
