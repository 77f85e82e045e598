//! `file_open`: deny_read by canonical inode identity.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{HOOK_FILE_OPEN, RULE_DENY_READ};

use crate::file_check::verdict_on_file;

#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_open, struct file *file), then the previous LSMs' verdict.
    verdict_on_file(ctx.arg(1), ctx.arg(0), RULE_DENY_READ, HOOK_FILE_OPEN)
}
