//! Who is confined: the cgroup's processes, their children, and sub-cgroups; nobody else. And
//! after detach, nobody.

use crate::harness::*;

#[test]
fn children_of_a_confined_process_are_confined() {
    let home = fixture_dir("children");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("children", &home, &[&secret]);

    let out = cg.run(&["sh", "-c", &format!("sh -c 'cat {}'", secret.display())]);
    assert_eperm(&out, "grandchild cat");
}

#[test]
fn sub_cgroups_of_a_confined_cgroup_are_confined() {
    let home = fixture_dir("subcgroup");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("subcgroup", &home, &[&secret]);
    let child = cg.child("worker");
    let grandchild = child.child("task");

    assert_eq!(child.open(&secret), Err(EPERM));
    assert_eq!(grandchild.open(&secret), Err(EPERM));
}

#[test]
fn processes_outside_the_cgroup_are_unaffected() {
    let home = fixture_dir("outside");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("outside", &home, &[&secret]);
    let sibling = Cgroup::new("outside-sibling");

    assert_eq!(cg.open(&secret), Err(EPERM));
    assert_eq!(open_unconfined(&secret), Ok("s".into()));
    assert_eq!(sibling.open(&secret), Ok("s".into()));
}

#[test]
fn after_detach_the_file_opens_again() {
    let home = fixture_dir("detach");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("detach", &home, &[&secret]);
    assert_eq!(cg.open(&secret), Err(EPERM));

    detach(&cg);
    assert_eq!(cg.open(&secret), Ok("s".into()));
}

#[test]
fn attaching_again_switches_to_the_new_policy() {
    let home = fixture_dir("switch");
    let a = home.join("a");
    let b = home.join("b");
    write(&a, "a");
    write(&b, "b");
    let cg = confined("switch", &home, &[&a]);
    assert_eq!(cg.open(&a), Err(EPERM));

    let policy = deny_read_policy(&home, &[&b]);
    let out = attach(&cg, &policy, &home);
    assert!(stdout(&out).contains("switched to"), "{}", stdout(&out));
    assert_eq!(cg.open(&a), Ok("a".into()));
    assert_eq!(cg.open(&b), Err(EPERM));
}

#[test]
fn a_confined_root_process_cannot_detach_or_replace_its_own_policy() {
    let home = fixture_dir("selfdetach");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("selfdetach", &home, &[&secret]);
    let empty = policy_file(&home, "empty", "deny_read: []\n");

    let detach = cg.run(&[
        "sandbox-agent",
        "detach",
        "--cgroup",
        cg.path.to_str().unwrap(),
    ]);
    assert!(!detach.status.success());
    assert!(
        stderr(&detach).contains("cannot be changed from inside a sandbox"),
        "{}",
        stderr(&detach)
    );
    let replace = cg.run(&[
        "sandbox-agent",
        "attach",
        "--cgroup",
        cg.path.to_str().unwrap(),
        "--policy",
        empty.to_str().unwrap(),
    ]);
    assert!(!replace.status.success(), "{}", stdout(&replace));
    assert_eq!(cg.open(&secret), Err(EPERM));
}
