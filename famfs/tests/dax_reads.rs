//! Reads through the dax path (a whole-device shared map, what a `/dev/daxX.Y` gets) when the
//! memory behind it is gone: poisoned CXL memory there used to raise SIGBUS in the copy and kill
//! the process. The copy is now the kernel's, and a page it cannot read is an I/O error of that
//! read. Emulated here by cutting an image file short under the map (`IoMode::Mapped`).

mod common;

use common::*;
use famfs::{Access, Attrs, Device, Famfs, IoMode, Layout, RelPath, Source, Writer};

/// An image in `dir` holding `x.bin` (4 MiB of `pattern(.., seed)`), opened through the dax
/// path (`IoMode::Mapped`): (image, the bytes, the file's device offset, the famfs, the file).
fn mapped_file(dir: &std::path::Path, seed: u64) -> (std::path::PathBuf, Vec<u8>, u64, Famfs, famfs::FileMeta) {
    let img = new_image(dir, "dax.img", 32 << 20);
    let data = pattern(4 << 20, seed);
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
    (img, data, start, fs, file)
}

#[test]
fn a_read_of_memory_that_is_gone_is_an_error_not_a_dead_process() {
    let dir = scratch();
    let (img, data, start, fs, file) = mapped_file(dir.path(), 8);
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

/// Marks the child process of [`without_process_vm_readv_reads_are_still_guarded`].
const SANDBOXED: &str = "FAMFS_TEST_NO_PROCESS_VM_READV";

/// Forbids `process_vm_readv` to this process from now on (EPERM), as some container seccomp
/// profiles do.
fn forbid_process_vm_readv() {
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let mut filter = [
        // The system call number is the first word of `struct seccomp_data`.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(libc::SYS_process_vm_readv as u32, 0, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: prctl with integer arguments, then with a pointer to a filter program that lives
    // across the call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog), 0);
    }
}

/// Issue 21, item 11: where a sandbox forbade `process_vm_readv`, dax reads fell back to plain
/// loads, and a page that was gone killed the process with SIGBUS. They go through a pipe now,
/// still the kernel's copy: the same I/O error as with `process_vm_readv`. In a child process, as
/// the filter cannot be taken back.
#[test]
fn without_process_vm_readv_reads_are_still_guarded() {
    const NAME: &str = "without_process_vm_readv_reads_are_still_guarded";
    if std::env::var(SANDBOXED).as_deref() != Ok(NAME) {
        let o = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(SANDBOXED, NAME)
            .output()
            .unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "the sandboxed child failed ({:?}):\n{out}", o.status);
        assert!(out.contains("guarded without process_vm_readv"), "{out}");
        return;
    }
    let dir = scratch();
    let (img, data, start, fs, file) = mapped_file(dir.path(), 9);
    forbid_process_vm_readv();
    assert_eq!(fs.read_to_vec(&file).unwrap(), data, "the whole file, read without process_vm_readv");
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(start + (1 << 20)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let e = fs.read_at(&file, 512 << 10, &mut buf).unwrap_err().to_string();
    assert!(e.contains("cannot be read") && e.contains(&format!("{:#x}", start + (512 << 10))), "{e}");
    println!("guarded without process_vm_readv: {e}");
}
