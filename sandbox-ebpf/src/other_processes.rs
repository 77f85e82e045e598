//! A confined task steers no process outside its own sandbox. Signals and ptrace are `guard`'s;
//! these are the rest of what the kernel lets a task do to any process of its own user without
//! a capability, which for a confined root is every root process on the host (the daemon,
//! sshd, a container runtime): lower its priority (`setpriority`, `renice`), its I/O priority
//! (`ioprio_set`), change its scheduling policy or CPUs (`sched_setscheduler`,
//! `sched_setattr`, `sched_setaffinity`: SCHED_IDLE starves it), or its resource limits
//! (`prlimit`: an RLIMIT_CPU hard limit kills it, RLIMIT_NOFILE or RLIMIT_AS break it).
//! Writing its `/proc/<pid>` files (`oom_score_adj`: the OOM killer's choice) is refused where
//! files are opened (`host_files`). Moving its memory (`migrate_pages`, `move_pages`) passes
//! ptrace's check first, which `guard` refuses.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    HOOK_TASK_PRLIMIT, HOOK_TASK_SETIOPRIO, HOOK_TASK_SETNICE, HOOK_TASK_SETSCHEDULER,
};

use crate::{
    guard::{deny, only_own_sandbox},
    hook::earlier_denial,
    policy::current_policy,
    target::Target,
};

/// `LSM_PRLIMIT_WRITE` of <linux/security.h>: the call sets limits (else it only reads them).
const LSM_PRLIMIT_WRITE: u32 = 2;

#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setnice, struct task_struct *p, int nice)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETNICE, ctx.arg(0))
}

#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setioprio, struct task_struct *p, int ioprio)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETIOPRIO, ctx.arg(0))
}

#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setscheduler, struct task_struct *p): policy, priority, CPUs.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETSCHEDULER, ctx.arg(0))
}

#[lsm(hook = "task_prlimit")]
pub fn task_prlimit(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_prlimit, const struct cred *cred, const struct cred *tcred,
    //          unsigned int flags): only for another task than the caller. The hook is told
    // the target's credentials, not the target, so a confined task sets the limits of no
    // other process (its own threads, which share its credentials, excepted); reading them
    // stays allowed.
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let flags: u32 = ctx.arg(2);
    let cred: *const u8 = ctx.arg(0);
    let target: *const u8 = ctx.arg(1);
    if flags & LSM_PRLIMIT_WRITE == 0 || cred == target {
        return 0;
    }
    match current_policy() {
        Some(policy) => deny(&policy, HOOK_TASK_PRLIMIT, Target::None),
        None => 0,
    }
}
