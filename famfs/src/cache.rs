//! CPU cache maintenance for device-dax, which has no `msync`: what famfs itself does to make
//! the master's stores reach the memory device (write-back) and to make a client's loads see
//! what another host wrote there (invalidation).
//!
//! - [`write_back`]: `CLWB` on every 64-byte line where the CPU has it (the line stays cached,
//!   clean), else `CLFLUSHOPT`, else `CLFLUSH`; then `SFENCE`, which orders the write-backs
//!   before any later store (the log entry after the data it describes, the header after the
//!   entry).
//! - [`invalidate`]: `CLFLUSHOPT` (else `CLFLUSH`) on every line, then `MFENCE`, so no later
//!   load is served from a line cached before the call. `CLWB` may keep the line, so it is
//!   never used here.
//!
//! Which instruction a CPU has is read once with `CPUID` (leaf 7: `CLFLUSHOPT` is EBX bit 23,
//! `CLWB` bit 24). On other architectures both functions only fence.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    Clwb,
    ClflushOpt,
    Clflush,
}

const LINE: usize = 64;

#[cfg(target_arch = "x86_64")]
fn best() -> (Flush, Flush) {
    static BEST: std::sync::OnceLock<(Flush, Flush)> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        // CPUID is present on every x86_64 CPU, and leaf 7 is valid when leaf 0 reports it.
        let max_leaf = core::arch::x86_64::__cpuid(0).eax;
        let ebx = if max_leaf >= 7 { core::arch::x86_64::__cpuid_count(7, 0).ebx } else { 0 };
        let (opt, clwb) = (ebx & (1 << 23) != 0, ebx & (1 << 24) != 0);
        let evict = if opt { Flush::ClflushOpt } else { Flush::Clflush };
        (if clwb { Flush::Clwb } else { evict }, evict)
    })
}

/// One cache-line instruction on every line of `[ptr, ptr + len)`.
#[cfg(target_arch = "x86_64")]
fn each_line(how: Flush, ptr: *const u8, len: usize) {
    let mut p = ptr as usize & !(LINE - 1);
    let end = (ptr as usize).saturating_add(len);
    while p < end {
        // SAFETY: the three instructions only write back or evict the cache line holding `p`;
        // they never change memory contents and never fault on an address the process has
        // mapped. Callers pass ranges of their own live mappings (the first line may start
        // before `ptr`, but within the same page, which is mapped too). `best` chose only
        // instructions that CPUID reports (CLFLUSH is part of SSE2, which every x86_64 has).
        unsafe {
            match how {
                Flush::Clwb => core::arch::asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags)),
                Flush::ClflushOpt => {
                    core::arch::asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
                }
                Flush::Clflush => core::arch::x86_64::_mm_clflush(p as *const u8),
            }
        }
        p += LINE;
    }
}

/// Writes the cache lines of `[ptr, ptr + len)` back to memory, then fences, so the stores
/// there reach the device before any later store (and other hosts see them). `ptr .. ptr +
/// len` must lie in a mapping of this process.
pub(crate) fn write_back(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        each_line(best().0, ptr, len);
        // SAFETY: `sfence` has no preconditions.
        unsafe { core::arch::x86_64::_mm_sfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, len);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Evicts the cache lines of `[ptr, ptr + len)`, then fences, so later loads read memory,
/// where another host's stores are. `ptr .. ptr + len` must lie in a mapping of this process.
pub(crate) fn invalidate(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        each_line(best().1, ptr, len);
        // SAFETY: `mfence` has no preconditions.
        unsafe { core::arch::x86_64::_mm_mfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, len);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushing_keeps_the_bytes_and_covers_unaligned_ranges() {
        // A buffer whose interesting range starts and ends mid-line.
        let mut buf = vec![0u8; 4096 + 3 * LINE];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let before = buf.clone();
        write_back(buf[5..].as_ptr(), 4096 + LINE);
        invalidate(buf[7..].as_ptr(), 4096 + 2 * LINE - 9);
        assert_eq!(buf, before);
        write_back(buf.as_ptr(), 0);
        invalidate(buf.as_ptr(), 0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_instruction_chosen_is_one_the_cpu_reports() {
        let (back, evict) = best();
        assert_ne!(evict, Flush::Clwb, "CLWB may keep a line cached: never used to invalidate");
        if back == Flush::Clwb {
            assert_ne!(core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 24), 0);
        }
        if evict == Flush::ClflushOpt {
            assert_ne!(core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 23), 0);
        }
    }
}
