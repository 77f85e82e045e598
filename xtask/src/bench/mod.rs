//! `cargo xtask bench [--kernel K]`: boots the test VM without the daemon and runs the benchmark
//! (`guest`) there, so every measurement has its baseline from the same run; prints the table
//! and writes it as JSON to `target/bench/bench-<kernel>.json`.

mod guest;
mod hook_stats;
mod landlock;
mod workload;

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Context, Result};

pub use guest::{measure_command, run as run_in_guest};

use crate::kernels::KernelVersion;
use crate::setup::Setup;
use crate::vm::{self, Guest};
use crate::{cmd, paths, project};

pub fn command(v: KernelVersion, timeout: Duration, hooks_only: bool) -> Result<u8> {
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
    let mut command: Vec<OsString> = vec![
        xtask.into_os_string(),
        "bench-guest".into(),
        "run".into(),
        "--agent".into(),
        agent.into_os_string(),
        "--repo".into(),
        guest.repo.clone().into_os_string(),
    ];
    if hooks_only {
        command.push("--hooks".into());
    }
    let outcome = guest.run(Some(&command), false, timeout, true)?;
    let text = String::from_utf8_lossy(&outcome.output);
    if let Some(json) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(guest::JSON_MARKER))
    {
        let dir = guest.target.join("bench");
        std::fs::create_dir_all(&dir)?;
        let kind = if hooks_only { "bench-hooks" } else { "bench" };
        let file = dir.join(format!("{kind}-{}.json", v.short()));
        std::fs::write(&file, format!("{json}\n"))
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!("[bench] results written to {}", file.display());
    }
    vm::exit_status(&outcome, timeout)
}
