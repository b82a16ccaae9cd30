//! The metadata log: a 48-byte header at device offset 0x200000 followed by 544-byte entries
//! (`famfs-format.md` §2).

use crate::codec::{Reader, Writer};
use crate::error::FormatError;
use crate::fmap::{Extent, FileMap, MAX_EXTENTS};
use crate::superblock::LOG_OFFSET;
use serde::Serialize;

/// `FAMFS_LOG_MAGIC`.
pub const LOG_MAGIC: u64 = 0x0000_0bad_cafe_f00d;
/// Size of the log header.
pub const LOG_HEADER_LEN: usize = 48;
/// Size of one log entry.
pub const LOG_ENTRY_LEN: usize = 544;
/// Longest relative path an entry can hold (80-byte field with its NUL).
pub const MAX_PATH_LEN: usize = 79;
const PATH_FIELD_LEN: usize = 80;
/// Bytes of an entry covered by its CRC.
const ENTRY_CRC_COVERED: usize = 536;
const OFF_ENTRY_CRC: usize = 536;
/// Bytes of the header covered by its CRC (magic, len, last_index).
const HEADER_CRC_COVERED: usize = 24;

/// Entry type `FAMFS_LOG_FILE`.
pub const ENTRY_FILE: u32 = 0;
/// Entry type `FAMFS_LOG_MKDIR`.
pub const ENTRY_MKDIR: u32 = 1;
/// Entry type `FAMFS_LOG_DELETE` (defined, never written).
pub const ENTRY_DELETE: u32 = 2;
/// Entry type `FAMFS_LOG_ADD_DAXDEV` (v48).
pub const ENTRY_ADD_DAXDEV: u32 = 3;

/// `fm_flags` value famfs always writes (`FAMFS_FM_ALL_HOSTS_RW`).
pub const FM_ALL_HOSTS_RW: u32 = 2;

/// Number of entry slots in a log of `log_len` bytes.
pub fn slots(log_len: u64) -> u64 {
    log_len.saturating_sub(LOG_HEADER_LEN as u64) / LOG_ENTRY_LEN as u64
}

/// Device offset of entry `index` (saturating: no index of a real log comes near overflow, but a
/// decoder must not panic on any index it is handed).
pub fn entry_offset(index: u64) -> u64 {
    index.saturating_mul(LOG_ENTRY_LEN as u64).saturating_add(LOG_OFFSET + LOG_HEADER_LEN as u64)
}

/// The log header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LogHeader {
    /// `famfs_log_len`: total log bytes including the header.
    pub log_len: u64,
    /// `famfs_log_last_index`: the last usable slot (inclusive).
    pub last_index: u64,
    /// `famfs_log_next_seqnum`: the seqnum the next entry gets.
    pub next_seqnum: u64,
    /// `famfs_log_next_index`: the next free slot, i.e. the number of entries in use.
    pub next_index: u64,
}

impl LogHeader {
    /// An empty log of `log_len` bytes, as mkfs writes it.
    pub fn new(log_len: u64) -> LogHeader {
        LogHeader { log_len, last_index: slots(log_len).saturating_sub(1), next_seqnum: 0, next_index: 0 }
    }

    /// Decodes the header at device offset 0x200000 and checks it against the superblock's
    /// log length: magic, CRC, length, last index, and that `next_index` is within the log.
    pub fn decode(bytes: &[u8], expected_log_len: u64) -> Result<LogHeader, FormatError> {
        let r = Reader::new(bytes, LOG_OFFSET);
        let magic = r.u64(0, "famfs_log_magic")?;
        if magic != LOG_MAGIC {
            return Err(FormatError::BadMagic {
                offset: LOG_OFFSET,
                field: "famfs_log_magic",
                what: "log header",
                found: magic,
                expected: LOG_MAGIC,
            });
        }
        r.check_crc(HEADER_CRC_COVERED, 24, "famfs_log_crc", "log header")?;
        let log_len = r.u64(8, "famfs_log_len")?;
        if log_len != expected_log_len {
            return Err(r.invalid(8, "famfs_log_len", log_len, "it differs from the superblock's ts_log_len"));
        }
        let last_index = r.u64(16, "famfs_log_last_index")?;
        if slots(log_len) == 0 || last_index != slots(log_len) - 1 {
            return Err(r.invalid(16, "famfs_log_last_index", last_index, "it must be (log_len - 48) / 544 - 1"));
        }
        let next_seqnum = r.u64(32, "famfs_log_next_seqnum")?;
        let next_index = r.u64(40, "famfs_log_next_index")?;
        if next_index > last_index + 1 {
            return Err(r.invalid(40, "famfs_log_next_index", next_index, "it is past the last slot of the log"));
        }
        Ok(LogHeader { log_len, last_index, next_seqnum, next_index })
    }

    /// Encodes the 48-byte header with its CRC.
    pub fn encode(&self) -> [u8; LOG_HEADER_LEN] {
        let mut buf = [0u8; LOG_HEADER_LEN];
        let mut w = Writer::new(&mut buf);
        w.u64(0, LOG_MAGIC);
        w.u64(8, self.log_len);
        w.u64(16, self.last_index);
        w.crc(HEADER_CRC_COVERED, 24);
        w.u64(32, self.next_seqnum);
        w.u64(40, self.next_index);
        buf
    }

    /// Whether no slot is left.
    pub fn is_full(&self) -> bool {
        self.next_index > self.last_index
    }

    /// Slots still free.
    pub fn free_slots(&self) -> u64 {
        (self.last_index + 1).saturating_sub(self.next_index)
    }
}

/// A FILE entry (type 0): one regular file and its pre-allocated map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// `fm_size`: exact size in bytes.
    pub size: u64,
    /// `fm_flags` (famfs writes 2).
    pub flags: u32,
    /// `fm_uid`.
    pub uid: u32,
    /// `fm_gid`.
    pub gid: u32,
    /// `fm_mode`: permission bits only.
    pub mode: u32,
    /// `fm_relpath`: path relative to the mount point.
    pub path: String,
    /// `fm_fmap`: where the bytes are.
    pub map: FileMap,
}

/// A MKDIR entry (type 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MkdirEntry {
    /// `md_uid`.
    pub uid: u32,
    /// `md_gid`.
    pub gid: u32,
    /// `md_mode`: permission bits only.
    pub mode: u32,
    /// `md_relpath`.
    pub path: String,
}

/// An ADD_DAXDEV entry (type 3, v48): announces a secondary device. Nothing consumes it yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddDaxdevEntry {
    /// `dd_size`.
    pub size: u64,
    /// `dd_uuid`.
    pub uuid: uuid::Uuid,
    /// `dd_index`.
    pub index: u32,
}

/// What an entry says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryBody {
    /// Create a regular file.
    File(FileEntry),
    /// Create a directory.
    Mkdir(MkdirEntry),
    /// Announce a secondary device (accepted and skipped).
    AddDaxdev(AddDaxdevEntry),
    /// A type famfs logplay ignores (DELETE, INVALID, or unknown); its 520-byte body is kept
    /// so that re-encoding reproduces the entry.
    Other {
        /// `famfs_log_entry_type`.
        entry_type: u32,
        /// The union's bytes (entry offsets 16..536).
        #[serde(skip)]
        body: Vec<u8>,
    },
}

/// One decoded, CRC-checked log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// `famfs_log_entry_seqnum` (equals the entry's index in a valid log).
    pub seqnum: u64,
    /// The entry's content.
    #[serde(flatten)]
    pub body: EntryBody,
}

// Entry-relative offsets (famfs-format.md §2.4-2.6).
const OFF_SEQNUM: usize = 0;
const OFF_TYPE: usize = 8;
const OFF_FM_SIZE: usize = 16;
const OFF_FM_FLAGS: usize = 24;
const OFF_FM_UID: usize = 28;
const OFF_FM_GID: usize = 32;
const OFF_FM_MODE: usize = 36;
const OFF_FM_RELPATH: usize = 40;
const OFF_FMAP_EXT_TYPE: usize = 120;
const OFF_FMAP_COUNT: usize = 128;
const OFF_FMAP_SE: usize = 136;
const OFF_IE_NSTRIPS: usize = 136;
const OFF_IE_CHUNK: usize = 144;
const OFF_IE_STRIPS: usize = 152;
const EXTENT_LEN: usize = 24;
const OFF_MD_UID: usize = 16;
const OFF_MD_GID: usize = 20;
const OFF_MD_MODE: usize = 24;
const OFF_MD_RELPATH: usize = 28;
const OFF_DD_SIZE: usize = 16;
const OFF_DD_UUID: usize = 24;
const OFF_DD_INDEX: usize = 40;
const OFF_BODY: usize = 16;

const EXT_SIMPLE: u32 = 0;
const EXT_INTERLEAVE: u32 = 1;

impl LogEntry {
    /// Decodes entry `index` from its 544 bytes, validating it as famfs does (stored CRC over
    /// bytes 0..536, seqnum equal to the index) and then decoding its body. Error offsets are
    /// absolute device offsets.
    pub fn decode(bytes: &[u8], index: u64) -> Result<LogEntry, FormatError> {
        let r = Reader::new(bytes, entry_offset(index));
        r.check_crc(ENTRY_CRC_COVERED, OFF_ENTRY_CRC, "famfs_log_entry_crc", "log entry")?;
        let seqnum = r.u64(OFF_SEQNUM, "famfs_log_entry_seqnum")?;
        if seqnum != index {
            return Err(r.invalid(OFF_SEQNUM, "famfs_log_entry_seqnum", seqnum, "it must equal the entry's index"));
        }
        let entry_type = r.u32(OFF_TYPE, "famfs_log_entry_type")?;
        let body = match entry_type {
            ENTRY_FILE => EntryBody::File(decode_file(&r)?),
            ENTRY_MKDIR => EntryBody::Mkdir(MkdirEntry {
                uid: r.u32(OFF_MD_UID, "md_uid")?,
                gid: r.u32(OFF_MD_GID, "md_gid")?,
                mode: r.u32(OFF_MD_MODE, "md_mode")?,
                path: r.path(OFF_MD_RELPATH, PATH_FIELD_LEN, "md_relpath")?,
            }),
            ENTRY_ADD_DAXDEV => EntryBody::AddDaxdev(AddDaxdevEntry {
                size: r.u64(OFF_DD_SIZE, "dd_size")?,
                uuid: r.uuid(OFF_DD_UUID, "dd_uuid")?,
                index: r.u32(OFF_DD_INDEX, "dd_index")?,
            }),
            other => EntryBody::Other {
                entry_type: other,
                body: r.bytes(OFF_BODY, ENTRY_CRC_COVERED - OFF_BODY, "famfs_log_entry body")?.to_vec(),
            },
        };
        Ok(LogEntry { seqnum, body })
    }

    /// Encodes the entry into 544 zero-initialised bytes with its CRC.
    /// For every entry famfs writes, `encode(decode(b)) == b`.
    ///
    /// # Panics
    /// If a path is longer than [`MAX_PATH_LEN`] or a map holds more than 16 extents; values
    /// built through [`crate::path::RelPath`] and [`FileMap`]'s constructors never are.
    pub fn encode(&self) -> [u8; LOG_ENTRY_LEN] {
        let mut buf = [0u8; LOG_ENTRY_LEN];
        let mut w = Writer::new(&mut buf);
        w.u64(OFF_SEQNUM, self.seqnum);
        match &self.body {
            EntryBody::File(f) => {
                assert!(f.path.len() <= MAX_PATH_LEN, "path longer than 79 bytes");
                w.u32(OFF_TYPE, ENTRY_FILE);
                w.u64(OFF_FM_SIZE, f.size);
                w.u32(OFF_FM_FLAGS, f.flags);
                w.u32(OFF_FM_UID, f.uid);
                w.u32(OFF_FM_GID, f.gid);
                w.u32(OFF_FM_MODE, f.mode);
                w.raw(OFF_FM_RELPATH, f.path.as_bytes());
                encode_map(&mut w, &f.map);
            }
            EntryBody::Mkdir(d) => {
                assert!(d.path.len() <= MAX_PATH_LEN, "path longer than 79 bytes");
                w.u32(OFF_TYPE, ENTRY_MKDIR);
                w.u32(OFF_MD_UID, d.uid);
                w.u32(OFF_MD_GID, d.gid);
                w.u32(OFF_MD_MODE, d.mode);
                w.raw(OFF_MD_RELPATH, d.path.as_bytes());
            }
            EntryBody::AddDaxdev(a) => {
                w.u32(OFF_TYPE, ENTRY_ADD_DAXDEV);
                w.u64(OFF_DD_SIZE, a.size);
                w.uuid(OFF_DD_UUID, &a.uuid);
                w.u32(OFF_DD_INDEX, a.index);
            }
            EntryBody::Other { entry_type, body } => {
                w.u32(OFF_TYPE, *entry_type);
                let n = body.len().min(ENTRY_CRC_COVERED - OFF_BODY);
                w.raw(OFF_BODY, &body[..n]);
            }
        }
        w.crc(ENTRY_CRC_COVERED, OFF_ENTRY_CRC);
        buf
    }

    /// The path this entry creates, if it creates one.
    pub fn path(&self) -> Option<&str> {
        match &self.body {
            EntryBody::File(f) => Some(&f.path),
            EntryBody::Mkdir(d) => Some(&d.path),
            _ => None,
        }
    }
}

fn read_extent(r: &Reader<'_>, off: usize) -> Result<Extent, FormatError> {
    Ok(Extent {
        devindex: r.u64(off, "se_devindex")?,
        offset: r.u64(off + 8, "se_offset")?,
        len: r.u64(off + 16, "se_len")?,
    })
}

fn decode_file(r: &Reader<'_>) -> Result<FileEntry, FormatError> {
    let ext_type = r.u32(OFF_FMAP_EXT_TYPE, "fmap_ext_type")?;
    let count = r.u32(OFF_FMAP_COUNT, "fmap_nextents")?;
    let map = match ext_type {
        EXT_SIMPLE => {
            if count == 0 || count as usize > MAX_EXTENTS {
                return Err(r.invalid(
                    OFF_FMAP_COUNT,
                    "fmap_nextents",
                    count.into(),
                    "a simple map holds 1 to 16 extents",
                ));
            }
            let extents = (0..count as usize)
                .map(|i| read_extent(r, OFF_FMAP_SE + i * EXTENT_LEN))
                .collect::<Result<Vec<_>, _>>()?;
            FileMap::Simple { extents }
        }
        EXT_INTERLEAVE => {
            if count != 1 {
                return Err(r.invalid(
                    OFF_FMAP_COUNT,
                    "fmap_niext",
                    count.into(),
                    "an interleaved map holds exactly 1 interleaved extent",
                ));
            }
            let nstrips = r.u64(OFF_IE_NSTRIPS, "ie_nstrips")?;
            if nstrips == 0 || nstrips as usize > MAX_EXTENTS {
                return Err(r.invalid(
                    OFF_IE_NSTRIPS,
                    "ie_nstrips",
                    nstrips,
                    "an interleaved extent has 1 to 16 strips",
                ));
            }
            let chunk_size = r.u64(OFF_IE_CHUNK, "ie_chunk_size")?;
            let strips = (0..nstrips as usize)
                .map(|i| read_extent(r, OFF_IE_STRIPS + i * EXTENT_LEN))
                .collect::<Result<Vec<_>, _>>()?;
            FileMap::Interleaved { chunk_size, strips }
        }
        other => {
            return Err(r.invalid(
                OFF_FMAP_EXT_TYPE,
                "fmap_ext_type",
                other.into(),
                "only 0 (simple) and 1 (interleave) exist",
            ));
        }
    };
    Ok(FileEntry {
        size: r.u64(OFF_FM_SIZE, "fm_size")?,
        flags: r.u32(OFF_FM_FLAGS, "fm_flags")?,
        uid: r.u32(OFF_FM_UID, "fm_uid")?,
        gid: r.u32(OFF_FM_GID, "fm_gid")?,
        mode: r.u32(OFF_FM_MODE, "fm_mode")?,
        path: r.path(OFF_FM_RELPATH, PATH_FIELD_LEN, "fm_relpath")?,
        map,
    })
}

fn write_extent(w: &mut Writer<'_>, off: usize, e: &Extent) {
    w.u64(off, e.devindex);
    w.u64(off + 8, e.offset);
    w.u64(off + 16, e.len);
}

fn encode_map(w: &mut Writer<'_>, map: &FileMap) {
    match map {
        FileMap::Simple { extents } => {
            assert!(extents.len() <= MAX_EXTENTS, "more than 16 extents");
            w.u32(OFF_FMAP_EXT_TYPE, EXT_SIMPLE);
            w.u32(OFF_FMAP_COUNT, extents.len() as u32);
            for (i, e) in extents.iter().enumerate() {
                write_extent(w, OFF_FMAP_SE + i * EXTENT_LEN, e);
            }
        }
        FileMap::Interleaved { chunk_size, strips } => {
            assert!(strips.len() <= MAX_EXTENTS, "more than 16 strips");
            w.u32(OFF_FMAP_EXT_TYPE, EXT_INTERLEAVE);
            w.u32(OFF_FMAP_COUNT, 1);
            w.u64(OFF_IE_NSTRIPS, strips.len() as u64);
            w.u64(OFF_IE_CHUNK, *chunk_size);
            for (i, e) in strips.iter().enumerate() {
                write_extent(w, OFF_IE_STRIPS + i * EXTENT_LEN, e);
            }
        }
    }
}
