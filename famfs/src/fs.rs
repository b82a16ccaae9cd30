//! An opened famfs: superblock, log and namespace of one device, and reading file bytes.

use crate::Error;
use crate::device::{Access, Device};
use crate::error::FormatError;
use crate::log::{LOG_ENTRY_LEN, LOG_HEADER_LEN, LogEntry, LogHeader, entry_offset};
use crate::namespace::{FileMeta, Geometry, Namespace, ReplayReport};
use crate::superblock::{LOG_OFFSET, SUPERBLOCK_LEN, Superblock};
use std::path::Path;

/// The superblock of `device`.
pub fn read_superblock(device: &Device) -> Result<Superblock, Error> {
    let mut buf = [0u8; SUPERBLOCK_LEN];
    let n = (device.size().min(SUPERBLOCK_LEN as u64)) as usize;
    device.invalidate_range(0, n as u64)?;
    device.read_exact_at(&mut buf[..n], 0)?;
    Superblock::decode(&buf[..n]).map_err(|e| Error::format(device, e))
}

/// The log header of `device`, checked against its superblock.
pub fn read_log_header(device: &Device, sb: &Superblock) -> Result<LogHeader, Error> {
    let mut buf = [0u8; LOG_HEADER_LEN];
    let n = device.size().saturating_sub(LOG_OFFSET).min(LOG_HEADER_LEN as u64) as usize;
    device.invalidate_range(LOG_OFFSET, n as u64)?;
    device.read_exact_at(&mut buf[..n], LOG_OFFSET)?;
    LogHeader::decode(&buf[..n], sb.log_len).map_err(|e| Error::format(device, e))
}

/// Reads and decodes entries `from..header.next_index`. An entry that fails validation is
/// re-read once after invalidating its cache lines, as famfs does for non-coherent memory.
pub fn read_log_entries(
    device: &Device,
    header: &LogHeader,
    from: u64,
) -> Result<Vec<Result<LogEntry, FormatError>>, Error> {
    let count = header.next_index.saturating_sub(from);
    if count == 0 {
        return Ok(Vec::new());
    }
    let start = entry_offset(from);
    let len = count.saturating_mul(LOG_ENTRY_LEN as u64);
    // A device cut short inside the entries still yields every entry before the cut; the
    // first cut entry then fails to decode with a `Truncated` error naming its field.
    let avail = len.min(device.size().saturating_sub(start));
    device.invalidate_range(start, avail)?;
    let mut buf = vec![0u8; avail as usize];
    device.read_exact_at(&mut buf, start)?;
    // Entries with bytes on the device, plus the first one past its end (which reports the
    // truncation): a header claiming more entries than the device holds costs nothing more.
    let decodable = count.min(avail.div_ceil(LOG_ENTRY_LEN as u64) + 1) as usize;
    let mut out = Vec::with_capacity(decodable);
    for i in 0..decodable {
        let index = from + i as u64;
        let bytes = buf.get(i * LOG_ENTRY_LEN..).map_or(&[][..], |b| &b[..b.len().min(LOG_ENTRY_LEN)]);
        let decoded = LogEntry::decode(bytes, index).or_else(|first| {
            let mut again = [0u8; LOG_ENTRY_LEN];
            let off = entry_offset(index);
            if bytes.len() < LOG_ENTRY_LEN {
                return Err(first);
            }
            match device.invalidate_range(off, LOG_ENTRY_LEN as u64).and_then(|_| device.read_exact_at(&mut again, off))
            {
                Ok(()) => LogEntry::decode(&again, index),
                Err(_) => Err(first),
            }
        });
        out.push(decoded);
    }
    Ok(out)
}

/// An opened famfs file system.
#[derive(Debug)]
pub struct Famfs {
    device: Device,
    sb: Superblock,
    header: LogHeader,
    entries: Vec<Result<LogEntry, FormatError>>,
    ns: Namespace,
    report: ReplayReport,
}

impl Famfs {
    /// Opens the famfs on an image file or device, read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Famfs, Error> {
        Self::from_device(Device::open(path, Access::ReadOnly)?)
    }

    /// Reads the superblock and log of an open device and replays the log.
    pub fn from_device(device: Device) -> Result<Famfs, Error> {
        let sb = read_superblock(&device)?;
        let header = read_log_header(&device, &sb)?;
        let entries = read_log_entries(&device, &header, 0)?;
        let mut ns = Namespace::new();
        let geometry = geometry(&device, &sb);
        let report = ns.replay(&entries, &geometry);
        for r in &report.rejected {
            tracing::warn!(index = r.index, path = %r.path, "log entry skipped: {}", r.why);
        }
        if let Some(s) = &report.stopped {
            tracing::warn!(index = s.index, "log replay stopped at an invalid entry: {}", s.error);
        }
        Ok(Famfs { device, sb, header, entries, ns, report })
    }

    /// Picks up entries another process appended since this one was opened or last refreshed
    /// (famfs clients run logplay for this). Fails if the device was re-made with mkfs.
    pub fn refresh(&mut self) -> Result<ReplayReport, Error> {
        let sb = read_superblock(&self.device)?;
        if sb.fs_uuid != self.sb.fs_uuid {
            return Err(Error::Replaced {
                device: self.device.path().to_path_buf(),
                old: self.sb.fs_uuid,
                new: sb.fs_uuid,
            });
        }
        let header = read_log_header(&self.device, &sb)?;
        let have = self.entries.len() as u64;
        let new = read_log_entries(&self.device, &header, have)?;
        let geometry = self.geometry();
        let from = self.entries.len();
        self.entries.extend(new);
        self.header = header;
        // A namespace stopped at an invalid entry replays nothing more (logplay semantics).
        let report = self.ns.replay(&self.entries[from..], &geometry);
        merge(&mut self.report, &report);
        Ok(report)
    }

    /// Whether the device's log moved on since this famfs was opened or last refreshed (new
    /// entries, or a new file system made over it): two small reads, for servers that check
    /// often and replay only when something changed.
    pub fn log_changed(&self) -> Result<bool, Error> {
        let sb = read_superblock(&self.device)?;
        if sb.fs_uuid != self.sb.fs_uuid {
            return Ok(true);
        }
        let header = read_log_header(&self.device, &sb)?;
        Ok(header.next_index != self.header.next_index || header.next_seqnum != self.header.next_seqnum)
    }

    pub(crate) fn record_appended(&mut self, header: LogHeader, entry: LogEntry) -> ReplayReport {
        let geometry = self.geometry();
        self.header = header;
        self.entries.push(Ok(entry));
        let from = self.entries.len() - 1;
        let report = self.ns.replay(&self.entries[from..], &geometry);
        merge(&mut self.report, &report);
        report
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The log header as last read.
    pub fn log_header(&self) -> &LogHeader {
        &self.header
    }

    /// Every entry `0..next_index`, decoded or with the reason it is invalid.
    pub fn entries(&self) -> &[Result<LogEntry, FormatError>] {
        &self.entries
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// What replaying the log did (skipped entries, where it stopped).
    pub fn replay_report(&self) -> &ReplayReport {
        &self.report
    }

    /// The device facts maps are checked against.
    pub fn geometry(&self) -> Geometry {
        geometry(&self.device, &self.sb)
    }

    /// Reads file bytes at `offset` into `buf`, through the file's map. Returns the bytes read:
    /// fewer than `buf.len()` only at the end of the file.
    pub fn read_at(&self, file: &FileMeta, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let len = (buf.len() as u64).min(file.size.saturating_sub(offset));
        let mut done = 0usize;
        for piece in file.map.pieces(offset, len) {
            let n = piece.len as usize;
            self.device.read_exact_at(&mut buf[done..done + n], piece.device_offset)?;
            done += n;
        }
        Ok(done)
    }

    /// Reads a whole file into memory.
    pub fn read_to_vec(&self, file: &FileMeta) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; usize::try_from(file.size).map_err(|_| Error::TooLarge(file.size))?];
        let n = self.read_at(file, 0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// A `Read` over a file's bytes.
    pub fn reader<'a>(&'a self, file: &'a FileMeta) -> FileReader<'a> {
        FileReader { fs: self, file, pos: 0 }
    }
}

fn merge(total: &mut ReplayReport, more: &ReplayReport) {
    total.entries += more.entries;
    total.new_files += more.new_files;
    total.new_dirs += more.new_dirs;
    total.existed += more.existed;
    total.rejected.extend(more.rejected.iter().cloned());
    if more.stopped.is_some() {
        total.stopped.clone_from(&more.stopped);
    }
}

pub(crate) fn geometry(device: &Device, sb: &Superblock) -> Geometry {
    Geometry { device_size: sb.dev_size.min(device.size()), data_start: sb.data_start(), alloc_unit: sb.alloc_unit }
}

/// Sequential reader over one file; see [`Famfs::reader`].
pub struct FileReader<'a> {
    fs: &'a Famfs,
    file: &'a FileMeta,
    pos: u64,
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fs.read_at(self.file, self.pos, buf).map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}
