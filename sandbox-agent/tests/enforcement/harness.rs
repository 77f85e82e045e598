//! Fixtures for the scenarios: a tmpfs-backed directory, a cgroup with a policy attached, and
//! ways to try an access from inside the cgroup.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use sandbox_agent::cgroup::spawn_in_cgroup;

pub const EPERM: i32 = libc::EPERM;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The sandbox-agent binary next to the test binary's target dir (or on PATH in the VM).
pub fn agent() -> Command {
    Command::new("sandbox-agent")
}

/// A fresh directory on a guest-local tmpfs (never the read-only 9p share).
pub fn fixture_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(format!(
        "/tmp/enforcement/{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(
        fs_magic(&dir),
        TMPFS_MAGIC,
        "{} must be on tmpfs",
        dir.display()
    );
    dir
}

pub fn fs_magic(p: &Path) -> i64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
    st.f_type as i64
}

pub fn write(path: &Path, content: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

pub fn ino(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// A cgroup under /sys/fs/cgroup, removed on drop.
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = PathBuf::from(format!(
            "/sys/fs/cgroup/enf-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).unwrap();
        Self { path }
    }

    pub fn child(&self, name: &str) -> Cgroup {
        let path = self.path.join(name);
        std::fs::create_dir(&path).unwrap();
        Cgroup { path }
    }

    /// Starts `argv` inside this cgroup, stdout piped, without waiting.
    pub fn spawn(&self, argv: &[&str]) -> std::process::Child {
        self.start(argv, Stdio::null())
    }

    /// Starts `argv` inside this cgroup with stdin closed, stdout piped and stderr as given.
    fn start(&self, argv: &[&str], stderr: Stdio) -> std::process::Child {
        self.start_as(false, argv, stderr)
    }

    /// Like `start`, as the ordinary user (uid and gid 1000, no other groups) with `user`. The
    /// ids change before the move into the cgroup, so the command starts confined as that
    /// user, as an agent started by the user does: a confined root may not become a user
    /// other than the sandbox's (the owner of `~`).
    fn start_as(&self, user: bool, argv: &[&str], stderr: Stdio) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if user {
            // Root dropping its ids also drops its supplementary groups (std does setgroups).
            cmd.uid(USER_UID).gid(USER_GID);
        }
        spawn_in_cgroup(&mut cmd, &self.path)
            .unwrap_or_else(|e| panic!("cannot start {argv:?} in {}: {e}", self.path.display()))
    }

    /// A confined loop that tries to read `path` until `stop` exists, then prints
    /// `leaked=<successful reads>`; finish it with `stop_reader`.
    pub fn start_reader(&self, path: &Path, stop: &Path) -> std::process::Child {
        let script = format!(
            "n=0; tries=0; while [ ! -e {stop} ]; do tries=$((tries+1)); \
             if cat {path} >/dev/null 2>&1; then n=$((n+1)); fi; done; echo leaked=$n tries=$tries",
            stop = stop.display(),
            path = path.display()
        );
        self.spawn(&["sh", "-c", &script])
    }

    /// Runs `argv` inside this cgroup and waits for it.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.start(argv, Stdio::piped()).wait_with_output().unwrap()
    }

    /// Runs `argv` inside this cgroup, as the ordinary user with `user`, and waits for it.
    pub fn run_as(&self, user: bool, argv: &[&str]) -> Output {
        self.start_as(user, argv, Stdio::piped())
            .wait_with_output()
            .unwrap()
    }

    /// Opens `path` for reading from inside the cgroup (python3's open, i.e. openat(2)) and
    /// returns Ok(content) or Err(errno).
    pub fn open(&self, path: &Path) -> Result<String, i32> {
        self.probe(OPEN_SCRIPT, &[path.to_str().unwrap()])
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Cgroup {
    /// Executes `path` (no arguments) from inside the cgroup and returns Ok(exit code) or
    /// Err(errno of execve).
    pub fn exec(&self, path: &Path) -> Result<i32, i32> {
        exec_code(self.probe(EXEC_SCRIPT, &[path.to_str().unwrap()]))
    }

    /// Runs a python3 `script` that prints `OK:<text>` or `ERR:<errno>` inside the cgroup.
    pub fn probe(&self, script: &str, args: &[&str]) -> Result<String, i32> {
        probe(Some(self), script, args)
    }
}

const EXEC_SCRIPT: &str = r#"
import subprocess, sys
try:
    print("OK:%d" % subprocess.run([sys.argv[1]]).returncode, end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// A probe's `OK:<exit code>` as the code.
pub fn exec_code(probed: Result<String, i32>) -> Result<i32, i32> {
    probed.map(|code| code.parse().unwrap())
}

/// Runs a python3 `script` that prints `OK:<text>` or `ERR:<errno>`, inside `cgroup` or, with
/// None, outside any confined cgroup.
pub fn probe(cgroup: Option<&Cgroup>, script: &str, args: &[&str]) -> Result<String, i32> {
    probe_with(cgroup, "python3", script, args)
}

/// `probe` run by the python interpreter at `python` (a copy, a symlink...).
pub fn probe_with(
    cgroup: Option<&Cgroup>,
    python: &str,
    script: &str,
    args: &[&str],
) -> Result<String, i32> {
    let mut argv = vec![python, "-c", script];
    argv.extend_from_slice(args);
    let out = match cgroup {
        Some(cg) => cg.run(&argv),
        None => Command::new(argv[0]).args(&argv[1..]).output().unwrap(),
    };
    probe_report(out, args)
}

/// `probe` run inside `cgroup` as the ordinary user (uid and gid 1000, no other groups).
pub fn probe_as_user(cgroup: &Cgroup, script: &str, args: &[&str]) -> Result<String, i32> {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    probe_report(cgroup.run_as(true, &argv), args)
}

/// Makes uid `uid` (its own group too) the owner of `dir` and everything below it.
pub fn give_to(uid: u32, dir: &Path) {
    let owner = format!("{uid}:{uid}");
    let out = Command::new("chown")
        .args(["-R", &owner])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The Python `script` with `args`, as root or (with `user`) as uid 1000, inside `cg` or
/// outside any sandbox: its stdout and stderr.
pub fn python_as(cg: Option<&Cgroup>, user: bool, script: &str, args: &[&str]) -> String {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    let out = match cg {
        Some(cg) => cg.run_as(user, &argv),
        None => as_whom_outside(user, &argv).output().unwrap(),
    };
    format!("{}{}", stdout(&out), stderr(&out))
}

/// The Python helpers step probes share: `step(name, f)` prints `name=0` when `f()` worked,
/// else `name=<errno>`; `in_child(name, f)` does the same in a forked child, so the probe
/// keeps its own credentials.
const STEPS: &str = r#"
import os
def step(name, f):
    try:
        f()
        print("%s=0" % name)
    except OSError as e:
        print("%s=%d" % (name, e.errno))
def in_child(name, f):
    pid = os.fork()
    if pid == 0:
        try:
            f()
            os._exit(0)
        except OSError as e:
            os._exit(e.errno)
    print("%s=%d" % (name, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])))
"#;

/// `python_as` of a step probe: `script`, with `step` and `in_child` defined.
pub fn steps_as(cg: Option<&Cgroup>, user: bool, script: &str, args: &[&str]) -> String {
    python_as(cg, user, &format!("{STEPS}{script}"), args)
}

/// `argv` outside every sandbox, as the ordinary user with `user`.
pub fn as_whom_outside(user: bool, argv: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    if user {
        cmd.uid(USER_UID).gid(USER_GID);
    }
    cmd
}

/// A probe's report: `OK:<text>` as Ok(text), `ERR:<errno>` as Err(errno).
fn probe_report(out: Output, args: &[&str]) -> Result<String, i32> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(content) = stdout.strip_prefix("OK:") {
        Ok(content.to_string())
    } else if let Some(errno) = stdout.strip_prefix("ERR:") {
        Err(errno.parse().unwrap())
    } else {
        panic!(
            "python3 probe {args:?} did not report: stdout={stdout:?} stderr={:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// A small executable on the fixture's tmpfs: a copy of /bin/true.
pub fn tool(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path).unwrap();
    path
}

/// The same open, from a process outside any confined cgroup.
pub fn open_unconfined(path: &Path) -> Result<String, i32> {
    probe(None, OPEN_SCRIPT, &[path.to_str().unwrap()])
}

pub const OPEN_SCRIPT: &str = r#"
import sys
try:
    with open(sys.argv[1], "rb") as f:
        print("OK:" + f.read().decode(errors="replace"), end="")
except OSError as e:
    print("ERR:%d" % e.errno, end="")
"#;

/// A policy file written into `dir`.
pub fn policy_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, format!("name: {name}\n{body}")).unwrap();
    path
}

pub fn deny_read_policy(dir: &Path, paths: &[&Path]) -> PathBuf {
    let list: String = paths
        .iter()
        .map(|p| format!("  - {:?}\n", p.display().to_string()))
        .collect();
    policy_file(dir, "test-policy", &format!("deny_read:\n{list}"))
}

/// `sandbox-agent attach`, whatever its outcome.
pub fn try_attach(cgroup: &Path, policy: &Path, home: Option<&Path>) -> Output {
    let mut cmd = agent();
    cmd.arg("attach")
        .arg("--cgroup")
        .arg(cgroup)
        .arg("--policy")
        .arg(policy);
    if let Some(home) = home {
        cmd.arg("--home").arg(home);
    }
    cmd.output().unwrap()
}

/// `sandbox-agent attach` with a workspace (for `$WORKSPACE` and the git anchors), whatever its
/// outcome.
pub fn try_attach_workspace(cgroup: &Path, policy: &Path, home: &Path, workspace: &Path) -> Output {
    let mut cmd = agent();
    cmd.arg("attach")
        .arg("--cgroup")
        .arg(cgroup)
        .arg("--policy")
        .arg(policy)
        .arg("--home")
        .arg(home)
        .arg("--workspace")
        .arg(workspace);
    cmd.output().unwrap()
}

/// `sandbox-agent attach`, asserting success.
pub fn attach(cgroup: &Cgroup, policy: &Path, home: &Path) -> Output {
    let out = try_attach(&cgroup.path, policy, Some(home));
    assert!(
        out.status.success(),
        "attach failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sandbox-agent [socket_args] run --policy P --home H -- argv`.
pub fn agent_run(socket_args: &[&str], policy: &Path, home: &Path, argv: &[&str]) -> Output {
    agent_run_command(socket_args, policy, home, argv)
        .output()
        .unwrap()
}

/// The command line of `agent_run`, not started.
pub fn agent_run_command(
    socket_args: &[&str],
    policy: &Path,
    home: &Path,
    argv: &[&str],
) -> Command {
    let mut cmd = agent();
    cmd.arg("run")
        .args(socket_args)
        .arg("--policy")
        .arg(policy)
        .arg("--home")
        .arg(home)
        .arg("--")
        .args(argv);
    cmd
}

/// The group the VM's daemon lets steer it (`control_group` in xtask's guest/run.sh), and an
/// ordinary user with no other privilege.
pub const CONTROL_GID: u32 = 4242;
pub const USER_UID: u32 = 1000;
pub const USER_GID: u32 = 1000;

/// The transient cgroup of the `run` client with pid `client`.
pub fn run_cgroup(client: u32) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/sandbox-agent/run-{client}"))
}

/// What `status --json` says of the attachment of `cgroup`, if it lists one.
pub fn attachment(cgroup: &Path) -> Option<serde_json::Value> {
    let out = agent().args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["cgroup"] == cgroup.display().to_string())
        .cloned()
}

/// Whether `status` lists an attachment for `cgroup`.
pub fn attached(cgroup: &Path) -> bool {
    attachment(cgroup).is_some()
}

/// A directory anybody may write to (so a command run as another user can leave a marker).
pub fn shared_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join("shared");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    out
}

/// Asserts a CLI call failed with an error containing `needle`.
pub fn assert_refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "succeeded: {}", stdout(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

pub fn detach(cgroup: &Cgroup) {
    let out = agent()
        .args(["detach", "--cgroup"])
        .arg(&cgroup.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "detach failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cgroup confined by a deny_read policy on `denied`, with the fixture dir as home.
pub fn confined(name: &str, home: &Path, denied: &[&Path]) -> Cgroup {
    let cg = Cgroup::new(name);
    let policy = deny_read_policy(home, denied);
    attach(&cg, &policy, home);
    cg
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a command failed because an open returned EPERM.
pub fn assert_eperm(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what}: succeeded, stdout={:?}",
        stdout(out)
    );
    assert!(
        stderr(out).contains("Operation not permitted"),
        "{what}: failed but not with EPERM: {:?}",
        stderr(out)
    );
}

/// Every record `sandbox-agent audit --json` prints.
pub fn audit_lines() -> Vec<serde_json::Value> {
    let out = agent().args(["audit", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first audit record of `cg` from `hook` that `want` accepts, waiting for the daemon to
/// drain the ring buffer.
pub fn record_of(
    cg: &Cgroup,
    hook: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let cgroup = cg.path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = audit_lines()
            .into_iter()
            .find(|r| r["cgroup"] == cgroup && r["hook"] == hook && want(r));
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no {hook} record for {cgroup} (the denial was not recorded)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Audit records about `file` (its inode on its filesystem: the same number on another
/// filesystem is another file), waiting briefly for the daemon to drain the ring buffer.
pub fn records_for(file: &Path, want: usize) -> Vec<serde_json::Value> {
    let md = std::fs::metadata(file).unwrap();
    let dev = format!("{}:{}", libc::major(md.dev()), libc::minor(md.dev()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<_> = audit_lines()
            .into_iter()
            .filter(|r| r["target"]["ino"] == md.ino() && r["target"]["dev"] == dev.as_str())
            .collect();
        if found.len() >= want || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a reader started by `Cgroup::start_reader`; returns (successful reads, tries).
pub fn stop_reader(reader: std::process::Child, stop: &Path) -> (u64, u64) {
    write(stop, "");
    let out = reader.wait_with_output().unwrap();
    let text = stdout(&out);
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("reader printed {text:?}"))
    };
    (field("leaked="), field("tries="))
}

/// Binds a Unix datagram socket at argv[1], says READY, then receives one message with up to
/// one descriptor and prints OK:<descriptors received>.
const RECEIVE_FD: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("READY", flush=True)
msg, fds, flags, addr = socket.recv_fds(s, 16, 1)
print("OK:%d" % len(fds), end="")
"#;

/// How the sender opens the file it passes.
#[derive(Clone, Copy)]
pub enum FdMode {
    Read,
    Write,
}

/// Sends a descriptor of `file` opened as `mode`, from outside the sandbox, to a receiver in
/// `cg`; returns what the receiver printed.
pub fn pass_fd(cg: &Cgroup, sock: &Path, file: &Path, mode: FdMode) -> String {
    let mut receiver = cg.spawn(&["python3", "-c", RECEIVE_FD, sock.to_str().unwrap()]);
    let mut lines = BufReader::new(receiver.stdout.take().unwrap());
    let mut ready = String::new();
    lines.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "READY");

    // socket.send_fds of Python 3.11 ignores its address argument: sendmsg directly.
    const SEND_FD: &str = r#"
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
fd = os.open(sys.argv[2], os.O_WRONLY if sys.argv[3] == "w" else os.O_RDONLY)
rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
s.sendmsg([b"x"], rights, 0, sys.argv[1])
"#;
    let sent = Command::new("python3")
        .args([
            "-c",
            SEND_FD,
            sock.to_str().unwrap(),
            file.to_str().unwrap(),
            match mode {
                FdMode::Read => "r",
                FdMode::Write => "w",
            },
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        sent.success(),
        "the unconfined sender opened and sent {}",
        file.display()
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    receiver.wait().unwrap();
    let _ = std::fs::remove_file(sock);
    rest
}
