//! What the host-api integration tests share: a stand-in guest memory, a catalog, and running
//! one test in a child process of its own.
#![allow(dead_code)]

use famfs_host_api::Catalog;
use famfs_host_api::mapper::{LinearMemory, MapLimits, Mapper, MapperError};
use std::path::Path;

/// A mapper under `limits`, with the guard installed first (as the runtime's engine does).
pub fn guarded_mapper(limits: MapLimits) -> Result<Mapper, MapperError> {
    famfs_host_api::guard::install();
    Mapper::new(limits)
}

/// A stand-in for a guest's linear memory made as wasmtime and `TrackingMemoryCreator` make
/// theirs: a `PROT_NONE | MAP_NORESERVE` reservation whose first `size` bytes are made
/// read-write.
pub struct GuestLikeMemory {
    pub base: *mut u8,
    pub size: usize,
    reserved: usize,
}

impl GuestLikeMemory {
    pub fn new(size: usize) -> GuestLikeMemory {
        let reserved = size * 4;
        // SAFETY: a fresh anonymous reservation at an address the kernel picks.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                reserved,
                rustix::mm::ProtFlags::empty(),
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .unwrap() as *mut u8;
        // SAFETY: the first `size` bytes of the reservation just made.
        unsafe {
            rustix::mm::mprotect(base.cast(), size, rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE)
        }
        .unwrap();
        GuestLikeMemory { base, size, reserved }
    }

    pub fn lm(&self) -> LinearMemory {
        // SAFETY: the accessible part of our reservation; it never moves and the tests hold no
        // references into it while mapping.
        unsafe { LinearMemory::new(self.base, self.size) }.unwrap()
    }

    pub fn addr(&self, at: u32) -> usize {
        self.base as usize + at as usize
    }

    pub fn load(&self, at: u32) -> u8 {
        // SAFETY: inside the accessible part (or a live mapping there).
        unsafe { self.base.add(at as usize).read_volatile() }
    }

    pub fn store(&self, at: u32, v: u8) {
        // SAFETY: inside the accessible, writable part.
        unsafe { self.base.add(at as usize).write_volatile(v) }
    }
}

impl Drop for GuestLikeMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the reservation this value made.
        unsafe { rustix::mm::munmap(self.base.cast(), self.reserved).unwrap() };
    }
}

/// A catalog over `dir` with everything granted.
pub fn catalog(dir: &Path) -> Catalog {
    let mut c = Catalog::open_mount(dir).unwrap();
    c.grant("/").unwrap();
    c
}

/// Runs test `name` of this test binary again in a child process, with `marker=name` in its
/// environment (so the test knows it is the child), for tests that install signal handlers,
/// receive signals or count the process's kernel mappings. Waits at most `limit`: a child still
/// running then (a handler that loops?) is killed and the test fails.
pub fn run_in_child(name: &str, marker: &str, limit: std::time::Duration) -> std::process::Output {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(marker, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name} still ran after {limit:?} (a handler that loops?)\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
