//! What owning a sticky directory lets its owner do to other users' entries there, which a
//! confined task may not use: root owns `/tmp`.
//!
//! - The kernel lets a sticky directory's owner remove or rename away any entry without a
//!   capability (`may_delete`), so a confined root would remove other users' sockets, tickets
//!   and lock files from `/tmp` and put its own in their place (`removes_another_users_entry`).
//! - `fs.protected_symlinks` lets every user follow a symlink in a sticky world-writable
//!   directory when the directory's owner made it. A symlink a confined root planted in `/tmp`
//!   at a name another user's program writes (a predictable temporary file) would lead that
//!   program into that user's own files; an ordinary user's plant is refused there
//!   (`plants_trusted_symlink`).
//!
//! Decided for the tasks `narrowed_fowner` returns a policy for: a policy that gives `FOWNER`
//! back (which passes the sticky check for any entry) does both.

use sandbox_common::{CgroupPolicy, CAP_FOWNER, CRED_FSUID};

use crate::{
    guard::deny,
    kernel::{offsets, read_at, read_ptr},
    other_users::{cred_id, NO_ID, S_IFMT},
    target::Target,
    task::current_cred,
};

pub const S_IFLNK: u32 = 0o120000;
const S_ISVTX: u32 = 0o1000;
const S_IWOTH: u32 = 0o002;

/// (mode, owner) of the directory `dentry` is an entry of; None when unreadable.
#[inline(always)]
fn directory_of(dentry: *const u8) -> Option<(u32, u32)> {
    let off = offsets();
    let dir = read_ptr(dentry, off.dentry_parent)
        .and_then(|parent| read_ptr(parent, off.dentry_inode))
        .ok()?;
    let mode = read_at::<u16>(dir, off.inode_mode).ok()?;
    let owner = read_at::<u32>(dir, off.inode_uid).ok()?;
    Some((u32::from(mode), owner))
}

/// Denies a confined task removing (or renaming away, or replacing) `dentry` when it is
/// another user's entry of a sticky directory: one whose owner is neither the task's user nor
/// the sandbox's. Such an entry only a sticky directory's owner (or `FOWNER`) may remove.
#[inline(always)]
pub fn removes_another_users_entry(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
) -> Option<i32> {
    let off = offsets();
    // A negative dentry (a rename's new name that does not exist yet) removes nothing.
    let inode = read_ptr(dentry, off.dentry_inode).ok()?;
    let denied = || Some(deny(policy, hook, Target::Capability(CAP_FOWNER)));
    let Some((dir_mode, _)) = directory_of(dentry) else {
        return denied();
    };
    if dir_mode & S_ISVTX == 0 {
        return None;
    }
    let owner = read_at::<u32>(inode, off.inode_uid).unwrap_or(NO_ID);
    if owner == policy.user_uid || cred_id(current_cred(), CRED_FSUID) == Some(owner) {
        return None;
    }
    denied()
}

/// Denies a confined task giving a symlink (`mode` is the file's) the name `dentry` in a
/// sticky world-writable directory of its own user: every user would follow it
/// (`fs.protected_symlinks` trusts the directory's owner), where an ordinary user's symlink
/// there is followed by its maker only.
#[inline(always)]
pub fn plants_trusted_symlink(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
    mode: u32,
) -> Option<i32> {
    if mode & S_IFMT != S_IFLNK {
        return None;
    }
    let denied = || Some(deny(policy, hook, Target::Capability(CAP_FOWNER)));
    let Some((dir_mode, dir_owner)) = directory_of(dentry) else {
        return denied();
    };
    if dir_mode & (S_ISVTX | S_IWOTH) != S_ISVTX | S_IWOTH
        || cred_id(current_cred(), CRED_FSUID) != Some(dir_owner)
    {
        return None;
    }
    denied()
}

/// The mode of the file `dentry` names; 0 for a negative dentry or when unreadable.
#[inline(always)]
pub fn mode_of(dentry: *const u8) -> u32 {
    let off = offsets();
    read_ptr(dentry, off.dentry_inode)
        .and_then(|inode| read_at::<u16>(inode, off.inode_mode))
        .map_or(0, u32::from)
}
