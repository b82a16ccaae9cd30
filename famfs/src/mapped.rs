//! A whole-device shared memory map, the only way to reach a `/dev/daxX.Y` character device
//! (device-dax implements `mmap` but not `read`/`write`).
//!
//! # SIGBUS contract
//! Loads and stores through this map can raise SIGBUS when the backing memory is gone: a
//! regular file truncated below the mapped length, or poisoned CXL memory.
//! - **Reads never load from the map themselves.** [`MappedDevice::read`] has the kernel copy
//!   (`process_vm_readv` of this very process), which reports a page that cannot be read as
//!   `EFAULT` instead of raising SIGBUS: poisoned memory is an I/O error of that read (of
//!   `Famfs::read_at`, a guest's copying `read`, a WASI read served from the device, `famfsctl
//!   cat`), never a dead process. Where a sandbox forbids the call (some seccomp profiles), the
//!   kernel copies through a pipe instead (`write` from the map, `read` back: two copies, as
//!   guarded, and said once in the log); reads never fall back to plain loads.
//! - Writes (the master's famfsctl) store through the map; the famfs crate installs no handler,
//!   so poisoned memory there ends the process, as it would for `famfs` itself.
//! - [`Device`](crate::Device) maps only character devices automatically; their size cannot
//!   change while they are open. Regular files are read with `pread`/`pwrite` unless the
//!   caller asks for a map with [`IoMode::Mapped`](crate::IoMode::Mapped) (the tests do, to
//!   run the dax path on an image).
//! - The map never extends past the size measured at open time.
//!
//! The runtime that maps dataset files into Wasm guests has its own SIGBUS guard (DESIGN §5,
//! R4); this map is for the metadata tools.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// A shared mapping of `[0, len)` of a device.
pub(crate) struct MappedDevice {
    map: memmap2::MmapRaw,
    len: u64,
    /// A regular file's page cache is made durable with `msync`; a dax character device has
    /// none (and refuses `msync` with `EINVAL`): the CPU cache write-back is all there is.
    page_cache: bool,
}

impl MappedDevice {
    /// Maps `len` bytes of `file` shared, read-only or read-write.
    ///
    /// # Safety
    /// The caller promises that the file stays at least `len` bytes long while the map lives
    /// (true of device files), and accepts that other processes may change the bytes at any time
    /// (every access below copies, so no Rust reference ever observes a change). `len` must be
    /// a multiple of a dax device's alignment (a device's size always is).
    pub(crate) unsafe fn new(file: &File, len: u64, writable: bool) -> io::Result<MappedDevice> {
        let size = usize::try_from(len).map_err(|_| io::Error::other("device larger than the address space"))?;
        let opts = {
            let mut o = memmap2::MmapOptions::new();
            o.len(size);
            o
        };
        let map = if writable { opts.map_raw(file)? } else { opts.map_raw_read_only(file)? };
        let page_cache = file.metadata()?.is_file();
        Ok(MappedDevice { map, len, page_cache })
    }

    fn check(&self, off: u64, n: usize) -> io::Result<usize> {
        match off.checked_add(n as u64) {
            Some(end) if end <= self.len => Ok(off as usize),
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "access past the end of the mapped device")),
        }
    }

    /// Copies device bytes at `off` into `buf`. A page that cannot be read (poisoned memory,
    /// a mapped file cut short) is an error naming the device offset, not a SIGBUS.
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = self.check(off, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            match kernel_copy(self.map.as_ptr() as usize + start + done, &mut buf[done..]) {
                Ok(0) | Err(KernelCopy::Fault) => {
                    return Err(io::Error::other(format!(
                        "the device memory at offset {} cannot be read (poisoned, or gone)",
                        off + done as u64
                    )));
                }
                Ok(n) => done += n,
                Err(KernelCopy::Unavailable) => {
                    // Still the kernel's copy, through a pipe: never a plain load, which a page
                    // that is gone would answer with SIGBUS.
                    let n = pipe_copy(self.map.as_ptr() as usize + start + done, &mut buf[done..])?;
                    if n == 0 {
                        return Err(io::Error::other(format!(
                            "the device memory at offset {} cannot be read (poisoned, or gone)",
                            off + done as u64
                        )));
                    }
                    done += n;
                }
            }
        }
        Ok(())
    }

    /// Copies `buf` to device offset `off`.
    pub(crate) fn write(&self, off: u64, buf: &[u8]) -> io::Result<()> {
        let start = self.check(off, buf.len())?;
        // SAFETY: as in `read`; the map was created writable (a read-only map would fault, but
        // `Device` only calls this for devices opened read-write).
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.map.as_mut_ptr().add(start), buf.len()) };
        Ok(())
    }

    /// Reads up to `len` bytes from `src` at `src_off` straight into the device at `off`
    /// (one copy, no bounce buffer). Returns the bytes read; 0 at end of file.
    pub(crate) fn read_from(&self, src: &File, src_off: u64, off: u64, len: usize) -> io::Result<usize> {
        let start = self.check(off, len)?;
        // SAFETY: `start..start+len` lies inside the writable mapping (checked above). The slice
        // is handed only to `pread`, which writes into it and keeps no reference; nothing else in
        // this process reads that range while the call runs (the writer lock serialises writers).
        let dst = unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(start), len) };
        Ok(rustix::io::pread(src.as_fd(), dst, src_off)?)
    }

    /// Makes stores to a range visible to other hosts and durable: the CPU cache lines are
    /// written back and fenced ([`crate::cache::write_back`]), which on device-dax is all
    /// there is (it has no `msync`); a mapped regular file is then `msync`ed too.
    pub(crate) fn flush(&self, off: u64, len: u64) -> io::Result<()> {
        let start = self.check(off, len as usize)?;
        // SAFETY: `start` is inside the mapping (checked above), so the pointer stays in bounds.
        crate::cache::write_back(unsafe { self.map.as_ptr().add(start) }, len as usize);
        if self.page_cache { self.map.flush_range(start, len as usize) } else { Ok(()) }
    }

    /// Drops cached copies of a range so the next load sees what another host wrote
    /// (famfs invalidates before replaying the log).
    pub(crate) fn invalidate(&self, off: u64, len: u64) -> io::Result<()> {
        let start = self.check(off, len as usize)?;
        // SAFETY: `start` is inside the mapping (checked above), so the pointer stays in bounds.
        crate::cache::invalidate(unsafe { self.map.as_ptr().add(start) }, len as usize);
        Ok(())
    }
}

/// Has the kernel copy from this process's address `src` into `dst` through a pipe, 64 KiB at
/// a time: `write` from the mapping (the kernel reads user memory in kernel mode, where a page
/// that cannot be read is EFAULT, never a signal), then `read` into `dst`. Bytes copied,
/// stopping short at an unreadable page; 0 when the first one is. For sandboxes that forbid
/// `process_vm_readv`.
fn pipe_copy(src: usize, dst: &mut [u8]) -> io::Result<usize> {
    const CHUNK: usize = 64 << 10;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nothing else.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    };
    let mut done = 0;
    while done < dst.len() {
        let want = CHUNK.min(dst.len() - done);
        // SAFETY: the kernel only reads `src + done .. + want` (a range of the caller's mapping),
        // checking every page; a page it cannot read fails the call with EFAULT (or shortens
        // it). The pipe is empty and holds 64 KiB, so the write does not block.
        let n = unsafe { libc::write(std::os::fd::AsRawFd::as_raw_fd(&w), (src + done) as *const libc::c_void, want) };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if n == 0 || e.raw_os_error() == Some(libc::EFAULT) {
                return Ok(done);
            }
            return Err(e);
        }
        let n = n as usize;
        let mut got = 0;
        while got < n {
            got += rustix::io::read(&r, &mut dst[done + got..done + n])?;
        }
        done += n;
    }
    Ok(done)
}

/// Why the kernel did not copy.
enum KernelCopy {
    /// A source page could not be read.
    Fault,
    /// The call is not allowed here (seccomp) or not implemented.
    Unavailable,
}

/// Has the kernel copy `dst.len()` bytes from this process's address `src` into `dst`
/// (`process_vm_readv` of our own pid): bytes copied, stopping short at an unreadable page.
fn kernel_copy(src: usize, dst: &mut [u8]) -> Result<usize, KernelCopy> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let local = libc::iovec { iov_base: dst.as_mut_ptr().cast(), iov_len: dst.len() };
    let remote = libc::iovec { iov_base: src as *mut libc::c_void, iov_len: dst.len() };
    // SAFETY: `local` describes `dst`, a live exclusive buffer the kernel writes into; `remote` is
    // only read, by the kernel, which checks every page and fails with EFAULT instead of
    // faulting; one iovec each, as counted.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n >= 0 {
        return Ok(n as usize);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EFAULT) => Err(KernelCopy::Fault),
        _ => {
            WARNED.call_once(|| {
                tracing::warn!(
                    "process_vm_readv is not allowed here: dax reads are copied through a pipe instead (slower)"
                )
            });
            Err(KernelCopy::Unavailable)
        }
    }
}
