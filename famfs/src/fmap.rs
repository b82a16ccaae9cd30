//! File maps: which device byte ranges hold a file's bytes (`famfs-format.md` §2.4).

use serde::Serialize;
use thiserror::Error;

/// Most simple extents (or interleave strips) one log entry can hold.
pub const MAX_EXTENTS: usize = 16;

/// A contiguous device range (`famfs_simple_extent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Device index; always 0 (single-device famfs).
    pub devindex: u64,
    /// Device byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Extent {
    /// A range on device 0.
    pub fn new(offset: u64, len: u64) -> Extent {
        Extent { devindex: 0, offset, len }
    }

    /// One past the last byte, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// A file's map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileMap {
    /// Extents concatenated in order.
    Simple {
        /// 1 to 16 extents.
        extents: Vec<Extent>,
    },
    /// One interleaved extent: the file is cut into `chunk_size` chunks dealt round-robin over
    /// the strips.
    Interleaved {
        /// Chunk size: a power of two and a multiple of the allocation unit.
        chunk_size: u64,
        /// 1 to 16 strips, all the same length.
        strips: Vec<Extent>,
    },
}

/// A piece of a file range that is contiguous on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Piece {
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset on the device.
    pub device_offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Why a decoded map cannot be used for a file on this device.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MapError {
    /// An extent is on a device other than 0.
    #[error("extent {index} is on device {devindex}; only device 0 exists")]
    DevIndex {
        /// Extent or strip number.
        index: usize,
        /// Its devindex.
        devindex: u64,
    },
    /// An extent is not aligned to the allocation unit.
    #[error(
        "extent {index} (offset {offset:#x}, length {len:#x}) is not aligned to the {alloc_unit:#x}-byte allocation unit"
    )]
    Misaligned {
        /// Extent or strip number.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The allocation unit.
        alloc_unit: u64,
    },
    /// An extent is empty.
    #[error("extent {index} has length 0")]
    Empty {
        /// Extent or strip number.
        index: usize,
    },
    /// An extent overlaps the superblock or the log.
    #[error("extent {index} (offset {offset:#x}) overlaps the superblock or log, which end at {data_start:#x}")]
    InMetadata {
        /// Extent or strip number.
        index: usize,
        /// Its offset.
        offset: u64,
        /// First byte usable for data.
        data_start: u64,
    },
    /// An extent runs past the end of the device.
    #[error("extent {index} (offset {offset:#x}, length {len:#x}) runs past the end of the {device_size}-byte device")]
    BeyondDevice {
        /// Extent or strip number.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// Device size.
        device_size: u64,
    },
    /// The map holds fewer bytes than the file size.
    #[error("the map holds {capacity} bytes but the file is {size} bytes")]
    TooSmall {
        /// Bytes the map can hold.
        capacity: u64,
        /// File size.
        size: u64,
    },
    /// Bad interleave geometry.
    #[error("interleaved map: {0}")]
    Interleave(&'static str),
    /// The file size is zero (famfs never creates empty files).
    #[error("the file size is 0; famfs files are never empty")]
    EmptyFile,
}

impl FileMap {
    /// The extents (or strips) of the map.
    pub fn extents(&self) -> &[Extent] {
        match self {
            FileMap::Simple { extents } => extents,
            FileMap::Interleaved { strips, .. } => strips,
        }
    }

    /// Total bytes the map can hold.
    pub fn capacity(&self) -> u64 {
        self.extents().iter().fold(0u64, |a, e| a.saturating_add(e.len))
    }

    /// Checks the map can safely serve a file of `size` bytes on a device of `device_size`
    /// bytes whose data area starts at `data_start`: every extent on device 0, aligned to
    /// `alloc_unit`, non-empty, after the log, inside the device; interleave geometry sane; the
    /// map at least as large as the file. Everything the byte-range functions below rely on.
    pub fn validate(&self, size: u64, device_size: u64, data_start: u64, alloc_unit: u64) -> Result<(), MapError> {
        if size == 0 {
            return Err(MapError::EmptyFile);
        }
        for (index, e) in self.extents().iter().enumerate() {
            if e.devindex != 0 {
                return Err(MapError::DevIndex { index, devindex: e.devindex });
            }
            if e.len == 0 {
                return Err(MapError::Empty { index });
            }
            if e.offset % alloc_unit != 0 || e.len % alloc_unit != 0 {
                return Err(MapError::Misaligned { index, offset: e.offset, len: e.len, alloc_unit });
            }
            if e.offset < data_start {
                return Err(MapError::InMetadata { index, offset: e.offset, data_start });
            }
            if e.end().is_none_or(|end| end > device_size) {
                return Err(MapError::BeyondDevice { index, offset: e.offset, len: e.len, device_size });
            }
        }
        if let FileMap::Interleaved { chunk_size, strips } = self {
            if *chunk_size == 0 || !chunk_size.is_power_of_two() || chunk_size % alloc_unit != 0 {
                return Err(MapError::Interleave(
                    "the chunk size must be a power of two and a multiple of the allocation unit",
                ));
            }
            let len = strips[0].len;
            if strips.iter().any(|s| s.len != len) {
                return Err(MapError::Interleave("all strips must have the same length"));
            }
            if len % chunk_size != 0 {
                return Err(MapError::Interleave("the strip length must be a multiple of the chunk size"));
            }
        }
        let capacity = self.capacity();
        if capacity < size {
            return Err(MapError::TooSmall { capacity, size });
        }
        Ok(())
    }

    /// The device pieces holding file bytes `offset .. offset + len`, in file order.
    /// The range must lie within [`capacity`](Self::capacity) of a map that passed
    /// [`validate`](Self::validate); pieces past the capacity are not produced.
    pub fn pieces(&self, offset: u64, len: u64) -> Pieces<'_> {
        Pieces { map: self, pos: offset, end: offset.saturating_add(len).min(self.capacity()) }
    }

    /// The device offset of file byte `file_off` and how many bytes from there are contiguous
    /// on the device (within one extent or chunk).
    fn locate(&self, file_off: u64) -> Option<(u64, u64)> {
        match self {
            FileMap::Simple { extents } => {
                let mut base = 0u64;
                for e in extents {
                    if file_off < base + e.len {
                        let within = file_off - base;
                        return Some((e.offset + within, e.len - within));
                    }
                    base += e.len;
                }
                None
            }
            FileMap::Interleaved { chunk_size, strips } => {
                // The interleave formula of the famfs kernel code (famfs-format.md §2.4).
                let nstrips = strips.len() as u64;
                let chunk = file_off / chunk_size;
                let within = file_off % chunk_size;
                let strip = &strips[(chunk % nstrips) as usize];
                let stripe = chunk / nstrips;
                let in_strip = stripe * chunk_size + within;
                (in_strip < strip.len).then(|| (strip.offset + in_strip, chunk_size - within))
            }
        }
    }
}

/// Iterator over the device pieces of a file range; see [`FileMap::pieces`].
pub struct Pieces<'a> {
    map: &'a FileMap,
    pos: u64,
    end: u64,
}

impl Iterator for Pieces<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.pos >= self.end {
            return None;
        }
        let (device_offset, contiguous) = self.map.locate(self.pos)?;
        let len = contiguous.min(self.end - self.pos);
        let piece = Piece { file_offset: self.pos, device_offset, len };
        self.pos += len;
        Some(piece)
    }
}
