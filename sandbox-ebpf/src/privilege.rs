//! A confined root is not root: the capabilities whose reach goes past the sandbox
//! (`capable`), kernel modules and kexec by any route (`kernel_module_request`,
//! `kernel_load_data`, `kernel_read_file`), and the ioctls of `DENIED_IOCTLS`: keystrokes
//! pushed into a terminal, btrfs snapshots made or deleted (`file_ioctl`, `file_ioctl_compat`).
//! The same hooks decide `chattr` as a change of the file (`deny_write`, `allow_write`).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    ioctl_denied, sets_inode_flags, CAP_OPT_NOAUDIT, DENIED_CAPS, HOOK_CAPABLE, HOOK_FILE_IOCTL,
    HOOK_FILE_IOCTL_COMPAT, HOOK_KERNEL_LOAD_DATA, HOOK_KERNEL_MODULE_REQUEST,
    HOOK_KERNEL_READ_FILE, NARROWED_CAPS, RULE_ID_SELF_PROTECTION,
};

use crate::{
    audit,
    guard::deny_confined,
    hook::earlier_denial,
    kernel::{offsets, read_ptr},
    other_processes::{
        verdict_on_async_ioctl, verdict_on_owner_ioctl, FIOASYNC, FIOSETOWN, SIOCSPGRP,
    },
    other_users::narrowed_capability,
    policy::current_policy,
    target::Target,
    verdict::{apply, Decision},
    write::verdict_on_change,
};

#[lsm(hook = "capable")]
pub fn capable(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, capable, const struct cred *cred, struct user_namespace *ns, int cap,
    //          unsigned int opts)
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    let cap: i32 = ctx.arg(2);
    // Runs for every privileged operation on the host: a capability confined tasks keep
    // leaves before any lookup.
    if !(0..64).contains(&cap) {
        return 0;
    }
    let policy = if NARROWED_CAPS & (1u64 << cap) != 0 {
        match narrowed_capability(ctx.arg(0), cap) {
            Ok(()) => return 0,
            Err(policy) => policy,
        }
    } else if DENIED_CAPS & (1u64 << cap) == 0 {
        return 0;
    } else {
        let Some(policy) = current_policy() else {
            return 0;
        };
        // Whatever user namespace it is checked in: root in a namespace of its own is
        // refused too.
        if policy.capability_allowed(cap as u32) {
            return 0;
        }
        policy
    };
    let decision = Decision::Deny {
        rule_id: RULE_ID_SELF_PROTECTION,
    };
    let (ret, action) = apply(&policy, &decision);
    let opts: u32 = ctx.arg(3);
    // A no-audit probe (has_capability_noaudit) is refused too, but is no attack: no record.
    if let (Some(action), 0) = (action, opts & CAP_OPT_NOAUDIT) {
        let target = Target::Capability(cap as u32);
        audit::emit(
            &policy,
            HOOK_CAPABLE,
            action,
            RULE_ID_SELF_PROTECTION,
            &target,
        );
    }
    ret
}

#[lsm(hook = "kernel_module_request")]
pub fn kernel_module_request(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, kernel_module_request, char *kmod_name): a request_module() on the
    // task's behalf (a socket family, a filesystem type...), which would run modprobe as host
    // root.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    deny_confined(HOOK_KERNEL_MODULE_REQUEST, Target::None)
}

/// READING_FIRMWARE / LOADING_FIRMWARE of <linux/kernel_read_file.h>: firmware a driver asks
/// for comes from the host's own firmware directory, whoever triggered the request.
const FIRMWARE: i32 = 1;

#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, kernel_load_data, enum kernel_load_data_id id, bool contents):
    // init_module, kexec_load, policy and certificate blobs.
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    let id: i32 = ctx.arg(0);
    if id == FIRMWARE {
        return 0;
    }
    deny_loading(HOOK_KERNEL_LOAD_DATA, id)
}

#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, kernel_read_file, struct file *file, enum kernel_read_file_id id,
    //          bool contents): finit_module, kexec_file_load, policy and certificate files.
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let id: i32 = ctx.arg(1);
    if id == FIRMWARE {
        return 0;
    }
    deny_loading(HOOK_KERNEL_READ_FILE, id)
}

/// Denies loading kernel data of kind `id` (a module, a kexec image...) for a confined task.
#[inline(always)]
fn deny_loading(hook: u32, id: i32) -> i32 {
    deny_confined(hook, Target::KernelLoad(id as u32))
}

#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_ioctl(ctx.arg(0), ctx.arg(1), ctx.arg(2), HOOK_FILE_IOCTL)
}

/// The 32-bit compat ioctl path has its own hook since Linux 6.8; attached where it exists.
#[lsm(hook = "file_ioctl_compat")]
pub fn file_ioctl_compat(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_ioctl_compat, struct file *file, unsigned int cmd,
    //          unsigned long arg)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_ioctl(ctx.arg(0), ctx.arg(1), ctx.arg(2), HOOK_FILE_IOCTL_COMPAT)
}

/// The requests of `DENIED_IOCTLS` (terminal input, btrfs snapshots) are refused to confined
/// tasks, and those that set inode flags (`chattr`) are decided as a change of `file`; every
/// other ioctl leaves after the compares, before any lookup.
#[inline(always)]
fn verdict_on_ioctl(file: *const u8, cmd: u32, arg: u64, hook: u32) -> i32 {
    if cmd == FIOSETOWN || cmd == SIOCSPGRP {
        return verdict_on_owner_ioctl(hook, arg);
    }
    if cmd == FIOASYNC {
        return verdict_on_async_ioctl(hook, file, arg);
    }
    if sets_inode_flags(cmd) {
        let dentry = read_ptr(file, offsets().file_dentry).unwrap_or(core::ptr::null());
        return verdict_on_change(hook, dentry);
    }
    if !ioctl_denied(cmd) {
        return 0;
    }
    deny_confined(hook, Target::Ioctl(cmd))
}
