//! `famfs-vm`: runs a command of this host inside a test machine with a real device-dax
//! (`famfs_run_tests::vm`), for tests that are not Rust tests (the Python package's) and for
//! trying things by hand.
//!
//! ```text
//! famfs-vm [--memory FILE] [--namespace devdax|fsdax|none] [--system-uuid UUID]
//!          [--scratch DIR] [--env K=V]... [--timeout SECONDS] -- PROGRAM [ARGS...]
//! ```
//!
//! The machine's NVDIMM is backed by FILE (created, sparse, 1 GiB, when missing; default a file
//! in the scratch directory); a raw namespace is made device-dax (`/dev/dax0.0`) unless told
//! otherwise. PROGRAM runs chrooted into this host's root, in the current directory, with the
//! environment given; its output is printed and its exit status is famfs-vm's (125 when the
//! machine failed to boot or ran over its time).

use famfs_run_tests::vm::{Machine, Namespace};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: famfs-vm [--memory FILE] [--namespace devdax|fsdax|none] [--system-uuid UUID] \
         [--scratch DIR] [--env K=V]... [--timeout SECONDS] -- PROGRAM [ARGS...]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut memory: Option<PathBuf> = None;
    let mut namespace = Namespace::DevDax;
    let mut uuid: Option<String> = None;
    let mut scratch: Option<PathBuf> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut timeout = 600;
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--memory" => memory = Some(value().into()),
            "--namespace" => {
                namespace = match value().as_str() {
                    "devdax" => Namespace::DevDax,
                    "fsdax" => Namespace::FsDax,
                    "none" => Namespace::None,
                    _ => usage(),
                }
            }
            "--system-uuid" => uuid = Some(value()),
            "--scratch" => scratch = Some(value().into()),
            "--env" => match value().split_once('=') {
                Some((k, v)) => env.push((k.to_string(), v.to_string())),
                None => usage(),
            },
            "--timeout" => timeout = value().parse().unwrap_or_else(|_| usage()),
            "--" => {
                command.extend(args.by_ref());
                break;
            }
            _ => usage(),
        }
    }
    if command.is_empty() {
        usage();
    }
    let scratch = scratch.unwrap_or_else(|| std::env::temp_dir().join(format!("famfs-vm-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        eprintln!("famfs-vm: cannot create {}: {e}", scratch.display());
        std::process::exit(125);
    }
    let memory = memory.unwrap_or_else(|| scratch.join("cxl.mem"));
    let mut m = Machine::new("famfs-vm").memory(&memory).namespace(namespace).scratch(&scratch).timeout(timeout);
    if let Some(u) = uuid {
        m = m.system_uuid(u);
    }
    for (k, v) in &env {
        m = m.env(k, v.clone());
    }
    match m.run(&command) {
        Ok(out) => {
            print!("{}", out.output);
            eprintln!("famfs-vm: {}", out.timings());
            std::process::exit(out.code);
        }
        Err(e) => {
            eprintln!("famfs-vm: {e}");
            std::process::exit(125);
        }
    }
}
