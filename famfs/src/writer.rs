//! The master's writer: mkfs, mkdir, and creating files with their data, in the crash-safe
//! order of DESIGN §4: file data flushed, then the log entry (with its CRC) flushed, then the
//! header's `next_index`/`next_seqnum` flushed. A crash at any point leaves either the old
//! file system or the new one with the complete file: an entry past `next_index` is invisible
//! and its slot is reused, and space is never recorded anywhere but in the log.

use crate::alloc::{AllocError, Allocator, Bitmap, Interleave};
use crate::device::{Access, Device, DeviceKind};
use crate::fmap::FileMap;
use crate::fs::{Famfs, geometry, read_superblock};
use crate::identity::{Role, SystemIdentity};
use crate::log::{
    EntryBody, FM_ALL_HOSTS_RW, FileEntry, LOG_ENTRY_LEN, LOG_HEADER_LEN, LogEntry, LogHeader, MkdirEntry, entry_offset,
};
use crate::namespace::{FileMeta, Lookup, LookupError};
use crate::path::RelPath;
use crate::superblock::{ALLOC_UNIT, DEFAULT_LOG_LEN, FormatVersion, LOG_OFFSET, SUPERBLOCK_AREA, Superblock};
use crate::{Error, FormatError};
use std::fs::File;
use std::path::Path;

/// Owner and permissions of a new file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits (masked to 0o7777).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Attrs {
    /// `mode`, owned by `uid` and `gid`, each defaulting to the caller's effective id (what
    /// `famfsctl mkdir`/`cp` and the Python package give new files and directories).
    pub fn owned_by(mode: u32, uid: Option<u32>, gid: Option<u32>) -> Attrs {
        Attrs {
            mode,
            uid: uid.unwrap_or_else(|| rustix::process::geteuid().as_raw()),
            gid: gid.unwrap_or_else(|| rustix::process::getegid().as_raw()),
        }
    }
}

/// Where a new file's bytes come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A file, copied from offset 0 with `copy_file_range` where possible.
    File(&'a File),
    /// Bytes in memory.
    Bytes(&'a [u8]),
}

/// How a new file's space is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// One extent (famfs' default).
    #[default]
    Simple,
    /// Interleaved over strips.
    Interleaved(Interleave),
}

/// Options for [`mkfs`].
#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// For an image file: its new size (created if missing). `None` keeps the current size.
    pub size: Option<u64>,
    /// Log length: a power of two ≥ 8 MiB.
    pub log_len: u64,
    /// On-media version to write.
    pub format: FormatVersion,
    /// Overwrite an existing famfs.
    pub force: bool,
}

impl Default for MkfsOptions {
    fn default() -> Self {
        MkfsOptions { size: None, log_len: DEFAULT_LOG_LEN, format: FormatVersion::V48, force: false }
    }
}

/// Creates a famfs on an image file or device: an empty log, then the superblock, each flushed.
/// Refuses to overwrite a valid famfs (or one of another version) unless `force`.
pub fn mkfs(path: &Path, opts: &MkfsOptions, identity: &SystemIdentity) -> Result<Superblock, Error> {
    let bad = |m: String| Err(Error::Mkfs(m));
    if !opts.log_len.is_power_of_two() || opts.log_len < DEFAULT_LOG_LEN {
        return bad(format!(
            "the log length {} is not a power of two of at least 8 MiB (e.g. 8M, 16M, 256M)",
            opts.log_len
        ));
    }
    let min_size = LOG_OFFSET + opts.log_len + ALLOC_UNIT;
    if let Some(size) = opts.size {
        if size < min_size {
            return bad(format!(
                "--size {size} is too small: the superblock, the log and one 2 MiB file need {min_size} bytes"
            ));
        }
        if size % ALLOC_UNIT != 0 {
            return bad(format!("--size {size} is not a multiple of 2 MiB, famfs' allocation unit"));
        }
        if !path.exists() {
            File::create_new(path)
                .map_err(|cause| Error::Io { what: format!("create image {}", path.display()), cause })?;
        }
    }
    let device = Device::open(path, Access::ReadWrite)?;
    device.lock_exclusive()?;
    match read_superblock(&device) {
        Ok(old) if !opts.force => {
            return Err(Error::AlreadyFormatted { device: path.into(), uuid: Some(old.fs_uuid), version: old.version });
        }
        Err(Error::Format { error: FormatError::UnsupportedVersion { version, .. }, .. }) if !opts.force => {
            return Err(Error::AlreadyFormatted { device: path.into(), uuid: None, version });
        }
        _ => {}
    }
    if let Some(size) = opts.size {
        if device.kind() != DeviceKind::Image {
            return bad(format!(
                "--size applies to image files only; {} is a device of {} bytes",
                path.display(),
                device.size()
            ));
        }
        device.file().set_len(size).map_err(|cause| Error::Io { what: format!("resize {}", path.display()), cause })?;
    }
    // Re-measure after resizing.
    drop(device);
    let device = Device::open(path, Access::ReadWrite)?;
    device.lock_exclusive()?;
    if device.size() < min_size {
        return bad(format!(
            "{} holds {} bytes; a famfs with a {}-byte log needs at least {min_size} (use --size to grow an image)",
            path.display(),
            device.size(),
            opts.log_len
        ));
    }
    let sb = Superblock::new(opts.format, opts.log_len, device.size(), identity.uuid(), &path.display().to_string());
    // Log: zeroed, then the header. Flushed before the superblock that makes it reachable.
    write_zeros(&device, LOG_OFFSET, opts.log_len)?;
    device.write_all_at(&LogHeader::new(opts.log_len).encode(), LOG_OFFSET)?;
    device.sync_range(LOG_OFFSET, opts.log_len)?;
    // famfs leaves stale bytes in the rest of the superblock area; zero it so readers of
    // `.meta/.superblock` see nothing of an earlier file system.
    write_zeros(&device, 0, SUPERBLOCK_AREA)?;
    device.write_all_at(&sb.encode(), 0)?;
    device.sync_range(0, SUPERBLOCK_AREA)?;
    tracing::info!(device = %path.display(), uuid = %sb.fs_uuid, "made a famfs file system");
    Ok(sb)
}

fn write_zeros(device: &Device, offset: u64, len: u64) -> Result<(), Error> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK as usize];
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        device.write_all_at(&zeros[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

/// A writer session on a famfs: the device open read-write, the single-writer lock held, this
/// host the master, and the log replayed into a namespace and an allocation bitmap.
#[derive(Debug)]
pub struct Writer {
    fs: Famfs,
    alloc: Allocator,
}

impl Writer {
    /// Opens a famfs for writing. Fails if another writer holds the lock, if this host is a
    /// client, or if the log has an invalid entry (run fsck first).
    pub fn open(path: impl AsRef<Path>, identity: &SystemIdentity) -> Result<Writer, Error> {
        let device = Device::open(path.as_ref(), Access::ReadWrite)?;
        Self::from_device(device, identity)
    }

    /// As [`open`](Self::open), on a device opened read-write by the caller.
    pub fn from_device(device: Device, identity: &SystemIdentity) -> Result<Writer, Error> {
        device.lock_exclusive()?;
        let fs = Famfs::from_device(device)?;
        let sb = fs.superblock();
        if identity.role(sb) == Role::Client {
            return Err(Error::NotMaster {
                device: fs.device().path().into(),
                local: identity.uuid(),
                origin: identity.origin().to_string(),
                owner: sb.system_uuid,
            });
        }
        let h = fs.log_header();
        if h.next_seqnum != h.next_index {
            return Err(Error::Inconsistent(format!(
                "the log header's next_seqnum {} differs from next_index {}; appending would write invalid entries (run `famfsctl fsck`)",
                h.next_seqnum, h.next_index
            )));
        }
        if let Some(stop) = &fs.replay_report().stopped {
            return Err(Error::LogInvalid { index: stop.index, error: stop.error.clone() });
        }
        let valid = fs.entries().iter().enumerate().filter_map(|(i, e)| e.as_ref().ok().map(|e| (i as u64, e)));
        let (bitmap, _) = Bitmap::from_entries(&fs.geometry(), valid);
        Ok(Writer { fs, alloc: Allocator::new(bitmap) })
    }

    /// The file system as written so far.
    pub fn fs(&self) -> &Famfs {
        &self.fs
    }

    /// Ends the session, releasing the lock, and returns the up-to-date file system.
    pub fn into_fs(self) -> Famfs {
        self.fs
    }

    /// The allocator (for free-space reporting).
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    fn check_new(&self, path: &RelPath) -> Result<(), Error> {
        let ns = self.fs.namespace();
        if let Some(parent) = path.parent() {
            match ns.lookup(parent.as_str()) {
                Ok(Lookup::Dir(_)) => {}
                Ok(Lookup::File(_)) => return Err(LookupError::NotADirectory(parent.to_string()).into()),
                Err(LookupError::NotFound(_)) => {
                    return Err(Error::NoParent { path: path.to_string(), parent: parent.to_string() });
                }
                Err(e) => return Err(e.into()),
            }
        }
        if ns.lookup(path.as_str()).is_ok() {
            return Err(Error::Exists(path.to_string()));
        }
        if self.fs.log_header().is_full() {
            return Err(self.log_full());
        }
        Ok(())
    }

    fn log_full(&self) -> Error {
        let h = self.fs.log_header();
        Error::LogFull { slots: h.last_index + 1, log_len: h.log_len }
    }

    /// Creates one directory; its parent must exist.
    pub fn mkdir(&mut self, path: &RelPath, attrs: Attrs) -> Result<(), Error> {
        self.check_new(path)?;
        self.append(EntryBody::Mkdir(MkdirEntry {
            uid: attrs.uid,
            gid: attrs.gid,
            mode: attrs.mode & 0o7777,
            path: path.to_string(),
        }))
    }

    /// Creates a directory and any missing parents, one MKDIR entry each, top-down, as
    /// `famfs mkdir -p`. Existing directories are accepted. Returns the directories created.
    /// Checks the whole path and the free log slots first, so it fails before writing anything.
    pub fn mkdir_all(&mut self, path: &RelPath, attrs: Attrs) -> Result<Vec<RelPath>, Error> {
        let mut missing = Vec::new();
        let mut prefix: Option<RelPath> = None;
        for name in path.components() {
            let p = match &prefix {
                None => RelPath::from_log(name)?,
                Some(pre) => pre.join(name)?,
            };
            match self.fs.namespace().lookup(p.as_str()) {
                Ok(Lookup::Dir(_)) => {}
                Ok(Lookup::File(_)) => return Err(LookupError::NotADirectory(p.to_string()).into()),
                Err(_) => missing.push(p.clone()),
            }
            prefix = Some(p);
        }
        if self.fs.log_header().free_slots() < missing.len() as u64 {
            return Err(self.log_full());
        }
        for p in &missing {
            self.mkdir(p, attrs)?;
        }
        Ok(missing)
    }

    /// Creates a file of `size` bytes from `src`: checks the name, allocates, copies and
    /// flushes the data (zeroing the slack up to the end of its allocation units), then logs
    /// it. `progress` is called with the bytes copied so far.
    pub fn create_file(
        &mut self,
        path: &RelPath,
        src: Source<'_>,
        size: u64,
        attrs: Attrs,
        layout: Layout,
        progress: &mut dyn FnMut(u64),
    ) -> Result<FileMeta, Error> {
        if let Source::Bytes(b) = src
            && b.len() as u64 != size
        {
            return Err(Error::SourceChanged { path: path.to_string(), expected: size, got: b.len() as u64 });
        }
        self.create(path, size, attrs, layout, |w, map| w.copy_in(path, map, src, size, progress))
    }

    /// Creates a file of `size` bytes that `fill` writes, in order, into a [`FileSink`] over
    /// the file's new space (a serializer that knows its output size writes straight into the
    /// famfs, with no temporary copy). Crash-safe as [`create_file`](Self::create_file): the
    /// entry is logged only after `fill` wrote exactly `size` bytes and they were flushed; if
    /// `fill` fails or writes another amount, nothing is logged and the space stays free.
    pub fn create_file_with(
        &mut self,
        path: &RelPath,
        size: u64,
        attrs: Attrs,
        layout: Layout,
        fill: &mut dyn FnMut(&mut FileSink<'_>) -> std::io::Result<()>,
    ) -> Result<FileMeta, Error> {
        self.create(path, size, attrs, layout, |w, map| {
            let mut sink = FileSink { device: w.fs.device(), map, size, written: 0 };
            let filled = fill(&mut sink);
            let written = sink.written;
            match filled {
                Ok(()) if written == size => Ok(()),
                Ok(()) => Err(Error::SourceChanged { path: path.to_string(), expected: size, got: written }),
                Err(cause) => Err(Error::Io { what: format!("write '{path}'"), cause }),
            }
        })
    }

    /// Checks the name, allocates `size` bytes, has `write` put the data into the new space,
    /// seals it and logs the entry; frees the space again if anything fails before the entry.
    fn create(
        &mut self,
        path: &RelPath,
        size: u64,
        attrs: Attrs,
        layout: Layout,
        write: impl FnOnce(&Self, &FileMap) -> Result<(), Error>,
    ) -> Result<FileMeta, Error> {
        self.check_new(path)?;
        if size == 0 {
            return Err(Error::EmptyFile(path.to_string()));
        }
        let saved = self.alloc.clone();
        let map = match layout {
            Layout::Simple => self.alloc.alloc_simple(size).map(|e| FileMap::Simple { extents: vec![e] }),
            Layout::Interleaved(p) => self.alloc.alloc_interleaved(size, &p),
        }
        .map_err(|e| match e {
            AllocError::NoSpace { needed, largest } => Error::NoSpace { path: path.to_string(), needed, largest },
            AllocError::BadInterleave(m) => Error::Interleave(m),
        })?;
        let result = write(self, &map).and_then(|()| self.seal(&map, size)).and_then(|()| {
            self.append(EntryBody::File(FileEntry {
                size,
                flags: FM_ALL_HOSTS_RW,
                uid: attrs.uid,
                gid: attrs.gid,
                mode: attrs.mode & 0o7777,
                path: path.to_string(),
                map,
            }))
        });
        if let Err(e) = result {
            // Nothing was logged, so the space is still free on media; free it here too.
            self.alloc = saved;
            return Err(e);
        }
        Ok(self.fs.namespace().file(path.as_str())?.clone())
    }

    fn copy_in(
        &self,
        path: &RelPath,
        map: &FileMap,
        src: Source<'_>,
        size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let dev = self.fs.device();
        let mut copied = 0u64;
        for piece in map.pieces(0, size) {
            let mut done = 0;
            while done < piece.len {
                let n = match src {
                    Source::File(f) => {
                        dev.copy_from(f, piece.file_offset + done, piece.device_offset + done, piece.len - done)?
                    }
                    Source::Bytes(b) => {
                        let start = (piece.file_offset + done) as usize;
                        let n = (piece.len - done).min(64 << 20) as usize;
                        dev.write_all_at(&b[start..start + n], piece.device_offset + done)?;
                        n as u64
                    }
                };
                if n == 0 {
                    return Err(Error::SourceChanged { path: path.to_string(), expected: size, got: copied });
                }
                done += n;
                copied += n;
                progress(copied);
            }
        }
        Ok(())
    }

    /// After a file's `size` bytes are written: zeroes the slack after EOF, so no stale device
    /// bytes are readable through a mapping, and flushes the file's space.
    fn seal(&self, map: &FileMap, size: u64) -> Result<(), Error> {
        let dev = self.fs.device();
        for piece in map.pieces(size, map.capacity() - size) {
            write_zeros(dev, piece.device_offset, piece.len)?;
        }
        for e in map.extents() {
            dev.sync_range(e.offset, e.len)?;
        }
        Ok(())
    }

    /// Appends one entry: entry written and flushed, then the header counters.
    fn append(&mut self, body: EntryBody) -> Result<(), Error> {
        let mut header = *self.fs.log_header();
        if header.is_full() {
            return Err(self.log_full());
        }
        let index = header.next_index;
        let entry = LogEntry { seqnum: header.next_seqnum, body };
        let dev = self.fs.device();
        dev.write_all_at(&entry.encode(), entry_offset(index))?;
        dev.sync_range(entry_offset(index), LOG_ENTRY_LEN as u64)?;
        header.next_index += 1;
        header.next_seqnum += 1;
        dev.write_all_at(&header.encode(), LOG_OFFSET)?;
        dev.sync_range(LOG_OFFSET, LOG_HEADER_LEN as u64)?;
        let report = self.fs.record_appended(header, entry);
        debug_assert!(report.rejected.is_empty(), "writer logged an entry replay rejects: {report:?}");
        Ok(())
    }
}

/// Free space of a file system, from its log.
pub fn free_bytes(fs: &Famfs) -> u64 {
    let valid = fs.entries().iter().enumerate().filter_map(|(i, e)| e.as_ref().ok().map(|e| (i as u64, e)));
    let (b, _) = Bitmap::from_entries(&geometry(fs.device(), fs.superblock()), valid);
    (b.units() - b.used_units()) * b.unit()
}

/// Where [`Writer::create_file_with`] has a file's bytes written: each `write` goes to the next
/// bytes of the file, through its extent map, straight to the device. Writing past the size the
/// file was created with fails (`WriteZero`), leaving what was written.
pub struct FileSink<'a> {
    device: &'a Device,
    map: &'a FileMap,
    size: u64,
    written: u64,
}

impl FileSink<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl std::io::Write for FileSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.size - self.written;
        if buf.is_empty() {
            return Ok(0);
        }
        if room == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("more than the {} bytes the file was created with", self.size),
            ));
        }
        let n = (buf.len() as u64).min(room);
        let mut done = 0u64;
        for piece in self.map.pieces(self.written, n) {
            let from = done as usize;
            self.device
                .write_all_at(&buf[from..from + piece.len as usize], piece.device_offset)
                .map_err(std::io::Error::other)?;
            done += piece.len;
        }
        self.written += done;
        Ok(done as usize)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushed to media by the writer once the file is complete.
        Ok(())
    }
}
