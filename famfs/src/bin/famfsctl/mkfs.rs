//! `famfsctl mkfs`.

use crate::Global;
use crate::modes::{identity, parse_size};
use anyhow::{Context, Result, bail};
use famfs::{FormatVersion, MkfsOptions, superblock::DEFAULT_LOG_LEN, units::format_size};
use std::path::PathBuf;

/// `mkfs [--size SIZE] [--log-len SIZE] [--format-version 47|48] [--force] DEVICE`
#[derive(clap::Args)]
pub struct Args {
    /// Create or resize an image file to this size (a multiple of 2 MiB, e.g. 4G).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Log length: a power of two of at least 8M.
    #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_LOG_LEN)]
    log_len: u64,
    /// On-media version: 48 (current famfs) or 47 (famfs before 2026-06).
    #[arg(long, default_value_t = 48)]
    format_version: u64,
    /// Overwrite an existing famfs file system.
    #[arg(short, long)]
    force: bool,
    /// Image file or dax device (or use -d).
    target: Option<PathBuf>,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let path = match (&a.target, &g.device) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => bail!("no device given: famfsctl mkfs [--size 4G] IMAGE_OR_DEVICE"),
    };
    let format = FormatVersion::from_number(a.format_version)
        .with_context(|| format!("--format-version {} is not supported; use 48 or 47", a.format_version))?;
    let id = identity(true)?;
    let opts = MkfsOptions { size: a.size, log_len: a.log_len, format, force: a.force };
    let sb = famfs::mkfs(&path, &opts, &id)?;
    if !g.quiet {
        println!(
            "famfs v{} (OMF {}.{}) on {}: {} device, {} log ({} entries), UUID {}, master {}",
            sb.version,
            sb.omf_major,
            sb.omf_minor,
            path.display(),
            format_size(sb.dev_size),
            format_size(sb.log_len),
            famfs::log::slots(sb.log_len),
            sb.fs_uuid,
            sb.system_uuid
        );
    }
    Ok(0)
}
