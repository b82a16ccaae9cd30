//! famfs-serve end to end, over loopback: the real binary, real manifests, real guests, a famfs
//! image; concurrent requests; failures get their status and the server keeps serving.

use famfs_run_tests::{Flavor, ImageFile, guest_for, image_with, native, scratch, text};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The server, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(functions: &[(&str, &Path)], extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_famfs-serve"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(extra);
    for (name, manifest) in functions {
        cmd.arg("--function").arg(format!("{name}={}", manifest.display()));
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    Server { child, addr }
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn manifest(dir: &Path, name: &str, module: &Path, img: &Path, limits: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[module]\npath = {:?}\ninvoke = \"handle\"\n[source]\ndevice = {:?}\ndatasets = [\"logs\"]\n[limits]\n{limits}\n",
        module.to_str().unwrap(),
        img.to_str().unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn serves_functions_over_http() {
    let dir = scratch();
    let data = text(2 << 20, 9);
    let img = image_with(dir.path(), 32 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    let query = manifest(dir.path(), "query", &guest_for("query", Flavor::Core), &img, "timeout = \"30s\"");
    let probe = manifest(
        dir.path(),
        "probe",
        &guest_for("handler_probe", Flavor::Component),
        &img,
        "timeout = \"500ms\"\nmax_memory = \"64M\"",
    );
    let server = start(&[("query", &query), ("probe", &probe)], &["--max-concurrency", "4", "--max-body", "1M"]);
    let addr = server.addr.clone();

    // 32 concurrent queries, each right.
    let lines = native::wc(&data).0 + u64::from(data.last() != Some(&b'\n'));
    let matching = native::grep(&data, b"needle");
    let want = format!(
        "{{\"dataset\":\"logs/app.log\",\"bytes\":{},\"lines\":{lines},\"matching_lines\":{matching}}}",
        data.len()
    );
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                request(&addr, "POST", "/invoke/query", &[], b"dataset=logs/app.log\ncontains=needle")
            })
        })
        .collect();
    for t in threads {
        let (status, head, body) = t.join().unwrap();
        assert_eq!(status, 200, "{head}");
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }

    // Failures, each with its status, and the server still answers after each.
    // (request, headers, status, error kind)
    type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case<'_>; 6] = [
        (b"spin", &[], 504, "timeout"),
        (b"spin", &[("x-famfs-timeout-ms", "50")], 504, "timeout"),
        (b"trap", &[], 500, "trap"),
        (b"grow", &[], 500, "memory-limit"),
        (b"error:bad input", &[], 422, "handler"),
        (b"len:secret", &[], 422, "handler"),
    ];
    for (body, headers, status, kind) in cases {
        let (got, head, reply) = request(&addr, "POST", "/invoke/probe", headers, body);
        assert_eq!(got, status, "{}: {head}\n{}", String::from_utf8_lossy(body), String::from_utf8_lossy(&reply));
        let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(v["error"], kind, "{v}");
        let (ok, _, echoed) = request(&addr, "POST", "/invoke/probe", &[], b"echo:still here");
        assert_eq!((ok, echoed.as_slice()), (200, &b"still here"[..]));
    }
    // A header cannot raise the manifest's limit (500 ms): still a timeout.
    let t = std::time::Instant::now();
    let (got, ..) = request(&addr, "POST", "/invoke/probe", &[("x-famfs-timeout-ms", "60000")], b"spin");
    assert_eq!(got, 504);
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    let (got, ..) = request(&addr, "POST", "/invoke/probe", &[("x-famfs-timeout-ms", "soon")], b"spin");
    assert_eq!(got, 400);
    // Unknown function, body too large.
    let (got, ..) = request(&addr, "POST", "/invoke/nope", &[], b"x");
    assert_eq!(got, 404);
    let (got, ..) = request(&addr, "POST", "/invoke/probe", &[], &vec![b'x'; 2 << 20]);
    assert_eq!(got, 413);

    // /datasets and /metrics.
    let (got, _, body) = request(&addr, "GET", "/datasets", &[], b"");
    assert_eq!(got, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["query"][0]["name"], "logs/app.log");
    assert_eq!(v["query"][0]["len"], data.len() as u64);
    let (got, _, body) = request(&addr, "GET", "/metrics", &[], b"");
    assert_eq!(got, 200);
    let text = String::from_utf8(body).unwrap();
    for line in [
        "famfs_invocations_total{function=\"query\",outcome=\"ok\"} 32".to_string(),
        "famfs_invocations_total{function=\"probe\",outcome=\"timeout\"} 3".to_string(),
        "famfs_invocations_total{function=\"probe\",outcome=\"trap\"} 1".to_string(),
        "famfs_invocations_total{function=\"probe\",outcome=\"memory_limit\"} 1".to_string(),
        "famfs_invocations_total{function=\"probe\",outcome=\"handler_error\"} 2".to_string(),
        "famfs_invocations_total{function=\"probe\",outcome=\"ok\"} 6".to_string(),
        "famfs_invocation_seconds_count{function=\"query\"} 32".to_string(),
        format!("famfs_bytes_mapped_total{{function=\"query\"}} {}", 32 * data.len() as u64),
        "famfs_in_flight 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    let (got, _, body) = request(&addr, "GET", "/healthz", &[], b"");
    assert_eq!((got, body.as_slice()), (200, &b"ok\n"[..]));
}

#[test]
fn bad_functions_fail_at_start_up() {
    let dir = scratch();
    let data = text(1000, 1);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a", data: &data, strips: None }]);
    let command = dir.path().join("wc.toml");
    std::fs::write(&command, format!("[module]\npath = {:?}\n", guest_for("wc", Flavor::Core).to_str().unwrap()))
        .unwrap();
    let query = manifest(dir.path(), "query", &guest_for("query", Flavor::Core), &img, "");
    for (args, want) in [
        (vec![format!("wc={}", command.display())], "needs `invoke = \"handle\"`"),
        (vec!["noequals".to_string()], "NAME=MANIFEST.toml"),
        (vec![format!("bad name={}", query.display())], "NAME must be"),
        (vec![format!("q={}", dir.path().join("missing.toml").display())], "cannot read the manifest"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_famfs-serve"));
        cmd.args(["--listen", "127.0.0.1:0"]);
        for a in &args {
            cmd.args(["--function", a]);
        }
        let o = cmd.output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Issue 21, items 9 and 10: the concurrency is checked against the caps the functions'
/// manifests give their guests (all of them must fit the process's kernel-mapping budget at
/// once), not against defaults that no invocation uses.
#[test]
fn the_concurrency_fits_the_functions_caps() {
    let dir = scratch();
    let data = text(1000, 1);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/a", data: &data, strips: None }]);
    let probe = guest_for("handler_probe", Flavor::Component);
    // 16 guests of 4096 kernel mappings (the default) are more than half of vm.max_map_count
    // (65,530 by default): refused at start, saying what to change.
    let big = manifest(dir.path(), "big", &probe, &img, "");
    let o = Command::new(env!("CARGO_BIN_EXE_famfs-serve"))
        .args(["--listen", "127.0.0.1:0", "--max-concurrency", "16", "--function"])
        .arg(format!("f={}", big.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let budget = famfs_host_api::map_budget::total();
    if 16 * 4096 > budget {
        assert!(
            !o.status.success() && err.contains("max_kernel_mappings") && err.contains("vm.max_map_count"),
            "{err}"
        );
    }
    // With a cap that fits, the same concurrency serves.
    let small = manifest(dir.path(), "small", &probe, &img, "max_kernel_mappings = 1024");
    let server = start(&[("f", &small)], &["--max-concurrency", "16"]);
    let (status, _, body) = request(&server.addr, "POST", "/invoke/f", &[], b"echo:fits");
    assert_eq!((status, body.as_slice()), (200, &b"fits"[..]));
}

/// The SQL guest as a function: a query in, JSON (or CSV) out; DataFusion's errors are 422.
#[test]
fn serves_sql_over_http() {
    let dir = scratch();
    let mut csv = String::from("site,celsius\n");
    for i in 0..3000 {
        csv.push_str(&format!("{},{}\n", ["north", "south", "east"][i % 3], i % 40));
    }
    let img = image_with(
        dir.path(),
        32 << 20,
        &[ImageFile { path: "logs/readings.csv", data: csv.as_bytes(), strips: None }],
    );
    let sql = manifest(dir.path(), "sql", &guest_for("sql_handler", Flavor::Core), &img, "timeout = \"60s\"");
    let cache = famfs_run_tests::sql_compiled_cache();
    let server = start(&[("sql", &sql)], &["--cache-dir", cache.to_str().unwrap()]);
    let (status, head, body) = request(
        &server.addr,
        "POST",
        "/invoke/sql",
        &[],
        b"SELECT site, count(*) AS n, sum(celsius) AS total FROM readings GROUP BY site ORDER BY site",
    );
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // i % 3 == 2 is east: i = 2, 5, ..., 2999; celsius i % 40.
    let east: u64 = (0..3000u64).filter(|i| i % 3 == 2).map(|i| i % 40).sum();
    assert_eq!(rows[0], serde_json::json!({"site": "east", "n": 1000, "total": east}));
    let (status, _, body) = request(
        &server.addr,
        "POST",
        "/invoke/sql",
        &[],
        br#"{"sql": "SELECT max(celsius) AS m FROM readings", "format": "csv"}"#,
    );
    assert_eq!((status, String::from_utf8(body).unwrap().as_str()), (200, "m\n39\n"));
    let (status, _, body) = request(&server.addr, "POST", "/invoke/sql", &[], b"SELECT nothing FROM readings");
    assert_eq!(status, 422);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["message"].as_str().unwrap().contains("No field named nothing"), "{v}");
}
