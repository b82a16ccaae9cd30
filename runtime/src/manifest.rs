//! Function manifests: one TOML file says what to run, over which datasets, with which limits
//! (`famfs-run --manifest FILE.toml`, and [`Manifest`] in the library API alike).
//!
//! ```toml
//! [module]
//! path = "query.wasm"              # relative to this file; a bare name ("sql") that is no file
//!                                  # here is an installed guest's (crate::guests)
//! sha256 = "9f86d0…"               # optional: refuse any other bytes
//! invoke = "handle"                # optional: the handler world; default: run the command
//! args = ["--mode", "map"]         # optional command-line arguments
//!
//! [source]                         # optional: where datasets come from
//! device = "famfs.img"             # a famfs image or /dev/daxX.Y (relative to this file), or
//!                                  # tag:UUID / uuid:UUID (the device carrying that tag or UUID)
//! # mount = "/mnt/famfs"           # ... or a mounted famfs (not both)
//! datasets = ["logs", "data/x.bin"]  # grants ('/' = everything)
//! dirs = { "/data" = "logs" }      # read-only WASI directories (GUEST = famfs or mount PATH;
//!                                  # without device or mount, a host directory, relative to this file)
//!
//! [limits]                         # optional, each defaulting to the runtime's
//! timeout = "30s"
//! fuel = 100000000                 # needs a runtime that counts fuel
//! max_memory = "512M"
//! max_mappings = 256               # live dataset mappings
//! max_kernel_mappings = 4096       # kernel mappings (VMAs) those may occupy
//! max_open_datasets = 256          # datasets open at once
//! max_wasi_resources = 256         # WASI files, directories and streams held at once
//! max_output = "16M"               # captured stdout, and stderr, kept (the rest is dropped)
//! map_technique = "auto"           # private | shared | auto (shared on a dax device)
//!
//! [env]                            # environment variables
//! LOG = "info"
//!
//! [config]                         # function configuration, given to the guest as
//! greeting = "hello"               # environment variables FAMFS_CONFIG_<KEY> (upper case)
//! ```
//!
//! Unknown keys are an error (a typo must not silently drop a limit). What the keys mean, and
//! how `[source]`, `[limits]` and `[env]` are checked, is [`crate::request`]'s, shared with the
//! command line and Python: a limit may be given as text (`"30s"`, `"512M"`) or as a number
//! (seconds, bytes).

use crate::embed::{EmbedError, Runtime};
use crate::limits::Limits;
use crate::program::Program;
use crate::request::{self, LimitOverrides, OptionValue, RequestError, Source, Spelling};
use crate::run::{Entry, Invocation};
use famfs_host_api::Catalog;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why a manifest cannot be used.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read the manifest {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        cause: std::io::Error,
    },
    /// Not valid TOML, a wrong type, a missing or unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line and column.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A limit, the source, the entry or the environment breaks a rule of [`crate::request`],
    /// or the source cannot be opened or a grant is refused.
    #[error("{path}: {cause}")]
    Request {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        cause: RequestError,
    },
    /// The module cannot be loaded.
    #[error("{path}: {cause}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What failed.
        cause: EmbedError,
    },
}

/// `[module]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// The guest, relative to the manifest's directory.
    pub path: PathBuf,
    /// Its expected sha256 (hex).
    pub sha256: Option<String>,
    /// `handle` to call the handler world; absent to run the command.
    pub invoke: Option<String>,
    /// Command-line arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

/// A parsed manifest, its relative paths resolved against its directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[module]`.
    pub module: ModuleSpec,
    /// `[source]`.
    #[serde(default)]
    pub source: Source,
    /// `[limits]` as written: each key a limit option ([`request::LIMIT_OPTIONS`]), checked when
    /// the manifest is read.
    #[serde(default)]
    pub limits: BTreeMap<String, toml::Value>,
    /// `[limits]`, parsed.
    #[serde(skip)]
    overrides: LimitOverrides,
    /// `[env]`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `[config]`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where it was read from.
    #[serde(skip)]
    pub file: PathBuf,
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|cause| ManifestError::Read { path: path.to_path_buf(), cause })?;
        Manifest::from_str_at(&text, path)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    ///
    /// ```
    /// use famfs_runtime::Manifest;
    /// use std::path::Path;
    ///
    /// let m = Manifest::from_str_at(
    ///     "[module]\npath = \"query.wasm\"\ninvoke = \"handle\"\n[limits]\ntimeout = \"2s\"\n",
    ///     Path::new("/srv/functions/query.toml"),
    /// )?;
    /// assert_eq!(m.module.path, Path::new("/srv/functions/query.wasm"));
    /// assert!(m.needs_component());
    /// let limits = m.limits_over(famfs_runtime::Limits::default())?;
    /// assert_eq!(limits.timeout, Some(std::time::Duration::from_secs(2)));
    /// # Ok::<(), famfs_runtime::ManifestError>(())
    /// ```
    pub fn from_str_at(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        m.file = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new("."));
        // `join` keeps an absolute path as it is. A bare name that is no file beside the
        // manifest is an installed guest's (crate::guests), found now: left relative, it would
        // be looked for in the working directory of whoever loads the manifest.
        let beside = base.join(&m.module.path);
        m.module.path = if crate::guests::is_name(&m.module.path) && !beside.exists() {
            crate::guests::find(&m.module.path.to_string_lossy())
                .map_err(|e| ManifestError::Load { path: path.to_path_buf(), cause: e.into() })?
        } else {
            beside
        };
        // `tag:UUID` and `uuid:UUID` name a device by what it holds, not by path.
        let by_uuid = |p: &Path| p.to_str().is_some_and(|s| s.starts_with("tag:") || s.starts_with("uuid:"));
        m.source.device = m.source.device.as_deref().map(|p| if by_uuid(p) { p.to_path_buf() } else { base.join(p) });
        m.source.mount = m.source.mount.as_deref().map(|p| base.join(p));
        // Without a source a directory is the host's: relative to this file, as the rest.
        if m.source.device.is_none() && m.source.mount.is_none() {
            for (_, dir) in &mut m.source.dirs {
                *dir = base.join(&*dir).to_string_lossy().into_owned();
            }
        }
        m.check()?;
        Ok(m)
    }

    fn invalid(&self, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid { path: self.file.clone(), message: message.into() }
    }

    fn request_error(&self, cause: RequestError) -> ManifestError {
        ManifestError::Request { path: self.file.clone(), cause }
    }

    fn check(&mut self) -> Result<(), ManifestError> {
        if let Some(sha) = &self.module.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(
                self.invalid(format!("module.sha256 '{sha}' is not 64 hex digits (run `sha256sum` on the module)"))
            );
        }
        if let Some(name) = &self.module.invoke {
            request::check_invoke(name, Spelling::Manifest).map_err(|e| self.request_error(e))?;
        }
        self.source.check(Spelling::Manifest).map_err(|e| self.request_error(e))?;
        request::check_env(self.env.keys().map(String::as_str), Spelling::Manifest)
            .map_err(|e| self.request_error(e))?;
        self.overrides = self.parse_limits()?;
        Ok(())
    }

    /// `[limits]` read as every front end reads limits: strings as text, numbers as numbers.
    fn parse_limits(&self) -> Result<LimitOverrides, ManifestError> {
        let mut overrides = LimitOverrides::default();
        for (key, value) in &self.limits {
            let value = match value {
                toml::Value::String(s) => OptionValue::Text(s),
                toml::Value::Integer(n) => OptionValue::Int(i128::from(*n)),
                toml::Value::Float(f) => OptionValue::Float(*f),
                toml::Value::Boolean(_) => OptionValue::Other("a boolean"),
                toml::Value::Datetime(_) => OptionValue::Other("a date"),
                toml::Value::Array(_) => OptionValue::Other("an array"),
                toml::Value::Table(_) => OptionValue::Other("a table"),
            };
            overrides.set(key, value, Spelling::Manifest).map_err(|e| self.request_error(e))?;
        }
        Ok(overrides)
    }

    /// The limits: the manifest's where it sets them, `defaults` elsewhere. (They were checked
    /// when the manifest was read: this does not fail.)
    pub fn limits_over(&self, defaults: Limits) -> Result<Limits, ManifestError> {
        Ok(self.overrides.apply(defaults))
    }

    /// The limits the manifest sets, parsed.
    pub fn limit_overrides(&self) -> &LimitOverrides {
        &self.overrides
    }

    /// Whether the module must be loaded as a component (handler world, or WASI directories
    /// served from a famfs image).
    pub fn needs_component(&self) -> bool {
        self.module.invoke.is_some() || self.source.needs_component()
    }

    /// Loads the module into `runtime` (checking its sha256 when the manifest gives one).
    pub fn load(&self, runtime: &Runtime) -> Result<Arc<Program>, ManifestError> {
        runtime
            .load_file(&self.module.path, self.module.sha256.as_deref(), self.needs_component())
            .map_err(|cause| ManifestError::Load { path: self.file.clone(), cause })
    }

    /// The catalog of granted datasets.
    pub fn catalog(&self) -> Result<Catalog, ManifestError> {
        self.source.open().map_err(|e| self.request_error(e))
    }

    /// An invocation as the manifest describes it, `input` being the request for a handler
    /// (ignored for a command). Limits the manifest leaves out come from `defaults`. Opens the
    /// manifest's source and replays its log: a server invoking the same function again and
    /// again keeps one catalog and calls [`invocation_with`](Self::invocation_with).
    pub fn invocation(&self, defaults: Limits, input: Vec<u8>) -> Result<Invocation, ManifestError> {
        self.invocation_with(defaults, input, self.catalog()?)
    }

    /// [`invocation`](Self::invocation) over a catalog opened before (from
    /// [`catalog`](Self::catalog), perhaps [`Catalog::refreshed`] since).
    pub fn invocation_with(
        &self,
        defaults: Limits,
        input: Vec<u8>,
        catalog: Catalog,
    ) -> Result<Invocation, ManifestError> {
        let argv0 = self.module.path.file_name().map_or_else(|| "guest".into(), |n| n.to_string_lossy().into_owned());
        let mut inv = Invocation::new(argv0);
        inv.args = self.module.args.clone();
        inv.env = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in &self.config {
            inv.env.push((format!("FAMFS_CONFIG_{}", k.to_ascii_uppercase().replace('-', "_")), v.clone()));
        }
        inv.catalog = catalog;
        self.source.add_dirs(&mut inv, Spelling::Manifest).map_err(|e| self.request_error(e))?;
        inv.limits = self.overrides.apply(defaults);
        if self.module.invoke.is_some() {
            inv.entry = Entry::Handle { input };
        }
        Ok(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_str_at(text, Path::new("/srv/fn/query.toml"))
    }

    #[test]
    fn a_full_manifest_resolves_relative_paths() {
        let m = parse(
            r#"
            [module]
            path = "query.wasm"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            invoke = "handle"
            args = ["-v"]
            [source]
            device = "../data/famfs.img"
            datasets = ["logs"]
            dirs = { "/data" = "logs" }
            [limits]
            timeout = "1.5s"
            fuel = 1000
            max_memory = "64M"
            max_mappings = 8
            max_kernel_mappings = 64
            max_open_datasets = 16
            max_wasi_resources = 12
            max_output = "1k"
            map_technique = "shared"
            [env]
            LOG = "debug"
            [config]
            greeting-word = "hi"
            "#,
        )
        .unwrap();
        assert_eq!(m.module.path, Path::new("/srv/fn/query.wasm"));
        assert_eq!(m.source.device.as_deref(), Some(Path::new("/srv/fn/../data/famfs.img")));
        assert!(m.needs_component());
        let l = m.limits_over(Limits::default()).unwrap();
        assert_eq!(l.timeout, Some(std::time::Duration::from_millis(1500)));
        assert_eq!((l.fuel, l.max_memory), (Some(1000), 64 << 20));
        assert_eq!((l.max_mappings, l.max_kernel_mappings, l.max_open_datasets, l.max_output), (8, 64, 16, 1024));
        assert_eq!(l.max_wasi_resources, 12);
        assert_eq!(l.map_technique, famfs_host_api::MapTechnique::Shared);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let bad = [
            ("[module]\npath = \"a.wasm\"\ntimeout = \"1s\"\n", "unknown field `timeout`"),
            ("[module]\npath = \"a.wasm\"\n[limit]\nfuel = 1\n", "unknown field `limit`"),
            ("[module]\npath = \"a.wasm\"\nsha256 = \"abc\"\n", "not 64 hex digits"),
            ("[module]\npath = \"a.wasm\"\ninvoke = \"main\"\n", "module.invoke = \"main\": only `handle`"),
            ("[module]\npath = \"a.wasm\"\n[limits]\ntimeout = \"soon\"\n", "limits.timeout"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_memory = \"lots\"\n", "limits.max_memory"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_mappings = 0\n", "limits.max_mappings must be at least 1"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_output = \"x\"\n", "limits.max_output"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmap_technique = \"dax\"\n", "not a map technique"),
            (
                "[module]\npath = \"a.wasm\"\n[source]\ndevice = \"x\"\nmount = \"y\"\n",
                "both source.device and source.mount",
            ),
            ("[module]\npath = \"a.wasm\"\n[source]\ndatasets = [\"/\"]\n", "source.datasets needs a source"),
            (
                "[module]\npath = \"a.wasm\"\n[limits]\ntimout = \"1s\"\n",
                "limits.timout is not a limit; the limits are timeout,",
            ),
            (
                "[module]\npath = \"a.wasm\"\n[limits]\nmax_memory = true\n",
                "limits.max_memory must be a number of bytes",
            ),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_output = -1\n", "limits.max_output must not be negative"),
            ("[module]\npath = \"a.wasm\"\n[env]\nFAMFS_RUN_MAX_MEMORY = \"1\"\n", "set limits.max_memory instead"),
            ("[source]\ndevice = \"x\"\n", "missing field `module`"),
            ("[module\npath = 1", "query.toml"),
        ];
        for (text, want) in bad {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn limits_may_be_numbers() {
        let m =
            parse("[module]\npath = \"a.wasm\"\n[limits]\ntimeout = 2.5\nmax_memory = 65536\nmax_output = \"4k\"\n")
                .unwrap();
        let l = m.limits_over(Limits::default()).unwrap();
        assert_eq!(
            (l.timeout, l.max_memory, l.max_output),
            (Some(std::time::Duration::from_millis(2500)), 65536, 4096)
        );
        assert_eq!(m.limit_overrides().names().count(), 3);
        // Limits left out come from the defaults given.
        let defaults = Limits { max_mappings: 7, ..Limits::default() };
        assert_eq!(m.limits_over(defaults).unwrap().max_mappings, 7);
    }
}
