//! The repository stands alone and its set-up works on a fresh machine: nothing in the tree
//! refers to files outside it, and `scripts/ensure-toolchain.sh` (which the README's two
//! commands and CI go through) installs exactly what is missing, on a machine where rustup does
//! not install anything by itself.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    famfs_run_tests::package_dir(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every file of the tree that is text, skipping build output and git's own files.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            // `target` directories (the root's, fuzz/'s, any a user made), git's database.
            if name == ".git" || name == "target" || path.join("CACHEDIR.TAG").exists() {
                continue;
            }
            text_files(&path, out);
        } else if ty.is_file() {
            out.push(path);
        }
    }
}

/// No file in the tree names the steering directory beside the clone: a user's clone has
/// nothing there, so a test, script, build file or doc that reads it fails for them.
#[test]
fn nothing_refers_to_files_outside_the_repository() {
    // Spelled in pieces, so that this file does not match itself.
    let needle = format!("..{}shared", '/');
    let mut files = Vec::new();
    text_files(&repo(), &mut files);
    assert!(files.len() > 100, "walked only {} files of {}", files.len(), repo().display());
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "these files refer to {needle}, which a clone does not have: {offenders:?}");
}

/// The fixtures the famfs tests read are in the repository.
#[test]
fn the_famfs_fixtures_are_in_the_repository() {
    let dir = repo().join("famfs/tests/fixtures");
    for name in
        ["famfs-simple.img.gz", "famfs-interleaved.img.gz", "famfs-v47-simple.img.gz", "manifest.json", "README.md"]
    {
        assert!(dir.join(name).is_file(), "{} is missing", dir.join(name).display());
    }
    assert!(dir.join("shadow-yaml/simple/hello.txt.yaml").is_file());
}

/// A fake `rustup` on PATH that keeps its toolchains, targets and components in files under
/// `state/` and logs every call, so the script's decisions can be checked without touching the
/// real toolchain. Like a machine with `RUSTUP_AUTO_INSTALL=0`, it installs nothing unasked.
struct FakeRustup {
    dir: tempfile::TempDir,
}

const FAKE_RUSTUP: &str = r#"#!/usr/bin/env bash
set -eu
state="$(dirname "$0")/state"
echo "$*" >> "$state/calls"
host=x86_64-unknown-linux-gnu
has_toolchain() { [ -f "$state/toolchain-$1" ]; }
case "$1 $2" in
  "toolchain list")
    for f in "$state"/toolchain-*; do [ -e "$f" ] && echo "${f##*/toolchain-}-$host"; done; exit 0 ;;
  "toolchain install")
    tc=$3; touch "$state/toolchain-$tc"; echo "$host" > "$state/targets-$tc"; : > "$state/components-$tc"
    shift 3
    while [ $# -gt 0 ]; do
      case "$1" in
        --target) echo "$2" >> "$state/targets-$tc"; shift 2 ;;
        --component) echo "$2-$host" >> "$state/components-$tc"; shift 2 ;;
        *) shift ;;
      esac
    done
    exit 0 ;;
  "target list")
    tc=$5; has_toolchain "$tc" || { echo "error: toolchain '$tc' is not installed" >&2; exit 1; }
    cat "$state/targets-$tc"; exit 0 ;;
  "target add")
    tc=$4; shift 4; has_toolchain "$tc" || exit 1
    for t in "$@"; do echo "$t" >> "$state/targets-$tc"; done; exit 0 ;;
  "component list")
    tc=$5; cat "$state/components-$tc"; exit 0 ;;
  "component add")
    tc=$4; shift 4
    for c in "$@"; do echo "$c-$host" >> "$state/components-$tc"; done; exit 0 ;;
esac
echo "fake rustup: unexpected call: $*" >&2
exit 3
"#;

impl FakeRustup {
    fn new() -> FakeRustup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let rustup = dir.path().join("rustup");
        std::fs::write(&rustup, FAKE_RUSTUP).unwrap();
        std::fs::set_permissions(&rustup, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        FakeRustup { dir }
    }

    /// A machine where `channel` is installed with these targets and components.
    fn with_toolchain(self, channel: &str, targets: &[&str], components: &[&str]) -> FakeRustup {
        let state = self.dir.path().join("state");
        std::fs::write(state.join(format!("toolchain-{channel}")), "").unwrap();
        let lines = |v: &[&str], suffix: &str| v.iter().map(|t| format!("{t}{suffix}\n")).collect::<String>();
        std::fs::write(state.join(format!("targets-{channel}")), lines(targets, "")).unwrap();
        std::fs::write(state.join(format!("components-{channel}")), lines(components, "-x86_64-unknown-linux-gnu"))
            .unwrap();
        self
    }

    /// Runs `ensure_toolchain` on the repository with this rustup first on PATH; returns
    /// (success, stdout + stderr, the rustup calls it made).
    fn ensure(&self) -> (bool, String, Vec<String>) {
        let calls = self.dir.path().join("state/calls");
        let _ = std::fs::remove_file(&calls);
        let path = format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap());
        let out = Command::new("bash")
            .arg("-c")
            .arg("set -euo pipefail; source scripts/ensure-toolchain.sh; ensure_toolchain .")
            .current_dir(repo())
            .env("PATH", path)
            .env("RUSTUP_AUTO_INSTALL", "0")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let calls = std::fs::read_to_string(&calls).unwrap_or_default().lines().map(str::to_string).collect();
        (out.status.success(), text, calls)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }
}

/// What rust-toolchain.toml pins: (channel, targets, components).
fn pinned() -> (String, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    let value = |key: &str| -> String {
        text.lines().find_map(|l| l.strip_prefix(key).map(|r| r.trim_start_matches([' ', '=']).to_string())).unwrap()
    };
    let list = |key: &str| -> Vec<String> {
        value(key).trim_matches(['[', ']']).split(',').map(|s| s.trim().trim_matches('"').to_string()).collect()
    };
    (value("channel").trim_matches('"').to_string(), list("targets"), list("components"))
}

/// Only calls that change the machine.
fn changes(calls: &[String]) -> Vec<&String> {
    calls.iter().filter(|c| c.contains(" add") || c.contains(" install")).collect()
}

/// The toolchain is there with wasm32-wasip1 but not wasm32-wasip2 (the machine of issue 10):
/// the missing target is added, and the second run changes nothing.
#[test]
fn a_missing_wasm_target_is_added_once() {
    let (channel, targets, components) = pinned();
    assert_eq!(targets, ["wasm32-wasip1", "wasm32-wasip2"]);
    let comps: Vec<&str> = components.iter().map(String::as_str).collect();
    let fake = FakeRustup::new().with_toolchain(&channel, &["x86_64-unknown-linux-gnu", "wasm32-wasip1"], &comps);
    let (ok, text, calls) = fake.ensure();
    assert!(ok, "{text}");
    assert_eq!(changes(&calls), [&format!("target add --toolchain {channel} wasm32-wasip2")], "{calls:?}");
    assert!(fake.file(&format!("targets-{channel}")).lines().any(|t| t == "wasm32-wasip2"));
    let (ok, text, calls) = fake.ensure();
    assert!(ok, "{text}");
    assert!(changes(&calls).is_empty(), "the second run changed something: {calls:?}");
    assert!(text.is_empty(), "the second run should be quiet: {text}");
}

/// No toolchain at all: the pinned one is installed with its targets and components, by name
/// (nothing relies on rustup's automatic install); then nothing more is needed.
#[test]
fn a_missing_toolchain_is_installed_with_its_targets() {
    let (channel, targets, components) = pinned();
    let fake = FakeRustup::new();
    let (ok, text, calls) = fake.ensure();
    assert!(ok, "{text}");
    let changed = changes(&calls);
    assert_eq!(changed.len(), 1, "{calls:?}");
    assert!(changed[0].starts_with(&format!("toolchain install {channel} --profile minimal")), "{calls:?}");
    for t in &targets {
        assert!(changed[0].contains(&format!("--target {t}")), "{calls:?}");
    }
    for c in &components {
        assert!(changed[0].contains(&format!("--component {c}")), "{calls:?}");
    }
    let (ok, text, calls) = fake.ensure();
    assert!(ok, "{text}");
    assert!(changes(&calls).is_empty(), "{calls:?}");
}

/// Without rustup the script stops with a message saying what to install.
#[test]
fn without_rustup_the_script_says_what_to_install() {
    // A PATH with the tools the script uses, and no rustup.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["sed", "tr", "grep"] {
        let real = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    let out = Command::new("/bin/bash")
        .arg("-c")
        .arg("source scripts/ensure-toolchain.sh; ensure_toolchain .")
        .current_dir(repo())
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rustup is required") && err.contains("https://rustup.rs"), "{err}");
}

/// The README's two commands and CI all go through the one script.
#[test]
fn the_demo_the_tests_and_ci_share_the_one_script() {
    for script in ["scripts/demo.sh", "scripts/test.sh"] {
        let text = std::fs::read_to_string(repo().join(script)).unwrap();
        assert!(text.contains("source scripts/ensure-toolchain.sh") && text.contains("ensure_toolchain ."), "{script}");
        assert!(!text.contains("rustup "), "{script} calls rustup itself");
    }
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.contains("bash scripts/test.sh"), "CI must run the README's test command");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("bash scripts/demo.sh") && readme.contains("bash scripts/test.sh"));
}
