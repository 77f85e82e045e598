//! Self-protection, enforced for every confined task whatever its policy says: no bpf(), no
//! signals or ptrace to tasks outside its own sandbox (the daemon among them), and no mounts
//! that could hide or replace files. The kernel filesystems are guarded where files change
//! (`kernel_fs`), and clone3(CLONE_INTO_CGROUP) where tasks are made (`confinement`).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    CgroupPolicy, KernelOffsets, HOOK_BPF, HOOK_MOVE_MOUNT, HOOK_PTRACE, HOOK_SB_MOUNT,
    HOOK_TASK_KILL, RULE_ID_SELF_PROTECTION,
};

use crate::{
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    policy::{attachment_of_task, confining_attachment, current_policy},
    target::Target,
    verdict::{enforce, Decision},
};

/// Denies for a confined task (recording `target`), allows for everyone else.
#[inline(always)]
pub fn deny_confined(hook: u32, target: Target) -> i32 {
    match current_policy() {
        Some(policy) => deny(&policy, hook, target),
        None => 0,
    }
}

/// Denies under `policy`, recording `target`.
#[inline(always)]
pub fn deny(policy: &CgroupPolicy, hook: u32, target: Target) -> i32 {
    let decision = Decision::Deny {
        rule_id: RULE_ID_SELF_PROTECTION,
    };
    enforce(policy, hook, decision, &target)
}

#[lsm(hook = "bpf")]
pub fn bpf(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, bpf, int cmd, union bpf_attr *attr, unsigned int size)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    // Loading, reading or changing any BPF object (our pinned maps included) is off limits.
    let cmd: i32 = ctx.arg(0);
    deny_confined(HOOK_BPF, Target::BpfCommand(cmd as u32))
}

/// Whether `task` is confined by `attachment` (see `policy::attachment_of_task`).
#[inline(always)]
pub fn in_sandbox(task: *const u8, attachment: u64) -> bool {
    attachment_of_task(task) == Some(attachment)
}

/// Whether the task of `pid` (a `struct pid`: the task whose id it is) is confined by
/// `attachment`. False when it cannot be read (fail closed) or has exited.
#[inline(always)]
pub fn pid_in_sandbox(off: &KernelOffsets, pid: *const u8, attachment: u64) -> bool {
    // pid->tasks[PIDTYPE_PID].first is &task->pid_links[PIDTYPE_PID] (null, an error here,
    // once it exited).
    match read_ptr(pid, off.pid_tasks) {
        Ok(link) => in_sandbox(link.wrapping_sub(off.task_pid_links as usize), attachment),
        Err(_) => false,
    }
}

/// Denies a confined task acting on `task` unless `task` is confined by the same attachment
/// (`in_sandbox`). A task moved out of the sandbox by someone outside stays confined, and
/// still cannot signal what now shares its cgroup.
#[inline(always)]
pub fn only_own_sandbox(hook: u32, task: *const u8) -> i32 {
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    if in_sandbox(task, attachment) {
        return 0;
    }
    let tgid: u32 = read_at(task, offsets().task_tgid).unwrap_or(0);
    deny(&policy, hook, Target::Task(tgid))
}

#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
    //          const struct cred *cred)
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_KILL, ctx.arg(0))
}

#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, ptrace_access_check, struct task_struct *child, unsigned int mode)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    only_own_sandbox(HOOK_PTRACE, ctx.arg(0))
}

#[lsm(hook = "sb_mount")]
pub fn sb_mount(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, sb_mount, const char *dev_name, const struct path *path,
    //          const char *type, unsigned long flags, void *data)
    if let Some(denied) = earlier_denial(&ctx, 5) {
        return denied;
    }
    deny_confined(HOOK_SB_MOUNT, Target::None)
}

#[lsm(hook = "move_mount")]
pub fn move_mount(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, move_mount, const struct path *from_path, const struct path *to_path)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    deny_confined(HOOK_MOVE_MOUNT, Target::None)
}
