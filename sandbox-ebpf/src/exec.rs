//! `bprm_check_security`: deny_exec on the file the kernel is really executing (symlinks are
//! already resolved, and for a script this runs for the script and again for its interpreter).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_BPRM_CHECK, RULE_DENY_EXEC};

use crate::{
    file_check::verdict_on_file,
    hook::earlier_denial,
    kernel::{offsets, read_at},
};

#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, bprm_check_security, struct linux_binprm *bprm)
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    let bprm: *const u8 = ctx.arg(0);
    // A null file fails closed inside verdict_on_file for confined tasks.
    let file: *const u8 = read_at(bprm, offsets().bprm_file).unwrap_or(core::ptr::null());
    verdict_on_file(file, RULE_DENY_EXEC, HOOK_BPRM_CHECK)
}
