//! `Famfs`: a famfs image file or dax device from Python, as `famfsctl` sees it. Reads replay
//! the log afresh when it changed (so files another process added appear); writes take the
//! single-writer lock for each operation and need this host to be the master (its system UUID,
//! from `FAMFS_SYSTEM_UUID`, `FAMFS_SYSTEM_UUID_FILE` or `/opt/famfs/system_uuid`).

use crate::convert;
use crate::errors::famfs_error;
use famfs::{Attrs, FormatVersion, Layout, Lookup, MkfsOptions, RelPath, Source, SystemIdentity, Writer};
use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyNotADirectoryError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A famfs file system on an image file or dax device.
#[pyclass(module = "famfs_run._native", subclass, frozen)]
pub struct Famfs {
    device: PathBuf,
    /// The file system as last read; replaced when its log changed.
    fs: Mutex<Arc<famfs::Famfs>>,
}

impl Famfs {
    /// The file system, its log read again if it changed since.
    pub fn current(&self) -> PyResult<Arc<famfs::Famfs>> {
        let mut fs = self.fs.lock().unwrap_or_else(|e| e.into_inner());
        if fs.log_changed().map_err(famfs_error)? {
            *fs = Arc::new(famfs::Famfs::open(&self.device).map_err(famfs_error)?);
        }
        Ok(fs.clone())
    }

    /// A writer session (the lock held until it is dropped), as the master.
    pub fn writer(&self) -> PyResult<Writer> {
        let id = SystemIdentity::from_env(false).map_err(famfs_error)?;
        Writer::open(&self.device, &id).map_err(famfs_error)
    }

    /// The device path.
    pub fn device(&self) -> &PathBuf {
        &self.device
    }
}

/// `path` as a famfs path (no leading `/` needed, no `..`).
pub fn rel(path: &str) -> PyResult<RelPath> {
    RelPath::parse(path.trim_start_matches('/')).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn not_found(fs: &famfs::Famfs, path: &str, e: famfs::LookupError) -> PyErr {
    match e {
        famfs::LookupError::NotFound(_) => PyFileNotFoundError::new_err(format!(
            "{}: no such file or directory: '{path}'",
            fs.device().path().display()
        )),
        famfs::LookupError::NotADirectory(p) => PyNotADirectoryError::new_err(format!("'{p}' is not a directory")),
        other => famfs_error(other),
    }
}

#[pymethods]
impl Famfs {
    /// Opens the famfs on `device` (an image file or `/dev/daxX.Y`) read-only.
    #[new]
    fn new(py: Python<'_>, device: PathBuf) -> PyResult<Famfs> {
        let d = device.clone();
        let fs = py.detach(move || famfs::Famfs::open(&d)).map_err(famfs_error)?;
        Ok(Famfs { device, fs: Mutex::new(Arc::new(fs)) })
    }

    /// Makes a famfs on `device` and opens it (as an instance of the class it is called on):
    /// an image file is created or resized to `size` (bytes or "4G"; a multiple of 2 MiB).
    /// Refuses to overwrite a famfs unless `force`. This host becomes the master (its system
    /// UUID is created if missing).
    #[classmethod]
    #[pyo3(signature = (device, *, size=None, log_len=None, format_version=48, force=false))]
    fn mkfs<'py>(
        cls: &Bound<'py, PyType>,
        device: PathBuf,
        size: Option<&Bound<'_, PyAny>>,
        log_len: Option<&Bound<'_, PyAny>>,
        format_version: u64,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let mut opts = MkfsOptions { force, ..MkfsOptions::default() };
        if let Some(s) = size {
            opts.size = Some(convert::size(s, "size")?);
        }
        if let Some(l) = log_len {
            opts.log_len = convert::size(l, "log_len")?;
        }
        opts.format = FormatVersion::from_number(format_version)
            .ok_or_else(|| PyValueError::new_err(format!("format_version {format_version}: use 48 or 47")))?;
        let id = SystemIdentity::from_env(true).map_err(famfs_error)?;
        let d = device.clone();
        py.detach(move || famfs::mkfs(&d, &opts, &id)).map_err(famfs_error)?;
        cls.call1((device,))
    }

    /// The device path.
    #[getter(device)]
    fn device_path(&self) -> PathBuf {
        self.device.clone()
    }

    /// What offsets and lengths of a memory map of the device must be multiples of: the host
    /// page for an image, the alignment of a dax device (2 MiB typically, 1 GiB possible).
    #[getter]
    fn map_align(&self) -> PyResult<u64> {
        Ok(self.current()?.device().map_align())
    }

    /// The entries of a directory (default: the root), in name order: dicts with `name`,
    /// `path`, `type` ("file" or "dir"), `mode`, `uid`, `gid`, and `size` for files.
    #[pyo3(signature = (path="/"))]
    fn ls<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyList>> {
        let fs = self.current()?;
        let dir = path.trim_matches('/');
        let entries = fs.namespace().read_dir(dir).map_err(|e| not_found(&fs, path, e))?;
        let list = PyList::empty(py);
        for e in entries {
            let d = PyDict::new(py);
            d.set_item("name", e.name)?;
            d.set_item("path", if dir.is_empty() { e.name.to_string() } else { format!("{dir}/{}", e.name) })?;
            match e.node {
                famfs::namespace::EntryNode::Dir(m) => {
                    d.set_item("type", "dir")?;
                    d.set_item("mode", m.mode)?;
                    d.set_item("uid", m.uid)?;
                    d.set_item("gid", m.gid)?;
                }
                famfs::namespace::EntryNode::File(f) => {
                    d.set_item("type", "file")?;
                    d.set_item("size", f.size)?;
                    d.set_item("mode", f.mode)?;
                    d.set_item("uid", f.uid)?;
                    d.set_item("gid", f.gid)?;
                }
            }
            list.append(d)?;
        }
        Ok(list)
    }

    /// A file's or directory's metadata; for a file also its extent map (`map`) and
    /// `extents`: a list of (device offset, length) in file order.
    fn stat<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
        let fs = self.current()?;
        let name = path.trim_matches('/');
        let d = match fs.namespace().lookup(name).map_err(|e| not_found(&fs, path, e))? {
            Lookup::Dir(m) => {
                let d = convert::to_py(py, m)?;
                d.set_item("type", "dir")?;
                d
            }
            Lookup::File(f) => {
                let d = convert::to_py(py, f)?;
                d.set_item("type", "file")?;
                let pieces: Vec<(u64, u64)> = f.map.pieces(0, f.size).map(|p| (p.device_offset, p.len)).collect();
                d.set_item("extents", pieces)?;
                d
            }
        };
        d.set_item("path", name)?;
        Ok(d)
    }

    /// A file's bytes (a copy; `open()` maps them instead).
    fn cat<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyBytes>> {
        let fs = self.current()?;
        let name = path.trim_matches('/');
        let file = match fs.namespace().lookup(name).map_err(|e| not_found(&fs, path, e))? {
            Lookup::File(f) => f.clone(),
            Lookup::Dir(_) => return Err(PyIsADirectoryError::new_err(format!("'{path}' is a directory"))),
        };
        let size = usize::try_from(file.size).map_err(|_| famfs_error(famfs::Error::TooLarge(file.size)))?;
        // Read straight into the new bytes object, with the GIL released while the kernel copies.
        let mut failure = None;
        let bytes = PyBytes::new_with(py, size, |buf| {
            let fs2 = fs.clone();
            if let Err(e) = py.detach(|| fs2.read_at(&file, 0, buf).map(|_| ())) {
                failure = Some(e);
            }
            Ok(())
        })?;
        match failure {
            Some(e) => Err(famfs_error(e)),
            None => Ok(bytes),
        }
    }

    /// Creates a directory (with `parents`, any missing parents too, and an existing directory
    /// is fine).
    #[pyo3(signature = (path, *, parents=false, mode=0o755, uid=None, gid=None))]
    fn mkdir(
        &self,
        py: Python<'_>,
        path: &str,
        parents: bool,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> PyResult<()> {
        let p = rel(path)?;
        let a = Attrs::owned_by(mode, uid, gid);
        // The writer (its lock, which may be waited for, and the log replay) is taken and let
        // go with the GIL released.
        py.detach(move || {
            let mut w = self.writer()?;
            if parents { w.mkdir_all(&p, a).map(|_| ()) } else { w.mkdir(&p, a) }.map_err(famfs_error)
        })
    }

    /// Copies the host file `src` into the famfs as `dest` (a new file; famfs files are never
    /// replaced), flushing it before it is logged. `mode` defaults to the source's.
    #[pyo3(signature = (src, dest, *, mode=None, uid=None, gid=None))]
    fn cp(
        &self,
        py: Python<'_>,
        src: PathBuf,
        dest: &str,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> PyResult<()> {
        let file = std::fs::File::open(&src)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot open {}: {e}", src.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot read {}: {e}", src.display())))?;
        if !meta.is_file() {
            return Err(PyIsADirectoryError::new_err(format!(
                "{} is not a regular file (copy directories with recursive=True)",
                src.display()
            )));
        }
        let p = rel(dest)?;
        let a = Attrs::owned_by(mode.unwrap_or(meta.permissions().mode() & 0o777), uid, gid);
        py.detach(move || {
            let mut w = self.writer()?;
            w.create_file(&p, Source::File(&file), meta.len(), a, Layout::Simple, &mut |_| {})
                .map(|_| ())
                .map_err(famfs_error)
        })
    }

    /// Checks the file system: a dict with `clean`, `exit_code` (0 clean, 1 problems, 2
    /// unreadable), `problems`, `stats` and the decoded superblock and log header.
    fn fsck<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = self.device.clone();
        let report = py.detach(move || famfs::fsck::fsck_path(&d, SystemIdentity::from_env(false).ok().as_ref()));
        let out = convert::to_py(py, &report)?;
        out.set_item("exit_code", report.exit_code())?;
        out.set_item("clean", report.exit_code() == 0)?;
        Ok(out)
    }

    /// Writes an Arrow table (anything with `__arrow_c_stream__`) as an uncompressed Arrow IPC
    /// file, buffers 64-byte aligned, straight into the famfs as `path`. Returns its size.
    #[pyo3(signature = (table, path, *, mode=0o644, uid=None, gid=None))]
    fn write_arrow(
        &self,
        py: Python<'_>,
        table: &Bound<'_, PyAny>,
        path: &str,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> PyResult<u64> {
        crate::feather::write_arrow(py, self, table, &rel(path)?, Attrs::owned_by(mode, uid, gid))
    }

    fn __repr__(&self) -> String {
        format!("famfs_run.Famfs({:?})", self.device)
    }
}
