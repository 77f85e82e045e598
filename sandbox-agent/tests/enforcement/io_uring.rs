//! io_uring reaches files and sockets without the `open` and `connect` system calls, and runs
//! the requests in the submitter (where they need not wait), in its io-wq workers (kernel
//! threads; `IOSQE_ASYNC` forces one) or in a polling thread of the ring
//! (`IORING_SETUP_SQPOLL`). Each of them is decided as the confined task itself, for root and
//! for an ordinary user.

use crate::{filesystems::step, harness::*};

/// `python3 -c URING PATH PORT`: opens PATH read-only and connects to 127.0.0.1:PORT through
/// io_uring, each as submitted, forced to an io-wq worker, and through an SQPOLL ring.
/// `python3 -c URING personality PATH`: opens PATH with a registered personality.
/// `python3 -c URING paths HOME DIR`: unlinks, renames over, links out of and makes names in
/// HOME's protected names through io-wq workers, with DIR for the other end. Prints
/// `open_<how>=RES` and `connect_<how>=RES` lines, RES being the completion's result (a
/// descriptor, 0, or `-errno`). The rings are set up with the raw system calls.
const URING: &str = r#"
import ctypes, mmap, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
SETUP, ENTER = 425, 426
OP_CONNECT, OP_OPENAT = 16, 18
SQPOLL, ASYNC, GETEVENTS, SQ_WAKEUP = 2, 0x10, 1, 2

def ring(flags):
    p = ctypes.create_string_buffer(120)
    struct.pack_into("I", p, 8, flags)
    struct.pack_into("I", p, 16, 10)  # sq_thread_idle, ms
    fd = libc.syscall(SETUP, 4, p)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
    sq_entries, cq_entries = struct.unpack_from("II", p, 0)
    sq = struct.unpack_from("IIIIIIII", p, 40)   # head tail mask entries flags dropped array
    cq = struct.unpack_from("IIIIII", p, 80)     # head tail mask entries overflow cqes
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    sqm = mmap.mmap(fd, sq[6] + sq_entries * 4, mmap.MAP_SHARED, rw, offset=0)
    cqm = mmap.mmap(fd, cq[5] + cq_entries * 16, mmap.MAP_SHARED, rw, offset=0x8000000)
    sqes = mmap.mmap(fd, sq_entries * 64, mmap.MAP_SHARED, rw, offset=0x10000000)
    return fd, sq, cq, sqm, cqm, sqes

def submit(r, opcode, fd, addr, length, off, op_flags, sqe_flags, enter_flags, personality=0):
    rfd, sq, cq, sqm, cqm, sqes = r
    tail = struct.unpack_from("I", sqm, sq[1])[0]
    i = tail & struct.unpack_from("I", sqm, sq[2])[0]
    sqe = struct.pack("BBHiQQIIQHH", opcode, sqe_flags, 0, fd, off, addr, length, op_flags, 7, 0,
                      personality)
    sqes[i * 64:(i + 1) * 64] = sqe.ljust(64, b"\0")
    struct.pack_into("I", sqm, sq[6] + i * 4, i)
    struct.pack_into("I", sqm, sq[1], tail + 1)
    while True:
        if libc.syscall(ENTER, rfd, 1, 1, enter_flags, None, 0) < 0:
            return -ctypes.get_errno()
        head = struct.unpack_from("I", cqm, cq[0])[0]
        if head != struct.unpack_from("I", cqm, cq[1])[0]:
            break
    c = cq[5] + (head & struct.unpack_from("I", cqm, cq[2])[0]) * 16
    res = struct.unpack_from("i", cqm, c + 8)[0]
    struct.pack_into("I", cqm, cq[0], head + 1)
    return res

if sys.argv[1] == "personality":
    # personality PATH: opens PATH with the task's own credentials registered as a personality.
    path = ctypes.create_string_buffer(sys.argv[2].encode())
    r = ring(0)
    REGISTER, REGISTER_PERSONALITY = 427, 9
    personality = libc.syscall(REGISTER, r[0], REGISTER_PERSONALITY, None, 0)
    print("register=%d" % (personality if personality < 0 else 0))
    res = submit(r, OP_OPENAT, -100, ctypes.addressof(path), 0, 0, os.O_RDONLY, 0, GETEVENTS,
                 personality)
    print("open_personality=%d" % res, flush=True)
elif sys.argv[1] != "paths":
    path = ctypes.create_string_buffer(sys.argv[1].encode())
    # struct sockaddr_in: the family in host order, the port in network order.
    addr = ctypes.create_string_buffer(struct.pack("=H", socket.AF_INET)
        + struct.pack("!H", int(sys.argv[2])) + socket.inet_aton("127.0.0.1") + bytes(8), 16)
    for how, setup, sqe_flags, enter in [("inline", 0, 0, GETEVENTS), ("async", 0, ASYNC, GETEVENTS),
                                         ("sqpoll", SQPOLL, 0, GETEVENTS | SQ_WAKEUP)]:
        r = ring(setup)
        res = submit(r, OP_OPENAT, -100, ctypes.addressof(path), 0, 0, os.O_RDONLY, sqe_flags, enter)
        print("open_%s=%d" % (how, res))
        s = socket.socket()
        res = submit(r, OP_CONNECT, s.fileno(), ctypes.addressof(addr), 0, 16, 0, sqe_flags, enter)
        print("connect_%s=%d" % (how, res), flush=True)
        s.close()
else:
    # paths HOME DIR: changes below HOME's protected names, each forced to an io-wq worker.
    home, out = sys.argv[2], sys.argv[3]
    keep = []
    def ptr(p):
        keep.append(ctypes.create_string_buffer(p.encode()))
        return ctypes.addressof(keep[-1])
    planted = out + "/planted-%d" % os.getuid()
    open(planted, "w").write("evil")
    r, AT = ring(0), -100
    def op(opcode, fd, a, length, a2):
        return submit(r, opcode, fd, ptr(a), length & 0xffffffff, ptr(a2) if a2 else 0, 0, ASYNC,
                      GETEVENTS)
    print("unlink=%d" % op(36, AT, home + "/.bashrc", 0, None))
    print("rename=%d" % op(35, AT, planted, AT, home + "/.bashrc"))
    print("link_out=%d" % op(39, AT, home + "/.ssh/id_rsa", AT, out + "/copy"))
    print("mkdir=%d" % op(37, AT, home + "/.ssh/new", 0o755, None))
    print("symlink=%d" % op(38, AT, "/etc/passwd", 0, home + "/.ssh/authorized_keys2"))
"#;

/// A TCP listener on 127.0.0.1, for the connects to reach when allowed.
fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn uring(cg: Option<&Cgroup>, user: bool, path: &str, port: u16) -> String {
    python_as(cg, user, URING, &[path, &port.to_string()])
}

#[test]
fn io_uring_opens_and_connects_are_decided_as_the_confined_task_itself() {
    let home = fixture_dir("io-uring");
    let secret = home.join(".ssh/id_rsa");
    write(&secret, "key");
    let (_listening, port) = listener();
    let policy = policy_file(
        &home,
        "io-uring",
        &format!("deny_read:\n  - ~/.ssh\nnetwork:\n  deny: [\"127.0.0.1:{port}\"]\n"),
    );
    let cg = Cgroup::new("io-uring");
    attach(&cg, &policy, &home);
    let secret = secret.to_str().unwrap();

    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        // Outside, every way works: the probe itself can open and connect.
        let outside = uring(None, user, secret, port);
        for how in ["inline", "async", "sqpoll"] {
            assert!(
                step(&outside, &format!("open_{how}")) >= 0,
                "{who}: {outside}"
            );
            assert_eq!(
                step(&outside, &format!("connect_{how}")),
                0,
                "{who}: {outside}"
            );
        }

        let inside = uring(Some(&cg), user, secret, port);
        for how in ["inline", "async", "sqpoll"] {
            for op in ["open", "connect"] {
                assert_eq!(
                    step(&inside, &format!("{op}_{how}")),
                    -libc::EPERM,
                    "{who}: {op} {how}: {inside}"
                );
            }
        }
    }
    // The kernel threads themselves were decided, not only the submitter: io-wq workers are
    // named iou-wrk-PID, SQPOLL threads iou-sqp-PID.
    // (An open that cannot finish without blocking goes to a worker from either.)
    record_of(&cg, "file_open", |r| r["action"] == "deny");
    record_of(&cg, "socket_connect", |r| r["action"] == "deny");
    let comms = [
        deciding_threads(&cg, "file_open"),
        deciding_threads(&cg, "socket_connect"),
    ]
    .concat();
    for thread in ["iou-wrk-", "iou-sqp-"] {
        assert!(
            comms.iter().any(|c| c.starts_with(thread)),
            "no denial made in a {thread} thread: {comms:?}"
        );
    }
}

/// The names of the threads whose `hook` denials in `cg` are in the audit log.
fn deciding_threads(cg: &Cgroup, hook: &str) -> Vec<String> {
    let cgroup = cg.path.display().to_string();
    audit_lines()
        .into_iter()
        .filter(|r| r["cgroup"] == cgroup && r["hook"] == hook && r["action"] == "deny")
        .filter_map(|r| r["comm"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn io_uring_path_changes_are_decided_as_the_confined_task_itself() {
    let home = fixture_dir("io-uring-paths");
    write(&home.join(".bashrc"), "# the developer's");
    write(&home.join(".ssh/id_rsa"), "key");
    let out = shared_dir(&home);
    // The user owns it all, so only the rules, not the file permissions, stand in its way.
    give_to(1000, &home);
    let policy = policy_file(
        &home,
        "io-uring-paths",
        "deny_read: [~/.ssh]\ndeny_write: [~/.bashrc, ~/.ssh]\n",
    );
    let cg = Cgroup::new("io-uring-paths");
    attach(&cg, &policy, &home);
    let (home_s, out_s) = (home.to_str().unwrap(), out.to_str().unwrap());

    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let inside = python_as(Some(&cg), user, URING, &["paths", home_s, out_s]);
        for change in ["unlink", "rename", "link_out", "mkdir", "symlink"] {
            assert_eq!(
                step(&inside, change),
                -libc::EPERM,
                "{who}: {change}: {inside}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(home.join(".bashrc")).unwrap(),
            "# the developer's"
        );
        assert!(!out.join("copy").exists() && !home.join(".ssh/new").exists());
    }
    // Outside, the same requests go through (the probe works).
    let outside = python_as(None, true, URING, &["paths", home_s, out_s]);
    assert_eq!(step(&outside, "unlink"), 0, "{outside}");
}

/// A registered personality lets a request run with credentials other than the task's own,
/// which the kernel's checks take for kernel code acting for itself: a confined task's
/// request with one is refused (`uring_override_creds`), even with its own credentials.
#[test]
fn io_uring_personalities_are_refused_to_confined_tasks() {
    let home = fixture_dir("io-uring-personality");
    let file = home.join("plain");
    write(&file, "plain");
    let cg = Cgroup::new("io-uring-personality");
    attach(&cg, &policy_file(&home, "personality", ""), &home);
    let file = file.to_str().unwrap();
    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let outside = python_as(None, user, URING, &["personality", file]);
        assert!(step(&outside, "open_personality") >= 0, "{who}: {outside}");
        let inside = python_as(Some(&cg), user, URING, &["personality", file]);
        assert_eq!(step(&inside, "register"), 0, "{who}: {inside}");
        assert_eq!(
            step(&inside, "open_personality"),
            -libc::EPERM,
            "{who}: {inside}"
        );
    }
    record_of(&cg, "uring_override_creds", |r| r["action"] == "deny");
}
