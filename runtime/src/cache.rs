//! An on-disk cache of compiled guests (wasmtime's precompiled artifacts), so a platform that
//! restarts does not compile the same module again.
//!
//! An entry's name is the sha256 of the guest's bytes, what it was compiled as, and a hash of
//! the engine's compatibility settings (wasmtime version, target, configuration): another engine
//! never even looks at it. Each file holds a magic, the sha256 of the artifact and the artifact;
//! a file whose checksum does not match (a torn write, bit rot) is discarded and the guest
//! recompiled, and wasmtime itself refuses an artifact from another version or configuration.
//!
//! # Trust model
//! Loading an artifact runs its machine code as this process, so an entry is native code this
//! process will execute. The checksum proves an entry is intact, not who wrote it. An entry is
//! therefore used only if no one but the user running this process (and root, who can do
//! anything anyway) could have written it:
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
//!   renamed into place, all relative to the open directory.
//!
//! Other users can then neither plant an entry (they cannot write the directory), nor alter one
//! (they cannot write the files), nor redirect one (links are not followed).

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"FAMFSRC1";

/// Largest entry read back (an artifact of a 4 GiB module is far smaller).
const MAX_ENTRY: u64 = 1 << 30;

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
}

/// The sha256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
        Ok(ModuleCache { path, dir: Arc::new(fd) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The entry name for `bytes` compiled as `kind` on `engine`.
    pub(crate) fn key(bytes: &[u8], kind: &str, engine: &wasmtime::Engine) -> String {
        // DefaultHasher::new() has fixed keys: the same engine settings give the same name in
        // every process of this build (another build may differ; it then just recompiles).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{kind}-{:016x}", sha256_hex(bytes), h.finish())
    }

    fn name(key: &str) -> String {
        format!("{key}.cwasm")
    }

    /// The artifact stored under `key`, if there is one this user wrote (see the module docs)
    /// and its checksum holds. A damaged entry is removed; an untrusted one is left for
    /// [`put`](Self::put) to replace.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        let name = Self::name(key);
        let warn = |why: &str| {
            tracing::warn!(dir = %self.path.display(), entry = name, "not using a module cache entry: {why}; recompiling");
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(self.dir.as_fd(), &name, flags, Mode::empty()) {
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
        let mut file = Vec::new();
        if let Err(e) = std::fs::File::from(fd).take(MAX_ENTRY).read_to_end(&mut file) {
            warn(&format!("it cannot be read ({e})"));
            return None;
        }
        let ok = file.len() >= 40 && file[..8] == *MAGIC && Sha256::digest(&file[40..])[..] == file[8..40];
        if !ok {
            tracing::warn!(dir = %self.path.display(), entry = name, "discarding a damaged module cache entry");
            self.unlink(&name);
            return None;
        }
        Some(file.split_off(40))
    }

    /// Stores `artifact` under `key` (atomically: a new private file renamed into place).
    /// Failure only costs a recompilation later, so it is logged, not returned.
    pub(crate) fn put(&self, key: &str, artifact: &[u8]) {
        let name = Self::name(key);
        let tmp = format!(".{name}.{:016x}.tmp", fastrand::u64(..));
        let write = || -> std::io::Result<()> {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(self.dir.as_fd(), &tmp, flags, Mode::from_raw_mode(0o600))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(artifact))?;
            f.write_all(artifact)?;
            f.sync_data()?;
            rustix::fs::renameat(self.dir.as_fd(), &tmp, self.dir.as_fd(), &name)?;
            Ok(())
        };
        if let Err(e) = write() {
            self.unlink(&tmp);
            tracing::warn!(dir = %self.path.display(), "cannot write a module cache entry: {e}");
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
