//! Paths inside a famfs file system: relative, `/`-separated, at most 79 bytes, with no empty,
//! `.` or `..` components. The same rules apply to paths a user gives and paths read from the
//! log, so a hostile log cannot name anything outside the tree.

use crate::log::MAX_PATH_LEN;
use std::fmt;
use thiserror::Error;

/// Why a path cannot name a famfs file or directory.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path names the root, where a file or directory name is needed.
    #[error("'{0}' names the root directory; give a path below it")]
    Root(String),
    /// An empty component (`a//b`).
    #[error("'{0}' has an empty component ('//'); famfs paths are plain a/b/c")]
    EmptyComponent(String),
    /// A `.` or `..` component.
    #[error("'{0}' contains a '.' or '..' component; famfs paths cannot contain them")]
    DotComponent(String),
    /// A NUL byte.
    #[error("'{0}' contains a NUL byte")]
    Nul(String),
    /// More than 79 bytes.
    #[error("'{path}' is {len} bytes long; famfs paths are at most {MAX_PATH_LEN} bytes (relative to the root)")]
    TooLong {
        /// The path.
        path: String,
        /// Its length.
        len: usize,
    },
    /// Under the reserved `.meta` directory.
    #[error("'{0}' is under .meta, which famfs reserves for its superblock and log files")]
    Reserved(String),
}

/// A validated path relative to the famfs root, as stored in log entries (no leading `/`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates a path a user gave: a leading and trailing `/` are accepted and dropped.
    pub fn parse(input: &str) -> Result<RelPath, PathError> {
        let trimmed = input.trim_start_matches('/').trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(PathError::Root(input.to_string()));
        }
        Self::from_log(trimmed).map_err(|e| match e {
            // Report the user's own spelling.
            PathError::TooLong { len, .. } => PathError::TooLong { path: input.to_string(), len },
            other => other,
        })
    }

    /// Validates a path exactly as stored in a log entry: no leading or trailing `/` allowed.
    pub fn from_log(path: &str) -> Result<RelPath, PathError> {
        if path.is_empty() {
            return Err(PathError::Root(path.to_string()));
        }
        if path.contains('\0') {
            return Err(PathError::Nul(path.to_string()));
        }
        for c in path.split('/') {
            match c {
                "" => return Err(PathError::EmptyComponent(path.to_string())),
                "." | ".." => return Err(PathError::DotComponent(path.to_string())),
                _ => {}
            }
        }
        if path.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong { path: path.to_string(), len: path.len() });
        }
        if path == ".meta" || path.starts_with(".meta/") {
            return Err(PathError::Reserved(path.to_string()));
        }
        Ok(RelPath(path.to_string()))
    }

    /// The path as stored in the log.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, root first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent directory, or `None` when the parent is the root.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rsplit_once('/').map(|(p, _)| RelPath(p.to_string()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or(&self.0, |(_, n)| n)
    }

    /// `self/name`, validated.
    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        RelPath::from_log(&format!("{}/{}", self.0, name))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a user path that may name the root: `None` for `/`, `""` or `.`.
pub fn parse_maybe_root(input: &str) -> Result<Option<RelPath>, PathError> {
    let trimmed = input.trim_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(None);
    }
    RelPath::parse(input).map(Some)
}
