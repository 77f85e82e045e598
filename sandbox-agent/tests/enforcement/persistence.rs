//! Enforcement lives in pinned kernel objects, not in the daemon process: killing the daemon
//! (even with SIGKILL) leaves every attached policy enforced, and a restarted daemon takes over.

use std::{
    fs::OpenOptions,
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
fn start_daemon() {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/sandbox-agent/daemon.log")
        .unwrap();
    agent()
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

#[test]
fn enforcement_survives_kill_9_of_the_daemon_and_a_restarted_daemon_takes_over() {
    let home = fixture_dir("kill9");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("kill9", &home, &[&secret]);
    let pid = daemon_pid();

    // SAFETY: kill(2) on a pid we just read; the worst case is ESRCH.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("the daemon is gone", Duration::from_secs(30), || {
        !agent().arg("status").output().unwrap().status.success()
    });
    assert_eq!(cg.open(&secret), Err(EPERM), "no daemon: still enforced");
    assert_eq!(open_unconfined(&secret), Ok("s".into()));

    start_daemon();
    assert_ne!(daemon_pid(), pid);
    assert_eq!(
        cg.open(&secret),
        Err(EPERM),
        "restarted daemon: still enforced"
    );
    // The new daemon can release what the old one attached.
    detach(&cg);
    assert_eq!(cg.open(&secret), Ok("s".into()));
}
