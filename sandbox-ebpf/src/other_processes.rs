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
    HOOK_TASK_SETIOPRIO, HOOK_TASK_SETNICE, HOOK_TASK_SETRLIMIT, HOOK_TASK_SETSCHEDULER,
};

use crate::{guard::only_own_sandbox, hook::earlier_denial};

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

#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setrlimit, struct task_struct *p, unsigned int resource,
    //          struct rlimit *new_rlim): `setrlimit` and `prlimit` with new limits, the task
    // whose limits change. Reading another process's limits stays allowed.
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETRLIMIT, ctx.arg(0))
}
