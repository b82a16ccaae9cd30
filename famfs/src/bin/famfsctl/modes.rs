//! Shared option parsing and formatting for the commands.

use famfs::Attrs;

/// Parses an octal mode such as `644` or `0755`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("'{s}' is not an octal mode such as 644 or 0755")),
    }
}

/// Parses a size such as `2M` or `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    famfs::units::parse_size(s)
}

/// `rwxr-xr-x` for permission bits, with a leading type letter.
pub fn permissions(is_dir: bool, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Owner options shared by mkdir and cp.
#[derive(clap::Args, Clone, Copy)]
pub struct Owner {
    /// Owner uid (default: the caller's effective uid).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Owner gid (default: the caller's effective gid).
    #[arg(long)]
    pub gid: Option<u32>,
}

impl Owner {
    /// Attributes with `mode` and these owners.
    pub fn attrs(&self, mode: u32) -> Attrs {
        Attrs::owned_by(mode, self.uid, self.gid)
    }
}

/// This host's identity for writing, from the environment or /opt/famfs/system_uuid.
pub fn identity(create: bool) -> anyhow::Result<famfs::SystemIdentity> {
    Ok(famfs::SystemIdentity::from_env(create)?)
}
