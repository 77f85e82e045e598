//! The inode-identity check: is the opened inode, or any directory above it on the same
//! filesystem, denied? Walking `d_parent` gives the same answer whatever path alias (symlink,
//! hardlink, bind mount, /proc/self/root, `..`) the task used to reach the file.

use aya_ebpf::{
    cty::c_void,
    helpers::generated::{bpf_loop, bpf_probe_read_kernel, bpf_probe_read_kernel_str},
};
use sandbox_common::{
    InodeKey, KernelOffsets, NameKey, BARE_REPOSITORY_HEAD_WORD, BARE_REPOSITORY_SUFFIX_WORD,
    CHAIN_DEV, FOLD_CASE, MAX_CHAIN, MAX_NAME_LEN, MAX_WALK_DEPTH, NAME_KEY_LEN, POLICY_ID_ANY,
    REPOSITORY_DIR_WORDS, RULE_ALLOW_WRITE, RULE_GIT_PENDING, RULE_ID_FAIL_CLOSED,
    RULE_ID_NOT_ALLOWED, RULE_ID_NOT_WRITABLE, RULE_ID_OTHER_NAMES, RULE_ID_OTHER_REPOSITORY,
    RULE_NAMED_CHILDREN, RULE_ON_THE_WAY, RULE_OTHER_REPOSITORIES, RULE_OWN_REPOSITORY,
    RULE_PREFIX, WALK_ONE_NAME,
};

use crate::{
    kernel::{btrfs_subvolume_dev, keyed_by_subvolume, offsets, read_at, read_ptr},
    maps::{INODE_RULES, LINKED_OUT, NAME_RULES},
    mode::{file_type, inode_mode, S_IFDIR},
    verdict::Decision,
};

const FAIL_CLOSED: Decision = Decision::Deny {
    rule_id: RULE_ID_FAIL_CLOSED,
};

// The walk clears the others with the one by shifts (`check_inode`).
const _: () = assert!(RULE_OWN_REPOSITORY >> 1 == RULE_OTHER_REPOSITORIES);
const _: () = assert!(RULE_OWN_REPOSITORY << 1 == RULE_GIT_PENDING);

/// The state of one walk, shared with the `bpf_loop` callback that advances it one level. The
/// map keys live here, in the hook's frame, so the callback's own frame stays small: the
/// verifier caps the two frames together at 512 bytes.
#[repr(C)]
struct Walk {
    /// The dentry to check next.
    dentry: *const u8,
    /// The dentries walked so far, nearest first: below[0] is the child of `dentry` on the path.
    below: [*const u8; MAX_CHAIN],
    inode_key: InodeKey,
    name_key: NameKey,
    /// Rule bits that deny: the first rule with one of them decides. With
    /// `RULE_OTHER_REPOSITORIES`, a repository's name on the way (`names_a_repository`) sets
    /// `RULE_GIT_PENDING`, and a walk
    /// that ends with it set denies; a `RULE_OWN_REPOSITORY` directory clears both.
    want: u32,
    /// Rule bits that list the file (`allow_exec`, `allow_write`); 0 when the policy has no
    /// allowlist. May carry `WALK_ONE_NAME`.
    allow: u32,
    /// The `allow` bits of the rules passed. Or-ed in, never branched on inside the loop: a
    /// branch there would double the states the verifier walks for every hook.
    listed: u32,
    outcome: u32,
    rule_id: u32,
    /// Non-zero on btrfs: each inode's key takes its subvolume's device.
    subvolumes: u32,
}

/// DCACHE_DISCONNECTED from <linux/dcache.h> (the same bit on 6.1 and 6.12).
const DCACHE_DISCONNECTED: u32 = 0x20;

const WALKING: u32 = 0;
const ALLOWED: u32 = 1;
const DENIED: u32 = 2;

/// Decides an access to `dentry` (on the filesystem whose kernel dev_t is `dev`) under the
/// policy `policy_id`: denied by the nearest rule with a bit in `want`; with `allow` non-zero,
/// also denied unless some rule on the way up has a bit in `allow` (a deny always wins); with
/// `WALK_ONE_NAME` in `allow`, a file with other names also needs its whole filesystem listed.
///
/// The walk runs in `bpf_loop`, so the verifier checks one level once instead of every level of
/// an unrolled loop: each hook that shares it costs a fraction of a second to load, not tens.
#[inline(always)]
pub fn check_dentry(policy_id: u32, dev: u32, start: *const u8, want: u32, allow: u32) -> Decision {
    let (decision, _, _) = check_dentry_at(policy_id, dev, start, want, allow);
    match decision {
        // The directories a link came from are above the file, never the entry changed.
        Decision::Allow if policy_id != POLICY_ID_ANY => {
            linked_out(policy_id, start, want & !RULE_ON_THE_WAY)
        }
        decided => decided,
    }
}

/// Like `check_dentry`; also returns the identity of the inode whose rule denied (the dev and
/// inode of the denied directory, for a directory rule) and its dentry.
#[inline(always)]
pub fn check_dentry_at(
    policy_id: u32,
    dev: u32,
    start: *const u8,
    want: u32,
    allow: u32,
) -> (Decision, InodeKey, *const u8) {
    let off = offsets();
    let subvolumes = match read_ptr(start, off.dentry_sb).and_then(|sb| keyed_by_subvolume(off, sb))
    {
        Ok(by_subvolume) => by_subvolume as u32,
        Err(_) => return (FAIL_CLOSED, InodeKey::default(), core::ptr::null()),
    };
    let mut walk = Walk {
        dentry: start,
        below: [core::ptr::null(); MAX_CHAIN],
        inode_key: InodeKey {
            policy_id,
            dev,
            ino: 0,
        },
        name_key: NameKey {
            policy_id,
            dev,
            parent_ino: 0,
            name_len: 0,
            _pad: 0,
            name: [0; NAME_KEY_LEN],
        },
        want,
        allow,
        listed: 0,
        outcome: WALKING,
        rule_id: 0,
        subvolumes,
    };
    hide_from_verifier(&mut walk.below);
    hide_from_verifier(&mut walk.listed);
    // `RULE_GIT_PENDING` starts unknown to the verifier (zero, in fact): a walk that sets it
    // is then a state the verifier has seen, not one more to walk.
    let mut pending = 0u32;
    hide_from_verifier(&mut pending);
    walk.want |= pending & RULE_GIT_PENDING;
    // SAFETY: the callback is a BPF subprogram taking (index, ctx), and ctx points at `walk`,
    // which lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_WALK_DEPTH,
            walk_one_level as *mut c_void,
            &mut walk as *mut Walk as *mut c_void,
            0,
        )
    };
    let decision = match walk.outcome {
        ALLOWED if walk.want & RULE_GIT_PENDING != 0 => Decision::Deny {
            rule_id: RULE_ID_OTHER_REPOSITORY,
        },
        ALLOWED if walk.allow != 0 && walk.listed == 0 => Decision::Deny {
            rule_id: if walk.allow & RULE_ALLOW_WRITE != 0 {
                RULE_ID_NOT_WRITABLE
            } else {
                RULE_ID_NOT_ALLOWED
            },
        },
        // Decided here, after the loop, so the walk's own states stay as they were: this is
        // the rare case, and the loop's verification is what every hook pays to load.
        ALLOWED if walk.allow & WALK_ONE_NAME != 0 => one_name(&mut walk, start),
        ALLOWED => Decision::Allow,
        DENIED => Decision::Deny {
            rule_id: walk.rule_id,
        },
        // Deeper than we can walk (a denied ancestor could be out of sight), or the loop failed.
        _ => FAIL_CLOSED,
    };
    (decision, walk.inode_key, walk.dentry)
}

/// After a complete walk (`walk.dentry` is the filesystem's root): allowed if `start` is a
/// directory, a file with one name, or on a filesystem listed whole (a rule with an `allow` bit
/// on its root). Another name of the file may be anywhere on its filesystem, outside every
/// listed directory (a hardlink made before the attach), and no walk from this name sees it.
#[inline(always)]
fn one_name(walk: &mut Walk, start: *const u8) -> Decision {
    let off = offsets();
    let Ok(inode) = read_at::<*const u8>(start, off.dentry_inode) else {
        return FAIL_CLOSED;
    };
    if inode.is_null() {
        return Decision::Allow;
    }
    let (Ok(mode), Ok(nlink)) = (inode_mode(inode), read_at::<u32>(inode, off.inode_nlink)) else {
        return FAIL_CLOSED;
    };
    if file_type(mode) == S_IFDIR || nlink < 2 {
        return Decision::Allow;
    }
    let Ok(root) = read_at::<*const u8>(walk.dentry, off.dentry_inode) else {
        return FAIL_CLOSED;
    };
    let Ok(ino) = read_at::<u64>(root, off.inode_ino) else {
        return FAIL_CLOSED;
    };
    // The key's device is the root's as the walk last computed it (its subvolume on btrfs).
    walk.inode_key.ino = ino;
    // SAFETY: copied out at once; see policy::current_policy.
    match unsafe { INODE_RULES.get(&walk.inode_key).copied() } {
        Some(rule) if rule.flags & walk.allow != 0 => Decision::Allow,
        _ => Decision::Deny {
            rule_id: RULE_ID_OTHER_NAMES,
        },
    }
}

/// A file with more than one name that was hardlinked out of a protected directory after the
/// policy was attached (`LINKED_OUT`, written by `path_link`): decided by that directory's rule,
/// since the walk from its other name never passes it.
#[inline(always)]
fn linked_out(policy_id: u32, start: *const u8, want: u32) -> Decision {
    let off = offsets();
    let Ok(inode) = read_at::<*const u8>(start, off.dentry_inode) else {
        return FAIL_CLOSED;
    };
    if inode.is_null() {
        return Decision::Allow;
    }
    let Ok(nlink) = read_at::<u32>(inode, off.inode_nlink) else {
        return FAIL_CLOSED;
    };
    if nlink < 2 {
        return Decision::Allow;
    }
    let Ok(file) = inode_key(off, 0, inode) else {
        return FAIL_CLOSED;
    };
    // SAFETY: copied out at once; see policy::current_policy.
    let Some(record) = (unsafe { LINKED_OUT.get(&file).copied() }) else {
        return Decision::Allow;
    };
    for mut dir in record.dirs {
        if dir.ino == 0 {
            break;
        }
        dir.policy_id = policy_id;
        // SAFETY: as above.
        if let Some(rule) = unsafe { INODE_RULES.get(&dir).copied() } {
            if rule.flags & want != 0 {
                return Decision::Deny {
                    rule_id: rule.rule_id,
                };
            }
        }
    }
    Decision::Allow
}

/// The rule key of `inode` under `policy_id`: its identity as every hook reads it.
#[inline(always)]
pub fn inode_key(off: &KernelOffsets, policy_id: u32, inode: *const u8) -> Result<InodeKey, i32> {
    let id = crate::file_check::inode_identity(off, inode)?;
    Ok(InodeKey {
        policy_id,
        dev: id.dev,
        ino: id.ino,
    })
}

/// Zeroes `slot` in a way the verifier cannot see through. Before 6.8 the verifier checks a
/// `bpf_loop` callback once, with the state of the first call: slots it knows to be null there
/// (the path below the first dentry) would make it drop the name-rule checks as dead code.
#[inline(always)]
fn hide_from_verifier<T>(slot: &mut T) {
    // SAFETY: copies size_of::<T>() bytes into `slot`, which has that size. Address 0 is never
    // readable kernel memory, so the helper fails and zero-fills `slot`; the verifier only knows
    // that the helper wrote unknown bytes there.
    unsafe {
        bpf_probe_read_kernel(
            slot as *mut T as *mut c_void,
            core::mem::size_of::<T>() as u32,
            core::ptr::null(),
        )
    };
}

/// One level of the walk; returns 1 to stop the loop once the outcome is known.
#[inline(never)]
extern "C" fn walk_one_level(index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop hands back the pointer check_dentry passed: its live, exclusive `Walk`.
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    let (outcome, rule_id) = match check_level(walk, index) {
        Ok(None) => return 0,
        Ok(Some(Decision::Allow)) => (ALLOWED, 0),
        Ok(Some(Decision::Deny { rule_id })) => (DENIED, rule_id),
        Err(_) => (DENIED, RULE_ID_FAIL_CLOSED),
    };
    walk.outcome = outcome;
    walk.rule_id = rule_id;
    1
}

/// Checks `walk.dentry` (the `level`th on the way up) and moves to its parent; `Some` once the
/// walk is decided.
#[inline(always)]
fn check_level(walk: &mut Walk, level: u32) -> Result<Option<Decision>, i32> {
    let off = offsets();
    let dentry = walk.dentry;
    let inode: *const u8 = read_at(dentry, off.dentry_inode)?;
    if !inode.is_null() {
        // `RULE_ON_THE_WAY` forbids changing that entry itself, not what is below it.
        let want = if level == 0 {
            walk.want
        } else {
            walk.want & !RULE_ON_THE_WAY
        };
        if let Some(decision) = check_inode(walk, inode, want, level)? {
            return Ok(Some(decision));
        }
    } else if level != 0 {
        // Only the name being created (mkdir, mknod, the new side of link and rename) has no
        // inode yet; a directory above it always has one.
        return Err(-1);
    }
    if walk.want & RULE_OTHER_REPOSITORIES != 0 {
        // Decided at the end: an `own_repositories` directory may be further up. Or-ed in, not
        // branched on: the bit is already unknown to the verifier, so the state stays one.
        walk.want |= names_a_repository(dentry, level)? * RULE_GIT_PENDING;
    }
    let parent = read_ptr(dentry, off.dentry_parent)?;
    if parent == dentry {
        // Its own parent: the filesystem root, and the walk is complete, unless the dentry is
        // disconnected (reached by a file handle, open_by_handle_at): then the directories above
        // it are unknown, and one of them could be denied.
        let flags: u32 = read_at(dentry, off.dentry_flags)?;
        if flags & DCACHE_DISCONNECTED != 0 {
            return Err(-1);
        }
        return Ok(Some(Decision::Allow));
    }
    walk.below = [dentry, walk.below[0], walk.below[1], walk.below[2]];
    walk.dentry = parent;
    Ok(None)
}

/// The inode rule of the directory or file `inode` on the path, the `level`th (denying with a
/// bit of `want`), then the name rules below it.
#[inline(always)]
fn check_inode(
    walk: &mut Walk,
    inode: *const u8,
    want: u32,
    level: u32,
) -> Result<Option<Decision>, i32> {
    let off = offsets();
    let ino: u64 = read_at(inode, off.inode_ino)?;
    walk.inode_key.ino = ino;
    if walk.subvolumes != 0 {
        walk.inode_key.dev = btrfs_subvolume_dev(off, inode)?;
    }
    // SAFETY: copied out at once; see policy::current_policy.
    let Some(rule) = (unsafe { INODE_RULES.get(&walk.inode_key).copied() }) else {
        return Ok(None);
    };
    if rule.flags & want != 0 {
        return Ok(Some(Decision::Deny {
            rule_id: rule.rule_id,
        }));
    }
    walk.listed |= rule.flags & walk.allow;
    // At the sandbox's own repository's directory (the workspace's git directory, or an
    // `own_repositories` one), a `.git` passed below is its own, and one above is the
    // repository it is in (a submodule's git directory is in its superproject's
    // `.git/modules`). Cleared without a branch: one in the loop would double the states the
    // verifier walks.
    let own = rule.flags & RULE_OWN_REPOSITORY;
    walk.want &= !((own >> 1) | (own << 1));
    if rule.flags & RULE_NAMED_CHILDREN != 0 {
        if let Some(rule_id) = check_names(walk, ino, level)? {
            return Ok(Some(Decision::Deny { rule_id }));
        }
    }
    Ok(None)
}

/// Name rules below the directory `parent_ino`: the name of the child on the path, then, while
/// the match is a `RULE_PREFIX` of a path that did not exist at attach time, the names further
/// down. Returns the id of a rule that denies `walk.want`. `level` is the directory's: the
/// `i`th name below it is the entry at `level - 1 - i`, and only the entry being changed
/// (level 0) can be denied by `RULE_ON_THE_WAY` (a missing directory on the way to a denied
/// path, made since).
#[inline(always)]
fn check_names(walk: &mut Walk, parent_ino: u64, level: u32) -> Result<Option<u32>, i32> {
    let off = offsets();
    walk.name_key.dev = walk.inode_key.dev;
    walk.name_key.parent_ino = parent_ino;
    for i in 0..MAX_CHAIN {
        let child = walk.below[i];
        if child.is_null() {
            return Ok(None);
        }
        fill_name(off, &mut walk.name_key, child)?;
        // SAFETY: copied out at once; see policy::current_policy.
        let Some(rule) = (unsafe { NAME_RULES.get(&walk.name_key).copied() }) else {
            return Ok(None);
        };
        let want = if i as u32 + 1 == level {
            walk.want
        } else {
            walk.want & !RULE_ON_THE_WAY
        };
        if rule.flags & want != 0 {
            return Ok(Some(rule.rule_id));
        }
        walk.listed |= rule.flags & walk.allow;
        if rule.flags & RULE_PREFIX == 0 {
            return Ok(None);
        }
        walk.name_key.dev = CHAIN_DEV;
        walk.name_key.parent_ino = rule.next_node as u64;
    }
    Ok(None)
}

/// 1 when `dentry` is a repository or makes one of the directory holding it, else 0: a `.git`
/// (or another tool's, `REPOSITORY_DIRS`) in any case, since on a case-insensitive directory
/// (ext4's and f2fs's casefold, vfat) git's lookup of `.git` finds `.GIT` too; a longer name
/// ending in `.git` (a bare repository by git's convention); or, for the entry changed (level
/// 0), a bare repository's `HEAD`.
///
/// Computed with no branch but the one on the length: each compare in the loop's callback would
/// split the states the 6.12 verifier walks, and ten of them took `path_link` past its limit.
#[inline(always)]
fn names_a_repository(dentry: *const u8, level: u32) -> Result<u32, i32> {
    let off = offsets();
    let len: u32 = read_at(dentry, off.dentry_name_len)?;
    let name = read_ptr(dentry, off.dentry_name_ptr)?;
    if len > 4 {
        let tail: u32 = read_at(name.wrapping_add(len as usize - 4), 0)?;
        return Ok(opaque(differs((tail | FOLD_CASE) ^ BARE_REPOSITORY_SUFFIX_WORD) >> 31) ^ 1);
    }
    // Four bytes are there to read: a name this short is in the dentry's inline array.
    let word: u32 = read_at(name, 0)?;
    let folded = word | FOLD_CASE;
    // Each difference is zero exactly when its name matches; its top bit, after `d | -d`, is
    // set exactly when it does not.
    let mut mismatch = differs((len ^ 4) | (word ^ BARE_REPOSITORY_HEAD_WORD) | level);
    for (dir_len, dir_word) in REPOSITORY_DIR_WORDS {
        mismatch &= differs((len ^ dir_len) | (folded ^ dir_word));
    }
    Ok(opaque(mismatch >> 31) ^ 1)
}

/// `d | -d`, whose top bit is set exactly when `d` is not zero; passed through memory so that
/// LLVM does not turn it back into a compare, which the BPF backend emits as a branch.
#[inline(always)]
fn differs(d: u32) -> u32 {
    opaque(d | d.wrapping_neg())
}

/// `x`, as a value LLVM cannot see into.
#[inline(always)]
fn opaque(x: u32) -> u32 {
    let slot = x;
    // SAFETY: a volatile read of a live, aligned local.
    unsafe { core::ptr::read_volatile(&slot) }
}

/// Puts the name of `dentry` into `key`: its first `NAME_KEY_PREFIX` bytes, zero padded, copied
/// with one fixed-size string read (no loop, and no variable length for the verifier to bound).
#[inline(always)]
pub fn fill_name(off: &KernelOffsets, key: &mut NameKey, dentry: *const u8) -> Result<(), i32> {
    let len: u32 = read_at(dentry, off.dentry_name_len)?;
    let name = read_ptr(dentry, off.dentry_name_ptr)?;
    if len as usize > MAX_NAME_LEN {
        return Err(-1);
    }
    key.name_len = len;
    let words = key.name.as_mut_ptr() as *mut u64;
    for i in 0..NAME_KEY_LEN / 8 {
        // SAFETY: NAME_KEY_LEN is a multiple of 8, so every word is inside key.name; volatile
        // keeps these six stores from becoming a memset loop the verifier walks byte by byte.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: the helper writes at most NAME_KEY_LEN bytes into key.name (NUL included) through
    // the kernel's fault-tolerant accessor. Dentry names are NUL-terminated, so a name shorter
    // than NAME_KEY_PREFIX is copied whole and the zeroed rest stays zero.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            key.name.as_mut_ptr() as *mut c_void,
            NAME_KEY_LEN as u32,
            name as *const c_void,
        )
    };
    if ret < 0 {
        return Err(ret as i32);
    }
    Ok(())
}
