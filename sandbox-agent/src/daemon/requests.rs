//! Control requests, with the slow work done outside the daemon's lock: resolving and
//! compiling a policy (paths, host names, the hardlink scan), scanning a cgroup's descriptors,
//! creating a run's cgroup and killing what is left in it. Only the checks that must see the
//! current attachments and the switch of the maps hold the lock, so `status` and the audit
//! reader never wait behind an attach or the end of a run.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use crate::{
    cgroup::{self, TransientCgroup},
    descriptors,
    policy::{self, Mode},
    protocol::{AttachInfo, Op, Reply, RunOwner},
};

use super::{
    peer::Peer,
    prepare::{prepare, RunDenials},
    runs,
    state::DaemonState,
};

type Locked<'a> = MutexGuard<'a, DaemonState>;

/// Most sockets a run request may add to its own denials.
const MAX_RUN_SOCKETS: usize = 16;
/// The most caches a run may deny on top of its policy (`own_caches`' tools, moved).
const MAX_RUN_CACHES: usize = 32;

fn lock(state: &Mutex<DaemonState>) -> Result<Locked<'_>, String> {
    state
        .lock()
        .map_err(|_| "daemon state is poisoned; restart the daemon".to_string())
}

/// A run whose command was let go: the connection that made it waits for `command` to exit,
/// then ends the run (`end_exited_run`) and answers a second time.
pub struct RunUnderWay {
    pub command: runs::Pidfd,
    pub cgroup_id: u64,
}

/// Handles one request from `peer`: its answer, and for a run what its connection waits for.
pub fn handle(state: &Mutex<DaemonState>, op: Op, peer: &Peer) -> (Reply, Option<RunUnderWay>) {
    handle_op(state, op, peer).unwrap_or_else(|message| (Reply::Error { message }, None))
}

fn handle_op(
    state: &Mutex<DaemonState>,
    op: Op,
    peer: &Peer,
) -> Result<(Reply, Option<RunUnderWay>), String> {
    if let Op::Status = op {
        return Ok((Reply::Status(lock(state)?.status()), None));
    }
    lock(state)?.may_change_policy(peer)?;
    let reply = match op {
        Op::Status => unreachable!("answered above"),
        Op::Attach {
            cgroup,
            policy_file,
            policy_yaml,
            home,
            workspace,
            force,
        } => attach(
            state,
            cgroup,
            &policy_file,
            &policy_yaml,
            policy::Anchors { home, workspace },
            force,
        ),
        Op::Detach { cgroup } => lock(state)?.detach(cgroup),
        Op::Run {
            policy_file,
            policy_yaml,
            home,
            workspace,
            pid,
            deny_sockets,
            deny_caches,
            ends_on_exit,
        } => {
            let anchors = policy::Anchors { home, workspace };
            let (info, run) = run(
                state,
                peer,
                &policy_file,
                &policy_yaml,
                anchors,
                pid,
                RunDenials {
                    sockets: deny_sockets,
                    caches: deny_caches,
                },
            )?;
            // Without `ends_on_exit` the caller's `run_end` (or the sweep) ends it.
            return Ok((Reply::Attached(info), ends_on_exit.then_some(run)));
        }
        Op::RunEnd { cgroup } => run_end(state, peer, &cgroup),
    }?;
    Ok((reply, None))
}

/// Attaches a policy to a cgroup whose processes may already run. A file one of them holds
/// open stays usable through that descriptor whatever the policy says (the kernel decides
/// at open), so an attach that would leave a denied file open is refused, naming every
/// holder, unless `force`d (then they are warnings). An audit-mode policy denies nothing:
/// it only warns.
fn attach(
    state: &Mutex<DaemonState>,
    cgroup: PathBuf,
    policy_file: &str,
    policy_yaml: &str,
    anchors: policy::Anchors,
    force: bool,
) -> Result<Reply, String> {
    let (protected, cache) = lock(state)?.for_prepare();
    let mut prepared = prepare(
        Some(&cache),
        &protected,
        cgroup,
        policy_file,
        policy_yaml,
        anchors,
        RunDenials::default(),
    )?;
    let processes = cgroup::processes_below(&prepared.saved.cgroup, &mut Vec::new());
    prepared.cover_mounts_of(processes);
    let (path, id) = (&prepared.saved.cgroup, prepared.saved.cgroup_id);
    // Nesting first: the more fundamental refusal, and no scan for nothing.
    lock(state)?.check_nesting(path, id)?;
    let scan = descriptors::scan_cgroup(path, &prepared.compiled);
    if !scan.held.is_empty() && !force && prepared.compiled.mode == Mode::Enforce {
        let refusal = scan.refusal(path, &prepared.compiled.name);
        tracing::warn!(cgroup = %path.display(), "attach refused: {refusal}");
        return Err(refusal);
    }
    // `commit` checks nesting again: another attach may have been made meanwhile.
    let mut info = lock(state)?.commit(prepared)?;
    for w in scan.warnings() {
        tracing::warn!(cgroup = %info.cgroup.display(), "{w}");
        info.warnings.push(w);
    }
    Ok(Reply::Attached(info))
}

/// `run`: confines the caller's waiting child `pid` in a new transient cgroup. The policy
/// is in force before the child enters the cgroup; on any failure nothing is left behind
/// (whatever entered is killed before the policy goes, then the cgroup is removed) and the
/// caller must not let the child run.
fn run(
    state: &Mutex<DaemonState>,
    peer: &Peer,
    policy_file: &str,
    policy_yaml: &str,
    anchors: policy::Anchors,
    pid: u32,
    run_denials: RunDenials,
) -> Result<(AttachInfo, RunUnderWay), String> {
    // Only ever adds denials for the caller's own run; bounded, absolute.
    for (what, paths, most) in [
        ("deny_sockets", &run_denials.sockets, MAX_RUN_SOCKETS),
        ("deny_caches", &run_denials.caches, MAX_RUN_CACHES),
    ] {
        if paths.len() > most || paths.iter().any(|p| !p.is_absolute()) {
            return Err(format!(
                "{what}: at most {most} absolute paths; nothing was started"
            ));
        }
    }
    let caller = peer
        .pid
        .ok_or("permission denied: the kernel did not report the caller's pid")?;
    // Pinned first: if the pid changed hands after the checks, the pidfd shows it exited.
    let child = runs::Pidfd::open(pid).map_err(|e| format!("process {pid}: {e}"))?;
    runs::check_own_child(pid, caller, peer.uid)?;
    let owner = RunOwner {
        uid: peer.uid,
        pid: caller,
        start_time: runs::start_time(caller)
            .map_err(|e| format!("cannot identify the caller (pid {caller}): {e}"))?,
    };
    let cg = match TransientCgroup::create_for_run(&format!("run-{caller}")) {
        // A cgroup left by an earlier run whose client had this pid: name this one apart.
        Err(cgroup::CgroupError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            TransientCgroup::create_for_run(&format!("run-{caller}-{pid}"))
        }
        other => other,
    }
    .map_err(|e| format!("cannot create the transient cgroup: {e}"))?;
    let (protected, cache) = lock(state)?.for_prepare();
    let mut prepared = prepare(
        Some(&cache),
        &protected,
        cg.path().to_path_buf(),
        policy_file,
        policy_yaml,
        anchors,
        run_denials,
    )?;
    prepared.saved.run_by = Some(owner);
    // Its namespace is the caller's until it starts.
    prepared.cover_mounts_of([pid]);
    // On an error from here on, dropping `cg` removes the cgroup (nothing is in it yet).
    let info = lock(state)?.commit(prepared)?;
    let moved = if child.exited() {
        Err(format!("process {pid} exited before it was confined"))
    } else {
        cg.add_process(pid)
            .map_err(|e| {
                format!(
                    "cannot move process {pid} into {}: {e}",
                    cg.path().display()
                )
            })
            .and_then(|()| match child.exited() {
                true => Err(format!("process {pid} exited while it was being confined")),
                false => Ok(()),
            })
    };
    if let Err(e) = moved {
        if let Err(k) = cg.kill_all() {
            // Something in it survived: it stays confined, and the cgroup stays.
            let path = cg.keep();
            return Err(format!(
                "{e}; and cannot empty {}: {k}; it stays confined",
                path.display()
            ));
        }
        lock(state)?.forget(info.cgroup_id)?;
        return Err(format!("{e}; nothing was started"));
    }
    let path = cg.keep();
    tracing::info!(
        cgroup = %path.display(),
        pid,
        caller,
        uid = peer.uid,
        "run: the caller's child confined"
    );
    let cgroup_id = info.cgroup_id;
    Ok((
        info,
        RunUnderWay {
            command: child,
            cgroup_id,
        },
    ))
}

/// The end of a run whose command has exited, for the connection that made it: what is left
/// in the cgroup is killed, then the policy detached and the cgroup removed. An error when
/// root ended or detached the run meanwhile (the command was killed from outside).
pub fn end_exited_run(state: &Mutex<DaemonState>, cgroup_id: u64) -> Reply {
    lock(state)
        .and_then(|mut s| s.claim_run_by_id(cgroup_id))
        .and_then(|path| end_claimed_run(state, cgroup_id, path))
        .unwrap_or_else(|message| Reply::Error { message })
}

/// The end of a `run`: kills what is left in its cgroup, then detaches and removes it.
fn run_end(state: &Mutex<DaemonState>, peer: &Peer, cgroup: &Path) -> Result<Reply, String> {
    let (cgroup_id, path) = lock(state)?.claim_run(peer, cgroup)?;
    end_claimed_run(state, cgroup_id, path)
}

/// Ends a run its caller claimed, and says so.
fn end_claimed_run(
    state: &Mutex<DaemonState>,
    cgroup_id: u64,
    path: PathBuf,
) -> Result<Reply, String> {
    end_run(state, cgroup_id, &path)?;
    tracing::info!(cgroup = %path.display(), "run ended: transient cgroup removed");
    Ok(Reply::Detached { cgroup: path })
}

/// Kills every process in a claimed run's cgroup, then (only then) detaches and removes it.
/// The kill (up to seconds for a process that ignores SIGTERM) holds no lock; the policy stays
/// attached until it is done.
fn end_run(state: &Mutex<DaemonState>, cgroup_id: u64, path: &Path) -> Result<(), String> {
    let ended = kill_detach_remove(state, cgroup_id, path);
    lock(state)?.ended(cgroup_id);
    ended
}

fn kill_detach_remove(
    state: &Mutex<DaemonState>,
    cgroup_id: u64,
    path: &Path,
) -> Result<(), String> {
    let cg = TransientCgroup::existing(path.to_path_buf());
    if let Err(e) = cg.kill_all() {
        cg.keep();
        return Err(format!(
            "cannot empty {}: {e}; it stays confined",
            path.display()
        ));
    }
    // Not attached any more (false): root detached it meanwhile, which is what it asked for.
    lock(state)?.forget(cgroup_id)?;
    let removed = cg.remove();
    cg.keep();
    removed.map_err(|e| format!("detached, but cannot remove {}: {e}", path.display()))
}

/// Ends the runs whose client is gone (killed before it could end the run) and whose
/// cgroup has emptied: the command is over, so nothing is left to confine.
pub fn sweep_runs(state: &Mutex<DaemonState>) -> Result<(), String> {
    let over = lock(state)?.abandoned_runs();
    for (cgroup_id, path) in over {
        match end_run(state, cgroup_id, &path) {
            Ok(()) => tracing::info!(
                cgroup = %path.display(),
                "run client gone and its command ended: transient cgroup removed"
            ),
            Err(e) => tracing::warn!(cgroup = %path.display(), "ending an abandoned run: {e}"),
        }
    }
    Ok(())
}
