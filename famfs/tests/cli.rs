//! famfsctl as a user runs it: every command, JSON output, exit codes and error messages.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    famfsctl().args(args).output().expect("run famfsctl")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "famfsctl {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).expect("famfsctl printed JSON")
}

fn fails(args: &[&str], code: i32, needle: &str) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "famfsctl {args:?}: {err}");
    assert!(err.contains(needle), "famfsctl {args:?}: stderr {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_new_user_session() {
    let dir = scratch();
    let img = dir.path().join("demo.img");
    let img = s(&img);
    let out = ok(&["mkfs", "--size", "128M", img]);
    assert!(out.contains("famfs v48"), "{out}");
    fails(&["mkfs", "--size", "128M", img], 1, "--force");

    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big = pattern(3 << 20, 1);
    std::fs::write(src.join("sub/big.bin"), &big).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();

    ok(&["-d", img, "mkdir", "-p", "-m", "750", "data/x"]);
    fails(&["-d", img, "mkdir", "data"], 1, "already exists");
    ok(&["-d", img, "cp", "-r", s(&src), "data"]);
    ok(&["-d", img, "cp", s(&src.join("a.txt")), "/copy.txt"]);
    fails(&["-d", img, "cp", s(&src.join("a.txt")), "/copy.txt"], 1, "already exists");
    fails(&["-d", img, "cp", s(&src), "/d2"], 1, "use -r");
    fails(&["-d", img, "cp", s(&src.join("a.txt")), s(&src.join("a.txt")), "/copy.txt"], 1, "existing famfs directory");
    fails(&["-d", img, "cp", s(&src.join("a.txt")), "nodir/"], 1, "not an existing famfs directory");

    // ls: plain, long, recursive, JSON.
    let plain = ok(&["-d", img, "ls"]);
    assert_eq!(plain, "copy.txt\ndata/\n");
    let long = ok(&["-d", img, "ls", "-l", "data"]);
    assert!(long.contains("drwxr-x---") && long.contains("src/"), "{long}");
    let rec = ok(&["-d", img, "ls", "-R", "/"]);
    assert!(rec.contains("/data/src/sub:\nbig.bin\n"), "{rec}");
    let rows = json(&["-d", img, "ls", "-R", "--json"]);
    let paths: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["copy.txt", "data", "data/src", "data/x", "data/src/a.txt", "data/src/sub", "data/src/sub/big.bin"]
    );
    let bigrow = rows.as_array().unwrap().iter().find(|r| r["path"] == "data/src/sub/big.bin").unwrap();
    assert_eq!(bigrow["size"], 3 << 20);
    assert_eq!(bigrow["type"], "file");

    // cat equals the source; several files concatenate.
    let o = run(&["-d", img, "cat", "data/src/sub/big.bin"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, big);
    assert_eq!(ok(&["-d", img, "cat", "copy.txt", "data/src/a.txt"]), "alpha\nalpha\n");
    fails(&["-d", img, "cat", "data"], 1, "is a directory");
    fails(&["-d", img, "cat", "nope"], 1, "does not exist");

    // stat --json has the extent map.
    let st = json(&["-d", img, "stat", "--json", "data/src/sub/big.bin"]);
    assert_eq!(st["size"], 3 << 20);
    assert_eq!(st["allocated"], 4 << 20);
    assert_eq!(st["map"]["type"], "simple");
    assert_eq!(st["map"]["extents"][0]["len"], 4 << 20);
    let text = ok(&["-d", img, "stat", "data"]);
    assert!(text.contains("type: directory") && text.contains("0750"), "{text}");

    // log --json: every entry, valid, in order.
    let log = json(&["-d", img, "log", "--json"]);
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(log["log"]["next_index"], entries.len());
    assert!(entries.iter().all(|e| e["valid"] == true));
    assert_eq!(entries[0]["kind"], "mkdir");
    assert_eq!(entries[0]["path"], "data");
    assert_eq!(log["superblock"]["version"], 48);

    // fsck: clean, as text and JSON; the empty source was skipped, not stored.
    assert!(ok(&["-d", img, "fsck"]).contains("clean"));
    let f = json(&["-d", img, "fsck", "--json"]);
    assert_eq!(f["exit_code"], 0);
    assert_eq!(f["stats"]["files"], 3);
    assert_eq!(f["role"], "master");
}

#[test]
fn device_from_the_environment_and_missing_device() {
    let dir = scratch();
    let img = new_image(dir.path(), "e.img", 16 << 20);
    let o = famfsctl().env("FAMFS_DEVICE", &img).args(["ls"]).output().unwrap();
    assert!(o.status.success());
    fails(&["ls"], 1, "no device given");
    fails(&["-d", s(&dir.path().join("missing.img")), "ls"], 1, "famfsctl mkfs --size");
    fails(&["-d", "/dev/null", "ls"], 1, "not a dax device");
    fails(&["-d", s(dir.path()), "ls"], 1, "is a directory");
}

#[test]
fn fsck_exit_codes() {
    let dir = scratch();
    let img = new_image(dir.path(), "f.img", 32 << 20);
    let o = run(&["-d", s(&img), "fsck"]);
    assert_eq!(o.status.code(), Some(0));
    // Not a famfs at all: unreadable.
    let zeros = dir.path().join("zeros.img");
    std::fs::write(&zeros, vec![0u8; 16 << 20]).unwrap();
    let o = run(&["-d", s(&zeros), "fsck"]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ts_magic at byte 0x0"), "{out}");
    let v: Value = serde_json::from_slice(&run(&["-d", s(&zeros), "fsck", "--json"]).stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    // Problems: a file whose extents were cut off by truncating the image.
    let src = dir.path().join("eight");
    std::fs::write(&src, pattern(8 << 20, 5)).unwrap();
    ok(&["-d", s(&img), "cp", s(&src), "/eight"]);
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(14 << 20).unwrap();
    let o = run(&["-d", s(&img), "fsck"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("device-truncated") && out.contains("past the end"), "{out}");
}

#[test]
fn clients_and_versions() {
    let dir = scratch();
    let img = dir.path().join("v47.img");
    ok(&["mkfs", "--size", "16M", "--format-version", "47", s(&img)]);
    let v: Value = json(&["-d", s(&img), "log", "--json"]);
    assert_eq!(v["superblock"]["version"], 47);
    assert_eq!(v["superblock"]["omf_minor"], 1);
    fails(&["mkfs", "--size", "16M", "--format-version", "46", "--force", s(&img)], 1, "use 48 or 47");
    let o = famfsctl()
        .env("FAMFS_SYSTEM_UUID", "99999999-8888-4777-8666-555555555555")
        .args(["-d", s(&img), "mkdir", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("this host is a client"));
    // Identity from a file, as /opt/famfs/system_uuid (with famfs' trailing NUL).
    let idf = dir.path().join("system_uuid");
    std::fs::write(&idf, b"11111111-2222-4333-8444-555555555555\0").unwrap();
    let o = famfsctl()
        .env_remove("FAMFS_SYSTEM_UUID")
        .env("FAMFS_SYSTEM_UUID_FILE", &idf)
        .args(["-d", s(&img), "mkdir", "x"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // mkfs creates a missing identity file, as famfs does.
    let newid = dir.path().join("opt/famfs/system_uuid");
    let o = famfsctl()
        .env_remove("FAMFS_SYSTEM_UUID")
        .env("FAMFS_SYSTEM_UUID_FILE", &newid)
        .args(["mkfs", "--size", "16M", s(&dir.path().join("n.img"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&newid).unwrap();
    let uuid = text.trim_end_matches('\0');
    let v = json(&["-d", s(&dir.path().join("n.img")), "log", "--json"]);
    assert_eq!(v["superblock"]["system_uuid"], uuid);
}

/// The progress bar stays off when stderr is not a terminal: a large copy prints nothing.
#[test]
fn large_copies_are_quiet_off_a_terminal() {
    let dir = scratch();
    let img = new_image(dir.path(), "q.img", 128 << 20);
    let src = dir.path().join("big");
    std::fs::write(&src, pattern(65 << 20, 3)).unwrap();
    let o = run(&["-d", s(&img), "cp", s(&src), "/big"]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn interleaved_copy_from_the_cli() {
    let dir = scratch();
    let img = new_image(dir.path(), "i.img", 256 << 20);
    let src = dir.path().join("s.bin");
    let data = pattern((9 << 20) + 5, 4);
    std::fs::write(&src, &data).unwrap();
    ok(&["-d", s(&img), "cp", "--interleave", "4", "--chunk", "2M", "--buckets", "8", s(&src), "/s.bin"]);
    let st = json(&["-d", s(&img), "stat", "--json", "s.bin"]);
    assert_eq!(st["map"]["type"], "interleaved");
    assert_eq!(st["map"]["strips"].as_array().unwrap().len(), 4);
    assert_eq!(run(&["-d", s(&img), "cat", "s.bin"]).stdout, data);
    fails(&["-d", s(&img), "cp", "--interleave", "20", s(&src), "/t.bin"], 1, "1 to 16");
}
