//! Opening a path beneath a directory of a mounted source without following any symbolic link.
//!
//! A name a guest opens is checked against its grants as written, so the file opened must be
//! the file of that name: a symbolic link inside the tree (`data/l -> ../secret.bin`, or `->
//! ../.meta/.superblock`) would otherwise open a file the guest was never granted. famfs itself
//! has no symbolic links, so none is followed: each component is opened with `openat(...,
//! O_NOFOLLOW)` relative to its parent, and a link anywhere on the path is `not-permitted`.
//! Paths come in validated (a [`famfs::RelPath`], or one directory entry's name: no `..`, no
//! `.`, no empty or absolute components), so a single component can never climb out of its
//! parent.

use crate::error::ErrorCode;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What the last component must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// A file, opened for reading (non-blocking, so a FIFO planted in the tree cannot block
    /// the host thread; the caller checks it is a regular file).
    File,
    /// A directory, opened for reading its entries.
    Dir,
}

/// Opens `path` (`/`-separated components, validated as above) beneath `root`, following no
/// symbolic link on the way.
pub(crate) fn open(root: BorrowedFd<'_>, path: &str, want: Want) -> Result<OwnedFd, ErrorCode> {
    let names: Vec<&str> = path.split('/').collect();
    if names.iter().any(|n| n.is_empty() || *n == "." || *n == "..") {
        return Err(ErrorCode::NotPermitted);
    }
    let mut parent: Option<OwnedFd> = None;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let flags = OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | match (last, want) {
                // Only a path to walk through: no read permission needed.
                (false, _) => OFlags::PATH | OFlags::DIRECTORY,
                (true, Want::Dir) => OFlags::RDONLY | OFlags::DIRECTORY,
                (true, Want::File) => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            };
        let at = parent.as_ref().map_or(root, |p| p.as_fd());
        match rustix::fs::openat(at, *name, flags, Mode::empty()) {
            Ok(fd) => parent = Some(fd),
            Err(e) => return Err(code(e, at, name)),
        }
    }
    parent.ok_or(ErrorCode::NotFound)
}

/// Opens the directory `path` (`/`-separated; leading and trailing `/` ignored; empty for
/// `root` itself) beneath the directory `root`, following no symbolic link below `root`: what a
/// mount's directory exposed to a guest as a WASI preopen must be opened with, so that a link
/// planted in the tree cannot hand the guest a directory outside it. `root` itself is opened as
/// given: it is the operator's choice.
pub fn open_dir(root: &std::path::Path, path: &str) -> Result<OwnedFd, ErrorCode> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let top = rustix::fs::open(root, flags, Mode::empty()).map_err(|e| match e {
        Errno::NOENT | Errno::NOTDIR => ErrorCode::NotFound,
        Errno::ACCESS | Errno::PERM => ErrorCode::NotPermitted,
        _ => ErrorCode::Io,
    })?;
    match path.trim_matches('/') {
        "" => Ok(top),
        rel => open(top.as_fd(), rel, Want::Dir),
    }
}

/// The WIT code for a failed `openat` of `name` in `dir`: a symbolic link is `not-permitted`
/// (`ELOOP` for the last component; `ENOTDIR` for one on the way, told apart from a plain
/// file there by a look at the entry itself).
fn code(e: Errno, dir: BorrowedFd<'_>, name: &str) -> ErrorCode {
    match e {
        Errno::LOOP => ErrorCode::NotPermitted,
        Errno::NOTDIR => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => ErrorCode::NotPermitted,
            _ => ErrorCode::NotFound,
        },
        Errno::NOENT => ErrorCode::NotFound,
        Errno::ACCESS | Errno::PERM => ErrorCode::NotPermitted,
        _ => ErrorCode::Io,
    }
}
