//! A confined root reaches no Unix socket server outside its sandbox but those its policy
//! lists (`network.unix_root_allow`): such a server sees root (`SO_PEERCRED`, uid 0) and may
//! trust it with all it serves (a database's root, a service manager, an intrusion blocker's
//! actions). Its own servers inside stay reachable; a confined ordinary user, and a confined
//! root that gave root up, are seen as the user and reach every server; outside, root does.

use std::{
    os::unix::{
        fs::PermissionsExt,
        net::{SocketAddr, UnixDatagram, UnixListener},
    },
    path::Path,
};

use std::os::linux::net::SocketAddrExt;

use crate::{filesystems::step, harness::*, servers_outside::UNIX_CLIENT};

/// `python3 -c CLIENT DIR`: a connect or a datagram to each server of `DIR`, then to a server
/// of its own; `dropped` gives every root uid up for the user's first.
const CLIENT: &str = r#"
d = sys.argv[1]
step("service", lambda: connect(d + "/service.sock"))
step("alias", lambda: connect(d + "/alias.sock"))
step("datagram", lambda: send(d + "/datagram.sock"))
step("abstract", lambda: connect("\0" + d + "/abstract"))
step("listed", lambda: connect(d + "/listed/logging.sock"))
step("listed_datagram", lambda: send(d + "/listed/dev-log"))
own = "%s/own-%d.sock" % (d, os.getpid())
server = socket.socket(socket.AF_UNIX)
server.bind(own)
server.listen(1)
step("own", lambda: connect(own))
def dropped():
    os.setresuid(1000, 1000, 1000)
    connect(d + "/service.sock")
in_child("dropped", dropped)
"#;

/// Servers of the host, outside every sandbox, in `dir`, any user may reach: a stream socket
/// (and a symlink to it), a datagram socket, an abstract one, and two in `dir/listed`.
struct Servers {
    _streams: Vec<UnixListener>,
    _datagrams: Vec<UnixDatagram>,
}

fn servers(dir: &Path) -> Servers {
    let open = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    std::fs::create_dir_all(dir.join("listed")).unwrap();
    for d in [dir, &dir.join("listed")] {
        open(d);
    }
    let stream = |name: &str| {
        let listener = UnixListener::bind(dir.join(name)).unwrap();
        open(&dir.join(name));
        listener
    };
    let datagram = |name: &str| {
        let socket = UnixDatagram::bind(dir.join(name)).unwrap();
        open(&dir.join(name));
        socket
    };
    std::os::unix::fs::symlink(dir.join("service.sock"), dir.join("alias.sock")).unwrap();
    let name = format!("{}/abstract", dir.display());
    let by_name = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    Servers {
        _streams: vec![
            stream("service.sock"),
            stream("listed/logging.sock"),
            by_name,
        ],
        _datagrams: vec![datagram("datagram.sock"), datagram("listed/dev-log")],
    }
}

const OUTSIDE_SERVERS: [&str; 4] = ["service", "alias", "datagram", "abstract"];
const REACHABLE: [&str; 4] = ["listed", "listed_datagram", "own", "dropped"];

#[test]
fn a_confined_root_reaches_no_server_outside_but_those_listed() {
    let dir = fixture_dir("root-services");
    let _servers = servers(&dir);
    // The sandbox works for the ordinary user, whose uid a confined root may give root up for.
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    give_to(USER_UID, &home);
    let listed = dir.join("listed");
    let body = format!("network:\n  unix_root_allow:\n    - {listed:?}\n");
    let cg = Cgroup::new("root-services");
    attach(&cg, &policy_file(&dir, "root-services", &body), &home);
    let args = [dir.to_str().unwrap()];

    // Outside, root reaches every server.
    let client = format!("{UNIX_CLIENT}{CLIENT}");
    let outside = steps_as(None, false, &client, &args);
    for s in OUTSIDE_SERVERS.iter().chain(&REACHABLE) {
        assert_eq!(step(&outside, s), 0, "root outside: {s}: {outside}");
    }

    // Inside, root reaches the listed ones and its own, by whatever name: not the others.
    let root = steps_as(Some(&cg), false, &client, &args);
    for s in OUTSIDE_SERVERS {
        assert_eq!(step(&root, s), EPERM, "root: {s}: {root}");
    }
    for s in REACHABLE {
        assert_eq!(step(&root, s), 0, "root: {s}: {root}");
    }
    let about_root = |r: &serde_json::Value| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("unix_root_allow"))
    };
    record_of(&cg, "unix_stream_connect", about_root);
    record_of(&cg, "unix_may_send", about_root);

    // A confined user is seen as the user: every server is its to reach.
    let user = steps_as(Some(&cg), true, &client, &args);
    for s in OUTSIDE_SERVERS.iter().chain(&REACHABLE) {
        assert_eq!(step(&user, s), 0, "user: {s}: {user}");
    }
}
