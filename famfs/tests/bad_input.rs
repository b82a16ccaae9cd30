//! Bad input. Each test takes a copy of a real famfs fixture (or an image made by mkfs),
//! corrupts it at the byte offset `famfs-format.md` gives for the field, and checks that:
//! - the decoder / `Famfs::open` returns a typed `FormatError` naming exactly that offset and
//!   field, with both in its message, and nothing panics;
//! - `fsck_path` reports it (exit 2 when the superblock or log header is unreadable, 1 for bad
//!   entries or extents, with a problem naming the entry);
//! - `famfsctl fsck` exits with the same code, `famfsctl ls` either lists the valid part (replay
//!   stops at the first invalid entry; the entries before it remain) or fails with one
//!   `famfsctl: error: ...` line naming the offset; no command panics;
//! - the read-only commands leave the image byte-identical;
//! - a writer refuses a log with an invalid entry and leaves the image byte-identical.
//!
//! All offsets here are written out from the spec, not taken from the library.

mod common;

use common::*;
use famfs::fmap::MapError;
use famfs::fsck::{FsckReport, fsck_path};
use famfs::namespace::{EntryNode, Namespace, Rejection};
use famfs::{
    Attrs, Error, Famfs, FormatError, Layout, LogEntry, LogHeader, RelPath, Source, Superblock, SystemIdentity, Writer,
};
use serde_json::Value;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Output;

const MIB: u64 = 1 << 20;

// famfs-format.md §1.2-1.3: the superblock at device offset 0.
const SB_MAGIC: u64 = 0;
const SB_VERSION: u64 = 8;
const SB_LOG_LEN: u64 = 24;
const SB_OMF_MAJOR: u64 = 40;
const SB_OMF_MINOR: u64 = 44;
/// `ts_crc`: CRC-32 of bytes 0..96, stored as a u64.
const SB_CRC: u64 = 96;
const SB_CRC_COVERED: u64 = 96;
const SB_FLAGS: u64 = 104;
const SB_DD_SIZE: u64 = 112;
const SB_DD_UUID: u64 = 120;
const SB_DD_DAXDEV: u64 = 136;
const SB_LEN: u64 = 200;

// §2.1: the log header at 0x200000.
const LOG: u64 = 0x20_0000;
const LOG_MAGIC_VALUE: u64 = 0x0000_0bad_cafe_f00d;
const LOG_LEN_FIELD: u64 = 0x20_0008;
const LOG_LAST_INDEX: u64 = 0x20_0010;
/// `famfs_log_crc`: CRC-32 of header bytes 0..24.
const LOG_CRC: u64 = 0x20_0018;
const LOG_NEXT_SEQNUM: u64 = 0x20_0020;
const LOG_NEXT_INDEX: u64 = 0x20_0028;
const LOG_HEADER_LEN: u64 = 48;
const DEFAULT_LOG_LEN: u64 = 8 * MIB;

// §2.2-2.5: 544-byte entries; offsets relative to the entry.
const ENTRY_LEN: u64 = 544;
const E_SEQNUM: u64 = 0;
const E_TYPE: u64 = 8;
const E_FM_RELPATH: u64 = 40;
const E_MD_RELPATH: u64 = 28;
const PATH_FIELD: usize = 80;
const E_FMAP_NEXTENTS: u64 = 128;
/// `se[0]` = {devindex @136, offset @144, len @152}.
const E_SE0_OFFSET: u64 = 144;
const E_SE0_LEN: u64 = 152;
/// Interleaved: `ie_strips[k]` = {devindex, offset, len} at 152 + 24k.
const E_IE_STRIP1_OFFSET: u64 = 152 + 24 + 8;
/// `famfs_log_entry_crc`: CRC-32 of entry bytes 0..536.
const E_CRC: u64 = 536;
const E_CRC_COVERED: u64 = 536;

/// Device offset of log entry `i`: 0x200000 + 48 + 544·i.
const fn entry(i: u64) -> u64 {
    0x20_0030 + ENTRY_LEN * i
}

const SIMPLE: &str = "famfs-simple.img";
const INTERLEAVED: &str = "famfs-interleaved.img";
const V47: &str = "famfs-v47-simple.img";

// ---------------------------------------------------------------------------------------------
// Images and corruptions.

/// An image file in its own scratch directory, with the system UUID of its master.
struct Img {
    _dir: tempfile::TempDir,
    path: PathBuf,
    master: String,
}

impl Img {
    /// A fresh copy of a real famfs fixture.
    fn fixture(name: &str) -> Img {
        let dir = scratch();
        let path = fixture_in(dir.path(), name);
        Img { _dir: dir, path, master: FIXTURE_MASTER.to_string() }
    }

    /// Another copy of this image, to corrupt independently.
    fn copy(&self) -> Img {
        let dir = scratch();
        let path = dir.path().join(self.path.file_name().unwrap());
        std::fs::copy(&self.path, &path).expect("copy image");
        Img { _dir: dir, path, master: self.master.clone() }
    }

    /// An image made by mkfs (as `master()`), then filled by `build`.
    fn made(size: u64, build: impl FnOnce(&mut Writer)) -> Img {
        let dir = scratch();
        let path = new_image(dir.path(), "made.img", size);
        let mut w = Writer::open(&path, &master()).expect("open writer");
        build(&mut w);
        drop(w);
        Img { _dir: dir, path, master: master().uuid().to_string() }
    }

    fn identity(&self) -> SystemIdentity {
        SystemIdentity::from_uuid(self.master.parse().unwrap())
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read image")
    }

    fn read(&self, off: u64, len: u64) -> Vec<u8> {
        let mut b = vec![0u8; len as usize];
        std::fs::File::open(&self.path).unwrap().read_exact_at(&mut b, off).expect("read image bytes");
        b
    }

    fn write(&self, off: u64, b: &[u8]) {
        let f = std::fs::OpenOptions::new().write(true).open(&self.path).unwrap();
        f.write_all_at(b, off).expect("patch image");
    }

    fn flip(&self, off: u64, bit: u32) {
        let mut b = self.read(off, 1);
        b[0] ^= 1 << bit;
        self.write(off, &b);
    }

    fn put_u64(&self, off: u64, v: u64) {
        self.write(off, &v.to_le_bytes());
    }

    fn put_u32(&self, off: u64, v: u32) {
        self.write(off, &v.to_le_bytes());
    }

    /// Stores CRC-32 of `covered` bytes from `start` as a u64 at `at`.
    fn fix_crc(&self, start: u64, covered: u64, at: u64) {
        let crc = crc32fast::hash(&self.read(start, covered));
        self.put_u64(at, u64::from(crc));
    }

    fn fix_sb_crc(&self) {
        self.fix_crc(0, SB_CRC_COVERED, SB_CRC);
    }

    fn fix_entry_crc(&self, i: u64) {
        self.fix_crc(entry(i), E_CRC_COVERED, entry(i) + E_CRC);
    }

    /// Truncates the image to `len` bytes.
    fn cut(&self, len: u64) {
        let f = std::fs::OpenOptions::new().write(true).open(&self.path).unwrap();
        f.set_len(len).expect("truncate image");
    }

    /// Runs `famfsctl -d IMG ARGS...` as the image's master.
    fn ctl(&self, args: &[&str]) -> Output {
        famfsctl()
            .env("FAMFS_SYSTEM_UUID", &self.master)
            .arg("-d")
            .arg(&self.path)
            .args(args)
            .output()
            .expect("run famfsctl")
    }
}

// ---------------------------------------------------------------------------------------------
// What a reader must still see.

/// The paths (directories and files) a reader must list, and the SHA-256 of each file's bytes.
struct Listing {
    paths: Vec<String>,
    files: Vec<(String, String)>,
}

impl Listing {
    /// What the first `n` entries of a fixture's log create, less `skip` (manifest.json).
    fn fixture(image: &str, n: usize, skip: &[&str]) -> Listing {
        let m = manifest();
        let img = &m["images"][image];
        let mut paths = Vec::new();
        let mut files = Vec::new();
        for e in img["entries"].as_array().unwrap().iter().take(n) {
            let p = e["relpath"].as_str().unwrap();
            if skip.contains(&p) {
                continue;
            }
            paths.push(p.to_string());
            if e["kind"] == "file" {
                files.push((p.to_string(), img["file_sha256"][p].as_str().unwrap().to_string()));
            }
        }
        Listing { paths, files }
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn all_paths(ns: &Namespace) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        for e in ns.read_dir(&dir).expect("read_dir") {
            let p = if dir.is_empty() { e.name.to_string() } else { format!("{dir}/{}", e.name) };
            if matches!(e.node, EntryNode::Dir(_)) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    sorted(out)
}

// ---------------------------------------------------------------------------------------------
// Assertions.

/// Whether `msg` holds `offset` as a whole hex token (`0x8` must not match inside `0x87b282ff`).
fn has_hex(msg: &str, offset: u64) -> bool {
    let h = format!("{offset:#x}");
    msg.match_indices(&h).any(|(i, _)| {
        let before_ok = !msg[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        let after_ok = !msg[i + h.len()..].starts_with(|c: char| c.is_ascii_hexdigit());
        before_ok && after_ok
    })
}

fn assert_names(msg: &str, offset: u64, field: &str) {
    assert!(msg.contains(field), "message lacks the field {field}: {msg}");
    assert!(has_hex(msg, offset), "message lacks the offset {offset:#x}: {msg}");
}

/// `e` is at exactly `offset` and `field`, and says so.
fn assert_at(e: &FormatError, offset: u64, field: &str) {
    assert_eq!((e.offset(), e.field()), (offset, field), "wrong offset/field ({:#x} {}): {e}", e.offset(), e.field());
    assert_names(&e.to_string(), offset, field);
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The image still holds exactly `before` (no 24 MiB diff on failure).
fn assert_unchanged(img: &Img, before: &[u8], what: &str) {
    let now = img.bytes();
    if now != before {
        let first = now.iter().zip(before).position(|(a, b)| a != b);
        panic!("{what} changed the image: {} -> {} bytes, first difference at {first:?}", before.len(), now.len());
    }
}

/// Runs a read-only famfsctl command: no panic, image unchanged.
fn ro(img: &Img, before: &[u8], args: &[&str]) -> Output {
    let o = img.ctl(args);
    let err = stderr(&o);
    assert!(!err.contains("panicked") && o.status.code() != Some(101), "famfsctl {args:?} panicked: {err}");
    assert_unchanged(img, before, &format!("famfsctl {args:?}"));
    o
}

/// famfsctl failed with exit 1 and exactly one `famfsctl: error: ...` line that names the
/// offset and field and states `e` once. With `only_line`, stderr holds nothing else.
fn assert_one_error_line(o: &Output, args: &[&str], e: &FormatError, only_line: bool) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "famfsctl {args:?}: {err}");
    assert!(!err.contains("panicked"), "famfsctl {args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("famfsctl: error: ")).collect();
    assert_eq!(lines.len(), 1, "famfsctl {args:?}: want one error line: {err:?}");
    if only_line {
        assert_eq!(err.lines().count(), 1, "famfsctl {args:?}: want only the error line: {err:?}");
    } else {
        for l in err.lines().filter(|l| !l.starts_with("famfsctl: error: ")) {
            assert!(l.contains("WARN"), "famfsctl {args:?}: unexpected stderr line {l:?}");
        }
    }
    let line = lines[0];
    assert_names(line, e.offset(), e.field());
    let text = e.to_string();
    assert_eq!(
        line.matches(&text).count(),
        1,
        "famfsctl {args:?}: the decode error is not stated exactly once: {line}"
    );
    assert_eq!(
        line.matches(e.field()).count(),
        text.matches(e.field()).count(),
        "famfsctl {args:?}: the field is named more often than the decode error names it: {line}"
    );
    line.to_string()
}

fn fsck_json(img: &Img, before: &[u8], code: i32) -> Value {
    let o = ro(img, before, &["fsck", "--json"]);
    assert_eq!(o.status.code(), Some(code), "famfsctl fsck --json: {}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("fsck --json prints JSON");
    assert_eq!(v["exit_code"], code);
    v
}

/// fsck found a problem of `kind` naming entry `index` (library report and famfsctl JSON).
fn assert_problem(r: &FsckReport, json: &Value, index: u64, kind: &str, offset: u64) {
    let p = r
        .problems
        .iter()
        .find(|p| p.entry == Some(index) && p.kind == kind)
        .unwrap_or_else(|| panic!("fsck has no {kind} problem for entry {index}: {:#?}", r.problems));
    assert_eq!(p.offset, Some(offset), "{p:?}");
    assert!(p.message.contains(&format!("entry {index}")), "{p:?}");
    let found = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["entry"] == index && p["kind"] == kind && p["offset"] == offset);
    assert!(found, "famfsctl fsck --json lacks the {kind} problem of entry {index}: {json:#}");
}

/// A reader lists exactly `l.paths` and reads every file of `l.files` intact, through the
/// library and through `famfsctl ls -R` / `cat`.
fn assert_lists(img: &Img, before: &[u8], fs: &Famfs, l: &Listing) {
    let want = sorted(l.paths.clone());
    assert_eq!(all_paths(fs.namespace()), want, "namespace");
    for (p, sha) in &l.files {
        let f = fs.namespace().file(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(&sha256_hex(&fs.read_to_vec(f).unwrap()), sha, "{p} read through the library");
    }
    let o = ro(img, before, &["ls", "-R"]);
    assert_eq!(o.status.code(), Some(0), "famfsctl ls -R: {}", stderr(&o));
    assert!(!stderr(&o).contains("famfsctl: error"), "{}", stderr(&o));
    let out = stdout(&o);
    for p in &want {
        let name = p.rsplit('/').next().unwrap();
        assert!(out.contains(name), "famfsctl ls -R lacks {p}: {out}");
    }
    let o = ro(img, before, &["ls", "-R", "--json"]);
    assert_eq!(o.status.code(), Some(0), "famfsctl ls -R --json: {}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: Vec<String> =
        rows.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(sorted(listed), want, "famfsctl ls -R --json");
    for (p, sha) in &l.files {
        let o = ro(img, before, &["cat", p]);
        assert_eq!(o.status.code(), Some(0), "famfsctl cat {p}: {}", stderr(&o));
        assert_eq!(&sha256_hex(&o.stdout), sha, "famfsctl cat {p}");
    }
}

/// The superblock or the log header is unreadable: the structure's decoder, `Famfs::open`,
/// `Writer::open`, fsck (exit 2) and every famfsctl command report the same error at `offset`
/// / `field`, and nothing changes the image.
fn check_unreadable(img: &Img, offset: u64, field: &str) -> FormatError {
    let before = img.bytes();
    let len = before.len() as u64;
    // The structure alone, decoded from as many of its bytes as the image holds.
    let decoded = if offset < LOG {
        Superblock::decode(&before[..len.min(SB_LEN) as usize]).expect_err("superblock decoded")
    } else {
        let h = &before[len.min(LOG) as usize..len.min(LOG + LOG_HEADER_LEN) as usize];
        LogHeader::decode(h, DEFAULT_LOG_LEN).expect_err("log header decoded")
    };
    assert_at(&decoded, offset, field);

    let e = match Famfs::open(&img.path) {
        Err(Error::Format { device, error }) => {
            assert_eq!(device, img.path);
            error
        }
        other => panic!("Famfs::open: want Error::Format at {offset:#x} {field}, got {other:?}"),
    };
    assert_at(&e, offset, field);
    assert_eq!(e, decoded, "Famfs::open and the decoder disagree");
    let full = Famfs::open(&img.path).unwrap_err().to_string();
    assert_names(&full, offset, field);
    assert_eq!(full.matches(&e.to_string()).count(), 1, "{full}");

    let r = fsck_path(&img.path, Some(&img.identity()));
    assert_eq!(r.exit_code(), 2, "fsck: {r:#?}");
    let why = r.unreadable.as_deref().unwrap();
    assert!(why.contains(&e.to_string()), "fsck's reason {why:?} lacks {e}");

    match Writer::open(&img.path, &img.identity()) {
        Err(Error::Format { error, .. }) => assert_eq!(error, e),
        other => panic!("Writer::open: want Error::Format, got {other:?}"),
    }
    assert_unchanged(img, &before, "Famfs::open / fsck_path / Writer::open");

    let o = ro(img, &before, &["fsck"]);
    assert_eq!(o.status.code(), Some(2), "famfsctl fsck: {}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("UNREADABLE") && out.contains(&e.to_string()), "famfsctl fsck: {out}");
    assert_names(&out, offset, field);
    let json = fsck_json(img, &before, 2);
    assert!(json["unreadable"].as_str().unwrap().contains(&e.to_string()), "{json:#}");

    for args in [&["ls", "-R"][..], &["log"], &["stat", "/"], &["cat", "hello.txt"]] {
        let o = ro(img, &before, args);
        assert_one_error_line(&o, args, &e, true);
        assert!(o.stdout.is_empty(), "famfsctl {args:?} printed {}", stdout(&o));
    }
    let o = img.ctl(&["mkdir", "x"]);
    assert_one_error_line(&o, &["mkdir", "x"], &e, true);
    assert_unchanged(img, &before, "famfsctl mkdir x");
    e
}

/// Entry `index` is invalid (`offset` / `field`): the decoder rejects it, replay keeps the
/// entries before it (`listing`) and stops there, fsck exits 1 naming the entry, writers refuse
/// with `LogInvalid`, and nothing changes the image.
fn check_bad_entry(img: &Img, index: u64, offset: u64, field: &str, listing: &Listing) -> FormatError {
    let before = img.bytes();
    let len = before.len() as u64;
    let start = entry(index);
    let raw = &before[len.min(start) as usize..len.min(start + ENTRY_LEN) as usize];
    let e = LogEntry::decode(raw, index).expect_err("the entry decoded");
    assert_at(&e, offset, field);

    let fs = Famfs::open(&img.path).unwrap_or_else(|e| panic!("Famfs::open: {e}"));
    for (i, ent) in fs.entries().iter().enumerate().take(index as usize) {
        assert!(ent.is_ok(), "entry {i} before the bad one is invalid: {ent:?}");
    }
    assert_eq!(fs.entries()[index as usize].as_ref().err(), Some(&e), "entry {index}");
    let stop = fs.replay_report().stopped.as_ref().expect("replay did not stop");
    assert_eq!((stop.index, &stop.error), (index, &e));
    assert_eq!(fs.namespace().next_index(), index);
    assert!(fs.namespace().is_stopped());
    assert_lists(img, &before, &fs, listing);
    drop(fs);

    let r = fsck_path(&img.path, Some(&img.identity()));
    assert_eq!(r.exit_code(), 1, "fsck: {r:#?}");
    let json = fsck_json(img, &before, 1);
    assert_problem(&r, &json, index, "bad-entry", offset);
    let p = r.problems.iter().find(|p| p.entry == Some(index) && p.kind == "bad-entry").unwrap();
    assert!(p.message.contains(&e.to_string()), "{p:?}");
    let o = ro(img, &before, &["fsck"]);
    assert_eq!(o.status.code(), Some(1), "famfsctl fsck: {}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("entry {index}: {e}")), "famfsctl fsck: {out}");

    let o = ro(img, &before, &["log"]);
    assert_eq!(o.status.code(), Some(0), "famfsctl log: {}", stderr(&o));
    assert!(stdout(&o).contains(&format!("{index:>6} INVALID: {e}")), "famfsctl log: {}", stdout(&o));

    match Writer::open(&img.path, &img.identity()) {
        Err(Error::LogInvalid { index: i, error }) => assert_eq!((i, &error), (index, &e)),
        other => panic!("Writer::open: want Error::LogInvalid at entry {index}, got {other:?}"),
    }
    assert_unchanged(img, &before, "Writer::open");
    let o = img.ctl(&["mkdir", "x"]);
    let line = assert_one_error_line(&o, &["mkdir", "x"], &e, false);
    assert!(line.contains(&format!("invalid entry {index}")), "{line}");
    assert_unchanged(img, &before, "famfsctl mkdir x");
    e
}

/// Entry `index` decodes but its map does not fit the device: replay skips the file with a
/// bad-map rejection and goes on, fsck exits 1 naming the entry, the rest stays readable.
fn check_bad_map(img: &Img, index: u64, path: &str, listing: &Listing) -> Famfs {
    let before = img.bytes();
    let fs = Famfs::open(&img.path).unwrap_or_else(|e| panic!("Famfs::open: {e}"));
    let rep = fs.replay_report();
    assert!(rep.stopped.is_none(), "{rep:?}");
    let rej =
        rep.rejected.iter().find(|r| r.index == index).unwrap_or_else(|| panic!("entry {index} not rejected: {rep:?}"));
    assert_eq!(rej.path, path);
    assert!(matches!(rej.why, Rejection::BadMap(MapError::BeyondDevice { .. })), "{rej:?}");
    assert!(fs.namespace().lookup(path).is_err(), "{path} is listed");
    assert_lists(img, &before, &fs, listing);

    let r = fsck_path(&img.path, Some(&img.identity()));
    assert_eq!(r.exit_code(), 1, "fsck: {r:#?}");
    let json = fsck_json(img, &before, 1);
    assert_problem(&r, &json, index, "bad-map", entry(index));
    let o = ro(img, &before, &["fsck"]);
    assert_eq!(o.status.code(), Some(1), "famfsctl fsck: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("PROBLEM [bad-map]: entry {index} ('{path}')")), "{}", stdout(&o));
    let o = ro(img, &before, &["cat", path]);
    assert_eq!(o.status.code(), Some(1), "famfsctl cat {path}: {}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    fs
}

/// A corruption the readers must ignore: the image reads exactly as `listing`, fsck is clean.
fn check_clean(img: &Img, listing: &Listing) -> Famfs {
    let before = img.bytes();
    let fs = Famfs::open(&img.path).unwrap_or_else(|e| panic!("Famfs::open: {e}"));
    let rep = fs.replay_report();
    assert!(rep.stopped.is_none() && rep.rejected.is_empty(), "{rep:?}");
    assert_lists(img, &before, &fs, listing);
    let r = fsck_path(&img.path, Some(&img.identity()));
    assert_eq!(r.exit_code(), 0, "fsck: {r:#?}");
    let o = ro(img, &before, &["fsck"]);
    assert_eq!(o.status.code(), Some(0), "famfsctl fsck: {}{}", stdout(&o), stderr(&o));
    fsck_json(img, &before, 0);
    fs
}

fn attrs() -> Attrs {
    Attrs { mode: 0o644, uid: 0, gid: 0 }
}

/// mkfs + `d/`, `d/one` (3 MiB), `two` (5 bytes): entries 0, 1, 2.
fn made_image() -> (Img, Listing) {
    let one = pattern(3 * MIB as usize, 7);
    let two = b"two\n\0".to_vec();
    let img = Img::made(32 * MIB, |w| {
        w.mkdir(&RelPath::parse("d").unwrap(), attrs()).unwrap();
        for (p, data) in [("d/one", &one), ("two", &two)] {
            w.create_file(
                &RelPath::parse(p).unwrap(),
                Source::Bytes(data),
                data.len() as u64,
                attrs(),
                Layout::Simple,
                &mut |_| {},
            )
            .unwrap();
        }
    });
    let listing = Listing {
        paths: vec!["d".into(), "d/one".into(), "two".into()],
        files: vec![("d/one".into(), sha256_hex(&one)), ("two".into(), sha256_hex(&two))],
    };
    (img, listing)
}

fn made_prefix(l: &Listing, n: usize) -> Listing {
    let paths: Vec<String> = l.paths.iter().take(n).cloned().collect();
    let files = l.files.iter().filter(|(p, _)| paths.contains(p)).cloned().collect();
    Listing { paths, files }
}

// ---------------------------------------------------------------------------------------------
// (a) Truncated images.

#[test]
fn truncated_inside_the_superblock() {
    let pristine = Img::fixture(SIMPLE);
    // The first field (in offset order) that the cut leaves incomplete.
    for (cut, offset, field) in [
        (0, SB_MAGIC, "ts_magic"),
        (4, SB_MAGIC, "ts_magic"),
        (100, SB_CRC, "ts_crc"),
        (150, SB_DD_DAXDEV, "ts_daxdev.dd_daxdev"),
        (SB_LEN - 1, SB_DD_DAXDEV, "ts_daxdev.dd_daxdev"),
    ] {
        let img = pristine.copy();
        img.cut(cut);
        let e = check_unreadable(&img, offset, field);
        assert!(matches!(e, FormatError::Truncated { .. }), "cut at {cut}: {e:?}");
    }
}

#[test]
fn truncated_between_superblock_and_log() {
    let pristine = Img::fixture(SIMPLE);
    // Past the 200-byte structure but inside the 2 MiB area: the log header is missing.
    for cut in [SB_LEN, MIB, LOG - 1] {
        let img = pristine.copy();
        img.cut(cut);
        let e = check_unreadable(&img, LOG, "famfs_log_magic");
        assert!(matches!(e, FormatError::Truncated { need: 8, have: 0, .. }), "cut at {cut:#x}: {e:?}");
    }
}

#[test]
fn truncated_inside_the_log_header() {
    let pristine = Img::fixture(SIMPLE);
    for (cut, offset, field) in [
        (LOG, LOG, "famfs_log_magic"),
        (LOG + 4, LOG, "famfs_log_magic"),
        (LOG + 28, LOG_CRC, "famfs_log_crc"),
        (LOG + 36, LOG_NEXT_SEQNUM, "famfs_log_next_seqnum"),
        (LOG + 44, LOG_NEXT_INDEX, "famfs_log_next_index"),
    ] {
        let img = pristine.copy();
        img.cut(cut);
        let e = check_unreadable(&img, offset, field);
        assert!(matches!(e, FormatError::Truncated { .. }), "cut at {cut:#x}: {e:?}");
    }
}

#[test]
fn truncated_inside_the_entries() {
    let pristine = Img::fixture(SIMPLE);
    // The CRC is checked first, so a cut entry reports its CRC field at +536.
    for (cut, index) in
        [(entry(0) + 1, 0), (entry(5), 5), (entry(5) + 100, 5), (entry(5) + 540, 5), (entry(6) + 543, 6)]
    {
        let img = pristine.copy();
        img.cut(cut);
        // Every entry before the cut is decoded and replayed; the files among them lost their
        // data (which starts at 0xa00000) with the cut, so replay skips them as bad maps.
        let files = Listing::fixture(SIMPLE, index as usize, &[]).files;
        let lost: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        let listing = Listing::fixture(SIMPLE, index as usize, &lost);
        let e = check_bad_entry(&img, index, entry(index) + E_CRC, "famfs_log_entry_crc", &listing);
        assert!(matches!(e, FormatError::Truncated { need: 8, .. }), "cut at {cut:#x}: {e:?}");
        let fs = Famfs::open(&img.path).unwrap();
        let rejected: Vec<(u64, &str)> =
            fs.replay_report().rejected.iter().map(|r| (r.index, r.path.as_str())).collect();
        let want: Vec<(u64, &str)> = (4..index).zip(lost.iter().copied()).collect();
        assert_eq!(rejected, want, "cut at {cut:#x}");
        assert!(fs.replay_report().rejected.iter().all(|r| matches!(r.why, Rejection::BadMap(_))));
        let r = fsck_path(&img.path, None);
        assert!(r.problems.iter().any(|p| p.kind == "device-truncated" && p.offset == Some(SB_DD_SIZE)), "{r:#?}");
    }
}

#[test]
fn truncated_inside_file_data() {
    let pristine = Img::fixture(SIMPLE);
    // hello.txt @0xa00000, docs/readme.md @0xc00000, weights.bin @0xe00000..0x1200000
    // (entries 4, 5, 6; manifest.json).
    for (cut, lost) in [
        (0x100_0000, &["data/models/v1/weights.bin"][..]),
        (0x110_0001, &["data/models/v1/weights.bin"][..]),
        (0xc0_0064, &["docs/readme.md", "data/models/v1/weights.bin"][..]),
    ] {
        let img = pristine.copy();
        img.cut(cut);
        let listing = Listing::fixture(SIMPLE, 7, lost);
        let fs = check_bad_map(&img, 6, lost[lost.len() - 1], &listing);
        let rejected: Vec<u64> = fs.replay_report().rejected.iter().map(|r| r.index).collect();
        assert_eq!(rejected.len(), lost.len(), "cut at {cut:#x}: {rejected:?}");
        let r = fsck_path(&img.path, Some(&img.identity()));
        assert!(r.problems.iter().any(|p| p.kind == "device-truncated" && p.offset == Some(SB_DD_SIZE)), "{r:#?}");
        for &i in &rejected {
            assert!(r.problems.iter().any(|p| p.kind == "bad-map" && p.entry == Some(i)), "{r:#?}");
        }
        // cat of an intact file still works, and the cut file is refused.
        let before = img.bytes();
        let o = ro(&img, &before, &["cat", "hello.txt"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(o.stdout.len(), 17);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Superblock bit flips.

#[test]
fn superblock_bit_flip_in_crc_covered_bytes() {
    let pristine = Img::fixture(SIMPLE);
    // Bytes 0..96 are covered; magic (0..8), version (8..16) and OMF major (40..44) are checked
    // before the CRC, so flips there are tested by the magic and version tests. The stored
    // CRC itself (96..104, upper half zero) is also compared whole.
    for (off, bit) in [
        (16, 0),
        (24, 3),
        (32, 1),
        (SB_OMF_MINOR, 0),
        (48, 7),
        (63, 2),
        (64, 0),
        (80, 5),
        (95, 7),
        (96, 0),
        (99, 7),
        (100, 0),
        (103, 7),
    ] {
        let img = pristine.copy();
        img.flip(off, bit);
        let e = check_unreadable(&img, SB_CRC, "ts_crc");
        assert!(matches!(e, FormatError::CrcMismatch { .. }), "flip at {off} bit {bit}: {e:?}");
    }
}

#[test]
fn superblock_bit_flip_outside_crc_is_ignored() {
    let pristine = Img::fixture(SIMPLE);
    let listing = Listing::fixture(SIMPLE, 7, &[]);
    // ts_sb_flags, padding, dd_uuid, the daxdev name, and the rest of the 2 MiB area: not
    // covered by the CRC and not checked by any reader.
    for (off, bit) in
        [(SB_FLAGS, 0), (SB_FLAGS + 3, 7), (108, 2), (SB_DD_UUID, 4), (SB_DD_DAXDEV + 20, 1), (SB_LEN, 0), (LOG - 1, 6)]
    {
        let img = pristine.copy();
        img.flip(off, bit);
        let fs = check_clean(&img, &listing);
        if off == SB_FLAGS {
            assert_eq!(fs.superblock().sb_flags, 1 << bit);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Log header bit flips.

#[test]
fn log_header_bit_flip() {
    let pristine = Img::fixture(SIMPLE);
    // The CRC covers header bytes 0..24 (magic, len, last_index); a flipped magic is a bad
    // magic, tested below. The stored CRC at +24 is compared whole.
    for (off, bit) in [
        (LOG_LEN_FIELD, 0),
        (LOG_LEN_FIELD + 7, 7),
        (LOG_LAST_INDEX, 1),
        (LOG_LAST_INDEX + 7, 7),
        (LOG_CRC, 0),
        (LOG_CRC + 4, 3),
    ] {
        let img = pristine.copy();
        img.flip(off, bit);
        let e = check_unreadable(&img, LOG_CRC, "famfs_log_crc");
        assert!(matches!(e, FormatError::CrcMismatch { .. }), "flip at {off:#x} bit {bit}: {e:?}");
    }
    let (made, _) = made_image();
    made.flip(LOG_LAST_INDEX + 1, 0);
    check_unreadable(&made, LOG_CRC, "famfs_log_crc");
}

// ---------------------------------------------------------------------------------------------
// (d) Log entry bit flips.

#[test]
fn log_entry_bit_flip() {
    let simple = Img::fixture(SIMPLE);
    for (index, rel, bit) in
        [(0, E_MD_RELPATH + 1, 0), (4, E_TYPE, 0), (5, 100, 3), (6, 300, 7), (6, E_CRC, 0), (6, E_CRC + 5, 1)]
    {
        let img = simple.copy();
        img.flip(entry(index) + rel, bit);
        let listing = Listing::fixture(SIMPLE, index as usize, &[]);
        let e = check_bad_entry(&img, index, entry(index) + E_CRC, "famfs_log_entry_crc", &listing);
        assert!(matches!(e, FormatError::CrcMismatch { .. }), "{e:?}");
    }
    let img = Img::fixture(INTERLEAVED);
    img.flip(entry(1) + 140, 4);
    let listing = Listing::fixture(INTERLEAVED, 1, &[]);
    check_bad_entry(&img, 1, entry(1) + E_CRC, "famfs_log_entry_crc", &listing);

    let (made, all) = made_image();
    made.flip(entry(2) + E_FM_RELPATH, 0);
    check_bad_entry(&made, 2, entry(2) + E_CRC, "famfs_log_entry_crc", &made_prefix(&all, 2));
}

// ---------------------------------------------------------------------------------------------
// (e), (f) Wrong magic numbers.

#[test]
fn wrong_superblock_magic() {
    let pristine = Img::fixture(SIMPLE);
    // mkfs -k zeroes it; 0x87b282fe / 0x87b282fd are the statfs magics; upper bits must be 0.
    for (v, recrc) in [(0, false), (0x87b2_82fe, false), (0x87b2_82fd, true), (0x1_87b2_82ff, true), (u64::MAX, false)]
    {
        let img = pristine.copy();
        img.put_u64(SB_MAGIC, v);
        if recrc {
            img.fix_sb_crc();
        }
        let e = check_unreadable(&img, SB_MAGIC, "ts_magic");
        assert!(matches!(e, FormatError::BadMagic { found, .. } if found == v), "{e:?}");
    }
}

#[test]
fn wrong_log_magic() {
    let pristine = Img::fixture(SIMPLE);
    for v in [0, LOG_MAGIC_VALUE ^ 1, LOG_MAGIC_VALUE | 1 << 63, 0x87b2_82ff] {
        let img = pristine.copy();
        img.put_u64(LOG, v);
        let e = check_unreadable(&img, LOG, "famfs_log_magic");
        assert!(matches!(e, FormatError::BadMagic { found, .. } if found == v), "{e:?}");
    }
    let (made, _) = made_image();
    made.flip(LOG + 2, 5);
    check_unreadable(&made, LOG, "famfs_log_magic");
}

// ---------------------------------------------------------------------------------------------
// (g) Versions.

#[test]
fn unsupported_versions() {
    let pristine = Img::fixture(SIMPLE);
    for (version, omf_major) in [(46, 2), (49, 2), (47, 1), (0, 2), (u64::MAX, 2)] {
        let img = pristine.copy();
        img.put_u64(SB_VERSION, version);
        img.put_u32(SB_OMF_MAJOR, omf_major);
        img.fix_sb_crc();
        let e = check_unreadable(&img, SB_VERSION, "ts_version");
        assert!(
            matches!(e, FormatError::UnsupportedVersion { version: v, omf_major: m, .. } if v == version && m == omf_major),
            "{e:?}"
        );
        assert!(e.to_string().contains(&version.to_string()), "{e}");
    }
    // Version 47 with OMF 2 is the previous generation of the same layout: it opens.
    let img = pristine.copy();
    img.put_u64(SB_VERSION, 47);
    img.put_u32(SB_OMF_MINOR, 1);
    img.fix_sb_crc();
    let fs = check_clean(&img, &Listing::fixture(SIMPLE, 7, &[]));
    assert_eq!((fs.superblock().version, fs.superblock().omf_major, fs.superblock().omf_minor), (47, 2, 1));
    let v47 = Img::fixture(V47);
    let fs = check_clean(&v47, &Listing::fixture(V47, 7, &[]));
    assert_eq!(fs.superblock().version, 47);
}

// ---------------------------------------------------------------------------------------------
// (h) Log length.

#[test]
fn log_length_not_a_power_of_two() {
    let pristine = Img::fixture(SIMPLE);
    for v in [10 * MIB, 12 * MIB, DEFAULT_LOG_LEN + 1, DEFAULT_LOG_LEN - 1, 0, u64::MAX] {
        let img = pristine.copy();
        img.put_u64(SB_LOG_LEN, v);
        img.fix_sb_crc();
        let e = check_unreadable(&img, SB_LOG_LEN, "ts_log_len");
        assert!(matches!(e, FormatError::InvalidField { value, .. } if value == v), "{e:?}");
    }
    let (made, _) = made_image();
    made.put_u64(SB_LOG_LEN, 24 * MIB);
    made.fix_sb_crc();
    check_unreadable(&made, SB_LOG_LEN, "ts_log_len");
}

// ---------------------------------------------------------------------------------------------
// (i) Extents beyond the device.

#[test]
fn extent_beyond_the_device() {
    let pristine = Img::fixture(SIMPLE);
    // hello.txt is entry 4, one 2 MiB extent at 0xa00000 on a 24 MiB (0x1800000) device.
    for (offset, len) in
        [(0x180_0000, 0x20_0000), (0x160_0000, 0x40_0000), (0xa0_0000, 0x1000_0000), (0xffff_ffff_ffe0_0000, 0x20_0000)]
    {
        let img = pristine.copy();
        img.put_u64(entry(4) + E_SE0_OFFSET, offset);
        img.put_u64(entry(4) + E_SE0_LEN, len);
        img.fix_entry_crc(4);
        check_bad_map(&img, 4, "hello.txt", &Listing::fixture(SIMPLE, 7, &["hello.txt"]));
    }
    // The interleaved file's second strip (0x1800000) moved to the end of the 32 MiB device.
    let img = Img::fixture(INTERLEAVED);
    img.put_u64(entry(1) + E_IE_STRIP1_OFFSET, 0x200_0000);
    img.fix_entry_crc(1);
    check_bad_map(&img, 1, "striped/big.bin", &Listing::fixture(INTERLEAVED, 3, &["striped/big.bin"]));
}

// ---------------------------------------------------------------------------------------------
// (j) Paths without NUL.

#[test]
fn path_without_nul() {
    let pristine = Img::fixture(SIMPLE);
    let img = pristine.copy();
    img.write(entry(5) + E_FM_RELPATH, &[b'a'; PATH_FIELD]);
    img.fix_entry_crc(5);
    let e = check_bad_entry(&img, 5, entry(5) + E_FM_RELPATH, "fm_relpath", &Listing::fixture(SIMPLE, 5, &[]));
    assert!(matches!(e, FormatError::PathNotTerminated { len: 80, .. }), "{e:?}");
    // The same for a MKDIR entry's md_relpath at +28.
    let img = pristine.copy();
    img.write(entry(1) + E_MD_RELPATH, &[b'/'; PATH_FIELD]);
    img.fix_entry_crc(1);
    let e = check_bad_entry(&img, 1, entry(1) + E_MD_RELPATH, "md_relpath", &Listing::fixture(SIMPLE, 1, &[]));
    assert!(matches!(e, FormatError::PathNotTerminated { len: 80, .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// (k) Too many extents.

#[test]
fn too_many_extents() {
    let pristine = Img::fixture(SIMPLE);
    for n in [17, u32::MAX] {
        let img = pristine.copy();
        img.put_u32(entry(6) + E_FMAP_NEXTENTS, n);
        img.fix_entry_crc(6);
        let e =
            check_bad_entry(&img, 6, entry(6) + E_FMAP_NEXTENTS, "fmap_nextents", &Listing::fixture(SIMPLE, 6, &[]));
        assert!(matches!(e, FormatError::InvalidField { value, .. } if value == u64::from(n)), "{e:?}");
    }
    let (made, all) = made_image();
    made.put_u32(entry(1) + E_FMAP_NEXTENTS, 17);
    made.fix_entry_crc(1);
    check_bad_entry(&made, 1, entry(1) + E_FMAP_NEXTENTS, "fmap_nextents", &made_prefix(&all, 1));
}

// ---------------------------------------------------------------------------------------------
// (l) Sequence number differs from the index.

#[test]
fn seqnum_differs_from_index() {
    let pristine = Img::fixture(SIMPLE);
    for (index, seqnum) in [(0, 1), (3, 4), (3, 2), (6, u64::MAX)] {
        let img = pristine.copy();
        img.put_u64(entry(index) + E_SEQNUM, seqnum);
        img.fix_entry_crc(index);
        let e = check_bad_entry(
            &img,
            index,
            entry(index) + E_SEQNUM,
            "famfs_log_entry_seqnum",
            &Listing::fixture(SIMPLE, index as usize, &[]),
        );
        assert!(matches!(e, FormatError::InvalidField { value, .. } if value == seqnum), "{e:?}");
    }
    let (made, all) = made_image();
    made.put_u64(entry(2) + E_SEQNUM, 0);
    made.fix_entry_crc(2);
    check_bad_entry(&made, 2, entry(2) + E_SEQNUM, "famfs_log_entry_seqnum", &made_prefix(&all, 2));
}

/// The helpers find real corruption and nothing else: an untouched fixture is clean.
#[test]
fn untouched_images_are_clean() {
    check_clean(&Img::fixture(SIMPLE), &Listing::fixture(SIMPLE, 7, &[]));
    check_clean(&Img::fixture(INTERLEAVED), &Listing::fixture(INTERLEAVED, 3, &[]));
    let (made, all) = made_image();
    check_clean(&made, &all);
}
