//! What one guest may take of the process's resources (issue 11, defects 5 and 7): live
//! mappings, the kernel mappings they occupy, open datasets, host buffers and captured output
//! are capped per guest; a guest at a cap gets an error code, and other guests, running at the
//! same time, are not affected. Every case runs in this process, as every flavor.

use famfs_run_tests::harness::{Spec, catalog_device, catalog_mount, program};
use famfs_run_tests::{Flavor, ImageFile, image_with, mount_with, pattern, scratch};
use famfs_runtime::Limits;
use std::path::PathBuf;

const NAME: &str = "data/set.bin";

struct Setup {
    _dir: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
}

fn setup(size: usize) -> Setup {
    let dir = scratch();
    let data = pattern(size, 5);
    let files = [ImageFile { path: NAME, data: &data, strips: None }];
    let img = image_with(dir.path(), 64 << 20, &files);
    let mnt = mount_with(dir.path(), &files);
    Setup { _dir: dir, img, mnt }
}

fn adversary(flavor: Flavor, args: &[&str], catalog: famfs_host_api::Catalog, limits: Limits) -> String {
    let mut spec = Spec::new("adversary", flavor, args, catalog);
    spec.limits = limits;
    spec.run().ok().to_string()
}

/// One guest holding windows used to take the process's 4,096 guard slots and leave every other
/// guest's `map` failing. Now it stops at its own `max_mappings` (256 by default) while another
/// guest, running meanwhile, maps as usual.
#[test]
fn a_guest_holding_windows_stops_at_its_cap_and_others_still_map() {
    let s = setup(1 << 20);
    for flavor in Flavor::ALL {
        program("adversary", flavor);
        let img = s.img.clone();
        let greedy = std::thread::spawn(move || {
            adversary(flavor, &["hold-many", NAME, "5000", "2"], catalog_device(&img, &["/"]), Limits::default())
        });
        std::thread::sleep(std::time::Duration::from_millis(700));
        let other = adversary(flavor, &["sum", NAME], catalog_device(&s.img, &["/"]), Limits::default());
        let want: u64 = pattern(1 << 20, 5).iter().map(|&b| u64::from(b)).sum();
        assert_eq!(other.trim(), format!("sum {want}"), "{flavor:?}: a guest beside the greedy one");
        assert_eq!(greedy.join().unwrap().trim(), "held 256 no-address-space", "{flavor:?}");
    }
}

/// The caps are settable: `max_mappings`, and `max_kernel_mappings` (a 64 KiB window of a simple
/// file takes 3: its piece and the two pieces of guest memory around it).
#[test]
fn mapping_caps_are_settable() {
    let s = setup(1 << 20);
    for flavor in Flavor::ALL {
        let limits = Limits { max_mappings: 5, ..Limits::default() };
        let out = adversary(flavor, &["hold-many", NAME, "100", "0"], catalog_device(&s.img, &["/"]), limits);
        assert_eq!(out.trim(), "held 5 no-address-space", "{flavor:?}");
        let limits = Limits { max_kernel_mappings: 20, ..Limits::default() };
        let out = adversary(flavor, &["hold-many", NAME, "100", "0"], catalog_device(&s.img, &["/"]), limits);
        assert_eq!(out.trim(), "held 6 no-address-space", "{flavor:?}");
    }
}

/// On a mount each open dataset holds a descriptor; a guest used to hold about a million (20,000
/// here, until `EMFILE`). It now stops at `max_open_datasets` (256 by default), and writes to
/// stdout after that as usual.
#[test]
fn a_guest_opening_datasets_stops_at_its_cap() {
    let s = setup(4096);
    for flavor in Flavor::ALL {
        let out = adversary(flavor, &["open-many", NAME, "100000"], catalog_mount(&s.mnt, &["/"]), Limits::default());
        assert_eq!(out, "opened 256 no-address-space\nstill here\n", "{flavor:?}");
        let limits = Limits { max_open_datasets: 10, ..Limits::default() };
        let out = adversary(flavor, &["open-many", NAME, "100"], catalog_device(&s.img, &["/"]), limits);
        assert_eq!(out, "opened 10 no-address-space\nstill here\n", "{flavor:?}");
    }
}

/// A `read` used to fill a host buffer as large as the request (up to the memory limit) before
/// the guest's `cabi_realloc` ran. One call now returns at most 1 MiB, whatever it asks for; the
/// SDK's `read` asks again for the rest.
#[test]
fn one_read_returns_at_most_one_mib() {
    let s = setup(5 << 20);
    for flavor in Flavor::ALL {
        let out = adversary(flavor, &["raw-read", NAME, "4194304"], catalog_device(&s.img, &["/"]), Limits::default());
        assert_eq!(out.trim(), "raw-read 1048576", "{flavor:?}");
        let out = adversary(flavor, &["big-read", NAME, "4194304"], catalog_device(&s.img, &["/"]), Limits::default());
        assert_eq!(out.trim(), "big-read ok", "{flavor:?}: the SDK reads the rest");
    }
}

/// The core-module `open` used to copy whatever name length the guest passed into a host
/// buffer before checking it against famfs' 79-byte limit: a 256 MiB name cost 256 MiB of host
/// memory. It is now refused unread. (Components: wasmtime lifts the string itself.)
#[test]
fn a_huge_name_is_refused_unread() {
    let s = setup(4096);
    let peak = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
        kb.trim().trim_end_matches(" kB").parse::<u64>().unwrap() << 10
    };
    program("adversary", Flavor::Core);
    let before = peak();
    let out = adversary(Flavor::Core, &["long-name", "256"], catalog_device(&s.img, &["/"]), Limits::default());
    assert_eq!(out.trim(), "long-name not-permitted");
    let grew = peak().saturating_sub(before);
    assert!(grew < 128 << 20, "the host's peak memory grew by {} MiB for one name", grew >> 20);
}

/// Captured output is kept up to `max_output` (64 MiB each used to be kept per invocation); the
/// rest is counted and dropped, and the guest's writes keep succeeding.
#[test]
fn captured_output_is_capped() {
    let s = setup(4096);
    for flavor in Flavor::ALL {
        let limits = Limits { max_output: 100, ..Limits::default() };
        let mut spec = Spec::new("adversary", flavor, &["list"], catalog_device(&s.img, &["/"]));
        spec.limits = limits;
        let run = spec.run();
        assert_eq!(run.code(), 0, "{flavor:?}: writing past the cap must not fail the guest");
        let line = format!("{NAME} 4096\n");
        assert_eq!(run.stdout, line, "{flavor:?}: under the cap, kept whole");
        let mut spec = Spec::new("histogram", flavor, &[NAME], catalog_device(&s.img, &["/"]));
        spec.limits = limits;
        let run = spec.run();
        assert_eq!(run.code(), 0, "{flavor:?}");
        assert_eq!(run.stdout.len(), 100, "{flavor:?}");
        assert!(run.outcome.metrics.output_dropped > 1000, "{flavor:?}: {}", run.outcome.metrics.output_dropped);
    }
}

/// With no descriptors left, the guest's first write to stdout used to make famfs-run panic
/// (exit 101: wasmtime-wasi could not make its tokio runtime), and later a guest under a limit of
/// 64 descriptors took them all (`open` answered `io`). Now a guest reserves its caps from half
/// the limit before it starts: under 64 (32 for guests, the default caps need 512) famfs-run
/// refuses to start it, naming the caps and `ulimit -n`, and does not panic.
#[test]
fn a_descriptor_limit_too_low_for_the_caps_is_a_clear_error() {
    use std::os::unix::process::CommandExt;
    let s = setup(4096);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"));
    cmd.arg("--mount").arg(&s.mnt).args(["--dataset", "/"]);
    cmd.arg(famfs_run_tests::guest("adversary")).args(["open-many", NAME, "1000000"]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "", "the guest must not have run");
    assert!(!out.status.success() && out.status.code() != Some(101), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("max_open_datasets") && stderr.contains("ulimit -n"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
