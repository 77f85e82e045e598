//! A confined task steers no process outside its own sandbox. Signals and ptrace are `guard`'s;
//! these are the rest of what the kernel lets a task do to any process of its own user without
//! a capability, which for a confined root is every root process on the host (the daemon,
//! sshd, a container runtime): lower its priority (`setpriority`, `renice`), its I/O priority
//! (`ioprio_set`), change its scheduling policy or CPUs (`sched_setscheduler`,
//! `sched_setattr`, `sched_setaffinity`: SCHED_IDLE starves it), or its resource limits
//! (`prlimit`: an RLIMIT_CPU hard limit kills it, RLIMIT_NOFILE or RLIMIT_AS break it).
//! Writing its `/proc/<pid>` files (`oom_score_adj`: the OOM killer's choice) is refused where
//! files are opened (`host_files`). Moving its memory (`migrate_pages`, `move_pages`) passes
//! ptrace's check first, which `guard` refuses.
//!
//! Nor does it name another process as the one a file's SIGIO and SIGURG go to (`F_SETOWN`,
//! `F_SETOWN_EX`, and `FIOSETOWN` and `SIOCSPGRP` on a socket): the kernel then signals that
//! process whenever the file is ready, with any signal `F_SETSIG` chose (SIGKILL too), checked
//! against the credentials of whoever named it (root may signal anyone), and not through
//! `task_kill`. Which process a pid number names is not known here (no pid lookup from these
//! programs), so a confined task names only itself: its own pid or thread id, as its own pid
//! namespace numbers them, or 0 (none). A terminal names its foreground process group itself
//! when a descriptor of it is made asynchronous (`O_ASYNC`, `FIOASYNC`): that, on any
//! character device, is refused too.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_user},
    macros::lsm,
    programs::LsmContext,
};
use sandbox_common::{
    HOOK_FILE_FCNTL, HOOK_TASK_SETIOPRIO, HOOK_TASK_SETNICE, HOOK_TASK_SETRLIMIT,
    HOOK_TASK_SETSCHEDULER,
};

use crate::{
    guard::{deny, only_own_sandbox},
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    mode::{file_type, inode_mode, S_IFCHR},
    policy::current_policy,
    target::Target,
};

/// fcntl commands of <uapi/asm-generic/fcntl.h> and ioctl requests of
/// <uapi/asm-generic/sockios.h> that name where a file's SIGIO and SIGURG go: a pid (a process
/// group as its negation), a `struct f_owner_ex` in the caller's memory, an int there.
const F_SETOWN: u32 = 8;
const F_SETOWN_EX: u32 = 15;
pub const FIOSETOWN: u32 = 0x8901;
pub const SIOCSPGRP: u32 = 0x8902;
/// `F_SETFL` with `FASYNC` (<uapi/asm-generic/fcntl.h>), and `FIOASYNC` (an int in the
/// caller's memory, non-zero to turn it on), which make a descriptor signal its owner.
const F_SETFL: u32 = 4;
const FASYNC: u64 = 0o20000;
pub const FIOASYNC: u32 = 0x5452;
/// `f_owner_ex.type`: a thread, a process (a process group is the third).
const F_OWNER_TID: i32 = 0;
const F_OWNER_PID: i32 = 1;

#[lsm(hook = "task_setnice")]
pub fn task_setnice(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setnice, struct task_struct *p, int nice)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETNICE, ctx.arg(0))
}

#[lsm(hook = "task_setioprio")]
pub fn task_setioprio(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setioprio, struct task_struct *p, int ioprio)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETIOPRIO, ctx.arg(0))
}

#[lsm(hook = "task_setscheduler")]
pub fn task_setscheduler(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setscheduler, struct task_struct *p): policy, priority, CPUs.
    if let Some(denied) = earlier_denial(&ctx, 1) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETSCHEDULER, ctx.arg(0))
}

#[lsm(hook = "task_setrlimit")]
pub fn task_setrlimit(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, task_setrlimit, struct task_struct *p, unsigned int resource,
    //          struct rlimit *new_rlim): `setrlimit` and `prlimit` with new limits, the task
    // whose limits change. Reading another process's limits stays allowed.
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    only_own_sandbox(HOOK_TASK_SETRLIMIT, ctx.arg(0))
}

#[lsm(hook = "file_fcntl")]
pub fn file_fcntl(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, file_fcntl, struct file *file, unsigned int cmd, unsigned long arg):
    // every fcntl on the host; all but F_SETOWN, F_SETOWN_EX and F_SETFL with O_ASYNC leave
    // after the compares.
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let cmd: u32 = ctx.arg(1);
    let arg: u64 = ctx.arg(2);
    let owner = match cmd {
        F_SETOWN => Owner::Process(arg as i32),
        F_SETFL if arg & FASYNC != 0 => return verdict_on_async(HOOK_FILE_FCNTL, ctx.arg(0)),
        F_SETOWN_EX => {
            // struct f_owner_ex { int type; pid_t pid; }
            // SAFETY: copies 8 bytes from the caller's memory through the fault-tolerant
            // accessor; an unreadable address is an error, decided below as a refusal.
            match unsafe { bpf_probe_read_user(arg as *const [i32; 2]) } {
                Ok([F_OWNER_TID, tid]) => Owner::Thread(tid),
                Ok([F_OWNER_PID, pid]) => Owner::Process(pid),
                _ => Owner::Other,
            }
        }
        _ => return 0,
    };
    signals_only_itself(HOOK_FILE_FCNTL, owner)
}

/// Verdict of `hook` (`file_ioctl`) on `FIOSETOWN` or `SIOCSPGRP` with `arg`, the address of
/// an int in the caller's memory: a pid, or a process group as its negation.
#[inline(always)]
pub fn verdict_on_owner_ioctl(hook: u32, arg: u64) -> i32 {
    // SAFETY: copies 4 bytes from the caller's memory through the fault-tolerant accessor.
    let owner = match unsafe { bpf_probe_read_user(arg as *const i32) } {
        Ok(pid) => Owner::Process(pid),
        Err(_) => Owner::Other,
    };
    signals_only_itself(hook, owner)
}

/// Verdict of `hook` (`file_ioctl`) on `FIOASYNC` with `arg`, the address of an int in the
/// caller's memory: non-zero turns signals on.
#[inline(always)]
pub fn verdict_on_async_ioctl(hook: u32, file: *const u8, arg: u64) -> i32 {
    // SAFETY: copies 4 bytes from the caller's memory through the fault-tolerant accessor.
    match unsafe { bpf_probe_read_user(arg as *const i32) } {
        Ok(0) => 0,
        _ => verdict_on_async(hook, file),
    }
}

/// Refuses a confined task making a character device's descriptor asynchronous: a terminal
/// then signals its foreground process group, which may be outside the sandbox.
#[inline(always)]
fn verdict_on_async(hook: u32, file: *const u8) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    let mode = read_ptr(file, offsets().file_inode).and_then(inode_mode);
    match mode {
        Ok(mode) if file_type(mode) != S_IFCHR => 0,
        _ => deny(&policy, hook, Target::None),
    }
}

/// Where a file's signals are to go.
#[derive(Clone, Copy)]
enum Owner {
    /// A process by pid; a process group by its negation; 0: nowhere.
    Process(i32),
    Thread(i32),
    /// A process group by `F_SETOWN_EX`, or an owner that cannot be read.
    Other,
}

/// Refuses a confined task naming any owner but itself (or none): see the module's comment.
#[inline(always)]
fn signals_only_itself(hook: u32, owner: Owner) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    // SAFETY: a plain helper call; the address is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let itself = match owner {
        Owner::Process(0) => true,
        Owner::Process(pid) => {
            pid > 0
                && (Some(pid) == own_number(task)
                    || read_ptr(task, offsets().task_group_leader)
                        .is_ok_and(|leader| Some(pid) == own_number(leader)))
        }
        Owner::Thread(tid) => Some(tid) == own_number(task),
        Owner::Other => false,
    };
    if itself {
        return 0;
    }
    deny(&policy, hook, Target::None)
}

/// The number `task` has in its own pid namespace (what `gettid` returns in it):
/// `task->thread_pid->numbers[level].nr`.
#[inline(always)]
fn own_number(task: *const u8) -> Option<i32> {
    let off = offsets();
    let pid = read_ptr(task, off.task_thread_pid).ok()?;
    let level = read_at::<u32>(pid, off.pid_level).ok()?;
    // Pid namespaces nest at most 32 deep (MAX_PID_NS_LEVEL).
    if level > 32 {
        return None;
    }
    let at = u32::from(off.pid_numbers) + level * u32::from(off.upid_size);
    read_at::<i32>(pid, u16::try_from(at).ok()?).ok()
}
