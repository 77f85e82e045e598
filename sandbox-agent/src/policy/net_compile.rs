//! Compiles the `network` section: destinations become `NET_RULES` entries (one per distinct
//! prefix and scope, carrying the port rules of every shorter prefix that covers it, so the
//! kernel decides with one longest-prefix lookup), and per-binary rules get their scope keyed by
//! the executable's identity.

use std::{collections::BTreeMap, net::IpAddr, os::unix::ffi::OsStrExt};

use sandbox_common::{NetPortRule, NetRules, NET_ALLOW, NET_DENY, NET_MAX_PORT_RULES};

use super::{
    anchors::Anchors,
    compile::{CompileError, CompiledPolicy, NameRuleKey, RuleInfo},
    net_spec::{self, Cidr, NetHost, ALL_PORTS},
    schema::Policy,
};

/// One destination rule before folding.
#[derive(Clone, Copy, Debug)]
struct Flat {
    scope: u32,
    cidr: Cidr,
    ports: (u16, u16),
    allow: bool,
    rule_id: u32,
}

/// Adds the network rules of `policy` to `out`.
pub fn compile_network(
    policy: &Policy,
    anchors: &Anchors,
    out: &mut CompiledPolicy,
) -> Result<(), CompileError> {
    let mut flat = Vec::new();
    for (key, allow, scope, list) in policy.net_lists() {
        let binary = scope
            .checked_sub(1)
            .map(|i| policy.network.binaries[i as usize].path.as_str());
        for entry in list {
            let error = |message| CompileError::Net {
                field: key.clone(),
                entry: entry.clone(),
                message,
            };
            let spec = net_spec::parse(entry).map_err(error)?;
            let rule_id = out.rules.len() as u32;
            let (cidrs, resolved) = match &spec.host {
                NetHost::Cidr(c) => (vec![*c], c.to_string()),
                NetHost::Name(name) => {
                    out.names_hosts = true;
                    let (ips, why) = match resolve(name) {
                        Ok(ips) => (ips, String::new()),
                        Err(e) => (Vec::new(), format!(" ({e})")),
                    };
                    if ips.is_empty() && !allow {
                        return Err(error(format!(
                            "cannot resolve {name}{why}: a deny rule that denies nothing is refused"
                        )));
                    }
                    if ips.is_empty() {
                        out.warnings.push(format!(
                            "{key}: {name} does not resolve{why}: it allows nothing"
                        ));
                    }
                    let text = ips.iter().map(IpAddr::to_string).collect::<Vec<_>>();
                    let cidrs = ips.into_iter().map(Cidr::host).collect();
                    (cidrs, format!("{name} = {}", text.join(", ")))
                }
            };
            for cidr in cidrs {
                flat.push(Flat {
                    scope,
                    cidr,
                    ports: spec.ports,
                    allow,
                    rule_id,
                });
            }
            out.rules.push(RuleInfo {
                id: rule_id,
                kind: if allow {
                    "network.allow"
                } else {
                    "network.deny"
                },
                path: match binary {
                    Some(b) => format!("{entry} (for {b})"),
                    None => entry.clone(),
                },
                resolved: match spec.ports {
                    ALL_PORTS => resolved,
                    (lo, hi) if lo == hi => format!("{resolved} port {lo}"),
                    (lo, hi) => format!("{resolved} ports {lo}-{hi}"),
                },
                exists: true,
            });
        }
    }
    out.net_rules = fold(&flat)?;
    for (i, b) in policy.network.binaries.iter().enumerate() {
        add_binary(out, anchors, i, &b.path)?;
    }
    Ok(())
}

/// Addresses of a host name (none when it does not resolve), or why it could not be looked up.
fn resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    // The answers change with no file changing: the daemon resolves them again instead.
    super::watch::not_reusable("it names hosts");
    crate::nss::host_addresses(name)
}

/// One `NET_RULES` value per distinct (scope, prefix): its own port rules (denials first), then
/// those of each shorter prefix covering it, longest first, cut after the first rule that
/// covers every port (nothing after it could ever match).
fn fold(flat: &[Flat]) -> Result<BTreeMap<(u32, Cidr), NetRules>, CompileError> {
    let mut own: BTreeMap<(u32, Cidr), Vec<Flat>> = BTreeMap::new();
    for f in flat {
        own.entry((f.scope, f.cidr)).or_default().push(*f);
    }
    for rules in own.values_mut() {
        // Stable: rules keep the policy's order within denials and within allowances.
        rules.sort_by_key(|f| f.allow);
    }
    let mut out = BTreeMap::new();
    for (&(scope, cidr), mine) in &own {
        let mut covering: Vec<(&Cidr, &Vec<Flat>)> = own
            .iter()
            .filter(|((s, c), _)| *s == scope && c.prefix < cidr.prefix && c.covers(&cidr))
            .map(|((_, c), v)| (c, v))
            .collect();
        covering.sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix));
        let mut value = NetRules::default();
        let chain = mine.iter().chain(covering.into_iter().flat_map(|(_, v)| v));
        for f in chain {
            let n = value.count as usize;
            if n == NET_MAX_PORT_RULES {
                return Err(CompileError::Net {
                    field: "network".into(),
                    entry: cidr.to_string(),
                    message: format!(
                        "more than {NET_MAX_PORT_RULES} port rules apply to {cidr} (its own and \
                         those of shorter prefixes covering it): merge port ranges"
                    ),
                });
            }
            value.rules[n] = NetPortRule {
                port_lo: f.ports.0,
                port_hi: f.ports.1,
                action: if f.allow { NET_ALLOW } else { NET_DENY },
                rule_id: f.rule_id,
            };
            value.count += 1;
            if f.ports == ALL_PORTS {
                break;
            }
        }
        out.insert((scope, cidr), value);
    }
    Ok(out)
}

/// Keys the scope of `binaries[index]` by the identity of the file its path resolves to (a
/// symlink names its target; a copy is another inode), or by (directory, name) when it does not
/// exist yet.
fn add_binary(
    out: &mut CompiledPolicy,
    anchors: &Anchors,
    index: usize,
    entry: &str,
) -> Result<(), CompileError> {
    let scope = index as u32 + 1;
    let field = format!("network.binaries[{index}].path");
    let error = |message| CompileError::Net {
        field: field.clone(),
        entry: entry.to_string(),
        message,
    };
    let path = anchors.expand(entry).map_err(error)?;
    if let Ok(real) = super::watch::canonicalize(&path) {
        let id = out.identify(&real).map_err(error)?;
        if let Some(other) = out.net_binaries.insert((id.dev, id.ino), scope) {
            return Err(error(format!(
                "{} is the same program as binaries[{}]",
                real.display(),
                other - 1
            )));
        }
        return Ok(());
    }
    let parent = path
        .parent()
        .and_then(|p| super::watch::canonicalize(p).ok());
    let (Some(parent), Some(name)) = (parent, path.file_name()) else {
        out.warnings.push(format!(
            "{field}: neither {} nor its directory exists: its rules do not apply until the \
             policy is attached again",
            path.display()
        ));
        return Ok(());
    };
    let dir = out.identify(&parent).map_err(error)?;
    out.warnings.push(format!(
        "{field}: {} does not exist yet: its rules apply once it is created",
        path.display()
    ));
    out.net_binary_names.insert(
        NameRuleKey {
            parent_dev: dir.dev,
            parent_ino: dir.ino,
            name: name.as_bytes().to_vec(),
        },
        scope,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{compile_with, parse};
    use sandbox_common::NET_FAMILY_V4;

    fn compiled(network: &str) -> CompiledPolicy {
        let policy = parse("p.yaml", &format!("name: n\nnetwork:\n{network}")).unwrap();
        compile_with(&policy, &Anchors::home(std::path::Path::new("/"))).unwrap()
    }

    fn rules_of(c: &CompiledPolicy, scope: u32, cidr: &str) -> Vec<(u16, u16, u32, u32)> {
        let cidr = match net_spec::parse(cidr).unwrap().host {
            NetHost::Cidr(c) => c,
            h => panic!("{h:?}"),
        };
        let v = &c.net_rules[&(scope, cidr)];
        v.rules[..v.count as usize]
            .iter()
            .map(|r| (r.port_lo, r.port_hi, r.action, r.rule_id))
            .collect()
    }

    #[test]
    fn a_longer_prefix_carries_the_rules_of_the_shorter_ones_after_its_own() {
        let c =
            compiled("  allow: [10.0.0.0/8]\n  deny: [\"10.1.0.0/16:22\", \"10.1.0.0/16:23\"]\n");
        assert_eq!(
            rules_of(&c, 0, "10.1.0.0/16"),
            vec![
                (22, 22, NET_DENY, 1),
                (23, 23, NET_DENY, 2),
                (0, 65535, NET_ALLOW, 0)
            ]
        );
        assert_eq!(
            rules_of(&c, 0, "10.0.0.0/8"),
            vec![(0, 65535, NET_ALLOW, 0)]
        );
    }

    #[test]
    fn deny_beats_allow_at_equal_length() {
        let c = compiled("  allow: [\"192.0.2.0/24:443\"]\n  deny: [192.0.2.0/24]\n");
        assert_eq!(
            rules_of(&c, 0, "192.0.2.0/24"),
            vec![(0, 65535, NET_DENY, 1)],
            "the allow after a deny of every port can never match"
        );
    }

    #[test]
    fn binary_rules_have_their_own_scope() {
        let c = compiled(
            "  default: deny\n  binaries:\n    - path: /bin/sh\n      allow: [\"127.0.0.1:8080\"]\n",
        );
        assert_eq!(
            rules_of(&c, 1, "127.0.0.1"),
            vec![(8080, 8080, NET_ALLOW, 0)]
        );
        let sh = crate::identity::file_id(&std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
        assert_eq!(c.net_binaries[&(sh.dev, sh.ino)], 1);
        assert_eq!(c.rules[0].path, "127.0.0.1:8080 (for /bin/sh)");
        assert!(c
            .net_rules
            .keys()
            .all(|(s, k)| *s == 1 && k.family == NET_FAMILY_V4));
    }

    #[test]
    fn a_missing_binary_is_keyed_by_name_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tool");
        let c = compiled(&format!(
            "  binaries:\n    - path: {}\n      deny: [0.0.0.0/0]\n",
            path.display()
        ));
        assert_eq!(c.net_binary_names.len(), 1);
        assert!(
            c.warnings[0].contains("apply once it is created"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn too_many_port_rules_on_one_prefix_are_refused() {
        let ports: Vec<String> = (1..=17).map(|p| format!("\"10.0.0.0/8:{p}\"")).collect();
        let policy = parse(
            "p.yaml",
            &format!("name: n\nnetwork:\n  deny: [{}]\n", ports.join(", ")),
        )
        .unwrap();
        let e = compile_with(&policy, &Anchors::home(std::path::Path::new("/"))).unwrap_err();
        assert!(e.to_string().contains("more than 16 port rules"), "{e}");
    }
}
