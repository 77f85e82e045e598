//! Reads of kernel structs at offsets the daemon resolved from the running kernel's BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use sandbox_common::KernelOffsets;

/// Filled by the daemon with `EbpfLoader::set_global` before load; all zero (and `valid == 0`)
/// otherwise, which makes every confined access fail closed.
#[no_mangle]
static OFFSETS: KernelOffsets = KernelOffsets {
    file_dentry: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_parent: 0,
    dentry_inode: 0,
    dentry_name_len: 0,
    dentry_name_ptr: 0,
    bprm_file: 0,
    inode_nlink: 0,
    vma_file: 0,
    task_mm: 0,
    mm_exe_file: 0,
    task_tgid: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    sb_magic: 0,
    dentry_flags: 0,
    msghdr_name: 0,
    msghdr_namelen: 0,
    socket_sk: 0,
    unix_sock_dentry: 0,
    file_mode: 0,
    dentry_sb: 0,
    path_dentry: 0,
    inode_mode: 0,
    inode_rdev: 0,
    unix_sock_peer: 0,
    sock_family: 0,
    sock_num: 0,
    unix_sock_addr: 0,
    unix_address_len: 0,
    unix_address_name: 0,
    sock_cgroup: 0,
    cgroup_parent: 0,
    task_real_cred: 0,
    task_cred: 0,
    pt_regs_syscall_nr: 0,
    keyctl_nr: 0,
    keyctl_compat_nr: 0,
    file_mnt: 0,
    mount_mnt: 0,
    mount_ns: 0,
    inode_setattr_args: 0,
    iattr_valid: 0,
    inode_uid: 0,
    cred_ids: 0,
    cred_group_info: 0,
    group_info_ngroups: 0,
    group_info_gid: 0,
    proc_inode_pid: 0,
    proc_inode_vfs_inode: 0,
    pid_tasks: 0,
    task_pid_links: 0,
    task_thread_pid: 0,
    task_group_leader: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    task_fs: 0,
    fs_struct_umask: 0,
    inode_default_acl: 0,
    dentry_fsdata: 0,
    socket_type: 0,
    sock_net: 0,
    net_ns_inum: 0,
    task_signal: 0,
    signal_tty: 0,
    tty_session: 0,
    inode_gid: 0,
    command_majors: [0; 5],
    btrfs_inode_vfs: 0,
    btrfs_inode_root: 0,
    btrfs_root_anon_dev: 0,
    btrfs_valid: 0,
    valid: 0,
};

/// The offsets, read field by field where they are used.
///
/// Only the address goes through a volatile read: the compiler cannot fold the zero initializer
/// (the loader rewrites the value in .rodata), and no copy of the struct is made. A copy cost a
/// 64-bit stack slot per field, which pushed the path hooks past the 512-byte stack.
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    let address: *const KernelOffsets = &OFFSETS;
    // SAFETY: reads a local pointer; the result is the address of OFFSETS, a static that lives
    // for the whole program and is never written by it.
    unsafe { &*core::ptr::read_volatile(&address) }
}

/// Reads a `T` at `base + off` in kernel memory.
#[inline(always)]
pub fn read_at<T>(base: *const u8, off: u16) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault-tolerant accessor: a bad
    // address returns an error instead of faulting, and the result is a plain copy.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

/// Reads a kernel pointer at `base + off`, treating NULL as an error.
#[inline(always)]
pub fn read_ptr(base: *const u8, off: u16) -> Result<*const u8, i32> {
    let p: *const u8 = read_at(base, off)?;
    if p.is_null() {
        Err(-1)
    } else {
        Ok(p)
    }
}

/// BTRFS_SUPER_MAGIC from <uapi/linux/magic.h>.
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;

/// Whether rules on the filesystem `sb` are keyed on each inode's btrfs subvolume.
#[inline(always)]
pub fn keyed_by_subvolume(off: &KernelOffsets, sb: *const u8) -> Result<bool, i32> {
    if off.btrfs_valid == 0 {
        return Ok(false);
    }
    Ok(read_at::<u64>(sb, off.sb_magic)? == BTRFS_SUPER_MAGIC)
}

/// The anonymous device of the btrfs subvolume `inode` belongs to: what `stat` reports as its
/// device, and what rules on btrfs are keyed on (inode numbers repeat across subvolumes).
#[inline(always)]
pub fn btrfs_subvolume_dev(off: &KernelOffsets, inode: *const u8) -> Result<u32, i32> {
    // container_of(inode, struct btrfs_inode, vfs_inode)
    let btrfs_inode = inode.wrapping_sub(off.btrfs_inode_vfs as usize);
    let root = read_ptr(btrfs_inode, off.btrfs_inode_root)?;
    read_at(root, off.btrfs_root_anon_dev)
}

/// The device rules on `inode` are keyed on: the superblock's, or on btrfs the subvolume's.
#[inline(always)]
pub fn rule_dev(off: &KernelOffsets, inode: *const u8, sb: *const u8) -> Result<u32, i32> {
    if keyed_by_subvolume(off, sb)? {
        btrfs_subvolume_dev(off, inode)
    } else {
        read_at(sb, off.sb_dev)
    }
}
