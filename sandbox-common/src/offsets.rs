//! Byte offsets of the kernel struct fields the programs read. There is no CO-RE for Rust eBPF:
//! the daemon resolves these from the running kernel's BTF and hands them to the programs as a
//! read-only global, so one binary works on every kernel.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
/// Offsets are u16 (struct fields sit far below 64 KiB): the programs copy this struct onto
/// their 512-byte stacks, and the inode walk keeps one more copy in its state.
pub struct KernelOffsets {
    /// `struct file` -> `f_path.dentry`.
    pub file_dentry: u16,
    /// `struct file` -> `f_inode`.
    pub file_inode: u16,
    /// `struct inode` -> `i_ino`.
    pub inode_ino: u16,
    /// `struct inode` -> `i_sb`.
    pub inode_sb: u16,
    /// `struct super_block` -> `s_dev`.
    pub sb_dev: u16,
    /// `struct dentry` -> `d_parent`.
    pub dentry_parent: u16,
    /// `struct dentry` -> `d_inode`.
    pub dentry_inode: u16,
    /// `struct dentry` -> `d_name.len` (a u32 inside `struct qstr`).
    pub dentry_name_len: u16,
    /// `struct dentry` -> `d_name.name`.
    pub dentry_name_ptr: u16,
    /// `struct linux_binprm` -> `file`.
    pub bprm_file: u16,
    /// `struct inode` -> `i_nlink`.
    pub inode_nlink: u16,
    /// `struct vm_area_struct` -> `vm_file`.
    pub vma_file: u16,
    /// `struct task_struct` -> `mm`.
    pub task_mm: u16,
    /// `struct mm_struct` -> `exe_file`.
    pub mm_exe_file: u16,
    /// `struct task_struct` -> `tgid`.
    pub task_tgid: u16,
    /// `struct task_struct` -> `cgroups` (the css_set).
    pub task_cgroups: u16,
    /// `struct css_set` -> `dfl_cgrp`.
    pub css_set_dfl_cgrp: u16,
    /// `struct cgroup` -> `kn`.
    pub cgroup_kn: u16,
    /// `struct kernfs_node` -> `id` (the cgroup id on cgroup v2).
    pub kernfs_node_id: u16,
    /// `struct super_block` -> `s_magic`.
    pub sb_magic: u16,
    /// `struct dentry` -> `d_flags`.
    pub dentry_flags: u16,
    /// `struct msghdr` -> `msg_name` (a kernel copy of the address in `socket_sendmsg`).
    pub msghdr_name: u16,
    /// `struct msghdr` -> `msg_namelen`.
    pub msghdr_namelen: u16,
    /// `struct socket` -> `sk`.
    pub socket_sk: u16,
    /// `struct unix_sock` -> `path.dentry` (the socket file a bound Unix socket lives at).
    pub unix_sock_dentry: u16,
    /// `struct file` -> `f_mode` (FMODE_WRITE: opened for writing).
    pub file_mode: u16,
    /// `struct dentry` -> `d_sb` (the filesystem of a dentry that has no inode yet).
    pub dentry_sb: u16,
    /// `struct path` -> `dentry` (the path hooks' argument; the struct may be layout-randomized).
    pub path_dentry: u16,
    /// `struct inode` -> `i_mode` (a u16: file type and permission bits).
    pub inode_mode: u16,
    /// `struct inode` -> `i_rdev` (the device a device node stands for).
    pub inode_rdev: u16,
    /// `struct unix_sock` -> `peer` (the other end of a connected socket).
    pub unix_sock_peer: u16,
    /// `struct sock` -> `__sk_common.skc_family` (a u16).
    pub sock_family: u16,
    /// `struct sock` -> `__sk_common.skc_num`: the local port an inet socket is bound to (host
    /// order; 0 before it is bound).
    pub sock_num: u16,
    /// `struct unix_sock` -> `addr` (its `struct unix_address`, null while unbound), and in
    /// that `len` (an int: the `sockaddr_un` length it was bound with) and `name` (the
    /// `sockaddr_un` itself).
    pub unix_sock_addr: u16,
    pub unix_address_len: u16,
    pub unix_address_name: u16,
    /// `struct sock` -> `sk_cgrp_data.cgroup`: the cgroup (v2) of the task that made the
    /// socket, and `struct cgroup` -> `self.parent` (its parent's `self`, which is the parent
    /// cgroup itself: `self` is the first field, which the daemon checks).
    pub sock_cgroup: u16,
    pub cgroup_parent: u16,
    /// `struct task_struct` -> `real_cred` (the task's own credentials) and `cred` (what it acts
    /// with: kernel code that acts for itself swaps in credentials of its own there).
    pub task_real_cred: u16,
    pub task_cred: u16,
    /// `struct pt_regs` -> the number of the system call the task is in (`orig_ax` on x86-64,
    /// `syscallno` on arm64).
    pub pt_regs_syscall_nr: u16,
    /// The number of `keyctl` in the host's system call table and in its 32-bit one (`int
    /// 0x80` from any process reaches the latter).
    pub keyctl_nr: u16,
    pub keyctl_compat_nr: u16,
    /// `struct file` -> `f_path.mnt`, `struct mount` -> `mnt` (the `struct vfsmount` inside it)
    /// and `struct mount` -> `mnt_ns`: a file the kernel opened on an internal mount (an
    /// overlay's layers, `clone_private_mount`) has `MNT_NS_INTERNAL` there.
    pub file_mnt: u16,
    pub mount_mnt: u16,
    pub mount_ns: u16,
    /// How many arguments the `inode_setattr` hook takes: 2 (`dentry`, `attr`) before Linux
    /// 6.9, 3 since (`idmap` first).
    pub inode_setattr_args: u16,
    /// `struct iattr` -> `ia_valid` (an unsigned int: which attributes change).
    pub iattr_valid: u16,
    /// `struct inode` -> `i_uid` (the owner, a kuid_t: one u32).
    pub inode_uid: u16,
    /// `struct cred` -> `uid`, the first of its eight ids, which follow it in this order
    /// (`CRED_IDS`), one u32 each: the daemon checks it.
    pub cred_ids: u16,
    /// `struct cred` -> `group_info`, `struct group_info` -> `ngroups` and `gid` (the
    /// supplementary groups, an array of u32).
    pub cred_group_info: u16,
    pub group_info_ngroups: u16,
    pub group_info_gid: u16,
    /// `struct proc_inode` -> `pid` and -> `vfs_inode` (the `struct inode` inside it): the
    /// process a `/proc/<pid>` directory stands for. `struct pid` -> `tasks` (the first list,
    /// PIDTYPE_PID, holds its task) and `struct task_struct` -> `pid_links` (that list's
    /// node in the task).
    pub proc_inode_pid: u16,
    pub proc_inode_vfs_inode: u16,
    pub pid_tasks: u16,
    pub task_pid_links: u16,
    /// `struct task_struct` -> `thread_pid` and -> `group_leader`; `struct pid` -> `level` (an
    /// unsigned int: how deep its namespace is) and -> `numbers` (a `struct upid` per level,
    /// `upid_size` bytes each, with the number first): a task's ids as its own pid namespace
    /// numbers them.
    pub task_thread_pid: u16,
    pub task_group_leader: u16,
    pub pid_level: u16,
    pub pid_numbers: u16,
    pub upid_size: u16,
    /// `struct task_struct` -> `fs`, `struct fs_struct` -> `umask` (an int): what a new file's
    /// mode loses.
    pub task_fs: u16,
    pub fs_struct_umask: u16,
    /// `struct inode` -> `i_default_acl` (a directory's default ACL as cached: null for none,
    /// `ACL_NOT_CACHED` when not read yet); 0 on a kernel built without POSIX ACLs.
    pub inode_default_acl: u16,
    /// `struct dentry` -> `d_fsdata` (on devpts, a pseudo-terminal's slave `struct tty_struct`),
    /// `struct task_struct` -> `signal`, `struct signal_struct` -> `tty` (the controlling
    /// terminal), `struct tty_struct` -> `ctrl.session` (`session` before Linux 5.19; the
    /// `struct pid` of its session's leader, null for none).
    pub dentry_fsdata: u16,
    /// `struct socket` -> `type` (a short: `SOCK_STREAM`, `SOCK_DGRAM`...).
    pub socket_type: u16,
    /// `struct sock` -> `__sk_common.skc_net.net` (its network namespace), `struct net` ->
    /// `ns.inum` (the namespace's inode number, as `/proc/<pid>/ns/net` shows it).
    pub sock_net: u16,
    pub net_ns_inum: u16,
    pub task_signal: u16,
    pub signal_tty: u16,
    pub tty_session: u16,
    /// `struct inode` -> `i_gid` (its group, a kgid_t: one u32).
    pub inode_gid: u16,
    /// Majors of the character devices of `COMMAND_DEVICES`, in that order; 0 for a driver
    /// not registered when the daemon started.
    pub command_majors: [u16; 5],
    /// `struct btrfs_inode` -> `vfs_inode` (the `struct inode` inside it), from the btrfs
    /// module's BTF; 0 when btrfs's BTF was not available (then no rule can name a btrfs path).
    pub btrfs_inode_vfs: u16,
    /// `struct btrfs_inode` -> `root` (its subvolume).
    pub btrfs_inode_root: u16,
    /// `struct btrfs_root` -> `anon_dev` (the device `stat` reports for the subvolume).
    pub btrfs_root_anon_dev: u16,
    /// Non-zero when the three btrfs offsets are known.
    pub btrfs_valid: u16,
    /// Non-zero once the daemon filled the struct; the programs deny everything for confined
    /// tasks while it is zero (fail closed).
    pub valid: u16,
}

/// The ids of `struct cred` from `uid` on, in the order they follow each other there.
pub const CRED_IDS: [&str; 8] = [
    "uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid",
];

/// Where each id is in the array read at `cred_ids`.
pub const CRED_UID: usize = 0;
pub const CRED_GID: usize = 1;
pub const CRED_SUID: usize = 2;
pub const CRED_SGID: usize = 3;
pub const CRED_EUID: usize = 4;
pub const CRED_EGID: usize = 5;
pub const CRED_FSUID: usize = 6;
pub const CRED_FSGID: usize = 7;

/// Name of the global in the eBPF object.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, only u16 fields: no padding.
unsafe impl aya::Pod for KernelOffsets {}
