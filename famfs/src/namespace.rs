//! The tree of directories and files a log describes, built the way famfs logplay builds it
//! (`famfs-format.md` §4.4), plus path lookup.

use crate::error::FormatError;
use crate::fmap::{FileMap, MapError};
use crate::log::{EntryBody, LogEntry};
use crate::path::{PathError, RelPath};
use serde::Serialize;
use std::collections::BTreeMap;
use thiserror::Error;

/// The device facts a map is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Usable device bytes: the smaller of the superblock's `dd_size` and the real size.
    pub device_size: u64,
    /// First byte after the log.
    pub data_start: u64,
    /// Allocation unit.
    pub alloc_unit: u64,
}

/// A regular file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileMeta {
    /// Path from the root.
    #[serde(serialize_with = "ser_path")]
    pub path: RelPath,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `fm_flags`.
    pub flags: u32,
    /// Where the bytes are (validated against the device).
    pub map: FileMap,
    /// Index of the log entry that created it.
    pub entry_index: u64,
}

/// A directory's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirMeta {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Index of the MKDIR entry, `None` for the root.
    pub entry_index: Option<u64>,
}

fn ser_path<S: serde::Serializer>(p: &RelPath, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

#[derive(Debug, Clone)]
enum Node {
    Dir { meta: DirMeta, children: BTreeMap<String, usize> },
    File(FileMeta),
}

/// What a path names.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// A directory.
    Dir(&'a DirMeta),
    /// A regular file.
    File(&'a FileMeta),
}

/// One name in a directory listing.
#[derive(Debug, Clone, Serialize)]
pub struct DirEntry<'a> {
    /// The name within its directory.
    pub name: &'a str,
    /// What it is.
    #[serde(flatten)]
    pub node: EntryNode<'a>,
}

/// A listed node.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryNode<'a> {
    /// A directory.
    Dir(&'a DirMeta),
    /// A file.
    File(&'a FileMeta),
}

/// Why an entry was not applied. famfs logplay skips such entries and goes on.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Rejection {
    /// The stored path breaks the path rules.
    #[error("bad path: {0}")]
    BadPath(#[serde(serialize_with = "ser_display")] PathError),
    /// The parent directory is not in the log before this entry.
    #[error("its parent directory '{0}' does not exist")]
    NoParent(String),
    /// The parent is a file.
    #[error("its parent '{0}' is a file")]
    ParentIsFile(String),
    /// A file entry for a path that already exists (famfs: "existed", not updated).
    #[error("'{0}' already exists; this entry is shadowed")]
    Shadowed(String),
    /// A MKDIR entry for a path that is a file.
    #[error("'{0}' already exists as a file")]
    DirOverFile(String),
    /// The file's map is unusable on this device.
    #[error("bad extent map: {0}")]
    BadMap(#[serde(serialize_with = "ser_display")] MapError),
}

impl Rejection {
    /// Short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::BadPath(_) => "bad-path",
            Rejection::NoParent(_) => "no-parent",
            Rejection::ParentIsFile(_) => "parent-is-file",
            Rejection::Shadowed(_) => "duplicate-path",
            Rejection::DirOverFile(_) => "dir-over-file",
            Rejection::BadMap(_) => "bad-map",
        }
    }
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// An entry that was not applied, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Log index.
    pub index: u64,
    /// The path the entry names, as stored.
    pub path: String,
    /// Why.
    #[serde(flatten)]
    pub why: Rejection,
}

/// The log entry at which replay stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvalidEntry {
    /// Log index.
    pub index: u64,
    /// What is wrong with it.
    #[serde(serialize_with = "ser_display")]
    pub error: FormatError,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Entries read (valid ones, applied or not).
    pub entries: u64,
    /// Files created.
    pub new_files: u64,
    /// Directories created.
    pub new_dirs: u64,
    /// MKDIR entries for directories that already existed (harmless).
    pub existed: u64,
    /// Entries skipped, with reasons.
    pub rejected: Vec<Rejected>,
    /// The first invalid entry: famfs logplay stops there, and so does this replay.
    pub stopped: Option<InvalidEntry>,
}

/// Errors looking a path up.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LookupError {
    /// Nothing by that name.
    #[error("'{0}' does not exist in this famfs")]
    NotFound(String),
    /// A directory was expected.
    #[error("'{0}' is not a directory")]
    NotADirectory(String),
    /// A file was expected.
    #[error("'{0}' is a directory, not a file")]
    IsADirectory(String),
    /// The path is malformed.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// The namespace: directories and files, rooted at `/`.
#[derive(Debug, Clone)]
pub struct Namespace {
    nodes: Vec<Node>,
    /// Entries consumed so far (the next index to replay).
    next_index: u64,
    stopped: bool,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

const ROOT: usize = 0;

impl Namespace {
    /// An empty tree: the root directory only (mode 0755, owned by root, as a fresh mount).
    pub fn new() -> Namespace {
        let root =
            Node::Dir { meta: DirMeta { mode: 0o755, uid: 0, gid: 0, entry_index: None }, children: BTreeMap::new() };
        Namespace { nodes: vec![root], next_index: 0, stopped: false }
    }

    /// Index of the next log entry this namespace expects.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Whether an invalid entry stopped replay; later entries are then never applied.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Replays decoded entries `self.next_index()..` in order, like famfs logplay: the first
    /// invalid entry stops the replay (entries applied before it stay), entries that break
    /// path, parent or map rules are skipped and reported. Incremental: call again with the
    /// entries appended since, starting at `next_index()`.
    pub fn replay<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Result<LogEntry, FormatError>>,
        geometry: &Geometry,
    ) -> ReplayReport {
        let mut report = ReplayReport::default();
        if self.stopped {
            return report;
        }
        for entry in entries {
            let index = self.next_index;
            match entry {
                Err(error) => {
                    self.stopped = true;
                    report.stopped = Some(InvalidEntry { index, error: error.clone() });
                    return report;
                }
                Ok(entry) => {
                    report.entries += 1;
                    self.next_index += 1;
                    match self.apply_at(index, entry, geometry) {
                        Ok(Applied::File) => report.new_files += 1,
                        Ok(Applied::Dir) => report.new_dirs += 1,
                        Ok(Applied::Existed) => report.existed += 1,
                        Ok(Applied::Ignored) => {}
                        Err(why) => report.rejected.push(Rejected {
                            index,
                            path: entry.path().unwrap_or_default().to_string(),
                            why,
                        }),
                    }
                }
            }
        }
        report
    }

    /// Applies one valid entry out of band (fsck, which goes on past invalid entries).
    pub(crate) fn apply_at(&mut self, index: u64, entry: &LogEntry, g: &Geometry) -> Result<Applied, Rejection> {
        let (path, is_dir) = match &entry.body {
            EntryBody::File(f) => (&f.path, false),
            EntryBody::Mkdir(d) => (&d.path, true),
            // ADD_DAXDEV, DELETE and unknown types: famfs logplay ignores them.
            _ => return Ok(Applied::Ignored),
        };
        let path = RelPath::from_log(path).map_err(Rejection::BadPath)?;
        let parent = match path.parent() {
            None => ROOT,
            Some(p) => match self.find(&p) {
                Some(i) if matches!(self.nodes[i], Node::Dir { .. }) => i,
                Some(_) => return Err(Rejection::ParentIsFile(p.to_string())),
                None => return Err(Rejection::NoParent(p.to_string())),
            },
        };
        let name = path.file_name().to_string();
        if let Some(existing) = self.child(parent, &name) {
            return match (&self.nodes[existing], is_dir) {
                (Node::Dir { .. }, true) => Ok(Applied::Existed),
                (Node::File(_), true) => Err(Rejection::DirOverFile(path.to_string())),
                (_, false) => Err(Rejection::Shadowed(path.to_string())),
            };
        }
        let node = match &entry.body {
            EntryBody::File(f) => {
                f.map.validate(f.size, g.device_size, g.data_start, g.alloc_unit).map_err(Rejection::BadMap)?;
                Node::File(FileMeta {
                    path,
                    size: f.size,
                    mode: f.mode,
                    uid: f.uid,
                    gid: f.gid,
                    flags: f.flags,
                    map: f.map.clone(),
                    entry_index: index,
                })
            }
            EntryBody::Mkdir(d) => Node::Dir {
                meta: DirMeta { mode: d.mode, uid: d.uid, gid: d.gid, entry_index: Some(index) },
                children: BTreeMap::new(),
            },
            _ => unreachable!("filtered above"),
        };
        let id = self.nodes.len();
        self.nodes.push(node);
        if let Node::Dir { children, .. } = &mut self.nodes[parent] {
            children.insert(name, id);
        }
        Ok(if is_dir { Applied::Dir } else { Applied::File })
    }

    fn child(&self, dir: usize, name: &str) -> Option<usize> {
        match &self.nodes[dir] {
            Node::Dir { children, .. } => children.get(name).copied(),
            Node::File(_) => None,
        }
    }

    fn find(&self, path: &RelPath) -> Option<usize> {
        path.components().try_fold(ROOT, |node, name| self.child(node, name))
    }

    fn find_user_path(&self, path: &str) -> Result<usize, LookupError> {
        match crate::path::parse_maybe_root(path)? {
            None => Ok(ROOT),
            Some(p) => self.find(&p).ok_or_else(|| LookupError::NotFound(p.to_string())),
        }
    }

    /// Looks up a user-supplied path (`/` or empty for the root; a leading `/` is accepted).
    pub fn lookup(&self, path: &str) -> Result<Lookup<'_>, LookupError> {
        Ok(match &self.nodes[self.find_user_path(path)?] {
            Node::Dir { meta, .. } => Lookup::Dir(meta),
            Node::File(f) => Lookup::File(f),
        })
    }

    /// The file at `path`.
    pub fn file(&self, path: &str) -> Result<&FileMeta, LookupError> {
        match self.lookup(path)? {
            Lookup::File(f) => Ok(f),
            Lookup::Dir(_) => Err(LookupError::IsADirectory(path.to_string())),
        }
    }

    /// The entries of the directory at `path`, sorted by name.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry<'_>>, LookupError> {
        match &self.nodes[self.find_user_path(path)?] {
            Node::Dir { children, .. } => {
                Ok(children.iter().map(|(name, &id)| DirEntry { name, node: self.entry_node(id) }).collect())
            }
            Node::File(_) => Err(LookupError::NotADirectory(path.to_string())),
        }
    }

    fn entry_node(&self, id: usize) -> EntryNode<'_> {
        match &self.nodes[id] {
            Node::Dir { meta, .. } => EntryNode::Dir(meta),
            Node::File(f) => EntryNode::File(f),
        }
    }

    /// Every file, in log order.
    pub fn files(&self) -> impl Iterator<Item = &FileMeta> {
        self.nodes.iter().filter_map(|n| match n {
            Node::File(f) => Some(f),
            Node::Dir { .. } => None,
        })
    }

    /// Number of directories, the root included.
    pub fn dir_count(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n, Node::Dir { .. })).count()
    }
}

pub(crate) enum Applied {
    File,
    Dir,
    Existed,
    Ignored,
}
