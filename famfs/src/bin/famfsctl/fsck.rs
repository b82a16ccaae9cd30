//! `famfsctl fsck`: exit 0 clean, 1 problems, 2 unreadable.

use crate::Global;
use anyhow::Result;
use famfs::units::format_size;
use std::io::Write;

/// `fsck [--json]`
#[derive(clap::Args)]
pub struct Args {
    /// JSON report.
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let id = famfs::SystemIdentity::from_env(false).ok();
    let r = famfs::fsck::fsck_path(g.device()?, id.as_ref());
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["exit_code"] = r.exit_code().into();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(r.exit_code());
    }
    writeln!(out, "famfs fsck of {} ({} bytes)", r.device, r.device_size)?;
    if let Some(sb) = &r.superblock {
        writeln!(
            out,
            "  superblock: version {} (OMF {}.{}), UUID {}",
            sb.version, sb.omf_major, sb.omf_minor, sb.fs_uuid
        )?;
        writeln!(out, "  device UUID {}, master system UUID {}", sb.dev_uuid, sb.system_uuid)?;
        let role = match r.role {
            Some(famfs::Role::Master) => "Owner",
            Some(famfs::Role::Client) => "Client",
            None => "unknown (no system UUID)",
        };
        writeln!(out, "  this host: {role}")?;
        writeln!(out, "  device size {} ({}), log {}", sb.dev_size, format_size(sb.dev_size), format_size(sb.log_len))?;
    }
    if r.log.is_some() {
        let s = &r.stats;
        writeln!(out, "  log: {} of {} entries used, {} bad", s.entries_used, s.entries_total, s.bad_entries)?;
        writeln!(out, "  {} files, {} directories", s.files, s.directories)?;
        writeln!(
            out,
            "  capacity {}, allocated {}, free {}, file bytes {}",
            format_size(s.capacity_bytes),
            format_size(s.allocated_bytes),
            format_size(s.free_bytes),
            format_size(s.file_bytes)
        )?;
    }
    if let Some(why) = &r.unreadable {
        writeln!(out, "UNREADABLE: {why}")?;
    }
    for p in &r.problems {
        writeln!(out, "PROBLEM [{}]: {}", p.kind, p.message)?;
    }
    match r.exit_code() {
        0 => writeln!(out, "clean")?,
        1 => writeln!(out, "{} problem(s) found", r.problems.len())?,
        _ => {}
    }
    Ok(r.exit_code())
}
