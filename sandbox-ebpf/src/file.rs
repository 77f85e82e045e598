//! `file_open`: deny_read by canonical inode identity.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_FILE_OPEN, RULE_DENY_READ, RULE_ID_FAIL_CLOSED};

use crate::{
    audit,
    kernel::{offsets, read_at, read_ptr},
    policy::current_policy,
    verdict::{apply, Decision},
    walk::{check_dentry, Target},
};

#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_open, struct file *file); the last argument is the verdict of the
    // LSMs before us: a denial there stands.
    let previous: i32 = ctx.arg(1);
    if previous != 0 {
        return previous;
    }
    let Some(policy) = current_policy() else {
        return 0;
    };
    let file: *const u8 = ctx.arg(0);
    let (decision, target) = decide(policy.policy_id, file);
    let (ret, action) = apply(&policy, &decision);
    if let (Some(action), Decision::Deny { rule_id }) = (action, &decision) {
        audit::emit(&policy, HOOK_FILE_OPEN, action, *rule_id, &target);
    }
    ret
}

#[inline(always)]
fn decide(policy_id: u32, file: *const u8) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let off = offsets();
    if off.valid == 0 {
        return (fail_closed, Target::default());
    }
    let Ok(target) = file_target(&off, file) else {
        return (fail_closed, Target::default());
    };
    let Ok(dentry) = read_ptr(file, off.file_dentry) else {
        return (fail_closed, target);
    };
    let decision = check_dentry(&off, policy_id, target.dev, dentry, RULE_DENY_READ);
    (decision, target)
}

/// (kernel dev_t, inode number) of the opened file.
#[inline(always)]
fn file_target(off: &sandbox_common::KernelOffsets, file: *const u8) -> Result<Target, i32> {
    let inode = read_ptr(file, off.file_inode)?;
    let sb = read_ptr(inode, off.inode_sb)?;
    Ok(Target {
        dev: read_at(sb, off.sb_dev)?,
        ino: read_at(inode, off.inode_ino)?,
    })
}
