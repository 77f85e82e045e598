//! A confined task takes no port of a service outside its sandbox. It binds no reserved port
//! in the host's network namespace (in a namespace of its own, a container's, it does), by any
//! address family the kernel takes for inet. And it shares no port: it sets neither
//! `SO_REUSEPORT` (which lets a socket of the same user, root for a confined root, join a
//! service's port and take its share of the traffic) nor, on UDP, `SO_REUSEADDR` (which lets a
//! later socket on a port a service set it on take the service's datagrams, whoever it runs
//! as), under every policy. TCP's `SO_REUSEADDR`, which every server sets, stays; outside,
//! root takes the service's traffic with them.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use crate::{filesystems::step, harness::*};

/// `python3 -c SERVICE PORT`: a root service outside on PORT, as DNS and NTP servers and web
/// servers with `reuseport` bind theirs: UDP on every address with `SO_REUSEADDR`, TCP
/// listening with `SO_REUSEPORT`. Prints `READY`, then holds them until its stdin closes.
const SERVICE: &str = r#"
import socket, sys
port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
udp.bind(("0.0.0.0", port))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
tcp.bind(("0.0.0.0", port))
tcp.listen()
print("READY", flush=True)
sys.stdin.read()
"#;

/// Steps on the service's PORT: taking its datagrams (`SO_REUSEADDR` on UDP, bound to one of
/// its addresses: the more exact socket gets them), joining its TCP port and its UDP port
/// (`SO_REUSEPORT`), the UDP option on IPv6, and a TCP server's usual `SO_REUSEADDR`.
const SHARE: &str = r#"
import errno, socket, sys
port = int(sys.argv[1])
def bound(family, kind, option, address):
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, option, 1)
    s.bind(address)
    return s
def take_datagrams():
    thief = bound(socket.AF_INET, socket.SOCK_DGRAM, socket.SO_REUSEADDR, ("127.0.0.1", port))
    thief.settimeout(5)
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"query", ("127.0.0.1", port))
    try:
        thief.recv(16)
    except socket.timeout:
        raise OSError(errno.ENOMSG, "the service got it")
def join_tcp():
    bound(socket.AF_INET, socket.SOCK_STREAM, socket.SO_REUSEPORT, ("0.0.0.0", port)).listen()
step("udp_reuseaddr", take_datagrams)
step("tcp_reuseport", join_tcp)
step("udp_reuseport", lambda: bound(socket.AF_INET, socket.SOCK_DGRAM, socket.SO_REUSEPORT, ("0.0.0.0", 0)))
step("udp6_reuseaddr", lambda: bound(socket.AF_INET6, socket.SOCK_DGRAM, socket.SO_REUSEADDR, ("::1", 0)))
step("tcp_reuseaddr", lambda: bound(socket.AF_INET, socket.SOCK_STREAM, socket.SO_REUSEADDR, ("127.0.0.1", 0)).listen())
"#;

#[test]
fn no_port_is_shared_with_a_service_outside() {
    let home = fixture_dir("shared-ports");
    let policy = policy_file(&home, "shared-ports", "deny_read: []\n");
    let cg = Cgroup::new("shared-ports");
    attach(&cg, &policy, &home);
    // A reserved port, as a root service's, that no other test binds (network's use 600-899).
    let port = (900 + std::process::id() % 100).to_string();
    let mut service = Command::new("python3")
        .args(["-c", SERVICE, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(service.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "READY");

    let sharing = [
        "udp_reuseaddr",
        "tcp_reuseport",
        "udp_reuseport",
        "udp6_reuseaddr",
    ];
    let outside = steps_as(None, false, SHARE, &[&port]);
    for s in sharing.iter().chain(&["tcp_reuseaddr"]) {
        assert_eq!(step(&outside, s), 0, "outside, root: {s}: {outside}");
    }
    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let inside = steps_as(Some(&cg), user, SHARE, &[&port]);
        for s in sharing {
            assert_eq!(step(&inside, s), EPERM, "inside, {who}: {s}: {inside}");
        }
        assert_eq!(step(&inside, "tcp_reuseaddr"), 0, "inside, {who}: {inside}");
    }
    record_of(&cg, "socket_setsockopt", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.starts_with("self-protection"))
    });

    drop(service.stdin.take());
    assert!(service.wait().unwrap().success());
}

/// `python3 -c BIND PORT [CGROUP]`: binds reserved PORT over TCP, UDP, IPv6 and an `AF_UNSPEC`
/// address (which an inet socket takes as `AF_INET`), and the port 1024 above it, then sets
/// the options that share a port. With CGROUP, first enters a network namespace of its own
/// (a container's), then the sandbox.
const BIND: &str = r#"
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
port = int(sys.argv[1])
if len(sys.argv) > 2:
    if libc.unshare(0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    with open(sys.argv[2] + "/cgroup.procs", "w") as f:
        f.write("0")
def bind(family, kind, address):
    socket.socket(family, kind).bind(address)
def bind_unspec():
    s = socket.socket()
    address = struct.pack("=HH4x8x", 0, socket.htons(port))
    if libc.bind(s.fileno(), address, len(address)) != 0:
        raise OSError(ctypes.get_errno(), "bind")
step("tcp", lambda: bind(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", port)))
step("udp", lambda: bind(socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", port)))
step("tcp6", lambda: bind(socket.AF_INET6, socket.SOCK_STREAM, ("::", port)))
step("unspec", bind_unspec)
step("high", lambda: bind(socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", port + 1024)))
def option(kind, name):
    socket.socket(socket.AF_INET, kind).setsockopt(socket.SOL_SOCKET, name, 1)
step("reuseport", lambda: option(socket.SOCK_STREAM, socket.SO_REUSEPORT))
step("udp_reuseaddr", lambda: option(socket.SOCK_DGRAM, socket.SO_REUSEADDR))
"#;

#[test]
fn no_reserved_port_of_the_host_is_bound_inside() {
    let home = fixture_dir("host-ports");
    let policy = policy_file(&home, "host-ports", "deny_read: []\n");
    let cg = Cgroup::new("host-ports");
    attach(&cg, &policy, &home);
    // A reserved port no other test binds (network's 600-903, the shared service's 900-999).
    let port = (1000 + std::process::id() % 24).to_string();
    let reserved = ["tcp", "udp", "tcp6", "unspec", "reuseport", "udp_reuseaddr"];

    let outside = steps_as(None, false, BIND, &[&port]);
    for s in reserved.iter().chain(&["high"]) {
        assert_eq!(step(&outside, s), 0, "outside: {s}: {outside}");
    }
    let inside = steps_as(Some(&cg), false, BIND, &[&port]);
    for s in reserved {
        assert_eq!(step(&inside, s), EPERM, "inside: {s}: {inside}");
    }
    assert_eq!(step(&inside, "high"), 0, "inside: {inside}");
    // In a network namespace of its own, a container's, the ports are its own, and so is
    // sharing them.
    let cgroup = cg.path.to_str().unwrap();
    let own = steps_as(None, false, BIND, &[&port, cgroup]);
    for s in reserved.iter().chain(&["high"]) {
        assert_eq!(step(&own, s), 0, "own namespace: {s}: {own}");
    }
    record_of(&cg, "socket_bind", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("reserved port"))
    });
}
