//! Enforcement lives in pinned kernel objects, not in the daemon process: killing the daemon
//! (even with SIGKILL) leaves every attached policy enforced, and a restarted daemon takes over
//! every attachment, including the self-service protection of confined processes and a `run`
//! whose command outlived the daemon it started under, and covers a mount made below a denied
//! directory while it was down.

use std::{
    fs::OpenOptions,
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    process::Stdio,
    time::{Duration, Instant},
};

use crate::harness::*;

fn daemon_pid() -> i32 {
    let out = agent().args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["daemon_pid"].as_i64().unwrap() as i32
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a daemon the way the VM harness does; it outlives this test (never waited for, on
/// purpose: the remaining tests use it).
#[allow(clippy::zombie_processes)]
fn start_daemon(extra: &[&str]) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/sandbox-agent/daemon.log")
        .unwrap();
    agent()
        .args(extra)
        .args(["daemon", "--audit-log", "/run/sandbox-agent/audit.log"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Verifying the programs takes a while on an emulated CPU.
    wait_until(
        "the restarted daemon answers",
        Duration::from_secs(300),
        || agent().arg("status").output().unwrap().status.success(),
    );
}

/// `sandbox-agent attach` run as `uid`:`gid` (std drops supplementary groups when root sets a uid).
fn attach_as(
    uid: u32,
    gid: u32,
    cg: &Cgroup,
    policy: &std::path::Path,
    home: &std::path::Path,
) -> std::process::Output {
    agent()
        .args(["attach", "--cgroup"])
        .arg(&cg.path)
        .arg("--policy")
        .arg(policy)
        .arg("--home")
        .arg(home)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

#[test]
fn enforcement_survives_kill_9_of_the_daemon_and_a_restarted_daemon_takes_over() {
    let home = fixture_dir("kill9");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("kill9", &home, &[&secret]);
    let stop = home.join("stop");
    let reader = cg.start_reader(&secret, &stop);
    // A run under way when the daemon dies: its connection breaks with the daemon.
    let policy = deny_read_policy(&home, &[&secret]);
    let script = format!(
        "echo ready; read go; cat {}; echo cat=$?; exit 7",
        secret.display()
    );
    let mut run = agent_run_command(&[], &policy, &home, &["sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut run_out = BufReader::new(run.stdout.take().unwrap()).lines();
    assert_eq!(run_out.next().unwrap().unwrap(), "ready");
    let run_cg = run_cgroup(run.id());
    // A denied directory, below which a filesystem is mounted while no daemon watches.
    let vault = home.join("vault");
    std::fs::create_dir_all(vault.join("later")).unwrap();
    let vault_cg = Cgroup::new("kill9-vault");
    let vault_policy = policy_file(
        &home,
        "kill9-vault",
        &format!("deny_read: [{:?}]\n", vault.display().to_string()),
    );
    attach(&vault_cg, &vault_policy, &home);
    let pid = daemon_pid();

    // SAFETY: kill(2) on a pid we just read; the worst case is ESRCH.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("the daemon is gone", Duration::from_secs(30), || {
        !agent().arg("status").output().unwrap().status.success()
    });
    assert_eq!(cg.open(&secret), Err(EPERM), "no daemon: still enforced");
    assert_eq!(open_unconfined(&secret), Ok("s".into()));
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(vault.join("later"))
        .status()
        .unwrap();
    assert!(mounted.success());
    write(&vault.join("later/key"), "k");

    // The restarted daemon reads a host config that lets group 4242 steer it and rotates the
    // audit log every 64 KiB.
    let config = home.join("config.yaml");
    write(
        &config,
        "control_group: 4242\naudit_log_max_bytes: 65536\naudit_log_keep: 3\n",
    );
    start_daemon(&["--config", config.to_str().unwrap()]);
    assert_ne!(daemon_pid(), pid);
    assert_eq!(
        cg.open(&secret),
        Err(EPERM),
        "restarted daemon: still enforced"
    );
    let (leaked, tries) = stop_reader(reader, &stop);
    assert_eq!(
        leaked, 0,
        "a read succeeded while the daemon was down or restarting"
    );
    assert!(tries > 0);

    // It compiled again the policy below whose directory a mount was made meanwhile.
    wait_until(
        "the restarted daemon covers the mount made while it was down",
        Duration::from_secs(60),
        || vault_cg.open(&vault.join("later/key")) == Err(EPERM),
    );
    let _ = std::process::Command::new("umount")
        .arg(vault.join("later"))
        .status();
    detach(&vault_cg);

    // It knows the attachment it adopted, by cgroup and policy name.
    let adopted = attachment(&cg.path).expect("the adopted attachment is listed");
    assert_eq!(adopted["policy"], "test-policy");
    assert_eq!(adopted["adopted"], true);

    // The run's command goes on confined; when it ends, `run` finds its connection gone and
    // asks the new daemon to end the run: the command's status, no cgroup left.
    writeln!(run.stdin.take().unwrap(), "go").unwrap();
    assert_eq!(run_out.next().unwrap().unwrap(), "cat=1");
    assert_eq!(run.wait().unwrap().code(), Some(7));
    assert!(!run_cg.exists(), "{} was left behind", run_cg.display());
    assert!(!attached(&run_cg));

    // A confined root process still cannot release itself through the new daemon.
    let agent_bin = which_agent();
    let out = cg.run(&[&agent_bin, "detach", "--cgroup", cg.path.to_str().unwrap()]);
    assert_refused(&out, "policy cannot be changed from inside a sandbox");
    assert_eq!(cg.open(&secret), Err(EPERM));

    // The control group from the config may attach; other users may not.
    let other = Cgroup::new("kill9-member");
    assert_refused(
        &attach_as(1000, 1000, &other, &policy, &home),
        "only root or members of group 4242 may change policy",
    );
    let member = attach_as(1000, 4242, &other, &policy, &home);
    assert!(member.status.success(), "{}", stderr(&member));
    assert_eq!(other.open(&secret), Err(EPERM));
    detach(&other);

    // The reader's denials filled several rotated logs: every line of every file is whole.
    let log = std::path::Path::new("/run/sandbox-agent/audit.log");
    let rotated = std::path::PathBuf::from("/run/sandbox-agent/audit.log.1");
    assert!(rotated.exists(), "the audit log was never rotated");
    for file in [log.to_path_buf(), rotated] {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", file.display());
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| {
                panic!("{}: split or garbled line {line:?}: {e}", file.display())
            });
        }
    }
    // (audit.log.1 may be the old daemon's whole log: it was rotated away unlimited.)
    assert!(std::fs::metadata(log).unwrap().len() <= 65536);

    // The new daemon can release what the old one attached.
    detach(&cg);
    assert_eq!(cg.open(&secret), Ok("s".into()));
}

fn which_agent() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v sandbox-agent"])
        .output()
        .unwrap();
    stdout(&out).trim().to_string()
}
