//! The decision every file-based hook shares: find the confining policy, decide on the file by
//! inode identity for the kind of access, record the denial, and return the hook's verdict.

use sandbox_common::{
    CgroupPolicy, KernelOffsets, MQUEUE_MAGIC, POLICY_DENY_FILELESS_EXEC, POLICY_EXEC_ALLOWLIST,
    POLICY_WRITE_ALLOWLIST, PROC_SUPER_MAGIC, RULE_ALLOW_EXEC, RULE_ALLOW_WRITE, RULE_DENY_EXEC,
    RULE_DENY_READ, RULE_DENY_WRITE, RULE_ID_FAIL_CLOSED, RULE_ID_FILELESS, RULE_ID_ROOT_SHARED,
    RULE_ID_SELF_PROTECTION, WALK_ONE_NAME,
};

use crate::{
    host_files::is_host_file,
    kernel::{offsets, read_at, read_ptr, rule_dev},
    mode::{file_type, inode_mode, S_IFREG},
    policy::confining_attachment,
    root_files::{beyond_roots_shared_entry, root_for_another, READ, SEARCH, WRITE},
    target::{FileId, Target},
    verdict::{enforce, Decision},
    verdict_cache::Remembered,
    walk::check_dentry,
    write::other_repositories,
};

/// FMODE_READ and FMODE_WRITE from <linux/fs.h>.
const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;

/// What the task is about to do with the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open it (deny_read; deny_write too when it is opened for writing).
    Open,
    /// Execute it or map it executable (deny_exec, allow_exec, deny_fileless_exec).
    Exec,
}

/// Verdict of `hook` on `access` to `file` by the current task.
#[inline(always)]
pub fn verdict_on_file(file: *const u8, access: Access, hook: u32) -> i32 {
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    let (decision, target) = decide(&policy, attachment, file, access);
    enforce(&policy, hook, decision, &target)
}

#[inline(always)]
fn decide(
    policy: &CgroupPolicy,
    attachment: u64,
    file: *const u8,
    access: Access,
) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let off = offsets();
    if off.valid == 0 || file.is_null() {
        return (fail_closed, Target::None);
    }
    let Ok(inode) = read_ptr(file, off.file_inode) else {
        return (fail_closed, Target::None);
    };
    let Ok(dentry) = read_ptr(file, off.file_dentry) else {
        return (fail_closed, Target::None);
    };
    // The file a denial's record names: read only for a denial, since a remembered allow
    // needs neither its device nor its inode number.
    let denied_file = || match inode_identity(off, inode) {
        Ok(id) => Target::file(FileId { dentry, ..id }),
        Err(_) => Target::None,
    };
    let (want, allow) = match access {
        Access::Open => {
            let Ok(mode) = read_at::<u32>(file, off.file_mode) else {
                return (fail_closed, denied_file());
            };
            let writing = mode & FMODE_WRITE != 0;
            if is_host_file(off, inode, dentry, writing, attachment) {
                let host = Decision::Deny {
                    rule_id: RULE_ID_SELF_PROTECTION,
                };
                return (host, denied_file());
            }
            let want =
                if mode & FMODE_READ != 0 { READ } else { 0 } | if writing { WRITE } else { 0 };
            if root_for_another(policy)
                && beyond_roots_shared_entry(dentry, want, SEARCH, policy.user_gid, attachment)
            {
                let roots = Decision::Deny {
                    rule_id: RULE_ID_ROOT_SHARED,
                };
                return (roots, denied_file());
            }
            if writing {
                let allow = if policy.flags & POLICY_WRITE_ALLOWLIST != 0
                    && kept_for_later(off, file, inode, dentry)
                {
                    RULE_ALLOW_WRITE | WALK_ONE_NAME
                } else {
                    0
                };
                let repositories = other_repositories(policy);
                (RULE_DENY_READ | RULE_DENY_WRITE | repositories, allow)
            } else {
                (RULE_DENY_READ, 0)
            }
        }
        Access::Exec => {
            if policy.flags & POLICY_DENY_FILELESS_EXEC != 0 {
                // Only exec decisions need the link count: opens skip this read.
                let Ok(nlink) = read_at::<u32>(inode, off.inode_nlink) else {
                    return (fail_closed, denied_file());
                };
                if nlink == 0 {
                    let fileless = Decision::Deny {
                        rule_id: RULE_ID_FILELESS,
                    };
                    return (fileless, denied_file());
                }
            }
            let allow = if policy.flags & POLICY_EXEC_ALLOWLIST != 0 {
                RULE_ALLOW_EXEC
            } else {
                0
            };
            (RULE_DENY_EXEC, allow)
        }
    };
    // Worked out before the walk: the stamp is valid for what the walk will see.
    let remembered = Remembered::new(policy.policy_id, want, allow, inode, dentry);
    if remembered.as_ref().is_some_and(Remembered::allowed) {
        return (Decision::Allow, Target::None);
    }
    let Ok(file_id) = inode_identity(off, inode) else {
        return (fail_closed, Target::None);
    };
    let decision = check_dentry(policy.policy_id, file_id.dev, dentry, want, allow);
    if let (Decision::Allow, Some(remembered)) = (&decision, &remembered) {
        remembered.remember_allowed();
    }
    (decision, Target::file(FileId { dentry, ..file_id }))
}

/// Whether writing `inode` (opened as `file` at `dentry`) changes a file that outlasts the
/// writer, which `allow_write` must list: a regular file, except a process's own procfs files
/// (the host's are refused anyway, `host_files`) and message queues. Devices, pipes and sockets
/// carry data elsewhere (a raw disk is refused as a host file). Nor is it the open of an
/// overlay's layer file, which overlayfs makes for a file of the overlay already decided by its
/// own path: on 6.1 under the overlay's dentry (another filesystem than the inode's), since
/// 6.6 on the layer's private mount (`MNT_NS_INTERNAL`, which no task's path reaches; an
/// in-memory file's mount has it too). Unreadable counts as kept (fail closed).
#[inline(always)]
fn kept_for_later(
    off: &KernelOffsets,
    file: *const u8,
    inode: *const u8,
    dentry: *const u8,
) -> bool {
    /// ERR_PTR(-EINVAL), fs/mount.h.
    const MNT_NS_INTERNAL: u64 = -22i64 as u64;
    let Ok(mode) = inode_mode(inode) else {
        return true;
    };
    if file_type(mode) != S_IFREG {
        return false;
    }
    let (Ok(sb), Ok(dentry_sb)) = (
        read_ptr(inode, off.inode_sb),
        read_ptr(dentry, off.dentry_sb),
    ) else {
        return true;
    };
    if sb != dentry_sb {
        return false;
    }
    let namespace = read_ptr(file, off.file_mnt)
        .and_then(|mnt| read_at::<u64>(mnt.wrapping_sub(off.mount_mnt as usize), off.mount_ns));
    match (namespace, read_at::<u64>(sb, off.sb_magic)) {
        (Ok(MNT_NS_INTERNAL), _) => false,
        (Ok(_), Ok(magic)) => magic != PROC_SUPER_MAGIC && magic != MQUEUE_MAGIC,
        _ => true,
    }
}

/// (kernel dev_t, inode number) of an open file.
#[inline(always)]
pub fn file_identity(off: &KernelOffsets, file: *const u8) -> Result<FileId, i32> {
    inode_identity(off, read_ptr(file, off.file_inode)?)
}

#[inline(always)]
pub fn inode_identity(off: &KernelOffsets, inode: *const u8) -> Result<FileId, i32> {
    let sb = read_ptr(inode, off.inode_sb)?;
    Ok(FileId {
        dev: rule_dev(off, inode, sb)?,
        ino: read_at(inode, off.inode_ino)?,
        ..FileId::default()
    })
}
