//! The pseudo-terminals a confined task may open: its own. One of the developer's other
//! sessions (`/dev/pts/N` of another terminal window, an ssh login) is their own file, which a
//! confined task of that user, or a root, could open: reading it races the shell for what is
//! typed there (a `sudo` password), writing it puts text and escape sequences on the screen
//! (OSC 52 sets the clipboard for the developer's next paste).
//!
//! A confined task opens a pseudo-terminal's slave end only when it is
//! - its controlling terminal (the one `run` was started from: its descriptors are open anyway),
//! - in a session whose leader is in its sandbox (`script`, `tmux`, `expect` inside), or
//! - without a session, and made by its sandbox (`openpty` opens the slave before any session
//!   takes it). Having no session is not enough: a pseudo-terminal made outside would be open to
//!   a poller of `/dev/pts` from the moment `/dev/ptmx` makes it until the login's shell takes
//!   it.
//!
//! The kernel opens a slave end only at its devpts name (`pts_unix98_lookup`), whose dentry
//! holds the slave's `tty_struct`: a bind mount of devpts reaches the same dentry, and a node
//! with its number made elsewhere is refused here (`EIO` there).

use aya_ebpf::{macros::fentry, programs::FEntryContext};
use sandbox_common::{KernelOffsets, DEVPTS_SUPER_MAGIC};

use crate::{
    guard::pid_in_sandbox,
    kernel::{read_at, read_ptr},
    maps::PTY_MAKERS,
    policy::confining_attachment,
};

#[fentry(function = "devpts_pty_new")]
pub fn pty_made(ctx: FEntryContext) -> i32 {
    // struct dentry *devpts_pty_new(struct pts_fs_info *fsi, int index, void *priv): every
    // pseudo-terminal's slave gets its name here, `priv` its `tty_struct`, in the task that
    // opened `/dev/ptmx`. Written for every one, so a freed terminal's mark at this address is
    // gone; past the map's size the least recently used mark goes, which is never more access.
    let tty: u64 = ctx.arg(2);
    match confining_attachment() {
        Some((attachment, _)) => {
            let _ = PTY_MAKERS.insert(&tty, &attachment, 0);
        }
        None => {
            let _ = PTY_MAKERS.remove(&tty);
        }
    }
    0
}

/// Whether opening the pseudo-terminal slave at `dentry` is refused to the current task,
/// confined by `attachment` (see the module's comment). Unreadable counts as refused.
#[inline(always)]
pub fn is_other_terminal(off: &KernelOffsets, dentry: *const u8, attachment: u64) -> bool {
    let Ok(magic) = read_ptr(dentry, off.dentry_sb).and_then(|sb| read_at::<u64>(sb, off.sb_magic))
    else {
        return true;
    };
    if magic != DEVPTS_SUPER_MAGIC {
        return true;
    }
    let Ok(tty) = read_ptr(dentry, off.dentry_fsdata) else {
        return true;
    };
    // SAFETY: a plain helper call; the address is only read through bpf_probe_read_kernel.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    let controlling =
        read_ptr(task, off.task_signal).and_then(|signal| read_ptr(signal, off.signal_tty));
    if controlling == Ok(tty) {
        return false;
    }
    // Null for a terminal no session has.
    let Ok(session) = read_at::<*const u8>(tty, off.tty_session) else {
        return true;
    };
    if !session.is_null() {
        return !pid_in_sandbox(off, session, attachment);
    }
    // SAFETY: copied out at once; a concurrent update shows the old or the new value.
    let maker = unsafe { PTY_MAKERS.get(&(tty as u64)).copied() };
    maker != Some(attachment)
}
