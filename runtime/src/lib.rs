//! # famfs-runtime
//!
//! The famfs-run sandbox: a wasmtime engine configured for zero-copy dataset mapping
//! ([`SandboxEngine`]), per-invocation [`Limits`], and [`Program`]: a core module or component
//! compiled once and run per [`Invocation`] (a command's `main` or a handler's `handle`). The
//! `famfs-run` binary is the command-line front end (DESIGN §8). [`request`] holds the rules by
//! which every front end (command line, manifests, Python, famfs-serve) turns a request into an
//! invocation.
#![deny(missing_docs)]

pub mod cache;
mod capture;
pub mod cli;
mod component_run;
mod core_run;
pub mod embed;
pub mod engine;
mod failure;
pub mod guests;
pub mod limits;
pub mod manifest;
pub mod program;
pub mod request;
pub mod run;
pub mod signals;
pub mod wasi_fs;
mod xdg;

pub use cache::{CacheError, FileIdentity, ModuleCache};
pub use component_run::ComponentState;
pub use core_run::CoreState;
pub use embed::{EmbedError, LoadStats, Runtime, RuntimeBuilder, default_concurrency};
pub use engine::{EngineOptions, SandboxEngine};
pub use limits::Limits;
pub use manifest::{Manifest, ManifestError};
pub use program::{Program, ProgramKind, is_component};
pub use request::{LIMIT_OPTIONS, LimitOverrides, OptionValue, RequestError, Source, Spelling};
pub use run::{Cancel, Entry, GUEST_MAX_MEMORY_ENV, Invocation, Metrics, Outcome, RunError, Stdio};
