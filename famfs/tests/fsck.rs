//! fsck on logs that famfs' writer never produces but a device can hold: cross-linked files
//! (what `famfs clone` makes), files whose parent is missing, duplicate paths, unknown entry
//! types, extents over the metadata, inconsistent header counters. Entries are appended with
//! valid CRCs and sequence numbers, so only the semantic checks can catch them.

mod common;

use common::*;
use famfs::fsck::fsck_path;
use famfs::log::{
    AddDaxdevEntry, EntryBody, FM_ALL_HOSTS_RW, FileEntry, LogEntry, LogHeader, MkdirEntry, entry_offset,
};
use famfs::superblock::LOG_OFFSET;
use famfs::{Extent, Famfs, FileMap};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// Appends `body` as the next entry, the way the writer does, bypassing its checks.
fn append_raw(img: &Path, body: EntryBody) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(img).unwrap();
    let mut hb = [0u8; 48];
    f.read_exact_at(&mut hb, LOG_OFFSET).unwrap();
    let mut h = LogHeader::decode(&hb, 8 << 20).unwrap();
    let entry = LogEntry { seqnum: h.next_seqnum, body };
    f.write_all_at(&entry.encode(), entry_offset(h.next_index)).unwrap();
    h.next_index += 1;
    h.next_seqnum += 1;
    f.write_all_at(&h.encode(), LOG_OFFSET).unwrap();
}

fn file(path: &str, offset: u64, len: u64, size: u64) -> EntryBody {
    EntryBody::File(FileEntry {
        size,
        flags: FM_ALL_HOSTS_RW,
        uid: 0,
        gid: 0,
        mode: 0o644,
        path: path.into(),
        map: FileMap::Simple { extents: vec![Extent::new(offset, len)] },
    })
}

fn kinds(img: &Path) -> (i32, Vec<(Option<u64>, &'static str)>) {
    let r = fsck_path(img, None);
    (r.exit_code(), r.problems.iter().map(|p| (p.entry, p.kind)).collect())
}

/// A fresh image with one directory and one 3-byte file at 0xa00000 (entries 0 and 1).
fn base() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = scratch();
    let img = new_image(dir.path(), "f.img", 64 * MIB);
    let mut w = famfs::Writer::open(&img, &master()).unwrap();
    let attrs = famfs::Attrs { mode: 0o755, uid: 0, gid: 0 };
    w.mkdir(&famfs::RelPath::parse("d").unwrap(), attrs).unwrap();
    let f = w
        .create_file(
            &famfs::RelPath::parse("d/a").unwrap(),
            famfs::Source::Bytes(b"abc"),
            3,
            attrs,
            famfs::Layout::Simple,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(f.map.extents()[0].offset, 0xa0_0000);
    assert_eq!(kinds(&img), (0, vec![]));
    (dir, img)
}

#[test]
fn cross_linked_files_are_allocation_collisions() {
    let (_d, img) = base();
    // A clone of d/a: same extent, another name.
    append_raw(&img, file("d/clone", 0xa0_0000, 2 * MIB, 3));
    assert_eq!(kinds(&img), (1, vec![(Some(2), "allocation-collision")]));
    let r = fsck_path(&img, None);
    assert!(r.problems[0].message.contains("already used"), "{}", r.problems[0].message);
    // Both names still read (the bytes are shared), as in famfs.
    let fs = Famfs::open(&img).unwrap();
    assert_eq!(fs.read_to_vec(fs.namespace().file("d/clone").unwrap()).unwrap(), b"abc");
}

#[test]
fn a_missing_parent_is_reported_and_the_file_hidden() {
    let (_d, img) = base();
    append_raw(&img, file("nodir/x", 0xc0_0000, 2 * MIB, 10));
    assert_eq!(kinds(&img), (1, vec![(Some(2), "no-parent")]));
    let fs = Famfs::open(&img).unwrap();
    assert!(fs.namespace().lookup("nodir/x").is_err());
    assert_eq!(fs.replay_report().rejected.len(), 1);
}

#[test]
fn duplicate_paths_and_files_under_files() {
    let (_d, img) = base();
    append_raw(&img, file("d/a", 0xc0_0000, 2 * MIB, 10));
    append_raw(&img, file("d/a/under", 0xe0_0000, 2 * MIB, 10));
    append_raw(&img, EntryBody::Mkdir(MkdirEntry { uid: 0, gid: 0, mode: 0o755, path: "d/a".into() }));
    // A second MKDIR of an existing directory is harmless (famfs counts it as "existed").
    append_raw(&img, EntryBody::Mkdir(MkdirEntry { uid: 0, gid: 0, mode: 0o755, path: "d".into() }));
    assert_eq!(
        kinds(&img),
        (1, vec![(Some(2), "duplicate-path"), (Some(3), "parent-is-file"), (Some(4), "dir-over-file")])
    );
    // The first d/a is the one readers see.
    let fs = Famfs::open(&img).unwrap();
    assert_eq!(fs.namespace().file("d/a").unwrap().size, 3);
}

#[test]
fn extents_over_the_metadata_or_misaligned_are_bad_maps() {
    let (_d, img) = base();
    append_raw(&img, file("d/meta", 0x20_0000, 2 * MIB, 10));
    append_raw(&img, file("d/odd", 0xc0_1000, 2 * MIB, 10));
    append_raw(&img, file("d/small", 0xc0_0000, 2 * MIB, 3 * MIB));
    append_raw(&img, file("d/devidx", 0xc0_0000, 2 * MIB, 10));
    // Patch the last entry's devindex to 1 (and its CRC) to reach that check too.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let off = entry_offset(5);
    let mut raw = [0u8; 544];
    f.read_exact_at(&mut raw, off).unwrap();
    raw[136..144].copy_from_slice(&1u64.to_le_bytes());
    let crc = crc32fast::hash(&raw[..536]);
    raw[536..544].copy_from_slice(&u64::from(crc).to_le_bytes());
    f.write_all_at(&raw, off).unwrap();
    let r = fsck_path(&img, None);
    let msgs: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(r.exit_code(), 1);
    assert!(r.problems.iter().all(|p| p.kind == "bad-map" || p.kind == "allocation-collision"), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("entry 2") && m.contains("overlaps the superblock or log")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("entry 3") && m.contains("not aligned")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("entry 4") && m.contains("holds 2097152 bytes but the file is 3145728")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("entry 5") && m.contains("device 1")), "{msgs:?}");
}

#[test]
fn unknown_types_are_flagged_and_add_daxdev_is_accepted() {
    let (_d, img) = base();
    append_raw(&img, EntryBody::AddDaxdev(AddDaxdevEntry { size: 1 << 30, uuid: uuid_of(7), index: 1 }));
    append_raw(&img, EntryBody::Other { entry_type: 2, body: vec![0; 520] });
    assert_eq!(kinds(&img), (1, vec![(Some(3), "bad-type")]));
    // logplay ignores both and keeps going.
    append_raw(&img, EntryBody::Mkdir(MkdirEntry { uid: 0, gid: 0, mode: 0o700, path: "later".into() }));
    let fs = Famfs::open(&img).unwrap();
    assert!(fs.namespace().lookup("later").is_ok());
}

#[test]
fn header_counters_that_disagree_are_reported_and_block_writers() {
    let (_d, img) = base();
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    f.write_all_at(&5u64.to_le_bytes(), LOG_OFFSET + 32).unwrap();
    assert_eq!(kinds(&img), (1, vec![(None, "header-seqnum")]));
    let before = std::fs::read(&img).unwrap();
    let e = famfs::Writer::open(&img, &master()).unwrap_err();
    assert!(e.to_string().contains("next_seqnum 5 differs from next_index 2"), "{e}");
    assert_eq!(std::fs::read(&img).unwrap(), before);
}

fn uuid_of(n: u8) -> uuid::Uuid {
    uuid::Uuid::from_bytes([n; 16])
}
