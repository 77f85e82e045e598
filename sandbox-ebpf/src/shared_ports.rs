//! No port of a service outside the sandbox. A confined task binds no reserved port (below
//! 1024) in the host's network namespace (`socket_bind`): a root agent would otherwise take the
//! port of a host service that is down or restarting, or bound to another of the host's
//! addresses (a server on 192.0.2.10:80 leaves 127.0.0.1:80 free), and answer the host's own
//! clients as that service (a DNS resolver, a mail relay). In a network namespace of its own
//! (a container's) the ports are its own.
//!
//! Nor does it share a port with a socket outside. Two socket options let a later bind take
//! traffic meant for a socket already bound to the same port:
//! - `SO_REUSEPORT`, which the kernel allows between sockets of the same user: a confined root
//!   joins the group of a root service on its port (DNS, a web server with `reuseport`) and
//!   receives its share of the connections and datagrams;
//! - on UDP, `SO_REUSEADDR`: a later socket bound to a port a service set it on too (a DNS
//!   stub, NTP, a DHCP client), or to one of that port's addresses, receives the service's
//!   datagrams, whoever it runs as.
//!
//! A confined task sets neither on an inet socket of the host's network namespace, under every
//! policy. TCP's `SO_REUSEADDR` shares no listening port (only time-waiting connections') and
//! stays.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{socket_value, HOOK_SOCKET_BIND, HOOK_SOCKET_SETSOCKOPT};

use crate::{
    guard::deny,
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
    net::RESERVED_PORTS,
    net_rules::{AF_INET, AF_INET6},
    policy::current_policy,
    target::Target,
};

/// From <uapi/asm-generic/socket.h> (x86-64's and arm64's values).
const SOL_SOCKET: i32 = 1;
const SO_REUSEADDR: i32 = 2;
const SO_REUSEPORT: i32 = 15;
/// `struct socket`'s `type` for UDP (and ping) sockets.
const SOCK_DGRAM: i16 = 2;

#[lsm(hook = "socket_setsockopt")]
pub fn socket_setsockopt(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, socket_setsockopt, struct socket *sock, int level, int optname)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    // Runs on every setsockopt on the host: leaves before any lookup unless the option shares
    // a port.
    let (level, optname): (i32, i32) = (ctx.arg(1), ctx.arg(2));
    if level != SOL_SOCKET || (optname != SO_REUSEADDR && optname != SO_REUSEPORT) {
        return 0;
    }
    let Some(policy) = current_policy() else {
        return 0;
    };
    let sock: *const u8 = ctx.arg(0);
    let (Ok((sk, family)), Ok(ty)) = (
        sock_and_family(sock),
        read_at::<i16>(sock, offsets().socket_type),
    ) else {
        // Unreadable: refused (fail closed).
        return deny(&policy, HOOK_SOCKET_SETSOCKOPT, Target::None);
    };
    if (family != AF_INET && family != AF_INET6)
        || (optname == SO_REUSEADDR && ty != SOCK_DGRAM)
        || !in_host_network(sk)
    {
        return 0;
    }
    let socket = socket_value(family.into(), ty as u32, 0);
    deny(&policy, HOOK_SOCKET_SETSOCKOPT, Target::Socket(socket))
}

/// The `struct sock` of `sock` (a `struct socket`) and its address family.
#[inline(always)]
fn sock_and_family(sock: *const u8) -> Result<(*const u8, u16), i32> {
    let off = offsets();
    let sk = read_ptr(sock, off.socket_sk)?;
    Ok((sk, read_at::<u16>(sk, off.sock_family)?))
}

/// Filled by the daemon before load: the inode number of the host's network namespace. Zero
/// when it could not be read, and then every namespace counts as the host's (fail closed).
#[no_mangle]
static HOST_NET_NS: u64 = 0;

/// Whether the socket `sk` (a `struct sock`) is in the host's network namespace, where the
/// services outside the sandbox are; in a namespace of its own (a container's) the ports are
/// the sandbox's. Unreadable, or the host's namespace unknown, counts as the host's.
#[inline(always)]
fn in_host_network(sk: *const u8) -> bool {
    let off = offsets();
    // SAFETY: a volatile read of a static the loader rewrites in .rodata, so the zero
    // initializer is not folded in.
    let host = unsafe { core::ptr::read_volatile(&HOST_NET_NS) };
    let namespace = read_ptr(sk, off.sock_net).and_then(|net| read_at::<u32>(net, off.net_ns_inum));
    !matches!(namespace, Ok(inum) if host != 0 && u64::from(inum) != host)
}

#[lsm(hook = "socket_bind")]
pub fn socket_bind(ctx: LsmContext) -> i32 {
    // LSM_HOOK(int, 0, socket_bind, struct socket *sock, struct sockaddr *address, int addrlen)
    if let Some(denied) = earlier_denial(&ctx, 3) {
        return denied;
    }
    // Runs on every bind on the host: leaves before any lookup unless the port is reserved.
    // The port is where `sockaddr_in` and `sockaddr_in6` keep it, in network order.
    let address: *const u8 = ctx.arg(1);
    let port = read_at::<u16>(address, 2).map(u16::from_be);
    if matches!(port, Ok(port) if port == 0 || port >= RESERVED_PORTS) {
        return 0;
    }
    let Some(policy) = current_policy() else {
        return 0;
    };
    let sock: *const u8 = ctx.arg(0);
    // The family is the socket's: an inet socket takes an `AF_UNSPEC` address as `AF_INET`.
    let (Ok((sk, family)), Ok(_)) = (sock_and_family(sock), port) else {
        return deny(&policy, HOOK_SOCKET_BIND, Target::None);
    };
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    if !in_host_network(sk) {
        return 0;
    }
    let ty = read_at::<i16>(sock, offsets().socket_type).unwrap_or(0);
    let socket = socket_value(family.into(), ty as u32, 0);
    deny(&policy, HOOK_SOCKET_BIND, Target::Socket(socket))
}
