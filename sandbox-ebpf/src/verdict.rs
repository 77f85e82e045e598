//! What a hook decided, and how that becomes the hook's return value.

use sandbox_common::{CgroupPolicy, ACTION_AUDIT, ACTION_DENY, EPERM, MODE_AUDIT};

use crate::{audit, target::Target};

pub enum Decision {
    Allow,
    Deny { rule_id: u32 },
}

/// The hook's return value for a decision under `policy`, and the audit action to record.
#[inline(always)]
pub fn apply(policy: &CgroupPolicy, decision: &Decision) -> (i32, Option<u32>) {
    match decision {
        Decision::Allow => (0, None),
        Decision::Deny { .. } if policy.mode == MODE_AUDIT => (0, Some(ACTION_AUDIT)),
        Decision::Deny { .. } => (-EPERM, Some(ACTION_DENY)),
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
