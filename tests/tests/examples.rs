//! Every example guest, as a core module and as a component, on an image source and on a mount
//! source, agrees with the same computation done natively; through the zero-copy path (whole
//! and in small windows), the copying `dataset.read` path and WASI reads.

use famfs_run_tests::harness::{Run, catalog_device, catalog_mount, run_flavor, with_techniques};
use famfs_run_tests::{Flavor, ImageFile, image_with, mount_with, native, pattern, scratch, text};
use famfs_runtime::Limits;
use std::path::PathBuf;

struct Fixture {
    _dir: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
    files: Vec<(&'static str, Vec<u8>)>,
}

fn fixture() -> Fixture {
    let dir = scratch();
    let files = vec![
        ("text/corpus.txt", text((5 << 20) + 17, 1)),
        ("bin/blob.bin", pattern((3 << 20) + 5, 2)),
        ("striped/big.bin", pattern((10 << 20) + 123, 3)),
        ("tiny.txt", b"one two\nthree".to_vec()),
    ];
    let spec: Vec<ImageFile<'_>> = files
        .iter()
        .map(|(p, d)| ImageFile { path: p, data: d, strips: p.starts_with("striped").then_some(3) })
        .collect();
    let img = image_with(dir.path(), 128 << 20, &spec);
    let mnt = mount_with(dir.path(), &spec);
    Fixture { _dir: dir, img, mnt, files }
}

/// The flavors each example is checked in (the adapted core module is exercised by wc; it runs
/// the component path with the same code).
fn flavors(guest: &str) -> &'static [Flavor] {
    if guest == "wc" { &Flavor::ALL } else { &[Flavor::Core, Flavor::Component] }
}

/// Each way to run a guest over the same bytes, in each flavor.
fn each_source(f: &Fixture, guest: &str, pre: &[&str], name: &str, check: &dyn Fn(&Run, &str)) {
    for (flavor, _technique) in with_techniques(flavors(guest)) {
        each_source_as(flavor, f, guest, pre, name, check);
    }
}

fn each_source_as(flavor: Flavor, f: &Fixture, guest: &str, pre: &[&str], name: &str, check: &dyn Fn(&Run, &str)) {
    let modes: [(&str, Vec<&str>); 4] = [
        ("image map", vec!["--mode", "map"]),
        ("image map, 128 KiB windows", vec!["--mode", "map", "--window", "131072"]),
        ("image read", vec!["--mode", "read"]),
        ("mount map", vec!["--mode", "map"]),
    ];
    for (label, mode) in modes {
        let mut args: Vec<&str> = mode.clone();
        args.extend_from_slice(pre);
        args.push(name);
        let catalog =
            if label.starts_with("image") { catalog_device(&f.img, &["/"]) } else { catalog_mount(&f.mnt, &["/"]) };
        let r = run_flavor(flavor, guest, &args, catalog, &[], Limits::default());
        check(&r, &format!("{guest} ({flavor:?}) {label} {name}"));
    }
    // WASI reads of the mounted file through a read-only preopen.
    let wasi_path = format!("/data/{name}");
    let mut args = vec!["--mode", "wasi"];
    args.extend_from_slice(pre);
    args.push(&wasi_path);
    let r =
        run_flavor(flavor, guest, &args, catalog_mount(&f.mnt, &[]), &[("/data", f.mnt.clone())], Limits::default());
    check(&r, &format!("{guest} ({flavor:?}) wasi {name}"));
}

#[test]
fn wc_agrees_with_native() {
    let f = fixture();
    for (name, data) in &f.files {
        let (l, w, b) = native::wc(data);
        each_source(&f, "wc", &[], name, &|r, label| {
            let line = r.ok().lines().next().unwrap_or_default().to_string();
            let nums: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(nums[..3], [l.to_string(), w.to_string(), b.to_string()], "{label}: {line}");
        });
    }
}

#[test]
fn sum_u64_agrees_with_native() {
    let f = fixture();
    for (name, data) in &f.files {
        let want = native::sum_u64(data).to_string();
        each_source(&f, "sum-u64", &[], name, &|r, label| {
            assert_eq!(r.ok().split_whitespace().next(), Some(want.as_str()), "{label}");
        });
    }
}

#[test]
fn grep_agrees_with_native() {
    let f = fixture();
    for pat in ["needle", "shared", "zzz-absent"] {
        let (name, data) = &f.files[0];
        let want = native::grep(data, pat.as_bytes()).to_string();
        each_source(&f, "grep", &[pat], name, &|r, label| {
            assert_eq!(r.ok().split_whitespace().next(), Some(want.as_str()), "{label} /{pat}/");
        });
    }
}

#[test]
fn histogram_agrees_with_native() {
    let f = fixture();
    for (name, data) in &f.files[1..3] {
        let want: Vec<String> = native::histogram(data).iter().enumerate().map(|(b, c)| format!("{b} {c}")).collect();
        each_source(&f, "histogram", &[], name, &|r, label| {
            let got: Vec<&str> = r.ok().lines().collect();
            assert_eq!(got, want, "{label}");
        });
    }
}

/// The zero-copy path really mapped: the metrics count the dataset's bytes, and the peak
/// memory stays far below what copying a 10 MiB file in would take twice.
#[test]
fn mapping_is_reported_in_the_metrics() {
    let f = fixture();
    for (flavor, _technique) in with_techniques(&Flavor::ALL) {
        let run =
            |args: &[&str]| run_flavor(flavor, "sum-u64", args, catalog_device(&f.img, &["/"]), &[], Limits::default());
        let r = run(&["striped/big.bin"]);
        r.ok();
        assert_eq!(r.outcome.metrics.bytes_mapped, (10 << 20) + 123, "{flavor:?}");
        assert!(r.outcome.metrics.peak_memory < (16 << 20) + (10 << 20), "{flavor:?}: {:?}", r.outcome.metrics);
        let r = run(&["--mode", "read", "striped/big.bin"]);
        r.ok();
        assert_eq!(r.outcome.metrics.bytes_mapped, 0, "{flavor:?}");
    }
}
