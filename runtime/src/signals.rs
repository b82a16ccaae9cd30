//! Keeping the sandbox's fault handlers installed.
//!
//! Guests trap through signals: wasmtime's handlers turn SIGSEGV (guard pages), SIGILL (`ud2`
//! traps) and SIGFPE (division) in guest code into traps, and famfs-run's own SIGBUS guard and
//! copy-on-write handler chain in front of them (`famfs_host_api::guard`). A library
//! that installs process-wide fault handlers after the engine exists replaces them all: Ray's
//! core worker does (its crash reporter, when `ray.init` runs in a process that already made a
//! runtime), and so do JVMs and glog's failure handler. The next guest that traps, or whose
//! dataset memory fails, then kills the process instead of failing its invocation.
//!
//! [`record`] notes the handlers once the engine installed them; [`reclaim`] puts back any that
//! were replaced since (embedders call it before running guests after starting such a library;
//! the Python package does before every invocation). The replaced handler is dropped: faults
//! that are not the sandbox's go to what was installed before the engine, as they did before
//! the other library came.

use std::sync::OnceLock;

/// The signals the sandbox handles.
const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The handlers as installed by the engine, in [`SIGNALS`] order.
static RECORDED: OnceLock<[Option<libc::sigaction>; 4]> = OnceLock::new();

/// The installed action for `signal`.
fn installed(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: a null new action makes `sigaction` only report the current one, into `old`, a
    // valid, writable `sigaction`; nothing is changed, whatever the signal number.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, std::ptr::null(), &mut old) == 0).then_some(old)
    }
}

/// Notes the current handlers as the sandbox's (the first call only; the engine calls it once
/// its handlers are installed).
pub(crate) fn record() {
    RECORDED.get_or_init(|| SIGNALS.map(installed));
}

/// Re-installs the sandbox's handlers that another library replaced since the engine was made;
/// returns the signals it put back (none, normally). Does nothing before an engine exists.
pub fn reclaim() -> Vec<libc::c_int> {
    let Some(recorded) = RECORDED.get() else { return Vec::new() };
    let mut restored = Vec::new();
    for (&signal, ours) in SIGNALS.iter().zip(recorded) {
        let (Some(ours), Some(now)) = (ours, installed(signal)) else { continue };
        if now.sa_sigaction == ours.sa_sigaction {
            continue;
        }
        // SAFETY: `ours` is the action the kernel reported for this very signal after the
        // engine installed its handlers: handlers in this process's code (wasmtime's and
        // famfs-run's, linked into this binary or extension module, which is never unloaded),
        // with the flags and mask they were installed with. Re-installing it is what the engine
        // did in the first place; the other library's action is simply replaced.
        if unsafe { libc::sigaction(signal, ours, std::ptr::null_mut()) } == 0 {
            restored.push(signal);
        }
    }
    if !restored.is_empty() {
        tracing::warn!(?restored, "another library had replaced the sandbox's fault handlers; they are back");
    }
    restored
}
