//! What the `decode` fuzz target does with one input. This file is the single copy of that
//! logic: the fuzz target (`decode.rs`) includes it as a module, and so does the normal test
//! suite (`famfs/tests/fuzz_corpus.rs`, via `#[path]`), which replays the corpus through it.
//! It may use only `famfs` and `std`.
//!
//! Input layout: byte 0 is a selector, the rest is the payload.
//!
//! | `sel & 7` | payload |
//! |---|---|
//! | 0 | superblock bytes -> `Superblock::decode` |
//! | 1 | log header bytes -> `LogHeader::decode`; expected log length: 8 MiB if `sel & 8`, else the header's own `famfs_log_len` field |
//! | 2 | one log entry -> `LogEntry::decode`; index: the entry's own seqnum if `sel & 8`, else `sel >> 4` |
//! | 3 | compact image, in memory: superblock (200 bytes), log header (48), entries (544 each) -> decode, replay into a `Namespace`, allocation bitmap, every file's pieces |
//! | 4 | the same compact image written to a sparse temporary image file (superblock at 0, log at 0x200000) -> `Famfs::from_device` and `fsck` |
//! | 5-7 | the payload through all three decoders |
//!
//! Nothing may panic. Every value that decodes must survive `decode(encode(x)) == x`, every
//! decode error must name a field inside the structure decoded (absolute offset) and mention
//! that field and offset in its message, and the byte ranges of a replayed file must lie in the
//! device's data area; a failed assertion is a finding like a panic.

#![allow(dead_code)]

use famfs::alloc::Bitmap;
use famfs::namespace::Geometry;
use famfs::{Access, Device, Error, Famfs, FormatError, LogEntry, LogHeader, Namespace, Superblock};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Selector values (low three bits of byte 0).
pub const SEL_SUPERBLOCK: u8 = 0;
/// See the table above.
pub const SEL_HEADER: u8 = 1;
/// See the table above.
pub const SEL_ENTRY: u8 = 2;
/// See the table above.
pub const SEL_IMAGE: u8 = 3;
/// See the table above.
pub const SEL_IMAGE_FILE: u8 = 4;
/// See the table above.
pub const SEL_ALL: u8 = 5;
/// Flag bit (byte 0): header: expect 8 MiB; entry: use the entry's own seqnum as its index.
pub const FLAG: u8 = 8;

// Layout from famfs-format.md §1-2.
const SB_LEN: usize = 200;
const LOG_OFFSET: u64 = 0x20_0000;
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 544;
const DEFAULT_LOG_LEN: u64 = 8 << 20;
/// The largest entry index any valid log has: the last slot of a 2^63-byte log (`ts_log_len`
/// is a power of two, so 2^63 is the largest). The decoder also accepts larger indexes (its
/// offsets saturate; `random_decode` tests that), but the target spends its inputs on real ones.
const MAX_INDEX: u64 = ((1u64 << 63) - HEADER_LEN as u64) / ENTRY_LEN as u64 - 1;
/// The in-memory image pretends the device is at most this large (like `geometry()` taking
/// the smaller of `dd_size` and the real device size).
const VIRTUAL_DEVICE_MAX: u64 = 1 << 32;
/// Pieces checked per file (a 4 KiB-chunk interleaved map of a large file has very many).
const MAX_PIECES: usize = 4096;

/// What one input reached: how many structures decoded and how many were rejected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Structures (superblock, header, entries) that decoded.
    pub decoded: u32,
    /// Structures that were rejected with a `FormatError`.
    pub rejected: u32,
    /// Files replayed into a namespace.
    pub files: u32,
}

/// Runs one input; panics on a finding.
pub fn run(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Some((&sel, payload)) = data.split_first() else {
        return out;
    };
    match sel & 7 {
        SEL_SUPERBLOCK => {
            superblock(payload, &mut out);
        }
        SEL_HEADER => {
            header(payload, header_expectation(sel, payload), &mut out);
        }
        SEL_ENTRY => {
            let _ = entry(payload, entry_index(sel, payload), &mut out);
        }
        SEL_IMAGE => image(payload, &mut out),
        SEL_IMAGE_FILE => image_file(payload, sel >> 4, &mut out),
        _ => {
            superblock(payload, &mut out);
            header(payload, header_expectation(sel, payload), &mut out);
            let _ = entry(payload, entry_index(sel, payload), &mut out);
        }
    }
    out
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    match b.get(off..off + 8) {
        Some(s) => u64::from_le_bytes(s.try_into().unwrap()),
        None => 0,
    }
}

fn header_expectation(sel: u8, payload: &[u8]) -> u64 {
    if sel & FLAG != 0 { DEFAULT_LOG_LEN } else { le_u64(payload, 8) }
}

fn entry_index(sel: u8, payload: &[u8]) -> u64 {
    if sel & FLAG != 0 { le_u64(payload, 0).min(MAX_INDEX) } else { u64::from(sel >> 4) }
}

fn entry_start(index: u64) -> u64 {
    LOG_OFFSET + HEADER_LEN as u64 + index * ENTRY_LEN as u64
}

/// A decode error must name a field inside `[start, start + len)` and say so in its message.
fn check_error(e: &FormatError, start: u64, len: usize, what: &str) {
    let msg = e.to_string();
    assert!(
        e.offset() >= start && e.offset() < start + len as u64,
        "{what}: error offset {:#x} outside {start:#x}..{:#x}: {msg}",
        e.offset(),
        start + len as u64
    );
    assert!(!e.field().is_empty(), "{what}: error names no field: {msg}");
    assert!(msg.contains(e.field()), "{what}: message does not name field {}: {msg}", e.field());
    assert!(
        msg.contains(&format!("{:#x}", e.offset())),
        "{what}: message does not give offset {:#x}: {msg}",
        e.offset()
    );
}

fn superblock(b: &[u8], out: &mut Outcome) -> Option<Superblock> {
    match Superblock::decode(b) {
        Ok(sb) => {
            out.decoded += 1;
            assert_eq!(Superblock::decode(&sb.encode()).as_ref(), Ok(&sb), "superblock: decode(encode(x)) != x");
            assert!(sb.format().is_some(), "superblock: decoded an unsupported version: {sb:?}");
            Some(sb)
        }
        Err(e) => {
            out.rejected += 1;
            check_error(&e, 0, SB_LEN, "superblock");
            None
        }
    }
}

fn header(b: &[u8], log_len: u64, out: &mut Outcome) -> Option<LogHeader> {
    match LogHeader::decode(b, log_len) {
        Ok(h) => {
            out.decoded += 1;
            assert_eq!(h.log_len, log_len, "header: accepted a log length other than the superblock's");
            assert!(h.next_index <= h.last_index + 1, "header: next_index past the log: {h:?}");
            assert_eq!(LogHeader::decode(&h.encode(), h.log_len), Ok(h), "header: decode(encode(x)) != x");
            Some(h)
        }
        Err(e) => {
            out.rejected += 1;
            check_error(&e, LOG_OFFSET, HEADER_LEN, "header");
            None
        }
    }
}

fn entry(b: &[u8], index: u64, out: &mut Outcome) -> Result<LogEntry, FormatError> {
    let r = LogEntry::decode(b, index);
    match &r {
        Ok(e) => {
            out.decoded += 1;
            assert_eq!(e.seqnum, index, "entry: seqnum differs from the index");
            assert_eq!(LogEntry::decode(&e.encode(), index).as_ref(), Ok(e), "entry {index}: decode(encode(x)) != x");
        }
        Err(e) => {
            out.rejected += 1;
            check_error(e, entry_start(index), ENTRY_LEN, "entry");
        }
    }
    r
}

/// Decodes a compact image and replays it in memory, as `Famfs::from_device` and fsck do.
fn image(b: &[u8], out: &mut Outcome) {
    let Some(sb) = superblock(&b[..b.len().min(SB_LEN)], out) else {
        return;
    };
    let log = b.get(SB_LEN..).unwrap_or_default();
    let Some(h) = header(&log[..log.len().min(HEADER_LEN)], sb.log_len, out) else {
        return;
    };
    let stored = &log[log.len().min(HEADER_LEN)..];
    let entries: Vec<_> =
        (0..h.next_index).zip(stored.chunks(ENTRY_LEN)).map(|(i, bytes)| entry(bytes, i, out)).collect();
    let g = Geometry {
        device_size: sb.dev_size.min(VIRTUAL_DEVICE_MAX),
        data_start: sb.data_start(),
        alloc_unit: sb.alloc_unit,
    };
    let mut ns = Namespace::new();
    let report = ns.replay(&entries, &g);
    let valid = entries.iter().take_while(|e| e.is_ok()).count() as u64;
    assert_eq!(report.entries, valid, "replay must apply exactly the entries before the first invalid one");
    assert_eq!(report.stopped.as_ref().map(|s| s.index), entries.iter().position(|e| e.is_err()).map(|i| i as u64));
    for f in ns.files() {
        out.files += 1;
        check_pieces(f, &g);
    }
    let valid = entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().ok().map(|e| (i as u64, e)));
    let (bitmap, _) = Bitmap::from_entries(&g, valid);
    assert!(bitmap.used_units() <= bitmap.units());
}

/// A replayed file's map was validated, so its pieces must cover the file contiguously and lie
/// in the data area of the device.
fn check_pieces(f: &famfs::FileMeta, g: &Geometry) {
    let mut pos = 0u64;
    let mut n = 0;
    for p in f.map.pieces(0, f.size) {
        assert_eq!(p.file_offset, pos, "'{}': pieces are not contiguous", f.path);
        assert!(p.len > 0, "'{}': empty piece", f.path);
        assert!(p.device_offset >= g.data_start, "'{}': piece {p:?} in the metadata area", f.path);
        assert!(
            p.device_offset.checked_add(p.len).is_some_and(|end| end <= g.device_size),
            "'{}': piece {p:?} past the {}-byte device",
            f.path,
            g.device_size
        );
        pos += p.len;
        n += 1;
        if n == MAX_PIECES {
            return;
        }
    }
    assert_eq!(pos, f.size, "'{}': the pieces cover {pos} of {} bytes", f.path, f.size);
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_image() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("famfs-fuzz-{}-{n}.img", std::process::id()))
}

/// Writes the compact image as a real (sparse) image file and opens and fscks it.
/// `size_sel`: 0 the file ends where the bytes end, 1 24 MiB, 2 32 MiB, 3 two MiB more.
fn image_file(b: &[u8], size_sel: u8, out: &mut Outcome) {
    let path = temp_image();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| image_file_at(&path, b, size_sel, out)));
    let _ = std::fs::remove_file(&path);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn image_file_at(path: &std::path::Path, b: &[u8], size_sel: u8, out: &mut Outcome) {
    let file = std::fs::File::create(path).expect("create a temporary image");
    let (sb, log) = b.split_at(b.len().min(SB_LEN));
    file.write_all_at(sb, 0).unwrap();
    let mut end = sb.len() as u64;
    if !log.is_empty() {
        file.write_all_at(log, LOG_OFFSET).unwrap();
        end = LOG_OFFSET + log.len() as u64;
    }
    let size = match size_sel & 3 {
        0 => end,
        1 => end.max(24 << 20),
        2 => end.max(32 << 20),
        _ => end + (2 << 20),
    };
    file.set_len(size).unwrap();
    drop(file);

    let opened = Famfs::from_device(Device::open(path, Access::ReadOnly).expect("open the image"));
    let report = famfs::fsck::fsck_path(path, None);
    match &opened {
        Ok(fs) => {
            out.decoded += 2 + fs.entries().iter().filter(|e| e.is_ok()).count() as u32;
            assert_ne!(
                report.exit_code(),
                2,
                "Famfs opened the image but fsck calls it unreadable: {:?}",
                report.unreadable
            );
            if let Some(stop) = &fs.replay_report().stopped {
                assert!(
                    report.problems.iter().any(|p| p.entry == Some(stop.index) && p.kind == "bad-entry"),
                    "replay stopped at entry {} but fsck has no bad-entry problem for it: {:?}",
                    stop.index,
                    report.problems
                );
            }
            if report.exit_code() == 0 {
                assert!(fs.replay_report().stopped.is_none() && fs.replay_report().rejected.is_empty());
            }
            let g = fs.geometry();
            for f in fs.namespace().files() {
                out.files += 1;
                check_pieces(f, &g);
                let mut buf = vec![0u8; f.size.min(4096) as usize];
                let n =
                    fs.read_at(f, 0, &mut buf).unwrap_or_else(|e| panic!("reading validated file '{}': {e}", f.path));
                assert_eq!(n, buf.len(), "'{}': short read", f.path);
            }
        }
        Err(e) => {
            out.rejected += 1;
            assert_eq!(
                report.exit_code(),
                2,
                "Famfs refused the image ({e}) but fsck exit code is {}",
                report.exit_code()
            );
            if let Error::Format { error: source, .. } = e {
                let why = report.unreadable.as_deref().unwrap_or_default();
                assert!(why.contains(&source.to_string()), "fsck says {why:?}, open said {source}");
            }
        }
    }
}
