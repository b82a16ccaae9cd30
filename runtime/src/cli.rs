//! The `famfs-run` command line (DESIGN §8); `bin/famfs-run.rs` calls [`main`].

use crate::request::{self, LIMIT_OPTIONS, LimitOverrides, OptionValue, Spelling};
use crate::{Invocation, Limits, Program, RunError, Runtime, Stdio};
use anyhow::{Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "famfs-run", version, about = "Run a WebAssembly guest over famfs datasets, zero-copy and read-only")]
struct Cli {
    /// famfs image file or dax device (/dev/daxX.Y), or tag:UUID / uuid:UUID (the device whose
    /// superblock or sysfs tag carries it, searched in /dev/dax* and FAMFS_DEVICE_PATH); files
    /// are found through its log.
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
    /// The request bytes for --invoke (or a handler manifest): a file, or - for standard input.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// Everything about the run from a TOML manifest (module, sha256, datasets, directories,
    /// limits, env, config); only --input, limits (defaults that the manifest's [limits]
    /// override), --json, the cache options, -v and extra arguments go with it.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["device", "mount", "datasets", "dirs", "invoke", "env"])]
    manifest: Option<PathBuf>,
    /// The limits: one flag per limit option (crate::request::LIMIT_OPTIONS).
    #[command(flatten)]
    limits: LimitOverrides,
    /// Environment variable for the guest.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Print the outcome and metrics as JSON on stdout (the guest's output is captured into it).
    #[arg(long)]
    json: bool,
    /// Keep compiled guests in DIR (created mode 0700; must not be writable by others) and reuse
    /// them: later runs skip compilation. Default: $XDG_CACHE_HOME/famfs-run/compiled, else
    /// ~/.cache/famfs-run/compiled.
    #[arg(long, value_name = "DIR", env = crate::cache::DIR_ENV)]
    cache_dir: Option<PathBuf>,
    /// Compile the guest afresh, and keep nothing: no compiled-guest cache (over --cache-dir).
    #[arg(long)]
    no_cache: bool,
    /// Keep the cache's compiled guests under SIZE in all (least recently used removed first).
    #[arg(long, value_name = "SIZE", env = "FAMFS_RUN_CACHE_MAX", value_parser = famfs::units::parse_size,
          default_value_t = crate::cache::DEFAULT_MAX_BYTES)]
    cache_max: u64,
    /// More log output on stderr (-v info, with a trap's wasm backtrace; -vv debug); RUST_LOG
    /// (a level, or target=level directives) overrides it.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The guest: a core module (wasm32-wasip1) or a component (wasm32-wasip2), told apart by
    /// its header.
    #[arg(required_unless_present = "manifest")]
    module: Option<PathBuf>,
    /// Arguments for the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// The limit flags, one per [`LIMIT_OPTIONS`] entry: `--max-memory 512M` is the manifest's
/// `max_memory = "512M"` and Python's `max_memory="512M"`. A flag left out keeps the default.
impl clap::Args for LimitOverrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let defaults = Limits::default();
        LIMIT_OPTIONS.iter().fold(cmd, |cmd, o| {
            let help = match o.show(&defaults).as_str() {
                "none" => o.help.to_string(),
                default => format!("{} [default: {default}]", o.help),
            };
            cmd.arg(
                clap::Arg::new(o.name)
                    .long(o.flag)
                    .value_name(o.value_name)
                    .help(help)
                    .action(clap::ArgAction::Set)
                    .value_parser(clap::value_parser!(String)),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for LimitOverrides {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut limits = LimitOverrides::default();
        for o in LIMIT_OPTIONS {
            if let Some(text) = matches.get_one::<String>(o.name) {
                // A usage error (exit 2), as a flag clap itself refuses.
                limits
                    .set(o.name, OptionValue::Text(text), Spelling::Cli)
                    .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, e.to_string()))?;
            }
        }
        Ok(limits)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
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
    let verbosity =
        famfs::logging::Verbosity { default: famfs::logging::LevelFilter::WARN, verbose: cli.verbose, quiet: false };
    famfs::logging::init(verbosity, false);
    // A panic in host code is caught per invocation (RunError::Host) and reported as one line;
    // the panic's own report, with its backtrace, only with -v.
    let default_hook = std::panic::take_hook();
    let verbose = cli.verbose > 0;
    std::panic::set_hook(Box::new(move |info| {
        if verbose {
            default_hook(info);
        } else {
            eprintln!("famfs-run: internal error: {}", info.to_string().replace('\n', " "));
        }
    }));
    match main_inner(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("famfs-run: error: {e:#}");
            125
        }
    }
}

/// A loaded program and the invocation to run.
struct Prepared {
    runtime: Runtime,
    program: Arc<Program>,
    inv: Invocation,
    compile_ms: f64,
}

impl Prepared {
    /// The load's timing and how it was served, for `--json`'s metrics.
    fn load_metrics(&self) -> serde_json::Value {
        serde_json::json!({ "compile_ms": self.compile_ms, "load": self.runtime.load_stats() })
    }
}

/// The runtime of one famfs-run process (counting fuel when a budget is given): one invocation.
fn runtime(fuel: bool, cli: &Cli) -> Result<Runtime> {
    let mut builder = Runtime::builder().fuel(fuel).max_concurrency(1).cache_max_bytes(cli.cache_max);
    if let Some(dir) = cache_dir(cli) {
        builder = builder.cache_dir(dir);
    }
    Ok(builder.build()?)
}

/// Where this run keeps compiled guests: none with `--no-cache`; `--cache-dir` (or
/// `FAMFS_RUN_CACHE`), which must be usable; else the user's cache directory if it can be used.
fn cache_dir(cli: &Cli) -> Option<PathBuf> {
    if cli.no_cache {
        return None;
    }
    cli.cache_dir.clone().or_else(crate::cache::usable_default_dir)
}

fn main_inner(cli: Cli) -> Result<i32> {
    let json = cli.json;
    let p = match cli.manifest.clone() {
        Some(path) => prepare_manifest(cli, &path)?,
        None => prepare_flags(cli)?,
    };
    let metrics = p.load_metrics();
    let outcome = p.program.run(p.runtime.engine(), p.inv);
    report(&outcome, p.program.kind(), metrics, json)
}

/// `--manifest FILE.toml`: extra arguments (the positional ones) follow the manifest's; limit
/// flags are defaults that the manifest's `[limits]` override.
fn prepare_manifest(cli: Cli, path: &Path) -> Result<Prepared> {
    let manifest = crate::Manifest::from_file(path)?;
    let entry = request::entry_with(
        manifest.module.invoke.as_deref(),
        cli.input.as_deref(),
        Spelling::Cli,
        Some(path),
        read_input,
    )?;
    let input = match entry {
        crate::Entry::Handle { input } => input,
        crate::Entry::Command => Vec::new(),
    };
    let defaults = cli.limits.apply(Limits::default());
    let started = std::time::Instant::now();
    let runtime = runtime(manifest.limits_over(defaults)?.fuel.is_some(), &cli)?;
    // Checks the module's sha256 when the manifest gives one.
    let program = manifest.load(&runtime)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut inv = manifest.invocation(defaults, input)?;
    inv.args.extend(cli.module.iter().map(|m| m.to_string_lossy().into_owned()).chain(cli.args));
    inv.stdio = if cli.json { Stdio::Capture } else { Stdio::Inherit };
    Ok(Prepared { runtime, program, inv, compile_ms })
}

fn prepare_flags(cli: Cli) -> Result<Prepared> {
    let module = cli.module.clone().context("give the module to run (or --manifest FILE.toml)")?;
    let source = request::Source {
        device: cli.device.clone(),
        mount: cli.mount.clone(),
        datasets: cli.datasets.clone(),
        dirs: cli.dirs.iter().map(|spec| request::dir_flag(spec)).collect::<Result<_, _>>()?,
    };
    source.check(Spelling::Cli)?;
    let env = cli.env.iter().map(|kv| request::env_flag(kv)).collect::<Result<Vec<_>, _>>()?;
    request::check_env(env.iter().map(|(k, _)| k.as_str()), Spelling::Cli)?;
    let entry = request::entry_with(cli.invoke.as_deref(), cli.input.as_deref(), Spelling::Cli, None, read_input)?;
    let catalog = source.open()?;
    let argv0 = module.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
    let mut inv = Invocation::new(argv0);
    source.add_dirs(&mut inv, Spelling::Cli)?;
    let limits = cli.limits.apply(Limits::default());
    let started = std::time::Instant::now();
    let runtime = runtime(limits.fuel.is_some(), &cli)?;
    // Core modules that need what only components have are adapted at load time.
    let program = runtime.load_file(&module, None, request::needs_component(&entry, &source))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(kind = ?program.kind(), compile_ms, "loaded {}", module.display());
    inv.args = cli.args.clone();
    inv.env = env;
    inv.catalog = catalog;
    inv.entry = entry;
    inv.limits = limits;
    inv.stdio = if cli.json { Stdio::Capture } else { Stdio::Inherit };
    Ok(Prepared { runtime, program, inv, compile_ms })
}

/// Prints the outcome (the reply, or the JSON report) and returns the exit code.
fn report(outcome: &crate::Outcome, kind: crate::ProgramKind, load: serde_json::Value, json: bool) -> Result<i32> {
    let code = match &outcome.result {
        Ok(c) => *c,
        Err(e) => exit_code_for(e),
    };
    if json {
        let mut v = serde_json::to_value(outcome)?;
        let text = |b: &Option<Vec<u8>>| b.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
        v["stdout"] = text(&outcome.stdout).into();
        v["stderr"] = text(&outcome.stderr).into();
        if let serde_json::Value::Object(load) = load {
            for (k, x) in load {
                v["metrics"][k] = x;
            }
        }
        v["kind"] = serde_json::to_value(kind)?;
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
            // One line by default; `-v` (or RUST_LOG=info) adds where the guest was.
            if let RunError::Trap { backtrace: Some(backtrace), .. } = e {
                tracing::info!("wasm backtrace:\n{backtrace}");
            }
        }
    }
    Ok(code)
}
