//! Audit events sent from the kernel through the `EVENTS` ring buffer.

pub const TASK_COMM_LEN: usize = 16;

pub const HOOK_FILE_OPEN: u32 = 1;
pub const HOOK_BPRM_CHECK: u32 = 2;
pub const HOOK_MMAP_FILE: u32 = 3;
pub const HOOK_FILE_MPROTECT: u32 = 4;
pub const HOOK_BPF: u32 = 5;
// 6 was inode_permission, replaced by the hooks that change files (see `kernel_fs`).
pub const HOOK_TASK_KILL: u32 = 7;
pub const HOOK_PTRACE: u32 = 8;
pub const HOOK_SB_MOUNT: u32 = 9;
pub const HOOK_MOVE_MOUNT: u32 = 10;
pub const HOOK_FILE_RECEIVE: u32 = 11;
pub const HOOK_SOCKET_CONNECT: u32 = 12;
pub const HOOK_SOCKET_SENDMSG: u32 = 13;
pub const HOOK_UNIX_STREAM_CONNECT: u32 = 14;
pub const HOOK_UNIX_MAY_SEND: u32 = 15;
pub const HOOK_SOCKET_CREATE: u32 = 16;
pub const HOOK_PATH_TRUNCATE: u32 = 17;
pub const HOOK_PATH_UNLINK: u32 = 18;
pub const HOOK_PATH_RMDIR: u32 = 19;
pub const HOOK_PATH_MKDIR: u32 = 20;
pub const HOOK_PATH_MKNOD: u32 = 21;
pub const HOOK_PATH_SYMLINK: u32 = 22;
pub const HOOK_PATH_LINK: u32 = 23;
pub const HOOK_PATH_RENAME: u32 = 24;
pub const HOOK_TASK_ALLOC: u32 = 25;
pub const HOOK_CAPABLE: u32 = 26;
pub const HOOK_FILE_IOCTL: u32 = 27;
pub const HOOK_FILE_IOCTL_COMPAT: u32 = 28;
pub const HOOK_KERNEL_MODULE_REQUEST: u32 = 29;
pub const HOOK_KERNEL_LOAD_DATA: u32 = 30;
pub const HOOK_KERNEL_READ_FILE: u32 = 31;
pub const HOOK_PATH_CHMOD: u32 = 32;
pub const HOOK_PATH_CHOWN: u32 = 33;
pub const HOOK_INODE_SETXATTR: u32 = 34;
pub const HOOK_INODE_REMOVEXATTR: u32 = 35;
pub const HOOK_FILE_TRUNCATE: u32 = 36;
pub const HOOK_INODE_SET_ACL: u32 = 37;
pub const HOOK_INODE_REMOVE_ACL: u32 = 38;
pub const HOOK_KEY_PERMISSION: u32 = 39;
pub const HOOK_KEY_ALLOC: u32 = 40;
pub const HOOK_INODE_SETATTR: u32 = 41;
pub const HOOK_TASK_FIX_SETUID: u32 = 42;
pub const HOOK_TASK_FIX_SETGID: u32 = 43;
pub const HOOK_TASK_FIX_SETGROUPS: u32 = 44;
pub const HOOK_URING_OVERRIDE_CREDS: u32 = 45;
pub const HOOK_TASK_SETNICE: u32 = 46;
pub const HOOK_TASK_SETIOPRIO: u32 = 47;
pub const HOOK_TASK_SETSCHEDULER: u32 = 48;
pub const HOOK_TASK_SETRLIMIT: u32 = 49;
pub const HOOK_FILE_FCNTL: u32 = 50;
pub const HOOK_SOCKET_SETSOCKOPT: u32 = 51;
pub const HOOK_SOCKET_BIND: u32 = 52;

/// The LSM hook behind a `HOOK_*` number, as audit records name it.
pub fn hook_name(hook: u32) -> &'static str {
    match hook {
        HOOK_FILE_OPEN => "file_open",
        HOOK_BPRM_CHECK => "bprm_check_security",
        HOOK_MMAP_FILE => "mmap_file",
        HOOK_FILE_MPROTECT => "file_mprotect",
        HOOK_FILE_RECEIVE => "file_receive",
        HOOK_BPF => "bpf",
        HOOK_TASK_KILL => "task_kill",
        HOOK_PTRACE => "ptrace_access_check",
        HOOK_SB_MOUNT => "sb_mount",
        HOOK_MOVE_MOUNT => "move_mount",
        HOOK_SOCKET_CREATE => "socket_create",
        HOOK_SOCKET_CONNECT => "socket_connect",
        HOOK_SOCKET_SENDMSG => "socket_sendmsg",
        HOOK_UNIX_STREAM_CONNECT => "unix_stream_connect",
        HOOK_UNIX_MAY_SEND => "unix_may_send",
        HOOK_PATH_TRUNCATE => "path_truncate",
        HOOK_PATH_UNLINK => "path_unlink",
        HOOK_PATH_RMDIR => "path_rmdir",
        HOOK_PATH_MKDIR => "path_mkdir",
        HOOK_PATH_MKNOD => "path_mknod",
        HOOK_PATH_SYMLINK => "path_symlink",
        HOOK_PATH_LINK => "path_link",
        HOOK_PATH_RENAME => "path_rename",
        HOOK_TASK_ALLOC => "task_alloc",
        HOOK_CAPABLE => "capable",
        HOOK_FILE_IOCTL => "file_ioctl",
        HOOK_FILE_IOCTL_COMPAT => "file_ioctl_compat",
        HOOK_KERNEL_MODULE_REQUEST => "kernel_module_request",
        HOOK_KERNEL_LOAD_DATA => "kernel_load_data",
        HOOK_KERNEL_READ_FILE => "kernel_read_file",
        HOOK_PATH_CHMOD => "path_chmod",
        HOOK_PATH_CHOWN => "path_chown",
        HOOK_INODE_SETXATTR => "inode_setxattr",
        HOOK_INODE_REMOVEXATTR => "inode_removexattr",
        HOOK_FILE_TRUNCATE => "file_truncate",
        HOOK_INODE_SET_ACL => "inode_set_acl",
        HOOK_INODE_REMOVE_ACL => "inode_remove_acl",
        HOOK_KEY_PERMISSION => "key_permission",
        HOOK_KEY_ALLOC => "key_alloc",
        HOOK_INODE_SETATTR => "inode_setattr",
        HOOK_TASK_FIX_SETUID => "task_fix_setuid",
        HOOK_TASK_FIX_SETGID => "task_fix_setgid",
        HOOK_TASK_FIX_SETGROUPS => "task_fix_setgroups",
        HOOK_URING_OVERRIDE_CREDS => "uring_override_creds",
        HOOK_TASK_SETNICE => "task_setnice",
        HOOK_TASK_SETIOPRIO => "task_setioprio",
        HOOK_TASK_SETSCHEDULER => "task_setscheduler",
        HOOK_TASK_SETRLIMIT => "task_setrlimit",
        HOOK_FILE_FCNTL => "file_fcntl",
        HOOK_SOCKET_SETSOCKOPT => "socket_setsockopt",
        HOOK_SOCKET_BIND => "socket_bind",
        _ => "unknown",
    }
}

pub const ACTION_DENY: u32 = 1;
/// Audit mode: the access was allowed but would have been denied.
pub const ACTION_AUDIT: u32 = 2;

/// What an audit event is about: `AuditEvent.target_kind`. Each kind says which of the event's
/// fields carry the target, so no field means two things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TargetKind {
    /// Nothing beyond the hook (a mount, a module request, an unreadable file).
    None = 0,
    /// A file: `dev`, `ino` and `path`.
    File = 1,
    /// A connect or send: `net`.
    Destination = 2,
    /// Another process: `value` is its tgid.
    Task = 3,
    /// A capability: `value` is its number.
    Capability = 4,
    /// A `bpf()` call: `value` is the command.
    BpfCommand = 5,
    /// An `ioctl`: `value` is the request.
    Ioctl = 6,
    /// Kernel code or data being loaded: `value` is the `kernel_load_data_id` /
    /// `kernel_read_file_id`.
    KernelLoad = 7,
    /// A socket being created: `value` is family << 32 | type << 16 | protocol.
    Socket = 8,
    /// A key of the kernel keyrings: `value` is the `enum key_need_perm` asked for.
    Key = 9,
    /// An abstract Unix socket (bound to a name, with no file): the name's bytes after its
    /// leading NUL are in `path.names`, read as one buffer, and `value` is their count.
    AbstractSocket = 10,
}

impl TargetKind {
    /// Every kind, in number order (`from_raw` and its test go through this list).
    pub const ALL: [TargetKind; 11] = [
        TargetKind::None,
        TargetKind::File,
        TargetKind::Destination,
        TargetKind::Task,
        TargetKind::Capability,
        TargetKind::BpfCommand,
        TargetKind::Ioctl,
        TargetKind::KernelLoad,
        TargetKind::Socket,
        TargetKind::Key,
        TargetKind::AbstractSocket,
    ];

    /// The kind numbered `raw`; None for a number no kind has (a newer kernel object).
    pub fn from_raw(raw: u32) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| *k as u32 == raw)
    }
}

/// `AuditEvent.value` of a `TargetKind::Socket` target.
pub const fn socket_value(family: u32, ty: u32, protocol: u32) -> u64 {
    ((family as u64) << 32) | ((ty as u64 & 0xffff) << 16) | (protocol as u64 & 0xffff)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time_ns: u64,
    pub cgroup_id: u64,
    /// The file's inode (`TargetKind::File`), else 0.
    pub ino: u64,
    /// Inode of the current task's executable (`mm->exe_file`); 0 for kernel threads or when
    /// it could not be read.
    pub exe_ino: u64,
    /// The target of a non-file kind: see `TargetKind`.
    pub value: u64,
    /// The file's filesystem (`TargetKind::File`), else 0.
    pub dev: u32,
    pub exe_dev: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub policy_id: u32,
    pub rule_id: u32,
    pub hook: u32,
    pub action: u32,
    /// A `TargetKind` number.
    pub target_kind: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// The destination of a connect or send (family 0 for every other event).
    pub net: crate::NetDest,
    /// The target's path as the kernel sees it (file events).
    pub path: EventPath,
    /// Up to the 8-byte alignment the u64 fields give the struct, so no byte is implicit.
    pub _pad: u32,
}

// Both sides compile this crate: the layout each assumes is checked at build time. The fields'
// sizes add up to the struct's size, so there is no padding the compiler adds on its own.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(AuditEvent, value) == 32);
    assert!(offset_of!(AuditEvent, dev) == 40);
    assert!(offset_of!(AuditEvent, target_kind) == 76);
    assert!(offset_of!(AuditEvent, comm) == 80);
    assert!(offset_of!(AuditEvent, net) == 96);
    assert!(offset_of!(AuditEvent, path) == 116);
    assert!(offset_of!(AuditEvent, _pad) == 380);
    assert!(size_of::<crate::NetDest>() == 20);
    assert!(size_of::<EventPath>() == PATH_NAMES * PATH_NAME_LEN + 8);
    assert!(
        size_of::<AuditEvent>()
            == 5 * size_of::<u64>()
                + 10 * size_of::<u32>()
                + TASK_COMM_LEN
                + size_of::<crate::NetDest>()
                + size_of::<EventPath>()
                + size_of::<u32>()
    );
    assert!(size_of::<AuditEvent>() == AUDIT_EVENT_SIZE);
};

/// The record's size, which both crates assert.
pub const AUDIT_EVENT_SIZE: usize = 384;

/// Names filled into an `EventPath`, and the bytes kept of each (NUL included).
pub const PATH_NAMES: usize = 8;
pub const PATH_NAME_LEN: usize = 32;

/// The names of the target and of the directories above it, nearest first, read from the
/// kernel's own dentries: the path the file really has, whatever alias the task used. Within
/// one filesystem: the daemon prefixes its mount point.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPath {
    /// NUL-terminated names, truncated to `PATH_NAME_LEN - 1` bytes; only `depth` are valid.
    pub names: [[u8; PATH_NAME_LEN]; PATH_NAMES],
    pub depth: u32,
    /// 1 when the names reach the filesystem's root, 0 when the path is deeper than
    /// `PATH_NAMES` (or could not be read to the top).
    pub complete: u32,
}

impl Default for EventPath {
    fn default() -> Self {
        Self {
            names: [[0; PATH_NAME_LEN]; PATH_NAMES],
            depth: 0,
            complete: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, no padding: the assertions above check every field's bytes add up to
// the struct's size.
unsafe impl aya::Pod for AuditEvent {}

/// The audit rate limit, per policy generation: a token bucket refilled at `per_second` up to
/// `burst` events. Set by the daemon at load; `per_second == 0` means no limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditRateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Name of the rate-limit global in the eBPF object.
pub const GLOBAL_AUDIT_RATE_LIMIT: &str = "AUDIT_RATE_LIMIT";
/// Highest `per_second` the token arithmetic allows without overflow.
pub const MAX_AUDIT_RATE: u32 = 1_000_000;
/// One event's worth of tokens: tokens are counted in billionths, so refilling needs no division.
pub const TOKEN: u64 = 1_000_000_000;

/// Value of `AUDIT_RATE`, keyed by policy id: the token bucket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditRate {
    pub tokens: u64,
    pub last_ns: u64,
}

pub const MAP_AUDIT_RATE: &str = "AUDIT_RATE";
/// Per-CPU count of the events each policy's bucket suppressed, keyed by policy id: exact
/// without atomics (the BPF target has none in Rust), summed by the daemon, which reports them
/// as "N events suppressed" records.
pub const MAP_AUDIT_SUPPRESSED: &str = "AUDIT_SUPPRESSED";

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, only u32 (an even number) or only u64 fields: no padding.
unsafe impl aya::Pod for AuditRateLimit {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for AuditRate {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_kind_reads_back_from_its_number() {
        for (i, kind) in TargetKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as u32, i as u32, "ALL is in number order");
            assert_eq!(TargetKind::from_raw(kind as u32), Some(kind));
        }
        assert_eq!(TargetKind::from_raw(TargetKind::ALL.len() as u32), None);
    }
}
