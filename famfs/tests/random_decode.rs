//! Randomized decoding, deterministic: real superblocks, log headers and entries from the
//! fixtures, mutated (bit flips, byte and field sets, truncation, extension, random bytes of
//! random lengths, with and without recomputed CRCs) and fed to the decoders; and whole fixture
//! images with random bytes of their first 2 MiB + 64 KiB changed, opened and fsck'd.
//! Nothing may panic, every value that decodes must re-encode to itself, and every error must
//! name a field inside the structure. A failure prints the seed, the iteration and the input.
//!
//! `FAMFS_RANDOM_SCALE=N` multiplies the iteration counts (default 1: about 7000 inputs).

mod common;

use common::*;
use famfs::{Access, Device, Error, Famfs, FormatError, LogEntry, LogHeader, Superblock};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

// famfs-format.md §1-2.
const SB_LEN: usize = 200;
const SB_CRC_COVERED: usize = 96;
const LOG: usize = 0x20_0000;
const HEADER_LEN: usize = 48;
const HEADER_CRC_COVERED: usize = 24;
const ENTRY_LEN: usize = 544;
const ENTRY_CRC_COVERED: usize = 536;
const DEFAULT_LOG_LEN: u64 = 8 << 20;
/// The largest entry index of any valid log (the last slot of a 2^63-byte log).
const MAX_INDEX: u64 = ((1u64 << 63) - HEADER_LEN as u64) / ENTRY_LEN as u64 - 1;
/// The part of an image the whole-image test mutates.
const PREFIX: usize = LOG + (64 << 10);

const FIXTURES: [&str; 3] = ["famfs-simple.img", "famfs-interleaved.img", "famfs-v47-simple.img"];

fn scale() -> usize {
    std::env::var("FAMFS_RANDOM_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// The first `PREFIX` bytes of a fixture (decompressing only that much).
fn prefix(name: &str) -> Vec<u8> {
    let gz = std::fs::File::open(fixtures_dir().join(format!("{name}.gz"))).expect("open fixture");
    let mut b = vec![0u8; PREFIX];
    flate2::read::GzDecoder::new(gz).read_exact(&mut b).expect("gunzip fixture prefix");
    b
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Real structures, cut out of the fixtures by the spec's offsets.
struct Samples {
    superblocks: Vec<Vec<u8>>,
    headers: Vec<Vec<u8>>,
    entries: Vec<(u64, Vec<u8>)>,
}

fn samples() -> Samples {
    let mut s = Samples { superblocks: vec![], headers: vec![], entries: vec![] };
    for name in FIXTURES {
        let b = prefix(name);
        s.superblocks.push(b[..SB_LEN].to_vec());
        let h = &b[LOG..LOG + HEADER_LEN];
        s.headers.push(h.to_vec());
        for i in 0..le_u64(h, 40) {
            let start = LOG + HEADER_LEN + ENTRY_LEN * i as usize;
            s.entries.push((i, b[start..start + ENTRY_LEN].to_vec()));
        }
    }
    assert_eq!(s.entries.len(), 7 + 3 + 7, "entries per the fixtures' manifest");
    s
}

const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    4,
    16,
    17,
    46,
    47,
    48,
    49,
    0x7f,
    0xff,
    4096,
    0x20_0000,
    0x80_0000,
    0x80_0001,
    0xa0_0000,
    0x87b2_82ff,
    0xbad_cafe_f00d,
    u32::MAX as u64,
    1 << 32,
    1 << 63,
    u64::MAX,
];

fn interesting(rng: &mut fastrand::Rng) -> u64 {
    let v = INTERESTING[rng.usize(..INTERESTING.len())];
    match rng.u8(0..4) {
        0 => v.wrapping_add(rng.u64(0..3)),
        1 => v.wrapping_sub(rng.u64(0..3)),
        _ => v,
    }
}

/// One to four random edits of `b`; `max_len` bounds random replacement inputs.
fn mutate(rng: &mut fastrand::Rng, b: &mut Vec<u8>, max_len: usize) {
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(0..10) {
            0 | 1 if !b.is_empty() => {
                let i = rng.usize(..b.len());
                b[i] ^= 1 << rng.u8(0..8);
            }
            2 if !b.is_empty() => {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(..);
            }
            3 if b.len() >= 8 => {
                let i = rng.usize(..=(b.len() - 8) / 8) * 8;
                b[i..i + 8].copy_from_slice(&interesting(rng).to_le_bytes());
            }
            4 if b.len() >= 4 => {
                let i = rng.usize(..=(b.len() - 4) / 4) * 4;
                b[i..i + 4].copy_from_slice(&(interesting(rng) as u32).to_le_bytes());
            }
            5 => {
                let n = rng.usize(..=b.len());
                b.truncate(n);
            }
            6 => {
                let n = rng.usize(1..64);
                b.extend((0..n).map(|_| rng.u8(..)));
            }
            7 if !b.is_empty() => {
                // A run of one value: non-NUL paths, zeroed maps.
                let s = rng.usize(..b.len());
                let e = rng.usize(s..=b.len());
                let v = if rng.bool() { 0 } else { rng.u8(..) };
                b[s..e].fill(v);
            }
            8 => *b = (0..rng.usize(..=max_len)).map(|_| rng.u8(..)).collect(),
            _ => {}
        }
    }
}

/// Stores CRC-32 of `b[..covered]` at `at` if the bytes reach that far.
fn fix_crc(b: &mut [u8], covered: usize, at: usize) {
    if b.len() >= at + 8 {
        let crc = crc32fast::hash(&b[..covered]);
        b[at..at + 8].copy_from_slice(&u64::from(crc).to_le_bytes());
    }
}

/// Runs `f` on every input, collecting panics (and failed properties) with the input in hex.
fn run_all(
    what: &str,
    seeds: &[u64],
    iters: usize,
    mut next: impl FnMut(&mut fastrand::Rng) -> Vec<u8>,
    f: impl Fn(&[u8]),
) {
    let mut failures = Vec::new();
    let mut count = 0;
    for &seed in seeds {
        let mut rng = fastrand::Rng::with_seed(seed);
        for it in 0..iters {
            let input = next(&mut rng);
            count += 1;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(&input))) {
                failures.push(format!(
                    "{what} seed {seed} iteration {it}: {}\n  input ({} bytes): {}",
                    panic_message(&*p),
                    input.len(),
                    hex(&input)
                ));
            }
        }
    }
    assert!(count >= iters, "ran nothing");
    assert!(failures.is_empty(), "{} of {count} {what} inputs failed:\n{}", failures.len(), failures.join("\n"));
}

fn check_error(e: &FormatError, start: u64, len: usize) {
    let msg = e.to_string();
    assert!(
        (start..start + len as u64).contains(&e.offset()),
        "offset {:#x} outside {start:#x}+{len}: {msg}",
        e.offset()
    );
    assert!(!e.field().is_empty() && msg.contains(e.field()), "message lacks the field {}: {msg}", e.field());
    assert!(msg.contains(&format!("{:#x}", e.offset())), "message lacks the offset {:#x}: {msg}", e.offset());
}

fn check_superblock(b: &[u8]) -> bool {
    match Superblock::decode(b) {
        Ok(sb) => {
            let enc = sb.encode();
            assert_eq!(Superblock::decode(&enc).as_ref(), Ok(&sb), "decode(encode(x)) != x");
            assert_eq!(u64::from(crc32fast::hash(&enc[..SB_CRC_COVERED])), le_u64(&enc, 96));
            assert!(sb.format().is_some());
            assert!(sb.log_len.is_power_of_two() && sb.log_len >= DEFAULT_LOG_LEN);
            true
        }
        Err(e) => {
            check_error(&e, 0, SB_LEN);
            assert_eq!(Superblock::decode(b).as_ref(), Err(&e), "not deterministic");
            false
        }
    }
}

fn check_header(b: &[u8], log_len: u64) -> bool {
    match LogHeader::decode(b, log_len) {
        Ok(h) => {
            assert_eq!(h.log_len, log_len);
            assert!(h.next_index <= h.last_index + 1);
            assert_eq!(LogHeader::decode(&h.encode(), h.log_len), Ok(h), "decode(encode(x)) != x");
            true
        }
        Err(e) => {
            check_error(&e, LOG as u64, HEADER_LEN);
            false
        }
    }
}

fn check_entry(b: &[u8], index: u64) -> bool {
    match LogEntry::decode(b, index) {
        Ok(e) => {
            assert_eq!(e.seqnum, index);
            let enc = e.encode();
            assert_eq!(LogEntry::decode(&enc, index).as_ref(), Ok(&e), "decode(encode(x)) != x");
            if let famfs::EntryBody::File(f) = &e.body {
                assert!((1..=16).contains(&f.map.extents().len()));
            }
            true
        }
        Err(e) => {
            let start = (LOG + HEADER_LEN) as u64 + index * ENTRY_LEN as u64;
            check_error(&e, start, ENTRY_LEN);
            false
        }
    }
}

#[test]
fn real_structures_decode_and_round_trip() {
    // The unmutated samples are valid, and encode() reproduces famfs' bytes exactly (the
    // fixtures were written by famfs into zeroed memory).
    let s = samples();
    for b in &s.superblocks {
        assert!(check_superblock(b));
        assert_eq!(Superblock::decode(b).unwrap().encode().as_slice(), &b[..]);
    }
    for b in &s.headers {
        assert!(check_header(b, DEFAULT_LOG_LEN));
        assert_eq!(LogHeader::decode(b, DEFAULT_LOG_LEN).unwrap().encode().as_slice(), &b[..]);
    }
    for (i, b) in &s.entries {
        assert!(check_entry(b, *i));
        assert_eq!(LogEntry::decode(b, *i).unwrap().encode().as_slice(), &b[..]);
    }
}

#[test]
fn mutated_superblocks() {
    let s = samples();
    let mut ok = 0;
    run_all(
        "superblock",
        &[1, 2, 3, 4],
        500 * scale(),
        |rng| {
            let mut b = s.superblocks[rng.usize(..s.superblocks.len())].clone();
            mutate(rng, &mut b, 300);
            if rng.bool() {
                fix_crc(&mut b, SB_CRC_COVERED, 96);
            }
            b
        },
        |b| {
            check_superblock(b);
        },
    );
    // The mutations do reach past the CRC check (recomputed CRCs) and keep some inputs valid.
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..500 {
        let mut b = s.superblocks[rng.usize(..s.superblocks.len())].clone();
        mutate(&mut rng, &mut b, 300);
        fix_crc(&mut b, SB_CRC_COVERED, 96);
        ok += usize::from(Superblock::decode(&b).is_ok());
    }
    assert!(ok > 0, "no mutated superblock decoded: the mutations are too destructive to test encode()");
}

#[test]
fn mutated_log_headers() {
    let s = samples();
    run_all(
        "log header",
        &[11, 12, 13, 14],
        500 * scale(),
        |rng| {
            let mut b = s.headers[rng.usize(..s.headers.len())].clone();
            mutate(rng, &mut b, 100);
            if rng.bool() {
                fix_crc(&mut b, HEADER_CRC_COVERED, 24);
            }
            // The expected log length rides along in the first 8 bytes of the input.
            let expected = match rng.u8(0..4) {
                0 => DEFAULT_LOG_LEN,
                1 if b.len() >= 16 => le_u64(&b, 8),
                2 => 1u64 << rng.u32(0..64),
                _ => interesting(rng),
            };
            let mut input = expected.to_le_bytes().to_vec();
            input.extend(b);
            input
        },
        |input| {
            check_header(&input[8..], le_u64(input, 0));
        },
    );
}

#[test]
fn mutated_log_entries() {
    let s = samples();
    run_all(
        "log entry",
        &[21, 22, 23, 24, 25],
        600 * scale(),
        |rng| {
            let (index, orig) = &s.entries[rng.usize(..s.entries.len())];
            let mut b = orig.clone();
            mutate(rng, &mut b, 700);
            let index = match rng.u8(0..6) {
                0 if b.len() >= 8 => le_u64(&b, 0).min(MAX_INDEX),
                1 => rng.u64(0..=MAX_INDEX),
                2 => MAX_INDEX - rng.u64(0..3),
                _ => *index,
            };
            if rng.u8(0..4) != 0 {
                fix_crc(&mut b, ENTRY_CRC_COVERED, ENTRY_CRC_COVERED);
            }
            // The index rides along in the first 8 bytes of the input.
            let mut input = index.to_le_bytes().to_vec();
            input.extend(b);
            input
        },
        |input| {
            check_entry(&input[8..], le_u64(input, 0));
        },
    );
}

/// A fixture image on disk whose bytes can be changed and put back.
struct Patched<'a> {
    file: &'a std::fs::File,
    undo: Vec<(u64, Vec<u8>)>,
}

impl Patched<'_> {
    fn write(&mut self, off: usize, bytes: &[u8]) {
        let mut old = vec![0u8; bytes.len()];
        self.file.read_exact_at(&mut old, off as u64).unwrap();
        self.undo.push((off as u64, old));
        self.file.write_all_at(bytes, off as u64).unwrap();
    }

    fn fix_crc(&mut self, start: usize, covered: usize, at: usize) {
        let mut b = vec![0u8; covered];
        self.file.read_exact_at(&mut b, start as u64).unwrap();
        self.write(at, &u64::from(crc32fast::hash(&b)).to_le_bytes());
    }

    fn restore(&mut self) {
        while let Some((off, old)) = self.undo.pop() {
            self.file.write_all_at(&old, off).unwrap();
        }
    }
}

/// Opens and fscks the image; panics on a panic or a broken property.
fn check_image(path: &Path) {
    let opened = Famfs::from_device(Device::open(path, Access::ReadOnly).unwrap());
    let report = famfs::fsck::fsck(&Device::open(path, Access::ReadOnly).unwrap(), None);
    match &opened {
        Ok(fs) => {
            assert_ne!(report.exit_code(), 2, "opens but fsck says unreadable: {:?}", report.unreadable);
            if let Some(stop) = &fs.replay_report().stopped {
                assert!(
                    report.problems.iter().any(|p| p.entry == Some(stop.index) && p.kind == "bad-entry"),
                    "replay stopped at {} but fsck does not report it: {:?}",
                    stop.index,
                    report.problems
                );
            }
            if !fs.replay_report().rejected.is_empty() {
                assert_eq!(report.exit_code(), 1, "entries were skipped but fsck is clean");
            }
            for f in fs.namespace().files() {
                let mut buf = vec![0u8; f.size.min(4096) as usize];
                let n = fs.read_at(f, 0, &mut buf).unwrap_or_else(|e| panic!("reading '{}': {e}", f.path));
                assert_eq!(n, buf.len());
            }
            let _ = fs.namespace().read_dir("/").unwrap();
        }
        Err(e) => {
            assert_eq!(report.exit_code(), 2, "open failed ({e}) but fsck exit {}", report.exit_code());
            if let Error::Format { error: source, .. } = e {
                assert!(report.unreadable.as_deref().unwrap().contains(&source.to_string()));
            }
        }
    }
}

#[test]
fn mutated_whole_images() {
    let dir = scratch();
    let mut failures = Vec::new();
    let mut count = 0;
    let mut outcomes = [0usize; 3]; // unreadable, problems, clean
    for (name, seed) in [("famfs-simple.img", 31u64), ("famfs-interleaved.img", 32), ("famfs-v47-simple.img", 33)] {
        let path = fixture_in(dir.path(), name);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let pristine = prefix(name);
        let entries = le_u64(&pristine, LOG + 40) as usize;
        let mut rng = fastrand::Rng::with_seed(seed);
        for it in 0..150 * scale() {
            let mut img = Patched { file: &file, undo: Vec::new() };
            let mut edits = Vec::new();
            for _ in 0..rng.usize(1..=6) {
                // Mostly the structures famfs reads; sometimes anywhere in the first 2 MiB + 64 KiB.
                let (start, len) = match rng.u8(0..10) {
                    0..=2 => (0, SB_LEN),
                    3 | 4 => (LOG, HEADER_LEN),
                    5..=8 => (LOG + HEADER_LEN, ENTRY_LEN * (entries + 1)),
                    _ => (0, PREFIX),
                };
                let off = start + rng.usize(..len);
                let bytes: Vec<u8> = match rng.u8(0..3) {
                    0 => {
                        let mut b = [0u8; 1];
                        file.read_exact_at(&mut b, off as u64).unwrap();
                        vec![b[0] ^ (1 << rng.u8(0..8))]
                    }
                    1 => vec![rng.u8(..)],
                    _ => {
                        let off8 = off & !7;
                        edits.push((off8, interesting(&mut rng).to_le_bytes().to_vec()));
                        continue;
                    }
                };
                edits.push((off, bytes));
            }
            for (off, b) in &edits {
                img.write(*off, b);
            }
            // Recompute CRCs so the checks behind them run too.
            if rng.bool() {
                img.fix_crc(0, SB_CRC_COVERED, 96);
            }
            if rng.bool() {
                img.fix_crc(LOG, HEADER_CRC_COVERED, LOG + 24);
            }
            for i in 0..entries + 1 {
                if rng.bool() {
                    let s = LOG + HEADER_LEN + ENTRY_LEN * i;
                    img.fix_crc(s, ENTRY_CRC_COVERED, s + ENTRY_CRC_COVERED);
                }
            }
            count += 1;
            match catch_unwind(AssertUnwindSafe(|| check_image(&path))) {
                Ok(()) => {
                    let r = famfs::fsck::fsck_path(&path, None);
                    outcomes[match r.exit_code() {
                        2 => 0,
                        1 => 1,
                        _ => 2,
                    }] += 1;
                }
                Err(p) => failures.push(format!(
                    "{name} seed {seed} iteration {it}: {}\n  edits (offset, bytes): {}",
                    panic_message(&*p),
                    edits.iter().map(|(o, b)| format!("({o:#x}, {})", hex(b))).collect::<Vec<_>>().join(" ")
                )),
            }
            img.restore();
        }
        // Every edit was put back.
        let mut now = vec![0u8; PREFIX];
        file.read_exact_at(&mut now, 0).unwrap();
        assert!(now == pristine, "{name}: the image was not restored");
    }
    assert!(failures.is_empty(), "{} of {count} images failed:\n{}", failures.len(), failures.join("\n"));
    // The mutations exercise all three outcomes.
    assert!(outcomes.iter().all(|&n| n > 0), "unreadable/problems/clean = {outcomes:?}");
}

/// `LogEntry::decode` takes the index from the caller; an index past every possible log must
/// give an error (the seqnum cannot match), not an arithmetic-overflow panic.
#[test]
fn entry_decode_with_an_index_past_any_log_does_not_panic() {
    let s = samples();
    let (_, b) = &s.entries[4];
    for index in [MAX_INDEX + 1, u64::MAX / ENTRY_LEN as u64, u64::MAX / 2, u64::MAX] {
        let r = catch_unwind(|| LogEntry::decode(b, index));
        let r = r.unwrap_or_else(|p| panic!("LogEntry::decode(.., {index:#x}) panicked: {}", panic_message(&*p)));
        assert!(r.is_err(), "entry 4 decoded as index {index:#x}");
    }
}
