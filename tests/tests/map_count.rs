//! Kernel mappings come back (issue 11, defect 4): each map/unmap at a new address used to split
//! the guest's memory into more kernel mappings that never merged back, and a guest reached the
//! kernel's limit (65,530) in about 33,000 cycles, after which new guests and threads failed.
//! Now the process's mapping count, watched while a real guest of each flavor runs 20,000
//! map/unmap cycles at varying addresses (and stays alive after them), never rises above what a
//! guest running 10 cycles shows. One test in its own binary, so nothing else in the process
//! maps meanwhile.

use famfs_run_tests::harness::{Spec, catalog_device, program};
use famfs_run_tests::{Flavor, ImageFile, image_with, pattern, scratch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn kernel_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// Runs `run` on another thread while sampling the mapping count; returns the highest seen.
fn peak_while(run: impl FnOnce() + Send + 'static) -> usize {
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let worker = std::thread::spawn(move || {
        run();
        flag.store(true, Ordering::Release);
    });
    let mut peak = kernel_mappings();
    while !done.load(Ordering::Acquire) {
        peak = peak.max(kernel_mappings());
        std::thread::sleep(Duration::from_millis(2));
    }
    worker.join().unwrap();
    peak
}

#[test]
fn twenty_thousand_map_unmap_cycles_do_not_grow_the_mapping_count() {
    let dir = scratch();
    let data = pattern(1 << 20, 9);
    let img = image_with(dir.path(), 32 << 20, &[ImageFile { path: "w.bin", data: &data, strips: None }]);
    for flavor in Flavor::ALL {
        program("adversary", flavor);
        let churn = |n: &'static str| {
            let img = img.clone();
            move || {
                let catalog = catalog_device(&img, &["/"]);
                let r = Spec::new("adversary", flavor, &["churn", "w.bin", n, "1"], catalog).run();
                assert_eq!(r.ok().trim(), format!("churned {n}"));
            }
        };
        // Warm-up: the first run of a flavor makes what later runs reuse.
        peak_while(churn("10"));
        let few = peak_while(churn("10"));
        let many = peak_while(churn("20000"));
        let after = kernel_mappings();
        println!("{flavor:?}: peak kernel mappings {few} with 10 cycles, {many} with 20000; {after} after");
        assert!(many <= few + 4, "{flavor:?}: peak {many} kernel mappings over 20000 cycles, {few} over 10");
    }
}
