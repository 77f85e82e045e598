//! Which policy, if any, confines the current task.
//!
//! A task is confined by the policy attached to its cgroup or an ancestor, and stays confined by
//! it wherever the task is moved afterwards (by itself it cannot move: see `kernel_fs` and
//! `confinement`; a root process outside could): the first decision for a task, and every fork of a confined task,
//! marks the task in `CONFINED_TASKS` with the attachment's cgroup id. A mark outlives a move
//! but not a detach: it names the attachment, whose policy is looked up at each decision.
//! A task with no mark is decided by its cgroup's cached verdict (`CGROUP_VERDICTS`), valid for
//! one generation of attachments.

use aya_ebpf::helpers::generated::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_get_current_task,
};
use sandbox_common::{CgroupPolicy, CgroupVerdict, MAX_CGROUP_DEPTH};

use crate::kernel::{offsets, read_at, read_ptr};

use crate::maps::{
    ANY_ATTACHED, CGROUP_GENERATION, CGROUP_POLICY, CGROUP_VERDICTS, CONFINED_TASKS,
};

/// BPF_ANY: create the mark or replace a stale one.
const BPF_ANY: u64 = 0;

/// The policy confining the current task: by its mark, else by its cgroup's ancestry (and then
/// the task is marked).
#[inline(always)]
pub fn current_policy() -> Option<CgroupPolicy> {
    confining_attachment().map(|(_, policy)| policy)
}

/// Whether any cgroup may be attached: when none is, no task is confined and every hook leaves
/// after this one array read. A missing value counts as attached (fail closed).
#[inline(always)]
pub fn any_attached() -> bool {
    ANY_ATTACHED.get(0).is_none_or(|v| *v != 0)
}

/// (cgroup id of the attachment, its policy) confining the current task.
#[inline(always)]
pub fn confining_attachment() -> Option<(u64, CgroupPolicy)> {
    if !any_attached() {
        return None;
    }
    // SAFETY: a plain helper call; the address is only used as a map key.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: values are copied out at once; a concurrent update can only make us see the old
    // or the new value, both valid.
    if let Some(cgroup) = unsafe { CONFINED_TASKS.get(&task).copied() } {
        if let Some(policy) = unsafe { CGROUP_POLICY.get(&cgroup).copied() } {
            return Some((cgroup, policy));
        }
    }
    let (cgroup, policy) = cgroup_attachment()?;
    // Confined before it was marked (in the cgroup when the policy was attached), or its mark
    // names a detached attachment. If the table is full the cgroup still confines the task.
    let _ = CONFINED_TASKS.insert(&task, &cgroup, BPF_ANY);
    Some((cgroup, policy))
}

/// The attachment confining the current task's cgroup, from the cache when it holds a verdict
/// of the current generation (one lookup), else by walking the ancestry (and caching that).
#[inline(always)]
fn cgroup_attachment() -> Option<(u64, CgroupPolicy)> {
    // Read before the walk: a verdict found while the daemon changes an attachment is tagged
    // with the generation before the change, which the daemon's increment makes stale.
    let Some(generation) = CGROUP_GENERATION.get(0).copied() else {
        // Unreadable: no cache, the walk decides (never "unconfined" for want of a value).
        return attached_ancestor();
    };
    // SAFETY: a plain helper call.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: copied out at once, as above.
    if let Some(v) = unsafe { CGROUP_VERDICTS.get(&cgroup).copied() } {
        if v.generation == generation {
            if v.attachment == 0 {
                return None;
            }
            // SAFETY: as above. A policy gone since (detached) falls through to the walk.
            if let Some(policy) = unsafe { CGROUP_POLICY.get(&v.attachment).copied() } {
                return Some((v.attachment, policy));
            }
        }
    }
    let found = attached_ancestor();
    let verdict = CgroupVerdict {
        generation,
        attachment: found.map_or(0, |(id, _)| id),
    };
    // A full cache evicts its least used verdict; a failed write only costs the next walk.
    let _ = CGROUP_VERDICTS.insert(&cgroup, &verdict, BPF_ANY);
    found
}

/// The policy attached to the current task's cgroup or to one of its ancestors. The daemon
/// refuses nested attachments, so the first attached cgroup found on the way down from the root
/// is the only one.
#[inline(always)]
fn attached_ancestor() -> Option<(u64, CgroupPolicy)> {
    // Level 0 is the root cgroup; the helper returns 0 past the task's own level.
    for level in 0..MAX_CGROUP_DEPTH {
        // SAFETY: a plain helper call with a scalar argument.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 {
            return None;
        }
        // SAFETY: copied out at once, as above.
        if let Some(p) = unsafe { CGROUP_POLICY.get(&id) } {
            return Some((id, *p));
        }
    }
    None
}

/// The attachment (its cgroup id and policy) of the cgroup `cgroup` (a `struct cgroup`) or of
/// its nearest attached ancestor. The daemon refuses nested attachments, so the first one found
/// going up is the only one.
#[inline(always)]
pub fn attachment_of_cgroup(mut cgroup: *const u8) -> Result<Option<(u64, CgroupPolicy)>, i32> {
    let off = offsets();
    for _ in 0..MAX_CGROUP_DEPTH {
        let id: u64 =
            read_ptr(cgroup, off.cgroup_kn).and_then(|kn| read_at(kn, off.kernfs_node_id))?;
        // SAFETY: copied out at once; see `current_policy`.
        if let Some(policy) = unsafe { CGROUP_POLICY.get(&id).copied() } {
            return Ok(Some((id, policy)));
        }
        // `self` is the cgroup's first field: its parent's `self` is the parent cgroup.
        match read_at::<*const u8>(cgroup, off.cgroup_parent)? {
            parent if parent.is_null() => return Ok(None),
            parent => cgroup = parent,
        }
    }
    // Deeper than the policy lookup looks: no sandbox's.
    Ok(None)
}

/// The attachment confining `task` (a `struct task_struct`): its mark, else, for a task with
/// none yet (in its cgroup when the policy was attached, and no decision of its own since),
/// its cgroup's.
#[inline(always)]
pub fn attachment_of_task(task: *const u8) -> Option<u64> {
    // SAFETY: copied out at once, as above.
    if let Some(mark) = unsafe { CONFINED_TASKS.get(&(task as u64)).copied() } {
        return Some(mark);
    }
    let off = offsets();
    let cgroup = read_ptr(task, off.task_cgroups)
        .and_then(|css_set| read_ptr(css_set, off.css_set_dfl_cgrp))
        .ok()?;
    attachment_of_cgroup(cgroup).ok()?.map(|(id, _)| id)
}
