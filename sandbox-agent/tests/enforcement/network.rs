//! Network egress: IPv4/IPv6 CIDR and port rules on connect and on unconnected sends, rules of
//! one program by its executable's identity, and Unix sockets by their socket file's inode.
//! Every destination is inside the VM: loopback, and a veth pair.

use std::{
    net::{TcpListener, UdpSocket},
    os::unix::net::{UnixDatagram, UnixListener},
    path::Path,
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use crate::harness::*;

/// Tries to reach a destination from a python3 process: prints OK:<what happened> or
/// ERR:<errno>. Kinds: tcp HOST PORT, udp HOST PORT (sendto without connect), unix PATH,
/// unix-dgram PATH; a PATH of `@name` is the abstract socket `name`.
const NET_SCRIPT: &str = r#"
import socket, sys
kind = sys.argv[1]
def unix_address(path):
    return "\0" + path[1:] if path.startswith("@") else path
try:
    if kind in ("tcp", "udp"):
        host, port = sys.argv[2], int(sys.argv[3])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
        s.settimeout(10)
        if kind == "tcp":
            s.connect((host, port))
            print("OK:connected", end="")
        else:
            s.sendto(b"datagram", (host, port))
            print("OK:sent", end="")
    elif kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(unix_address(sys.argv[2]))
        print("OK:connected", end="")
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"datagram", unix_address(sys.argv[2]))
        print("OK:sent", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

fn tcp(cg: Option<&Cgroup>, host: &str, port: u16) -> Result<String, i32> {
    probe(cg, NET_SCRIPT, &["tcp", host, &port.to_string()])
}

fn udp(cg: Option<&Cgroup>, host: &str, port: u16) -> Result<String, i32> {
    probe(cg, NET_SCRIPT, &["udp", host, &port.to_string()])
}

fn unix(cg: Option<&Cgroup>, kind: &str, path: &Path) -> Result<String, i32> {
    probe(cg, NET_SCRIPT, &[kind, path.to_str().unwrap()])
}

fn connected() -> Result<String, i32> {
    Ok("connected".to_string())
}

/// A TCP listener on `host` (the kernel completes handshakes without accept()).
fn listen(host: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind((host, 0)).unwrap_or_else(|e| panic!("listen on {host}: {e}"));
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// The VM-local end of a veth pair: 10.99.0.2 (the peer holds 10.99.0.1); both ends up.
pub fn veth_address() -> &'static str {
    static VETH: OnceLock<()> = OnceLock::new();
    VETH.get_or_init(|| {
        for args in [
            "link add sa-veth0 type veth peer name sa-veth1",
            "addr add 10.99.0.1/24 dev sa-veth0",
            "addr add 10.99.0.2/24 dev sa-veth1",
            "link set sa-veth0 up",
            "link set sa-veth1 up",
        ] {
            let out = Command::new("ip").args(args.split(' ')).output().unwrap();
            assert!(out.status.success(), "ip {args}: {}", stderr(&out));
        }
    });
    "10.99.0.2"
}

/// A cgroup confined by a policy whose body is `body`.
fn confined_by(name: &str, home: &Path, body: &str) -> Cgroup {
    let cg = Cgroup::new(name);
    attach(&cg, &policy_file(home, name, body), home);
    cg
}

#[test]
fn denied_addresses_and_ports_are_refused_and_the_rest_connect() {
    let home = fixture_dir("net-deny");
    let veth = veth_address();
    let (_a, open_port) = listen("127.0.0.1");
    let (_b, denied_port) = listen("127.0.0.1");
    let (_c, other_host_port) = listen("127.0.0.2");
    let (_d, veth_open) = listen(veth);
    let (_e, veth_denied) = listen(veth);
    let cg = confined_by(
        "net-deny",
        &home,
        &format!(
            "network:\n  deny:\n    - \"127.0.0.1:{denied_port}\"\n    - 127.0.0.2\n    \
             - \"10.99.0.0/24:{veth_denied}\"\n"
        ),
    );

    assert_eq!(tcp(Some(&cg), "127.0.0.1", denied_port), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "127.0.0.2", other_host_port), Err(EPERM));
    assert_eq!(tcp(Some(&cg), veth, veth_denied), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "127.0.0.1", open_port), connected());
    assert_eq!(tcp(Some(&cg), veth, veth_open), connected());
    // Outside the cgroup nothing changes.
    assert_eq!(tcp(None, "127.0.0.1", denied_port), connected());
    assert_eq!(tcp(None, veth, veth_denied), connected());
}

#[test]
fn ipv6_is_decided_and_a_v4_mapped_address_is_its_ipv4_host() {
    let home = fixture_dir("net-v6");
    let (_a, v6_denied) = listen("::1");
    let (_b, v6_open) = listen("::1");
    let (_c, v4_denied) = listen("127.0.0.1");
    let cg = confined_by(
        "net-v6",
        &home,
        &format!(
            "network:\n  deny:\n    - \"[::1]:{v6_denied}\"\n    - \"127.0.0.1:{v4_denied}\"\n"
        ),
    );

    assert_eq!(tcp(Some(&cg), "::1", v6_denied), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "::1", v6_open), connected());
    // An IPv6 socket reaching the IPv4 listener through ::ffff:127.0.0.1.
    assert_eq!(tcp(Some(&cg), "::ffff:127.0.0.1", v4_denied), Err(EPERM));
    assert_eq!(tcp(None, "::ffff:127.0.0.1", v4_denied), connected());
}

#[test]
fn the_unspecified_address_is_decided_as_the_loopback_it_reaches() {
    let home = fixture_dir("net-unspecified");
    let (_a, v4_denied) = listen("127.0.0.1");
    let (_b, v6_denied) = listen("::1");
    let (_c, v4_open) = listen("127.0.0.1");
    let cg = confined_by(
        "net-unspecified",
        &home,
        &format!(
            "network:\n  deny:\n    - \"127.0.0.1:{v4_denied}\"\n    - \"[::1]:{v6_denied}\"\n"
        ),
    );

    // 0.0.0.0 and :: reach the host's own loopback services.
    assert_eq!(tcp(None, "0.0.0.0", v4_denied), connected());
    assert_eq!(tcp(None, "::", v6_denied), connected());
    assert_eq!(tcp(Some(&cg), "0.0.0.0", v4_denied), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "::", v6_denied), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "::ffff:0.0.0.0", v4_denied), Err(EPERM));
    assert_eq!(udp(Some(&cg), "0.0.0.0", v4_denied), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "0.0.0.0", v4_open), connected());
    let recorded = || {
        audit_lines().into_iter().any(|r| {
            r["hook"] == "socket_connect"
                && r["cgroup"] == cg.path.display().to_string()
                && r["target"]["address"] == format!("127.0.0.1:{v4_denied}")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !recorded() {
        assert!(
            std::time::Instant::now() < deadline,
            "no record of the connect to 0.0.0.0, as 127.0.0.1"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_hosts_own_addresses_are_decided_against_the_loopback_rules_too() {
    let home = fixture_dir("net-local");
    // An address of this host's own veth interface: a connect there reaches this host's
    // services that listen on every address, as one to 127.0.0.1 does.
    let veth = veth_address();
    let (_a, denied) = listen("0.0.0.0");
    let (_b, open) = listen("0.0.0.0");
    let cg = confined_by(
        "net-local",
        &home,
        &format!("network:\n  deny:\n    - \"127.0.0.1:{denied}\"\n"),
    );

    assert_eq!(tcp(None, veth, denied), connected());
    // The daemon reads the host's addresses every 2 s; the veth may be newer than that.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tcp(Some(&cg), veth, denied) != Err(EPERM) {
        assert!(
            std::time::Instant::now() < deadline,
            "a connect to the host's own address reached the port denied on 127.0.0.1"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(tcp(Some(&cg), veth, open), connected());
    assert_eq!(udp(Some(&cg), veth, denied), Err(EPERM));

    // An allow written for the host's address still works under default: deny.
    let strict = confined_by(
        "net-local-strict",
        &fixture_dir("net-local-strict"),
        &format!("network:\n  default: deny\n  allow:\n    - \"{veth}:{open}\"\n"),
    );
    assert_eq!(tcp(Some(&strict), veth, open), connected());
    assert_eq!(tcp(Some(&strict), veth, denied), Err(EPERM));
}

#[test]
fn udp_sendto_without_connect_is_decided_for_each_datagram() {
    let home = fixture_dir("net-udp");
    let open = UdpSocket::bind("127.0.0.1:0").unwrap();
    let denied = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (open_port, denied_port) = (
        open.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    let cg = confined_by(
        "net-udp",
        &home,
        &format!("network:\n  deny: [\"127.0.0.1:{denied_port}\"]\n"),
    );

    assert_eq!(udp(Some(&cg), "127.0.0.1", denied_port), Err(EPERM));
    assert_eq!(
        udp(Some(&cg), "127.0.0.1", open_port),
        Ok("sent".to_string())
    );
    let mut buf = [0u8; 64];
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (n, _) = open
        .recv_from(&mut buf)
        .expect("the allowed datagram arrives");
    assert_eq!(&buf[..n], b"datagram");
    denied.set_nonblocking(true).unwrap();
    assert!(
        denied.recv_from(&mut buf).is_err(),
        "the denied datagram must not arrive"
    );
}

#[test]
fn default_deny_reaches_only_the_allowlist_and_the_longest_prefix_wins() {
    let home = fixture_dir("net-default");
    let veth = veth_address();
    let (_a, port) = listen("127.0.0.1");
    let (_b, port2) = listen("127.0.0.2");
    let (_c, port6) = listen("::1");
    let (_d, veth_port) = listen(veth);
    let cg = confined_by(
        "net-default",
        &home,
        "network:\n  default: deny\n  allow: [127.0.0.0/8]\n  deny: [127.0.0.2/32]\n",
    );

    assert_eq!(tcp(Some(&cg), "127.0.0.1", port), connected());
    assert_eq!(
        tcp(Some(&cg), "127.0.0.2", port2),
        Err(EPERM),
        "/32 beats /8"
    );
    assert_eq!(
        tcp(Some(&cg), "::1", port6),
        Err(EPERM),
        "not allowed: default"
    );
    assert_eq!(
        tcp(Some(&cg), veth, veth_port),
        Err(EPERM),
        "not allowed: default"
    );
    assert_eq!(udp(Some(&cg), veth, veth_port), Err(EPERM));
}

#[test]
fn a_binary_rule_follows_the_executable_through_a_symlink_but_not_to_a_copy() {
    let home = fixture_dir("net-binary");
    let (_a, port) = listen("127.0.0.1");
    let (_b, other_port) = listen("127.0.0.1");
    // The policy names python3 by a symlink; the kernel runs the file it points to.
    let link = home.join("py-link");
    std::os::unix::fs::symlink("/usr/bin/python3", &link).unwrap();
    let copy = home.join("python-copy");
    std::fs::copy(std::fs::canonicalize("/usr/bin/python3").unwrap(), &copy).unwrap();
    let cg = confined_by(
        "net-binary",
        &home,
        &format!(
            "network:\n  default: deny\n  binaries:\n    - path: {}\n      allow: [\"127.0.0.1:{port}\"]\n",
            link.display()
        ),
    );

    assert_eq!(tcp(Some(&cg), "127.0.0.1", port), connected());
    assert_eq!(tcp(Some(&cg), "127.0.0.1", other_port), Err(EPERM));
    let by_copy = probe_with(
        Some(&cg),
        copy.to_str().unwrap(),
        NET_SCRIPT,
        &["tcp", "127.0.0.1", &port.to_string()],
    );
    assert_eq!(
        by_copy,
        Err(EPERM),
        "a copy of the binary is another program"
    );
    let url = format!("http://127.0.0.1:{port}/");
    let curl = cg.run(&["curl", "-sS", "--max-time", "10", &url]);
    assert!(!curl.status.success(), "curl must not connect");
    let denied: Vec<_> = audit_lines()
        .into_iter()
        .filter(|r| r["comm"] == "curl" && r["target"]["address"] == format!("127.0.0.1:{port}"))
        .collect();
    assert_eq!(
        denied.len(),
        1,
        "curl's connect is denied and recorded: {denied:?}"
    );
}

#[test]
fn a_binary_that_appears_after_attach_gets_its_rules_once_it_exists() {
    let home = fixture_dir("net-later");
    let (_a, port) = listen("127.0.0.1");
    let later = home.join("bin/agent-python");
    std::fs::create_dir_all(later.parent().unwrap()).unwrap();
    let cg = Cgroup::new("net-later");
    let policy = policy_file(
        &home,
        "net-later",
        &format!(
            "network:\n  default: deny\n  binaries:\n    - path: {}\n      allow: [\"127.0.0.1:{port}\"]\n",
            later.display()
        ),
    );
    let out = attach(&cg, &policy, &home);
    assert!(
        stderr(&out).contains("its rules apply once it is created")
            || stdout(&out).contains("its rules apply once it is created"),
        "attach warns about the missing binary: {} {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(tcp(Some(&cg), "127.0.0.1", port), Err(EPERM));

    std::fs::copy(std::fs::canonicalize("/usr/bin/python3").unwrap(), &later).unwrap();
    let by_new_binary = probe_with(
        Some(&cg),
        later.to_str().unwrap(),
        NET_SCRIPT,
        &["tcp", "127.0.0.1", &port.to_string()],
    );
    assert_eq!(by_new_binary, connected());
}

#[test]
fn unix_sockets_are_denied_by_inode_whatever_path_reaches_them() {
    let home = fixture_dir("net-unix");
    let dir = home.join("sockets");
    std::fs::create_dir_all(&dir).unwrap();
    let stream = dir.join("daemon.sock");
    let dgram = dir.join("log.sock");
    let open = dir.join("open.sock");
    let _l = UnixListener::bind(&stream).unwrap();
    let _d = UnixDatagram::bind(&dgram).unwrap();
    let _o = UnixListener::bind(&open).unwrap();
    let alias = home.join("alias.sock");
    std::os::unix::fs::symlink(&stream, &alias).unwrap();
    // The probe runs as root, which reaches a server outside only where `unix_root_allow`
    // lists it (see `root_services`): the socket no `unix_deny` rule names is listed there.
    let cg = confined_by(
        "net-unix",
        &home,
        &format!(
            "network:\n  unix_deny:\n    - {}\n    - {}\n  unix_root_allow:\n    - {}\n",
            stream.display(),
            dgram.display(),
            open.display()
        ),
    );

    assert_eq!(unix(Some(&cg), "unix", &stream), Err(EPERM));
    assert_eq!(
        unix(Some(&cg), "unix", &alias),
        Err(EPERM),
        "through a symlink"
    );
    assert_eq!(unix(Some(&cg), "unix-dgram", &dgram), Err(EPERM));
    assert_eq!(unix(Some(&cg), "unix", &open), connected());
    assert_eq!(unix(None, "unix", &alias), connected());
    let record = records_for(&stream, 2);
    assert_eq!(record.len(), 2, "both connects are recorded: {record:?}");
    assert_eq!(record[0]["hook"], "unix_stream_connect");
}

/// Binds the abstract stream socket `@argv[1]` and the datagram socket `@argv[1]-dgram`, says
/// READY, then waits to be killed.
const ABSTRACT_SERVER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1])
s.listen(16)
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind("\0" + sys.argv[1] + "-dgram")
print("READY", flush=True)
time.sleep(600)
"#;

/// `ABSTRACT_SERVER` started inside `cg` under `name`, once it has bound its sockets.
fn abstract_server_in(cg: &Cgroup, name: &str) -> std::process::Child {
    let mut server = cg.spawn(&["python3", "-c", ABSTRACT_SERVER, name]);
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "READY", "the server in {}", cg.path.display());
    server
}

/// Inside one process: an abstract socket of its own making, connected and sent to, and a
/// socketpair (unbound ends): OK:own, else ERR:<errno>.
const ABSTRACT_OF_ITS_OWN: &str = r#"
import os, socket
try:
    name = "\0sa-own-%d" % os.getpid()
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind(name)
    l.listen(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(name)
    c.sendall(b"x")
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(name + "-dgram")
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", name + "-dgram")
    a, b = socket.socketpair()
    a.sendall(b"x")
    print("OK:own", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// Binds a datagram socket at argv[1], says READY, receives one descriptor (a connected
/// stream socket) and sends on it: OK:sent or ERR:<errno>.
const SEND_ON_A_HANDED_IN_CONNECTION: &str = r#"
import socket, sys
r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
r.bind(sys.argv[1])
print("READY", flush=True)
msg, fds, flags, addr = socket.recv_fds(r, 16, 1)
s = socket.socket(fileno=fds[0])
try:
    s.sendall(b"x")
    print("OK:sent", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// Connects to the abstract socket `@argv[2]` outside any sandbox and hands the connection to
/// the receiver at argv[1].
const HAND_IN_A_CONNECTION: &str = r#"
import array, socket, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect("\0" + sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [c.fileno()]))]
s.sendmsg([b"x"], rights, 0, sys.argv[1])
"#;

/// What a task in `cg` gets from sending on a connection to `@name` made outside and handed
/// in.
fn send_on_connection_handed_in(cg: &Cgroup, home: &Path, name: &str) -> String {
    let sock = home.join("receive.sock");
    let _ = std::fs::remove_file(&sock);
    let mut receiver = cg.spawn(&[
        "python3",
        "-c",
        SEND_ON_A_HANDED_IN_CONNECTION,
        sock.to_str().unwrap(),
    ]);
    let mut lines = std::io::BufReader::new(receiver.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut lines, &mut ready).unwrap();
    assert_eq!(ready.trim(), "READY");
    let sent = Command::new("python3")
        .args(["-c", HAND_IN_A_CONNECTION, sock.to_str().unwrap(), name])
        .status()
        .unwrap();
    assert!(sent.success(), "the connection to @{name} was handed in");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut lines, &mut said).unwrap();
    receiver.wait().unwrap();
    said
}

/// The abstract stream socket `@name` and datagram socket `@name-dgram`, bound here (outside
/// every sandbox).
fn abstract_sockets(name: &str) -> (UnixListener, UnixDatagram) {
    use std::os::{linux::net::SocketAddrExt, unix::net::SocketAddr};
    let at = |n: &str| SocketAddr::from_abstract_name(n.as_bytes()).unwrap();
    (
        UnixListener::bind_addr(&at(name)).unwrap(),
        UnixDatagram::bind_addr(&at(&format!("{name}-dgram"))).unwrap(),
    )
}

#[test]
fn abstract_sockets_do_not_cross_the_sandbox_boundary_either_way() {
    let home = fixture_dir("net-abstract");
    let outside = format!("sa-outside-{}", std::process::id());
    let _host = abstract_sockets(&outside);
    let inside = format!("sa-inside-{}", std::process::id());
    let name = |n: &str| std::path::PathBuf::from(format!("@{n}"));
    let dgram = |n: &str| std::path::PathBuf::from(format!("@{n}-dgram"));
    let body = "network:\n  unix_abstract: deny\n";
    let cg = confined_by("net-abstract", &home, body);
    let other_sandbox = confined_by("net-abstract-other", &home, body);
    let without_the_rule = confined_by(
        "net-abstract-allow",
        &home,
        "network:\n  unix_abstract: allow\n",
    );

    // The host's abstract sockets: refused to root and to a user, stream and datagram.
    assert_eq!(unix(Some(&cg), "unix", &name(&outside)), Err(EPERM));
    assert_eq!(unix(Some(&cg), "unix-dgram", &dgram(&outside)), Err(EPERM));
    let as_user =
        |kind: &str, to: &Path| probe_as_user(&cg, NET_SCRIPT, &[kind, to.to_str().unwrap()]);
    assert_eq!(as_user("unix", &name(&outside)), Err(EPERM), "a user");
    assert_eq!(
        as_user("unix-dgram", &dgram(&outside)),
        Err(EPERM),
        "a user"
    );
    // A connection made outside and handed in carries nothing either.
    assert_eq!(
        send_on_connection_handed_in(&cg, &home, &outside),
        "ERR:1",
        "a send on a connection made outside"
    );
    let record = record_of(&cg, "unix_stream_connect", |r| {
        r["target"]["socket_name"] == format!("@{outside}").as_str()
    });
    assert_eq!(record["target"]["kind"], "abstract_socket");
    assert_eq!(
        record["rule"],
        "network.unix_abstract: deny (an abstract socket made outside the sandbox)"
    );

    // The sandbox's own: made by the same process, or by another process of the sandbox.
    assert_eq!(probe(Some(&cg), ABSTRACT_OF_ITS_OWN, &[]), Ok("own".into()));
    assert_eq!(
        probe_as_user(&cg, ABSTRACT_OF_ITS_OWN, &[]),
        Ok("own".into())
    );
    let mut server = abstract_server_in(&cg, &inside);
    assert_eq!(unix(Some(&cg), "unix", &name(&inside)), connected());
    assert_eq!(
        unix(Some(&cg), "unix-dgram", &dgram(&inside)),
        Ok("sent".into())
    );
    assert_eq!(as_user("unix", &name(&inside)), connected(), "a user");

    // ... and no one else's: not another sandbox's, not even one without the rule, and not
    // the host's (a name the sandbox took could be one the host's clients look for).
    for (who, from) in [
        ("another sandbox", Some(&other_sandbox)),
        ("a sandbox without the rule", Some(&without_the_rule)),
        ("the host", None),
    ] {
        assert_eq!(unix(from, "unix", &name(&inside)), Err(EPERM), "{who}");
        assert_eq!(
            unix(from, "unix-dgram", &dgram(&inside)),
            Err(EPERM),
            "{who}"
        );
    }
    // (A user's connect: a root's reaches no server outside, see `root_services`.)
    assert_eq!(
        probe_as_user(
            &without_the_rule,
            NET_SCRIPT,
            &["unix", name(&outside).to_str().unwrap()]
        ),
        connected(),
        "the rule is the policy's own"
    );
    let from_outside =
        "network.unix_abstract: deny (an abstract socket made in the sandbox, reached from outside it)";
    let record = audit_lines()
        .into_iter()
        .find(|r| {
            r["target"]["socket_name"] == format!("@{inside}").as_str() && r["rule"] == from_outside
        })
        .expect("a record of the connects from outside");
    assert_eq!(
        record["policy"], "net-abstract",
        "recorded under the sandbox's policy"
    );

    // Outside, and once detached, everything connects.
    assert_eq!(unix(None, "unix", &name(&outside)), connected());
    detach(&cg);
    assert_eq!(unix(Some(&cg), "unix", &name(&outside)), connected());
    assert_eq!(unix(None, "unix", &name(&inside)), connected());
    assert_eq!(
        send_on_connection_handed_in(&cg, &home, &outside),
        "OK:sent"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// Tries to make a name where a client of a listed socket would look for its server, printing
/// `what=0` (made) or `what=<errno>` for each: argv[1] is a listed directory, argv[2] a listed
/// directory that does not exist yet (git credential-cache makes its own), argv[3] a directory
/// no rule names.
const PLANT_A_SERVER: &str = r#"
import os, socket, sys
listed, name, free = sys.argv[1:4]
def attempt(what, step):
    try:
        step()
        print("%s=0" % what, end=" ")
    except OSError as e:
        print("%s=%d" % (what, e.errno), end=" ")
def bind(path):
    return lambda: socket.socket(socket.AF_UNIX).bind(path)
attempt("bind", bind(os.path.join(listed, "planted.sock")))
attempt("symlink", lambda: os.symlink(os.path.join(free, "fake.sock"), os.path.join(listed, "link.sock")))
attempt("mkdir", lambda: os.mkdir(os.path.join(listed, "sub")))
attempt("rename", lambda: (socket.socket(socket.AF_UNIX).bind(os.path.join(free, "moved.sock")),
                           os.rename(os.path.join(free, "moved.sock"), os.path.join(listed, "moved.sock"))))
attempt("name", lambda: os.mkdir(name))
attempt("free", bind(os.path.join(free, "own.sock")))
"#;

#[test]
fn no_server_is_planted_where_unix_deny_names_one() {
    for (user, who) in [(false, "root"), (true, "user")] {
        let home = fixture_dir(&format!("net-plant-{who}"));
        let listed = home.join("sockets");
        let free = home.join("free");
        std::fs::create_dir_all(&listed).unwrap();
        std::fs::create_dir_all(&free).unwrap();
        let _server = UnixListener::bind(listed.join("server.sock")).unwrap();
        let name = home.join("cache/credential");
        std::fs::create_dir_all(home.join("cache")).unwrap();
        give_to(USER_UID, &home);
        let cg = confined_by(
            &format!("net-plant-{who}"),
            &home,
            &format!(
                "network:\n  unix_deny:\n    - {}\n    - {}\n",
                listed.display(),
                name.display()
            ),
        );
        let args = [
            listed.to_str().unwrap(),
            name.to_str().unwrap(),
            free.to_str().unwrap(),
        ];
        let said = python_as(Some(&cg), user, PLANT_A_SERVER, &args);
        assert_eq!(
            said.trim(),
            "bind=1 symlink=1 mkdir=1 rename=1 name=1 free=0",
            "{who}: nothing is made in the listed directory or at the listed name"
        );
        let _ = std::fs::remove_file(free.join("own.sock"));
        let _ = std::fs::remove_file(free.join("moved.sock"));
        let said = python_as(None, user, PLANT_A_SERVER, &args);
        assert_eq!(
            said.trim(),
            "bind=0 symlink=0 mkdir=0 rename=0 name=0 free=0",
            "{who} outside"
        );
    }
}

#[test]
fn a_denied_connect_is_one_audit_event_naming_the_destination_and_rule() {
    let home = fixture_dir("net-audit");
    let (_a, port) = listen("127.0.0.1");
    let cg = confined_by(
        "net-audit",
        &home,
        &format!("network:\n  deny: [\"127.0.0.1:{port}\"]\n"),
    );

    assert_eq!(tcp(Some(&cg), "127.0.0.1", port), Err(EPERM));

    let address = format!("127.0.0.1:{port}");
    let mut found = Vec::new();
    for _ in 0..50 {
        found = audit_lines()
            .into_iter()
            .filter(|r| r["target"]["address"] == address.as_str())
            .collect();
        if !found.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let r = &found[0];
    assert_eq!(r["action"], "deny");
    assert_eq!(r["hook"], "socket_connect");
    assert_eq!(r["comm"], "python3");
    assert_eq!(r["policy"], "net-audit");
    assert_eq!(r["rule"], format!("network.deny 127.0.0.1:{port}"));
    assert!(r["exe"]["ino"].as_u64().unwrap() > 0);
}

#[test]
fn an_invalid_network_rule_names_file_line_and_field_and_attaches_nothing() {
    let home = fixture_dir("net-bad");
    let (_a, port) = listen("127.0.0.1");
    let cg = confined_by(
        "net-bad",
        &home,
        &format!("network:\n  deny: [\"127.0.0.1:{port}\"]\n"),
    );
    let bad = policy_file(
        &home,
        "net-bad-cidr",
        "network:\n  deny:\n    - 10.0.0.0/8\n    - 10.0.0.1/33\n",
    );
    assert_refused(
        &try_attach(&cg.path, &bad, Some(&home)),
        "net-bad-cidr.yaml:5: network.deny[1]",
    );
    let bad_port = policy_file(
        &home,
        "net-bad-port",
        "network:\n  allow:\n    - \"0.0.0.0/0:70000\"\n",
    );
    assert_refused(
        &try_attach(&cg.path, &bad_port, Some(&home)),
        "net-bad-port.yaml:4: network.allow[0]",
    );
    assert_eq!(
        tcp(Some(&cg), "127.0.0.1", port),
        Err(EPERM),
        "the previous policy stays"
    );
}

/// Makes `name` resolve to `ip` for every process in the VM: /etc/hosts (on the read-only host
/// share) is covered by a bind mount of a tmpfs copy with the extra line.
fn resolve_in_vm(name: &str, ip: &str) {
    static HOSTS: OnceLock<()> = OnceLock::new();
    HOSTS.get_or_init(|| {
        let copy = fixture_dir("hosts").join("hosts");
        let original = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        std::fs::write(&copy, format!("{original}\n{ip} {name}\n")).unwrap();
        let out = Command::new("mount")
            .args(["--bind", copy.to_str().unwrap(), "/etc/hosts"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bind mount /etc/hosts: {}",
            stderr(&out)
        );
    });
}

#[test]
fn a_host_name_in_a_rule_denies_the_addresses_it_resolves_to() {
    let home = fixture_dir("net-name");
    resolve_in_vm("metadata.sandbox-test.internal", "127.0.0.4");
    let (_a, port) = listen("127.0.0.4");
    let (_b, open_port) = listen("127.0.0.1");
    let cg = confined_by(
        "net-name",
        &home,
        "network:\n  deny: [metadata.sandbox-test.internal]\n",
    );

    assert_eq!(tcp(Some(&cg), "127.0.0.4", port), Err(EPERM));
    assert_eq!(tcp(Some(&cg), "127.0.0.1", open_port), connected());
    let unresolvable = policy_file(
        &home,
        "net-name-bad",
        "network:\n  deny: [no-such-host.sandbox-test.invalid]\n",
    );
    assert_refused(
        &try_attach(&cg.path, &unresolvable, Some(&home)),
        "cannot resolve no-such-host.sandbox-test.invalid",
    );
    assert_eq!(
        tcp(Some(&cg), "127.0.0.4", port),
        Err(EPERM),
        "the previous policy stays"
    );
}

/// Creates a socket of (family, type, protocol): OK:created or ERR:<errno>.
const SOCKET_SCRIPT: &str = r#"
import socket, sys
try:
    socket.socket(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])).close()
    print("OK:created", end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

fn socket(cg: Option<&Cgroup>, family: i32, ty: i32, protocol: i32) -> Result<String, i32> {
    let args = [family, ty, protocol].map(|n| n.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    probe(cg, SOCKET_SCRIPT, &args)
}

#[test]
fn raw_packet_and_sctp_sockets_are_refused_where_network_rules_apply() {
    let home = fixture_dir("net-raw");
    let cg = confined_by("net-raw", &home, "network:\n  deny: [169.254.169.254]\n");
    let (packet, raw_icmp, sctp) = (
        (libc::AF_PACKET, libc::SOCK_RAW, 0x0300),
        (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        (libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    );

    // A confined root could otherwise craft frames or IP headers to the denied address.
    for (f, t, p) in [packet, raw_icmp, sctp] {
        assert_eq!(
            socket(Some(&cg), f, t, p),
            Err(EPERM),
            "socket({f}, {t}, {p})"
        );
    }
    record_of(&cg, "socket_create", |r| {
        r["target"]["kind"] == "socket"
            && r["target"]["socket"]
                == serde_json::json!({"family": libc::AF_INET, "type": libc::SOCK_RAW, "protocol": libc::IPPROTO_ICMP})
    });
    let created = Ok("created".to_string());
    let (tcp, udp6) = (
        (libc::AF_INET, libc::SOCK_STREAM, 0),
        (libc::AF_INET6, libc::SOCK_DGRAM, 0),
    );
    for (f, t, p) in [tcp, udp6] {
        assert_eq!(socket(Some(&cg), f, t, p), created, "ordinary sockets stay");
    }
    // Outside the cgroup nothing changes. Under a policy without network rules, raw sockets
    // still need CAP_NET_RAW, which a confined root gets only when the policy gives it back.
    assert_eq!(socket(None, packet.0, packet.1, packet.2), created);
    let files_only = confined("net-raw-files", &home, &[&home.join("secret")]);
    assert_eq!(
        socket(Some(&files_only), raw_icmp.0, raw_icmp.1, raw_icmp.2),
        Err(EPERM)
    );
    let raw_given = confined_by(
        "net-raw-given",
        &home,
        "capabilities:\n  allow: [NET_RAW]\n",
    );
    assert_eq!(
        socket(Some(&raw_given), raw_icmp.0, raw_icmp.1, raw_icmp.2),
        created
    );
}

/// `python3 -c FROM_PORTS TCP_PORT UDP_PORT RESERVED`: a TCP connect and a UDP datagram to
/// 127.0.0.1 from the reserved local port RESERVED (and RESERVED + 1), from a port the kernel
/// picks, and a server listening on RESERVED + 2.
const FROM_PORTS: &str = r#"
import socket, sys
tcp, udp, reserved = (int(a) for a in sys.argv[1:4])
def connect_from(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.connect(("127.0.0.1", tcp))
    finally:
        s.close()
def send_from(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        s.sendto(b"x", ("127.0.0.1", udp))
    finally:
        s.close()
def serve_on(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
    finally:
        s.close()
step("tcp_reserved", lambda: connect_from(reserved))
step("udp_reserved", lambda: send_from(reserved + 1))
step("tcp_any", lambda: connect_from(0))
step("udp_any", lambda: send_from(0))
step("serve_reserved", lambda: serve_on(reserved + 2))
if len(sys.argv) > 4:
    # Sockets bound outside, then confined with the process holding them (handed in): decided
    # on the socket's port, whoever bound it.
    t = socket.socket()
    t.bind(("127.0.0.1", reserved + 3))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", reserved + 4))
    with open(sys.argv[4] + "/cgroup.procs", "w") as f:
        f.write("0")
    step("tcp_handed_in", lambda: t.connect(("127.0.0.1", tcp)))
    step("udp_handed_in", lambda: u.sendto(b"x", ("127.0.0.1", udp)))
"#;

#[test]
fn no_connection_leaves_from_a_reserved_port() {
    // NFS (with its default `secure` export option) and rsh believe the user a connection from
    // a port below 1024 names: only the host's root can bind one. A confined root binds none
    // in the host's network namespace (`shared_ports`), and speaks to no one from one bound
    // outside and handed in, under every policy.
    let home = fixture_dir("net-reserved");
    let (_tcp, tcp) = listen("127.0.0.1");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let reserved = (600 + std::process::id() % 300).to_string();
    let cg = confined_by("net-reserved", &home, "");
    let tcp = tcp.to_string();
    let args = [tcp.as_str(), udp_port.as_str(), reserved.as_str()];

    let outside = steps_as(None, false, FROM_PORTS, &args);
    let inside = steps_as(Some(&cg), false, FROM_PORTS, &args);
    for s in [
        "tcp_reserved",
        "udp_reserved",
        "tcp_any",
        "udp_any",
        "serve_reserved",
    ] {
        assert_eq!(
            crate::filesystems::step(&outside, s),
            0,
            "outside: {s}: {outside}"
        );
    }
    // Inside, the reserved ports are not even bound (`shared_ports`): the sockets bound
    // outside and handed in below are what connect and send from one.
    for s in ["tcp_reserved", "udp_reserved", "serve_reserved"] {
        assert_eq!(
            crate::filesystems::step(&inside, s),
            EPERM,
            "inside: {s}: {inside}"
        );
    }
    for s in ["tcp_any", "udp_any"] {
        assert_eq!(
            crate::filesystems::step(&inside, s),
            0,
            "inside: {s}: {inside}"
        );
    }
    let cgroup = cg.path.to_str().unwrap();
    let handed_in = steps_as(
        None,
        false,
        FROM_PORTS,
        &[&tcp, &udp_port, &reserved, cgroup],
    );
    for s in ["tcp_handed_in", "udp_handed_in"] {
        assert_eq!(
            crate::filesystems::step(&handed_in, s),
            EPERM,
            "handed in: {s}: {handed_in}"
        );
    }
    record_of(&cg, "socket_connect", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("reserved port"))
    });
    record_of(&cg, "socket_sendmsg", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("reserved port"))
    });
}
