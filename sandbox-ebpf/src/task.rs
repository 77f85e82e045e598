//! The current task's executable identity, for every hook that needs to know *which program* is
//! acting (audit records now; per-binary network rules next). Keyed like every rule: the
//! (kernel dev_t, inode) of `current->mm->exe_file`, so a symlink to a program is that program
//! and a copy of it is not.

use aya_ebpf::helpers::bpf_get_current_task;

use crate::{
    file_check::file_identity,
    kernel::{offsets, read_ptr},
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
