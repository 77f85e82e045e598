//! Bad input gets a clear error naming what is wrong, and the system keeps its last good state.

use std::path::Path;

use crate::harness::*;

#[test]
fn attach_to_a_missing_cgroup_is_a_clear_error() {
    let home = fixture_dir("nocg");
    let policy = deny_read_policy(&home, &[&home.join("x")]);
    let out = try_attach(Path::new("/sys/fs/cgroup/no-such-group"), &policy, None);

    assert_refused(&out, "cgroup /sys/fs/cgroup/no-such-group does not exist");
}

#[test]
fn attach_to_a_directory_that_is_not_a_cgroup_is_refused() {
    let home = fixture_dir("notcg");
    let policy = deny_read_policy(&home, &[&home.join("x")]);
    let out = try_attach(&home, &policy, None);

    assert_refused(&out, "is not a cgroup v2 directory");
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
    let out = try_attach(&cg.path, &bad, None);

    assert_refused(&out, "broken.yaml:4: deny_read[0]");
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

    assert_refused(
        &try_attach(&outer.path, &policy, None),
        "already confined by policy",
    );

    detach(&inner);
    attach(&outer, &policy, &home);
    assert_refused(&try_attach(&inner.path, &policy, None), "is inside");
}
