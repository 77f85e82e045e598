//! `file_open` and `file_receive`: deny_read by canonical inode identity.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_FILE_OPEN, HOOK_FILE_RECEIVE};

use crate::{
    file_check::{verdict_on_file, Access},
    hook::earlier_denial,
};

#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_open, struct file *file)
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    verdict_on_file(ctx.arg(0), Access::Open, HOOK_FILE_OPEN)
}

#[lsm(hook = "file_receive")]
pub fn file_receive(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_receive, struct file *file): a descriptor passed in over a Unix
    // socket. An open file of a denied inode must not arrive by that route either.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    verdict_on_file(ctx.arg(0), Access::Open, HOOK_FILE_RECEIVE)
}
