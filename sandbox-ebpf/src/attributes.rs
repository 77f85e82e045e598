//! Changes of a file that are not its content, under deny_write, deny_read and on kernel
//! filesystems: its mode (a setuid bit, a world-writable startup file, a world-readable key),
//! its owner, its extended attributes (file capabilities in `security.capability`) and its
//! POSIX ACLs. Each outlasts the sandbox: what runs, writes or reads the file later, outside,
//! gets what the confined task set.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    HOOK_INODE_REMOVEXATTR, HOOK_INODE_REMOVE_ACL, HOOK_INODE_SETXATTR, HOOK_INODE_SET_ACL,
    HOOK_PATH_CHMOD, HOOK_PATH_CHOWN, RULE_DENY_READ, RULE_DENY_WRITE,
};

use crate::{
    hook::earlier_denial,
    write::{path_dentry, verdict_on_changes, Change},
};

/// Verdict of `hook` on changing the attributes of `dentry`: deny_write protects the file,
/// deny_read who may read it.
#[inline(always)]
fn verdict_on_attributes(hook: u32, dentry: *const u8) -> i32 {
    let change = Change {
        dentry,
        want: RULE_DENY_READ | RULE_DENY_WRITE,
        of_the_file: true,
    };
    verdict_on_changes(hook, change, None)
}

#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_chmod, const struct path *path, umode_t mode): chmod, fchmod,
    // fchmodat.
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    verdict_on_attributes(HOOK_PATH_CHMOD, path_dentry(ctx.arg(0)))
}

#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_chown, const struct path *path, kuid_t uid, kgid_t gid)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_attributes(HOOK_PATH_CHOWN, path_dentry(ctx.arg(0)))
}

#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_setxattr, struct mnt_idmap *idmap (6.1: struct user_namespace *),
    //          struct dentry *dentry, const char *name, const void *value, size_t size,
    //          int flags): the dentry is the second argument on both kernels.
    if let Some(denied) = earlier_denial(&ctx, 6) {
        return denied;
    }
    verdict_on_attributes(HOOK_INODE_SETXATTR, ctx.arg(1))
}

#[lsm(hook = "inode_removexattr")]
pub fn inode_removexattr(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_removexattr, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *name)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_attributes(HOOK_INODE_REMOVEXATTR, ctx.arg(1))
}

#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_set_acl, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *acl_name, struct posix_acl *kacl): since Linux 6.2 ACLs bypass
    // `inode_setxattr`.
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    verdict_on_attributes(HOOK_INODE_SET_ACL, ctx.arg(1))
}

#[lsm(hook = "inode_remove_acl")]
pub fn inode_remove_acl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, inode_remove_acl, struct mnt_idmap *idmap, struct dentry *dentry,
    //          const char *acl_name)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_attributes(HOOK_INODE_REMOVE_ACL, ctx.arg(1))
}
