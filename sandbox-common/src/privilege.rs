//! What a confined root may not do with its privileges: the capabilities whose reach goes past
//! its sandbox, and the kernel interfaces a capability check alone does not guard.
//!
//! One table, read by the kernel programs (as the `DENIED_CAPS` mask), the policy parser (names)
//! and the README (a test holds the README's list to it).

/// One Linux capability and whether confined tasks are refused it unless their policy gives it
/// back (`capabilities.allow`).
pub struct Capability {
    pub number: u32,
    /// The name without `CAP_`, as policies write it.
    pub name: &'static str,
    /// Why it is refused; empty for the capabilities confined tasks keep.
    pub denied_because: &'static str,
    /// Why confined tasks keep it for their own files and ids and the sandbox user's only;
    /// empty for the others.
    pub narrowed_because: &'static str,
}

const fn keep(number: u32, name: &'static str) -> Capability {
    Capability {
        number,
        name,
        denied_because: "",
        narrowed_because: "",
    }
}

const fn deny(number: u32, name: &'static str, because: &'static str) -> Capability {
    Capability {
        number,
        name,
        denied_because: because,
        narrowed_because: "",
    }
}

const fn narrow(number: u32, name: &'static str, because: &'static str) -> Capability {
    Capability {
        number,
        name,
        denied_because: "",
        narrowed_because: because,
    }
}

/// Every capability of <linux/capability.h> up to CAP_CHECKPOINT_RESTORE, by number.
pub const CAPABILITIES: [Capability; 41] = [
    narrow(0, "CHOWN", "taking another user's file makes it readable, and one given to another user is trusted as theirs: only files of the task's own user and the sandbox's user change owner, and only to them"),
    narrow(1, "DAC_OVERRIDE", "reads, writes and searches past the permissions of files of the task's own user and the sandbox's user only: other users' files stay as closed to a confined root as to anyone"),
    deny(2, "DAC_READ_SEARCH", "open_by_handle_at reaches any inode of a filesystem without a path"),
    narrow(3, "FOWNER", "mode, ACLs, times, hardlinks and sticky-directory deletes of files of the task's own user and the sandbox's user only; as a shared sticky directory's owner (root owns `/tmp`), no removal of others' entries, no change of the directory, and no symlink, file or FIFO there that the kernel would trust to every user"),
    keep(4, "FSETID"),
    keep(5, "KILL"),
    narrow(6, "SETGID", "to the task's own groups, root's group and the sandbox user's groups only, no set-group-ID program made, and no other gid claimed in a message's credentials: another group's files are theirs"),
    narrow(7, "SETUID", "to the task's own uids and the sandbox's user only, no set-user-ID program made, and no other uid claimed in a message's credentials (`SCM_CREDENTIALS`, which its receiver believes): becoming another user reads their files"),
    keep(8, "SETPCAP"),
    deny(9, "LINUX_IMMUTABLE", "immutable and append-only flags outlast the sandbox and lock the owner out"),
    keep(10, "NET_BIND_SERVICE"),
    keep(11, "NET_BROADCAST"),
    deny(12, "NET_ADMIN", "interfaces, routes and NAT rules are the host's: a DNAT rule sends an allowed connect to a denied address"),
    deny(13, "NET_RAW", "raw and packet sockets forge packets and sniff the host's traffic past the address rules"),
    keep(14, "IPC_LOCK"),
    deny(15, "IPC_OWNER", "System V IPC objects of every process on the host"),
    deny(16, "SYS_MODULE", "a kernel module is code in the kernel, outside every rule"),
    deny(17, "SYS_RAWIO", "port I/O, /dev/mem and /proc/kcore read and write the whole machine"),
    keep(18, "SYS_CHROOT"),
    deny(19, "SYS_PTRACE", "ptrace and /proc/PID memory of processes of other users"),
    deny(20, "SYS_PACCT", "process accounting writes a host-wide record to a file of its choosing"),
    deny(21, "SYS_ADMIN", "mounts, namespaces (setns), swap, quotas, keyrings and hundreds of host-wide knobs"),
    deny(22, "SYS_BOOT", "reboot and kexec replace the running kernel"),
    keep(23, "SYS_NICE"),
    keep(24, "SYS_RESOURCE"),
    deny(25, "SYS_TIME", "the clock is the host's (certificates, logs, timers of every process)"),
    deny(26, "SYS_TTY_CONFIG", "vhangup and console configuration reach terminals outside the sandbox"),
    deny(27, "MKNOD", "a device node made anywhere opens a raw disk or kernel memory"),
    deny(28, "LEASE", "a lease on another user's file holds their opens of it for up to 45 s and tells the holder when they come (a file's owner needs no capability for one)"),
    keep(29, "AUDIT_WRITE"),
    deny(30, "AUDIT_CONTROL", "the host's audit rules, which watch the sandbox too"),
    deny(31, "SETFCAP", "file capabilities planted on a binary give privilege to whoever runs it later"),
    deny(32, "MAC_OVERRIDE", "overrides the host's mandatory access control"),
    deny(33, "MAC_ADMIN", "changes the host's mandatory access control policy"),
    deny(34, "SYSLOG", "the kernel log and the kernel addresses it reveals"),
    keep(35, "WAKE_ALARM"),
    keep(36, "BLOCK_SUSPEND"),
    deny(37, "AUDIT_READ", "the host's audit stream: every other process's activity"),
    deny(38, "PERFMON", "performance monitoring of the kernel and of other processes"),
    deny(39, "BPF", "BPF programs and maps, this enforcer's own among them"),
    deny(40, "CHECKPOINT_RESTORE", "checkpoint and restore interfaces (set_tid, map_files) of other processes"),
];

/// The capabilities with a reason of the kind asked for: refused (`narrowed` false) or kept
/// for the task's own and the sandbox user's files and ids only (`narrowed` true).
const fn mask(narrowed: bool) -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < CAPABILITIES.len() {
        let cap = &CAPABILITIES[i];
        let because = if narrowed {
            cap.narrowed_because
        } else {
            cap.denied_because
        };
        if !because.is_empty() {
            mask |= 1 << cap.number;
        }
        i += 1;
    }
    mask
}

/// Bit `n` set: capability `n` is refused to confined tasks unless their policy allows it.
pub const DENIED_CAPS: u64 = mask(false);

/// Bit `n` set: confined tasks keep capability `n` only for their own files and ids and the
/// sandbox user's, unless their policy gives it back whole.
pub const NARROWED_CAPS: u64 = mask(true);

pub const CAP_CHOWN: u32 = 0;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;

/// CAP_OPT_NOAUDIT from <linux/security.h>: the kernel probes a capability without meaning to
/// use it (`has_capability_noaudit`); refused all the same, but never recorded.
pub const CAP_OPT_NOAUDIT: u32 = 1 << 1;

/// The capability named `name` (`SYS_ADMIN` or `CAP_SYS_ADMIN`, any case).
pub fn capability_by_name(name: &str) -> Option<&'static Capability> {
    let bare = name
        .strip_prefix("CAP_")
        .or_else(|| name.strip_prefix("cap_"))
        .unwrap_or(name);
    CAPABILITIES
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(bare))
}

/// The name of capability `number`, if the kernel has one by that number.
pub fn capability_name(number: u64) -> Option<&'static str> {
    CAPABILITIES
        .iter()
        .find(|c| u64::from(c.number) == number)
        .map(|c| c.name)
}

/// One `ioctl` request no confined task may issue, on any file.
pub struct DeniedIoctl {
    pub request: u32,
    /// The kernel's name for it, as audit records and the README write it.
    pub name: &'static str,
    /// What it would reach past the rules.
    pub denied_because: &'static str,
}

const fn ioctl(request: u32, name: &'static str, because: &'static str) -> DeniedIoctl {
    DeniedIoctl {
        request,
        name,
        denied_because: because,
    }
}

/// `_IOW(BTRFS_IOCTL_MAGIC, nr, 4096 bytes)`: every btrfs request below takes a
/// `btrfs_ioctl_vol_args` or `_args_v2`, both 4,096 bytes, the same for 32-bit callers.
const fn btrfs_vol_ioctl(nr: u32) -> u32 {
    (1 << 30) | (4096 << 16) | (0x94 << 8) | nr
}

pub const TIOCSTI: u32 = 0x5412;
pub const TIOCLINUX: u32 = 0x541C;
pub const BTRFS_IOC_SNAP_CREATE: u32 = btrfs_vol_ioctl(1);
pub const BTRFS_IOC_SNAP_DESTROY: u32 = btrfs_vol_ioctl(15);
pub const BTRFS_IOC_SNAP_CREATE_V2: u32 = btrfs_vol_ioctl(23);
pub const BTRFS_IOC_SNAP_DESTROY_V2: u32 = btrfs_vol_ioctl(63);

/// The `ioctl` requests `file_ioctl` and `file_ioctl_compat` refuse to confined tasks, root or
/// not, whatever the policy. One table, read by the kernel programs, the audit names and the
/// README (a test holds the README's list to it).
pub const DENIED_IOCTLS: [DeniedIoctl; 6] = [
    ioctl(TIOCSTI, "TIOCSTI", "pushes input into a terminal, where it runs in the shell of whoever owns it, outside the sandbox"),
    ioctl(TIOCLINUX, "TIOCLINUX", "the same on a virtual console (paste from its selection)"),
    ioctl(BTRFS_IOC_SNAP_CREATE, "BTRFS_IOC_SNAP_CREATE", "a snapshot copies every file of a subvolume, denied ones too, under new inode identities, and opens none of them"),
    ioctl(BTRFS_IOC_SNAP_CREATE_V2, "BTRFS_IOC_SNAP_CREATE_V2", "the same"),
    ioctl(BTRFS_IOC_SNAP_DESTROY, "BTRFS_IOC_SNAP_DESTROY", "deletes a whole subvolume, protected files too, with no unlink or rmdir hook called (mounts with user_subvol_rm_allowed)"),
    ioctl(BTRFS_IOC_SNAP_DESTROY_V2, "BTRFS_IOC_SNAP_DESTROY_V2", "the same"),
];

/// Whether confined tasks are refused `ioctl` request `request`.
#[inline(always)]
pub fn ioctl_denied(request: u32) -> bool {
    // Unrolled over a constant table in the kernel programs: six compares, no map.
    let mut i = 0;
    while i < DENIED_IOCTLS.len() {
        if DENIED_IOCTLS[i].request == request {
            return true;
        }
        i += 1;
    }
    false
}

/// The `ioctl` requests that set a file's inode flags (`chattr`: no-dump, no-atime, no-COW,
/// sync...) and its extended attributes of the same kind (project id, extent size hint):
/// `FS_IOC_SETFLAGS`, its 32-bit twin `FS_IOC32_SETFLAGS`, and `FS_IOC_FSSETXATTR`. Decided
/// as changes of the file (`deny_write`, `allow_write`), not refused outright.
pub const INODE_FLAG_IOCTLS: [u32; 3] = [0x4008_6602, 0x4004_6602, 0x401c_5820];

/// Whether `ioctl` request `request` sets inode flags (see `INODE_FLAG_IOCTLS`).
#[inline(always)]
pub fn sets_inode_flags(request: u32) -> bool {
    request == INODE_FLAG_IOCTLS[0]
        || request == INODE_FLAG_IOCTLS[1]
        || request == INODE_FLAG_IOCTLS[2]
}

/// The name of a denied `ioctl` request.
pub fn ioctl_name(request: u32) -> Option<&'static str> {
    DENIED_IOCTLS
        .iter()
        .find(|i| i.request == request)
        .map(|i| i.name)
}

/// `enum key_need_perm` of <linux/key.h> (5.8 and later): what a `key_permission` check asks.
pub const KEY_NEED_READ: u32 = 2;
pub const KEY_NEED_WRITE: u32 = 3;
pub const KEY_NEED_SEARCH: u32 = 4;
pub const KEY_NEED_LINK: u32 = 5;
pub const KEY_NEED_SETATTR: u32 = 6;
pub const KEY_NEED_UNLINK: u32 = 7;

/// The accesses a confined task is refused on a key its own sandbox did not make (and `link`
/// on its own keys too: see the kernel side's `keyrings`), with the names audit records give
/// them: reading its payload (a Kerberos ticket, a token a tool stored), changing it or adding
/// to a keyring (what the owner's later programs find there), linking, changing its owner,
/// permissions or expiry, and unlinking. Viewing a key's description stays allowed, and so
/// does searching, but for `KEYCTL_GUARDED_KEY_ACCESS`.
pub const GUARDED_KEY_ACCESS: [(u32, &str); 5] = [
    (KEY_NEED_READ, "read"),
    (KEY_NEED_WRITE, "write"),
    (KEY_NEED_LINK, "link"),
    (KEY_NEED_SETATTR, "setattr"),
    (KEY_NEED_UNLINK, "unlink"),
];

/// Whether `need` is one of `GUARDED_KEY_ACCESS`.
#[inline(always)]
pub fn key_access_guarded(need: u32) -> bool {
    key_access_in(&GUARDED_KEY_ACCESS, need)
}

/// Whether `need` is in `table`: unrolled over a constant table in the kernel programs, as
/// `ioctl_denied`.
#[inline(always)]
fn key_access_in(table: &[(u32, &str)], need: u32) -> bool {
    let mut i = 0;
    while i < table.len() {
        if table[i].0 == need {
            return true;
        }
        i += 1;
    }
    false
}

/// The accesses refused on a key the sandbox did not make only when the task asks them through
/// the `keyctl` system call itself. Searching is what the kernel's own lookups on a task's
/// behalf ask (fscrypt v1 keys, AFS tokens, found while the task opens a file), so it cannot be
/// refused always; but `keyctl` operations that ask only it reach a key found: signing or
/// decrypting with a private key someone outside loaded (`pkey_sign`, `pkey_decrypt`), and
/// invalidating it (`keyctl invalidate`: the owner's Kerberos ticket gone).
pub const KEYCTL_GUARDED_KEY_ACCESS: [(u32, &str); 1] = [(KEY_NEED_SEARCH, "search")];

/// Whether `need` is one of `KEYCTL_GUARDED_KEY_ACCESS`.
#[inline(always)]
pub fn key_access_guarded_in_keyctl(need: u32) -> bool {
    key_access_in(&KEYCTL_GUARDED_KEY_ACCESS, need)
}

/// The name of a guarded key access, as audit records give it.
pub fn key_access_name(need: u64) -> Option<&'static str> {
    GUARDED_KEY_ACCESS
        .iter()
        .chain(KEYCTL_GUARDED_KEY_ACCESS.iter())
        .find(|(n, _)| u64::from(*n) == need)
        .map(|(_, name)| *name)
}

/// `key_alloc` flags of <linux/key.h> for keys a sandbox's task gets made that are not the
/// sandbox's own: the user's keyrings (`KEY_ALLOC_UID_KEYRING`: `@u` and `@us`, which every
/// later process of the uid shares), keys outside any quota (the persistent keyring, request
/// authorizations) and built-in ones.
pub const KEY_ALLOC_NOT_IN_QUOTA: u64 = 0x0002;
pub const KEY_ALLOC_BUILT_IN: u64 = 0x0004;
pub const KEY_ALLOC_UID_KEYRING: u64 = 0x0010;
pub const KEY_ALLOC_NOT_THE_SANDBOXS: u64 =
    KEY_ALLOC_NOT_IN_QUOTA | KEY_ALLOC_BUILT_IN | KEY_ALLOC_UID_KEYRING;

/// Character devices that are the machine's memory or I/O ports (major 1 of <linux/major.h>):
/// /dev/mem, /dev/kmem, /dev/port, as kernel `dev_t`s (`major << 20 | minor`).
pub const MEMORY_DEVICES: [u32; 3] = [1 << 20 | 1, 1 << 20 | 2, 1 << 20 | 4];

/// SCSI generic devices (`/dev/sgN`, major 21 of <linux/major.h>): a descriptor open for
/// writing sends `WRITE` commands to the disk (`SG_IO`) with no capability. The other character
/// devices that pass commands to a disk or the TPM have majors the kernel hands out at boot,
/// which the daemon reads from `/proc/devices` (`KernelOffsets::command_majors`).
pub const SCSI_GENERIC_MAJOR: u32 = 21;
/// Names in `/proc/devices` of the character devices that pass commands to hardware holding
/// the host's data or secrets: the block layer's SCSI passthrough (`/dev/bsg/*`), NVMe
/// controllers (`/dev/nvme0`) and NVMe namespaces' generic devices (`/dev/ng0n1`, whose write
/// commands need only a writable open), the TPM (`/dev/tpmN` and `/dev/tpmrmN`: root
/// unseals with it the secrets the host sealed to its boot state, a disk's key among them),
/// and raw HID (`/dev/hidrawN`: a keyboard's keystrokes, a security key's requests).
pub const COMMAND_DEVICES: [&str; 5] = ["bsg", "nvme", "nvme-generic", "tpm", "hidraw"];
/// Majors of the character devices that carry what the host's people type and see: virtual
/// consoles and serial ports (4: `tty1`, a serial console's login at `ttyS0`), virtual console
/// memory (7: `/dev/vcs*`, the console's screen), input events (13: `/dev/input/*`, every
/// keyboard and mouse), framebuffers (29: `/dev/fb0`, what the screen shows).
pub const CONSOLE_MAJORS: [u32; 4] = [4, 7, 13, 29];
/// ... and single devices of that kind, as kernel `dev_t`s: `/dev/console` (5:1), and the
/// misc devices that make a keyboard from user space, whose keystrokes go to the developer's
/// desktop session (`/dev/uinput` 10:223, `/dev/uhid` 10:239).
pub const CONSOLE_DEVICES: [u32; 3] = [5 << 20 | 1, 10 << 20 | 223, 10 << 20 | 239];
/// Majors of the pseudo-terminals' slave ends (`/dev/pts/N`, <linux/major.h>'s
/// `UNIX98_PTY_SLAVE_MAJOR` and the seven after it): a confined task opens only its own
/// (`terminals` in sandbox-ebpf), not the developer's other sessions.
pub const PTY_SLAVE_MAJORS: core::ops::RangeInclusive<u32> = 136..=143;
/// The filesystem of those slave ends: the kernel opens a pseudo-terminal only at its name
/// there (a node with its number made elsewhere gets `EIO`).
pub const DEVPTS_SUPER_MAGIC: u64 = 0x1cd1;
/// `/dev/tpm0`, the first TPM, which the kernel puts at misc minor 224 (<linux/miscdevice.h>)
/// rather than under the `tpm` major, as a kernel `dev_t`.
pub const TPM_LEGACY_DEVICE: u32 = 10 << 20 | 224;

/// Superblock magics of the filesystems whose files are the kernel's own knobs, where a
/// confined task may create, change, rename or remove nothing (no open for writing, no path
/// change, no truncation, mode, owner or extended attribute): cgroupfs, sysfs, bpffs (the
/// enforcer's pins), securityfs, debugfs, tracefs, configfs, efivarfs, pstore, binfmt_misc (an
/// interpreter registered there runs for every exec on the host), fusectl, selinuxfs.
pub const KERNEL_FS_MAGICS: [u64; 13] = [
    0x6367_7270, // CGROUP2_SUPER_MAGIC
    0x0027_e0eb, // CGROUP_SUPER_MAGIC
    0x6265_6572, // SYSFS_MAGIC
    0xcafe_4a11, // BPF_FS_MAGIC
    0x7363_6673, // SECURITYFS_MAGIC
    0x6462_6720, // DEBUGFS_MAGIC
    0x7472_6163, // TRACEFS_MAGIC
    0x6265_6570, // CONFIGFS_MAGIC
    0xde5e_81e4, // EFIVARFS_MAGIC
    0x6165_676c, // PSTOREFS_MAGIC
    0x4249_4e4d, // BINFMTFS_MAGIC
    0x6573_5543, // FUSE_CTL_SUPER_MAGIC
    0xf97c_ff8c, // SELINUX_MAGIC
];

/// procfs: writes are allowed only below a process's own directory (`/proc/<pid>/...`, which
/// `/proc/self` resolves to); `/proc/sys`, `/proc/sysrq-trigger` and every other top-level
/// entry are the host's. `/proc/kcore` cannot be opened at all.
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;
/// POSIX message queues (`mq_open`): not files anything runs or reads later, and outside every
/// directory an `allow_write` policy could list.
pub const MQUEUE_MAGIC: u64 = 0x1980_0202;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_btrfs_requests_are_the_kernels_numbers() {
        // From <linux/btrfs.h> as the kernel's headers build them (printed by a C program).
        assert_eq!(BTRFS_IOC_SNAP_CREATE, 0x5000_9401);
        assert_eq!(BTRFS_IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(BTRFS_IOC_SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(BTRFS_IOC_SNAP_DESTROY_V2, 0x5000_943f);
    }

    #[test]
    fn every_denied_request_is_denied_and_named_once() {
        for (i, d) in DENIED_IOCTLS.iter().enumerate() {
            assert!(ioctl_denied(d.request), "{}", d.name);
            assert_eq!(ioctl_name(d.request), Some(d.name));
            assert!(DENIED_IOCTLS[..i].iter().all(|e| e.request != d.request));
        }
        assert!(!ioctl_denied(0x541B), "FIONREAD stays allowed");
        for flags in INODE_FLAG_IOCTLS {
            assert!(sets_inode_flags(flags) && !ioctl_denied(flags));
        }
        assert!(!sets_inode_flags(0x8008_6601), "FS_IOC_GETFLAGS only reads");
    }

    #[test]
    fn every_guarded_key_access_is_guarded_and_named_and_view_is_not() {
        for (need, name) in GUARDED_KEY_ACCESS {
            assert!(key_access_guarded(need), "{name}");
            assert!(
                !key_access_guarded_in_keyctl(need),
                "{name} is guarded always"
            );
            assert_eq!(key_access_name(need.into()), Some(name));
        }
        for (need, name) in KEYCTL_GUARDED_KEY_ACCESS {
            assert!(key_access_guarded_in_keyctl(need), "{name}");
            assert!(
                !key_access_guarded(need),
                "{name}: the kernel's own lookups ask it"
            );
            assert_eq!(key_access_name(need.into()), Some(name));
        }
        // KEY_NEED_VIEW: describing a key.
        assert!(!key_access_guarded(1) && !key_access_guarded_in_keyctl(1));
    }
}
