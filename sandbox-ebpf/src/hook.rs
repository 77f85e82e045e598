//! What every hook does first: read the verdict of the BPF LSM programs that ran before it.

use aya_ebpf::{programs::LsmContext, EbpfContext};

/// The verdict of the earlier programs on this hook, when it is a denial that must stand.
///
/// An LSM program's context holds the hook's `nr_args` arguments, then that verdict. It is read
/// first, with a volatile load that cannot be moved after any helper call: the 6.12 verifier
/// gives a context load of the verdict slot the bounds the register already had, so a load placed
/// after a branch on a helper's result was judged never zero and the rest of the program was
/// wired off as dead code (an exec hook that allowed everything).
#[inline(always)]
pub fn earlier_denial(ctx: &LsmContext, nr_args: usize) -> Option<i32> {
    // SAFETY: the kernel passes nr_args + 1 u64 slots to an LSM program; the verifier checks
    // this constant offset against the hook's BTF prototype at load time.
    let previous = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(nr_args)) };
    let previous = previous as i32;
    (previous != 0).then_some(previous)
}

/// Slot `n` of the context (an argument, or the verdict after the last one) as a raw u64, read
/// at a fixed offset: for a hook whose arguments differ between kernels, where reading each
/// through `LsmContext::arg` in its own branch lets the compiler merge the loads into one at a
/// computed offset, which the verifier refuses.
#[inline(always)]
pub fn slot(ctx: &LsmContext, n: usize) -> u64 {
    // SAFETY: as in `earlier_denial`: a constant offset the verifier checks against the hook's
    // prototype at load time.
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(n)) }
}

/// Argument `n` of the hook as the raw u64 the trampoline passed, for an argument whose type
/// the verifier cannot give a context load: a pointer to a struct the kernel's BTF only
/// declares (`key_ref_t` of `key_permission`), which it refuses to read at all.
#[inline(always)]
pub fn untyped_arg(ctx: &LsmContext, n: usize) -> Result<u64, i32> {
    let slot = (ctx.as_ptr() as *const u64).wrapping_add(n);
    // SAFETY: the context is the trampoline's array of the hook's argument slots on the
    // kernel stack; bpf_probe_read_kernel copies slot `n` (below the hook's argument count)
    // through the kernel's fault-tolerant accessor, and the value is only used as a number.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(slot) }
}
