//! `famfs-serve`: serverless functions over famfs datasets, on one famfs-run [`Runtime`].
//!
//! ```text
//! famfs-serve --listen 127.0.0.1:8080 --function query=query.toml [--function ...]
//!             [--cache-dir DIR] [--max-concurrency N] [--max-queue N] [--max-body SIZE]
//!             [--max-connections N] [--header-timeout DUR] [--body-timeout DUR]
//!             [--default-timeout DUR] [--refresh DUR]
//! ```
//!
//! Each function is a handler manifest (`module.invoke = "handle"`, see famfs-run's README),
//! loaded and compiled once at start-up, its catalog opened once. Routes:
//! - `POST /invoke/{function}`: the body is the handler's input; 200 and the reply bytes; the
//!   handler's own error → 422; timeout → 504; memory limit, fuel, stack overflow, trap, media
//!   error → 500; unknown function → 404; body over `--max-body` → 413; body not sent within
//!   `--body-timeout` → 408; more than `--max-concurrency` + `--max-queue` requests admitted →
//!   503 with `Retry-After` (checked before the body is read). Error bodies are JSON
//!   `{"error": KIND, "message": TEXT}`. Header `x-famfs-timeout-ms` may lower (never raise)
//!   the time limit for one request; a manifest without one gets `--default-timeout`.
//! - `GET /datasets`: per function, the datasets it may open (`name`, `len`).
//! - `GET /metrics`: Prometheus text (invocations by outcome, durations, bytes mapped, in flight).
//! - `GET /healthz`: `ok`.
//!
//! Every request gets a fresh instance. Each function's catalog is checked against the famfs
//! log every `--refresh` (on a blocking thread, not per request) and re-read when the log
//! changed, so files the famfs master adds are served without a restart. Connections are
//! limited and time out (see `listen.rs`). SIGTERM or ctrl-c stops accepting and lets requests
//! finish.

mod listen;
mod metrics;

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use famfs_host_api::Catalog;
use famfs_runtime::{Limits, Manifest, Program, RunError, Runtime};
use http_body_util::BodyExt;
use metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
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
    /// Invocations running at once; more wait (see --max-queue). Default: 4 per CPU, fewer when
    /// that many guests' caps (guard slots, kernel mappings) would not fit the process.
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// Requests that may wait for an invocation slot; beyond them the answer is 503 with
    /// Retry-After, before the body is read.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Largest request body, e.g. 16M.
    #[arg(long, default_value = "16M", value_parser = famfs::units::parse_size)]
    max_body: u64,
    /// Connections served at once; more wait in the kernel's listen backlog.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Time for a request's header to arrive, which is also how long a connection may sit
    /// idle, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = famfs_runtime::limits::parse_duration)]
    header_timeout: Duration,
    /// Time for a request's body to arrive once its header has, e.g. 30s (408 when it passes).
    #[arg(long, default_value = "30s", value_parser = famfs_runtime::limits::parse_duration)]
    body_timeout: Duration,
    /// Longest a response may wait for the client to read any of it, e.g. 30s; past it the
    /// connection is closed (a client that stops reading cannot keep its connection slot).
    #[arg(long, default_value = "30s", value_parser = famfs_runtime::limits::parse_duration)]
    send_timeout: Duration,
    /// Time limit of an invocation whose manifest sets none, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = famfs_runtime::limits::parse_duration)]
    default_timeout: Duration,
    /// How often each function's famfs log is checked for new files, e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = famfs_runtime::limits::parse_duration)]
    refresh: Duration,
}

/// One served function.
struct Function {
    manifest: Manifest,
    program: Arc<Program>,
    /// Opened once; replaced by the refresher when the famfs log changes.
    catalog: RwLock<Catalog>,
}

impl Function {
    fn catalog(&self) -> Catalog {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the catalog if its famfs log changed (blocking I/O: call off the async threads).
    fn refresh(&self, name: &str) {
        let current = self.catalog();
        match current.is_stale() {
            Ok(false) => {}
            Ok(true) => match current.refreshed() {
                Ok(fresh) => {
                    tracing::info!(function = name, "famfs log changed: catalog re-read");
                    *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                }
                Err(e) => tracing::warn!(function = name, "cannot re-read the catalog: {e}"),
            },
            Err(e) => tracing::warn!(function = name, "cannot check the famfs log: {e}"),
        }
    }
}

struct App {
    runtime: Runtime,
    functions: BTreeMap<String, Function>,
    metrics: Metrics,
    /// Requests admitted (running or waiting for a slot).
    admitted: AtomicUsize,
    max_admitted: usize,
    max_body: usize,
    body_timeout: Duration,
    default_timeout: Duration,
}

/// An admitted request; leaves the count when dropped.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl App {
    /// Admits one more request, unless `max_admitted` are already running or waiting.
    fn admit(&self) -> Option<Admission<'_>> {
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        let ticket = Admission(&self.admitted);
        (before < self.max_admitted).then_some(ticket)
    }
}

/// Reads `NAME=MANIFEST` (a handler's manifest), not yet compiled.
fn parse_function(spec: &str) -> Result<(String, Manifest)> {
    let (name, path) =
        spec.split_once('=').with_context(|| format!("--function '{spec}' must look like NAME=MANIFEST.toml"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("--function '{spec}': NAME must be letters, digits, '-' or '_'");
    }
    let manifest = Manifest::from_file(path)?;
    if manifest.module.invoke.as_deref() != Some("handle") {
        bail!("function {name}: {path} runs a command; a served function needs `invoke = \"handle\"` in [module]");
    }
    Ok((name.to_string(), manifest))
}

/// Compiles a function's guest and opens its catalog.
fn load(runtime: &Runtime, manifest: Manifest) -> Result<Function> {
    let program = manifest.load(runtime)?;
    let catalog = RwLock::new(manifest.catalog()?);
    Ok(Function { manifest, program, catalog })
}

/// The runtime's limits: the defaults, with the largest per-guest caps any function's manifest
/// asks for, so that the concurrency is sized (and checked) for the guests it will run.
fn runtime_limits(manifests: &[(String, Manifest)]) -> Result<Limits> {
    let mut limits = Limits::default();
    let (mut slots, mut maps, mut datasets, mut wasi) = (0, 0, 0, 0);
    for (_, m) in manifests {
        let l = m.limits_over(Limits::default())?;
        slots = slots.max(l.max_mappings);
        maps = maps.max(l.max_kernel_mappings);
        datasets = datasets.max(l.max_open_datasets);
        wasi = wasi.max(l.max_wasi_resources);
    }
    if !manifests.is_empty() {
        (limits.max_mappings, limits.max_kernel_mappings) = (slots, maps);
        (limits.max_open_datasets, limits.max_wasi_resources) = (datasets, wasi);
    }
    Ok(limits)
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
        RunError::WasiResources { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "wasi_resources"),
        RunError::Media(_) => (StatusCode::INTERNAL_SERVER_ERROR, "media_error"),
        RunError::Trap { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "setup"),
    }
}

fn kind_of(e: &RunError) -> String {
    serde_json::to_value(e).ok().and_then(|v| v["kind"].as_str().map(String::from)).unwrap_or_else(|| "error".into())
}

/// Reads a request body of at most `max` bytes within `timeout`.
async fn read_body(body: Body, max: usize, timeout: Duration) -> Result<axum::body::Bytes, Response> {
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, max).collect()).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!("the request body did not arrive within {} ms", timeout.as_millis()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body is larger than {max} bytes (--max-body)"),
        )),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, "bad-request", format!("cannot read the request body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn invoke(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let Some(f) = app.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "not-found", format!("no function named {name}"));
    };
    // Admission first: a flood waits in a bounded queue, and what is turned away costs no body
    // read, no catalog and no invocation.
    let Some(_admission) = app.admit() else {
        let mut r =
            error(StatusCode::SERVICE_UNAVAILABLE, "busy", "every invocation slot and queue place is taken; retry");
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    };
    // A request may shorten its time limit, never lengthen it.
    let asked = match headers.get("x-famfs-timeout-ms") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "x-famfs-timeout-ms must be a number of milliseconds",
                );
            }
        },
    };
    let body = match read_body(body, app.max_body, app.body_timeout).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let defaults = Limits { timeout: Some(app.default_timeout), ..Limits::default() };
    let mut inv = match f.manifest.invocation_with(defaults, body.to_vec(), f.catalog()) {
        Ok(inv) => inv,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "setup", e),
    };
    if let Some(asked) = asked {
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
    // Walking a mounted tree is blocking work: off the async threads.
    let listed = tokio::task::spawn_blocking(move || {
        let mut out = serde_json::Map::new();
        for (name, f) in &app.functions {
            let list = f.catalog().list().into_iter().map(|d| serde_json::json!({ "name": d.name, "len": d.len }));
            out.insert(name.clone(), serde_json::Value::Array(list.collect()));
        }
        serde_json::Value::Object(out).to_string()
    })
    .await;
    match listed {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "setup", e),
    }
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
}

/// Checks every function's famfs log each `every`, on a blocking thread, and re-reads a
/// catalog whose log changed.
fn spawn_refresher(app: Arc<App>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (name, f) in &app.functions {
                    f.refresh(name);
                }
            })
            .await;
        }
    });
}

#[tokio::main]
async fn main() -> Result<()> {
    let verbosity = famfs::logging::Verbosity { default: famfs::logging::LevelFilter::INFO, verbose: 0, quiet: false };
    famfs::logging::init(verbosity, true);
    let cli = Cli::parse();
    if cli.max_concurrency == Some(0) || cli.max_connections == 0 {
        bail!("--max-concurrency and --max-connections must be at least 1");
    }
    let manifests = cli.functions.iter().map(|spec| parse_function(spec)).collect::<Result<Vec<_>>>()?;
    let mut builder = Runtime::builder().limits(runtime_limits(&manifests)?);
    if let Some(n) = cli.max_concurrency {
        builder = builder.max_concurrency(n);
    }
    if let Some(dir) = &cli.cache_dir {
        builder = builder.cache_dir(dir);
    }
    let runtime = builder.build()?;
    // Nothing runs yet: every slot is free.
    let max_concurrency = runtime.available_slots();
    let mut functions = BTreeMap::new();
    for (name, manifest) in manifests {
        let f = load(&runtime, manifest)?;
        tracing::info!(function = name, module = %f.manifest.module.path.display(), "loaded");
        functions.insert(name, f);
    }
    let names: Vec<String> = functions.keys().cloned().collect();
    let app = Arc::new(App {
        runtime,
        functions,
        metrics: Metrics::new(&names),
        admitted: AtomicUsize::new(0),
        max_admitted: max_concurrency + cli.max_queue,
        max_body: usize::try_from(cli.max_body).unwrap_or(usize::MAX),
        body_timeout: cli.body_timeout,
        default_timeout: cli.default_timeout,
    });
    spawn_refresher(app.clone(), cli.refresh);
    let router = axum::Router::new()
        .route("/invoke/{function}", post(invoke))
        .route("/datasets", get(datasets))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(&cli.listen).await.with_context(|| format!("cannot listen on {}", cli.listen))?;
    // The bound address on stdout (port 0 picks one): scripts and tests read it.
    println!("listening on http://{}", listener.local_addr()?);
    let limits = listen::ConnLimits {
        max_connections: cli.max_connections,
        header_timeout: cli.header_timeout,
        send_timeout: cli.send_timeout,
    };
    listen::serve(listener, router, limits, shutdown_signal()).await;
    Ok(())
}
