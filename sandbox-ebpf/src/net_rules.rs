//! The network decision: which rules apply to the current program (its own, by executable
//! identity, then the policy's), and what they say about a destination address and port.

use aya_ebpf::maps::lpm_trie::Key;
use sandbox_common::{
    CgroupPolicy, InodeKey, KernelOffsets, LocalAddr, NameKey, NetDest, NetKey, NAME_KEY_LEN,
    NET_ALLOW, NET_FAMILY_V4, NET_FAMILY_V6, NET_KEY_FIXED_BITS, NET_MAX_PORT_RULES,
    POLICY_NET_BINARIES, POLICY_NET_BINARY_NAMES, POLICY_NET_DEFAULT_DENY, POLICY_NET_RULES,
    RULE_ID_FAIL_CLOSED, RULE_ID_NET_DEFAULT, RULE_ID_SELF_PROTECTION,
};

use crate::{
    file_check::inode_identity,
    kernel::{offsets, read_at, read_ptr},
    maps::{DAEMON_PORT, LOCAL_ADDRS, NET_BINARIES, NET_BINARY_NAMES, NET_RULES},
    task::current_exe_file,
    verdict::Decision,
    walk::fill_name,
};

/// Address families from <linux/socket.h>: the `sa_family` of an address (u16), and the
/// `family` argument of socket(2) (an int) for the same numbers.
pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;
pub const AF_PACKET: u16 = 17;
pub const AF_XDP: u16 = 44;

/// sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6).
const SOCKADDR_IN_LEN: i32 = 16;
const SOCKADDR_IN6_LEN: i32 = 24;

/// Whether `policy` has anything to say about network destinations.
#[inline(always)]
pub fn has_net_rules(policy: &CgroupPolicy) -> bool {
    policy.flags & (POLICY_NET_RULES | POLICY_NET_DEFAULT_DENY) != 0
}

/// How a hook got the address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// connect(2): AF_UNSPEC disconnects a socket.
    Connect,
    /// sendto/sendmsg: UDP on IPv4 sends an AF_UNSPEC address to its sin_addr.
    Send,
}

/// Decision on a connect or send to the kernel copy of a sockaddr (`addr`, `len` bytes).
#[inline(always)]
pub fn decide_address(
    policy: &CgroupPolicy,
    addr: *const u8,
    len: i32,
    via: Via,
) -> (Decision, NetDest) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let mut dest = NetDest::default();
    let Ok(family) = read_at::<u16>(addr, 0) else {
        return (fail_closed, dest);
    };
    let v4 = match family {
        AF_INET => true,
        AF_UNSPEC if via == Via::Send => true,
        AF_INET6 => false,
        // A disconnect, a Unix socket (decided by the unix_* hooks) or the kernel itself.
        AF_UNSPEC | AF_UNIX | AF_NETLINK => return (Decision::Allow, dest),
        // Any other family reaches no address these rules can name: it is only allowed when
        // the policy allows by default.
        _ if policy.flags & POLICY_NET_DEFAULT_DENY != 0 => {
            let default = Decision::Deny {
                rule_id: RULE_ID_NET_DEFAULT,
            };
            return (default, dest);
        }
        _ => return (Decision::Allow, dest),
    };
    if read_dest(addr, len, v4, &mut dest).is_err() {
        return (fail_closed, dest);
    }
    if reaches_daemon(&dest) {
        let protected = Decision::Deny {
            rule_id: RULE_ID_SELF_PROTECTION,
        };
        return (protected, dest);
    }
    (decide_dest(policy, &dest), dest)
}

/// The port of the daemon's own TCP listener (its metrics), 0 when it has none.
#[inline(always)]
pub fn daemon_port() -> u32 {
    DAEMON_PORT.get(0).copied().unwrap_or(0)
}

/// Whether `dest` is the daemon's listener port on this host: on loopback (127.0.0.0/8, ::1;
/// the unspecified address was made loopback already) or on one of the host's own addresses,
/// all of which reach a listener bound to every address. Whatever the policy's rules say.
#[inline(always)]
fn reaches_daemon(dest: &NetDest) -> bool {
    let port = daemon_port();
    if port == 0 || u32::from(dest.port) != port {
        return false;
    }
    let loopback = if dest.family == NET_FAMILY_V4 as u16 {
        dest.addr[0] == 127
    } else {
        dest.addr[..15] == [0; 15] && dest.addr[15] == 1
    };
    let local = LocalAddr {
        family: dest.family as u32,
        addr: dest.addr,
    };
    // SAFETY: only tested for presence.
    loopback || unsafe { LOCAL_ADDRS.get(&local) }.is_some()
}

/// Fills `dest` from a sockaddr_in (`v4`) or sockaddr_in6; a v4-mapped IPv6 address (which
/// reaches the IPv4 host) is decided as that IPv4 address, an unspecified one as loopback.
#[inline(always)]
fn read_dest(addr: *const u8, len: i32, v4: bool, dest: &mut NetDest) -> Result<(), i32> {
    // sin_port and sin6_port are both at offset 2, in network byte order.
    dest.port = u16::from_be(read_at::<u16>(addr, 2)?);
    if v4 {
        if len < SOCKADDR_IN_LEN {
            return Err(-1);
        }
        let a: [u8; 4] = read_at(addr, 4)?;
        dest.addr[..4].copy_from_slice(&a);
        dest.family = NET_FAMILY_V4 as u16;
        unspecified_is_loopback(dest);
        return Ok(());
    }
    if len < SOCKADDR_IN6_LEN {
        return Err(-1);
    }
    let a: [u8; 16] = read_at(addr, 8)?;
    let mapped = a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff;
    if mapped {
        dest.addr[..4].copy_from_slice(&a[12..]);
        dest.family = NET_FAMILY_V4 as u16;
    } else {
        dest.addr = a;
        dest.family = NET_FAMILY_V6 as u16;
    }
    unspecified_is_loopback(dest);
    Ok(())
}

/// A connect to `0.0.0.0` or `::` reaches the host's own loopback services: decided as
/// `127.0.0.1` or `::1`, so a rule on those covers it.
#[inline(always)]
fn unspecified_is_loopback(dest: &mut NetDest) {
    if dest.family == NET_FAMILY_V4 as u16 {
        if dest.addr[..4] == [0, 0, 0, 0] {
            dest.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        }
    } else if dest.addr == [0; 16] {
        dest.addr[15] = 1;
    }
}

#[inline(always)]
fn decide_dest(policy: &CgroupPolicy, dest: &NetDest) -> Decision {
    if let Some(d) = explicit_rule(policy, dest) {
        if matches!(d, Decision::Allow) {
            if let Some(denied) = denied_as_loopback(policy, dest) {
                return denied;
            }
        }
        return d;
    }
    if let Some(denied) = denied_as_loopback(policy, dest) {
        return denied;
    }
    if policy.flags & POLICY_NET_DEFAULT_DENY != 0 {
        return Decision::Deny {
            rule_id: RULE_ID_NET_DEFAULT,
        };
    }
    Decision::Allow
}

/// The decision of the program's own rules, then the policy's, if one names `dest`.
#[inline(always)]
fn explicit_rule(policy: &CgroupPolicy, dest: &NetDest) -> Option<Decision> {
    if policy.flags & POLICY_NET_RULES == 0 {
        return None;
    }
    let scope = binary_scope(policy);
    if scope != 0 {
        if let Some(d) = lookup(policy.policy_id, scope, dest) {
            return Some(d);
        }
    }
    lookup(policy.policy_id, 0, dest)
}

/// A destination on one of the host's own addresses reaches the host's services like loopback
/// does: a rule that denies that port on `127.0.0.1` (or `::1`) denies it there too. Only an
/// explicit deny counts, so an allow written for the host's address still works under
/// `default: deny`.
#[inline(always)]
fn denied_as_loopback(policy: &CgroupPolicy, dest: &NetDest) -> Option<Decision> {
    let local = LocalAddr {
        family: dest.family as u32,
        addr: dest.addr,
    };
    // SAFETY: only tested for presence.
    unsafe { LOCAL_ADDRS.get(&local) }?;
    let mut loopback = *dest;
    loopback.addr = [0; 16];
    if dest.family == NET_FAMILY_V4 as u16 {
        loopback.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    } else {
        loopback.addr[15] = 1;
    }
    if loopback.addr == dest.addr {
        return None;
    }
    match explicit_rule(policy, &loopback)? {
        Decision::Allow => None,
        denied => Some(denied),
    }
}

/// The first port rule of the longest prefix holding `dest` in `scope` that covers its port.
#[inline(always)]
fn lookup(policy_id: u32, scope: u32, dest: &NetDest) -> Option<Decision> {
    let bits = if dest.family == NET_FAMILY_V4 as u16 {
        32
    } else {
        128
    };
    let key = Key::new(
        NET_KEY_FIXED_BITS + bits,
        NetKey {
            policy_id,
            scope,
            family: dest.family as u32,
            addr: dest.addr,
        },
    );
    let rules = NET_RULES.get(&key)?;
    for i in 0..NET_MAX_PORT_RULES {
        if i as u32 >= rules.count {
            break;
        }
        let r = &rules.rules[i];
        if r.port_lo <= dest.port && dest.port <= r.port_hi {
            return Some(if r.action == NET_ALLOW {
                Decision::Allow
            } else {
                Decision::Deny { rule_id: r.rule_id }
            });
        }
    }
    None
}

/// The per-binary scope of the current program: 0 when it has no rules of its own (or cannot be
/// identified: then the policy's rules still apply to it).
#[inline(always)]
fn binary_scope(policy: &CgroupPolicy) -> u32 {
    if policy.flags & (POLICY_NET_BINARIES | POLICY_NET_BINARY_NAMES) == 0 {
        return 0;
    }
    let off = offsets();
    let Ok(exe) = current_exe_file() else {
        return 0;
    };
    if policy.flags & POLICY_NET_BINARIES != 0 {
        if let Ok(id) = crate::file_check::file_identity(off, exe) {
            let key = InodeKey {
                policy_id: policy.policy_id,
                dev: id.dev,
                ino: id.ino,
            };
            // SAFETY: copied out at once; see policy::current_policy.
            if let Some(scope) = unsafe { NET_BINARIES.get(&key) } {
                return *scope;
            }
        }
    }
    if policy.flags & POLICY_NET_BINARY_NAMES != 0 {
        return scope_by_name(off, policy.policy_id, exe).unwrap_or(0);
    }
    0
}

/// Scope of a binary named in the policy that did not exist at attach: by (parent directory,
/// name) of the executable's dentry.
#[inline(always)]
fn scope_by_name(off: &KernelOffsets, policy_id: u32, exe: *const u8) -> Result<u32, i32> {
    let dentry = read_ptr(exe, off.file_dentry)?;
    let parent = read_ptr(dentry, off.dentry_parent)?;
    let dir = inode_identity(off, read_ptr(parent, off.dentry_inode)?)?;
    let mut key = NameKey {
        policy_id,
        dev: dir.dev,
        parent_ino: dir.ino,
        name_len: 0,
        _pad: 0,
        name: [0; NAME_KEY_LEN],
    };
    fill_name(off, &mut key, dentry)?;
    // SAFETY: copied out at once; see policy::current_policy.
    Ok(unsafe { NET_BINARY_NAMES.get(&key).copied() }.unwrap_or(0))
}
