//! `cargo bench -p famfs-serve --bench soak`: a soak test that prints a table (not a timed
//! test). 10,000 invocations (`FAMFS_SOAK_N`), 16 at a time, first through the embedding API
//! (`Runtime::invoke`, in this process), then through famfs-serve over loopback (its own
//! process), mixing good guests (60%: map and sum a dataset; 10%: echo), traps (10%), timeouts
//! (10%: a spinning guest with a 20 ms limit) and media errors (10%: a guest reading a mapped
//! file in a loop while the file is cut under it). For each it prints the process's resident
//! memory, open descriptors and kernel mappings after a warm-up of 1,000 invocations and at the
//! end: the goal is flat within 5%. Threads are shown too: tokio's blocking pools grow with the
//! load (each thread is two kernel mappings, its stack and guard) and shrink after 10 s idle, so
//! a warm-up shorter than the pools' growth shows them as mappings gained.

#[path = "../tests/support/server.rs"]
mod support;
use support::Server;

use famfs_host_api::Catalog;
use famfs_run_tests::{Flavor, guest_for, pattern};
use famfs_runtime::{Entry, Limits, RunError, Runtime};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
/// Each guest's kernel-mapping cap: 16 of them fit the budget of half of `vm.max_map_count`.
const KERNEL_MAPPINGS: usize = 1024;
const WARM_UP: usize = 1000;
const MEDIA_FILE: usize = 256 << 10;

/// What one invocation does, by its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Sum,
    Echo,
    Trap,
    Timeout,
    Media,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 10 {
            0..=5 => Kind::Sum,
            6 => Kind::Echo,
            7 => Kind::Trap,
            8 => Kind::Timeout,
            _ => Kind::Media,
        }
    }

    /// The handler probe's request, and the time limit.
    fn request(self, i: usize) -> (Vec<u8>, Duration) {
        match self {
            Kind::Sum => (b"sum:data/good.bin".to_vec(), Duration::from_secs(30)),
            Kind::Echo => (format!("echo:{i}").into_bytes(), Duration::from_secs(30)),
            Kind::Trap => (b"trap".to_vec(), Duration::from_secs(30)),
            Kind::Timeout => (b"spin".to_vec(), Duration::from_millis(20)),
            Kind::Media => (format!("spin-read:media/{i}.bin").into_bytes(), Duration::from_secs(10)),
        }
    }
}

/// Resident memory (KiB), open descriptors, kernel mappings and threads of process `pid`.
#[derive(Clone, Copy, Debug)]
struct Stats {
    rss_kb: u64,
    fds: usize,
    maps: usize,
    threads: usize,
}

fn stats(pid: u32) -> Stats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    Stats {
        rss_kb: rss.trim().trim_end_matches(" kB").parse().unwrap(),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count(),
        maps: std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap().lines().count(),
        threads: std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count(),
    }
}

/// The data set: `mnt/data/good.bin`, and the directory media files are made in.
fn setup(dir: &Path) -> PathBuf {
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(mnt.join("data")).unwrap();
    std::fs::create_dir_all(mnt.join("media")).unwrap();
    std::fs::write(mnt.join("data/good.bin"), pattern(1 << 20, 1)).unwrap();
    mnt
}

/// Makes the file a media invocation reads, and cuts it 300 ms later (after the guest mapped
/// it, even with every slot busy).
fn media_file(mnt: &Path, i: usize) -> std::thread::JoinHandle<()> {
    let path = mnt.join(format!("media/{i}.bin"));
    std::fs::write(&path, vec![1u8; MEDIA_FILE]).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    })
}

fn remove_media_file(mnt: &Path, i: usize) {
    let _ = std::fs::remove_file(mnt.join(format!("media/{i}.bin")));
}

/// Outcomes by kind: (as expected, otherwise).
#[derive(Default)]
struct Tally {
    expected: [AtomicUsize; 5],
    unexpected: [AtomicUsize; 5],
}

impl Tally {
    fn add(&self, kind: Kind, ok: bool) {
        let slot = if ok { &self.expected } else { &self.unexpected };
        slot[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> String {
        let kinds = [Kind::Sum, Kind::Echo, Kind::Trap, Kind::Timeout, Kind::Media];
        let part = |k: Kind| {
            let (e, u) = (
                self.expected[k as usize].load(Ordering::Relaxed),
                self.unexpected[k as usize].load(Ordering::Relaxed),
            );
            if u == 0 { format!("{k:?} {e}") } else { format!("{k:?} {e} (+{u} unexpected)") }
        };
        kinds.map(part).join(", ")
    }

    fn unexpected(&self) -> usize {
        self.unexpected.iter().map(|u| u.load(Ordering::Relaxed)).sum()
    }
}

/// Whether a Runtime outcome is what `kind` should give. A media invocation whose file was cut
/// before the guest mapped it spins until its time limit instead: also accepted.
fn runtime_outcome_ok(kind: Kind, r: &Result<i32, RunError>, reply: Option<&[u8]>) -> bool {
    match (kind, r) {
        (Kind::Sum, Ok(0)) => reply.is_some_and(|b| !b.is_empty()),
        (Kind::Echo, Ok(0)) => true,
        (Kind::Trap, Err(RunError::Trap { .. })) => true,
        (Kind::Timeout, Err(RunError::Timeout { .. })) => true,
        (Kind::Media, Err(RunError::Media(_) | RunError::Timeout { .. })) => true,
        _ => false,
    }
}

fn soak_runtime(mnt: &Path, n: usize) -> (Stats, Stats, Tally, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // 16 guests' kernel-mapping caps must fit the process's budget together (the default 4096
    // each fits 7).
    let limits = Limits { max_kernel_mappings: KERNEL_MAPPINGS, ..Limits::default() };
    let runtime = Runtime::builder().limits(limits).max_concurrency(CONCURRENCY).build().unwrap();
    let program = runtime.load_file(&guest_for("handler_probe", Flavor::Component), None, true).unwrap();
    let mut catalog = Catalog::open_mount(mnt).unwrap();
    catalog.grant("/").unwrap();
    let tally = Arc::new(Tally::default());
    let pid = std::process::id();
    let batch = |from: usize, to: usize| {
        rt.block_on(async {
            let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
            // Finished tasks are reaped as the run goes: a task's memory stays until it is joined.
            let mut tasks = tokio::task::JoinSet::new();
            for i in from..to {
                let permit = gate.clone().acquire_owned().await.unwrap();
                let (runtime, program, catalog, tally, mnt) =
                    (runtime.clone(), program.clone(), catalog.clone(), tally.clone(), mnt.to_path_buf());
                while let Some(done) = tasks.try_join_next() {
                    done.unwrap();
                }
                tasks.spawn(async move {
                    let kind = Kind::of(i);
                    let (input, timeout) = kind.request(i);
                    let cutter = (kind == Kind::Media).then(|| media_file(&mnt, i));
                    let mut inv = runtime.invocation("probe");
                    inv.catalog = catalog;
                    inv.entry = Entry::Handle { input };
                    inv.limits = Limits { timeout: Some(timeout), ..runtime.limits() };
                    let outcome = runtime.invoke(&program, inv).await;
                    tally.add(kind, runtime_outcome_ok(kind, &outcome.result, outcome.reply.as_deref()));
                    if let Some(c) = cutter {
                        let _ = tokio::task::spawn_blocking(move || c.join()).await;
                        remove_media_file(&mnt, i);
                    }
                    drop(permit);
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        })
    };
    batch(0, WARM_UP);
    let warm = stats(pid);
    let t = Instant::now();
    batch(WARM_UP, n);
    let took = t.elapsed();
    let end = stats(pid);
    (warm, end, Arc::try_unwrap(tally).ok().unwrap(), took)
}

/// One keep-alive HTTP request; the status and body.
fn post(s: &mut BufReader<TcpStream>, body: &[u8], timeout_ms: u128) -> std::io::Result<(u16, Vec<u8>)> {
    let mut message = format!(
        "POST /invoke/probe HTTP/1.1\r\nHost: x\r\nx-famfs-timeout-ms: {timeout_ms}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    message.extend_from_slice(body);
    s.get_mut().write_all(&message)?;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut reply = vec![0; len];
    s.read_exact(&mut reply)?;
    Ok((status, reply))
}

fn http_outcome_ok(kind: Kind, status: u16, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    match (kind, status) {
        (Kind::Sum | Kind::Echo, 200) => true,
        (Kind::Trap, 500) => text.contains("\"trap\""),
        (Kind::Timeout, 504) => true,
        (Kind::Media, 500) => text.contains("\"media\""),
        (Kind::Media, 504) => true,
        _ => false,
    }
}

fn soak_serve(dir: &Path, mnt: &Path, n: usize) -> (Stats, Stats, Tally, Duration) {
    let manifest = dir.join("probe.toml");
    let module = guest_for("handler_probe", Flavor::Component);
    std::fs::write(
        &manifest,
        format!(
            "[module]\npath = {:?}\ninvoke = \"handle\"\n[source]\nmount = {:?}\ndatasets = [\"/\"]\n[limits]\nmax_kernel_mappings = {KERNEL_MAPPINGS}\n",
            module.to_str().unwrap(),
            mnt.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = Server::start(&manifest, &["--max-concurrency", "16", "--max-queue", "64"]);
    let addr = server.addr.clone();
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let batch = |to: usize| {
        let clients: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (addr, tally, next, mnt) = (addr.clone(), tally.clone(), next.clone(), mnt.to_path_buf());
                std::thread::spawn(move || {
                    let connect = || BufReader::new(TcpStream::connect(&addr).unwrap());
                    let mut s = connect();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= to {
                            next.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                        let kind = Kind::of(i);
                        let (input, timeout) = kind.request(i);
                        let cutter = (kind == Kind::Media).then(|| media_file(&mnt, i));
                        let mut answer = post(&mut s, &input, timeout.as_millis());
                        if answer.is_err() {
                            s = connect();
                            answer = post(&mut s, &input, timeout.as_millis());
                        }
                        let ok = answer.as_ref().is_ok_and(|(status, body)| http_outcome_ok(kind, *status, body));
                        tally.add(kind, ok);
                        if let Some(c) = cutter {
                            let _ = c.join();
                            remove_media_file(&mnt, i);
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    };
    batch(WARM_UP);
    let warm = stats(server.child.id());
    let t = Instant::now();
    batch(n);
    let took = t.elapsed();
    let end = stats(server.child.id());
    drop(server);
    (warm, end, Arc::try_unwrap(tally).ok().unwrap(), took)
}

fn change(a: u64, b: u64) -> String {
    format!("{:+.1}%", (b as f64 - a as f64) / a as f64 * 100.0)
}

fn main() {
    let n: usize = std::env::var("FAMFS_SOAK_N").map_or(10_000, |s| s.parse().expect("FAMFS_SOAK_N"));
    assert!(n > WARM_UP, "FAMFS_SOAK_N must exceed the warm-up ({WARM_UP})");
    let dir = famfs_run_tests::bench::dir("famfs-soak-");
    let mnt = setup(dir.path());
    println!("soak: {n} invocations, {CONCURRENCY} at a time (first {WARM_UP} are the warm-up)\n");
    println!(
        "| path | invocations after warm-up (s) | outcomes | RSS MiB warm → end | descriptors | kernel mappings | threads |"
    );
    println!("|---|---:|---|---|---|---|---|");
    let mut unexpected = 0;
    for (path, (warm, end, tally, took)) in
        [("Runtime::invoke", soak_runtime(&mnt, n)), ("famfs-serve (HTTP)", soak_serve(dir.path(), &mnt, n))]
    {
        println!(
            "| {path} | {} ({:.1}) | {} | {} → {} ({}) | {} → {} ({}) | {} → {} ({}) | {} → {} |",
            n - WARM_UP,
            took.as_secs_f64(),
            tally.summary(),
            warm.rss_kb >> 10,
            end.rss_kb >> 10,
            change(warm.rss_kb, end.rss_kb),
            warm.fds,
            end.fds,
            change(warm.fds as u64, end.fds as u64),
            warm.maps,
            end.maps,
            change(warm.maps as u64, end.maps as u64),
            warm.threads,
            end.threads,
        );
        unexpected += tally.unexpected();
    }
    if unexpected > 0 {
        eprintln!("soak: {unexpected} invocations ended otherwise than their kind should");
        std::process::exit(1);
    }
}
