//! A confined process, even root inside its cgroup, cannot leave its confinement or reach past
//! it: no moving out of the cgroup, no bpf(), no signals or ptrace to tasks outside, no mounts,
//! no denied file handed in over a Unix socket, and no access to the daemon's own files.

use crate::harness::*;

fn confined_secret(name: &str) -> (Cgroup, std::path::PathBuf, std::path::PathBuf) {
    let home = fixture_dir(name);
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined(name, &home, &[&secret]);
    (cg, home, secret)
}

fn daemon_pid() -> u32 {
    let out = agent().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["daemon_pid"].as_u64().unwrap() as u32
}

#[test]
fn moving_to_the_root_cgroup_is_denied_and_the_secret_stays_denied() {
    let (cg, _home, secret) = confined_secret("escape-move");
    let script = format!(
        "echo $$ > /sys/fs/cgroup/cgroup.procs; echo moved=$?; cat {}; echo read=$?",
        secret.display()
    );
    let out = cg.run(&["sh", "-c", &script]);
    let text = stdout(&out);
    assert!(
        text.contains("moved=1") || text.contains("moved=2"),
        "{text}"
    );
    assert!(text.contains("read=1"), "{text}");
    assert!(
        !text.contains("\ns\n") && !text.starts_with("s\n"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    // Making a sub-cgroup elsewhere is a cgroupfs write too.
    let out = cg.run(&["mkdir", "/sys/fs/cgroup/escape-made-by-confined"]);
    assert!(!out.status.success());
}

/// bpf(BPF_PROG_GET_NEXT_ID): prints OK:<ret> or ERR:<errno>.
const BPF_SYSCALL: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(128)
ret = libc.syscall(321, 11, attr, 128)
print("OK:%d" % ret if ret >= 0 else "ERR:%d" % ctypes.get_errno(), end="")
"#;

#[test]
fn the_bpf_syscall_is_denied_inside_and_works_outside() {
    let (cg, _home, _secret) = confined_secret("escape-bpf");
    assert_eq!(cg.probe(BPF_SYSCALL, &[]), Err(EPERM));
    record_of(&cg, "bpf", |r| {
        r["target"]["kind"] == "bpf_command" && r["target"]["bpf_command"] == 11
    });
    assert!(
        probe(None, BPF_SYSCALL, &[]) != Err(EPERM),
        "outside the sandbox bpf() is the kernel's business"
    );
}

#[test]
fn signals_and_ptrace_reach_only_the_sandbox_itself() {
    let (cg, _home, _secret) = confined_secret("escape-signal");
    let daemon = daemon_pid();
    let script = format!(
        "kill -0 {daemon}; echo daemon=$?; sleep 30 & kill $!; echo child=$?; \
         cat /proc/{daemon}/environ >/dev/null; echo environ=$?"
    );
    let out = cg.run(&["sh", "-c", &script]);
    let text = stdout(&out);
    assert!(text.contains("daemon=1"), "{text}");
    assert!(text.contains("child=0"), "its own child: {text}");
    assert!(text.contains("environ=1"), "{text}");
    record_of(&cg, "task_kill", |r| {
        r["target"]["kind"] == "task" && r["target"]["tgid"] == daemon
    });

    const PTRACE: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
ret = libc.ptrace(16, int(sys.argv[1]), None, None)
print("OK:%d" % ret if ret >= 0 else "ERR:%d" % ctypes.get_errno(), end="")
"#;
    assert_eq!(cg.probe(PTRACE, &[&daemon.to_string()]), Err(EPERM));
}

#[test]
fn mounts_cannot_hide_or_replace_a_secret() {
    let (cg, home, secret) = confined_secret("escape-mount");
    let decoy = home.join("decoy");
    write(&decoy, "d");
    let script = format!(
        "unshare --propagation unchanged -m sh -c 'mount --bind {} {} && cat {}'; echo mount=$?",
        secret.display(),
        decoy.display(),
        decoy.display()
    );
    let out = cg.run(&["sh", "-c", &script]);
    assert!(!stdout(&out).contains("mount=0"), "{}", stdout(&out));
    assert!(!stdout(&out).starts_with('s'), "{}", stdout(&out));
    assert_eq!(cg.open(&secret), Err(EPERM));
}

#[test]
fn a_denied_file_passed_over_a_unix_socket_does_not_arrive() {
    let (cg, home, secret) = confined_secret("escape-fd");
    let readme = home.join("README");
    write(&readme, "r");
    let sock = home.join("fd.sock");

    assert_eq!(
        pass_fd(&cg, &sock, &readme, FdMode::Read),
        "OK:1",
        "an allowed file arrives"
    );
    assert_eq!(
        pass_fd(&cg, &sock, &secret, FdMode::Read),
        "OK:0",
        "the denied file must not"
    );
}

#[test]
fn the_daemons_own_files_are_out_of_reach() {
    let (cg, _home, _secret) = confined_secret("escape-files");
    // The VM's daemon keeps its audit log and attachment table in /run/sandbox-agent.
    for file in [
        "/run/sandbox-agent/audit.log",
        "/run/sandbox-agent/state.json",
    ] {
        assert_eq!(cg.open(std::path::Path::new(file)), Err(EPERM), "{file}");
    }
    let out = cg.run(&["sh", "-c", "echo forged >> /run/sandbox-agent/audit.log"]);
    assert!(
        !out.status.success(),
        "a confined process appended to the audit log"
    );
}

#[test]
fn a_task_moved_out_by_root_outside_stays_confined_and_so_do_its_children() {
    let (cg, home, secret) = confined_secret("escape-moved");
    let go = home.join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; cat {secret}; echo read=$?; \
         sh -c 'cat {secret}; echo child=$?'; kill -0 $PPID; echo signal=$?",
        go = go.display(),
        secret = secret.display()
    );
    let shell = cg.spawn(&["sh", "-c", &script]);

    // Root outside the sandbox (an admin, a service manager) moves it to an unconfined cgroup.
    let elsewhere = Cgroup::new("escape-moved-elsewhere");
    std::fs::write(elsewhere.path.join("cgroup.procs"), shell.id().to_string()).unwrap();
    let now_in = std::fs::read_to_string(format!("/proc/{}/cgroup", shell.id())).unwrap();
    assert!(
        now_in
            .trim_end()
            .ends_with(elsewhere.path.file_name().unwrap().to_str().unwrap()),
        "{now_in}"
    );
    write(&go, "");
    let text = stdout(&shell.wait_with_output().unwrap());
    assert!(text.contains("read=1"), "{text}");
    assert!(
        text.contains("child=1"),
        "a child forked after the move: {text}"
    );
    // Its parent (the test, outside the sandbox) shares nothing with it: no signal either.
    assert!(text.contains("signal=1"), "{text}");
    assert_eq!(open_unconfined(&secret), Ok("s".into()));
}
