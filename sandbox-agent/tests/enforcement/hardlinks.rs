//! A rule on a directory follows its files under every name: hardlinks made before the attach
//! (found by the daemon), and hardlinks made afterwards by anyone, confined or not (noticed by
//! the kernel as they are made). And the names inside a deny_read directory, or at a deny_read
//! name that does not exist yet, belong to the owner: a confined task plants no symlink,
//! hardlink or renamed file there for the owner to write a secret through later.

use std::{os::unix::fs::PermissionsExt, path::Path};

use crate::{
    filesystems::{as_whom, dir_on, file, mounted, step},
    harness::*,
};

/// `home/creds/token` and `home/public/readme`, usable by a confined user too.
fn creds_and_public(home: &Path) {
    for d in ["creds", "public"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
        std::fs::set_permissions(home.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    file(&home.join("creds/token"), "t");
    file(&home.join("public/readme"), "r");
}

/// Reads `paths` from inside as root and as a user; (root output, user output).
fn read_all(cg: &Cgroup, paths: &[(&str, &Path)]) -> [String; 2] {
    let script: String = paths
        .iter()
        .map(|(name, p)| format!("cat {} >/dev/null; echo {name}=$?\n", p.display()))
        .collect();
    [as_whom(cg, false, &script), as_whom(cg, true, &script)]
}

fn hardlinks_are_denied_on(label: &str, home: &Path) {
    creds_and_public(home);
    let before = home.join("public/old-link");
    std::fs::hard_link(home.join("creds/token"), &before).unwrap();
    let policy = deny_read_policy(home, &[&home.join("creds")]);
    let cg = Cgroup::new(&format!("hardlinks-{label}"));
    attach(&cg, &policy, home);
    // Made by someone outside after the attach.
    let after = home.join("public/new-link");
    std::fs::hard_link(home.join("creds/token"), &after).unwrap();
    // A hardlink of a file no rule covers stays what it was.
    let plain = home.join("public/readme-link");
    std::fs::hard_link(home.join("public/readme"), &plain).unwrap();

    for out in read_all(
        &cg,
        &[("before", &before), ("after", &after), ("plain", &plain)],
    ) {
        assert_ne!(step(&out, "before"), 0, "{label}: link made before: {out}");
        assert_ne!(step(&out, "after"), 0, "{label}: link made after: {out}");
        assert_eq!(step(&out, "plain"), 0, "{label}: unrelated link: {out}");
        assert!(out.contains("Operation not permitted"), "{out}");
    }
    let records = records_for(&after, 2);
    assert!(
        records
            .iter()
            .any(|r| r["hook"] == "file_open" && r["action"] == "deny"),
        "{label}: {records:?}"
    );
}

#[test]
fn hardlinks_of_files_in_a_denied_directory_are_denied_whenever_and_by_whomever_made() {
    hardlinks_are_denied_on("tmpfs", &fixture_dir("hardlinks"));
    hardlinks_are_denied_on("ext4", &dir_on(mounted("ext4"), "hardlinks"));
}

#[test]
fn no_name_can_be_planted_in_a_denied_directory_or_at_a_denied_name() {
    let home = fixture_dir("planted");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o777)).unwrap();
    file(&ssh.join("id_ed25519"), "key");
    // ~/.aws does not exist yet: the owner's `aws configure` will create it.
    let aws = home.join(".aws");
    let policy = deny_read_policy(&home, &[&ssh, &aws]);
    let cg = Cgroup::new("planted");
    attach(&cg, &policy, &home);

    for (user, who) in [(false, "root"), (true, "user")] {
        let mine = home.join(format!("mine-{who}"));
        let script = format!(
            "cd {home}; touch {mine} {mine}.2; mkdir -p trap-{who}\n\
             ln -s /tmp/trap .ssh/id_new_{who}; echo symlink=$?\n\
             ln {mine} .ssh/hard_{who}; echo hardlink=$?\n\
             mv {mine}.2 .ssh/moved_{who}; echo rename=$?\n\
             mv {mine}.2 .ssh/id_ed25519; echo replace=$?\n\
             ln -s trap-{who} .aws; echo missing_symlink=$?\n\
             mv trap-{who} .aws; echo missing_rename=$?\n\
             mkdir .ssh/dir_{who}; echo mkdir=$?\n\
             touch .ssh/new_{who}; echo create=$?\n\
             ln -s /tmp/trap public-{who}; echo elsewhere=$?\n",
            home = home.display(),
            mine = mine.display()
        );
        let out = as_whom(&cg, user, &script);
        for name in [
            "symlink",
            "hardlink",
            "rename",
            "replace",
            "missing_symlink",
            "missing_rename",
            "mkdir",
            "create",
        ] {
            assert_ne!(step(&out, name), 0, "{who}: {name} was allowed: {out}");
        }
        assert_eq!(step(&out, "elsewhere"), 0, "{who}: {out}");
        assert!(out.contains("Operation not permitted"), "{who}: {out}");
        for planted in [
            format!("id_new_{who}"),
            format!("hard_{who}"),
            format!("moved_{who}"),
            format!("dir_{who}"),
            format!("new_{who}"),
        ] {
            assert!(
                std::fs::symlink_metadata(ssh.join(&planted)).is_err(),
                "{who}: {planted} was created in .ssh"
            );
        }
        assert!(
            std::fs::symlink_metadata(&aws).is_err(),
            "{who}: .aws planted"
        );
    }
    assert_eq!(
        std::fs::read_to_string(ssh.join("id_ed25519")).unwrap(),
        "key"
    );
    // The owner, outside, still makes what they like there.
    std::fs::create_dir_all(aws.join("x")).unwrap();
    std::os::unix::fs::symlink("/tmp", ssh.join("owner-link")).unwrap();
}

#[test]
fn a_later_hardlink_out_of_nested_protected_directories_is_denied_to_each_policy() {
    // One policy protects the outer directory, another only the inner one: the file linked out
    // of the inner directory is denied to both.
    let home = fixture_dir("nested-links");
    let (outer, inner) = (home.join("config"), home.join("config/cloud"));
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::create_dir_all(home.join("public")).unwrap();
    file(&inner.join("token"), "t");
    let by_outer = Cgroup::new("nested-links-outer");
    attach(&by_outer, &deny_read_policy(&home, &[&outer]), &home);
    let inner_home = fixture_dir("nested-links-inner");
    let inner_policy = policy_file(
        &inner_home,
        "inner",
        &format!("deny_read: [{}]\n", inner.display()),
    );
    let by_inner = Cgroup::new("nested-links-inner");
    attach(&by_inner, &inner_policy, &home);

    let link = home.join("public/token-link");
    std::fs::hard_link(inner.join("token"), &link).unwrap();

    assert_eq!(
        by_outer.open(&link),
        Err(EPERM),
        "the outer directory's policy"
    );
    assert_eq!(
        by_inner.open(&link),
        Err(EPERM),
        "the inner directory's policy"
    );
    assert_eq!(open_unconfined(&link), Ok("t".to_string()));
}
