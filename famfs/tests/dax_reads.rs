//! Reads through the dax path (a whole-device shared map, what a `/dev/daxX.Y` gets) when the
//! memory behind it is gone: poisoned CXL memory there used to raise SIGBUS in the copy and kill
//! the process. The copy is now the kernel's, and a page it cannot read is an I/O error of that
//! read. Emulated here by cutting an image file short under the map (`IoMode::Mapped`).

mod common;

use common::*;
use famfs::{Access, Attrs, Device, Famfs, IoMode, Layout, RelPath, Source, Writer};

#[test]
fn a_read_of_memory_that_is_gone_is_an_error_not_a_dead_process() {
    let dir = scratch();
    let img = new_image(dir.path(), "dax.img", 32 << 20);
    let data = pattern(4 << 20, 8);
    let mut w = Writer::open(&img, &master()).unwrap();
    let attrs = Attrs { mode: 0o644, uid: 0, gid: 0 };
    let f = w
        .create_file(
            &RelPath::parse("x.bin").unwrap(),
            Source::Bytes(&data),
            data.len() as u64,
            attrs,
            Layout::Simple,
            &mut |_| {},
        )
        .unwrap();
    drop(w);
    let start = f.map.extents()[0].offset;
    let fs = Famfs::from_device(Device::open_with(&img, Access::ReadOnly, IoMode::Mapped).unwrap()).unwrap();
    let file = fs.namespace().file("x.bin").unwrap().clone();
    assert_eq!(fs.read_to_vec(&file).unwrap(), data, "the whole file, before");
    // The device loses everything from 1 MiB into the file's data.
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(start + (1 << 20)).unwrap();
    let mut head = vec![0u8; 1 << 20];
    assert_eq!(fs.read_at(&file, 0, &mut head).unwrap(), 1 << 20);
    assert_eq!(head, data[..1 << 20], "what is still there reads as before");
    let mut buf = vec![0u8; 1 << 20];
    let e = fs.read_at(&file, 512 << 10, &mut buf).unwrap_err().to_string();
    assert!(e.contains("cannot be read") && e.contains(&format!("{:#x}", start + (512 << 10))), "{e}");
    assert!(fs.read_to_vec(&file).is_err(), "famfsctl cat's read fails the same way");
}
