//! Devices that hold a famfs: an image file, a block device, or a `/dev/daxX.Y` character
//! device. Opened `O_RDONLY` unless the caller writes.

use crate::mapped::MappedDevice;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How a device is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_RDONLY`: readers, fsck.
    ReadOnly,
    /// `O_RDWR`: the writer.
    ReadWrite,
}

/// How bytes move to and from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// `pread`/`pwrite` for files and block devices, a shared map for dax character devices.
    Auto,
    /// A shared map of the whole device whatever its type. On a regular file the caller
    /// promises nobody truncates it while it is open (see the SIGBUS contract in
    /// `mapped.rs`); used by the tests to exercise the dax code path on an image.
    Mapped,
}

/// What kind of device backs a file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A regular file holding a famfs image.
    Image,
    /// A block device (loop device, pmem).
    Block,
    /// A device-dax character device; its size comes from sysfs.
    Dax,
}

/// Errors opening or accessing a device.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// The path could not be opened.
    #[error("cannot open {path}: {cause}{hint}")]
    Open {
        /// Device path.
        path: PathBuf,
        /// OS error.
        cause: io::Error,
        /// Advice for the user.
        hint: &'static str,
    },
    /// The path is neither a file nor a block or dax device.
    #[error("{path} is a {what}; give a famfs image file or a dax device such as /dev/dax0.0")]
    Unsupported {
        /// Device path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The size of a dax device could not be read from sysfs.
    #[error("cannot read the size of dax device {path} from {sysfs}: {cause}")]
    DaxSize {
        /// Device path.
        path: PathBuf,
        /// The sysfs file.
        sysfs: PathBuf,
        /// OS or parse error.
        cause: io::Error,
    },
    /// An access outside the device.
    #[error("{path}: {len} bytes at offset {offset:#x} run past the end of the {size}-byte device")]
    OutOfRange {
        /// Device path.
        path: PathBuf,
        /// Start of the access.
        offset: u64,
        /// Its length.
        len: u64,
        /// Device size.
        size: u64,
    },
    /// The dax device is bound to the famfs file-system driver, which refuses raw maps of it.
    #[error(
        "{path} is bound to the famfs file-system driver ({driver}, daxctl mode famfs), which does not allow mapping the device itself: use the famfs mount instead (--mount DIR), or rebind it with `daxctl reconfigure-device --mode=devdax`"
    )]
    FamfsMode {
        /// Device path.
        path: PathBuf,
        /// The driver bound to it.
        driver: String,
    },
    /// An I/O error on the device.
    #[error("{op} {path} at offset {offset:#x}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Device path.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// OS error.
        cause: io::Error,
    },
    /// Another process holds the single-writer lock.
    #[error("{path} is locked by another writer (famfsctl or an embedding program); wait for it to finish and retry")]
    Locked {
        /// Device path.
        path: PathBuf,
    },
    /// The device was opened read-only.
    #[error("{path} was opened read-only")]
    ReadOnly {
        /// Device path.
        path: PathBuf,
    },
    /// A `tag:UUID` or `uuid:UUID` named no single device.
    #[error(transparent)]
    Locate(#[from] crate::locate::LocateError),
}

/// An open device.
pub struct Device {
    file: File,
    path: PathBuf,
    size: u64,
    kind: DeviceKind,
    access: Access,
    /// Offsets and lengths of its memory maps must be multiples of this: the host page, or a
    /// dax device's alignment.
    map_align: u64,
    map: Option<MappedDevice>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("kind", &self.kind)
            .field("access", &self.access)
            .field("map_align", &self.map_align)
            .field("mapped", &self.map.is_some())
            .finish()
    }
}

impl Device {
    /// Opens a device with [`IoMode::Auto`].
    pub fn open(path: impl AsRef<Path>, access: Access) -> Result<Device, DeviceError> {
        Self::open_with(path, access, IoMode::Auto)
    }

    /// Opens a device. The size is the file's length for images, the end offset for block
    /// devices, and `/sys/dev/char/MAJ:MIN/size` for dax devices. `path` may also be `tag:UUID`
    /// or `uuid:UUID`, which name the one device that carries that device tag or file-system
    /// UUID ([`crate::locate`]).
    pub fn open_with(path: impl AsRef<Path>, access: Access, mode: IoMode) -> Result<Device, DeviceError> {
        let path = match path.as_ref().to_str() {
            Some(spec) if spec.starts_with("tag:") || spec.starts_with("uuid:") => crate::locate::resolve(spec)?,
            _ => path.as_ref().to_path_buf(),
        };
        let file = OpenOptions::new().read(true).write(access == Access::ReadWrite).open(&path).map_err(|cause| {
            let hint = match cause.kind() {
                io::ErrorKind::NotFound => "; create an image with `famfsctl mkfs --size 1G FILE`",
                io::ErrorKind::PermissionDenied => "; run as a user that may open it (dax devices usually need root)",
                _ => "",
            };
            DeviceError::Open { path: path.clone(), cause, hint }
        })?;
        let meta =
            file.metadata().map_err(|cause| DeviceError::Io { op: "stat", path: path.clone(), offset: 0, cause })?;
        let ft = meta.file_type();
        let page = rustix::param::page_size() as u64;
        let (kind, size, map_align) =
            if ft.is_file() {
                (DeviceKind::Image, meta.len(), page)
            } else if ft.is_block_device() {
                let size = std::io::Seek::seek(&mut &file, io::SeekFrom::End(0)).map_err(|cause| DeviceError::Io {
                    op: "seek to the end of",
                    path: path.clone(),
                    offset: 0,
                    cause,
                })?;
                (DeviceKind::Block, size, page)
            } else if ft.is_char_device() {
                let rdev = meta.rdev();
                let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                let size = dax_size(Path::new("/sys"), major, minor)
                    .map_err(|(sysfs, cause)| DeviceError::DaxSize { path: path.clone(), sysfs, cause })?;
                if let Some(driver) =
                    dax_driver(Path::new("/sys"), major, minor).filter(|d| FAMFS_DRIVERS.contains(&d.as_str()))
                {
                    return Err(DeviceError::FamfsMode { path, driver });
                }
                (DeviceKind::Dax, size, dax_align(Path::new("/sys"), major, minor).max(page))
            } else if ft.is_dir() {
                return Err(DeviceError::Unsupported { path, what: "directory" });
            } else {
                return Err(DeviceError::Unsupported { path, what: "special file" });
            };
        let map = if kind == DeviceKind::Dax || mode == IoMode::Mapped {
            // SAFETY: a character device's size cannot change while it is open; for a regular
            // file the caller chose `IoMode::Mapped` and with it the promise not to truncate it
            // (documented on `IoMode::Mapped`). Accesses go through copying methods only.
            Some(
                unsafe { MappedDevice::new(&file, size, access == Access::ReadWrite) }
                    .map_err(|cause| DeviceError::Io { op: "mmap", path: path.clone(), offset: 0, cause })?,
            )
        } else {
            None
        };
        Ok(Device { file, path, size, kind, access, map_align, map })
    }

    /// What offsets and lengths of a memory map of this device must be multiples of: the host
    /// page for files and block devices, the alignment of a dax device (2 MiB typically, 1 GiB
    /// possible), which refuses any other `mmap`.
    pub fn map_align(&self) -> u64 {
        self.map_align
    }

    /// The path the device was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What backs the file system.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// The open file (always `O_RDONLY` unless opened with [`Access::ReadWrite`]).
    pub fn file(&self) -> &File {
        &self.file
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        // An empty access touches nothing, wherever it is: the decoder then reports which
        // field is missing, which says more than "past the end of the device".
        if len == 0 {
            return Ok(());
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DeviceError::OutOfRange { path: self.path.clone(), offset, len, size: self.size }),
        }
    }

    fn io_err(&self, op: &'static str, offset: u64) -> impl FnOnce(io::Error) -> DeviceError + '_ {
        move |cause| DeviceError::Io { op, path: self.path.clone(), offset, cause }
    }

    /// Fills `buf` with device bytes from `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DeviceError> {
        self.check_range(offset, buf.len() as u64)?;
        match &self.map {
            Some(m) => m.read(offset, buf),
            None => self.file.read_exact_at(buf, offset),
        }
        .map_err(self.io_err("read", offset))
    }

    fn check_writable(&self) -> Result<(), DeviceError> {
        if self.access != Access::ReadWrite {
            return Err(DeviceError::ReadOnly { path: self.path.clone() });
        }
        Ok(())
    }

    /// Writes `buf` at `offset` (not yet durable: see [`sync_range`](Self::sync_range)).
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<(), DeviceError> {
        self.check_writable()?;
        self.check_range(offset, buf.len() as u64)?;
        match &self.map {
            Some(m) => m.write(offset, buf),
            None => self.file.write_all_at(buf, offset),
        }
        .map_err(self.io_err("write", offset))
    }

    /// Copies up to `len` bytes from `src` at `src_off` to the device at `offset`, without a
    /// bounce buffer where the kernel allows (`copy_file_range` between files, `pread` into the
    /// map on dax). Returns the bytes copied; 0 means `src` ended.
    pub fn copy_from(&self, src: &File, src_off: u64, offset: u64, len: u64) -> Result<u64, DeviceError> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        let chunk = len.min(1 << 30) as usize;
        if let Some(m) = &self.map {
            return m
                .read_from(src, src_off, offset, chunk)
                .map(|n| n as u64)
                .map_err(self.io_err("copy into", offset));
        }
        let (mut s, mut d) = (src_off, offset);
        match rustix::fs::copy_file_range(src, Some(&mut s), &self.file, Some(&mut d), chunk) {
            Ok(n) => return Ok(n as u64),
            // Not supported between these files: fall back to a buffered copy.
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP,
            ) => {}
            Err(e) => return Err(self.io_err("copy into", offset)(e.into())),
        }
        let mut buf = vec![0u8; chunk.min(8 << 20)];
        let n = src.read_at(&mut buf, src_off).map_err(self.io_err("read source for", offset))?;
        self.file.write_all_at(&buf[..n], offset).map_err(self.io_err("write", offset))?;
        Ok(n as u64)
    }

    /// Makes writes to `[offset, offset+len)` durable: `fdatasync` for files and block devices,
    /// cache write-back for dax.
    pub fn sync_range(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        match &self.map {
            Some(m) => m.flush(offset, len),
            None => self.file.sync_data(),
        }
        .map_err(self.io_err("flush", offset))
    }

    /// Before reading metadata another host may have written: drop stale cache lines (dax).
    pub fn invalidate_range(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.check_range(offset, len)?;
        match &self.map {
            Some(m) => m.invalidate(offset, len).map_err(self.io_err("invalidate", offset)),
            None => Ok(()),
        }
    }

    /// Takes the single-writer lock: an exclusive `flock` on the device, released when the
    /// device is closed (also when the process dies). Waits up to 2 s for a lock held elsewhere,
    /// then fails with [`DeviceError::Locked`].
    pub fn lock_exclusive(&self) -> Result<(), DeviceError> {
        // A lock held elsewhere may be about to go: another writer finishing, or a child process
        // that a thread of this program forked while it held a descriptor of this device (the
        // child shares the lock until it execs). Retry for a while before saying "locked".
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match rustix::fs::flock(&self.file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(DeviceError::Locked { path: self.path.clone() }),
                Err(e) => return Err(self.io_err("lock", 0)(e.into())),
            }
        }
    }
}

/// How long [`Device::lock_exclusive`] waits for a lock held elsewhere.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Drivers that bind a dax device to the famfs file system (daxctl's `famfs` mode); the device
/// then refuses `mmap` of its character device.
const FAMFS_DRIVERS: [&str; 1] = ["fsdev_dax"];

/// The driver bound to dax device `major:minor`: the name `<sysfs>/dev/char/MAJ:MIN/driver`
/// links to (`device_dax`, `kmem`, `fsdev_dax`), if any.
pub(crate) fn dax_driver(sysfs: &Path, major: u32, minor: u32) -> Option<String> {
    let link = std::fs::read_link(sysfs.join(format!("dev/char/{major}:{minor}/driver"))).ok()?;
    link.file_name()?.to_str().map(str::to_string)
}

/// The mapping alignment of dax device `major:minor`: `<sysfs>/dev/char/MAJ:MIN/align` (Linux
/// 5.10 on), else its region's `dax_region/align`, else 2 MiB, the alignment of every device-dax
/// whose kernel predates the attribute (a larger one would then refuse our maps with `EINVAL`,
/// which the mapper reports).
pub(crate) fn dax_align(sysfs: &Path, major: u32, minor: u32) -> u64 {
    let dir = sysfs.join(format!("dev/char/{major}:{minor}"));
    ["align", "dax_region/align"]
        .iter()
        .find_map(|attr| {
            let text = std::fs::read_to_string(dir.join(attr)).ok()?;
            text.trim().parse::<u64>().ok().filter(|a| a.is_power_of_two())
        })
        .unwrap_or(2 << 20)
}

/// Size of dax device `major:minor` from `<sysfs>/dev/char/MAJ:MIN/size`, after checking the
/// device belongs to the dax subsystem.
pub(crate) fn dax_size(sysfs: &Path, major: u32, minor: u32) -> Result<u64, (PathBuf, io::Error)> {
    let dir = sysfs.join(format!("dev/char/{major}:{minor}"));
    let subsystem = dir.join("subsystem");
    let target = std::fs::read_link(&subsystem).map_err(|e| (subsystem.clone(), e))?;
    if target.file_name().and_then(|n| n.to_str()) != Some("dax") {
        return Err((subsystem, io::Error::other("not a dax device (its sysfs subsystem is not 'dax')")));
    }
    let size_path = dir.join("size");
    let text = std::fs::read_to_string(&size_path).map_err(|e| (size_path.clone(), e))?;
    text.trim().parse::<u64>().map_err(|e| {
        (size_path, io::Error::new(io::ErrorKind::InvalidData, format!("'{}' is not a size: {e}", text.trim())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dax_size_reads_a_sysfs_tree() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("dev/char/251:3");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(t.path().join("bus/dax")).unwrap();
        std::os::unix::fs::symlink(t.path().join("bus/dax"), dir.join("subsystem")).unwrap();
        std::fs::write(dir.join("size"), "68719476736\n").unwrap();
        assert_eq!(dax_size(t.path(), 251, 3).unwrap(), 64 << 30);
        std::fs::write(dir.join("size"), "lots\n").unwrap();
        assert!(dax_size(t.path(), 251, 3).unwrap_err().1.to_string().contains("not a size"));
    }

    #[test]
    fn dax_align_reads_the_device_then_its_region() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("dev/char/251:4");
        std::fs::create_dir_all(dir.join("dax_region")).unwrap();
        // No attribute at all (an old kernel): the 2 MiB every such device had.
        assert_eq!(dax_align(t.path(), 251, 4), 2 << 20);
        std::fs::write(dir.join("dax_region/align"), "1073741824\n").unwrap();
        assert_eq!(dax_align(t.path(), 251, 4), 1 << 30);
        std::fs::write(dir.join("align"), "2097152\n").unwrap();
        assert_eq!(dax_align(t.path(), 251, 4), 2 << 20);
        // Nonsense is not trusted: the region's value is used instead.
        std::fs::write(dir.join("align"), "3000\n").unwrap();
        assert_eq!(dax_align(t.path(), 251, 4), 1 << 30);
    }

    #[test]
    fn the_driver_bound_is_read_from_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("dev/char/251:5");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(dax_driver(t.path(), 251, 5), None);
        let drivers = t.path().join("bus/dax/drivers");
        std::fs::create_dir_all(drivers.join("fsdev_dax")).unwrap();
        std::os::unix::fs::symlink(drivers.join("fsdev_dax"), dir.join("driver")).unwrap();
        let driver = dax_driver(t.path(), 251, 5).unwrap();
        assert!(FAMFS_DRIVERS.contains(&driver.as_str()));
        let e = DeviceError::FamfsMode { path: "/dev/dax0.0".into(), driver };
        assert!(e.to_string().contains("--mount"), "{e}");
    }

    #[test]
    fn dax_size_refuses_other_char_devices() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("dev/char/1:3");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(t.path().join("class/mem")).unwrap();
        std::os::unix::fs::symlink(t.path().join("class/mem"), dir.join("subsystem")).unwrap();
        let (p, e) = dax_size(t.path(), 1, 3).unwrap_err();
        assert!(p.ends_with("subsystem"));
        assert!(e.to_string().contains("not a dax device"));
    }
}
