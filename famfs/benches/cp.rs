//! `famfsctl cp` of one large file into a fresh famfs image against coreutils `cp` + fsync
//! of the same file, both writing to the same file system the source is on.
//!
//! `cargo bench -p famfs --bench cp` copies `FAMFS_BENCH_SIZE` bytes (default 1G) in a
//! temporary directory under the target dir (or under `FAMFS_BENCH_DIR`), alternating the two
//! tools `FAMFS_BENCH_REPS` times (default 3), and prints a markdown table of the medians.
//! Run without `--bench` (e.g. `cargo test --benches`) it does a quick 8 MiB smoke run.
//!
//! Both sides are charged for durability: famfsctl flushes the file data before logging it, so
//! the baseline fsyncs its copy before the clock stops. mkfs of each fresh image is not timed.

use famfs::units::{format_size, parse_size};
use famfs::{Famfs, MkfsOptions, SystemIdentity};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The master identity of the benchmark's images; famfsctl gets it through the environment.
const MASTER_UUID: &str = "0be1c4b5-6a0e-4e39-9d1f-4f5a8c0c1a2b";
const ALLOC_UNIT: u64 = 2 << 20;
const CHUNK: usize = 8 << 20;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench cp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // cargo bench passes --bench; anything else (cargo test --benches) only checks it works.
    let benching = std::env::args().any(|a| a == "--bench");
    let size = match std::env::var("FAMFS_BENCH_SIZE") {
        Ok(s) => parse_size(&s).map_err(|e| format!("FAMFS_BENCH_SIZE: {e}"))?,
        Err(_) if benching => 1 << 30,
        Err(_) => 8 << 20,
    };
    if size == 0 {
        return Err("FAMFS_BENCH_SIZE must be at least one byte".into());
    }
    let reps: usize = match std::env::var("FAMFS_BENCH_REPS") {
        Ok(s) => {
            s.trim().parse().ok().filter(|&n| n > 0).ok_or(format!("FAMFS_BENCH_REPS={s} is not a positive number"))?
        }
        Err(_) if benching => 3,
        Err(_) => 1,
    };
    let famfsctl = famfsctl_binary()?;
    let image_size = (size + (64 << 20)).div_ceil(ALLOC_UNIT) * ALLOC_UNIT;
    // At any time: the source, and either the cp copy or the image (each is removed after
    // its measurement), plus some slack for the file system's own metadata.
    let needed = size + image_size + (size / 20).max(64 << 20);
    let work = work_dir(needed)?;
    let dir = work.path();
    let src = dir.join("source.bin");
    let copy = dir.join("copy.bin");
    let img = dir.join("bench.img");
    println!(
        "famfsctl cp vs cp + fsync: {} ({size} bytes), {reps} alternating runs each, in {} ({})",
        format_size(size),
        dir.display(),
        fs_type(dir)
    );
    write_source(&src, size)?;

    let identity = SystemIdentity::from_uuid(MASTER_UUID.parse().expect("static UUID"));
    let mut base_times = Vec::new();
    let mut famfs_times = Vec::new();
    for rep in 1..=reps {
        base_times.push(time_cp(&src, &copy, size)?);
        std::fs::remove_file(&copy).map_err(|e| format!("remove {}: {e}", copy.display()))?;

        // A fresh image each time so every run allocates from an empty file system.
        famfs::mkfs(&img, &MkfsOptions { size: Some(image_size), ..Default::default() }, &identity)
            .map_err(|e| format!("mkfs {}: {e}", img.display()))?;
        famfs_times.push(time_famfsctl(&famfsctl, &src, &img)?);
        verify(&img, &src, size)?;
        std::fs::remove_file(&img).map_err(|e| format!("remove {}: {e}", img.display()))?;
        eprintln!(
            "run {rep}/{reps}: cp + fsync {:.3} s, famfsctl cp {:.3} s",
            base_times[rep - 1].as_secs_f64(),
            famfs_times[rep - 1].as_secs_f64()
        );
    }
    println!("verified: every famfs copy read back through famfs::Famfs equals the source");
    print_table(size, &base_times, &famfs_times);
    drop(work);
    Ok(())
}

/// The famfsctl cargo built for this bench (same profile), else the one beside the bench's
/// own deps directory.
fn famfsctl_binary() -> Result<PathBuf, String> {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_famfsctl"));
    if built.is_file() {
        return Ok(built);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench executable: {e}"))?;
    if let Some(p) = exe.parent().and_then(Path::parent).map(|d| d.join("famfsctl"))
        && p.is_file()
    {
        return Ok(p);
    }
    Err(format!(
        "the famfsctl binary is missing (looked at {}); build it with `cargo build --release -p famfs --bin famfsctl`",
        built.display()
    ))
}

/// A temporary directory with `needed` bytes free: under `FAMFS_BENCH_DIR` if set, else under
/// the target dir, else under the system temp dir.
fn work_dir(needed: u64) -> Result<tempfile::TempDir, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("FAMFS_BENCH_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")), std::env::temp_dir()],
    };
    let mut refused = Vec::new();
    for c in &candidates {
        if let Err(e) = std::fs::create_dir_all(c) {
            refused.push(format!("{}: {e}", c.display()));
            continue;
        }
        match rustix::fs::statvfs(c) {
            Ok(st) if st.f_bavail * st.f_frsize >= needed => {
                return tempfile::Builder::new()
                    .prefix("famfs-bench-")
                    .tempdir_in(c)
                    .map_err(|e| format!("cannot make a directory in {}: {e}", c.display()));
            }
            Ok(st) => refused.push(format!("{} has {} free", c.display(), format_size(st.f_bavail * st.f_frsize))),
            Err(e) => refused.push(format!("{}: {e}", c.display())),
        }
    }
    Err(format!(
        "no work directory with {} free ({}); set FAMFS_BENCH_DIR or a smaller FAMFS_BENCH_SIZE",
        format_size(needed),
        refused.join("; ")
    ))
}

fn fs_type(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "file system type unknown".into())
}

/// Pseudo-random bytes, so neither tool can gain from zero detection or holes. Flushed, so
/// the first measured run does not also pay for writing the source back.
fn write_source(path: &Path, size: u64) -> Result<(), String> {
    let err = |e: std::io::Error| format!("write {}: {e}", path.display());
    let mut f = File::create(path).map_err(err)?;
    let mut rng = fastrand::Rng::with_seed(0x00fa_3f50);
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).map_err(err)?;
        left -= n as u64;
    }
    f.sync_all().map_err(err)
}

/// coreutils cp, then fsync of the copy.
fn time_cp(src: &Path, copy: &Path, size: u64) -> Result<Duration, String> {
    let t = Instant::now();
    let out = Command::new("cp").arg(src).arg(copy).output().map_err(|e| format!("cannot run cp: {e}"))?;
    if !out.status.success() {
        return Err(format!("cp failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    File::open(copy).and_then(|f| f.sync_all()).map_err(|e| format!("fsync {}: {e}", copy.display()))?;
    let took = t.elapsed();
    let len = std::fs::metadata(copy).map_err(|e| format!("stat {}: {e}", copy.display()))?.len();
    if len != size {
        return Err(format!("cp made a {len}-byte copy of a {size}-byte file"));
    }
    Ok(took)
}

fn time_famfsctl(famfsctl: &Path, src: &Path, img: &Path) -> Result<Duration, String> {
    let t = Instant::now();
    let out = Command::new(famfsctl)
        .env_remove("FAMFS_DEVICE")
        .env("FAMFS_SYSTEM_UUID", MASTER_UUID)
        .arg("-q")
        .arg("-d")
        .arg(img)
        .arg("cp")
        .arg(src)
        .arg("/file")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", famfsctl.display()))?;
    let took = t.elapsed();
    if !out.status.success() {
        return Err(format!("famfsctl cp failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(took)
}

/// Reads the famfs copy back through the library and compares it with the source, chunk by
/// chunk.
fn verify(img: &Path, src: &Path, size: u64) -> Result<(), String> {
    let fs = Famfs::open(img).map_err(|e| format!("open {}: {e}", img.display()))?;
    let file = fs.namespace().file("file").map_err(|e| format!("{}: {e}", img.display()))?;
    if file.size != size {
        return Err(format!("the famfs copy holds {} bytes, the source {size}", file.size));
    }
    let source = File::open(src).map_err(|e| format!("open {}: {e}", src.display()))?;
    let mut reader = fs.reader(file);
    let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(CHUNK as u64) as usize;
        reader.read_exact(&mut a[..n]).map_err(|e| format!("read the famfs copy at {off}: {e}"))?;
        source.read_exact_at(&mut b[..n], off).map_err(|e| format!("read {} at {off}: {e}", src.display()))?;
        if a[..n] != b[..n] {
            let at = off + a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y).unwrap_or(0) as u64;
            return Err(format!("the famfs copy differs from the source at byte {at}"));
        }
        off += n as u64;
    }
    Ok(())
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t[t.len() / 2]
}

fn print_table(size: u64, base: &[Duration], famfs: &[Duration]) {
    let runs = |t: &[Duration]| t.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>().join(", ");
    let gbs = |d: Duration| size as f64 / 1e9 / d.as_secs_f64();
    let (mb, mf) = (median(base), median(famfs));
    println!();
    println!("| copy of {} | runs (s) | median (s) | GB/s | time vs cp |", format_size(size));
    println!("|---|---|---|---|---|");
    println!("| cp + fsync | {} | {:.3} | {:.2} | 1.00 |", runs(base), mb.as_secs_f64(), gbs(mb));
    println!(
        "| famfsctl cp | {} | {:.3} | {:.2} | {:.2} |",
        runs(famfs),
        mf.as_secs_f64(),
        gbs(mf),
        mf.as_secs_f64() / mb.as_secs_f64()
    );
    println!();
    println!("famfsctl/cp time ratio (medians): {:.2}", mf.as_secs_f64() / mb.as_secs_f64());
}
