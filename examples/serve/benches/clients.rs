//! `cargo bench -p famfs-serve --bench clients`: a well-behaved client's latency while
//! famfs-serve is under hostile load (prints a table; not a timed test). One run, one server:
//! first the client alone (the baseline), then the same client while, at once,
//! - 64 connections trickle their headers a byte every 500 ms (cut off by `--header-timeout`),
//! - 16 clients each send a 15 MiB echo and never read the answer (cut off by
//!   `--send-timeout`),
//! - 8 connections send 200 requests each as fast as the server answers (a flood, turned away
//!   with 503 past `--max-concurrency` + `--max-queue`).
//!
//! The client sends `FAMFS_CLIENT_REQUESTS` (default 300) small echoes, one at a time, each on a
//! new connection, and retries a 503 after its `Retry-After`; its latency is from the first try
//! to the answer.

#[path = "../tests/support/server.rs"]
mod support;
use support::Server;

use famfs_run_tests::{Flavor, ImageFile, guest_for, image_with, scratch, text};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One request on a new connection: the status, or an error.
fn once(addr: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST /invoke/probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))
}

/// The well-behaved client: `n` echoes, retrying 503s; (latencies in ms, retries).
fn client(addr: &str, n: usize) -> (Vec<f64>, usize) {
    let (mut lat, mut retries) = (Vec::with_capacity(n), 0);
    for i in 0..n {
        let body = format!("echo:client-{i}");
        let t = Instant::now();
        loop {
            match once(addr, body.as_bytes()) {
                Ok(200) => break,
                Ok(503) => {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => panic!("the well-behaved client got {other:?}"),
            }
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (lat, retries)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("FAMFS_CLIENT_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let dir = scratch();
    let data = text(1 << 20, 4);
    let img = image_with(dir.path(), 16 << 20, &[ImageFile { path: "logs/app.log", data: &data, strips: None }]);
    let manifest = dir.path().join("probe.toml");
    std::fs::write(
        &manifest,
        format!(
            "[module]\npath = {:?}\ninvoke = \"handle\"\n[source]\ndevice = {:?}\ndatasets = [\"logs\"]\n",
            guest_for("handler_probe", Flavor::Component).to_str().unwrap(),
            img.to_str().unwrap()
        ),
    )
    .unwrap();
    let server = Server::start(
        &manifest,
        &["--max-concurrency", "4", "--max-queue", "8", "--header-timeout", "5s", "--send-timeout", "5s"],
    );
    let addr = server.addr.clone();

    let (mut alone, alone_retries) = client(&addr, n);
    eprintln!("alone: {n} requests done");

    let stop = Arc::new(AtomicBool::new(false));
    let flood_answers = Arc::new(AtomicUsize::new(0));
    let flood_busy = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..64 {
        let (addr, stop) = (addr.clone(), stop.clone());
        load.push(std::thread::spawn(move || {
            let header =
                b"POST /invoke/probe HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&addr) else { continue };
                for b in header {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }));
    }
    for _ in 0..16 {
        let (addr, stop) = (addr.clone(), stop.clone());
        load.push(std::thread::spawn(move || {
            let mut body = b"echo:".to_vec();
            body.resize(15 << 20, b'x');
            // Each sends its request once and then holds the connection without reading, until
            // the server gives up on it (or the run ends).
            let Ok(mut s) = TcpStream::connect(&addr) else { return };
            // A request turned away before its body is read must not block this thread.
            let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
            let head = format!("POST /invoke/probe HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(&body));
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(s);
        }));
    }
    for _ in 0..8 {
        let (addr, stop, answers, busy) = (addr.clone(), stop.clone(), flood_answers.clone(), flood_busy.clone());
        load.push(std::thread::spawn(move || {
            for i in 0..200 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match once(&addr, format!("echo:flood-{i}").as_bytes()) {
                    Ok(503) => busy.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => answers.fetch_add(1, Ordering::Relaxed),
                    Err(_) => 0,
                };
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let (mut loaded, loaded_retries) = client(&addr, n);
    let took = t.elapsed();
    eprintln!("under load: {n} requests done; stopping the load");
    stop.store(true, Ordering::Relaxed);
    for h in load {
        let _ = h.join();
    }
    drop(server);

    alone.sort_by(f64::total_cmp);
    loaded.sort_by(f64::total_cmp);
    println!(
        "famfs-serve, a well-behaved client's {n} echoes alone, then under 64 trickling headers, 16 clients that never read a 15 MiB answer and an 8-connection flood ({} answered, {} turned away with 503) for {:.1} s",
        flood_answers.load(Ordering::Relaxed),
        flood_busy.load(Ordering::Relaxed),
        took.as_secs_f64()
    );
    println!();
    println!("| latency (ms) | p50 | p95 | p99 | max | 503s retried |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, l, r) in [("alone", &alone, alone_retries), ("under hostile load", &loaded, loaded_retries)] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {r} |",
            percentile(l, 0.5),
            percentile(l, 0.95),
            percentile(l, 0.99),
            l[l.len() - 1]
        );
    }
}
