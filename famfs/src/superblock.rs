//! The famfs superblock: 200 bytes at device offset 0, inside a reserved 2 MiB area
//! (`famfs-format.md` §1).

use crate::codec::{Reader, Writer};
use crate::error::FormatError;
use serde::Serialize;
use uuid::Uuid;

/// `FAMFS_SUPER_MAGIC`.
pub const SUPER_MAGIC: u64 = 0x87b2_82ff;
/// Encoded size of the superblock structure.
pub const SUPERBLOCK_LEN: usize = 200;
/// Bytes reserved for the superblock at the start of the device (one PMD page).
pub const SUPERBLOCK_AREA: u64 = 2 << 20;
/// Device offset of the metadata log; famfs asserts this value.
pub const LOG_OFFSET: u64 = 0x20_0000;
/// Default log length (8 MiB), also the smallest mkfs accepts.
pub const DEFAULT_LOG_LEN: u64 = 8 << 20;
/// The allocation unit famfs writes (2 MiB).
pub const ALLOC_UNIT: u64 = 2 << 20;
/// Bytes covered by the superblock CRC: magic through system UUID.
const CRC_COVERED: usize = 96;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_LOG_OFFSET: usize = 16;
const OFF_LOG_LEN: usize = 24;
const OFF_ALLOC_UNIT: usize = 32;
const OFF_OMF_MAJOR: usize = 40;
const OFF_OMF_MINOR: usize = 44;
const OFF_UUID: usize = 48;
const OFF_DEV_UUID: usize = 64;
const OFF_SYSTEM_UUID: usize = 80;
const OFF_CRC: usize = 96;
const OFF_SB_FLAGS: usize = 104;
const OFF_DD_SIZE: usize = 112;
const OFF_DD_UUID: usize = 120;
const OFF_DD_DAXDEV: usize = 136;
const DAXDEV_NAME_LEN: usize = 64;

/// The two on-media format generations this crate reads and writes. They share one layout
/// (200-byte superblock, 544-byte log entries); v48 adds the ADD_DAXDEV entry type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FormatVersion {
    /// `ts_version` 47 with OMF 2.1: deployed famfs before 2026-06.
    V47,
    /// `ts_version` 48 with OMF 2.2: current famfs.
    V48,
}

impl FormatVersion {
    /// `ts_version` written for this format.
    pub fn version(self) -> u64 {
        match self {
            FormatVersion::V47 => 47,
            FormatVersion::V48 => 48,
        }
    }

    /// OMF (major, minor) written for this format.
    pub fn omf(self) -> (u32, u32) {
        match self {
            FormatVersion::V47 => (2, 1),
            FormatVersion::V48 => (2, 2),
        }
    }

    /// The format of a decoded `(ts_version, ts_omf_ver_major)` pair, if this crate reads it.
    /// `ts_version` stayed 47 across four incompatible layouts, so OMF major 2 is what marks the
    /// current one (`famfs-format.md` §6.2).
    pub fn from_fields(version: u64, omf_major: u32) -> Option<Self> {
        match (version, omf_major) {
            (47, 2) => Some(FormatVersion::V47),
            (48, 2) => Some(FormatVersion::V48),
            _ => None,
        }
    }

    /// Parses the `--format-version` spelling: `47` or `48`.
    pub fn from_number(n: u64) -> Option<Self> {
        Self::from_fields(n, 2)
    }
}

/// A decoded superblock. Fields are named after famfs' `struct famfs_superblock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Superblock {
    /// `ts_version` (47 or 48).
    pub version: u64,
    /// `ts_omf_ver_major`.
    pub omf_major: u32,
    /// `ts_omf_ver_minor` (not checked by any famfs reader).
    pub omf_minor: u32,
    /// `ts_log_offset`; always [`LOG_OFFSET`].
    pub log_offset: u64,
    /// `ts_log_len`: log bytes including its header; a power of two ≥ 8 MiB.
    pub log_len: u64,
    /// `ts_alloc_unit`: 2 MiB (famfs also accepts 4096).
    pub alloc_unit: u64,
    /// `ts_uuid`: the file system's UUID.
    pub fs_uuid: Uuid,
    /// `ts_dev_uuid`: the device's UUID.
    pub dev_uuid: Uuid,
    /// `ts_system_uuid`: the system UUID of the master host.
    pub system_uuid: Uuid,
    /// `ts_sb_flags` (defined but never written by famfs; not covered by the CRC).
    pub sb_flags: u32,
    /// `ts_daxdev.dd_size`: the capacity the allocator uses (not covered by the CRC).
    pub dev_size: u64,
    /// `ts_daxdev.dd_uuid` (never written by famfs).
    pub daxdev_uuid: Uuid,
    /// `ts_daxdev.dd_daxdev`: the device path given to mkfs, up to 64 bytes, NUL-padded.
    #[serde(serialize_with = "serialize_daxdev_name")]
    pub daxdev_name: [u8; DAXDEV_NAME_LEN],
}

fn serialize_daxdev_name<S: serde::Serializer>(name: &[u8; DAXDEV_NAME_LEN], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&daxdev_name_string(name))
}

fn daxdev_name_string(name: &[u8; DAXDEV_NAME_LEN]) -> String {
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

impl Superblock {
    /// A new superblock for mkfs.
    pub fn new(format: FormatVersion, log_len: u64, dev_size: u64, system_uuid: Uuid, device_name: &str) -> Superblock {
        let (omf_major, omf_minor) = format.omf();
        let mut daxdev_name = [0u8; DAXDEV_NAME_LEN];
        // famfs copies the name with a bounded 64-byte copy: a longer name loses its tail and NUL.
        let n = device_name.len().min(DAXDEV_NAME_LEN);
        daxdev_name[..n].copy_from_slice(&device_name.as_bytes()[..n]);
        Superblock {
            version: format.version(),
            omf_major,
            omf_minor,
            log_offset: LOG_OFFSET,
            log_len,
            alloc_unit: ALLOC_UNIT,
            fs_uuid: Uuid::new_v4(),
            dev_uuid: Uuid::new_v4(),
            system_uuid,
            sb_flags: 0,
            dev_size,
            daxdev_uuid: Uuid::nil(),
            daxdev_name,
        }
    }

    /// Decodes and validates the superblock from the first bytes of a device, in the order
    /// famfs' `famfs_check_super` does (magic, version, CRC, allocation unit), then the log
    /// geometry this crate depends on.
    pub fn decode(bytes: &[u8]) -> Result<Superblock, FormatError> {
        let r = Reader::new(bytes, 0);
        let magic = r.u64(OFF_MAGIC, "ts_magic")?;
        if magic != SUPER_MAGIC {
            return Err(FormatError::BadMagic {
                offset: 0,
                field: "ts_magic",
                what: "superblock",
                found: magic,
                expected: SUPER_MAGIC,
            });
        }
        let version = r.u64(OFF_VERSION, "ts_version")?;
        let omf_major = r.u32(OFF_OMF_MAJOR, "ts_omf_ver_major")?;
        let omf_minor = r.u32(OFF_OMF_MINOR, "ts_omf_ver_minor")?;
        if FormatVersion::from_fields(version, omf_major).is_none() {
            return Err(FormatError::UnsupportedVersion { offset: r.at(OFF_VERSION), version, omf_major, omf_minor });
        }
        r.check_crc(CRC_COVERED, OFF_CRC, "ts_crc", "superblock")?;
        let alloc_unit = r.u64(OFF_ALLOC_UNIT, "ts_alloc_unit")?;
        if alloc_unit != 4096 && alloc_unit != ALLOC_UNIT {
            return Err(r.invalid(OFF_ALLOC_UNIT, "ts_alloc_unit", alloc_unit, "famfs accepts only 4096 or 2097152"));
        }
        let log_offset = r.u64(OFF_LOG_OFFSET, "ts_log_offset")?;
        if log_offset != LOG_OFFSET {
            return Err(r.invalid(
                OFF_LOG_OFFSET,
                "ts_log_offset",
                log_offset,
                "famfs always places the log at 0x200000",
            ));
        }
        let log_len = r.u64(OFF_LOG_LEN, "ts_log_len")?;
        if !log_len.is_power_of_two() || log_len < DEFAULT_LOG_LEN {
            return Err(r.invalid(
                OFF_LOG_LEN,
                "ts_log_len",
                log_len,
                "the log length must be a power of two of at least 8 MiB",
            ));
        }
        let dev_size = r.u64(OFF_DD_SIZE, "ts_daxdev.dd_size")?;
        if dev_size < LOG_OFFSET + log_len {
            return Err(r.invalid(
                OFF_DD_SIZE,
                "ts_daxdev.dd_size",
                dev_size,
                "the device size is smaller than the superblock area plus the log",
            ));
        }
        let mut daxdev_name = [0u8; DAXDEV_NAME_LEN];
        daxdev_name.copy_from_slice(r.bytes(OFF_DD_DAXDEV, DAXDEV_NAME_LEN, "ts_daxdev.dd_daxdev")?);
        Ok(Superblock {
            version,
            omf_major,
            omf_minor,
            log_offset,
            log_len,
            alloc_unit,
            fs_uuid: r.uuid(OFF_UUID, "ts_uuid")?,
            dev_uuid: r.uuid(OFF_DEV_UUID, "ts_dev_uuid")?,
            system_uuid: r.uuid(OFF_SYSTEM_UUID, "ts_system_uuid")?,
            sb_flags: r.u32(OFF_SB_FLAGS, "ts_sb_flags")?,
            dev_size,
            daxdev_uuid: r.uuid(OFF_DD_UUID, "ts_daxdev.dd_uuid")?,
            daxdev_name,
        })
    }

    /// Encodes the 200-byte structure with a freshly computed CRC; padding is zero.
    /// For every superblock famfs writes, `encode(decode(b)) == b`.
    pub fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut buf = [0u8; SUPERBLOCK_LEN];
        let mut w = Writer::new(&mut buf);
        w.u64(OFF_MAGIC, SUPER_MAGIC);
        w.u64(OFF_VERSION, self.version);
        w.u64(OFF_LOG_OFFSET, self.log_offset);
        w.u64(OFF_LOG_LEN, self.log_len);
        w.u64(OFF_ALLOC_UNIT, self.alloc_unit);
        w.u32(OFF_OMF_MAJOR, self.omf_major);
        w.u32(OFF_OMF_MINOR, self.omf_minor);
        w.uuid(OFF_UUID, &self.fs_uuid);
        w.uuid(OFF_DEV_UUID, &self.dev_uuid);
        w.uuid(OFF_SYSTEM_UUID, &self.system_uuid);
        w.crc(CRC_COVERED, OFF_CRC);
        w.u32(OFF_SB_FLAGS, self.sb_flags);
        w.u64(OFF_DD_SIZE, self.dev_size);
        w.uuid(OFF_DD_UUID, &self.daxdev_uuid);
        w.raw(OFF_DD_DAXDEV, &self.daxdev_name);
        buf
    }

    /// The CRC-32 `encode` stores at offset 96.
    pub fn crc(&self) -> u32 {
        crc32fast::hash(&self.encode()[..CRC_COVERED])
    }

    /// The format generation (always `Some` for a decoded superblock).
    pub fn format(&self) -> Option<FormatVersion> {
        FormatVersion::from_fields(self.version, self.omf_major)
    }

    /// `dd_daxdev` up to its NUL, lossily as UTF-8.
    pub fn daxdev_name(&self) -> String {
        daxdev_name_string(&self.daxdev_name)
    }

    /// First device byte after the log: where file data may start.
    pub fn data_start(&self) -> u64 {
        self.log_offset + self.log_len
    }
}
