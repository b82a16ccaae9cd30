//! An on-disk cache of compiled guests (wasmtime's precompiled artifacts), so a platform that
//! restarts does not compile the same module again, and a warm call does not even read it.
//!
//! An entry's name is the sha256 of the guest's bytes, what it was compiled as, and a hash of
//! the engine's compatibility settings (wasmtime version, target, configuration): another engine
//! never even looks at it. An entry is wasmtime's artifact followed by a 48-byte trailer (a
//! magic, the artifact's length, and the sha256 of a sample of it: its first and last 64 KiB
//! and 64 pages spread between); it is memory-mapped when used, so only the pages a guest runs
//! are ever read, and wasmtime itself refuses an artifact from another version or
//! configuration.
//!
//! # Integrity, cheaply
//! A warm call must not read or hash hundreds of megabytes, so an entry is not checksummed
//! whole. It is whole because of how it is written (a new private file, synced, then renamed
//! into place: a crash leaves the old entry or none, never a torn one) and because no one else
//! can write it (the trust model below). The trailer catches what is left: a truncated or
//! extended file (its length), an entry in an older format, and gross damage in the sampled
//! pages. A bit flipped by the medium elsewhere is not detected; that is the file system's job,
//! as for every executable on the machine.
//!
//! Finding the entry must not hash the module either: [`ModuleCache::known_sha256`] maps a
//! module file's identity (device, inode, size, modification and change times) to the sha256
//! measured when it was last read. Any write to the file changes its change time, which no
//! user can set back, so a changed file is read and hashed again. An identity is only recorded
//! when its change time is more than [`RACY`] old, so a write within the file system's
//! timestamp granularity of the hash cannot go unnoticed (git's "racily clean" rule).
//!
//! # Trust model
//! Loading an artifact runs its machine code as this process, so an entry is native code this
//! process will execute. The trailer proves an entry is whole, not who wrote it. An entry (and
//! a recorded identity) is therefore used only if no one but the user running this process
//! (and root, who can do anything anyway) could have written it:
//!
//! - the cache directory is opened once, with `O_DIRECTORY | O_NOFOLLOW` (it is not a symbolic
//!   link), and must be owned by the effective user and writable by no one else (mode without
//!   group or other write); otherwise [`ModuleCache::open`] fails and says why;
//! - every entry is opened relative to that open directory with `O_NOFOLLOW` (no symbolic link,
//!   and no path component that could be swapped after the directory was checked), and must be
//!   a regular file owned by the effective user and writable by no one else. Anything else is
//!   refused with a warning saying why, and the guest is compiled afresh (and the entry
//!   replaced by one of our own);
//! - entries are written to a new file created `O_EXCL` with mode 0600 inside the directory and
//!   renamed into place, all relative to the open directory, and never written in place: a
//!   mapped entry stays what it was (an entry replaced or removed keeps its old inode alive for
//!   the runtimes that mapped it).
//!
//! Other users can then neither plant an entry (they cannot write the directory), nor alter one
//! (they cannot write the files), nor redirect one (links are not followed). The user's own
//! processes could truncate an entry another one has mapped; that costs the same user a crash
//! (SIGBUS on the lost pages), as truncating any running executable would.
//!
//! # Where, and how big
//! The command line keeps compiled guests in [`default_dir`] (as the wasmtime CLI keeps its own
//! cache in the user's cache directory) unless told another directory or none. A directory's
//! entries are kept under a size ([`DEFAULT_MAX_BYTES`], or [`ModuleCache::with_max_bytes`]):
//! storing an entry removes the least recently used ones beyond it (an entry's modification
//! time is its last use, refreshed at most hourly). An entry removed while mapped stays alive
//! for the runtimes that mapped it.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The trailer's magic: the second format (the first put a checksum of the whole artifact in
/// front, which forced every load to read and hash all of it).
const MAGIC: &[u8; 8] = b"FAMFSRC2";

/// The trailer: magic, artifact length (u64 little-endian), sha256 of the sample.
const TRAILER: usize = 8 + 8 + 32;

/// The sampled head and tail of an artifact.
const SAMPLE_ENDS: u64 = 64 << 10;

/// Pages sampled between the head and the tail.
const SAMPLE_PAGES: u64 = 64;

/// How old a module file's change time must be for its identity to be recorded (see the module
/// docs): longer than any file system's timestamp granularity.
pub const RACY: std::time::Duration = std::time::Duration::from_secs(2);

/// The size [`ModuleCache::open`] keeps a directory's entries under: room for thirty SQL guests
/// (264 MiB compiled each) and thousands of small ones.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Module identities kept (see [`ModuleCache::known_sha256`]); a forgotten one costs one
/// hashing of its module.
const MAX_IDENTITIES: usize = 4096;

/// How stale an entry's last-use time may be before a use refreshes it (one `futimens` an
/// hour, not one a call).
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The variable that names the cache directory for the command line (`--cache-dir`'s default)
/// and Python's `Runtime()` in place of [`default_dir`].
pub const DIR_ENV: &str = "FAMFS_RUN_CACHE";

/// The user's cache of compiled guests: `$XDG_CACHE_HOME/famfs-run/compiled`, else
/// `~/.cache/famfs-run/compiled` (the XDG base directory rules; a relative `XDG_CACHE_HOME` is
/// ignored, as they say). `None` without a home directory.
pub fn default_dir() -> Option<PathBuf> {
    crate::xdg::famfs_run_dir("XDG_CACHE_HOME", ".cache", "compiled")
}

/// Where a caller that defaults to the user's cache keeps compiled guests: [`DIR_ENV`] when set
/// (which must then be usable, as a directory given explicitly), else [`usable_default_dir`].
/// The command line reads [`DIR_ENV`] as its `--cache-dir` flag's default instead.
pub fn user_dir() -> Option<PathBuf> {
    match std::env::var_os(DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => usable_default_dir(),
    }
}

/// [`default_dir`] if it can be used (created if needed; see [`ModuleCache::open`]), else `None`
/// with a warning saying why (no home directory, a read-only one, another user's directory
/// under `sudo`, a directory others may write): running needs no cache, so callers that
/// default to the user's cache (the command line, Python) run without one.
pub fn usable_default_dir() -> Option<PathBuf> {
    let Some(dir) = default_dir() else {
        tracing::warn!(
            "no home directory (HOME, XDG_CACHE_HOME): compiling without a cache (give a cache directory to keep compiled guests)"
        );
        return None;
    };
    match ModuleCache::open(&dir) {
        Ok(_) => Some(dir),
        Err(e) => {
            tracing::warn!("compiling without a cache: {e} (or give another cache directory, or none)");
            None
        }
    }
}

/// Why a cache directory cannot be used.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The directory cannot be created or opened.
    #[error("cannot use {path} as the module cache: {cause}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        cause: std::io::Error,
    },
    /// The path is a symbolic link, or not a directory.
    #[error("the module cache {path} is a symbolic link or not a directory; give the real directory's path")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Another user owns the directory: its artifacts are code this process would run.
    #[error(
        "the module cache {path} belongs to uid {owner}, not to this user (uid {me}); compiled code in it would run as you: choose a directory of your own"
    )]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective user.
        me: u32,
    },
    /// Others may write the directory: its artifacts could not be trusted.
    #[error(
        "the module cache {path} is writable by group or others (mode {mode:o}); run `chmod go-w {path}` or choose a private directory"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A directory of compiled guests, held open.
#[derive(Clone, Debug)]
pub struct ModuleCache {
    path: PathBuf,
    dir: Arc<OwnedFd>,
    max_bytes: u64,
}

/// The sha256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who a module file is, as far as the kernel says: equal identities mean equal contents,
/// unless the file's change time is too recent to tell (see [`FileIdentity::is_racy`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileIdentity {
    /// The identity of the open file `fd`.
    pub fn of(fd: impl AsFd) -> std::io::Result<FileIdentity> {
        let st = rustix::fs::fstat(fd)?;
        Ok(FileIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size.max(0) as u64
    }

    /// Whether the file changed within [`RACY`] of now (or claims a change time in the
    /// future): a write in the same timestamp tick as a read could then leave this identity
    /// unchanged, so it must not be recorded.
    pub fn is_racy(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let changed = std::time::Duration::new(self.ctime.0.max(0) as u64, self.ctime.1.clamp(0, 999_999_999) as u32);
        self.ctime.0 < 0 || changed + RACY > now
    }

    fn name(&self) -> String {
        let (dev, ino, size) = (self.dev, self.ino, self.size);
        let ((ms, mn), (cs, cn)) = (self.mtime, self.ctime);
        format!("{dev:x}-{ino:x}-{size:x}-{ms:x}.{mn:x}-{cs:x}.{cn:x}.sha256")
    }
}

/// The byte ranges of an artifact of `len` bytes that the trailer's checksum covers.
fn sample_ranges(len: u64) -> Vec<std::ops::Range<u64>> {
    let mut ranges = Vec::with_capacity(SAMPLE_PAGES as usize + 2);
    if len <= 2 * SAMPLE_ENDS {
        ranges.push(0..len);
        return ranges;
    }
    ranges.push(0..SAMPLE_ENDS);
    let (inner, page) = (len - 2 * SAMPLE_ENDS, 4096);
    for i in 0..SAMPLE_PAGES {
        let at = SAMPLE_ENDS + inner * i / SAMPLE_PAGES;
        ranges.push(at..(at + page).min(len - SAMPLE_ENDS));
    }
    ranges.push(len - SAMPLE_ENDS..len);
    ranges
}

/// The sha256 of the artifact's length and its sampled ranges, read by `read(range, buf)`.
fn sample_digest(len: u64, mut read: impl FnMut(u64, &mut [u8]) -> std::io::Result<()>) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; SAMPLE_ENDS as usize];
    for r in sample_ranges(len) {
        let chunk = &mut buf[..(r.end - r.start) as usize];
        read(r.start, chunk)?;
        h.update(&*chunk);
    }
    Ok(h.finalize().into())
}

/// Reads exactly `buf.len()` bytes of `fd` at `offset`.
fn pread_exact(fd: impl AsFd, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(&fd, &mut *buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why an opened directory or entry cannot be trusted, if it cannot.
fn untrusted(st: &rustix::fs::Stat, want: FileType) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != want {
        return Some(format!("it is a {kind:?}, not a {want:?}"));
    }
    if st.st_uid != me {
        return Some(format!("it belongs to uid {}, not to this user (uid {me})", st.st_uid));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!("group or others may write it (mode {mode:o})"));
    }
    None
}

impl ModuleCache {
    /// Opens the cache directory `dir`, creating it (mode 0700) if needed. Fails when it is a
    /// symbolic link or not a directory, belongs to another user, or group or others may write
    /// it (see the module docs: its entries are code this process runs).
    pub fn open(dir: impl AsRef<Path>) -> Result<ModuleCache, CacheError> {
        let path = dir.as_ref().to_path_buf();
        let io = |cause: std::io::Error| CacheError::Io { path: path.clone(), cause };
        if std::fs::symlink_metadata(&path).is_err() {
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(&path)
                .map_err(io)?;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(rustix::fs::CWD, &path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(CacheError::NotADirectory { path }),
            Err(e) => return Err(io(e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(CacheError::NotOwned { path, owner: st.st_uid, me });
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(CacheError::NotPrivate { path, mode });
        }
        Ok(ModuleCache { path, dir: Arc::new(fd), max_bytes: DEFAULT_MAX_BYTES })
    }

    /// Keeps the entries under `max_bytes` in all (default [`DEFAULT_MAX_BYTES`]): storing one
    /// removes the least recently used beyond it, never the one just stored.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> ModuleCache {
        self.max_bytes = max_bytes;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The entry name for the guest whose bytes have sha256 `sha256` (hex), compiled as `kind`
    /// on `engine`.
    pub(crate) fn key(sha256: &str, kind: &str, engine: &wasmtime::Engine) -> String {
        // DefaultHasher::new() has fixed keys: the same engine settings give the same name in
        // every process of this build (another build may differ; it then just recompiles).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{sha256}-{kind}-{:016x}", h.finish())
    }

    fn name(key: &str) -> String {
        format!("{key}.cwasm")
    }

    /// Opens `name` in the directory if it is a regular file this user wrote (see the module
    /// docs); says why not (as a warning) when it exists but cannot be trusted.
    fn open_trusted(&self, name: &str) -> Option<OwnedFd> {
        let warn = |why: &str| {
            tracing::warn!(dir = %self.path.display(), entry = name, "not using a module cache entry: {why}; recompiling");
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(self.dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return None,
            Err(Errno::LOOP) => {
                warn("it is a symbolic link");
                return None;
            }
            Err(e) => {
                warn(&format!("it cannot be opened ({e})"));
                return None;
            }
        };
        let st = rustix::fs::fstat(&fd).ok()?;
        if let Some(why) = untrusted(&st, FileType::RegularFile) {
            warn(&why);
            return None;
        }
        Some(fd)
    }

    /// The artifact stored under `key`, open, if there is one this user wrote (see the module
    /// docs) and its trailer holds: the file, and the artifact's length (the file's first
    /// bytes; the trailer follows). A damaged entry is removed; an untrusted one is left for
    /// [`put`](Self::put) to replace.
    pub(crate) fn get(&self, key: &str) -> Option<(std::fs::File, u64)> {
        let name = Self::name(key);
        let fd = self.open_trusted(&name)?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let size = st.st_size as u64;
        let whole = || -> std::io::Result<Option<u64>> {
            if size < TRAILER as u64 {
                return Ok(None);
            }
            let mut trailer = [0u8; TRAILER];
            pread_exact(&fd, size - TRAILER as u64, &mut trailer)?;
            let len = u64::from_le_bytes(trailer[8..16].try_into().expect("8 bytes"));
            if trailer[..8] != *MAGIC || len != size - TRAILER as u64 {
                return Ok(None);
            }
            let digest = sample_digest(len, |at, buf| pread_exact(&fd, at, buf))?;
            Ok((digest[..] == trailer[16..]).then_some(len))
        };
        match whole() {
            Ok(Some(len)) => {
                let file = std::fs::File::from(fd);
                Self::touch(&file, st.st_mtime);
                Some((file, len))
            }
            Ok(None) => {
                tracing::warn!(dir = %self.path.display(), entry = name, "discarding a damaged or outdated module cache entry");
                self.unlink(&name);
                None
            }
            Err(e) => {
                tracing::warn!(dir = %self.path.display(), entry = name, "cannot read a module cache entry ({e}); recompiling");
                None
            }
        }
    }

    /// Stores `artifact` under `key` (atomically: a new private file renamed into place).
    /// Failure only costs a recompilation later, so it is logged, not returned.
    pub(crate) fn put(&self, key: &str, artifact: &[u8]) {
        let len = artifact.len() as u64;
        let mut trailer = Vec::with_capacity(TRAILER);
        trailer.extend_from_slice(MAGIC);
        trailer.extend_from_slice(&len.to_le_bytes());
        let digest = sample_digest(len, |at, buf| {
            buf.copy_from_slice(&artifact[at as usize..at as usize + buf.len()]);
            Ok(())
        })
        .expect("reading memory cannot fail");
        trailer.extend_from_slice(&digest);
        let name = Self::name(key);
        if self.write_atomically(&name, &[artifact, &trailer]) {
            self.trim(&name);
        }
    }

    /// Marks an entry used now (its modification time: see the module docs), unless its last
    /// mark, `mtime` (seconds, from the `fstat` the load made anyway), is within [`TOUCH_EVERY`].
    /// Failure only makes the entry look older.
    fn touch(file: &std::fs::File, mtime: i64) {
        let now = std::time::SystemTime::now();
        let now_secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let age = now_secs.saturating_sub(mtime);
        if !(0..TOUCH_EVERY.as_secs() as i64).contains(&age) {
            // Entries are mode 0600 and ours (open_trusted checked): the owner may set times.
            let _ = file.set_modified(now);
        }
    }

    /// Removes the least recently used entries (`*.cwasm`) until the rest fit in `max_bytes`,
    /// keeping `keep` (the entry just stored), and the oldest module identities (`*.sha256`, a
    /// new one per rebuilt module file) beyond [`MAX_IDENTITIES`]. Runs after a store only.
    fn trim(&self, keep: &str) {
        let Ok(mut dir) = rustix::fs::Dir::read_from(self.dir.as_fd()) else { return };
        let (mut entries, mut identities) = (Vec::new(), Vec::new());
        let mut total = 0u64;
        while let Some(Ok(entry)) = dir.read() {
            let Ok(name) = entry.file_name().to_str() else { continue };
            let entry = name.ends_with(".cwasm");
            if name.starts_with('.') || !(entry || name.ends_with(".sha256")) {
                continue;
            }
            let Ok(st) = rustix::fs::statat(self.dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            let (when, size) = ((st.st_mtime, st.st_mtime_nsec), st.st_size as u64);
            if !entry {
                identities.push((when, name.to_string()));
                continue;
            }
            total += size;
            if name != keep {
                entries.push((when, size, name.to_string()));
            }
        }
        entries.sort();
        for (_, size, name) in entries {
            if total <= self.max_bytes {
                break;
            }
            tracing::info!(dir = %self.path.display(), entry = name, "removing a least recently used module cache entry");
            self.unlink(&name);
            total -= size;
        }
        identities.sort();
        let extra = identities.len().saturating_sub(MAX_IDENTITIES);
        for (_, name) in &identities[..extra] {
            self.unlink(name);
        }
    }

    /// The sha256 recorded for the module file whose identity is `id`, if this user recorded
    /// one (see the module docs).
    pub fn known_sha256(&self, id: &FileIdentity) -> Option<String> {
        let fd = self.open_trusted(&id.name())?;
        let mut hex = [0u8; 65];
        let n = rustix::io::read(&fd, &mut hex).ok()?;
        let hex = std::str::from_utf8(&hex[..n]).ok()?;
        (n == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_string())
    }

    /// Records that the module file whose identity is `id` has sha256 `sha256`, unless the
    /// identity [is racy](FileIdentity::is_racy).
    pub fn remember_sha256(&self, id: &FileIdentity, sha256: &str) {
        if !id.is_racy() {
            self.write_atomically(&id.name(), &[sha256.as_bytes()]);
        }
    }

    /// Writes `parts` as the file `name`: a new private file, synced, renamed into place.
    /// Whether it was written (a failure is logged).
    fn write_atomically(&self, name: &str, parts: &[&[u8]]) -> bool {
        let tmp = format!(".{name}.{:016x}.tmp", fastrand::u64(..));
        let write = || -> std::io::Result<()> {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(self.dir.as_fd(), &tmp, flags, Mode::from_raw_mode(0o600))?;
            let mut f = std::fs::File::from(fd);
            for part in parts {
                f.write_all(part)?;
            }
            f.sync_data()?;
            rustix::fs::renameat(self.dir.as_fd(), &tmp, self.dir.as_fd(), name)?;
            Ok(())
        };
        match write() {
            Ok(()) => true,
            Err(e) => {
                self.unlink(&tmp);
                tracing::warn!(dir = %self.path.display(), "cannot write {name} in the module cache: {e}");
                false
            }
        }
    }

    /// Removes the entry under `key` (wasmtime refused it).
    pub(crate) fn remove(&self, key: &str) {
        self.unlink(&Self::name(key));
    }

    fn unlink(&self, name: &str) {
        let _ = rustix::fs::unlinkat(self.dir.as_fd(), name, AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_both_ends_and_stay_inside() {
        for len in [0, 1, 4096, 2 * SAMPLE_ENDS, 2 * SAMPLE_ENDS + 1, 277 << 20, (1 << 20) + 12345] {
            let r = sample_ranges(len);
            assert_eq!(r.first().map_or(0, |r| r.start), 0);
            assert_eq!(r.last().map_or(0, |r| r.end), len);
            assert!(r.iter().all(|r| r.start <= r.end && r.end <= len), "{len}: {r:?}");
            let sampled: u64 = r.iter().map(|r| r.end - r.start).sum();
            assert!(sampled <= 2 * SAMPLE_ENDS + SAMPLE_PAGES * 4096, "{len}");
        }
    }
}
