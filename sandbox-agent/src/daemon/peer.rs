//! Who is on the other end of the control socket.

/// Who sent a request (SO_PEERCRED).
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    /// Whether the peer is in group `gid`, as its primary or a supplementary group.
    pub(super) fn in_group(&self, gid: u32) -> bool {
        if self.gid == gid {
            return true;
        }
        let Some(pid) = self.pid else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .map(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
            })
            .unwrap_or(false)
    }
}
