//! Every refusal of the writer is a clear error and leaves the file system byte-identical.

mod common;

use common::*;
use famfs::{Attrs, Error, Layout, MkfsOptions, RelPath, Source, Writer};
use std::path::Path;

const MIB: u64 = 1 << 20;

fn attrs() -> Attrs {
    Attrs { mode: 0o644, uid: 0, gid: 0 }
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn put(w: &mut Writer, path: &str, data: &[u8]) -> Result<famfs::FileMeta, Error> {
    w.create_file(&p(path), Source::Bytes(data), data.len() as u64, attrs(), Layout::Simple, &mut |_| {})
}

/// Runs `f`, which must fail, and checks the image did not change.
fn refused(img: &Path, f: impl FnOnce() -> Error) -> Error {
    let before = std::fs::read(img).unwrap();
    let e = f();
    assert_eq!(std::fs::read(img).unwrap(), before, "a refused operation changed the image: {e}");
    e
}

#[test]
fn log_full_is_refused_without_change() {
    let dir = scratch();
    let img = new_image(dir.path(), "l.img", 16 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let slots = w.fs().log_header().last_index + 1;
    // mkdir -p that needs more slots than are free fails before writing anything.
    for i in 0..slots - 2 {
        w.mkdir(&p(&format!("d{i}")), attrs()).unwrap();
    }
    let e = refused(&img, || w.mkdir_all(&p("x/y/z"), attrs()).unwrap_err());
    assert!(matches!(e, Error::LogFull { slots: 15420, .. }), "{e}");
    w.mkdir(&p("last1"), attrs()).unwrap();
    w.mkdir(&p("last2"), attrs()).unwrap();
    assert!(w.fs().log_header().is_full());
    let e = refused(&img, || w.mkdir(&p("one-more"), attrs()).unwrap_err());
    assert!(e.to_string().contains("log full"), "{e}");
    let e = refused(&img, || put(&mut w, "f", b"data").unwrap_err());
    assert!(matches!(e, Error::LogFull { .. }));
    drop(w);
    let r = famfs::fsck::fsck_path(&img, None);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.stats.entries_used, slots);
}

#[test]
fn device_full_is_refused_without_change() {
    let dir = scratch();
    // Superblock (2) + log (8) + 4 MiB of data = two allocation units.
    let img = new_image(dir.path(), "d.img", 14 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let e = refused(&img, || put(&mut w, "big", &vec![1; (4 * MIB + 1) as usize]).unwrap_err());
    assert!(matches!(e, Error::NoSpace { needed, largest, .. } if needed == 6 * MIB && largest == 4 * MIB), "{e}");
    assert!(e.to_string().contains("out of space"));
    put(&mut w, "a", &vec![2; (2 * MIB) as usize]).unwrap();
    put(&mut w, "b", &[3; 10]).unwrap();
    let e = refused(&img, || put(&mut w, "c", &[4; 10]).unwrap_err());
    assert!(matches!(e, Error::NoSpace { largest: 0, .. }));
    // The failed allocations did not leak: fsck agrees on what is used.
    drop(w);
    let r = famfs::fsck::fsck_path(&img, None);
    assert_eq!((r.exit_code(), r.stats.free_bytes, r.stats.allocated_bytes), (0, 0, 4 * MIB));
}

#[test]
fn bad_paths_are_refused() {
    let long79 = "a".repeat(79);
    assert!(RelPath::parse(&long79).is_ok());
    for bad in ["", "/", "a//b", "a/../b", "..", "./a", "a/.", ".meta/x", &"b".repeat(80), "a\0b"] {
        assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
    }
    let e = RelPath::parse(&"b".repeat(80)).unwrap_err();
    assert!(e.to_string().contains("at most 79 bytes"), "{e}");
    let e = RelPath::parse("a/../b").unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
    // A 79-byte nested path is the longest that fits.
    let dir = scratch();
    let img = new_image(dir.path(), "p.img", 16 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let nested = format!("{}/{}", "d".repeat(39), "f".repeat(39));
    w.mkdir(&p(&"d".repeat(39)), attrs()).unwrap();
    put(&mut w, &nested, b"x").unwrap();
    assert_eq!(w.fs().namespace().file(&nested).unwrap().size, 1);
}

#[test]
fn existing_names_missing_parents_and_empty_files_are_refused() {
    let dir = scratch();
    let img = new_image(dir.path(), "e.img", 32 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    w.mkdir(&p("dir"), attrs()).unwrap();
    put(&mut w, "dir/file", b"abc").unwrap();
    let e = refused(&img, || put(&mut w, "dir/file", b"xyz").unwrap_err());
    assert!(matches!(&e, Error::Exists(p) if p == "dir/file"), "{e}");
    let e = refused(&img, || put(&mut w, "dir", b"xyz").unwrap_err());
    assert!(matches!(e, Error::Exists(_)));
    let e = refused(&img, || w.mkdir(&p("dir/file"), attrs()).unwrap_err());
    assert!(matches!(e, Error::Exists(_)));
    let e = refused(&img, || w.mkdir(&p("dir"), attrs()).unwrap_err());
    assert!(matches!(e, Error::Exists(_)));
    let e = refused(&img, || w.mkdir(&p("nope/sub"), attrs()).unwrap_err());
    assert!(e.to_string().contains("does not exist (use mkdir -p)"), "{e}");
    let e = refused(&img, || put(&mut w, "dir/file/under", b"x").unwrap_err());
    assert!(e.to_string().contains("not a directory"), "{e}");
    let e = refused(&img, || w.mkdir_all(&p("dir/file/under"), attrs()).unwrap_err());
    assert!(e.to_string().contains("not a directory"), "{e}");
    let e = refused(&img, || put(&mut w, "empty", b"").unwrap_err());
    assert!(matches!(e, Error::EmptyFile(_)));
    // mkdir -p over existing directories is fine and writes nothing.
    let e = refused(&img, || {
        assert!(w.mkdir_all(&p("dir"), attrs()).unwrap().is_empty());
        Error::Inconsistent("no-op".into())
    });
    assert!(matches!(e, Error::Inconsistent(_)));
}

#[test]
fn a_client_refuses_to_write() {
    let dir = scratch();
    let img = new_image(dir.path(), "c.img", 16 * MIB);
    let e = refused(&img, || Writer::open(&img, &client()).unwrap_err());
    let msg = e.to_string();
    assert!(matches!(e, Error::NotMaster { .. }));
    assert!(msg.contains("client") && msg.contains("only the master"), "{msg}");
    // The real fixtures belong to the machine that made them: we are a client there.
    let fx = fixture_in(dir.path(), "famfs-simple.img");
    assert!(matches!(refused(&fx, || Writer::open(&fx, &master()).unwrap_err()), Error::NotMaster { .. }));
}

#[test]
fn one_writer_at_a_time() {
    let dir = scratch();
    let img = new_image(dir.path(), "w.img", 16 * MIB);
    let first = Writer::open(&img, &master()).unwrap();
    let e = Writer::open(&img, &master()).unwrap_err();
    assert!(e.to_string().contains("locked by another writer"), "{e}");
    let e = famfs::mkfs(&img, &MkfsOptions { force: true, ..Default::default() }, &master()).unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
    drop(first);
    Writer::open(&img, &master()).unwrap();
}

#[test]
fn mkfs_refusals() {
    let dir = scratch();
    let img = new_image(dir.path(), "m.img", 16 * MIB);
    let e = refused(&img, || famfs::mkfs(&img, &MkfsOptions::default(), &master()).unwrap_err());
    assert!(e.to_string().contains("--force"), "{e}");
    // A v47 file system is also protected.
    let v47 = dir.path().join("v47.img");
    let o47 = MkfsOptions { size: Some(16 * MIB), format: famfs::FormatVersion::V47, ..Default::default() };
    famfs::mkfs(&v47, &o47, &master()).unwrap();
    assert!(matches!(
        famfs::mkfs(&v47, &MkfsOptions::default(), &master()),
        Err(Error::AlreadyFormatted { version: 47, .. })
    ));
    for (opts, needle) in [
        (MkfsOptions { log_len: 12 * MIB, force: true, ..Default::default() }, "power of two"),
        (MkfsOptions { log_len: 4 * MIB, force: true, ..Default::default() }, "at least 8 MiB"),
        (MkfsOptions { size: Some(11 * MIB), force: true, ..Default::default() }, "too small"),
        (MkfsOptions { size: Some(15 * MIB), force: true, ..Default::default() }, "multiple of 2 MiB"),
    ] {
        let e = refused(&img, || famfs::mkfs(&img, &opts, &master()).unwrap_err());
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
    // A file too small for a log, made without --size.
    let small = dir.path().join("small.img");
    std::fs::write(&small, vec![0u8; MIB as usize]).unwrap();
    let e = refused(&small, || famfs::mkfs(&small, &MkfsOptions::default(), &master()).unwrap_err());
    assert!(e.to_string().contains("needs at least"), "{e}");
    // With --force an existing famfs is replaced by an empty one.
    let mut w = Writer::open(&img, &master()).unwrap();
    put(&mut w, "f", b"x").unwrap();
    drop(w);
    famfs::mkfs(&img, &MkfsOptions { force: true, ..Default::default() }, &master()).unwrap();
    assert_eq!(famfs::Famfs::open(&img).unwrap().namespace().files().count(), 0);
}

#[test]
fn interleave_parameters_are_checked() {
    use famfs::alloc::Interleave;
    let dir = scratch();
    let img = new_image(dir.path(), "i.img", 64 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let data = vec![5u8; (8 * MIB) as usize];
    for (il, needle) in [
        (Interleave { nstrips: 0, nbuckets: 1, chunk_size: 2 * MIB }, "1 to 16"),
        (Interleave { nstrips: 17, nbuckets: 17, chunk_size: 2 * MIB }, "1 to 16"),
        (Interleave { nstrips: 4, nbuckets: 2, chunk_size: 2 * MIB }, "cannot exceed"),
        (Interleave { nstrips: 2, nbuckets: 2, chunk_size: 3 * MIB }, "power of two"),
        (Interleave { nstrips: 2, nbuckets: 2, chunk_size: MIB }, "multiple of 2 MiB"),
        (Interleave { nstrips: 2, nbuckets: 64, chunk_size: 2 * MIB }, "buckets"),
    ] {
        let e = refused(&img, || {
            w.create_file(
                &p("s"),
                Source::Bytes(&data),
                data.len() as u64,
                attrs(),
                Layout::Interleaved(il),
                &mut |_| {},
            )
            .unwrap_err()
        });
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
}
