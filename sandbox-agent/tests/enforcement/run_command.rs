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
