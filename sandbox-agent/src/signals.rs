//! Forwarding of signals from `run` (the supervisor) to the confined command, so an agent runner
//! that stops `sandbox-agent run` with SIGTERM stops the command the same way, and `run` stays
//! alive to clean up after it.

use std::io;

/// Forwarded to the command. SIGINT and SIGQUIT are not: the terminal sends them to the whole
/// foreground process group, the command included, and `run` ignores them.
const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// Signals are held (blocked) from `hold()` until `forward_to` starts passing them on, so one
/// that arrives while the command is being set up is delivered to it, not lost or fatal to us.
pub struct HeldSignals {
    set: libc::sigset_t,
}

pub fn hold() -> io::Result<HeldSignals> {
    // SAFETY: sigset operations on a zeroed local set, then the calling thread's mask; every
    // thread spawned afterwards inherits the mask. Child processes get an empty mask from
    // std::process::Command, so the command starts with default signal handling.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(HeldSignals { set })
    }
}

impl HeldSignals {
    /// Passes every held signal on to `pid`, from a background thread, for the rest of this
    /// process's life.
    pub fn forward_to(self, pid: u32) {
        let set = self.set;
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: set is a valid, initialised sigset and sig a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                // SAFETY: kill(2) has no memory preconditions; a gone child gives ESRCH.
                unsafe { libc::kill(pid as libc::pid_t, sig) };
            }
        });
    }
}
