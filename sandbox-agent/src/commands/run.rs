//! `run --policy FILE -- CMD`: a transient cgroup, the policy attached to it, then the command
//! started inside it. The command never starts unconfined: any failure before exec aborts.

use std::{os::unix::process::ExitStatusExt, path::Path, process::Command};

use anyhow::Context as _;

use crate::{
    cgroup::{spawn_in_cgroup, TransientCgroup, CGROUP_ROOT},
    policy::{check_program, compile_with, Anchors, Policy},
};

/// Parent of the transient cgroups.
pub const RUN_CGROUP_PARENT: &str = "sandbox-agent";

pub fn run(socket: &Path, policy: &Path, anchors: &Anchors, cmd: &[String]) -> anyhow::Result<i32> {
    let (program, args) = cmd.split_first().context("no command given after --")?;
    let source = super::attach::read_policy(policy)?;
    refuse_unexecutable(&source.parsed, anchors, program)?;
    let signals = crate::signals::hold().context("cannot set up signal forwarding")?;
    let parent = Path::new(CGROUP_ROOT).join(RUN_CGROUP_PARENT);
    if !parent.exists() {
        std::fs::create_dir(&parent)
            .or_else(|e| if parent.exists() { Ok(()) } else { Err(e) })
            .with_context(|| format!("cannot create cgroup {}", parent.display()))?;
    }
    let cgroup = TransientCgroup::create(&parent, &format!("run-{}", std::process::id()))?;
    let info = super::attach::attach(socket, cgroup.path(), &source, anchors)?;
    for w in &info.warnings {
        eprintln!("sandbox-agent: warning: {w}");
    }
    let mut command = Command::new(program);
    command.args(args);
    let status = spawn_in_cgroup(&mut command, cgroup.path())
        .with_context(|| format!("cannot start {program} in the confined cgroup"))
        .and_then(|mut child| {
            signals.forward_to(child.id());
            child.wait().context("waiting for the command")
        });
    // Leftover descendants die before the policy goes away: nothing confined runs unconfined.
    let killed = cgroup.kill_all();
    let detached = killed
        .map_err(anyhow::Error::from)
        .and_then(|()| super::attach::detach(socket, cgroup.path()));
    let status = status?;
    detached.context("cleaning up the transient cgroup")?;
    cgroup
        .remove()
        .with_context(|| format!("removing {}", cgroup.path().display()))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Fails when the policy would stop `program` (or the interpreter it needs) from executing, so
/// `run` says why up front instead of starting a process whose exec fails. The daemon's compile
/// at attach time stays the authority; this is the same decision made early.
fn refuse_unexecutable(parsed: &Policy, anchors: &Anchors, program: &str) -> anyhow::Result<()> {
    if parsed.deny_exec.is_empty() && parsed.allow_exec.is_none() {
        return Ok(());
    }
    let compiled = compile_with(parsed, anchors)?;
    let path = which::which(program)
        .with_context(|| format!("cannot find the command {program:?} (searched PATH)"))?;
    check_program(&compiled, &path).with_context(|| {
        format!(
            "policy {:?} would not let {program:?} execute; nothing was started",
            parsed.name
        )
    })
}
