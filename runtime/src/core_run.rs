//! Running a core module (wasm32-wasip1): WASI preview 1 plus the core-module `famfs:dataset`
//! imports ([`famfs_host_api::core_abi`]), `_start` called once in a fresh store.

use crate::engine::SandboxEngine;
use crate::limits::Limiter;
use crate::run::{self, Entry, Invocation, Metrics, Outcome, Pipes, Ran, RunError};
use famfs_host_api::{DatasetHost, DatasetView, fd_budget};
use std::time::Instant;
use wasmtime::{InstancePre, Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiView};

/// The store data of a core-module invocation.
pub struct CoreState {
    wasi: WasiP1Ctx,
    datasets: DatasetHost,
    limiter: Limiter,
    /// The guest's descriptor caps, promised to it while it runs.
    _descriptors: fd_budget::Reservation,
}

impl DatasetView for CoreState {
    fn dataset_host(&mut self) -> &mut DatasetHost {
        &mut self.datasets
    }
}

impl run::MediaWatch for CoreState {
    fn media_fault(&self) -> bool {
        self.datasets.has_media_error()
    }
}

/// A linker with WASI preview 1 and famfs:dataset, reusable across invocations.
pub(crate) fn linker(engine: &SandboxEngine) -> wasmtime::Result<Linker<CoreState>> {
    let mut linker: Linker<CoreState> = Linker::new(engine.engine());
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut CoreState| &mut h.wasi)?;
    // SAFETY: every engine famfs-run builds (`SandboxEngine::new`) has memory_may_move(false)
    // and the default on-demand allocator, as add_to_linker requires.
    unsafe { famfs_host_api::core_abi::add_to_linker(&mut linker)? };
    Ok(linker)
}

/// Runs the module's `_start` once, in a fresh store.
pub(crate) fn run(engine: &SandboxEngine, pre: &InstancePre<CoreState>, inv: Invocation) -> Outcome {
    run::outcome(&inv, |pipes, metrics| run_inner(engine, pre, &inv, pipes, metrics))
}

fn run_inner(
    engine: &SandboxEngine,
    pre: &InstancePre<CoreState>,
    inv: &Invocation,
    pipes: Option<&Pipes>,
    metrics: &mut Metrics,
) -> Ran {
    if let Entry::Handle { .. } = inv.entry {
        return Err(RunError::NeedsComponent { needs: "the handler world's `handle`".into() });
    }
    if !inv.famfs_dirs.is_empty() {
        return Err(RunError::NeedsComponent { needs: "WASI directories served from a famfs image".into() });
    }
    let descriptors = run::reserve_descriptors(inv)?;
    let mut wasi = run::wasi_builder(inv, pipes)?.build_p1();
    wasi.ctx().table.set_max_capacity(inv.limits.max_wasi_resources);
    let deadline = run::Deadline::of(inv);
    let mut datasets = DatasetHost::new(inv.catalog.clone(), inv.limits.host()).map_err(run::no_room_for_guest)?;
    datasets.set_interrupt(deadline.interrupt());
    let state = CoreState { wasi, datasets, limiter: Limiter::new(&inv.limits), _descriptors: descriptors };
    let mut store = Store::new(engine.engine(), state);
    store.limiter(|h| &mut h.limiter);
    run::limit_store(&mut store, engine, inv, &deadline)?;

    let t0 = Instant::now();
    let instance = pre.instantiate(&mut store).map_err(|e| classify(e, &store, inv))?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(|_| RunError::MissingExport {
        message: "the module exports no `_start` function (is it a wasm32-wasip1 command?)".into(),
    })?;
    metrics.instantiate_ms = run::ms(t0.elapsed());
    let t1 = Instant::now();
    let r = start.call(&mut store, ());
    metrics.run_ms = run::ms(t1.elapsed());
    metrics.fuel_used = run::fuel_used(&store, engine, inv);
    let h = store.data_mut();
    run::settle(metrics, h.datasets.mapper(), &h.limiter)?;
    match r {
        Ok(()) => Ok((0, None)),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok((exit.0, None)),
            None => Err(classify(e, &store, inv)),
        },
    }
}

fn classify(e: wasmtime::Error, store: &Store<CoreState>, inv: &Invocation) -> RunError {
    run::classify(e, store.data().limiter.denied, inv)
}
