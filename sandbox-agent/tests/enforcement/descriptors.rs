//! Descriptors from outside: the kernel decides at open, so a denied file opened before
//! confinement would stay readable through its descriptor. `run` closes what its command would
//! inherit (but `--keep-fd`), and `attach` refuses a cgroup whose processes hold a denied file
//! open (naming them) unless forced.

use std::{
    io::{BufRead, BufReader, Lines},
    path::Path,
    process::{Child, ChildStdout, Command, Output},
};

use crate::harness::*;

/// `sandbox-agent run [extra] --policy P --home H -- sh -c script`, started by a shell that
/// first opens `held` as descriptor 3 (as `3<file` on a command line does).
fn run_holding(held: &Path, extra: &[&str], policy: &Path, home: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<"$0" && exec "$@""#)
        .arg(held)
        .arg("sandbox-agent")
        .arg("run")
        .args(extra)
        .arg("--policy")
        .arg(policy)
        .arg("--home")
        .arg(home)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn run_closes_an_inherited_descriptor_of_a_denied_file() {
    let home = fixture_dir("fd-run");
    let secret = home.join("secret");
    write(&secret, "top secret");
    let policy = deny_read_policy(&home, &[&secret]);

    let out = run_holding(&secret, &[], &policy, &home, "cat <&3; echo cat-exit=$?");

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("top secret"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("cat-exit=0"), "{}", stdout(&out));
    // Descriptor 3 is not there at all (EBADF), not merely refused.
    assert!(
        stderr(&out).contains("Bad file descriptor"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_descriptor_kept_with_keep_fd_stays_readable_and_the_file_stays_denied_by_name() {
    let home = fixture_dir("fd-keep");
    let secret = home.join("secret");
    write(&secret, "top secret");
    let policy = deny_read_policy(&home, &[&secret]);
    let script = format!(
        "cat <&3; echo; cat {}; echo by-name-exit=$?",
        secret.display()
    );

    let out = run_holding(&secret, &["--keep-fd", "3"], &policy, &home, &script);

    assert!(out.status.success(), "{}", stderr(&out));
    // The user's explicit choice: the kept descriptor reads.
    assert!(stdout(&out).contains("top secret"), "{}", stdout(&out));
    // Opening the file again is still denied.
    assert!(stdout(&out).contains("by-name-exit=1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn keep_fd_of_a_descriptor_that_is_not_open_starts_nothing() {
    let home = fixture_dir("fd-keep-bad");
    let marker = home.join("started");
    let policy = deny_read_policy(&home, &[&home.join("secret")]);
    let out = agent_run(
        &["--keep-fd", "987"],
        &policy,
        &home,
        &["touch", marker.to_str().unwrap()],
    );
    assert_refused(&out, "--keep-fd 987: descriptor 987 is not open");
    assert!(!marker.exists(), "the command ran");
}

/// A shell in `cg` that opens `file` as descriptor 3 (`redirect` is `3<` or `3>>`), says
/// `ready`, waits for `stop` to exist, then copies what descriptor 3 reads to its output.
fn start_holder(
    cg: &Cgroup,
    file: &Path,
    redirect: &str,
    stop: &Path,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let script = format!(
        "exec {redirect}{file}; echo ready; while [ ! -e {stop} ]; do sleep 0.1; done; \
         cat <&3; echo",
        file = file.display(),
        stop = stop.display()
    );
    let mut child = cg.spawn(&["sh", "-c", &script]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    (child, lines)
}

fn attach_forced(cg: &Cgroup, policy: &Path, home: &Path) -> Output {
    agent()
        .args(["attach", "--force", "--cgroup"])
        .arg(&cg.path)
        .arg("--policy")
        .arg(policy)
        .arg("--home")
        .arg(home)
        .output()
        .unwrap()
}

#[test]
fn attach_is_refused_while_a_process_holds_a_denied_file_open_and_forced_it_warns() {
    let home = fixture_dir("fd-attach");
    let secret = home.join("secret");
    write(&secret, "top secret");
    let policy = deny_read_policy(&home, &[&secret]);
    let cg = Cgroup::new("fd-attach");
    let stop = home.join("stop");
    let (holder, lines) = start_holder(&cg, &secret, "3<", &stop);
    let pid = holder.id();

    let out = try_attach(&cg.path, &policy, Some(&home));

    let holder_named = format!(
        "pid {pid} (sh) fd 3 {} (open for reading)",
        secret.display()
    );
    assert_refused(&out, &holder_named);
    assert_refused(&out, &format!("deny_read {}", secret.display()));
    assert_refused(&out, "--force");
    assert_refused(&out, "nothing was attached");
    // Nothing changed: no attachment, and the file still opens from inside.
    assert!(!attached(&cg.path), "attached despite the refusal");
    assert_eq!(cg.open(&secret), Ok("top secret".into()));

    let out = attach_forced(&cg, &policy, &home);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("warning: {holder_named}")),
        "{}",
        stderr(&out)
    );
    assert!(attached(&cg.path));
    assert_eq!(cg.open(&secret), Err(EPERM), "new opens are denied");
    // What --force accepted: the descriptor opened before stays usable.
    write(&stop, "");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().any(|l| l == "top secret"), "{rest:?}");
    detach(&cg);
}

#[test]
fn a_descriptor_open_for_writing_in_a_child_cgroup_refuses_a_deny_write_attach() {
    let home = fixture_dir("fd-write");
    let config = home.join("config");
    write(&config, "c");
    let policy = policy_file(
        &home,
        "fd-write",
        &format!("deny_write:\n  - {:?}\n", config.display().to_string()),
    );
    let cg = Cgroup::new("fd-write");
    let inner = cg.child("inner");
    let stop = home.join("stop");
    let (holder, _lines) = start_holder(&inner, &config, "3>>", &stop);

    let out = try_attach(&cg.path, &policy, Some(&home));

    assert_refused(
        &out,
        &format!(
            "pid {} (sh) fd 3 {} (open for writing): deny_write {}",
            holder.id(),
            config.display(),
            config.display()
        ),
    );
    assert!(!attached(&cg.path));
    write(&stop, "");
}

#[test]
fn a_descriptor_open_for_writing_outside_the_allow_write_trees_refuses_the_attach() {
    let home = fixture_dir("fd-allow-write");
    let outside = home.join("host.conf");
    let inside = home.join("work/log");
    write(&outside, "c");
    write(&inside, "l");
    let policy = policy_file(&home, "fd-allow-write", "allow_write:\n  - ~/work\n");
    let cg = Cgroup::new("fd-allow-write");
    let stop = home.join("stop");
    let (holder, _lines) = start_holder(&cg, &outside, "3>>", &stop);
    let inner = cg.child("inner");
    let (_logger, _log_lines) = start_holder(&inner, &inside, "3>>", &stop);

    let out = try_attach(&cg.path, &policy, Some(&home));

    // Only the one outside the listed tree is named.
    assert_refused(
        &out,
        &format!(
            "pid {} (sh) fd 3 {} (open for writing): allow_write (not under any listed path)",
            holder.id(),
            outside.display()
        ),
    );
    assert!(
        !stderr(&out).contains(&inside.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(!attached(&cg.path));
    write(&stop, "");
}

#[test]
fn a_cgroup_file_held_open_for_writing_refuses_any_attach() {
    let home = fixture_dir("fd-kernel-fs");
    let policy = deny_read_policy(&home, &[&home.join("secret")]);
    let cg = Cgroup::new("fd-kernel-fs");
    let elsewhere = Cgroup::new("fd-kernel-fs-target");
    let procs = elsewhere.path.join("cgroup.procs");
    let stop = home.join("stop");
    // Through it, once confined, the holder could move any task of the host.
    let (holder, _lines) = start_holder(&cg, &procs, "3>>", &stop);

    let out = try_attach(&cg.path, &policy, Some(&home));

    assert_refused(
        &out,
        &format!(
            "pid {} (sh) fd 3 {} (open for writing): self-protection",
            holder.id(),
            procs.display()
        ),
    );
    assert!(!attached(&cg.path));
    write(&stop, "");
}

#[test]
fn processes_holding_only_allowed_files_attach_without_complaint() {
    let home = fixture_dir("fd-allowed");
    let secret = home.join("secret");
    let notes = home.join("notes");
    let config = home.join("config");
    write(&secret, "top secret");
    write(&notes, "notes");
    write(&config, "c");
    let policy = policy_file(
        &home,
        "fd-allowed",
        &format!(
            "deny_read:\n  - {:?}\ndeny_write:\n  - {:?}\n",
            secret.display().to_string(),
            config.display().to_string()
        ),
    );
    let cg = Cgroup::new("fd-allowed");
    let stop = home.join("stop");
    // An allowed file, and a deny_write file open only for reading.
    let (_a, _la) = start_holder(&cg, &notes, "3<", &stop);
    let (_b, _lb) = start_holder(&cg, &config, "3<", &stop);

    let out = attach(&cg, &policy, &home);

    assert!(!stderr(&out).contains("warning: pid"), "{}", stderr(&out));
    assert!(attached(&cg.path));
    assert_eq!(cg.open(&secret), Err(EPERM));
    write(&stop, "");
    detach(&cg);
}
