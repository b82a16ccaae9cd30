//! An on-disk cache of compiled guests (wasmtime's precompiled artifacts), so a platform that
//! restarts does not compile the same module again.
//!
//! An entry's name is the sha256 of the guest's bytes, what it was compiled as, and a hash of
//! the engine's compatibility settings (wasmtime version, target, configuration): another engine
//! never even looks at it. Each file holds a magic, the sha256 of the artifact and the artifact;
//! a file whose checksum does not match (a torn write, bit rot) is discarded and the guest
//! recompiled, and wasmtime itself refuses an artifact from another version or configuration.
//!
//! Trust: loading an artifact runs its machine code, so the cache directory must be writable by
//! this user only. [`ModuleCache::open`] refuses a directory that group or others can write.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

const MAGIC: &[u8; 8] = b"FAMFSRC1";

/// Why a cache directory cannot be used.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The directory cannot be created or read.
    #[error("cannot use {path} as the module cache: {cause}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        cause: std::io::Error,
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

/// A directory of compiled guests.
#[derive(Clone, Debug)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// The sha256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModuleCache {
    /// Opens (creating it with mode 0700 if needed) the cache directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<ModuleCache, CacheError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |cause| CacheError::Io { path: dir.clone(), cause };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io)?;
        let mode = std::fs::metadata(&dir).map_err(io)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(CacheError::NotPrivate { path: dir, mode: mode & 0o7777 });
        }
        Ok(ModuleCache { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry name for `bytes` compiled as `kind` on `engine`.
    pub(crate) fn key(bytes: &[u8], kind: &str, engine: &wasmtime::Engine) -> String {
        // DefaultHasher::new() has fixed keys: the same engine settings give the same name in
        // every process of this build (another build may differ; it then just recompiles).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{kind}-{:016x}", sha256_hex(bytes), h.finish())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The artifact stored under `key`, if there is one and its checksum holds. A damaged entry
    /// is removed.
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.path(key);
        let mut file = std::fs::read(&path).ok()?;
        let ok = file.len() >= 40 && file[..8] == *MAGIC && Sha256::digest(&file[40..])[..] == file[8..40];
        if !ok {
            tracing::warn!(path = %path.display(), "discarding a damaged module cache entry");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(file.split_off(40))
    }

    /// Stores `artifact` under `key` (atomically: a temporary file renamed into place). Failure
    /// only costs a recompilation later, so it is logged, not returned.
    pub(crate) fn put(&self, key: &str, artifact: &[u8]) {
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(MAGIC)?;
            tmp.write_all(&Sha256::digest(artifact))?;
            tmp.write_all(artifact)?;
            tmp.as_file().sync_data()?;
            tmp.persist(self.path(key)).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(dir = %self.dir.display(), "cannot write a module cache entry: {e}");
        }
    }

    /// Removes the entry under `key` (wasmtime refused it).
    pub(crate) fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }
}
