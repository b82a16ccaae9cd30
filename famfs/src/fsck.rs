//! fsck: every check famfs' fsck makes (superblock, log header, every entry's CRC and sequence
//! number, allocation collisions) plus the ones a reader that maps files needs (extents inside
//! the device and past the log, parents that exist, paths that follow the rules).

use crate::alloc::Bitmap;
use crate::device::{Access, Device};
use crate::fs::{geometry, read_log_entries, read_log_header, read_superblock};
use crate::identity::{Role, SystemIdentity};
use crate::log::{EntryBody, LogHeader, entry_offset};
use crate::namespace::Namespace;
use crate::superblock::Superblock;
use serde::Serialize;
use std::path::Path;

/// One problem fsck found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Log index of the entry concerned, if any.
    pub entry: Option<u64>,
    /// Absolute device offset concerned, if known.
    pub offset: Option<u64>,
    /// Short machine-readable kind.
    pub kind: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// Counts and sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FsckStats {
    /// Entries in use (`next_index`).
    pub entries_used: u64,
    /// Slots in the log.
    pub entries_total: u64,
    /// Entries that failed validation.
    pub bad_entries: u64,
    /// Regular files.
    pub files: u64,
    /// Directories, the root included.
    pub directories: u64,
    /// Sum of file sizes.
    pub file_bytes: u64,
    /// Bytes allocated to files.
    pub allocated_bytes: u64,
    /// Bytes still free.
    pub free_bytes: u64,
    /// Allocatable bytes of the device.
    pub capacity_bytes: u64,
}

/// What fsck found.
#[derive(Clone, Debug, Serialize)]
pub struct FsckReport {
    /// The device path.
    pub device: String,
    /// Its real size.
    pub device_size: u64,
    /// The superblock, if it decoded.
    pub superblock: Option<Superblock>,
    /// The log header, if it decoded.
    pub log: Option<LogHeader>,
    /// This host's role, if its identity could be read.
    pub role: Option<Role>,
    /// Counts.
    pub stats: FsckStats,
    /// Problems, in log order.
    pub problems: Vec<Problem>,
    /// Why the file system could not be read at all.
    pub unreadable: Option<String>,
}

impl FsckReport {
    /// 0 clean, 1 problems found, 2 unreadable (DESIGN §8).
    pub fn exit_code(&self) -> i32 {
        if self.unreadable.is_some() {
            2
        } else if !self.problems.is_empty() {
            1
        } else {
            0
        }
    }

    fn new(device: &str, size: u64) -> FsckReport {
        FsckReport {
            device: device.into(),
            device_size: size,
            superblock: None,
            log: None,
            role: None,
            stats: FsckStats::default(),
            problems: Vec::new(),
            unreadable: None,
        }
    }

    fn unreadable(device: &str, size: u64, why: String) -> FsckReport {
        FsckReport { unreadable: Some(why), ..FsckReport::new(device, size) }
    }
}

/// Checks the famfs at `path`, read-only.
pub fn fsck_path(path: &Path, identity: Option<&SystemIdentity>) -> FsckReport {
    match Device::open(path, Access::ReadOnly) {
        Ok(d) => fsck(&d, identity),
        Err(e) => FsckReport::unreadable(&path.display().to_string(), 0, e.to_string()),
    }
}

/// Checks the famfs on an open device.
pub fn fsck(device: &Device, identity: Option<&SystemIdentity>) -> FsckReport {
    let name = device.path().display().to_string();
    let sb = match read_superblock(device) {
        Ok(sb) => sb,
        Err(e) => return FsckReport::unreadable(&name, device.size(), e.to_string()),
    };
    let mut report = FsckReport::new(&name, device.size());
    report.role = identity.map(|i| i.role(&sb));
    let mut problems = Vec::new();
    if device.size() < sb.dev_size {
        problems.push(Problem {
            entry: None,
            offset: Some(112),
            kind: "device-truncated",
            message: format!(
                "the device holds {} bytes but the superblock (ts_daxdev.dd_size) says {}; the image was truncated",
                device.size(),
                sb.dev_size
            ),
        });
    }
    let header = match read_log_header(device, &sb) {
        Ok(h) => h,
        Err(e) => {
            report.superblock = Some(sb);
            report.unreadable = Some(e.to_string());
            report.problems = problems;
            return report;
        }
    };
    if header.next_seqnum != header.next_index {
        problems.push(Problem {
            entry: None,
            offset: Some(crate::superblock::LOG_OFFSET + 32),
            kind: "header-seqnum",
            message: format!(
                "famfs_log_next_seqnum is {} but famfs_log_next_index is {}",
                header.next_seqnum, header.next_index
            ),
        });
    }
    let entries = match read_log_entries(device, &header, 0) {
        Ok(e) => e,
        Err(e) => {
            report.superblock = Some(sb);
            report.log = Some(header);
            report.unreadable = Some(e.to_string());
            report.problems = problems;
            return report;
        }
    };
    let g = geometry(device, &sb);
    let mut ns = Namespace::new();
    let mut bad = 0;
    for (i, entry) in entries.iter().enumerate() {
        let index = i as u64;
        match entry {
            Err(e) => {
                bad += 1;
                problems.push(Problem {
                    entry: Some(index),
                    offset: Some(e.offset()),
                    kind: "bad-entry",
                    message: format!("entry {index}: {e}"),
                });
            }
            Ok(entry) => {
                if let EntryBody::Other { entry_type, .. } = &entry.body {
                    problems.push(Problem {
                        entry: Some(index),
                        offset: Some(entry_offset(index) + 8),
                        kind: "bad-type",
                        message: format!(
                            "entry {index}: type {entry_type} is not one famfs writes (ignored by logplay)"
                        ),
                    });
                }
                if let Err(why) = ns.apply_at(index, entry, &g) {
                    problems.push(Problem {
                        entry: Some(index),
                        offset: Some(entry_offset(index)),
                        kind: why.kind(),
                        message: format!("entry {index} ('{}'): {why}", entry.path().unwrap_or_default()),
                    });
                }
            }
        }
    }
    let valid = entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().ok().map(|e| (i as u64, e)));
    let (bitmap, collisions) = Bitmap::from_entries(&g, valid);
    for c in collisions {
        problems.push(Problem {
            entry: Some(c.index),
            offset: Some(c.offset),
            kind: "allocation-collision",
            message: format!(
                "entry {}: {} allocation unit(s) at {:#x} are already used by an earlier file or by the superblock/log",
                c.index, c.units, c.offset
            ),
        });
    }
    let reserved_units = sb.data_start().div_ceil(bitmap.unit()).min(bitmap.units());
    report.stats = FsckStats {
        entries_used: header.next_index,
        entries_total: header.last_index + 1,
        bad_entries: bad,
        files: ns.files().count() as u64,
        directories: ns.dir_count() as u64,
        file_bytes: ns.files().map(|f| f.size).sum(),
        allocated_bytes: (bitmap.used_units() - reserved_units) * bitmap.unit(),
        free_bytes: (bitmap.units() - bitmap.used_units()) * bitmap.unit(),
        capacity_bytes: (bitmap.units() - reserved_units) * bitmap.unit(),
    };
    report.superblock = Some(sb);
    report.log = Some(header);
    report.problems = problems;
    report
}
