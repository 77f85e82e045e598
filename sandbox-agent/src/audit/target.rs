//! The target of an audit record, decoded by the kind the kernel gave it: a file by identity
//! and path, a destination, a process, a capability... Each kind fills only its own fields.

use sandbox_common::{
    capability_name, key_access_name, AuditEvent, EventPath, TargetKind, NET_FAMILY_V4,
    NET_FAMILY_V6,
};
use std::{borrow::Cow, fmt::Write};

use serde::{Deserialize, Serialize};

use super::Dev;

/// `TargetKind` as records name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    None,
    File,
    Destination,
    Task,
    Capability,
    BpfCommand,
    Ioctl,
    KernelLoad,
    Socket,
    Key,
    AbstractSocket,
    /// A kind this build does not know (a newer eBPF object).
    Unknown,
}

impl From<TargetKind> for Kind {
    fn from(kind: TargetKind) -> Self {
        match kind {
            TargetKind::None => Kind::None,
            TargetKind::File => Kind::File,
            TargetKind::Destination => Kind::Destination,
            TargetKind::Task => Kind::Task,
            TargetKind::Capability => Kind::Capability,
            TargetKind::BpfCommand => Kind::BpfCommand,
            TargetKind::Ioctl => Kind::Ioctl,
            TargetKind::KernelLoad => Kind::KernelLoad,
            TargetKind::Socket => Kind::Socket,
            TargetKind::Key => Kind::Key,
            TargetKind::AbstractSocket => Kind::AbstractSocket,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target<'a> {
    #[serde(default)]
    pub kind: Kind,
    /// Files: `major:minor` of the filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<Dev>,
    /// Files: the inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// Files: the path as the kernel sees it (the real one, whatever alias the task used),
    /// under the daemon's mount points; starts with `…/` when deeper than the kernel reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Cow<'a, str>>,
    /// The path (or network) of the rule that matched.
    pub rule_path: Option<Cow<'a, str>>,
    /// Connects and sends: where to, `address:port` (`[v6]:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `capable`: the capability's name (`SYS_ADMIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// Signals and ptrace: the process acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    /// `bpf()`: the command number (`BPF_PROG_LOAD` is 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_command: Option<u64>,
    /// `ioctl`: the request (`TIOCSTI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ioctl: Option<String>,
    /// Kernel loading: what was loaded (`module`, `kexec_image`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_load: Option<String>,
    /// `socket_create`: the socket asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<Socket>,
    /// `key_permission`: the access asked for on a key the sandbox did not make (`read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_access: Option<String>,
    /// An abstract Unix socket's name, `@` first as `ss` shows it; bytes outside printable
    /// ASCII as `\xNN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Socket {
    pub family: u32,
    #[serde(rename = "type")]
    pub ty: u32,
    pub protocol: u32,
}

impl<'a> Target<'a> {
    /// The target of `event`; `rule_path` is the matched rule's, when the daemon knows it. A
    /// file's path is the one within its filesystem (see `MountTable::locate`).
    pub fn decode(event: &AuditEvent, rule_path: Option<&'a str>) -> Target<'a> {
        let rule_path = rule_path.map(Cow::Borrowed);
        let none = Target {
            rule_path,
            ..Target::default()
        };
        let Some(kind) = TargetKind::from_raw(event.target_kind) else {
            return Target {
                kind: Kind::Unknown,
                ..none
            };
        };
        let kind_only = Target {
            kind: kind.into(),
            ..none
        };
        let v = event.value;
        match kind {
            TargetKind::None => kind_only,
            TargetKind::File => Target {
                dev: Some(Dev(event.dev)),
                ino: Some(event.ino),
                path: kernel_path(&event.path).map(Cow::Owned),
                ..kind_only
            },
            TargetKind::Destination => Target {
                address: net_address(&event.net),
                ..kind_only
            },
            TargetKind::Task => Target {
                tgid: u32::try_from(v).ok(),
                ..kind_only
            },
            TargetKind::Capability => Target {
                capability: Some(capability_name(v).map_or(v.to_string(), str::to_string)),
                ..kind_only
            },
            TargetKind::BpfCommand => Target {
                bpf_command: Some(v),
                ..kind_only
            },
            TargetKind::Ioctl => Target {
                ioctl: Some(ioctl_name(v)),
                ..kind_only
            },
            TargetKind::KernelLoad => Target {
                kernel_load: Some(kernel_load_name(v)),
                ..kind_only
            },
            TargetKind::Key => Target {
                key_access: Some(key_access_name(v).map_or(v.to_string(), str::to_string)),
                ..kind_only
            },
            TargetKind::AbstractSocket => Target {
                socket_name: Some(abstract_name(&event.path, v)),
                ..kind_only
            },
            TargetKind::Socket => Target {
                socket: Some(Socket {
                    family: (v >> 32) as u32,
                    ty: (v >> 16) as u32 & 0xffff,
                    protocol: v as u32 & 0xffff,
                }),
                ..kind_only
            },
        }
    }

    /// One short word for the log line: the address, the path, the capability...
    pub fn describe(&self) -> String {
        let t = self;
        if let Some(a) = &t.address {
            return a.clone();
        }
        if let Some(p) = &t.path {
            return p.to_string();
        }
        if let Some(c) = &t.capability {
            return format!("CAP_{c}");
        }
        if let (Some(dev), Some(ino)) = (&t.dev, t.ino) {
            return format!("{dev}:{ino}");
        }
        if let Some(name) = &t.socket_name {
            return name.clone();
        }
        if let Some(access) = &t.key_access {
            return format!("key {access}");
        }
        match (t.tgid, t.bpf_command, &t.ioctl, &t.kernel_load, t.socket) {
            (Some(tgid), ..) => format!("pid {tgid}"),
            (_, Some(cmd), ..) => format!("bpf command {cmd}"),
            (_, _, Some(ioctl), ..) => ioctl.clone(),
            (_, _, _, Some(load), _) => format!("kernel {load}"),
            (.., Some(s)) => format!(
                "socket family={} type={} protocol={}",
                s.family, s.ty, s.protocol
            ),
            _ => "-".into(),
        }
    }
}

/// The ioctls the kernel side denies, by name (`DENIED_IOCTLS`).
fn ioctl_name(request: u64) -> String {
    u32::try_from(request)
        .ok()
        .and_then(sandbox_common::ioctl_name)
        .map_or_else(|| format!("{request:#x}"), Into::into)
}

/// `enum kernel_load_data_id` / `enum kernel_read_file_id` (the same order in both).
fn kernel_load_name(id: u64) -> String {
    const NAMES: [&str; 7] = [
        "unknown",
        "firmware",
        "module",
        "kexec_image",
        "kexec_initramfs",
        "policy",
        "x509_certificate",
    ];
    usize::try_from(id)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or(id.to_string(), |n| n.to_string())
}

/// The path within its filesystem from the names the kernel sent (nearest first); None when it
/// sent none.
fn kernel_path(path: &EventPath) -> Option<String> {
    let depth = (path.depth as usize).min(path.names.len());
    if depth == 0 {
        return None;
    }
    let names = || path.names[..depth].iter().map(|n| &n[..name_len(n)]);
    // Sized once: a path grown name by name is copied each time its buffer doubles.
    let mut text = String::with_capacity(names().map(|n| n.len() + 1).sum::<usize>() + 3);
    text.push_str(if path.complete != 0 { "/" } else { "…/" });
    for (i, name) in names().rev().enumerate() {
        if i > 0 {
            text.push('/');
        }
        text.push_str(&String::from_utf8_lossy(name));
    }
    Some(text)
}

/// The abstract socket name of `len` bytes the kernel copied into `path`'s names (one buffer).
fn abstract_name(path: &EventPath, len: u64) -> String {
    let bytes = path.names.as_flattened();
    let len = usize::try_from(len).map_or(bytes.len(), |n| n.min(bytes.len()));
    let mut name = String::with_capacity(len + 1);
    name.push('@');
    for &b in &bytes[..len] {
        if b.is_ascii_graphic() || b == b' ' {
            name.push(char::from(b));
        } else {
            let _ = write!(name, "\\x{b:02x}");
        }
    }
    name
}

/// The length of a NUL-terminated name.
fn name_len(name: &[u8]) -> usize {
    name.iter().position(|&b| b == 0).unwrap_or(name.len())
}

/// `a.b.c.d:port` or `[v6]:port`; None when the event carries no destination.
fn net_address(net: &sandbox_common::NetDest) -> Option<String> {
    let ip: std::net::IpAddr = match net.family as u32 {
        NET_FAMILY_V4 => {
            let mut a = [0; 4];
            a.copy_from_slice(&net.addr[..4]);
            std::net::Ipv4Addr::from(a).into()
        }
        NET_FAMILY_V6 => std::net::Ipv6Addr::from(net.addr).into(),
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, net.port).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::event;

    fn target_of(kind: TargetKind, value: u64) -> Target<'static> {
        let mut e = event();
        e.target_kind = kind as u32;
        e.value = value;
        Target::decode(&e, None)
    }

    #[test]
    fn each_kind_fills_only_its_own_fields() {
        let file = target_of(TargetKind::File, 0);
        assert_eq!(
            (file.kind, file.dev.map(|d| d.to_string()), file.ino),
            (Kind::File, Some("8:1".to_string()), Some(1234))
        );
        let task = target_of(TargetKind::Task, 4321);
        assert_eq!(
            (task.kind, task.tgid, task.ino),
            (Kind::Task, Some(4321), None)
        );
        assert_eq!(task.describe(), "pid 4321");
        let cap = target_of(TargetKind::Capability, 21);
        assert_eq!(cap.capability.as_deref(), Some("SYS_ADMIN"));
        assert_eq!(target_of(TargetKind::BpfCommand, 5).bpf_command, Some(5));
        let ioctl = target_of(TargetKind::Ioctl, u64::from(sandbox_common::TIOCSTI));
        assert_eq!(ioctl.ioctl.as_deref(), Some("TIOCSTI"));
        let snapshot = u64::from(sandbox_common::BTRFS_IOC_SNAP_CREATE_V2);
        assert_eq!(
            target_of(TargetKind::Ioctl, snapshot).describe(),
            "BTRFS_IOC_SNAP_CREATE_V2"
        );
        let key = target_of(TargetKind::Key, u64::from(sandbox_common::KEY_NEED_READ));
        assert_eq!(
            (key.kind, key.key_access.as_deref(), key.describe()),
            (Kind::Key, Some("read"), "key read".to_string())
        );
        assert_eq!(
            target_of(TargetKind::Key, 99).key_access.as_deref(),
            Some("99")
        );
        assert_eq!(
            target_of(TargetKind::KernelLoad, 2).kernel_load.as_deref(),
            Some("module")
        );
        let raw = target_of(TargetKind::Socket, sandbox_common::socket_value(2, 3, 255));
        assert_eq!(
            raw.socket,
            Some(Socket {
                family: 2,
                ty: 3,
                protocol: 255
            })
        );
        let json = serde_json::to_string(&raw).unwrap();
        assert!(json.contains(r#""kind":"socket""#), "{json}");
        let mut e = event();
        e.target_kind = TargetKind::AbstractSocket as u32;
        let name = b"/tmp/.X11-unix/X0\x00\n";
        e.path.names.as_flattened_mut()[..name.len()].copy_from_slice(name);
        e.value = name.len() as u64;
        let x11 = Target::decode(&e, None);
        assert_eq!(
            (x11.kind, x11.describe(), x11.path, x11.ino),
            (
                Kind::AbstractSocket,
                r"@/tmp/.X11-unix/X0\x00\x0a".to_string(),
                None,
                None
            ),
            "the name's own bytes, nothing past its length, unprintable bytes escaped"
        );
        assert!(!json.contains("\"ino\""), "a socket has no inode: {json}");
        let mut unknown = event();
        unknown.target_kind = 99;
        assert_eq!(Target::decode(&unknown, None).kind, Kind::Unknown);
    }

    #[test]
    fn a_record_written_before_kinds_still_reads() {
        let old = r#"{"dev":"0:24","ino":3,"path":"/root/.ssh/id","rule_path":"/root/.ssh"}"#;
        let t: Target = serde_json::from_str(old).unwrap();
        assert_eq!((t.ino, t.path.as_deref()), (Some(3), Some("/root/.ssh/id")));
    }
}
