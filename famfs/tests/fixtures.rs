//! The real-famfs fixture images: every decoded field equals manifest.json, every file's bytes
//! hash to its sha256, and re-encoding reproduces the on-media bytes exactly.

mod common;

use common::*;
use famfs::log::{LOG_ENTRY_LEN, LOG_HEADER_LEN, entry_offset};
use famfs::superblock::{LOG_OFFSET, SUPERBLOCK_LEN};
use famfs::{Access, Device, EntryBody, Famfs, FileMap, IoMode, LogEntry};
use serde_json::Value;
use std::path::Path;

const IMAGES: [&str; 3] = ["famfs-simple.img", "famfs-interleaved.img", "famfs-v47-simple.img"];

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn check_superblock(fs: &Famfs, m: &Value) {
    let sb = fs.superblock();
    assert_eq!(m["magic"], hex(famfs::superblock::SUPER_MAGIC));
    assert_eq!(m["version"], sb.version);
    assert_eq!(m["log_offset"], sb.log_offset);
    assert_eq!(m["log_len"], sb.log_len);
    assert_eq!(m["alloc_unit"], sb.alloc_unit);
    assert_eq!(m["omf"], format!("{}.{}", sb.omf_major, sb.omf_minor));
    assert_eq!(m["fs_uuid"], sb.fs_uuid.to_string());
    assert_eq!(m["dev_uuid"], sb.dev_uuid.to_string());
    assert_eq!(m["system_uuid"], sb.system_uuid.to_string());
    assert_eq!(m["crc"], hex(sb.crc().into()));
    assert_eq!(m["crc_ok"], true);
    assert_eq!(m["sb_flags"], sb.sb_flags);
    assert_eq!(m["dd_size"], sb.dev_size);
    assert_eq!(m["dd_uuid"], sb.daxdev_uuid.to_string());
    assert_eq!(m["dd_daxdev"], sb.daxdev_name());
}

fn check_header(fs: &Famfs, m: &Value) {
    let h = fs.log_header();
    let bytes = h.encode();
    assert_eq!(m["magic"], hex(famfs::log::LOG_MAGIC));
    assert_eq!(m["len"], h.log_len);
    assert_eq!(m["last_index"], h.last_index);
    assert_eq!(m["crc"], hex(crc32fast::hash(&bytes[..24]).into()));
    assert_eq!(m["crc_ok"], true);
    assert_eq!(m["next_seqnum"], h.next_seqnum);
    assert_eq!(m["next_index"], h.next_index);
}

fn check_extents(got: &[famfs::Extent], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(w["devindex"], g.devindex);
        assert_eq!(w["offset"], g.offset);
        assert_eq!(w["len"], g.len);
    }
}

fn check_entry(index: usize, e: &LogEntry, m: &Value) {
    assert_eq!(m["index"], index);
    assert_eq!(m["seqnum"], e.seqnum);
    assert_eq!(m["crc_ok"], true);
    let mode = |v: u32| format!("0o{v:o}");
    match &e.body {
        EntryBody::Mkdir(d) => {
            assert_eq!(m["kind"], "mkdir");
            assert_eq!(m["type"], 1);
            assert_eq!(m["uid"], d.uid);
            assert_eq!(m["gid"], d.gid);
            assert_eq!(m["mode"], mode(d.mode));
            assert_eq!(m["relpath"], d.path);
        }
        EntryBody::File(f) => {
            assert_eq!(m["kind"], "file");
            assert_eq!(m["type"], 0);
            assert_eq!(m["size"], f.size);
            assert_eq!(m["flags"], f.flags);
            assert_eq!(m["uid"], f.uid);
            assert_eq!(m["gid"], f.gid);
            assert_eq!(m["mode"], mode(f.mode));
            assert_eq!(m["relpath"], f.path);
            assert_eq!(m["n"], 1);
            match &f.map {
                FileMap::Simple { extents } => {
                    assert_eq!(m["ext_type"], 0);
                    check_extents(extents, &m["extents"]);
                }
                FileMap::Interleaved { chunk_size, strips } => {
                    assert_eq!(m["ext_type"], 1);
                    assert_eq!(m["nstrips"], strips.len());
                    assert_eq!(m["chunk_size"], *chunk_size);
                    check_extents(strips, &m["strips"]);
                }
            }
        }
        other => panic!("unexpected entry {other:?}"),
    }
}

/// Checks one fixture opened through `device`.
fn check_image(name: &str, device: Device, m: &Value) {
    let fs = Famfs::from_device(device).unwrap();
    check_superblock(&fs, &m["superblock"]);
    check_header(&fs, &m["log"]);
    let want = m["entries"].as_array().unwrap();
    assert_eq!(fs.entries().len(), want.len(), "{name}: entry count");
    for (i, (e, w)) in fs.entries().iter().zip(want).enumerate() {
        check_entry(i, e.as_ref().unwrap(), w);
    }
    let report = fs.replay_report();
    assert!(report.rejected.is_empty() && report.stopped.is_none(), "{name}: {report:?}");
    let hashes = m["file_sha256"].as_object().unwrap();
    assert_eq!(fs.namespace().files().count(), hashes.len());
    for (path, sha) in hashes {
        let file = fs.namespace().file(path).unwrap();
        let bytes = fs.read_to_vec(file).unwrap();
        assert_eq!(bytes.len() as u64, file.size);
        assert_eq!(&sha256_hex(&bytes), sha.as_str().unwrap(), "{name}: {path}");
    }
}

#[test]
fn every_field_and_file_matches_the_manifest() {
    let dir = scratch();
    let manifest = manifest();
    for name in IMAGES {
        let m = &manifest["images"][name];
        let img = fixture_in(dir.path(), name);
        assert_eq!(sha256_file(&img), m["raw_sha256"].as_str().unwrap(), "{name}: decompressed image");
        assert_eq!(std::fs::metadata(&img).unwrap().len(), m["raw_size"]);
        check_image(name, Device::open(&img, Access::ReadOnly).unwrap(), m);
        // The same through the shared-map code path dax devices use.
        check_image(name, Device::open_with(&img, Access::ReadOnly, IoMode::Mapped).unwrap(), m);
    }
}

/// The manifest's content formula, so every byte (not only a hash) is checked, and the slack
/// after EOF inside the extents is zero as famfs-run's zero-copy mapping relies on.
#[test]
fn every_byte_follows_the_content_formula_and_slack_is_zero() {
    let dir = scratch();
    for name in IMAGES {
        let fs = Famfs::open(fixture_in(dir.path(), name)).unwrap();
        for file in fs.namespace().files() {
            let h = file.path.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(131).wrapping_add(b.into()));
            let bytes = fs.read_to_vec(file).unwrap();
            for (i, &b) in bytes.iter().enumerate() {
                let want = ((i % 251) as u32 ^ (h & 0xff) ^ (((i >> 21) as u32 * 17) & 0xff)) as u8;
                assert_eq!(b, want, "{name}:{} byte {i}", file.path);
            }
            for p in file.map.pieces(file.size, file.map.capacity() - file.size) {
                let mut slack = vec![0xffu8; p.len as usize];
                fs.device().read_exact_at(&mut slack, p.device_offset).unwrap();
                assert!(slack.iter().all(|&b| b == 0), "{name}:{} slack at {:#x}", file.path, p.device_offset);
            }
        }
    }
}

fn read(dev: &Path, off: u64, len: usize) -> Vec<u8> {
    let d = Device::open(dev, Access::ReadOnly).unwrap();
    let mut b = vec![0; len];
    d.read_exact_at(&mut b, off).unwrap();
    b
}

/// encode(decode(bytes)) == bytes for the superblock, header and every entry famfs wrote.
#[test]
fn reencoding_reproduces_the_media_bytes() {
    let dir = scratch();
    for name in IMAGES {
        let img = fixture_in(dir.path(), name);
        let fs = Famfs::open(&img).unwrap();
        assert_eq!(fs.superblock().encode().to_vec(), read(&img, 0, SUPERBLOCK_LEN), "{name}: superblock");
        assert_eq!(fs.log_header().encode().to_vec(), read(&img, LOG_OFFSET, LOG_HEADER_LEN), "{name}: header");
        for (i, e) in fs.entries().iter().enumerate() {
            let raw = read(&img, entry_offset(i as u64), LOG_ENTRY_LEN);
            assert_eq!(e.as_ref().unwrap().encode().to_vec(), raw, "{name}: entry {i}");
            assert_eq!(&LogEntry::decode(&raw, i as u64).unwrap(), e.as_ref().unwrap());
        }
    }
}

/// The spec's observed constants: superblock CRC 0x2471bc37, header CRC 0xa5875078, first file
/// entry at device 0x2008b0 with CRC 0x6ead3bfa.
#[test]
fn spec_constants_of_the_simple_image() {
    let dir = scratch();
    let img = fixture_in(dir.path(), "famfs-simple.img");
    let fs = Famfs::open(&img).unwrap();
    assert_eq!(fs.superblock().crc(), 0x2471_bc37);
    assert_eq!(crc32fast::hash(&fs.log_header().encode()[..24]), 0xa587_5078);
    assert_eq!(entry_offset(4), 0x2008b0);
    let raw = read(&img, 0x2008b0, LOG_ENTRY_LEN);
    assert_eq!(u64::from_le_bytes(raw[536..544].try_into().unwrap()), 0x6ead_3bfa);
    assert_eq!(famfs::log::slots(8 << 20), 15420);
    assert_eq!(famfs::log::slots(16 << 20), 30840);
    assert_eq!(famfs::log::slots(256 << 20), 493447);
}

/// The shadow YAML real famfs logplay wrote agrees with our namespace (path, size, mode,
/// owner, extents) for every regular file.
#[test]
fn shadow_yaml_agrees_with_the_namespace() {
    let dir = scratch();
    for (image, shadow) in [("famfs-simple.img", "simple"), ("famfs-interleaved.img", "interleaved")] {
        let fs = Famfs::open(fixture_in(dir.path(), image)).unwrap();
        for f in fs.namespace().files() {
            let yaml_path = fixtures_dir().join("shadow-yaml").join(shadow).join(format!("{}.yaml", f.path));
            let yaml = std::fs::read_to_string(&yaml_path).unwrap();
            let field = |k: &str| -> Vec<String> {
                yaml.lines()
                    .filter_map(|l| {
                        l.trim().trim_start_matches("- ").strip_prefix(&format!("{k}: ")).map(str::to_string)
                    })
                    .collect()
            };
            assert_eq!(field("path"), [f.path.to_string()]);
            assert_eq!(field("size"), [f.size.to_string()]);
            assert_eq!(field("mode"), [format!("0{:o}", f.mode)]);
            assert_eq!(field("uid"), [f.uid.to_string()]);
            assert_eq!(field("gid"), [f.gid.to_string()]);
            let offsets: Vec<String> = f.map.extents().iter().map(|e| format!("{:#x}", e.offset)).collect();
            assert_eq!(field("offset"), offsets, "{}", yaml_path.display());
            let lens: Vec<String> = f.map.extents().iter().map(|e| format!("{:#x}", e.len)).collect();
            assert_eq!(field("length"), lens);
        }
    }
}
