//! The adversarial suite: guests that try to change a dataset, crash the host or escape the
//! sandbox. Each runs in this process (the test process is the host: if a guest could crash
//! it, the test binary would die), and after each the dataset's sha256 is unchanged. Every case
//! runs as a core module, as a component, and as a core module adapted into a component, each
//! with datasets mapped private and mapped shared (the device-dax technique, forced on files).

use famfs_run_tests::harness::{Run, catalog_device, catalog_mount, run_flavor, with_techniques};
use famfs_run_tests::{Flavor, ImageFile, image_with, mount_with, pattern, scratch, sha256_file};
use famfs_runtime::{Limits, RunError};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Setup {
    dir: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
}

const NAME: &str = "data/set.bin";
const SIZE: usize = (3 << 20) + 4099;

fn setup() -> Setup {
    let dir = scratch();
    let data = pattern(SIZE, 11);
    let other = pattern(200_000, 12);
    let files = [
        ImageFile { path: NAME, data: &data, strips: None },
        ImageFile { path: "secret/other.bin", data: &other, strips: None },
    ];
    let img = image_with(dir.path(), 64 << 20, &files);
    let mnt = mount_with(dir.path(), &files);
    Setup { dir, img, mnt }
}

/// Runs `f` and checks the files' bytes did not change.
fn unchanged<T>(paths: &[&Path], f: impl FnOnce() -> T) -> T {
    let before: Vec<String> = paths.iter().map(|p| sha256_file(p)).collect();
    let r = f();
    let after: Vec<String> = paths.iter().map(|p| sha256_file(p)).collect();
    assert_eq!(before, after, "a guest changed a dataset");
    r
}

/// Runs the adversary of `flavor` with `args`.
fn run(flavor: Flavor, args: &[&str], catalog: famfs_host_api::Catalog) -> Run {
    run_flavor(flavor, "adversary", args, catalog, &[], Limits::default())
}

/// [`run`] with WASI directories and limits.
fn run_with(
    flavor: Flavor,
    args: &[&str],
    catalog: famfs_host_api::Catalog,
    dirs: &[(&str, PathBuf)],
    limits: Limits,
) -> Run {
    run_flavor(flavor, "adversary", args, catalog, dirs, limits)
}

fn err(r: &Run) -> &RunError {
    match &r.outcome.result {
        Err(e) => e,
        Ok(c) => panic!("expected a failure, got exit {c}; stdout {} stderr {}", r.stdout, r.stderr),
    }
}

/// Case 1: Stores into a mapped range land in the guest's private copy.
#[test]
fn guest_store_into_mapping() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        guest_store_into_mapping_as(flavor);
    }
}

fn guest_store_into_mapping_as(flavor: Flavor) {
    let s = setup();
    let copies = famfs_host_api::guard::copies();
    unchanged(&[&s.img], || {
        let r = run(flavor, &["store", NAME], catalog_device(&s.img, &["/"]));
        assert_eq!(r.ok().trim(), "stored 170");
    });
    if famfs_run_tests::harness::current_technique() == Some(famfs_host_api::MapTechnique::Shared) {
        assert!(famfs_host_api::guard::copies() > copies, "{flavor:?}: the shared mapping was never copied on write");
    }
    let file = s.mnt.join(NAME);
    unchanged(&[&file], || {
        let r = run(flavor, &["store", NAME], catalog_mount(&s.mnt, &["/"]));
        assert_eq!(r.ok().trim(), "stored 170");
    });
}

/// Case 2: WASI fd_read into a mapped range.
#[test]
fn wasi_read_into_mapping() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        wasi_read_into_mapping_as(flavor);
    }
}

fn wasi_read_into_mapping_as(flavor: Flavor) {
    let s = setup();
    let wasi_dir = s.dir.path().join("wasi");
    std::fs::create_dir_all(&wasi_dir).unwrap();
    std::fs::write(wasi_dir.join("in.bin"), pattern(100_000, 99)).unwrap();
    unchanged(&[&s.img], || {
        let r = run_with(
            flavor,
            &["fd-read-into-map", NAME, "/w/in.bin"],
            catalog_device(&s.img, &["/"]),
            &[("/w", wasi_dir.clone())],
            Limits::default(),
        );
        assert_eq!(r.ok().trim(), "read 100000");
    });
}

/// Case 3: A host call whose output pointer points into a mapped range.
#[test]
fn host_call_output_into_mapping() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        host_call_output_into_mapping_as(flavor);
    }
}

fn host_call_output_into_mapping_as(flavor: Flavor) {
    let s = setup();
    unchanged(&[&s.img], || {
        let r = run(flavor, &["hostcall-into-map", NAME], catalog_device(&s.img, &["/"]));
        let out = r.ok();
        assert_eq!(out.lines().filter(|l| l.starts_with("hostcall ok")).count(), 2, "{out}");
    });
}

/// Case 4: The file shrinks while mapped: SIGBUS is caught and the invocation fails with a media
/// error naming the dataset and offset. Both for an image source and a mounted file.
#[test]
fn truncated_while_mapped_is_a_media_error() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        truncated_while_mapped_is_a_media_error_as(flavor);
    }
}

fn truncated_while_mapped_is_a_media_error_as(flavor: Flavor) {
    let s = setup();
    // Image: the catalog has replayed the log; then the image loses the tail of the file.
    let catalog = catalog_device(&s.img, &["/"]);
    let fs = famfs::Famfs::open(&s.img).unwrap();
    let extent = fs.namespace().file(NAME).unwrap().map.extents()[0];
    let keep = 1 << 20;
    std::fs::OpenOptions::new().write(true).open(&s.img).unwrap().set_len(extent.offset + keep).unwrap();
    let r = run(flavor, &["sum", NAME], catalog);
    match err(&r) {
        RunError::Media(m) => {
            assert_eq!(m.dataset, NAME);
            assert!(m.offset >= keep && m.offset < SIZE as u64, "{m}");
            assert!(r.outcome.result.as_ref().unwrap_err().to_string().contains("media error in dataset data/set.bin"));
        }
        other => panic!("expected a media error, got {other}"),
    }
    // Mount: the mounted file itself shrinks after the guest opened it.
    let file = s.mnt.join(NAME);
    let catalog = catalog_mount(&s.mnt, &["/"]);
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(keep).unwrap();
    let r = run(flavor, &["sum", NAME], catalog);
    // The guest may see the new size at open time (then the sum is over what is left) or the
    // mapping may fault; either way the host survives, and a fault is a media error.
    if let Err(e) = &r.outcome.result {
        assert!(matches!(e, RunError::Media(_)), "{e}");
    }
}

/// Case 5: An infinite loop hits the timeout.
#[test]
fn infinite_loop_times_out() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        infinite_loop_times_out_as(flavor);
    }
}

fn infinite_loop_times_out_as(flavor: Flavor) {
    let limits = Limits { timeout: Some(Duration::from_millis(300)), ..Limits::default() };
    let t = std::time::Instant::now();
    let r = run_with(flavor, &["spin"], famfs_host_api::Catalog::empty(), &[], limits);
    assert!(matches!(err(&r), RunError::Timeout { limit_ms: 300 }), "{}", err(&r));
    assert!(t.elapsed() < Duration::from_secs(20));
}

/// Case 6: A memory bomb hits the memory limit.
#[test]
fn memory_bomb_hits_the_limit() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        memory_bomb_hits_the_limit_as(flavor);
    }
}

fn memory_bomb_hits_the_limit_as(flavor: Flavor) {
    let limits = Limits { max_memory: 64 << 20, ..Limits::default() };
    let r = run_with(flavor, &["memory-bomb"], famfs_host_api::Catalog::empty(), &[], limits);
    match err(&r) {
        RunError::MemoryLimit { limit, requested } => {
            assert_eq!(*limit, 64 << 20);
            assert!(*requested > 64 << 20);
        }
        other => panic!("expected a memory limit error, got {other}"),
    }
    assert!(r.outcome.metrics.peak_memory <= 64 << 20);
}

/// Case 7: Unbounded recursion overflows the stack.
#[test]
fn unbounded_recursion_overflows_the_stack() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        unbounded_recursion_overflows_the_stack_as(flavor);
    }
}

fn unbounded_recursion_overflows_the_stack_as(flavor: Flavor) {
    let r = run(flavor, &["recurse"], famfs_host_api::Catalog::empty());
    assert!(matches!(err(&r), RunError::StackOverflow), "{}", err(&r));
}

/// Case 8: Bad map requests get error codes.
#[test]
fn bad_map_requests_get_error_codes() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        bad_map_requests_get_error_codes_as(flavor);
    }
}

fn bad_map_requests_get_error_codes_as(flavor: Flavor) {
    let s = setup();
    unchanged(&[&s.img], || {
        let r = run(flavor, &["bad-maps", NAME], catalog_device(&s.img, &["/"]));
        let out = r.ok();
        let expect = [
            "past-end: invalid-argument",
            "offset-overflow: invalid-argument",
            "len-overflow: invalid-argument",
            "misaligned-offset: invalid-argument",
            "misaligned-at: invalid-argument",
            "outside-memory: invalid-argument",
            "overlap: invalid-argument",
            "valid: ok",
        ];
        let got: Vec<&str> = out.lines().collect();
        assert_eq!(got, expect);
    });
}

/// Case 9: Forged and double-dropped handles trap the guest, not the host.
#[test]
fn forged_and_double_dropped_handles_trap() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        forged_and_double_dropped_handles_trap_as(flavor);
    }
}

fn forged_and_double_dropped_handles_trap_as(flavor: Flavor) {
    let s = setup();
    unchanged(&[&s.img], || forged_and_double_dropped(&s, flavor));
}

fn forged_and_double_dropped(s: &Setup, flavor: Flavor) {
    let r = run(flavor, &["forge-handle"], catalog_device(&s.img, &["/"]));
    match err(&r) {
        // Core modules: famfs-run's own handle table; components: wasmtime's.
        RunError::Trap { message, .. } if flavor == Flavor::Core => {
            assert!(message.contains("unknown or dropped dataset handle 12345"), "{message}")
        }
        RunError::Trap { message, .. } => assert!(message.contains("unknown handle index 12345"), "{message}"),
        other => panic!("expected a trap, got {other}"),
    }
    let r = run(flavor, &["double-drop", NAME], catalog_device(&s.img, &["/"]));
    match err(&r) {
        RunError::Trap { message, .. } if flavor == Flavor::Core => {
            assert!(message.contains("already dropped dataset handle"), "{message}")
        }
        RunError::Trap { message, .. } => assert!(message.contains("unknown handle index"), "{message}"),
        other => panic!("expected a trap, got {other}"),
    }
}

/// Case 10: `..`, absolute and symlink escapes are not permitted, through the catalog and WASI.
#[test]
fn escapes_are_not_permitted() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        escapes_are_not_permitted_as(flavor);
    }
}

fn escapes_are_not_permitted_as(flavor: Flavor) {
    let s = setup();
    std::os::unix::fs::symlink("/etc", s.mnt.join("link-out")).unwrap();
    let file = s.mnt.join(NAME);
    unchanged(&[&s.img, &file], || escapes(&s, flavor));
}

fn escapes(s: &Setup, flavor: Flavor) {
    let r = run_with(
        flavor,
        &["escape", "data"],
        catalog_mount(&s.mnt, &["/"]),
        &[("/data", s.mnt.clone())],
        Limits::default(),
    );
    let out = r.ok();
    for name in ["../etc/passwd", "/etc/passwd", "data/../../x", "link-out"] {
        assert!(out.lines().any(|l| l == format!("{name}: not-permitted")), "{name} not refused:\n{out}");
    }
    assert!(out.contains("wasi /data/../../../etc/passwd: err"), "{out}");
    assert!(out.contains("wasi /data/link-out: err"), "{out}");
    // On an image source the same names are refused.
    let r = run(flavor, &["escape", "data"], catalog_device(&s.img, &["/"]));
    let out = r.ok();
    for name in ["../etc/passwd", "/etc/passwd", "data/../../x"] {
        assert!(out.lines().any(|l| l == format!("{name}: not-permitted")), "{name} not refused:\n{out}");
    }
}

/// Case 11: A dataset that was not granted is not permitted, and not listed.
#[test]
fn ungranted_dataset_is_not_permitted() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        ungranted_dataset_is_not_permitted_as(flavor);
    }
}

fn ungranted_dataset_is_not_permitted_as(flavor: Flavor) {
    let s = setup();
    let files = [s.img.clone(), s.mnt.join("secret/other.bin")];
    unchanged(&[&files[0], &files[1]], || ungranted(&s, flavor));
}

fn ungranted(s: &Setup, flavor: Flavor) {
    for catalog in [catalog_device(&s.img, &["data"]), catalog_mount(&s.mnt, &["data"])] {
        let r = run(flavor, &["not-granted", "secret/other.bin"], catalog);
        let out = r.ok();
        assert!(out.lines().any(|l| l == "secret/other.bin: not-permitted"), "{out}");
        let listed: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("listed ")).collect();
        assert_eq!(listed, [NAME]);
    }
    // Nothing granted at all.
    let r = run(flavor, &["not-granted", NAME], catalog_device(&s.img, &[]));
    assert!(r.ok().lines().any(|l| l == format!("{NAME}: not-permitted")));
}

/// Case 12: memory.grow never reaches into a mapping.
#[test]
fn memory_grow_never_reaches_a_mapping() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        memory_grow_never_reaches_a_mapping_as(flavor);
    }
}

fn memory_grow_never_reaches_a_mapping_as(flavor: Flavor) {
    let s = setup();
    unchanged(&[&s.img], || {
        let r = run(flavor, &["grow", NAME], catalog_device(&s.img, &["/"]));
        assert_eq!(r.ok().trim(), "grow ok");
    });
}

/// Case 13: `cabi_realloc` answers with an address inside a mapped range, so the host writes a
/// returned list there: it lands in the guest's private copy, the dataset is unchanged.
#[test]
fn realloc_into_a_mapping() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        realloc_into_a_mapping_as(flavor);
    }
}

fn realloc_into_a_mapping_as(flavor: Flavor) {
    let s = setup();
    unchanged(&[&s.img], || {
        let r = run(flavor, &["realloc-into-map", NAME, "secret/other.bin"], catalog_device(&s.img, &["/"]));
        assert_eq!(r.ok().trim(), "realloc-into-map landed=true rest=true len=65536", "{flavor:?}");
    });
    let file = s.mnt.join(NAME);
    unchanged(&[&file], || {
        let r = run(flavor, &["realloc-into-map", NAME, "secret/other.bin"], catalog_mount(&s.mnt, &["/"]));
        assert_eq!(r.ok().trim(), "realloc-into-map landed=true rest=true len=65536", "{flavor:?}");
    });
}

/// Case 14: a copying read longer than the guest's memory limit is refused before the host
/// allocates anything for it.
#[test]
fn reads_beyond_the_memory_limit_are_refused() {
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        reads_beyond_the_memory_limit_are_refused_as(flavor);
    }
}

fn reads_beyond_the_memory_limit_are_refused_as(flavor: Flavor) {
    let s = setup();
    let limits = Limits { max_memory: 2 << 20, ..Limits::default() };
    let r = run_with(flavor, &["big-read", NAME, "3000000"], catalog_device(&s.img, &["/"]), &[], limits);
    assert_eq!(r.ok().trim(), "big-read no-address-space", "{flavor:?}");
    let r = run(flavor, &["big-read", NAME, "3000000"], catalog_device(&s.img, &["/"]));
    assert_eq!(r.ok().trim(), "big-read ok", "{flavor:?}");
}
