//! A confined task works as itself and as the sandbox's user, and as no one else: the
//! capabilities that pass over file permissions (`NARROWED_CAPS`: DAC_OVERRIDE, FOWNER, CHOWN)
//! hold only on files of the task's own user or of the sandbox's user, and SETUID and SETGID
//! take only ids the task already has or the sandbox user's (`task_fix_setuid`,
//! `task_fix_setgid`, `task_fix_setgroups`). Without this a confined root reads every user's
//! home, and `setpriv --reuid` to anyone makes the rest of the host's users' files its own.
//! Nor does it leave a program behind that runs as someone else (`setid_program`).
//!
//! The kernel asks `capable` for a file's override without saying which file. Most callers
//! (`generic_permission`, `chown_ok`, the sticky-directory check) go through
//! `capable_wrt_inode_uidgid(idmap, inode, cap)`, which these programs see on entry (the
//! owner of `inode` is noted for the thread) and on exit (the note is dropped), so `capable`,
//! called in between, knows whose file it is about. `inode_owner_or_capable` asks `FOWNER`
//! without it: a mode or ACL change is decided on the file's owner where it is asked for
//! (`owned_by_another`).

use aya_ebpf::{
    cty::c_void,
    helpers::{bpf_get_current_pid_tgid, bpf_loop},
    macros::{fentry, fexit, lsm, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, LsmContext},
};
use sandbox_common::{
    CgroupPolicy, CAP_CHOWN, CAP_FOWNER, CAP_SETGID, CAP_SETUID, CRED_EGID, CRED_EUID, CRED_FSGID,
    CRED_FSUID, CRED_GID, CRED_SGID, CRED_SUID, CRED_UID, HOOK_TASK_FIX_SETGID,
    HOOK_TASK_FIX_SETGROUPS, HOOK_TASK_FIX_SETUID, HOOK_URING_OVERRIDE_CREDS, MAX_USER_GROUPS,
    NARROWED_CAPS,
};

use crate::{
    guard::{deny, deny_confined},
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    maps::USER_GROUPS,
    mode::{file_type, S_IFREG, S_ISGID, S_ISUID, S_IXGRP},
    policy::{any_attached, confining_attachment, current_policy},
    target::Target,
    task::{acting_as_itself, current_cred},
};

/// The file a narrowed capability is being asked for, by thread: the capability and the
/// file's owner (a kuid).
#[derive(Clone, Copy)]
#[repr(C)]
struct FileCapability {
    cap: u32,
    owner: u32,
}

/// Threads inside `capable_wrt_inode_uidgid` for a narrowed capability. An entry lives for
/// one call; the size only bounds how many threads may be inside at once. Not pinned: it
/// belongs to the programs that fill it.
#[map(name = "FILE_CAPABILITY")]
static FILE_CAPABILITY: HashMap<u32, FileCapability> = HashMap::with_max_entries(16384, 0);

/// Threads inside `__scm_send`, where the kernel asks SETUID and SETGID for a message's
/// credentials (`SCM_CREDENTIALS`) that name a uid or gid other than the sender's own: ids
/// claimed to the receiver, not taken, so no `task_fix_*` hook sees them. The value is unused.
/// Not pinned, as `FILE_CAPABILITY`.
#[map(name = "SCM_SEND")]
static SCM_SEND: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// Ids the supplementary group lists are compared on, at most: a longer new list is refused,
/// a longer old one counts its first ones only (fail closed either way).
const MAX_GROUPS: u32 = 32;

/// A uid or gid no file and no task has (`(uid_t)-1`, INVALID_UID): the owner of a file whose
/// owner cannot be read, so no override reaches it.
pub const NO_ID: u32 = u32::MAX;

#[inline(always)]
fn narrowed(cap: i32) -> bool {
    (0..64).contains(&cap) && NARROWED_CAPS & (1u64 << cap) != 0
}

#[inline(always)]
fn thread_id() -> u32 {
    // The low half is the thread id (the kernel's pid).
    bpf_get_current_pid_tgid() as u32
}

#[fentry(function = "capable_wrt_inode_uidgid")]
pub fn file_capability_asked(ctx: FEntryContext) -> i32 {
    // bool capable_wrt_inode_uidgid(struct mnt_idmap *idmap (a user_namespace before 6.3),
    //                               const struct inode *inode, int cap)
    let cap: i32 = ctx.arg(2);
    if !narrowed(cap) || !any_attached() {
        return 0;
    }
    let inode: *const u8 = ctx.arg(1);
    let owner = read_at::<u32>(inode, offsets().inode_uid).unwrap_or(NO_ID);
    let note = FileCapability {
        cap: cap as u32,
        owner,
    };
    // Full only with 16,384 threads inside this call at once: then `capable`, finding no
    // note, cannot tell a file's override from another use and allows, as without this check.
    let _ = FILE_CAPABILITY.insert(&thread_id(), &note, 0);
    0
}

#[fexit(function = "capable_wrt_inode_uidgid")]
pub fn file_capability_answered(ctx: FExitContext) -> i32 {
    let cap: i32 = ctx.arg(2);
    if narrowed(cap) {
        // Whatever happened to `ANY_ATTACHED` since the entry: no note outlives its call.
        let _ = FILE_CAPABILITY.remove(&thread_id());
    }
    0
}

#[fentry(function = "__scm_send")]
pub fn credentials_claimed(_ctx: FEntryContext) -> i32 {
    // int __scm_send(struct socket *sock, struct msghdr *msg, struct scm_cookie *p): every
    // send with control messages (descriptors, credentials).
    if any_attached() {
        // Full only with 16,384 threads inside at once: then a claim is allowed, as before.
        let _ = SCM_SEND.insert(&thread_id(), &1, 0);
    }
    0
}

#[fexit(function = "__scm_send")]
pub fn credentials_sent(_ctx: FExitContext) -> i32 {
    let _ = SCM_SEND.remove(&thread_id());
    0
}

/// The verdict of `capable` on a narrowed capability `cap` for `cred`: a file's override
/// holds only on files of the task's own user (`cred`'s fsuid) or of the sandbox's user, and
/// SETUID and SETGID are decided on the ids themselves (`task_fix_*`). Allowed outside every
/// sandbox, under a policy that gives `cap` back, and for credentials kernel code swapped in
/// for itself (overlayfs checks a layer's file as its mounter, after the task's own check on
/// the overlay's file decided as here; io_uring's personalities, the one way a task chooses
/// other credentials, are refused to confined tasks).
#[inline(always)]
pub fn narrowed_capability(cred: *const u8, cap: i32) -> Result<(), CgroupPolicy> {
    let cap = cap as u32;
    if cap == CAP_SETUID || cap == CAP_SETGID {
        return claimed_ids(cap);
    }
    // Runs for every such check on the host: the thread's note (none unless the kernel asked
    // about a file while something was attached) comes before the policy lookup.
    // SAFETY: copied out at once; only this thread writes its entry.
    let Some(note) = (unsafe { FILE_CAPABILITY.get(&thread_id()).copied() }) else {
        return Ok(());
    };
    if note.cap != cap {
        return Ok(());
    }
    let Some(policy) = current_policy() else {
        return Ok(());
    };
    if policy.gives_back(cap) || !acting_as_itself() {
        return Ok(());
    }
    let fsuid = cred_id(cred, CRED_FSUID);
    if note.owner == policy.user_uid || fsuid == Some(note.owner) {
        return Ok(());
    }
    Err(policy)
}

/// The verdict on SETUID or SETGID (`cap`): an id change is decided on the ids themselves
/// (`task_fix_*`), but in a message's credentials (`__scm_send`) an id other than the sender's
/// own is only claimed, and the receiver believes it (journald's `_UID`, a server's
/// `SO_PASSCRED` check): a confined task claims none.
#[inline(always)]
fn claimed_ids(cap: u32) -> Result<(), CgroupPolicy> {
    // SAFETY: copied out at once; only this thread writes its entry.
    if unsafe { SCM_SEND.get(&thread_id()) }.is_none() {
        return Ok(());
    }
    let Some(policy) = current_policy() else {
        return Ok(());
    };
    if policy.gives_back(cap) || !acting_as_itself() {
        return Ok(());
    }
    Err(policy)
}

/// Id `which` (`CRED_*`) of `cred`; None when unreadable.
#[inline(always)]
pub fn cred_id(cred: *const u8, which: usize) -> Option<u32> {
    let at = offsets().cred_ids.wrapping_add((which * 4) as u16);
    read_at::<u32>(cred, at).ok()
}

/// The ids a confined task may take besides its own: two ids, and for gids the sandbox user's
/// supplementary groups (a `UserGroups` in `USER_GROUPS`; null for none).
#[derive(Clone, Copy)]
struct Others {
    ids: [u32; 2],
    groups: *const u8,
}

impl Others {
    #[inline(always)]
    fn contain(&self, id: u32) -> bool {
        id == self.ids[0] || id == self.ids[1] || in_user_groups(self.groups, id)
    }
}

/// Whether `gid` is one of the `UserGroups` at `groups` (null: none).
#[inline(always)]
fn in_user_groups(groups: *const u8, gid: u32) -> bool {
    if groups.is_null() {
        return false;
    }
    let Ok(count) = read_at::<u32>(groups, 0) else {
        return false;
    };
    let count = count.min(MAX_USER_GROUPS as u32);
    let mut i = 0;
    while i < count {
        if read_at::<u32>(groups, (4 + 4 * i) as u16) == Ok(gid) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether `id` is one of `ids` (`CRED_*`) of `old`, or one of `others`. (Plain loops: the
/// iterator adaptors' closures are left as calls, which the verifier refuses here.)
#[inline(always)]
fn held(old: *const u8, ids: [usize; 4], id: u32, others: Others) -> bool {
    if others.contain(id) {
        return true;
    }
    let mut i = 0;
    while i < ids.len() {
        if cred_id(old, ids[i]) == Some(id) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether every one of `ids` of `new` is `held` by `old` (or is one of `others`).
#[inline(always)]
fn takes_only_held(new: *const u8, old: *const u8, ids: [usize; 4], others: Others) -> bool {
    let mut i = 0;
    while i < ids.len() {
        match cred_id(new, ids[i]) {
            Some(id) if held(old, ids, id, others) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

const UIDS: [usize; 4] = [CRED_UID, CRED_EUID, CRED_SUID, CRED_FSUID];
const GIDS: [usize; 4] = [CRED_GID, CRED_EGID, CRED_SGID, CRED_FSGID];

/// The uids a confined task may take besides its own: the sandbox user's.
#[inline(always)]
fn other_uids(policy: &CgroupPolicy) -> Others {
    Others {
        ids: [policy.user_uid; 2],
        groups: core::ptr::null(),
    }
}

/// The gids a confined task may take besides its own: the sandbox user's group and
/// supplementary groups (`su` and `sudo -u` to the user take them), and root's group, which
/// `sudo` and `su` take on their way to root (whose files a confined root owns anyway).
#[inline(always)]
fn other_gids(attachment: u64, policy: &CgroupPolicy) -> Others {
    // Only the address is kept, and the value read through bpf_probe_read_kernel (the daemon
    // may replace it meanwhile: either version is the user's). The verifier refuses arithmetic
    // on a map value's address before its null check, which the compiler may move ahead: read
    // back through the same accessor, the address is a plain number.
    let found = USER_GROUPS.get_ptr(&attachment).map_or(0u64, |p| p as u64);
    let groups = read_at::<u64>(&found as *const u64 as *const u8, 0).unwrap_or(0);
    Others {
        ids: [policy.user_gid, 0],
        groups: groups as *const u8,
    }
}

/// Which ids an id change sets.
#[derive(Clone, Copy)]
enum Ids {
    Uids,
    Gids,
    Groups,
}

/// Verdict of `hook` on a change from the credentials `old` to `new`: allowed outside every
/// sandbox, under a policy that gives the capability back, and when every new id of the kind
/// is held (`takes_only_held`, `groups_held`).
#[inline(always)]
fn id_change(hook: u32, new: *const u8, old: *const u8, ids: Ids) -> i32 {
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    let (cap, held) = match ids {
        Ids::Uids => (
            CAP_SETUID,
            takes_only_held(new, old, UIDS, other_uids(&policy)),
        ),
        Ids::Gids => (
            CAP_SETGID,
            takes_only_held(new, old, GIDS, other_gids(attachment, &policy)),
        ),
        Ids::Groups => (
            CAP_SETGID,
            groups_held(new, old, other_gids(attachment, &policy)),
        ),
    };
    if policy.gives_back(cap) || held {
        return 0;
    }
    deny(&policy, hook, Target::Capability(cap))
}

#[lsm(hook = "task_fix_setuid")]
pub fn task_fix_setuid(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_fix_setuid, struct cred *new, const struct cred *old, int flags)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    id_change(HOOK_TASK_FIX_SETUID, ctx.arg(0), ctx.arg(1), Ids::Uids)
}

#[lsm(hook = "task_fix_setgid")]
pub fn task_fix_setgid(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_fix_setgid, struct cred *new, const struct cred *old, int flags)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    id_change(HOOK_TASK_FIX_SETGID, ctx.arg(0), ctx.arg(1), Ids::Gids)
}

#[lsm(hook = "task_fix_setgroups")]
pub fn task_fix_setgroups(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_fix_setgroups, struct cred *new, const struct cred *old)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    id_change(HOOK_TASK_FIX_SETGROUPS, ctx.arg(0), ctx.arg(1), Ids::Groups)
}

/// (count, array) of the supplementary groups of `cred`.
#[inline(always)]
fn groups(cred: *const u8) -> Result<(u32, *const u8), i32> {
    let off = offsets();
    let info = read_ptr(cred, off.cred_group_info)?;
    let count = read_at::<i32>(info, off.group_info_ngroups)?;
    Ok((
        count.max(0) as u32,
        info.wrapping_add(off.group_info_gid as usize),
    ))
}

/// Whether each supplementary group of `new` is one of `old`'s groups or gids, or one of
/// `others`. The kernel keeps both lists sorted (`groups_sort` before every `set_groups`), so
/// one walk along both decides, in at most as many steps as the two lists hold: a `bpf_loop`
/// whose step the verifier checks once (an open-coded loop over two indexes is too many
/// states for it).
#[inline(always)]
fn groups_held(new: *const u8, old: *const u8, others: Others) -> bool {
    let (Ok((count, gids)), Ok((old_count, old_gids))) = (groups(new), groups(old)) else {
        return false;
    };
    if count > MAX_GROUPS {
        return false;
    }
    let id = |which| cred_id(old, which).unwrap_or(NO_ID);
    let mut walk = GroupWalk {
        gids,
        old_gids,
        count,
        old_count: old_count.min(MAX_GROUPS),
        held: [
            id(GIDS[0]),
            id(GIDS[1]),
            id(GIDS[2]),
            id(GIDS[3]),
            others.ids[0],
            others.ids[1],
        ],
        user_groups: others.groups,
        i: 0,
        j: 0,
        verdict: UNDECIDED,
    };
    // SAFETY: bpf_loop calls `group_walk_step` with the address given, a GroupWalk on this
    // stack frame that outlives the call; the step reads and writes only that struct and
    // kernel memory through bpf_probe_read_kernel.
    unsafe {
        bpf_loop(
            2 * MAX_GROUPS,
            group_walk_step as *mut c_void,
            &mut walk as *mut GroupWalk as *mut c_void,
            0,
        );
    }
    walk.verdict == HELD
}

const UNDECIDED: u32 = 0;
const HELD: u32 = 1;
const NOT_HELD: u32 = 2;

/// The state of `groups_held`'s walk: the next new group `i` and old group `j`.
#[repr(C)]
struct GroupWalk {
    gids: *const u8,
    old_gids: *const u8,
    count: u32,
    old_count: u32,
    /// The old credentials' gids and the two others'.
    held: [u32; 6],
    /// The sandbox user's supplementary groups (see `Others`).
    user_groups: *const u8,
    i: u32,
    j: u32,
    verdict: u32,
}

/// One step of the walk: decides the next new group, or moves along the old list. Returns 1
/// (stop) once the verdict is known.
#[inline(never)]
extern "C" fn group_walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: the pointer `groups_held` gave bpf_loop, to its live GroupWalk.
    let walk = unsafe { &mut *(ctx as *mut GroupWalk) };
    if walk.i >= walk.count {
        walk.verdict = HELD;
        return 1;
    }
    let Ok(gid) = read_at::<u32>(walk.gids, (walk.i * 4) as u16) else {
        walk.verdict = NOT_HELD;
        return 1;
    };
    let mut k = 0;
    while k < walk.held.len() {
        if walk.held[k] == gid {
            walk.i += 1;
            return 0;
        }
        k += 1;
    }
    if in_user_groups(walk.user_groups, gid) {
        walk.i += 1;
        return 0;
    }
    let old = match walk.j < walk.old_count {
        true => read_at::<u32>(walk.old_gids, (walk.j * 4) as u16).ok(),
        false => None,
    };
    match old {
        Some(old) if old == gid => walk.i += 1,
        Some(old) if old < gid => walk.j += 1,
        _ => {
            walk.verdict = NOT_HELD;
            return 1;
        }
    }
    0
}

/// Whether the current task, which `policy` confines, is one for which `FOWNER` asked without
/// naming a file is decided by the hooks (`owned_by_another`, `sticky_dirs`): it acts as
/// itself, under a policy that keeps `FOWNER` narrowed.
#[inline(always)]
pub fn fowner_narrowed(policy: &CgroupPolicy) -> bool {
    !policy.gives_back(CAP_FOWNER) && acting_as_itself()
}

/// Denies a confined task's change of the mode, POSIX ACL or times, or a hardlink, of another
/// user's file (`dentry`, under `hook`): the kernel asks `FOWNER` for those through
/// `inode_owner_or_capable`, which names no file to `capable`, so they are decided here,
/// where the change is asked for. A file of the task's own user or the sandbox's is the
/// task's to change; a policy that gives `FOWNER` back changes any (`fowner_narrowed`, which
/// the caller checked for `policy`, the task's).
#[inline(always)]
pub fn owned_by_another(policy: &CgroupPolicy, hook: u32, dentry: *const u8) -> Option<i32> {
    let off = offsets();
    let owner = read_ptr(dentry, off.dentry_inode)
        .and_then(|inode| read_at::<u32>(inode, off.inode_uid))
        .unwrap_or(NO_ID);
    let fsuid = cred_id(current_cred(), CRED_FSUID);
    if owner == policy.user_uid || fsuid == Some(owner) {
        return None;
    }
    Some(deny(policy, hook, Target::Capability(CAP_FOWNER)))
}

/// Denies a confined task giving a file to a user or group other than its own and the sandbox
/// user's (`chown` to `uid`, `chgrp` to `gid`, each `NO_ID` when unchanged): a file planted
/// under another user's name is one that user's programs trust (a tmux server's directory in
/// `/tmp` that looks like theirs). A policy that gives `CHOWN` back gives files to anyone.
#[inline(always)]
pub fn given_to_another(
    (attachment, policy): (u64, &CgroupPolicy),
    hook: u32,
    uid: u32,
    gid: u32,
) -> Option<i32> {
    if uid == NO_ID && gid == NO_ID {
        return None;
    }
    if policy.gives_back(CAP_CHOWN) || !acting_as_itself() {
        return None;
    }
    let cred = current_cred();
    let uid_held = uid == NO_ID || held(cred, UIDS, uid, other_uids(policy));
    let gid_held = gid == NO_ID
        || held(cred, GIDS, gid, other_gids(attachment, policy))
        || in_groups(cred, gid);
    if uid_held && gid_held {
        return None;
    }
    Some(deny(policy, hook, Target::Capability(CAP_CHOWN)))
}

/// Whether `gid` is one of the supplementary groups of `cred` (its first `MAX_GROUPS`).
#[inline(always)]
fn in_groups(cred: *const u8, gid: u32) -> bool {
    let Ok((count, gids)) = groups(cred) else {
        return false;
    };
    for i in 0..MAX_GROUPS {
        if i >= count {
            return false;
        }
        if read_at::<u32>(gids, (i * 4) as u16) == Ok(gid) {
            return true;
        }
    }
    false
}

/// Whether the extended attribute `name` is a POSIX ACL (`system.posix_acl_access` or
/// `_default`), which only the file's owner (or `FOWNER`) may set; an unreadable name counts
/// as one (the owner check then applies: fail closed).
#[inline(always)]
pub fn is_posix_acl(name: *const u8) -> bool {
    const PREFIX: [u8; 16] = *b"system.posix_acl";
    read_at::<[u8; 16]>(name, 0).map_or(true, |start| start == PREFIX)
}

/// Denies a confined task making a program that runs as its owner (set-user-ID) or its group
/// (set-group-ID with group execute): whoever runs it later, outside the sandbox, would act
/// as that user. A confined root's own file would give root to the developer's next `make`;
/// git keeps no such bit, so no review shows it. `mode` is the new mode of a regular file
/// (`regular`); a policy (`policy`, the task's) that gives SETUID (SETGID) back makes such
/// programs.
#[inline(always)]
pub fn setid_program(policy: &CgroupPolicy, hook: u32, mode: u32, regular: bool) -> Option<i32> {
    if !regular || !sets_id(mode) {
        return None;
    }
    let cap = if mode & S_ISUID != 0 {
        CAP_SETUID
    } else {
        CAP_SETGID
    };
    if policy.gives_back(cap) || !acting_as_itself() {
        return None;
    }
    Some(deny(policy, hook, Target::Capability(cap)))
}

/// Whether `mode` makes a program run as its owner (set-user-ID) or its group (set-group-ID
/// with group execute).
#[inline(always)]
pub fn sets_id(mode: u32) -> bool {
    mode & S_ISUID != 0 || mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP
}

/// Whether `mode` (with its `S_IFMT` bits, none meaning a regular file as `mknod` takes it)
/// is a regular file's.
#[inline(always)]
pub fn regular_file(mode: u32) -> bool {
    matches!(file_type(mode), 0 | S_IFREG)
}

#[lsm(hook = "uring_override_creds")]
pub fn uring_override_creds(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, uring_override_creds, const struct cred *new): a request submitted with
    // a registered personality runs with those credentials. Kernel code that swaps in its own
    // credentials is trusted to act for itself (`narrowed_capability`); this is the one way a
    // task picks the credentials it acts with, so a confined task gets none.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    deny_confined(HOOK_URING_OVERRIDE_CREDS, Target::None)
}
