//! Under `other_repositories: deny` a confined task changes no repository but its workspace's:
//! nothing below another repository's `.git` (its hooks and config run in the developer's next
//! git there) or Mercurial's, Jujutsu's or Sapling's directory, no such directory made (`~/.git`
//! would turn every directory of `~` into a repository whose config a shell prompt's
//! `git status` runs), moved or removed, no bare repository's `HEAD` made (git run in a
//! directory holding one takes it for a repository, with no `.git`), and nothing below a
//! directory named like a bare repository (`mirror.git`) changed, by any name of it, on every
//! filesystem (an overlay's too), for a confined root and an ordinary user. Its own repository commits and
//! switches branches as before; outside, the same changes all work.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    filesystems::{dir_on, mounted, overlay_on_ext4, step},
    harness::*,
};

/// `python3 -c PROBE BASE`: changes to the repository `BASE/other` (made by `repos`), and
/// `.git`s made, moved and removed in `BASE/plain`; every step prints `name=errno`.
const PROBE: &str = r##"
import os, sys
base = sys.argv[1]
git = base + "/other/.git"
plain = base + "/plain"
stage = base + "/stage-%d" % os.getpid()
def append(p):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o755)
    os.write(fd, b"\n[core]\n\tfsmonitor = /tmp/payload\n")
    os.close(fd)
def rename_in():
    with open(stage, "w") as f:
        f.write("#!/bin/sh\n")
    os.rename(stage, git + "/hooks/post-checkout")
def through_symlink():
    os.symlink(git + "/hooks", plain + "/alias")
    append(plain + "/alias/pre-push")
def through_descriptor():
    fd = os.open(git + "/hooks", os.O_PATH)
    os.close(os.open("pre-rebase", os.O_CREAT | os.O_WRONLY, 0o755, dir_fd=fd))
def through_proc():
    fd = os.open(git, os.O_PATH)
    append("/proc/self/fd/%d/config" % fd)
def git_file():
    with open(plain + "/sub/.git", "w") as f:
        f.write("gitdir: /tmp/elsewhere\n")
step("read_config", lambda: open(git + "/config").read())
step("work_tree", lambda: append(base + "/other/README"))
step("new_hook", lambda: append(git + "/hooks/pre-commit"))
step("hook", lambda: append(git + "/hooks/post-merge"))
step("config", lambda: append(git + "/config"))
step("truncate", lambda: os.truncate(git + "/config", 0))
step("chmod", lambda: os.chmod(git + "/hooks/post-merge", 0o777))
step("unlink", lambda: os.unlink(git + "/hooks/post-merge"))
step("rename_in", rename_in)
step("link_out", lambda: os.link(git + "/config", plain + "/config-link"))
step("symlink", through_symlink)
step("descriptor", through_descriptor)
step("proc", through_proc)
step("move_git", lambda: os.rename(git, base + "/other/.git-old"))
step("remove_git", lambda: os.rmdir(plain + "/empty/.git"))
step("make_git", lambda: os.mkdir(plain + "/.git"))
step("git_file", git_file)
step("git_symlink", lambda: os.symlink("/tmp/elsewhere", plain + "/sub2/.git"))
step("upper_case", lambda: os.mkdir(plain + "/.GIT"))
step("move_in", lambda: os.rename(plain + "/repo-to-be", plain + "/sub3/.git"))
def bare_head(name):
    with open(plain + "/bare/" + name, "w") as f:
        f.write("ref: refs/heads/main\n")
step("bare_head", lambda: bare_head("HEAD"))
step("head_symlink", lambda: os.symlink("refs/heads/main", plain + "/bare2/HEAD"))
step("head_rename", lambda: os.rename(plain + "/head-to-be", plain + "/bare3/HEAD"))
step("head_link", lambda: os.link(plain + "/head-to-link", plain + "/bare4/HEAD"))
step("hg_config", lambda: append(base + "/hg/.hg/hgrc"))
step("make_hg", lambda: os.mkdir(plain + "/.hg"))
step("make_jj", lambda: os.mkdir(plain + "/.jj"))
step("make_sl", lambda: os.mkdir(plain + "/.SL"))
step("bare_by_name", lambda: append(base + "/mirror.git/hooks/post-receive"))
step("make_bare_by_name", lambda: os.mkdir(plain + "/new.Git"))
step("program_named_head", lambda: bare_head("head"))
step("not_quite_bare", lambda: os.mkdir(plain + "/notes.gitx"))
step("below_a_head", lambda: append(plain + "/HEAD-dir/HEAD/notes"))
"##;

/// Steps that change another repository, or make one: refused inside, done outside.
const CHANGES: [&str; 28] = [
    "new_hook",
    "hook",
    "config",
    "truncate",
    "chmod",
    "unlink",
    "rename_in",
    "link_out",
    "symlink",
    "descriptor",
    "proc",
    "move_git",
    "remove_git",
    "make_git",
    "git_file",
    "git_symlink",
    "upper_case",
    "move_in",
    "bare_head",
    "head_symlink",
    "head_rename",
    "head_link",
    "hg_config",
    "make_hg",
    "make_jj",
    "make_sl",
    "bare_by_name",
    "make_bare_by_name",
];
/// Reading a repository, and its work tree, stay as they were; so do a file named `head` (git
/// opens `HEAD` exactly), files below a directory named `HEAD`, and a name that only starts
/// like a bare repository's.
const KEPT: [&str; 5] = [
    "read_config",
    "work_tree",
    "program_named_head",
    "below_a_head",
    "not_quite_bare",
];

/// The developer's repository `base/other` (a hook, a work tree file), a Mercurial one
/// `base/hg`, a bare one `base/mirror.git`, and a directory `plain` that is no repository (an empty `.git` below it to remove,
/// a directory to move in as one, the `objects` and `refs` of bare repositories but their
/// `HEAD`), all owned by the user so that only the policy refuses.
fn repos(base: &Path) -> PathBuf {
    let other = base.join("other");
    std::fs::create_dir_all(&other).unwrap();
    developers_git(&other, "init -q");
    write(&other.join("README"), "the developer's\n");
    write(&other.join(".git/hooks/post-merge"), "#!/bin/sh\n");
    write(&base.join("hg/.hg/hgrc"), "[ui]\n");
    write(&base.join("mirror.git/hooks/post-receive"), "#!/bin/sh\n");
    for head in ["plain/head-to-be", "plain/head-to-link"] {
        write(&base.join(head), "ref: refs/heads/main\n");
    }
    for bare in ["bare", "bare2", "bare3", "bare4"] {
        std::fs::create_dir_all(base.join("plain").join(bare).join("objects")).unwrap();
        std::fs::create_dir_all(base.join("plain").join(bare).join("refs/heads")).unwrap();
    }
    for dir in [
        "plain/sub",
        "plain/sub2",
        "plain/sub3",
        "plain/empty/.git",
        "plain/repo-to-be",
        "plain/HEAD-dir/HEAD",
    ] {
        std::fs::create_dir_all(base.join(dir)).unwrap();
    }
    give_to(USER_UID, base);
    base.to_path_buf()
}

/// `git ARGS` in `dir`, unconfined.
fn developers_git(dir: &Path, args: &str) {
    let out = Command::new("sh")
        .args(["-c", &format!("cd {} && git {args}", dir.display())])
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args}: {}", stderr(&out));
}

/// Inside `cg`, as the user or root: a commit and a new branch in the workspace's own repository
/// (git rewrites its `HEAD`), and neither a repository nor a bare one made below it.
fn commits_in_own_repository(cg: &Cgroup, user: bool, ws: &Path, who: &str) {
    let script = format!(
        "export HOME={ws}; cd {ws} && echo {who} >> file && git -c safe.directory='*' -c user.name=a \
         -c user.email=a@a commit -q -a -m {who} && echo committed; \
         git -c safe.directory='*' checkout -q -b branch-{who} && echo switched; \
         git -c safe.directory='*' init -q nested 2>&1 || echo nested=refused; \
         git -c safe.directory='*' init -q --bare bare-{who} 2>&1 || echo bare=refused",
        ws = ws.display()
    );
    let out = cg.run_as(user, &["sh", "-c", &script]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("committed"), "{who}: own commit: {text}");
    assert!(text.contains("switched"), "{who}: own branch: {text}");
    assert!(
        text.contains("nested=refused"),
        "{who}: git init below: {text}"
    );
    assert!(
        text.contains("bare=refused"),
        "{who}: git init --bare below: {text}"
    );
}

#[test]
fn no_repository_but_the_workspaces_own_changes_inside() {
    let dir = fixture_dir("other-repos");
    let home = dir.join("home");
    let ws = home.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    write(&ws.join("file"), "start\n");
    developers_git(
        &ws,
        "init -q && git add file && git -c user.name=d -c user.email=d@d commit -q -m start",
    );
    // The developer's global hooks, which their other repositories run; the workspace's own
    // repository takes its hooks elsewhere (husky's way), so only this rule keeps them.
    write(
        &home.join(".gitconfig"),
        "[core]\n\thooksPath = ~/.githooks\n",
    );
    developers_git(&ws, "config core.hooksPath .husky/_");
    // Where a package manager keeps its git checkouts, given to the sandbox's repositories.
    let cache = home.join(".cargo/git");
    std::fs::create_dir_all(&cache).unwrap();
    give_to(USER_UID, &home);
    let cg = Cgroup::new("other-repos");
    let body = format!(
        "other_repositories: deny\nown_repositories: [{:?}]\n",
        cache.display().to_string()
    );
    let policy = policy_file(&dir, "other-repos", &body);
    let out = try_attach_workspace(&cg.path, &policy, &home, &ws);
    assert!(out.status.success(), "attach: {}", stderr(&out));

    let (_, overlay) = overlay_on_ext4("other-repos-ovl", |_| ());
    let outside = steps_as(
        None,
        true,
        PROBE,
        &[repos(&dir.join("outside")).to_str().unwrap()],
    );
    for s in CHANGES.iter().chain(&KEPT) {
        assert_eq!(step(&outside, s), 0, "outside: {s}: {outside}");
    }

    for (label, base) in [
        ("tmpfs", dir.clone()),
        ("ext4", dir_on(mounted("ext4"), "other-repos")),
        ("xfs", dir_on(mounted("xfs"), "other-repos")),
        ("btrfs", dir_on(mounted("btrfs"), "other-repos")),
        ("overlay", dir_on(&overlay, "other-repos")),
    ] {
        for (who, user) in [("user", true), ("root", false)] {
            let fixture = repos(&base.join(who));
            let inside = steps_as(Some(&cg), user, PROBE, &[fixture.to_str().unwrap()]);
            for s in CHANGES {
                assert_eq!(step(&inside, s), EPERM, "{label}: {who}: {s}: {inside}");
            }
            for s in KEPT {
                assert_eq!(step(&inside, s), 0, "{label}: {who}: {s}: {inside}");
            }
            let config = std::fs::read_to_string(fixture.join("other/.git/config")).unwrap();
            assert!(!config.contains("fsmonitor"), "{label}: {who}: {config}");
        }
    }
    // A descriptor of another repository's config, opened outside and handed in: read-only
    // arrives, writable does not.
    let passed = repos(&dir.join("passed")).join("other/.git/config");
    let sock = dir.join("fd.sock");
    assert_eq!(pass_fd(&cg, &sock, &passed, FdMode::Read), "OK:1");
    assert_eq!(pass_fd(&cg, &sock, &passed, FdMode::Write), "OK:0");
    let global_hooks = home.join(".githooks");
    for user in [true, false] {
        let plant = format!(
            "mkdir -p {0}; echo evil > {0}/pre-commit",
            global_hooks.display()
        );
        cg.run_as(user, &["sh", "-c", &plant]);
        assert!(
            !global_hooks.exists(),
            "user={user}: the global hooks were planted"
        );
    }
    let checkout = format!(
        "export HOME={}; cd {} && git init -q checkout && git init -q --bare db && echo made",
        home.display(),
        cache.display()
    );
    let made = cg.run_as(true, &["sh", "-c", &checkout]);
    assert!(
        stdout(&made).contains("made"),
        "own_repositories: {}",
        stderr(&made)
    );
    assert!(cache.join("checkout/.git/config").exists());
    assert!(cache.join("db/HEAD").exists());
    commits_in_own_repository(&cg, true, &ws, "user");
    commits_in_own_repository(&cg, false, &ws, "root");

    let about_repositories = |r: &serde_json::Value| {
        r["action"] == "deny"
            && r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("other_repositories: deny"))
    };
    record_of(&cg, "file_open", about_repositories);
    record_of(&cg, "path_mkdir", about_repositories);
    record_of(&cg, "path_rename", about_repositories);
    record_of(&cg, "path_mknod", about_repositories);
    record_of(&cg, "file_receive", about_repositories);
    let _ = Command::new("umount").arg(&overlay).status();
    record_of(&cg, "path_mkdir", |r| {
        r["rule"]
            .as_str()
            .is_some_and(|s| s.contains("other_repositories ~/.githooks"))
    });
}
