//! Audit events: one ring buffer, a per-policy token bucket that turns floods into an exact count
//! of suppressed events, and an exact per-CPU count of what could not be sent.

use core::ptr::addr_of_mut;

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
            bpf_probe_read_kernel_str,
        },
    },
};
use sandbox_common::{
    AuditEvent, AuditRate, AuditRateLimit, CgroupPolicy, EventPath, NetDest, PATH_NAMES,
    PATH_NAME_LEN, TOKEN,
};

use crate::{
    kernel::{offsets, read_at, read_ptr},
    maps::{AUDIT_RATE, AUDIT_SUPPRESSED, EVENTS, EVENT_DROPS},
    target::Target,
    task::current_exe,
};

/// Filled by the daemon with `EbpfLoader::override_global` before load; zero means no limit.
#[no_mangle]
static AUDIT_RATE_LIMIT: AuditRateLimit = AuditRateLimit {
    per_second: 0,
    burst: 0,
};

/// Longest idle time credited to a bucket: keeps `elapsed * per_second` far from overflow.
const MAX_CREDIT_NS: u64 = 1_000_000_000_000;

/// Records a decision on `target`: a file, a task, a capability...
#[inline(always)]
pub fn emit(policy: &CgroupPolicy, hook: u32, action: u32, rule_id: u32, target: &Target) {
    send(policy, hook, action, rule_id, target, &NetDest::default());
}

/// Records a decision on a connect or send to `dest`.
#[inline(always)]
pub fn emit_net(policy: &CgroupPolicy, hook: u32, action: u32, rule_id: u32, dest: &NetDest) {
    send(policy, hook, action, rule_id, &Target::Destination, dest);
}

#[inline(always)]
fn send(
    policy: &CgroupPolicy,
    hook: u32,
    action: u32,
    rule_id: u32,
    target: &Target,
    net: &NetDest,
) {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if !take_token(policy.policy_id, now) {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<AuditEvent>(0) else {
        count_drop();
        return;
    };
    let exe = current_exe().unwrap_or_default();
    let (kind, file, value) = target.parts();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: a plain helper call.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` is the record just reserved, ours alone until submit; every field is
    // written in place (the record is too big to build on the 512-byte stack first).
    unsafe {
        addr_of_mut!((*event).time_ns).write(now);
        addr_of_mut!((*event).cgroup_id).write(cgroup_id);
        addr_of_mut!((*event).ino).write(file.ino);
        addr_of_mut!((*event).exe_ino).write(exe.ino);
        addr_of_mut!((*event).value).write(value);
        addr_of_mut!((*event).dev).write(file.dev);
        addr_of_mut!((*event).exe_dev).write(exe.dev);
        addr_of_mut!((*event).pid).write(pid_tgid as u32);
        addr_of_mut!((*event).tgid).write((pid_tgid >> 32) as u32);
        addr_of_mut!((*event).uid).write(bpf_get_current_uid_gid() as u32);
        addr_of_mut!((*event).policy_id).write(policy.policy_id);
        addr_of_mut!((*event).rule_id).write(rule_id);
        addr_of_mut!((*event).hook).write(hook);
        addr_of_mut!((*event).action).write(action);
        addr_of_mut!((*event).target_kind).write(kind as u32);
        addr_of_mut!((*event).comm).write(bpf_get_current_comm().unwrap_or_default());
        addr_of_mut!((*event).net).write(*net);
        match *target {
            Target::AbstractSocket(address) => {
                let len = fill_abstract_name(addr_of_mut!((*event).path), address);
                addr_of_mut!((*event).value).write(len);
            }
            _ => fill_path(addr_of_mut!((*event).path), file.dentry),
        }
        addr_of_mut!((*event)._pad).write(0);
    }
    entry.submit(0);
}

/// Writes the names from `dentry` up to its filesystem's root (at most `PATH_NAMES`) into the
/// reserved record's `path`.
///
/// # Safety
/// `path` points into a reserved ring buffer record owned by the caller.
#[inline(always)]
unsafe fn fill_path(path: *mut EventPath, dentry: *const u8) {
    let off = offsets();
    let mut dentry = dentry;
    let mut depth = 0u32;
    let mut complete = 0u32;
    for i in 0..PATH_NAMES {
        if dentry.is_null() {
            break;
        }
        let Ok(parent) = read_ptr(dentry, off.dentry_parent) else {
            break;
        };
        if parent == dentry {
            // The root: its name is "/", and the names so far are the whole path.
            complete = 1;
            break;
        }
        let Ok(name) = read_ptr(dentry, off.dentry_name_ptr) else {
            break;
        };
        // SAFETY: copies at most PATH_NAME_LEN bytes (NUL included) into names[i], inside the
        // record; a failed read leaves an empty name.
        unsafe {
            bpf_probe_read_kernel_str(
                addr_of_mut!((*path).names[i]) as *mut c_void,
                PATH_NAME_LEN as u32,
                name as *const c_void,
            )
        };
        depth = i as u32 + 1;
        dentry = parent;
    }
    if depth == PATH_NAMES as u32 && !dentry.is_null() {
        complete = (read_ptr(dentry, off.dentry_parent) == Ok(dentry)) as u32;
    }
    // SAFETY: inside the record, as above.
    unsafe {
        addr_of_mut!((*path).depth).write(depth);
        addr_of_mut!((*path).complete).write(complete);
    }
}

/// The longest abstract name a record carries: `sun_path` less its leading NUL.
const ABSTRACT_NAME_MAX: u32 = 107;

/// Copies the name of the abstract socket bound at `address` (a `struct unix_address`) into
/// the reserved record's `path`, as one buffer, and returns its length (0 when unreadable).
///
/// # Safety
/// `path` points into a reserved ring buffer record owned by the caller.
#[inline(always)]
unsafe fn fill_abstract_name(path: *mut EventPath, address: *const u8) -> u64 {
    const _: () = assert!(ABSTRACT_NAME_MAX as usize <= PATH_NAMES * PATH_NAME_LEN);
    /// `sun_family` (2 bytes) and the NUL that makes the name abstract.
    const BEFORE_NAME: i32 = 3;
    let off = offsets();
    let Ok(bound) = read_at::<i32>(address, off.unix_address_len) else {
        return 0;
    };
    let len = (bound - BEFORE_NAME).clamp(0, ABSTRACT_NAME_MAX as i32) as u32;
    let name = address.wrapping_add(off.unix_address_name as usize + BEFORE_NAME as usize);
    // SAFETY: copies at most ABSTRACT_NAME_MAX bytes into `names`, inside the record (asserted
    // above); only the bound name's own bytes are read.
    let read = unsafe {
        bpf_probe_read_kernel(
            addr_of_mut!((*path).names) as *mut c_void,
            len,
            name as *const c_void,
        )
    };
    if read != 0 {
        return 0;
    }
    // SAFETY: inside the record, as above.
    unsafe {
        addr_of_mut!((*path).depth).write(0);
        addr_of_mut!((*path).complete).write(0);
    }
    u64::from(len)
}

#[inline(always)]
fn count_drop() {
    if let Some(n) = EVENT_DROPS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, and BPF programs do not migrate CPUs while running.
        unsafe { *n += 1 };
    }
}

/// Takes one event's token from the policy's bucket; when there is none, counts the event as
/// suppressed (atomically: the count is exact even when CPUs race on the bucket itself).
#[inline(always)]
fn take_token(policy_id: u32, now: u64) -> bool {
    // SAFETY: AUDIT_RATE_LIMIT is a plain static the loader rewrites in .rodata; the volatile
    // read keeps the compiler from folding the zero initializer.
    let limit = unsafe { core::ptr::read_volatile(&AUDIT_RATE_LIMIT) };
    if limit.per_second == 0 {
        return true;
    }
    let full = limit.burst as u64 * TOKEN;
    let bucket = match AUDIT_RATE.get_ptr_mut(&policy_id) {
        Some(b) => b,
        None => {
            let fresh = AuditRate {
                tokens: full,
                last_ns: now,
            };
            // BPF_NOEXIST: a CPU racing to create it wins; a full map means no limit.
            let _ = AUDIT_RATE.insert(&policy_id, &fresh, 1);
            match AUDIT_RATE.get_ptr_mut(&policy_id) {
                Some(b) => b,
                None => return true,
            }
        }
    };
    // SAFETY: a valid pointer into the map value, which lives until the entry is deleted; the
    // daemon deletes only entries of detached generations. Racing updates of tokens and last_ns
    // can only make the limit a little looser.
    let b = unsafe { &mut *bucket };
    let elapsed = now.saturating_sub(b.last_ns).min(MAX_CREDIT_NS);
    let tokens = (b.tokens + elapsed * limit.per_second as u64).min(full);
    b.last_ns = now;
    if tokens >= TOKEN {
        b.tokens = tokens - TOKEN;
        return true;
    }
    b.tokens = tokens;
    count_suppressed(policy_id);
    false
}

#[inline(always)]
fn count_suppressed(policy_id: u32) {
    if let Some(n) = AUDIT_SUPPRESSED.get_ptr_mut(&policy_id) {
        // SAFETY: this CPU's slot; BPF programs do not migrate CPUs while running.
        unsafe { *n += 1 };
        return;
    }
    // First suppression of this policy on any CPU: create the entry with this CPU's count (the
    // other CPUs' slots start at zero). A CPU racing to create it may win; count again then.
    if AUDIT_SUPPRESSED.insert(&policy_id, &1, 1).is_err() {
        if let Some(n) = AUDIT_SUPPRESSED.get_ptr_mut(&policy_id) {
            // SAFETY: as above.
            unsafe { *n += 1 };
        }
    }
}
