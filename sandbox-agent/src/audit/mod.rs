//! Audit records: decoding kernel events into JSON lines (`target`: what the event is about),
//! and the log they are appended to (`log`).

mod log;
mod target;

use std::{
    borrow::Cow,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

pub use log::{rotated, AuditLog};
pub use target::Target;

use sandbox_common::{
    hook_name, AuditEvent, ACTION_AUDIT, ACTION_DENY, HOOK_BPF, HOOK_CAPABLE, HOOK_FILE_FCNTL,
    HOOK_FILE_IOCTL, HOOK_FILE_IOCTL_COMPAT, HOOK_FILE_OPEN, HOOK_FILE_RECEIVE, HOOK_FILE_TRUNCATE,
    HOOK_INODE_REMOVEXATTR, HOOK_INODE_REMOVE_ACL, HOOK_INODE_SETATTR, HOOK_INODE_SETXATTR,
    HOOK_INODE_SET_ACL, HOOK_KERNEL_LOAD_DATA, HOOK_KERNEL_MODULE_REQUEST, HOOK_KERNEL_READ_FILE,
    HOOK_KEY_ALLOC, HOOK_KEY_PERMISSION, HOOK_MOVE_MOUNT, HOOK_PATH_CHMOD, HOOK_PATH_CHOWN,
    HOOK_PATH_LINK, HOOK_PATH_MKDIR, HOOK_PATH_MKNOD, HOOK_PATH_RENAME, HOOK_PATH_RMDIR,
    HOOK_PATH_SYMLINK, HOOK_PATH_TRUNCATE, HOOK_PATH_UNLINK, HOOK_PTRACE, HOOK_SB_MOUNT,
    HOOK_SOCKET_BIND, HOOK_SOCKET_CONNECT, HOOK_SOCKET_SENDMSG, HOOK_SOCKET_SETSOCKOPT,
    HOOK_TASK_ALLOC, HOOK_TASK_FIX_SETGID, HOOK_TASK_FIX_SETGROUPS, HOOK_TASK_FIX_SETUID,
    HOOK_TASK_KILL, HOOK_TASK_SETIOPRIO, HOOK_TASK_SETNICE, HOOK_TASK_SETRLIMIT,
    HOOK_TASK_SETSCHEDULER, HOOK_URING_OVERRIDE_CREDS, NARROWED_CAPS, RULE_ID_FAIL_CLOSED,
    RULE_ID_FILELESS, RULE_ID_NET_DEFAULT, RULE_ID_NET_RAW, RULE_ID_NOT_ALLOWED,
    RULE_ID_NOT_WRITABLE, RULE_ID_OTHER_NAMES, RULE_ID_OTHER_REPOSITORY, RULE_ID_RESERVED_PORT,
    RULE_ID_ROOT_SHARED, RULE_ID_SELF_PROTECTION, RULE_ID_UNIX_ABSTRACT,
    RULE_ID_UNIX_ABSTRACT_INSIDE, RULE_ID_UNIX_DEFAULT, RULE_ID_UNIX_ROOT,
};
use serde::{Deserialize, Serialize};

/// One audit record as written to the log (one JSON object per line). The daemon builds each
/// in place from a kernel event and writes it at once: its text borrows what exists already
/// (the policy's and rule's names, the time of the batch, the event's `comm`). Read back from a
/// log, every field is owned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord<'a> {
    pub time: Cow<'a, str>,
    pub action: Cow<'a, str>,
    pub hook: Cow<'a, str>,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub comm: Cow<'a, str>,
    pub cgroup_id: u64,
    pub cgroup: Option<Cow<'a, str>>,
    pub policy: Option<Cow<'a, str>>,
    pub rule: Option<Cow<'a, str>>,
    pub target: Target<'a>,
    /// The program that acted, by identity: `major:minor` and inode of its executable.
    pub exe: Option<Exe>,
    /// On `"action": "suppressed"` records only: how many events of this policy the kernel's
    /// rate limit counted instead of sending since the previous such record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
}

/// The record that accounts for `count` events the rate limit suppressed.
pub fn suppressed_record(time: SystemTime, ctx: &Context, count: u64) -> AuditRecord<'_> {
    AuditRecord {
        time: humantime::format_rfc3339_millis(time).to_string().into(),
        action: "suppressed".into(),
        hook: "".into(),
        pid: 0,
        tgid: 0,
        uid: 0,
        comm: "".into(),
        cgroup_id: 0,
        cgroup: ctx.cgroup.as_deref().map(Cow::Borrowed),
        policy: ctx.policy.as_deref().map(Cow::Borrowed),
        rule: None,
        target: Target::default(),
        exe: None,
        suppressed: Some(count),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exe {
    pub dev: Dev,
    pub ino: u64,
}

/// A device number in the kernel's encoding (`dev_t`: major << 20 | minor), written as
/// `major:minor` with no text kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dev(pub u32);

impl std::fmt::Display for Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0 >> 20, self.0 & 0xfffff)
    }
}

impl Serialize for Dev {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dev {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        text.split_once(':')
            .and_then(|(major, minor)| {
                let (major, minor) = (major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?);
                (major < 1 << 12 && minor < 1 << 20).then_some(Dev(major << 20 | minor))
            })
            .ok_or_else(|| serde::de::Error::custom(format!("not a major:minor device: {text}")))
    }
}

/// What the daemon knows about a policy id, to enrich a raw event.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub cgroup: Option<String>,
    pub policy: Option<String>,
    /// (rule text, resolved path) for the event's rule id.
    pub rule: Option<(String, String)>,
}

/// Converts the kernel's boot-time clock to wall-clock time.
#[derive(Clone, Copy)]
pub struct Clock {
    boot_epoch: SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let since_boot = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        Self {
            boot_epoch: SystemTime::now() - since_boot,
        }
    }

    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        self.boot_epoch + Duration::from_nanos(boot_ns)
    }
}

/// The records' time text, formatted again only when the millisecond changes: a flood's events
/// come many to a millisecond.
pub struct TimeText {
    clock: Clock,
    millis: u64,
    text: String,
}

impl TimeText {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            millis: u64::MAX,
            text: String::new(),
        }
    }

    /// RFC 3339 with milliseconds, of the kernel's boot-time `boot_ns`.
    pub fn at(&mut self, boot_ns: u64) -> &str {
        // Keyed on the wall clock's millisecond, not the boot clock's: the two are not aligned
        // to the same millisecond, and a boot-clock key would show some events 1 ms early.
        let wall = self.clock.wall(boot_ns);
        let millis = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        if millis != self.millis {
            self.millis = millis;
            self.text.clear();
            let _ = write!(self.text, "{}", humantime::format_rfc3339_millis(wall));
        }
        &self.text
    }
}

/// The record of `event`, stamped `time` (see `TimeText`) and described by `ctx`.
pub fn decode<'a>(event: &'a AuditEvent, time: &'a str, ctx: &'a Context) -> AuditRecord<'a> {
    let comm_len = event
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(event.comm.len());
    let rule: Option<Cow<'a, str>> = match event.rule_id {
        RULE_ID_FAIL_CLOSED => Some("fail-closed (kernel data unreadable or path too deep)".into()),
        RULE_ID_NOT_ALLOWED => Some("allow_exec (not under any listed path)".into()),
        RULE_ID_NOT_WRITABLE => Some("allow_write (not under any listed path)".into()),
        RULE_ID_OTHER_NAMES => Some(
            "allow_write (the file has other names, which may be outside every listed path)".into(),
        ),
        RULE_ID_FILELESS => Some("deny_fileless_exec (the file has no link)".into()),
        RULE_ID_NET_DEFAULT => Some("network.default: deny (no rule allows it)".into()),
        RULE_ID_UNIX_ABSTRACT => {
            Some("network.unix_abstract: deny (an abstract socket made outside the sandbox)".into())
        }
        RULE_ID_UNIX_ABSTRACT_INSIDE => Some(
            "network.unix_abstract: deny (an abstract socket made in the sandbox, reached from outside it)"
                .into(),
        ),
        RULE_ID_UNIX_ROOT => Some(
            "network.unix_root_allow (a server outside the sandbox, which would see root, and not listed)"
                .into(),
        ),
        RULE_ID_ROOT_SHARED => Some(
            "other users: root's entry of a shared directory, made outside the sandbox (a root working for another user)"
                .into(),
        ),
        RULE_ID_OTHER_REPOSITORY => Some(
            "other_repositories: deny (a repository other than the workspace's: .git, .hg, .jj, .sl, a bare HEAD)"
                .into(),
        ),
        RULE_ID_UNIX_DEFAULT => Some(
            "network.unix_default: deny (a server outside the sandbox, not in unix_allow)".into(),
        ),
        RULE_ID_RESERVED_PORT => Some(
            "network: no connection from a reserved port (others trust it as the host's root)"
                .into(),
        ),
        RULE_ID_NET_RAW => Some(
            "network: no raw, packet or SCTP sockets (they reach past the address rules)".into(),
        ),
        RULE_ID_SELF_PROTECTION => Some(self_protection_rule(event).into()),
        _ => ctx.rule.as_ref().map(|(r, _)| Cow::Borrowed(r.as_str())),
    };
    AuditRecord {
        time: time.into(),
        action: match event.action {
            ACTION_DENY => "deny",
            ACTION_AUDIT => "audit",
            _ => "unknown",
        }
        .into(),
        hook: hook_name(event.hook).into(),
        pid: event.pid,
        tgid: event.tgid,
        uid: event.uid,
        comm: String::from_utf8_lossy(&event.comm[..comm_len]),
        cgroup_id: event.cgroup_id,
        cgroup: ctx.cgroup.as_deref().map(Cow::Borrowed),
        policy: ctx.policy.as_deref().map(Cow::Borrowed),
        rule,
        suppressed: None,
        exe: (event.exe_ino != 0).then_some(Exe {
            dev: Dev(event.exe_dev),
            ino: event.exe_ino,
        }),
        target: Target::decode(event, ctx.rule.as_ref().map(|(_, p)| p.as_str())),
    }
}

/// What a self-protection denial protected, by hook.
fn self_protection_rule(event: &AuditEvent) -> String {
    let what = match event.hook {
        HOOK_CAPABLE if event.value < 64 && NARROWED_CAPS & (1 << event.value) != 0 => {
            "another user's file (the capability holds on the task's own and the sandbox \
             user's files only)"
        }
        HOOK_CAPABLE => "a capability that reaches past the sandbox",
        HOOK_TASK_FIX_SETUID | HOOK_TASK_FIX_SETGID | HOOK_TASK_FIX_SETGROUPS => {
            "another user's or group's ids"
        }
        HOOK_URING_OVERRIDE_CREDS => "an io_uring personality (credentials other than its own)",
        HOOK_FILE_OPEN | HOOK_FILE_RECEIVE => {
            "a host file (a disk, memory, TPM, console or input device, a terminal other than the \
             sandbox's own, /proc/kcore, a /proc file outside the task's own or of a process \
             outside the sandbox, a kernel filesystem's file for writing)"
        }
        HOOK_PATH_TRUNCATE
        | HOOK_FILE_TRUNCATE
        | HOOK_PATH_UNLINK
        | HOOK_PATH_RMDIR
        | HOOK_PATH_MKDIR
        | HOOK_PATH_MKNOD
        | HOOK_PATH_SYMLINK
        | HOOK_PATH_LINK
        | HOOK_PATH_RENAME
        | HOOK_PATH_CHMOD
        | HOOK_PATH_CHOWN
        | HOOK_INODE_SETATTR
        | HOOK_INODE_SETXATTR
        | HOOK_INODE_REMOVEXATTR
        | HOOK_INODE_SET_ACL
        | HOOK_INODE_REMOVE_ACL => "a change in a kernel filesystem (cgroupfs, sysfs, bpffs...)",
        HOOK_TASK_ALLOC => "a child made in another cgroup (clone3 CLONE_INTO_CGROUP)",
        HOOK_KERNEL_MODULE_REQUEST | HOOK_KERNEL_LOAD_DATA | HOOK_KERNEL_READ_FILE => {
            "loading a kernel module or image"
        }
        HOOK_FILE_IOCTL | HOOK_FILE_IOCTL_COMPAT => {
            "an ioctl past the rules (terminal input, btrfs snapshots, a socket's signals sent to \
             another process)"
        }
        HOOK_KEY_PERMISSION => "a key of the kernel keyrings the sandbox did not make",
        HOOK_KEY_ALLOC => "a request-key callout or the persistent keyring",
        HOOK_BPF => "bpf()",
        HOOK_TASK_KILL | HOOK_PTRACE => "signals and ptrace outside the sandbox",
        HOOK_TASK_SETNICE | HOOK_TASK_SETIOPRIO | HOOK_TASK_SETSCHEDULER | HOOK_TASK_SETRLIMIT => {
            "the priority, scheduling or limits of a process outside the sandbox"
        }
        HOOK_FILE_FCNTL => "a file's signals sent to a process other than itself (F_SETOWN)",
        HOOK_SOCKET_BIND => "a reserved port (below 1024) of the host's network namespace",
        HOOK_SOCKET_SETSOCKOPT => {
            "a port shared with sockets outside the sandbox (SO_REUSEPORT, SO_REUSEADDR on UDP)"
        }
        HOOK_SB_MOUNT | HOOK_MOVE_MOUNT => "mounts",
        HOOK_SOCKET_CONNECT | HOOK_SOCKET_SENDMSG => "the daemon's metrics listener",
        _ => "the enforcer and the host",
    };
    format!("self-protection ({what})")
}

/// A readable one-line view of a record.
pub fn format_line(r: &AuditRecord) -> String {
    if let Some(n) = r.suppressed {
        return format!(
            "{} SUPPRESSED {n} events policy={} cgroup={} (audit rate limit)",
            r.time,
            r.policy.as_deref().unwrap_or("?"),
            r.cgroup.as_deref().unwrap_or("?"),
        );
    }
    let target = r.target.describe();
    format!(
        "{} {} {} pid={} comm={} policy={} rule={} target={}{}",
        r.time,
        r.action.to_uppercase(),
        r.hook,
        r.tgid,
        r.comm,
        r.policy.as_deref().unwrap_or("?"),
        r.rule.as_deref().unwrap_or("?"),
        target,
        r.target
            .rule_path
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use sandbox_common::{
        EventPath, HOOK_MMAP_FILE, HOOK_SOCKET_CONNECT, NET_FAMILY_V4, NET_FAMILY_V6,
    };

    /// A record's time, for tests.
    pub const T: &str = "2026-12-03T10:00:00.000Z";
    pub static NO_CONTEXT: Context = Context {
        cgroup: None,
        policy: None,
        rule: None,
    };

    pub fn event() -> AuditEvent {
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"cat");
        AuditEvent {
            time_ns: 1_000_000_000,
            cgroup_id: 42,
            ino: 1234,
            exe_ino: 77,
            dev: (8 << 20) | 1,
            exe_dev: (254 << 20) | 3,
            pid: 10,
            tgid: 10,
            uid: 0,
            policy_id: 3,
            rule_id: 0,
            hook: HOOK_FILE_OPEN,
            action: ACTION_DENY,
            comm,
            net: Default::default(),
            value: 0,
            target_kind: sandbox_common::TargetKind::File as u32,
            _pad: 0,
            path: EventPath::default(),
        }
    }

    fn path_of(names: &[&str], complete: bool) -> EventPath {
        let mut path = EventPath::default();
        for (slot, name) in path.names.iter_mut().zip(names) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        path.depth = names.len() as u32;
        path.complete = complete as u32;
        path
    }

    #[test]
    fn the_kernel_path_reads_from_the_root_down() {
        let mut e = event();
        e.path = path_of(&["id_ed25519", ".ssh", "root"], true);
        let r = decode(&e, T, &NO_CONTEXT);
        assert_eq!(r.target.path.as_deref(), Some("/root/.ssh/id_ed25519"));
        assert!(format_line(&r).contains("target=/root/.ssh/id_ed25519"));
        e.path = path_of(&["f", "d"], false);
        let r = decode(&e, T, &NO_CONTEXT);
        assert_eq!(r.target.path.as_deref(), Some("…/d/f"));
        e.path = EventPath::default();
        assert_eq!(decode(&e, T, &NO_CONTEXT).target.path, None);
    }

    #[test]
    fn a_connect_event_names_its_destination() {
        let mut e = event();
        e.hook = HOOK_SOCKET_CONNECT;
        e.rule_id = RULE_ID_NET_DEFAULT;
        e.target_kind = sandbox_common::TargetKind::Destination as u32;
        e.net.family = NET_FAMILY_V4 as u16;
        e.net.addr[..4].copy_from_slice(&[169, 254, 169, 254]);
        e.net.port = 80;
        let r = decode(&e, T, &NO_CONTEXT);
        assert_eq!(r.target.address.as_deref(), Some("169.254.169.254:80"));
        assert_eq!(r.hook, "socket_connect");
        assert!(r.rule.unwrap().starts_with("network.default: deny"));
        e.net.family = NET_FAMILY_V6 as u16;
        e.net.addr = std::net::Ipv6Addr::LOCALHOST.octets();
        let r = decode(&e, T, &NO_CONTEXT);
        assert!(
            format_line(&r).contains("target=[::1]:80"),
            "{}",
            format_line(&r)
        );
        let e = event();
        let file = decode(&e, T, &NO_CONTEXT);
        assert_eq!(file.target.address, None, "file events carry no address");
        assert!(!serde_json::to_string(&file).unwrap().contains("address"));
    }

    #[test]
    fn the_acting_program_is_named_by_identity() {
        let e = event();
        let r = decode(&e, T, &NO_CONTEXT);
        assert_eq!(
            r.exe,
            Some(Exe {
                dev: Dev((254 << 20) | 3),
                ino: 77
            })
        );
        let mut kernel_thread = event();
        kernel_thread.exe_ino = 0;
        assert_eq!(decode(&kernel_thread, T, &NO_CONTEXT).exe, None);
    }

    #[test]
    fn decodes_an_event_with_context() {
        let ctx = Context {
            cgroup: Some("/sys/fs/cgroup/agent".into()),
            policy: Some("default".into()),
            rule: Some(("deny_read ~/.ssh".into(), "/root/.ssh".into())),
        };
        let e = event();
        let r = decode(&e, T, &ctx);
        assert_eq!(r.action, "deny");
        assert_eq!(r.hook, "file_open");
        assert_eq!(r.comm, "cat");
        assert_eq!(r.target.dev.map(|d| d.to_string()).as_deref(), Some("8:1"));
        assert_eq!(r.policy.as_deref(), Some("default"));
        let line = format_line(&r);
        assert!(
            line.contains("DENY file_open pid=10 comm=cat policy=default"),
            "{line}"
        );
        assert!(line.ends_with("target=8:1:1234 (/root/.ssh)"), "{line}");
    }

    #[test]
    fn fail_closed_denials_say_so() {
        let mut e = event();
        e.rule_id = RULE_ID_FAIL_CLOSED;
        let ctx = Context::default();
        let r = decode(&e, T, &ctx);
        assert!(r.rule.unwrap().starts_with("fail-closed"));
    }

    #[test]
    fn exec_denials_without_a_rule_say_which_setting_denied() {
        let mut e = event();
        e.hook = HOOK_MMAP_FILE;
        e.rule_id = RULE_ID_NOT_ALLOWED;
        let r = decode(&e, T, &NO_CONTEXT);
        assert_eq!(r.hook, "mmap_file");
        assert!(r.rule.unwrap().starts_with("allow_exec"));
        e.rule_id = RULE_ID_FILELESS;
        let r = decode(&e, T, &NO_CONTEXT);
        assert!(r.rule.unwrap().starts_with("deny_fileless_exec"));
    }

    #[test]
    fn suppression_records_read_as_such() {
        let ctx = Context {
            policy: Some("p".into()),
            ..Default::default()
        };
        let r = suppressed_record(SystemTime::UNIX_EPOCH, &ctx, 123);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"suppressed\":123"), "{json}");
        assert!(format_line(&r).contains("SUPPRESSED 123 events policy=p"));
        let e = event();
        let plain = serde_json::to_string(&decode(&e, T, &ctx)).unwrap();
        assert!(!plain.contains("suppressed"), "{plain}");
    }

    #[test]
    fn devices_are_written_and_read_as_major_minor() {
        let dev = Dev((254 << 20) | 3);
        assert_eq!(serde_json::to_string(&dev).unwrap(), r#""254:3""#);
        assert_eq!(serde_json::from_str::<Dev>(r#""254:3""#).unwrap(), dev);
        for bad in [r#""254""#, r#""a:3""#, r#""4096:0""#, r#""0:1048576""#, "3"] {
            assert!(serde_json::from_str::<Dev>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_time_text_is_the_wall_clock_millisecond_of_each_event() {
        let clock = Clock::now();
        let mut times = TimeText::new(clock);
        for boot_ns in [
            5_000_000_000,
            5_000_000_001,
            5_000_999_999,
            5_001_000_000,
            7_123_456_789,
        ] {
            let expected = humantime::format_rfc3339_millis(clock.wall(boot_ns)).to_string();
            assert_eq!(times.at(boot_ns), expected, "{boot_ns}");
            assert_eq!(times.at(boot_ns), expected, "{boot_ns}, again");
        }
    }
}
