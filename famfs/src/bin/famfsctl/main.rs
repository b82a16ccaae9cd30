//! `famfsctl`: make and inspect famfs file systems on image files and dax devices.

mod cat;
mod cp;
mod fsck;
mod inspect;
mod mkdir;
mod mkfs;
mod modes;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "famfsctl", version, about = "Make and inspect famfs file systems on image files and dax devices")]
struct Cli {
    /// famfs image file or dax device (/dev/daxX.Y), or tag:UUID / uuid:UUID (the device whose
    /// superblock or sysfs tag carries it, searched in /dev/dax* and FAMFS_DEVICE_PATH).
    #[arg(short = 'd', long = "device", env = "FAMFS_DEVICE", global = true)]
    device: Option<PathBuf>,
    /// No progress bars or informational messages.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a famfs file system (creating or sizing an image file with --size).
    Mkfs(mkfs::Args),
    /// Create directories.
    Mkdir(mkdir::Args),
    /// Copy files (and with -r directories) into the file system.
    Cp(cp::Args),
    /// List a directory.
    Ls(inspect::LsArgs),
    /// Write files' bytes to standard output.
    Cat(cat::Args),
    /// Show a file's or directory's metadata and extent map.
    Stat(inspect::StatArgs),
    /// Decode every log entry.
    Log(inspect::LogArgs),
    /// Check the file system: exit 0 clean, 1 problems, 2 unreadable.
    Fsck(fsck::Args),
}

/// Global options every command sees.
pub struct Global {
    device: Option<PathBuf>,
    quiet: bool,
}

impl Global {
    /// The device given by `-d` or `FAMFS_DEVICE`.
    pub fn device(&self) -> Result<&PathBuf> {
        self.device
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no device given: pass -d IMAGE_OR_DEVICE or set FAMFS_DEVICE"))
    }
}

fn main() {
    let cli = Cli::parse();
    let verbosity = famfs::logging::Verbosity {
        default: famfs::logging::LevelFilter::WARN,
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    famfs::logging::init(verbosity, false);
    let global = Global { device: cli.device, quiet: cli.quiet };
    let result = match cli.command {
        Command::Mkfs(a) => mkfs::run(&global, a),
        Command::Mkdir(a) => mkdir::run(&global, a),
        Command::Cp(a) => cp::run(&global, a),
        Command::Ls(a) => inspect::ls(&global, a),
        Command::Cat(a) => cat::run(&global, a),
        Command::Stat(a) => inspect::stat(&global, a),
        Command::Log(a) => inspect::log(&global, a),
        Command::Fsck(a) => fsck::run(&global, a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // A closed stdout (`famfsctl cat f | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                std::process::exit(141);
            }
            eprintln!("famfsctl: error: {e:#}");
            std::process::exit(1);
        }
    }
}
