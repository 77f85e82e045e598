//! The current task's executable identity, for every hook that needs to know *which program* is
//! acting (audit records now; per-binary network rules next). Keyed like every rule: the
//! (kernel dev_t, inode) of `current->mm->exe_file`, so a symlink to a program is that program
//! and a copy of it is not.

use aya_ebpf::helpers::bpf_get_current_task;

use crate::{
    file_check::file_identity,
    kernel::{offsets, read_at, read_ptr},
    target::FileId,
};

/// Identity of the executable the current task runs; None for kernel threads (no mm) or when
/// the kernel data cannot be read.
#[inline(always)]
pub fn current_exe() -> Option<FileId> {
    file_identity(offsets(), current_exe_file().ok()?).ok()
}

/// `current->mm->exe_file`.
#[inline(always)]
pub fn current_exe_file() -> Result<*const u8, i32> {
    let off = offsets();
    // SAFETY: a plain helper call; the result is only used as an address for probe reads.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mm = read_ptr(task, off.task_mm)?;
    read_ptr(mm, off.mm_exe_file)
}

/// `current->cred`: the credentials the current task acts with; null when unreadable.
#[inline(always)]
pub fn current_cred() -> *const u8 {
    // SAFETY: a plain helper call; the address is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    read_ptr(task, offsets().task_cred).unwrap_or(core::ptr::null())
}

/// The current task's umask (`current->fs->umask`); 0 when unreadable, which takes nothing
/// off a new file's mode (fail closed for `sticky_dirs::creates_trusted_plant`).
#[inline(always)]
pub fn current_umask() -> u32 {
    // SAFETY: a plain helper call; the address is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let off = offsets();
    read_ptr(task, off.task_fs)
        .and_then(|fs| read_at::<u32>(fs, off.fs_struct_umask))
        .unwrap_or(0)
}

/// Whether the current task acts with its own credentials: kernel code that acts for itself
/// on a task's way (NFS's id mapper, the DNS resolver's cache, overlayfs on its layers) swaps
/// in credentials of its own (`override_creds`), and what it does then is its business, not
/// the task's. The one way a task chooses other credentials, io_uring's registered
/// personalities, is refused to confined tasks (`other_users::uring_override_creds`).
#[inline(always)]
pub fn acting_as_itself() -> bool {
    // SAFETY: a plain helper call; the address is only read through bpf_probe_read_kernel.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    let off = offsets();
    match (
        read_at::<u64>(task, off.task_cred),
        read_at::<u64>(task, off.task_real_cred),
    ) {
        (Ok(cred), Ok(real)) => cred == real,
        // Unreadable: treated as the task's own, so the rules apply (fail closed).
        _ => true,
    }
}
