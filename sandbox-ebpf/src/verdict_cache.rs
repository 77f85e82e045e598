//! Allowed verdicts remembered per dentry, so that opening or running the same file again (what
//! compilers and test runners do) skips the walk up its directories.
//!
//! An entry is a stamp: one 64-bit hash of everything the walk's answer depends on, compared as a
//! whole, so a stale or torn entry never passes for a fresh one:
//! - the policy id and the access (its rule bits): a verdict holds for one policy and one access;
//! - the attachment generation (`CGROUP_GENERATION`), which every attach and detach moves: a
//!   policy id handed out again after a daemon restart finds nothing of the old one;
//! - the sequence of the kernel's `rename_lock`, which every `d_move` (rename, exchange, a
//!   directory alias spliced in) changes while it moves a dentry: the directories above the file
//!   are those the walk saw only while no rename happened anywhere since;
//! - the dentry's address, also the key: an LRU node reused for another key mid-read never
//!   matches;
//! - the time, in spans of ~69 s: the 32-bit rename sequence comes back to a value only after
//!   2^31 renames, which no host makes within one span.
//!
//! Only a file with one name is remembered or found (`i_nlink == 1`): a second name brings in
//! `LINKED_OUT`, and the walk decides. So is only a file opened under its own dentry: the walk
//! takes the device from the file's inode. A freed dentry whose memory comes back as another file's
//! is instantiated first, and `d_instantiate` drops the entry at that address. Only allows are
//! remembered: denials are rare, and each must walk to name its rule.

use aya_ebpf::{helpers::generated::bpf_ktime_get_ns, macros::lsm, programs::LsmContext};
use sandbox_common::{RULE_DENY_EXEC, RULE_DENY_READ, RULE_DENY_WRITE, RULE_OTHER_REPOSITORIES};

use crate::{
    kernel::{offsets, read_at},
    maps::{CGROUP_GENERATION, VERDICT_CACHE},
    policy::any_attached,
};

/// Filled by the daemon before load: the address of the kernel's `rename_lock` (from
/// /proc/kallsyms). Zero when it could not be read, and then nothing is remembered.
#[no_mangle]
static RENAME_LOCK: u64 = 0;

/// One stamp per kind of access, so a file read and then run keeps both.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Stamps {
    slots: [u64; 3],
}

/// BPF_NOEXIST: a concurrent first entry for the same dentry wins; ours is only lost time.
const BPF_NOEXIST: u64 = 1;

/// The cache entry a decision would read or write, worked out before the walk.
pub struct Remembered {
    dentry: u64,
    slot: usize,
    stamp: u64,
}

impl Remembered {
    /// The entry for `want`/`allow` on `dentry` (of `inode`) under `policy_id`, or `None` when
    /// the file may not be remembered: a second name, a rename under way, no `rename_lock`.
    ///
    /// Must run before the walk: the generation and the rename sequence it reads are those the
    /// walk's answer is valid for.
    #[inline(always)]
    pub fn new(
        policy_id: u32,
        want: u32,
        allow: u32,
        inode: *const u8,
        dentry: *const u8,
    ) -> Option<Self> {
        // The bits a walk is asked beside the rule bits (`RULE_OTHER_REPOSITORIES`) are part
        // of the stamp, not of the slot.
        let slot = match want & !RULE_OTHER_REPOSITORIES {
            RULE_DENY_READ => 0,
            w if w == RULE_DENY_READ | RULE_DENY_WRITE => 1,
            RULE_DENY_EXEC => 2,
            _ => return None,
        };
        let lock = rename_lock();
        if lock.is_null() {
            return None;
        }
        let generation = *CGROUP_GENERATION.get(0)?;
        // The seqcount is the lock's first word; odd while a d_move is under way.
        let sequence: u32 = read_at(lock, 0).ok()?;
        if sequence & 1 != 0 {
            return None;
        }
        let nlink: u32 = read_at(inode, offsets().inode_nlink).ok()?;
        if nlink != 1 {
            return None;
        }
        // The walk keys on the device of the file's inode, not of the dentry's: a file opened
        // under another's dentry (6.1's overlayfs opens the lower file under the overlay's) is
        // decided apart, and never remembered. A positive dentry keeps its inode for life.
        let own: *const u8 = read_at(dentry, offsets().dentry_inode).ok()?;
        if own != inode {
            return None;
        }
        let dentry = dentry as u64;
        // SAFETY: a plain helper call.
        let span = unsafe { bpf_ktime_get_ns() } >> 36;
        let mut h = mix(generation);
        h = mix(h ^ span);
        h = mix(h ^ ((policy_id as u64) << 32 | sequence as u64));
        h = mix(h ^ ((want as u64) << 32 | allow as u64));
        h = mix(h ^ dentry);
        Some(Self {
            dentry,
            slot,
            // Zero is an empty slot.
            stamp: h | 1,
        })
    }

    /// Whether an allow with this very stamp was remembered.
    #[inline(always)]
    pub fn allowed(&self) -> bool {
        // SAFETY: the value is read at once, one aligned u64 (a single load): a node the LRU
        // reuses meanwhile yields another key's stamp, which does not match.
        let Some(stamps) = (unsafe { VERDICT_CACHE.get(&self.dentry) }) else {
            return false;
        };
        let Some(slot) = stamps.slots.get(self.slot) else {
            return false;
        };
        // SAFETY: `slot` points into the map value found above.
        unsafe { core::ptr::read_volatile(slot) == self.stamp }
    }

    /// Remembers that the walk allowed this access.
    #[inline(always)]
    pub fn remember_allowed(&self) {
        if let Some(stamps) = VERDICT_CACHE.get_ptr_mut(&self.dentry) {
            // SAFETY: `stamps` points at a value of the map; one aligned u64 store, which a
            // concurrent reader sees whole or not at all.
            if let Some(slot) = unsafe { (*stamps).slots.get_mut(self.slot) } {
                // SAFETY: as above.
                unsafe { core::ptr::write_volatile(slot, self.stamp) };
            }
            return;
        }
        let mut stamps = Stamps { slots: [0; 3] };
        if let Some(slot) = stamps.slots.get_mut(self.slot) {
            *slot = self.stamp;
        }
        // A full cache evicts its least recently used entry; a failed write costs the next walk.
        let _ = VERDICT_CACHE.insert(&self.dentry, &stamps, BPF_NOEXIST);
    }
}

/// The address of `rename_lock`, null when the daemon could not give it.
#[inline(always)]
fn rename_lock() -> *const u8 {
    // SAFETY: a volatile read of a static the loader rewrites in .rodata, so the zero
    // initializer is not folded in.
    unsafe { core::ptr::read_volatile(&RENAME_LOCK) as *const u8 }
}

/// The splitmix64 finalizer: every input bit moves about half the output bits.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[lsm(hook = "d_instantiate")]
pub fn d_instantiate(ctx: LsmContext) -> i32 {
    // LSM_HOOK(void, LSM_RET_VOID, d_instantiate, struct dentry *dentry, struct inode *inode):
    // a dentry gets its file. Memory of a freed dentry that held a remembered verdict may come
    // back here for another file: drop what was remembered at this address. With nothing
    // attached, nothing is read, and the next attach's generation makes old stamps stale.
    if !any_attached() {
        return 0;
    }
    // The hook's first argument, a pointer used only as a map key.
    let dentry: u64 = ctx.arg(0);
    // Looked up first: a lookup takes no lock, and most dentries have no entry. No entry can
    // appear in between: the dentry gets its inode only after this hook, so no walk starts
    // from it, and the walks of the freed dentry it replaces ended before it was freed.
    // SAFETY: only tests the presence of a value, read nowhere.
    if unsafe { VERDICT_CACHE.get(&dentry) }.is_some() {
        let _ = VERDICT_CACHE.remove(&dentry);
    }
    0
}
