//! The kernel keyrings: a confined task, root or not, reads and changes only the keys its own
//! sandbox made. A key its uid's other processes put in the user keyring (where a Kerberos
//! `KEYRING:` cache or a tool's token lives) cannot be read, changed, unlinked or re-permitted
//! from inside, nothing can be added there for them to find later, no `request_key` callout
//! starts the host's root helper, and no keyring of the sandbox's is handed to a parent outside;
//! `keyctl` cannot find the key either, so no operation that needs only that (invalidating it,
//! a public-key operation) reaches it, through the 64-bit system call or the 32-bit one; keys the
//! sandbox makes in a keyring of its own work, and `run` gives its command one.

use std::process::Command;

use crate::{filesystems::step, harness::*};

/// `outside`: adds a key to the user keyring and prints its serial. `inside SERIAL`: tries
/// every access on it, then makes and reads a key of its own. One `name=result` per line, a
/// result being what the call returned or `-errno`.
const KEYS: &str = r#"
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, REQUEST_KEY, KEYCTL = 248, 249, 250
USER_KEYRING, SESSION_KEYRING = -4, -3
def call(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else -ctypes.get_errno()
# keyctl(cmd, key) through int 0x80, the 32-bit system call table (keyctl is 288 there):
# push rbx; mov eax, 288; mov ebx, edi; mov ecx, esi; int 0x80; pop rbx; ret
code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(bytes([0x53, 0xB8, 0x20, 0x01, 0, 0, 0x89, 0xFB, 0x89, 0xF1, 0xCD, 0x80, 0x5B, 0xC3]))
keyctl32 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)(
    ctypes.addressof(ctypes.c_char.from_buffer(code)))
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
elif sys.argv[1] == "session":
    print("session_id=%d" % call(KEYCTL, 0, SESSION_KEYRING, 0))
    mine = add(b"ticket", b"ours", SESSION_KEYRING)
    print("own=%s" % (read(mine) if mine > 0 else mine))
else:
    key = int(sys.argv[2])
    print("read=%s" % read(key))
    print("update=%d" % call(KEYCTL, 2, key, b"evil", 4))
    print("setperm=%d" % call(KEYCTL, 5, key, 0x3f3f3f3f))
    print("unlink=%d" % call(KEYCTL, 9, key, USER_KEYRING))
    # Another system call's search (the kernel's own lookups ask the same) still finds it.
    print("found=%d" % (call(REQUEST_KEY, b"user", b"developer-token", None, 0) == key))
    print("search=%d" % call(KEYCTL, 10, USER_KEYRING, b"user", b"developer-token", 0))
    query = ctypes.create_string_buffer(64)
    print("pkey_query=%d" % call(KEYCTL, 24, key, 0, b"", query))
    print("invalidate32=%d" % keyctl32(21, key))
    print("invalidate=%d" % call(KEYCTL, 21, key))
    print("plant=%d" % add(b"planted", b"x", USER_KEYRING))
    print("callout=%d" % call(REQUEST_KEY, b"user", b"debug:agent", b"callout", SESSION_KEYRING))
    print("persistent=%d" % call(KEYCTL, 22, -1, SESSION_KEYRING))
    print("session=%d" % call(KEYCTL, 1, None))
    mine = add(b"mine", b"ours", SESSION_KEYRING)
    print("own=%s" % (read(mine) if mine > 0 else mine))
    print("own_invalidate=%d" % call(KEYCTL, 21, mine))
"#;

/// The key script as root or as uid 1000, inside `cg` or outside.
fn keys(cg: Option<&Cgroup>, user: bool, args: &[&str]) -> String {
    python_as(cg, user, KEYS, args)
}

/// What a refused key access returns: EPERM from the guard itself; EACCES or ENOKEY where the
/// guard refused `keyctl` the search that finds a key among the caller's keyrings, so that the
/// kernel saw the key as not possessed (its owner's permissions then give nothing) or the keyring
/// named as unreachable.
fn refused(result: i32) -> bool {
    [libc::EPERM, libc::EACCES, libc::ENOKEY].contains(&-result)
}

#[test]
fn a_confined_task_reads_and_changes_only_the_keys_its_sandbox_made() {
    let home = fixture_dir("keyrings");
    let policy = policy_file(&home, "keyrings", "deny_read: []\n");
    let cg = Cgroup::new("keyrings");
    attach(&cg, &policy, &home);

    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let made = keys(None, user, &["outside"]);
        let serial = step(&made, "serial");
        assert!(serial > 0, "{who}: {made}");
        let serial = serial.to_string();

        let inside = keys(Some(&cg), user, &["inside", &serial]);
        assert!(!inside.contains("s3cret"), "{who}: read: {inside}");
        for access in [
            "read",
            "update",
            "setperm",
            "unlink",
            "search",
            "pkey_query",
            "invalidate32",
            "invalidate",
            "plant",
            "callout",
            "persistent",
        ] {
            assert!(refused(step(&inside, access)), "{who}: {access}: {inside}");
        }
        assert!(step(&inside, "session") > 0, "{who}: {inside}");
        assert_eq!(step(&inside, "found"), 1, "{who}: {inside}");
        assert!(inside.contains("own=ours"), "{who}: its own key: {inside}");
        assert_eq!(step(&inside, "own_invalidate"), 0, "{who}: {inside}");

        // Outside, the key is as its owner left it.
        let after = keys(None, user, &["read", &serial]);
        assert!(after.contains("read=s3cret"), "{who}: {after}");
    }
    record_of(&cg, "key_permission", |r| {
        r["action"] == "deny" && r["target"]["key_access"] == "search"
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

/// `python3 -c RUNNER PROGRAM ARGS...`: joins a session keyring of its own, as a login's
/// `pam_keyinit` gives one, prints its serial and executes PROGRAM with it.
const RUNNER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
print("runner_session=%d" % libc.syscall(250, ctypes.c_long(1), b"runner"), flush=True)
os.execvp(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn a_command_run_confined_has_a_session_keyring_of_its_own() {
    let home = fixture_dir("keyrings-run");
    let policy = policy_file(&home, "keyrings-run", "deny_read: []\n");
    let run = agent_run_command(&[], &policy, &home, &["python3", "-c", KEYS, "session"]);
    let out = Command::new("python3")
        .args(["-c", RUNNER])
        .arg(run.get_program())
        .args(run.get_args())
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let runners_keyring = step(&said, "runner_session");
    assert!(runners_keyring > 0, "{said}");

    // What it adds to @s without making a keyring first (kinit into a KEYRING: cache) it reads
    // back: the keyring is the sandbox's, made after the command was confined, not the runner's.
    assert!(said.contains("own=ours"), "{said}");
    let keyring = step(&said, "session_id");
    assert!(keyring > 0 && keyring != runners_keyring, "{said}");
}
