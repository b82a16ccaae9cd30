//! Running a component: WASI preview 2 (read-only preopens, or read-only files straight from the
//! famfs image, [`crate::wasi_fs`]) plus the `famfs:dataset` bindings
//! ([`famfs_host_api::component`]); `wasi:cli/run` or the handler world's `handle` called once
//! in a fresh store.

use crate::engine::SandboxEngine;
use crate::limits::Limiter;
use crate::run::{self, Entry, Invocation, Metrics, Outcome, Pipes, Ran, RunError};
use crate::wasi_fs::{FamfsDirs, WasiFamfsView};
use famfs_host_api::component::{ComponentHost, ComponentView, HandlerPre};
use famfs_host_api::{fd_budget, guest_memory};
use std::sync::OnceLock;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

/// The store data of a component invocation.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    host: ComponentHost,
    limiter: Limiter,
    famfs_dirs: Option<FamfsDirs>,
    /// The guest's descriptor caps, promised to it while it runs.
    _descriptors: fd_budget::Reservation,
}

impl WasiFamfsView for ComponentState {
    fn famfs_dirs(&self) -> Option<&FamfsDirs> {
        self.famfs_dirs.as_ref()
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ComponentView for ComponentState {
    fn component_host(&mut self) -> &mut ComponentHost {
        &mut self.host
    }
}

impl run::MediaWatch for ComponentState {
    fn media_fault(&self) -> bool {
        self.host.has_media_error()
    }
}

/// A compiled component, linked (lazily, once each) against WASI preview 2 with host-directory
/// preopens, and against the same with `wasi:filesystem` served from the famfs image instead.
pub(crate) struct ComponentProgram {
    component: Component,
    /// Linked with wasmtime-wasi's file system (host-directory preopens).
    host_dirs: OnceLock<Result<InstancePre<ComponentState>, RunError>>,
    /// Linked with the famfs file system ([`crate::wasi_fs`]).
    famfs_dirs: OnceLock<Result<InstancePre<ComponentState>, RunError>>,
}

impl ComponentProgram {
    pub(crate) fn new(component: Component) -> ComponentProgram {
        ComponentProgram { component, host_dirs: OnceLock::new(), famfs_dirs: OnceLock::new() }
    }

    fn link(
        engine: &SandboxEngine,
        component: &Component,
        famfs_fs: bool,
    ) -> Result<InstancePre<ComponentState>, RunError> {
        let setup = |e: wasmtime::Error| RunError::Setup { message: format!("{e:#}") };
        let mut linker = Linker::new(engine.component_engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
        if famfs_fs {
            crate::wasi_fs::add_to_linker(&mut linker).map_err(setup)?;
        }
        // SAFETY: the component engine keeps memories in place, uses no pooling allocator and
        // makes its memories with TrackingMemoryCreator; `run` captures them at instantiation
        // and hands them to the ComponentHost (add_to_linker's contract).
        unsafe { famfs_host_api::component::add_to_linker(&mut linker) }.map_err(setup)?;
        linker.instantiate_pre(component).map_err(|e| RunError::Link { message: format!("{e:#}") })
    }

    fn pre(&self, engine: &SandboxEngine, famfs_fs: bool) -> Result<&InstancePre<ComponentState>, RunError> {
        let cell = if famfs_fs { &self.famfs_dirs } else { &self.host_dirs };
        cell.get_or_init(|| Self::link(engine, &self.component, famfs_fs)).as_ref().map_err(Clone::clone)
    }
}

/// The famfs directories an invocation asks for, checked against its catalog's famfs.
fn famfs_dirs(inv: &Invocation) -> Result<Option<FamfsDirs>, RunError> {
    if inv.famfs_dirs.is_empty() {
        return Ok(None);
    }
    let Some(fs) = inv.catalog.famfs() else {
        return Err(RunError::Setup {
            message: "WASI directories served from famfs need a famfs image or dax device source (--device)".into(),
        });
    };
    FamfsDirs::new(fs.clone(), &inv.famfs_dirs).map(Some).map_err(|e| RunError::Setup { message: e.to_string() })
}

/// Runs the component once, in a fresh store.
pub(crate) fn run(engine: &SandboxEngine, program: &ComponentProgram, inv: Invocation) -> Outcome {
    run::outcome(&inv, |pipes, metrics| run_inner(engine, program, &inv, pipes, metrics))
}

/// The name of the component's `wasi:cli/run` export, whatever its version.
fn run_export(component: &Component, engine: &wasmtime::Engine) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name)
        .find(|n| n.starts_with("wasi:cli/run@"))
        .map(String::from)
}

/// What the guest's entry returned: Ok(exit code, reply) or the handler's own error message.
type Returned = Result<(i32, Option<Vec<u8>>), String>;

fn run_inner(
    engine: &SandboxEngine,
    program: &ComponentProgram,
    inv: &Invocation,
    pipes: Option<&Pipes>,
    metrics: &mut Metrics,
) -> Ran {
    let famfs_dirs = famfs_dirs(inv)?;
    let pre = program.pre(engine, famfs_dirs.is_some())?.clone();
    let component = &program.component;
    let descriptors = run::reserve_descriptors(inv)?;
    let wasi = run::wasi_builder(inv, pipes)?.build();
    let mut table = ResourceTable::new();
    table.set_max_capacity(inv.limits.max_wasi_resources);
    let deadline = run::Deadline::of(inv);
    let mut host = ComponentHost::new(inv.catalog.clone(), inv.limits.host()).map_err(run::no_room_for_guest)?;
    host.set_interrupt(deadline.interrupt());
    let limiter = Limiter::new(&inv.limits);
    let state = ComponentState { wasi, table, host, limiter, famfs_dirs, _descriptors: descriptors };
    let mut store = Store::new(engine.component_engine(), state);
    store.limiter(|s| &mut s.limiter);
    run::limit_store(&mut store, engine, inv, &deadline)?;

    let t0 = Instant::now();
    let r: wasmtime::Result<Returned> = match &inv.entry {
        Entry::Command => {
            if run_export(component, engine.component_engine()).is_none() {
                return Err(RunError::MissingExport {
                    message: "the component exports no `wasi:cli/run` (build a command for wasm32-wasip2, or call a handler with --invoke handle)".into(),
                });
            }
            let pre = CommandPre::new(pre).map_err(|e| RunError::Link { message: format!("{e:#}") })?;
            let (cmd, memories) = guest_memory::capture(|| pre.instantiate(&mut store));
            let cmd = cmd.map_err(|e| classify(e, &store, inv))?;
            store.data_mut().host.set_memories(memories);
            metrics.instantiate_ms = run::ms(t0.elapsed());
            let t1 = Instant::now();
            let r = cmd.wasi_cli_run().call_run(&mut store);
            metrics.run_ms = run::ms(t1.elapsed());
            r.map(|exit| Ok((if exit.is_ok() { 0 } else { 1 }, None)))
        }
        Entry::Handle { input } => {
            let pre = HandlerPre::new(pre).map_err(|_| RunError::MissingExport {
                message: "the guest exports no `handle` function (build it for the famfs:dataset handler world)".into(),
            })?;
            let (handler, memories) = guest_memory::capture(|| pre.instantiate(&mut store));
            let handler = handler.map_err(|e| classify(e, &store, inv))?;
            store.data_mut().host.set_memories(memories);
            metrics.instantiate_ms = run::ms(t0.elapsed());
            let t1 = Instant::now();
            let r = handler.call_handle(&mut store, input);
            metrics.run_ms = run::ms(t1.elapsed());
            // Ok(Err(message)): the handler's own error, reported after the media check.
            r.map(|reply| reply.map(|bytes| (0, Some(bytes))))
        }
    };
    metrics.fuel_used = run::fuel_used(&store, engine, inv);
    let s = store.data_mut();
    run::settle(metrics, s.host.mapper(), &s.limiter)?;
    match r {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(message)) => Err(RunError::Handler { message }),
        Err(e) => match (e.downcast_ref::<I32Exit>(), &inv.entry) {
            (Some(exit), Entry::Command) => Ok((exit.0, None)),
            (Some(exit), Entry::Handle { .. }) => Err(RunError::Trap {
                message: format!("the handler called exit({}) instead of returning", exit.0),
                backtrace: None,
            }),
            (None, _) => Err(classify(e, &store, inv)),
        },
    }
}

fn classify(e: wasmtime::Error, store: &Store<ComponentState>, inv: &Invocation) -> RunError {
    run::classify(e, store.data().limiter.denied, inv)
}
