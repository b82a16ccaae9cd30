//! The `famfs-run` command line (DESIGN §8); `bin/famfs-run.rs` calls [`main`].

use crate::{EngineOptions, Entry, Invocation, Limits, Program, RunError, SandboxEngine, Stdio};
use anyhow::{Context, Result, bail};
use clap::Parser;
use famfs_host_api::Catalog;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "famfs-run", version, about = "Run a WebAssembly guest over famfs datasets, zero-copy and read-only")]
struct Cli {
    /// famfs image file or dax device (/dev/daxX.Y); files are found through its log.
    #[arg(short = 'd', long, env = "FAMFS_DEVICE", conflicts_with = "mount")]
    device: Option<PathBuf>,
    /// A mounted famfs (or any directory).
    #[arg(short = 'm', long)]
    mount: Option<PathBuf>,
    /// Grant read-only access to a file or directory of the source ('/' = everything).
    #[arg(long = "dataset", value_name = "PATH")]
    datasets: Vec<String>,
    /// Expose a directory as a read-only WASI directory: with --device, a famfs directory served
    /// straight from the image (no mount); with --mount, a directory inside the mount.
    #[arg(long = "dir", value_name = "GUEST=PATH")]
    dirs: Vec<String>,
    /// Call the handler world's export instead of running a command: `--invoke handle`.
    #[arg(long, value_name = "NAME", requires = "input")]
    invoke: Option<String>,
    /// The request bytes for --invoke: a file, or - for standard input.
    #[arg(long, value_name = "FILE|-", requires = "invoke")]
    input: Option<PathBuf>,
    /// Wall-clock limit for the guest, e.g. 30s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Fuel budget (counts executed instructions; slows execution somewhat).
    #[arg(long)]
    fuel: Option<u64>,
    /// Largest guest memory, e.g. 512M, 4G (mapped datasets count).
    #[arg(long, value_parser = famfs::units::parse_size, default_value = "4G")]
    max_memory: u64,
    /// Environment variable for the guest.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Print the outcome and metrics as JSON on stdout (the guest's output is captured into it).
    #[arg(long)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The guest: a core module (wasm32-wasip1) or a component (wasm32-wasip2), told apart by
    /// its header.
    module: PathBuf,
    /// Arguments for the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration such as 30s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!("'{s}' has an unknown unit '{unit}'; use ms, s, m or h"));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is out of range"))
}

/// Where a `--dir` comes from.
enum DirSpec {
    /// A host directory (inside the mount, or anywhere without a source).
    Host(String, PathBuf),
    /// A famfs directory, served from the image or dax device itself.
    Famfs(String, String),
}

/// `GUEST=PATH`; with a mount, PATH is resolved inside it and may not climb out; with a device,
/// PATH is a famfs directory (checked when the run is set up).
fn parse_dir(spec: &str, mount: Option<&Path>, device: bool) -> Result<DirSpec> {
    let (guest, path) = spec
        .split_once('=')
        .with_context(|| format!("--dir '{spec}' must look like GUEST=PATH, e.g. /data=datasets"))?;
    if device {
        return Ok(DirSpec::Famfs(guest.to_string(), path.to_string()));
    }
    let host = match mount {
        Some(root) => {
            let rel = Path::new(path.trim_start_matches('/'));
            if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                bail!("--dir '{spec}': PATH must stay inside the mount (no '..')");
            }
            root.join(rel)
        }
        None => PathBuf::from(path),
    };
    if !host.is_dir() {
        bail!("--dir '{spec}': {} is not a directory", host.display());
    }
    Ok(DirSpec::Host(guest.to_string(), host))
}

fn exit_code_for(e: &RunError) -> i32 {
    match e {
        RunError::Timeout { .. } => 124,
        RunError::Handler { .. } => 1,
        _ => 125,
    }
}

/// Reads the request for --invoke: a file, or standard input for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .context("cannot read the input from stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read the input {}", path.display()))
    }
}

/// Runs the command line with the process's arguments; returns the exit code: the guest's own,
/// 124 when it timed out, 125 for any other failure (with a one-line message on stderr).
pub fn main() -> i32 {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    match main_inner(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("famfs-run: error: {e:#}");
            125
        }
    }
}

fn main_inner(cli: Cli) -> Result<i32> {
    let mut catalog = match (&cli.device, &cli.mount) {
        (Some(d), _) => Catalog::open_device(d).with_context(|| format!("cannot open the famfs on {}", d.display()))?,
        (None, Some(m)) => Catalog::open_mount(m)?,
        (None, None) if cli.datasets.is_empty() => Catalog::empty(),
        (None, None) => bail!("--dataset needs a source: --device IMAGE_OR_DAX or --mount DIR"),
    };
    for d in &cli.datasets {
        catalog.grant(d)?;
    }
    let (mut dirs, mut famfs_dirs) = (Vec::new(), Vec::new());
    for spec in &cli.dirs {
        match parse_dir(spec, cli.mount.as_deref(), cli.device.is_some())? {
            DirSpec::Host(guest, host) => dirs.push((guest, host)),
            DirSpec::Famfs(guest, path) => famfs_dirs.push((guest, path)),
        }
    }
    let entry = match (&cli.invoke, &cli.input) {
        (Some(name), Some(input)) if name == "handle" => Entry::Handle { input: read_input(input)? },
        (Some(name), _) => {
            bail!("--invoke {name}: only `handle` (the famfs:dataset handler world's export) can be invoked")
        }
        _ => Entry::Command,
    };
    let env = cli
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env '{kv}' must look like K=V"))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = std::fs::read(&cli.module).with_context(|| format!("cannot read {}", cli.module.display()))?;
    let started = std::time::Instant::now();
    let engine =
        SandboxEngine::new(EngineOptions { fuel: cli.fuel.is_some() }).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // Core modules that need what only components have are adapted at load time.
    let as_component = matches!(entry, Entry::Handle { .. }) || !famfs_dirs.is_empty();
    let program = Program::load(&engine, &bytes, as_component)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(kind = ?program.kind(), compile_ms, "loaded {}", cli.module.display());
    let argv0 = cli.module.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
    let inv = Invocation {
        program: argv0,
        args: cli.args.clone(),
        env,
        catalog,
        dirs,
        famfs_dirs,
        entry,
        limits: Limits { timeout: cli.timeout, fuel: cli.fuel, max_memory: cli.max_memory, ..Limits::default() },
        stdio: if cli.json { Stdio::Capture } else { Stdio::Inherit },
        cancel: None,
    };
    let outcome = program.run(&engine, inv);
    let code = match &outcome.result {
        Ok(c) => *c,
        Err(e) => exit_code_for(e),
    };
    if cli.json {
        let mut v = serde_json::to_value(&outcome)?;
        let text = |b: &Option<Vec<u8>>| b.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
        v["stdout"] = text(&outcome.stdout).into();
        v["stderr"] = text(&outcome.stderr).into();
        v["metrics"]["compile_ms"] = compile_ms.into();
        v["kind"] = serde_json::to_value(program.kind())?;
        if let Some(reply) = &outcome.reply {
            v["reply"] = String::from_utf8(reply.clone()).ok().into();
            v["reply_len"] = reply.len().into();
        }
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        if let Some(reply) = &outcome.reply {
            let mut out = std::io::stdout().lock();
            out.write_all(reply)?;
            out.flush()?;
        }
        if let Err(e) = &outcome.result {
            eprintln!("famfs-run: error: {e}");
        }
    }
    Ok(code)
}
