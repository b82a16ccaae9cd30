//! A fault handler installed in front of whichever handler was there before (wasmtime's, for
//! SIGSEGV), which gets every fault ours does not own.
//!
//! Both of the host's fault handlers ([`super::sigbus`] and [`super::cow`]) keep the previous
//! `sigaction` here, written once before theirs is installed and only read afterwards.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Once;

/// The signature of an `SA_SIGINFO` handler.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// One signal's chain: our handler, then the one it replaced.
pub(crate) struct Chain {
    signal: libc::c_int,
    previous: UnsafeCell<MaybeUninit<libc::sigaction>>,
    /// Our action, as installed: put back should a handler we pass a signal to reset it.
    ours: UnsafeCell<MaybeUninit<libc::sigaction>>,
    installed: Once,
}

// SAFETY: `previous` and `ours` are written exactly once, inside `installed.call_once`, before
// our handler (their only reader) is installed, so before any read; afterwards they are
// read-only. Readers on
// other threads see the write because `sigaction` installs the handler after it, and a handler
// runs only after the kernel has the new action.
unsafe impl Sync for Chain {}

impl Chain {
    /// A chain for `signal`, nothing installed yet.
    pub(crate) const fn new(signal: libc::c_int) -> Self {
        Chain {
            signal,
            previous: UnsafeCell::new(MaybeUninit::uninit()),
            ours: UnsafeCell::new(MaybeUninit::uninit()),
            installed: Once::new(),
        }
    }

    /// Installs `handler` for the signal (idempotent: later calls do nothing), remembering the
    /// handler it replaces. `SA_ONSTACK` because wasmtime's stack-overflow faults arrive on the
    /// alternate signal stack; `SA_NODEFER` so a fault inside the previous handler is delivered.
    ///
    /// # Panics
    /// If the kernel refuses the action (only for an invalid signal number).
    pub(crate) fn install(&'static self, handler: Handler) {
        self.installed.call_once(|| {
            // SAFETY: a zeroed sigaction, filled in here, is a valid argument; the out pointer
            // points into `previous`, which nothing reads before this returns (see the `Sync`
            // impl). `handler` has the SA_SIGINFO signature, as its type says.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = handler as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut act.sa_mask);
                (*self.ours.get()).write(act);
                let previous = (*self.previous.get()).as_mut_ptr();
                if libc::sigaction(self.signal, &act, previous) != 0 {
                    panic!(
                        "cannot install the handler for signal {}: {}",
                        self.signal,
                        std::io::Error::last_os_error()
                    );
                }
            }
        });
    }

    /// Hands a signal ours does not own to the previous handler. Async-signal-safe: no lock, no
    /// allocation.
    ///
    /// - A fault the kernel raised (`si_code > 0`): to the previous handler; with none (the
    ///   default action, or ignore, which the kernel does not honour for a fault) the default
    ///   action is restored, so the faulting instruction runs again on return and the process
    ///   dies of the signal, as it would have without ours.
    /// - A signal another process (or thread) sent (`si_code <= 0`: `kill`, `sigqueue`,
    ///   `tgkill`): it faulted nothing, so it never changes our handlers. A previous handler
    ///   gets it, and should that handler reset the signal's action (as wasmtime's does, to let
    ///   a fault re-run into the default), ours is put back; the default action ends the process
    ///   now, by the signal; ignore ignores it.
    ///
    /// Call it only from the handler [`Chain::install`] installed, with the arguments the
    /// kernel passed to it.
    pub(crate) fn forward(&self, sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        debug_assert!(self.installed.is_completed());
        // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
        let sent = unsafe { (*info).si_code } <= 0;
        // SAFETY: our handler runs only once installed, and `previous` was fully written before
        // that (see `install`); it is never written again.
        let previous = unsafe { (*self.previous.get()).assume_init_ref() };
        let handler = previous.sa_sigaction;
        if handler == libc::SIG_IGN && sent {
            return;
        }
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            if sent {
                self.die_now();
            }
            self.die_on_return();
            return;
        }
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: installed with SA_SIGINFO, so it has the three-argument signature
            // (wasmtime's does); `info` and `ctx` are the kernel's, passed on unchanged.
            let f: Handler = unsafe { std::mem::transmute::<usize, Handler>(handler) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
            let f: extern "C" fn(libc::c_int) =
                unsafe { std::mem::transmute::<usize, extern "C" fn(libc::c_int)>(handler) };
            f(sig);
        }
        if sent {
            self.keep_ours();
        }
    }

    /// Puts our action back if it is no longer the signal's. Async-signal-safe.
    fn keep_ours(&self) {
        // SAFETY: `ours` was written before our handler was installed (see `install`), and this
        // runs only in it; `sigaction` is async-signal-safe, and a zeroed sigaction is a valid
        // out argument.
        unsafe {
            let ours = (*self.ours.get()).assume_init_ref();
            let mut now: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(self.signal, std::ptr::null(), &mut now) == 0 && now.sa_sigaction != ours.sa_sigaction {
                libc::sigaction(self.signal, ours, std::ptr::null_mut());
            }
        }
    }

    /// Ends the process now with the signal's default action (a signal another process sent,
    /// where no handler preceded ours). Async-signal-safe; does not return.
    fn die_now(&self) -> ! {
        self.die_on_return();
        // SAFETY: `raise`, `sigprocmask` and `_exit` are async-signal-safe. The action is the
        // default now, and the signal unblocked (SA_NODEFER keeps it so in our handler; made
        // sure here), so `raise` ends the process; `_exit` covers the impossible return.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, self.signal);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(self.signal);
            libc::_exit(128 + self.signal)
        }
    }

    /// Restores the default action for the signal: the faulting instruction runs again on
    /// return and the process ends with the signal. Async-signal-safe.
    pub(crate) fn die_on_return(&self) {
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument; `sigaction` is
        // async-signal-safe.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(self.signal, &act, std::ptr::null_mut());
        }
    }
}
