//! The kernel side as the daemon sees it: loading the embedded programs (`loader`), the policy
//! maps (`policy_maps`), and the kernel support checks shared by `doctor` and `daemon`
//! (`support`).

pub mod loader;
pub mod policy_maps;
pub mod support;

/// The eBPF object built by build.rs from the sandbox-ebpf crate.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sandbox-ebpf"));

/// LSM hooks and the program names implementing them.
pub const PROGRAMS: &[(&str, &str)] = &[
    ("file_open", "file_open"),
    ("bprm_check_security", "bprm_check_security"),
    ("mmap_file", "mmap_file"),
    ("file_mprotect", "file_mprotect"),
    ("file_receive", "file_receive"),
    ("bpf", "bpf"),
    ("inode_permission", "inode_permission"),
    ("task_kill", "task_kill"),
    ("ptrace_access_check", "ptrace_access_check"),
    ("sb_mount", "sb_mount"),
    ("move_mount", "move_mount"),
    ("socket_create", "socket_create"),
    ("socket_connect", "socket_connect"),
    ("socket_sendmsg", "socket_sendmsg"),
    ("unix_stream_connect", "unix_stream_connect"),
    ("unix_may_send", "unix_may_send"),
    ("path_truncate", "path_truncate"),
    ("path_unlink", "path_unlink"),
    ("path_rmdir", "path_rmdir"),
    ("path_mkdir", "path_mkdir"),
    ("path_mknod", "path_mknod"),
    ("path_symlink", "path_symlink"),
    ("path_link", "path_link"),
    ("path_rename", "path_rename"),
    ("task_alloc", "task_alloc"),
    ("task_free", "task_free"),
];
