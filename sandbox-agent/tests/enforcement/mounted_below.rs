//! A denied directory covers what is mounted below it, as it covers its own files: another
//! filesystem (a tmpfs, a directory of ext4, an overlay), a directory or a single file bound there from
//! elsewhere on the same filesystem, and a mount on such a mount. The kernel's walk from a file
//! up its directories stops at its filesystem's root and never passes the mount point, so each
//! of these is denied by its own identity, and so under its other names too: its own path
//! outside, another mount of it. For a confined root and a confined user.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::{
    filesystems::{as_whom, dir_on, file, mounted, step},
    harness::*,
};

/// An overlay of `lower` mounted at `dir/merged`, its upper layer and work directory in `dir`
/// (on `dir`'s filesystem): the merged directory.
pub fn overlay_of(lower: &Path, dir: &Path) -> std::path::PathBuf {
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        &["-t", "overlay", "-o", &options],
        Path::new("overlay"),
        &merged,
    );
    merged
}

pub fn mount(args: &[&str], source: &Path, point: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(source)
        .arg(point)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {} {}: {}",
        source.display(),
        point.display(),
        stderr(&out)
    );
}

fn open_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Each file, by every name, read (`cat`), written (appended to) or run: `<step>=<status>`.
const TRIES: &str = r#"
try() { name=$1; shift; "$@" >/dev/null 2>&1; echo "$name=$?"; }
d=$1
try tmpfs cat "$d/secrets/tmpfs/t"
try nested cat "$d/secrets/tmpfs/inner/n"
try ext4 cat "$d/secrets/ext4/e"
try ext4_own_path cat "$2/e"
try same_fs_dir cat "$d/secrets/view/v"
try same_fs_dir_own_path cat "$d/outside/v"
try file cat "$d/secrets/token"
try file_own_path cat "$d/outside-token"
try tmpfs_other_mount cat "$d/elsewhere/t"
try overlay cat "$d/secrets/overlay/o"
try through_a_bind_of_its_parent cat "$3/secrets/via/a"
try write_below sh -c "echo x >> '$d/protected/tmpfs/w'"
try exec_below "$d/tools/tmpfs/tool"
try public cat "$d/public"
"#;

#[test]
fn what_is_mounted_below_a_denied_directory_is_denied_under_every_name() {
    let d = fixture_dir("mounted-below");
    open_dir(&d);
    let secrets = d.join("secrets");
    for sub in ["tmpfs", "ext4", "view", "overlay", "outside"] {
        let dir = if sub == "outside" {
            d.join(sub)
        } else {
            secrets.join(sub)
        };
        open_dir(&dir);
    }
    for dir in [
        "elsewhere",
        "protected/tmpfs",
        "tools/tmpfs",
        "lower",
        "upper",
        "work",
    ] {
        open_dir(&d.join(dir));
    }
    file(&secrets.join("token"), "");
    file(&d.join("outside-token"), "token");
    file(&d.join("outside/v"), "v");
    file(&d.join("public"), "p");

    let tmpfs = Path::new("tmpfs");
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        tmpfs,
        &secrets.join("tmpfs"),
    );
    file(&secrets.join("tmpfs/t"), "t");
    open_dir(&secrets.join("tmpfs/inner"));
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        tmpfs,
        &secrets.join("tmpfs/inner"),
    );
    file(&secrets.join("tmpfs/inner/n"), "n");
    let ext4 = dir_on(mounted("ext4"), "mounted-below");
    file(&ext4.join("e"), "e");
    mount(&["--bind"], &ext4, &secrets.join("ext4"));
    mount(&["--bind"], &d.join("outside"), &secrets.join("view"));
    mount(
        &["--bind"],
        &d.join("outside-token"),
        &secrets.join("token"),
    );
    mount(&["--bind"], &secrets.join("tmpfs"), &d.join("elsewhere"));
    file(&d.join("lower/o"), "o");
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        d.join("lower").display(),
        d.join("upper").display(),
        d.join("work").display()
    );
    mount(
        &["-t", "overlay", "-o", &layers],
        Path::new("overlay"),
        &secrets.join("overlay"),
    );
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        tmpfs,
        &d.join("protected/tmpfs"),
    );
    file(&d.join("protected/tmpfs/w"), "w");
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        tmpfs,
        &d.join("tools/tmpfs"),
    );
    tool(&d.join("tools/tmpfs"), "tool");

    let policy = policy_file(
        &d,
        "mounted-below",
        &format!(
            "deny_read: [{:?}]\ndeny_write: [{:?}]\ndeny_exec: [{:?}]\n",
            secrets.display().to_string(),
            d.join("protected").display().to_string(),
            d.join("tools").display().to_string(),
        ),
    );
    // A bind of the directory's parent elsewhere, and a tmpfs mounted on the denied directory's
    // child there: only that bind shows it.
    let alias = fixture_dir("mounted-below-alias");
    mount(&["--bind"], &d, &alias);
    open_dir(&alias.join("secrets/via"));
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        tmpfs,
        &alias.join("secrets/via"),
    );
    file(&alias.join("secrets/via/a"), "a");

    let cg = Cgroup::new("mounted-below");
    attach(&cg, &policy, &d);

    let args = format!("{} {} {}", d.display(), ext4.display(), alias.display());
    let mut failures = Vec::new();
    for user in [false, true] {
        let whom = if user { "user" } else { "root" };
        let out = as_whom(&cg, user, &format!("set -- {args}\n{TRIES}"));
        for name in [
            "tmpfs",
            "nested",
            "ext4",
            "ext4_own_path",
            "same_fs_dir",
            "same_fs_dir_own_path",
            "file",
            "file_own_path",
            "tmpfs_other_mount",
            "overlay",
            "through_a_bind_of_its_parent",
            "write_below",
            "exec_below",
        ] {
            if step(&out, name) == 0 {
                failures.push(format!("{whom}: {name} was allowed"));
            }
        }
        if step(&out, "public") != 0 {
            failures.push(format!("{whom}: a file no rule names was refused:\n{out}"));
        }
    }
    // Outside, every one of them is still there.
    for (path, content) in [
        (secrets.join("tmpfs/inner/n"), "n"),
        (secrets.join("ext4/e"), "e"),
        (secrets.join("token"), "token"),
    ] {
        assert_eq!(open_unconfined(&path), Ok(content.to_string()));
    }
    detach(&cg);
    let _ = Command::new("umount").arg("-R").arg(&alias).status();
    for point in [
        "elsewhere",
        "secrets/tmpfs",
        "secrets/ext4",
        "secrets/view",
        "secrets/token",
        "secrets/overlay",
        "protected/tmpfs",
        "tools/tmpfs",
    ] {
        let _ = Command::new("umount").arg("-R").arg(d.join(point)).status();
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn policy_id(cg: &Cgroup) -> u64 {
    attachment(&cg.path).unwrap()["policy_id"].as_u64().unwrap()
}

/// Waits (up to a minute) for the daemon to switch the attachment of `cg` to a policy other
/// than `then`, and returns it.
fn switched_from(cg: &Cgroup, then: u64) -> u64 {
    for _ in 0..1200 {
        let now = policy_id(cg);
        if now != then {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the daemon never compiled the policy again after the mount table changed");
}

#[test]
fn a_filesystem_mounted_below_a_denied_directory_after_the_attach_is_denied_too() {
    let d = fixture_dir("mounted-later");
    open_dir(&d);
    let secrets = d.join("secrets");
    let point = secrets.join("later");
    open_dir(&point);
    let cg = Cgroup::new("mounted-later");
    attach(&cg, &deny_read_policy(&d, &[&secrets]), &d);
    let first = policy_id(&cg);

    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        Path::new("tmpfs"),
        &point,
    );
    file(&point.join("t"), "t");
    let second = switched_from(&cg, first);
    assert_eq!(cg.open(&point.join("t")), Err(EPERM), "root");
    assert_eq!(
        probe_as_user(
            &cg,
            crate::harness::OPEN_SCRIPT,
            &[point.join("t").to_str().unwrap()]
        ),
        Err(EPERM),
        "user"
    );

    // Replaced by another: the kernel may give the new mount the old one's id and device.
    let out = Command::new("umount").arg(&point).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    mount(
        &["-t", "tmpfs", "-o", "mode=777"],
        Path::new("tmpfs"),
        &point,
    );
    file(&point.join("u"), "u");
    let mut now = switched_from(&cg, second);
    // The unmount and the mount may each have been seen on their own.
    while cg.open(&point.join("u")) != Err(EPERM) {
        now = switched_from(&cg, now);
    }
    assert_eq!(open_unconfined(&point.join("u")), Ok("u".into()));
    detach(&cg);
    let _ = Command::new("umount").arg(&point).status();
}

#[test]
fn what_is_mounted_below_an_allowed_directory_may_run() {
    let d = fixture_dir("mounted-allowed");
    let point = d.join("allowed/tmpfs");
    open_dir(&point);
    mount(&["-t", "tmpfs"], Path::new("tmpfs"), &point);
    let below = tool(&point, "tool");
    let beside = tool(&d, "beside");
    let policy = policy_file(
        &d,
        "mounted-allowed",
        &format!(
            "allow_exec:\n  - /usr\n  - {:?}\n",
            d.join("allowed").display().to_string()
        ),
    );
    let cg = Cgroup::new("mounted-allowed");
    attach(&cg, &policy, &d);

    let below_ran = cg.exec(&below);
    let beside_ran = cg.exec(&beside);
    detach(&cg);
    let _ = Command::new("umount").arg(&point).status();
    assert_eq!(below_ran, Ok(0), "a program on a filesystem mounted below");
    assert_eq!(beside_ran, Err(EPERM), "a program no allow_exec path holds");
}

#[test]
fn a_mount_below_that_shows_the_directory_itself_extends_the_rule_to_all_of_it_and_says_so() {
    let d = fixture_dir("mounted-above");
    let secrets = d.join("secrets");
    open_dir(&secrets.join("up"));
    file(&d.join("public"), "p");
    mount(&["--bind"], &d, &secrets.join("up"));
    let cg = Cgroup::new("mounted-above");
    let out = attach(&cg, &deny_read_policy(&d, &[&secrets]), &d);

    let public = cg.open(&d.join("public"));
    detach(&cg);
    let _ = Command::new("umount").arg(secrets.join("up")).status();
    let said = stderr(&out);
    assert!(
        said.contains("shows a directory that holds") && said.contains("up is mounted below"),
        "{said}"
    );
    assert_eq!(public, Err(EPERM), "{} is below the rule now", d.display());
}
