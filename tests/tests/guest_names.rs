//! Guests found by name (issue 23, item 2): `famfs-run wc FILE` runs the installed `wc.wasm`
//! (scripts/build-guests.sh installs the bundled guests into ~/.local/share/famfs-run/guests),
//! `FAMFS_RUN_GUEST_PATH` is searched first, manifests name guests the same way, a file in the
//! working directory wins over a name,
//! and a name found nowhere says where it looked and how to build the guests.

use famfs_run_tests::{guest, scratch};
use std::path::Path;

/// famfs-run in `cwd`, with only `home` and `guest_path` to find guests by.
fn famfs_run(cwd: &Path, home: &Path, guest_path: Option<&Path>) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"));
    c.current_dir(cwd).env("HOME", home).env_remove("XDG_DATA_HOME").env_remove("FAMFS_RUN_GUEST_PATH");
    c.env_remove("FAMFS_DEVICE").arg("--no-cache");
    if let Some(p) = guest_path {
        c.env("FAMFS_RUN_GUEST_PATH", p);
    }
    c
}

/// Which guest ran: its usage line's name (run with no arguments, each prints its usage).
fn which(mut c: std::process::Command) -> String {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    err.strip_prefix("usage: ").and_then(|u| u.split_whitespace().next()).unwrap_or_else(|| panic!("{err}")).to_string()
}

#[test]
fn bundled_guests_are_run_by_name() {
    let dir = scratch();
    let (home, cwd, extra) = (dir.path().join("home"), dir.path().join("cwd"), dir.path().join("extra"));
    let installed = home.join(".local/share/famfs-run/guests");
    for d in [&installed, &cwd, &extra] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(guest("wc"), installed.join("wc.wasm")).unwrap();
    std::fs::copy(guest("sum_handler"), installed.join("sum_handler.wasm")).unwrap();
    let mut c = famfs_run(&cwd, &home, None);
    c.arg("wc");
    assert_eq!(which(c), "wc");

    // A crate named with dashes builds a file with underscores: both names find it.
    for name in ["sum-handler", "sum_handler"] {
        let o = famfs_run(&cwd, &home, None).arg(name).output().unwrap();
        assert!(String::from_utf8_lossy(&o.stderr).contains("exports no `_start`"), "{name} was found");
    }

    // FAMFS_RUN_GUEST_PATH comes first: its `wc` is another guest.
    std::fs::copy(guest("histogram"), extra.join("wc.wasm")).unwrap();
    let mut c = famfs_run(&cwd, &home, Some(&extra));
    c.arg("wc");
    assert_eq!(which(c), "histogram");

    // A manifest's bare name, no file beside the manifest, is an installed guest's too, even
    // when the working directory holds a file of that name.
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("wc.toml"), "[module]\npath = \"wc\"\n").unwrap();
    std::fs::copy(guest("histogram"), extra.join("wc")).unwrap();
    let mut c = famfs_run(&extra, &home, None);
    c.arg("--manifest").arg(manifests.join("wc.toml"));
    assert_eq!(which(c), "wc");
    std::fs::remove_file(extra.join("wc")).unwrap();

    // A file of that name in the working directory is a path, and wins.
    std::fs::copy(guest("histogram"), cwd.join("wc")).unwrap();
    let mut c = famfs_run(&cwd, &home, None);
    c.arg("wc");
    assert_eq!(which(c), "histogram");
}

#[test]
fn a_name_found_nowhere_says_where_it_looked_and_what_to_do() {
    let dir = scratch();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let o = famfs_run(dir.path(), &home, Some(Path::new("/nonexistent/guests"))).arg("sql").output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!(
        "famfs-run: error: no file sql here, and no guest named sql in /nonexistent/guests, {}: build the bundled guests with `bash scripts/build-guests.sh`, or give the module's path",
        home.join(".local/share/famfs-run/guests").display()
    );
    assert_eq!(err.trim(), want);
    // A path (with a slash, or .wasm) is never looked up.
    let o = famfs_run(dir.path(), &home, None).arg("sql.wasm").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the guest sql.wasm"));
}
