//! How a request becomes an [`Invocation`]: the one home of the rules every front end shares.
//! famfs-run's flags (`cli.rs`), manifests (`manifest.rs`), the Python package and famfs-serve
//! all come through here, so an option is added once and behaves the same everywhere:
//!
//! - the limit options ([`LIMIT_OPTIONS`]) and how their values are read ([`LimitOverrides`]);
//! - where datasets come from and what a guest may see ([`Source`]);
//! - what an invocation calls ([`entry`]): a command, or the handler world's `handle`;
//! - the guest's environment ([`check_env`]).
//!
//! Every error names the option the way the user wrote it ([`Spelling`]): `--max-memory` on the
//! command line, `limits.max_memory` in a manifest, `max_memory=` in Python.
//!
//! ```
//! use famfs_runtime::request::{LimitOverrides, OptionValue, Spelling};
//!
//! let mut o = LimitOverrides::default();
//! o.set("max_memory", OptionValue::Text("512M"), Spelling::Cli)?;
//! o.set("max_mappings", OptionValue::Int(8), Spelling::Cli)?;
//! let limits = o.apply(famfs_runtime::Limits::default());
//! assert_eq!((limits.max_memory, limits.max_mappings), (512 << 20, 8));
//! let e = o.set("max_mappings", OptionValue::Int(0), Spelling::Manifest).unwrap_err();
//! assert_eq!(e.to_string(), "limits.max_mappings must be at least 1");
//! # Ok::<(), famfs_runtime::request::RequestError>(())
//! ```

use crate::limits::{Limits, parse_duration};
use crate::run::{Entry, GUEST_MAX_MEMORY_ENV, Invocation};
use famfs_host_api::{Catalog, CatalogError, MapTechnique};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// How the user wrote a request: which front end it came through. Errors name options in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Spelling {
    /// famfs-run's flags: `--max-memory`, `--dataset`.
    Cli,
    /// A manifest's keys: `limits.max_memory`, `source.datasets`.
    Manifest,
    /// The Python package's keywords: `max_memory=`, `datasets=`.
    Python,
}

impl Spelling {
    /// Option `name` (snake_case, as in a manifest) of the manifest section `section`, as the
    /// user wrote it: `--max-memory`, `limits.max_memory` or `max_memory=`. The command line's
    /// repeated flags are singular (`--dataset`, `--dir`).
    pub fn option(self, section: &str, name: &str) -> String {
        match self {
            Spelling::Cli => {
                let flag = match name {
                    "datasets" => "dataset",
                    "dirs" => "dir",
                    other => other,
                };
                format!("--{}", flag.replace('_', "-"))
            }
            Spelling::Manifest => format!("{section}.{name}"),
            Spelling::Python => format!("{name}="),
        }
    }

    /// The limit option `name` as the user wrote it (section `limits` of a manifest).
    pub fn limit(self, name: &str) -> String {
        self.option("limits", name)
    }

    /// How to give option `name` the value `value`, for messages that say what to do:
    /// `--device IMAGE`, `source.device = "IMAGE"`, `device=IMAGE`.
    fn assign(self, section: &str, name: &str, value: &str) -> String {
        match self {
            Spelling::Cli => format!("{} {value}", self.option(section, name)),
            Spelling::Manifest => format!("{} = \"{value}\"", self.option(section, name)),
            Spelling::Python => format!("{}{value}", self.option(section, name)),
        }
    }
}

/// Why a request cannot be turned into an invocation. Each message is one line naming the
/// option as the user wrote it and saying what to do.
#[derive(Debug, Error)]
pub enum RequestError {
    /// No option of that name (Python raises `TypeError`, as for any unknown keyword).
    #[error("{message}")]
    Unknown {
        /// The option, as written.
        option: String,
        /// What is wrong, with the names there are.
        message: String,
    },
    /// A value of a type the option does not take, e.g. a list or a boolean for a size
    /// (Python raises `TypeError`).
    #[error("{message}")]
    Type {
        /// The option, as written.
        option: String,
        /// What the option takes.
        message: String,
    },
    /// A value the option does not accept: out of range, or not understood.
    #[error("{message}")]
    Value {
        /// The option, as written.
        option: String,
        /// What is wrong.
        message: String,
    },
    /// Options that do not go together, or one given without another it needs.
    #[error("{0}")]
    Usage(String),
    /// The famfs image or dax device cannot be opened.
    #[error("cannot open the famfs on {}: {cause}", path.display())]
    Open {
        /// The device.
        path: PathBuf,
        /// What failed (boxed: errors stay small to pass around).
        cause: Box<CatalogError>,
    },
    /// A mount cannot be opened, or a grant names nothing in the source.
    #[error(transparent)]
    Catalog(Box<CatalogError>),
}

impl From<CatalogError> for RequestError {
    fn from(e: CatalogError) -> Self {
        RequestError::Catalog(Box::new(e))
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

/// A limit option's value as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionValue<'a> {
    /// Text: a flag's value, a TOML or Python string (`"30s"`, `"512M"`, `"shared"`, `"8"`).
    Text(&'a str),
    /// An integer: TOML's (64-bit) or Python's (unbounded). Wide enough for every `u64` and
    /// for negative ones, which are refused by the option rather than lost in a conversion.
    Int(i128),
    /// A floating-point number (seconds, for a duration).
    Float(f64),
    /// A value of any other type, by what it is (`"a boolean"`, `"a list"`): always refused,
    /// with what the option takes.
    Other(&'a str),
}

/// One limit option: its name in every front end, its help, how its value is read.
#[derive(Debug)]
pub struct LimitOption {
    /// The name (snake_case): a manifest's `[limits]` key and a Python keyword.
    pub name: &'static str,
    /// The command-line flag, without `--` (the name in kebab-case).
    pub flag: &'static str,
    /// What the flag's value looks like in `--help`.
    pub value_name: &'static str,
    /// One line of help for `--help`.
    pub help: &'static str,
    parse: fn(OptionValue<'_>) -> Result<Setting, Problem>,
    show: fn(&Limits) -> String,
}

impl LimitOption {
    /// The value `limits` has for this option, written as the option takes it (`4G`, `30s`,
    /// `auto`, `none`): the default in `--help`.
    pub fn show(&self, limits: &Limits) -> String {
        (self.show)(limits)
    }
}

/// Every limit option, in `--help`'s order. A new option is one entry here (and a field of
/// [`Limits`]); the command line, manifests, Python and famfs-serve take it from this table.
pub const LIMIT_OPTIONS: &[LimitOption] = &[
    LimitOption {
        name: "timeout",
        flag: "timeout",
        value_name: "DUR",
        help: "Wall-clock limit for the guest, e.g. 30s, 500ms, 2m (exit 124 when it passes)",
        parse: |v| duration(v).map(Setting::Timeout),
        show: |l| l.timeout.map_or_else(|| "none".into(), duration_text),
    },
    LimitOption {
        name: "fuel",
        flag: "fuel",
        value_name: "N",
        help: "Fuel budget: counts executed instructions (the engine then counts fuel, somewhat slower)",
        parse: |v| count(v, 0).map(Setting::Fuel),
        show: |l| l.fuel.map_or_else(|| "none".into(), |n| n.to_string()),
    },
    LimitOption {
        name: "max_memory",
        flag: "max-memory",
        value_name: "SIZE",
        help: "Largest guest memory, e.g. 512M, 4G (mapped datasets count)",
        parse: |v| size(v).map(Setting::MaxMemory),
        show: |l| size_text(l.max_memory),
    },
    LimitOption {
        name: "max_mappings",
        flag: "max-mappings",
        value_name: "N",
        help: "Live dataset mappings the guest may hold at once",
        parse: |v| cap(v).map(Setting::MaxMappings),
        show: |l| l.max_mappings.to_string(),
    },
    LimitOption {
        name: "max_kernel_mappings",
        flag: "max-kernel-mappings",
        value_name: "N",
        help: "Kernel memory mappings (VMAs) the guest's dataset mappings may occupy",
        parse: |v| cap(v).map(Setting::MaxKernelMappings),
        show: |l| l.max_kernel_mappings.to_string(),
    },
    LimitOption {
        name: "max_open_datasets",
        flag: "max-open-datasets",
        value_name: "N",
        help: "Datasets the guest may hold open at once",
        parse: |v| cap(v).map(Setting::MaxOpenDatasets),
        show: |l| l.max_open_datasets.to_string(),
    },
    LimitOption {
        name: "max_wasi_resources",
        flag: "max-wasi-resources",
        value_name: "N",
        help: "WASI files, directories and streams the guest may hold at once",
        parse: |v| cap(v).map(Setting::MaxWasiResources),
        show: |l| l.max_wasi_resources.to_string(),
    },
    LimitOption {
        name: "max_output",
        flag: "max-output",
        value_name: "SIZE",
        help: "Captured stdout, and stderr, kept (--json), e.g. 16M; the rest is dropped",
        parse: |v| {
            let n = size(v)?;
            usize::try_from(n).map(Setting::MaxOutput).map_err(|_| Problem::Value("is too large".into()))
        },
        show: |l| size_text(u64::try_from(l.max_output).unwrap_or(u64::MAX)),
    },
    LimitOption {
        name: "map_technique",
        flag: "map-technique",
        value_name: "private|shared|auto",
        help: "How datasets are mapped: private (copy-on-write by the kernel; images and mounts), \
               shared (read-only, copy-on-write by famfs-run: what /dev/dax allows), or auto (shared \
               on a dax device, private elsewhere)",
        parse: |v| match v {
            OptionValue::Text(t) => t.parse().map(Setting::MapTechnique).map_err(Problem::Parse),
            _ => Err(Problem::Type("private, shared or auto")),
        },
        show: |l| technique_text(l.map_technique).into(),
    },
];

/// The limit option called `name` (snake_case).
pub fn limit_option(name: &str) -> Option<&'static LimitOption> {
    LIMIT_OPTIONS.iter().find(|o| o.name == name)
}

/// A parsed limit value: which field of [`Limits`] it sets, to what.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Setting {
    Timeout(Duration),
    Fuel(u64),
    MaxMemory(u64),
    MaxMappings(usize),
    MaxKernelMappings(usize),
    MaxOpenDatasets(usize),
    MaxWasiResources(usize),
    MaxOutput(usize),
    MapTechnique(MapTechnique),
}

impl Setting {
    fn apply(self, l: &mut Limits) {
        match self {
            Setting::Timeout(t) => l.timeout = Some(t),
            Setting::Fuel(f) => l.fuel = Some(f),
            Setting::MaxMemory(n) => l.max_memory = n,
            Setting::MaxMappings(n) => l.max_mappings = n,
            Setting::MaxKernelMappings(n) => l.max_kernel_mappings = n,
            Setting::MaxOpenDatasets(n) => l.max_open_datasets = n,
            Setting::MaxWasiResources(n) => l.max_wasi_resources = n,
            Setting::MaxOutput(n) => l.max_output = n,
            Setting::MapTechnique(t) => l.map_technique = t,
        }
    }
}

/// What is wrong with a value, before the option's name is put to it.
#[derive(Debug)]
enum Problem {
    /// Of the wrong type: "{option} must be {what it takes}, not {what it got}".
    Type(&'static str),
    /// Out of range: "{option} {this}" ("must be at least 1").
    Value(String),
    /// Not understood: "{option}: {what the parser said}".
    Parse(String),
}

/// A duration: text (`30s`, `500ms`), or a number of seconds.
fn duration(v: OptionValue<'_>) -> Result<Duration, Problem> {
    const TAKES: &str = "seconds or a duration such as \"30s\"";
    let secs = match v {
        OptionValue::Text(t) => return parse_duration(t).map_err(Problem::Parse),
        OptionValue::Int(n) => n as f64,
        OptionValue::Float(f) => f,
        OptionValue::Other(_) => return Err(Problem::Type(TAKES)),
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Problem::Value(format!("must be a number of seconds from 0 up, not {secs}")))
}

/// A whole number of at least `min`: text, or an integer.
fn count(v: OptionValue<'_>, min: u64) -> Result<u64, Problem> {
    let n: i128 = match v {
        OptionValue::Text(t) => t.trim().parse().map_err(|_| Problem::Parse(format!("'{t}' is not a whole number")))?,
        OptionValue::Int(n) => n,
        OptionValue::Float(_) | OptionValue::Other(_) => return Err(Problem::Type("a whole number")),
    };
    if n < i128::from(min) {
        return Err(Problem::Value(format!("must be at least {min}")));
    }
    u64::try_from(n).map_err(|_| Problem::Value(format!("must be at most {}", u64::MAX)))
}

/// A cap on something the guest holds: a count of at least 1 (0 would stop every guest).
fn cap(v: OptionValue<'_>) -> Result<usize, Problem> {
    let n = count(v, 1)?;
    usize::try_from(n).map_err(|_| Problem::Value(format!("must be at most {}", usize::MAX)))
}

/// A size in bytes: text (`512M`, `4G`), or an integer.
fn size(v: OptionValue<'_>) -> Result<u64, Problem> {
    match v {
        OptionValue::Text(t) => famfs::units::parse_size(t).map_err(Problem::Parse),
        OptionValue::Int(n) if n < 0 => Err(Problem::Value("must not be negative".into())),
        OptionValue::Int(n) => u64::try_from(n).map_err(|_| Problem::Value("is too large".into())),
        OptionValue::Float(_) | OptionValue::Other(_) => {
            Err(Problem::Type("a number of bytes or a size such as \"512M\""))
        }
    }
}

/// `n` bytes as a size option takes it: the largest unit that divides it (`4G`, `16M`).
fn size_text(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A duration as the duration options take it (`30s`, `500ms`).
fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_secs_f64() * 1000.0) }
}

fn technique_text(t: MapTechnique) -> &'static str {
    match t {
        MapTechnique::Private => "private",
        MapTechnique::Shared => "shared",
        MapTechnique::Auto => "auto",
    }
}

/// What a value is, for "must be X, not Y".
fn kind_of(v: OptionValue<'_>) -> &str {
    match v {
        OptionValue::Text(_) => "text",
        OptionValue::Int(_) => "an integer",
        OptionValue::Float(_) => "a float",
        OptionValue::Other(what) => what,
    }
}

/// The limit names as the user writes them, for "the limits are ...".
fn known_limits(spelling: Spelling) -> String {
    let names = LIMIT_OPTIONS.iter().map(|o| match spelling {
        // A manifest's keys are already inside [limits]: the bare names read best.
        Spelling::Cli | Spelling::Python => spelling.limit(o.name),
        Spelling::Manifest => o.name.to_string(),
    });
    names.collect::<Vec<_>>().join(", ")
}

/// Limits given by the user, parsed, in the order given: applied over defaults
/// ([`Limits::default`], a runtime's, or a manifest's caller's) by [`apply`](Self::apply).
#[derive(Clone, Debug, Default)]
pub struct LimitOverrides {
    settings: Vec<(&'static LimitOption, Setting)>,
}

impl LimitOverrides {
    /// Sets limit `name` to `value` (replacing an earlier value of it). An unknown name is an
    /// error listing the known ones; a bad value is an error naming the option as spelled.
    pub fn set(&mut self, name: &str, value: OptionValue<'_>, spelling: Spelling) -> Result<(), RequestError> {
        let Some(option) = limit_option(name) else {
            let message = match spelling {
                Spelling::Python => {
                    format!("unexpected keyword argument '{name}'; the limits are {}", known_limits(spelling))
                }
                _ => format!("{} is not a limit; the limits are {}", spelling.limit(name), known_limits(spelling)),
            };
            return Err(RequestError::Unknown { option: spelling.limit(name), message });
        };
        let spelled = spelling.limit(option.name);
        let setting = (option.parse)(value).map_err(|p| match p {
            Problem::Type(takes) => RequestError::Type {
                message: format!("{spelled} must be {takes}, not {}", kind_of(value)),
                option: spelled.clone(),
            },
            Problem::Value(why) => RequestError::Value { message: format!("{spelled} {why}"), option: spelled.clone() },
            Problem::Parse(why) => {
                RequestError::Value { message: format!("{spelled}: {why}"), option: spelled.clone() }
            }
        })?;
        self.settings.retain(|(o, _)| o.name != option.name);
        self.settings.push((option, setting));
        Ok(())
    }

    /// `limits` with these set.
    pub fn apply(&self, mut limits: Limits) -> Limits {
        for (_, setting) in &self.settings {
            setting.apply(&mut limits);
        }
        limits
    }

    /// The names of the limits given, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.settings.iter().map(|(o, _)| o.name)
    }
}

// ---------------------------------------------------------------------------------------------
// Source

/// Where a run's datasets come from and what the guest may see of them: a manifest's
/// `[source]` (which deserializes straight into it), famfs-run's `--device`/`--mount`/
/// `--dataset`/`--dir`, Python's `device=`/`mount=`/`datasets=`/`dirs=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A famfs image or dax device (or `tag:UUID` / `uuid:UUID`).
    pub device: Option<PathBuf>,
    /// A mounted famfs (or any directory).
    pub mount: Option<PathBuf>,
    /// Grants ('/' = everything).
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Read-only WASI directories, (guest path, path): a famfs directory served from the device
    /// itself, a directory inside the mount, or with neither a host directory.
    #[serde(default, deserialize_with = "dirs_table")]
    pub dirs: Vec<(String, String)>,
}

/// A manifest's `dirs = { "/data" = "logs" }`: guest path = path.
fn dirs_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    Ok(std::collections::BTreeMap::<String, String>::deserialize(d)?.into_iter().collect())
}

/// What a [`Source`] opens: the key of an opened catalog (Python keeps one per key, refreshed
/// when its famfs log changes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// A famfs image or dax device.
    Device(PathBuf),
    /// A mounted famfs (or any directory).
    Mount(PathBuf),
}

impl SourceKey {
    /// Opens it, granting nothing yet (see [`Source::grant_over`]).
    pub fn open(&self) -> Result<Catalog, RequestError> {
        match self {
            SourceKey::Device(d) => {
                Catalog::open_device(d).map_err(|cause| RequestError::Open { path: d.clone(), cause: Box::new(cause) })
            }
            SourceKey::Mount(m) => Ok(Catalog::open_mount(m)?),
        }
    }
}

impl Source {
    /// Checks that the options go together: not both a device and a mount; datasets only with
    /// one of them (a directory without one is a host directory).
    pub fn check(&self, spelling: Spelling) -> Result<(), RequestError> {
        let device = spelling.option("source", "device");
        let mount = spelling.option("source", "mount");
        if self.device.is_some() && self.mount.is_some() {
            return Err(RequestError::Usage(format!("both {device} and {mount} are given; keep one")));
        }
        // Datasets come from a famfs; a directory without a source is a host directory (its
        // own read-only grant: docs/architecture.md, "Directories").
        if self.device.is_none() && self.mount.is_none() && !self.datasets.is_empty() {
            return Err(RequestError::Usage(format!(
                "{} needs a source: {} or {}",
                spelling.option("source", "datasets"),
                spelling.assign("source", "device", "IMAGE_OR_DAX"),
                spelling.assign("source", "mount", "DIR"),
            )));
        }
        Ok(())
    }

    /// What it opens, if anything (the device when both are given: [`check`](Self::check)
    /// refuses that first).
    pub fn key(&self) -> Option<SourceKey> {
        match (&self.device, &self.mount) {
            (Some(d), _) => Some(SourceKey::Device(d.clone())),
            (None, Some(m)) => Some(SourceKey::Mount(m.clone())),
            (None, None) => None,
        }
    }

    /// The catalog of granted datasets: the device or mount opened (nothing without one), then
    /// each dataset granted.
    pub fn open(&self) -> Result<Catalog, RequestError> {
        let base = match self.key() {
            Some(key) => key.open()?,
            None => Catalog::empty(),
        };
        self.grant_over(base)
    }

    /// The datasets granted over `base`, a catalog of this source opened before (perhaps
    /// [`Catalog::refreshed`] since): a server or a Python runtime opens a source once.
    pub fn grant_over(&self, base: Catalog) -> Result<Catalog, RequestError> {
        let mut catalog = base;
        for d in &self.datasets {
            catalog.grant(d)?;
        }
        Ok(catalog)
    }

    /// Whether its directories are famfs directories served from the device, which only a
    /// component can be given.
    pub fn needs_component(&self) -> bool {
        self.device.is_some() && !self.dirs.is_empty()
    }

    /// Adds its directories to `inv` ([`Invocation::add_dir`]): from the device, or inside the
    /// mount.
    pub fn add_dirs(&self, inv: &mut Invocation, spelling: Spelling) -> Result<(), RequestError> {
        for (guest, path) in &self.dirs {
            inv.add_dir(guest.clone(), path, self.mount.as_deref(), self.device.is_some()).map_err(|why| {
                let option = match spelling {
                    Spelling::Cli => format!("--dir '{guest}={path}'"),
                    Spelling::Manifest => format!("source.dirs '{guest}' = '{path}'"),
                    Spelling::Python => format!("dirs={{'{guest}': '{path}'}}"),
                };
                RequestError::Value { message: format!("{option}: {why}"), option }
            })?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Entry

/// Checks an export name to invoke: only `handle` (the handler world's) can be.
pub fn check_invoke(name: &str, spelling: Spelling) -> Result<(), RequestError> {
    if name == "handle" {
        return Ok(());
    }
    let option = spelling.option("module", "invoke");
    let message = format!(
        "{}: only `handle` (the famfs:dataset handler world's export) can be invoked; leave {option} out to run a command",
        spelling.assign("module", "invoke", name)
    );
    Err(RequestError::Value { option, message })
}

/// What an invocation calls, from the export named to invoke (`--invoke`, a manifest's
/// `module.invoke`) and the request given (`--input`, Python's `input=`), whose bytes are
/// read by `read` only once the two are known to go together (`--input -` reads stdin).
///
/// `spelling` is how the input was given; `manifest` the file that named the export, if one
/// did. Errors: an export other than `handle`; `handle` without input; input without `handle`.
pub fn entry_with<T, E: From<RequestError>>(
    invoke: Option<&str>,
    input: Option<T>,
    spelling: Spelling,
    manifest: Option<&Path>,
    read: impl FnOnce(T) -> Result<Vec<u8>, E>,
) -> Result<Entry, E> {
    let invoke_spelling = if manifest.is_some() { Spelling::Manifest } else { spelling };
    let input_option = spelling.option("module", "input");
    let usage = |message: String| E::from(RequestError::Usage(message));
    match (invoke, input) {
        (Some(name), input) => {
            check_invoke(name, invoke_spelling)?;
            let hint = match spelling {
                Spelling::Cli => "--input FILE|-".to_string(),
                _ => input_option.clone(),
            };
            match (input, manifest) {
                (Some(input), _) => Ok(Entry::Handle { input: read(input)? }),
                (None, Some(file)) => {
                    Err(usage(format!("{} invokes `handle`: give the request with {hint}", file.display())))
                }
                (None, None) => Err(usage(format!(
                    "{} needs the request: give it with {hint}",
                    spelling.assign("module", "invoke", "handle")
                ))),
            }
        }
        (None, Some(_)) => Err(usage(match manifest {
            Some(file) => format!("{input_option} is for handlers; {} runs a command", file.display()),
            None => format!("{input_option} goes with {}", spelling.assign("module", "invoke", "handle")),
        })),
        (None, None) => Ok(Entry::Command),
    }
}

/// [`entry_with`] for a request already in memory.
pub fn entry(
    invoke: Option<&str>,
    input: Option<Vec<u8>>,
    spelling: Spelling,
    manifest: Option<&Path>,
) -> Result<Entry, RequestError> {
    entry_with(invoke, input, spelling, manifest, Ok)
}

/// Whether an invocation of `entry` over `source` needs the guest as a component (a core
/// module is adapted at load time): the handler world, or famfs directories from a device.
pub fn needs_component(entry: &Entry, source: &Source) -> bool {
    matches!(entry, Entry::Handle { .. }) || source.needs_component()
}

// ---------------------------------------------------------------------------------------------
// Environment

/// Checks the names of the guest's environment: none may be [`GUEST_MAX_MEMORY_ENV`], which
/// famfs-run sets to the guest's memory limit (another value would lie about it).
pub fn check_env<'a>(names: impl IntoIterator<Item = &'a str>, spelling: Spelling) -> Result<(), RequestError> {
    if !names.into_iter().any(|k| k == GUEST_MAX_MEMORY_ENV) {
        return Ok(());
    }
    let (option, prefix) = match spelling {
        Spelling::Cli => ("--env".to_string(), "--env".to_string()),
        Spelling::Manifest => (format!("env.{GUEST_MAX_MEMORY_ENV}"), format!("env.{GUEST_MAX_MEMORY_ENV}")),
        Spelling::Python => ("env=".to_string(), "env".to_string()),
    };
    let message = format!(
        "{prefix}: {GUEST_MAX_MEMORY_ENV} is set by famfs-run to the guest's memory limit; set {} instead",
        spelling.limit("max_memory")
    );
    Err(RequestError::Value { option, message })
}

/// A `--env K=V` flag's variable.
pub fn env_flag(spec: &str) -> Result<(String, String), RequestError> {
    spec.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| RequestError::Value {
        option: "--env".into(),
        message: format!("--env '{spec}' must look like K=V"),
    })
}

/// A `--dir GUEST=PATH` flag's directory.
pub fn dir_flag(spec: &str) -> Result<(String, String), RequestError> {
    spec.split_once('=').map(|(g, p)| (g.to_string(), p.to_string())).ok_or_else(|| RequestError::Value {
        option: "--dir".into(),
        message: format!("--dir '{spec}' must look like GUEST=PATH, e.g. /data=datasets"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use OptionValue::{Float, Int, Other, Text};

    fn limits(name: &str, value: OptionValue<'_>) -> Result<Limits, RequestError> {
        let mut o = LimitOverrides::default();
        o.set(name, value, Spelling::Manifest)?;
        Ok(o.apply(Limits::default()))
    }

    fn error(name: &str, value: OptionValue<'_>, spelling: Spelling) -> String {
        LimitOverrides::default().set(name, value, spelling).unwrap_err().to_string()
    }

    #[test]
    fn the_table_is_consistent() {
        for o in LIMIT_OPTIONS {
            assert_eq!(o.flag, o.name.replace('_', "-"), "{}", o.name);
            assert!(!o.help.is_empty() && !o.help.contains('\n'), "{}", o.name);
            assert_eq!(LIMIT_OPTIONS.iter().filter(|p| p.name == o.name).count(), 1, "{}", o.name);
            // The default as shown reads back as the default.
            let d = Limits::default();
            let shown = o.show(&d);
            if shown != "none" {
                let back = limits(o.name, Text(&shown)).unwrap();
                assert_eq!(format!("{:?}", back), format!("{d:?}"), "{} = {shown}", o.name);
            }
        }
        assert_eq!(limit_option("max_output").unwrap().show(&Limits::default()), "16M");
        assert_eq!(limit_option("max_memory").unwrap().show(&Limits::default()), "4G");
        assert_eq!(limit_option("map_technique").unwrap().show(&Limits::default()), "auto");
        assert_eq!(limit_option("timeout").unwrap().show(&Limits::default()), "none");
    }

    #[test]
    fn every_option_reads_text_and_numbers() {
        let l = limits("timeout", Text("1.5s")).unwrap();
        assert_eq!(l.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(limits("timeout", Int(2)).unwrap().timeout, Some(Duration::from_secs(2)));
        assert_eq!(limits("timeout", Float(0.25)).unwrap().timeout, Some(Duration::from_millis(250)));
        assert_eq!(limits("fuel", Text("1000")).unwrap().fuel, Some(1000));
        assert_eq!(limits("fuel", Int(0)).unwrap().fuel, Some(0));
        assert_eq!(limits("fuel", Int(u64::MAX.into())).unwrap().fuel, Some(u64::MAX));
        assert_eq!(limits("max_memory", Text("64M")).unwrap().max_memory, 64 << 20);
        assert_eq!(limits("max_memory", Int(4096)).unwrap().max_memory, 4096);
        assert_eq!(limits("max_output", Text("1k")).unwrap().max_output, 1024);
        assert_eq!(limits("max_output", Int(10)).unwrap().max_output, 10);
        for (name, field) in [
            ("max_mappings", (|l: &Limits| l.max_mappings) as fn(&Limits) -> usize),
            ("max_kernel_mappings", |l| l.max_kernel_mappings),
            ("max_open_datasets", |l| l.max_open_datasets),
            ("max_wasi_resources", |l| l.max_wasi_resources),
        ] {
            assert_eq!(field(&limits(name, Int(7)).unwrap()), 7, "{name}");
            assert_eq!(field(&limits(name, Text("9")).unwrap()), 9, "{name}");
            assert_eq!(error(name, Int(0), Spelling::Manifest), format!("limits.{name} must be at least 1"));
            assert_eq!(
                error(name, Text("0"), Spelling::Cli),
                format!("--{} must be at least 1", name.replace('_', "-"))
            );
            assert_eq!(error(name, Int(-3), Spelling::Python), format!("{name}= must be at least 1"));
            assert!(error(name, Text("many"), Spelling::Cli).contains("'many' is not a whole number"));
            assert!(error(name, Float(1.0), Spelling::Python).contains("must be a whole number, not a float"));
        }
        let l = limits("map_technique", Text("shared")).unwrap();
        assert_eq!(l.map_technique, MapTechnique::Shared);
        assert_eq!(limits("map_technique", Text("private")).unwrap().map_technique, MapTechnique::Private);
    }

    #[test]
    fn bad_values_name_the_option_as_written() {
        assert_eq!(
            error("timeout", Text("soon"), Spelling::Cli),
            "--timeout: 'soon' is not a duration such as 30s, 500ms or 2m"
        );
        assert!(error("timeout", Text("soon"), Spelling::Manifest).starts_with("limits.timeout: "));
        assert!(error("timeout", Float(-1.0), Spelling::Python).starts_with("timeout= must be a number of seconds"));
        assert!(error("timeout", Float(f64::NAN), Spelling::Python).starts_with("timeout= must be"));
        assert_eq!(
            error("timeout", Other("a boolean"), Spelling::Python),
            "timeout= must be seconds or a duration such as \"30s\", not a boolean"
        );
        assert!(error("max_memory", Text("lots"), Spelling::Manifest).starts_with("limits.max_memory: 'lots'"));
        assert_eq!(error("max_memory", Int(-1), Spelling::Python), "max_memory= must not be negative");
        assert!(error("max_memory", Float(1.5), Spelling::Python).contains("a number of bytes or a size"));
        assert!(error("max_output", Text("x"), Spelling::Manifest).starts_with("limits.max_output: "));
        assert!(error("fuel", Int(-1), Spelling::Python).contains("fuel= must be at least 0"));
        assert!(error("fuel", Int(i128::from(u64::MAX) + 1), Spelling::Python).contains("must be at most"));
        let e = error("map_technique", Text("dax"), Spelling::Cli);
        assert_eq!(e, "--map-technique: 'dax' is not a map technique: private, shared or auto");
        assert!(
            error("map_technique", Int(1), Spelling::Python).contains("map_technique= must be private, shared or auto")
        );
        // Which errors they are: Python raises TypeError for a wrong type, ValueError else.
        let mut o = LimitOverrides::default();
        assert!(matches!(o.set("fuel", Other("a list"), Spelling::Python), Err(RequestError::Type { .. })));
        assert!(matches!(o.set("fuel", Int(-1), Spelling::Python), Err(RequestError::Value { .. })));
        assert!(o.names().next().is_none());
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = error("timout", Int(1), Spelling::Manifest);
        assert!(e.starts_with("limits.timout is not a limit; the limits are timeout, fuel, max_memory"), "{e}");
        let e = error("timout", Int(1), Spelling::Python);
        assert!(e.starts_with("unexpected keyword argument 'timout'; the limits are timeout=, fuel="), "{e}");
        let e = error("max_outptu", Text("1"), Spelling::Cli);
        assert!(e.starts_with("--max-outptu is not a limit") && e.contains("--max-output"), "{e}");
        let mut o = LimitOverrides::default();
        assert!(matches!(o.set("timout", Int(1), Spelling::Python), Err(RequestError::Unknown { .. })));
    }

    #[test]
    fn overrides_apply_in_order_over_defaults() {
        let mut o = LimitOverrides::default();
        assert!(o.names().next().is_none() && o.apply(Limits::default()).fuel.is_none());
        o.set("fuel", Int(5), Spelling::Cli).unwrap();
        o.set("max_memory", Text("1M"), Spelling::Cli).unwrap();
        o.set("max_memory", Text("2M"), Spelling::Cli).unwrap();
        assert_eq!(o.apply(Limits::default()).fuel, Some(5));
        assert_eq!(o.names().collect::<Vec<_>>(), ["fuel", "max_memory"]);
        let defaults = Limits { max_mappings: 3, max_memory: 9, ..Limits::default() };
        let l = o.apply(defaults);
        assert_eq!((l.fuel, l.max_memory, l.max_mappings), (Some(5), 2 << 20, 3));
    }

    #[test]
    fn source_checks_are_worded_per_front_end() {
        let both = Source { device: Some("a".into()), mount: Some("b".into()), ..Source::default() };
        assert_eq!(
            both.check(Spelling::Manifest).unwrap_err().to_string(),
            "both source.device and source.mount are given; keep one"
        );
        assert_eq!(
            both.check(Spelling::Python).unwrap_err().to_string(),
            "both device= and mount= are given; keep one"
        );
        let loose = Source { datasets: vec!["x".into()], ..Source::default() };
        assert_eq!(
            loose.check(Spelling::Cli).unwrap_err().to_string(),
            "--dataset needs a source: --device IMAGE_OR_DAX or --mount DIR"
        );
        assert_eq!(
            loose.check(Spelling::Python).unwrap_err().to_string(),
            "datasets= needs a source: device=IMAGE_OR_DAX or mount=DIR"
        );
        let dirs = Source { dirs: vec![("/d".into(), "logs".into())], ..Source::default() };
        // A directory without a source is a host directory.
        assert!(dirs.check(Spelling::Manifest).is_ok() && !dirs.needs_component());
        assert!(Source::default().check(Spelling::Cli).is_ok());
        assert!(Source::default().open().is_ok());
        assert!(Source::default().key().is_none());
        // Famfs directories come from the device: a component's; a mount's do not need one.
        let on_device = Source { device: Some("d.img".into()), ..dirs.clone() };
        assert!(on_device.needs_component() && on_device.check(Spelling::Cli).is_ok());
        assert_eq!(on_device.key(), Some(SourceKey::Device("d.img".into())));
        let on_mount = Source { mount: Some("/mnt".into()), ..dirs };
        assert!(!on_mount.needs_component());
        assert!(needs_component(&Entry::Handle { input: vec![] }, &Source::default()));
        assert!(!needs_component(&Entry::Command, &Source::default()));
    }

    #[test]
    fn sources_open_and_grant() {
        let dir = std::env::temp_dir().join(format!("famfs-request-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("logs/a.log"), b"x").unwrap();
        let src = Source { mount: Some(dir.clone()), datasets: vec!["logs".into()], ..Source::default() };
        let catalog = src.open().unwrap();
        assert_eq!(catalog.list().len(), 1);
        // Granted again over a base opened before.
        let base = src.key().unwrap().open().unwrap();
        assert_eq!(src.grant_over(base).unwrap().list().len(), 1);
        let bad = Source { datasets: vec!["nope".into()], ..src.clone() };
        assert!(bad.open().err().unwrap().to_string().contains("cannot grant 'nope'"));
        let missing = Source { device: Some(dir.join("no.img")), ..Source::default() };
        let e = missing.open().err().unwrap().to_string();
        assert!(e.starts_with(&format!("cannot open the famfs on {}: ", dir.join("no.img").display())), "{e}");
        // Directories: inside the mount, never outside; errors name the option as written.
        let escape = Source { dirs: vec![("/d".into(), "../..".into())], ..src.clone() };
        let e = escape.add_dirs(&mut Invocation::new("g"), Spelling::Python).unwrap_err().to_string();
        assert!(e.starts_with("dirs={'/d': '../..'}: ") && e.contains("must stay inside the mount"), "{e}");
        let e = escape.add_dirs(&mut Invocation::new("g"), Spelling::Cli).unwrap_err().to_string();
        assert!(e.starts_with("--dir '/d=../..': "), "{e}");
        let ok = Source { dirs: vec![("/d".into(), "logs".into())], ..src };
        let mut inv = Invocation::new("g");
        ok.add_dirs(&mut inv, Spelling::Manifest).unwrap();
        assert_eq!(inv.mount_dirs.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_need_handle_and_input_together() {
        let m = Path::new("/srv/fn.toml");
        assert!(matches!(entry(None, None, Spelling::Cli, None), Ok(Entry::Command)));
        assert!(
            matches!(entry(Some("handle"), Some(b"x".to_vec()), Spelling::Cli, None), Ok(Entry::Handle { input }) if input == b"x")
        );
        let e = |invoke, input: Option<Vec<u8>>, s, m| entry(invoke, input, s, m).unwrap_err().to_string();
        assert_eq!(
            e(Some("main"), Some(vec![]), Spelling::Cli, None),
            "--invoke main: only `handle` (the famfs:dataset handler world's export) can be invoked; leave --invoke out to run a command"
        );
        assert!(e(Some("main"), None, Spelling::Cli, Some(m)).starts_with("module.invoke = \"main\": only `handle`"));
        assert_eq!(
            e(Some("handle"), None, Spelling::Cli, None),
            "--invoke handle needs the request: give it with --input FILE|-"
        );
        assert_eq!(
            e(Some("handle"), None, Spelling::Cli, Some(m)),
            "/srv/fn.toml invokes `handle`: give the request with --input FILE|-"
        );
        assert_eq!(
            e(Some("handle"), None, Spelling::Python, Some(m)),
            "/srv/fn.toml invokes `handle`: give the request with input="
        );
        assert_eq!(e(None, Some(vec![]), Spelling::Cli, None), "--input goes with --invoke handle");
        assert_eq!(
            e(None, Some(vec![]), Spelling::Cli, Some(m)),
            "--input is for handlers; /srv/fn.toml runs a command"
        );
        assert_eq!(
            e(None, Some(vec![]), Spelling::Python, Some(m)),
            "input= is for handlers; /srv/fn.toml runs a command"
        );
        // The input is read only when it goes with the entry.
        let read = |_: ()| -> Result<Vec<u8>, RequestError> { panic!("read") };
        assert!(entry_with(None, Some(()), Spelling::Cli, None, read).is_err());
        assert!(check_invoke("handle", Spelling::Manifest).is_ok());
    }

    #[test]
    fn the_guests_memory_limit_is_not_the_environments() {
        assert!(check_env(["LOG", "PATH"], Spelling::Cli).is_ok());
        let e = |s| check_env(["LOG", GUEST_MAX_MEMORY_ENV], s).unwrap_err().to_string();
        assert_eq!(
            e(Spelling::Cli),
            "--env: FAMFS_RUN_MAX_MEMORY is set by famfs-run to the guest's memory limit; set --max-memory instead"
        );
        assert!(
            e(Spelling::Manifest).starts_with("env.FAMFS_RUN_MAX_MEMORY: ")
                && e(Spelling::Manifest).ends_with("set limits.max_memory instead")
        );
        assert!(e(Spelling::Python).starts_with("env: ") && e(Spelling::Python).ends_with("set max_memory= instead"));
        assert_eq!(env_flag("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(env_flag("A").unwrap_err().to_string(), "--env 'A' must look like K=V");
        assert_eq!(dir_flag("/d=logs").unwrap(), ("/d".into(), "logs".into()));
        assert!(dir_flag("/d").unwrap_err().to_string().contains("must look like GUEST=PATH"));
    }
}
