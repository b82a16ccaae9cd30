//! The compiled-guest cache runs only code this user wrote (issue 11, defect 1). Its entries are
//! native code: a cache directory of another user's was accepted, and an entry planted there,
//! with a correct checksum, was run. Now a directory or entry that another user owns, that
//! group or others may write, or that is a symbolic link, is refused with a reason (the
//! directory) or recompiled over (an entry).
//!
//! The planted entry here is another guest's genuine artifact, stored under the name of the
//! guest being run: were it used, the run would print the other guest's output.

use famfs_run_tests::{Flavor, guest_for, scratch};
use famfs_runtime::{CacheError, EmbedError, Runtime};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A uid that is not ours.
const OTHER_UID: u32 = 65534;

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
}

fn runtime(dir: &Path) -> Result<Runtime, EmbedError> {
    Runtime::builder().cache_dir(dir).build()
}

/// Runs guest `name` (a core module) with `args` through a runtime caching in `dir`: (exit
/// code, stderr).
fn run(dir: &Path, name: &str, args: &[&str]) -> (i32, String) {
    let rt = runtime(dir).unwrap();
    let program = rt.load_file(&guest_for(name, Flavor::Core), None, false).unwrap();
    let mut inv = rt.invocation(name);
    inv.args = args.iter().map(|a| a.to_string()).collect();
    let outcome = program.run(rt.engine(), inv);
    let code = *outcome.result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
    (code, String::from_utf8(outcome.stderr.unwrap_or_default()).unwrap())
}

/// The cache files of `dir` (one per compiled guest).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    v.sort();
    v
}

/// The entry name of guest `name` in `dir`, given another guest's entry there (same kind,
/// same engine: only the sha256 differs).
fn entry_for(existing: &Path, name: &str) -> PathBuf {
    let file = existing.file_name().unwrap().to_str().unwrap();
    let (_, rest) = file.split_once('-').unwrap();
    let sha = famfs_runtime::cache::sha256_hex(&std::fs::read(guest_for(name, Flavor::Core)).unwrap());
    existing.with_file_name(format!("{sha}-{rest}"))
}

#[test]
fn a_directory_this_user_does_not_own_is_refused() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another user's directory: one made and given away (as root), or the root directory.
    let theirs = if is_root() {
        chown(&cache, OTHER_UID);
        cache.clone()
    } else {
        PathBuf::from("/")
    };
    match runtime(&theirs) {
        Err(EmbedError::Cache(e @ CacheError::NotOwned { .. })) => {
            let m = e.to_string();
            assert!(m.contains("belongs to uid") && m.contains("choose a directory of your own"), "{m}");
        }
        other => panic!("{}: expected NotOwned, got {:?}", theirs.display(), other.err()),
    }
}

#[test]
fn a_group_writable_or_linked_directory_is_refused() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert!(matches!(runtime(&cache).err(), Some(EmbedError::Cache(CacheError::NotPrivate { .. }))));
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&cache, &link).unwrap();
    match runtime(&link) {
        Err(EmbedError::Cache(e @ CacheError::NotADirectory { .. })) => {
            assert!(e.to_string().contains("symbolic link"), "{e}")
        }
        other => panic!("expected NotADirectory, got {:?}", other.err()),
    }
    runtime(&cache).unwrap();
}

/// The adversary guest's genuine artifact, planted under wc's name: run without arguments, wc
/// says `usage: wc ...`, while the planted code would say `usage: adversary ...`.
#[test]
fn planted_entries_are_never_run() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    let wc_itself = |(code, stderr): (i32, String)| code == 2 && stderr.contains("usage: wc");
    let adversary = |(code, stderr): (i32, String)| code == 2 && stderr.contains("usage: adversary");
    assert!(adversary(run(&cache, "adversary", &[])));
    let genuine = entries(&cache);
    assert_eq!(genuine.len(), 1, "{genuine:?}");
    let planted = entry_for(&genuine[0], "wc");
    type Plant = Box<dyn Fn(&Path)>;
    let mut cases: Vec<(&str, Plant)> = vec![
        (
            "writable by others",
            Box::new(|p| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap()),
        ),
        (
            "a symbolic link",
            Box::new(|p| {
                let target = p.with_extension("target");
                std::fs::rename(p, &target).unwrap();
                std::os::unix::fs::symlink(&target, p).unwrap();
            }),
        ),
    ];
    if is_root() {
        cases.push(("owned by another user", Box::new(|p| chown(p, OTHER_UID))));
    }
    for (what, how) in cases {
        let _ = std::fs::remove_file(&planted);
        std::fs::copy(&genuine[0], &planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
        how(&planted);
        assert!(wc_itself(run(&cache, "wc", &[])), "a planted entry ({what}) was run");
        // It was compiled afresh, and its entry is now this user's own private regular file.
        let meta = std::fs::symlink_metadata(&planted).unwrap();
        assert!(meta.file_type().is_file(), "{what}: the entry was not replaced");
        assert_eq!(meta.permissions().mode() & 0o022, 0, "{what}");
        if is_root() {
            assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0, "{what}");
        }
        let _ = std::fs::remove_file(planted.with_extension("target"));
    }
    // The control: the same planted bytes, as this user's own private file, are used (the cache
    // trusts this user, and only this user).
    std::fs::copy(&genuine[0], &planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(adversary(run(&cache, "wc", &[])), "this user's own entry is used");
}
