//! A confined task opens no pseudo-terminal but its own: not the developer's other sessions
//! (another terminal window, an ssh login), which are the developer's own files, nor one made
//! outside that no session has taken yet. Reading one would race its shell for what is typed
//! there (a `sudo` password); writing one puts text and escape sequences on the developer's
//! screen. Its controlling terminal (the one `run` started from), and the terminals it makes,
//! with or without a session, stay its own; outside, the same opens work.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use crate::harness::*;

/// `python3 -c DEVELOPER CGROUP`: the developer's terminals outside, kept until its stdin
/// closes, both given to the ordinary user as a login's are:
/// - `session`: one whose session a process outside leads (another window, an ssh login);
/// - `fresh`: one made outside that no session has taken yet (sshd between `/dev/ptmx` and its
///   child's open).
///
/// And `run` started from a third terminal: a process of a session led outside, moved into
/// CGROUP, opens its controlling terminal (`own_ctty`) and the other two.
/// Prints `own_ctty=.. session=.. fresh=..` (errnos), then `SESSION FRESH` (their names).
const DEVELOPER: &str = r#"
import fcntl, os, sys, termios
cgroup = sys.argv[1]
def reopen(name):
    try:
        os.close(os.open(name, os.O_RDWR | os.O_NOCTTY))
        return 0
    except OSError as e:
        return e.errno
def terminal():
    master, slave = os.openpty()
    os.fchown(slave, 1000, -1)
    return master, slave, os.ttyname(slave)
def lead(slave, then):
    # A child that makes `slave` its session's controlling terminal, then runs `then`.
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        then()
        os._exit(0)
    return pid
_, fresh, fresh_name = terminal()
_, other, session = terminal()
gone_r, gone_w = os.pipe()
def wait_for_developer():
    os.close(gone_w)
    os.read(gone_r, 1)
lead(other, wait_for_developer)
_, own, own_name = terminal()
said_r, said_w = os.pipe()
def run_from_terminal():
    pid = os.fork()
    if pid == 0:
        with open(cgroup + "/cgroup.procs", "w") as f:
            f.write("0")
        os.write(said_w, b"own_ctty=%d session=%d fresh=%d\n"
                 % (reopen(own_name), reopen(session), reopen(fresh_name)))
        os._exit(0)
    os.waitpid(pid, 0)
os.waitpid(lead(own, run_from_terminal), 0)
print(os.read(said_r, 200).decode().strip())
print(session, fresh_name, flush=True)
sys.stdin.read()
"#;

/// Steps of a confined task, given the developer's `SESSION FRESH` and `ALIAS` (the session's
/// terminal under another name): opening them, then terminals of its own making, first
/// without a session, then in a session its child leads.
const INSIDE: &str = r#"
import fcntl, sys, termios
session, fresh, alias = sys.argv[1:4]
def reopen(name):
    os.close(os.open(name, os.O_RDWR | os.O_NOCTTY))
step("session", lambda: reopen(session))
step("fresh", lambda: reopen(fresh))
step("alias", lambda: reopen(alias))
_, slave = os.openpty()
made = os.ttyname(slave)
step("made_here", lambda: reopen(made))
led_r, led_w = os.pipe()
done_r, done_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    os.write(led_w, b"x")
    os.read(done_r, 1)
    os._exit(0)
os.read(led_r, 1)
step("led_here", lambda: reopen(made))
os.write(done_w, b"x")
os.waitpid(pid, 0)
"#;

#[test]
fn a_confined_task_opens_no_terminal_but_its_own() {
    // The sandbox works for the developer (uid 1000, the owner of its `~`), whose terminals
    // these are: a confined root takes no other user's files at all.
    let home = fixture_dir("terminals");
    give_to(USER_UID, &home);
    let policy = policy_file(&home, "terminals", "deny_read: []\n");
    let cg = Cgroup::new("terminals");
    attach(&cg, &policy, &home);
    let cgroup = cg.path.to_str().unwrap();
    let mut developer = Command::new("python3")
        .args(["-c", DEVELOPER, cgroup])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(developer.stdout.take().unwrap()).lines();
    let mut line = || lines.next().unwrap().unwrap();
    let from_run = line();
    let names = line();
    let (session, fresh) = names.split_once(' ').unwrap();

    // Started from a terminal, the sandbox opens that one again, and no other.
    let run = format!("own_ctty=0 session={EPERM} fresh={EPERM}");
    assert_eq!(from_run, run);

    // Other names for the session's terminal: devpts bind-mounted elsewhere, a symlink planted
    // to it, and a node with its device number (which the kernel itself refuses outside: a
    // pseudo-terminal opens only at its devpts name).
    let pts = home.join("pts");
    std::fs::create_dir(&pts).unwrap();
    let pts_path = pts.to_str().unwrap();
    succeeds(&["mount", "--bind", "/dev/pts", pts_path]);
    let number = Path::new(session).file_name().unwrap().to_str().unwrap();
    let bound = pts.join(number);
    let node = home.join("node");
    succeeds(&[
        "mknod",
        "-m",
        "666",
        node.to_str().unwrap(),
        "c",
        "136",
        number,
    ]);

    let link = home.join("link");
    std::os::unix::fs::symlink(session, &link).unwrap();

    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        for alias in [&bound, &node, &link] {
            let args = [session, fresh, alias.to_str().unwrap()];
            let text = steps_as(Some(&cg), user, INSIDE, &args);
            for refused in ["session", "fresh", "alias"] {
                assert!(
                    text.contains(&format!("{refused}={EPERM}\n")),
                    "{who}: {text}"
                );
            }
            for own in ["made_here=0", "led_here=0"] {
                assert!(text.contains(own), "{who}: {own}: {text}");
            }
        }
        // Outside, the user opens the developer's terminals and root any.
        let args = [session, fresh, bound.to_str().unwrap()];
        let text = steps_as(None, user, INSIDE, &args);
        for step in [
            "session=0",
            "fresh=0",
            "alias=0",
            "made_here=0",
            "led_here=0",
        ] {
            assert!(text.contains(step), "outside, {who}: {step}: {text}");
        }
    }
    // Nor does a descriptor of it arrive over a Unix socket (`file_receive`).
    let sock = home.join("fd.sock");
    let passed = pass_fd(&cg, &sock, Path::new(session), FdMode::Read);
    assert_eq!(passed, "OK:0", "the developer's terminal must not arrive");
    record_of(&cg, "file_open", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.starts_with("self-protection"))
            && r["target"]["path"] == session
    });

    drop(developer.stdin.take());
    assert!(developer.wait().unwrap().success());
    succeeds(&["umount", "-l", pts_path]);
}

/// Runs `argv` outside, which must succeed.
fn succeeds(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
}
