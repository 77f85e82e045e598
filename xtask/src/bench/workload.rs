//! The operations a benchmark times, each run in a child process so it can be placed in a
//! confined cgroup or under a Landlock ruleset: `xtask bench-guest measure WORKLOAD ARG ITERS`.

use std::ffi::CString;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a paced workload runs.
pub const PACED_SECONDS: u64 = 2;

/// Times `iters` repetitions of `workload` on `arg` and returns nanoseconds per operation.
pub fn measure(workload: &str, arg: &str, iters: u32) -> Result<f64> {
    let iters = iters.max(1);
    let start;
    match workload {
        "open" => {
            let path = CString::new(Path::new(arg).as_os_str().as_bytes())?;
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: a valid NUL-terminated path; the descriptor is closed at once.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    bail!("open {arg}: {}", std::io::Error::last_os_error());
                }
                // SAFETY: fd was just opened by us.
                unsafe { libc::close(fd) };
            }
        }
        "open-denied" => {
            let path = CString::new(Path::new(arg).as_os_str().as_bytes())?;
            let denied_open = || {
                // SAFETY: a valid NUL-terminated path; a descriptor (never expected) is closed.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd >= 0 {
                    unsafe { libc::close(fd) };
                    bail!("open {arg} succeeded: it should be denied");
                }
                Ok(())
            };
            // Warm-up: empties the audit token bucket's burst, so the timed loop sees the
            // steady state.
            for _ in 0..iters / 2 {
                denied_open()?;
            }
            start = Instant::now();
            for _ in 0..iters {
                denied_open()?;
            }
        }
        "open-denied-paced" => {
            // `iters` denials per second for PACED_SECONDS: the audit pipeline's sustained rate.
            let path = CString::new(Path::new(arg).as_os_str().as_bytes())?;
            let total = iters as u64 * PACED_SECONDS;
            start = Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / iters as f64);
                let ahead = due.saturating_duration_since(Instant::now());
                if ahead > Duration::from_millis(1) {
                    std::thread::sleep(ahead);
                }
                // SAFETY: as for open-denied.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd >= 0 {
                    unsafe { libc::close(fd) };
                    bail!("open {arg} succeeded: it should be denied");
                }
            }
            return Ok(start.elapsed().as_nanos() as f64 / total as f64);
        }
        "exec" => {
            start = Instant::now();
            for _ in 0..iters {
                let status = Command::new(arg)
                    .arg("true")
                    .status()
                    .with_context(|| format!("exec {arg}"))?;
                if !status.success() {
                    bail!("{arg} true: {status}");
                }
            }
        }
        "connect" => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            std::thread::spawn(move || {
                for s in listener.incoming() {
                    drop(s);
                }
            });
            start = Instant::now();
            for _ in 0..iters {
                drop(TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?);
            }
        }
        "link" => {
            // A second name for `arg`, then its removal: path_link and path_unlink.
            let path = CString::new(Path::new(arg).as_os_str().as_bytes())?;
            let other = CString::new(format!("{arg}.link"))?;
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: two valid NUL-terminated paths.
                if unsafe { libc::link(path.as_ptr(), other.as_ptr()) } != 0 {
                    bail!("link {arg}: {}", std::io::Error::last_os_error());
                }
                // SAFETY: as above.
                unsafe { libc::unlink(other.as_ptr()) };
            }
        }
        "ioctl" => {
            // FIONREAD on a pipe: file_ioctl (and its compat twin for 32-bit callers).
            let mut fds = [0; 2];
            // SAFETY: pipe writes two descriptors into the array.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                bail!("pipe: {}", std::io::Error::last_os_error());
            }
            let mut n: libc::c_int = 0;
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: FIONREAD writes one int.
                if unsafe { libc::ioctl(fds[0], libc::FIONREAD, &mut n) } != 0 {
                    bail!("ioctl: {}", std::io::Error::last_os_error());
                }
            }
        }
        "capable" => {
            // setgroups as root asks for CAP_SETGID each time: the capable hook.
            let groups = [0 as libc::gid_t];
            start = Instant::now();
            for _ in 0..iters {
                // SAFETY: one valid gid from a live array.
                if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
                    bail!("setgroups: {}", std::io::Error::last_os_error());
                }
            }
        }
        other => bail!("unknown workload {other:?}"),
    }
    Ok(start.elapsed().as_nanos() as f64 / iters as f64)
}
