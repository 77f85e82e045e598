//! A confined root works as itself and as the sandbox's user (the owner of `~`), and as no one
//! else: another user's files stay as closed to it as to anyone (no read, list, read-write
//! open, `chmod`, `chown` or sticky-directory delete past their permissions), and it cannot
//! become another user or group instead. Its own files and the sandbox user's stay its to use;
//! a policy that gives a capability back gets it whole; outside, root reaches everything.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{filesystems::step, harness::*};

/// Another user: no account needed, only files.
const BOB: u32 = 1001;

/// `python3 -c PROBE BOB_DIR SHARED ROOTS USERS UID`: one `<step>=<errno>` line per attempt (0
/// when it worked). The id changes run in a child each, so the probe keeps its own; the
/// attribute changes set what is already there, so a change that works changes nothing.
const PROBE: &str = r#"
import ctypes, fcntl, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
bob, shared, roots, users, other = sys.argv[1:6]
other = int(other)
def setfsuid():
    libc.setfsuid(other)
    if libc.setfsuid(-1) != other:
        raise OSError(1, "setfsuid")
ticket = shared + "/ticket"
step("read", lambda: open(bob + "/key").read())
step("list", lambda: os.listdir(bob))
step("create_in", lambda: open(bob + "/planted", "w").close())
step("rdwr", lambda: os.close(os.open(ticket, os.O_RDWR)))
# The same mode and owner again: refused without changing anything, allowed without either.
step("chmod", lambda: os.chmod(ticket, 0o600))
step("chown", lambda: os.chown(ticket, other, other))
st = os.stat(ticket)
step("times", lambda: os.utime(ticket, ns=(st.st_atime_ns, st.st_mtime_ns)))
def lease():
    # A read lease on Bob's readable file, given up at once.
    fd = os.open(shared + "/notice", os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)
step("lease", lease)
# The POSIX ACL that says what mode 0600 says (owner rw, group and others nothing).
acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xffffffff)
                                      for tag, perm in [(1, 6), (4, 0), (0x20, 0)])
step("acl", lambda: os.setxattr(ticket, "system.posix_acl_access", acl))
# A new file of the prober's own, given away: to the user, to the group.
gift = "%s/gift-%d" % (shared, os.getpid())
open(gift, "w").close()
step("give", lambda: os.chown(gift, other, -1))
step("give_group", lambda: os.chown(gift, -1, other))
step("roots", lambda: open(roots).read())
step("users", lambda: open(users).read())
step("users_chown", lambda: os.chown(users, os.stat(users).st_uid, os.stat(users).st_gid))
def claim(uid, gid):
    # A message whose credentials (SCM_CREDENTIALS) name uid and gid, which its receiver
    # believes: ids other than the sender's own need SETUID or SETGID.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        creds = struct.pack("iII", os.getpid(), uid, gid)
        a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
    finally:
        a.close()
        b.close()
step("claim_uid", lambda: claim(other, os.getgid()))
step("claim_gid", lambda: claim(os.getuid(), other))
step("claim_own", lambda: claim(os.getuid(), os.getgid()))
in_child("setuid", lambda: os.setuid(other))
in_child("setresuid", lambda: os.setresuid(-1, -1, other))
in_child("setfsuid", setfsuid)
in_child("setgid", lambda: os.setgid(other))
in_child("setgroups", lambda: os.setgroups([other]))
"#;

/// Bob's private directory and key, a sticky shared directory (a third user's, as `/tmp` is
/// root's) with Bob's ticket and a notice of his anyone may read, a file only root may read
/// and one only the ordinary user may,
/// all below `dir`.
struct Files {
    bob: String,
    shared: String,
    roots: String,
    users: String,
}

fn files(dir: &Path) -> Files {
    let owned = |path: &Path, uid: u32, mode: u32| {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let bob = dir.join("bob");
    write(&bob.join("key"), "bob's key");
    owned(&bob.join("key"), BOB, 0o600);
    owned(&bob, BOB, 0o700);
    let shared = dir.join("shared");
    write(&shared.join("ticket"), "bob's ticket");
    owned(&shared.join("ticket"), BOB, 0o600);
    write(&shared.join("notice"), "bob's, for everyone to read");
    owned(&shared.join("notice"), BOB, 0o644);
    // A third user's: root's own sticky directory is `owning_tmp_gives_a_confined_root_...`'s.
    owned(&shared, BOB + 1, 0o1777);
    let roots = dir.join("roots");
    write(&roots, "root's own");
    owned(&roots, 0, 0o600);
    let users = dir.join("users");
    write(&users, "the user's own");
    owned(&users, USER_UID, 0o600);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    Files {
        bob: s(&bob),
        shared: s(&shared),
        roots: s(&roots),
        users: s(&users),
    }
}

/// A sandbox named `name` with the policy `body`, whose user is `uid`: its `~` is a directory
/// of `dir` that `uid` owns.
fn sandbox_for(dir: &Path, name: &str, body: &str, uid: u32) -> Cgroup {
    let home = dir.join(format!("{name}-home"));
    std::fs::create_dir(&home).unwrap();
    give_to(uid, &home);
    let cg = Cgroup::new(name);
    attach(&cg, &policy_file(dir, name, body), &home);
    cg
}

fn probe(cg: Option<&Cgroup>, user: bool, f: &Files, other: u32) -> String {
    let other = other.to_string();
    let args = [&f.bob, &f.shared, &f.roots, &f.users, &other];
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    steps_as(cg, user, PROBE, &args)
}

/// Asserts each of `steps` ended with `errno` (0: it worked).
fn assert_steps(out: &str, steps: &[&str], errno: i32, who: &str) {
    for s in steps {
        assert_eq!(step(out, s), errno, "{who}: {s}: {out}");
    }
}

const BOBS_FILES: [&str; 4] = ["read", "list", "create_in", "rdwr"];
const BOBS_ATTRIBUTES: [&str; 6] = ["chmod", "chown", "times", "acl", "give", "give_group"];
const IDS: [&str; 5] = ["setuid", "setresuid", "setfsuid", "setgid", "setgroups"];
/// Credentials a message claims: another uid, another gid.
const CLAIMS: [&str; 2] = ["claim_uid", "claim_gid"];

#[test]
fn a_confined_root_takes_no_other_users_files_or_ids() {
    let dir = fixture_dir("other-users");
    let f = files(&dir);
    // A sandbox whose user is root (its `~` is root's), and one whose user is the ordinary
    // user (its `~` is theirs).
    let cg = sandbox_for(&dir, "other-users", "", 0);
    let for_user = sandbox_for(&dir, "other-users-for-user", "", USER_UID);

    // Outside, root reaches everything and becomes anyone.
    let outside = probe(None, false, &f, BOB);
    assert_steps(&outside, &BOBS_FILES, 0, "outside");
    assert_steps(&outside, &BOBS_ATTRIBUTES, 0, "outside");
    assert_steps(&outside, &["roots", "users", "users_chown"], 0, "outside");
    assert_steps(&outside, &IDS, 0, "outside");
    assert_steps(&outside, &CLAIMS, 0, "outside");
    std::fs::remove_file(Path::new(&f.bob).join("planted")).unwrap();

    // Inside, Bob's files are as closed to root as to anyone, and root becomes no one else;
    // its own file stays its own. The ordinary user's file is another user's here too.
    let inside = probe(Some(&cg), false, &f, BOB);
    assert_steps(&inside, &BOBS_FILES, libc::EACCES, "root");
    assert_steps(&inside, &BOBS_ATTRIBUTES, libc::EPERM, "root");
    assert_steps(&outside, &["lease"], 0, "outside");
    assert_steps(&inside, &["lease"], libc::EACCES, "root");
    assert_steps(&inside, &["roots"], 0, "root");
    assert_steps(&inside, &["users"], libc::EACCES, "root");
    assert_steps(&inside, &IDS, libc::EPERM, "root");
    assert_steps(&inside, &CLAIMS, libc::EPERM, "root");
    assert_steps(&inside, &["claim_own"], 0, "root");
    assert!(!Path::new(&f.bob).join("planted").exists());
    record_of(&cg, "capable", |r| {
        r["action"] == "deny" && r["target"]["capability"] == "DAC_OVERRIDE"
    });
    record_of(&cg, "task_fix_setuid", |r| {
        r["action"] == "deny" && r["target"]["capability"] == "SETUID"
    });
    record_of(&cg, "capable", |r| {
        r["action"] == "deny" && r["target"]["capability"] == "SETUID"
    });
    // A confined ordinary user was never let in anyway.
    let user = probe(Some(&cg), true, &f, BOB);
    assert_steps(&user, &BOBS_FILES, libc::EACCES, "user");
    assert_steps(&user, &IDS, libc::EPERM, "user");
    assert_steps(&user, &CLAIMS, libc::EPERM, "user");
    assert_steps(&user, &["claim_own"], 0, "user");

    // Where the sandbox's user is the ordinary user, root reaches that user's files and ids,
    // and still no one else's.
    let inside = probe(Some(&for_user), false, &f, USER_UID);
    assert_steps(
        &inside,
        &["roots", "users", "users_chown", "give", "give_group"],
        0,
        "root for the user",
    );
    assert_steps(&inside, &IDS, 0, "root for the user");
    // Credentials a message claims are only ever the sender's own: the claimed ids cannot
    // be read where the kernel asks, so even the sandbox user's are refused.
    assert_steps(&inside, &CLAIMS, libc::EPERM, "root for the user");
    assert_steps(&inside, &BOBS_FILES, libc::EACCES, "root for the user");
    let inside = probe(Some(&for_user), false, &f, BOB);
    assert_steps(
        &inside,
        &IDS,
        libc::EPERM,
        "root for the user, becoming Bob",
    );
    assert_steps(
        &inside,
        &["give", "give_group"],
        libc::EPERM,
        "root for the user, giving to Bob",
    );

    // Nor does root delete Bob's ticket from the sticky directory.
    let out = cg.run(&["rm", "-f", &format!("{}/ticket", f.shared)]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(Path::new(&f.shared).join("ticket").exists());

    // After detach, root reaches Bob's files again.
    detach(&cg);
    let after = probe(Some(&cg), false, &f, BOB);
    assert_steps(&after, &["read", "list", "rdwr"], 0, "after detach");
}

#[test]
fn a_policy_that_gives_a_narrowed_capability_back_gives_it_whole() {
    let dir = fixture_dir("other-users-back");
    let f = files(&dir);
    let body = "capabilities:\n  allow: [DAC_OVERRIDE, SETUID]\n";
    let cg = sandbox_for(&dir, "other-users-back", body, 0);
    let inside = probe(Some(&cg), false, &f, BOB);
    assert_steps(&inside, &["read", "list", "rdwr", "users"], 0, "given back");
    assert_steps(
        &inside,
        &["setuid", "setresuid", "setfsuid", "claim_uid"],
        0,
        "given back",
    );
    // What was not given back stays narrowed.
    assert_steps(&inside, &BOBS_ATTRIBUTES, libc::EPERM, "not given back");
    assert_steps(
        &inside,
        &["setgid", "setgroups", "claim_gid"],
        libc::EPERM,
        "not given back",
    );
}

/// `python3 -c SETID DIR`: makes the program DIR/prog run as its owner or its group, by
/// `chmod` and by creating a new file with such a mode (`open(O_CREAT)`, `mknod`, a nameless
/// `O_TMPFILE` given a name by `linkat`); plain
/// modes and a set-group-ID directory, which runs nothing, for comparison.
const SETID: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
n = os.getpid()
step("chmod_setuid", lambda: os.chmod(d + "/prog", 0o4755))
step("chmod_setgid", lambda: os.chmod(d + "/prog", 0o2755))
step("create_setuid", lambda: os.close(os.open("%s/new-%d" % (d, n), os.O_CREAT | os.O_WRONLY, 0o4755)))
step("mknod_setgid", lambda: os.mknod("%s/node-%d" % (d, n), 0o100000 | 0o2755))
def tmpfile_setuid():
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o4755)
    try:
        # linkat(AT_SYMLINK_FOLLOW) through /proc: Python's os.link calls link(2), which
        # would link the /proc symlink itself.
        src = ("/proc/self/fd/%d" % fd).encode()
        dst = ("%s/tmp-%d" % (d, n)).encode()
        if libc.linkat(-100, src, -100, dst, 0x400) != 0:
            raise OSError(ctypes.get_errno(), "linkat")
    finally:
        os.close(fd)
step("tmpfile_setuid", tmpfile_setuid)
step("chmod_plain", lambda: os.chmod(d + "/prog", 0o755))
step("chmod_setgid_dir", lambda: os.chmod(d + "/shared", 0o2775))
print("setid_bits=%o" % (os.stat(d + "/prog").st_mode & 0o6000))
"#;

const SETID_PROGRAMS: [&str; 5] = [
    "chmod_setuid",
    "chmod_setgid",
    "create_setuid",
    "mknod_setgid",
    "tmpfile_setuid",
];

#[test]
fn no_setuid_or_setgid_program_is_made_inside() {
    let dir = fixture_dir("setid");
    let cg = Cgroup::new("setid");
    attach(&cg, &policy_file(&dir, "setid", ""), &dir);
    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        // The mover's own directory, program and shared directory.
        let own = dir.join(who);
        write(&own.join("prog"), "#!/bin/sh\nid -u\n");
        std::fs::create_dir_all(own.join("shared")).unwrap();
        if user {
            give_to(USER_UID, &own);
        }
        let d = own.to_str().unwrap();
        let outside = steps_as(None, user, SETID, &[d]);
        assert_steps(&outside, &SETID_PROGRAMS, 0, &format!("{who} outside"));
        let inside = steps_as(Some(&cg), user, SETID, &[d]);
        assert_steps(&inside, &SETID_PROGRAMS, libc::EPERM, who);
        assert_steps(&inside, &["chmod_plain", "chmod_setgid_dir"], 0, who);
        assert_eq!(step(&inside, "setid_bits"), 0, "{who}: {inside}");
    }
    record_of(&cg, "path_chmod", |r| {
        r["action"] == "deny" && r["target"]["capability"] == "SETUID"
    });
    record_of(&cg, "path_mknod", |r| {
        r["action"] == "deny" && r["target"]["capability"] == "SETGID"
    });
}

/// `python3 -c STICKY TMP ELSEWHERE`: what owning `TMP` (a sticky world-writable directory,
/// as `/tmp` is root's) would let its owner do to Bob's entries there (`bob-*`), to `TMP`
/// itself and to the shared directories in it (`shared-*`), and the plants it would leave
/// there, which every user trusts (`fs.protected_symlinks` follows the owner's symlinks,
/// `fs.protected_regular` and `protected_fifos` let `O_CREAT` open the owner's files and
/// FIFOs); ELSEWHERE is a plain directory for the prober's own files. For the plants the
/// umask is 0, so a file gets the mode it is made with.
const STICKY: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
tmp, elsewhere = sys.argv[1:3]
n = os.getpid()
def create(path, mode):
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
def acl(user, group, other):
    # A POSIX ACL with only the entries a mode has (so setting it sets the mode).
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xffffffff)
        for tag, perm in [(1, user), (4, group), (0x20, other)])
def linkat(src, dst):
    # linkat(2) without AT_SYMLINK_FOLLOW links a symlink itself.
    if libc.linkat(-100, src.encode(), -100, dst.encode(), 0) != 0:
        raise OSError(ctypes.get_errno(), "linkat")
mine = "%s/mine-%d" % (tmp, n)
open(mine, "w").close()
step("unlink", lambda: os.unlink(tmp + "/bob-unlink"))
step("rmdir", lambda: os.rmdir(tmp + "/bob-rmdir"))
step("rename_away", lambda: os.rename(tmp + "/bob-rename", "%s/taken-%d" % (tmp, n)))
step("rename_over", lambda: os.rename(mine, tmp + "/bob-over"))
step("hardlink", lambda: linkat(tmp + "/bob-link", "%s/bobs-%d" % (tmp, n)))
step("symlink", lambda: os.symlink("/etc/hostname", "%s/sl-%d" % (tmp, n)))
made = "%s/sl-%d" % (elsewhere, n)
step("symlink_elsewhere", lambda: os.symlink("/etc/hostname", made))
step("symlink_moved_in", lambda: os.rename(made, "%s/moved-%d" % (tmp, n)))
kept = made + "-kept"
os.symlink("/etc/hostname", kept)
step("symlink_linked_in", lambda: linkat(kept, "%s/linked-%d" % (tmp, n)))
own = "%s/own-%d" % (tmp, n)
open(own, "w").close()
# A second name elsewhere for its own file there (one there is a plant: below).
step("own_link", lambda: linkat(own, "%s/own-link-%d" % (elsewhere, n)))
step("own_unlink", lambda: os.unlink(own))
# The shared directory itself: its mode, owner and ACL set again as they are, and shared
# directories in it removed and renamed away.
st = os.stat(tmp)
step("chmod_shared", lambda: os.chmod(tmp, st.st_mode & 0o7777))
step("chown_shared", lambda: os.chown(tmp, st.st_uid, st.st_gid))
step("acl_shared", lambda: os.setxattr(tmp, "system.posix_acl_access", acl(7, 7, 7)))
step("rmdir_shared", lambda: os.rmdir(tmp + "/shared-rmdir"))
step("rename_shared", lambda: os.rename(tmp + "/shared-rename", "%s/gone-%d" % (tmp, n)))
# Files and FIFOs others may write, made there, opened up there, moved or linked in.
os.umask(0)
step("plant_file", lambda: create("%s/plant-%d" % (tmp, n), 0o666))
step("plant_fifo", lambda: os.mkfifo("%s/fifo-%d" % (tmp, n), 0o622))
private = "%s/private-%d" % (tmp, n)
step("own_private", lambda: create(private, 0o644))
os.umask(0o022)
step("own_umask", lambda: create("%s/umask-%d" % (tmp, n), 0o666))
os.umask(0)
step("plant_chmod", lambda: os.chmod(private, 0o666))
step("plant_acl", lambda: os.setxattr(private, "system.posix_acl_access", acl(6, 4, 6)))
loose = "%s/loose-%d" % (elsewhere, n)
create(loose, 0o666)
step("plant_moved_in", lambda: os.rename(loose, "%s/moved-file-%d" % (tmp, n)))
kept_file = "%s/kept-file-%d" % (elsewhere, n)
create(kept_file, 0o600)
step("plant_linked_in", lambda: linkat(kept_file, "%s/linked-file-%d" % (tmp, n)))
# A second name elsewhere for its file there, opened up under that name.
alias = "%s/alias-%d" % (elsewhere, n)
step("own_alias", lambda: linkat(private, alias))
step("plant_chmod_alias", lambda: os.chmod(alias, 0o666))
"#;

/// Bob's entries of `tmp` for `STICKY`, made again before each run (a run that works
/// removes them).
fn bobs_entries(tmp: &Path) {
    for name in ["bob-unlink", "bob-rename", "bob-over", "bob-link"] {
        let path = tmp.join(name);
        write(&path, "bob's");
        std::os::unix::fs::chown(&path, Some(BOB), Some(BOB)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let dir = tmp.join("bob-rmdir");
    let _ = std::fs::create_dir(&dir);
    std::os::unix::fs::chown(&dir, Some(BOB), Some(BOB)).unwrap();
    for name in ["shared-rmdir", "shared-rename"] {
        let _ = std::fs::create_dir(tmp.join(name));
        std::fs::set_permissions(tmp.join(name), std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
}

const BOBS_ENTRIES: [&str; 5] = ["unlink", "rmdir", "rename_away", "rename_over", "hardlink"];
const PLANTED_SYMLINKS: [&str; 3] = ["symlink", "symlink_moved_in", "symlink_linked_in"];
const SHARED_DIRECTORY: [&str; 5] = [
    "chmod_shared",
    "chown_shared",
    "acl_shared",
    "rmdir_shared",
    "rename_shared",
];
const PLANTED_FILES: [&str; 6] = [
    "plant_file",
    "plant_fifo",
    "plant_chmod",
    "plant_acl",
    "plant_moved_in",
    "plant_linked_in",
];
const OWN_FILES: [&str; 3] = ["own_private", "own_umask", "own_alias"];

#[test]
fn owning_tmp_gives_a_confined_root_nothing_over_other_users() {
    let dir = fixture_dir("sticky");
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
    let args = [tmp.to_str().unwrap(), elsewhere.to_str().unwrap()];
    let cg = sandbox_for(&dir, "sticky", "", 0);

    // Outside, root removes, replaces and links Bob's entries as the directory's owner,
    // changes the directory and removes shared ones, and its symlinks, files and FIFOs there
    // are trusted by everyone.
    bobs_entries(&tmp);
    let outside = steps_as(None, false, STICKY, &args);
    assert_steps(&outside, &BOBS_ENTRIES, 0, "root outside");
    assert_steps(&outside, &PLANTED_SYMLINKS, 0, "root outside");
    assert_steps(&outside, &SHARED_DIRECTORY, 0, "root outside");
    assert_steps(&outside, &PLANTED_FILES, 0, "root outside");
    assert_steps(&outside, &OWN_FILES, 0, "root outside");
    assert_eq!(
        step(&outside, "plant_chmod_alias"),
        0,
        "root outside: {outside}"
    );

    // Inside, none of it; its own entries stay its own, and so do its files there that only
    // it may write (made with the umask taking the others' write away, as `>` does).
    nothing_over_other_users(&cg, &tmp, &elsewhere, "tmpfs");
    for hook in ["path_unlink", "path_symlink", "path_mknod", "path_chmod"] {
        record_of(&cg, hook, |r| {
            r["action"] == "deny" && r["target"]["capability"] == "FOWNER"
        });
    }

    // A confined user, who does not own the directory, was never let near Bob's entries or
    // the directory, and its symlinks, files and FIFOs there are trusted by itself only: they
    // stay allowed. Where a file's other names are is not known, so opening up one with
    // several is refused to every confined task.
    bobs_entries(&tmp);
    let user = steps_as(Some(&cg), true, STICKY, &args);
    assert_steps(&user, &BOBS_ENTRIES, EPERM, "user");
    assert_steps(&user, &SHARED_DIRECTORY, EPERM, "user");
    assert_steps(&user, &PLANTED_SYMLINKS, 0, "user");
    assert_steps(&user, &PLANTED_FILES, 0, "user");
    assert_steps(&user, &OWN_FILES, 0, "user");
    assert_eq!(step(&user, "plant_chmod_alias"), EPERM, "user: {user}");

    // The same on disk filesystems, which keep a directory's ACLs on disk and read them when
    // first asked.
    for kind in ["ext4", "xfs", "btrfs"] {
        let base = crate::filesystems::mounted(kind);
        let tmp = crate::filesystems::dir_on(base, "sticky");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let elsewhere = crate::filesystems::dir_on(base, "sticky-elsewhere");
        nothing_over_other_users(&cg, &tmp, &elsewhere, kind);
    }
    // And through an overlay (a container's `/tmp`): the shared directory in its lower layer
    // on ext4, copied up to the upper layer on tmpfs when Bob's entries are made in it.
    let lower = crate::filesystems::dir_on(crate::filesystems::mounted("ext4"), "sticky-lower");
    std::fs::create_dir_all(lower.join("tmp")).unwrap();
    std::fs::set_permissions(lower.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let merged = crate::mounted_below::overlay_of(&lower, &dir);
    let elsewhere = merged.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
    nothing_over_other_users(&cg, &merged.join("tmp"), &elsewhere, "overlay");
    let _ = Command::new("umount").arg(&merged).status();
}

/// `python3 -c OPENED_OUTSIDE FILE [CGROUP]`: opens FILE, moves itself into CGROUP when one is
/// given (a descriptor opened outside and handed in), then changes the file's mode through
/// the descriptor (`fchmod`, decided on the file's path as `chmod` is).
const OPENED_OUTSIDE: &str = r#"
import sys
fd = os.open(sys.argv[1], os.O_RDONLY)
if len(sys.argv) > 2:
    with open(sys.argv[2] + "/cgroup.procs", "w") as f:
        f.write("0")
step("open_up", lambda: os.fchmod(fd, 0o666))
step("narrow", lambda: os.fchmod(fd, 0o600))
"#;

#[test]
fn a_descriptor_opened_outside_opens_up_no_file_in_a_shared_directory() {
    let dir = fixture_dir("sticky-fd");
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let plant = tmp.join("plant");
    std::fs::write(&plant, "p").unwrap();
    let cg = sandbox_for(&dir, "sticky-fd", "", 0);
    let path = plant.to_str().unwrap();

    let outside = steps_as(None, false, OPENED_OUTSIDE, &[path]);
    assert_steps(&outside, &["open_up", "narrow"], 0, "root outside");
    std::fs::set_permissions(&plant, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cgroup = cg.path.to_str().unwrap();
    let handed_in = steps_as(None, false, OPENED_OUTSIDE, &[path, cgroup]);
    assert_steps(&handed_in, &["open_up"], EPERM, "root, handed in");
    assert_steps(&handed_in, &["narrow"], 0, "root, handed in");
    let mode = std::fs::metadata(&plant).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{handed_in}");
}

/// Runs `STICKY` in `cg` as root on `tmp` (a root-owned 1777 directory, on `fs`) with Bob's
/// entries made again: every step over Bob's entries, the directory and trusted plants is
/// refused, the prober's own entries are made, and nothing of Bob's or of the directory
/// changed.
fn nothing_over_other_users(cg: &Cgroup, tmp: &Path, elsewhere: &Path, fs: &str) {
    bobs_entries(tmp);
    let args = [tmp.to_str().unwrap(), elsewhere.to_str().unwrap()];
    let inside = steps_as(Some(cg), false, STICKY, &args);
    let root = format!("root on {fs}");
    assert_steps(&inside, &BOBS_ENTRIES, EPERM, &root);
    assert_steps(&inside, &PLANTED_SYMLINKS, EPERM, &root);
    assert_steps(&inside, &SHARED_DIRECTORY, EPERM, &root);
    assert_steps(&inside, &PLANTED_FILES, EPERM, &root);
    assert_steps(&inside, &["plant_chmod_alias"], EPERM, &root);
    assert_steps(&inside, &OWN_FILES, 0, &root);
    assert_steps(
        &inside,
        &["symlink_elsewhere", "own_link", "own_unlink"],
        0,
        &root,
    );
    for name in ["bob-unlink", "bob-rmdir", "bob-rename", "bob-over"] {
        assert!(tmp.join(name).exists(), "{fs}: {name} is gone: {inside}");
    }
    for name in ["shared-rmdir", "shared-rename"] {
        assert!(tmp.join(name).is_dir(), "{fs}: {name} is gone: {inside}");
    }
    let mode = std::fs::metadata(tmp).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o7777,
        0o1777,
        "{fs}: the directory's mode changed: {inside}"
    );
}

/// A group the ordinary user is a member of, for the groups test, and one it is not.
const USERS_GROUP: u32 = 4300;
const NOT_USERS_GROUP: u32 = 4301;

/// The host's account databases with the ordinary user (named `sbxuser` when the host has no
/// account with its uid) a member of `USERS_GROUP`, bound over `/etc/passwd` and `/etc/group`
/// while it lives. Its name is the user's.
struct Accounts {
    name: String,
    files: Vec<PathBuf>,
}

impl Accounts {
    fn with_users_group(dir: &Path) -> Self {
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let named = passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 2 && f[2] == USER_UID.to_string()).then(|| f[0].to_string())
        });
        let name = named.unwrap_or_else(|| {
            passwd.push_str(&format!(
                "sbxuser:x:{USER_UID}:{USER_GID}::/nonexistent:/bin/sh\n"
            ));
            "sbxuser".to_string()
        });
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        group.push_str(&format!(
            "sbxgroup:x:{USERS_GROUP}:{name}\nsbxother:x:{NOT_USERS_GROUP}:\n"
        ));
        let mut files = Vec::new();
        for (file, text) in [("passwd", passwd), ("group", group)] {
            let copy = dir.join(file);
            std::fs::write(&copy, text).unwrap();
            let target = Path::new("/etc").join(file);
            let out = Command::new("mount")
                .arg("--bind")
                .arg(&copy)
                .arg(&target)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            files.push(target);
        }
        Accounts { name, files }
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = Command::new("umount").arg(file).status();
        }
    }
}

/// `python3 -c JOIN GID`: in a child each, takes GID as its supplementary group (`setgroups`,
/// as `su` and `sudo -u` do) and as its group (`setgid`).
const JOIN: &str = r#"
import os, sys
gid = int(sys.argv[1])
in_child("setgroups", lambda: os.setgroups([gid]))
in_child("setgid", lambda: os.setgid(gid))
"#;

#[test]
fn a_confined_root_becomes_the_sandbox_user_with_the_users_groups() {
    let dir = fixture_dir("user-groups");
    let accounts = Accounts::with_users_group(&dir);
    // Attached once the account databases say which groups the user has.
    let for_user = sandbox_for(&dir, "user-groups", "", USER_UID);
    let for_root = sandbox_for(&dir, "user-groups-root", "", 0);
    let join = |cg: Option<&Cgroup>, gid: u32| steps_as(cg, false, JOIN, &[&gid.to_string()]);
    let steps = ["setgroups", "setgid"];

    // Outside, root takes any group.
    for gid in [USERS_GROUP, NOT_USERS_GROUP] {
        assert_steps(&join(None, gid), &steps, 0, "outside");
    }
    // Inside a sandbox whose user is the ordinary user, root takes the user's groups (su and
    // sudo -u to the user work), and still no other group.
    assert_steps(
        &join(Some(&for_user), USERS_GROUP),
        &steps,
        0,
        "the user's group",
    );
    assert_steps(
        &join(Some(&for_user), NOT_USERS_GROUP),
        &steps,
        EPERM,
        "another group",
    );
    let name = accounts.name.as_str();
    let out = for_user.run(&[
        "setpriv",
        &format!("--reuid={name}"),
        &format!("--regid={name}"),
        "--init-groups",
        "id",
        "-G",
    ]);
    assert!(out.status.success(), "setpriv: {}", stderr(&out));
    let groups = stdout(&out);
    assert!(
        groups
            .split_whitespace()
            .any(|g| g == USERS_GROUP.to_string()),
        "{groups}"
    );
    // Where the sandbox's user is root, the user's groups are another user's.
    assert_steps(
        &join(Some(&for_root), USERS_GROUP),
        &steps,
        EPERM,
        "the user's group, for root",
    );
    drop(accounts);
}
