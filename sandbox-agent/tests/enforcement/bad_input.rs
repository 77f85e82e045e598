//! Bad input gets a clear error naming what is wrong, and the system keeps its last good state.

use crate::harness::*;

#[test]
fn attach_to_a_missing_cgroup_is_a_clear_error() {
    let home = fixture_dir("nocg");
    let policy = deny_read_policy(&home, &[&home.join("x")]);
    let out = agent()
        .args([
            "attach",
            "--cgroup",
            "/sys/fs/cgroup/no-such-group",
            "--policy",
        ])
        .arg(&policy)
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cgroup /sys/fs/cgroup/no-such-group does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn attach_to_a_directory_that_is_not_a_cgroup_is_refused() {
    let home = fixture_dir("notcg");
    let policy = deny_read_policy(&home, &[&home.join("x")]);
    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&home)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a cgroup v2 directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_policy_leaves_the_previous_policy_in_force() {
    let home = fixture_dir("malformed");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("malformed", &home, &[&secret]);

    let bad = policy_file(
        &home,
        "broken",
        "mode: enforce\ndeny_read:\n  - relative/path\n",
    );
    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&cg.path)
        .arg("--policy")
        .arg(&bad)
        .output()
        .unwrap();

    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("broken.yaml:4: deny_read[0]"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        cg.open(&secret),
        Err(EPERM),
        "the previous policy must stay attached"
    );
}

#[test]
fn garbage_on_the_control_socket_gets_an_error_and_the_daemon_lives_on() {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect("/run/sandbox-agent.sock").unwrap();
    s.write_all(b"{\"version\":1,\"op\":\"rm -rf /\"}\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"status\":\"error\""), "{answer}");
    assert!(agent().arg("status").output().unwrap().status.success());
}

#[test]
fn nested_attachments_are_refused_both_ways() {
    let home = fixture_dir("nested");
    let policy = deny_read_policy(&home, &[&home.join("x")]);
    let outer = Cgroup::new("nested");
    let inner = outer.child("inner");
    attach(&inner, &policy, &home);

    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&outer.path)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already confined by policy"),
        "{}",
        stderr(&out)
    );

    detach(&inner);
    attach(&outer, &policy, &home);
    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&inner.path)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is inside"), "{}", stderr(&out));
}
