//! Network rules: the `NET_RULES` LPM trie (address prefixes with port rules), the binaries maps
//! that give a program its own rules by executable identity, and what a connect event records.

/// `NetKey::family` of an IPv4 address (its 4 bytes first in `addr`).
pub const NET_FAMILY_V4: u32 = 4;
/// `NetKey::family` of an IPv6 address.
pub const NET_FAMILY_V6: u32 = 6;

/// Data of a `NET_RULES` key. An LPM trie matches bits from the first byte on: policy id, scope
/// and family are always matched whole (`NET_KEY_FIXED_BITS`), then `prefix` bits of the address,
/// which is in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetKey {
    pub policy_id: u32,
    /// 0: the rules for every program; n > 0: the rules of `binaries[n - 1]`.
    pub scope: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

/// Bits of a `NetKey` before the address.
pub const NET_KEY_FIXED_BITS: u32 = 96;

/// One port rule of an address prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NetPortRule {
    /// Inclusive port range in host byte order; 0..=65535 is every port.
    pub port_lo: u16,
    pub port_hi: u16,
    /// `NET_ALLOW` or `NET_DENY`.
    pub action: u32,
    pub rule_id: u32,
}

pub const NET_ALLOW: u32 = 1;
pub const NET_DENY: u32 = 2;

/// Most port rules one prefix can carry, its own and those inherited from shorter prefixes.
pub const NET_MAX_PORT_RULES: usize = 16;

/// Value of `NET_RULES`: the port rules that apply to a destination whose longest matching
/// prefix is this one, in order (the first whose range holds the port decides): this prefix's
/// own rules (denials first), then those of each shorter covering prefix, longest first. So the
/// kernel needs one lookup, and "longest prefix wins, deny beats allow at equal length" holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetRules {
    pub count: u32,
    pub _pad: u32,
    pub rules: [NetPortRule; NET_MAX_PORT_RULES],
}

impl Default for NetRules {
    fn default() -> Self {
        Self {
            count: 0,
            _pad: 0,
            rules: [NetPortRule::default(); NET_MAX_PORT_RULES],
        }
    }
}

/// Where a connect or send was going, for the audit event: `family` is `NET_FAMILY_V4` or
/// `NET_FAMILY_V6` (0 for non-network events), `port` in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetDest {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u16,
}

pub const MAP_NET_RULES: &str = "NET_RULES";
/// `InodeKey` (policy id, executable dev, ino) -> scope.
pub const MAP_NET_BINARIES: &str = "NET_BINARIES";
/// `NameKey` (policy id, parent directory, name) -> scope, for binaries that did not exist when
/// the policy was attached.
pub const MAP_NET_BINARY_NAMES: &str = "NET_BINARY_NAMES";

/// An address of one of the host's own interfaces: a destination there reaches the host itself
/// (its services listening on every address), like loopback. Value of `LOCAL_ADDRS`: unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalAddr {
    /// `NET_FAMILY_V4` (address in the first 4 bytes, the rest zero) or `NET_FAMILY_V6`.
    pub family: u32,
    pub addr: [u8; 16],
}

/// The host's own addresses, kept current by the daemon.
pub const MAP_LOCAL_ADDRS: &str = "LOCAL_ADDRS";
pub const MAX_LOCAL_ADDRS: u32 = 4096;

/// Index 0: the TCP port of the daemon's own listener (its metrics), 0 when it has none. No
/// confined task may connect there on loopback or on any of the host's own addresses.
pub const MAP_DAEMON_PORT: &str = "DAEMON_PORT";

pub const MAX_NET_RULES: u32 = 65536;
pub const MAX_NET_BINARIES: u32 = 16384;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), Copy, and no padding bytes (u32 fields then bytes; u16 pairs then u32s).
    unsafe impl aya::Pod for super::NetKey {}
    unsafe impl aya::Pod for super::NetPortRule {}
    unsafe impl aya::Pod for super::NetRules {}
    unsafe impl aya::Pod for super::LocalAddr {}
}
