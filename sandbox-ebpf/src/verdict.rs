//! What a hook decided, and how that becomes the hook's return value.

use sandbox_common::{CgroupPolicy, ACTION_AUDIT, ACTION_DENY, EPERM, MODE_AUDIT};

use crate::{audit, target::Target};

pub enum Decision {
    Allow,
    Deny { rule_id: u32 },
}

/// What a denial returns. Read through `denied`, where the compiler cannot see it: with the
/// value in sight LLVM may compute "0 or -EPERM" as `-(flag & 1)`, whose range the verifier
/// does not follow through the negation (6.12 does not), and it refuses a program whose
/// return value it cannot bound to [-4095, 0]. Read-only data, whose value the verifier knows.
static DENIED: i32 = -EPERM;

#[inline(always)]
fn denied() -> i32 {
    // SAFETY: a plain read of an immutable static.
    unsafe { core::ptr::read_volatile(&DENIED) }
}

/// The hook's return value for a decision under `policy`, and the audit action to record.
#[inline(always)]
pub fn apply(policy: &CgroupPolicy, decision: &Decision) -> (i32, Option<u32>) {
    match decision {
        Decision::Allow => (0, None),
        Decision::Deny { .. } if policy.mode == MODE_AUDIT => (0, Some(ACTION_AUDIT)),
        Decision::Deny { .. } => (denied(), Some(ACTION_DENY)),
    }
}

/// Applies `decision` of `hook` under `policy` and records a denial (in audit mode: what would
/// have been denied) naming `target`: the tail every file-like hook shares.
#[inline(always)]
pub fn enforce(policy: &CgroupPolicy, hook: u32, decision: Decision, target: &Target) -> i32 {
    let (ret, action) = apply(policy, &decision);
    if let (Some(action), Decision::Deny { rule_id }) = (action, decision) {
        audit::emit(policy, hook, action, rule_id, target);
    }
    ret
}
