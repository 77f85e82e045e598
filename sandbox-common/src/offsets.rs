//! Byte offsets of the kernel struct fields the programs read. There is no CO-RE for Rust eBPF:
//! the daemon resolves these from the running kernel's BTF and hands them to the programs as a
//! read-only global, so one binary works on every kernel.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct file` -> `f_path.dentry`.
    pub file_dentry: u32,
    /// `struct file` -> `f_inode`.
    pub file_inode: u32,
    /// `struct inode` -> `i_ino`.
    pub inode_ino: u32,
    /// `struct inode` -> `i_sb`.
    pub inode_sb: u32,
    /// `struct super_block` -> `s_dev`.
    pub sb_dev: u32,
    /// `struct dentry` -> `d_parent`.
    pub dentry_parent: u32,
    /// `struct dentry` -> `d_inode`.
    pub dentry_inode: u32,
    /// `struct dentry` -> `d_name.len` (a u32 inside `struct qstr`).
    pub dentry_name_len: u32,
    /// `struct dentry` -> `d_name.name`.
    pub dentry_name_ptr: u32,
    /// `struct linux_binprm` -> `file`.
    pub bprm_file: u32,
    /// `struct inode` -> `i_nlink`.
    pub inode_nlink: u32,
    /// `struct vm_area_struct` -> `vm_file`.
    pub vma_file: u32,
    /// `struct task_struct` -> `mm`.
    pub task_mm: u32,
    /// `struct mm_struct` -> `exe_file`.
    pub mm_exe_file: u32,
    /// `struct task_struct` -> `tgid`.
    pub task_tgid: u32,
    /// `struct task_struct` -> `cgroups` (the css_set).
    pub task_cgroups: u32,
    /// `struct css_set` -> `dfl_cgrp`.
    pub css_set_dfl_cgrp: u32,
    /// `struct cgroup` -> `kn`.
    pub cgroup_kn: u32,
    /// `struct kernfs_node` -> `id` (the cgroup id on cgroup v2).
    pub kernfs_node_id: u32,
    /// `struct super_block` -> `s_magic`.
    pub sb_magic: u32,
    /// `struct dentry` -> `d_flags`.
    pub dentry_flags: u32,
    /// `struct msghdr` -> `msg_name` (a kernel copy of the address in `socket_sendmsg`).
    pub msghdr_name: u32,
    /// `struct msghdr` -> `msg_namelen`.
    pub msghdr_namelen: u32,
    /// `struct socket` -> `sk`.
    pub socket_sk: u32,
    /// `struct unix_sock` -> `path.dentry` (the socket file a bound Unix socket lives at).
    pub unix_sock_dentry: u32,
    /// Non-zero once the daemon filled the struct; the programs deny everything for confined
    /// tasks while it is zero (fail closed).
    pub valid: u32,
}

/// Name of the global in the eBPF object.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";

#[cfg(feature = "user")]
// SAFETY: repr(C), Copy, only u32 fields: no padding.
unsafe impl aya::Pod for KernelOffsets {}
