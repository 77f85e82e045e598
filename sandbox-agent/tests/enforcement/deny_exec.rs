//! deny_exec: the kernel decides on the file it is really executing, so every path alias of a
//! denied program is denied too, while reading it stays allowed.

use std::process::Command;

use crate::harness::*;

fn exec_policy(home: &std::path::Path, denied: &std::path::Path) -> std::path::PathBuf {
    policy_file(
        home,
        "exec-policy",
        &format!("deny_exec:\n  - {:?}\n", denied.display().to_string()),
    )
}

fn confined_exec(name: &str, home: &std::path::Path, denied: &std::path::Path) -> Cgroup {
    let cg = Cgroup::new(name);
    attach(&cg, &exec_policy(home, denied), home);
    cg
}

#[test]
fn a_denied_program_cannot_be_executed_but_can_be_read() {
    let home = fixture_dir("exec");
    let prog = tool(&home, "tool");
    let cg = confined_exec("exec", &home, &prog);

    assert_eq!(cg.exec(&prog), Err(EPERM));
    assert!(cg.open(&prog).is_ok(), "deny_exec must not deny reading");
    assert_eq!(Cgroup::new("exec-outside").exec(&prog), Ok(0));
}

#[test]
fn programs_below_a_denied_directory_cannot_be_executed() {
    let home = fixture_dir("exec-dir");
    std::fs::create_dir_all(home.join("bin/sub")).unwrap();
    let prog = tool(&home.join("bin/sub"), "tool");
    let cg = confined_exec("exec-dir", &home, &home.join("bin"));

    assert_eq!(cg.exec(&prog), Err(EPERM));
}

#[test]
fn aliases_of_a_denied_program_are_denied() {
    let home = fixture_dir("exec-alias");
    std::fs::create_dir_all(home.join("bin")).unwrap();
    let prog = tool(&home.join("bin"), "tool");
    let other = fixture_dir("exec-alias-other");
    std::os::unix::fs::symlink(&prog, other.join("symlink")).unwrap();
    std::fs::hard_link(&prog, home.join("hardlink")).unwrap();
    let mnt = fixture_dir("exec-alias-mnt");
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(home.join("bin"))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(bound.success());
    let cg = confined_exec("exec-alias", &home, &prog);

    let via_symlink = cg.exec(&other.join("symlink"));
    let via_hardlink = cg.exec(&home.join("hardlink"));
    let via_bind = cg.exec(&mnt.join("tool"));
    let via_proc = cg.exec(std::path::Path::new(&format!(
        "/proc/self/root{}",
        prog.display()
    )));
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(via_symlink, Err(EPERM), "symlink");
    assert_eq!(via_hardlink, Err(EPERM), "hardlink");
    assert_eq!(via_bind, Err(EPERM), "bind mount");
    assert_eq!(via_proc, Err(EPERM), "/proc/self/root");
}

#[test]
fn a_shell_denied_one_program_keeps_working() {
    let home = fixture_dir("exec-shell");
    let prog = tool(&home, "tool");
    let allowed = tool(&home, "allowed");
    let cg = confined_exec("exec-shell", &home, &prog);

    let out = cg.run(&[
        "sh",
        "-c",
        &format!(
            "{} ; echo denied-status=$?; {} && echo allowed-ran",
            prog.display(),
            allowed.display()
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("allowed-ran"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("denied-status=0"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_denied_script_cannot_be_executed_directly() {
    let home = fixture_dir("exec-script");
    let script = home.join("script.sh");
    write(&script, "#!/bin/sh\necho ran\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cg = confined_exec("exec-script", &home, &script);

    assert_eq!(cg.exec(&script), Err(EPERM));
}
