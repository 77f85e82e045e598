//! `run --policy FILE -- CMD`: a transient cgroup, the policy attached to it, then the command
//! started inside it. The command never starts unconfined: any failure before exec aborts.

use std::{
    fs::OpenOptions,
    os::{fd::AsRawFd, unix::process::CommandExt, unix::process::ExitStatusExt},
    path::Path,
    process::Command,
};

use anyhow::Context as _;

use crate::cgroup::{TransientCgroup, CGROUP_ROOT};

/// Parent of the transient cgroups.
pub const RUN_CGROUP_PARENT: &str = "sandbox-agent";

pub fn run(socket: &Path, policy: &Path, home: &Path, cmd: &[String]) -> anyhow::Result<i32> {
    let (program, args) = cmd.split_first().context("no command given after --")?;
    let parent = Path::new(CGROUP_ROOT).join(RUN_CGROUP_PARENT);
    if !parent.exists() {
        std::fs::create_dir(&parent)
            .or_else(|e| if parent.exists() { Ok(()) } else { Err(e) })
            .with_context(|| format!("cannot create cgroup {}", parent.display()))?;
    }
    let cgroup = TransientCgroup::create(&parent, &format!("run-{}", std::process::id()))?;
    let info = super::attach::attach(socket, cgroup.path(), policy, home)?;
    for w in &info.warnings {
        eprintln!("sandbox-agent: warning: {w}");
    }
    let procs = OpenOptions::new()
        .write(true)
        .open(cgroup.path().join("cgroup.procs"))
        .with_context(|| format!("cannot open {}/cgroup.procs", cgroup.path().display()))?;
    let procs_fd = procs.as_raw_fd();

    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // calls (write, signal) on a descriptor opened before the fork.
    unsafe {
        command.pre_exec(move || {
            // "0" moves the writing process: the child joins the confined cgroup before exec.
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    // The terminal's Ctrl-C reaches the child; this process stays to clean up.
    // SAFETY: setting dispositions to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = command
        .spawn()
        .with_context(|| format!("cannot start {program} in the confined cgroup"))
        .and_then(|mut child| child.wait().context("waiting for the command"));
    drop(procs);
    let detached = super::attach::detach(socket, cgroup.path());
    let removed = cgroup.remove();
    let status = status?;
    detached.context("detaching the transient cgroup")?;
    removed.with_context(|| format!("removing {}", cgroup.path().display()))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
