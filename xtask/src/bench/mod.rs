//! `cargo xtask bench [--kernel K] [--part P]`: boots the test VM without the daemon and runs the benchmark
//! (`guest`) there, so every measurement has its baseline from the same run; prints the table
//! and writes it as JSON to `target/bench/bench-<kernel>.json`.

mod attach_times;
mod audit_rate;
mod confined;
mod control;
mod fixtures;
mod guest;
mod hook_stats;
mod landlock;
mod memory;
mod on_host;
mod paired;
mod startup;
mod unconfined;
mod workload;

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

pub use guest::{measure_command, run as run_in_guest};
pub use on_host::command as on_host;

use crate::kernels::KernelVersion;
use crate::setup::Setup;
use crate::vm::{self, Guest};
use crate::{cmd, paths, project};

/// Which measurements to run: every section but `hooks`, or one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    All,
    /// No agent against the agent loaded, for a process it does not confine (interleaved).
    Unconfined,
    /// Confined opens against Landlock, exec and connect confined.
    Confined,
    /// Attach and detach of 10 to 10,000 rules against a `status` round trip (interleaved).
    Attach,
    /// `run -- true` against a bare start and bubblewrap (interleaved).
    Startup,
    /// Daemon memory, idle and with 100 policies.
    Memory,
    /// Audit cost and throughput.
    Audit,
    /// `status` round trips and audit drops during a large attach and a run_end that kills.
    Control,
    /// Per-hook runs and time from the kernel's BPF statistics.
    Hooks,
}

pub fn command(v: KernelVersion, timeout: Duration, part: Part) -> Result<u8> {
    let mut setup = Setup::new()?;
    if cmd::which("bwrap").is_none() {
        eprintln!("[bench] installing bubblewrap for the comparison");
        setup.apt.install(&["bubblewrap"])?;
    }
    let guest = Guest::prepare(&mut setup, v)?;
    project::build_agent(&guest.repo)?;
    let agent = project::agent_binary(&guest.target)?;
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    paths::check_visible_in_guest(&xtask, "the xtask binary")?;
    let command = guest_command(xtask, &agent, &guest.repo, part);
    let outcome = guest.run(Some(&command), false, timeout, true)?;
    save_json(
        &guest.target,
        part,
        v.short(),
        &String::from_utf8_lossy(&outcome.output),
    )?;
    vm::exit_status(&outcome, timeout)
}

/// `xtask bench-guest run` for `part`: the measurements themselves, in the VM or on this host.
fn guest_command(
    xtask: std::path::PathBuf,
    agent: &std::path::Path,
    repo: &std::path::Path,
    part: Part,
) -> Vec<OsString> {
    let part = part
        .to_possible_value()
        .map_or("all".into(), |p| p.get_name().to_string());
    vec![
        xtask.into_os_string(),
        "bench-guest".into(),
        "run".into(),
        "--agent".into(),
        agent.into(),
        "--repo".into(),
        repo.into(),
        "--part".into(),
        part.into(),
    ]
}

/// Keeps the JSON line of a benchmark's `output` as `target/bench/bench[-PART]-LABEL.json`.
fn save_json(target: &std::path::Path, part: Part, label: &str, output: &str) -> Result<()> {
    let Some(json) = output
        .lines()
        .find_map(|l| l.trim().strip_prefix(guest::JSON_MARKER))
    else {
        return Ok(());
    };
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir)?;
    let file = match part {
        Part::All => dir.join(format!("bench-{label}.json")),
        Part::Hooks => dir.join(format!("bench-hooks-{label}.json")),
        other => dir.join(format!("bench-{other:?}-{label}.json").to_lowercase()),
    };
    std::fs::write(&file, format!("{json}\n"))
        .with_context(|| format!("writing {}", file.display()))?;
    eprintln!("[bench] results written to {}", file.display());
    Ok(())
}
