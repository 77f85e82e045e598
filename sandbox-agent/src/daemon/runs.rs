//! The daemon's side of `run`: which process a caller may have confined (only its own waiting
//! child), pinning that process while it is moved, and telling whether a run's client is still
//! alive. Everything here reads procfs, whose text comes from the kernel: parse failures are
//! errors, never panics.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::protocol::RunOwner;

/// What `/proc/<pid>/status` says about a process's parent and user.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcStatus {
    pub ppid: i32,
    /// Real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
}

pub fn parse_status(text: &str) -> Option<ProcStatus> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name));
    let ppid = field("PPid:")?.trim().parse().ok()?;
    let uids: Vec<u32> = field("Uid:")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(ProcStatus {
        ppid,
        uids: uids.try_into().ok()?,
    })
}

/// The state letter and start time (field 22, clock ticks after boot) of `/proc/<pid>/stat`.
/// The command name (field 2) may hold spaces and parentheses: fields are counted after its
/// last `)`.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); field 22 is 19 further.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn read_proc(pid: i32, file: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
}

/// The start time of a live (not zombie) process.
pub fn start_time(pid: i32) -> io::Result<u64> {
    let text = read_proc(pid, "stat")?;
    match parse_stat(&text) {
        Some(('Z' | 'X', _)) => Err(io::Error::other(format!("process {pid} has exited"))),
        Some((_, start)) => Ok(start),
        None => Err(io::Error::other(format!("cannot parse /proc/{pid}/stat"))),
    }
}

/// Whether the client that made a run is still running (the same process, not a later one
/// with its pid).
pub fn is_alive(owner: &RunOwner) -> bool {
    start_time(owner.pid).is_ok_and(|t| t == owner.start_time)
}

/// Refuses unless `pid` is a child of `caller_pid` running as `caller_uid` (every uid), so no
/// caller can have someone else's process confined, moved, or later killed with the cgroup.
pub fn check_own_child(pid: u32, caller_pid: i32, caller_uid: u32) -> Result<(), String> {
    let id = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid pid {pid}"))?;
    let text = read_proc(id, "status").map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("no process {pid}"),
        _ => format!("cannot read /proc/{pid}/status: {e}"),
    })?;
    let status = parse_status(&text).ok_or_else(|| format!("cannot parse /proc/{pid}/status"))?;
    if status.ppid != caller_pid {
        return Err(format!(
            "permission denied: process {pid} is not a child of the caller (pid {caller_pid}); run confines only a process its caller started"
        ));
    }
    if status.uids.iter().any(|u| *u != caller_uid) {
        return Err(format!(
            "permission denied: process {pid} does not run as the caller's uid {caller_uid}"
        ));
    }
    Ok(())
}

/// A pidfd: refers to one process for good, whatever happens to its pid number.
pub struct Pidfd(OwnedFd);

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Pidfd {
    pub fn open(pid: u32) -> io::Result<Pidfd> {
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nobody else owns it.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Whether the process has exited (a pidfd polls readable once it has).
    pub fn exited(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        // An error is treated as exited: the caller then refuses, which is the safe side.
        r != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\nNgid:\t0\n\
        Pid:\t812\nPPid:\t800\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t4242\t4242\t4242\t4242\n";

    #[test]
    fn status_gives_the_parent_and_every_uid() {
        assert_eq!(
            parse_status(STATUS),
            Some(ProcStatus {
                ppid: 800,
                uids: [1000; 4]
            })
        );
        let setuid = STATUS.replace("Uid:\t1000\t1000", "Uid:\t1000\t0");
        assert_eq!(parse_status(&setuid).unwrap().uids, [1000, 0, 1000, 1000]);
    }

    #[test]
    fn damaged_status_text_is_none_not_a_panic() {
        for bad in [
            "",
            "PPid:\tx\nUid:\t1\t1\t1\t1\n",
            "PPid:\t1\nUid:\t1\t1\t1\n",
            "PPid:\t1\n",
        ] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stat_fields_count_after_the_last_parenthesis_of_the_name() {
        let stat = "812 (a) b (c)) S 800 812 800 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 \
                    1000 10 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 123456)));
        assert_eq!(parse_stat("812 (cat) Z 800"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap();
        assert!(is_alive(&RunOwner {
            uid: 0,
            pid,
            start_time: start
        }));
        assert!(!is_alive(&RunOwner {
            uid: 0,
            pid,
            start_time: start + 1
        }));
    }

    #[test]
    fn only_the_callers_own_child_may_be_confined() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(check_own_child(child.id(), me, uid), Ok(()));
        let e = check_own_child(child.id(), me + 1, uid).unwrap_err();
        assert!(e.contains("not a child of the caller"), "{e}");
        let e = check_own_child(child.id(), me, uid + 1).unwrap_err();
        assert!(e.contains("does not run as the caller's uid"), "{e}");
        let e = check_own_child(me as u32, me, uid).unwrap_err();
        assert!(e.contains("not a child"), "{e}");
        assert!(check_own_child(0, me, uid).is_err());
        assert!(check_own_child(u32::MAX, me, uid).is_err());
        let pidfd = Pidfd::open(child.id()).unwrap();
        assert!(!pidfd.exited());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(pidfd.exited());
    }
}
