//! Write, then read back: mkfs + mkdir -p + files of every interesting size, simple and
//! interleaved, through both device code paths; incremental refresh; bit-compatible allocation.

mod common;

use common::*;
use famfs::alloc::Interleave;
use famfs::log::{LOG_ENTRY_LEN, entry_offset};
use famfs::{
    Access, Attrs, Device, Famfs, FileMap, FormatVersion, IoMode, Layout, LogEntry, MkfsOptions, RelPath, Source,
    Writer,
};

const MIB: u64 = 1 << 20;
const SIZES: [u64; 7] = [1, 17, 2 * MIB - 1, 2 * MIB, 2 * MIB + 1, 7 * MIB + 3, 16 * MIB];

fn attrs() -> Attrs {
    Attrs { mode: 0o640, uid: 1000, gid: 100 }
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn write_set(w: &mut Writer, layout: Layout, tag: &str) -> Vec<(String, Vec<u8>)> {
    let made = w.mkdir_all(&p(&format!("{tag}/deep/er")), attrs()).unwrap();
    assert_eq!(made.len(), 3, "one MKDIR entry per missing level");
    let mut out = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let path = format!("{tag}/deep/er/f{i}");
        let data = pattern(size as usize, i as u64 + 1);
        let meta = w.create_file(&p(&path), Source::Bytes(&data), size, attrs(), layout, &mut |_| {}).unwrap();
        assert_eq!(meta.size, size);
        out.push((path, data));
    }
    out
}

fn check_set(fs: &Famfs, set: &[(String, Vec<u8>)]) {
    for (path, data) in set {
        let f = fs.namespace().file(path).unwrap();
        assert_eq!((f.mode, f.uid, f.gid), (0o640, 1000, 100));
        assert_eq!(&fs.read_to_vec(f).unwrap(), data, "{path}");
        // Unaligned ranges across extent and chunk boundaries.
        for (off, len) in [(0, 1), (1, 4097), (2 * MIB - 3, 7), (f.size / 2, 3 * MIB as usize as u64), (f.size - 1, 10)]
        {
            if off >= f.size {
                continue;
            }
            let mut buf = vec![0u8; len as usize];
            let n = fs.read_at(f, off, &mut buf).unwrap();
            let end = (off + len).min(f.size);
            assert_eq!(n as u64, end - off);
            assert_eq!(&buf[..n], &data[off as usize..end as usize], "{path} at {off}");
        }
    }
}

fn roundtrip(format: FormatVersion, mode: IoMode) {
    let dir = scratch();
    let img = dir.path().join("rt.img");
    let opts = MkfsOptions { size: Some(256 * MIB), format, ..Default::default() };
    let sb = famfs::mkfs(&img, &opts, &master()).unwrap();
    assert_eq!((sb.version, sb.omf_major, sb.omf_minor), (format.version(), format.omf().0, format.omf().1));
    let dev = Device::open_with(&img, Access::ReadWrite, mode).unwrap();
    let mut w = Writer::from_device(dev, &master()).unwrap();
    let mut all = write_set(&mut w, Layout::Simple, "simple");
    let il = Interleave { nstrips: 3, nbuckets: 4, chunk_size: 2 * MIB };
    all.extend(write_set(&mut w, Layout::Interleaved(il), "striped"));
    check_set(w.fs(), &all);
    drop(w);

    // A fresh reader, through both I/O paths, sees the same bytes.
    for m in [IoMode::Auto, IoMode::Mapped] {
        let fs = Famfs::from_device(Device::open_with(&img, Access::ReadOnly, m).unwrap()).unwrap();
        assert_eq!(fs.superblock().version, format.version());
        check_set(&fs, &all);
        let big = fs.namespace().file("striped/deep/er/f6").unwrap();
        match &big.map {
            FileMap::Interleaved { chunk_size, strips } => {
                assert_eq!((*chunk_size, strips.len()), (2 * MIB, 3));
                assert!(strips.iter().all(|s| s.len == strips[0].len));
            }
            other => panic!("expected an interleaved map, got {other:?}"),
        }
        // Files smaller than one chunk fall back to a simple extent, as in famfs.
        assert!(matches!(fs.namespace().file("striped/deep/er/f1").unwrap().map, FileMap::Simple { .. }));
        // encode(decode(bytes)) == bytes for every entry written here.
        for (i, e) in fs.entries().iter().enumerate() {
            let mut raw = vec![0u8; LOG_ENTRY_LEN];
            fs.device().read_exact_at(&mut raw, entry_offset(i as u64)).unwrap();
            assert_eq!(e.as_ref().unwrap().encode().to_vec(), raw);
            assert_eq!(LogEntry::decode(&raw, i as u64).as_ref(), e.as_ref());
        }
    }
    let report = famfs::fsck::fsck_path(&img, None);
    assert_eq!(report.exit_code(), 0, "{:?}", report.problems);
    assert_eq!(report.stats.files, 2 * SIZES.len() as u64);
}

#[test]
fn roundtrip_v48() {
    roundtrip(FormatVersion::V48, IoMode::Auto);
}

#[test]
fn roundtrip_v47() {
    roundtrip(FormatVersion::V47, IoMode::Auto);
}

/// The writer through the shared map (the dax device code path).
#[test]
fn roundtrip_through_a_shared_map() {
    roundtrip(FormatVersion::V48, IoMode::Mapped);
}

/// Copying from a file uses copy_file_range; the bytes and the zeroed slack must be right.
#[test]
fn copy_from_a_file_source() {
    let dir = scratch();
    let img = new_image(dir.path(), "f.img", 64 * MIB);
    let data = pattern((5 * MIB + 77) as usize, 9);
    let src_path = dir.path().join("src.bin");
    std::fs::write(&src_path, &data).unwrap();
    let src = std::fs::File::open(&src_path).unwrap();
    let mut w = Writer::open(&img, &master()).unwrap();
    let mut seen = 0;
    let f = w
        .create_file(&p("a.bin"), Source::File(&src), data.len() as u64, attrs(), Layout::Simple, &mut |n| seen = n)
        .unwrap();
    assert_eq!(seen, data.len() as u64, "progress reaches the file size");
    let fs = w.into_fs();
    assert_eq!(fs.read_to_vec(&f).unwrap(), data);
    let slack_start = f.map.extents()[0].offset + f.size;
    let mut slack = vec![1u8; (f.map.capacity() - f.size) as usize];
    fs.device().read_exact_at(&mut slack, slack_start).unwrap();
    assert!(slack.iter().all(|&b| b == 0));
}

/// A reader opened before the writer picks up the new entries with refresh(), as famfs clients
/// do with logplay, and a re-made file system is detected.
#[test]
fn refresh_picks_up_appended_entries() {
    let dir = scratch();
    let img = new_image(dir.path(), "r.img", 64 * MIB);
    let mut reader = Famfs::open(&img).unwrap();
    assert_eq!(reader.namespace().files().count(), 0);
    let mut w = Writer::open(&img, &master()).unwrap();
    w.mkdir(&p("d"), attrs()).unwrap();
    w.create_file(&p("d/x"), Source::Bytes(b"hello"), 5, attrs(), Layout::Simple, &mut |_| {}).unwrap();
    drop(w);
    let r = reader.refresh().unwrap();
    assert_eq!((r.new_dirs, r.new_files), (1, 1));
    let f = reader.namespace().file("/d/x").unwrap().clone();
    assert_eq!(reader.read_to_vec(&f).unwrap(), b"hello");
    assert_eq!(reader.refresh().unwrap().entries, 0, "nothing new the second time");
    famfs::mkfs(&img, &MkfsOptions { force: true, ..Default::default() }, &master()).unwrap();
    assert!(matches!(reader.refresh(), Err(famfs::Error::Replaced { .. })));
}

/// Allocation is famfs' first fit from the start of the device: on the simple fixture (files at
/// 0xa00000, 0xc00000 and 0xe00000 for 4 MiB), the next file lands at 0x1200000, and the
/// existing entries are untouched.
#[test]
fn appending_to_a_real_famfs_image_allocates_like_famfs() {
    let dir = scratch();
    let img = fixture_in(dir.path(), "famfs-simple.img");
    let before = std::fs::read(&img).unwrap();
    let id = famfs::SystemIdentity::from_uuid(FIXTURE_MASTER.parse().unwrap());
    let mut w = Writer::open(&img, &id).unwrap();
    let f = w.create_file(&p("docs/new.txt"), Source::Bytes(b"new"), 3, attrs(), Layout::Simple, &mut |_| {}).unwrap();
    assert_eq!(f.map.extents(), &[famfs::Extent::new(0x120_0000, 2 * MIB)]);
    assert_eq!(f.entry_index, 7);
    drop(w);
    let after = std::fs::read(&img).unwrap();
    // Superblock and the seven original entries are byte-identical.
    let entries_end = entry_offset(7) as usize;
    assert_eq!(&before[..0x20_0000 + 32], &after[..0x20_0000 + 32]);
    assert_eq!(&before[0x20_0000 + 48..entries_end], &after[0x20_0000 + 48..entries_end]);
    let report = famfs::fsck::fsck_path(&img, None);
    assert_eq!(report.exit_code(), 0, "{:?}", report.problems);
    // 4 MiB are left of the 24 MiB device (0x1400000..0x1800000): 4 MiB + 1 does not fit.
    let mut w = Writer::open(&img, &id).unwrap();
    let big = vec![7u8; 4 * MIB as usize + 1];
    assert!(matches!(
        w.create_file(&p("big"), Source::Bytes(&big), big.len() as u64, attrs(), Layout::Simple, &mut |_| {}),
        Err(famfs::Error::NoSpace { .. })
    ));
}

/// An image made here has the structure real famfs writes: the constant header CRC of an
/// 8 MiB log, empty counters, zeroed superblock tail.
#[test]
fn mkfs_writes_what_famfs_writes() {
    let dir = scratch();
    let img = new_image(dir.path(), "m.img", 32 * MIB);
    let raw = std::fs::read(&img).unwrap();
    assert_eq!(&raw[0..8], &[0xff, 0x82, 0xb2, 0x87, 0, 0, 0, 0]);
    assert_eq!(u64::from_le_bytes(raw[8..16].try_into().unwrap()), 48);
    assert_eq!(u64::from_le_bytes(raw[32..40].try_into().unwrap()), 2 * MIB);
    assert_eq!(u64::from_le_bytes(raw[96..104].try_into().unwrap()), u64::from(crc32fast::hash(&raw[..96])));
    assert_eq!(u64::from_le_bytes(raw[112..120].try_into().unwrap()), 32 * MIB);
    assert!(raw[200..0x20_0000].iter().all(|&b| b == 0));
    let log = &raw[0x20_0000..];
    assert_eq!(&log[0..8], &[0x0d, 0xf0, 0xfe, 0xca, 0xad, 0x0b, 0, 0]);
    assert_eq!(u64::from_le_bytes(log[16..24].try_into().unwrap()), 15419);
    assert_eq!(u64::from_le_bytes(log[24..32].try_into().unwrap()), 0xa587_5078);
    assert!(log[32..8 * MIB as usize].iter().all(|&b| b == 0));
}
