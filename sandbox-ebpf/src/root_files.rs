//! Root's own entries of the directories every user shares (sticky and world-writable: `/tmp`,
//! `/var/tmp`, `/dev/shm`), for a confined root that works for another user (the sandbox's
//! user, the owner of its `~`, is not root). Every root process on the host leaves files
//! there that only root may open, and root owns them without any capability: the private
//! `/tmp` systemd gives a service (`/tmp/systemd-private-*`, and everything below it), a root
//! daemon's shared memory and semaphores (`/dev/shm`), root's lock and temporary files. The
//! other-user rules keep other users' files closed; these are root's.
//!
//! Such a task gets from root's entries of a shared directory, and on the way through them, no
//! more than the sandbox's user would (the group's permission bits when the entry's group is
//! the user's, else the others'), unless its own sandbox made the entry: opening one for
//! reading needs read, for writing write, and passing through one to what is below it search
//! (execute). A tracing program on `inode_init_owner` (which
//! every filesystem calls for each inode it makes for a name, in the task making it) marks the
//! inodes made directly in a shared directory with the maker's attachment, and removes the
//! mark at that address for every other inode made, so a freed inode's mark never speaks for
//! the next one there.

use aya_ebpf::{
    cty::c_void, helpers::generated::bpf_loop, macros::fentry, programs::FEntryContext,
};
use sandbox_common::{CgroupPolicy, CRED_FSUID, MAX_WALK_DEPTH};

use crate::{
    kernel::{offsets, read_at, read_ptr},
    maps::SHARED_MADE,
    mode::inode_mode,
    other_users::cred_id,
    policy::{any_attached, confining_attachment},
    sticky_dirs::shared,
    task::{acting_as_itself, current_cred},
};

#[fentry(function = "inode_init_owner")]
pub fn inode_made(ctx: FEntryContext) -> i32 {
    // void inode_init_owner(struct mnt_idmap *idmap, struct inode *inode,
    //                       const struct inode *dir, umode_t mode)
    // (a struct user_namespace * first before 6.3). `dir` is null for a filesystem's root.
    if !any_attached() {
        return 0;
    }
    let inode: u64 = ctx.arg(1);
    let dir: *const u8 = ctx.arg(2);
    let maker = if inode_mode(dir).is_ok_and(shared) {
        confining_attachment().map(|(attachment, _)| attachment)
    } else {
        None
    };
    match maker {
        Some(attachment) => {
            let _ = SHARED_MADE.insert(&inode, &attachment, 0);
        }
        None => {
            let _ = SHARED_MADE.remove(&inode);
        }
    }
    0
}

/// Whether the current task, confined under `policy`, is a root working for another user:
/// its filesystem uid is 0 and the sandbox's user is not root. Kernel code opening with
/// credentials of its own (overlayfs's layer files) is not the task. Unreadable counts as
/// root (fail closed).
#[inline(always)]
pub fn root_for_another(policy: &CgroupPolicy) -> bool {
    policy.user_uid != 0
        && cred_id(current_cred(), CRED_FSUID).unwrap_or(0) == 0
        && acting_as_itself()
}

/// The state of the climb from an opened file to its filesystem's root, shared with the
/// `bpf_loop` callback that takes one step.
#[repr(C)]
struct Climb {
    dentry: *const u8,
    attachment: u64,
    /// The sandbox user's group: an entry of that group is judged by its group's bits.
    user_gid: u32,
    /// The permission bits (`rwx` as 4, 2, 1; `OWNER` for what only the owner may do) the step
    /// needs, then the next step's, then search for every directory above.
    want: u32,
    next_want: u32,
    outcome: u32,
}

/// The permission bits of a directory on the way (execute: search) and of one whose entries
/// change (write and search).
pub const SEARCH: u32 = 1;
pub const WRITE_SEARCH: u32 = 3;
/// Read and write, as the permission bits name them.
pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
/// What only an entry's owner may do (remove or rename it from a sticky directory, change its
/// mode): no permission bit grants it.
pub const OWNER: u32 = 8;

const CLIMBING: u32 = 0;
const CLEAR: u32 = 1;
const REFUSED: u32 = 2;

/// Whether using `dentry` as `want` asks (read 4, write 2, `OWNER`), with `parent_want` on the
/// directory holding it, and passing through the directories above it on its filesystem,
/// reaches root's entry of a shared directory that the sandbox `attachment` did not make and
/// that the sandbox's user (group `user_gid`) could not use so itself. Unreadable kernel
/// data, or a path deeper than the walk goes, counts as one (fail closed). Not inlined: the
/// climb's state gets a frame of its own, beside the write hooks' walks.
#[inline(never)]
pub fn beyond_roots_shared_entry(
    dentry: *const u8,
    want: u32,
    parent_want: u32,
    user_gid: u32,
    attachment: u64,
) -> bool {
    let mut climb = Climb {
        dentry,
        attachment,
        user_gid,
        want: unknown_to_verifier(want),
        next_want: unknown_to_verifier(parent_want),
        outcome: CLIMBING,
    };
    // SAFETY: the callback is a BPF subprogram taking (index, ctx), and ctx points at `climb`,
    // which lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_WALK_DEPTH,
            climb_one_level as *mut c_void,
            &mut climb as *mut Climb as *mut c_void,
            0,
        )
    };
    climb.outcome != CLEAR
}

/// `bits`, copied through a helper so the verifier knows them only as a number. Before 6.8 it
/// checks a `bpf_loop` callback once, with the state of the first call: with the first step's
/// bits known there, it would drop the checks of the later steps' bits as dead code. A failed
/// copy asks for every bit (refused unless the sandbox made the entry).
#[inline(always)]
fn unknown_to_verifier(bits: u32) -> u32 {
    read_at::<u32>(&bits as *const u32 as *const u8, 0).unwrap_or(u32::MAX)
}

/// One step of the climb; returns 1 to stop the loop once the outcome is known.
#[inline(never)]
extern "C" fn climb_one_level(_index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop hands back the pointer beyond_roots_shared_entry passed: its live,
    // exclusive `Climb`.
    let climb = unsafe { &mut *(ctx as *mut Climb) };
    let outcome = match climb_step(climb) {
        Ok(None) => return 0,
        Ok(Some(true)) => REFUSED,
        Ok(Some(false)) => CLEAR,
        Err(_) => REFUSED,
    };
    climb.outcome = outcome;
    1
}

/// Checks `climb.dentry` against its directory and moves up: `Some(true)` when it is root's
/// entry of a shared directory, not made by the sandbox, that the sandbox's user could not use
/// as asked; `Some(false)` at the filesystem's root.
#[inline(always)]
fn climb_step(climb: &mut Climb) -> Result<Option<bool>, i32> {
    let off = offsets();
    let dentry = climb.dentry;
    let parent = read_ptr(dentry, off.dentry_parent)?;
    if parent == dentry {
        return Ok(Some(false));
    }
    let dir = read_ptr(parent, off.dentry_inode)?;
    if shared(inode_mode(dir)?) {
        // Null for a name not made yet.
        let inode = read_at::<*const u8>(dentry, off.dentry_inode)?;
        if !inode.is_null() && read_at::<u32>(inode, off.inode_uid)? == 0 {
            let mode = inode_mode(inode)?;
            let granted = if read_at::<u32>(inode, off.inode_gid)? == climb.user_gid {
                mode >> 3 & 7
            } else {
                mode & 7
            };
            if granted & climb.want != climb.want {
                // SAFETY: copied out at once; a concurrent update shows the old or the new
                // value.
                let maker = unsafe { SHARED_MADE.get(&(inode as u64)).copied() };
                if maker != Some(climb.attachment) {
                    return Ok(Some(true));
                }
            }
        }
    }
    climb.want = climb.next_want;
    climb.next_want = SEARCH;
    climb.dentry = parent;
    Ok(None)
}
