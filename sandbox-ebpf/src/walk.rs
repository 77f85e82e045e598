//! The inode-identity check: is the opened inode, or any directory above it on the same
//! filesystem, denied? Walking `d_parent` gives the same answer whatever path alias (symlink,
//! hardlink, bind mount, /proc/self/root, `..`) the task used to reach the file.

use aya_ebpf::{cty::c_void, helpers::generated::bpf_probe_read_kernel};
use sandbox_common::{
    fnv1a_step, InodeKey, KernelOffsets, NameKey, RuleValue, FNV_OFFSET, MAX_NAME_LEN,
    MAX_WALK_DEPTH, RULE_ID_FAIL_CLOSED, RULE_NAMED_CHILDREN,
};

use crate::{
    kernel::{read_at, read_ptr},
    maps::{INODE_RULES, NAME_BUF, NAME_RULES},
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
    let mut child: *const u8 = core::ptr::null();
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
            if rule.flags & RULE_NAMED_CHILDREN != 0 && !child.is_null() {
                let Ok(name_hash) = dentry_name_hash(off, child) else {
                    return FAIL_CLOSED;
                };
                let key = NameKey {
                    policy_id,
                    dev,
                    parent_ino: ino,
                    name_hash,
                };
                if let Some(rule) = lookup_name(&key) {
                    if rule.flags & want != 0 {
                        return Decision::Deny {
                            rule_id: rule.rule_id,
                        };
                    }
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
        child = dentry;
        dentry = parent;
    }
    // Deeper than we can walk: a denied ancestor could be out of sight.
    FAIL_CLOSED
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

/// FNV-1a of the dentry's name, the same function the daemon uses for `NameKey`s.
#[inline(always)]
fn dentry_name_hash(off: &KernelOffsets, dentry: *const u8) -> Result<u64, i32> {
    let len: u32 = read_at(dentry, off.dentry_name_len)?;
    let name = read_ptr(dentry, off.dentry_name_ptr)?;
    if len as usize > MAX_NAME_LEN {
        return Err(-1);
    }
    // Mask again so the verifier sees the bound on the register it checks.
    let len = (len as usize) & MAX_NAME_LEN;
    let buf = NAME_BUF.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: buf points at this CPU's NAME_BUF slot (MAX_NAME_LEN + 1 bytes, more than len);
    // the helper copies len bytes from kernel memory into it, faulting into an error.
    let ret = unsafe {
        bpf_probe_read_kernel(
            buf as *mut c_void,
            len as u32,
            name as *const c_void,
        )
    };
    if ret < 0 {
        return Err(ret as i32);
    }
    // SAFETY: the slot is this CPU's alone for the duration of the program.
    let bytes = unsafe { &(*buf).bytes };
    let mut hash = FNV_OFFSET;
    for (i, b) in bytes.iter().enumerate().take(MAX_NAME_LEN) {
        if i >= len {
            break;
        }
        hash = fnv1a_step(hash, *b);
    }
    Ok(hash)
}
