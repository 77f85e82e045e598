//! A policy larger than one batch of map writes (the daemon writes and removes rules 4,096 at
//! a time) is in force whole, replaced whole and removed whole: every one of its files is
//! denied after attach and after a re-attach, and the rule maps hold as many entries after
//! detach as before it (counted in the kernel maps, through the daemon's metrics).

use std::path::{Path, PathBuf};

use crate::{
    harness::*,
    metrics::{scrape, value},
};

const FILES: usize = 5000;

#[test]
fn a_policy_of_5000_files_is_enforced_whole_and_leaves_no_entry_behind() {
    let home = fixture_dir("large-policy");
    let files: Vec<PathBuf> = (0..FILES).map(|i| home.join(format!("f{i}"))).collect();
    for f in &files {
        write(f, "secret");
    }
    let listed: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let policy = deny_read_policy(&home, &listed);
    let before = rule_entries();
    let cg = Cgroup::new("large-policy");

    attach(&cg, &policy, &home);
    assert_eq!(denied_files(&cg, &home), FILES, "after attach");
    let attached = rule_entries();
    // Each file's inode and name, and the directory that holds them.
    assert!(
        attached.0 > before.0 + FILES as u64,
        "{before:?} -> {attached:?}"
    );
    assert!(
        attached.1 >= before.1 + FILES as u64,
        "{before:?} -> {attached:?}"
    );

    // A new generation is written, then the old one removed.
    attach(&cg, &policy, &home);
    assert_eq!(denied_files(&cg, &home), FILES, "after the re-attach");
    assert_eq!(
        rule_entries(),
        attached,
        "the replaced generation left entries"
    );

    detach(&cg);
    assert_eq!(rule_entries(), before, "the detached policy left entries");
    assert_eq!(denied_files(&cg, &home), 0, "after detach");
}

/// Entries of INODE_RULES and NAME_RULES.
fn rule_entries() -> (u64, u64) {
    let text = scrape();
    let entries = |map| value(&text, "sandbox_agent_map_entries", &[("map", map)]) as u64;
    (entries("INODE_RULES"), entries("NAME_RULES"))
}

/// How many of `dir`'s `f*` files a process in `cg` is refused (EPERM) when it opens them.
fn denied_files(cg: &Cgroup, dir: &Path) -> usize {
    let script = r#"
import errno, os, sys
n = 0
for name in os.listdir(sys.argv[1]):
    if name.startswith("f"):
        try:
            open(os.path.join(sys.argv[1], name), "rb").close()
        except PermissionError as e:
            n += e.errno == errno.EPERM
print("OK:%d" % n, end="")
"#;
    cg.probe(script, &[dir.to_str().unwrap()])
        .expect("the probe lists the directory")
        .parse()
        .unwrap()
}
