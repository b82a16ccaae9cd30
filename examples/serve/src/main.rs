//! `famfs-serve`: serverless functions over famfs datasets, on one famfs-run [`Runtime`].
//!
//! ```text
//! famfs-serve --listen 127.0.0.1:8080 --function query=query.toml [--function ...]
//!             [--cache-dir DIR] [--max-concurrency N] [--max-body SIZE]
//! ```
//!
//! Each function is a handler manifest (`module.invoke = "handle"`, see famfs-run's README),
//! loaded and compiled once at start-up. Routes:
//! - `POST /invoke/{function}`: the body is the handler's input; 200 and the reply bytes; the
//!   handler's own error → 422; timeout → 504; memory limit, fuel, stack overflow, trap, media
//!   error → 500; unknown function → 404; body over `--max-body` → 413. Error bodies are JSON
//!   `{"error": KIND, "message": TEXT}`. Header `x-famfs-timeout-ms` may lower (never raise)
//!   the manifest's timeout for one request.
//! - `GET /datasets`: per function, the datasets it may open (`name`, `len`).
//! - `GET /metrics`: Prometheus text (invocations by outcome, durations, bytes mapped, in flight).
//! - `GET /healthz`: `ok`.
//!
//! Every request gets a fresh instance and re-reads the famfs log, so files the famfs master adds
//! are served without a restart. SIGTERM or ctrl-c stops accepting and lets requests finish.

mod metrics;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use famfs_runtime::{Manifest, Program, RunError, Runtime};
use metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "famfs-serve", version, about = "Serve famfs-run handlers over HTTP")]
struct Cli {
    /// Address to listen on (port 0: any free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// A function: NAME=MANIFEST.toml (a handler manifest). Repeat for more.
    #[arg(long = "function", value_name = "NAME=MANIFEST", required = true)]
    functions: Vec<String>,
    /// Keep compiled guests in DIR across restarts.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Invocations running at once; more wait.
    #[arg(long, default_value_t = 16)]
    max_concurrency: usize,
    /// Largest request body, e.g. 16M.
    #[arg(long, default_value = "16M", value_parser = famfs::units::parse_size)]
    max_body: u64,
}

/// One served function.
struct Function {
    manifest: Manifest,
    program: Arc<Program>,
}

struct App {
    runtime: Runtime,
    functions: BTreeMap<String, Function>,
    metrics: Metrics,
}

fn load(runtime: &Runtime, spec: &str) -> Result<(String, Function)> {
    let (name, path) =
        spec.split_once('=').with_context(|| format!("--function '{spec}' must look like NAME=MANIFEST.toml"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("--function '{spec}': NAME must be letters, digits, '-' or '_'");
    }
    let manifest = Manifest::from_file(path)?;
    if manifest.module.invoke.as_deref() != Some("handle") {
        bail!("function {name}: {path} runs a command; a served function needs `invoke = \"handle\"` in [module]");
    }
    let program = manifest.load(runtime)?;
    Ok((name.to_string(), Function { manifest, program }))
}

fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": kind, "message": message.to_string() });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The HTTP status for a failed invocation, and the outcome label for the metrics.
fn status_of(e: &RunError) -> (StatusCode, &'static str) {
    match e {
        RunError::Handler { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "handler_error"),
        RunError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        RunError::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        RunError::MemoryLimit { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "memory_limit"),
        RunError::FuelExhausted { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "fuel_exhausted"),
        RunError::StackOverflow => (StatusCode::INTERNAL_SERVER_ERROR, "stack_overflow"),
        RunError::Media(_) => (StatusCode::INTERNAL_SERVER_ERROR, "media_error"),
        RunError::Trap { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "setup"),
    }
}

fn kind_of(e: &RunError) -> String {
    serde_json::to_value(e).ok().and_then(|v| v["kind"].as_str().map(String::from)).unwrap_or_else(|| "error".into())
}

async fn invoke(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(f) = app.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no function named {name}"));
    };
    let mut inv = match f.manifest.invocation(app.runtime.limits(), body.to_vec()) {
        Ok(inv) => inv,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "setup", e),
    };
    // A request may shorten its time limit, never lengthen it.
    if let Some(v) = headers.get("x-famfs-timeout-ms") {
        let Some(ms) = v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "x-famfs-timeout-ms must be a number of milliseconds",
            );
        };
        let asked = Duration::from_millis(ms);
        inv.limits.timeout = Some(inv.limits.timeout.map_or(asked, |t| t.min(asked)));
    }
    app.metrics.started();
    let t = Instant::now();
    let outcome = app.runtime.invoke(&f.program, inv).await;
    let elapsed = t.elapsed();
    let bytes_mapped = outcome.metrics.bytes_mapped;
    let (response, label) = match outcome.result {
        Ok(_) => {
            let reply = outcome.reply.unwrap_or_default();
            ((StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], reply).into_response(), "ok")
        }
        Err(e) => {
            let (status, label) = status_of(&e);
            tracing::info!(function = name, "invocation failed: {e}");
            (error(status, &kind_of(&e), &e), label)
        }
    };
    app.metrics.finished(&name, label, elapsed, bytes_mapped);
    response
}

async fn datasets(State(app): State<Arc<App>>) -> Response {
    let mut out = serde_json::Map::new();
    for (name, f) in &app.functions {
        let list = match f.manifest.catalog() {
            Ok(c) => c.list().into_iter().map(|d| serde_json::json!({ "name": d.name, "len": d.len })).collect(),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "setup", e),
        };
        out.insert(name.clone(), serde_json::Value::Array(list));
    }
    ([(header::CONTENT_TYPE, "application/json")], serde_json::Value::Object(out).to_string()).into_response()
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing the requests in flight");
}

#[tokio::main]
async fn main() -> Result<()> {
    famfs::logging::init(
        famfs::logging::Verbosity { default: famfs::logging::LevelFilter::INFO, verbose: 0, quiet: false },
        true,
    );
    let cli = Cli::parse();
    let mut builder = Runtime::builder().max_concurrency(cli.max_concurrency);
    if let Some(dir) = &cli.cache_dir {
        builder = builder.cache_dir(dir);
    }
    let runtime = builder.build()?;
    let mut functions = BTreeMap::new();
    for spec in &cli.functions {
        let (name, f) = load(&runtime, spec)?;
        tracing::info!(function = name, module = %f.manifest.module.path.display(), "loaded");
        functions.insert(name, f);
    }
    let names: Vec<String> = functions.keys().cloned().collect();
    let app = Arc::new(App { runtime, functions, metrics: Metrics::new(&names) });
    let router = axum::Router::new()
        .route("/invoke/{function}", post(invoke))
        .route("/datasets", get(datasets))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(usize::try_from(cli.max_body).unwrap_or(usize::MAX)))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(&cli.listen).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    // The bound address on stdout (port 0 picks one): scripts and tests read it.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}
