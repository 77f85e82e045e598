//! Confinement follows the task: every child of a confined task is marked with its parent's
//! attachment when it is created, before it can run, and the mark goes when the task is freed.
//! Nor is a child made straight into another cgroup (clone3's CLONE_INTO_CGROUP): marked, it
//! would stay confined, but out of its sandbox's limits (pids, memory).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_TASK_ALLOC, RULE_ID_FAIL_CLOSED};

use crate::{
    audit,
    guard::deny,
    hook::earlier_denial,
    maps::CONFINED_TASKS,
    policy::confining_attachment,
    target::Target,
    verdict::{apply, Decision},
};

/// BPF_ANY, not BPF_NOEXIST: while a restarted daemon hands over, the old and the new
/// `task_alloc` programs are both attached and both mark the child with the same value; a
/// stale mark at a reused task address is overwritten with the right one. Only a full map fails.
const BPF_ANY: u64 = 0;
/// EAGAIN, what fork returns when a task limit is reached.
const EAGAIN: i32 = 11;
/// CLONE_INTO_CGROUP from <uapi/linux/sched.h>: clone3 puts the child in the cgroup it names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[lsm(hook = "task_alloc")]
pub fn task_alloc(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_alloc, struct task_struct *task, unsigned long clone_flags)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    let flags: u64 = ctx.arg(1);
    if flags & CLONE_INTO_CGROUP != 0 {
        // Audit mode records it and lets it through, marked below like any child.
        let verdict = deny(&policy, HOOK_TASK_ALLOC, Target::None);
        if verdict != 0 {
            return verdict;
        }
    }
    let child: u64 = ctx.arg(0);
    if CONFINED_TASKS.insert(&child, &attachment, BPF_ANY).is_ok() {
        return 0;
    }
    // Unmarked, the child could be moved out of the sandbox unconfined: no such child, even in
    // audit mode (the record says why).
    let decision = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    if let (_, Some(action)) = apply(&policy, &decision) {
        audit::emit(
            &policy,
            HOOK_TASK_ALLOC,
            action,
            RULE_ID_FAIL_CLOSED,
            &Target::None,
        );
    }
    -EAGAIN
}

#[lsm(hook = "task_free")]
pub fn task_free(ctx: LsmContext) -> i32 {
    // LSM_HOOK(void, LSM_RET_VOID, task_free, struct task_struct *task)
    let task: u64 = ctx.arg(0);
    let _ = CONFINED_TASKS.remove(&task);
    0
}
