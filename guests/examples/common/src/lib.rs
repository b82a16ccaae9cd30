//! What the example guests share: their command line (`[--mode map|read|wasi] [--window
//! SIZE_BYTES] ARGS...`), feeding a dataset's bytes to a kernel in chunks by each path, and
//! reporting errors (`error: ...` on stderr, exit 1; wrong usage, exit 2).
#![deny(missing_docs)]

use famfs_guest::Dataset;
use std::io::Read;

/// How a guest reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Zero-copy: the dataset mapped into memory, in windows (`Dataset::windows`).
    Map,
    /// Copying: `Dataset::read` in 4 MiB chunks.
    Read,
    /// WASI: the name is a path in a preopened directory, read with `std::fs` in 1 MiB chunks.
    Wasi,
}

/// Chunk size of [`Mode::Read`].
pub const READ_CHUNK: usize = 4 << 20;

/// Chunk size of [`Mode::Wasi`].
pub const WASI_CHUNK: usize = 1 << 20;

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--mode` (default: map).
    pub mode: Mode,
    /// `--window` in bytes (default: the whole dataset if at most 1 GiB, else 256 MiB).
    pub window: Option<u64>,
    /// `--populate`: fault each window's pages in when it is mapped (one `MADV_POPULATE_READ`
    /// instead of a page fault per page on first touch).
    pub populate: bool,
    /// The positional arguments.
    pub args: Vec<String>,
}

/// Prints `error: {message}` to stderr and exits with code 1.
pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// Prints the usage to stderr and exits with code 2.
pub fn usage(program: &str, positional: &str) -> ! {
    eprintln!("usage: {program} [--mode map|read|wasi] [--window SIZE_BYTES] [--populate] {positional}");
    eprintln!("  --mode map   map the dataset zero-copy (default), in windows of --window bytes");
    eprintln!("  --populate   with map: fault each window in when it is mapped");
    eprintln!("  --mode read  copy it out with dataset.read, 4 MiB at a time");
    eprintln!("  --mode wasi  NAME is a WASI path (a directory preopened with famfs-run --dir)");
    std::process::exit(2)
}

/// `123`, or with a K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Parses the process's arguments; wrong usage (or fewer than `min_args` positional
/// arguments) prints the usage and exits 2.
pub fn parse_args(program: &str, positional: &str, min_args: usize) -> Options {
    let mut opts = Options { mode: Mode::Map, window: None, populate: false, args: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if !opts.args.is_empty() {
            opts.args.push(a);
            continue;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--mode" => {
                opts.mode = match inline.or_else(|| args.next()).as_deref() {
                    Some("map") => Mode::Map,
                    Some("read") => Mode::Read,
                    Some("wasi") => Mode::Wasi,
                    _ => usage(program, positional),
                }
            }
            "--window" => match inline.or_else(|| args.next()).as_deref().and_then(parse_size) {
                Some(w) if w > 0 => opts.window = Some(w),
                _ => usage(program, positional),
            },
            "--populate" if inline.is_none() => opts.populate = true,
            "--" => opts.args.extend(args.by_ref()),
            "-h" | "--help" => usage(program, positional),
            f if f.starts_with("--") => usage(program, positional),
            _ => opts.args.push(a),
        }
    }
    if opts.args.len() < min_args {
        usage(program, positional);
    }
    opts
}

/// Reads until `buf` is full or the end of the file; the number of bytes read.
fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Feeds every byte of `name` to `f`, in order, in chunks as `opts.mode` reads them (windows
/// of a mapping, `dataset.read` chunks, or WASI reads). Returns the number of bytes, or an
/// error message that names `name`.
pub fn scan(opts: &Options, name: &str, mut f: impl FnMut(&[u8])) -> Result<u64, String> {
    let err = |e: &dyn std::fmt::Display| format!("{name}: {e}");
    match opts.mode {
        Mode::Map => {
            let ds = Dataset::open(name).map_err(|e| err(&e))?;
            let windows = match opts.window {
                Some(w) => ds.windows(w),
                None => ds.windows_default(),
            }
            .populate(opts.populate);
            for window in windows {
                let window = window.map_err(|e| err(&e))?;
                f(window.as_slice());
            }
            Ok(ds.len())
        }
        Mode::Read => {
            let ds = Dataset::open(name).map_err(|e| err(&e))?;
            let mut offset = 0;
            while offset < ds.len() {
                let want = (ds.len() - offset).min(READ_CHUNK as u64) as usize;
                let chunk = ds.read(offset, want).map_err(|e| err(&e))?;
                if chunk.is_empty() {
                    return Err(err(&format_args!(
                        "the dataset ended at {offset} bytes, {} expected (did it shrink?)",
                        ds.len()
                    )));
                }
                f(&chunk);
                offset += chunk.len() as u64;
            }
            Ok(offset)
        }
        Mode::Wasi => {
            let mut file = std::fs::File::open(name).map_err(|e| err(&e))?;
            let mut buf = vec![0u8; WASI_CHUNK];
            let mut total = 0u64;
            loop {
                let n = fill(&mut file, &mut buf).map_err(|e| err(&e))?;
                if n == 0 {
                    break;
                }
                f(&buf[..n]);
                total += n as u64;
            }
            Ok(total)
        }
    }
}

/// Like [`scan`], but prints the error and exits 1 on failure.
pub fn scan_or_exit(opts: &Options, name: &str, f: impl FnMut(&[u8])) -> u64 {
    scan(opts, name, f).unwrap_or_else(|e| fail(e))
}
