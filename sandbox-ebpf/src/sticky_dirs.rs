//! What owning a directory every user shares (sticky and world-writable: root owns `/tmp`,
//! `/var/tmp`, `/dev/shm`) would let a confined task do to other users, which an ordinary
//! user cannot:
//!
//! - The kernel lets a sticky directory's owner remove or rename away any entry without a
//!   capability (`may_delete`), so a confined root would remove other users' sockets, tickets
//!   and lock files from `/tmp` and put its own in their place (`removes_another_users_entry`).
//! - The kernel trusts the owner's entries there to every user. `fs.protected_symlinks` lets
//!   every user follow the owner's symlink, so one planted at a name another user's program
//!   writes (a predictable temporary file) would lead that program into that user's own files.
//!   `fs.protected_regular` and `fs.protected_fifos` let every user's `open(O_CREAT)` open the
//!   owner's existing file or FIFO there, so one planted writable by others would take what
//!   that program writes. An ordinary user's plants are refused to the others
//!   (`plants_trusted_entry`, `opens_up_trusted_file`).
//! - The directory's mode, owner, ACLs and extended attributes are every user's: without the
//!   sticky bit any entry may be removed by whoever may write the directory, and a default ACL
//!   decides the mode of every file the others make there later (`changes_a_shared_directory`).
//!
//! Decided for the tasks `fowner_narrowed` holds for: a policy that gives `FOWNER` back (which
//! passes the sticky check for any entry) does all of it.

use sandbox_common::{CgroupPolicy, CAP_FOWNER, CRED_FSUID};

use crate::{
    guard::deny,
    kernel::{offsets, read_at, read_ptr},
    mode::{
        file_type, inode_mode, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_ISVTX, S_IWGRP_IWOTH, S_IWOTH,
    },
    other_users::{cred_id, NO_ID},
    target::Target,
    task::{current_cred, current_umask},
};

/// `ACL_NOT_CACHED` of <linux/fs.h>: an inode's ACL not read from its filesystem yet.
const ACL_NOT_CACHED: u64 = u64::MAX;
/// `ACL_DONT_CACHE`: an inode whose ACLs are never cached, an overlay's (they are its layer's).
const ACL_DONT_CACHE: u64 = u64::MAX - 2;

#[inline(always)]
fn refused(policy: &CgroupPolicy, hook: u32) -> Option<i32> {
    Some(deny(policy, hook, Target::Capability(CAP_FOWNER)))
}

/// Whether `mode` is a directory every user shares: sticky and world-writable.
#[inline(always)]
pub fn shared(mode: u32) -> bool {
    file_type(mode) == S_IFDIR && mode & (S_ISVTX | S_IWOTH) == S_ISVTX | S_IWOTH
}

/// The directory `dentry` is an entry of, with its mode and owner; None when unreadable.
#[inline(always)]
fn directory_of(dentry: *const u8) -> Option<(*const u8, u32, u32)> {
    let off = offsets();
    let dir = read_ptr(dentry, off.dentry_parent)
        .and_then(|parent| read_ptr(parent, off.dentry_inode))
        .ok()?;
    let mode = inode_mode(dir).ok()?;
    let owner = read_at::<u32>(dir, off.inode_uid).ok()?;
    Some((dir, mode, owner))
}

/// Whether `dentry` is (or is to be) an entry of a shared directory the task's own user owns,
/// whose entries the kernel trusts to every user. Unreadable counts as one (fail closed).
#[inline(always)]
fn in_own_shared_directory(dentry: *const u8) -> bool {
    let Some((_, mode, owner)) = directory_of(dentry) else {
        return true;
    };
    shared(mode) && cred_id(current_cred(), CRED_FSUID) == Some(owner)
}

/// Denies a confined task removing (or renaming away, or replacing) `dentry` when it is
/// another user's entry of a sticky directory: one whose owner is neither the task's user nor
/// the sandbox's. Such an entry only a sticky directory's owner (or `FOWNER`) may remove. A
/// shared directory itself is not removed either (`changes_a_shared_directory`).
#[inline(always)]
pub fn removes_another_users_entry(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
) -> Option<i32> {
    let off = offsets();
    // A negative dentry (a rename's new name that does not exist yet) removes nothing.
    let inode = read_ptr(dentry, off.dentry_inode).ok()?;
    let Some((_, dir_mode, _)) = directory_of(dentry) else {
        return refused(policy, hook);
    };
    if let Some(denied) = refused_if_shared(policy, hook, inode) {
        return Some(denied);
    }
    if dir_mode & S_ISVTX == 0 {
        return None;
    }
    let owner = read_at::<u32>(inode, off.inode_uid).unwrap_or(NO_ID);
    if owner == policy.user_uid || cred_id(current_cred(), CRED_FSUID) == Some(owner) {
        return None;
    }
    refused(policy, hook)
}

/// Denies a confined task changing the mode, owner, ACLs or extended attributes of a shared
/// directory (`dentry`), or removing it: they keep every user's entries there apart.
#[inline(always)]
pub fn changes_a_shared_directory(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
) -> Option<i32> {
    // A negative dentry (a rename's new name that does not exist yet) is no directory.
    let inode = read_ptr(dentry, offsets().dentry_inode).ok()?;
    refused_if_shared(policy, hook, inode)
}

/// `changes_a_shared_directory` of the (positive) dentry's `inode`; unreadable counts as
/// shared (fail closed).
#[inline(always)]
fn refused_if_shared(policy: &CgroupPolicy, hook: u32, inode: *const u8) -> Option<i32> {
    match inode_mode(inode) {
        Ok(mode) if !shared(mode) => None,
        _ => refused(policy, hook),
    }
}

/// An entry a confined task is about to give a name in a directory: its mode (with its type
/// bits; none meaning a regular file, as `mknod` takes it) and whether the file has (or gets)
/// other names.
#[derive(Clone, Copy)]
pub struct Entry {
    pub mode: u32,
    pub other_names: bool,
}

/// The entry `dentry` names, as it would move to another name.
#[inline(always)]
pub fn entry_of(dentry: *const u8) -> Entry {
    let off = offsets();
    let inode = read_ptr(dentry, off.dentry_inode);
    Entry {
        mode: inode.and_then(inode_mode).unwrap_or(0),
        other_names: inode.and_then(|inode| read_at::<u32>(inode, off.inode_nlink)) != Ok(1),
    }
}

/// Whether the kernel would trust `entry`, made by a shared directory's owner, to every user:
/// a symlink (followed), a regular file or FIFO that others may write (opened by their
/// `O_CREAT`), or one with other names, where it could be opened up to others.
#[inline(always)]
fn trusted_to_others(entry: Entry) -> bool {
    match file_type(entry.mode) {
        S_IFLNK => true,
        0 | S_IFREG | S_IFIFO => entry.mode & S_IWGRP_IWOTH != 0 || entry.other_names,
        _ => false,
    }
}

/// Denies a confined task giving `entry` the name `dentry` in a shared directory of its own
/// user when every user would trust it (`trusted_to_others`), where an ordinary user's is
/// trusted by no one else.
#[inline(always)]
pub fn plants_trusted_entry(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
    entry: Entry,
) -> Option<i32> {
    if !trusted_to_others(entry) || !in_own_shared_directory(dentry) {
        return None;
    }
    refused(policy, hook)
}

/// Denies a confined task creating the file `dentry` with `mode` (as `path_mknod` is told it,
/// also for `open(O_CREAT)`) when it would be a trusted plant (`plants_trusted_entry`). The
/// mode a file gets is the one asked for less the task's umask, unless the directory has a
/// default ACL, which then decides (the VFS leaves both to the filesystem on one with ACLs):
/// with one, the mode asked for is the most it can get.
#[inline(always)]
pub fn creates_trusted_plant(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
    mode: u32,
) -> Option<i32> {
    if !matches!(file_type(mode), 0 | S_IFREG | S_IFIFO) {
        return None;
    }
    let Some((dir, _, _)) = directory_of(dentry) else {
        return refused(policy, hook);
    };
    let off = offsets();
    // An ACL not read yet, or kept by an overlay's layer, counts as none: a confined task
    // cannot give a shared directory a default ACL (`changes_a_shared_directory`), and
    // counting it as one would refuse every `>` of a root agent in a container's `/tmp`.
    let default_acl = match off.inode_default_acl {
        0 => 0,
        at => read_at::<u64>(dir, at).unwrap_or(ACL_NOT_CACHED),
    };
    let mode = match default_acl {
        0 | ACL_NOT_CACHED | ACL_DONT_CACHE => mode & !current_umask(),
        _ => mode,
    };
    let entry = Entry {
        mode,
        other_names: false,
    };
    plants_trusted_entry(policy, hook, dentry, entry)
}

/// Denies a confined task opening up the regular file or FIFO `dentry` (`new_mode`: its new
/// permission bits; an ACL change counts as giving others write) to other users' writes when
/// it is in a shared directory of its own user, or has other names, one of which may be
/// there: an ordinary user's file there is not opened by the others' `O_CREAT`.
#[inline(always)]
pub fn opens_up_trusted_file(
    policy: &CgroupPolicy,
    hook: u32,
    dentry: *const u8,
    new_mode: u32,
) -> Option<i32> {
    if new_mode & S_IWGRP_IWOTH == 0 {
        return None;
    }
    let off = offsets();
    let inode = read_ptr(dentry, off.dentry_inode).ok()?;
    let (Ok(mode), Ok(nlink)) = (inode_mode(inode), read_at::<u32>(inode, off.inode_nlink)) else {
        return refused(policy, hook);
    };
    if !matches!(file_type(mode), S_IFREG | S_IFIFO) {
        return None;
    }
    if nlink > 1 || in_own_shared_directory(dentry) {
        return refused(policy, hook);
    }
    None
}
