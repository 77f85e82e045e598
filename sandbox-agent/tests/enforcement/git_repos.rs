//! The shipped default policy in the repositories agents really work in: a worktree (its `.git`
//! is a file naming a git directory inside the main repository), and a directory inside a
//! repository. The hooks and config git will run there, and everything that tells git where
//! they are, stay closed to a confined root and to an ordinary user, while commits go on.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use crate::harness::*;

const DEFAULT_POLICY: &str = include_str!("../../../policies/default.yaml");

/// The developer's repository `main` (a tracked `sub/`, and a submodule `lib` whose git
/// directory is `main/.git/modules/lib`), its worktree `wt` beside it, and a home; all owned by
/// `uid`.
struct Repos {
    home: PathBuf,
    policy: PathBuf,
    main: PathBuf,
    worktree: PathBuf,
}

impl Repos {
    /// The repositories of `uid`, made once: both scenarios use them (each commits on its own
    /// branch, and every other change they try is denied).
    fn of(uid: u32, who: &str) -> &'static Repos {
        static USER: OnceLock<Repos> = OnceLock::new();
        static ROOT: OnceLock<Repos> = OnceLock::new();
        let cell = if uid == 0 { &ROOT } else { &USER };
        cell.get_or_init(|| Repos::new(who, uid))
    }

    fn new(who: &str, uid: u32) -> Repos {
        let base = fixture_dir(&format!("git-{who}"));
        let home = base.join("home");
        let main = base.join("main");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(base.join("lib")).unwrap();
        write(&main.join("sub/README"), "the developer's\n");
        let policy = home.join("default.yaml");
        std::fs::write(&policy, DEFAULT_POLICY).unwrap();
        let repos = Repos {
            home,
            policy,
            worktree: base.join("wt"),
            main,
        };
        give_to(uid, &base);
        let main = repos.main.display().to_string();
        let lib = base.join("lib").display().to_string();
        repos.git(uid, &lib, "init -q && git commit -q --allow-empty -m lib");
        repos.git(
            uid,
            &main,
            "init -q && git add sub && git commit -q -m first",
        );
        repos.git(
            uid,
            &main,
            "-c protocol.file.allow=always submodule add -q ../lib lib && git commit -q -m lib",
        );
        repos.git(uid, &main, "worktree add -q ../wt");
        // Hooks from a tracked directory of the work tree, as many projects keep them: git
        // takes them from the top of the worktree it runs in.
        repos.git(uid, &main, "config core.hooksPath .githooks");
        repos
    }

    /// `git ARGS` (a shell line after `git`), unconfined, as the developer `uid` in `dir`.
    fn git(&self, uid: u32, dir: &str, args: &str) {
        let out = Command::new("sh")
            .args(["-c", &format!("cd {dir} && git {args}")])
            .env("HOME", &self.home)
            .env("GIT_AUTHOR_NAME", "d")
            .env("GIT_AUTHOR_EMAIL", "d@d")
            .env("GIT_COMMITTER_NAME", "d")
            .env("GIT_COMMITTER_EMAIL", "d@d")
            .uid(uid)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args}: {}", stderr(&out));
    }

    /// `run --policy default.yaml -- sh -c script` in `workspace`, as `uid`.
    fn run(&self, uid: u32, workspace: &Path, script: &str) -> Output {
        let mut cmd = agent();
        cmd.current_dir(workspace)
            .arg("run")
            .arg("--policy")
            .arg(&self.policy)
            .arg("--home")
            .arg(&self.home)
            .args(["--", "sh", "-c", script])
            .env("HOME", &self.home)
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@a")
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@a");
        if uid != 0 {
            cmd.uid(uid).gid(CONTROL_GID);
        }
        cmd.output().unwrap()
    }
}

/// Each write in `attempts` (a shell command each), printing `WROTE` for one that succeeded,
/// then a commit of a new file, printing `commit=ok`.
fn agent_script(attempts: &[String]) -> String {
    let mut script: String = attempts
        .iter()
        .map(|a| format!("({a}) 2>/dev/null && echo WROTE: {a:?}; "))
        .collect();
    script.push_str(
        "echo work > work.txt && git add work.txt && git commit -q -m work && echo commit=ok",
    );
    script
}

fn assert_closed_and_committed(out: &Output, who: &str) {
    assert!(!stdout(out).contains("WROTE"), "{who}: {}", stdout(out));
    assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(out));
    assert!(
        stdout(out).contains("commit=ok"),
        "{who}: the commit failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
}

/// What would send the developer's next git to hooks and config of the agent's making (in
/// `evil`, a directory the agent may make).
fn redirections(git_dir: &Path, common: &Path, evil: &Path) -> Vec<String> {
    let (git_dir, common, evil) = (git_dir.display(), common.display(), evil.display());
    vec![
        format!("echo evil >> {common}/hooks/pre-commit"),
        // The submodule's git directory: its fsmonitor runs in `git status` at the top.
        format!("echo '[core] fsmonitor = evil' >> {common}/modules/lib/config"),
        format!("echo evil > {common}/modules/lib/hooks/pre-commit"),
        format!("echo '[core] fsmonitor = evil' >> {common}/config"),
        format!("echo {evil} > {git_dir}/commondir"),
        format!("echo '[core] fsmonitor = evil' > {git_dir}/config.worktree"),
    ]
}

fn a_worktree_keeps_its_way_to_the_main_repository(uid: u32, who: &str) {
    let repos = Repos::of(uid, who);
    let git_dir = repos.main.join(".git/worktrees/wt");
    let common = repos.main.join(".git");
    let evil = repos.worktree.join("evil");
    let dot_git = repos.worktree.join(".git");
    let link = std::fs::read_to_string(&dot_git).unwrap();
    let mut attempts = redirections(&git_dir, &common, &evil);
    let dot_git_s = dot_git.display();
    attempts.extend([
        format!("echo 'gitdir: {}' > {dot_git_s}", evil.display()),
        format!("mv {dot_git_s} {dot_git_s}.old"),
        format!("rm {dot_git_s}"),
        format!("mv {} {}.old", git_dir.display(), git_dir.display()),
        planted_hook(&repos.worktree),
    ]);
    let script = format!(
        "mkdir -p {evil}/hooks; {}",
        agent_script(&attempts),
        evil = evil.display()
    );
    let out = repos.run(uid, &repos.worktree, &script);
    assert_closed_and_committed(&out, who);
    assert_eq!(std::fs::read_to_string(&dot_git).unwrap(), link, "{who}");
    assert_eq!(
        std::fs::read_to_string(git_dir.join("commondir"))
            .unwrap()
            .trim(),
        "../..",
        "{who}: the worktree's commondir was changed"
    );
    assert!(!git_dir.join("config.worktree").exists(), "{who}");
    assert!(!common.join("hooks/pre-commit").exists(), "{who}");
    assert!(!repos.worktree.join(".githooks").exists(), "{who}");
}

/// A hook in the directory `core.hooksPath` names, at the top of the work tree `top`.
fn planted_hook(top: &Path) -> String {
    let hooks = top.join(".githooks");
    format!(
        "mkdir -p {0} && echo evil > {0}/pre-commit",
        hooks.display()
    )
}

fn a_directory_inside_a_repository_keeps_the_repositorys_hooks_and_config(uid: u32, who: &str) {
    let repos = Repos::of(uid, who);
    let sub = repos.main.join("sub");
    let dot_git = repos.main.join(".git");
    let evil = sub.join("evil");
    let config = std::fs::read_to_string(dot_git.join("config")).unwrap();
    let mut attempts = redirections(&dot_git, &dot_git, &evil);
    let nested = sub.join(".git");
    attempts.extend([
        // The worktree's way to the same hooks and config, for the developer's git there.
        format!(
            "echo {} > {}/worktrees/wt/commondir",
            evil.display(),
            dot_git.display()
        ),
        // A `.git` in the workspace is what git there would find first.
        format!("mkdir {}", nested.display()),
        format!("echo 'gitdir: {}' > {}", evil.display(), nested.display()),
        format!("ln -s {} {}", evil.display(), nested.display()),
        planted_hook(&repos.main),
    ]);
    let script = format!(
        "mkdir -p {evil}/hooks; {}",
        agent_script(&attempts),
        evil = evil.display()
    );
    let out = repos.run(uid, &sub, &script);
    assert_closed_and_committed(&out, who);
    assert_eq!(
        std::fs::read_to_string(dot_git.join("config")).unwrap(),
        config,
        "{who}"
    );
    assert!(!dot_git.join("commondir").exists(), "{who}");
    assert!(!dot_git.join("hooks/pre-commit").exists(), "{who}");
    assert!(
        std::fs::symlink_metadata(&nested).is_err(),
        "{who}: {nested:?} was made"
    );
    assert!(!repos.main.join(".githooks").exists(), "{who}");
}

#[test]
fn a_worktree_keeps_its_git_file_commondir_hooks_and_config_and_commits_go_on() {
    a_worktree_keeps_its_way_to_the_main_repository(USER_UID, "user");
    a_worktree_keeps_its_way_to_the_main_repository(0, "root");
}

#[test]
fn a_directory_inside_a_repository_cannot_become_another_one_or_change_the_repositorys() {
    a_directory_inside_a_repository_keeps_the_repositorys_hooks_and_config(USER_UID, "user");
    a_directory_inside_a_repository_keeps_the_repositorys_hooks_and_config(0, "root");
}
