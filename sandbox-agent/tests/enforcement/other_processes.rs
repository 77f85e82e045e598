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
