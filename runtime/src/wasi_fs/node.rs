//! What a descriptor names: a famfs file or directory beneath a preopened directory, and path
//! resolution that never leaves that directory.

use famfs::Famfs;
use famfs::namespace::{Lookup, LookupError};
use std::sync::Arc;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;

/// A famfs file or directory opened by a guest.
#[derive(Clone)]
pub struct FsNode {
    pub(super) fs: Arc<Famfs>,
    /// The preopened directory this node was reached from (famfs path, "" for the root): paths
    /// may not climb above it.
    pub(super) root: String,
    /// This node's famfs path ("" for the root).
    pub(super) path: String,
    /// Directory, or a file of this size.
    pub(super) kind: Kind,
}

/// A directory, or a file and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File { size: u64 },
}

fn kind_of(fs: &Famfs, path: &str) -> Result<Kind, ErrorCode> {
    match fs.namespace().lookup(path) {
        Ok(Lookup::Dir(_)) => Ok(Kind::Dir),
        Ok(Lookup::File(f)) => Ok(Kind::File { size: f.size }),
        Err(LookupError::NotFound(_)) => Err(ErrorCode::NoEntry),
        Err(LookupError::NotADirectory(_)) => Err(ErrorCode::NotDirectory),
        Err(LookupError::IsADirectory(_)) => Err(ErrorCode::IsDirectory),
        Err(LookupError::Path(_)) => Err(ErrorCode::Invalid),
    }
}

impl FsNode {
    /// The famfs directory `path` (`/` or empty: the root) as a preopen.
    pub(super) fn preopen(fs: &Arc<Famfs>, path: &str) -> Result<FsNode, String> {
        let path = path.trim_matches('/').to_string();
        match fs.namespace().lookup(&path) {
            Ok(Lookup::Dir(_)) => Ok(FsNode { fs: fs.clone(), root: path.clone(), path, kind: Kind::Dir }),
            Ok(Lookup::File(_)) => Err("a file, not a directory".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The node at `rel` from this one (a directory). `.` and empty components are skipped;
    /// `..` goes up but never above the preopen; an absolute path is refused.
    pub(super) fn resolve(&self, rel: &str) -> Result<FsNode, ErrorCode> {
        if self.kind != Kind::Dir {
            return Err(ErrorCode::NotDirectory);
        }
        if rel.starts_with('/') {
            return Err(ErrorCode::NotPermitted);
        }
        let mut parts: Vec<&str> = if self.path.is_empty() { Vec::new() } else { self.path.split('/').collect() };
        let floor = if self.root.is_empty() { 0 } else { self.root.split('/').count() };
        for c in rel.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.len() <= floor {
                        return Err(ErrorCode::NotPermitted);
                    }
                    parts.pop();
                }
                name => {
                    // Every prefix must be a directory for the walk to go on.
                    let here = parts.join("/");
                    if kind_of(&self.fs, &here)? != Kind::Dir {
                        return Err(ErrorCode::NotDirectory);
                    }
                    parts.push(name);
                }
            }
        }
        let path = parts.join("/");
        let kind = kind_of(&self.fs, &path)?;
        Ok(FsNode { fs: self.fs.clone(), root: self.root.clone(), path, kind })
    }

    /// Size in bytes (0 for a directory).
    pub(super) fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size } => size,
            Kind::Dir => 0,
        }
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end); `io` if the media fails.
    pub(super) fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
        let Kind::File { size } = self.kind else {
            return Err(ErrorCode::IsDirectory);
        };
        let n = len.min(size.saturating_sub(offset)).min(super::host::MAX_READ) as usize;
        let mut buf = vec![0u8; n];
        if n == 0 {
            return Ok(buf);
        }
        let file = self.fs.namespace().file(&self.path).map_err(|_| ErrorCode::NoEntry)?;
        match self.fs.read_at(file, offset, &mut buf) {
            Ok(got) => {
                buf.truncate(got);
                Ok(buf)
            }
            Err(e) => {
                tracing::warn!(path = self.path, offset, "famfs read failed: {e:#}");
                Err(ErrorCode::Io)
            }
        }
    }
}
