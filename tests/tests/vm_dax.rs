//! A real device-dax, in test machines (`famfs_run_tests::vm`, `docs/dax.md`): QEMU guests whose
//! NVDIMM is a backing file of the host, made into `/dev/dax0.0`. The host-side tests boot the
//! machines; the `inside_*` tests (ignored on the host) are what they run, from this same binary.
//! Needs `scripts/vm-deps.sh` (QEMU, ndctl, busybox-static, a Debian kernel).
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use famfs_run_tests::vm::{self, Machine, Namespace};
use famfs_run_tests::{hex, scratch};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `n` random bytes.
fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").expect("open /dev/urandom"), &mut b)
        .expect("read /dev/urandom");
    b
}

/// A random UUID (hyphenated).
fn random_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("/proc/sys/kernel/random/uuid").trim().to_string()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// A variable the host test passed into the machine.
fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set inside the machine"))
}

fn scratch_inside() -> PathBuf {
    vm::inside_scratch().expect("FAMFS_VM_SCRATCH is not set inside the machine")
}

/// Device-dax's alignment here, and so its mapping unit.
const ALIGN: usize = 2 << 20;

/// Where the marker of [`two_machines_share_one_memory`] is written on the device.
const MARKER_OFFSET: usize = 2 << 20;

/// The backing file's offset of the device's byte 0 for a 2 MiB aligned device-dax namespace
/// made by `ndctl create-namespace` on a label-less NVDIMM (measured: Linux 6.1, ndctl 76).
const DEVICE_START_IN_FILE: usize = 18 << 20;

#[test]
fn machine_boots_with_a_device_dax() {
    let t = Instant::now();
    let dir = scratch();
    let uuid = random_uuid();
    let marker = hex(&random(16));
    let out = Machine::new("smoke")
        .memory(dir.path().join("cxl.mem"))
        .namespace(Namespace::DevDax)
        .system_uuid(&uuid)
        .scratch(dir.path())
        .env("EXPECT_UUID", &uuid)
        .env("MARKER", &marker)
        .run_test("inside_smoke")
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", out.timings());
    out.assert_success();
    let seen = std::fs::read_to_string(dir.path().join("inside-marker")).expect("the marker written inside");
    assert_eq!(seen, marker, "the marker the machine wrote into the scratch directory");
    eprintln!("machine_boots_with_a_device_dax: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
#[ignore = "runs inside a VM"]
fn inside_smoke() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !vm::inside() {
        return;
    }
    let md = std::fs::metadata("/dev/dax0.0").expect("/dev/dax0.0");
    assert!(md.file_type().is_char_device(), "/dev/dax0.0 is not a character device: {md:?}");
    let align = std::fs::read_to_string("/sys/bus/dax/devices/dax0.0/align").expect("the dax device's align");
    assert_eq!(align.trim(), "2097152");
    let rdev = md.rdev();
    let (major, minor) =
        (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff), ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff));
    let size_file = format!("/sys/dev/char/{major}:{minor}/size");
    let size: u64 = std::fs::read_to_string(&size_file)
        .unwrap_or_else(|e| panic!("{size_file}: {e}"))
        .trim()
        .parse()
        .expect("a size");
    assert!(size > 1000 << 20, "/dev/dax0.0 has {size} bytes");
    let uuid = std::fs::read_to_string("/opt/famfs/system_uuid").expect("/opt/famfs/system_uuid");
    assert_eq!(uuid.trim_end_matches('\0'), var("EXPECT_UUID"));
    std::fs::write(scratch_inside().join("inside-marker"), var("MARKER")).expect("write into the scratch directory");
    eprintln!("/dev/dax0.0 ({major}:{minor}): {size} bytes, align {}", align.trim());
}

#[test]
fn two_machines_share_one_memory() {
    let t = Instant::now();
    let dir = scratch();
    let mem = dir.path().join("cxl.mem");
    let (marker, reply) = (hex(&random(64)), hex(&random(64)));
    let machine = |name: &str| {
        Machine::new(name)
            .memory(&mem)
            .namespace(Namespace::DevDax)
            .system_uuid(random_uuid())
            .scratch(dir.path())
            .env("MARKER", &marker)
            .env("REPLY", &reply)
    };
    // A makes the namespace, writes, and waits for B: started after A's signal, B finds the
    // namespace made and the marker in place.
    let mut a = machine("a").spawn_test("inside_writer").unwrap_or_else(|e| panic!("{e}"));
    a.wait_for_file(dir.path().join("a-wrote"), Duration::from_secs(240)).unwrap_or_else(|e| panic!("{e}"));
    let b = machine("b").run_test("inside_reader").unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", b.timings());
    b.assert_success();
    let a = a.wait().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", a.timings());
    a.assert_success();

    // The host sees both in the backing file, where the device starts.
    let mut file = vec![0; 64 << 20];
    std::io::Read::read_exact(&mut std::fs::File::open(&mem).expect("open the backing file"), &mut file)
        .expect("read the backing file");
    let want = [unhex(&marker), unhex(&reply)].concat();
    let at = file.windows(want.len()).position(|w| w == want);
    assert_eq!(
        at,
        Some(DEVICE_START_IN_FILE + MARKER_OFFSET),
        "where the backing file holds what was written at device offset {MARKER_OFFSET}"
    );
    eprintln!("two_machines_share_one_memory: {:.1} s", t.elapsed().as_secs_f64());
}

/// A shared, writable mapping of `/dev/dax0.0`, whole alignment units (device-dax rules).
struct DaxMap {
    ptr: *mut u8,
    len: usize,
}

impl DaxMap {
    fn new(offset: usize, len: usize) -> DaxMap {
        use std::os::fd::AsRawFd;
        assert!(offset.is_multiple_of(ALIGN) && len.is_multiple_of(ALIGN));
        let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/dax0.0").expect("open /dev/dax0.0");
        // SAFETY: a fresh mapping of a device nothing else in this process maps; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap /dev/dax0.0: {}", std::io::Error::last_os_error());
        DaxMap { ptr: ptr.cast(), len }
    }

    /// Writes `data` at `at` and writes the cache lines back (CLFLUSH + SFENCE).
    fn write(&self, at: usize, data: &[u8]) {
        assert!(at + data.len() <= self.len);
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: in the mapping (checked above).
            unsafe { self.ptr.add(at + i).write_volatile(b) };
        }
        self.flush(at, data.len());
    }

    /// Evicts the cache lines, then reads `len` bytes at `at`.
    fn read(&self, at: usize, len: usize) -> Vec<u8> {
        assert!(at + len <= self.len);
        self.flush(at, len);
        // SAFETY: in the mapping (checked above).
        (0..len).map(|i| unsafe { self.ptr.add(at + i).read_volatile() }).collect()
    }

    fn flush(&self, at: usize, len: usize) {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence, _mm_sfence};
        let mut line = at & !63;
        while line < at + len {
            // SAFETY: in the mapping; CLFLUSH is baseline x86-64.
            unsafe { _mm_clflush(self.ptr.add(line)) };
            line += 64;
        }
        // SAFETY: fences have no preconditions.
        unsafe {
            _mm_sfence();
            _mm_mfence();
        }
    }
}

impl Drop for DaxMap {
    fn drop(&mut self) {
        // SAFETY: unmaps what new mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[test]
#[ignore = "runs inside a VM"]
fn inside_writer() {
    if !vm::inside() {
        return;
    }
    let scratch = scratch_inside();
    let map = DaxMap::new(MARKER_OFFSET, ALIGN);
    let marker = unhex(&var("MARKER"));
    map.write(0, &marker);
    vm::write_signal(scratch.join("a-wrote"), hex(&marker).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("a: wrote the marker at device offset {MARKER_OFFSET}; waiting for b");
    // Stay up (the mapping live) until the other machine has read it and answered.
    vm::wait_for_file(scratch.join("b-read"), Duration::from_secs(240)).unwrap_or_else(|e| panic!("{e}"));
    let seen = std::fs::read_to_string(scratch.join("b-read")).expect("b's report");
    assert_eq!(seen, hex(&marker), "what b read through its own mapping");
    assert_eq!(hex(&map.read(64, 64)), var("REPLY"), "b's reply, through a's live mapping");
    eprintln!("a: b read the marker and its reply is in a's mapping");
}

#[test]
#[ignore = "runs inside a VM"]
fn inside_reader() {
    if !vm::inside() {
        return;
    }
    let map = DaxMap::new(MARKER_OFFSET, ALIGN);
    let seen = map.read(0, 64);
    map.write(64, &unhex(&var("REPLY")));
    vm::write_signal(scratch_inside().join("b-read"), hex(&seen).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex(&seen), var("MARKER"), "the marker a wrote, through b's own mapping");
    eprintln!("b: read a's marker at device offset {MARKER_OFFSET} and replied");
}
