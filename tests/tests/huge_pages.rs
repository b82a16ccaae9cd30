//! 2 MiB-aligned mappings (issue 12, item 4): on DAX and on huge-page page cache the kernel maps
//! 2 MiB pages only where the virtual address and the file offset agree modulo 2 MiB. The guest
//! SDK places windows so, and guest memories start 2 MiB-aligned, so a guest's mapping of a file
//! on a `huge=always` tmpfs is mapped with 2 MiB pages: `ShmemPmdMapped` in
//! `/proc/self/smaps_rollup` covers the mapped bytes while the guest holds them.
//!
//! Mounting the tmpfs needs root (or CAP_SYS_ADMIN); where that is refused the test says so on
//! stderr and checks nothing else.

use famfs_host_api::MapTechnique;
use famfs_run_tests::harness::{self, Spec, catalog_mount, program};
use famfs_run_tests::{Flavor, pattern};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `huge=always` tmpfs, unmounted when dropped.
struct HugeTmpfs {
    dir: PathBuf,
    _scratch: tempfile::TempDir,
}

impl HugeTmpfs {
    fn mount() -> Option<HugeTmpfs> {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("huge");
        std::fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "huge=always,size=512m", "famfs-run-huge"])
            .arg(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "huge_pages: cannot mount a huge=always tmpfs here ({}); not run",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(HugeTmpfs { dir, _scratch: scratch })
    }
}

impl Drop for HugeTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// `ShmemPmdMapped` of this process, bytes.
fn shmem_pmd_mapped() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let kb = text.lines().find_map(|l| l.strip_prefix("ShmemPmdMapped:")).unwrap_or("0 kB");
    kb.trim().trim_end_matches(" kB").parse::<u64>().unwrap() << 10
}

fn check(flavor: Flavor, technique: MapTechnique, mnt: &Path, size: u64) {
    program("adversary", flavor);
    let before = shmem_pmd_mapped();
    let mnt = mnt.to_path_buf();
    // `hold` maps the whole file, sums it (faulting every page in), then holds it 3 s.
    let guest = std::thread::spawn(move || {
        let mut spec = Spec::new("adversary", flavor, &["hold", "data.bin", "3"], catalog_mount(&mnt, &["/"]));
        spec.limits.map_technique = technique;
        spec.run().ok().to_string()
    });
    let mut during = 0;
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(100));
        during = during.max(shmem_pmd_mapped());
    }
    let out = guest.join().unwrap();
    assert!(out.starts_with("ready "), "{flavor:?}: {out}");
    let huge = during.saturating_sub(before);
    println!("{flavor:?}, {technique:?}: {} MiB of a {} MiB mapping on 2 MiB pages", huge >> 20, size >> 20);
    assert!(
        huge >= size * 9 / 10,
        "{flavor:?}, {technique:?}: only {} MiB of {} MiB on 2 MiB pages",
        huge >> 20,
        size >> 20
    );
}

#[test]
fn a_mapped_window_on_huge_page_cache_is_mapped_with_two_mib_pages() {
    let Some(tmpfs) = HugeTmpfs::mount() else { return };
    let size = 64u64 << 20;
    let data = pattern(size as usize, 21);
    std::fs::write(tmpfs.dir.join("data.bin"), &data).unwrap();
    for technique in harness::TECHNIQUES {
        for flavor in Flavor::ALL {
            check(flavor, technique, &tmpfs.dir, size);
        }
    }
}
