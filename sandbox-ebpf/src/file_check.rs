//! The decision every file-based hook shares: find the confining policy, decide on the file by
//! inode identity for the hook's rule bit, record the denial, and return the hook's verdict.

use sandbox_common::{KernelOffsets, RULE_ID_FAIL_CLOSED};

use crate::{
    audit,
    kernel::{offsets, read_at, read_ptr},
    policy::current_policy,
    verdict::{apply, Decision},
    walk::{check_dentry, Target},
};

/// Verdict of `hook` on an access to `file` that the rule bits `want` can deny.
#[inline(always)]
pub fn verdict_on_file(file: *const u8, want: u32, hook: u32) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    let (decision, target) = decide(policy.policy_id, file, want);
    let (ret, action) = apply(&policy, &decision);
    if let (Some(action), Decision::Deny { rule_id }) = (action, &decision) {
        audit::emit(&policy, hook, action, *rule_id, &target);
    }
    ret
}

#[inline(always)]
fn decide(policy_id: u32, file: *const u8, want: u32) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let off = offsets();
    if off.valid == 0 || file.is_null() {
        return (fail_closed, Target::default());
    }
    let Ok(target) = file_target(&off, file) else {
        return (fail_closed, Target::default());
    };
    let Ok(dentry) = read_ptr(file, off.file_dentry) else {
        return (fail_closed, target);
    };
    (
        check_dentry(&off, policy_id, target.dev, dentry, want),
        target,
    )
}

/// (kernel dev_t, inode number) of an open file.
#[inline(always)]
fn file_target(off: &KernelOffsets, file: *const u8) -> Result<Target, i32> {
    let inode = read_ptr(file, off.file_inode)?;
    let sb = read_ptr(inode, off.inode_sb)?;
    Ok(Target {
        dev: read_at(sb, off.sb_dev)?,
        ino: read_at(inode, off.inode_ino)?,
    })
}
