//! Under `network.unix_default: deny` a confined task, root or not, reaches no Unix socket
//! server outside its sandbox but those `network.unix_allow` (or, for root,
//! `network.unix_root_allow`) lists: the developer's own servers act on what they are asked
//! (another session's ssh-agent signs as them, an editor's remote-control socket opens and
//! runs files). Whatever name reaches the server (a symlink, a hardlink, a bind mount), and
//! on every filesystem; another sandbox's servers are outside too. Servers the sandbox made
//! stay reachable, those its cgroup made before the attach too; nothing is moved or made where
//! the listed ones are; outside, the user reaches every server.

use std::{
    os::unix::{
        fs::PermissionsExt,
        net::{SocketAddr, UnixDatagram, UnixListener},
    },
    path::{Path, PathBuf},
};

use std::os::fd::{AsRawFd, OwnedFd};

use std::os::linux::net::SocketAddrExt;

use crate::{
    filesystems::{dir_on, mounted, step},
    harness::*,
    mounted_below::mount,
};

/// Python for a Unix socket client: `connect(address, kind)` (a stream by default) and
/// `send(path)` (one datagram), each with a socket of its own.
pub const UNIX_CLIENT: &str = r#"
import os, socket, sys
def connect(address, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    try:
        s.connect(address)
    finally:
        s.close()
def send(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", path)
    finally:
        s.close()
"#;

/// `python3 -c CLIENT DIR SHARED` (after `UNIX_CLIENT`): a connect or a datagram to each
/// server of `DIR` by each of its names, then to servers of its own (made in `SHARED`), then
/// tries to move the session's server where the listed ones are.
const CLIENT: &str = r#"
d, shared = sys.argv[1], sys.argv[2]
step("session", lambda: connect(d + "/session/agent.sock"))
step("symlink", lambda: connect(d + "/alias.sock"))
step("hardlink", lambda: connect(d + "/session/hard.sock"))
step("bind_mount", lambda: connect(d + "/bound/agent.sock"))
step("datagram", lambda: send(d + "/session/datagram.sock"))
step("seqpacket", lambda: connect(d + "/session/seqpacket.sock", socket.SOCK_SEQPACKET))
step("abstract", lambda: connect("\0" + d + "/abstract"))
step("other_sandbox", lambda: connect(d + "/other-sandbox.sock"))
step("before_attach", lambda: connect(d + "/before-attach.sock"))
step("listed", lambda: connect(d + "/listed/logging.sock"))
step("listed_datagram", lambda: send(d + "/listed/dev-log"))
own = "%s/own-%d.sock" % (shared, os.getpid())
server = socket.socket(socket.AF_UNIX)
server.bind(own)
server.listen(1)
step("own", lambda: connect(own))
own_datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
own_datagram.bind(own + ".dgram")
step("own_datagram", lambda: send(own + ".dgram"))
os.symlink(own, own + ".link")
step("own_symlink", lambda: connect(own + ".link"))
if len(sys.argv) > 3:
    mine = "%s/listed/mine-%d" % (d, os.getpid())
    step("moved_in", lambda: os.rename(d + "/session/agent.sock", mine))
    step("linked_in", lambda: os.link(d + "/session/agent.sock", mine))
    step("made_in", lambda: socket.socket(socket.AF_UNIX).bind(mine))
"#;

/// The developer's other session's servers (an ssh-agent's: the user's, mode 0600 in a 0700
/// directory) with a symlink, a hardlink and a bind mount of their directory; an abstract one;
/// and two servers of the host in `listed`. All made outside every sandbox.
struct Servers {
    _streams: Vec<UnixListener>,
    _datagrams: Vec<UnixDatagram>,
    _seqpacket: OwnedFd,
    bound: PathBuf,
}

/// A listening `SOCK_SEQPACKET` socket at `path` (std makes none): connected to through the
/// same hook as a stream.
fn seqpacket_listener(path: &Path) -> OwnedFd {
    use std::os::{fd::FromRawFd, unix::ffi::OsStrExt};
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) address.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let name = path.as_os_str().as_bytes();
    assert!(name.len() < address.sun_path.len(), "{}", path.display());
    for (to, from) in address.sun_path.iter_mut().zip(name) {
        *to = *from as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let at = &address as *const libc::sockaddr_un as *const libc::sockaddr;
    // SAFETY: `at` points at a live sockaddr_un of `len` bytes.
    let bound = unsafe { libc::bind(fd.as_raw_fd(), at, len) };
    assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: listen(2) on the descriptor owned above.
    assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 8) }, 0);
    fd
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.bound)
            .status();
    }
}

fn servers(dir: &Path) -> Servers {
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let session = dir.join("session");
    let listed = dir.join("listed");
    for d in [&session, &listed, &dir.join("bound")] {
        std::fs::create_dir_all(d).unwrap();
    }
    mode(&listed, 0o777);
    let agent = UnixListener::bind(session.join("agent.sock")).unwrap();
    let datagram = UnixDatagram::bind(session.join("datagram.sock")).unwrap();
    let seqpacket = seqpacket_listener(&session.join("seqpacket.sock"));
    std::fs::hard_link(session.join("agent.sock"), session.join("hard.sock")).unwrap();
    give_to(USER_UID, &session);
    mode(&session, 0o700);
    for name in ["agent.sock", "datagram.sock", "seqpacket.sock"] {
        mode(&session.join(name), 0o600);
    }
    std::os::unix::fs::symlink(session.join("agent.sock"), dir.join("alias.sock")).unwrap();
    mount(&["--bind"], &session, &dir.join("bound"));
    let name = format!("{}/abstract", dir.display());
    let by_name = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    let logging = UnixListener::bind(listed.join("logging.sock")).unwrap();
    let dev_log = UnixDatagram::bind(listed.join("dev-log")).unwrap();
    for name in ["logging.sock", "dev-log"] {
        mode(&listed.join(name), 0o777);
    }
    Servers {
        _streams: vec![agent, by_name, logging],
        _datagrams: vec![datagram, dev_log],
        _seqpacket: seqpacket,
        bound: dir.join("bound"),
    }
}

const OUTSIDE: [&str; 8] = [
    "session",
    "symlink",
    "hardlink",
    "bind_mount",
    "datagram",
    "seqpacket",
    "abstract",
    "other_sandbox",
];
const OWN: [&str; 4] = ["own", "own_datagram", "own_symlink", "before_attach"];

/// `python3 -c SERVER PATH`: a stream server any user may reach at PATH, until killed.
const SERVER: &str = "import os, socket, sys, time
os.umask(0)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
time.sleep(600)";

/// A server of `cg`'s (started in it) at `path`, once it listens.
fn server_in(cg: &Cgroup, path: &Path) -> std::process::Child {
    let child = cg.spawn(&["python3", "-c", SERVER, path.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never listened",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}
const MOVES: [&str; 3] = ["moved_in", "linked_in", "made_in"];

/// The whole scenario with the servers in `dir` (on the filesystem `label` names).
fn no_server_outside_but_those_listed(label: &str, dir: &Path) {
    let _servers = servers(dir);
    // The sandbox works for the ordinary user, who owns ~ and the other session's servers.
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    give_to(USER_UID, &home);
    let shared = shared_dir(dir);
    let listed = dir.join("listed");
    let body = format!(
        "network:\n  unix_default: deny\n  unix_allow:\n    - {listed:?}\n  \
         unix_root_allow:\n    - {:?}\n",
        listed.join("logging.sock")
    );
    let cg = Cgroup::new(&format!("servers-outside-{label}"));
    // A server the cgroup made before the attach (an agent confined by `attach` while it
    // runs), and one of another sandbox's.
    let before_attach = server_in(&cg, &dir.join("before-attach.sock"));
    let other = Cgroup::new(&format!("servers-outside-other-{label}"));
    attach(&other, &policy_file(dir, "other-sandbox", ""), &home);
    let other_sandbox = server_in(&other, &dir.join("other-sandbox.sock"));
    attach(&cg, &policy_file(dir, "servers-outside", &body), &home);
    let (d, shared) = (dir.to_str().unwrap(), shared.to_str().unwrap());

    // Outside, the user reaches every server by every name.
    let client = format!("{UNIX_CLIENT}{CLIENT}");
    let outside = steps_as(None, true, &client, &[d, shared]);
    for s in OUTSIDE
        .iter()
        .chain(&["listed", "listed_datagram"])
        .chain(&OWN)
    {
        assert_eq!(
            step(&outside, s),
            0,
            "{label}: user outside: {s}: {outside}"
        );
    }

    // Inside, the user reaches the listed servers and its own, by whatever name, and no other;
    // nothing of the session's is moved or linked where the listed servers are, nor made there.
    let user = steps_as(Some(&cg), true, &client, &[d, shared, "moves"]);
    for s in OUTSIDE.iter().chain(&MOVES) {
        assert_eq!(step(&user, s), EPERM, "{label}: user: {s}: {user}");
    }
    for s in ["listed", "listed_datagram"].iter().chain(&OWN) {
        assert_eq!(step(&user, s), 0, "{label}: user: {s}: {user}");
    }

    // A confined root, which the servers would also see as root, reaches only what
    // unix_root_allow lists of them.
    let root = steps_as(Some(&cg), false, &client, &[d, shared, "moves"]);
    for s in OUTSIDE.iter().chain(&["listed_datagram"]).chain(&MOVES) {
        assert_eq!(step(&root, s), EPERM, "{label}: root: {s}: {root}");
    }
    for s in ["listed"].iter().chain(&OWN) {
        assert_eq!(step(&root, s), 0, "{label}: root: {s}: {root}");
    }

    let about_default = |r: &serde_json::Value| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("unix_default"))
    };
    record_of(&cg, "unix_stream_connect", about_default);
    record_of(&cg, "unix_may_send", about_default);
    for mut server in [before_attach, other_sandbox] {
        let _ = server.kill();
        let _ = server.wait();
    }
}

#[test]
fn under_unix_default_deny_no_server_outside_is_reached_but_those_listed() {
    no_server_outside_but_those_listed("tmpfs", &fixture_dir("servers-outside"));
    no_server_outside_but_those_listed("ext4", &dir_on(mounted("ext4"), "servers-outside"));
    no_server_outside_but_those_listed("btrfs", &dir_on(mounted("btrfs"), "servers-outside"));
    no_server_outside_but_those_listed("xfs", &dir_on(mounted("xfs"), "servers-outside"));
}
