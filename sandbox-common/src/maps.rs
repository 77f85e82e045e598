//! Keys and values of the policy maps.

/// Policy attached to a cgroup: value of `CGROUP_POLICY`, keyed by the cgroup id (the cgroup
/// directory's inode number on cgroup v2).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CgroupPolicy {
    /// Generation-unique id of the compiled policy; rules are keyed by it, so an update writes a
    /// new id's rules first and then flips this value in one map update.
    pub policy_id: u32,
    /// `MODE_ENFORCE` or `MODE_AUDIT`.
    pub mode: u32,
    /// `POLICY_*` bits.
    pub flags: u32,
    /// Capabilities of `DENIED_CAPS` the policy gives back (`capabilities.allow`), bit n for
    /// capability n: the low and the high 32 bits.
    pub caps_allowed_lo: u32,
    pub caps_allowed_hi: u32,
    /// The sandbox's user (the owner of `~`) and its group (`~`'s): besides the task's own
    /// ids, the only ones whose files the capabilities of `NARROWED_CAPS` reach and whose ids
    /// a confined task may take.
    pub user_uid: u32,
    pub user_gid: u32,
}

impl CgroupPolicy {
    /// Whether a confined task may use capability `cap` under this policy.
    #[inline(always)]
    pub fn capability_allowed(&self, cap: u32) -> bool {
        if cap >= 64 {
            // No such capability: the kernel refuses it itself.
            return true;
        }
        let bit = 1u64 << cap;
        let allowed = (u64::from(self.caps_allowed_hi) << 32) | u64::from(self.caps_allowed_lo);
        crate::DENIED_CAPS & bit == 0 || allowed & bit != 0
    }

    /// Whether the policy gives capability `cap` back whole (`capabilities.allow`): one of
    /// `NARROWED_CAPS` then reaches every user's files and ids.
    #[inline(always)]
    pub fn gives_back(&self, cap: u32) -> bool {
        let allowed = (u64::from(self.caps_allowed_hi) << 32) | u64::from(self.caps_allowed_lo);
        cap < 64 && allowed & (1u64 << cap) != 0
    }
}

/// `allow_exec` is present: only files under `RULE_ALLOW_EXEC` rules may be executed or mapped
/// executable.
pub const POLICY_EXEC_ALLOWLIST: u32 = 1 << 0;
/// Executing (or mapping executable) a file that has no link left is denied: memfd, O_TMPFILE,
/// deleted binaries.
pub const POLICY_DENY_FILELESS_EXEC: u32 = 1 << 1;
/// `network.default: deny`: a connect or send to an address no rule allows is denied.
pub const POLICY_NET_DEFAULT_DENY: u32 = 1 << 2;
/// The policy has `NET_RULES` entries.
pub const POLICY_NET_RULES: u32 = 1 << 3;
/// The policy has per-binary network rules keyed by executable inode (`NET_BINARIES`).
pub const POLICY_NET_BINARIES: u32 = 1 << 4;
/// ... or by name, for binaries created after attach (`NET_BINARY_NAMES`).
pub const POLICY_NET_BINARY_NAMES: u32 = 1 << 5;
/// The policy has `unix_deny` rules (`RULE_DENY_UNIX`).
pub const POLICY_UNIX_RULES: u32 = 1 << 6;
/// `allow_write` is present: only what lies under `RULE_ALLOW_WRITE` rules may be changed.
pub const POLICY_WRITE_ALLOWLIST: u32 = 1 << 7;
/// `network.unix_abstract: deny`: an abstract Unix socket is reached only when it was made
/// inside the sandbox (by a task of the same attachment's cgroup).
pub const POLICY_UNIX_ABSTRACT: u32 = 1 << 8;
/// `network.unix_default: deny`: a confined task reaches a Unix socket server outside its
/// sandbox only at a socket file `network.unix_allow` (or `unix_root_allow`) lists.
pub const POLICY_UNIX_DEFAULT_DENY: u32 = 1 << 9;
/// `other_repositories: deny`: no change below a repository's directory (`REPOSITORY_DIRS`:
/// `.git` and other tools') but the workspace's own repository's (`RULE_OWN_REPOSITORY`), no
/// entry so named made, moved or removed, and no bare repository's `HEAD` made.
pub const POLICY_OTHER_REPOSITORIES: u32 = 1 << 10;

pub const MODE_ENFORCE: u32 = 0;
pub const MODE_AUDIT: u32 = 1;

/// Rule keyed on a canonical inode identity: kernel `dev_t` of `i_sb->s_dev` (on btrfs, the
/// subvolume's anonymous device) and inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct InodeKey {
    pub policy_id: u32,
    pub dev: u32,
    pub ino: u64,
}

/// Rule keyed on a directory entry: (parent directory inode, name of the child). It keeps a path
/// denied when the file does not exist yet or is replaced by a rename.
///
/// The name is stored inline (its first `NAME_KEY_PREFIX` bytes, zero padded, so the last byte is
/// always zero) together with its full length: the kernel side builds the key with one
/// fixed-size string copy and no loop. Two names that share their first `NAME_KEY_PREFIX` bytes
/// and their length share a rule: that can only deny more, never less.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub policy_id: u32,
    pub dev: u32,
    pub parent_ino: u64,
    pub name_len: u32,
    pub _pad: u32,
    pub name: [u8; NAME_KEY_LEN],
}

/// Bytes of a name kept in a `NameKey`.
pub const NAME_KEY_LEN: usize = 48;
/// Bytes of a name that a `NameKey` compares: a NUL-terminated string copy into `NAME_KEY_LEN`
/// bytes keeps one byte fewer.
pub const NAME_KEY_PREFIX: usize = NAME_KEY_LEN - 1;

impl NameKey {
    /// The key for `name` under a parent directory.
    pub fn new(policy_id: u32, dev: u32, parent_ino: u64, name: &[u8]) -> Self {
        let mut key = NameKey {
            policy_id,
            dev,
            parent_ino,
            name_len: name.len() as u32,
            _pad: 0,
            name: [0; NAME_KEY_LEN],
        };
        let n = name.len().min(NAME_KEY_PREFIX);
        key.name[..n].copy_from_slice(&name[..n]);
        key
    }
}

/// Value of both rule maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RuleValue {
    /// `RULE_*` bits.
    pub flags: u32,
    /// Index of the rule in the compiled policy, reported in audit events.
    pub rule_id: u32,
    /// With `RULE_PREFIX`: the chain node whose `NameKey`s (dev `CHAIN_DEV`, parent_ino = node)
    /// name the next component of a denied path that does not exist yet.
    pub next_node: u32,
    pub _pad: u32,
}

/// Deny opening this inode, or anything below it when it is a directory.
pub const RULE_DENY_READ: u32 = 1 << 0;
/// Deny executing this file, or any file below it when it is a directory.
pub const RULE_DENY_EXEC: u32 = 1 << 1;
/// With an `allow_exec` policy: executing this file, or any file below it, is allowed.
pub const RULE_ALLOW_EXEC: u32 = 1 << 2;
/// Deny connecting or sending to this Unix socket, or to any socket below this directory.
pub const RULE_DENY_UNIX: u32 = 1 << 3;
/// Deny changing this file or anything below this directory: opening for write, truncating,
/// creating, unlinking, renaming into or out of, hardlinking.
pub const RULE_DENY_WRITE: u32 = 1 << 4;
/// This directory or symlink is on the way to a denied path (an ancestor, or a symlink the path
/// goes through): a confined task may not move, remove or replace it. Moving `.git` away and
/// making a new one would leave `.git/hooks`' rules on the old directory while the owner's git
/// runs what is in the new one. Matched only on the entry being changed, not on the directories
/// above it: what is inside an ancestor stays free to change.
pub const RULE_ON_THE_WAY: u32 = 1 << 5;
/// With an `allow_write` policy: changing this file, or anything below this directory, is
/// allowed (deny_write still wins).
pub const RULE_ALLOW_WRITE: u32 = 1 << 6;
/// `network.unix_root_allow`: a confined task holding root may reach this Unix socket, or any
/// socket below this directory, though its server is outside the sandbox.
pub const RULE_ALLOW_UNIX_ROOT: u32 = 1 << 7;
/// `network.unix_allow`: under `network.unix_default: deny`, a confined task may reach this
/// Unix socket, or any socket below this directory, though its server is outside the sandbox.
pub const RULE_ALLOW_UNIX: u32 = 1 << 8;
/// Never on a rule: asked of a walk that decides a change under `other_repositories: deny`.
/// An entry named `.git` (or another of `REPOSITORY_DIRS`) on the way up, the changed entry
/// itself included, or a changed entry named `HEAD`, denies it, unless the walk passed a
/// `RULE_OWN_REPOSITORY` directory first: git runs the hooks and config of every repository it
/// finds, in the developer's next git command there (a shell prompt's `git status` included).
pub const RULE_OTHER_REPOSITORIES: u32 = 1 << 9;
/// On the workspace repository's git directories (`$GIT_DIR`, `$GIT_COMMON_DIR`) under
/// `other_repositories: deny`: what is below them is the sandbox's own repository, where the
/// policy's other rules decide.
pub const RULE_OWN_REPOSITORY: u32 = 1 << 10;
/// Never on a rule: set in a walk's `want` when it passed a repository's name under
/// `RULE_OTHER_REPOSITORIES`. A `RULE_OWN_REPOSITORY` directory further up (an
/// `own_repositories` directory) clears it; a walk that ends with it set denies.
pub const RULE_GIT_PENDING: u32 = 1 << 11;
/// Never on a rule: asked of a walk together with `RULE_ALLOW_WRITE` when the change is to the
/// file itself (its content, mode, owner, attributes). A file with other names is then allowed
/// only when the listed directory is a whole filesystem: its other names could be anywhere on
/// the filesystem, outside every listed directory, and no walk from this name would see them.
pub const WALK_ONE_NAME: u32 = 1 << 28;
/// This name is a missing directory on the way to denied paths (`~/.config` for a rule on
/// `~/.config/gcloud` written before `~/.config` existed): follow `next_node` for the next name.
pub const RULE_PREFIX: u32 = 1 << 30;
/// This rule is on a directory and denies something below it: the daemon also lists the
/// directory under `POLICY_ID_ANY`, so a hardlink made out of it later is noticed.
pub const RULE_TREE: u32 = 1 << 29;
/// This directory has `NameKey` rules for some of its children: the walk must look up the names
/// of the children it came from.
pub const RULE_NAMED_CHILDREN: u32 = 1 << 31;

/// The policy id under which `INODE_RULES` lists every directory that any attached policy
/// protects (`RULE_TREE`), whatever the policy: `path_link` walks it for every task, so a
/// hardlink made out of a protected directory, by anyone, is recorded in `LINKED_OUT`. Such an
/// entry's `next_node` counts the attached generations that protect the directory. Never
/// allocated to a policy.
pub const POLICY_ID_ANY: u32 = u32::MAX;
/// Files hardlinked out of a protected directory after attach (key: the file, policy id 0),
/// with the protected directories above the name they were linked from (`LinkedOut`): a
/// confined open of the file under its other name is decided by those directories' rules.
pub const MAP_LINKED_OUT: &str = "LINKED_OUT";

/// Protected directories a `LINKED_OUT` record keeps, nearest first: policies that protect
/// nested directories each find theirs (up to this depth of nesting).
pub const LINKED_OUT_DIRS: usize = 4;

/// Value of `LINKED_OUT`: the protected directories above the file's old name, nearest first
/// (policy id 0; unused slots are all zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LinkedOut {
    pub dirs: [InodeKey; LINKED_OUT_DIRS],
}
pub const MAX_LINKED_OUT: u32 = 65536;

/// Device of the virtual parents (chain nodes) of `RULE_PREFIX` chains; no real device has it.
pub const CHAIN_DEV: u32 = u32::MAX;
/// Most missing path components one rule can name below its deepest existing directory; a deeper
/// missing path denies the subtree at this depth (fail closed).
pub const MAX_CHAIN: usize = 4;

/// Sentinel rule id for denials that are not caused by one rule (fail-closed cases).
pub const RULE_ID_FAIL_CLOSED: u32 = u32::MAX;
/// Sentinel rule id: an `allow_exec` policy lists nothing above the executed file.
pub const RULE_ID_NOT_ALLOWED: u32 = u32::MAX - 1;
/// Sentinel rule id: `deny_fileless_exec` and the executed file has no link.
pub const RULE_ID_FILELESS: u32 = u32::MAX - 2;
/// Sentinel rule id: self-protection (bpf(), cgroup moves, signals or ptrace outside the
/// sandbox, mounts), which every policy enforces.
pub const RULE_ID_SELF_PROTECTION: u32 = u32::MAX - 3;
/// Sentinel rule id: `network.default: deny` and no rule allows the destination.
pub const RULE_ID_NET_DEFAULT: u32 = u32::MAX - 4;
/// Sentinel rule id: a raw, packet or SCTP socket under a policy with network rules (they can
/// reach addresses the rules never see).
pub const RULE_ID_NET_RAW: u32 = u32::MAX - 5;
/// Sentinel rule id: an `allow_write` policy lists nothing above the changed entry.
pub const RULE_ID_NOT_WRITABLE: u32 = u32::MAX - 6;
/// Sentinel rule id: an `allow_write` policy and the changed file has other names, which may be
/// outside every listed directory (`WALK_ONE_NAME`).
pub const RULE_ID_OTHER_NAMES: u32 = u32::MAX - 7;
/// Sentinel rule id: `network.unix_abstract: deny` and the abstract socket was made outside the
/// sandbox.
pub const RULE_ID_UNIX_ABSTRACT: u32 = u32::MAX - 8;
/// Sentinel rule id: a task outside a sandbox under `network.unix_abstract: deny` (the host's,
/// another sandbox's) reaching an abstract socket made in it (the record is under that
/// sandbox's policy).
pub const RULE_ID_UNIX_ABSTRACT_INSIDE: u32 = u32::MAX - 9;
/// Sentinel rule id: a confined task holding root reaching a Unix socket whose server is
/// outside its sandbox, which `network.unix_root_allow` does not list (the server would see
/// root).
pub const RULE_ID_UNIX_ROOT: u32 = u32::MAX - 10;
/// Sentinel rule id (every policy): a connect or send from a reserved local port (below 1024),
/// which other hosts' services trust as the host's root speaking.
pub const RULE_ID_RESERVED_PORT: u32 = u32::MAX - 11;
/// Sentinel rule id: `network.unix_default: deny` and a Unix socket whose server is outside
/// the sandbox, which neither `network.unix_allow` nor `network.unix_root_allow` lists.
pub const RULE_ID_UNIX_DEFAULT: u32 = u32::MAX - 12;
/// Sentinel rule id (every policy): a confined root working for another user opening one of
/// root's entries of a shared directory (or something below one) that its sandbox did not make:
/// a root service's private `/tmp`, a root daemon's shared memory.
pub const RULE_ID_ROOT_SHARED: u32 = u32::MAX - 13;
/// Sentinel rule id: `other_repositories: deny` and a change to another repository's `.git`
/// (or another tool's), a `.git` made, moved or removed, or a bare repository's `HEAD` made.
pub const RULE_ID_OTHER_REPOSITORY: u32 = u32::MAX - 14;

/// Deepest cgroup nesting the policy lookup examines.
pub const MAX_CGROUP_DEPTH: i32 = 32;
/// Most `d_parent` steps the inode walk takes. A walk that does not reach the filesystem root
/// within it denies (fail closed) for confined tasks.
pub const MAX_WALK_DEPTH: u32 = 48;

/// Map names, shared so the daemon and the programs cannot disagree.
pub const MAP_CGROUP_POLICY: &str = "CGROUP_POLICY";
/// One u32: 0 when no cgroup is attached anywhere (every hook leaves at once, before any
/// lookup of the task), nonzero when one may be. The daemon raises it before the first
/// attachment and lowers it only once `CGROUP_POLICY` is empty.
pub const MAP_ANY_ATTACHED: &str = "ANY_ATTACHED";
/// One u64 the daemon increments after every change to `CGROUP_POLICY` (attach, replace,
/// detach): a `CgroupVerdict` of an older generation is not used.
pub const MAP_CGROUP_GENERATION: &str = "CGROUP_GENERATION";
/// What the cgroup-ancestry walk found for a cgroup, by cgroup id (LRU: a cache), so a task
/// the programs have no mark for is decided by one lookup instead of one per level.
pub const MAP_CGROUP_VERDICTS: &str = "CGROUP_VERDICTS";
pub const MAX_CGROUP_VERDICTS: u32 = 16384;
/// Files whose allowed verdicts are remembered (the `VERDICT_CACHE` LRU map, ~80 bytes each).
pub const MAX_VERDICT_CACHE: u32 = 32768;
/// Name of the global holding the address of the kernel's `rename_lock`.
pub const GLOBAL_RENAME_LOCK: &str = "RENAME_LOCK";
/// Name of the global holding the inode number of the host's network namespace (the daemon's
/// own, `/proc/self/ns/net`); 0 when unknown, and then every namespace counts as the host's.
pub const GLOBAL_HOST_NET_NS: &str = "HOST_NET_NS";
pub const MAP_INODE_RULES: &str = "INODE_RULES";
pub const MAP_NAME_RULES: &str = "NAME_RULES";
/// Confining cgroup id of each confined task, by `task_struct` address: confinement follows
/// the task wherever it is moved.
pub const MAP_CONFINED_TASKS: &str = "CONFINED_TASKS";
/// The keys confined tasks made, by `struct key` address, with the attachment (cgroup id) whose
/// task made each: a confined task reads or changes only its own sandbox's keys.
pub const MAP_KEY_OWNERS: &str = "KEY_OWNERS";
/// Keys made inside sandboxes that are remembered (an LRU map: BPF cannot hook `key_free`);
/// past that the least recently used is its own sandbox's no more (refused like any other).
pub const MAX_KEY_OWNERS: u32 = 16384;
/// The pseudo-terminals made while a sandbox was attached, by the address of the slave end's
/// `struct tty_struct`, with the attachment (cgroup id) whose task made each; none for one made
/// outside: a confined task opens a terminal that has no session yet only when its own sandbox
/// made it. Written or removed for every pseudo-terminal made (`devpts_pty_new`), so a freed
/// terminal's entry never speaks for the next one at its address.
pub const MAP_PTY_MAKERS: &str = "PTY_MAKERS";
/// Pseudo-terminals remembered (an LRU map); past that the least recently used is its own
/// sandbox's no more (refused like any other until it has a session of the sandbox).
pub const MAX_PTY_MAKERS: u32 = 8192;
/// The inodes made directly in a directory every user shares (sticky and world-writable: `/tmp`,
/// `/var/tmp`, `/dev/shm`) while a sandbox was attached, by `struct inode` address, with the
/// attachment (cgroup id) whose task made each: a confined root working for another user opens
/// root's entries of such a directory only when its own sandbox made them. Written or removed
/// for every inode made while anything is attached (`inode_init_owner`), so a freed inode's
/// entry never speaks for the next one at its address.
pub const MAP_SHARED_MADE: &str = "SHARED_MADE";
/// Inodes remembered (an LRU map); past that the least recently used is its own sandbox's no
/// more (refused like root's others).
pub const MAX_SHARED_MADE: u32 = 65536;
/// The sandbox user's supplementary groups (`UserGroups`), by attachment (cgroup id).
pub const MAP_USER_GROUPS: &str = "USER_GROUPS";
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_EVENT_DROPS: &str = "EVENT_DROPS";

pub const MAX_CGROUPS: u32 = 4096;
/// Rule map capacity, across all attached policies and the generation being switched in: 100
/// policies of 1,000 paths each use ~100,000 of each. The maps are not preallocated
/// (`RULE_MAP_FLAGS`), so the capacity costs kernel memory only as it is used.
pub const MAX_INODE_RULES: u32 = 262_144;
pub const MAX_NAME_RULES: u32 = 262_144;
/// BPF_F_NO_PREALLOC: entries are allocated when the daemon writes them.
pub const RULE_MAP_FLAGS: u32 = 1;
/// Tasks marked as confined (`CONFINED_TASKS`); a confined task cannot fork past this many.
pub const MAX_CONFINED_TASKS: u32 = 65536;

/// Supplementary groups of the sandbox's user kept for its attachment, at most.
pub const MAX_USER_GROUPS: usize = 32;

/// Value of `USER_GROUPS`: the supplementary groups of the sandbox's user, which a confined
/// task may take besides its own (`su` and `sudo -u` to the user set them).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserGroups {
    /// How many of `gids` are the user's.
    pub count: u32,
    pub gids: [u32; MAX_USER_GROUPS],
}

/// Value of `CGROUP_VERDICTS`: the attachment (cgroup id; 0 for none) confining the cgroup's
/// tasks, as found at `generation`. Written with the generation read *before* the walk, so a
/// walk that raced an attach is tagged old and never used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupVerdict {
    pub generation: u64,
    pub attachment: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), Copy, and have no padding bytes.
    unsafe impl aya::Pod for super::CgroupPolicy {}
    unsafe impl aya::Pod for super::CgroupVerdict {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::LinkedOut {}
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::RuleValue {}
    unsafe impl aya::Pod for super::UserGroups {}
}
