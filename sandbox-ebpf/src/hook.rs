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
