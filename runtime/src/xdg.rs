//! Where famfs-run keeps a user's files, by the XDG base directory rules: the compiled-guest
//! cache ([`crate::cache::default_dir`]) and the installed guests ([`crate::guests::default_dir`]).

use std::path::PathBuf;

/// `$VAR/famfs-run/SUB`, or `$HOME/UNDER_HOME/famfs-run/SUB` when `VAR` is unset or relative (the
/// rules ignore a relative one). `None` without an absolute home directory.
pub(crate) fn famfs_run_dir(var: &str, under_home: &str, sub: &str) -> Option<PathBuf> {
    let xdg = std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        let home = PathBuf::from(std::env::var_os("HOME")?);
        home.is_absolute().then(|| home.join(under_home))
    })?;
    Some(base.join("famfs-run").join(sub))
}
