//! Destinations as written in a policy's `network` lists: an IPv4 or IPv6 address or CIDR, or a
//! host name, with an optional port or port range:
//! `10.0.0.0/8`, `192.0.2.1:1000-2000`, `0.0.0.0/0:443`, `::1`, `[::1]:8080`, `[fd00::/8]:53`,
//! `example.com:443`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sandbox_common::{NET_FAMILY_V4, NET_FAMILY_V6};

/// An address prefix, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// `NET_FAMILY_V4` (address in the first 4 bytes) or `NET_FAMILY_V6`.
    pub family: u32,
    pub addr: [u8; 16],
    pub prefix: u32,
}

impl Cidr {
    /// The single address `ip` (/32 or /128).
    pub fn host(ip: IpAddr) -> Self {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        Self::new(ip, bits)
            .unwrap_or_else(|_| unreachable!("a full-length prefix has no host bits"))
    }

    /// `ip/prefix`; an error when `prefix` is too long or `ip` has bits set past it.
    pub fn new(ip: IpAddr, prefix: u32) -> Result<Self, String> {
        let (family, bytes, max) = match ip {
            IpAddr::V4(a) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&a.octets());
                (NET_FAMILY_V4, b, 32)
            }
            IpAddr::V6(a) => (NET_FAMILY_V6, a.octets(), 128),
        };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max} bits"));
        }
        let cidr = Self {
            family,
            addr: mask(bytes, prefix),
            prefix,
        };
        if cidr.addr != bytes {
            return Err(format!(
                "{ip}/{prefix} has bits set past the prefix (did you mean {}?)",
                cidr
            ));
        }
        Ok(cidr)
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.family == other.family
            && self.prefix <= other.prefix
            && mask(other.addr, self.prefix) == self.addr
    }

    pub fn ip(&self) -> IpAddr {
        if self.family == NET_FAMILY_V4 {
            let mut a = [0; 4];
            a.copy_from_slice(&self.addr[..4]);
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.addr))
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip(), self.prefix)
    }
}

/// `bytes` with every bit past the first `prefix` cleared.
fn mask(mut bytes: [u8; 16], prefix: u32) -> [u8; 16] {
    for (i, b) in bytes.iter_mut().enumerate() {
        let keep = prefix.saturating_sub(i as u32 * 8).min(8);
        *b &= (0xff00u16 >> keep) as u8;
    }
    bytes
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetHost {
    Cidr(Cidr),
    /// Resolved by the daemon when it attaches the policy.
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    pub host: NetHost,
    /// Inclusive; 0..=65535 when the entry names no port.
    pub ports: (u16, u16),
}

pub const ALL_PORTS: (u16, u16) = (0, u16::MAX);

/// Parses one entry of a `network` list.
pub fn parse(entry: &str) -> Result<NetSpec, String> {
    let s = entry.trim();
    if s.is_empty() {
        return Err("empty destination".into());
    }
    let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{entry:?}: `[` without a closing `]`"))?;
        let ports = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{entry:?}: expected `:PORT` after `]`"))?,
            ),
        };
        let cidr = parse_cidr(inner, true).map_err(|m| format!("{entry:?}: {m}"))?;
        (NetHost::Cidr(cidr), ports)
    } else if s.matches(':').count() >= 2 {
        // A bare IPv6 address: write [addr]:port to give it a port.
        let cidr = parse_cidr(s, true).map_err(|m| format!("{entry:?}: {m}"))?;
        (NetHost::Cidr(cidr), None)
    } else {
        let (host, ports) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (
            parse_host(host).map_err(|m| format!("{entry:?}: {m}"))?,
            ports,
        )
    };
    let ports = match ports {
        None => ALL_PORTS,
        Some(p) => parse_ports(p).map_err(|m| format!("{entry:?}: {m}"))?,
    };
    Ok(NetSpec { host, ports })
}

fn parse_cidr(s: &str, v6: bool) -> Result<Cidr, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (
            a,
            Some(
                p.parse::<u32>()
                    .map_err(|_| format!("{p:?} is not a prefix length"))?,
            ),
        ),
        None => (s, None),
    };
    let ip: IpAddr = if v6 {
        IpAddr::V6(
            addr.parse()
                .map_err(|_| format!("{addr:?} is not an IPv6 address"))?,
        )
    } else {
        IpAddr::V4(
            addr.parse()
                .map_err(|_| format!("{addr:?} is not an IPv4 address"))?,
        )
    };
    match prefix {
        Some(p) => Cidr::new(ip, p),
        None => Ok(Cidr::host(ip)),
    }
}

fn parse_host(s: &str) -> Result<NetHost, String> {
    if s.contains('/') || s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return parse_cidr(s, false).map(NetHost::Cidr);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} is neither an IP address, a CIDR nor a host name"
        ));
    }
    Ok(NetHost::Name(name.to_ascii_lowercase()))
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
            Err(_) => Err(format!("{p:?} is not a port")),
        }
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("port range {lo}-{hi} is empty"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        match parse(s).unwrap().host {
            NetHost::Cidr(c) => c,
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(parse("10.0.0.0/8").unwrap().ports, ALL_PORTS);
        assert_eq!(parse("[::1]:8080").unwrap().ports, (8080, 8080));
        assert_eq!(cidr("[::1]:8080").to_string(), "::1/128");
        assert_eq!(parse("0.0.0.0/0:443").unwrap().ports, (443, 443));
        assert_eq!(cidr("0.0.0.0/0:443").prefix, 0);
        assert_eq!(parse("192.0.2.1:1000-2000").unwrap().ports, (1000, 2000));
        assert_eq!(cidr("192.0.2.1").to_string(), "192.0.2.1/32");
        assert_eq!(cidr("fd00:ec2::254").to_string(), "fd00:ec2::254/128");
        assert_eq!(cidr("[fd00::/8]:53").to_string(), "fd00::/8");
        assert_eq!(
            parse("Example.COM:443").unwrap(),
            NetSpec {
                host: NetHost::Name("example.com".into()),
                ports: (443, 443)
            }
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = |s: &str| parse(s).unwrap_err();
        assert!(
            err("10.0.0.0/33").contains("longer than 32"),
            "{}",
            err("10.0.0.0/33")
        );
        assert!(err("10.0.0.1/8").contains("did you mean 10.0.0.0/8"));
        assert!(err("10.0.0.256").contains("not an IPv4 address"));
        assert!(err("1.2.3.4:70000").contains("out of range"));
        assert!(err("1.2.3.4:0").contains("out of range"));
        assert!(err("1.2.3.4:2000-1000").contains("empty"));
        assert!(err("[::1").contains("closing"));
        assert!(err("[::1]8080").contains("`:PORT`"));
        assert!(err("bad_host!").contains("neither"));
        assert!(err("::1/129").contains("longer than 128"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn coverage_follows_prefixes() {
        let wide = cidr("10.0.0.0/8");
        assert!(wide.covers(&cidr("10.1.0.0/16")));
        assert!(!cidr("10.1.0.0/16").covers(&wide));
        assert!(!wide.covers(&cidr("11.0.0.0/8")));
        assert!(!cidr("::/0").covers(&wide), "families never mix");
        assert!(cidr("0.0.0.0/0").covers(&cidr("192.0.2.1")));
    }
}
