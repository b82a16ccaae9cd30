//! The command line keeps compiled guests in the user's cache directory by default, as the
//! wasmtime CLI does (issue 23, item 3): a second run of a guest loads it instead of compiling
//! it; `--no-cache` keeps nothing; a default directory that cannot be trusted is skipped with a
//! warning (an explicit one is an error); the directory stays under its size, least recently
//! used entries removed first.

use famfs_run_tests::{guest, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// famfs-run with only `home` (and `xdg`, if given) to find its cache by.
fn famfs_run(home: &Path, xdg: Option<&Path>) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"));
    c.env("HOME", home).env_remove("XDG_CACHE_HOME").env_remove("FAMFS_RUN_CACHE").env_remove("FAMFS_RUN_CACHE_MAX");
    if let Some(xdg) = xdg {
        c.env("XDG_CACHE_HOME", xdg);
    }
    c.stdin(std::process::Stdio::null());
    c
}

/// Runs `name` with `--json` and extra flags; returns how its load was served.
fn load(home: &Path, xdg: Option<&Path>, extra: &[&str], name: &str) -> (Value, String) {
    let o = famfs_run(home, xdg).arg("--json").args(extra).arg(guest(name)).arg("no-such-dataset").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (v["metrics"]["load"].clone(), stderr)
}

fn compiled(load: &Value) -> bool {
    load["compiled"] == 1 && load["from_disk_cache"] == 0
}

fn from_disk(load: &Value) -> bool {
    load["compiled"] == 0 && load["from_disk_cache"] == 1
}

/// The compiled guests in `dir`, by name.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn compiled_guests_are_kept_in_the_users_cache_unless_told_not_to() {
    let dir = scratch();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cache = home.join(".cache/famfs-run/compiled");

    // --no-cache: compiled, and nothing kept (not even the directory).
    let (l, _) = load(&home, None, &["--no-cache"], "wc");
    assert!(compiled(&l), "{l}");
    assert!(!cache.exists());

    // By default: ~/.cache/famfs-run/compiled, private; the second run loads from it.
    let (l, _) = load(&home, None, &[], "wc");
    assert!(compiled(&l), "{l}");
    assert_eq!(entries(&cache).len(), 1);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    let (l, _) = load(&home, None, &[], "wc");
    assert!(from_disk(&l), "{l}");
    // --no-cache also means not reading it.
    let (l, _) = load(&home, None, &["--no-cache"], "wc");
    assert!(compiled(&l), "{l}");

    // XDG_CACHE_HOME, when absolute, is the base; a relative one is ignored (XDG's rule).
    let xdg = dir.path().join("xdg");
    let (l, _) = load(&home, Some(&xdg), &[], "grep");
    assert!(compiled(&l), "{l}");
    assert_eq!(entries(&xdg.join("famfs-run/compiled")).len(), 1);
    let (l, _) = load(&home, Some(Path::new("relative/xdg")), &[], "wc");
    assert!(from_disk(&l), "a relative XDG_CACHE_HOME falls back to ~/.cache: {l}");
}

#[test]
fn an_untrustworthy_default_cache_is_skipped_with_a_warning_and_an_explicit_one_refused() {
    let dir = scratch();
    let home = dir.path().join("home");
    let cache = home.join(".cache/famfs-run/compiled");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (l, stderr) = load(&home, None, &[], "wc");
    assert!(compiled(&l), "{l}");
    assert!(stderr.contains("compiling without a cache") && stderr.contains("chmod go-w"), "{stderr}");
    assert!(entries(&cache).is_empty(), "nothing is written to a directory others may write");

    let o =
        famfs_run(&home, None).arg("--cache-dir").arg(&cache).arg(guest("wc")).arg("no-such-dataset").output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is writable by group or others"));
}

#[test]
fn the_cache_stays_under_its_size_least_recently_used_removed_first() {
    let dir = scratch();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cache = home.join(".cache/famfs-run/compiled");
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();

    // The sizes of the three guests' entries (the same bytes give the same entry).
    let mut sizes = Vec::new();
    for name in ["wc", "grep", "histogram"] {
        let (l, _) = load(&home, None, &[], name);
        assert!(compiled(&l), "{l}");
        let new: Vec<PathBuf> = entries(&cache).into_iter().filter(|e| !sizes.iter().any(|(p, _)| p == e)).collect();
        assert_eq!(new.len(), 1);
        sizes.push((new[0].clone(), size(&new[0])));
    }
    let [(wc, wc_size), (grep, grep_size), (histogram, histogram_size)] = <[_; 3]>::try_from(sizes).unwrap();
    std::fs::remove_file(&histogram).unwrap();

    // wc used long ago, grep less long ago; then wc used again (a use refreshes an entry whose
    // last use is over an hour old): grep is now the least recently used.
    let ago = |p: &Path, hours: u64| {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(hours * 3600)).unwrap();
    };
    ago(&wc, 3);
    ago(&grep, 2);
    let (l, _) = load(&home, None, &[], "wc");
    assert!(from_disk(&l), "{l}");

    // Room for all three less a byte: storing histogram removes grep alone.
    let max = (wc_size + grep_size + histogram_size - 1).to_string();
    let (l, _) = load(&home, None, &["--cache-max", &max], "histogram");
    assert!(compiled(&l), "{l}");
    assert_eq!(entries(&cache), {
        let mut want = vec![wc.clone(), histogram.clone()];
        want.sort();
        want
    });

    // A cache smaller than one entry keeps the entry just stored, and only it.
    let (l, _) = load(&home, None, &["--cache-max", "1"], "grep");
    assert!(compiled(&l), "{l}");
    assert_eq!(entries(&cache), vec![grep]);
}
