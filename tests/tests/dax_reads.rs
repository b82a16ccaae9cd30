//! The copying paths on a dax source are guarded (issue 12, item 3). A `/dev/daxX.Y` is read
//! through a whole-device shared map; poisoned CXL memory behind it used to raise SIGBUS in the
//! host's copy and kill the process, whatever guest asked. Emulated here with an image opened the
//! dax way (`IoMode::Mapped`) and cut short under the map: a guest's copying `read`, and a WASI
//! read of a file served from the device, now fail that call, and the host goes on.

use famfs::{Access, Device, Famfs, IoMode};
use famfs_host_api::Catalog;
use famfs_run_tests::harness::{Spec, program};
use famfs_run_tests::{Flavor, ImageFile, image_with, pattern, scratch};
use std::sync::Arc;

const NAME: &str = "data/cut.bin";

/// A catalog over `img` opened as a dax device is (the whole device mapped shared).
fn dax_catalog(img: &std::path::Path) -> Catalog {
    let fs = Famfs::from_device(Device::open_with(img, Access::ReadOnly, IoMode::Mapped).unwrap()).unwrap();
    let mut c = Catalog::from_famfs(Arc::new(fs));
    c.grant("/").unwrap();
    c
}

#[test]
fn a_read_of_memory_that_is_gone_fails_the_call_not_the_host() {
    let dir = scratch();
    let data = pattern(4 << 20, 4);
    let img = image_with(dir.path(), 32 << 20, &[ImageFile { path: NAME, data: &data, strips: None }]);
    let catalog = dax_catalog(&img);
    let start = catalog.famfs().unwrap().namespace().file(NAME).unwrap().map.extents()[0].offset;
    // Everything from 1 MiB into the file's data is gone.
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(start + (1 << 20)).unwrap();
    for flavor in Flavor::ALL {
        program("adversary", flavor);
        let r = Spec::new("adversary", flavor, &["raw-read", NAME, "4194304"], catalog.clone()).run();
        // The first 1 MiB can be read; the guest asked for more, in one call of at most 1 MiB.
        assert_eq!(r.ok().trim(), "raw-read 1048576", "{flavor:?}");
        let r = Spec::new("adversary", flavor, &["big-read", NAME, "4194304"], catalog.clone()).run();
        assert_eq!(r.ok().trim(), "big-read io", "{flavor:?}: the read past the cut is an I/O error");
    }
    // WASI reads of the same file served from the device (components): an error, not a crash.
    for flavor in Flavor::COMPONENTS {
        let mut spec = Spec::new("fs-probe", flavor, &["cat", "/d/cut.bin"], catalog.clone());
        spec.famfs_dirs = vec![("/d".into(), "data".into())];
        let r = spec.run();
        let failed = !matches!(r.outcome.result, Ok(0));
        assert!(failed, "{flavor:?}: the WASI read past the cut succeeded");
        assert!(r.stdout.len() <= 1 << 20, "{flavor:?}: {} bytes read past the cut", r.stdout.len());
    }
}
