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
//! dirs = { "/data" = "logs" }      # read-only WASI directories (GUEST = famfs or mount PATH)
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
//! Unknown keys are an error (a typo must not silently drop a limit).

use crate::embed::{EmbedError, Runtime};
use crate::limits::{Limits, parse_duration};
use crate::program::Program;
use crate::run::{Entry, Invocation};
use famfs_host_api::{Catalog, CatalogError};
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
    /// The dataset source cannot be opened or a grant is refused.
    #[error("{path}: {cause}")]
    Source {
        /// The file.
        path: PathBuf,
        /// What failed.
        cause: CatalogError,
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

/// `[source]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A famfs image or dax device.
    pub device: Option<PathBuf>,
    /// A mounted famfs (or any directory).
    pub mount: Option<PathBuf>,
    /// Grants.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Read-only WASI directories: guest path → famfs path (device) or path inside the mount.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
}

/// `[limits]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// e.g. "30s".
    pub timeout: Option<String>,
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// e.g. "512M".
    pub max_memory: Option<String>,
    /// Live dataset mappings.
    pub max_mappings: Option<usize>,
    /// Kernel mappings the guest's dataset mappings may occupy.
    pub max_kernel_mappings: Option<usize>,
    /// Datasets open at once.
    pub max_open_datasets: Option<usize>,
    /// WASI resources held at once.
    pub max_wasi_resources: Option<usize>,
    /// Captured stdout (and stderr) kept, e.g. "4M".
    pub max_output: Option<String>,
    /// "private", "shared" or "auto".
    pub map_technique: Option<String>,
}

/// A parsed manifest, its relative paths resolved against its directory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[module]`.
    pub module: ModuleSpec,
    /// `[source]`.
    #[serde(default)]
    pub source: SourceSpec,
    /// `[limits]`.
    #[serde(default)]
    pub limits: LimitsSpec,
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
        m.check()?;
        Ok(m)
    }

    fn invalid(&self, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid { path: self.file.clone(), message: message.into() }
    }

    fn check(&self) -> Result<(), ManifestError> {
        if let Some(sha) = &self.module.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(
                self.invalid(format!("module.sha256 '{sha}' is not 64 hex digits (run `sha256sum` on the module)"))
            );
        }
        if let Some(name) = &self.module.invoke
            && name != "handle"
        {
            return Err(self.invalid(format!(
                "module.invoke = '{name}': only \"handle\" (the handler world's export) can be invoked; remove it to run a command"
            )));
        }
        let s = &self.source;
        if s.device.is_some() && s.mount.is_some() {
            return Err(self.invalid("source has both device and mount; keep one"));
        }
        if s.device.is_none() && s.mount.is_none() && (!s.datasets.is_empty() || !s.dirs.is_empty()) {
            return Err(self.invalid("source.datasets and source.dirs need source.device or source.mount"));
        }
        self.limits()?;
        Ok(())
    }

    /// The limits: the manifest's where it sets them, `defaults` elsewhere.
    pub fn limits_over(&self, defaults: Limits) -> Result<Limits, ManifestError> {
        let mut l = defaults;
        if let Some(t) = &self.limits.timeout {
            l.timeout = Some(parse_duration(t).map_err(|e| self.invalid(format!("limits.timeout: {e}")))?);
        }
        if let Some(f) = self.limits.fuel {
            l.fuel = Some(f);
        }
        if let Some(m) = &self.limits.max_memory {
            l.max_memory = famfs::units::parse_size(m).map_err(|e| self.invalid(format!("limits.max_memory: {e}")))?;
        }
        let counts = [
            ("max_mappings", self.limits.max_mappings, &mut l.max_mappings),
            ("max_kernel_mappings", self.limits.max_kernel_mappings, &mut l.max_kernel_mappings),
            ("max_open_datasets", self.limits.max_open_datasets, &mut l.max_open_datasets),
            ("max_wasi_resources", self.limits.max_wasi_resources, &mut l.max_wasi_resources),
        ];
        for (key, value, field) in counts {
            match value {
                Some(0) => return Err(self.invalid(format!("limits.{key} must be at least 1"))),
                Some(n) => *field = n,
                None => {}
            }
        }
        if let Some(t) = &self.limits.map_technique {
            l.map_technique = t.parse().map_err(|e| self.invalid(format!("limits.map_technique: {e}")))?;
        }
        if let Some(m) = &self.limits.max_output {
            let size = famfs::units::parse_size(m).map_err(|e| self.invalid(format!("limits.max_output: {e}")))?;
            l.max_output = usize::try_from(size).map_err(|_| self.invalid("limits.max_output is too large"))?;
        }
        Ok(l)
    }

    fn limits(&self) -> Result<Limits, ManifestError> {
        self.limits_over(Limits::default())
    }

    /// Whether the module must be loaded as a component (handler world, or WASI directories
    /// served from a famfs image).
    pub fn needs_component(&self) -> bool {
        self.module.invoke.is_some() || (self.source.device.is_some() && !self.source.dirs.is_empty())
    }

    /// Loads the module into `runtime` (checking its sha256 when the manifest gives one).
    pub fn load(&self, runtime: &Runtime) -> Result<Arc<Program>, ManifestError> {
        runtime
            .load_file(&self.module.path, self.module.sha256.as_deref(), self.needs_component())
            .map_err(|cause| ManifestError::Load { path: self.file.clone(), cause })
    }

    /// The catalog of granted datasets.
    pub fn catalog(&self) -> Result<Catalog, ManifestError> {
        let src = |cause| ManifestError::Source { path: self.file.clone(), cause };
        let mut catalog = match (&self.source.device, &self.source.mount) {
            (Some(d), _) => Catalog::open_device(d).map_err(src)?,
            (None, Some(m)) => Catalog::open_mount(m).map_err(src)?,
            (None, None) => Catalog::empty(),
        };
        for g in &self.source.datasets {
            catalog.grant(g).map_err(src)?;
        }
        Ok(catalog)
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
        for (guest, path) in &self.source.dirs {
            let mount = self.source.mount.as_deref();
            inv.add_dir(guest.clone(), path, mount, mount.is_none())
                .map_err(|e| self.invalid(format!("source.dirs '{guest}' = '{path}': {e}")))?;
        }
        inv.limits = self.limits_over(defaults)?;
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
            ("[module]\npath = \"a.wasm\"\ninvoke = \"main\"\n", "only \"handle\""),
            ("[module]\npath = \"a.wasm\"\n[limits]\ntimeout = \"soon\"\n", "limits.timeout"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_memory = \"lots\"\n", "limits.max_memory"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_mappings = 0\n", "limits.max_mappings must be at least 1"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmax_output = \"x\"\n", "limits.max_output"),
            ("[module]\npath = \"a.wasm\"\n[limits]\nmap_technique = \"dax\"\n", "not a map technique"),
            ("[module]\npath = \"a.wasm\"\n[source]\ndevice = \"x\"\nmount = \"y\"\n", "both device and mount"),
            ("[module]\npath = \"a.wasm\"\n[source]\ndatasets = [\"/\"]\n", "need source.device or source.mount"),
            ("[source]\ndevice = \"x\"\n", "missing field `module`"),
            ("[module\npath = 1", "query.toml"),
        ];
        for (text, want) in bad {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
