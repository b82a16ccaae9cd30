//! Many hosts, one famfs: a master adds files to an image in /dev/shm while client processes
//! (stand-ins for other hosts) run guests over it. The clients pick new files up by re-reading
//! the log, without restarting, and never see a half-written file: every file a client can see
//! has exactly the bytes the master wrote.

use famfs::{Attrs, Layout, MkfsOptions, RelPath, Source, Writer};
use famfs_run_tests::{Flavor, guest_for, master, pattern, scratch};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn clients_see_new_files_whole_without_restarting() {
    let dir = scratch();
    let img = dir.path().join("shared.img");
    let marker = dir.path().join("master-done");
    famfs::mkfs(&img, &MkfsOptions { size: Some(256 << 20), ..Default::default() }, &master()).unwrap();
    let mut w = Writer::open(&img, &master()).unwrap();
    let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
    w.mkdir_all(&RelPath::parse("data").unwrap(), Attrs { mode: 0o755, ..attrs }).unwrap();

    let guest = guest_for("sum-u64", Flavor::Core);
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_multihost-client"))
                .args([&img, &guest, &marker])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Each client has compiled its guest and replayed the log once before the master starts.
    let mut readers: Vec<_> = clients.iter_mut().map(|c| BufReader::new(c.stdout.take().unwrap())).collect();
    for r in &mut readers {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
    }
    // The master appends files of several sizes and layouts while the clients read.
    let mut names = Vec::new();
    for seed in 1..=24u64 {
        let len = match seed % 4 {
            0 => 1 + seed as usize * 1000,
            1 => (2 << 20) + seed as usize,
            2 => (5 << 20) - seed as usize,
            _ => 65536 * seed as usize,
        };
        let name = format!("data/f-{seed}-{len}.bin");
        let layout = if seed % 5 == 0 {
            Layout::Interleaved(famfs::alloc::Interleave { nstrips: 2, nbuckets: 2, chunk_size: 2 << 20 })
        } else {
            Layout::Simple
        };
        let data = pattern(len, seed);
        w.create_file(&RelPath::parse(&name).unwrap(), Source::Bytes(&data), len as u64, attrs, layout, &mut |_| {})
            .unwrap();
        names.push(name);
        std::thread::sleep(Duration::from_millis(40));
    }
    std::fs::write(&marker, b"done").unwrap();
    for (c, mut r) in clients.into_iter().zip(readers) {
        let o = c.wait_with_output().unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "a client saw a wrong file:\n{out}\n{err}");
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[..4], ["verified", &names.len().to_string(), "mismatches", "0"], "{out}\n{err}");
        let passes: u64 = fields[5].parse().unwrap();
        let early: u64 = fields[9].parse().unwrap();
        assert!(passes > 1 && early > 0, "the client picked files up while the master wrote: {out}");
    }
}
