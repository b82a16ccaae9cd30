//! # famfs-runtime
//!
//! The famfs-run sandbox: a wasmtime engine configured for zero-copy dataset mapping
//! ([`SandboxEngine`]), per-invocation [`Limits`], and the runner for command guests
//! ([`run()`]). The `famfs-run` binary is the command-line front end (DESIGN §8).
#![deny(missing_docs)]

pub mod cli;
pub mod engine;
pub mod limits;
pub mod run;

pub use engine::{EngineOptions, SandboxEngine};
pub use limits::Limits;
pub use run::{Invocation, Metrics, Outcome, RunError, Stdio, compile, linker, run};
