//! The control plane under stress: policy reloads never open a window, bad clients cannot hurt
//! the daemon, and only root may change policy.

use std::{
    io::{Read, Write},
    os::unix::{net::UnixStream, process::CommandExt},
};

use crate::harness::*;

const SOCKET: &str = "/run/sandbox-agent.sock";

#[test]
fn a_hundred_reloads_never_let_a_read_through_and_the_last_policy_wins() {
    let home = fixture_dir("reload");
    let secret = home.join("secret");
    let other = home.join("other");
    write(&secret, "s");
    write(&other, "o");
    let both = deny_read_policy(&home, &[&secret, &other]);
    let only_secret = policy_file(
        &home,
        "only-secret",
        &format!("deny_read:\n  - {:?}\n", secret.display().to_string()),
    );
    let cg = Cgroup::new("reload");
    attach(&cg, &both, &home);
    let stop = home.join("stop");
    let reader = cg.start_reader(&secret, &stop);

    for i in 0..100 {
        let policy = if i % 2 == 0 { &only_secret } else { &both };
        attach(&cg, policy, &home);
    }
    let (leaked, tries) = stop_reader(reader, &stop);

    assert_eq!(leaked, 0, "the secret was readable during a reload");
    assert!(tries > 0);
    // The 100th attach (i = 99) was `both`; one more makes `other` readable.
    assert_eq!(cg.open(&other), Err(EPERM));
    attach(&cg, &only_secret, &home);
    assert_eq!(cg.open(&other), Ok("o".into()));
    assert_eq!(cg.open(&secret), Err(EPERM));
}

/// Sends raw bytes on the control socket and returns the reply (possibly empty).
fn raw_request(bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(SOCKET).unwrap();
    // The daemon may answer (and close) before reading everything of an oversized request.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[test]
fn garbage_on_the_control_socket_gets_an_error_and_the_daemon_keeps_serving() {
    assert!(raw_request(b"\x00\xffnot json at all\n").contains("malformed request"));
    assert!(raw_request(b"{\"version\":1,\"op\":\"launch_missiles\"}\n").contains("error"));
    assert!(raw_request(b"{\"version\":99,\"op\":\"status\"}\n").contains("protocol version 99"));
    assert!(raw_request(&vec![b'x'; 5 << 20]).contains("larger than"));
    drop(UnixStream::connect(SOCKET).unwrap());

    let status = agent().arg("status").output().unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
}

#[test]
fn an_ordinary_user_gets_a_permission_error_and_nothing_changes() {
    let home = fixture_dir("nonroot");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = Cgroup::new("nonroot");
    let policy = deny_read_policy(&home, &[&secret]);

    let out = agent()
        .args(["attach", "--cgroup"])
        .arg(&cg.path)
        .arg("--policy")
        .arg(&policy)
        .arg("--home")
        .arg(&home)
        .uid(1000)
        .gid(1000)
        .output()
        .unwrap();
    assert_refused(&out, "permission denied: only root");
    assert_eq!(cg.open(&secret), Ok("s".into()), "nothing was attached");
}
