//! `cargo xtask demo`: run xtask/demo.sh against a live daemon, natively if the host kernel
//! can enforce, otherwise in the 6.12 test VM.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kernels::KernelVersion;
use crate::setup::Setup;
use crate::vm::{self, Guest};
use crate::{apt, cmd, project};

pub fn command(timeout: Duration) -> Result<u8> {
    let mut setup = Setup::new()?;
    let (repo, _, agent) = project::built_for_host(&mut setup)?;
    let script = repo.join("xtask/demo.sh");
    if !script.is_file() {
        bail!("{} is missing", script.display());
    }
    if cmd::succeeds(Command::new(&agent).arg("doctor")) {
        eprintln!("[demo] the host kernel can enforce: running the demo natively");
        return native(&repo, &agent, &script);
    }
    println!(
        "The host kernel cannot run BPF LSM programs (`sandbox-agent doctor` says so): \
         the demo runs in a VM (linux-6.12)."
    );
    let guest = Guest::prepare(&mut setup, KernelVersion::V6_12)?;
    let command = [OsString::from("bash"), script.into_os_string()];
    let mut outcome = guest.run(Some(&command), true, timeout, true)?;
    if outcome.status.is_none() {
        if let Some(fault) = vm::emulator_fault(&outcome.output) {
            // The emulator's, not the demo's: it runs again in a fresh boot, once.
            eprintln!("[demo] {fault}; booting again");
            outcome = guest.run(Some(&command), true, timeout, true)?;
        }
    }
    vm::exit_status(&outcome, timeout)
}

/// Runs the demo on this host with a scratch HOME (so real keys are never touched).
fn native(repo: &Path, agent: &Path, script: &Path) -> Result<u8> {
    if !apt::is_root() {
        bail!("the native demo needs root (it loads BPF programs); run it as root");
    }
    let scratch = std::env::temp_dir().join(format!("sandbox-agent-demo-{}", std::process::id()));
    let home = scratch.join("home");
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let daemon = Daemon::start(agent)?;
    let bin_dir = agent.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(dirs).context("PATH has an entry with ':' in it")?;
    let status = Command::new("bash")
        .arg(script)
        .env("PATH", path)
        .env("HOME", &home)
        .env("SANDBOX_AGENT_REPO", repo)
        .env("SANDBOX_AGENT_DEMO_TMP", &scratch)
        .current_dir(&scratch)
        .status()
        .with_context(|| format!("could not start bash {}", script.display()));
    drop(daemon);
    // Best effort: the scratch directory only holds fake secrets.
    let _ = std::fs::remove_dir_all(&scratch);
    let status = status?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// A daemon this demo started (stopped on drop), or none if one already answers.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(agent: &Path) -> Result<Daemon> {
        let answers = || cmd::succeeds(Command::new(agent).arg("status"));
        if answers() {
            eprintln!("[demo] using the sandbox-agent daemon that is already running");
            return Ok(Daemon(None));
        }
        let run_dir = PathBuf::from("/run/sandbox-agent");
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let log_path = run_dir.join("daemon.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(agent)
            .args(["daemon", "--audit-log", "/run/sandbox-agent/audit.log"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("could not start {} daemon", agent.display()))?;
        let mut daemon = Daemon(Some(child));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers() {
            let exited = match daemon.0.as_mut() {
                Some(c) => c.try_wait().context("waiting for the daemon")?,
                None => None,
            };
            if exited.is_some() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!(
                    "the sandbox-agent daemon {}; its log:\n{log}",
                    match exited {
                        Some(s) => format!("exited ({s}) before it became ready"),
                        None => "did not become ready within 60 s".to_owned(),
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            // SIGTERM lets it shut down cleanly; best effort, the process may be gone already.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
