//! A confined root working for another user gets from root's entries of a directory every user
//! shares (`/tmp`, `/var/tmp`, `/dev/shm`) no more than that user would, unless its sandbox made
//! them: a root service's private `/tmp` and what is below it, a root daemon's private files.
//! Outside, root opens all of them; a sandbox whose user is root keeps root's files.

use std::{os::unix::fs::PermissionsExt, path::Path};

use crate::{
    filesystems::{dir_on, mounted, step},
    harness::*,
    mounted_below::overlay_of,
};

/// `python3 -c PROBE DIR [changes]`: opens of root's entries of the shared directory `DIR`,
/// then files and a directory of its own made there, reopened after a rename and removed;
/// with `changes`, then removes, renames, truncates and plants among root's entries.
const PROBE: &str = r#"
import os, sys
d = sys.argv[1]
private = d + "/systemd-private-abc-nginx.service-XYZ"
def read(p):
    os.close(os.open(p, os.O_RDONLY))
def write(p):
    os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
step("private_dir", lambda: os.listdir(private))
step("private_file", lambda: read(private + "/tmp/upload"))
step("deep_file", lambda: read(private + "/tmp/sub/cache"))
step("root_temp", lambda: read(d + "/root-lock"))
step("public_read", lambda: read(d + "/public"))
step("public_write", lambda: write(d + "/public"))
step("group_read", lambda: read(d + "/group-file"))
step("group_write", lambda: write(d + "/group-file"))
own = "%s/own-%d" % (d, os.getpid())
def own_file():
    fd = os.open(own, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, b"x")
    os.close(fd)
    read(own)
    os.rename(own, own + ".renamed")
    read(own + ".renamed")
    write(own + ".renamed")
    os.unlink(own + ".renamed")
def own_dir():
    os.mkdir(own + ".d", 0o700)
    os.close(os.open(own + ".d/f", os.O_CREAT | os.O_WRONLY, 0o600))
    read(own + ".d/f")
    os.listdir(own + ".d")
step("own_file", own_file)
step("own_dir", own_dir)
if len(sys.argv) > 2:
    step("remove", lambda: os.unlink(d + "/root-lock"))
    step("rename", lambda: os.rename(d + "/public", d + "/public.moved"))
    step("chmod", lambda: os.chmod(d + "/group-file", 0o600))
    step("truncate", lambda: os.truncate(d + "/group-file", 0))
    step("plant", lambda: os.close(os.open(private + "/tmp/planted", os.O_CREAT | os.O_WRONLY)))
"#;

const REFUSED: [&str; 6] = [
    "private_dir",
    "private_file",
    "deep_file",
    "root_temp",
    "public_write",
    "group_write",
];
const KEPT: [&str; 4] = ["public_read", "group_read", "own_file", "own_dir"];
const CHANGES: [&str; 5] = ["remove", "rename", "chmod", "truncate", "plant"];

/// Root's entries of the shared directory `shared`, made outside every sandbox: a service's
/// private `/tmp` (0700, its `tmp` 1777, a file there and one a directory deeper), a private
/// file, one every user may read, and one the sandbox user's group may read.
fn roots_entries(shared: &Path) {
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let private = shared.join("systemd-private-abc-nginx.service-XYZ");
    write(&private.join("tmp/upload"), "a user's upload");
    write(&private.join("tmp/sub/cache"), "a session");
    mode(&private, 0o700);
    mode(&private.join("tmp"), 0o1777);
    mode(&private.join("tmp/upload"), 0o600);
    write(&shared.join("root-lock"), "123");
    mode(&shared.join("root-lock"), 0o600);
    write(&shared.join("public"), "motd");
    mode(&shared.join("public"), 0o644);
    write(&shared.join("group-file"), "for the group");
    mode(&shared.join("group-file"), 0o640);
    std::os::unix::fs::chown(shared.join("group-file"), None, Some(USER_GID)).unwrap();
}

/// The whole scenario on the shared directory `shared`, holding `roots_entries` (on the
/// filesystem `label` names), for `cg` (working for the developer) and `for_root` (working for
/// root).
fn no_more_than_its_user(cg: &Cgroup, for_root: &Cgroup, shared: &Path, label: &str) {
    let args = [shared.to_str().unwrap()];
    let outside = steps_as(None, false, PROBE, &args);
    for s in REFUSED.iter().chain(&KEPT) {
        assert_eq!(
            step(&outside, s),
            0,
            "{label}: root outside: {s}: {outside}"
        );
    }

    let inside = steps_as(Some(cg), false, PROBE, &[args[0], "changes"]);
    for s in REFUSED.iter().chain(&CHANGES) {
        assert_eq!(
            step(&inside, s),
            EPERM,
            "{label}: root inside: {s}: {inside}"
        );
    }
    for s in KEPT {
        assert_eq!(step(&inside, s), 0, "{label}: root inside: {s}: {inside}");
    }

    // The user's own files there are its own; root's it could not open anyway.
    let user = steps_as(Some(cg), true, PROBE, &args);
    for s in ["public_read", "group_read", "own_file", "own_dir"] {
        assert_eq!(step(&user, s), 0, "{label}: user inside: {s}: {user}");
    }

    // A sandbox whose user is root: root's files are its user's.
    let theirs = steps_as(Some(for_root), false, PROBE, &[args[0], "changes"]);
    for s in REFUSED.iter().chain(&KEPT).chain(&CHANGES) {
        assert_eq!(step(&theirs, s), 0, "{label}: root for root: {s}: {theirs}");
    }
}

/// A directory every user shares at `path`.
fn shared_at(path: &Path) -> &Path {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o1777)).unwrap();
    path
}

#[test]
fn a_confined_root_gets_no_more_of_roots_files_in_a_shared_directory_than_its_user() {
    let dir = fixture_dir("root-files");
    // One sandbox works for the developer (uid 1000, the owner of its `~`), one for root.
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    give_to(USER_UID, &home);
    let cg = Cgroup::new("root-files");
    attach(
        &cg,
        &policy_file(&dir, "root-files", "deny_read: []\n"),
        &home,
    );
    let root_home = dir.join("root-home");
    std::fs::create_dir(&root_home).unwrap();
    let for_root = Cgroup::new("root-files-for-root");
    let policy = policy_file(&dir, "root-files-for-root", "deny_read: []\n");
    attach(&for_root, &policy, &root_home);

    for (label, base) in [
        ("tmpfs", dir.clone()),
        ("ext4", dir_on(mounted("ext4"), "root-files")),
        ("xfs", dir_on(mounted("xfs"), "root-files")),
        ("btrfs", dir_on(mounted("btrfs"), "root-files")),
    ] {
        let shared = base.join("shared");
        roots_entries(shared_at(&shared));
        no_more_than_its_user(&cg, &for_root, &shared, label);
    }
    let about_roots = |r: &serde_json::Value| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("root's entry of a shared directory"))
    };
    record_of(&cg, "file_open", about_roots);
    record_of(&cg, "path_unlink", about_roots);

    // Through an overlay (a container's `/tmp`): root's entries in the image's lower layer on
    // ext4, the sandbox's made in the upper one on tmpfs.
    let lower = dir_on(mounted("ext4"), "root-files-lower");
    roots_entries(shared_at(&lower.join("tmp")));
    let merged = overlay_of(&lower, &dir);
    // The service has written to its private `/tmp`, which copied it up: a confined task
    // cannot copy up a directory (README, known limits), and the plant is to be refused for
    // another reason.
    write(
        &merged.join("tmp/systemd-private-abc-nginx.service-XYZ/tmp/pid"),
        "1",
    );
    no_more_than_its_user(&cg, &for_root, &merged.join("tmp"), "overlay");
    let _ = std::process::Command::new("umount").arg(&merged).status();
}
