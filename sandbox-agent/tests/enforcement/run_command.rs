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
