//! A confined root changes nothing on the kernel's own filesystems (cgroupfs and bpffs here;
//! sysfs and the others share the rule, see confined_root) by any route: opening for writing or
//! truncating, truncate, chmod, chown, extended attributes, mkdir, rmdir, rename, symlink,
//! unlink; no child is made straight into another cgroup; a writable descriptor of a cgroup
//! file handed in from outside does not arrive. Every route works outside, so each EPERM is the
//! enforcer's.

use std::path::{Path, PathBuf};

use crate::{changes::*, harness::*};

/// What the routes act on: a cgroup with a child, a bpffs directory with a subdirectory and a
/// symlink, all made outside.
struct Targets {
    cgroup: Cgroup,
    child: PathBuf,
    bpf: PathBuf,
}

impl Targets {
    fn new(name: &str) -> Self {
        let cgroup = Cgroup::new(name);
        let child = cgroup.path.join("child");
        std::fs::create_dir(&child).unwrap();
        let bpf = PathBuf::from(format!("/sys/fs/bpf/enf-{name}-{}", std::process::id()));
        std::fs::create_dir_all(bpf.join("dir")).unwrap();
        std::os::unix::fs::symlink("x", bpf.join("link")).unwrap();
        Targets { cgroup, child, bpf }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.cgroup.path.join(name)
    }

    /// Each route, by name, with what it acts on.
    fn routes(&self) -> Vec<(&'static str, &'static str, Vec<PathBuf>)> {
        let (procs, depth) = (self.file("cgroup.procs"), self.file("cgroup.max.depth"));
        vec![
            ("open_write", "open_w", vec![procs.clone()]),
            ("open_truncate", "open_trunc", vec![depth.clone()]),
            ("truncate", "truncate", vec![depth]),
            ("chmod", "chmod_open", vec![procs.clone()]),
            ("chown", "chown_root", vec![procs.clone()]),
            ("utimes", "utimes", vec![procs]),
            ("xattr", "user_xattr", vec![self.cgroup.path.clone()]),
            ("mkdir", "mkdir", vec![self.file("made")]),
            ("rmdir", "rmdir", vec![self.child.clone()]),
            ("bpf_mkdir", "mkdir", vec![self.bpf.join("made")]),
            (
                "bpf_rename",
                "rename",
                vec![self.bpf.join("dir"), self.bpf.join("moved")],
            ),
            (
                "bpf_symlink",
                "symlink",
                vec![PathBuf::from("x"), self.bpf.join("planted")],
            ),
            ("bpf_unlink", "unlink", vec![self.bpf.join("link")]),
        ]
    }

    fn try_all(&self, cg: Option<&Cgroup>) -> std::collections::BTreeMap<String, i32> {
        let routes = self.routes();
        let paths: Vec<Vec<&Path>> = routes
            .iter()
            .map(|(_, _, p)| p.iter().map(PathBuf::as_path).collect())
            .collect();
        let tries: Vec<(&str, &str, &[&Path])> = routes
            .iter()
            .zip(&paths)
            .map(|((name, op, _), p)| (*name, *op, p.as_slice()))
            .collect();
        try_changes(cg, &tries)
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.cgroup.path.join("made"));
        let _ = std::fs::remove_dir(&self.child);
        let _ = std::fs::remove_dir_all(&self.bpf);
    }
}

fn self_protection(r: &serde_json::Value) -> bool {
    r["action"] == "deny"
        && r["rule"]
            .as_str()
            .is_some_and(|s| s.starts_with("self-protection"))
}

fn confined_root(name: &str) -> Cgroup {
    let home = fixture_dir(name);
    let policy = policy_file(&home, name, "deny_read: []\n");
    let cg = Cgroup::new(name);
    attach(&cg, &policy, &home);
    cg
}

#[test]
fn no_route_changes_cgroupfs_or_bpffs_from_a_confined_root_and_every_route_works_outside() {
    let cg = confined_root("kfs-routes");
    let inside = Targets::new("kfs-inside");
    let outside = Targets::new("kfs-outside");
    let listing = |t: &Targets| {
        let mut names: Vec<_> = std::fs::read_dir(&t.bpf)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        (names, t.child.exists(), file_state(&t.file("cgroup.procs")))
    };
    let before = listing(&inside);

    let denied = inside.try_all(Some(&cg));
    assert_only_allowed(&denied, &[]);
    assert_eq!(listing(&inside), before, "a kernel filesystem changed");
    assert!(!inside.file("made").exists());
    for hook in ["file_open", "path_mkdir", "path_chmod", "inode_setxattr"] {
        record_of(&cg, hook, self_protection);
    }

    let routes: Vec<&str> = outside.routes().iter().map(|(name, ..)| *name).collect();
    assert_only_allowed(&outside.try_all(None), &routes);
}

/// clone3(CLONE_INTO_CGROUP) into the cgroup directory argv[1]: OK:<child pid> or ERR:<errno>.
const CLONE_INTO_CGROUP: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
# struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal (SIGCHLD), stack,
# stack_size, tls, set_tid, set_tid_size, cgroup.
args = struct.pack("<11Q", 0x200000000, 0, 0, 0, 17, 0, 0, 0, 0, 0, fd)
buf = ctypes.create_string_buffer(args, len(args))
pid = libc.syscall(435, buf, len(args))
if pid == 0:
    os._exit(0)
if pid < 0:
    print("ERR:%d" % ctypes.get_errno(), end="")
else:
    os.waitpid(pid, 0)
    print("OK:%d" % pid, end="")
"#;

#[test]
fn no_child_is_made_straight_into_another_cgroup() {
    let cg = confined_root("kfs-clone3");
    let elsewhere = Cgroup::new("kfs-clone3-target");
    let target = elsewhere.path.to_str().unwrap();

    assert_eq!(cg.probe(CLONE_INTO_CGROUP, &[target]), Err(EPERM));
    record_of(&cg, "task_alloc", self_protection);

    let outside = probe(None, CLONE_INTO_CGROUP, &[target]);
    assert!(outside.is_ok(), "clone3 into a cgroup outside: {outside:?}");
}

#[test]
fn a_writable_cgroup_file_handed_in_from_outside_does_not_arrive() {
    let cg = confined_root("kfs-fd");
    let elsewhere = Cgroup::new("kfs-fd-target");
    let sock = fixture_dir("kfs-fd").join("fd.sock");
    let procs = elsewhere.path.join("cgroup.procs");

    assert_eq!(
        pass_fd(&cg, &sock, &procs, FdMode::Read),
        "OK:1",
        "read-only arrives"
    );
    assert_eq!(
        pass_fd(&cg, &sock, &procs, FdMode::Write),
        "OK:0",
        "writable must not"
    );
    record_of(&cg, "file_receive", self_protection);
}
