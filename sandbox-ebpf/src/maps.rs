//! The maps the daemon fills (policy) and reads (events, counters).
//!
//! Policy maps are pinned by name so enforcement outlives the daemon process.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use sandbox_common::{
    AuditEvent, AuditRate, CgroupPolicy, CgroupVerdict, InodeKey, LinkedOut, LocalAddr, NameKey,
    NetKey, NetRules, RuleValue, UserGroups, AUDIT_EVENT_SIZE, MAX_CGROUPS, MAX_CGROUP_VERDICTS,
    MAX_CONFINED_TASKS, MAX_INODE_RULES, MAX_KEY_OWNERS, MAX_LINKED_OUT, MAX_LOCAL_ADDRS,
    MAX_NAME_RULES, MAX_NET_BINARIES, MAX_NET_RULES, MAX_PTY_MAKERS, MAX_SHARED_MADE,
    MAX_VERDICT_CACHE, RULE_MAP_FLAGS,
};

use crate::verdict_cache::Stamps;

/// See `sandbox_common::MAP_ANY_ATTACHED`.
#[map(name = "ANY_ATTACHED")]
pub static ANY_ATTACHED: Array<u32> = Array::pinned(1, 0);

/// See `sandbox_common::MAP_CGROUP_GENERATION`.
#[map(name = "CGROUP_GENERATION")]
pub static CGROUP_GENERATION: Array<u64> = Array::pinned(1, 0);

/// See `sandbox_common::MAP_CGROUP_VERDICTS`.
#[map(name = "CGROUP_VERDICTS")]
pub static CGROUP_VERDICTS: LruHashMap<u64, CgroupVerdict> =
    LruHashMap::pinned(MAX_CGROUP_VERDICTS, 0);

#[map(name = "CGROUP_POLICY")]
pub static CGROUP_POLICY: HashMap<u64, CgroupPolicy> = HashMap::pinned(MAX_CGROUPS, 0);

#[map(name = "INODE_RULES")]
pub static INODE_RULES: HashMap<InodeKey, RuleValue> =
    HashMap::pinned(MAX_INODE_RULES, RULE_MAP_FLAGS);

#[map(name = "NAME_RULES")]
pub static NAME_RULES: HashMap<NameKey, RuleValue> =
    HashMap::pinned(MAX_NAME_RULES, RULE_MAP_FLAGS);

/// Files hardlinked out of a protected directory after attach: see `sandbox_common::MAP_LINKED_OUT`.
#[map(name = "LINKED_OUT")]
pub static LINKED_OUT: HashMap<InodeKey, LinkedOut> = HashMap::pinned(MAX_LINKED_OUT, 0);

/// Cgroup id of the attachment that confines each confined task, by task_struct address.
/// Marked at fork and at a task's first decision; removed when the task is freed.
#[map(name = "CONFINED_TASKS")]
pub static CONFINED_TASKS: HashMap<u64, u64> = HashMap::pinned(MAX_CONFINED_TASKS, 0);

/// See `sandbox_common::MAP_USER_GROUPS`.
#[map(name = "USER_GROUPS")]
pub static USER_GROUPS: HashMap<u64, UserGroups> = HashMap::pinned(MAX_CGROUPS, 0);

/// See `sandbox_common::MAP_KEY_OWNERS`: marked, and unmarked, in `key_alloc`.
#[map(name = "KEY_OWNERS")]
pub static KEY_OWNERS: LruHashMap<u64, u64> = LruHashMap::pinned(MAX_KEY_OWNERS, 0);

/// See `sandbox_common::MAP_PTY_MAKERS`: marked, and unmarked, in `terminals::pty_made`.
/// Pinned like the keys' marks: a restarted daemon's programs still know the sandbox's terminals.
#[map(name = "PTY_MAKERS")]
pub static PTY_MAKERS: LruHashMap<u64, u64> = LruHashMap::pinned(MAX_PTY_MAKERS, 0);

/// See `sandbox_common::MAP_SHARED_MADE`: marked, and unmarked, in `root_files::inode_made`.
#[map(name = "SHARED_MADE")]
pub static SHARED_MADE: LruHashMap<u64, u64> = LruHashMap::pinned(MAX_SHARED_MADE, 0);

/// Network rules by (policy, scope, family, address prefix).
#[map(name = "NET_RULES")]
pub static NET_RULES: LpmTrie<NetKey, NetRules> = LpmTrie::pinned(MAX_NET_RULES, 0);

/// The host's own addresses (see `sandbox_common::LocalAddr`), kept current by the daemon.
#[map(name = "LOCAL_ADDRS")]
pub static LOCAL_ADDRS: HashMap<LocalAddr, u32> = HashMap::pinned(MAX_LOCAL_ADDRS, 0);

/// The daemon's own TCP listener port (`sandbox_common::MAP_DAEMON_PORT`), 0 for none.
#[map(name = "DAEMON_PORT")]
pub static DAEMON_PORT: Array<u32> = Array::pinned(1, 0);

/// Scope of the per-binary network rules of an executable, by its identity.
#[map(name = "NET_BINARIES")]
pub static NET_BINARIES: HashMap<InodeKey, u32> = HashMap::pinned(MAX_NET_BINARIES, 0);

/// Scope of the per-binary network rules of an executable created after attach, by its name.
#[map(name = "NET_BINARY_NAMES")]
pub static NET_BINARY_NAMES: HashMap<NameKey, u32> = HashMap::pinned(MAX_NET_BINARIES, 0);

/// Allowed verdicts remembered per dentry address: see `verdict_cache`. Not pinned: a cache
/// belongs to the programs that fill it.
#[map(name = "VERDICT_CACHE")]
pub static VERDICT_CACHE: LruHashMap<u64, Stamps> =
    LruHashMap::with_max_entries(MAX_VERDICT_CACHE, 0);

/// Room for ~11k events; the daemon drains it continuously.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::pinned((1 << 22) as u32, 0);

/// Audit token buckets by policy id (created by the programs on a policy's first event; the
/// daemon removes those of detached generations).
#[map(name = "AUDIT_RATE")]
pub static AUDIT_RATE: HashMap<u32, AuditRate> = HashMap::pinned(MAX_CGROUPS * 4, 0);

/// Events each policy's bucket suppressed, per CPU.
#[map(name = "AUDIT_SUPPRESSED")]
pub static AUDIT_SUPPRESSED: PerCpuHashMap<u32, u64> = PerCpuHashMap::pinned(MAX_CGROUPS * 4, 0);

/// Events lost because the ring buffer was full, per CPU.
#[map(name = "EVENT_DROPS")]
pub static EVENT_DROPS: PerCpuArray<u64> = PerCpuArray::pinned(1, 0);

// Keep the event layout visible to the compiler so size mismatches show at build time.
const _: () = assert!(core::mem::size_of::<AuditEvent>() == AUDIT_EVENT_SIZE);
