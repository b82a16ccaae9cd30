//! A `famfs-run` process left without memory for a copy-on-write (issue 21, item 1): the guest
//! maps a dataset shared, and before it stores into the mapping the process's `RLIMIT_DATA`
//! (what `ulimit -d` sets) is lowered to leave less than one 2 MiB block of private memory.
//! Used on image files and on the real device-dax inside the test machines.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the guest waits between mapping and storing (`adversary fill-later NAME MS`): the
/// time the test has to lower the limit once it sees the mapping.
pub const WAIT_MS: u64 = 3000;

/// What [`fill_without_room`] saw.
pub struct NoRoom {
    /// famfs-run's exit status and output.
    pub output: Output,
    /// The data size the process had when the limit was lowered, and the limit, in bytes.
    pub data: u64,
    /// The soft `RLIMIT_DATA` given.
    pub limit: u64,
    /// How long after the start the dataset's mapping appeared and the limit was set.
    pub limited_after: Duration,
}

/// The process's private writable memory (`VmData`), in bytes.
fn data_size(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmData:"))?.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(kib * 1024)
}

/// Whether process `pid` maps file data of `source`: a mapping of it at an offset past 0 (the
/// catalog maps the superblock and log, from offset 0; data lies after them).
pub fn maps_data(pid: u32, source: &Path) -> bool {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { return false };
    let source = source.to_string_lossy();
    maps.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6 && f[5] == source && u64::from_str_radix(f[2], 16).is_ok_and(|o| o > 0)
    })
}

/// Runs `famfs_run -d SOURCE --dataset / --map-technique shared --json ADVERSARY fill-later NAME
/// WAIT_MS`; once the process maps `name` (the only file data it maps), sets its soft
/// `RLIMIT_DATA` to its data size plus 1 MiB: the guest's fill then needs copies the kernel
/// refuses.
pub fn fill_without_room(famfs_run: &Path, source: &Path, adversary: &Path, name: &str) -> NoRoom {
    let started = Instant::now();
    let mut child = Command::new(famfs_run)
        .arg("-d")
        .arg(source)
        .args(["--dataset", "/", "--map-technique", "shared", "--json"])
        .arg(adversary)
        .args(["fill-later", name, &WAIT_MS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", famfs_run.display()));
    let pid = child.id();
    let source = source.canonicalize().unwrap();
    while !maps_data(pid, &source) {
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "famfs-run never mapped {name} of {}: {:?}\n{}\n{}",
                source.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let data = data_size(pid).expect("VmData of famfs-run");
    let limit = data + (1 << 20);
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit on a child of ours (still running: it has a stdout pipe we have not read
    // to its end), reading into and from locals.
    let got = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_DATA, std::ptr::null(), &mut old) };
    assert_eq!(got, 0, "prlimit {pid}: {}", std::io::Error::last_os_error());
    let tight = libc::rlimit { rlim_cur: limit, rlim_max: old.rlim_max };
    // SAFETY: as above.
    let set = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_DATA, &tight, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit {pid}: {}", std::io::Error::last_os_error());
    let limited_after = started.elapsed();
    let output = child.wait_with_output().unwrap();
    NoRoom { output, data, limit, limited_after }
}

/// Checks that famfs-run, limited as [`no_room::fill_without_room`] limits it, failed the
/// invocation with the copy error for `name` and ended by itself.
pub fn assert_copy_refused(r: &NoRoom, name: &str) {
    let o = &r.output;
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        o.status.code(),
        Some(125),
        "famfs-run must fail the invocation, not die ({:?}; data {} limit {} set after {:?}):\n{out}\n{err}",
        o.status,
        r.data,
        r.limit,
        r.limited_after
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["result"]["error"]["kind"], "host", "{v}");
    let message = v["result"]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("out of memory copying a dataset block"), "{message}");
    assert!(message.contains(&format!("dataset {name} at offset")), "{message}");
}
