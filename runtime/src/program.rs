//! A guest compiled once and ready to run many times: a core module (wasm32-wasip1) or a
//! component (wasm32-wasip2, or a core module turned into one at load time).

use crate::component_run::{self, ComponentLinkers};
use crate::core_run::{self, CoreState};
use crate::engine::SandboxEngine;
use crate::run::{Invocation, Outcome, RunError};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Component;
use wasmtime::{Linker, Module};

/// What kind of guest a [`Program`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgramKind {
    /// A core module, run with WASI preview 1 and the core-module `famfs:dataset` imports.
    CoreModule,
    /// A component, run with WASI preview 2 and the `famfs:dataset` bindings.
    Component,
    /// A core module turned into a component at load time (preview-1 adapter), so it gets what
    /// only components get: WASI files straight from famfs images, the handler world.
    AdaptedModule,
}

/// A compiled guest plus the linker it runs with.
pub struct Program {
    kind: ProgramKind,
    inner: Inner,
}

enum Inner {
    Core { module: Module, linker: Linker<CoreState> },
    Component { component: Component, linkers: ComponentLinkers },
}

/// Whether `bytes` is a component rather than a core module (the preamble's layer field).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

impl Program {
    /// Compiles `bytes` (a core module or a component, told apart by its preamble).
    ///
    /// With `as_component`, a core module is turned into a component first with the WASI
    /// preview-1 adapter (the command adapter if it exports `_start`, else the reactor one);
    /// its `famfs:dataset` imports come from the `component-type` sections wit-bindgen embeds.
    /// Components need that for WASI files read from a famfs image (`--dir` with `--device`)
    /// and for the handler world (`--invoke`).
    pub fn load(engine: &SandboxEngine, bytes: &[u8], as_component: bool) -> Result<Program, RunError> {
        let compile_err = |e: wasmtime::Error| RunError::Compile { message: format!("{e:#}") };
        if is_component(bytes) {
            let component = Component::new(engine.component_engine(), bytes).map_err(compile_err)?;
            let linkers = ComponentLinkers::new(engine).map_err(|e| RunError::Setup { message: format!("{e:#}") })?;
            return Ok(Program { kind: ProgramKind::Component, inner: Inner::Component { component, linkers } });
        }
        if as_component {
            let adapted = componentize(bytes)?;
            let component = Component::new(engine.component_engine(), &adapted).map_err(compile_err)?;
            let linkers = ComponentLinkers::new(engine).map_err(|e| RunError::Setup { message: format!("{e:#}") })?;
            return Ok(Program { kind: ProgramKind::AdaptedModule, inner: Inner::Component { component, linkers } });
        }
        let module = Module::new(engine.engine(), bytes).map_err(compile_err)?;
        let linker = core_run::linker(engine).map_err(|e| RunError::Setup { message: format!("{e:#}") })?;
        Ok(Program { kind: ProgramKind::CoreModule, inner: Inner::Core { module, linker } })
    }

    /// What kind of guest this is.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// Runs one invocation in a fresh store. Never panics on anything the guest does; every
    /// failure is in [`Outcome::result`].
    pub fn run(&self, engine: &SandboxEngine, inv: Invocation) -> Outcome {
        match &self.inner {
            Inner::Core { module, linker } => core_run::run(engine, linker, module, inv),
            Inner::Component { component, linkers } => component_run::run(engine, linkers, component, inv),
        }
    }
}

/// Turns a core module into a component with the WASI preview-1 adapter.
fn componentize(bytes: &[u8]) -> Result<Vec<u8>, RunError> {
    let fail = |e: anyhow::Error| RunError::Compile {
        message: format!(
            "cannot turn the core module into a component: {e:#} (was it built with wit-bindgen from wit/, so that it carries the famfs:dataset component-type section?)"
        ),
    };
    let adapter = if exports_start(bytes) {
        WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
    } else {
        WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
    };
    let encoder = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .map_err(fail)?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
        .map_err(fail)?;
    let mut encoder = encoder;
    encoder.encode().map_err(fail)
}

/// Whether a core module exports `_start` (a command); unparsable bytes say no and fail later
/// with the compiler's message.
fn exports_start(bytes: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::ExportSection(exports)) = payload {
            return exports.into_iter().any(|e| e.is_ok_and(|e| e.name == "_start"));
        }
    }
    false
}
