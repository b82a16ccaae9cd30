//! `Writer::create_file_with`: a file written through a `FileSink` is the bytes written, on
//! every layout; a fill that writes too little, too much, or fails leaves the file system as it
//! was (nothing logged, the space free again).

mod common;

use common::*;
use famfs::alloc::Interleave;
use famfs::{Attrs, Error, Famfs, Layout, RelPath, Writer};
use std::io::{Read, Write};

const MIB: u64 = 1 << 20;

fn attrs() -> Attrs {
    Attrs { mode: 0o644, uid: 0, gid: 0 }
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

/// Writes `data` in uneven pieces (1 byte, then growing), as a serializer would.
fn fill_with(data: &[u8]) -> impl FnMut(&mut famfs::FileSink<'_>) -> std::io::Result<()> + '_ {
    move |sink| {
        let (mut at, mut step) = (0usize, 1usize);
        while at < data.len() {
            let n = step.min(data.len() - at);
            sink.write_all(&data[at..at + n])?;
            at += n;
            step = step * 3 + 7;
        }
        Ok(())
    }
}

#[test]
fn sink_writes_the_file_on_simple_and_interleaved_layouts() {
    let dir = scratch();
    let img = new_image(dir.path(), "s.img", 64 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let data: Vec<u8> = (0..(5 * MIB + 12345)).map(|i| (i * 31 % 251) as u8).collect();
    let simple = w.create_file_with(&p("simple"), data.len() as u64, attrs(), Layout::Simple, &mut fill_with(&data));
    assert_eq!(simple.unwrap().size, data.len() as u64);
    let striped = Layout::Interleaved(Interleave { nstrips: 3, nbuckets: 3, chunk_size: 2 * MIB });
    w.create_file_with(&p("striped"), data.len() as u64, attrs(), striped, &mut fill_with(&data)).unwrap();
    drop(w);
    let fs = Famfs::open(&img).unwrap();
    for name in ["simple", "striped"] {
        let f = fs.namespace().file(name).unwrap();
        assert!(fs.read_to_vec(f).unwrap() == data, "{name} differs from what was written");
    }
    assert_eq!(famfs::fsck::fsck_path(&img, None).exit_code(), 0);
}

#[test]
fn short_long_or_failed_fills_log_nothing_and_free_the_space() {
    let dir = scratch();
    let img = new_image(dir.path(), "f.img", 16 * MIB);
    let mut w = Writer::open(&img, &master()).unwrap();
    let before_entries = w.fs().log_header().next_index;
    let free = famfs::free_bytes(w.fs());

    let short = w.create_file_with(&p("short"), 100, attrs(), Layout::Simple, &mut |s| s.write_all(&[1; 99]));
    assert!(matches!(short, Err(Error::SourceChanged { expected: 100, got: 99, .. })), "{short:?}");

    let long = w.create_file_with(&p("long"), 100, attrs(), Layout::Simple, &mut |s| s.write_all(&[1; 101]));
    let e = long.unwrap_err();
    assert!(e.to_string().contains("more than the 100 bytes"), "{e}");

    let failed = w.create_file_with(&p("failed"), 100, attrs(), Layout::Simple, &mut |_| {
        Err(std::io::Error::other("the serializer gave up"))
    });
    assert!(failed.unwrap_err().to_string().contains("the serializer gave up"));

    assert_eq!(w.fs().log_header().next_index, before_entries, "a failed fill was logged");
    // The space of the failed files is free again: a file of all of it fits.
    let bitmap = w.allocator().bitmap();
    let all = bitmap.largest_free() * bitmap.unit();
    w.create_file_with(&p("all"), all, attrs(), Layout::Simple, &mut |s| {
        std::io::copy(&mut std::io::repeat(7).take(all), s).map(|_| ())
    })
    .unwrap();
    drop(w);
    let fs = Famfs::open(&img).unwrap();
    assert!(fs.namespace().file("short").is_err() && fs.namespace().file("long").is_err());
    assert_eq!(famfs::free_bytes(&fs), free - all);
}
