//! Executing a file: `bprm_check_security` decides on the file the kernel is really executing
//! (symlinks are already resolved; for a script it runs for the script and again for its
//! interpreter), and `mmap_file` / `file_mprotect` on files mapped executable, so a loader
//! (`ld.so /denied/binary`) cannot run a program that execve would refuse.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_BPRM_CHECK, HOOK_FILE_MPROTECT, HOOK_MMAP_FILE};

use crate::{
    file_check::{verdict_on_file, Access},
    hook::earlier_denial,
    kernel::{offsets, read_at},
};

/// PROT_EXEC from <asm-generic/mman-common.h>.
const PROT_EXEC: u64 = 0x4;

#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, bprm_check_security, struct linux_binprm *bprm)
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    let bprm: *const u8 = ctx.arg(0);
    // A null file fails closed inside verdict_on_file for confined tasks.
    let file: *const u8 = read_at(bprm, offsets().bprm_file).unwrap_or(core::ptr::null());
    verdict_on_file(file, Access::Exec, HOOK_BPRM_CHECK)
}

#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
    //          unsigned long flags)
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    let file: *const u8 = ctx.arg(0);
    // `prot` is what the mapping gets (READ_IMPLIES_EXEC included); anonymous maps have no file.
    let prot: u64 = ctx.arg(2);
    if file.is_null() || prot & PROT_EXEC == 0 {
        return 0;
    }
    verdict_on_file(file, Access::Exec, HOOK_MMAP_FILE)
}

#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_mprotect, struct vm_area_struct *vma, unsigned long reqprot,
    //          unsigned long prot)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let vma: *const u8 = ctx.arg(0);
    // An unreadable vma fails closed for confined tasks; a null vm_file is an anonymous mapping.
    let Ok(file) = read_at::<*const u8>(vma, offsets().vma_file) else {
        return verdict_on_file(core::ptr::null(), Access::Exec, HOOK_FILE_MPROTECT);
    };
    if file.is_null() {
        return 0;
    }
    verdict_on_file(file, Access::Exec, HOOK_FILE_MPROTECT)
}
