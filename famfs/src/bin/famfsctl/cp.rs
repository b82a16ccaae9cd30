//! `famfsctl cp`: copy files and directory trees into a famfs. Each file is its own crash-safe
//! transaction (data, then entry, then header), so an interrupted copy leaves every file it
//! finished and nothing of the one in progress.

use crate::Global;
use crate::modes::{Owner, identity, parse_mode, parse_size};
use anyhow::{Context, Result, bail};
use famfs::alloc::Interleave;
use famfs::{Error, Layout, Lookup, RelPath, Source, Writer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::{File, Metadata};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Copies over this many bytes in total get a progress bar.
const PROGRESS_THRESHOLD: u64 = 64 << 20;

/// `cp [-r] [-m MODE] SRC... DEST`
#[derive(clap::Args)]
pub struct Args {
    /// Copy directories recursively.
    #[arg(short, long)]
    recursive: bool,
    /// Permission bits for new files, octal (default: the source's).
    #[arg(short, long, value_parser = parse_mode)]
    mode: Option<u32>,
    #[command(flatten)]
    owner: Owner,
    /// Interleave each file over this many strips (1-16).
    #[arg(long, value_name = "NSTRIPS")]
    interleave: Option<u64>,
    /// Interleave chunk size (a power of two, multiple of 2M).
    #[arg(long, value_parser = parse_size, default_value = "2M", requires = "interleave")]
    chunk: u64,
    /// Buckets the device is cut into for interleaving (default: the strip count).
    #[arg(long, requires = "interleave")]
    buckets: Option<u64>,
    /// Sources, then the destination in the famfs.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
}

/// One planned copy.
enum Job {
    Dir { dest: RelPath, mode: u32 },
    File { src: PathBuf, dest: RelPath, size: u64, mode: u32 },
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let (dest, sources) = a.paths.split_last().expect("clap requires two paths");
    let dest = dest.to_str().context("the destination must be UTF-8")?;
    let mut w = Writer::open(g.device()?, &identity(false)?)?;
    let layout = match a.interleave {
        None => Layout::Simple,
        Some(n) => {
            Layout::Interleaved(Interleave { nstrips: n, nbuckets: a.buckets.unwrap_or(n), chunk_size: a.chunk })
        }
    };
    let dest_is_dir = matches!(w.fs().namespace().lookup(dest), Ok(Lookup::Dir(_)));
    if !dest_is_dir && dest.ends_with('/') {
        bail!("'{dest}' is not an existing famfs directory (create it with mkdir -p)");
    }
    if sources.len() > 1 && !dest_is_dir {
        bail!(
            "copying several sources needs an existing famfs directory as the destination; '{dest}' is not one (create it with mkdir -p)"
        );
    }
    let mut jobs = Vec::new();
    let mut failed = 0;
    for src in sources {
        if let Err(e) = plan(src, dest, dest_is_dir, &a, &mut jobs) {
            eprintln!("famfsctl: {e:#}");
            failed += 1;
        }
    }
    let total: u64 = jobs.iter().map(|j| if let Job::File { size, .. } = j { *size } else { 0 }).sum();
    let bar = progress_bar(total, g.quiet);
    let mut done_before = 0u64;
    for job in &jobs {
        let r = match job {
            Job::Dir { dest, mode } => w.mkdir_all(dest, a.owner.attrs(*mode)).map(|_| ()),
            Job::File { src, dest, size, mode } => {
                let f = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
                let base = done_before;
                let r = w.create_file(dest, Source::File(&f), *size, a.owner.attrs(*mode), layout, &mut |n| {
                    bar.set_position(base + n)
                });
                done_before += size;
                bar.set_position(done_before);
                r.map(|m| tracing::info!("copied {} to {} ({} bytes)", src.display(), m.path, m.size))
            }
        };
        match r {
            Ok(()) => {}
            // Out of space, a full log or a device failure will fail every later file too.
            Err(e @ (Error::NoSpace { .. } | Error::LogFull { .. } | Error::Device(_) | Error::Interleave(_))) => {
                bar.abandon();
                return Err(e.into());
            }
            Err(e) => {
                eprintln!("famfsctl: {e}");
                failed += 1;
            }
        }
    }
    bar.finish_and_clear();
    Ok(if failed > 0 { 1 } else { 0 })
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || total <= PROGRESS_THRESHOLD {
        return ProgressBar::hidden();
    }
    // indicatif hides a stderr bar by itself when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .expect("static template"),
    );
    bar
}

fn name_of(p: &Path) -> Result<&str> {
    p.file_name().and_then(|n| n.to_str()).with_context(|| format!("{} has no UTF-8 file name", p.display()))
}

/// Plans the copy of one source, following `cp`: into an existing directory as
/// `DEST/name`, otherwise as `DEST` itself.
fn plan(src: &Path, dest: &str, dest_is_dir: bool, a: &Args, jobs: &mut Vec<Job>) -> Result<()> {
    let meta = std::fs::metadata(src).with_context(|| format!("cannot read {}", src.display()))?;
    let target = if dest_is_dir {
        match famfs::path::parse_maybe_root(dest)? {
            None => RelPath::parse(name_of(src)?)?,
            Some(d) => d.join(name_of(src)?)?,
        }
    } else {
        RelPath::parse(dest)?
    };
    if meta.is_dir() {
        if !a.recursive {
            bail!("{} is a directory (use -r to copy it)", src.display());
        }
        plan_tree(src, target, &meta, a, jobs)
    } else {
        plan_file(src, target, &meta, a, jobs)
    }
}

fn plan_file(src: &Path, dest: RelPath, meta: &Metadata, a: &Args, jobs: &mut Vec<Job>) -> Result<()> {
    if !meta.is_file() {
        bail!("{} is not a regular file; only files and directories can be copied", src.display());
    }
    if meta.len() == 0 {
        tracing::warn!("skipping empty file {}: famfs files hold at least one byte", src.display());
        return Ok(());
    }
    let mode = a.mode.unwrap_or(meta.permissions().mode() & 0o777);
    jobs.push(Job::File { src: src.to_path_buf(), dest, size: meta.len(), mode });
    Ok(())
}

fn plan_tree(src: &Path, dest: RelPath, meta: &Metadata, a: &Args, jobs: &mut Vec<Job>) -> Result<()> {
    jobs.push(Job::Dir { dest: dest.clone(), mode: meta.permissions().mode() & 0o777 });
    let mut entries = std::fs::read_dir(src)
        .with_context(|| format!("cannot list {}", src.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot list {}", src.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let child = dest.join(name_of(&path)?)?;
        let lmeta = std::fs::symlink_metadata(&path)?;
        if lmeta.file_type().is_symlink() {
            // Follow links to files; links to directories could loop.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => plan_file(&path, child, &m, a, jobs)?,
                _ => tracing::warn!("skipping symbolic link {}", path.display()),
            }
        } else if lmeta.is_dir() {
            plan_tree(&path, child, &lmeta, a, jobs)?;
        } else {
            plan_file(&path, child, &lmeta, a, jobs)?;
        }
    }
    Ok(())
}
