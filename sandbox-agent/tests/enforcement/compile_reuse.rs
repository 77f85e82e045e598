//! The daemon reuses a compiled policy for a second `run` with the same inputs only while
//! nothing the compile read has changed. Each scenario runs twice with one change made
//! outside in between, a change a reused compile would not know, and shows the second run
//! compiled again and enforces the change.

use std::{path::Path, process::Output};

use crate::harness::*;

const REUSED: &str = "the daemon reused its compile of this policy";

/// `run --verbose` under `policy`, in `workspace`, of `sh -c script`.
fn run_in(workspace: &Path, policy: &Path, home: &Path, script: &str) -> Output {
    let out = agent()
        .current_dir(workspace)
        .args(["run", "--verbose", "--policy"])
        .arg(policy)
        .arg("--home")
        .arg(home)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// The second run after `change`: it must have compiled again and print what `script` says.
fn after_change(
    workspace: &Path,
    policy: &Path,
    home: &Path,
    script: &str,
    change: impl FnOnce(),
) -> String {
    let first = run_in(workspace, policy, home, "true");
    assert!(!stderr(&first).contains(REUSED), "{}", stderr(&first));
    change();
    let second = run_in(workspace, policy, home, script);
    assert!(
        !stderr(&second).contains(REUSED),
        "the change was not seen: {}",
        stderr(&second)
    );
    stdout(&second)
}

/// A home with an ssh key, a policy denying `~/.ssh`, and a script that tries to read the key.
fn home_with_a_key(name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let home = fixture_dir(name);
    write(&home.join(".ssh/id_ed25519"), "key");
    let policy = policy_file(&home, name, "deny_read:\n  - ~/.ssh\n");
    let key = home.join(".ssh/id_ed25519");
    let script = format!("cat {}; echo exit=$?", key.display());
    (home, policy, script)
}

#[test]
fn an_unchanged_second_run_reuses_the_compile_and_denies_as_the_first() {
    let (home, policy, script) = home_with_a_key("reuse-same");

    let reused = || {
        let text = crate::metrics::scrape();
        crate::metrics::value(&text, "sandbox_agent_policy_compiles_reused_total", &[])
    };
    let before = reused();
    let first = run_in(&home, &policy, &home, &script);
    let second = run_in(&home, &policy, &home, &script);

    assert_eq!(reused(), before + 1.0, "/metrics counts the reuse");
    assert!(!stderr(&first).contains(REUSED), "{}", stderr(&first));
    assert!(stderr(&second).contains(REUSED), "{}", stderr(&second));
    for out in [&first, &second] {
        assert!(stdout(out).contains("exit=1"), "{}", stdout(out));
        assert!(!stdout(out).contains("key"), "{}", stdout(out));
    }
}

#[test]
fn a_file_made_between_runs_where_the_compile_never_looked_keeps_the_reuse() {
    // The home was only looked up into (for `.ssh`): a new name beside it changes nothing the
    // compile read, as an editor's or a shell's files do all day.
    let (home, policy, script) = home_with_a_key("reuse-unrelated");

    run_in(&home, &policy, &home, "true");
    write(&home.join("notes.txt"), "x");
    std::fs::create_dir(home.join("build")).unwrap();
    let second = run_in(&home, &policy, &home, &script);

    assert!(stderr(&second).contains(REUSED), "{}", stderr(&second));
    assert!(stdout(&second).contains("exit=1"), "{}", stdout(&second));
}

/// A hardlink made between runs, to a key in a denied `~/.ssh` of `home`, in `elsewhere`: a
/// directory the compile never looks in, so only the file's own link count tells.
fn a_hardlink_made_between_runs_is_denied(home: &Path, elsewhere: &Path, label: &str) {
    write(&home.join(".ssh/id_ed25519"), "key");
    let policy = policy_file(home, label, "deny_read:\n  - ~/.ssh\n");
    let other = elsewhere.join("notes");

    let said = after_change(
        home,
        &policy,
        home,
        &format!("cat {}; echo exit=$?", other.display()),
        || std::fs::hard_link(home.join(".ssh/id_ed25519"), &other).unwrap(),
    );

    assert!(said.contains("exit=1"), "{label}: {said}");
    assert!(!said.contains("key"), "{label}: {said}");
}

#[test]
fn a_hardlink_made_between_runs_to_a_file_in_a_denied_directory_is_denied() {
    a_hardlink_made_between_runs_is_denied(
        &fixture_dir("reuse-link"),
        &fixture_dir("reuse-link-elsewhere"),
        "reuse-link",
    );
}

#[test]
fn a_file_linked_into_a_denied_directory_between_runs_is_denied_under_its_other_name() {
    let home = fixture_dir("reuse-link-in");
    std::fs::create_dir(home.join(".ssh")).unwrap();
    let policy = policy_file(&home, "reuse-link-in", "deny_read:\n  - ~/.ssh\n");
    let outside = fixture_dir("reuse-link-in-elsewhere").join("token");
    write(&outside, "linked-secret");

    let said = after_change(
        &home,
        &policy,
        &home,
        &format!("cat {}; echo exit=$?", outside.display()),
        || std::fs::hard_link(&outside, home.join(".ssh/token")).unwrap(),
    );

    assert!(said.contains("exit=1"), "{said}");
    assert!(!said.contains("linked-secret"), "{said}");
}

/// `~/.docker` of `home` retargeted between runs from one dotfiles directory to another.
fn a_retargeted_symlink_moves_the_denial(home: &Path, label: &str) {
    write(&home.join("dotfiles-a/config.json"), "a");
    write(&home.join("dotfiles-b/config.json"), "b-secret");
    std::os::unix::fs::symlink(home.join("dotfiles-a"), home.join(".docker")).unwrap();
    let policy = policy_file(home, label, "deny_read:\n  - ~/.docker/config.json\n");

    let said = after_change(
        home,
        &policy,
        home,
        &format!(
            "cat {}; echo exit=$?",
            home.join(".docker/config.json").display()
        ),
        || {
            std::fs::remove_file(home.join(".docker")).unwrap();
            std::os::unix::fs::symlink(home.join("dotfiles-b"), home.join(".docker")).unwrap();
        },
    );

    assert!(said.contains("exit=1"), "{label}: {said}");
    assert!(!said.contains("b-secret"), "{label}: {said}");
}

#[test]
fn a_symlink_on_the_way_retargeted_between_runs_moves_the_denial_with_it() {
    a_retargeted_symlink_moves_the_denial(&fixture_dir("reuse-symlink"), "reuse-symlink");
}

#[test]
fn a_git_file_rewritten_between_runs_protects_the_hooks_it_now_leads_to() {
    let base = fixture_dir("reuse-git");
    let workspace = base.join("ws");
    for repo in ["repo-a", "repo-b"] {
        std::fs::create_dir_all(base.join(repo).join("hooks")).unwrap();
    }
    let gitfile = |repo: &str| format!("gitdir: {}\n", base.join(repo).display());
    write(&workspace.join(".git"), &gitfile("repo-a"));
    let policy = policy_file(
        &base,
        "reuse-git",
        "deny_write:\n  - $GIT_COMMON_DIR/hooks\n",
    );
    let hook = base.join("repo-b/hooks/pre-commit");

    let said = after_change(
        &workspace,
        &policy,
        &base,
        &format!("echo evil > {}; echo exit=$?", hook.display()),
        || write(&workspace.join(".git"), &gitfile("repo-b")),
    );

    // dash reports a redirection it could not make with status 2.
    assert!(said.contains("exit=2"), "{said}");
    assert!(!hook.exists(), "{} was planted", hook.display());
}

#[test]
fn a_mount_made_between_runs_over_a_denied_directory_is_denied() {
    let home = fixture_dir("reuse-mount");
    std::fs::create_dir(home.join("secrets")).unwrap();
    let policy = policy_file(&home, "reuse-mount", "deny_read:\n  - ~/secrets\n");
    let secret = home.join("secrets/token");
    let mount = |args: &[&str]| {
        let status = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    let dir = home.join("secrets").display().to_string();

    let said = after_change(
        &home,
        &policy,
        &home,
        &format!("cat {}; echo exit=$?", secret.display()),
        || {
            mount(&["mount", "-t", "tmpfs", "tmpfs", &dir]);
            write(&secret, "mounted-secret");
        },
    );
    mount(&["umount", &dir]);

    assert!(said.contains("exit=1"), "{said}");
    assert!(!said.contains("mounted-secret"), "{said}");
}

/// Two unchanged runs: the second compiled again all the same.
fn never_reused(home: &Path, policy: &Path) {
    for _ in 0..2 {
        let out = run_in(home, policy, home, "true");
        assert!(!stderr(&out).contains(REUSED), "{}", stderr(&out));
    }
}

#[test]
fn a_compile_that_read_an_overlay_is_never_reused() {
    // Changes made in an overlay's layers underneath reach no watch on the overlay.
    let base = fixture_dir("reuse-overlay");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
        std::fs::create_dir(base.join(d)).unwrap();
        base.join(d)
    });
    write(&lower.join("secret"), "s");
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success());
    let policy = policy_file(
        &base,
        "reuse-overlay",
        &format!("deny_read:\n  - {}\n", merged.join("secret").display()),
    );

    never_reused(&base, &policy);

    let _ = std::process::Command::new("umount").arg(&merged).status();
}

#[test]
fn a_policy_that_names_hosts_is_never_reused() {
    // Its addresses can change with no file changing.
    let home = fixture_dir("reuse-hosts");
    let policy = policy_file(
        &home,
        "reuse-hosts",
        "network:\n  deny:\n    - \"localhost:9\"\n",
    );

    never_reused(&home, &policy);
}

/// The hardlink and the symlink scenarios above, with every file on `base`'s filesystem.
fn changes_are_seen_on(label: &str, base: &Path) {
    use crate::filesystems::dir_on;
    a_hardlink_made_between_runs_is_denied(
        &dir_on(base, &format!("reuse-{label}-home")),
        &dir_on(base, &format!("reuse-{label}-elsewhere")),
        &format!("reuse-{label}"),
    );
    a_retargeted_symlink_moves_the_denial(
        &dir_on(base, &format!("reuse-{label}-dotfiles")),
        &format!("reuse-{label}-symlink"),
    );
}

#[test]
fn changes_between_runs_are_seen_on_ext4_xfs_and_a_btrfs_subvolume() {
    use crate::filesystems::{mounted, subvolume};
    changes_are_seen_on("ext4", mounted("ext4"));
    changes_are_seen_on("xfs", mounted("xfs"));
    changes_are_seen_on("btrfs", &subvolume("reuse"));
}

#[test]
fn a_directory_the_first_run_makes_on_a_denied_path_is_seen_by_the_next_compile() {
    // The confined command itself makes a directory the compile found missing (it may: only
    // the denied path's own name is closed), then the developer's tool fills in the rest. The
    // next compile must see the directory, as it sees a change made outside.
    let home = fixture_dir("reuse-inside");
    let policy = policy_file(&home, "reuse-inside", "deny_read:\n  - ~/.config/gcloud\n");
    let creds = home.join(".config/gcloud/credentials.db");

    let first = run_in(
        &home,
        &policy,
        &home,
        &format!("mkdir {}; echo made=$?", home.join(".config").display()),
    );
    assert!(stdout(&first).contains("made=0"), "{}", stdout(&first));
    write(&creds, "the-token");
    let second = run_in(
        &home,
        &policy,
        &home,
        &format!("cat {}; echo exit=$?", creds.display()),
    );

    assert!(
        !stderr(&second).contains(REUSED),
        "the change was not seen: {}",
        stderr(&second)
    );
    assert!(stdout(&second).contains("exit=1"), "{}", stdout(&second));
    assert!(!stdout(&second).contains("the-token"));
}
