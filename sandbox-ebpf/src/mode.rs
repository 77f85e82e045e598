//! File mode bits of <linux/stat.h>, as the programs read them from `inode.i_mode` (a u16,
//! widened by `inode_mode`) or get them from a hook (a `umode_t`), in one place.

use crate::kernel::{offsets, read_at, read_ptr};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;
pub const S_IXGRP: u32 = 0o010;
/// Write permission for the group and for others: whoever is not the owner.
pub const S_IWGRP_IWOTH: u32 = 0o022;
pub const S_IWOTH: u32 = 0o002;

/// The type bits of `mode`.
#[inline(always)]
pub fn file_type(mode: u32) -> u32 {
    mode & S_IFMT
}

/// The mode of `inode`.
#[inline(always)]
pub fn inode_mode(inode: *const u8) -> Result<u32, i32> {
    read_at::<u16>(inode, offsets().inode_mode).map(u32::from)
}

/// The mode of the file `dentry` names; 0 for a negative dentry or when unreadable.
#[inline(always)]
pub fn mode_of(dentry: *const u8) -> u32 {
    read_ptr(dentry, offsets().dentry_inode)
        .and_then(inode_mode)
        .unwrap_or(0)
}
