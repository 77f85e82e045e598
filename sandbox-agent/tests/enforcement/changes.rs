//! Changes tried on files from inside a cgroup (or outside it, to show they work there): each
//! route by which a file, its name, its attributes or its directory can change, by one name.

use std::{collections::BTreeMap, path::Path};

use crate::harness::*;

/// Tries each change named on the command line (`op:path[:path]`) and prints
/// `OK:{"op": errno or 0, ...}`.
const TRY_CHANGES: &str = r#"
import ctypes, fcntl, json, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
def exchange(a, b):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def append(p):
    with open(p, "a") as f:
        f.write("planted\n")
def chattr(p):
    # FS_IOC_GETFLAGS, then FS_IOC_SETFLAGS with FS_NODUMP_FL added (backups skip the file).
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, 0x80086601, struct.pack("l", 0)))[0]
        fcntl.ioctl(fd, 0x40086602, struct.pack("l", flags | 0x40))
    finally:
        os.close(fd)
def create(p):
    with open(p, "x") as f:
        f.write("planted\n")
# security.capability (VFS_CAP_REVISION_2, effective): CAP_SETUID for whoever runs the file.
SETUID_CAP = struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)
# system.posix_acl_access: the owner's bits, nobody (65534) rw, group r, mask rw, other r.
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, uid) for tag, perm, uid in
    [(1, 6, 0xFFFFFFFF), (2, 6, 65534), (4, 4, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF),
     (0x20, 4, 0xFFFFFFFF)])
ops = {
    "append": append,
    "open_w": lambda p: os.close(os.open(p, os.O_WRONLY)),
    "open_rw": lambda p: os.close(os.open(p, os.O_RDWR)),
    # Truncates on Linux though opened for reading: file_open sees no write.
    "open_trunc": lambda p: os.close(os.open(p, os.O_RDONLY | os.O_TRUNC)),
    "create": create,
    "truncate": lambda p: os.truncate(p, 0),
    "unlink": os.unlink,
    "rmdir": os.rmdir,
    "mkdir": os.mkdir,
    "mkfifo": os.mkfifo,
    "rename": os.rename,
    "exchange": exchange,
    "link": os.link,
    "symlink": os.symlink,
    "read": lambda p: open(p).read(),
    "chmod_open": lambda p: os.chmod(p, 0o777),
    # Times set back (utimensat with times), and set to now (utimensat with none: touch).
    "utimes": lambda p: os.utime(p, (0, 0)),
    "touch": lambda p: os.utime(p),
    "chattr": chattr,
    # Taken by root (giving a file to another user is refused under every policy).
    "chown_root": lambda p: os.chown(p, 0, 0),
    "setcap": lambda p: os.setxattr(p, "security.capability", SETUID_CAP),
    "dropcap": lambda p: os.removexattr(p, "security.capability"),
    "user_xattr": lambda p: os.setxattr(p, "user.planted", b"1"),
    "acl": lambda p: os.setxattr(p, "system.posix_acl_access", ACL),
}
result = {}
for arg in sys.argv[1:]:
    name, op, *paths = arg.split(":")
    try:
        ops[op](*paths)
        result[name] = 0
    except OSError as e:
        result[name] = e.errno
print("OK:" + json.dumps(result), end="")
"#;

/// Runs `tries` (name, op, paths) inside `cg` (outside with None); returns the errno (0 for success) of each.
pub fn try_changes(cg: Option<&Cgroup>, tries: &[(&str, &str, &[&Path])]) -> BTreeMap<String, i32> {
    let args = change_args(tries);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let json = probe(cg, TRY_CHANGES, &args).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// `try_changes` inside `cg` by the ordinary user (uid 1000).
pub fn try_changes_as_user(cg: &Cgroup, tries: &[(&str, &str, &[&Path])]) -> BTreeMap<String, i32> {
    let args = change_args(tries);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let json = probe_as_user(cg, TRY_CHANGES, &args).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Each try as the script's `name:op:path[:path]` argument.
fn change_args(tries: &[(&str, &str, &[&Path])]) -> Vec<String> {
    tries
        .iter()
        .map(|(name, op, paths)| {
            let mut arg = format!("{name}:{op}");
            for p in *paths {
                arg.push(':');
                arg.push_str(p.to_str().unwrap());
            }
            arg
        })
        .collect()
}

/// Prints `OK:<mode> <uid> <security.capability> <ACL> <user.planted>` of argv[1], each
/// extended attribute in hex or "none".
const FILE_STATE: &str = r#"
import os, sys
st = os.stat(sys.argv[1])
def xattr(name):
    try:
        return os.getxattr(sys.argv[1], name).hex()
    except OSError:
        return "none"
print("OK:%o %d %s %s %s" % (st.st_mode, st.st_uid, xattr("security.capability"),
      xattr("system.posix_acl_access"), xattr("user.planted")), end="")
"#;

/// What an unconfined process would later see of a file: mode, owner and the extended
/// attributes the change routes set.
pub fn file_state(path: &Path) -> String {
    probe(None, FILE_STATE, &[path.to_str().unwrap()]).unwrap()
}

/// Asserts every try in `results` failed with EPERM except those in `allowed`, which succeeded.
pub fn assert_only_allowed(results: &BTreeMap<String, i32>, allowed: &[&str]) {
    for (name, errno) in results {
        let want = if allowed.contains(&name.as_str()) {
            0
        } else {
            EPERM
        };
        assert_eq!(*errno, want, "{name}: {results:?}");
    }
}
