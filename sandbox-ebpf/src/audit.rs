//! Audit events: one ring buffer, and an exact per-CPU count of what could not be sent.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
};
use sandbox_common::{AuditEvent, CgroupPolicy};

use crate::{
    maps::{EVENTS, EVENT_DROPS},
    task::current_exe,
    walk::Target,
};

#[inline(always)]
pub fn emit(policy: &CgroupPolicy, hook: u32, action: u32, rule_id: u32, target: &Target) {
    let Some(mut entry) = EVENTS.reserve::<AuditEvent>(0) else {
        count_drop();
        return;
    };
    let exe = current_exe().unwrap_or_default();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: plain helper calls without pointer arguments.
    let (time_ns, cgroup_id) = unsafe { (bpf_ktime_get_boot_ns(), bpf_get_current_cgroup_id()) };
    entry.write(AuditEvent {
        time_ns,
        cgroup_id,
        ino: target.ino,
        exe_ino: exe.ino,
        dev: target.dev,
        exe_dev: exe.dev,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        uid: bpf_get_current_uid_gid() as u32,
        policy_id: policy.policy_id,
        rule_id,
        hook,
        action,
        comm: bpf_get_current_comm().unwrap_or_default(),
    });
    entry.submit(0);
}

#[inline(always)]
fn count_drop() {
    if let Some(n) = EVENT_DROPS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, and BPF programs do not migrate CPUs while running.
        unsafe { *n += 1 };
    }
}
