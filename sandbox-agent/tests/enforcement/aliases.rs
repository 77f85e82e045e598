//! Every path alias of a denied file reaches the same inode, and is denied: symlinks, hardlinks
//! made before attach, bind mounts, /proc/self/root, `..`.

use std::process::Command;

use crate::harness::*;

#[test]
fn symlink_to_a_denied_file_is_denied() {
    let home = fixture_dir("symlink");
    let secret = home.join("secret");
    write(&secret, "s");
    let elsewhere = fixture_dir("symlink-elsewhere");
    std::os::unix::fs::symlink(&secret, elsewhere.join("innocent")).unwrap();
    let cg = confined("symlink", &home, &[&secret]);

    assert_eq!(cg.open(&elsewhere.join("innocent")), Err(EPERM));
}

#[test]
fn symlink_created_by_the_confined_process_is_denied() {
    let home = fixture_dir("symlink-own");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("symlink-own", &home, &[&secret]);
    let link = home.join("mine");
    let out = cg.run(&[
        "sh",
        "-c",
        &format!(
            "ln -s {} {} && cat {}",
            secret.display(),
            link.display(),
            link.display()
        ),
    ]);
    assert_eperm(&out, "cat through own symlink");
}

#[test]
fn hardlink_made_before_attach_is_denied() {
    let home = fixture_dir("hardlink");
    let secret = home.join("secret");
    write(&secret, "s");
    let other = home.join("public/copy-of-nothing");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::hard_link(&secret, &other).unwrap();
    assert_eq!(ino(&other), ino(&secret));
    let cg = confined("hardlink", &home, &[&secret]);

    assert_eq!(cg.open(&other), Err(EPERM));
}

#[test]
fn bind_mount_of_the_denied_directory_is_denied() {
    let home = fixture_dir("bind");
    let dir = home.join("creds");
    write(&dir.join("token"), "t");
    let mnt = fixture_dir("bind-target");
    let status = Command::new("mount")
        .args(["--bind"])
        .arg(&dir)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount --bind failed");
    let cg = confined("bind", &home, &[&dir]);

    let result = cg.open(&mnt.join("token"));
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(result, Err(EPERM));
}

#[test]
fn proc_self_root_path_is_denied() {
    let home = fixture_dir("procroot");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("procroot", &home, &[&secret]);

    let alias = format!("/proc/self/root{}", secret.display());
    assert_eq!(cg.open(std::path::Path::new(&alias)), Err(EPERM));
}

#[test]
fn dot_dot_path_is_denied() {
    let home = fixture_dir("dotdot");
    let secret = home.join(".ssh/id_rsa");
    write(&secret, "s");
    write(&home.join("project/src/main.rs"), "fn main() {}");
    let cg = confined("dotdot", &home, &[&home.join(".ssh")]);

    let alias = home.join("project/src/../../.ssh/./id_rsa");
    assert_eq!(cg.open(&alias), Err(EPERM));
    assert_eq!(
        cg.open(&home.join("project/src/../src/main.rs")),
        Ok("fn main() {}".into())
    );
}
