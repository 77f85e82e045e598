//! Changes of a file that are not its content, under deny_write, deny_read and on kernel
//! filesystems: its mode (a setuid bit, a world-writable startup file, a world-readable key),
//! its owner, its extended attributes (file capabilities in `security.capability`) and its
//! POSIX ACLs. Each outlasts the sandbox: what runs, writes or reads the file later, outside,
//! gets what the confined task set. And under deny_write and allow_write its timestamps, which
//! tools outside trust to say whether a file changed (make, rsync, backups).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    CgroupPolicy, HOOK_INODE_REMOVEXATTR, HOOK_INODE_REMOVE_ACL, HOOK_INODE_SETATTR,
    HOOK_INODE_SETXATTR, HOOK_INODE_SET_ACL, HOOK_PATH_CHMOD, HOOK_PATH_CHOWN, RULE_DENY_READ,
    RULE_DENY_WRITE,
};

use crate::{
    hook::{earlier_denial, slot},
    kernel::{offsets, read_at, read_ptr},
    mode::{inode_mode, S_IWGRP_IWOTH},
    other_users::{
        fowner_narrowed, given_to_another, is_posix_acl, owned_by_another, regular_file,
        setid_program, sets_id,
    },
    policy::{confining_attachment, current_policy},
    sticky_dirs::{changes_a_shared_directory, opens_up_trusted_file},
    task::acting_as_itself,
    write::{path_dentry, verdict_on_change, verdict_on_change_under, verdict_under, Change},
};

/// Verdict of `hook` on changing the attributes of `dentry` for a task `policy` confines:
/// deny_write protects the file, deny_read who may read it.
#[inline(always)]
fn verdict_on_attributes(policy: &CgroupPolicy, hook: u32, dentry: *const u8) -> i32 {
    let change = Change {
        dentry,
        want: RULE_DENY_READ | RULE_DENY_WRITE,
        of_the_file: true,
    };
    verdict_under(policy, hook, change, None)
}

/// Verdict of `hook` on changing the extended attribute `name` (null: a POSIX ACL) of
/// `dentry`: no attribute of a shared directory (see `sticky_dirs`) changes; an ACL of another
/// user's file is refused as its mode is, and so is one of a file in root's `/tmp` (as if it
/// gave others write); and every attribute is decided as the file's attributes.
#[inline(always)]
fn acl_or_attribute(hook: u32, dentry: *const u8, name: *const u8) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    // Plain ifs, no closures: a closure the compiler keeps as a call hands its `Option<i32>`
    // back through the stack, and the verifier then cannot bound the program's return value.
    if fowner_narrowed(&policy) {
        if let Some(denied) = changes_a_shared_directory(&policy, hook, dentry) {
            return denied;
        }
        if name.is_null() || is_posix_acl(name) {
            if let Some(denied) = owned_by_another(&policy, hook, dentry) {
                return denied;
            }
            if let Some(denied) = opens_up_trusted_file(&policy, hook, dentry, S_IWGRP_IWOTH) {
                return denied;
            }
        }
    }
    verdict_on_attributes(&policy, hook, dentry)
}

#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_chmod, const struct path *path, umode_t mode): chmod, fchmod,
    // fchmodat.
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    let dentry = path_dentry(ctx.arg(0));
    let mode = ctx.arg::<u64>(1) as u32 & 0xffff;
    let Some(policy) = current_policy() else {
        return 0;
    };
    let (hook, policy) = (HOOK_PATH_CHMOD, &policy);
    // The file's type is read only for a set-id mode.
    if sets_id(mode) {
        let regular = read_ptr(dentry, offsets().dentry_inode)
            .and_then(inode_mode)
            .map_or(true, regular_file);
        if let Some(denied) = setid_program(policy, hook, mode, regular) {
            return denied;
        }
    }
    // Another user's file; a shared directory or a file others may write in root's `/tmp`
    // (see `sticky_dirs`).
    if fowner_narrowed(policy) {
        if let Some(denied) = owned_by_another(policy, hook, dentry) {
            return denied;
        }
        if let Some(denied) = changes_a_shared_directory(policy, hook, dentry) {
            return denied;
        }
        if let Some(denied) = opens_up_trusted_file(policy, hook, dentry, mode) {
            return denied;
        }
    }
    verdict_on_attributes(policy, hook, dentry)
}

#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_chown, const struct path *path, kuid_t uid, kgid_t gid)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let (uid, gid) = (ctx.arg::<u64>(1) as u32, ctx.arg::<u64>(2) as u32);
    let dentry = path_dentry(ctx.arg(0));
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    let (hook, policy) = (HOOK_PATH_CHOWN, &policy);
    if let Some(denied) = given_to_another((attachment, policy), hook, uid, gid) {
        return denied;
    }
    // A shared directory keeps its owner (see `sticky_dirs`).
    if fowner_narrowed(policy) {
        if let Some(denied) = changes_a_shared_directory(policy, hook, dentry) {
            return denied;
        }
    }
    verdict_on_attributes(policy, hook, dentry)
}

#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_setxattr, struct mnt_idmap *idmap (6.1: struct user_namespace *),
    //          struct dentry *dentry, const char *name, const void *value, size_t size,
    //          int flags): the dentry is the second argument on both kernels.
    if let Some(denied) = earlier_denial(&ctx, 6) {
        return denied;
    }
    acl_or_attribute(HOOK_INODE_SETXATTR, ctx.arg(1), ctx.arg(2))
}

#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_removexattr, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *name)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    acl_or_attribute(HOOK_INODE_REMOVEXATTR, ctx.arg(1), ctx.arg(2))
}

#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_set_acl, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *acl_name, struct posix_acl *kacl): since Linux 6.2 ACLs bypass
    // `inode_setxattr`.
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    acl_or_attribute(HOOK_INODE_SET_ACL, ctx.arg(1), core::ptr::null())
}

#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_remove_acl, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *acl_name)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    acl_or_attribute(HOOK_INODE_REMOVE_ACL, ctx.arg(1), core::ptr::null())
}

/// `ia_valid` bits of <linux/fs.h>: the times being set, and the changes other hooks decide.
const ATTR_MODE: u32 = 1 << 0;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME: u32 = 1 << 4;
const ATTR_MTIME: u32 = 1 << 5;
const ATTR_ATIME_SET: u32 = 1 << 7;
const ATTR_MTIME_SET: u32 = 1 << 8;

#[lsm(hook = "inode_setattr")]
pub fn inode_setattr(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_setattr, struct mnt_idmap *idmap, struct dentry *dentry,
    //          struct iattr *attr); before Linux 6.9 without the idmap. The context holds the
    // arguments, then the earlier programs' verdict: slots 0 to 2 exist on both kernels and
    // are read at fixed offsets (the verifier refuses a context load at a computed one). Slot 3
    // exists only with the idmap: its load is in the branch the verifier knows is taken only
    // then (the offsets are read-only data it reads), and is pruned on older kernels.
    let with_idmap = offsets().inode_setattr_args == 3;
    let (first, second, third) = (slot(&ctx, 0), slot(&ctx, 1), slot(&ctx, 2));
    let (dentry, attr, previous) = if with_idmap {
        (second, third, slot(&ctx, 3))
    } else {
        (first, second, third)
    };
    if previous as i32 != 0 {
        return previous as i32;
    }
    let (dentry, attr) = (dentry as *const u8, attr as *const u8);
    // Runs for every attribute change on the host: only the times are this hook's to decide
    // (utimensat, futimens, utimes); a size, mode or owner is decided where the change is
    // asked for (`path_truncate`, `file_truncate`, `path_chmod`, `path_chown`).
    let Ok(valid) = read_at::<u32>(attr, offsets().iattr_valid) else {
        return verdict_on_change(HOOK_INODE_SETATTR, dentry);
    };
    if valid & (ATTR_ATIME | ATTR_MTIME) == 0
        || valid & (ATTR_SIZE | ATTR_MODE | ATTR_UID | ATTR_GID) != 0
    {
        return 0;
    }
    // overlayfs sets the times of the layer's file with its mounter's credentials, after the
    // same call decided them on the overlay's own path. A task cannot set times with
    // credentials of its choosing: io_uring has no operation for it.
    if !acting_as_itself() {
        return 0;
    }
    let Some(policy) = current_policy() else {
        return 0;
    };
    // Times of the caller's choosing are the owner's to set (`inode_owner_or_capable`, which
    // asks FOWNER without naming the file): `touch -d` on another user's file would tell
    // make, rsync and backups it did or did not change.
    if valid & (ATTR_ATIME_SET | ATTR_MTIME_SET) != 0 && fowner_narrowed(&policy) {
        if let Some(denied) = owned_by_another(&policy, HOOK_INODE_SETATTR, dentry) {
            return denied;
        }
    }
    verdict_on_change_under(&policy, HOOK_INODE_SETATTR, dentry)
}
