//! `run --policy FILE -- CMD`: the command, forked and held before exec, is handed to the
//! daemon, which creates a transient cgroup, attaches the policy and moves the held child into
//! it; only then does the child execute the command. The daemon does the cgroup work, so any
//! user it lets steer it (root or the control group) can run, and the command never starts
//! unconfined: on any failure before the release, the child is killed having run nothing.
//!
//! The command inherits no descriptor above 2 but those named with `--keep-fd`: one opened
//! before confinement (a shell's `3<~/.ssh/id_rsa`) would let it read a file the policy denies,
//! because the kernel decides at open time. A kept descriptor is the user's explicit choice.
//!
//! Nor does it inherit the variables the policy's `env.deny` names (the runner's cloud and
//! registry tokens): the kernel cannot take them back once the command has them.

use std::{
    ffi::{OsStr, OsString},
    os::{fd::RawFd, unix::process::ExitStatusExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};

use crate::{
    client,
    policy::{check_program, compile_with, Anchors, Mode, Policy},
    protocol::{AttachInfo, Op, Reply, RunDenials},
    waiting_child::WaitingChild,
};

pub use crate::cgroup::RUN_CGROUP_PARENT;

/// What `run` was asked to do besides the command itself.
pub struct RunOptions<'a> {
    pub keep_fds: &'a [RawFd],
    /// List the variables taken out of the environment and the denied paths not created yet.
    pub verbose: bool,
}

pub fn run(
    socket: &Path,
    policy: &Path,
    anchors: &Anchors,
    options: &RunOptions,
    cmd: &[String],
) -> anyhow::Result<i32> {
    let keep_fds = options.keep_fds;
    let (program, _) = cmd.split_first().context("no command given after --")?;
    check_kept(keep_fds)?;
    let source = super::attach::read_policy(policy)?;
    let path = which::which(program)
        .with_context(|| format!("cannot find the command {program:?} (searched PATH)"))?;
    refuse_unexecutable(&source.parsed, anchors, program, &path)?;
    let signals = crate::signals::hold().context("cannot set up signal forwarding")?;
    let argv: Vec<&OsStr> = cmd.iter().map(OsStr::new).collect();
    let runners: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let deny_caches =
        crate::policy::own_caches::moved(&source.parsed.own_caches, &runners, &anchors.home);
    let (mut env, removed) = source.parsed.env.filter(runners);
    own_caches(&source.parsed, anchors, &mut env, options.verbose)?;
    let deny_sockets = crate::policy::sockets_named(&removed);
    if options.verbose && !removed.is_empty() {
        let names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "sandbox-agent: taken out of the environment (env.deny): {}",
            names.join(" ")
        );
        for s in &deny_sockets {
            eprintln!(
                "sandbox-agent: the socket {} they name is denied too",
                s.display()
            );
        }
    }
    let mut child = WaitingChild::spawn(&path, &argv, &env, keep_fds)
        .with_context(|| format!("cannot start {program}"))?;
    // On an error here `child` is dropped: killed, having executed nothing.
    if options.verbose {
        for c in &deny_caches {
            eprintln!(
                "sandbox-agent: {} (moved by the runner's variables) is denied too (own_caches)",
                c.display()
            );
        }
    }
    let denials = RunDenials {
        sockets: deny_sockets,
        caches: deny_caches,
    };
    let (info, connection) = confine(socket, &source, anchors, child.pid(), denials)?;
    for w in &info.warnings {
        eprintln!("sandbox-agent: warning: {w}");
    }
    if options.verbose {
        if info.compile_reused {
            eprintln!(
                "sandbox-agent: the daemon reused its compile of this policy: nothing it read \
                 has changed since"
            );
        }
        for p in &info.not_yet_created {
            eprintln!(
                "sandbox-agent: {} does not exist yet: it is denied once created",
                p.display()
            );
        }
    }
    let status = child
        .release()
        .with_context(|| format!("cannot start {program} in the confined cgroup"))
        .and_then(|()| {
            signals.forward_to(child.pid());
            child.wait().context("waiting for the command")
        });
    // The daemon kills what is left in the cgroup before it detaches the policy.
    let ended = end(socket, connection, &info.cgroup);
    let status = status?;
    ended.context("cleaning up the transient cgroup")?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Points the tools the policy's `own_caches` lists at caches of the sandbox's own (made
/// here, as the runner), in place of the developer's, which the policy denies changing.
fn own_caches(
    parsed: &Policy,
    anchors: &Anchors,
    env: &mut Vec<(OsString, OsString)>,
    verbose: bool,
) -> anyhow::Result<()> {
    for (var, dir) in crate::policy::own_caches::environment(&parsed.own_caches, &anchors.home) {
        crate::policy::own_caches::make_own(&anchors.home, &dir).with_context(|| {
            format!(
                "own_caches: cannot make {} for {}; nothing was started",
                dir.display(),
                var.to_string_lossy()
            )
        })?;
        if verbose {
            eprintln!(
                "sandbox-agent: {}={} (own_caches)",
                var.to_string_lossy(),
                dir.display()
            );
        }
        env.retain(|(name, _)| name != &var);
        env.push((var, dir.into_os_string()));
    }
    Ok(())
}

/// Every `--keep-fd` must name a descriptor this process was given: a typo would otherwise
/// keep nothing, or one of `run`'s own (close-on-exec) descriptors.
fn check_kept(keep_fds: &[RawFd]) -> anyhow::Result<()> {
    for &fd in keep_fds {
        // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            bail!("--keep-fd {fd}: descriptor {fd} is not open; nothing was started");
        }
    }
    Ok(())
}

/// Asks the daemon to confine our waiting child `pid` under the policy; the connection stays
/// open for the run's end.
fn confine(
    socket: &Path,
    source: &super::attach::PolicySource,
    anchors: &Anchors,
    pid: u32,
    denials: RunDenials,
) -> anyhow::Result<(AttachInfo, client::Held)> {
    let (reply, connection) = client::call_held(
        socket,
        Op::Run {
            policy_file: source.file.clone(),
            policy_yaml: source.text.clone(),
            home: anchors.home.clone(),
            workspace: anchors.workspace.clone(),
            pid,
            deny_sockets: denials.sockets,
            deny_caches: denials.caches,
            ends_on_exit: true,
        },
    )
    .map_err(|e| {
        if format!("{e}").contains("unknown variant `run`") {
            e.context("the daemon is older than this sandbox-agent (no `run` request): restart it")
        } else {
            e
        }
    })?;
    match reply {
        Reply::Attached(info) => Ok((info, connection)),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Waits for the daemon's end of the run: once the command exited, it emptied, detached and
/// removed the cgroup, and says so on the run's connection. A connection closed without that
/// (the daemon restarted while the command ran) is ended with a `run_end` request instead.
fn end(socket: &Path, mut connection: client::Held, cgroup: &Path) -> anyhow::Result<()> {
    match connection.next_reply()? {
        Some(Reply::Detached { .. }) => Ok(()),
        Some(other) => bail!("unexpected answer from the daemon: {other:?}"),
        None => {
            let cgroup = PathBuf::from(cgroup);
            client::call(socket, Op::RunEnd { cgroup })?;
            Ok(())
        }
    }
}

/// Fails when the policy would stop `program` (or the interpreter it needs) from executing, so
/// `run` says why up front instead of starting a process whose exec fails. The daemon's compile
/// at attach time stays the authority; this is the same decision made early. In audit mode
/// nothing is denied (a learning run's `allow_exec: []` only records), so nothing is refused.
fn refuse_unexecutable(
    parsed: &Policy,
    anchors: &Anchors,
    program: &str,
    path: &Path,
) -> anyhow::Result<()> {
    if parsed.mode == Mode::Audit || parsed.deny_exec.is_empty() && parsed.allow_exec.is_none() {
        return Ok(());
    }
    let compiled = compile_with(parsed, anchors)?;
    check_program(&compiled, path).with_context(|| {
        format!(
            "policy {:?} would not let {program:?} execute; nothing was started",
            parsed.name
        )
    })
}
