//! `famfsctl cat`.

use crate::Global;
use anyhow::Result;
use famfs::Famfs;
use std::io::Write;

/// `cat PATH...`
#[derive(clap::Args)]
pub struct Args {
    /// Files to print.
    #[arg(required = true)]
    paths: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let fs = Famfs::open(g.device()?)?;
    // Resolve every path first, so a typo prints nothing rather than half the output.
    let files = a.paths.iter().map(|p| fs.namespace().file(p)).collect::<Result<Vec<_>, _>>()?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 8 << 20];
    for f in files {
        let mut off = 0;
        while off < f.size {
            let n = fs.read_at(f, off, &mut buf)?;
            out.write_all(&buf[..n])?;
            off += n as u64;
        }
    }
    out.flush()?;
    Ok(0)
}
