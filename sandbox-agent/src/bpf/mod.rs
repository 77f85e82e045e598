//! The kernel side as the daemon sees it: loading the embedded programs (`loader`), the policy
//! maps (`policy_maps`, written in batches: `batch`), and the kernel support checks shared by `doctor` and `daemon`
//! (`support`).

mod batch;
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
    ("path_chmod", "path_chmod"),
    ("path_chown", "path_chown"),
    ("inode_setattr", "inode_setattr"),
    ("inode_setxattr", "inode_setxattr"),
    ("inode_removexattr", "inode_removexattr"),
    ("task_alloc", "task_alloc"),
    ("task_free", "task_free"),
    ("d_instantiate", "d_instantiate"),
    ("capable", "capable"),
    ("kernel_module_request", "kernel_module_request"),
    ("kernel_load_data", "kernel_load_data"),
    ("kernel_read_file", "kernel_read_file"),
    ("file_ioctl", "file_ioctl"),
    ("task_fix_setuid", "task_fix_setuid"),
    ("task_fix_setgid", "task_fix_setgid"),
    ("task_fix_setgroups", "task_fix_setgroups"),
    ("uring_override_creds", "uring_override_creds"),
    ("task_setnice", "task_setnice"),
    ("task_setioprio", "task_setioprio"),
    ("task_setscheduler", "task_setscheduler"),
    ("task_setrlimit", "task_setrlimit"),
    ("file_fcntl", "file_fcntl"),
    ("socket_setsockopt", "socket_setsockopt"),
    ("socket_bind", "socket_bind"),
];

/// Where a program that watches a kernel function (not an LSM hook) runs: on its entry or on
/// its exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracing {
    Entry,
    Exit,
}

/// Kernel functions watched, and the programs watching them: `capable_wrt_inode_uidgid`, so
/// `capable` knows whose file a file's override is for, and `__scm_send`, so it knows SETUID
/// and SETGID asked there are for ids a message claims (sandbox-ebpf's `other_users`), and
/// `devpts_pty_new`, so `file_open` knows which pseudo-terminals a sandbox made
/// (`terminals`), and `inode_init_owner`, so it knows which entries of a shared directory
/// (`root_files`). Their
/// links are pinned as `<program>`, beside the hooks'.
pub const TRACING_PROGRAMS: &[(&str, Tracing, &str)] = &[
    (
        "capable_wrt_inode_uidgid",
        Tracing::Entry,
        "file_capability_asked",
    ),
    (
        "capable_wrt_inode_uidgid",
        Tracing::Exit,
        "file_capability_answered",
    ),
    ("__scm_send", Tracing::Entry, "credentials_claimed"),
    ("__scm_send", Tracing::Exit, "credentials_sent"),
    ("devpts_pty_new", Tracing::Entry, "pty_made"),
    ("inode_init_owner", Tracing::Entry, "inode_made"),
];

/// Hooks only newer kernels have, loaded and attached where the running kernel's BTF has them
/// (`bpf_lsm_<hook>`). Where a hook is missing, the kernel takes the path it would guard through
/// a hook of `PROGRAMS` instead: 32-bit ioctls go through `file_ioctl` before Linux 6.8,
/// open(O_TRUNC) through `path_truncate` and POSIX ACLs through `inode_setxattr` before 6.2.
/// A kernel built without keyrings (`CONFIG_KEYS`) has no key hooks and no keys to guard.
pub const PROGRAMS_IF_PRESENT: &[(&str, &str)] = &[
    ("key_alloc", "key_alloc"),
    ("key_permission", "key_permission"),
    ("file_ioctl_compat", "file_ioctl_compat"),
    ("file_truncate", "file_truncate"),
    ("inode_set_acl", "inode_set_acl"),
    ("inode_remove_acl", "inode_remove_acl"),
];

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol};

    /// Every `#[lsm]` program in the embedded object is attached by the loader, and every
    /// program the loader names exists: a hook left out of `PROGRAMS` would never run.
    #[test]
    fn the_program_tables_name_exactly_the_lsm_programs_of_the_object() {
        let elf = object::File::parse(super::EBPF_OBJECT).unwrap();
        let mut in_object: Vec<String> = elf
            .sections()
            .filter_map(|s| s.name().ok()?.strip_prefix("lsm/").map(str::to_string))
            .collect();
        in_object.sort();
        let mut listed: Vec<String> = super::PROGRAMS
            .iter()
            .chain(super::PROGRAMS_IF_PRESENT)
            .map(|(_, program)| program.to_string())
            .collect();
        listed.sort();
        assert!(!in_object.is_empty(), "no lsm/ section in the object");
        assert_eq!(in_object, listed, "PROGRAMS and the eBPF object disagree");
        for (hook, program) in super::PROGRAMS.iter().chain(super::PROGRAMS_IF_PRESENT) {
            assert_eq!(
                hook, program,
                "a program is attached to the hook it is named for"
            );
        }
    }

    /// The same for the programs that watch kernel functions: each section names the function
    /// its table row attaches to, and the row says entry or exit as the section does.
    #[test]
    fn the_tracing_table_names_exactly_the_fentry_and_fexit_programs_of_the_object() {
        let elf = object::File::parse(super::EBPF_OBJECT).unwrap();
        let mut in_object: Vec<String> = elf
            .sections()
            .filter_map(|s| {
                let name = s.name().ok()?;
                (name.starts_with("fentry/") || name.starts_with("fexit/"))
                    .then(|| name.to_string())
            })
            .collect();
        in_object.sort();
        let mut listed: Vec<String> = super::TRACING_PROGRAMS
            .iter()
            .map(|(function, at, _)| match at {
                super::Tracing::Entry => format!("fentry/{function}"),
                super::Tracing::Exit => format!("fexit/{function}"),
            })
            .collect();
        listed.sort();
        assert_eq!(
            in_object, listed,
            "TRACING_PROGRAMS and the eBPF object disagree"
        );
        let symbols: Vec<String> = elf
            .symbols()
            .filter_map(|s| s.name().ok().map(str::to_string))
            .collect();
        for (_, _, program) in super::TRACING_PROGRAMS {
            assert!(symbols.iter().any(|s| s == program), "no program {program}");
        }
    }
}
