//! The kernel keyrings: a confined task reads, changes, links or unlinks only the keys its own
//! sandbox made. The runner's session keyring and the user's keyrings hold credentials that no
//! file rule names (Kerberos tickets in a `KEYRING:` cache, tokens a tool stored with
//! `keyctl`), and what the sandbox adds to them the owner's later programs find. Nor does
//! `keyctl` itself find the other keys, so its operations that ask only a search (invalidation,
//! public-key operations) reach none. Keys are marked as a sandbox's where they are made
//! (`key_alloc`).

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    key_access_guarded, key_access_guarded_in_keyctl, HOOK_KEY_ALLOC, HOOK_KEY_PERMISSION,
    KEY_ALLOC_NOT_IN_QUOTA, KEY_ALLOC_NOT_THE_SANDBOXS, KEY_NEED_LINK,
};

use crate::{
    guard::deny,
    hook::{earlier_denial, untyped_arg},
    kernel::{offsets, read_at},
    maps::KEY_OWNERS,
    policy::confining_attachment,
    target::Target,
    task::acting_as_itself,
};

#[lsm(hook = "key_alloc")]
pub fn key_alloc(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, key_alloc, struct key *key, const struct cred *cred,
    //          unsigned long flags)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    // Every key is made here, and BPF cannot hook `key_free`: a key at an address where a
    // sandbox's freed key was must lose that mark now, whoever makes it.
    let key: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(2);
    let sandbox = match confining_attachment() {
        Some(confining) if acting_as_itself() => Some(confining),
        _ => None,
    };
    match sandbox {
        Some((_, policy)) if flags & KEY_ALLOC_NOT_IN_QUOTA != 0 => {
            // What a task asks for outside its quota is the persistent keyring, or the
            // authorization of a `request_key` callout, which would start the host's
            // /sbin/request-key as root, outside every cgroup, with the caller's text.
            let _ = KEY_OWNERS.remove(&key);
            deny(&policy, HOOK_KEY_ALLOC, Target::None)
        }
        Some((attachment, _)) if flags & KEY_ALLOC_NOT_THE_SANDBOXS == 0 => {
            // Past the map's size the least recently used mark goes: that key's own sandbox
            // is then refused it too, which is never more access.
            let _ = KEY_OWNERS.insert(&key, &attachment, 0);
            0
        }
        _ => {
            let _ = KEY_OWNERS.remove(&key);
            0
        }
    }
}

/// `__X32_SYSCALL_BIT`: x86-64's x32 ABI enters the same system calls with this bit set in
/// the number (no other architecture has system call numbers that high).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Whether the current task is in the `keyctl` system call, as opposed to kernel code looking
/// keys up on its behalf while it is in another (fscrypt during an `open`).
#[inline(always)]
fn in_keyctl() -> bool {
    let off = offsets();
    // SAFETY: plain helper calls. bpf_task_pt_regs takes the trusted task pointer that
    // bpf_get_current_task_btf returns; its result is only read through bpf_probe_read_kernel.
    let regs = unsafe {
        aya_ebpf::helpers::bpf_task_pt_regs(aya_ebpf::helpers::bpf_get_current_task_btf())
    } as *const u8;
    match read_at::<u64>(regs, off.pt_regs_syscall_nr) {
        Ok(nr) => {
            // The low 32 bits, as the kernel's own dispatch reads them (a 64-bit caller's upper
            // half is whatever it put there).
            let nr = nr as u32 & !X32_SYSCALL_BIT;
            nr == u32::from(off.keyctl_nr) || nr == u32::from(off.keyctl_compat_nr)
        }
        // Unreadable: treated as keyctl, so the rule applies (fail closed).
        Err(_) => true,
    }
}

#[lsm(hook = "key_permission")]
pub fn key_permission(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, key_permission, key_ref_t key_ref, const struct cred *cred,
    //          enum key_need_perm need_perm)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    let need: u32 = ctx.arg(2);
    let in_keyctl_only = key_access_guarded_in_keyctl(need);
    if !in_keyctl_only && !key_access_guarded(need) {
        return 0;
    }
    let Some((attachment, policy)) = confining_attachment() else {
        return 0;
    };
    if !acting_as_itself() || (in_keyctl_only && !in_keyctl()) {
        return 0;
    }
    // Bit 0 of a key_ref_t says whether the task possesses the key; the rest is its address.
    let Ok(key_ref) = untyped_arg(&ctx, 0) else {
        return deny(&policy, HOOK_KEY_PERMISSION, Target::Key(need));
    };
    let key = key_ref & !1;
    // Linking is refused even for the sandbox's own keys: `keyctl session_to_parent` asks it
    // of the caller's session keyring, and hands that keyring to a parent that may run outside
    // (its later keys would be the sandbox's to read).
    // SAFETY: copied out at once; a concurrent update shows the old or the new value.
    if need != KEY_NEED_LINK && unsafe { KEY_OWNERS.get(&key).copied() } == Some(attachment) {
        return 0;
    }
    // EPERM, not EACCES: keyctl_read lets a possessed key be read after an EACCES.
    deny(&policy, HOOK_KEY_PERMISSION, Target::Key(need))
}
