//! `sandbox-agent run`: the command runs confined, its exit status comes back, the transient
//! cgroup is gone afterwards.

use crate::harness::*;

#[test]
fn run_confines_the_command_and_returns_its_exit_status() {
    let home = fixture_dir("run");
    let secret = home.join(".ssh/id_ed25519");
    write(&secret, "key");
    write(&home.join("README"), "readme");
    let policy = policy_file(&home, "run", "deny_read:\n  - ~/.ssh\n");

    let script = format!(
        "cat {readme} && cat {secret}; status=$?; echo secret-exit=$status; exit 7",
        readme = home.join("README").display(),
        secret = secret.display()
    );
    let out = agent_run(&[], &policy, &home, &["sh", "-c", &script]);

    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("readme"), "{}", stdout(&out));
    assert!(stdout(&out).contains("secret-exit=1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    // The transient cgroup is removed and nothing stays attached.
    let leftovers: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/sandbox-agent")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "transient cgroups left: {leftovers:?}"
    );
    let status = agent().args(["status", "--json"]).output().unwrap();
    assert!(
        !stdout(&status).contains("/sys/fs/cgroup/sandbox-agent/run-"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn run_with_an_invalid_policy_never_starts_the_command() {
    let home = fixture_dir("run-bad");
    let marker = home.join("started");
    let policy = policy_file(&home, "bad", "deny_reed:\n  - ~/.ssh\n");
    let out = agent_run(&[], &policy, &home, &["touch", marker.to_str().unwrap()]);

    assert_refused(&out, "bad.yaml:2: deny_reed: unknown field");
    assert!(
        !marker.exists(),
        "the command ran although the policy was invalid"
    );
}

#[test]
fn run_without_a_daemon_never_starts_the_command() {
    let home = fixture_dir("run-nodaemon");
    let marker = home.join("started");
    let policy = policy_file(&home, "ok", "deny_read:\n  - ~/.ssh\n");
    let out = agent_run(
        &["--socket", "/run/no-such-daemon.sock"],
        &policy,
        &home,
        &["touch", marker.to_str().unwrap()],
    );

    assert_refused(&out, "cannot reach the sandbox-agent daemon");
    assert!(!marker.exists(), "the command ran unconfined");
}

#[test]
fn run_forwards_sigterm_to_the_command_and_returns_its_exit_status() {
    use std::io::{BufRead, BufReader};
    let home = fixture_dir("run-term");
    let policy = policy_file(&home, "run-term", "deny_read:\n  - ~/.ssh\n");
    let mut run = agent()
        .args(["run", "--policy"])
        .arg(&policy)
        .arg("--home")
        .arg(&home)
        .args([
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGTERM) }, 0);
    let status = run.wait().unwrap();

    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(status.code(), Some(42), "the command's own exit status");
    let leftovers = std::fs::read_dir("/sys/fs/cgroup/sandbox-agent")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(&format!("-{}", run.id()))
        })
        .count();
    assert_eq!(leftovers, 0, "the transient cgroup is removed");
}

#[test]
fn a_command_killed_by_a_signal_reports_128_plus_the_signal() {
    let home = fixture_dir("run-kill");
    let policy = policy_file(&home, "run-kill", "deny_read:\n  - ~/.ssh\n");
    let out = agent_run(&[], &policy, &home, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn workspace_rules_follow_the_directory_run_starts_in() {
    let home = fixture_dir("run-ws-home");
    let workspace = fixture_dir("run-ws");
    write(&workspace.join(".env"), "API_KEY=x");
    write(&workspace.join("README"), "readme");
    let policy = policy_file(&home, "run-ws", "deny_read:\n  - $WORKSPACE/.env\n");

    let out = agent()
        .current_dir(&workspace)
        .args(["run", "--policy"])
        .arg(&policy)
        .arg("--home")
        .arg(&home)
        .args(["--", "sh", "-c", "cat README; cat .env; echo env-exit=$?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("readme"), "{}", stdout(&out));
    assert!(stdout(&out).contains("env-exit=1"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("API_KEY"), "{}", stdout(&out));

    // attach has no current directory to assume: it asks for --workspace.
    let cg = Cgroup::new("run-ws");
    assert_refused(
        &try_attach(&cg.path, &policy, Some(&home)),
        "uses $WORKSPACE but no workspace was given",
    );
}

/// `sandbox-agent run` started as `uid`:`gid` (no supplementary groups); returns its output
/// and its pid (which names its transient cgroup).
fn run_as(
    uid: u32,
    gid: u32,
    policy: &std::path::Path,
    home: &std::path::Path,
    argv: &[&str],
) -> (std::process::Output, u32) {
    use std::os::unix::process::CommandExt;
    let child = agent_run_command(&[], policy, home, argv)
        .uid(uid)
        .gid(gid)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

#[test]
fn a_control_group_member_runs_a_command_confined_and_gets_its_exit_status() {
    use std::os::unix::{fs::MetadataExt, process::CommandExt};
    let home = fixture_dir("member-run");
    let secret = home.join(".ssh/id_ed25519");
    write(&secret, "key");
    write(&home.join("README"), "readme");
    let out_dir = shared_dir(&home);
    let policy = policy_file(&home, "member-run", "deny_read:\n  - ~/.ssh\n");
    // The file modes let the user read the key: only the policy can stop it.
    let unconfined = std::process::Command::new("cat")
        .arg(&secret)
        .uid(USER_UID)
        .gid(CONTROL_GID)
        .output()
        .unwrap();
    assert_eq!(stdout(&unconfined), "key", "{}", stderr(&unconfined));

    let script = format!(
        "cat {readme} && cat {secret}; echo secret-exit=$?; touch {marker}; exit 7",
        readme = home.join("README").display(),
        secret = secret.display(),
        marker = out_dir.join("ran").display(),
    );
    let (out, client) = run_as(
        USER_UID,
        CONTROL_GID,
        &policy,
        &home,
        &["sh", "-c", &script],
    );

    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("readme"), "{}", stdout(&out));
    assert!(stdout(&out).contains("secret-exit=1"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("key"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    // The command ran as the user, not as the daemon's root.
    let marker = std::fs::metadata(out_dir.join("ran")).expect("the command did not run");
    assert_eq!(marker.uid(), USER_UID);
    // Its transient cgroup is gone and nothing stays attached.
    let cgroup = run_cgroup(client);
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
    assert!(!attached(&cgroup), "{} still attached", cgroup.display());
}

#[test]
fn a_user_outside_the_control_group_cannot_run_and_nothing_starts() {
    let home = fixture_dir("nonmember-run");
    let marker = shared_dir(&home).join("started");
    let policy = policy_file(&home, "nonmember-run", "deny_read:\n  - ~/.ssh\n");

    let (out, client) = run_as(
        USER_UID,
        USER_GID,
        &policy,
        &home,
        &["touch", marker.to_str().unwrap()],
    );

    assert_refused(
        &out,
        "permission denied: only root or members of group 4242 may change policy",
    );
    assert!(!marker.exists(), "the command ran although run was refused");
    assert!(!run_cgroup(client).exists(), "a cgroup was created");
}

#[test]
fn a_killed_run_leaves_its_command_confined_and_no_cgroup_once_the_command_ends() {
    use std::{
        io::{BufRead, BufReader},
        os::unix::process::CommandExt,
        time::{Duration, Instant},
    };
    let home = fixture_dir("run-killed");
    let secret = home.join(".ssh/id_ed25519");
    write(&secret, "key");
    let policy = policy_file(&home, "run-killed", "deny_read:\n  - ~/.ssh\n");
    let script = format!(
        "echo ready; sleep 2; cat {}; echo secret-exit=$?",
        secret.display()
    );
    let mut run = agent_run_command(&[], &policy, &home, &["sh", "-c", &script])
        .uid(USER_UID)
        .gid(CONTROL_GID)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let cgroup = run_cgroup(run.id());
    assert!(attached(&cgroup), "{} is not attached", cgroup.display());

    run.kill().unwrap();
    run.wait().unwrap();

    // The command outlives its supervisor, still confined.
    assert_eq!(lines.next().unwrap().unwrap(), "secret-exit=1");
    // Once it has ended, the daemon notices that nobody is left and removes the cgroup.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cgroup.exists() || attached(&cgroup) {
        assert!(
            Instant::now() < deadline,
            "{} still there 30 s after its command ended",
            cgroup.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Without `favordynmods` on the cgroup2 mount, each run's command waits for an RCU grace
/// period (milliseconds) to enter its cgroup. The daemon turned it on when it started, and kept
/// what the VM mounted cgroup2 with, as systemd does: the filesystem's flags and the mount's.
#[test]
fn the_daemon_turned_on_favordynmods_and_kept_the_cgroup_mounts_options() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup"))
        .expect("a mount at /sys/fs/cgroup");
    let (mount, filesystem) = line.split_once(" - ").unwrap();
    let mount_options: Vec<&str> = mount.split(' ').nth(5).unwrap().split(',').collect();
    let filesystem: Vec<&str> = filesystem.split(' ').collect();
    assert_eq!(filesystem[0], "cgroup2", "{line}");
    let flags: Vec<&str> = filesystem[2].split(',').collect();
    for flag in ["favordynmods", "nsdelegate", "memory_recursiveprot"] {
        assert!(flags.contains(&flag), "{flag} missing: {line}");
    }
    for option in ["nosuid", "nodev", "noexec"] {
        assert!(mount_options.contains(&option), "{option} missing: {line}");
    }
}

/// A client from before `ends_on_exit` (a request without it) ends its run itself: `run_end`
/// on a new connection once its command has exited. The daemon leaves the end to it, so that
/// `run_end` ends the run cleanly instead of racing the daemon's own end and failing.
#[test]
fn a_client_that_ends_its_own_run_has_it_ended_cleanly() {
    let home = fixture_dir("own-end");
    let secret = home.join(".ssh/id_ed25519");
    write(&secret, "key");
    let policy = policy_file(&home, "own-end", "deny_read:\n  - ~/.ssh\n");
    // The protocol as such a client speaks it: the command forked and held, `run` without
    // `ends_on_exit`, the command released, waited for, then `run_end`.
    let client = r#"
import json, os, socket, sys
policy, home, secret = sys.argv[1:4]
def call(request):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/sandbox-agent.sock")
    s.sendall((json.dumps(dict(version=1, **request)) + "\n").encode())
    reply = json.loads(s.makefile().readline())
    s.close()
    return reply
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os.execvp("cat", ["cat", secret])
os.close(r)
run = dict(op="run", policy_file=policy, policy_yaml=open(policy).read(), home=home, pid=pid)
attached = call(run)
print("run:", attached["status"], attached.get("message", ""))
os.write(w, b"go")
_, status = os.waitpid(pid, 0)
print("cat exit:", os.waitstatus_to_exitcode(status))
ended = call(dict(op="run_end", cgroup=attached["cgroup"]))
print("run_end:", ended["status"], ended.get("message", ""))
print("cgroup left:", os.path.exists(attached["cgroup"]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", client])
        .arg(&policy)
        .arg(&home)
        .arg(&secret)
        .output()
        .unwrap();
    let said = stdout(&out);
    assert!(out.status.success(), "{said}{}", stderr(&out));
    assert!(said.contains("run: attached"), "{said}");
    assert!(said.contains("cat exit: 1"), "the key was read: {said}");
    assert!(said.contains("run_end: detached"), "{said}");
    assert!(said.contains("cgroup left: False"), "{said}");
}
