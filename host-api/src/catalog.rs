//! The datasets a guest was granted, from a famfs image or dax device (through the famfs
//! crate) or from a mounted directory (files opened `O_RDONLY` beneath the root, component by
//! component, following no symbolic link: see [`crate::beneath`]; `..`, absolute paths,
//! `.meta` and symbolic links are refused, so the file opened is the file the grant names).

use crate::beneath::{self, Want};
use crate::error::ErrorCode;
use crate::interrupt::Interrupt;
use famfs::{Famfs, FileMeta, Lookup, RelPath};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Errors setting a catalog up (the guest never sees these).
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The famfs could not be opened.
    #[error(transparent)]
    Famfs(#[from] famfs::Error),
    /// The mount directory could not be opened.
    #[error("cannot open directory {path}: {cause}")]
    Mount {
        /// The directory.
        path: PathBuf,
        /// OS error.
        cause: std::io::Error,
    },
    /// A grant names nothing.
    #[error("cannot grant '{name}': {why}")]
    Grant {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
}

enum Source {
    /// No source: nothing can be granted.
    Empty,
    Famfs(Arc<Famfs>),
    Mount {
        dir: Arc<cap_std::fs::Dir>,
        root: PathBuf,
    },
}

/// Where a dataset's bytes are.
#[derive(Clone)]
enum Backing {
    Famfs { fs: Arc<Famfs>, file: FileMeta },
    File(Arc<File>),
}

/// An open dataset.
#[derive(Clone)]
pub struct Dataset {
    name: String,
    len: u64,
    backing: Backing,
}

/// A piece of a dataset range that is contiguous in one open file.
#[derive(Clone, Copy, Debug)]
pub struct FilePiece<'a> {
    /// The file: the famfs device, or the dataset's own file.
    pub fd: BorrowedFd<'a>,
    /// Offset of the piece within the dataset range requested.
    pub range_offset: u64,
    /// Offset in `fd`.
    pub file_offset: u64,
    /// Length.
    pub len: u64,
}

impl Dataset {
    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether its bytes live on a dax character device (which allows only shared mappings).
    pub fn is_dax(&self) -> bool {
        matches!(&self.backing, Backing::Famfs { fs, .. } if fs.device().kind() == famfs::DeviceKind::Dax)
    }

    /// What offsets and lengths of a memory map of its bytes must be multiples of: the host page,
    /// or the alignment of the dax device it lives on (2 MiB typically), which refuses any
    /// other map.
    pub fn map_align(&self) -> u64 {
        match &self.backing {
            Backing::Famfs { fs, .. } => fs.device().map_align(),
            Backing::File(_) => rustix::param::page_size() as u64,
        }
    }

    /// Bytes of storage it holds from offset 0: a famfs file's allocation (whole 2 MiB units,
    /// at least its size), or a mounted file's size.
    pub fn capacity(&self) -> u64 {
        match &self.backing {
            Backing::Famfs { file, .. } => file.map.capacity().max(self.len),
            Backing::File(_) => self.len,
        }
    }

    /// Whether it is empty (famfs files never are; mounted files may be).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies bytes at `offset` into `buf`; returns how many (fewer only at the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ErrorCode> {
        if offset > self.len {
            return Err(ErrorCode::InvalidArgument);
        }
        let n = (buf.len() as u64).min(self.len - offset) as usize;
        match &self.backing {
            Backing::Famfs { fs, file } => fs.read_at(file, offset, &mut buf[..n]).map_err(|_| ErrorCode::Io),
            Backing::File(f) => {
                let mut done = 0;
                while done < n {
                    match f.read_at(&mut buf[done..n], offset + done as u64) {
                        Ok(0) => break,
                        Ok(k) => done += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(ErrorCode::Io),
                    }
                }
                Ok(done)
            }
        }
    }

    /// The file pieces holding `offset .. offset + len` (which must lie inside the dataset):
    /// one per extent or interleave chunk for famfs sources, one for a mounted file.
    pub fn pieces(&self, offset: u64, len: u64) -> Vec<FilePiece<'_>> {
        match &self.backing {
            Backing::Famfs { fs, file } => file
                .map
                .pieces(offset, len)
                .map(|p| FilePiece {
                    fd: fs.device().file().as_fd(),
                    range_offset: p.file_offset - offset,
                    file_offset: p.device_offset,
                    len: p.len,
                })
                .collect(),
            Backing::File(f) => vec![FilePiece { fd: f.as_fd(), range_offset: 0, file_offset: offset, len }],
        }
    }
}

/// What was granted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Grant {
    Everything,
    Under(RelPath),
}

/// One entry of [`Catalog::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Name for `open`.
    pub name: String,
    /// Size in bytes.
    pub len: u64,
}

/// The datasets one guest may open. Cheap to clone (shares the open source).
#[derive(Clone)]
pub struct Catalog {
    source: Arc<Source>,
    grants: Vec<Grant>,
}

impl Catalog {
    /// A catalog with no datasets at all.
    pub fn empty() -> Catalog {
        Catalog { source: Arc::new(Source::Empty), grants: Vec::new() }
    }

    /// A catalog over an opened famfs (image file or dax device); nothing granted yet.
    pub fn from_famfs(fs: Arc<Famfs>) -> Catalog {
        Catalog { source: Arc::new(Source::Famfs(fs)), grants: Vec::new() }
    }

    /// A catalog over a famfs image or device at `path`, opened read-only.
    pub fn open_device(path: &Path) -> Result<Catalog, CatalogError> {
        Ok(Self::from_famfs(Arc::new(Famfs::open(path)?)))
    }

    /// A catalog over a mounted famfs (or any directory).
    pub fn open_mount(path: &Path) -> Result<Catalog, CatalogError> {
        let dir = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(|cause| CatalogError::Mount { path: path.into(), cause })?;
        Ok(Catalog { source: Arc::new(Source::Mount { dir: Arc::new(dir), root: path.into() }), grants: Vec::new() })
    }

    /// This catalog with the famfs log read again, as famfs clients do, so it sees the files the
    /// master host added since; grants are kept. Catalogs already handed to running guests are
    /// unaffected. A mount source sees new files as they appear: it is returned as is.
    pub fn refreshed(&self) -> Result<Catalog, CatalogError> {
        match &*self.source {
            Source::Famfs(fs) => {
                let fresh = Famfs::open(fs.device().path())?;
                Ok(Catalog { source: Arc::new(Source::Famfs(Arc::new(fresh))), grants: self.grants.clone() })
            }
            _ => Ok(self.clone()),
        }
    }

    /// Whether [`refreshed`](Self::refreshed) would see something new: the famfs log changed
    /// since this catalog's famfs was opened. A mount source is never stale (it sees new files
    /// as they appear).
    pub fn is_stale(&self) -> Result<bool, CatalogError> {
        match &*self.source {
            Source::Famfs(fs) => Ok(fs.log_changed()?),
            _ => Ok(false),
        }
    }

    /// The famfs behind this catalog, if it is an image or device.
    pub fn famfs(&self) -> Option<&Arc<Famfs>> {
        match &*self.source {
            Source::Famfs(fs) => Some(fs),
            _ => None,
        }
    }

    /// Whether the source is a dax character device (where datasets map shared by default).
    pub fn on_dax(&self) -> bool {
        matches!(&*self.source, Source::Famfs(fs) if fs.device().kind() == famfs::DeviceKind::Dax)
    }

    /// The mount root, if this catalog is over a directory.
    pub fn mount_root(&self) -> Option<&Path> {
        match &*self.source {
            Source::Mount { root, .. } => Some(root),
            _ => None,
        }
    }

    /// Grants a file or directory (and everything below it); `/` grants everything. The name
    /// must exist.
    pub fn grant(&mut self, name: &str) -> Result<(), CatalogError> {
        let err = |why: String| CatalogError::Grant { name: name.to_string(), why };
        let grant = match famfs::path::parse_maybe_root(name).map_err(|e| err(e.to_string()))? {
            None => Grant::Everything,
            Some(p) => {
                let exists = match &*self.source {
                    Source::Empty => false,
                    Source::Famfs(fs) => fs.namespace().lookup(p.as_str()).is_ok(),
                    Source::Mount { dir, .. } => dir.metadata(p.as_str()).is_ok(),
                };
                if !exists {
                    return Err(err("no such file or directory in the source".into()));
                }
                Grant::Under(p)
            }
        };
        self.grants.push(grant);
        Ok(())
    }

    fn granted(&self, name: &RelPath) -> bool {
        self.grants.iter().any(|g| match g {
            Grant::Everything => true,
            Grant::Under(p) => {
                name.as_str() == p.as_str()
                    || name.as_str().strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
        })
    }

    /// Opens a granted dataset. Names are relative (`data/x.bin`); a leading `/`, `..` or `.`
    /// components, and names outside every grant are `not-permitted` (whether or not they
    /// exist, so nothing leaks); names that do not exist or are directories are `not-found`.
    pub fn open(&self, name: &str) -> Result<Dataset, ErrorCode> {
        if name.starts_with('/') {
            return Err(ErrorCode::NotPermitted);
        }
        let path = RelPath::from_log(name).map_err(|_| ErrorCode::NotPermitted)?;
        if !self.granted(&path) {
            return Err(ErrorCode::NotPermitted);
        }
        match &*self.source {
            Source::Empty => Err(ErrorCode::NotPermitted),
            Source::Famfs(fs) => match fs.namespace().lookup(path.as_str()) {
                Ok(Lookup::File(f)) => Ok(Dataset {
                    name: name.into(),
                    len: f.size,
                    backing: Backing::Famfs { fs: fs.clone(), file: f.clone() },
                }),
                Ok(Lookup::Dir(_)) | Err(_) => Err(ErrorCode::NotFound),
            },
            Source::Mount { dir, .. } => {
                let fd = beneath::open(dir.as_fd(), path.as_str(), Want::File)?;
                let f = File::from(fd);
                let meta = f.metadata().map_err(|e| io_code(&e))?;
                if !meta.is_file() {
                    return Err(ErrorCode::NotFound);
                }
                Ok(Dataset { name: name.into(), len: meta.len(), backing: Backing::File(Arc::new(f)) })
            }
        }
    }

    /// Every granted file, in name order (at most [`MAX_LIST`]).
    pub fn list(&self) -> Vec<DatasetInfo> {
        self.list_until(&Interrupt::never())
    }

    /// [`list`](Self::list) on a guest's behalf: only the granted subtrees of a mount are
    /// walked, and the walk stops when `interrupt` is raised (the guest's time is up) or
    /// [`MAX_LIST`] files were found.
    pub fn list_until(&self, interrupt: &Interrupt) -> Vec<DatasetInfo> {
        let mut out = Vec::new();
        match &*self.source {
            Source::Empty => {}
            Source::Famfs(fs) => {
                for f in fs.namespace().files() {
                    if out.len() >= MAX_LIST {
                        break;
                    }
                    if self.granted(&f.path) {
                        out.push(DatasetInfo { name: f.path.to_string(), len: f.size });
                    }
                }
            }
            Source::Mount { dir, .. } => {
                let mut walk = Walk { out: &mut out, interrupt };
                for grant in &self.grants {
                    match grant {
                        Grant::Everything => walk.dir(dir.as_fd(), None),
                        Grant::Under(p) => walk.granted(dir.as_fd(), p),
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup();
        out
    }
}

/// Most entries [`Catalog::list`] returns: the list is built in host memory on the guest's
/// behalf, so it is bounded (a guest opens any further dataset by name).
pub const MAX_LIST: usize = 65536;

/// A walk of a mount's granted subtrees that follows no symbolic link.
struct Walk<'a> {
    out: &'a mut Vec<DatasetInfo>,
    interrupt: &'a Interrupt,
}

impl Walk<'_> {
    fn done(&self) -> bool {
        self.out.len() >= MAX_LIST || self.interrupt.is_raised()
    }

    /// The grant `p`: a file, or a directory walked whole.
    fn granted(&mut self, root: BorrowedFd<'_>, p: &RelPath) {
        if let Ok(fd) = beneath::open(root, p.as_str(), Want::Dir) {
            self.dir(fd.as_fd(), Some(p));
        } else if let Ok(fd) = beneath::open(root, p.as_str(), Want::File) {
            let f = File::from(fd);
            if let Some(m) = f.metadata().ok().filter(|m| m.is_file()) {
                self.out.push(DatasetInfo { name: p.to_string(), len: m.len() });
            }
        }
    }

    /// Regular files below the directory `fd` (whose path is `prefix`), skipping names that
    /// are not valid famfs paths (`.meta` among them) and symbolic links.
    fn dir(&mut self, fd: BorrowedFd<'_>, prefix: Option<&RelPath>) {
        // A readable descriptor of the directory itself (the mount's root is held `O_PATH`).
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
        let Ok(readable) = rustix::fs::openat(fd, ".", flags, rustix::fs::Mode::empty()) else { return };
        let Ok(entries) = rustix::fs::Dir::read_from(&readable) else { return };
        for entry in entries {
            if self.done() {
                return;
            }
            let Ok(entry) = entry else { return };
            let Ok(name) = entry.file_name().to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let Ok(path) = (match prefix {
                None => RelPath::from_log(name),
                Some(p) => p.join(name),
            }) else {
                continue;
            };
            // The entry itself, not what a link names (d_type may also be unknown).
            let Ok(st) = rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else { continue };
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Directory => {
                    if let Ok(sub) = beneath::open(fd, name, Want::Dir) {
                        self.dir(sub.as_fd(), Some(&path));
                    }
                }
                rustix::fs::FileType::RegularFile => {
                    self.out.push(DatasetInfo { name: path.to_string(), len: st.st_size as u64 });
                }
                _ => {}
            }
        }
    }
}

/// Maps an I/O error to the WIT code.
fn io_code(e: &std::io::Error) -> ErrorCode {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => ErrorCode::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorCode::NotPermitted,
        _ if e.raw_os_error() == Some(libc::ELOOP) => ErrorCode::NotPermitted,
        _ => ErrorCode::Io,
    }
}
