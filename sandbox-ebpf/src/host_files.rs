//! Files that are the host itself, which no confined task may open whatever its policy lists:
//! block devices (every file of a filesystem, raw), the character devices that pass commands to
//! a disk (SCSI generic, bsg, NVMe), to the TPM or to a HID device, the memory and port
//! devices, the consoles, serial ports and input devices (what the host's people type and see,
//! and virtual keyboards that type into their sessions), pseudo-terminals other than the
//! sandbox's own (`terminals`), `/proc/kcore`,
//! and, for writing, every file of a kernel filesystem (`kernel_fs`: cgroupfs, sysfs, bpffs...)
//! every procfs file outside a process's own `/proc/<pid>` directory
//! (`/proc/sys/kernel/core_pattern` and `modprobe` make the kernel run a program as host root),
//! and every file of the `/proc/<pid>` directory of a process outside the sandbox (its
//! `oom_score_adj` decides which process the OOM killer takes: see `other_processes`).
//!
//! Decided by the inode's type and device number and by the procfs dentries themselves, so a
//! node made anywhere, an old alias, a bind mount or another procfs mount is caught too.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sandbox_common::{
    KernelOffsets, CONSOLE_DEVICES, CONSOLE_MAJORS, MEMORY_DEVICES, PROC_SUPER_MAGIC,
    PTY_SLAVE_MAJORS, SCSI_GENERIC_MAJOR, TPM_LEGACY_DEVICE,
};

use crate::{
    guard::pid_in_sandbox,
    kernel::{read_at, read_ptr},
    kernel_fs::is_kernel_fs,
    mode::{file_type, inode_mode, S_IFBLK, S_IFCHR},
    terminals::is_other_terminal,
};

/// Deepest /proc path examined (`/proc/sys/net/ipv4/conf/<if>/<knob>` is 6); a deeper write
/// is refused (fail closed).
const MAX_PROC_DEPTH: usize = 10;

/// Whether opening `inode` (reached through `dentry`; `writing`: for write) by a task confined
/// by `attachment` is refused as a host file. Unreadable kernel data counts as refused.
#[inline(always)]
pub fn is_host_file(
    off: &KernelOffsets,
    inode: *const u8,
    dentry: *const u8,
    writing: bool,
    attachment: u64,
) -> bool {
    let Ok(mode) = inode_mode(inode) else {
        return true;
    };
    match file_type(mode) {
        S_IFBLK => true,
        S_IFCHR => match read_at::<u32>(inode, off.inode_rdev) {
            Ok(rdev) => {
                MEMORY_DEVICES.contains(&rdev)
                    || rdev == TPM_LEGACY_DEVICE
                    || passes_commands(off, rdev >> 20)
                    || CONSOLE_DEVICES.contains(&rdev)
                    || CONSOLE_MAJORS.contains(&(rdev >> 20))
                    || (PTY_SLAVE_MAJORS.contains(&(rdev >> 20))
                        && is_other_terminal(off, dentry, attachment))
            }
            Err(_) => true,
        },
        _ => {
            let Ok(magic) =
                read_ptr(inode, off.inode_sb).and_then(|sb| read_at::<u64>(sb, off.sb_magic))
            else {
                return true;
            };
            match magic {
                PROC_SUPER_MAGIC => is_host_proc_file(off, dentry, writing, attachment),
                magic => writing && is_kernel_fs(magic),
            }
        }
    }
}

/// Whether the character device major `major` passes commands to a disk (SCSI generic, bsg,
/// NVMe) or to the TPM: as good as the raw disk, or the secrets the host sealed.
#[inline(always)]
fn passes_commands(off: &KernelOffsets, major: u32) -> bool {
    major == SCSI_GENERIC_MAJOR
        || off
            .command_majors
            .iter()
            .any(|&m| m != 0 && u32::from(m) == major)
}

/// Whether the procfs file at `dentry` is the host's (see the module's comment).
#[inline(always)]
fn is_host_proc_file(
    off: &KernelOffsets,
    dentry: *const u8,
    writing: bool,
    attachment: u64,
) -> bool {
    // The entry right below the procfs root on the way up: a pid directory, or the host's.
    let mut child = dentry;
    let mut top = core::ptr::null();
    for _ in 0..MAX_PROC_DEPTH {
        let Ok(parent) = read_ptr(child, off.dentry_parent) else {
            return true;
        };
        if parent == child {
            // The procfs root itself.
            return writing;
        }
        let Ok(grandparent) = read_ptr(parent, off.dentry_parent) else {
            return true;
        };
        if parent == grandparent {
            top = child;
            break;
        }
        child = parent;
    }
    if top.is_null() {
        // Deeper than examined.
        return writing;
    }
    let mut name = [0u8; 8];
    let Ok(ptr) = read_at::<*const u8>(top, off.dentry_name_ptr) else {
        return true;
    };
    // SAFETY: copies at most 8 bytes of a NUL-terminated kernel string into `name`, through
    // the fault-tolerant accessor.
    let copied = unsafe {
        bpf_probe_read_kernel_str(
            name.as_mut_ptr() as *mut _,
            name.len() as u32,
            ptr as *const _,
        )
    };
    if copied <= 0 {
        return true;
    }
    if top == dentry && &name[..6] == b"kcore\0" {
        return true;
    }
    writing && !(name[0].is_ascii_digit() && process_in_sandbox(off, top, attachment))
}

/// Whether the process the `/proc/<pid>` directory `dir` stands for is confined by
/// `attachment`. False when it cannot be read (fail closed) or has exited.
#[inline(always)]
fn process_in_sandbox(off: &KernelOffsets, dir: *const u8, attachment: u64) -> bool {
    let Ok(inode) = read_ptr(dir, off.dentry_inode) else {
        return false;
    };
    // Every procfs inode is the `vfs_inode` of a `struct proc_inode`, whose `pid` is the
    // process's for its directory.
    let proc_inode = inode.wrapping_sub(off.proc_inode_vfs_inode as usize);
    match read_ptr(proc_inode, off.proc_inode_pid) {
        Ok(pid) => pid_in_sandbox(off, pid, attachment),
        Err(_) => false,
    }
}
