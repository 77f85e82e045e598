//! The kernel's own filesystems (cgroupfs, sysfs, bpffs with the enforcer's pins...), where a
//! confined task may create, change, rename or remove nothing. Decided by the superblock's magic
//! in the hooks that make a change (an open for writing, the `path_*` hooks, truncation, mode,
//! owner and extended attributes), so an ordinary open runs no extra program: the per-component
//! `inode_permission` hook that once did this ran for every task on the host.

use sandbox_common::{KernelOffsets, KERNEL_FS_MAGICS};

use crate::kernel::read_at;

/// Whether `magic` is one of the kernel's own filesystems.
#[inline(always)]
pub fn is_kernel_fs(magic: u64) -> bool {
    let mut i = 0;
    while i < KERNEL_FS_MAGICS.len() {
        if KERNEL_FS_MAGICS[i] == magic {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether the superblock `sb` is a kernel filesystem's; an unreadable magic counts as one, so
/// a confined task fails closed.
#[inline(always)]
pub fn on_kernel_fs(off: &KernelOffsets, sb: *const u8) -> bool {
    read_at::<u64>(sb, off.sb_magic).map_or(true, is_kernel_fs)
}
