//! Audit events sent from the kernel through the `EVENTS` ring buffer.

pub const TASK_COMM_LEN: usize = 16;

pub const HOOK_FILE_OPEN: u32 = 1;
pub const HOOK_BPRM_CHECK: u32 = 2;
pub const HOOK_MMAP_FILE: u32 = 3;
pub const HOOK_FILE_MPROTECT: u32 = 4;

pub const ACTION_DENY: u32 = 1;
/// Audit mode: the access was allowed but would have been denied.
pub const ACTION_AUDIT: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time_ns: u64,
    pub cgroup_id: u64,
    pub ino: u64,
    /// Inode of the current task's executable (`mm->exe_file`); 0 for kernel threads or when
    /// it could not be read.
    pub exe_ino: u64,
    pub dev: u32,
    pub exe_dev: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub policy_id: u32,
    pub rule_id: u32,
    pub hook: u32,
    pub action: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no padding (8-byte fields first, then an even number of 4-byte fields,
// then bytes).
unsafe impl aya::Pod for AuditEvent {}
