//! Self-protection, enforced for every confined task whatever its policy says: no bpf(), no
//! writes into cgroupfs (so no moving out of the confined cgroup, by cgroup.procs or by
//! clone3(CLONE_INTO_CGROUP)) or the other kernel filesystems (sysfs, bpffs with the enforcer's
//! pins, securityfs, debugfs, tracefs...), no signals or ptrace to tasks outside its own sandbox (the daemon
//! among them), and no mounts that could hide or replace files.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    CgroupPolicy, HOOK_BPF, HOOK_INODE_PERMISSION, HOOK_MOVE_MOUNT, HOOK_PTRACE, HOOK_SB_MOUNT,
    HOOK_TASK_KILL, KERNEL_FS_MAGICS, RULE_ID_SELF_PROTECTION,
};

use crate::{
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    maps::CONFINED_TASKS,
    policy::{confining_attachment, current_policy},
    target::{FileId, Target},
    verdict::{enforce, Decision},
};

/// MAY_WRITE from <linux/fs.h>.
const MAY_WRITE: i32 = 0x2;

/// Whether `magic` is one of the kernel's own filesystems (cgroupfs, sysfs, bpffs...).
#[inline(always)]
fn is_kernel_fs(magic: u64) -> bool {
    let mut i = 0;
    while i < KERNEL_FS_MAGICS.len() {
        if KERNEL_FS_MAGICS[i] == magic {
            return true;
        }
        i += 1;
    }
    false
}

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

#[lsm(hook = "inode_permission")]
pub fn inode_permission(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_permission, struct inode *inode, int mask)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    // Runs on every path lookup: leave at once unless this is a write.
    let mask: i32 = ctx.arg(1);
    if mask & MAY_WRITE == 0 {
        return 0;
    }
    let off = offsets();
    let inode: *const u8 = ctx.arg(0);
    let Ok(sb) = read_ptr(inode, off.inode_sb) else {
        return deny_confined(HOOK_INODE_PERMISSION, Target::None);
    };
    // Unreadable: treated as one of them, so a confined task fails closed.
    let magic: u64 = read_at(sb, off.sb_magic).unwrap_or(KERNEL_FS_MAGICS[0]);
    if !is_kernel_fs(magic) {
        return 0;
    }
    // Denied either way: an unreadable number only leaves the record without it.
    let target = Target::file(FileId {
        dev: read_at(sb, off.sb_dev).unwrap_or(0),
        ino: read_at(inode, off.inode_ino).unwrap_or(0),
        ..FileId::default()
    });
    deny_confined(HOOK_INODE_PERMISSION, target)
}

/// Denies a confined task acting on `task` unless `task` is confined by the same attachment
/// (marked with it: see `policy`). A task moved out of the sandbox by someone outside stays
/// confined, and still cannot signal what now shares its cgroup.
#[inline(always)]
fn only_own_sandbox(hook: u32, task: *const u8) -> i32 {
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    // SAFETY: copied out at once; see policy::current_policy.
    if unsafe { CONFINED_TASKS.get(&(task as u64)).copied() } == Some(attachment) {
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
