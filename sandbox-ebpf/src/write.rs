//! deny_write, and the deny_read hardening that shares its hooks: what a confined task may
//! create, remove, rename, link or truncate. Each hook names the directory entry it changes; the
//! walk decides it by the inode identity of the entry and the directories above it, or, for a
//! name that does not exist yet, by the name rules of its parent directory. On a kernel
//! filesystem every change is refused (`kernel_fs`).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    CgroupPolicy, InodeKey, LinkedOut, EPERM, HOOK_FILE_TRUNCATE, HOOK_PATH_LINK, HOOK_PATH_MKDIR,
    HOOK_PATH_MKNOD, HOOK_PATH_RENAME, HOOK_PATH_RMDIR, HOOK_PATH_SYMLINK, HOOK_PATH_TRUNCATE,
    HOOK_PATH_UNLINK, LINKED_OUT_DIRS, MQUEUE_MAGIC, POLICY_ID_ANY, POLICY_OTHER_REPOSITORIES,
    POLICY_WRITE_ALLOWLIST, PROC_SUPER_MAGIC, RULE_ALLOW_UNIX, RULE_ALLOW_UNIX_ROOT,
    RULE_ALLOW_WRITE, RULE_DENY_EXEC, RULE_DENY_READ, RULE_DENY_UNIX, RULE_DENY_WRITE,
    RULE_ID_FAIL_CLOSED, RULE_ID_ROOT_SHARED, RULE_ID_SELF_PROTECTION, RULE_ON_THE_WAY,
    RULE_OTHER_REPOSITORIES, WALK_ONE_NAME,
};

use crate::{
    file_check::inode_identity,
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    kernel_fs::on_kernel_fs,
    maps::LINKED_OUT,
    mode::{mode_of, S_IFLNK},
    other_users::{fowner_narrowed, owned_by_another, regular_file, setid_program},
    policy::{confining_attachment, current_policy},
    root_files::{beyond_roots_shared_entry, root_for_another, OWNER, SEARCH, WRITE_SEARCH},
    sticky_dirs::{
        creates_trusted_plant, entry_of, plants_trusted_entry, removes_another_users_entry, Entry,
    },
    target::{FileId, Target},
    verdict::{enforce, Decision},
    walk::{check_dentry, check_dentry_at, inode_key},
};

/// The rule bits a protected directory has under `POLICY_ID_ANY`.
const PROTECTED: u32 = RULE_DENY_READ | RULE_DENY_WRITE | RULE_DENY_EXEC | RULE_DENY_UNIX;

/// Changing the entry: deny_write.
const CHANGE: u32 = RULE_DENY_WRITE;
/// Moving the entry elsewhere or giving it a second name: it would carry a denied file out of
/// a denied directory, so deny_read protects it too (and unix_deny: the same bits as CREATE,
/// which an exchange is too).
const MOVE: u32 = CREATE;
/// Making a new name (mkdir, mknod and open(O_CREAT), a socket's bind, symlink, the new side of
/// link and rename): inside a deny_read tree, or at a deny_read name, the names belong to the
/// owner. A planted symlink or hardlink there would catch what the owner writes later. Inside a
/// unix_deny tree or at a unix_deny name, the host's clients look for their server: a socket
/// planted there (or a symlink to one) would take what they send (git credential-cache's
/// `store` sends a password, a tmux client the keystrokes). Inside what `unix_allow` or
/// `unix_root_allow` lists, or at a name they list, a server's socket moved in from elsewhere
/// would become reachable, and one made there would take the host's clients (a planted
/// `/run/nscd/socket` answers every process's user lookups).
const CREATE: u32 =
    RULE_DENY_READ | RULE_DENY_WRITE | RULE_DENY_UNIX | RULE_ALLOW_UNIX | RULE_ALLOW_UNIX_ROOT;
/// Removing an entry, or putting another in its place (rename over it): also forbidden when it
/// is a directory or symlink on the way to a protected path (`RULE_ON_THE_WAY`), whose rules
/// would stay with the old entry while the owner later uses the new one.
const REMOVE: u32 = CHANGE | RULE_ON_THE_WAY;
/// RENAME_EXCHANGE from <uapi/linux/fs.h>: both entries move.
const RENAME_EXCHANGE: u32 = 1 << 1;

/// One entry the hook changes, and the rule bits that forbid it.
#[derive(Clone, Copy)]
pub struct Change {
    pub dentry: *const u8,
    pub want: u32,
    /// What changes is the file itself (its size, mode, owner, attributes), not a name: under
    /// `allow_write`, a file with other names is then changed under all of them.
    pub of_the_file: bool,
}

/// Verdict of `hook` on changing `first` and then, unless that is denied, `second`, for a task
/// `policy` confines (each hook looks it up once, for all it checks).
#[inline(always)]
pub fn verdict_under(
    policy: &CgroupPolicy,
    hook: u32,
    first: Change,
    second: Option<Change>,
) -> i32 {
    if root_for_another(policy) {
        if let Some(refused) = roots_shared_entry_changed(policy, hook, first, second) {
            return refused;
        }
    }
    let allowlist = policy.flags & POLICY_WRITE_ALLOWLIST != 0;
    let repositories = other_repositories(policy);
    let mut target = FileId::default();
    let mut denied = denying_rule(
        policy.policy_id,
        first.dentry,
        first.want | repositories,
        listed_by(allowlist, first),
        &mut target,
    );
    if let (NO_RULE, Some(second)) = (denied, second) {
        denied = denying_rule(
            policy.policy_id,
            second.dentry,
            second.want | repositories,
            listed_by(allowlist, second),
            &mut target,
        );
    }
    let decision = match denied {
        NO_RULE => Decision::Allow,
        rule => Decision::Deny {
            rule_id: rule as u32,
        },
    };
    enforce(policy, hook, decision, &Target::file(target))
}

/// Refuses a confined root working for another user a change of root's entry of a shared
/// directory, or of something below one, that its sandbox did not make (see `root_files`):
/// that user could not remove, rename or change such an entry, nor add or remove a name in
/// a directory of root's it may not write.
#[inline(always)]
fn roots_shared_entry_changed(
    policy: &CgroupPolicy,
    hook: u32,
    first: Change,
    second: Option<Change>,
) -> Option<i32> {
    let attachment = confining_attachment().map_or(0, |(attachment, _)| attachment);
    let changed = |change: Change| {
        let parent_want = if change.of_the_file {
            SEARCH
        } else {
            WRITE_SEARCH
        };
        beyond_roots_shared_entry(
            change.dentry,
            OWNER,
            parent_want,
            policy.user_gid,
            attachment,
        )
    };
    let dentry = if changed(first) {
        first.dentry
    } else {
        match second {
            Some(second) if changed(second) => second.dentry,
            _ => return None,
        }
    };
    let target = read_ptr(dentry, offsets().dentry_inode)
        .and_then(|inode| inode_identity(offsets(), inode))
        .map_or(Target::None, |id| Target::file(FileId { dentry, ..id }));
    let decision = Decision::Deny {
        rule_id: RULE_ID_ROOT_SHARED,
    };
    Some(enforce(policy, hook, decision, &target))
}

/// `RULE_OTHER_REPOSITORIES` when `policy` keeps its tasks out of other repositories: every
/// change a walk decides asks it too.
#[inline(always)]
pub fn other_repositories(policy: &CgroupPolicy) -> u32 {
    if policy.flags & POLICY_OTHER_REPOSITORIES != 0 {
        RULE_OTHER_REPOSITORIES
    } else {
        0
    }
}

/// The rule bits that list `change` under an `allow_write` policy (0 without one).
#[inline(always)]
fn listed_by(allowlist: bool, change: Change) -> u32 {
    match (allowlist, change.of_the_file) {
        (false, _) => 0,
        (true, false) => RULE_ALLOW_WRITE,
        (true, true) => RULE_ALLOW_WRITE | WALK_ONE_NAME,
    }
}

/// Verdict of `hook` on changing the file `dentry` (deny_write).
#[inline(always)]
pub fn verdict_on_change(hook: u32, dentry: *const u8) -> i32 {
    match current_policy() {
        Some(policy) => verdict_on_change_under(&policy, hook, dentry),
        None => 0,
    }
}

/// `verdict_on_change` for a task `policy` confines.
#[inline(always)]
pub fn verdict_on_change_under(policy: &CgroupPolicy, hook: u32, dentry: *const u8) -> i32 {
    let change = Change {
        dentry,
        want: CHANGE,
        of_the_file: true,
    };
    verdict_under(policy, hook, change, None)
}

/// Verdict of `hook` on removing the entry `dentry` (deny_write, and the way to any protected
/// path: see `REMOVE`).
#[inline(always)]
fn verdict_on_remove(hook: u32, dentry: *const u8) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    if fowner_narrowed(&policy) {
        if let Some(denied) = removes_another_users_entry(&policy, hook, dentry) {
            return denied;
        }
    }
    verdict_under(
        &policy,
        hook,
        Change {
            dentry,
            want: REMOVE,
            of_the_file: false,
        },
        None,
    )
}

/// Verdict of `hook` on creating the name `dentry` (deny_write, and deny_read: see `CREATE`).
#[inline(always)]
fn verdict_on_create(hook: u32, dentry: *const u8) -> i32 {
    match current_policy() {
        Some(policy) => verdict_on_create_under(&policy, hook, dentry),
        None => 0,
    }
}

/// `verdict_on_create` for a task `policy` confines.
#[inline(always)]
fn verdict_on_create_under(policy: &CgroupPolicy, hook: u32, dentry: *const u8) -> i32 {
    let change = Change {
        dentry,
        want: CREATE,
        of_the_file: false,
    };
    verdict_under(policy, hook, change, None)
}

/// What `denying_rule` returns when nothing denies; a rule id is a u32.
const NO_RULE: u64 = u64::MAX;

/// The id of the rule that forbids changing `dentry` (a rule bit in `want`), or `NO_RULE`;
/// `target` gets the entry's identity. Any change on a kernel filesystem is forbidden by
/// self-protection, whatever the policy. Not inlined: link and rename check two entries, and two
/// inlined walks would not fit the 512-byte stack together; called, they share one frame.
#[inline(never)]
fn denying_rule(
    policy_id: u32,
    dentry: *const u8,
    want: u32,
    allow: u32,
    target: &mut FileId,
) -> u64 {
    let rule = rule_against(policy_id, dentry, want, allow, target);
    // Copied through a helper, so the verifier knows the result only as a number: each rule
    // id it could tell apart (the sentinels, NO_RULE) would otherwise make it verify all that
    // follows the call (path_link's second entry and its records) once per id. A failed copy
    // is rule 0: denied.
    read_at::<u64>(&rule as *const u64 as *const u8, 0).unwrap_or(0)
}

/// `denying_rule`'s decision, as the verifier sees every value of it.
#[inline(always)]
fn rule_against(
    policy_id: u32,
    dentry: *const u8,
    want: u32,
    allow: u32,
    target: &mut FileId,
) -> u64 {
    let off = offsets();
    if off.valid == 0 || dentry.is_null() {
        return RULE_ID_FAIL_CLOSED as u64;
    }
    // The filesystem comes from the dentry: a name being created has no inode yet.
    let Ok(sb) = read_ptr(dentry, off.dentry_sb) else {
        return RULE_ID_FAIL_CLOSED as u64;
    };
    let Ok(dev) = read_at(sb, off.sb_dev) else {
        return RULE_ID_FAIL_CLOSED as u64;
    };
    target.dev = dev;
    target.dentry = dentry;
    target.ino = match read_at::<*const u8>(dentry, off.dentry_inode) {
        Ok(inode) if inode.is_null() => 0,
        Ok(inode) => match read_at(inode, off.inode_ino) {
            Ok(ino) => ino,
            Err(_) => return RULE_ID_FAIL_CLOSED as u64,
        },
        Err(_) => return RULE_ID_FAIL_CLOSED as u64,
    };
    if on_kernel_fs(off, sb) {
        return RULE_ID_SELF_PROTECTION as u64;
    }
    // A process's own procfs files (`/proc/self/comm` opened with O_TRUNC) and message queues
    // are no files that outlast it: `allow_write` cannot list them (`file_check`).
    let allow = match read_at::<u64>(sb, off.sb_magic) {
        Ok(PROC_SUPER_MAGIC | MQUEUE_MAGIC) => 0,
        _ => allow,
    };
    match check_dentry(policy_id, dev, dentry, want, allow) {
        Decision::Allow => NO_RULE,
        Decision::Deny { rule_id } => rule_id as u64,
    }
}

/// The dentry of a `struct path *`.
#[inline(always)]
pub fn path_dentry(path: *const u8) -> *const u8 {
    read_ptr(path, offsets().path_dentry).unwrap_or(core::ptr::null())
}

#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_truncate, const struct path *path)
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    verdict_on_change(HOOK_PATH_TRUNCATE, path_dentry(ctx.arg(0)))
}

#[lsm(hook = "file_truncate")]
pub fn file_truncate(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_truncate, struct file *file): ftruncate(2), and open(O_TRUNC) of an
    // existing file since Linux 6.2 (opened read-only, `file_open` sees no write), where
    // `path_truncate` saw both before.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    let file: *const u8 = ctx.arg(0);
    let dentry = read_ptr(file, offsets().file_dentry).unwrap_or(core::ptr::null());
    verdict_on_change(HOOK_FILE_TRUNCATE, dentry)
}

#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_unlink, const struct path *dir, struct dentry *dentry)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    verdict_on_remove(HOOK_PATH_UNLINK, ctx.arg(1))
}

#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_rmdir, const struct path *dir, struct dentry *dentry)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    verdict_on_remove(HOOK_PATH_RMDIR, ctx.arg(1))
}

#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_mkdir, const struct path *dir, struct dentry *dentry, umode_t mode)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_create(HOOK_PATH_MKDIR, ctx.arg(1))
}

#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode,
    //          unsigned int dev): also open(O_CREAT) of a name that does not exist.
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    let mode = ctx.arg::<u64>(2) as u32 & 0xffff;
    let dentry: *const u8 = ctx.arg(1);
    let Some(policy) = current_policy() else {
        return 0;
    };
    if let Some(denied) = setid_program(&policy, HOOK_PATH_MKNOD, mode, regular_file(mode)) {
        return denied;
    }
    // A file or FIFO others may write, made in root's `/tmp` (see `sticky_dirs`).
    if fowner_narrowed(&policy) {
        if let Some(denied) = creates_trusted_plant(&policy, HOOK_PATH_MKNOD, dentry, mode) {
            return denied;
        }
    }
    verdict_on_create_under(&policy, HOOK_PATH_MKNOD, dentry)
}

#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_symlink, const struct path *dir, struct dentry *dentry,
    //          const char *old_name)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let dentry: *const u8 = ctx.arg(1);
    let Some(policy) = current_policy() else {
        return 0;
    };
    let symlink = Entry {
        mode: S_IFLNK,
        other_names: false,
    };
    if fowner_narrowed(&policy) {
        if let Some(denied) = plants_trusted_entry(&policy, HOOK_PATH_SYMLINK, dentry, symlink) {
            return denied;
        }
    }
    verdict_on_create_under(&policy, HOOK_PATH_SYMLINK, dentry)
}

#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_link, struct dentry *old_dentry, const struct path *new_dir,
    //          struct dentry *new_dentry)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let (old_dentry, new_dentry): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(2));
    let verdict = match current_policy() {
        Some(policy) => verdict_on_link(&policy, old_dentry, new_dentry),
        None => 0,
    };
    match verdict {
        0 => note_link_out(old_dentry),
        denied => denied,
    }
}

/// Verdict on a task `policy` confines giving the file of `old_dentry` the new name
/// `new_dentry`.
#[inline(always)]
fn verdict_on_link(policy: &CgroupPolicy, old_dentry: *const u8, new_dentry: *const u8) -> i32 {
    // A set-user-ID file made without a name (O_TMPFILE, whose creation no hook sees) gets
    // one here.
    let mode = mode_of(old_dentry);
    if let Some(denied) = setid_program(policy, HOOK_PATH_LINK, mode, regular_file(mode)) {
        return denied;
    }
    // Another user's file, which `fs.protected_hardlinks` lets only its owner (or `FOWNER`,
    // asked without naming the file) link when the linker may not read and write it; and a
    // symlink, file or FIFO linked into root's `/tmp` (see `sticky_dirs`), which keeps its
    // name elsewhere to be opened up by.
    if fowner_narrowed(policy) {
        let entry = Entry {
            mode,
            other_names: true,
        };
        if let Some(denied) = owned_by_another(policy, HOOK_PATH_LINK, old_dentry) {
            return denied;
        }
        if let Some(denied) = plants_trusted_entry(policy, HOOK_PATH_LINK, new_dentry, entry) {
            return denied;
        }
    }
    // Under `allow_write` the file linked must be listed too: a name for it in a listed
    // directory would make it writable there.
    let old = Change {
        dentry: old_dentry,
        want: MOVE,
        of_the_file: false,
    };
    let new = Change {
        dentry: new_dentry,
        want: CREATE,
        of_the_file: false,
    };
    verdict_under(policy, HOOK_PATH_LINK, old, Some(new))
}

/// Records a file about to get a second name while it is inside directories some attached
/// policy protects (whoever links it, confined or not): the walk from the new name would never
/// pass them, so `LINKED_OUT` keeps them for the confined checks, nearest first, up to
/// `LINKED_OUT_DIRS` (policies protecting nested directories each find theirs). If the record
/// cannot be kept (the map is full) the link is refused rather than open a way around a rule.
#[inline(always)]
fn note_link_out(old: *const u8) -> i32 {
    let off = offsets();
    // With nothing attached no directory is protected: nothing to record.
    if off.valid == 0 || old.is_null() || !crate::policy::any_attached() {
        return 0;
    }
    let mut record = LinkedOut::default();
    let mut from = old;
    for i in 0..LINKED_OUT_DIRS {
        from = protected_above(from, &mut record.dirs[i]);
        if from.is_null() {
            break;
        }
    }
    if record.dirs[0].ino == 0 {
        return 0;
    }
    let Ok(file) = read_ptr(old, off.dentry_inode).and_then(|inode| inode_key(off, 0, inode))
    else {
        return 0;
    };
    match LINKED_OUT.insert(&file, &record, 0) {
        Ok(()) => 0,
        Err(_) => -EPERM,
    }
}

/// The nearest directory at or above `from` that some attached policy protects: its identity
/// goes to `dir` (policy id 0), and the result is its parent, where the search for the next one
/// starts (null when there is none, or nothing above it). Not inlined: its walk gets its own
/// stack frame, whichever slot of the record it fills.
#[inline(never)]
fn protected_above(from: *const u8, dir: &mut InodeKey) -> *const u8 {
    let off = offsets();
    let Ok(dev) = read_ptr(from, off.dentry_sb).and_then(|sb| read_at(sb, off.sb_dev)) else {
        return core::ptr::null();
    };
    let (decision, found, at) = check_dentry_at(POLICY_ID_ANY, dev, from, PROTECTED, 0);
    match decision {
        // Fail-closed walks (too deep, disconnected) are not a protected directory found.
        Decision::Deny { rule_id } if rule_id != RULE_ID_FAIL_CLOSED && !at.is_null() => {}
        _ => return core::ptr::null(),
    }
    *dir = InodeKey {
        policy_id: 0,
        ..found
    };
    match read_ptr(at, off.dentry_parent) {
        Ok(parent) if parent != at => parent,
        _ => core::ptr::null(),
    }
}

#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, path_rename, const struct path *old_dir, struct dentry *old_dentry,
    //          const struct path *new_dir, struct dentry *new_dentry, unsigned int flags)
    if let Some(denied) = earlier_denial(&ctx, 5) {
        return denied;
    }
    let flags: u32 = ctx.arg(4);
    let (old_dentry, new_dentry): (*const u8, *const u8) = (ctx.arg(1), ctx.arg(3));
    let Some(policy) = current_policy() else {
        return 0;
    };
    // Another user's entry of a sticky directory, or a shared directory, moves away or is
    // replaced, or a trusted plant moves into root's `/tmp` (see `sticky_dirs`); with
    // RENAME_EXCHANGE both ways.
    let exchange = flags & RENAME_EXCHANGE != 0;
    if fowner_narrowed(&policy) {
        let (hook, policy) = (HOOK_PATH_RENAME, &policy);
        if let Some(denied) = removes_another_users_entry(policy, hook, old_dentry) {
            return denied;
        }
        if let Some(denied) = removes_another_users_entry(policy, hook, new_dentry) {
            return denied;
        }
        if let Some(denied) = plants_trusted_entry(policy, hook, new_dentry, entry_of(old_dentry)) {
            return denied;
        }
        if exchange {
            let entry = entry_of(new_dentry);
            if let Some(denied) = plants_trusted_entry(policy, hook, old_dentry, entry) {
                return denied;
            }
        }
    }
    // Either entry may be on the way to a protected path: the one moving away, and the one
    // replaced at the new name (an empty directory renamed over, a symlink) or exchanged.
    let old = Change {
        dentry: old_dentry,
        want: MOVE | RULE_ON_THE_WAY,
        of_the_file: false,
    };
    // The entry replaced at the new name is changed, and the name given to what moves in
    // (CREATE); with RENAME_EXCHANGE the entry there moves out too (MOVE, the same bits).
    let new = Change {
        dentry: new_dentry,
        want: RULE_ON_THE_WAY | if exchange { MOVE } else { CREATE },
        of_the_file: false,
    };
    verdict_under(&policy, HOOK_PATH_RENAME, old, Some(new))
}
