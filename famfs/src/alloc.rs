//! Space allocation. famfs stores no free-space map: it rebuilds a bitmap of allocation units
//! from the log for every allocation session and for fsck (`famfs-format.md` §3).

use crate::fmap::{Extent, FileMap, MAX_EXTENTS};
use crate::log::{EntryBody, LogEntry};
use crate::namespace::Geometry;
use serde::Serialize;
use thiserror::Error;

/// One bit per allocation unit of the device.
#[derive(Clone, Debug)]
pub struct Bitmap {
    words: Vec<u64>,
    units: u64,
    unit: u64,
}

/// An extent that claims units an earlier entry (or the superblock/log) already holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collision {
    /// Log index of the later entry.
    pub index: u64,
    /// Device offset of the extent.
    pub offset: u64,
    /// Units claimed twice.
    pub units: u64,
}

impl Bitmap {
    /// All units of the device free except those of the superblock and log.
    pub fn new(g: &Geometry) -> Bitmap {
        let units = g.device_size / g.alloc_unit;
        let mut b = Bitmap { words: vec![0; units.div_ceil(64) as usize], units, unit: g.alloc_unit };
        b.set(0, g.data_start.div_ceil(g.alloc_unit).min(units));
        b
    }

    /// The bitmap of a log: every FILE entry's extents set. Returns the units claimed twice.
    /// Invalid entries and extents that run past the device are left out (fsck reports them).
    pub fn from_entries<'a>(
        g: &Geometry,
        entries: impl IntoIterator<Item = (u64, &'a LogEntry)>,
    ) -> (Bitmap, Vec<Collision>) {
        let mut b = Bitmap::new(g);
        let mut collisions = Vec::new();
        for (index, entry) in entries {
            let EntryBody::File(f) = &entry.body else { continue };
            for e in f.map.extents() {
                let first = e.offset / b.unit;
                let n = e.len.div_ceil(b.unit);
                if e.devindex != 0 || first.saturating_add(n) > b.units {
                    continue;
                }
                let dup = b.set(first, n);
                if dup > 0 {
                    collisions.push(Collision { index, offset: e.offset, units: dup });
                }
            }
        }
        (b, collisions)
    }

    fn get(&self, i: u64) -> bool {
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Marks `n` units from `first` used; returns how many already were.
    fn set(&mut self, first: u64, n: u64) -> u64 {
        let mut dup = 0;
        for i in first..first + n {
            if self.get(i) {
                dup += 1;
            }
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
        dup
    }

    fn clear(&mut self, first: u64, n: u64) {
        for i in first..first + n {
            self.words[(i / 64) as usize] &= !(1 << (i % 64));
        }
    }

    /// Units in use (the superblock and log included).
    pub fn used_units(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Units the device has.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The allocation unit in bytes.
    pub fn unit(&self) -> u64 {
        self.unit
    }

    /// First run of `n` free units starting at or after `from` and ending before `limit`.
    fn first_fit(&self, n: u64, from: u64, limit: u64) -> Option<u64> {
        let mut run = 0;
        let mut i = from;
        while i < limit {
            if self.get(i) {
                run = 0;
            } else {
                run += 1;
                if run == n {
                    return Some(i + 1 - n);
                }
            }
            i += 1;
        }
        None
    }

    /// Longest free run, in units.
    pub fn largest_free(&self) -> u64 {
        let (mut best, mut run) = (0, 0);
        for i in 0..self.units {
            if self.get(i) {
                run = 0;
            } else {
                run += 1;
                best = best.max(run);
            }
        }
        best
    }
}

/// Interleaved ("striped") allocation parameters, as famfs' `-N/-B/-C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interleave {
    /// Strips per file (1..=16).
    pub nstrips: u64,
    /// Buckets the device is cut into (nstrips..=64); each strip comes from its own bucket.
    pub nbuckets: u64,
    /// Chunk size: a power of two, multiple of the allocation unit.
    pub chunk_size: u64,
}

/// Allocation failures.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AllocError {
    /// Not enough contiguous space.
    #[error("out of space: {needed} bytes are needed but the largest free range is {largest} bytes")]
    NoSpace {
        /// Bytes asked for (rounded to the allocation unit).
        needed: u64,
        /// Largest free range.
        largest: u64,
    },
    /// Interleave parameters break a rule.
    #[error("interleave parameters: {0}")]
    BadInterleave(String),
}

/// First-fit allocation over a bitmap, with famfs' per-session cursor: each session starts
/// at unit 0 and moves past every allocation it makes (no wrap-around).
#[derive(Clone, Debug)]
pub struct Allocator {
    bitmap: Bitmap,
    cursor: u64,
}

impl Allocator {
    /// A session over `bitmap`.
    pub fn new(bitmap: Bitmap) -> Allocator {
        Allocator { bitmap, cursor: 0 }
    }

    /// The bitmap.
    pub fn bitmap(&self) -> &Bitmap {
        &self.bitmap
    }

    fn no_space(&self, needed: u64) -> AllocError {
        AllocError::NoSpace { needed, largest: self.bitmap.largest_free() * self.bitmap.unit }
    }

    /// One extent of `size` bytes rounded up to the allocation unit.
    pub fn alloc_simple(&mut self, size: u64) -> Result<Extent, AllocError> {
        let unit = self.bitmap.unit;
        let n = size.div_ceil(unit).max(1);
        let first = self.bitmap.first_fit(n, self.cursor, self.bitmap.units).ok_or_else(|| self.no_space(n * unit))?;
        self.bitmap.set(first, n);
        self.cursor = first + n;
        Ok(Extent::new(first * unit, n * unit))
    }

    /// An interleaved map for `size` bytes: `nstrips` strips of equal length, each from its own
    /// bucket, buckets visited in random order. Files smaller than one chunk get a simple
    /// extent, as in famfs.
    pub fn alloc_interleaved(&mut self, size: u64, p: &Interleave) -> Result<FileMap, AllocError> {
        let unit = self.bitmap.unit;
        check_interleave(p, unit)?;
        if size < p.chunk_size {
            return Ok(FileMap::Simple { extents: vec![self.alloc_simple(size)?] });
        }
        let size_units = size.div_ceil(unit);
        let chunk_units = p.chunk_size / unit;
        let stripes = size_units.div_ceil(p.nstrips * chunk_units);
        let strip_units = stripes * chunk_units;
        let bucket_units = self.bitmap.units / p.nbuckets;
        if bucket_units < strip_units {
            return Err(AllocError::BadInterleave(format!(
                "each of the {} buckets holds {} bytes, less than one {}-byte strip; use fewer buckets or a larger device",
                p.nbuckets,
                bucket_units * unit,
                strip_units * unit
            )));
        }
        let mut order: Vec<u64> = (0..p.nbuckets).collect();
        fastrand::shuffle(&mut order);
        let mut strips = Vec::with_capacity(p.nstrips as usize);
        for b in order {
            let start = b * bucket_units;
            if let Some(first) = self.bitmap.first_fit(strip_units, start, start + bucket_units) {
                self.bitmap.set(first, strip_units);
                strips.push(Extent::new(first * unit, strip_units * unit));
                if strips.len() as u64 == p.nstrips {
                    return Ok(FileMap::Interleaved { chunk_size: p.chunk_size, strips });
                }
            }
        }
        for s in &strips {
            self.bitmap.clear(s.offset / unit, strip_units);
        }
        Err(self.no_space(p.nstrips * strip_units * unit))
    }
}

fn check_interleave(p: &Interleave, unit: u64) -> Result<(), AllocError> {
    let bad = |m: &str| Err(AllocError::BadInterleave(m.to_string()));
    if p.nstrips == 0 || p.nstrips > MAX_EXTENTS as u64 {
        return bad("the strip count must be 1 to 16");
    }
    if p.nbuckets == 0 || p.nbuckets > 64 {
        return bad("the bucket count must be 1 to 64");
    }
    if p.nstrips > p.nbuckets {
        return bad("the strip count cannot exceed the bucket count");
    }
    if p.chunk_size == 0 || !p.chunk_size.is_power_of_two() || !p.chunk_size.is_multiple_of(unit) {
        return bad("the chunk size must be a power of two and a multiple of 2 MiB");
    }
    Ok(())
}
