//! Finding a famfs device by what it holds instead of by path.
//!
//! Sharable CXL memory arrives as dax devices whose names (`/dev/dax3.0`) depend on the order
//! the host found them in; a dynamic-capacity device's allocations are *tagged*. So a device may
//! be named by:
//!
//! - `tag:UUID`: the device whose famfs superblock carries that device UUID (`ts_dev_uuid`, the
//!   field meant to become the DCD tag), or whose sysfs tag says so where the kernel exposes
//!   one: `/sys/bus/dax/devices/daxX.Y/uuid` as the dynamic-capacity patches propose it, else
//!   `/sys/dev/char/MAJ:MIN/tag`;
//! - `uuid:UUID`: the device whose famfs file-system UUID (`ts_uuid`) it is;
//! - anything else: a path, as before.
//!
//! The search covers the dax devices in `/dev` (`dax*`) and every entry of the directories listed
//! in `FAMFS_DEVICE_PATH` (`:`-separated), so image files can be found the same way. Zero or
//! several matches are errors that list what was found.
//!
//! Only candidates the caller can trust are considered: owned by the caller or by root, not
//! writable by every user, and writable by a group only when root owns them (an administrator's
//! grant). Anything else in a searched directory (an image another user planted there, a file
//! anyone may rewrite) could otherwise make a lookup ambiguous, or be the device `famfsctl` then
//! writes to; it is skipped, and the errors name what was skipped and why.

use crate::device::{Access, Device};
use crate::fs::read_superblock;
use std::path::{Path, PathBuf};
use thiserror::Error;
use uuid::Uuid;

/// What a device argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A path.
    Path(PathBuf),
    /// `tag:UUID`: the device UUID in the superblock, or the sysfs tag.
    Tag(Uuid),
    /// `uuid:UUID`: the file-system UUID.
    FsUuid(Uuid),
}

/// Why no single device was found.
#[derive(Debug, Error)]
pub enum LocateError {
    /// `tag:` or `uuid:` with something that is not a UUID.
    #[error("'{spec}' is not tag:UUID or uuid:UUID (a UUID such as 0c0d9a7e-9c5e-4e1f-9d7a-3b2a1c0f8e6d)")]
    BadUuid {
        /// What was given.
        spec: String,
    },
    /// Nothing matched.
    #[error(
        "no famfs device has {what} {uuid}; searched {searched} ({found}); set FAMFS_DEVICE_PATH to add directories"
    )]
    NotFound {
        /// "device tag" or "file-system UUID".
        what: &'static str,
        /// The UUID asked for.
        uuid: Uuid,
        /// Where the search looked.
        searched: String,
        /// What each famfs device found carries, then the candidates skipped as untrusted.
        found: String,
    },
    /// More than one matched.
    #[error("several devices have {what} {uuid}: {paths}; name one by its path{skipped}")]
    Ambiguous {
        /// "device tag" or "file-system UUID".
        what: &'static str,
        /// The UUID asked for.
        uuid: Uuid,
        /// The matches.
        paths: String,
        /// Candidates skipped as untrusted (`; skipped ...`, or empty).
        skipped: String,
    },
}

impl DeviceSpec {
    /// Parses a device argument (`-d`, `FAMFS_DEVICE`, a manifest's `source.device`).
    pub fn parse(spec: &str) -> Result<DeviceSpec, LocateError> {
        let uuid = |s: &str| s.parse::<Uuid>().map_err(|_| LocateError::BadUuid { spec: spec.to_string() });
        Ok(match spec.split_once(':') {
            Some(("tag", u)) => DeviceSpec::Tag(uuid(u)?),
            Some(("uuid", u)) => DeviceSpec::FsUuid(uuid(u)?),
            _ => DeviceSpec::Path(PathBuf::from(spec)),
        })
    }
}

/// Where the search looks, and how it reads sysfs; [`Locator::from_env`] is the real system.
#[derive(Clone, Debug)]
pub struct Locator {
    /// Directories whose `dax*` entries are candidates (`/dev`).
    pub dax_dirs: Vec<PathBuf>,
    /// Directories all of whose entries are candidates (`FAMFS_DEVICE_PATH`).
    pub extra_dirs: Vec<PathBuf>,
    /// The sysfs root (`/sys`), for tags.
    pub sysfs: PathBuf,
}

impl Locator {
    /// `/dev` and `FAMFS_DEVICE_PATH`, `/sys`.
    pub fn from_env() -> Locator {
        let extra_dirs = std::env::var_os("FAMFS_DEVICE_PATH")
            .map(|p| std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()).collect())
            .unwrap_or_default();
        Locator { dax_dirs: vec![PathBuf::from("/dev")], extra_dirs, sysfs: PathBuf::from("/sys") }
    }

    /// The path a device argument names: itself for a path, else the one device that matches.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf, LocateError> {
        let (what, uuid, tag) = match DeviceSpec::parse(spec)? {
            DeviceSpec::Path(p) => return Ok(p),
            DeviceSpec::Tag(u) => ("device tag", u, true),
            DeviceSpec::FsUuid(u) => ("file-system UUID", u, false),
        };
        let mut matches = Vec::new();
        let mut found = Vec::new();
        let mut skipped = Vec::new();
        for path in self.candidates() {
            if let Err(why) = trusted(&path) {
                skipped.push(format!("{} ({why})", path.display()));
                continue;
            }
            let sysfs_tag = if tag { self.sysfs_tag(&path) } else { None };
            let sb = Device::open(&path, Access::ReadOnly).ok().and_then(|d| read_superblock(&d).ok());
            if let Some(sb) = &sb {
                found.push(format!("{}: device {} file system {}", path.display(), sb.dev_uuid, sb.fs_uuid));
            }
            let hit = match (&sb, tag) {
                (_, true) if sysfs_tag == Some(uuid) => true,
                (Some(sb), true) => sb.dev_uuid == uuid,
                (Some(sb), false) => sb.fs_uuid == uuid,
                (None, _) => false,
            };
            if hit {
                matches.push(path);
            }
        }
        let skipped = if skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; skipped, as only files of yours or root's that others cannot write are used: {}",
                skipped.join(", ")
            )
        };
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => {
                let searched: Vec<String> = self
                    .dax_dirs
                    .iter()
                    .map(|d| format!("{}/dax*", d.display()))
                    .chain(self.extra_dirs.iter().map(|d| d.display().to_string()))
                    .collect();
                let found = if found.is_empty() { "no famfs device found".into() } else { found.join("; ") };
                Err(LocateError::NotFound { what, uuid, searched: searched.join(", "), found: found + &skipped })
            }
            _ => {
                let paths = matches.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                Err(LocateError::Ambiguous { what, uuid, paths, skipped })
            }
        }
    }

    /// Every candidate path, sorted within each directory.
    fn candidates(&self) -> Vec<PathBuf> {
        let list = |dir: &Path, dax_only: bool| -> Vec<PathBuf> {
            let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
            let mut v: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| !dax_only || e.file_name().to_string_lossy().starts_with("dax"))
                .filter(|e| {
                    e.file_type().is_ok_and(|t| t.is_file() || std::os::unix::fs::FileTypeExt::is_char_device(&t))
                })
                .map(|e| e.path())
                .collect();
            v.sort();
            v
        };
        let mut all: Vec<PathBuf> = self.dax_dirs.iter().flat_map(|d| list(d, true)).collect();
        all.extend(self.extra_dirs.iter().flat_map(|d| list(d, false)));
        all.dedup();
        all
    }

    /// The tag of a dax character device, where the kernel exposes one: the proposed
    /// dynamic-capacity ABI's `/sys/bus/dax/devices/daxX.Y/uuid` (daxX.Y being the kernel's name
    /// of the device, where `/sys/dev/char/MAJ:MIN` points), else the older `tag` attribute of
    /// `/sys/dev/char/MAJ:MIN`. An all-zero UUID is an untagged device.
    fn sysfs_tag(&self, path: &Path) -> Option<Uuid> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path).ok()?;
        if !meta.file_type().is_char_device() {
            return None;
        }
        let (major, minor) = (rustix::fs::major(meta.rdev()), rustix::fs::minor(meta.rdev()));
        let by_number = self.sysfs.join(format!("dev/char/{major}:{minor}"));
        let name = std::fs::read_link(&by_number).ok().and_then(|t| t.file_name().map(|n| n.to_owned()));
        let proposed = name.map(|n| self.sysfs.join("bus/dax/devices").join(n).join("uuid"));
        proposed.into_iter().chain([by_number.join("tag")]).find_map(|p| {
            let uuid: Uuid = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
            (!uuid.is_nil()).then_some(uuid)
        })
    }
}

/// Whether a candidate may be used: owned by the caller or root, not writable by every user,
/// and group-writable only if root owns it; the reason when not.
fn trusted(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let me = rustix::process::geteuid().as_raw();
    let (owner, mode) = (meta.uid(), meta.mode());
    if owner != me && owner != 0 {
        return Err(format!("owned by uid {owner}"));
    }
    if mode & 0o002 != 0 {
        return Err("writable by every user".into());
    }
    if mode & 0o020 != 0 && owner != 0 {
        return Err("writable by its group".into());
    }
    Ok(())
}

/// [`Locator::from_env`]`.resolve(spec)`.
pub fn resolve(spec: &str) -> Result<PathBuf, LocateError> {
    Locator::from_env().resolve(spec)
}
