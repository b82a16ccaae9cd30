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
    from_cache: bool,
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
        Program::load_hashed(engine, bytes, crate::cache::sha256_hex(bytes), as_component, cache)
    }

    /// [`load_cached`](Self::load_cached) of `bytes` whose sha256 (hex) the caller measured.
    pub(crate) fn load_hashed(
        engine: &SandboxEngine,
        bytes: &[u8],
        sha256: String,
        as_component: bool,
        cache: Option<&ModuleCache>,
    ) -> Result<Program, RunError> {
        let kind = ProgramKind::of(is_component(bytes), as_component);
        if let Some(cache) = cache
            && let Some(program) = Program::load_from_cache(engine, &sha256, kind, cache)?
        {
            return Ok(program);
        }
        let compile_err = |e: wasmtime::Error| RunError::Compile { message: format!("{e:#}") };
        let (inner, artifact) = if kind == ProgramKind::CoreModule {
            let module = Module::new(engine.engine(), bytes).map_err(compile_err)?;
            let artifact = cache.map(|_| module.serialize());
            (link_core(engine, &module)?, artifact)
        } else {
            let ce = engine.component_engine();
            let component = if kind == ProgramKind::AdaptedModule {
                let adapted = componentize(bytes)?;
                Component::new(ce, &adapted)
            } else {
                Component::new(ce, bytes)
            }
            .map_err(compile_err)?;
            let artifact = cache.map(|_| component.serialize());
            (Inner::Component(ComponentProgram::new(component)), artifact)
        };
        if let Some(cache) = cache {
            match artifact.expect("serialized when there is a cache") {
                Ok(artifact) => cache.put(&ModuleCache::key(&sha256, kind.tag(), kind.engine(engine)), &artifact),
                Err(e) => tracing::warn!("cannot serialize a compiled guest for the cache: {e:#}"),
            }
        }
        Ok(Program { kind, sha256, inner, from_cache: false })
    }

    /// The guest whose bytes have sha256 `sha256` (hex), loaded as `kind` from the compiled
    /// code in `cache`, without its bytes; `None` when the cache does not hold it (or held an
    /// entry wasmtime refused, which is then removed).
    pub fn load_from_cache(
        engine: &SandboxEngine,
        sha256: &str,
        kind: ProgramKind,
        cache: &ModuleCache,
    ) -> Result<Option<Program>, RunError> {
        let key = ModuleCache::key(sha256, kind.tag(), kind.engine(engine));
        let Some((file, len)) = cache.get(&key) else {
            return Ok(None);
        };
        // SAFETY: `file` is an entry `ModuleCache::get` opened without following links,
        // relative to a directory held open since it was checked, both owned by this user and
        // writable by no one else (the cache's trust model): no other user can have planted or
        // altered it, so it was written by this runtime's `serialize` (or by this user or root,
        // who can run code as this user anyway). Its trailer held, so it is whole. wasmtime
        // maps it and requires it unchanged while mapped: the cache never writes an entry in
        // place (it renames new files over old ones, and the old inode lives on), and another
        // user cannot write it. wasmtime checks the version and configuration again and refuses
        // a foreign artifact, which is then recompiled.
        let inner = unsafe {
            if kind == ProgramKind::CoreModule {
                Module::deserialize_open_file(engine.engine(), file).map(|m| link_core(engine, &m))
            } else {
                deserialize_component(engine.component_engine(), file, len)
                    .map(|c| Ok(Inner::Component(ComponentProgram::new(c))))
            }
        };
        match inner {
            Ok(inner) => {
                tracing::debug!(key, "module cache hit");
                Ok(Some(Program { kind, sha256: sha256.to_string(), inner: inner?, from_cache: true }))
            }
            Err(e) => {
                tracing::warn!(key, "module cache entry refused, recompiling: {e:#}");
                cache.remove(&key);
                Ok(None)
            }
        }
    }

    /// What kind of guest this is.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// Whether its compiled code came from a cache directory rather than the compiler.
    pub fn from_cache(&self) -> bool {
        self.from_cache
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

impl ProgramKind {
    /// What a guest whose bytes are (`is_component`) a component runs as, given whether it was
    /// asked to run as a component.
    pub fn of(is_component: bool, as_component: bool) -> ProgramKind {
        match (is_component, as_component) {
            (true, _) => ProgramKind::Component,
            (false, true) => ProgramKind::AdaptedModule,
            (false, false) => ProgramKind::CoreModule,
        }
    }

    /// Its part of a cache key.
    fn tag(self) -> &'static str {
        match self {
            ProgramKind::CoreModule => "module",
            ProgramKind::Component => "component",
            ProgramKind::AdaptedModule => "adapted",
        }
    }

    /// The engine it is compiled for.
    fn engine(self, engine: &SandboxEngine) -> &wasmtime::Engine {
        match self {
            ProgramKind::CoreModule => engine.engine(),
            _ => engine.component_engine(),
        }
    }
}

/// A core module linked with the host's imports.
fn link_core(engine: &SandboxEngine, module: &Module) -> Result<Inner, RunError> {
    let linker = core_run::linker(engine).map_err(|e| RunError::Setup { message: format!("{e:#}") })?;
    Ok(Inner::Core(linker.instantiate_pre(module).map_err(|e| RunError::Link { message: format!("{e:#}") })?))
}

/// Deserializes the component artifact in the first `len` bytes of `file`, mapped (through
/// `/proc/self/fd`: wasmtime 48 maps components only by path, and that path is this very open
/// file, not a name that could be swapped) or, without `/proc`, read.
///
/// # Safety
/// As [`Component::deserialize_file`]: `file` holds an artifact this runtime wrote, and stays
/// unchanged while the component lives.
unsafe fn deserialize_component(
    engine: &wasmtime::Engine,
    file: std::fs::File,
    len: u64,
) -> wasmtime::Result<Component> {
    use std::os::fd::AsRawFd;
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    if path.exists() {
        // SAFETY: the caller's contract; the trailer after the artifact is outside every
        // section wasmtime reads.
        return unsafe { Component::deserialize_file(engine, &path) };
    }
    let mut artifact = vec![0u8; usize::try_from(len)?];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut artifact, 0)?;
    // SAFETY: the caller's contract.
    unsafe { Component::deserialize(engine, &artifact) }
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
