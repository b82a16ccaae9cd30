//! `fs-probe CASE PATH`: what a guest sees of its WASI directories through plain `std::fs`, for
//! famfs-run's tests of the read-only file system served from famfs images.
//!
//! - `ls DIR`: one line per entry, sorted: `{name} {dir|file} {len}`;
//! - `tree DIR`: the same, recursively, with paths relative to DIR;
//! - `stat PATH`: `{dir|file} {len}`;
//! - `cat PATH [OFFSET]`: the bytes from OFFSET (default 0) to the end, on stdout, read in
//!   chunks of various sizes with seeks;
//! - `mutate DIR`: tries every kind of change under DIR and prints `{operation}: {outcome}` per
//!   line (`ok`, or the error kind);
//! - `open PATH`: `ok` or the error kind;
//! - `map-and-read NAME PATH`: maps dataset NAME zero-copy (famfs:dataset) and reads file PATH
//!   through `std::fs`, in one run: `mapped {len} {byte sum} read {len} {byte sum}`.
//!
//! Errors print `error: ...` and exit 1; wrong usage exits 2.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

fn kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() { "dir" } else { "file" }
}

fn ls(dir: &Path, prefix: &str, recursive: bool, out: &mut Vec<String>) {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .unwrap_or_else(|e| fail(format_args!("{}: {e}", dir.display())))
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let meta = e.metadata().unwrap_or_else(|err| fail(format_args!("{:?}: {err}", e.path())));
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        out.push(format!("{name} {} {}", kind(&meta.file_type()), meta.len()));
        if recursive && meta.is_dir() {
            ls(&e.path(), &format!("{name}/"), true, out);
        }
    }
}

fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (case, path) = match args.as_slice() {
        [c, p, ..] => (c.as_str(), Path::new(p)),
        _ => {
            eprintln!("usage: fs-probe ls|tree|stat|cat|mutate|open PATH [OFFSET]");
            std::process::exit(2)
        }
    };
    match case {
        "ls" | "tree" => {
            let mut lines = Vec::new();
            ls(path, "", case == "tree", &mut lines);
            for l in lines {
                println!("{l}");
            }
        }
        "stat" => {
            let m = fs::metadata(path).unwrap_or_else(|e| fail(format_args!("{}: {e}", path.display())));
            println!("{} {}", kind(&m.file_type()), m.len());
        }
        "cat" => {
            let offset: u64 = args.get(2).map_or(0, |o| o.parse().unwrap_or_else(|_| fail("OFFSET")));
            let mut f = fs::File::open(path).unwrap_or_else(|e| fail(format_args!("{}: {e}", path.display())));
            f.seek(SeekFrom::Start(offset)).unwrap_or_else(|e| fail(format_args!("seek: {e}")));
            let mut out = std::io::stdout().lock();
            // Uneven chunk sizes, so reads straddle the host's chunks.
            let sizes = [1usize, 7, 4096, 65_536, 1 << 20, 3];
            let mut buf = vec![0u8; 1 << 20];
            let mut i = 0;
            loop {
                let want = sizes[i % sizes.len()];
                i += 1;
                match f.read(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => out.write_all(&buf[..n]).unwrap_or_else(|e| fail(e)),
                    Err(e) => fail(format_args!("read: {e}")),
                }
            }
        }
        "mutate" => {
            let new = path.join("new-file");
            let existing = fs::read_dir(path)
                .ok()
                .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.file_type().is_ok_and(|t| t.is_file()))))
                .map(|e| e.path())
                .unwrap_or_else(|| fail("mutate needs a directory with a file in it"));
            println!("create: {}", outcome(fs::File::create(&new)));
            println!("write: {}", outcome(fs::OpenOptions::new().write(true).open(&existing)));
            println!("append: {}", outcome(fs::OpenOptions::new().append(true).open(&existing)));
            println!("truncate: {}", outcome(fs::OpenOptions::new().write(true).truncate(true).open(&existing)));
            println!("create-new: {}", outcome(fs::OpenOptions::new().write(true).create_new(true).open(&new)));
            println!("rename: {}", outcome(fs::rename(&existing, path.join("renamed"))));
            println!("unlink: {}", outcome(fs::remove_file(&existing)));
            println!("mkdir: {}", outcome(fs::create_dir(path.join("new-dir"))));
            println!("rmdir: {}", outcome(fs::remove_dir(path)));
            println!("hard-link: {}", outcome(fs::hard_link(&existing, path.join("link"))));
            let f = fs::File::open(&existing).unwrap_or_else(|e| fail(e));
            println!("set-len: {}", outcome(f.set_len(0)));
            println!("set-times: {}", outcome(f.set_modified(std::time::SystemTime::UNIX_EPOCH)));
            println!("write-read-only-handle: {}", outcome((&f).write_all(b"x")));
            println!("sync: {}", outcome(f.sync_all()));
        }
        "open" => println!("{}", outcome(fs::File::open(path))),
        "map-and-read" => {
            let name = args[1].as_str();
            let file = Path::new(args.get(2).unwrap_or_else(|| fail("map-and-read NAME PATH")));
            let ds = famfs_guest::Dataset::open(name).unwrap_or_else(|e| fail(format_args!("{name}: {e}")));
            let m = ds.map().unwrap_or_else(|e| fail(format_args!("{name}: {e}")));
            let mapped: u64 = m.as_slice().iter().map(|&b| u64::from(b)).sum();
            let bytes = fs::read(file).unwrap_or_else(|e| fail(format_args!("{}: {e}", file.display())));
            let read: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            println!("mapped {} {mapped} read {} {read}", m.len(), bytes.len());
        }
        _ => {
            eprintln!("unknown case {case}");
            std::process::exit(2)
        }
    }
}
