//! The `/metrics` counters, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histogram's buckets, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];

#[derive(Default)]
struct PerFunction {
    /// outcome → count.
    outcomes: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    seconds_sum: f64,
    count: u64,
    bytes_mapped: u64,
}

/// Counters of every function.
pub struct Metrics {
    per_function: Mutex<BTreeMap<String, PerFunction>>,
    in_flight: AtomicI64,
}

impl Metrics {
    /// Zeroed counters for `functions`.
    pub fn new(functions: &[String]) -> Metrics {
        let per_function = functions.iter().map(|f| (f.clone(), PerFunction::default())).collect();
        Metrics { per_function: Mutex::new(per_function), in_flight: AtomicI64::new(0) }
    }

    /// An invocation started.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// An invocation of `function` ended with `outcome` after `elapsed`.
    pub fn finished(&self, function: &str, outcome: &'static str, elapsed: Duration, bytes_mapped: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut all = self.per_function.lock().unwrap_or_else(|e| e.into_inner());
        let f = all.entry(function.to_string()).or_default();
        *f.outcomes.entry(outcome).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (bucket, le) in f.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *bucket += 1;
            }
        }
        f.seconds_sum += secs;
        f.count += 1;
        f.bytes_mapped += bytes_mapped;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let all = self.per_function.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        let _ = writeln!(s, "# HELP famfs_invocations_total Invocations by function and outcome.");
        let _ = writeln!(s, "# TYPE famfs_invocations_total counter");
        for (name, f) in all.iter() {
            for (outcome, n) in &f.outcomes {
                let _ = writeln!(s, "famfs_invocations_total{{function=\"{name}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        let _ = writeln!(s, "# HELP famfs_invocation_seconds Time per invocation, instantiation included.");
        let _ = writeln!(s, "# TYPE famfs_invocation_seconds histogram");
        for (name, f) in all.iter() {
            for (le, n) in BUCKETS.iter().zip(f.buckets) {
                let _ = writeln!(s, "famfs_invocation_seconds_bucket{{function=\"{name}\",le=\"{le}\"}} {n}");
            }
            let _ = writeln!(s, "famfs_invocation_seconds_bucket{{function=\"{name}\",le=\"+Inf\"}} {}", f.count);
            let _ = writeln!(s, "famfs_invocation_seconds_sum{{function=\"{name}\"}} {}", f.seconds_sum);
            let _ = writeln!(s, "famfs_invocation_seconds_count{{function=\"{name}\"}} {}", f.count);
        }
        let _ = writeln!(s, "# HELP famfs_bytes_mapped_total Dataset bytes mapped zero-copy.");
        let _ = writeln!(s, "# TYPE famfs_bytes_mapped_total counter");
        for (name, f) in all.iter() {
            let _ = writeln!(s, "famfs_bytes_mapped_total{{function=\"{name}\"}} {}", f.bytes_mapped);
        }
        let _ = writeln!(s, "# HELP famfs_in_flight Invocations running or waiting for a slot.");
        let _ = writeln!(s, "# TYPE famfs_in_flight gauge");
        let _ = writeln!(s, "famfs_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        s
    }
}
