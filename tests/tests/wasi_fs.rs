//! WASI files straight from a famfs image, no mount: a guest's `std::fs` lists, stats and reads
//! famfs files through the read-only `wasi:filesystem` famfs-run serves from the image's log
//! (as a component, and as a core module turned into one). Listings and sizes match the famfs
//! namespace (what `famfsctl ls` prints), bytes match the files, every change is refused with
//! the read-only error and leaves the image as it was, and nothing escapes the preopen.

use famfs_run_tests::harness::{Run, Spec, catalog_device};
use famfs_run_tests::{Flavor, ImageFile, image_with, pattern, scratch, sha256_file, text};
use famfs_runtime::RunError;
use std::path::PathBuf;

struct Fixture {
    _dir: tempfile::TempDir,
    img: PathBuf,
}

fn fixture() -> Fixture {
    let dir = scratch();
    let files = [
        ("logs/app.log", text((3 << 20) + 11, 1)),
        ("logs/old/app.1.log", text(70_000, 2)),
        ("bin/blob.bin", pattern((5 << 20) + 3, 3)),
        ("striped/big.bin", pattern((9 << 20) + 77, 4)),
        ("tiny", b"x".to_vec()),
    ];
    let spec: Vec<ImageFile<'_>> = files
        .iter()
        .map(|(p, d)| ImageFile { path: p, data: d, strips: p.starts_with("striped").then_some(3) })
        .collect();
    let img = image_with(dir.path(), 128 << 20, &spec);
    Fixture { _dir: dir, img }
}

fn probe(f: &Fixture, flavor: Flavor, args: &[&str], dirs: &[(&str, &str)]) -> Run {
    let mut spec = Spec::new("fs-probe", flavor, args, catalog_device(&f.img, &[]));
    spec.famfs_dirs = dirs.iter().map(|(g, p)| (g.to_string(), p.to_string())).collect();
    spec.run()
}

/// `{path} {dir|file} {len}` for everything below `dir`, from the famfs namespace.
fn namespace_tree(fs: &famfs::Famfs, dir: &str, prefix: &str, out: &mut Vec<String>) {
    for e in fs.namespace().read_dir(dir).unwrap() {
        let name = format!("{prefix}{}", e.name);
        match e.node {
            famfs::namespace::EntryNode::Dir(_) => {
                out.push(format!("{name} dir 0"));
                let sub = if dir.is_empty() { e.name.to_string() } else { format!("{dir}/{}", e.name) };
                namespace_tree(fs, &sub, &format!("{name}/"), out);
            }
            famfs::namespace::EntryNode::File(m) => out.push(format!("{name} file {}", m.size)),
        }
    }
}

#[test]
fn listings_and_metadata_match_the_namespace() {
    let f = fixture();
    let fs = famfs::Famfs::open(&f.img).unwrap();
    for flavor in Flavor::COMPONENTS {
        for (famfs_dir, sub) in [("/", ""), ("logs", "logs")] {
            let mut want = Vec::new();
            namespace_tree(&fs, sub, "", &mut want);
            let r = probe(&f, flavor, &["tree", "/d"], &[("/d", famfs_dir)]);
            let got: Vec<&str> = r.ok().lines().collect();
            assert_eq!(got, want, "{flavor:?} tree of {famfs_dir}");
        }
        let r = probe(&f, flavor, &["stat", "/d/striped/big.bin"], &[("/d", "/")]);
        assert_eq!(r.ok().trim(), format!("file {}", (9 << 20) + 77));
        let r = probe(&f, flavor, &["stat", "/d/logs/old"], &[("/d", "/")]);
        assert_eq!(r.ok().trim(), "dir 0");
    }
}

#[test]
fn reads_equal_the_famfs_bytes() {
    let f = fixture();
    let fs = famfs::Famfs::open(&f.img).unwrap();
    for flavor in Flavor::COMPONENTS {
        for (path, offset) in [
            ("logs/app.log", 0u64),
            ("bin/blob.bin", 0),
            ("striped/big.bin", 0),
            ("striped/big.bin", 3_000_001),
            ("tiny", 0),
        ] {
            let want = fs.read_to_vec(fs.namespace().file(path).unwrap()).unwrap();
            let guest_path = format!("/d/{path}");
            let off = offset.to_string();
            let r = probe(&f, flavor, &["cat", &guest_path, &off], &[("/d", "/")]);
            r.ok();
            let got = r.outcome.stdout.as_deref().unwrap();
            assert!(got == &want[offset as usize..], "{flavor:?} {path} from {offset}: {} bytes differ", got.len());
        }
        // Reading past the end gives nothing; a directory cannot be read as a file.
        let r = probe(&f, flavor, &["cat", "/d/tiny", "100"], &[("/d", "/")]);
        assert_eq!(r.ok(), "");
        let r = probe(&f, flavor, &["cat", "/d/logs"], &[("/d", "/")]);
        assert_eq!(r.outcome.result.as_ref().ok(), Some(&1), "{}", r.stderr);
    }
}

#[test]
fn every_change_is_refused_read_only() {
    let f = fixture();
    let before = sha256_file(&f.img);
    for flavor in Flavor::COMPONENTS {
        let r = probe(&f, flavor, &["mutate", "/d"], &[("/d", "logs")]);
        let out = r.ok();
        let ops = [
            "create",
            "write",
            "append",
            "truncate",
            "create-new",
            "rename",
            "unlink",
            "mkdir",
            "rmdir",
            "hard-link",
            "set-len",
            "set-times",
            "write-read-only-handle",
        ];
        for op in ops {
            assert!(out.lines().any(|l| l == format!("{op}: ReadOnlyFilesystem")), "{flavor:?} {op}:\n{out}");
        }
        // Nothing to flush on a read-only file system: sync succeeds.
        assert!(out.lines().any(|l| l == "sync: ok"), "{out}");
    }
    assert_eq!(sha256_file(&f.img), before, "the image changed");
}

#[test]
fn nothing_escapes_the_preopen() {
    let f = fixture();
    for flavor in Flavor::COMPONENTS {
        for path in ["/d/../bin/blob.bin", "/d/old/../../tiny", "/d/../../../etc/passwd", "/etc/passwd", "/d/app.log/x"]
        {
            let r = probe(&f, flavor, &["open", path], &[("/d", "logs")]);
            let out = r.ok().trim().to_string();
            assert_ne!(out, "ok", "{flavor:?} {path} was opened");
        }
        let r = probe(&f, flavor, &["open", "/d/old/../app.log"], &[("/d", "logs")]);
        assert_eq!(r.ok().trim(), "ok", "`..` inside the preopen is fine");
        let r = probe(&f, flavor, &["open", "/d/missing"], &[("/d", "logs")]);
        assert_eq!(r.ok().trim(), "NotFound");
    }
}

#[test]
fn bad_preopens_and_core_modules_get_clear_errors() {
    let f = fixture();
    let r = probe(&f, Flavor::Component, &["ls", "/d"], &[("/d", "nope")]);
    match &r.outcome.result {
        Err(RunError::Setup { message }) => {
            assert!(message.contains("nope") && message.contains("does not exist"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let r = probe(&f, Flavor::Component, &["ls", "/d"], &[("/d", "tiny")]);
    assert!(matches!(&r.outcome.result, Err(RunError::Setup { message }) if message.contains("not a directory")));
    let r = probe(&f, Flavor::Component, &["ls", "/d"], &[("d", "/")]);
    assert!(matches!(&r.outcome.result, Err(RunError::Setup { message }) if message.contains("must be absolute")));
    // A core module is not adapted unless loaded as a component.
    let r = probe(&f, Flavor::Core, &["ls", "/d"], &[("/d", "/")]);
    assert!(matches!(&r.outcome.result, Err(RunError::NeedsComponent { .. })), "{:?}", r.outcome.result);
    // A mount source has no famfs log to serve from.
    let mnt = f.img.parent().unwrap().to_path_buf();
    let mut spec =
        Spec::new("fs-probe", Flavor::Component, &["ls", "/d"], famfs_run_tests::harness::catalog_mount(&mnt, &[]));
    spec.famfs_dirs = vec![("/d".into(), "/".into())];
    assert!(matches!(&spec.run().outcome.result, Err(RunError::Setup { message }) if message.contains("--device")));
}

/// The done-criterion of the components work, in one guest run: a component maps one dataset
/// zero-copy and reads another through `std::fs`, from an image, with no mount.
#[test]
fn a_component_maps_one_dataset_and_reads_another_through_std_fs() {
    let f = fixture();
    let fs = famfs::Famfs::open(&f.img).unwrap();
    let bytes = |p: &str| fs.read_to_vec(fs.namespace().file(p).unwrap()).unwrap();
    let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
    let (mapped, read) = (bytes("striped/big.bin"), bytes("logs/old/app.1.log"));
    for flavor in Flavor::COMPONENTS {
        let mut spec = Spec::new(
            "fs-probe",
            flavor,
            &["map-and-read", "striped/big.bin", "/data/old/app.1.log"],
            catalog_device(&f.img, &["striped"]),
        );
        spec.famfs_dirs = vec![("/data".into(), "logs".into())];
        let r = spec.run();
        let want = format!("mapped {} {} read {} {}\n", mapped.len(), sum(&mapped), read.len(), sum(&read));
        assert_eq!(r.ok(), want, "{flavor:?}");
        assert_eq!(r.outcome.metrics.bytes_mapped, mapped.len() as u64, "zero-copy");
    }
}
