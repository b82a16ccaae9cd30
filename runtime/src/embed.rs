//! The library API for platforms that embed famfs-run (serverless function hosts, job runners).
//!
//! A [`Runtime`] owns the engines, the compiled-guest caches (in memory, and on disk when
//! given a directory) and a concurrency limit. It is cheap to clone and `Send + Sync`: share one
//! per process. Guests are compiled once ([`Runtime::load`]) and each invocation gets a fresh
//! instance from a pre-linked [`Program`] ([`Runtime::invoke`], async, on tokio).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! use famfs_runtime::{Entry, Runtime};
//!
//! let runtime = Runtime::builder().max_concurrency(4).build()?;
//! // A core module that exports `handle` (the handler world) would come from a file; this one
//! // is the smallest command there is: `_start` that returns.
//! let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x0a\x01\x06_start\0\0\x0a\x04\x01\x02\0\x0b";
//! let program = runtime.load(module, false)?;
//! let mut inv = runtime.invocation("hello");
//! inv.entry = Entry::Command;
//! let outcome = runtime.invoke(&program, inv).await;
//! assert_eq!(outcome.result?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok(())
//! # }
//! ```

use crate::cache::{CacheError, FileIdentity, ModuleCache};
use crate::engine::{EngineOptions, SandboxEngine};
use crate::limits::Limits;
use crate::program::{Program, ProgramKind};
use crate::run::{Cancel, Invocation, Outcome, RunError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Why a [`Runtime`] could not be built or a guest not loaded.
#[derive(Debug, Error)]
pub enum EmbedError {
    /// wasmtime refused the engine configuration.
    #[error("cannot build the wasmtime engine: {message}")]
    Engine {
        /// What wasmtime said.
        message: String,
    },
    /// The module cache directory cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A guest asked for by name is not installed (see [`crate::guests`]).
    #[error(transparent)]
    GuestNotFound(#[from] crate::guests::GuestNotFound),
    /// The guest file cannot be read.
    #[error("cannot read the guest {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        cause: std::io::Error,
    },
    /// The guest's bytes are not the ones the caller expected.
    #[error("{path} has sha256 {actual}, but {expected} was expected; refusing to run it")]
    Sha256Mismatch {
        /// The file.
        path: PathBuf,
        /// What the caller expected.
        expected: String,
        /// What the file has.
        actual: String,
    },
    /// Compiling or linking failed.
    #[error(transparent)]
    Load(#[from] RunError),
    /// The concurrency and the per-guest kernel-mapping cap ask for more of the process's
    /// kernel-mapping budget (half of `vm.max_map_count`) than is left.
    #[error(
        "{concurrency} concurrent invocations of up to {per_guest} kernel mappings each need {needed}; the process has {available} (half of vm.max_map_count): lower max_concurrency or max_kernel_mappings, or raise vm.max_map_count"
    )]
    KernelMappings {
        /// The concurrency asked for.
        concurrency: usize,
        /// `Limits::max_kernel_mappings`.
        per_guest: usize,
        /// Their product.
        needed: usize,
        /// The process's kernel-mapping budget.
        available: usize,
    },
    /// The concurrency and the per-guest descriptor caps ask for more of the process's
    /// descriptor budget (half of `RLIMIT_NOFILE`) than it has.
    #[error(
        "{concurrency} concurrent invocations of up to {per_guest} file descriptors each (max_open_datasets + max_wasi_resources) need {needed}; the process has {available} (half of RLIMIT_NOFILE): lower max_concurrency or those caps, or raise `ulimit -n`"
    )]
    Descriptors {
        /// The concurrency asked for.
        concurrency: usize,
        /// `Limits::descriptors()`.
        per_guest: usize,
        /// Their product.
        needed: usize,
        /// The process's descriptor budget.
        available: usize,
    },
    /// The concurrency and the per-guest mapping cap ask for more SIGBUS guard slots than the
    /// process has.
    #[error(
        "{concurrency} concurrent invocations of up to {per_guest} mappings each need {needed} SIGBUS guard slots; the process has {available}: lower max_concurrency or max_mappings"
    )]
    GuardSlots {
        /// The concurrency asked for.
        concurrency: usize,
        /// `Limits::max_mappings`.
        per_guest: usize,
        /// Their product.
        needed: usize,
        /// Slots not reserved by running guests.
        available: usize,
    },
}

/// Builds a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct RuntimeBuilder {
    limits: Limits,
    cache_dir: Option<PathBuf>,
    /// Set by [`cache_max_bytes`](Self::cache_max_bytes); otherwise the cache's default.
    cache_max_bytes: Option<u64>,
    /// Set by [`max_concurrency`](Self::max_concurrency); otherwise [`default_concurrency`].
    max_concurrency: Option<usize>,
    /// Set by [`cpus`](Self::cpus); otherwise the machine's.
    cpus: Option<usize>,
    fuel: bool,
}

/// The concurrency a [`Runtime`] gets unless told otherwise: 4 invocations per CPU, but never
/// more than the process can give each its caps at once: the SIGBUS guard's slots divided by
/// `max_mappings`, the kernel-mapping budget (half of `vm.max_map_count`) divided by
/// `max_kernel_mappings`, and the descriptor budget (half of `RLIMIT_NOFILE`) divided by
/// [`Limits::descriptors`]. At least 1.
pub fn default_concurrency(cpus: usize, limits: &Limits) -> usize {
    let by_slots = famfs_host_api::guard::CAPACITY / limits.max_mappings.max(1);
    let by_maps = famfs_host_api::map_budget::total() / limits.max_kernel_mappings.max(1);
    let by_fds = famfs_host_api::fd_budget::total() / limits.descriptors().max(1);
    cpus.saturating_mul(4).min(by_slots).min(by_maps).min(by_fds).max(1)
}

impl RuntimeBuilder {
    /// Default limits of every invocation made with [`Runtime::invocation`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Keep compiled guests in `dir` (created, mode 0700) across processes
    /// ([`crate::cache::default_dir`] is the user's).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Keep the cache directory's compiled guests under `bytes` in all, removing the least
    /// recently used (default [`crate::cache::DEFAULT_MAX_BYTES`]).
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = Some(bytes);
        self
    }

    /// At most `n` invocations run at once (at least 1); further [`Runtime::invoke`] calls wait.
    /// Default: [`default_concurrency`] of the CPUs and the limits.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// Sizes the default concurrency for `n` CPUs rather than the machine's count (a container
    /// given a share of a larger machine, for instance).
    pub fn cpus(mut self, n: usize) -> Self {
        self.cpus = Some(n.max(1));
        self
    }

    /// Count fuel, so invocations may have a fuel budget ([`Limits::fuel`]).
    pub fn fuel(mut self, fuel: bool) -> Self {
        self.fuel = fuel;
        self
    }

    /// Builds the runtime. Fails when `max_concurrency` guests could not each hold their caps
    /// at once: `max_mappings` SIGBUS guard slots (the process has
    /// [`famfs_host_api::guard::CAPACITY`]), `max_kernel_mappings` of the kernel-mapping
    /// budget and [`Limits::descriptors`] of the descriptor budget, so that the caps of
    /// concurrent guests always fit.
    ///
    /// First raises the process's soft `RLIMIT_NOFILE` to its hard limit
    /// ([`famfs_host_api::fd_budget::raise_limit`], as Go programs do at start): the soft limit
    /// is often 1,024, which leaves guests 512 descriptors.
    pub fn build(self) -> Result<Runtime, EmbedError> {
        if let Err(e) = famfs_host_api::fd_budget::raise_limit() {
            tracing::debug!("cannot raise RLIMIT_NOFILE: {e}");
        }
        let concurrency = self.max_concurrency.unwrap_or_else(|| {
            let cpus = self.cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            default_concurrency(cpus, &self.limits)
        });
        // Against what the process has in all, not what is unreserved now: another runtime's
        // running guests would make that a race. Each guest reserves its caps when it starts
        // (and fails then, with a message, if the process has given them to others).
        let (per_guest, available) = (self.limits.max_mappings, famfs_host_api::guard::CAPACITY);
        let needed = concurrency.saturating_mul(per_guest);
        if needed > available {
            return Err(EmbedError::GuardSlots { concurrency, per_guest, needed, available });
        }
        let (per_guest, available) = (self.limits.max_kernel_mappings, famfs_host_api::map_budget::total());
        let needed = concurrency.saturating_mul(per_guest);
        if needed > available {
            return Err(EmbedError::KernelMappings { concurrency, per_guest, needed, available });
        }
        let (per_guest, available) = (self.limits.descriptors(), famfs_host_api::fd_budget::total());
        let needed = concurrency.saturating_mul(per_guest);
        if needed > available {
            return Err(EmbedError::Descriptors { concurrency, per_guest, needed, available });
        }
        let engine = SandboxEngine::new(EngineOptions { fuel: self.fuel })
            .map_err(|e| EmbedError::Engine { message: format!("{e:#}") })?;
        let cache = self.cache_dir.as_deref().map(ModuleCache::open).transpose()?;
        let cache = cache.map(|c| match self.cache_max_bytes {
            Some(max) => c.with_max_bytes(max),
            None => c,
        });
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                cache,
                programs: Mutex::new(HashMap::new()),
                identities: Mutex::new(HashMap::new()),
                loads: LoadCounters::default(),
                permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
                limits: self.limits,
            }),
        })
    }
}

/// How this runtime's loads were served so far ([`Runtime::load_stats`]): what a warm call
/// should not do (read a module, compile one) is counted, so scripts and tests can tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadStats {
    /// Module files read whole and hashed (their identity was not known).
    pub modules_read: u64,
    /// Guests compiled.
    pub compiled: u64,
    /// Guests whose compiled code was mapped from the cache directory.
    pub from_disk_cache: u64,
    /// Loads answered by a guest this runtime had already loaded.
    pub from_memory: u64,
}

#[derive(Default)]
struct LoadCounters {
    modules_read: AtomicU64,
    compiled: AtomicU64,
    from_disk_cache: AtomicU64,
    from_memory: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An embeddable famfs-run: engines, compiled-guest caches, a concurrency limit.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: SandboxEngine,
    cache: Option<ModuleCache>,
    /// (sha256, as_component) → compiled program.
    programs: Mutex<HashMap<(String, bool), Arc<Program>>>,
    /// Module files already hashed: identity → sha256 (see [`crate::cache`] on identities).
    identities: Mutex<HashMap<FileIdentity, String>>,
    loads: LoadCounters,
    permits: Arc<tokio::sync::Semaphore>,
    limits: Limits,
}

impl Runtime {
    /// A builder with default limits, no disk cache, and [`default_concurrency`] invocations at
    /// once.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A runtime with the builder's defaults.
    pub fn new() -> Result<Runtime, EmbedError> {
        Runtime::builder().build()
    }

    /// The engines (for [`Program::run`] and tools).
    pub fn engine(&self) -> &SandboxEngine {
        &self.inner.engine
    }

    /// The default limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// A command invocation named `argv0` with this runtime's default limits (see
    /// [`Invocation::new`] for the rest).
    pub fn invocation(&self, argv0: impl Into<String>) -> Invocation {
        let mut inv = Invocation::new(argv0);
        inv.limits = self.inner.limits;
        inv
    }

    /// Compiles a guest, or returns the one already compiled from the same bytes (by sha256);
    /// with a cache directory, compiled code is also taken from and kept on disk. See
    /// [`Program::load`] for `as_component`.
    pub fn load(&self, bytes: &[u8], as_component: bool) -> Result<Arc<Program>, RunError> {
        self.load_hashed(bytes, crate::cache::sha256_hex(bytes), as_component)
    }

    fn load_hashed(&self, bytes: &[u8], sha256: String, as_component: bool) -> Result<Arc<Program>, RunError> {
        let key = (sha256, as_component);
        if let Some(p) = self.loaded(&key) {
            return Ok(p);
        }
        // Compile outside the lock: other guests keep loading meanwhile.
        let program =
            Program::load_hashed(&self.inner.engine, bytes, key.0.clone(), as_component, self.inner.cache.as_ref())?;
        bump(if program.from_cache() { &self.inner.loads.from_disk_cache } else { &self.inner.loads.compiled });
        Ok(self.keep(key, program))
    }

    fn loaded(&self, key: &(String, bool)) -> Option<Arc<Program>> {
        let p = self.inner.programs.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        if p.is_some() {
            bump(&self.inner.loads.from_memory);
        }
        p
    }

    /// The directory compiled guests are kept in across processes, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache.as_ref().map(ModuleCache::dir)
    }

    /// How this runtime's loads were served so far.
    pub fn load_stats(&self) -> LoadStats {
        let c = &self.inner.loads;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LoadStats {
            modules_read: get(&c.modules_read),
            compiled: get(&c.compiled),
            from_disk_cache: get(&c.from_disk_cache),
            from_memory: get(&c.from_memory),
        }
    }

    fn keep(&self, key: (String, bool), program: Program) -> Arc<Program> {
        let mut programs = self.inner.programs.lock().unwrap_or_else(|e| e.into_inner());
        programs.entry(key).or_insert_with(|| Arc::new(program)).clone()
    }

    /// [`load`](Self::load) from a file, refusing it unless its sha256 is `expected_sha256`
    /// (hex) when one is given.
    ///
    /// A file this runtime (or, with a cache directory, this user) already hashed, unchanged
    /// since, is neither read nor hashed again: its identity gives its sha256 (see
    /// [`crate::cache`]), and its compiled code comes from memory or the cache directory. A warm
    /// load of a large guest then costs a few system calls and mapping its compiled code.
    ///
    /// A bare name (`sql`) that is no file here is a bundled guest's ([`crate::guests`]).
    pub fn load_file(
        &self,
        path: &Path,
        expected_sha256: Option<&str>,
        as_component: bool,
    ) -> Result<Arc<Program>, EmbedError> {
        let found;
        let (path, file) = match std::fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && crate::guests::is_name(path) => {
                found = crate::guests::find(&path.to_string_lossy())?;
                let file = std::fs::File::open(&found).map_err(|cause| EmbedError::Read { path: found.clone(), cause });
                (found.as_path(), file?)
            }
            opened => (path, opened.map_err(|cause| EmbedError::Read { path: path.to_path_buf(), cause })?),
        };
        let read_err = |cause: std::io::Error| EmbedError::Read { path: path.to_path_buf(), cause };
        let id = FileIdentity::of(&file).map_err(read_err)?;
        let check = |actual: &str| match expected_sha256 {
            Some(expected) if !actual.eq_ignore_ascii_case(expected.trim()) => Err(EmbedError::Sha256Mismatch {
                path: path.to_path_buf(),
                expected: expected.trim().to_string(),
                actual: actual.to_string(),
            }),
            _ => Ok(()),
        };
        if let Some(sha256) = self.known_sha256(&id) {
            check(&sha256)?;
            let key = (sha256, as_component);
            if let Some(p) = self.loaded(&key) {
                return Ok(p);
            }
            if let Some(cache) = &self.inner.cache {
                let mut preamble = [0u8; 8];
                let n = std::os::unix::fs::FileExt::read_at(&file, &mut preamble, 0).map_err(read_err)?;
                let kind = ProgramKind::of(crate::program::is_component(&preamble[..n]), as_component);
                if let Some(program) = Program::load_from_cache(&self.inner.engine, &key.0, kind, cache)? {
                    bump(&self.inner.loads.from_disk_cache);
                    return Ok(self.keep(key, program));
                }
            }
        }
        let mut bytes = Vec::with_capacity(usize::try_from(id.size()).unwrap_or(0));
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(read_err)?;
        bump(&self.inner.loads.modules_read);
        let sha256 = crate::cache::sha256_hex(&bytes);
        check(&sha256)?;
        // The identity read before the bytes: a write since then changed the change time, so at
        // worst the bytes are newer than the identity says, and the next load reads them again.
        if !id.is_racy() {
            self.inner.identities.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), sha256.clone());
            if let Some(cache) = &self.inner.cache {
                cache.remember_sha256(&id, &sha256);
            }
        }
        Ok(self.load_hashed(&bytes, sha256, as_component)?)
    }

    /// The sha256 of the module file whose identity is `id`, if this runtime or the cache
    /// directory measured it.
    fn known_sha256(&self, id: &FileIdentity) -> Option<String> {
        let known = self.inner.identities.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        known.or_else(|| self.inner.cache.as_ref()?.known_sha256(id))
    }

    /// Runs one invocation of `program` on tokio's blocking pool, after waiting for a slot
    /// under the concurrency limit.
    ///
    /// Dropping the returned future cancels the invocation: the guest is interrupted within one
    /// epoch tick (10 ms) and its store is dropped. The invocation's own [`Cancel`] (if any)
    /// works too. Must be called within a tokio runtime.
    pub async fn invoke(&self, program: &Arc<Program>, mut inv: Invocation) -> Outcome {
        // Our own flag, a child of the caller's: dropping this future cancels this invocation
        // only, never others that share the caller's flag.
        let cancel = inv.cancel.as_ref().map_or_else(Cancel::new, Cancel::child);
        inv.cancel = Some(cancel.clone());
        let mut on_drop = CancelOnDrop(Some(cancel.clone()));
        let permit = match self.inner.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return failed(RunError::Setup { message: "the runtime is shutting down".into() }),
        };
        if cancel.is_cancelled() {
            return failed(RunError::Cancelled);
        }
        let (runtime, program) = (self.clone(), program.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            program.run(&runtime.inner.engine, inv)
        });
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => failed(RunError::Setup { message: format!("the invocation's thread failed: {e}") }),
        };
        on_drop.0 = None;
        outcome
    }

    /// Free slots under the concurrency limit right now.
    pub fn available_slots(&self) -> usize {
        self.inner.permits.available_permits()
    }
}

/// Raises the flag when the invoke future is dropped before it finished (cancellation);
/// disarmed (`None`) once the invocation is over.
struct CancelOnDrop(Option<Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.cancel();
        }
    }
}

fn failed(error: RunError) -> Outcome {
    Outcome { result: Err(error), metrics: Default::default(), stdout: None, stderr: None, reply: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn runtime_is_send_sync_and_clone() {
        assert_send_sync::<Runtime>();
    }
}
