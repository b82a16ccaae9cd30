//! Crash consistency of `famfsctl cp`: the copy is SIGKILLed at random moments and the image is
//! checked after every kill. The writer's order (data flushed, then the log entry, then the
//! header counters; DESIGN §4) promises that a crash leaves each file either fully there with
//! the right bytes or not there at all, that the log stays valid, and that the single-writer
//! lock dies with the process.
//!
//! SIGKILL loses nothing the process already wrote (the page cache survives it), so this tests
//! the order of the writer's steps and the recovery of the next writer, not power-loss
//! durability. The kill delay is uniform over 0..T with T about 1.2 times an uninterrupted
//! copy, so kills land before the first entry, in the middle of the data, between two files,
//! and after the end. `FAMFS_CRASH_ITERATIONS` sets the number of kills (default 50),
//! `FAMFS_CRASH_SEED` replays one sequence of delays.

mod common;

use common::*;
use famfs::log::{LOG_ENTRY_LEN, entry_offset};
use famfs::namespace::EntryNode;
use famfs::superblock::LOG_OFFSET;
use famfs::{Attrs, Famfs, Layout, LogEntry, Lookup, RelPath, Source, Writer};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const IMAGE_SIZE: u64 = 512 << 20;
const ALLOC_UNIT: u64 = 2 << 20;
/// SIGKILL's number on every Linux architecture.
const SIGKILL: i32 = 9;

/// The source tree: sizes chosen around famfs' 2 MiB allocation unit (one byte short, exact,
/// one byte over), tiny files, files of several MiB so the data phase dominates the run, deep
/// nesting and an empty directory.
const FILES: &[(&str, usize)] = &[
    ("tiny.txt", 1),
    ("hello.txt", 13),
    ("page-minus-1.bin", 4095),
    ("page.bin", 4096),
    ("odd.bin", 123_457),
    ("almost-2m.bin", 2 * MIB - 1),
    ("exact-2m.bin", 2 * MIB),
    ("over-2m.bin", 2 * MIB + 1),
    ("big/three.bin", 3 * MIB + 7),
    ("big/six.bin", 6 * MIB),
    ("big/nine.bin", 9 * MIB + 4097),
    ("nested/a/b/c/leaf.txt", 42),
    ("nested/a/b/one-m.bin", MIB),
    ("nested/a/side.bin", 777_777),
    ("nested/z.bin", 4 * MIB + 3),
    ("logs/0.log", 1000),
    ("logs/1.log", 20_001),
    ("logs/2.log", 300_002),
    ("logs/3.log", 65_536),
    ("logs/4.log", 5),
];
const EMPTY_DIRS: &[&str] = &["empty-dir"];

/// The source tree as the test knows it.
struct SourceTree {
    root: PathBuf,
    /// Relative path -> contents.
    files: BTreeMap<String, Vec<u8>>,
    /// Relative directory paths; "" is the copied directory itself.
    dirs: BTreeSet<String>,
    /// Every directory and file in the order `famfsctl cp -r` logs them: depth first, each
    /// directory before its entries, entries sorted by name.
    order: Vec<String>,
}

impl SourceTree {
    fn create(root: &Path) -> SourceTree {
        std::fs::create_dir_all(root).unwrap();
        let mut files = BTreeMap::new();
        for (i, (rel, len)) in FILES.iter().enumerate() {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Distinct seeds so a file showing another file's bytes (a swapped or reused
            // extent) cannot pass for correct.
            let bytes = pattern(*len, 1000 + i as u64);
            std::fs::write(&p, &bytes).unwrap();
            files.insert(rel.to_string(), bytes);
        }
        for d in EMPTY_DIRS {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut dirs = BTreeSet::new();
        let mut order = Vec::new();
        walk_source(root, "", &mut dirs, &mut order);
        assert_eq!(order.len(), files.len() + dirs.len(), "the walk found every file and directory");
        SourceTree { root: root.to_path_buf(), files, dirs, order }
    }

    /// Log entries one complete copy appends.
    fn entries(&self) -> u64 {
        self.order.len() as u64
    }

    /// Bytes one complete copy allocates.
    fn allocation(&self) -> u64 {
        self.files.values().map(|b| (b.len() as u64).div_ceil(ALLOC_UNIT) * ALLOC_UNIT).sum()
    }
}

fn walk_source(dir: &Path, rel: &str, dirs: &mut BTreeSet<String>, order: &mut Vec<String>) {
    dirs.insert(rel.to_string());
    order.push(rel.to_string());
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().into_string().unwrap();
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if e.file_type().unwrap().is_dir() {
            walk_source(&e.path(), &child, dirs, order);
        } else {
            order.push(child);
        }
    }
}

/// What a run left visible in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Visible {
    /// Whether the run's top directory exists.
    started: bool,
    files: usize,
    dirs: usize,
}

/// Checks everything under `/<run>` against the source and returns what is there. Panics on
/// a partial or wrong file, an unknown name, or a hole in the copy order.
fn verify_run(fs: &Famfs, run: &str, src: &SourceTree) -> Visible {
    match fs.namespace().lookup(run) {
        Err(_) => {
            return Visible { started: false, files: 0, dirs: 0 };
        }
        Ok(Lookup::File(f)) => panic!("/{run} is a file of {} bytes; cp makes it a directory", f.size),
        Ok(Lookup::Dir(_)) => {}
    }
    let mut seen = BTreeSet::new();
    seen.insert(String::new());
    verify_dir(fs, run, "", src, &mut seen);
    // The log is append-only and cp appends in a fixed order, so what survives a crash must be
    // the first k entries of that order. A hole would mean a committed entry was lost or a
    // later entry became visible without an earlier one.
    let prefix: BTreeSet<String> = src.order[..seen.len()].iter().cloned().collect();
    assert_eq!(seen, prefix, "/{run}: the visible names are not a prefix of the copy order");
    let files = seen.iter().filter(|p| src.files.contains_key(*p)).count();
    Visible { started: true, files, dirs: seen.len() - files }
}

fn verify_dir(fs: &Famfs, run: &str, rel: &str, src: &SourceTree, seen: &mut BTreeSet<String>) {
    let here = if rel.is_empty() { run.to_string() } else { format!("{run}/{rel}") };
    for entry in fs.namespace().read_dir(&here).unwrap() {
        let child = if rel.is_empty() { entry.name.to_string() } else { format!("{rel}/{}", entry.name) };
        match entry.node {
            EntryNode::Dir(_) => {
                assert!(src.dirs.contains(&child), "/{run}/{child} is a directory with no source directory");
                seen.insert(child.clone());
                verify_dir(fs, run, &child, src, seen);
            }
            EntryNode::File(meta) => {
                let want =
                    src.files.get(&child).unwrap_or_else(|| panic!("/{run}/{child} is a file with no source file"));
                assert_eq!(meta.size, want.len() as u64, "/{run}/{child}: size differs from the source");
                let got = fs.read_to_vec(meta).unwrap();
                if got != *want {
                    let at = got.iter().zip(want.iter()).position(|(a, b)| a != b);
                    panic!("/{run}/{child}: bytes differ from the source (first difference at offset {at:?})");
                }
                seen.insert(child);
            }
        }
    }
}

/// Runs fsck and fails with its problems listed.
fn assert_fsck_clean(img: &Path, when: &str) {
    let report = famfs::fsck::fsck_path(img, None);
    if report.exit_code() != 0 || !report.problems.is_empty() {
        let problems: Vec<String> = report.problems.iter().map(|p| format!("  {}: {}", p.kind, p.message)).collect();
        panic!(
            "fsck {when}: exit {}, unreadable: {:?}, problems:\n{}",
            report.exit_code(),
            report.unreadable,
            problems.join("\n")
        );
    }
}

fn spawn_cp(img: &Path, src: &Path, dest: &str, stderr: &Path) -> Child {
    famfsctl()
        .arg("-d")
        .arg(img)
        .arg("cp")
        .arg("-r")
        .arg(src)
        .arg(dest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Kept in a file rather than nulled so an unexpected cp failure can be explained.
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("spawn famfsctl")
}

/// An uninterrupted copy to `/<run>`; returns its duration.
fn full_copy(img: &Path, src: &SourceTree, run: &str, stderr: &Path) -> Duration {
    let t = Instant::now();
    let status = spawn_cp(img, &src.root, &format!("/{run}"), stderr).wait().unwrap();
    let took = t.elapsed();
    assert!(
        status.success(),
        "uninterrupted cp to /{run}: {status}; stderr: {}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
    assert_fsck_clean(img, &format!("after the uninterrupted copy to /{run}"));
    let v = verify_run(&Famfs::open(img).unwrap(), run, src);
    assert_eq!((v.files, v.dirs), (src.files.len(), src.dirs.len()), "an uninterrupted copy to /{run} is complete");
    took
}

/// Whether the log slot the header would hand out next holds a valid entry of this run: the
/// kill landed after an entry was flushed but before the header counted it.
fn entry_past_header(fs: &Famfs, run: &str) -> bool {
    let index = fs.log_header().next_index;
    if fs.log_header().is_full() {
        return false;
    }
    let mut buf = vec![0u8; LOG_ENTRY_LEN];
    if fs.device().read_exact_at(&mut buf, entry_offset(index)).is_err() {
        return false;
    }
    match LogEntry::decode(&buf, index) {
        Ok(e) => {
            e.seqnum == fs.log_header().next_seqnum
                && e.path().is_some_and(|p| p == run || p.starts_with(&format!("{run}/")))
        }
        Err(_) => false,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

#[derive(Default)]
struct Tally {
    not_started: usize,
    dirs_only: usize,
    some: usize,
    all: usize,
    finished_before_kill: usize,
    entry_past_header: usize,
    rotations: usize,
}

#[test]
fn killed_copies_leave_whole_files_or_nothing() {
    let iterations = env_u64("FAMFS_CRASH_ITERATIONS").unwrap_or(50) as usize;
    assert!(iterations > 0, "FAMFS_CRASH_ITERATIONS must be at least 1");
    let seed = env_u64("FAMFS_CRASH_SEED").unwrap_or_else(|| fastrand::u64(..));
    println!("crash test: {iterations} kills, FAMFS_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let dir = scratch();
    let src = SourceTree::create(&dir.path().join("src"));
    let stderr = dir.path().join("cp.stderr");
    let img_name = "crash.img";
    let mut img = new_image(dir.path(), img_name, IMAGE_SIZE);
    // Runs on the current image and what each left visible, re-checked at the end.
    let mut on_image: Vec<(String, Visible)> = Vec::new();
    let complete = Visible { started: true, files: src.files.len(), dirs: src.dirs.len() };

    // Calibration: the median of three uninterrupted copies (the first may pay for a cold
    // page cache). They double as the check that a copy nobody kills is complete.
    let mut runs: Vec<Duration> = (0..3)
        .map(|i| {
            let run = format!("calib{i}");
            let took = full_copy(&img, &src, &run, &stderr);
            on_image.push((run, complete.clone()));
            took
        })
        .collect();
    runs.sort();
    let uninterrupted = runs[1];
    let mut t_max = uninterrupted.mul_f64(1.2);
    let t_initial = t_max;
    println!(
        "uninterrupted copy of {} files ({} bytes): {:?} (median of {:?}); kill delay uniform over 0..{:?}",
        src.files.len(),
        src.files.values().map(|b| b.len()).sum::<usize>(),
        uninterrupted,
        runs,
        t_max
    );

    let need = src.allocation();
    let mut tally = Tally::default();
    let mut recent: Vec<u8> = Vec::new(); // 0 nothing, 1 some, 2 all: to notice degenerate runs
    let started = Instant::now();
    for n in 0..iterations {
        // Keep room for this copy and for the final uninterrupted one; otherwise start over on
        // a fresh image (the old one's pages are freed so /dev/shm does not fill).
        {
            let w = Writer::open(&img, &master()).expect("writer opens between kills");
            let free = w.allocator().bitmap().largest_free() * w.allocator().bitmap().unit();
            let slots = w.fs().log_header().free_slots();
            if free < 2 * need || slots < 2 * src.entries() {
                drop(w);
                std::fs::remove_file(&img).unwrap();
                img = new_image(dir.path(), img_name, IMAGE_SIZE);
                on_image.clear();
                tally.rotations += 1;
            }
        }

        let run = format!("run{n}");
        let delay = t_max.mul_f64(rng.f64());
        let mut child = spawn_cp(&img, &src.root, &format!("/{run}"), &stderr);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL famfsctl (a zombie accepts it too)");
        let status = child.wait().unwrap();
        let killed = status.signal() == Some(SIGKILL);
        assert!(
            killed || status.success(),
            "cp to /{run} failed on its own ({status}) before the kill: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );

        assert_fsck_clean(&img, &format!("after killing the copy to /{run} at {delay:?}"));
        let fs = Famfs::open(&img).expect("open after a kill");
        assert!(fs.replay_report().rejected.is_empty(), "replay skipped entries: {:?}", fs.replay_report().rejected);
        assert!(fs.replay_report().stopped.is_none(), "replay stopped: {:?}", fs.replay_report().stopped);
        let v = verify_run(&fs, &run, &src);
        // Only names this test created may be at the root.
        let known: BTreeSet<&str> = on_image.iter().map(|(r, _)| r.as_str()).chain([run.as_str()]).collect();
        for e in fs.namespace().read_dir("/").unwrap() {
            assert!(known.contains(e.name), "unexpected /{} at the root after killing /{run}", e.name);
        }
        if entry_past_header(&fs, &run) {
            tally.entry_past_header += 1;
        }
        drop(fs);
        // The lock died with the process, and the log is fit for the next writer.
        drop(Writer::open(&img, &master()).expect("the next writer opens the image after the kill"));

        if !killed {
            tally.finished_before_kill += 1;
            assert_eq!(v, complete, "cp to /{run} exited 0 before the kill, so every file must be there");
        }
        let class = match (v.started, v.files) {
            (false, _) => {
                tally.not_started += 1;
                0
            }
            (true, 0) => {
                tally.dirs_only += 1;
                0
            }
            (true, f) if f == src.files.len() => {
                tally.all += 1;
                2
            }
            _ => {
                tally.some += 1;
                1
            }
        };
        on_image.push((run, v));
        // A badly calibrated T (a noisy machine, a cold first run) would put every kill on one
        // side of the copy. After five kills in a row all landing before the first file or all
        // after the last one, move T towards the middle.
        recent.push(class);
        if recent.len() >= 5 {
            let last = &recent[recent.len() - 5..];
            if last.iter().all(|&c| c == 2) {
                t_max = t_max.mul_f64(0.7).max(Duration::from_micros(200));
                recent.clear();
            } else if last.iter().all(|&c| c == 0) {
                t_max = t_max.mul_f64(1.5).min(uninterrupted * 20);
                recent.clear();
            }
        }
    }
    let loop_time = started.elapsed();

    // The image that took the kills still takes an ordinary copy, and earlier runs are intact.
    full_copy(&img, &src, "final", &stderr);
    let fs = Famfs::open(&img).unwrap();
    for (run, v) in &on_image {
        assert_eq!(&verify_run(&fs, run, &src), v, "/{run} changed after later copies");
    }
    assert_fsck_clean(&img, "at the end");

    println!(
        "kills: {iterations} in {loop_time:?}; nothing visible {} (no directory {}, directories only {}), some files {}, all files {} \
         (of which cp had finished before the kill {}); entry flushed but header not yet {}; images made {}; T {:?} -> {:?}",
        tally.not_started + tally.dirs_only,
        tally.not_started,
        tally.dirs_only,
        tally.some,
        tally.all,
        tally.finished_before_kill,
        tally.entry_past_header,
        tally.rotations + 1,
        t_initial,
        t_max
    );
    if iterations >= 20 {
        // The kills must have been spread over the copy, or the checks above proved little.
        assert!(tally.all < iterations, "every kill landed after the copy finished");
        assert!(tally.not_started + tally.dirs_only < iterations, "every kill landed before the first file");
        assert!(tally.some > 0, "no kill landed in the middle of the copy");
    } else {
        println!("(fewer than 20 kills: the spread of kill points is not checked)");
    }
}

/// The states a crash can leave between the writer's steps, made directly: SIGKILL rarely lands
/// in the microseconds between an entry's flush and the header's, so the random kills above
/// cannot be relied on to reach them.
#[derive(Clone, Copy, Debug)]
enum Torn {
    /// File data written, entry never written.
    DataOnly,
    /// Data written, entry written halfway.
    HalfEntry,
    /// Data and the whole entry (valid CRC) flushed, header counters not updated.
    WholeEntry,
}

#[test]
fn a_crash_between_the_writer_steps_leaves_the_file_invisible_and_its_slot_and_space_reusable() {
    let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
    let path = |p: &str| RelPath::parse(p).unwrap();
    let keep = pattern(5000, 1);
    let lost = pattern(3 * MIB + 5, 2);
    let next = pattern(2 * MIB + 1, 3);
    for torn in [Torn::DataOnly, Torn::HalfEntry, Torn::WholeEntry] {
        let dir = scratch();
        let img = new_image(dir.path(), "torn.img", 64 << 20);
        let mut w = Writer::open(&img, &master()).unwrap();
        w.create_file(&path("keep"), Source::Bytes(&keep), keep.len() as u64, attrs, Layout::Simple, &mut |_| {})
            .unwrap();
        let header_before = *w.fs().log_header();
        let lost_meta = w
            .create_file(&path("lost"), Source::Bytes(&lost), lost.len() as u64, attrs, Layout::Simple, &mut |_| {})
            .unwrap();
        drop(w);

        // Roll the log back to what a crash at that step leaves: the header as it was before
        // `lost` was counted, and the entry slot as far as it got. The data stays written.
        let slot = entry_offset(lost_meta.entry_index);
        let image = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        let mut entry = vec![0u8; LOG_ENTRY_LEN];
        Famfs::open(&img).unwrap().device().read_exact_at(&mut entry, slot).unwrap();
        match torn {
            Torn::DataOnly => entry.fill(0),
            Torn::HalfEntry => entry[LOG_ENTRY_LEN / 2..].fill(0),
            Torn::WholeEntry => {}
        }
        image.write_all_at(&entry, slot).unwrap();
        image.write_all_at(&header_before.encode(), LOG_OFFSET).unwrap();
        drop(image);

        assert_fsck_clean(&img, &format!("{torn:?}"));
        let fs = Famfs::open(&img).unwrap();
        assert!(fs.namespace().lookup("lost").is_err(), "{torn:?}: an uncounted file is visible");
        assert_eq!(fs.read_to_vec(fs.namespace().file("keep").unwrap()).unwrap(), keep, "{torn:?}");
        assert_eq!(
            entry_past_header(&fs, "lost"),
            matches!(torn, Torn::WholeEntry),
            "{torn:?}: the state was made as intended"
        );
        let allocated_before = famfs::fsck::fsck_path(&img, None).stats.allocated_bytes;
        drop(fs);

        // The next writer takes the same slot and the space nothing counts any more.
        let mut w = Writer::open(&img, &master()).unwrap_or_else(|e| panic!("{torn:?}: the next writer: {e}"));
        let m = w
            .create_file(&path("next"), Source::Bytes(&next), next.len() as u64, attrs, Layout::Simple, &mut |_| {})
            .unwrap();
        assert_eq!(m.entry_index, lost_meta.entry_index, "{torn:?}: the uncounted slot is reused");
        drop(w);
        assert_fsck_clean(&img, &format!("{torn:?}, after the next write"));
        let report = famfs::fsck::fsck_path(&img, None);
        assert_eq!(report.stats.files, 2, "{torn:?}");
        assert_eq!(
            report.stats.allocated_bytes,
            allocated_before + (next.len() as u64).div_ceil(ALLOC_UNIT) * ALLOC_UNIT,
            "{torn:?}: the lost file's space must not stay allocated"
        );
        let fs = Famfs::open(&img).unwrap();
        assert!(fs.namespace().lookup("lost").is_err(), "{torn:?}");
        assert_eq!(fs.read_to_vec(fs.namespace().file("keep").unwrap()).unwrap(), keep, "{torn:?}");
        assert_eq!(fs.read_to_vec(fs.namespace().file("next").unwrap()).unwrap(), next, "{torn:?}");
    }
}
