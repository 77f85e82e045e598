//! No port shared with a socket outside the sandbox. Two socket options let a later bind take
//! traffic meant for a socket already bound to the same port:
//! - `SO_REUSEPORT`, which the kernel allows between sockets of the same user: a confined root
//!   joins the group of a root service on its port (DNS, a web server with `reuseport`) and
//!   receives its share of the connections and datagrams;
//! - on UDP, `SO_REUSEADDR`: a later socket bound to a port a service set it on too (a DNS
//!   stub, NTP, a DHCP client), or to one of that port's addresses, receives the service's
//!   datagrams, whoever it runs as.
//!
//! A confined task sets neither on an inet socket, under every policy. TCP's `SO_REUSEADDR`
//! shares no listening port (only time-waiting connections') and stays.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use sandbox_common::{socket_value, HOOK_SOCKET_SETSOCKOPT};

use crate::{
    guard::deny,
    hook::earlier_denial,
    kernel::{offsets, read_at, read_ptr},
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
    let off = offsets();
    let sock: *const u8 = ctx.arg(0);
    let family = read_ptr(sock, off.socket_sk).and_then(|sk| read_at::<u16>(sk, off.sock_family));
    let (Ok(family), Ok(ty)) = (family, read_at::<i16>(sock, off.socket_type)) else {
        // Unreadable: refused (fail closed).
        return deny(&policy, HOOK_SOCKET_SETSOCKOPT, Target::None);
    };
    if (family != AF_INET && family != AF_INET6) || (optname == SO_REUSEADDR && ty != SOCK_DGRAM) {
        return 0;
    }
    let socket = socket_value(family.into(), ty as u32, 0);
    deny(&policy, HOOK_SOCKET_SETSOCKOPT, Target::Socket(socket))
}
