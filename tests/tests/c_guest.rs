//! The C guest (`guests/c/wc`, clang + wasi-libc + wit-bindgen's C bindings of `wit/`) gives
//! what native wc gives, mapped zero-copy window by window or copied with `read`, as a core
//! module and turned into a component; errors carry the WIT error-code names.

use famfs_run_tests::harness::{Spec, catalog_device};
use famfs_run_tests::{Flavor, ImageFile, guest, image_with, native, pattern, scratch, text};

const FLAVORS: [Flavor; 2] = [Flavor::Core, Flavor::Adapted];

#[test]
fn c_wc_agrees_with_native() {
    let dir = scratch();
    let files = [
        ("logs/app.log", text((9 << 20) + 5, 1)),
        ("bin/blob.bin", pattern((2 << 20) + 1, 2)),
        ("striped/big.bin", pattern((7 << 20) + 3, 3)),
        ("tiny.txt", b"one two\nthree".to_vec()),
    ];
    let spec: Vec<ImageFile<'_>> = files
        .iter()
        .map(|(p, d)| ImageFile { path: p, data: d, strips: p.starts_with("striped").then_some(2) })
        .collect();
    let img = image_with(dir.path(), 128 << 20, &spec);
    for flavor in FLAVORS {
        for mode in [&["--mode", "map"][..], &["--mode", "map", "--window", "100000"], &["--mode", "read"]] {
            for (name, data) in &files {
                let mut args = mode.to_vec();
                args.push(name);
                let r = Spec::new("wc-c", flavor, &args, catalog_device(&img, &["/"])).run();
                let (l, w, b) = native::wc(data);
                assert_eq!(r.ok(), format!("{l} {w} {b} {name}\n"), "{flavor:?} {mode:?}");
                let mapped = if mode[1] == "map" { data.len() as u64 } else { 0 };
                assert_eq!(r.outcome.metrics.bytes_mapped, mapped, "{flavor:?} {mode:?} {name}");
            }
        }
    }
}

#[test]
fn c_wc_errors_name_the_error_code() {
    let dir = scratch();
    let data = text(1000, 4);
    let img = image_with(
        dir.path(),
        16 << 20,
        &[
            ImageFile { path: "open/a.txt", data: &data, strips: None },
            ImageFile { path: "secret/b.txt", data: &data, strips: None },
        ],
    );
    for flavor in FLAVORS {
        for (name, code) in
            [("open/missing", "not-found"), ("secret/b.txt", "not-permitted"), ("../x", "not-permitted")]
        {
            let r = Spec::new("wc-c", flavor, &[name], catalog_device(&img, &["open"])).run();
            assert_eq!(r.code(), 1, "{flavor:?} {name}");
            assert_eq!(r.stderr.trim(), format!("wc: {name}: {code}"), "{flavor:?}");
        }
        let r = Spec::new("wc-c", flavor, &["--mode", "sideways", "x"], catalog_device(&img, &["open"])).run();
        // Usage errors exit 2; a component can only say failure (1).
        assert_eq!(r.code(), if flavor == Flavor::Core { 2 } else { 1 });
        assert!(r.stderr.contains("usage: wc"));
    }
}

/// Through the real command line, as a user runs it.
#[test]
fn c_wc_through_famfs_run() {
    let dir = scratch();
    let data = text(300_000, 5);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "a.log", data: &data, strips: None }]);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"))
        .args(["-d", img.to_str().unwrap(), "--dataset", "/", guest("wc-c").to_str().unwrap(), "a.log"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (l, w, b) = native::wc(&data);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{l} {w} {b} a.log\n"));
}
