//! Guests found by name: `famfs-run sql 'SELECT 1'`, `rt.load("sql")`.
//!
//! `scripts/build-guests.sh` builds the bundled guests (the examples and the SQL guest) and
//! installs them into [`default_dir`]. A module given as a bare name (no `/`, no `.wasm`) that is
//! not a file in the working directory is looked up there, and first in the directories of
//! `FAMFS_RUN_GUEST_PATH` (colon-separated, like `PATH`): `NAME.wasm`, or with `-` and `_`
//! swapped (`sum-handler` is built as `sum_handler.wasm`). A file given by path is used as is.

use std::path::{Component, Path, PathBuf};
use thiserror::Error;

/// The variable listing more directories to find guests in, searched first.
pub const PATH_ENV: &str = "FAMFS_RUN_GUEST_PATH";

/// No guest of that name in any directory searched.
#[derive(Debug, Error)]
#[error(
    "no file {name} here, and no guest named {name} in {}: build the bundled guests with `bash scripts/build-guests.sh`, or give the module's path",
    searched_list(searched)
)]
pub struct GuestNotFound {
    /// The name asked for.
    pub name: String,
    /// The directories searched, in order.
    pub searched: Vec<PathBuf>,
}

fn searched_list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return format!("any directory (no home directory, and {PATH_ENV} is not set)");
    }
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Where `scripts/build-guests.sh` installs the bundled guests: `$XDG_DATA_HOME/famfs-run/guests`,
/// else `~/.local/share/famfs-run/guests` (the XDG base directory rules: a relative
/// `XDG_DATA_HOME` is ignored). `None` without a home directory.
pub fn default_dir() -> Option<PathBuf> {
    crate::xdg::famfs_run_dir("XDG_DATA_HOME", ".local/share", "guests")
}

/// The directories searched for a guest by name, in order: `FAMFS_RUN_GUEST_PATH`'s (absolute
/// ones only), then [`default_dir`].
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os(PATH_ENV)
        .map(|v| std::env::split_paths(&v).filter(|p| p.is_absolute()).collect())
        .unwrap_or_default();
    dirs.extend(default_dir());
    dirs
}

/// Whether `module` is a bare guest name rather than a path: one plain component, without a
/// `.wasm` extension.
pub fn is_name(module: &Path) -> bool {
    let mut parts = module.components();
    matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None))
        && module.extension().is_none_or(|e| e != "wasm")
}

/// The guest named `name` in the [`search_path`].
pub fn find(name: &str) -> Result<PathBuf, GuestNotFound> {
    let searched = search_path();
    let mut files = vec![format!("{name}.wasm")];
    for (from, to) in [('-', '_'), ('_', '-')] {
        if name.contains(from) {
            files.push(format!("{}.wasm", name.replace(from, &to.to_string())));
        }
    }
    searched
        .iter()
        .flat_map(|dir| files.iter().map(move |f| dir.join(f)))
        .find(|p| p.is_file())
        .ok_or_else(|| GuestNotFound { name: name.to_string(), searched })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components_without_wasm() {
        for name in ["sql", "arrow-agg", "sum_handler", "v1.2"] {
            assert!(is_name(Path::new(name)), "{name}");
        }
        for path in ["sql.wasm", "./sql", "guests/sql", "/opt/sql", "..", ""] {
            assert!(!is_name(Path::new(path)), "{path}");
        }
    }
}
