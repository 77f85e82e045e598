//! The shipped default policy (`policies/default.yaml`) on an agent's day: the runner's secrets
//! stay out of the command's environment, and every place where the agent could leave code that
//! runs later outside the sandbox stays closed, for a confined root and for an ordinary user,
//! while the workspace and the caches stay writable.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::harness::*;

const DEFAULT_POLICY: &str = include_str!("../../../policies/default.yaml");

/// What exists before the run at a persistence target.
#[derive(Clone, Copy)]
enum Before {
    /// Nothing: the agent must create the file (and its directories).
    Nothing,
    /// Its directory (pip --user, rustup or the developer made it).
    Directory,
    /// The file itself, which the agent would change.
    File,
}

/// Where code left by the agent runs later, outside the sandbox (see the policy's comments).
const PERSISTENCE: &[(&str, Before)] = &[
    (
        "~/.local/lib/python3.11/site-packages/agent.pth",
        Before::Directory,
    ),
    (
        "~/.local/lib/python3.11/site-packages/usercustomize.py",
        Before::Nothing,
    ),
    ("~/.config/pip/pip.conf", Before::Nothing),
    ("~/.cargo/config.toml", Before::Directory),
    ("~/.cargo/bin/cargo", Before::File),
    ("~/.yarnrc.yml", Before::Nothing),
    ("~/.local/bin/git", Before::Nothing),
    ("~/bin/ls", Before::Nothing),
    ("~/.config/environment.d/90-agent.conf", Before::Nothing),
    ("~/.pam_environment", Before::Nothing),
    ("$WORKSPACE/.vscode/tasks.json", Before::Nothing),
    ("$WORKSPACE/.vscode/settings.json", Before::File),
    ("~/.local/share/direnv/allow/0123abcd", Before::Nothing),
    ("~/.config/direnv/direnvrc", Before::Nothing),
    ("~/.vimrc", Before::File),
    ("~/.config/nvim/init.lua", Before::Nothing),
    ("~/.tmux.conf", Before::Nothing),
    ("~/.local/share/systemd/user/agent.service", Before::Nothing),
    ("$WORKSPACE/.git/config", Before::File),
    ("$WORKSPACE/.git/hooks/pre-commit", Before::Directory),
    // Names the directory git takes hooks and config from, instead of .git.
    ("$WORKSPACE/.git/commondir", Before::Directory),
    ("~/.bashrc", Before::File),
    ("~/.bash_aliases", Before::Nothing),
    ("~/.bashrc.d/agent.sh", Before::Directory),
    ("~/.zlogout", Before::Nothing),
    ("~/.zshrc.zwc", Before::Nothing),
    ("~/.config/fish/conf.d/agent.fish", Before::Directory),
    ("~/.config/fish/functions/ls.fish", Before::Nothing),
    ("~/.inputrc", Before::Nothing),
    ("~/.config/zsh/.zshrc", Before::Directory),
    ("~/.oh-my-zsh/custom/agent.zsh", Before::Directory),
    ("~/.p10k.zsh", Before::File),
    ("~/.fzf.zsh", Before::Nothing),
    ("~/.fzf.bash", Before::File),
    ("~/.zprezto/init.zsh", Before::File),
    (
        "~/.local/share/zinit/plugins/agent/agent.plugin.zsh",
        Before::Nothing,
    ),
    ("~/.oh-my-bash/custom/agent.sh", Before::Directory),
    ("~/.bash_it/custom/agent.bash", Before::Directory),
    ("~/.asdf/shims/node", Before::File),
    ("~/.rbenv/shims/ruby", Before::Directory),
    ("~/.volta/bin/node", Before::Nothing),
    ("~/.local/share/pnpm/tsc", Before::Directory),
    ("~/go/bin/gopls", Before::File),
    (
        "~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo",
        Before::File,
    ),
    ("~/.pyenv/versions/3.12.7/bin/python3.12", Before::File),
    (
        "~/.nvm/versions/node/v22.11.0/lib/node_modules/npm/bin/npm-cli.js",
        Before::File,
    ),
    (
        "~/.sdkman/candidates/java/current/bin/java",
        Before::Directory,
    ),
    (
        "~/.local/share/uv/python/cpython-3.12/bin/python3",
        Before::Nothing,
    ),
    (
        "~/.local/share/mise/installs/node/22/bin/node",
        Before::Directory,
    ),
    ("~/.cargo/env", Before::File),
    ("~/.emacs.el", Before::Nothing),
    ("~/.config/emacs/init.el", Before::Nothing),
    ("~/.config/tmux/tmux.conf", Before::Nothing),
    ("~/.screenrc", Before::Nothing),
    ("~/.gdbinit", Before::Nothing),
    ("~/.xsessionrc", Before::Nothing),
    ("~/.pyenv/shims/python", Before::File),
    ("~/.bun/bin/node", Before::Nothing),
    ("~/.nvm/nvm.sh", Before::File),
    ("~/.sdkman/bin/sdkman-init.sh", Before::Directory),
    ("~/.config/starship.toml", Before::Nothing),
    (
        "~/.ipython/profile_default/startup/00-agent.py",
        Before::Nothing,
    ),
    ("~/.Rprofile", Before::Nothing),
    ("~/.gradle/init.d/agent.gradle", Before::Directory),
    ("~/.hgrc", Before::Nothing),
    (
        "~/.vscode/extensions/agent.helper-1.0.0/package.json",
        Before::Directory,
    ),
    (
        "~/.local/share/applications/firefox.desktop",
        Before::Nothing,
    ),
    // Where the developer's git looks for its credential cache, which it sends passwords to.
    ("~/.cache/git/credential/socket", Before::Nothing),
    // The host's own files, outside every tree the policy lets the agent change: a system
    // program, git's system config (its core.fsmonitor runs in every user's git), a package's
    // script that the next upgrade runs as root, another user's startup file. Stand-ins below
    // `HOST`, everyone's to write, since the VM's /usr and /etc are read-only.
    ("/run/agent-host/usr/bin/git", Before::File),
    ("/run/agent-host/etc/gitconfig", Before::Directory),
    (
        "/run/agent-host/var/lib/dpkg/info/git.postinst",
        Before::Directory,
    ),
    ("/run/agent-host/home/dev/.bashrc", Before::File),
    // Coding agents' MCP servers, hooks, plugins and unasked commands: they start at the
    // developer's next session of that agent.
    ("$WORKSPACE/.mcp.json", Before::Nothing),
    ("~/.claude/plugins/agent/hooks/hooks.json", Before::Nothing),
    ("~/.codex/rules/default.rules", Before::Nothing),
    ("$WORKSPACE/.gemini/settings.json", Before::Nothing),
    ("~/.cursor/mcp.json", Before::Nothing),
    ("~/.aider.conf.yml", Before::Nothing),
    ("~/.config/opencode/plugin/agent.js", Before::Nothing),
    (
        "$WORKSPACE/.continue/mcpServers/agent.yaml",
        Before::Nothing,
    ),
    // The developer's other repositories: hooks and config run in their next git there.
    ("~/src/other/.git/hooks/pre-commit", Before::Directory),
    ("~/src/other/.git/config", Before::File),
    // ... and a repository made above every directory of ~, which a prompt's `git status`
    // uses wherever no other is.
    ("~/.git/config", Before::Nothing),
    // ... a bare repository's HEAD in ~/src: beside an objects/ and a refs/, git in any
    // directory of ~/src that is in no repository takes ~/src for one.
    ("~/src/HEAD", Before::Directory),
    // ... the bare clones cargo and Go fetch into, whose hooks and config their next fetch runs.
    (
        "~/.cargo/git/db/dep-0123/hooks/reference-transaction",
        Before::Nothing,
    ),
    ("~/go/pkg/mod/cache/vcs/0123abcd/config", Before::Nothing),
    // ... and Mercurial's hooks, which run at any hg command there.
    ("~/src/other-hg/.hg/hgrc", Before::File),
    // Caches the developer's next build takes as they are (own_caches): an extracted crate's
    // build.rs, a built wheel, an object of Go's build cache, a package npx runs, a hook
    // environment of pre-commit, a compiler cache's object.
    (
        "~/.cargo/registry/src/index.crates.io-0123/serde-1.0.0/build.rs",
        Before::Directory,
    ),
    (
        "~/.cache/pip/wheels/ab/agent-1.0-py3-none-any.whl",
        Before::Nothing,
    ),
    ("~/.cache/uv/wheels-v5/agent.whl", Before::Nothing),
    (
        "~/go/pkg/mod/golang.org/x/agent@v1.0.0/agent.go",
        Before::Nothing,
    ),
    ("~/.cache/go-build/00/0123-d", Before::Nothing),
    (
        "~/.npm/_npx/0123/node_modules/agent/index.js",
        Before::Nothing,
    ),
    ("~/.cache/pre-commit/repo0123/hook.py", Before::Nothing),
    ("~/.cache/ccache/0/agent.o", Before::Nothing),
    // ... and where the developer's variables moved them (XDG_CACHE_HOME and GOPATH, which
    // the day gives `run`).
    (
        "~/xdg/pip/wheels/ab/agent-1.0-py3-none-any.whl",
        Before::Nothing,
    ),
    (
        "~/gopath/pkg/mod/golang.org/x/agent@v1.0.0/agent.go",
        Before::Nothing,
    ),
    // Hook managers: what the work tree says runs at the developer's next commit.
    ("$WORKSPACE/.husky/pre-commit", Before::Directory),
    ("$WORKSPACE/.pre-commit-config.yaml", Before::File),
    ("$WORKSPACE/lefthook.yml", Before::Nothing),
    (
        "$WORKSPACE/.devcontainer/devcontainer.json",
        Before::Directory,
    ),
    ("$WORKSPACE/.idea/workspace.xml", Before::Directory),
    // Configuration tools look for above the project they run in: the developer's other
    // projects beside the workspace take it.
    ("$WORKSPACE/../rust-toolchain.toml", Before::Nothing),
    ("$WORKSPACE/../.cargo/config.toml", Before::Directory),
    ("$WORKSPACE/../../.yarnrc.yml", Before::Nothing),
    ("$WORKSPACE/../go.work", Before::Nothing),
    ("~/.tool-versions", Before::Nothing),
    (
        "~/.local/share/JetBrains/IntelliJIdea2025.2/agent/plugin.jar",
        Before::Nothing,
    ),
    // Tools' user configuration that runs a program, or fetches what later runs.
    ("~/.config/go/env", Before::Nothing),
    ("~/.config/uv/uv.toml", Before::Directory),
    ("~/.lessfilter", Before::Nothing),
    ("~/.docker/cli-plugins/docker-compose", Before::Directory),
    ("~/.config/containers/containers.conf", Before::Nothing),
    (
        "~/.local/share/containers/storage/overlay/l1/diff/usr/bin/sh",
        Before::File,
    ),
    (
        "~/.local/share/nvim/site/pack/agent/start/p/plugin/p.lua",
        Before::Nothing,
    ),
    (
        "~/.local/share/fish/vendor_conf.d/agent.fish",
        Before::Nothing,
    ),
    ("~/.config/kitty/kitty.conf", Before::File),
];

/// Where the stand-ins for the host's own files are.
const HOST: &str = "/run/agent-host";

const ORIGINAL: &str = "written by the developer";

/// A home and a workspace owned by `uid`, with the policy, and the targets' precondition made.
/// The workspace is `src/app` in a directory of the developer's projects, also theirs, so that
/// what the agent could leave above it is refused by the policy, not by the file mode.
struct Day {
    home: PathBuf,
    projects: PathBuf,
    workspace: PathBuf,
    policy: PathBuf,
}

impl Day {
    fn new(name: &str, uid: u32) -> Day {
        let home = fixture_dir(&format!("{name}-home"));
        let projects = fixture_dir(&format!("{name}-projects"));
        let workspace = projects.join("src/app");
        std::fs::create_dir_all(&workspace).unwrap();
        let policy = home.join("default.yaml");
        std::fs::write(&policy, DEFAULT_POLICY).unwrap();
        let day = Day {
            home,
            projects,
            workspace,
            policy,
        };
        for &(target, before) in PERSISTENCE {
            let path = day.path(target);
            match before {
                Before::Nothing => {}
                Before::Directory => std::fs::create_dir_all(path.parent().unwrap()).unwrap(),
                Before::File => write(&path, ORIGINAL),
            }
        }
        for dir in [&day.home, &day.projects] {
            give_to(uid, dir);
        }
        // Writable to the user too, as a group-writable /usr/local is: a refusal is the
        // policy's, not the file mode's.
        let open_up = Command::new("chmod")
            .args(["-R", "a+rwX", HOST])
            .output()
            .unwrap();
        assert!(open_up.status.success(), "{}", stderr(&open_up));
        day
    }

    fn path(&self, target: &str) -> PathBuf {
        if let Some(rest) = target.strip_prefix("~/") {
            self.home.join(rest)
        } else if let Some(rest) = target.strip_prefix("$WORKSPACE/") {
            self.workspace.join(rest)
        } else {
            PathBuf::from(target)
        }
    }

    /// `run --policy default.yaml -- sh -c script` in the workspace, as `uid` (with the control
    /// group when not root), with `env` added to the runner's environment.
    fn run(&self, uid: u32, verbose: bool, env: &[(&str, &str)], script: &str) -> Output {
        let mut cmd = agent();
        cmd.current_dir(&self.workspace)
            .arg("run")
            .args(verbose.then_some("--verbose"))
            .arg("--policy")
            .arg(&self.policy)
            .arg("--home")
            .arg(&self.home)
            .args(["--", "sh", "-c", script])
            .envs(env.iter().copied());
        if uid != 0 {
            cmd.uid(uid).gid(CONTROL_GID);
        }
        cmd.output().unwrap()
    }
}

/// Each target written twice (directly, then renamed into place from a file made beside the
/// workspace), printing `WROTE path` for every write that succeeded.
fn persistence_script(day: &Day) -> String {
    let stage = day.workspace.join("stage");
    PERSISTENCE
        .iter()
        .map(|&(target, _)| {
            let p = day.path(target).display().to_string();
            format!(
                "mkdir -p \"$(dirname {p})\" 2>/dev/null; \
                 echo agent >> {p} 2>/dev/null && echo WROTE {p}; \
                 echo agent > {stage} && mv -f {stage} {p} 2>/dev/null && echo WROTE {p}; ",
                stage = stage.display()
            )
        })
        .collect()
}

fn assert_nothing_left_behind(day: &Day, out: &Output, who: &str) {
    assert!(
        !stdout(out).contains("WROTE"),
        "{who}: {}\n{}",
        stdout(out),
        stderr(out)
    );
    for &(target, before) in PERSISTENCE {
        let path = day.path(target);
        let now = std::fs::read_to_string(&path).ok();
        let expected = matches!(before, Before::File).then(|| ORIGINAL.to_string());
        assert_eq!(now, expected, "{who}: {} was changed", path.display());
    }
}

fn assert_day_works(day: &Day, out: &Output, who: &str) {
    assert!(
        ["work=ok", "cache=ok", "own_caches=ok"]
            .iter()
            .all(|done| stdout(out).contains(done)),
        "{who}: the ordinary work failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
    assert!(day.workspace.join("src/main.py").exists(), "{who}");
}

/// A file of the workspace, a cache of a tool the policy does not name, and the caches `run`
/// gave the tools it names (`own_caches`), in place of the developer's.
const ORDINARY_WORK: &str =
    "mkdir -p src && echo 'print(1)' > src/main.py && cat src/main.py >/dev/null \
     && echo work=ok; mkdir -p ~/.cache/tool && echo x > ~/.cache/tool/x && echo cache=ok; \
     own=$HOME/.cache/sandbox-agent/own-caches; [ \"$CARGO_HOME\" = $own/cargo ] \
     && [ \"$GOCACHE\" = $own/go/build ] && [ \"$PIP_CACHE_DIR\" = $own/pip ] \
     && mkdir -p $CARGO_HOME/registry/src/x $GOCACHE/00 \
     && echo x > $CARGO_HOME/registry/src/x/build.rs && echo x > $GOCACHE/00/x-d \
     && echo own_caches=ok";

/// A server socket of the user's in `/tmp` (`dir`/`name`), which the user may connect to outside
/// the sandbox: tmux's (`/tmp/tmux-UID/default`: `tmux send-keys` through it types into the
/// developer's shells) and Emacs's (`/tmp/emacsUID/server`: `emacsclient -e` evaluates Lisp in
/// the developer's Emacs), another session's ssh-agent (`/tmp/ssh-XXXX/agent.PID`: it signs as
/// the developer), an ssh ControlMaster's (an authenticated session to a host the developer is
/// connected to), an IDE's remote-control socket.
fn users_server(uid: u32, dir: &str, name: &str) -> (std::os::unix::net::UnixListener, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = PathBuf::from(format!("/tmp/{dir}{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join(name);
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let connect = format!(
        "import socket; socket.socket(socket.AF_UNIX).connect({:?})",
        socket.display().to_string()
    );
    let unconfined = Command::new("python3")
        .args(["-c", &connect])
        .uid(uid)
        .output()
        .unwrap();
    assert!(unconfined.status.success(), "{}", stderr(&unconfined));
    (listener, socket)
}

fn day_under_the_default_policy(uid: u32, who: &str) {
    let day = Day::new(&format!("default-{who}"), uid);
    let (_tmux, tmux) = users_server(uid, "tmux-", "default");
    let (_emacs, emacs) = users_server(uid, "emacs", "server");
    let (_agent, agent) = users_server(uid, "ssh-XXXXk3Jq", "agent.4242");
    let (_ide, ide) = users_server(uid, "vscode-ipc-", "ipc.sock");
    let (_mux, mux) = users_server(uid, "ssh-mux-", "dev@prod.example.com:22");
    let journal = journald();
    let connect = |socket: &std::path::Path, what: &str| {
        format!(
            "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{}\")' \
             2>/dev/null && echo WROTE to {what}; ",
            socket.display()
        )
    };
    let script = format!(
        "export HOME={home}; {}{ORDINARY_WORK}; {}{}{}{}{}{}true",
        persistence_script(&day),
        connect(&tmux, "tmux"),
        connect(&emacs, "emacs"),
        connect(&agent, "another session ssh-agent"),
        connect(&ide, "the IDE"),
        connect(&mux, "an ssh ControlMaster"),
        connect(journal, "the journal").replace("WROTE to", "logged to"),
        home = day.home.display(),
    );
    let xdg = day.path("~/xdg").display().to_string();
    let gopath = day.path("~/gopath").display().to_string();
    let moved_caches = [
        ("XDG_CACHE_HOME", xdg.as_str()),
        ("GOPATH", gopath.as_str()),
    ];
    let out = day.run(uid, false, &moved_caches, &script);
    assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
    assert!(
        stdout(&out).contains("logged to the journal"),
        "{who}: logging failed: {}",
        stdout(&out)
    );
    assert_nothing_left_behind(&day, &out, who);
    assert_day_works(&day, &out, who);
}

/// journald's socket (`/run/systemd/journal/socket`), which the default policy lists: made
/// once, before any sandbox, for every test that logs.
fn journald() -> &'static Path {
    use std::os::unix::fs::PermissionsExt;
    static JOURNAL: std::sync::OnceLock<(std::os::unix::net::UnixListener, PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = JOURNAL.get_or_init(|| {
        let path = PathBuf::from("/run/systemd/journal/socket");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        (listener, path)
    });
    path
}

#[test]
fn an_ordinary_user_leaves_nothing_that_runs_later_and_works_as_usual() {
    day_under_the_default_policy(USER_UID, "user");
}

#[test]
fn a_confined_root_leaves_nothing_that_runs_later_and_works_as_usual() {
    day_under_the_default_policy(0, "root");
}

#[test]
fn the_runners_secrets_never_reach_the_command_and_run_is_quiet_about_it() {
    let day = Day::new("default-env", 0);
    let secrets = [
        ("GITHUB_TOKEN", "ghp_secretvalue1"),
        ("AWS_SECRET_ACCESS_KEY", "awssecretvalue2"),
        ("DATABASE_URL", "postgres://u:dbsecretvalue3@db/x"),
        ("npm_token", "npmsecretvalue4"),
    ];
    // The developer's ssh-agent: its variable goes, and so does the socket it names, which
    // the command could otherwise find in /tmp and sign with.
    let agent_socket = day.home.join("ssh-agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&agent_socket).unwrap();
    let agent_path = agent_socket.display().to_string();
    let mut env = secrets.to_vec();
    env.push(("SSH_AUTH_SOCK", &agent_path));
    env.push(("ANTHROPIC_API_KEY", "model-key-kept"));
    env.push(("AGENT_TASK", "ordinary-setting"));
    // The command's own environment, then its parent's (the `run` client, which still holds
    // them): the kernel refuses reading another sandbox's process.
    let script = format!(
        "env; cat /proc/$PPID/environ | tr '\\0' '\\n'; \
         cat /proc/$PPID/environ >/dev/null; echo parent-environ=$?; \
         python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{agent_path}\")' \
         && echo agent-socket=reached; true"
    );
    let reached = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import socket; socket.socket(socket.AF_UNIX).connect({agent_path:?})"),
        ])
        .output()
        .unwrap();
    assert!(reached.status.success(), "unconfined: {}", stderr(&reached));

    let out = day.run(0, false, &env, &script);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen = stdout(&out);
    assert!(
        !seen.contains("agent-socket=reached"),
        "the ssh-agent was reached: {seen}"
    );
    assert!(!seen.contains("SSH_AUTH_SOCK="), "{seen}");
    for (name, value) in secrets {
        assert!(!seen.contains(value), "{name}'s value reached the command");
        assert!(
            !seen.contains(&format!("{name}=")),
            "{name} reached the command"
        );
    }
    assert!(seen.contains("ANTHROPIC_API_KEY=model-key-kept"), "{seen}");
    assert!(seen.contains("AGENT_TASK=ordinary-setting"), "{seen}");
    assert!(seen.contains("parent-environ=1"), "{seen}");
    // Most of the policy's paths do not exist in this home: expected, so not printed.
    assert!(
        !stderr(&out).contains("does not exist yet"),
        "{}",
        stderr(&out)
    );

    let out = day.run(0, true, &env, "true");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let told = stderr(&out);
    for (name, value) in secrets {
        assert!(
            told.contains(name),
            "--verbose does not name {name}: {told}"
        );
        assert!(!told.contains(value), "--verbose printed {name}'s value");
    }
    assert!(!told.contains("ANTHROPIC_API_KEY"), "{told}");
    assert!(
        told.contains(&format!("the socket {agent_path} they name is denied too")),
        "{told}"
    );
    let nvim = day.path("~/.config/nvim");
    assert!(
        told.contains(&format!("{} does not exist yet", nvim.display())),
        "{told}"
    );
    // ... and where `run` moved the tools' caches (own_caches).
    let cargo = day.path("~/.cache/sandbox-agent/own-caches/cargo");
    assert!(
        told.contains(&format!("CARGO_HOME={} (own_caches)", cargo.display())),
        "{told}"
    );
}

#[test]
fn attach_says_the_environment_is_not_changed() {
    let day = Day::new("default-attach", 0);
    let cg = Cgroup::new("default-attach");
    let out = try_attach_workspace(&cg.path, &day.policy, &day.home, &day.workspace);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("env rules apply only to `run`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("for paths not created yet"),
        "{}",
        stdout(&out)
    );
    detach(&cg);
}

/// A tmpfs mounted on `dir` with `options`, unless something is mounted there already (an
/// earlier test's, or a rerun's after a reboot of the VM).
fn tmpfs_on(dir: &Path, options: &str) {
    let mounted = Command::new("mountpoint")
        .arg("-q")
        .arg(dir)
        .status()
        .unwrap();
    if !mounted.success() {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// The user's bus, where a systemd host has it: in the user's runtime directory, a tmpfs that
/// logind mounts below `/run/user` at login. `systemd-run --user` starts a command outside the
/// sandbox through it. The user may connect outside the sandbox.
fn user_bus(uid: u32) -> (std::os::unix::net::UnixListener, PathBuf) {
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    tmpfs_on(&dir, &format!("mode=700,uid={uid},gid={uid}"));
    let socket = dir.join("bus");
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::os::unix::fs::chown(&socket, Some(uid), Some(uid)).unwrap();
    (listener, socket)
}

#[test]
fn the_users_bus_on_the_runtime_tmpfs_logind_mounts_below_run_user_is_out_of_reach() {
    for (uid, who) in [(USER_UID, "user"), (0, "root")] {
        let day = Day::new(&format!("user-bus-{who}"), uid);
        let (_bus, socket) = user_bus(uid);
        let connect = format!(
            "import socket\ntry:\n    socket.socket(socket.AF_UNIX).connect({:?})\n    \
             print('connected')\nexcept OSError as e:\n    print('errno', e.errno)",
            socket.display().to_string()
        );
        let outside = Command::new("python3")
            .args(["-c", &connect])
            .uid(uid)
            .output()
            .unwrap();
        assert_eq!(stdout(&outside).trim(), "connected", "{who} outside");
        let script = day.workspace.join("connect.py");
        write(&script, &connect);
        let inside = day.run(uid, false, &[], "python3 connect.py");
        assert_eq!(
            stdout(&inside).trim(),
            format!("errno {}", libc::EPERM),
            "{who} inside: {}",
            stderr(&inside)
        );
    }
}

/// An X server stand-in: it listens where Xorg and Xwayland do, on the display's socket file
/// and on the abstract socket of the same name, which X clients try first. Through either, a
/// client can type into the developer's windows.
fn x_server(display: u32) -> (Vec<std::os::unix::net::UnixListener>, String) {
    use std::os::{linux::net::SocketAddrExt, unix::fs::PermissionsExt};
    let dir = PathBuf::from("/tmp/.X11-unix");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let file = dir.join(format!("X{display}"));
    let _ = std::fs::remove_file(&file);
    let by_file = std::os::unix::net::UnixListener::bind(&file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
    let name = file.display().to_string();
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let by_name = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    (vec![by_file, by_name], name)
}

#[test]
fn the_x_servers_abstract_socket_is_out_of_reach_as_its_file_is() {
    let (_x, name) = x_server(std::process::id() % 1000 + 100);
    let connect = format!(
        "import socket\nfor a in ({name:?}, '\\0' + {name:?}):\n    try:\n        \
         socket.socket(socket.AF_UNIX).connect(a)\n        print('connected', end=' ')\n    \
         except OSError as e:\n        print('errno', e.errno, end=' ')"
    );
    for (uid, who) in [(USER_UID, "user"), (0, "root")] {
        let day = Day::new(&format!("x11-{who}"), uid);
        let outside = Command::new("python3")
            .args(["-c", &connect])
            .uid(uid)
            .output()
            .unwrap();
        assert_eq!(
            stdout(&outside).trim(),
            "connected connected",
            "{who} outside: {}",
            stderr(&outside)
        );
        let script = day.workspace.join("connect.py");
        write(&script, &connect);
        let inside = day.run(uid, false, &[], "python3 connect.py");
        let eperm = format!("errno {}", libc::EPERM);
        assert_eq!(
            stdout(&inside).trim(),
            format!("{eperm} {eperm}"),
            "{who} inside, by the file and by the abstract name: {}",
            stderr(&inside)
        );
    }
}

/// Where the container, VM and package managers listen (those the VM has room for: its `/run`
/// is a tmpfs), each trusting root, and a group as much: a privileged container, a VM given the
/// host's disk, a snap's root hooks. Stand-ins any user may connect to outside.
const ROOT_SERVICES: [&str; 10] = [
    "/run/docker/containerd/containerd.sock",
    "/run/containerd/s/0123456789abcdef",
    "/run/crio/crio.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/buildkit/buildkitd.sock",
    "/run/libvirt/libvirt-sock",
    "/run/libvirt/virtqemud-sock",
    "/run/snapd.socket",
    "/run/snapd-snap.socket",
    "/run/udev/control",
];

#[test]
fn the_container_vm_and_package_managers_sockets_are_out_of_reach() {
    use std::os::unix::fs::PermissionsExt;
    let mut listeners = Vec::new();
    for path in ROOT_SERVICES {
        let path = Path::new(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(path);
        listeners.push(std::os::unix::net::UnixListener::bind(path).unwrap());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let connect = "import socket, sys\nfor p in sys.argv[1:]:\n    try:\n        \
                   socket.socket(socket.AF_UNIX).connect(p)\n        print('connected', p)\n    \
                   except OSError as e:\n        print('errno', e.errno, p)";
    for (uid, who) in [(USER_UID, "user"), (0, "root")] {
        let day = Day::new(&format!("root-services-{who}"), uid);
        let outside = Command::new("python3")
            .args(["-c", connect])
            .args(ROOT_SERVICES)
            .uid(uid)
            .output()
            .unwrap();
        let inside = {
            let script = day.workspace.join("connect.py");
            write(&script, connect);
            day.run(
                uid,
                false,
                &[],
                &format!("python3 connect.py {}", ROOT_SERVICES.join(" ")),
            )
        };
        for path in ROOT_SERVICES {
            assert!(
                stdout(&outside).contains(&format!("connected {path}\n")),
                "{who} reaches {path} outside: {}",
                stdout(&outside)
            );
            assert!(
                stdout(&inside).contains(&format!("errno {} {path}\n", libc::EPERM)),
                "{who} inside, {path}: {}{}",
                stdout(&inside),
                stderr(&inside)
            );
        }
    }
}

/// The host's own secrets, each readable by root alone, as stand-ins on a tmpfs mounted over
/// the directory that holds them (the VM's root is the host's, read-only).
const HOST_SECRETS: [&str; 3] = [
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssl/private/service.key",
    "/var/lib/systemd/credential.secret",
];

/// Stand-ins in the root account's home (a tmpfs in the VM).
const ROOT_ACCOUNT_SECRETS: &[&str] = &[
    "/root/.ssh/id_ed25519",
    "/root/.aws/credentials",
    "/root/.kube/config",
    "/root/.my.cnf",
    "/root/.pgpass",
    "/root/.vault-token",
    "/root/.bash_history",
    "/root/.config/sops/age/keys.txt",
];

/// Init's control FIFO (`/run/initctl`, root's alone), with a reader outside as systemd-initctl
/// is: a root agent writes no request into it (`telinit 0` there powers the host off).
#[test]
fn a_confined_root_sends_init_no_request() {
    use std::os::unix::fs::PermissionsExt;
    let fifo = Path::new("/run/initctl");
    let _ = std::fs::remove_file(fifo);
    let made = Command::new("mkfifo").arg(fifo).output().unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::set_permissions(fifo, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Read and write: a FIFO opened so never blocks, and it is the reader writers need.
    let _init = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .unwrap();
    let day = Day::new("initctl", 0);
    let script = "python3 -c 'import os; os.open(\"/run/initctl\", os.O_WRONLY | os.O_NONBLOCK)' \
                  2>/dev/null && echo WROTE to init";
    let outside = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        stdout(&outside).contains("WROTE to init"),
        "{}",
        stderr(&outside)
    );
    let inside = day.run(0, false, &[], script);
    assert!(
        !stdout(&inside).contains("WROTE to init"),
        "a confined root opened init's FIFO: {}",
        stderr(&inside)
    );
}

/// The credentials a developer account accumulates: a stand-in for each line of the default
/// policy's `deny_read` in `~` and the workspace (a file inside, for a directory).
const CREDENTIALS: &[&str] = &[
    "~/.ssh/id_ed25519",
    "~/.aws/credentials",
    "~/.config/gcloud/credentials.db",
    "~/.azure/msal_token_cache.json",
    "~/.kube/config",
    "~/.docker/config.json",
    "~/.npmrc",
    "~/.pypirc",
    "~/.cargo/credentials.toml",
    "~/.cargo/credentials",
    "~/.git-credentials",
    "~/.config/gh/hosts.yml",
    "~/.netrc",
    "~/.gnupg/private-keys-v1.d/key.key",
    "~/.password-store/bank.gpg",
    "~/.my.cnf",
    "~/.mylogin.cnf",
    "~/.pgpass",
    "~/.vault-token",
    "~/.terraform.d/credentials.tfrc.json",
    "~/.s3cfg",
    "~/.boto",
    "~/.oci/oci_api_key.pem",
    "~/.config/doctl/config.yaml",
    "~/.config/rclone/rclone.conf",
    "~/.config/sops/age/keys.txt",
    "~/.config/hub",
    "~/.config/glab-cli/config.yml",
    "~/.gem/credentials",
    "~/.local/share/keyrings/login.keyring",
    "~/.mozilla/firefox/profile.default/logins.json",
    "~/.config/google-chrome/Default/Cookies",
    "~/.config/chromium/Default/Cookies",
    "~/.bash_history",
    "~/.zsh_history",
    "~/.psql_history",
    "~/.mysql_history",
    "$WORKSPACE/.env",
    "$WORKSPACE/.env.local",
];

#[test]
fn no_credential_the_developer_account_holds_is_read_inside() {
    for (uid, who) in [(USER_UID, "user"), (0, "root")] {
        let day = Day::new(&format!("credentials-{who}"), uid);
        for credential in CREDENTIALS {
            write(&day.path(credential), "SECRET\n");
        }
        for dir in [&day.home, &day.projects] {
            give_to(uid, dir);
        }
        let script: String = CREDENTIALS
            .iter()
            .map(|c| {
                let p = day.path(c).display().to_string();
                format!("cat {p} >/dev/null 2>&1 && echo READ {p}; ")
            })
            .collect();
        let outside = Command::new("sh")
            .args(["-c", &script])
            .uid(uid)
            .output()
            .unwrap();
        let inside = day.run(uid, false, &[], &script);
        for credential in CREDENTIALS {
            let read = format!("READ {}\n", day.path(credential).display());
            assert!(
                stdout(&outside).contains(&read),
                "{who} reads {credential} outside: {}",
                stderr(&outside)
            );
            assert!(
                !stdout(&inside).contains(&read),
                "{who} read {credential} inside: {}",
                stderr(&inside)
            );
        }
    }
}

#[test]
fn a_confined_root_reads_none_of_the_hosts_own_secrets() {
    use std::os::unix::fs::PermissionsExt;
    for secret in HOST_SECRETS {
        let dir = Path::new(secret).parent().unwrap();
        assert!(dir.is_dir(), "{} is missing on this host", dir.display());
        tmpfs_on(dir, "mode=755");
        write(Path::new(secret), "PRIVATE KEY\n");
        std::fs::set_permissions(secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The root account's credentials, for a root agent whose `~` is not /root.
    for secret in ROOT_ACCOUNT_SECRETS {
        write(Path::new(secret), "TOKEN\n");
        std::fs::set_permissions(secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let day = Day::new("host-secrets", 0);
    let secrets = || HOST_SECRETS.iter().chain(ROOT_ACCOUNT_SECRETS);
    let script: String = secrets()
        .map(|s| format!("cat {s} >/dev/null 2>&1 && echo READ {s}; "))
        .collect();
    let outside = Command::new("sh").args(["-c", &script]).output().unwrap();
    let inside = day.run(0, false, &[], &script);
    for secret in secrets() {
        let read = format!("READ {secret}\n");
        assert!(
            stdout(&outside).contains(&read),
            "root reads {secret} outside"
        );
        assert!(
            !stdout(&inside).contains(&read),
            "a confined root read {secret}: {}",
            stderr(&inside)
        );
    }
}
