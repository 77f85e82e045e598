//! The kernel keyrings: a confined task, root or not, reads and changes only the keys its own
//! sandbox made. A key its uid's other processes put in the user keyring (where a Kerberos
//! `KEYRING:` cache or a tool's token lives) cannot be read, changed, unlinked or re-permitted
//! from inside, nothing can be added there for them to find later, no `request_key` callout
//! starts the host's root helper, and no keyring of the sandbox's is handed to a parent outside;
//! keys the sandbox makes in a keyring of its own work.

use std::process::Command;

use crate::{filesystems::step, harness::*};

/// `outside`: adds a key to the user keyring and prints its serial. `inside SERIAL`: tries
/// every access on it, then makes and reads a key of its own. One `name=result` per line, a
/// result being what the call returned or `-errno`.
const KEYS: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, REQUEST_KEY, KEYCTL = 248, 249, 250
USER_KEYRING, SESSION_KEYRING = -4, -3
def call(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else -ctypes.get_errno()
def add(desc, payload, ring):
    return call(ADD_KEY, b"user", desc, payload, len(payload), ring)
def read(serial):
    buf = ctypes.create_string_buffer(128)
    n = call(KEYCTL, 11, serial, buf, 128)
    return buf.raw[:n].decode() if n >= 0 else n
if sys.argv[1] == "outside":
    print("serial=%d" % add(b"developer-token", b"s3cret", USER_KEYRING))
elif sys.argv[1] == "read":
    print("read=%s" % read(int(sys.argv[2])))
else:
    key = int(sys.argv[2])
    print("read=%s" % read(key))
    print("update=%d" % call(KEYCTL, 2, key, b"evil", 4))
    print("setperm=%d" % call(KEYCTL, 5, key, 0x3f3f3f3f))
    print("unlink=%d" % call(KEYCTL, 9, key, USER_KEYRING))
    print("plant=%d" % add(b"planted", b"x", USER_KEYRING))
    print("callout=%d" % call(REQUEST_KEY, b"user", b"debug:agent", b"callout", SESSION_KEYRING))
    print("persistent=%d" % call(KEYCTL, 22, -1, SESSION_KEYRING))
    print("session=%d" % call(KEYCTL, 1, None))
    mine = add(b"mine", b"ours", SESSION_KEYRING)
    print("own=%s" % (read(mine) if mine > 0 else mine))
"#;

/// The key script as root or as uid 1000, inside `cg` or outside.
fn keys(cg: Option<&Cgroup>, user: bool, args: &[&str]) -> String {
    let mut argv = if user {
        vec!["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
    } else {
        vec![]
    };
    argv.extend(["python3", "-c", KEYS]);
    argv.extend_from_slice(args);
    let out = match cg {
        Some(cg) => cg.run(&argv),
        None => Command::new(argv[0]).args(&argv[1..]).output().unwrap(),
    };
    format!("{}{}", stdout(&out), stderr(&out))
}

#[test]
fn a_confined_task_reads_and_changes_only_the_keys_its_sandbox_made() {
    let home = fixture_dir("keyrings");
    let policy = policy_file(&home, "keyrings", "deny_read: []\n");
    let cg = Cgroup::new("keyrings");
    attach(&cg, &policy, &home);
    let eperm = -libc::EPERM;

    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let made = keys(None, user, &["outside"]);
        let serial = step(&made, "serial");
        assert!(serial > 0, "{who}: {made}");
        let serial = serial.to_string();

        let inside = keys(Some(&cg), user, &["inside", &serial]);
        assert!(
            inside.contains(&format!("read={eperm}\n")),
            "{who}: read: {inside}"
        );
        for access in [
            "update",
            "setperm",
            "unlink",
            "plant",
            "callout",
            "persistent",
        ] {
            assert_eq!(step(&inside, access), eperm, "{who}: {access}: {inside}");
        }
        assert!(step(&inside, "session") > 0, "{who}: {inside}");
        assert!(inside.contains("own=ours"), "{who}: its own key: {inside}");

        // Outside, the key is as its owner left it.
        let after = keys(None, user, &["read", &serial]);
        assert!(after.contains("read=s3cret"), "{who}: {after}");
    }
    record_of(&cg, "key_permission", |r| {
        r["action"] == "deny" && r["target"]["key_access"] == "read"
    });
    record_of(&cg, "key_alloc", |r| r["action"] == "deny");
}

/// A process outside (single-threaded, as `keyctl session_to_parent` requires of the parent)
/// forks a child that moves itself into the cgroup `argv[1]`, makes a session keyring of its
/// own and asks for it to become its parent's. Prints the child's results, then whether the
/// parent's session keyring stayed its own.
const TO_PARENT: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
KEYCTL, SESSION_KEYRING = 250, -3
def keyctl(*args):
    r = libc.syscall(KEYCTL, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else -ctypes.get_errno()
before = keyctl(0, SESSION_KEYRING, 1)
child = os.fork()
if child == 0:
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    print("session=%d" % keyctl(1, None))
    print("to_parent=%d" % keyctl(18), flush=True)
    os._exit(0)
os.waitpid(child, 0)
print("parent_kept=%d" % (keyctl(0, SESSION_KEYRING, 0) == before))
"#;

#[test]
fn a_keyring_the_sandbox_made_is_not_handed_to_a_parent_outside() {
    let home = fixture_dir("keyrings-parent");
    let policy = policy_file(&home, "keyrings-parent", "deny_read: []\n");
    let cg = Cgroup::new("keyrings-parent");
    attach(&cg, &policy, &home);

    let out = Command::new("python3")
        .args(["-c", TO_PARENT])
        .arg(&cg.path)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));

    assert!(out.status.success(), "{said}");
    assert!(step(&said, "session") > 0, "{said}");
    assert_eq!(step(&said, "to_parent"), -libc::EPERM, "{said}");
    assert_eq!(step(&said, "parent_kept"), 1, "{said}");
    record_of(&cg, "key_permission", |r| {
        r["action"] == "deny" && r["target"]["key_access"] == "link"
    });
}
