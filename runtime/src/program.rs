//! A guest compiled once and ready to run many times: a core module (wasm32-wasip1) or a
//! component (wasm32-wasip2, or a core module turned into one at load time).

use crate::cache::ModuleCache;
use crate::component_run::{self, ComponentProgram};
use crate::core_run::{self, CoreState};
use crate::engine::SandboxEngine;
use crate::run::{Invocation, Outcome, RunError};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Component;
use wasmtime::{InstancePre, Module};

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

/// A compiled guest, linked once ([`InstancePre`]) and instantiated afresh for every
/// invocation. `Send + Sync`: share it (in an `Arc`) across threads.
pub struct Program {
    kind: ProgramKind,
    sha256: String,
    inner: Inner,
}

enum Inner {
    Core(InstancePre<CoreState>),
    Component(ComponentProgram),
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
    ///
    /// ```
    /// use famfs_runtime::{EngineOptions, Invocation, Program, ProgramKind, SandboxEngine};
    ///
    /// let engine = SandboxEngine::new(EngineOptions::default())?;
    /// // The smallest command: a core module whose `_start` returns.
    /// let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x0a\x01\x06_start\0\0\x0a\x04\x01\x02\0\x0b";
    /// let program = Program::load(&engine, module, false)?;
    /// assert_eq!(program.kind(), ProgramKind::CoreModule);
    /// let outcome = program.run(&engine, Invocation::new("hello"));
    /// assert_eq!(outcome.result?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(engine: &SandboxEngine, bytes: &[u8], as_component: bool) -> Result<Program, RunError> {
        Program::load_cached(engine, bytes, as_component, None)
    }

    /// [`load`](Self::load), taking the compiled code from `cache` when it is there and
    /// storing it there when it was not.
    pub fn load_cached(
        engine: &SandboxEngine,
        bytes: &[u8],
        as_component: bool,
        cache: Option<&ModuleCache>,
    ) -> Result<Program, RunError> {
        let sha256 = crate::cache::sha256_hex(bytes);
        let setup = |e: wasmtime::Error| RunError::Setup { message: format!("{e:#}") };
        let kind = match (is_component(bytes), as_component) {
            (true, _) => ProgramKind::Component,
            (false, true) => ProgramKind::AdaptedModule,
            (false, false) => ProgramKind::CoreModule,
        };
        let inner = if kind == ProgramKind::CoreModule {
            let module =
                compile_cached(engine.engine(), bytes, "module", cache, |b| Module::new(engine.engine(), b), {
                    // SAFETY: see `compile_cached`: the bytes come from a cache entry only this
                    // user could have written, checksummed, for this engine's configuration.
                    |e, a| unsafe { Module::deserialize(e, a) }
                })?;
            let linker = core_run::linker(engine).map_err(setup)?;
            Inner::Core(linker.instantiate_pre(&module).map_err(|e| RunError::Link { message: format!("{e:#}") })?)
        } else {
            let ce = engine.component_engine();
            let tag = if kind == ProgramKind::Component { "component" } else { "adapted" };
            let component = compile_cached(
                ce,
                bytes,
                tag,
                cache,
                |b| {
                    if kind == ProgramKind::AdaptedModule {
                        let adapted = componentize(b).map_err(|e| wasmtime::format_err!("{e}"))?;
                        Component::new(ce, &adapted)
                    } else {
                        Component::new(ce, b)
                    }
                },
                // SAFETY: see `compile_cached`: the bytes come from a cache entry only this user
                // could have written, checksummed, for this engine's configuration.
                |e, a| unsafe { Component::deserialize(e, a) },
            )?;
            Inner::Component(ComponentProgram::new(component))
        };
        Ok(Program { kind, sha256, inner })
    }

    /// What kind of guest this is.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// The sha256 of the bytes it was loaded from (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Runs one invocation in a fresh store. Never panics on anything the guest does; every
    /// failure is in [`Outcome::result`].
    pub fn run(&self, engine: &SandboxEngine, inv: Invocation) -> Outcome {
        match &self.inner {
            Inner::Core(pre) => core_run::run(engine, pre, inv),
            Inner::Component(program) => component_run::run(engine, program, inv),
        }
    }
}

/// Something wasmtime compiles and serializes.
trait Artifact: Sized {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
}

impl Artifact for Module {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
}

impl Artifact for Component {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
}

/// Compiles `bytes`, or takes the compiled artifact from `cache`.
///
/// `deserialize` is only ever given bytes that [`ModuleCache::get`] read back: a regular file,
/// opened without following links relative to a directory held open since it was checked, both
/// owned by this user and writable by no one else (the cache's trust model), so no other user
/// can have planted or altered it; its checksum held, so it is whole. Such a file was written by
/// this runtime's `serialize` (or by this user or root, who can run code as this user anyway).
/// wasmtime checks the version and configuration again and refuses a foreign artifact, which
/// is then recompiled.
fn compile_cached<A: Artifact>(
    engine: &wasmtime::Engine,
    bytes: &[u8],
    kind: &str,
    cache: Option<&ModuleCache>,
    compile: impl FnOnce(&[u8]) -> wasmtime::Result<A>,
    deserialize: impl FnOnce(&wasmtime::Engine, &[u8]) -> wasmtime::Result<A>,
) -> Result<A, RunError> {
    let compile_err = |e: wasmtime::Error| RunError::Compile { message: format!("{e:#}") };
    let Some(cache) = cache else {
        return compile(bytes).map_err(compile_err);
    };
    let key = ModuleCache::key(bytes, kind, engine);
    if let Some(artifact) = cache.get(&key) {
        match deserialize(engine, &artifact) {
            Ok(a) => {
                tracing::debug!(key, "module cache hit");
                return Ok(a);
            }
            Err(e) => {
                tracing::warn!(key, "module cache entry refused, recompiling: {e:#}");
                cache.remove(&key);
            }
        }
    }
    let compiled = compile(bytes).map_err(compile_err)?;
    match compiled.serialize() {
        Ok(artifact) => cache.put(&key, &artifact),
        Err(e) => tracing::warn!("cannot serialize a compiled guest for the cache: {e:#}"),
    }
    Ok(compiled)
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
