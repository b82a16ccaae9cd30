//! famfs-run as a user runs it: `famfs-run --device demo.img --dataset / wc.wasm FILE`.

use famfs_run_tests::{Flavor, ImageFile, guest, guest_for, image_with, native, scratch, text};
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;

/// The famfs-run command line as a process.
fn famfs_run() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_famfs-run-under-test"));
    c.env_remove("FAMFS_DEVICE");
    c
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn wc_over_an_image_prints_the_counts() {
    let dir = scratch();
    let data = text(3 << 20, 5);
    let img = image_with(dir.path(), 64 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    let wc = guest("wc");
    let o = famfs_run().args(["--device", s(&img), "--dataset", "/", s(&wc), "logs/app.log"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (l, w, b) = native::wc(&data);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{l} {w} {b} logs/app.log\n"));

    // FAMFS_DEVICE stands in for --device; --json carries the outcome, metrics and output.
    let o = famfs_run()
        .env("FAMFS_DEVICE", &img)
        .args(["--dataset", "logs", "--json", s(&wc), "logs/app.log"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"]["exit_code"], 0);
    assert_eq!(v["stdout"], format!("{l} {w} {b} logs/app.log\n"));
    assert_eq!(v["metrics"]["bytes_mapped"], b);
    assert!(v["metrics"]["peak_memory"].as_u64().unwrap() >= b);
    assert!(v["metrics"]["run_ms"].as_f64().unwrap() > 0.0);
    let wall = v["metrics"]["wall_ms"].as_f64().unwrap();
    assert!(wall >= v["metrics"]["run_ms"].as_f64().unwrap() && v["metrics"]["compile_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn guest_exit_codes_and_errors_pass_through() {
    let dir = scratch();
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "a", data: b"x", strips: None }]);
    let wc = guest("wc");
    // The guest reports not-found and exits 1: famfs-run exits 1 too.
    let o = famfs_run().args(["-d", s(&img), "--dataset", "/", s(&wc), "missing"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error:"));
    // The guest's memory limit is famfs-run's to tell (FAMFS_RUN_MAX_MEMORY): --env may not.
    let o = famfs_run().args(["--env", "FAMFS_RUN_MAX_MEMORY=1", s(&wc), "missing"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("FAMFS_RUN_MAX_MEMORY is set by famfs-run") && err.contains("--max-memory"), "{err}");
    // A timeout is 124, with a one-line message.
    let o = famfs_run().args(["--timeout", "200ms", s(&guest("adversary")), "spin"]).output().unwrap();
    assert_eq!(o.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ran out of time"));
    // --json on failure: the error kind for programs.
    let o =
        famfs_run().args(["--json", "--max-memory", "32M", s(&guest("adversary")), "memory-bomb"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"]["error"]["kind"], "memory-limit");
}

#[test]
fn bad_invocations_get_clear_messages() {
    let dir = scratch();
    let comp = dir.path().join("component.wasm");
    // An empty component (the preamble alone) is told apart from a core module, and has no
    // `wasi:cli/run` to call.
    std::fs::write(&comp, b"\0asm\x0d\x00\x01\x00").unwrap();
    let o = famfs_run().arg(s(&comp)).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the component exports no `wasi:cli/run`"));
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let o = famfs_run().arg(s(&junk)).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot compile the module"));
    let o = famfs_run().args(["--dataset", "/", s(&guest("wc"))]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dataset needs a source"));
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "a", data: b"x", strips: None }]);
    let o = famfs_run().args(["-d", s(&img), "--dataset", "nope", s(&guest("wc"))]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot grant 'nope'"));
    let o = famfs_run().args(["--timeout", "soon", s(&guest("wc"))]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a duration"));
}

#[test]
fn fuel_budgets_are_enforced_and_reported() {
    let adversary = guest("adversary");
    let o = famfs_run().args(["--fuel", "2000000", s(&adversary), "spin"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ran out of fuel (budget 2000000)"));
    let dir = scratch();
    let data = text(1 << 20, 9);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "t.txt", data: &data, strips: None }]);
    let o = famfs_run()
        .args(["--json", "--fuel", "10000000000", "-d", s(&img), "--dataset", "/", s(&guest("wc")), "t.txt"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"]["exit_code"], 0, "{v}");
    let used = v["metrics"]["fuel_used"].as_u64().unwrap();
    assert!(used > 1 << 20 && used < 10_000_000_000, "wc of 1 MiB used {used} fuel");
}

#[test]
fn a_directory_without_a_source_is_a_host_directory() {
    // `--dir` with neither --device nor --mount grants a host directory (read-only), on the
    // command line and in a manifest, where it is relative to the manifest's file.
    let dir = scratch();
    let fnd = dir.path().join("fn");
    std::fs::create_dir_all(fnd.join("logs")).unwrap();
    let data = text(50_000, 5);
    std::fs::write(fnd.join("logs/a.log"), &data).unwrap();
    let (l, w, b) = native::wc(&data);
    let wc = guest("wc");
    let o = famfs_run()
        .args(["--dir", &format!("/data={}", s(&fnd.join("logs"))), s(&wc), "--mode", "wasi", "/data/a.log"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{l} {w} {b} /data/a.log\n"));
    let manifest = fnd.join("wc.toml");
    std::fs::write(
        &manifest,
        format!(
            "[module]\npath = \"{}\"\nargs = [\"--mode\", \"wasi\", \"/data/a.log\"]\n[source]\ndirs = {{ \"/data\" = \"logs\" }}\n",
            wc.display()
        ),
    )
    .unwrap();
    let o = famfs_run().current_dir(dir.path()).args(["--manifest", s(&manifest)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{l} {w} {b} /data/a.log\n"));
}

#[test]
fn wasi_directories_from_a_mount_and_from_an_image() {
    let dir = scratch();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(mnt.join("logs")).unwrap();
    let data = text(300_000, 3);
    std::fs::write(mnt.join("logs/a.log"), &data).unwrap();
    let wc = guest("wc");
    // PATH is inside the mount; the guest reads it through WASI (read-only preopen).
    let o = famfs_run()
        .args(["--mount", s(&mnt), "--dir", "/data=logs", s(&wc), "--mode", "wasi", "/data/a.log"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (l, w, b) = native::wc(&data);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{l} {w} {b} /data/a.log\n"));
    let o = famfs_run().args(["--mount", s(&mnt), "--dir", "/data=../..", s(&wc), "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must stay inside the mount"));
    // Issue 21, item 5: a symbolic link planted in the mount, as the directory or on the way to
    // it, used to be followed out of the mount (the guest read /outside/secret.txt).
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("deeper")).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret\n").unwrap();
    std::fs::write(outside.join("deeper/secret.txt"), b"secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, mnt.join("logs/escape")).unwrap();
    for planted in ["logs/escape", "/logs/escape/deeper"] {
        let o = famfs_run()
            .args([
                "--mount",
                s(&mnt),
                "--dir",
                &format!("/data={planted}"),
                s(&wc),
                "--mode",
                "wasi",
                "/data/secret.txt",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "--dir /data={planted}: {}{err}", String::from_utf8_lossy(&o.stdout));
        assert!(err.contains("symbolic link") && err.contains(planted), "{err}");
    }
    // With --device, PATH is a famfs directory served from the image: the core module is turned
    // into a component for it.
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a.log", data: &data, strips: None }]);
    let o = famfs_run()
        .args(["--json", "--device", s(&img), "--dir", "/data=logs", s(&wc), "--mode", "wasi", "/data/a.log"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "adapted-module");
    assert_eq!(v["stdout"], format!("{l} {w} {b} /data/a.log\n"));
    let o = famfs_run().args(["--device", s(&img), "--dir", "/data=nope", s(&wc), "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dir /data=nope"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn components_run_like_core_modules() {
    let dir = scratch();
    let data = text(3 << 20, 6);
    let img = image_with(dir.path(), 64 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    let wc = guest_for("wc", Flavor::Component);
    let o = famfs_run().args(["--json", "-d", s(&img), "--dataset", "/", s(&wc), "logs/app.log"]).output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (l, w, b) = native::wc(&data);
    assert_eq!(v["kind"], "component");
    assert_eq!(v["stdout"], format!("{l} {w} {b} logs/app.log\n"));
    assert_eq!(v["metrics"]["bytes_mapped"], data.len() as u64, "zero-copy: {v}");
    // The guest's exit code is famfs-run's, for components too.
    let o = famfs_run().args(["-d", s(&img), "--dataset", "/", s(&wc), "missing"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `--invoke handle --input FILE|-` writes the handler's reply to stdout; the handler's error is
/// exit 1 with its message; a guest without `handle` and an unknown export name are refused.
#[test]
fn handler_round_trip() {
    let dir = scratch();
    let data = text(2 << 20, 7);
    let img = image_with(dir.path(), 64 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    // Lines as the handler counts them: an unterminated last line counts.
    let lines = native::wc(&data).0 + u64::from(data.last().is_some_and(|&b| b != b'\n'));
    let matching = native::grep(&data, b"needle");
    let want = format!(
        "{{\"dataset\":\"logs/app.log\",\"bytes\":{},\"lines\":{lines},\"matching_lines\":{matching}}}",
        data.len()
    );
    let request = dir.path().join("request.txt");
    std::fs::write(&request, "dataset=logs/app.log\ncontains=needle\n").unwrap();
    for flavor in Flavor::COMPONENTS {
        let query = guest_for("query", flavor);
        let base = ["-d", s(&img), "--dataset", "/", "--invoke", "handle"];
        let o = famfs_run().args(base).args(["--input", s(&request), s(&query)]).output().unwrap();
        assert!(o.status.success(), "{flavor:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{flavor:?}");
        // The request from stdin.
        let mut child = famfs_run()
            .args(base)
            .args(["--input", "-", s(&query)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"dataset=logs/app.log\ncontains=needle").unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{flavor:?} stdin");
        // The handler's own error: exit 1 and its message.
        std::fs::write(dir.path().join("bad.txt"), "dataset=nope\n").unwrap();
        let o = famfs_run().args(base).args(["--input", s(&dir.path().join("bad.txt")), s(&query)]).output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("the handler returned an error: nope: no such dataset"), "{err}");
        // --json carries the reply.
        let o = famfs_run().args(["--json"]).args(base).args(["--input", s(&request), s(&query)]).output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["reply"], want.as_str());
    }
    // A command has no `handle`.
    let o = famfs_run()
        .args(["--invoke", "handle", "--input", s(&request), s(&guest_for("wc", Flavor::Component))])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exports no `handle` function"));
    let o = famfs_run().args(["--invoke", "main", "--input", s(&request), s(&guest("query"))]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only `handle`"));
    // --input without --invoke, and the reverse, are refused.
    let o = famfs_run().args(["--input", s(&request), s(&guest("query"))]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--input goes with --invoke handle"));
    let o = famfs_run().args(["--invoke", "handle", s(&guest("query"))]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    // Started as a command, the handler example says how to invoke it. It exits 2; a component
    // reports failure as 1 (WASI 0.2's `exit` carries only success or failure).
    let o = famfs_run().arg(s(&guest("query"))).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = famfs_run().arg(s(&guest_for("query", Flavor::Component))).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--invoke handle"));
}

/// `--manifest`: a handler manifest with --input; a command manifest with extra arguments; a
/// manifest with an unknown key or a wrong sha256 is refused, and flags it covers conflict.
#[test]
fn manifests_on_the_command_line() {
    let dir = scratch();
    let data = text(400_000, 8);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a.log", data: &data, strips: None }]);
    let query = guest("query");
    let sha = famfs_runtime::cache::sha256_hex(&std::fs::read(&query).unwrap());
    let handler = format!(
        "[module]\npath = {:?}\nsha256 = \"{sha}\"\ninvoke = \"handle\"\n[source]\ndevice = {:?}\ndatasets = [\"logs\"]\n",
        s(&query),
        s(&img)
    );
    let path = dir.path().join("query.toml");
    std::fs::write(&path, &handler).unwrap();
    let req = dir.path().join("req");
    std::fs::write(&req, "dataset=logs/a.log\ncontains=needle").unwrap();
    let o = famfs_run().args(["--manifest", s(&path), "--input", s(&req)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = format!("\"matching_lines\":{}", native::grep(&data, b"needle"));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&want));
    // A command manifest: the positional arguments follow the manifest's.
    let cmd = dir.path().join("wc.toml");
    std::fs::write(
        &cmd,
        format!(
            "[module]\npath = {:?}\nargs = [\"--mode\", \"read\"]\n[source]\ndevice = {:?}\ndatasets = [\"/\"]\n",
            s(&guest("wc")),
            s(&img)
        ),
    )
    .unwrap();
    let o = famfs_run().args(["--manifest", s(&cmd), "logs/a.log"]).output().unwrap();
    let (l, w, b) = native::wc(&data);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{l} {w} {b} logs/a.log\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Refusals.
    std::fs::write(&path, handler.replace("invoke", "invok")).unwrap();
    let o = famfs_run().args(["--manifest", s(&path)]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown field `invok`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&path, handler.replace(&sha, &"a".repeat(64))).unwrap();
    let o = famfs_run().args(["--manifest", s(&path), "--input", s(&req)]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to run it"));
    let o = famfs_run().args(["--manifest", s(&cmd), "--device", s(&img)]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `--map-technique shared` maps datasets the way device-dax requires (shared, read-only, with
/// copy-on-write by famfs-run), on an image too: the same answers; a device found by
/// `uuid:UUID` in `FAMFS_DEVICE_PATH` works like its path; bad values are clear errors.
#[test]
fn map_technique_and_devices_by_uuid() {
    let dir = scratch();
    let data = text(5 << 20, 6);
    let devices = dir.path().join("devices");
    std::fs::create_dir(&devices).unwrap();
    let img = image_with(&devices, 32 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    let (l, w, b) = native::wc(&data);
    let want = format!("{l} {w} {b} logs/app.log\n");
    for technique in ["private", "shared", "auto"] {
        let o = famfs_run()
            .args(["-d", s(&img), "--dataset", "/", "--map-technique", technique, s(&guest("wc")), "logs/app.log"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{technique}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{technique}");
    }
    let o = famfs_run().args(["--map-technique", "dax", s(&guest("wc"))]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("private, shared or auto"));
    let sb = famfs::read_superblock(&famfs::Device::open(&img, famfs::Access::ReadOnly).unwrap()).unwrap();
    let o = famfs_run()
        .env("FAMFS_DEVICE_PATH", &devices)
        .args(["-d", &format!("uuid:{}", sb.fs_uuid), "--dataset", "/", s(&guest("wc")), "logs/app.log"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
}

/// Every limit option is a flag (famfs_runtime::request::LIMIT_OPTIONS), read as a manifest's
/// `[limits]` and Python's keywords are: `--max-output` keeps that much of the captured output,
/// `--max-open-datasets` caps the datasets open at once; with `--manifest`, limit flags are
/// defaults that the manifest's `[limits]` override.
#[test]
fn every_limit_is_a_flag() {
    let dir = scratch();
    let data = text(100_000, 4);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a.log", data: &data, strips: None }]);
    let (l, w, b) = native::wc(&data);
    let full = format!("{l} {w} {b} logs/a.log\n");
    let wc = guest("wc");
    let o = famfs_run()
        .args(["--json", "--max-output", "10", "-d", s(&img), "--dataset", "/", s(&wc), "logs/a.log"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], full[..10], "{v}");
    assert_eq!(v["metrics"]["output_dropped"], full.len() - 10, "{v}");
    let adversary = guest("adversary");
    let o = famfs_run()
        .args(["--max-open-datasets", "10", "-d", s(&img), "--dataset", "/", s(&adversary), "open-many", "logs/a.log"])
        .arg("100")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("opened 10 "), "{}", String::from_utf8_lossy(&o.stderr));
    // Bad values are usage errors naming the flag; --help lists every limit with its default.
    let o = famfs_run().args(["--max-wasi-resources", "0", s(&wc)]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--max-wasi-resources must be at least 1"));
    let help = String::from_utf8(famfs_run().arg("--help").output().unwrap().stdout).unwrap();
    for o in famfs_runtime::LIMIT_OPTIONS {
        assert!(help.contains(&format!("--{} <{}>", o.flag, o.value_name)), "--{} in {help}", o.flag);
    }
    assert!(help.contains("[default: 4G]") && help.contains("[default: 16M]"), "{help}");
    // A manifest: its [limits] override the flags, which fill in what it leaves out.
    let manifest = dir.path().join("wc.toml");
    std::fs::write(
        &manifest,
        format!(
            "[module]\npath = {:?}\n[source]\ndevice = {:?}\ndatasets = [\"/\"]\n[limits]\nmax_output = 4\n",
            s(&wc),
            s(&img)
        ),
    )
    .unwrap();
    let o = famfs_run()
        .args(["--json", "--max-output", "10", "--fuel", "10000000000", "--manifest", s(&manifest), "logs/a.log"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], full[..4], "{v}");
    // The flag's fuel budget counts: the runtime counts fuel for it.
    assert!(v["metrics"]["fuel_used"].as_u64().unwrap() > 0, "{v}");
}

/// The guest's memory limit is famfs-run's to tell: `--env` and a manifest's `[env]` may not set
/// FAMFS_RUN_MAX_MEMORY, and are refused before anything runs.
#[test]
fn the_environment_may_not_set_the_memory_limit() {
    let dir = scratch();
    let wc = guest("wc");
    let env = format!("{}=1", famfs_runtime::GUEST_MAX_MEMORY_ENV);
    let o = famfs_run().args(["--json", "--env", &env, s(&wc)]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(o.stdout.is_empty(), "refused before the run: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "--env: FAMFS_RUN_MAX_MEMORY is set by famfs-run to the guest's memory limit; set --max-memory instead"
        ),
        "{err}"
    );
    let manifest = dir.path().join("wc.toml");
    std::fs::write(&manifest, format!("[module]\npath = {:?}\n[env]\nFAMFS_RUN_MAX_MEMORY = \"1\"\n", s(&wc))).unwrap();
    let o = famfs_run().args(["--manifest", s(&manifest)]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("env.FAMFS_RUN_MAX_MEMORY: ") && err.contains("set limits.max_memory instead"), "{err}");
}
