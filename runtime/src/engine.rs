//! The wasmtime engine configuration every guest runs under (DESIGN §5, §7).

use famfs_host_api::guest_memory::TrackingMemoryCreator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances; the granularity of `--timeout`.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide options (the per-invocation limits are in [`crate::Limits`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineOptions {
    /// Count fuel, so invocations can be given a fuel budget. Costs some speed.
    pub fuel: bool,
}

/// The configured engines plus the thread that advances their epoch for timeouts.
///
/// Two wasmtime engines with the same settings but one: core modules run on one whose memories
/// are wasmtime's own (copy-on-write memory images, the fastest instantiation), components on
/// one whose memories are made by [`TrackingMemoryCreator`], so the host can find a
/// component's memory to map datasets into (DESIGN §5 item 3; that needs
/// `memory_init_cow(false)`, so data segments are copied at instantiation).
pub struct SandboxEngine {
    engine: Engine,
    component_engine: Engine,
    stop: Arc<AtomicBool>,
    options: EngineOptions,
}

impl SandboxEngine {
    /// Builds the engine:
    /// - memories never move (`memory_may_move(false)`) inside a 4 GiB reservation with a 2 GiB
    ///   guard, so bounds checks are elided and dataset mappings stay put (R5);
    /// - no pooling allocator (R6: slots would outlive instances);
    /// - epoch interruption for timeouts, fuel when asked, a bounded wasm stack;
    /// - for components, guest memories from [`TrackingMemoryCreator`] (see the type's docs).
    pub fn new(options: EngineOptions) -> wasmtime::Result<SandboxEngine> {
        let mut c = Self::config(options);
        let engine = Engine::new(&c)?;
        c.with_host_memory(Arc::new(TrackingMemoryCreator)).memory_init_cow(false);
        let component_engine = Engine::new(&c)?;
        // After the engine exists, so wasmtime's own signal handlers are installed first: the
        // SIGBUS guard chains to whatever was there, and the copy-on-write handler for shared
        // mappings runs ahead of wasmtime's SIGSEGV handler, to which it passes every other
        // fault. The one place the guard is installed.
        famfs_host_api::guard::install();
        // What a later `signals::reclaim` puts back if another library takes these signals.
        crate::signals::record();
        // wasmtime-wasi makes its own tokio runtime on first use when the caller has none (the
        // CLI), and panics if it cannot: make it now, while descriptors and threads are
        // plentiful, not later in a guest's first write to stdout.
        wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| ());
        let stop = Arc::new(AtomicBool::new(false));
        let (e, ce, s) = (engine.clone(), component_engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("famfs-run-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                    ce.increment_epoch();
                }
            })
            .map_err(wasmtime::Error::from)?;
        Ok(SandboxEngine { engine, component_engine, stop, options })
    }

    fn config(options: EngineOptions) -> Config {
        let mut c = Config::new();
        c.cranelift_opt_level(OptLevel::Speed)
            .memory_reservation(1 << 32)
            .memory_guard_size(2 << 30)
            .memory_reservation_for_growth(0)
            .memory_may_move(false)
            .epoch_interruption(true)
            .consume_fuel(options.fuel)
            .max_wasm_stack(1 << 20);
        c
    }

    /// The engine core modules run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine components run on (memories from [`TrackingMemoryCreator`]).
    pub fn component_engine(&self) -> &Engine {
        &self.component_engine
    }

    /// The options it was built with.
    pub fn options(&self) -> EngineOptions {
        self.options
    }
}

impl Drop for SandboxEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
