//! Names the system's databases resolve (group names, host names), looked up without the C
//! library's name service switch in this process. The binary is linked statically for a fast
//! start, and a static glibc that reaches an NSS module it does not carry (`systemd`, `sss`,
//! `resolve`, `mdns`) loads a second, shared C library into the process and crashes. So the
//! local file is read first, and `getent`, a dynamic program of the host's own C library,
//! answers the rest with every module the host configured.

use std::{net::IpAddr, path::Path, process::Command};

/// Where `getent` lives (glibc's libc-bin, musl-utils). Fixed paths, not `PATH`: the daemon
/// runs it as root.
const GETENT: [&str; 2] = ["/usr/bin/getent", "/bin/getent"];

fn getent(database: &str, key: &str) -> Result<Option<String>, String> {
    let Some(program) = GETENT.iter().find(|p| Path::new(p).is_file()) else {
        return Err(format!(
            "no getent program ({}) to ask the host's name services",
            GETENT.join(" or ")
        ));
    };
    let out = Command::new(program)
        .args([database, "--", key])
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        // 2: the key is not in the database.
        Some(2) => Ok(None),
        _ => Err(format!(
            "{program} {database} {key:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The id of group `name`: `/etc/group`, then the host's other group services.
pub fn group_id(name: &str) -> Result<Option<u32>, String> {
    if let Some(gid) = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| gid_in(&text, name))
    {
        return Ok(Some(gid));
    }
    Ok(getent("group", name)?.and_then(|text| gid_in(&text, name)))
}

/// The gid of `name` in `group(5)` lines (`name:password:gid:members`).
fn gid_in(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The supplementary groups of the user with id `uid`, sorted: the groups that list its name
/// as a member. A user of `/etc/passwd` is looked up in `/etc/group`; any other in the host's
/// other services (`getent initgroups`). None for an id no account has.
pub fn supplementary_groups(uid: u32) -> Result<Vec<u32>, String> {
    let local = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| name_of(&text, uid));
    let mut gids = match local {
        Some(name) => std::fs::read_to_string("/etc/group")
            .map(|text| groups_of(&text, &name))
            .map_err(|e| format!("/etc/group: {e}"))?,
        None => {
            let name = getent("passwd", &uid.to_string())?.and_then(|text| name_of(&text, uid));
            match name {
                Some(name) => getent("initgroups", &name)?
                    .map(|text| initgroups_of(&text))
                    .unwrap_or_default(),
                None => Vec::new(),
            }
        }
    };
    gids.sort_unstable();
    gids.dedup();
    Ok(gids)
}

/// The name of the account with id `uid` in `passwd(5)` lines (`name:password:uid:...`).
fn name_of(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse() == Ok(uid)).then(|| name.to_string())
    })
}

/// The gids of the `group(5)` lines (`name:password:gid:members`) that list `user` as a member.
fn groups_of(text: &str, user: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [_, _, gid, members] = fields[..] else {
                return None;
            };
            members
                .split(',')
                .any(|m| m.trim() == user)
                .then(|| gid.parse().ok())
                .flatten()
        })
        .collect()
}

/// The gids of `getent initgroups` output (`name gid gid...`).
fn initgroups_of(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .skip(1)
        .filter_map(|gid| gid.parse().ok())
        .collect()
}

/// The addresses host `name` resolves to, IPv4 and IPv6, as the host's other programs see them
/// (`getent ahosts`: `/etc/hosts`, DNS, systemd-resolved, whatever the host configured).
pub fn host_addresses(name: &str) -> Result<Vec<IpAddr>, String> {
    let mut ips: Vec<IpAddr> = getent("ahosts", name)?
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_groups_are_those_that_list_exactly_its_name() {
        let passwd = "root:x:0:0::/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/bash\n";
        assert_eq!(name_of(passwd, 1000).as_deref(), Some("dev"));
        assert_eq!(name_of(passwd, 1001), None);
        let group = "root:x:0:\nsudo:x:27:dev\ndocker:x:999:alice,dev\ndevs:x:1001:developer\n\
                     dev:x:1000:\nbroken:x:\n";
        assert_eq!(groups_of(group, "dev"), vec![27, 999]);
        assert_eq!(initgroups_of("dev 1000 27 999\n"), vec![1000, 27, 999]);
    }

    #[test]
    fn group_lines_give_the_gid_of_exactly_that_name() {
        let text = "root:x:0:\nsandbox-agent:x:997:alice,bob\nsandbox:x:12:\nbroken:x:\n";
        assert_eq!(gid_in(text, "sandbox-agent"), Some(997));
        assert_eq!(gid_in(text, "sandbox"), Some(12));
        assert_eq!(gid_in(text, "sandbox-age"), None);
        assert_eq!(gid_in(text, "broken"), None);
    }

    /// The C library's name lookups (and std's, which call them) crash a static binary on a
    /// host whose nsswitch.conf names a module: only this file may ask names, through getent.
    #[test]
    fn no_other_code_asks_the_c_librarys_name_services() {
        const LOOKUPS: [&str; 9] = [
            "getpwnam",
            "getpwuid",
            "getgrnam",
            "getgrgid",
            "getaddrinfo",
            "gethostbyname",
            "getservbyname",
            "to_socket_addrs",
            "lookup_host",
        ];
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src];
        let mut found = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("nss.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.extend(
                    LOOKUPS
                        .iter()
                        .filter(|l| text.contains(*l))
                        .map(|l| format!("{}: {l}", path.display())),
                );
            }
        }
        assert!(found.is_empty(), "ask names through nss.rs: {found:?}");
    }

    #[test]
    fn the_hosts_own_names_resolve_and_a_missing_group_is_none() {
        assert_eq!(group_id("root"), Ok(Some(0)));
        assert_eq!(group_id("no-such-group-xyz"), Ok(None));
        let local = host_addresses("localhost").unwrap();
        assert!(local.iter().any(IpAddr::is_loopback), "{local:?}");
        assert_eq!(host_addresses("no-such-host.invalid"), Ok(vec![]));
    }
}
