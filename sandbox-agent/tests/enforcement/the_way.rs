//! The way to a protected path stays in place. Rules are keyed on inodes, so a confined task
//! that moved `.git` aside (or `~/.config`, or removed an empty `~/.docker`, or pointed a
//! symlinked `~/.gitconfig` elsewhere) and made its own in its place would leave the rules on
//! the old ones, while the owner's git, docker or shell later used the new ones: hooks planted
//! for the developer's next commit, a secret written where the agent reads it. Every directory
//! above a denied path and every symlink on the way cannot be moved, removed or replaced from
//! inside, by root or a user, on each filesystem; what is inside those directories stays free.
//! A symlink whose target does not exist yet is denied at the target, where the owner's
//! program creates the file through it.

use std::{os::unix::fs::PermissionsExt, path::Path};

use crate::{
    changes::*,
    filesystems::{dir_on, mounted, subvolume},
    harness::*,
};

/// A home with a workspace whose `.git/hooks` and `.git/config` are protected, a symlinked
/// `~/.gitconfig`, `~/.config/git/config`, and an empty `~/.docker` where the owner's
/// `docker login` will write `config.json`; everything writable by the confined user. No
/// `~/.azure` yet: the owner makes `~/.azure/tokens/creds` after the attach.
fn lay_out(home: &Path) {
    for dir in [
        "ws/.git/hooks",
        ".config/git",
        ".docker",
        "dotfiles",
        "other",
        "spare",
        "empty",
    ] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    for file in [
        "ws/.git/config",
        "ws/.git/description",
        ".config/git/config",
        ".config/other.conf",
        "dotfiles/gitconfig",
        "payload",
    ] {
        write(&home.join(file), "[owner]\n");
    }
    std::os::unix::fs::symlink("dotfiles/gitconfig", home.join(".gitconfig")).unwrap();
    // Its target is made by the owner's `npm login`, through the symlink.
    std::os::unix::fs::symlink("dotfiles/npmrc", home.join(".npmrc")).unwrap();
    let everyone = std::fs::Permissions::from_mode(0o777);
    for entry in walkdir(home) {
        std::fs::set_permissions(&entry, everyone.clone()).unwrap();
    }
}

/// `dir` and everything below it, symlinks not followed (nor listed: their mode is unused).
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walkdir(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

/// Tries every way of moving what leads to the protected paths of `home` from inside `cg`.
fn try_moving_the_way(cg: &Cgroup, user: bool, home: &Path) {
    let p = |rel: &str| home.join(rel);
    let (git, config, docker, link) = (p("ws/.git"), p(".config"), p(".docker"), p(".gitconfig"));
    let azure = p(".azure");
    let tries: &[(&str, &str, &[&Path])] = &[
        ("move_git", "rename", &[&git, &p("ws/.git-old")]),
        ("exchange_git", "exchange", &[&git, &p("other")]),
        ("move_workspace", "rename", &[&p("ws"), &p("ws2")]),
        ("move_config", "rename", &[&config, &p(".config-old")]),
        ("remove_docker", "rmdir", &[&docker]),
        ("replace_docker", "rename", &[&p("spare"), &docker]),
        ("unlink_symlink", "unlink", &[&link]),
        ("replace_symlink", "rename", &[&p("payload"), &link]),
        (
            "move_symlink_target_dir",
            "rename",
            &[&p("dotfiles"), &p("df")],
        ),
        // Made after the attach, on the way to a path that did not exist then.
        ("move_later_dir", "rename", &[&azure, &p(".azure-old")]),
        (
            "move_later_subdir",
            "rename",
            &[&p(".azure/tokens"), &p(".azure/t")],
        ),
        ("beside_later_dir", "mkdir", &[&p(".azure/other")]),
        // What is inside the way, or beside it, stays free.
        (
            "inside_git",
            "rename",
            &[&p("ws/.git/description"), &p("ws/.git/d")],
        ),
        ("sibling", "rename", &[&p("other"), &p("other2")]),
        ("unrelated_rmdir", "rmdir", &[&p("empty")]),
        ("inside_config", "unlink", &[&p(".config/other.conf")]),
    ];
    let results = if user {
        try_changes_as_user(cg, tries)
    } else {
        try_changes(Some(cg), tries)
    };
    assert_only_allowed(
        &results,
        &[
            "inside_git",
            "sibling",
            "unrelated_rmdir",
            "inside_config",
            "beside_later_dir",
        ],
    );
}

fn the_way_holds_on(label: &str, base: &Path) {
    let [root_home, user_home] = ["root", "user"].map(|who| dir_on(base, &format!("way-{who}")));
    for home in [&root_home, &user_home] {
        lay_out(home);
    }
    let policy = policy_file(
        &root_home,
        "the-way",
        &protect_in(&[&root_home, &user_home]),
    );
    let cg = Cgroup::new(&format!("the-way-{label}"));
    attach(&cg, &policy, &root_home);

    // The owner's `az login`, outside, after the attach.
    for home in [&root_home, &user_home] {
        write(&home.join(".azure/tokens/creds"), "secret");
        for dir in [".azure", ".azure/tokens"] {
            std::fs::set_permissions(home.join(dir), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        }
    }
    try_moving_the_way(&cg, false, &root_home);
    try_moving_the_way(&cg, true, &user_home);

    for home in [&root_home, &user_home] {
        assert!(home.join("ws/.git/hooks").is_dir(), "{label}: .git moved");
        // The owner logs in later, outside: the agent still cannot read what was written.
        std::fs::write(home.join(".docker/config.json"), "{\"auths\": \"secret\"}").unwrap();
        std::fs::write(home.join(".npmrc"), "//registry/:_authToken=secret").unwrap();
        for secret in [
            ".docker/config.json",
            ".azure/tokens/creds",
            ".npmrc",
            "dotfiles/npmrc",
        ] {
            assert_eq!(cg.open(&home.join(secret)), Err(EPERM), "{label}: {secret}");
        }
    }
    let record = record_of(&cg, "path_rename", |r| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|rule| rule.contains(".git/"))
    });
    assert!(
        record["rule"].as_str().unwrap().starts_with("deny_write "),
        "{label}: {record}"
    );
}

/// A policy protecting the same paths in each home.
fn protect_in(homes: &[&Path]) -> String {
    let list = |key: &str, rels: &[&str]| {
        let mut s = format!("{key}:\n");
        for home in homes {
            for rel in rels {
                s.push_str(&format!("  - {}/{rel}\n", home.display()));
            }
        }
        s
    };
    list(
        "deny_write",
        &[
            "ws/.git/hooks",
            "ws/.git/config",
            ".config/git/config",
            ".gitconfig",
        ],
    ) + &list(
        "deny_read",
        &[".docker/config.json", ".azure/tokens/creds", ".npmrc"],
    )
}

#[test]
fn what_leads_to_a_protected_path_cannot_be_moved_removed_or_replaced() {
    the_way_holds_on("tmpfs", &fixture_dir("the-way"));
    the_way_holds_on("ext4", mounted("ext4"));
    the_way_holds_on("xfs", mounted("xfs"));
    the_way_holds_on("btrfs-subvolume", &subvolume("the-way"));
}
