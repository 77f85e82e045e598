//! `cargo xtask bench --on-host`: the VM's measurements run on this machine, for a host whose
//! kernel enforces. The VM's emulated CPU cannot judge the targets that are a few per cent or a
//! few milliseconds (issue 19: unconfined overhead, `run` against bubblewrap, audit rate); real
//! hardware can. The bench starts its own daemon and cleans away its pins at the end, so it
//! refuses a host where sandbox-agent is running or pinned, and it leaves the host as it found
//! it otherwise (its scratch directory, cgroups and the BPF statistics switch).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::Part;
use crate::setup::Setup;
use crate::{apt, cmd, project};

/// Where an installed daemon pins its programs and maps (the bench's daemon uses it too).
const PINS: &str = "/sys/fs/bpf/sandbox-agent";
/// An installed daemon's configuration.
const CONFIG: &str = "/etc/sandbox-agent/config.yaml";
/// The bench's scratch directory (`fixtures::Fixtures`).
const SCRATCH: &str = "/tmp/bench";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

pub fn command(part: Part) -> Result<u8> {
    if !apt::is_root() {
        bail!("bench --on-host needs root: it loads BPF programs and makes cgroups");
    }
    let mut setup = Setup::new()?;
    let (repo, target, agent) = project::built_for_host(&mut setup)?;
    if let Some(why) = refusal(&agent) {
        bail!("{why}; nothing was changed");
    }
    if cmd::which("bwrap").is_none() {
        eprintln!("[bench] installing bubblewrap for the comparison");
        setup.apt.install(&["bubblewrap"])?;
    }
    let stats_before = std::fs::read_to_string(BPF_STATS).unwrap_or_default();
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let mut command = super::guest_command(xtask, &agent, &repo, part).into_iter();
    let mut child = Command::new(command.next().context("an empty command")?)
        .args(command)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the benchmark")?;
    let mut output = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading the benchmark's output")?;
            println!("{line}");
            output.push_str(&line);
            output.push('\n');
        }
    }
    let status = child.wait().context("waiting for the benchmark")?;
    restore(&stats_before);
    super::save_json(&target, part, "host", &output)?;
    Ok(if status.success() { 0 } else { 1 })
}

/// Why the bench must not run here, if it must not.
fn refusal(agent: &Path) -> Option<String> {
    if !cmd::succeeds(Command::new(agent).arg("doctor").stdout(Stdio::null())) {
        return Some(
            "this host's kernel cannot enforce (`sandbox-agent doctor` says why); \
             `cargo xtask bench` measures in the VM"
                .into(),
        );
    }
    if cmd::succeeds(Command::new(agent).arg("status").stdout(Stdio::null()))
        || Path::new(PINS).exists()
    {
        return Some(format!(
            "sandbox-agent is running or pinned on this host ({PINS}): the bench starts its own \
             daemon and removes its pins at the end, which would end that enforcement; stop it \
             and run `sandbox-agent daemon --cleanup` first"
        ));
    }
    if Path::new(CONFIG).exists() {
        // The bench's daemon and its cleanup would read it, and so its pins and logs.
        return Some(format!(
            "{CONFIG} exists: the bench's daemon would take its settings (pins, logs, socket) \
             from it; move it aside for the bench"
        ));
    }
    if Path::new(SCRATCH).exists() {
        return Some(format!(
            "{SCRATCH} exists: the bench makes its files there and removes it at the end"
        ));
    }
    None
}

/// Puts back what the bench changed besides what it removes itself.
fn restore(stats_before: &str) {
    if let Err(e) = std::fs::remove_dir_all(SCRATCH) {
        eprintln!("[bench] could not remove {SCRATCH}: {e}");
    }
    if !stats_before.is_empty() {
        if let Err(e) = std::fs::write(BPF_STATS, stats_before.trim()) {
            eprintln!("[bench] could not restore {BPF_STATS}: {e}");
        }
    }
}
