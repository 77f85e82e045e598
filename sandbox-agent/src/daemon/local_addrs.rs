//! The host's own addresses, for the kernel: a connect to one of them reaches the host's own
//! services like loopback does, so the programs decide it against the loopback rules too
//! (`LOCAL_ADDRS`). Kept current every few seconds; a confined task cannot add an address
//! (CAP_NET_ADMIN is refused), so only a change made outside waits for the next pass.

use std::collections::BTreeSet;

use aya::maps::{HashMap, MapData};
use sandbox_common::{LocalAddr, NET_FAMILY_V4, NET_FAMILY_V6};

/// How often the addresses are read again.
pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

pub struct LocalAddrs {
    map: HashMap<MapData, LocalAddr, u32>,
    written: BTreeSet<LocalAddr>,
}

impl LocalAddrs {
    pub fn new(map: aya::maps::Map) -> anyhow::Result<Self> {
        let map = HashMap::try_from(map)?;
        let mut this = Self {
            map,
            written: BTreeSet::new(),
        };
        // Whatever an earlier daemon left is checked against the host again.
        this.written = this.map.keys().filter_map(Result::ok).collect();
        this.sync();
        Ok(this)
    }

    /// Makes the map hold exactly the host's addresses now.
    pub fn sync(&mut self) {
        let now = match host_addresses() {
            Ok(now) => now,
            Err(e) => {
                tracing::error!("cannot list the host's addresses: {e}");
                return;
            }
        };
        for gone in self.written.difference(&now) {
            let _ = self.map.remove(gone);
        }
        let mut kept = BTreeSet::new();
        for addr in now {
            match self.map.insert(addr, 1, 0) {
                Ok(()) => {
                    kept.insert(addr);
                }
                Err(e) => tracing::error!("cannot record the host address {addr:?}: {e}"),
            }
        }
        self.written = kept;
    }
}

pub async fn run(mut addrs: LocalAddrs) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        addrs.sync();
    }
}

/// Every IPv4 and IPv6 address of the host's interfaces (`getifaddrs`).
fn host_addresses() -> std::io::Result<BTreeSet<LocalAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = BTreeSet::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs made; it lives until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family says which struct it is.
        let family = unsafe { (*entry.ifa_addr).sa_family } as i32;
        let mut local = LocalAddr::default();
        match family {
            libc::AF_INET => {
                // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                local.family = NET_FAMILY_V4;
                local.addr[..4].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                local.family = NET_FAMILY_V6;
                local.addr = sin6.sin6_addr.s6_addr;
            }
            _ => continue,
        }
        out.insert(local);
    }
    // SAFETY: the list getifaddrs returned, freed once; no reference into it survives.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_addresses_include_loopback() {
        let addrs = host_addresses().unwrap();
        let mut lo = LocalAddr {
            family: NET_FAMILY_V4,
            ..Default::default()
        };
        lo.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert!(addrs.contains(&lo), "{addrs:?}");
    }
}
