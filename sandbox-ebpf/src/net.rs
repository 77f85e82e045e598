//! Network egress: `socket_connect` and `socket_sendmsg` (an unconnected send names its
//! destination: UDP sendto, TCP fast open) decide IPv4/IPv6 destinations by the policy's
//! `network` rules; `unix_stream_connect` and `unix_may_send` decide Unix sockets by the
//! identity of their socket file, whatever path alias was used to reach it, and abstract ones
//! by whether the sandbox made them.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{
    socket_value, CgroupPolicy, CRED_EUID, CRED_SUID, CRED_UID, HOOK_SOCKET_CONNECT,
    HOOK_SOCKET_CREATE, HOOK_SOCKET_SENDMSG, HOOK_UNIX_MAY_SEND, HOOK_UNIX_STREAM_CONNECT,
    POLICY_UNIX_ABSTRACT, POLICY_UNIX_DEFAULT_DENY, POLICY_UNIX_RULES, RULE_ALLOW_UNIX,
    RULE_ALLOW_UNIX_ROOT, RULE_DENY_UNIX, RULE_ID_FAIL_CLOSED, RULE_ID_NET_RAW,
    RULE_ID_NOT_ALLOWED, RULE_ID_RESERVED_PORT, RULE_ID_UNIX_ABSTRACT,
    RULE_ID_UNIX_ABSTRACT_INSIDE, RULE_ID_UNIX_DEFAULT, RULE_ID_UNIX_ROOT,
};

use crate::{
    audit,
    file_check::inode_identity,
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    net_rules::{
        daemon_port, decide_address, has_net_rules, Via, AF_INET, AF_INET6, AF_PACKET, AF_UNIX,
        AF_XDP,
    },
    other_users::cred_id,
    policy::{any_attached, attachment_of_cgroup, confining_attachment, current_policy},
    target::{FileId, Target},
    task::{acting_as_itself, current_cred},
    verdict::{apply, enforce, Decision},
    walk::check_dentry,
};

#[lsm(hook = "socket_connect")]
pub fn socket_connect(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, socket_connect, struct socket *sock, struct sockaddr *address,
    //          int addrlen)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_address(
        ctx.arg(0),
        ctx.arg(1),
        ctx.arg(2),
        Via::Connect,
        HOOK_SOCKET_CONNECT,
    )
}

#[lsm(hook = "socket_sendmsg")]
pub fn socket_sendmsg(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    // Runs on every send: a send without an address goes where connect already decided.
    let off = offsets();
    let msg: *const u8 = ctx.arg(1);
    let (name, len) = match read_at::<*const u8>(msg, off.msghdr_name) {
        Ok(name) if name.is_null() => return verdict_on_connected_unix(ctx.arg(0)),
        Ok(name) => (name, read_at::<i32>(msg, off.msghdr_namelen).unwrap_or(0)),
        // Unreadable: fails closed below for confined tasks.
        Err(_) => (core::ptr::null(), 0),
    };
    verdict_on_address(ctx.arg(0), name, len, Via::Send, HOOK_SOCKET_SENDMSG)
}

#[inline(always)]
fn verdict_on_address(sock: *const u8, addr: *const u8, len: i32, via: Via, hook: u32) -> i32 {
    let Some(policy) = current_policy() else {
        return 0;
    };
    let from_reserved_port = from_reserved_port(sock);
    if !from_reserved_port && !has_net_rules(&policy) && daemon_port() == 0 {
        return 0;
    }
    let (decision, dest) = match decide_address(&policy, addr, len, via) {
        // Only a destination an inet address names: a Unix socket or a disconnect is not
        // reached from a port.
        (Decision::Allow, dest) if from_reserved_port && dest.family != 0 => {
            let reserved = Decision::Deny {
                rule_id: RULE_ID_RESERVED_PORT,
            };
            (reserved, dest)
        }
        decided => decided,
    };
    let (ret, action) = apply(&policy, &decision);
    if let (Some(action), Decision::Deny { rule_id }) = (action, &decision) {
        audit::emit_net(&policy, hook, action, *rule_id, &dest);
    }
    ret
}

/// Ports below this are reserved to root (`PROT_SOCK`): a service elsewhere that sees a
/// connection from one (NFS with its default `secure` export option, rsh) trusts what it says
/// about its user (AUTH_SYS: any uid) as the host's root speaking.
pub const RESERVED_PORTS: u16 = 1024;

/// Whether `sock` (a `struct socket`) is an inet socket bound to a reserved local port, from
/// which a confined task connects or sends to no one (every policy): a confined root may bind
/// one (`NET_BIND_SERVICE` stays, for servers), but speaking from it to NFS would read every
/// user's files there. Unreadable counts as reserved (fail closed).
#[inline(always)]
fn from_reserved_port(sock: *const u8) -> bool {
    let off = offsets();
    let Ok(sk) = read_ptr(sock, off.socket_sk) else {
        return true;
    };
    match read_at::<u16>(sk, off.sock_family) {
        Ok(AF_INET | AF_INET6) => {}
        Ok(_) => return false,
        Err(_) => return true,
    }
    read_at::<u16>(sk, off.sock_num).map_or(true, |port| port != 0 && port < RESERVED_PORTS)
}

/// A send without an address on a connected Unix socket goes to the socket it was connected
/// to: decided by that socket's file like a connect, so a connection made outside the sandbox
/// and handed in (inherited, passed over a socket) reaches nothing `unix_deny` lists.
#[inline(always)]
fn verdict_on_connected_unix(sock: *const u8) -> i32 {
    let off = offsets();
    let Ok(sk) = read_ptr(sock, off.socket_sk) else {
        return verdict_on_unix(core::ptr::null(), HOOK_SOCKET_SENDMSG);
    };
    match read_at::<u16>(sk, off.sock_family) {
        Ok(AF_UNIX) => {}
        Ok(_) => return 0,
        Err(_) => return verdict_on_unix(core::ptr::null(), HOOK_SOCKET_SENDMSG),
    }
    match read_at::<*const u8>(sk, off.unix_sock_peer) {
        // Not connected: the send fails in the kernel anyway.
        Ok(peer) if peer.is_null() => 0,
        Ok(peer) => verdict_on_unix(peer, HOOK_SOCKET_SENDMSG),
        Err(_) => verdict_on_unix(core::ptr::null(), HOOK_SOCKET_SENDMSG),
    }
}

const SOCK_TYPE_MASK: i32 = 0xf;
const SOCK_RAW: i32 = 3;
const SOCK_PACKET: i32 = 10;
const IPPROTO_SCTP: i32 = 132;

#[lsm(hook = "socket_create")]
pub fn socket_create(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, socket_create, int family, int type, int protocol, int kern)
    if let Some(denied) = earlier_denial(&ctx, 4) {
        return denied;
    }
    let (family, ty, protocol, kern): (i32, i32, i32, i32) =
        (ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    // Sockets that reach the network past the address rules: raw IP (a crafted header names
    // any destination), packet and XDP sockets (whole frames), SCTP (connectx and bindx take
    // address lists through setsockopt, not connect).
    let is = |af: u16| family == i32::from(af);
    let inet = is(AF_INET) || is(AF_INET6);
    let ty = ty & SOCK_TYPE_MASK;
    let bypass = is(AF_PACKET)
        || is(AF_XDP)
        || (inet && (ty == SOCK_RAW || ty == SOCK_PACKET || protocol == IPPROTO_SCTP));
    if kern != 0 || !bypass {
        return 0;
    }
    let Some(policy) = current_policy() else {
        return 0;
    };
    if !has_net_rules(&policy) {
        return 0;
    }
    let decision = Decision::Deny {
        rule_id: RULE_ID_NET_RAW,
    };
    let (ret, action) = apply(&policy, &decision);
    if let Some(action) = action {
        let what = Target::Socket(socket_value(family as u32, ty as u32, protocol as u32));
        audit::emit(&policy, HOOK_SOCKET_CREATE, action, RULE_ID_NET_RAW, &what);
    }
    ret
}

#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, unix_stream_connect, struct sock *sock, struct sock *other,
    //          struct sock *newsk)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    verdict_on_unix_from_anywhere(ctx.arg(1), HOOK_UNIX_STREAM_CONNECT)
}

#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, unix_may_send, struct socket *sock, struct socket *other)
    if let Some(denied) = earlier_denial(&ctx, 2) {
        return denied;
    }
    let other: *const u8 = ctx.arg(1);
    let sk = read_ptr(other, offsets().socket_sk).unwrap_or(core::ptr::null());
    verdict_on_unix_from_anywhere(sk, HOOK_UNIX_MAY_SEND)
}

/// Decides a send on a connected Unix socket to its peer `sk` (a `struct unix_sock`) for a
/// confined task.
#[inline(always)]
fn verdict_on_unix(sk: *const u8, hook: u32) -> i32 {
    match confining_attachment() {
        Some(confined) => verdict_on_unix_confined(confined, sk, hook),
        None => 0,
    }
}

/// Decides a connect or send to the Unix socket `sk` by a task of the `confined` attachment:
/// by the socket file it is bound to and the directories above it (`unix_deny`), or, for an
/// abstract socket, by where it was made (`unix_abstract`).
#[inline(always)]
fn verdict_on_unix_confined(confined: (u64, CgroupPolicy), sk: *const u8, hook: u32) -> i32 {
    let (attachment, policy) = confined;
    if policy.flags & (POLICY_UNIX_RULES | POLICY_UNIX_ABSTRACT) == 0 {
        return 0;
    }
    let (decision, target) = decide_unix(&policy, attachment, sk);
    enforce(&policy, hook, decision, &target)
}

/// `verdict_on_unix` for a connect or a datagram, which also keeps an abstract socket made in
/// a sandbox under `unix_abstract: deny` inside it: no task outside that sandbox (the host's,
/// another sandbox's) reaches it. Such a socket could have taken a name the host's own clients
/// look for (another display's X server, the control socket of a daemon not started yet).
/// Sends on a connection are not decided this way for tasks outside every sandbox: they are
/// the host's hottest path (every X11 and D-Bus message).
#[inline(always)]
fn verdict_on_unix_from_anywhere(sk: *const u8, hook: u32) -> i32 {
    if !any_attached() {
        return 0;
    }
    let confined = confining_attachment();
    if let Some(confined) = confined {
        let ret = verdict_on_unix_confined(confined, sk, hook);
        if ret != 0 {
            return ret;
        }
        let ret = verdict_on_server_outside(confined, sk, hook);
        if ret != 0 {
            return ret;
        }
    }
    let off = offsets();
    let (Ok(dentry), Ok(address)) = (
        read_at::<*const u8>(sk, off.unix_sock_dentry),
        read_at::<*const u8>(sk, off.unix_sock_addr),
    ) else {
        return 0;
    };
    if !dentry.is_null() || address.is_null() {
        return 0;
    }
    // Unreadable: decided for the confined above; the host's own tasks are not failed closed.
    let Ok(Some((maker, policy))) = sandbox_that_made(sk) else {
        return 0;
    };
    if policy.flags & POLICY_UNIX_ABSTRACT == 0 || confined.map(|(id, _)| id) == Some(maker) {
        return 0;
    }
    let decision = Decision::Deny {
        rule_id: RULE_ID_UNIX_ABSTRACT_INSIDE,
    };
    enforce(&policy, hook, decision, &Target::AbstractSocket(address))
}

/// Decides a connect or send to the Unix socket `sk` by a task of the `confined` attachment
/// when its server is outside the sandbox (the cgroup the kernel gave the server's socket, its
/// maker's, is not the attachment's or below it):
/// - a task that holds root (its real, effective or saved uid is 0), under every policy: the
///   server would see root (`SO_PEERCRED`, `SCM_CREDENTIALS`) and may trust it with all it
///   serves (a database's root, a service manager, an intrusion blocker's actions), so only
///   the socket files `network.unix_root_allow` lists are reached;
/// - every task under `network.unix_default: deny`: servers of the sandbox's own user act on
///   its requests (another session's ssh-agent signs, an editor's remote-control socket opens
///   and runs files), so only the socket files `network.unix_allow` or `unix_root_allow` lists
///   are reached.
///
/// Sends on a connection made before are not decided here: a service's stdout connected to
/// the journal stays, as does a socketpair handed in.
#[inline(always)]
fn verdict_on_server_outside(confined: (u64, CgroupPolicy), sk: *const u8, hook: u32) -> i32 {
    let (attachment, policy) = confined;
    // Unreadable ids count as root (fail closed).
    let cred = current_cred();
    let uid = cred_id(cred, CRED_UID).unwrap_or(0);
    let euid = cred_id(cred, CRED_EUID).unwrap_or(0);
    let suid = cred_id(cred, CRED_SUID).unwrap_or(0);
    let root = uid == 0 || euid == 0 || suid == 0;
    // Kernel code that connects for itself with credentials of its own is not the task.
    if !(root || policy.flags & POLICY_UNIX_DEFAULT_DENY != 0) || !acting_as_itself() {
        return 0;
    }
    let (decision, target) = match sandbox_that_made(sk) {
        Ok(Some((maker, _))) if maker == attachment => return 0,
        Ok(_) => decide_server_outside(&policy, sk, root),
        Err(_) => (
            Decision::Deny {
                rule_id: RULE_ID_FAIL_CLOSED,
            },
            Target::None,
        ),
    };
    enforce(&policy, hook, decision, &target)
}

/// `verdict_on_server_outside`'s decision: allowed only at a socket file the lists for the
/// task (`unix_root_allow` for root, that or `unix_allow` for the others) name, or below a
/// directory they name. An abstract socket has no file to list; an unbound one (the other end
/// of a socketpair) is reached only through a connection made before, which a task that does
/// not hold root keeps.
#[inline(always)]
fn decide_server_outside(policy: &CgroupPolicy, sk: *const u8, root: bool) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let (refused, listed) = if root {
        (RULE_ID_UNIX_ROOT, RULE_ALLOW_UNIX_ROOT)
    } else {
        (RULE_ID_UNIX_DEFAULT, RULE_ALLOW_UNIX | RULE_ALLOW_UNIX_ROOT)
    };
    let refused = Decision::Deny { rule_id: refused };
    let off = offsets();
    let dentry = match read_at::<*const u8>(sk, off.unix_sock_dentry) {
        Ok(d) if d.is_null() => {
            return match read_at::<*const u8>(sk, off.unix_sock_addr) {
                Ok(address) if !address.is_null() => (refused, Target::AbstractSocket(address)),
                Ok(_) if !root => (Decision::Allow, Target::None),
                Ok(_) => (refused, Target::None),
                Err(_) => (fail_closed, Target::None),
            };
        }
        Ok(d) => d,
        Err(_) => return (fail_closed, Target::None),
    };
    let Ok(target) = read_ptr(dentry, off.dentry_inode).and_then(|i| inode_identity(off, i)) else {
        return (fail_closed, Target::None);
    };
    let decision = match check_dentry(policy.policy_id, target.dev, dentry, 0, listed) {
        Decision::Deny {
            rule_id: RULE_ID_NOT_ALLOWED,
        } => refused,
        decided => decided,
    };
    (decision, Target::file(FileId { dentry, ..target }))
}

#[inline(always)]
fn decide_unix(policy: &CgroupPolicy, attachment: u64, sk: *const u8) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    let off = offsets();
    if off.valid == 0 || sk.is_null() {
        return (fail_closed, Target::None);
    }
    let dentry = match read_at::<*const u8>(sk, off.unix_sock_dentry) {
        Ok(d) if d.is_null() => return decide_fileless(policy, attachment, sk),
        Ok(d) => d,
        Err(_) => return (fail_closed, Target::None),
    };
    if policy.flags & POLICY_UNIX_RULES == 0 {
        return (Decision::Allow, Target::None);
    }
    let Ok(target) = read_ptr(dentry, off.dentry_inode).and_then(|i| inode_identity(&off, i))
    else {
        return (fail_closed, Target::None);
    };
    (
        check_dentry(policy.policy_id, target.dev, dentry, RULE_DENY_UNIX, 0),
        Target::file(FileId { dentry, ..target }),
    )
}

/// A socket with no file: no path rule names it. An unbound one (the other end of a
/// socketpair) is allowed; an abstract one (bound to a name) under `unix_abstract: deny` only
/// when a task of the sandbox made it. Abstract names are the host's (one per network
/// namespace): an X server's (`@/tmp/.X11-unix/X0`, where X clients look first) takes
/// keystrokes for the developer's windows.
#[inline(always)]
fn decide_fileless(policy: &CgroupPolicy, attachment: u64, sk: *const u8) -> (Decision, Target) {
    let fail_closed = Decision::Deny {
        rule_id: RULE_ID_FAIL_CLOSED,
    };
    if policy.flags & POLICY_UNIX_ABSTRACT == 0 {
        return (Decision::Allow, Target::None);
    }
    let off = offsets();
    let address = match read_at::<*const u8>(sk, off.unix_sock_addr) {
        Ok(a) if a.is_null() => return (Decision::Allow, Target::None),
        Ok(a) => a,
        Err(_) => return (fail_closed, Target::None),
    };
    let target = Target::AbstractSocket(address);
    match sandbox_that_made(sk) {
        Ok(Some((maker, _))) if maker == attachment => (Decision::Allow, target),
        Ok(_) => (
            Decision::Deny {
                rule_id: RULE_ID_UNIX_ABSTRACT,
            },
            target,
        ),
        Err(_) => (fail_closed, target),
    }
}

/// The attachment (its cgroup id and policy) whose cgroup, or one below it, made socket `sk`:
/// the cgroup the kernel gave the socket when it was made (its maker's, kept however the maker
/// moves since).
#[inline(always)]
fn sandbox_that_made(sk: *const u8) -> Result<Option<(u64, CgroupPolicy)>, i32> {
    attachment_of_cgroup(read_ptr(sk, offsets().sock_cgroup)?)
}
