//! allow_exec: an allowlist of what a confined process may execute or map executable, by inode,
//! so a copy of an allowed program made anywhere else does not run.

use std::path::Path;

use crate::harness::*;

/// Everything the system's programs and libraries need lives under /usr (merged /usr: /bin and
/// /lib64 are symlinks into it).
fn allow_usr(name: &str, home: &Path, extra: &str) -> (Cgroup, std::path::PathBuf) {
    let cg = Cgroup::new(name);
    let policy = policy_file(home, name, &format!("allow_exec:\n  - /usr\n{extra}"));
    attach(&cg, &policy, home);
    (cg, policy)
}

#[test]
fn only_listed_programs_run_and_a_copy_of_one_does_not() {
    let home = fixture_dir("allow");
    let copy = tool(&home, "true-copy");
    let (cg, _) = allow_usr("allow", &home, "");

    assert_eq!(
        cg.exec(Path::new("/bin/true")),
        Ok(0),
        "via the /bin symlink"
    );
    assert_eq!(cg.exec(Path::new("/usr/bin/false")), Ok(1));
    assert_eq!(cg.exec(&copy), Err(EPERM), "a copy in a writable place");
    assert_eq!(Cgroup::new("allow-outside").exec(&copy), Ok(0));
}

#[test]
fn deny_exec_wins_inside_an_allowed_tree() {
    let home = fixture_dir("allow-deny");
    let (cg, _) = allow_usr("allow-deny", &home, "deny_exec:\n  - /usr/bin/false\n");

    assert_eq!(cg.exec(Path::new("/usr/bin/false")), Err(EPERM));
    assert_eq!(cg.exec(Path::new("/usr/bin/true")), Ok(0));
}

#[test]
fn run_refuses_a_command_the_allowlist_would_stop() {
    let home = fixture_dir("allow-run");
    let marker = home.join("ran");
    let script = home.join("agent.sh");
    write(&script, &format!("#!/bin/sh\ntouch {}\n", marker.display()));
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let policy = policy_file(&home, "allow-run", "allow_exec:\n  - /usr\n");

    let out = agent_run(&[], &policy, &home, &[script.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not under any allow_exec path")
            && stderr(&out).contains("nothing was started"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists(), "the command must not have started");

    let allowed = agent_run(&[], &policy, &home, &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(allowed.status.code(), Some(7), "{}", stderr(&allowed));
}
