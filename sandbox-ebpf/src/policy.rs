//! Which policy, if any, confines the current task.

use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use sandbox_common::{CgroupPolicy, MAX_CGROUP_DEPTH};

use crate::maps::CGROUP_POLICY;

/// The policy attached to the current task's cgroup or to one of its ancestors. The daemon
/// refuses nested attachments, so the first attached cgroup found on the way down from the root
/// is the only one.
#[inline(always)]
pub fn current_policy() -> Option<CgroupPolicy> {
    // Level 0 is the root cgroup; the helper returns 0 past the task's own level.
    for level in 0..MAX_CGROUP_DEPTH {
        // SAFETY: a plain helper call with a scalar argument.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 {
            return None;
        }
        // SAFETY: the value is copied out at once; a concurrent update can only make us see
        // the old or the new policy reference, both valid.
        if let Some(p) = unsafe { CGROUP_POLICY.get(&id) } {
            return Some(*p);
        }
    }
    None
}
