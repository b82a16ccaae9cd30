//! Log output for the workspace's command-line tools (`famfsctl`, `famfs-run`, `famfs-serve`):
//! one set-up, so that `-v`, `-q` and `RUST_LOG` mean the same thing in each.

use std::io::IsTerminal;
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How much a tool logs, before `RUST_LOG` has its say.
#[derive(Clone, Copy, Debug)]
pub struct Verbosity {
    /// The level with no `-v`: `WARN` for tools whose output is their result, `INFO` for servers.
    pub default: LevelFilter,
    /// How many times `-v` was given: each raises the level one step (INFO, then DEBUG, TRACE).
    pub verbose: u8,
    /// `-q`: errors only (wins over `-v`).
    pub quiet: bool,
}

impl Verbosity {
    /// The level these flags ask for.
    pub fn level(self) -> LevelFilter {
        if self.quiet {
            return LevelFilter::ERROR;
        }
        const STEPS: [LevelFilter; 6] = [
            LevelFilter::OFF,
            LevelFilter::ERROR,
            LevelFilter::WARN,
            LevelFilter::INFO,
            LevelFilter::DEBUG,
            LevelFilter::TRACE,
        ];
        let base = STEPS.iter().position(|l| *l == self.default).unwrap_or(2);
        STEPS[(base + self.verbose as usize).min(STEPS.len() - 1)]
    }
}

/// Sends `tracing` events to stderr, without targets, coloured only on a terminal, with
/// timestamps when `timestamps` (servers) and without (tools run by hand).
///
/// `RUST_LOG`, when set and valid, replaces the level `verbosity` asks for: a level (`debug`) or
/// `target=level` directives (`famfs_runtime=debug,warn`), as `tracing_subscriber`'s `Targets`
/// parses them. An invalid `RUST_LOG` is reported once and otherwise ignored. Calling this twice
/// in one process keeps the first set-up.
pub fn init(verbosity: Verbosity, timestamps: bool) {
    let mut bad_env = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            bad_env = Some(format!("ignoring RUST_LOG={spec:?}: {e}"));
            Targets::new().with_default(verbosity.level())
        }),
        _ => Targets::new().with_default(verbosity.level()),
    };
    let ansi = std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    let installed =
        if timestamps { registry.with(layer).try_init() } else { registry.with(layer.without_time()).try_init() };
    if let (Ok(()), Some(message)) = (installed, bad_env) {
        tracing::warn!("{message}");
    }
}
