//! Inode identity on the filesystems agents really use, not only tmpfs: ext4, xfs and btrfs
//! (its top level and a subvolume) on loop images, and overlayfs with its layers on different
//! filesystems. Every rule kind holds on each, for a confined root and a confined user (a
//! protected file's mode, owner, ACL and extended attributes included); on
//! btrfs, a file in another subvolume with the same inode number stays readable, and no
//! snapshot copies a denied file out.

use std::{
    os::unix::{fs::PermissionsExt, net::UnixListener},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::{changes::*, harness::*};

/// Runs `cmd`, asserting it succeeds.
fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sparse image of `kind` on the guest's tmpfs, loop-mounted once for the whole suite.
pub fn mounted(kind: &'static str) -> &'static Path {
    static EXT4: OnceLock<PathBuf> = OnceLock::new();
    static XFS: OnceLock<PathBuf> = OnceLock::new();
    static BTRFS: OnceLock<PathBuf> = OnceLock::new();
    let cell = match kind {
        "ext4" => &EXT4,
        "xfs" => &XFS,
        "btrfs" => &BTRFS,
        _ => unreachable!("no fixture for {kind}"),
    };
    cell.get_or_init(|| {
        let image = PathBuf::from(format!("/tmp/fs-{kind}.img"));
        let point = PathBuf::from(format!("/tmp/mnt-{kind}"));
        std::fs::create_dir_all(&point).unwrap();
        // xfs wants 300 MiB at least; the image is sparse, so only what is written costs memory.
        sh(&format!("truncate -s 320M {}", image.display()));
        let mkfs = match kind {
            "ext4" => "mkfs.ext4 -q -F",
            "xfs" => "mkfs.xfs -q -f",
            _ => "mkfs.btrfs -q -f",
        };
        sh(&format!("{mkfs} {}", image.display()));
        sh(&format!(
            "mount -o loop {} {}",
            image.display(),
            point.display()
        ));
        std::fs::set_permissions(&point, std::fs::Permissions::from_mode(0o755)).unwrap();
        point
    })
}

/// An overlay named `name`: its lower layer on ext4, its upper on tmpfs, no xino (layers on
/// different filesystems, where stat reports a per-layer device for files and the kernel sees
/// the overlay's own). Returns (lower, merged); `lower_first` fills the lower layer before the
/// mount. Unmount `merged` when done.
pub fn overlay_on_ext4(name: &str, lower_first: impl FnOnce(&Path)) -> (PathBuf, PathBuf) {
    let lower = dir_on(mounted("ext4"), &format!("{name}-lower"));
    lower_first(&lower);
    let work = fixture_dir(name);
    let (upper, wd, merged) = (work.join("upper"), work.join("work"), work.join("merged"));
    for d in [&upper, &wd, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    sh(&format!(
        "mount -t overlay overlay -o xino=off,lowerdir={},upperdir={},workdir={} {}",
        lower.display(),
        upper.display(),
        wd.display(),
        merged.display()
    ));
    std::fs::set_permissions(&merged, std::fs::Permissions::from_mode(0o777)).unwrap();
    (lower, merged)
}

/// A fresh directory below `base` that a confined user can use too.
pub fn dir_on(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A btrfs subvolume named `name` at the top of the btrfs fixture.
pub fn subvolume(name: &str) -> PathBuf {
    let path = mounted("btrfs").join(format!("{name}-{}", std::process::id()));
    if !path.exists() {
        sh(&format!("btrfs -q subvolume create {}", path.display()));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    path
}

/// Writes `content` to `path`, readable and writable by everyone (so a denial is ours, not
/// the file mode's).
pub fn file(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

/// Runs a shell script inside `cg`, as root or (with `user`) as uid 1000; stdout and stderr.
pub fn as_whom(cg: &Cgroup, user: bool, script: &str) -> String {
    let out = cg.run_as(user, &["sh", "-c", script]);
    format!("{}{}", stdout(&out), stderr(&out))
}

/// One access per line: `<step>=<exit status>`, with what the commands printed.
const RULES_SCRIPT: &str = r#"
d=$1
cat "$d/secret" >/dev/null; echo "read=$?"
echo more >> "$d/conf"; echo "write=$?"
"$d/tool"; echo "exec=$?"
python3 -c 'import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1]); sys.exit(0)
except OSError as e:
    print(e); sys.exit(1)' "$d/sock"; echo "unix=$?"
cat "$d/open" >/dev/null; echo "open=$?"
"#;

pub fn step(output: &str, name: &str) -> i32 {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {output:?}"))
}

/// deny_read, deny_write, deny_exec and unix_deny on files in `dir`, tried from inside by root
/// and by a user: each fails with EPERM, and a file no rule names stays readable.
fn every_rule_holds_in(label: &str, dir: &Path) -> Vec<String> {
    file(&dir.join("secret"), "s");
    file(&dir.join("conf"), "c");
    file(&dir.join("open"), "o");
    let tool = tool(dir, "tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("sock");
    let _ = std::fs::remove_file(&sock);
    let _listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let policy = policy_file(
        dir,
        &format!("fs-{label}"),
        &format!(
            "deny_read: [{d}/secret]\ndeny_write: [{d}/conf]\ndeny_exec: [{d}/tool]\n\
             network:\n  unix_deny: [{d}/sock]\n",
            d = dir.display()
        ),
    );
    let cg = Cgroup::new(&format!("fs-{label}"));
    // The sandbox works for the ordinary user (its `~` is theirs), who owns the files tried
    // below: what refuses root there is each rule, not the files being another user's.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    give_to(USER_UID, &home);
    attach(&cg, &policy, &home);
    let mut failures = Vec::new();
    for user in [false, true] {
        let who = if user { "user" } else { "root" };
        let out = as_whom(
            &cg,
            user,
            &format!("set -- {}\n{RULES_SCRIPT}", dir.display()),
        );
        for name in ["read", "write", "exec", "unix"] {
            if step(&out, name) == 0 {
                failures.push(format!("{label}, {who}: {name} was allowed: {out}"));
            }
        }
        if step(&out, "open") != 0 {
            failures.push(format!("{label}, {who}: the open file was refused: {out}"));
        }
        if !out.contains("Operation not permitted") && !out.contains("Errno 1]") {
            failures.push(format!("{label}, {who}: no EPERM: {out}"));
        }
    }
    failures.extend(attributes_hold_in(label, dir, &cg));
    let conf = std::fs::read_to_string(dir.join("conf")).unwrap();
    if conf != "c" {
        failures.push(format!(
            "{label}: the write-protected file changed: {conf:?}"
        ));
    }
    failures
}

/// What an unconfined process later acts on (a setuid bit, an owner, an ACL, an extended
/// attribute, the times, an inode flag) and truncation, tried on the `deny_write` file (`conf`) and the `deny_read` one
/// (`secret`) by the user who owns them and then by root, each also on a file no rule names
/// (`attrs`), where it must work: the refusal is the rule's, not the file system's or DAC's.
fn attributes_hold_in(label: &str, dir: &Path, cg: &Cgroup) -> Vec<String> {
    let (conf, secret, attrs) = (dir.join("conf"), dir.join("secret"), dir.join("attrs"));
    file(&attrs, "a");
    for f in [&conf, &secret, &attrs] {
        std::os::unix::fs::chown(f, Some(USER_UID), Some(USER_GID)).unwrap();
    }
    let before = (file_state(&conf), file_state(&secret));
    let mut failures = Vec::new();
    for user in [true, false] {
        let who = if user { "user" } else { "root" };
        let mut ops = vec![
            "open_trunc",
            "truncate",
            "chmod_open",
            "user_xattr",
            "acl",
            "utimes",
            "chattr",
        ];
        if !user {
            ops.push("chown_root");
        }
        let (conf_arg, secret_arg, attrs_arg) =
            ([conf.as_path()], [secret.as_path()], [attrs.as_path()]);
        let names: Vec<[String; 3]> = ops
            .iter()
            .map(|op| {
                [
                    format!("conf_{op}"),
                    format!("secret_{op}"),
                    format!("attrs_{op}"),
                ]
            })
            .collect();
        let mut tries: Vec<(&str, &str, &[&Path])> = Vec::new();
        for (op, [c, s, a]) in ops.iter().zip(&names) {
            tries.push((c, op, &conf_arg));
            // deny_read guards what opens a secret up to others, not its size, times or flags.
            if !op.contains("trunc") && *op != "utimes" && *op != "chattr" {
                tries.push((s, op, &secret_arg));
            }
            tries.push((a, op, &attrs_arg));
        }
        let results = if user {
            try_changes_as_user(cg, &tries)
        } else {
            try_changes(Some(cg), &tries)
        };
        for (name, errno) in &results {
            let fine = if name.starts_with("attrs_") {
                // tmpfs before 6.6 (an overlay's upper layer here) has no user.* xattrs.
                *errno == 0 || (name.ends_with("user_xattr") && *errno == libc::EOPNOTSUPP)
            } else {
                *errno == EPERM
            };
            if !fine {
                failures.push(format!(
                    "{label}, {who}: {name} gave errno {errno}: {results:?}"
                ));
            }
        }
    }
    if (file_state(&conf), file_state(&secret)) != before {
        failures.push(format!(
            "{label}: a protected file's mode, owner or attributes changed: {before:?} -> {:?}",
            (file_state(&conf), file_state(&secret))
        ));
    }
    failures
}

#[test]
fn every_rule_holds_on_ext4_xfs_and_btrfs_top_level_and_subvolume() {
    let mut failures = Vec::new();
    failures.extend(every_rule_holds_in(
        "ext4",
        &dir_on(mounted("ext4"), "rules"),
    ));
    failures.extend(every_rule_holds_in("xfs", &dir_on(mounted("xfs"), "rules")));
    failures.extend(every_rule_holds_in(
        "btrfs-top",
        &dir_on(mounted("btrfs"), "rules"),
    ));
    failures.extend(every_rule_holds_in(
        "btrfs-subvolume",
        &dir_on(&subvolume("rules-sub"), "rules"),
    ));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn btrfs_subvolumes_with_the_same_inode_numbers_stay_apart() {
    let (a, b) = (subvolume("same-ino-a"), subvolume("same-ino-b"));
    // Inode numbers start again in each fresh subvolume: the same sequence gives the same ones.
    for sub in [&a, &b] {
        file(&sub.join("key"), "k");
        std::fs::create_dir_all(sub.join("creds")).unwrap();
        file(&sub.join("creds/token"), "t");
    }
    assert_eq!(ino(&a.join("key")), ino(&b.join("key")));
    assert_eq!(ino(&a.join("creds")), ino(&b.join("creds")));
    let policy = policy_file(
        &a,
        "btrfs-same-ino",
        &format!("deny_read: [{a}/key, {a}/creds]\n", a = a.display()),
    );
    let cg = Cgroup::new("btrfs-same-ino");
    attach(&cg, &policy, &a);

    for user in [false, true] {
        let out = as_whom(
            &cg,
            user,
            &format!(
                "cat {a}/key >/dev/null; echo a_key=$?\n\
                 cat {a}/creds/token >/dev/null; echo a_token=$?\n\
                 cat {b}/key >/dev/null; echo b_key=$?\n\
                 cat {b}/creds/token >/dev/null; echo b_token=$?\n",
                a = a.display(),
                b = b.display()
            ),
        );
        assert_ne!(step(&out, "a_key"), 0, "denied file read: {out}");
        assert_ne!(step(&out, "a_token"), 0, "file in denied dir read: {out}");
        assert!(out.contains("Operation not permitted"), "{out}");
        assert_eq!(step(&out, "b_key"), 0, "same inode, other subvolume: {out}");
        assert_eq!(
            step(&out, "b_token"),
            0,
            "same dir inode, other subvolume: {out}"
        );
    }
    let records = records_for(&a.join("key"), 1);
    assert!(
        records
            .iter()
            .any(|r| r["hook"] == "file_open" && r["action"] == "deny"),
        "{records:?}"
    );
}

/// A btrfs snapshot copies every file of a subvolume, under new inode identities (the copy's
/// subvolume device), and opens none of them; a subvolume's deletion calls no unlink or rmdir
/// hook. Inside, both are refused, for root and for the user who owns the subvolume (who may
/// snapshot it outside). The deletion is tried where the mount lets more than SYS_ADMIN delete.
#[test]
fn btrfs_snapshots_neither_copy_out_a_denied_file_nor_delete_a_protected_one() {
    let top = dir_on(mounted("btrfs"), "snap");
    let home = top.join("home");
    sh(&format!("btrfs -q subvolume create {}", home.display()));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    file(&home.join(".ssh/id_rsa"), "THE-KEY");
    file(&home.join(".bashrc"), "rc");
    sh(&format!(
        "chown -R {USER_UID}:{USER_GID} {}",
        home.display()
    ));
    sh(&format!(
        "mount -o remount,user_subvol_rm_allowed {}",
        mounted("btrfs").display()
    ));
    let policy = policy_file(
        &top,
        "btrfs-snap",
        &format!(
            "deny_read: [{h}/.ssh]\ndeny_write: [{h}/.bashrc]\n",
            h = home.display()
        ),
    );
    let cg = Cgroup::new("btrfs-snap");
    attach(&cg, &policy, &top);

    for user in [true, false] {
        let copy = top.join(format!("copy-{}", if user { "user" } else { "root" }));
        let out = as_whom(
            &cg,
            user,
            &format!(
                "btrfs subvolume snapshot {h} {c}; echo snapshot=$?\n\
                 cat {c}/.ssh/id_rsa; echo read=$?\n\
                 btrfs subvolume delete {h}; echo delete=$?\n",
                h = home.display(),
                c = copy.display()
            ),
        );
        assert_ne!(step(&out, "snapshot"), 0, "a snapshot was made: {out}");
        assert!(!copy.exists() && !out.contains("THE-KEY"), "{out}");
        assert_ne!(step(&out, "delete"), 0, "the subvolume was deleted: {out}");
        assert!(out.contains("Operation not permitted"), "{out}");
        assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), "rc");
    }
    for name in ["BTRFS_IOC_SNAP_CREATE", "BTRFS_IOC_SNAP_DESTROY"] {
        record_of(&cg, "file_ioctl", |r| {
            r["action"] == "deny"
                && r["target"]["ioctl"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(name))
        });
    }

    // Outside, root makes the same snapshot, the key readable in it: the refusal is the
    // sandbox's, not the filesystem's.
    let outside = top.join("copy-outside");
    sh(&format!(
        "btrfs -q subvolume snapshot {} {}",
        home.display(),
        outside.display()
    ));
    assert_eq!(
        std::fs::read_to_string(outside.join(".ssh/id_rsa")).unwrap(),
        "THE-KEY"
    );
}

#[test]
fn overlay_files_are_denied_by_their_merged_path_and_by_their_lower_path() {
    let (lower, merged) = overlay_on_ext4("ovl", |lower| {
        file(&lower.join("by-merged"), "m");
        file(&lower.join("by-lower"), "l");
        file(&lower.join("open"), "o");
        // Another name of the same lower file: through the overlay it is the same inode number
        // on the overlay's device, which only the inode rule (not the name rule) can match.
        std::fs::hard_link(lower.join("by-merged"), lower.join("alias")).unwrap();
    });
    let work = fixture_dir("ovl");
    let policy = policy_file(
        &work,
        "overlay",
        &format!(
            "deny_read: [{}/by-merged, {}/by-lower]\n",
            merged.display(),
            lower.display()
        ),
    );
    let cg = Cgroup::new("overlay");
    attach(&cg, &policy, &work);

    let mut results = Vec::new();
    for user in [false, true] {
        results.push(as_whom(
            &cg,
            user,
            &format!(
                "cat {m}/by-merged >/dev/null; echo merged=$?\n\
                 cat {m}/alias >/dev/null; echo alias=$?\n\
                 cat {m}/by-lower >/dev/null; echo lower=$?\n\
                 cat {m}/open >/dev/null; echo open=$?\n",
                m = merged.display()
            ),
        ));
    }
    // Every rule kind on files made through the merged path (they live in the upper layer).
    let failures = every_rule_holds_in("overlay", &dir_on(&merged, "rules"));
    let _ = Command::new("umount").arg(&merged).status();
    assert!(failures.is_empty(), "{failures:#?}");
    for out in results {
        assert_ne!(step(&out, "merged"), 0, "named by its merged path: {out}");
        assert_ne!(step(&out, "alias"), 0, "another name of it: {out}");
        assert_ne!(step(&out, "lower"), 0, "named by its lower path: {out}");
        assert_eq!(step(&out, "open"), 0, "{out}");
        assert!(out.contains("Operation not permitted"), "{out}");
    }
}
