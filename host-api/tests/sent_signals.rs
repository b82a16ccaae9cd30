//! Issue 21, item 7: a SIGBUS or SIGSEGV that another process sends (`kill -BUS`, `kill -SEGV`)
//! faulted nothing. It must never uninstall the fault handlers: before, the guard handed it to
//! the previous handler, which (as wasmtime's does) reset the signal to its default action
//! expecting a faulting instruction to re-run, so the next real fault in a dataset mapping
//! killed the process. Each case runs in a child process of its own (this test binary again),
//! as it installs handlers and receives signals.

mod common;

use common::{GuestLikeMemory, catalog};
use famfs_host_api::guard::BLOCK;
use famfs_host_api::mapper::{MapLimits, MapTechnique, WASM_PAGE};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CHILD: &str = "FAMFS_SENT_SIGNALS_CHILD";

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == name)
}

/// Runs test `name` in a child process and returns its output (at most 60 s).
fn in_child(name: &str) -> Output {
    common::run_in_child(name, CHILD, Duration::from_secs(60))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Sends `sig` to this process from another process, as `kill -SIG PID` does.
fn kill_from_outside(sig: &str) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(std::process::id().to_string()).status().unwrap();
    assert!(st.success(), "kill -{sig}");
}

/// Calls of [`previous`] so far.
static PREVIOUS_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A handler installed before the guard's, doing what wasmtime's does with a signal that is not
/// its own fault: reset the signal to its default action (so that a faulting instruction would
/// re-run and kill the process) and return.
extern "C" fn previous(sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    PREVIOUS_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument; sigaction is
    // async-signal-safe.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
}

fn install_previous(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction filled in here is valid; `previous` has the SA_SIGINFO
    // signature.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = previous as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(sig, &act, std::ptr::null_mut()), 0);
    }
}

/// The handler the kernel would run for `sig` now.
fn action(sig: libc::c_int) -> usize {
    // SAFETY: a zeroed sigaction is a valid out argument.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut now), 0);
        now.sa_sigaction
    }
}

fn wait_for_calls(n: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while PREVIOUS_CALLS.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < until, "the previous handler never got the signal");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sent_fault_signals_are_passed_on_and_the_handlers_stay() {
    const NAME: &str = "sent_fault_signals_are_passed_on_and_the_handlers_stay";
    if !is_child(NAME) {
        let o = in_child(NAME);
        let out = text(&o);
        assert!(o.status.success(), "the child died ({:?}): the handlers were gone\n{out}", o.status);
        assert!(out.contains("after kill -BUS: a truncated mapping read 0, media error at 131072"), "{out}");
        assert!(out.contains("after kill -SEGV: a store got its private copy"), "{out}");
        return;
    }
    install_previous(libc::SIGBUS);
    install_previous(libc::SIGSEGV);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![1u8; 4 * WASM_PAGE as usize]).unwrap();
    std::fs::write(dir.path().join("s.bin"), vec![7u8; BLOCK]).unwrap();
    let cat = catalog(dir.path());
    let mem = GuestLikeMemory::new(32 << 20);
    let mut private = common::guarded_mapper(MapLimits::default()).unwrap();
    let mut shared =
        common::guarded_mapper(MapLimits { technique: MapTechnique::Shared, ..MapLimits::default() }).unwrap();
    let (guard, cow) = (action(libc::SIGBUS), action(libc::SIGSEGV));
    assert_ne!(guard, previous as *const () as usize);
    assert_ne!(cow, previous as *const () as usize);
    let at = 4 * WASM_PAGE as u32;
    private.map(mem.lm(), &cat.open("f.bin").unwrap(), 0, 4 * WASM_PAGE as u32, at, false).unwrap();
    let s_at = (4 * BLOCK) as u32;
    shared.map(mem.lm(), &cat.open("s.bin").unwrap(), 0, BLOCK as u32, s_at, false).unwrap();

    // Sent SIGBUS: the previous handler gets it, the guard stays and still repairs a real fault.
    kill_from_outside("BUS");
    wait_for_calls(1);
    assert_eq!(action(libc::SIGBUS), guard, "kill -BUS changed the SIGBUS handler");
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(WASM_PAGE).unwrap();
    let v = mem.load(at + 2 * WASM_PAGE as u32);
    let faults = private.take_faults();
    println!("after kill -BUS: a truncated mapping read {v}, media error at {}", faults[0].offset());

    // Sent SIGSEGV: likewise for the copy-on-write handler.
    kill_from_outside("SEGV");
    wait_for_calls(2);
    assert_eq!(action(libc::SIGSEGV), cow, "kill -SEGV changed the SIGSEGV handler");
    mem.store(s_at + 5, 9);
    assert_eq!((mem.load(s_at + 5), mem.load(s_at + 6)), (9, 7));
    assert_eq!(std::fs::read(dir.path().join("s.bin")).unwrap(), vec![7u8; BLOCK]);
    println!("after kill -SEGV: a store got its private copy");
}

#[test]
fn a_sent_sigbus_with_no_handler_before_the_guard_ends_the_process() {
    const NAME: &str = "a_sent_sigbus_with_no_handler_before_the_guard_ends_the_process";
    if !is_child(NAME) {
        let o = in_child(NAME);
        // As without the guard: the default action, death by the signal (not a survivor whose
        // handlers were reset to the default).
        assert_eq!(o.status.signal(), Some(libc::SIGBUS), "{:?}\n{}", o.status, text(&o));
        return;
    }
    // Rust's runtime installs a SIGBUS handler of its own (for stack overflows) at start-up:
    // take it away, as in a program that has none.
    // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        assert_eq!(libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()), 0);
    }
    let _m = common::guarded_mapper(MapLimits::default()).unwrap();
    kill_from_outside("BUS");
    std::thread::sleep(Duration::from_secs(5));
    println!("survived kill -BUS");
}

/// Queues SIGBUS to this thread with `si_code` `code` and `si_addr` `addr`, as the kernel's
/// memory-failure code sends an early notice (only a process itself may queue a positive
/// `si_code` to itself, so this stands in for the kernel; the test machines' dax test has the
/// kernel send it for real).
fn queue_sigbus(code: libc::c_int, addr: usize) {
    // siginfo_t on Linux: si_signo, si_errno, si_code (i32 each), padding, then the fault
    // fields: si_addr at byte 16, si_addr_lsb at byte 24.
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&libc::SIGBUS.to_ne_bytes());
    info[8..12].copy_from_slice(&code.to_ne_bytes());
    info[16..24].copy_from_slice(&(addr as u64).to_ne_bytes());
    info[24..26].copy_from_slice(&12u16.to_ne_bytes());
    // SAFETY: rt_tgsigqueueinfo with our own process and thread ids and a 128-byte siginfo.
    let r = unsafe {
        libc::syscall(libc::SYS_rt_tgsigqueueinfo, libc::getpid(), libc::gettid(), libc::SIGBUS, info.as_ptr())
    };
    assert_eq!(r, 0, "rt_tgsigqueueinfo: {}", std::io::Error::last_os_error());
}

/// Issue 20: the guard asks the kernel for early memory-failure notices (`BUS_MCEERR_AO`: a
/// page found poisoned before any load from it). One naming a dataset mapping stops the guest
/// with a media error at that offset; one naming any other address is advisory and ignored.
/// Passed on, as before, it reached the previous handler, which (like wasmtime's) reset SIGBUS
/// to its default action for an instruction to re-run: none did, and the guard was gone.
#[test]
fn early_memory_failure_notices() {
    const NAME: &str = "early_memory_failure_notices";
    if !is_child(NAME) {
        let o = in_child(NAME);
        let out = text(&o);
        assert!(o.status.success(), "the child died ({:?})\n{out}", o.status);
        assert!(out.contains("notice in the mapping: media error at 131172, zeros"), "{out}");
        return;
    }
    install_previous(libc::SIGBUS);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), vec![1u8; 4 * WASM_PAGE as usize]).unwrap();
    let cat = catalog(dir.path());
    let mem = GuestLikeMemory::new(32 << 20);
    let mut m = common::guarded_mapper(MapLimits::default()).unwrap();
    assert_eq!(
        rustix::process::machine_check_memory_corruption_kill_policy().unwrap(),
        rustix::process::MachineCheckMemoryCorruptionKillPolicy::Early,
        "the guard asks for early notices"
    );
    let guard = action(libc::SIGBUS);
    let at = 4 * WASM_PAGE as u32;
    m.map(mem.lm(), &cat.open("f.bin").unwrap(), 0, 4 * WASM_PAGE as u32, at, false).unwrap();

    // A notice for a page outside every dataset mapping: ignored, nothing changes.
    let elsewhere = vec![0u8; 4096];
    queue_sigbus(libc::BUS_MCEERR_AO, elsewhere.as_ptr() as usize);
    assert_eq!(PREVIOUS_CALLS.load(Ordering::SeqCst), 0, "an advisory notice was passed on");
    assert_eq!(action(libc::SIGBUS), guard, "an advisory notice changed the SIGBUS handler");
    assert!(m.take_faults().is_empty());
    assert_eq!(mem.load(at + 5), 1);

    // A notice for a page of the mapping: a media error there, the range reads zeros.
    queue_sigbus(libc::BUS_MCEERR_AO, mem.addr(at) + 2 * WASM_PAGE as usize + 100);
    let faults = m.take_faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(action(libc::SIGBUS), guard);
    println!(
        "notice in the mapping: media error at {}, {}",
        faults[0].offset(),
        if mem.load(at + 5) == 0 { "zeros" } else { "data" }
    );
}
