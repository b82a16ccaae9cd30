//! Per-invocation limits (docs/architecture.md §4): time, fuel, memory, and a cap on every
//! process-wide resource a guest can take through the host: dataset mappings and the kernel
//! mappings they occupy, open datasets and WASI resources (file descriptors), captured output.

use famfs_host_api::{HostLimits, MapLimits, MapTechnique};
use std::time::Duration;

/// Limits of one invocation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock budget for instantiating and running the guest (not compiling it), checked
    /// every 10 ms. `None`: unlimited.
    pub timeout: Option<Duration>,
    /// Fuel budget; needs an engine built with fuel. `None`: unlimited.
    pub fuel: Option<u64>,
    /// Largest linear memory, in bytes; mapped datasets count, as they live in it.
    pub max_memory: u64,
    /// Largest table, in elements.
    pub max_table_elements: usize,
    /// Live dataset mappings at once (each holds one of the process's SIGBUS guard slots,
    /// reserved for the invocation when it starts). Default 256.
    pub max_mappings: usize,
    /// Kernel memory mappings the guest's dataset mappings may occupy: one per extent (or 2 MiB
    /// chunk of an interleaved file) plus two per mapping. Default 4096; all guests also share
    /// a budget of half the kernel's `vm.max_map_count`.
    pub max_kernel_mappings: usize,
    /// Datasets open at once (on a mounted source, each holds a file descriptor). Default 256.
    pub max_open_datasets: usize,
    /// WASI resources held at once: open files and directories, their streams and pollables (an
    /// open file of a host directory holds a file descriptor). Past it the guest traps with
    /// [`RunError::WasiResources`](crate::RunError::WasiResources). Default 256.
    pub max_wasi_resources: usize,
    /// How datasets are mapped: private copy-on-write mappings (images, mounts), shared
    /// read-only mappings with copy-on-write done by the host (what device-dax allows), or
    /// `Auto`: shared on a dax character device, private elsewhere (the default).
    pub map_technique: MapTechnique,
    /// Most bytes of standard output, and of standard error, kept when they are captured
    /// ([`crate::Stdio::Capture`]); later output is dropped and the stream reports it full.
    /// Default 16 MiB each.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let map = MapLimits::default();
        let host = HostLimits::default();
        Limits {
            timeout: None,
            fuel: None,
            max_memory: 4 << 30,
            max_table_elements: 100_000,
            max_mappings: map.max_mappings,
            max_kernel_mappings: map.max_kernel_mappings,
            max_open_datasets: host.max_open,
            max_wasi_resources: 256,
            map_technique: MapTechnique::Auto,
            max_output: 16 << 20,
        }
    }
}

impl Limits {
    /// File descriptors one guest may hold, which it reserves from the process's budget
    /// ([`famfs_host_api::fd_budget`]) when it starts: its open datasets and its WASI resources.
    pub fn descriptors(&self) -> usize {
        self.max_open_datasets.saturating_add(self.max_wasi_resources)
    }

    /// What the `famfs:dataset` host of a guest under these limits may hold.
    pub fn host(&self) -> HostLimits {
        HostLimits {
            map: MapLimits {
                max_mappings: self.max_mappings,
                max_kernel_mappings: self.max_kernel_mappings,
                technique: self.map_technique,
            },
            max_open: self.max_open_datasets,
            max_memory: self.max_memory,
        }
    }
}

/// Enforces the memory and table limits and remembers what it refused, so that a guest that
/// traps after an allocation failure is reported as hitting the limit.
#[derive(Debug)]
pub struct Limiter {
    max_memory: usize,
    max_table: usize,
    /// Largest memory size seen, in bytes.
    pub peak_memory: usize,
    /// The size of the first refused growth.
    pub denied: Option<usize>,
}

impl Limiter {
    /// A limiter for `limits`.
    pub fn new(limits: &Limits) -> Limiter {
        Limiter {
            max_memory: usize::try_from(limits.max_memory).unwrap_or(usize::MAX),
            max_table: limits.max_table_elements,
            peak_memory: 0,
            denied: None,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory && maximum.is_none_or(|m| desired <= m);
        if ok {
            self.peak_memory = self.peak_memory.max(desired);
        } else {
            self.peak_memory = self.peak_memory.max(current);
            self.denied.get_or_insert(desired);
        }
        Ok(ok)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table && maximum.is_none_or(|m| desired <= m))
    }
}

/// Parses a duration such as `30s`, `500ms`, `2m`, `1h` or `1.5s` (no unit: seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
