//! A famfs-serve process for this package's tests and benchmarks (each includes this file with
//! `#[path]`): started on a free loopback port, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running famfs-serve.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens, `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts famfs-serve serving `manifest` as the function `probe`, with the options `extra`,
    /// and waits for the line it prints once it listens.
    pub fn start(manifest: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_famfs-serve"))
            .args(["--listen", "127.0.0.1:0", "--function"])
            .arg(format!("probe={}", manifest.display()))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
        Server { child, addr }
    }
}
