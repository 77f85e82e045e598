//! A child process forked and held before `exec`, so that someone else (the daemon) can move it
//! into a confined cgroup before it runs a single instruction of the command.
//!
//! The child only waits on a pipe: it runs nothing of the command until `release`, and when the
//! parent goes away (or drops it without releasing), it exits with status 127 without executing
//! anything.

use std::{
    ffi::{CString, OsStr},
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{
            ffi::{OsStrExt, OsStringExt},
            process::ExitStatusExt,
        },
    },
    path::Path,
    process::ExitStatus,
};

/// A forked child waiting for `release` before it executes its program.
pub struct WaitingChild {
    pid: libc::pid_t,
    release: Option<OwnedFd>,
    exec_error: Option<OwnedFd>,
    reaped: bool,
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two descriptors to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl WaitingChild {
    /// Forks a child that will execute `program` (a path, not searched in PATH) with `argv`
    /// (`argv[0]` included) and this process's environment, once released.
    ///
    /// Call it while the process is single-threaded or be sure no other thread holds a lock
    /// the child could need: the child only makes async-signal-safe calls (read, close,
    /// sigaction, sigprocmask, execve, write, _exit).
    pub fn spawn(program: &Path, argv: &[&OsStr]) -> io::Result<WaitingChild> {
        // Everything the child needs is allocated before the fork.
        let path = cstring(program.as_os_str())?;
        let args = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        let env = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(OsStr::from_bytes(&kv))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        // A file without `#!` is a shell script to execvp(3): `/bin/sh FILE ARGS...`.
        let sh = CString::from(c"/bin/sh");
        let mut sh_ptrs: Vec<*const libc::c_char> = vec![sh.as_ptr(), path.as_ptr()];
        sh_ptrs.extend_from_slice(&arg_ptrs[1.min(arg_ptrs.len())..]);
        let (release_r, release_w) = pipe()?;
        let (error_r, error_w) = pipe()?;

        // SAFETY: fork(2); the child branch below never returns and only makes
        // async-signal-safe calls on memory prepared above.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: we are the freshly forked child; see `child_main`.
            unsafe {
                child_main(
                    release_r.as_raw_fd(),
                    release_w.as_raw_fd(),
                    error_r.as_raw_fd(),
                    error_w.as_raw_fd(),
                    &ExecPlan {
                        path: &path,
                        argv: &arg_ptrs,
                        envp: &env_ptrs,
                        sh: &sh,
                        sh_argv: &sh_ptrs,
                    },
                )
            }
        }
        drop((release_r, error_w));
        Ok(WaitingChild {
            pid,
            release: Some(release_w),
            exec_error: Some(error_r),
            reaped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the child execute its program. Returns the error of its `execve` if that failed
    /// (the child has then exited and is reaped).
    pub fn release(&mut self) -> io::Result<()> {
        let release = self
            .release
            .take()
            .ok_or_else(|| io::Error::other("the child was already released"))?;
        write_all(release.as_raw_fd(), &[1])?;
        drop(release);
        let exec_error = self
            .exec_error
            .take()
            .ok_or_else(|| io::Error::other("the child was already released"))?;
        // EOF: the descriptor closed on a successful exec. Four bytes: the child's errno.
        let mut buf = [0u8; 4];
        let n = read_full(exec_error.as_raw_fd(), &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let _ = self.wait();
        if n == buf.len() {
            Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
        } else {
            Err(io::Error::other(
                "the child failed before executing its program",
            ))
        }
    }

    /// Waits for the child to end.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(ExitStatus::from_raw(status));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for WaitingChild {
    /// A child never released is killed (it has executed nothing); any child is reaped.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        if self.release.is_some() {
            // SAFETY: kill(2) of our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let _ = self.wait();
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid slice for the length given.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Reads until `buf` is full or EOF; returns how much was read.
fn read_full(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length describe the unfilled rest of buf.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            0 => break,
            n if n > 0 => done += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(done)
}

/// What the child executes, prepared before the fork: the program, and `/bin/sh` with the
/// program as its script when the kernel does not know the file's format (ENOEXEC).
struct ExecPlan<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    sh: &'a CString,
    sh_argv: &'a [*const libc::c_char],
}

/// The child between fork and exec: waits for one byte on `release_r`, restores default
/// signal handling, executes the program, and reports an exec failure's errno on `error_w`
/// (close-on-exec, so a successful exec closes it). EOF on `release_r` (the parent gave up or
/// died) ends the child without executing anything.
///
/// # Safety
/// Only in the child right after fork; every pointer must stay valid (they point into the
/// parent's allocations, copied by fork).
unsafe fn child_main(
    release_r: RawFd,
    release_w: RawFd,
    error_r: RawFd,
    error_w: RawFd,
    plan: &ExecPlan,
) -> ! {
    // Without its own copy of the write end, the child sees EOF when the parent goes away.
    libc::close(release_w);
    libc::close(error_r);
    let mut byte = 0u8;
    loop {
        let n = libc::read(release_r, (&mut byte as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        libc::_exit(127);
    }
    libc::close(release_r);
    // The supervisor ignores SIGINT/SIGQUIT and holds the forwarded signals blocked; the
    // command starts with the defaults (ignored dispositions and the mask survive exec).
    libc::signal(libc::SIGINT, libc::SIG_DFL);
    libc::signal(libc::SIGQUIT, libc::SIG_DFL);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
    if *libc::__errno_location() == libc::ENOEXEC {
        libc::execve(plan.sh.as_ptr(), plan.sh_argv.as_ptr(), plan.envp.as_ptr());
    }
    let errno = (*libc::__errno_location()).to_ne_bytes();
    libc::write(error_w, errno.as_ptr().cast(), errno.len());
    libc::_exit(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(argv: &[&str]) -> WaitingChild {
        let program = which::which(argv[0]).unwrap();
        let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        WaitingChild::spawn(&program, &argv).unwrap()
    }

    #[test]
    fn nothing_runs_before_release_then_the_program_runs_with_its_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let script = format!("touch {}; exit 7", marker.display());
        let mut c = child(&["sh", "-c", &script]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!marker.exists(), "the program ran before release");
        c.release().unwrap();
        assert_eq!(c.wait().unwrap().code(), Some(7));
        assert!(marker.exists());
    }

    #[test]
    fn a_script_without_a_shebang_runs_under_sh_as_execvp_would() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("plain");
        std::fs::write(&script, "exit $1\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let argv = [OsStr::new("plain"), OsStr::new("5")];
        let mut c = WaitingChild::spawn(&script, &argv).unwrap();
        c.release().unwrap();
        assert_eq!(c.wait().unwrap().code(), Some(5));
    }

    #[test]
    fn a_child_dropped_unreleased_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let c = child(&["touch", marker.to_str().unwrap()]);
        let pid = c.pid() as libc::pid_t;
        drop(c);
        // Reaped: the pid is no longer our child.
        // SAFETY: waitpid with a null status pointer.
        assert_eq!(
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) },
            -1
        );
        assert!(!marker.exists());
    }

    #[test]
    fn an_exec_failure_is_reported_with_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("data");
        std::fs::write(&not_executable, "x").unwrap();
        let mut c = WaitingChild::spawn(&not_executable, &[OsStr::new("data")]).unwrap();
        let e = c.release().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    }

    #[test]
    fn signals_the_supervisor_holds_reach_the_command_with_default_handling() {
        // The test thread blocks SIGTERM like `run` does; the command must still die of it.
        // SAFETY: a local signal set and the calling thread's own mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut c = child(&["sleep", "30"]);
        c.release().unwrap();
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(c.pid() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
}
