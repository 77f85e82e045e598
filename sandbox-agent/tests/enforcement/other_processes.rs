//! A confined task steers no process outside its sandbox. Outside, the kernel lets a task
//! lower the priority, change the scheduling, CPUs, resource limits and OOM score of any
//! process of its own user without a capability: for root, of the daemon, sshd and every
//! root process on the host, and name any of them as the one a file's signals go to. Inside,
//! it may do so only to its own sandbox's processes (and signals only itself by a file).

use std::os::unix::process::ExitStatusExt;

use crate::{filesystems::step, harness::*};

/// `python3 -c STEER PID`: one `<step>=<errno>` line per change tried on process PID (0 when
/// it worked), or on a child of the probe's own with `child`. Each change sets what is
/// already there, so one that works changes nothing.
const STEER: &str = r#"
import ctypes, os, resource, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
child = None
if sys.argv[1] == "child":
    child = subprocess.Popen(["sleep", "60"])
    pid = child.pid
else:
    pid = int(sys.argv[1])
def checked(ret):
    if ret < 0:
        raise OSError(ctypes.get_errno(), "syscall")
    return ret
# ioprio_get and ioprio_set (x86-64), IOPRIO_WHO_PROCESS.
def ioprio():
    checked(libc.syscall(251, 1, pid, checked(libc.syscall(252, 1, pid))))
def oom_score_adj():
    path = "/proc/%d/oom_score_adj" % pid
    value = open(path).read()
    with open(path, "w") as f:
        f.write(value)
nofile = resource.RLIMIT_NOFILE
step("nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid)))
step("ioprio", ioprio)
step("sched", lambda: os.sched_setscheduler(pid, os.sched_getscheduler(pid), os.sched_getparam(pid)))
step("affinity", lambda: os.sched_setaffinity(pid, os.sched_getaffinity(pid)))
step("prlimit_read", lambda: resource.prlimit(pid, nofile))
step("prlimit", lambda: resource.prlimit(pid, nofile, resource.prlimit(pid, nofile)))
step("oom_score_adj", oom_score_adj)
step("prlimit_own", lambda: resource.prlimit(0, nofile, resource.prlimit(0, nofile)))
if child:
    child.kill()
"#;

const CHANGES: [&str; 6] = [
    "nice",
    "ioprio",
    "sched",
    "affinity",
    "prlimit",
    "oom_score_adj",
];

/// The changes `STEER` makes to `pid`, by root or (with `user`) the ordinary user, inside
/// `cg` or outside.
fn steer(cg: Option<&Cgroup>, user: bool, pid: &str) -> String {
    steps_as(cg, user, STEER, &[pid])
}

fn assert_steps(out: &str, steps: &[&str], errno: i32, who: &str) {
    for s in steps {
        assert_eq!(step(out, s), errno, "{who}: {s}: {out}");
    }
}

#[test]
fn a_confined_task_steers_no_process_outside_its_sandbox() {
    let dir = fixture_dir("other-processes");
    let cg = confined("other-processes", &dir, &[]);
    // Processes outside: one of root's (as the daemon and sshd are) and one of the user's.
    let mut roots = as_whom_outside(false, &["sleep", "300"]).spawn().unwrap();
    let mut users = as_whom_outside(true, &["sleep", "300"]).spawn().unwrap();
    let (root_pid, user_pid) = (roots.id().to_string(), users.id().to_string());

    // Outside, each changes its own user's process; no capability is asked.
    assert_steps(&steer(None, false, &root_pid), &CHANGES, 0, "root outside");
    assert_steps(&steer(None, true, &user_pid), &CHANGES, 0, "user outside");

    // Inside, neither does; reading the limits stays allowed.
    for (user, pid, who) in [(false, &root_pid, "root"), (true, &user_pid, "user")] {
        let out = steer(Some(&cg), user, pid);
        assert_steps(&out, &CHANGES, EPERM, who);
        assert_steps(&out, &["prlimit_read"], 0, who);
    }
    let root_tgid: u32 = root_pid.parse().unwrap();
    record_of(&cg, "task_setnice", |r| {
        r["action"] == "deny" && r["target"]["tgid"] == root_tgid
    });
    record_of(&cg, "task_setscheduler", |r| r["action"] == "deny");
    record_of(&cg, "task_setrlimit", |r| r["action"] == "deny");
    record_of(&cg, "file_open", |r| {
        r["action"] == "deny"
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("oom_score_adj"))
    });

    // Its own processes stay its to steer, and its own limits its to set.
    for user in [false, true] {
        let out = steer(Some(&cg), user, "child");
        assert_steps(&out, &CHANGES, 0, "own child");
        assert_steps(&out, &["prlimit_read", "prlimit_own"], 0, "own");
    }

    // After detach, root reaches root's process again.
    detach(&cg);
    assert_steps(
        &steer(Some(&cg), false, &root_pid),
        &CHANGES,
        0,
        "after detach",
    );
    for p in [&mut roots, &mut users] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn a_process_already_in_the_cgroup_at_the_attach_is_the_sandboxs_own() {
    let dir = fixture_dir("other-processes-before");
    let cg = Cgroup::new("other-processes-before");
    // Started in the cgroup before the policy was attached, and idle since: no decision of
    // its own has marked it as confined. Its cgroup's attachment confines it all the same.
    let mut idle = cg.spawn(&["sleep", "300"]);
    attach(&cg, &deny_read_policy(&dir, &[]), &dir);
    let pid = idle.id().to_string();
    assert_steps(&steer(Some(&cg), false, &pid), &CHANGES, 0, "its own");
    let signal = cg.run(&["sh", "-c", &format!("kill -0 {pid}")]);
    assert!(signal.status.success(), "kill: {}", stderr(&signal));
    let _ = idle.kill();
    let _ = idle.wait();
}

/// `python3 -c REACH PID ADDRESS`: each way the kernel offers to read process PID's memory or
/// take its descriptors (ADDRESS is readable in it): `PTRACE_SEIZE`, `/proc/PID/mem`,
/// `process_vm_readv`, `pidfd_getfd`. All are one permission check, `ptrace_access_check`.
const REACH: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, address = int(sys.argv[1]), int(sys.argv[2], 16)
def checked(ret):
    if ret < 0:
        raise OSError(ctypes.get_errno(), "syscall")
    return ret
def seize():
    checked(libc.ptrace(0x4206, pid, None, None))
def mem():
    with open("/proc/%d/mem" % pid, "rb") as f:
        f.seek(address)
        f.read(8)
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_read():
    buffer = ctypes.create_string_buffer(8)
    local = IoVec(ctypes.cast(buffer, ctypes.c_void_p), 8)
    remote = IoVec(address, 8)
    # process_vm_readv (x86-64)
    checked(libc.syscall(310, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
def getfd():
    # pidfd_open and pidfd_getfd (x86-64): the target's standard input
    pidfd = checked(libc.syscall(434, pid, 0))
    os.close(checked(libc.syscall(438, pidfd, 0, 0)))
step("seize", seize)
step("mem", mem)
step("vm_read", vm_read)
step("getfd", getfd)
"#;
const REACHES: [&str; 4] = ["seize", "mem", "vm_read", "getfd"];

/// Yama's `ptrace_scope` set to `scope` while it lives, then back; nothing where Yama is not
/// among the kernel's active LSMs (as in the test VM).
struct PtraceScope(Option<String>);

impl PtraceScope {
    const PATH: &str = "/proc/sys/kernel/yama/ptrace_scope";
    fn set(scope: &str) -> PtraceScope {
        let was = std::fs::read_to_string(Self::PATH).ok();
        if was.is_some() {
            std::fs::write(Self::PATH, scope).unwrap();
        }
        PtraceScope(was)
    }
}

impl Drop for PtraceScope {
    fn drop(&mut self) {
        if let Some(was) = &self.0 {
            let _ = std::fs::write(Self::PATH, was.trim());
        }
    }
}

#[test]
fn a_confined_task_reads_no_memory_and_takes_no_descriptor_of_a_process_outside() {
    let dir = fixture_dir("other-processes-memory");
    let cg = confined("other-processes-memory", &dir, &[]);
    // Yama off, as many hosts have it: then only the sandbox stands between a task and the
    // memory of every process of its user (an agent's keys, a shell's secrets).
    let _scope = PtraceScope::set("0");
    let mut roots = as_whom_outside(false, &["sleep", "300"]).spawn().unwrap();
    let mut users = as_whom_outside(true, &["sleep", "300"]).spawn().unwrap();
    for (user, process, who) in [(false, &roots, "root"), (true, &users, "user")] {
        let pid = process.id().to_string();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let address = maps.split('-').next().unwrap().to_string();
        let args = [pid.as_str(), address.as_str()];
        let outside = steps_as(None, user, REACH, &args);
        assert_steps(&outside, &REACHES, 0, &format!("{who} outside"));
        let inside = steps_as(Some(&cg), user, REACH, &args);
        let who = format!("{who} inside");
        assert_steps(&inside, &["seize", "vm_read", "getfd"], EPERM, &who);
        // /proc/PID/mem says EACCES for any refused ptrace check (mm_access).
        assert_steps(&inside, &["mem"], libc::EACCES, &who);
    }
    record_of(&cg, "ptrace_access_check", |r| r["action"] == "deny");
    for p in [&mut roots, &mut users] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// `python3 -c OWNERS PID`: names PID, then the prober itself, as the process a pipe's or a
/// socket's SIGIO and SIGURG go to: `F_SETOWN` (and a process group, the prober's own),
/// `F_SETOWN_EX` by process and by thread, `FIOSETOWN` and `SIOCSPGRP`.
const OWNERS: &str = r#"
import fcntl, os, socket, struct, sys, threading
pid = int(sys.argv[1])
r, w = os.pipe()
s = socket.socket()
F_SETOWN_EX, FIOSETOWN, SIOCSPGRP = 15, 0x8901, 0x8902
def owners(suffix, pid, tid):
    step("setown" + suffix, lambda: fcntl.fcntl(r, fcntl.F_SETOWN, pid))
    step("setown_ex" + suffix, lambda: fcntl.fcntl(r, F_SETOWN_EX, struct.pack("ii", 1, pid)))
    step("setown_ex_tid" + suffix, lambda: fcntl.fcntl(r, F_SETOWN_EX, struct.pack("ii", 0, tid)))
    step("fiosetown" + suffix, lambda: fcntl.ioctl(s.fileno(), FIOSETOWN, struct.pack("i", pid)))
    step("siocspgrp" + suffix, lambda: fcntl.ioctl(s.fileno(), SIOCSPGRP, struct.pack("i", pid)))
owners("", pid, pid)
owners("_self", os.getpid(), threading.get_native_id())
step("setown_group", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, -os.getpgrp()))
step("setown_none", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, 0))
# A terminal signals its foreground process group once a descriptor of it is asynchronous;
# a pipe signals the owner named above.
master, tty = os.openpty()
flags = fcntl.fcntl(tty, fcntl.F_GETFL)
step("tty_async", lambda: fcntl.fcntl(tty, fcntl.F_SETFL, flags | os.O_ASYNC))
step("tty_fioasync", lambda: fcntl.ioctl(tty, 0x5452, struct.pack("i", 1)))
step("tty_nonblock", lambda: fcntl.fcntl(tty, fcntl.F_SETFL, flags | os.O_NONBLOCK))
step("pipe_async", lambda: fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC))
"#;

/// `python3 -c SIGKILL_BY_FILE PID`: makes a pipe signal PID with SIGKILL once it is ready
/// (`F_SETOWN`, `F_SETSIG`, `O_ASYNC`), then makes it ready.
const SIGKILL_BY_FILE: &str = r#"
import fcntl, os, sys
r, w = os.pipe()
step("setown", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, int(sys.argv[1])))
fcntl.fcntl(r, 10, 9)
fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
os.write(w, b"x")
"#;

const OWNER_STEPS: [&str; 5] = [
    "setown",
    "setown_ex",
    "setown_ex_tid",
    "fiosetown",
    "siocspgrp",
];

#[test]
fn no_file_signals_a_process_outside_the_sandbox() {
    let dir = fixture_dir("other-processes-sigio");
    let cg = confined("other-processes-sigio", &dir, &[]);
    // F_SETOWN with F_SETSIG(SIGKILL) would kill it the moment the file is ready, whoever
    // makes it ready: the kernel checks only the namer's credentials, and root's pass.
    let victim = |who| {
        as_whom_outside(false, &["sleep", "300"])
            .spawn()
            .expect(who)
    };
    let mut killed = victim("a victim outside");
    let out = steps_as(None, false, SIGKILL_BY_FILE, &[&killed.id().to_string()]);
    assert_steps(&out, &["setown"], 0, "outside");
    let status = killed.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{out}");
    let mut spared = victim("a victim inside");
    let inside = steps_as(
        Some(&cg),
        false,
        SIGKILL_BY_FILE,
        &[&spared.id().to_string()],
    );
    assert_steps(&inside, &["setown"], EPERM, "inside");
    assert!(
        spared.try_wait().unwrap().is_none(),
        "killed from inside: {inside}"
    );
    let _ = spared.kill();
    let _ = spared.wait();

    // Every way to name the owner, and the names that stay allowed.
    let mut roots = victim("a process outside");
    let pid = roots.id().to_string();
    let outside = steps_as(None, false, OWNERS, &[&pid]);
    assert_steps(&outside, &OWNER_STEPS, 0, "outside");
    assert_steps(&outside, &["tty_async", "tty_fioasync"], 0, "outside");
    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let inside = steps_as(Some(&cg), user, OWNERS, &[&pid]);
        // The kernel checks no permission here (only the namer's credentials, at delivery).
        assert_steps(&inside, &OWNER_STEPS, EPERM, who);
        let own: Vec<String> = OWNER_STEPS.iter().map(|s| format!("{s}_self")).collect();
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        assert_steps(&inside, &own, 0, who);
        assert_steps(&inside, &["setown_none"], 0, who);
        // A process group may hold processes outside: none is named.
        assert_steps(&inside, &["setown_group"], EPERM, who);
        assert_steps(&inside, &["tty_async", "tty_fioasync"], EPERM, who);
        assert_steps(&inside, &["tty_nonblock", "pipe_async"], 0, who);
    }
    record_of(&cg, "file_fcntl", |r| r["action"] == "deny");
    let _ = roots.kill();
    let _ = roots.wait();
}
