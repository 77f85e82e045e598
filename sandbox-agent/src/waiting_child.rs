//! A child process forked and held before `exec`, so that someone else (the daemon) can move it
//! into a confined cgroup before it runs a single instruction of the command.
//!
//! The child only waits on a pipe: it runs nothing of the command until `release`, and when the
//! parent goes away (or drops it without releasing), it exits with status 127 without executing
//! anything.
//!
//! Right after the fork, before it waits, the child closes every descriptor above 2 it inherited
//! except the ones the caller keeps on purpose (`run --keep-fd`) and its own two control pipes:
//! a descriptor opened before confinement would otherwise let the command read or write a file
//! the policy denies, since the kernel decides at open and that open happened outside. The
//! release pipe is closed once released; the exec-error pipe is close-on-exec.

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, process::ExitStatusExt},
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
    /// (`argv[0]` included) and the environment `env`, once released. The child keeps
    /// descriptors 0, 1, 2 and those in `keep_fds`, and closes every other one it inherited
    /// before it waits.
    ///
    /// Call it while the process is single-threaded or be sure no other thread holds a lock
    /// the child could need: the child only makes async-signal-safe calls (read, close,
    /// close_range, open, getdents64, keyctl, sigaction, sigprocmask, execve, write, _exit).
    pub fn spawn(
        program: &Path,
        argv: &[&OsStr],
        env: &[(OsString, OsString)],
        keep_fds: &[RawFd],
    ) -> io::Result<WaitingChild> {
        // Everything the child needs is allocated before the fork.
        let path = cstring(program.as_os_str())?;
        let args = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        let env = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
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
        // Sorted, for the gaps between them and a search without allocating in the child.
        let mut keep: Vec<RawFd> = keep_fds.iter().copied().filter(|&fd| fd > 2).collect();
        keep.extend([release_r.as_raw_fd(), error_w.as_raw_fd()]);
        keep.sort_unstable();
        keep.dedup();

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
                        keep: &keep,
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

    /// Lets the child execute its program. Returns the error of its `execve` if that failed,
    /// or of closing its inherited descriptors (the child has then exited and is reaped).
    pub fn release(&mut self) -> io::Result<()> {
        let release = self
            .release
            .take()
            .ok_or_else(|| io::Error::other("the child was already released"))?;
        // A child that failed before it waited has exited: the write fails (EPIPE), and what
        // it reported on the error pipe says why.
        let released = write_all(release.as_raw_fd(), &[1]);
        drop(release);
        let exec_error = self
            .exec_error
            .take()
            .ok_or_else(|| io::Error::other("the child was already released"))?;
        // EOF: the descriptor closed on a successful exec. Five bytes: the stage that failed
        // and the child's errno.
        let mut buf = [0u8; 5];
        let n = read_full(exec_error.as_raw_fd(), &mut buf)?;
        if n == 0 {
            return released;
        }
        let _ = self.wait();
        let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
        match (n == buf.len()).then_some(buf[0]) {
            Some(STAGE_EXEC) => Err(io::Error::from_raw_os_error(errno)),
            Some(STAGE_CLOSE_FDS) => {
                let e = io::Error::from_raw_os_error(errno);
                Err(io::Error::new(
                    e.kind(),
                    format!("the child cannot close the descriptors it inherited: {e}"),
                ))
            }
            _ => Err(io::Error::other(
                "the child failed before executing its program",
            )),
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
/// program as its script when the kernel does not know the file's format (ENOEXEC); and the
/// descriptors above 2 it keeps (sorted).
struct ExecPlan<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    sh: &'a CString,
    sh_argv: &'a [*const libc::c_char],
    keep: &'a [RawFd],
}

/// What failed in the child, the first byte of its report on the error pipe.
const STAGE_EXEC: u8 = 0;
const STAGE_CLOSE_FDS: u8 = 1;

fn errno() -> i32 {
    // SAFETY: the calling thread's errno location is always valid.
    unsafe { *libc::__errno_location() }
}

/// Closes every descriptor above 2 except `keep` (sorted): `close_range(2)` over the gaps
/// (Linux 5.9+), or, where that fails (an older kernel, a seccomp filter), one `close` per
/// entry of `/proc/self/fd`. Async-signal-safe: no allocation. Returns the errno on failure.
fn close_inherited(keep: &[RawFd]) -> Result<(), i32> {
    if close_ranges(keep).is_ok() {
        return Ok(());
    }
    close_listed(keep)
}

fn close_ranges(keep: &[RawFd]) -> Result<(), i32> {
    let close_range = |first: u32, last: u32| {
        // SAFETY: close_range(2) takes plain integers.
        match unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) } {
            0 => Ok(()),
            _ => Err(errno()),
        }
    };
    let mut first: u32 = 3;
    for &fd in keep {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < first {
            continue;
        }
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

/// The fallback: closes what `/proc/self/fd` lists. Closing entries already read does not
/// disturb the listing (procfs walks the descriptor table by number).
fn close_listed(keep: &[RawFd]) -> Result<(), i32> {
    // SAFETY: a NUL-terminated literal path.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(errno());
    }
    // linux_dirent64 records, 8-byte aligned.
    let mut buf = [0u64; 512];
    loop {
        // SAFETY: getdents64(2) into a buffer of the size given.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if n < 0 {
            let e = errno();
            // SAFETY: our own descriptor.
            unsafe { libc::close(dir) };
            return Err(e);
        }
        if n == 0 {
            break;
        }
        // SAFETY: the kernel filled the first n bytes of buf.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + 19 < bytes.len() {
            // d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name (NUL-terminated).
            let reclen = u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = &bytes[at + 19..(at + reclen).min(bytes.len())];
            if let Some(fd) = parse_fd(name) {
                if fd > 2 && fd != dir && keep.binary_search(&fd).is_err() {
                    // SAFETY: close(2) of a descriptor number; EBADF is harmless.
                    unsafe { libc::close(fd) };
                }
            }
            at += reclen;
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(dir) };
    Ok(())
}

/// A descriptor number from a NUL-terminated directory entry name ("." and ".." are not).
fn parse_fd(name: &[u8]) -> Option<RawFd> {
    let mut fd: RawFd = 0;
    let mut digits = 0;
    for &b in name.iter().take_while(|&&b| b != 0) {
        if !b.is_ascii_digit() {
            return None;
        }
        fd = fd.checked_mul(10)?.checked_add((b - b'0') as RawFd)?;
        digits += 1;
    }
    (digits > 0).then_some(fd)
}

/// `KEYCTL_JOIN_SESSION_KEYRING` of <linux/keyctl.h>: with no name, a new anonymous keyring.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;

/// Reports a failure of `stage` with `errno` to the parent.
///
/// # Safety
/// `error_w` must be the child's end of the error pipe.
unsafe fn report(error_w: RawFd, stage: u8, errno: i32) {
    let e = errno.to_ne_bytes();
    let msg = [stage, e[0], e[1], e[2], e[3]];
    libc::write(error_w, msg.as_ptr().cast(), msg.len());
}

/// The child between fork and exec: closes the descriptors it inherited (but `plan.keep`),
/// waits for one byte on `release_r`, restores default signal handling, executes the program,
/// and reports a failure (which stage, the errno) on `error_w` (close-on-exec, so a
/// successful exec closes it). EOF on `release_r` (the parent gave up or died) ends the child
/// without executing anything.
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
    if let Err(errno) = close_inherited(plan.keep) {
        report(error_w, STAGE_CLOSE_FDS, errno);
        libc::_exit(127);
    }
    let mut byte = 0u8;
    loop {
        let n = libc::read(release_r, (&mut byte as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        libc::_exit(127);
    }
    libc::close(release_r);
    // A session keyring of its own, made now that the child is confined, so that it is the
    // sandbox's: what the command adds to `@s` (a `kinit` into a `KEYRING:` cache) it may read
    // back, and it no longer holds the runner's, whose keys it may not read anyway. Best effort:
    // without keyrings (ENOSYS) or over quota it keeps the runner's, which the kernel guards.
    libc::syscall(
        libc::SYS_keyctl,
        KEYCTL_JOIN_SESSION_KEYRING,
        std::ptr::null::<libc::c_char>(),
    );
    // The supervisor ignores SIGINT/SIGQUIT and holds the forwarded signals blocked; the
    // command starts with the defaults (ignored dispositions and the mask survive exec).
    libc::signal(libc::SIGINT, libc::SIG_DFL);
    libc::signal(libc::SIGQUIT, libc::SIG_DFL);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
    if errno() == libc::ENOEXEC {
        libc::execve(plan.sh.as_ptr(), plan.sh_argv.as_ptr(), plan.envp.as_ptr());
    }
    report(error_w, STAGE_EXEC, errno());
    libc::_exit(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(argv: &[&str]) -> WaitingChild {
        let program = which::which(argv[0]).unwrap();
        let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        WaitingChild::spawn(&program, &argv, &inherited(), &[]).unwrap()
    }

    fn inherited() -> Vec<(OsString, OsString)> {
        std::env::vars_os().collect()
    }

    #[test]
    fn the_program_gets_exactly_the_environment_it_is_given() {
        let program = which::which("sh").unwrap();
        let argv = [
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new("test \"$KEPT\" = yes && test -z \"${HOME+set}\""),
        ];
        let env = [(OsString::from("KEPT"), OsString::from("yes"))];
        let mut c = WaitingChild::spawn(&program, &argv, &env, &[]).unwrap();
        c.release().unwrap();
        assert_eq!(
            c.wait().unwrap().code(),
            Some(0),
            "HOME leaked or KEPT lost"
        );
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
        let mut c = WaitingChild::spawn(&script, &argv, &inherited(), &[]).unwrap();
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
        let mut c =
            WaitingChild::spawn(&not_executable, &[OsStr::new("data")], &inherited(), &[]).unwrap();
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

    /// A descriptor open on `path` without close-on-exec, as a shell's `3<file` leaves it.
    fn inheritable(path: &Path) -> OwnedFd {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; the descriptor is owned by the returned OwnedFd.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: just opened, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Exit status of `sh -c script` run as a waiting child keeping `keep`.
    fn status_of(script: &str, keep: &[RawFd]) -> Option<i32> {
        let program = which::which("sh").unwrap();
        let argv = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new(script)];
        let mut c = WaitingChild::spawn(&program, &argv, &inherited(), keep).unwrap();
        c.release().unwrap();
        c.wait().unwrap().code()
    }

    #[test]
    fn inherited_descriptors_are_closed_before_the_program_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "held\n").unwrap();
        let held = inheritable(&dir.path().join("f"));
        let fd = held.as_raw_fd();
        // `read <&N` fails (EBADF) in the command: the descriptor is gone.
        let script = format!("{{ read line <&{fd}; }} 2>/dev/null");
        assert_ne!(status_of(&script, &[]), Some(0));
        assert_eq!(status_of(&script, &[fd]), Some(0), "kept, it reads");
        // The standard descriptors stay.
        assert_eq!(
            status_of("test -e /proc/$$/fd/0 && test -e /proc/$$/fd/2", &[]),
            Some(0)
        );
    }

    #[test]
    fn a_kept_descriptor_stays_open_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "held\n").unwrap();
        let held = inheritable(&dir.path().join("f"));
        let other = inheritable(&dir.path().join("f"));
        let (fd, closed) = (held.as_raw_fd(), other.as_raw_fd());
        let script =
            format!("read line <&{fd} && [ \"$line\" = held ] && ! test -e /proc/$$/fd/{closed}");
        assert_eq!(status_of(&script, &[fd]), Some(0));
    }

    #[test]
    fn the_proc_listing_fallback_closes_all_but_the_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let (a, b, c) = (
            inheritable(&dir.path().join("f")),
            inheritable(&dir.path().join("f")),
            inheritable(&dir.path().join("f")),
        );
        let mut keep = [a.as_raw_fd(), c.as_raw_fd()];
        keep.sort_unstable();
        let probe = [a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd()];
        // SAFETY: the child only makes raw syscalls, then _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = close_listed(&keep).is_ok();
            // SAFETY: fcntl(2) and _exit(2) take plain integers.
            unsafe {
                let open = |fd| libc::fcntl(fd, libc::F_GETFD) != -1;
                let code = if !ok {
                    1
                } else if !open(0) || !open(1) || !open(2) {
                    2
                } else if !open(probe[0]) || !open(probe[2]) {
                    3
                } else if open(probe[1]) {
                    4
                } else {
                    0
                };
                libc::_exit(code)
            }
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(ExitStatus::from_raw(status).code(), Some(0));
    }

    #[test]
    fn descriptor_names_are_parsed_and_dot_entries_are_not() {
        assert_eq!(parse_fd(b"17\0"), Some(17));
        assert_eq!(parse_fd(b"0\0\0\0"), Some(0));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
    }
}
