//! The inode-identity check: is the opened inode, or any directory above it on the same
//! filesystem, denied? Walking `d_parent` gives the same answer whatever path alias (symlink,
//! hardlink, bind mount, /proc/self/root, `..`) the task used to reach the file.

use aya_ebpf::{cty::c_void, helpers::generated::bpf_probe_read_kernel};
use sandbox_common::{
    InodeKey, KernelOffsets, NameKey, RuleValue, CHAIN_DEV, MAX_CHAIN, MAX_NAME_LEN,
    MAX_WALK_DEPTH, NAME_KEY_LEN, RULE_ID_FAIL_CLOSED, RULE_NAMED_CHILDREN, RULE_PREFIX,
};

use crate::{
    kernel::{read_at, read_ptr},
    maps::{INODE_RULES, NAME_RULES},
    verdict::Decision,
};

/// Canonical identity of the opened file, for the audit event.
#[derive(Clone, Copy, Default)]
pub struct Target {
    pub dev: u32,
    pub ino: u64,
}

const FAIL_CLOSED: Decision = Decision::Deny {
    rule_id: RULE_ID_FAIL_CLOSED,
};

/// Decides an access to `dentry` (on the filesystem whose kernel dev_t is `dev`) under the
/// policy `policy_id`, for the rule bits in `want`.
#[inline(always)]
pub fn check_dentry(
    off: &KernelOffsets,
    policy_id: u32,
    dev: u32,
    start: *const u8,
    want: u32,
) -> Decision {
    let mut dentry = start;
    // The dentries walked so far, nearest first: below[0] is the child of `dentry` on the path.
    let mut below: [*const u8; MAX_CHAIN] = [core::ptr::null(); MAX_CHAIN];
    for _ in 0..MAX_WALK_DEPTH {
        let Ok(inode) = read_ptr(dentry, off.dentry_inode) else {
            return FAIL_CLOSED;
        };
        let Ok(ino) = read_at::<u64>(inode, off.inode_ino) else {
            return FAIL_CLOSED;
        };
        let key = InodeKey {
            policy_id,
            dev,
            ino,
        };
        if let Some(rule) = lookup_inode(&key) {
            if rule.flags & want != 0 {
                return Decision::Deny {
                    rule_id: rule.rule_id,
                };
            }
            if rule.flags & RULE_NAMED_CHILDREN != 0 {
                match check_names(off, policy_id, dev, ino, &below, want) {
                    Ok(Some(rule_id)) => return Decision::Deny { rule_id },
                    Ok(None) => {}
                    Err(_) => return FAIL_CLOSED,
                }
            }
        }
        let Ok(parent) = read_ptr(dentry, off.dentry_parent) else {
            return FAIL_CLOSED;
        };
        if parent == dentry {
            // The filesystem root is its own parent: the walk is complete.
            return Decision::Allow;
        }
        below = [dentry, below[0], below[1], below[2]];
        dentry = parent;
    }
    // Deeper than we can walk: a denied ancestor could be out of sight.
    FAIL_CLOSED
}

/// Name rules below the directory `parent_ino`: the name of the child on the path, then, while
/// the match is a `RULE_PREFIX` of a path that did not exist at attach time, the names further
/// down. Returns the id of a rule that denies `want`.
#[inline(always)]
fn check_names(
    off: &KernelOffsets,
    policy_id: u32,
    dev: u32,
    parent_ino: u64,
    below: &[*const u8; MAX_CHAIN],
    want: u32,
) -> Result<Option<u32>, i32> {
    let mut key_dev = dev;
    let mut key_parent = parent_ino;
    for child in below {
        if child.is_null() {
            return Ok(None);
        }
        let key = dentry_name_key(off, policy_id, key_dev, key_parent, *child)?;
        let Some(rule) = lookup_name(&key) else {
            return Ok(None);
        };
        if rule.flags & want != 0 {
            return Ok(Some(rule.rule_id));
        }
        if rule.flags & RULE_PREFIX == 0 {
            return Ok(None);
        }
        key_dev = CHAIN_DEV;
        key_parent = rule.next_node as u64;
    }
    Ok(None)
}

#[inline(always)]
fn lookup_inode(key: &InodeKey) -> Option<RuleValue> {
    // SAFETY: copied out at once; see policy::current_policy.
    unsafe { INODE_RULES.get(key).copied() }
}

#[inline(always)]
fn lookup_name(key: &NameKey) -> Option<RuleValue> {
    // SAFETY: copied out at once; see policy::current_policy.
    unsafe { NAME_RULES.get(key).copied() }
}

/// The `NameKey` for `dentry` under its parent `parent_ino`: its name copied inline, cut at
/// `NAME_KEY_LEN` bytes (a single bounded copy: no loop for the verifier to unroll).
#[inline(always)]
fn dentry_name_key(
    off: &KernelOffsets,
    policy_id: u32,
    dev: u32,
    parent_ino: u64,
    dentry: *const u8,
) -> Result<NameKey, i32> {
    let len: u32 = read_at(dentry, off.dentry_name_len)?;
    let name = read_ptr(dentry, off.dentry_name_ptr)?;
    if len as usize > MAX_NAME_LEN {
        return Err(-1);
    }
    let mut key = NameKey {
        policy_id,
        dev,
        parent_ino,
        name_len: len,
        _pad: 0,
        name: [0; NAME_KEY_LEN],
    };
    let n = if (len as usize) < NAME_KEY_LEN {
        len
    } else {
        NAME_KEY_LEN as u32
    };
    // SAFETY: key.name has NAME_KEY_LEN bytes and n <= NAME_KEY_LEN; the helper copies through
    // the kernel's fault-tolerant accessor and reports a bad source address as an error.
    let ret = unsafe {
        bpf_probe_read_kernel(
            key.name.as_mut_ptr() as *mut c_void,
            n,
            name as *const c_void,
        )
    };
    if ret < 0 {
        return Err(ret as i32);
    }
    Ok(key)
}
