//! `famfsctl mkdir`.

use crate::Global;
use crate::modes::{Owner, identity, parse_mode};
use anyhow::Result;
use famfs::{RelPath, Writer};

/// `mkdir [-p] [-m MODE] PATH...`
#[derive(clap::Args)]
pub struct Args {
    /// Create missing parents; existing directories are fine.
    #[arg(short, long)]
    parents: bool,
    /// Permission bits, octal.
    #[arg(short, long, value_parser = parse_mode, default_value = "755")]
    mode: u32,
    #[command(flatten)]
    owner: Owner,
    /// Directories to create.
    #[arg(required = true)]
    paths: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    // Validate every path before writing anything.
    let paths = a.paths.iter().map(|p| RelPath::parse(p)).collect::<Result<Vec<_>, _>>()?;
    let mut w = Writer::open(g.device()?, &identity(false)?)?;
    let attrs = a.owner.attrs(a.mode);
    for p in &paths {
        if a.parents {
            for made in w.mkdir_all(p, attrs)? {
                tracing::info!("created directory {made}");
            }
        } else {
            w.mkdir(p, attrs)?;
        }
    }
    Ok(0)
}
