//! Warnings about policies that validate but are probably wrong: rules so broad the confined
//! command could not run, and rules that contradict each other. `policy check` reports them with
//! file and line; `attach` prints them and attaches anyway (the policy says what it says).

use std::path::{Component, Path, PathBuf};

use super::{
    schema::{field_line, item_line},
    NetDefault, PathKey, Policy, PolicyError,
};

/// System trees every program needs: denying them stops the command itself.
const SYSTEM_TREES: &[&str] = &[
    "/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/dev", "/proc",
];

pub fn lint(file: &str, text: &str, policy: &Policy) -> Vec<PolicyError> {
    let mut out = Vec::new();
    let mut warn = |key: &str, i: Option<usize>, entry: &str, message: String| {
        let (field, line) = match i {
            Some(i) => (format!("{key}[{i}]"), item_line(text, key, entry)),
            None => (key.to_string(), field_line(text, key).unwrap_or(0)),
        };
        out.push(PolicyError {
            file: file.to_string(),
            line,
            field,
            message: format!("warning: {message}"),
        });
    };
    for (key, list) in policy.path_lists() {
        let key = match key {
            PathKey::DenyRead | PathKey::DenyExec | PathKey::DenyWrite => key.name(),
            // Allowing a system tree is what an allowlist does; sockets are not programs' needs.
            PathKey::AllowExec
            | PathKey::AllowWrite
            | PathKey::UnixDeny
            | PathKey::UnixRootAllow
            | PathKey::UnixAllow
            | PathKey::OwnRepositories
            | PathKey::OwnCaches => continue,
        };
        for (i, entry) in list.iter().enumerate() {
            let path = lexical(entry);
            if SYSTEM_TREES.iter().any(|t| path == Path::new(t)) {
                warn(
                    key,
                    Some(i),
                    entry,
                    format!("{entry:?} is a system tree every program needs: the confined command could not run"),
                );
            } else if key != "deny_exec" && entry.trim_end_matches('/') == "~" {
                warn(
                    key,
                    Some(i),
                    entry,
                    "the whole home directory: shells and tools read their configuration and write their caches there"
                        .into(),
                );
            }
        }
    }
    for (i, name) in policy.env.allow.iter().enumerate() {
        let only_allow = super::EnvRules {
            deny: policy.env.deny.clone(),
            allow: Vec::new(),
        };
        if only_allow.removes(name).is_none() {
            warn(
                "env.allow",
                Some(i),
                name,
                format!("{name:?}: no env.deny pattern matches it, so it is kept anyway"),
            );
        }
    }
    if let Some(allow) = &policy.allow_exec {
        if allow.is_empty() {
            warn(
                "allow_exec",
                None,
                "",
                "empty: nothing may be executed, not even the confined command".into(),
            );
        } else if !allow
            .iter()
            .any(|a| Path::new("/usr/lib").starts_with(lexical(a)) || is_dynamic_loader(a))
        {
            warn(
                "allow_exec",
                None,
                "",
                "does not cover /usr/lib nor list the dynamic loader: the loader and shared libraries of dynamically linked programs cannot be mapped".into(),
            );
        }
    }
    let allowlists = [
        (
            "allow_exec",
            &policy.allow_exec,
            "deny_exec",
            &policy.deny_exec,
        ),
        (
            "allow_write",
            &policy.allow_write,
            "deny_write",
            &policy.deny_write,
        ),
    ];
    for (key, allow, deny_key, deny) in allowlists {
        for (i, entry) in allow.iter().flatten().enumerate() {
            let path = lexical(entry);
            if let Some(denied) = deny.iter().find(|d| path.starts_with(lexical(d))) {
                warn(
                    key,
                    Some(i),
                    entry,
                    format!("inside {deny_key} {denied:?}, which wins: this entry allows nothing"),
                );
            }
        }
    }
    for w in network_lints(policy) {
        warn(&w.key, w.index, &w.entry, w.message);
    }
    out
}

struct NetLint {
    key: String,
    index: Option<usize>,
    entry: String,
    message: String,
}

/// Network rules that cannot do what they seem to: an allowlist in a policy that allows by
/// default, an allow that an equal deny always beats, a default deny that nothing opens.
fn network_lints(policy: &Policy) -> Vec<NetLint> {
    use super::net_spec::{parse, NetHost};
    let net = &policy.network;
    let mut out = Vec::new();
    let lists = policy.net_lists();
    let any_allow = lists.iter().any(|(_, allow, _, l)| *allow && !l.is_empty());
    if net.default == NetDefault::Deny && !any_allow {
        out.push(NetLint {
            key: "network.default".into(),
            index: None,
            entry: String::new(),
            message: "deny with no allow rule: no connect or UDP send can succeed".into(),
        });
    }
    for (key, allow, scope, list) in &lists {
        if !allow {
            continue;
        }
        let denies: Vec<(String, &str)> = lists
            .iter()
            .filter(|(_, a, s, _)| !a && s == scope)
            .flat_map(|(k, _, _, l)| {
                l.iter()
                    .enumerate()
                    .map(move |(j, e)| (format!("{k}[{j}]"), e.as_str()))
            })
            .collect();
        for (i, entry) in list.iter().enumerate() {
            let Ok(spec) = parse(entry) else { continue };
            let NetHost::Cidr(cidr) = spec.host else {
                continue;
            };
            let beaten = denies.iter().find(|(_, d)| {
                parse(d).is_ok_and(|ds| {
                    ds.host == NetHost::Cidr(cidr)
                        && ds.ports.0 <= spec.ports.0
                        && spec.ports.1 <= ds.ports.1
                })
            });
            let message = if let Some((field, _)) = beaten {
                format!("{field} names the same prefix and ports, and deny wins: this entry allows nothing")
            } else if net.default == NetDefault::Allow && *scope == 0 && denies.is_empty() {
                "has no effect: default is allow and no deny rule narrows it (did you mean `default: deny`?)".to_string()
            } else {
                continue;
            };
            out.push(NetLint {
                key: key.clone(),
                index: Some(i),
                entry: entry.clone(),
                message,
            });
        }
    }
    out
}

/// The path with `.` and `..` resolved lexically and no trailing slash (`~` kept as written).
fn lexical(entry: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(entry).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether `entry` names a dynamic loader (`ld-linux-x86-64.so.2`, `ld-musl-x86_64.so.1`): an
/// allowlist of exact files that lists it (as `policy suggest` writes) lists the libraries
/// too.
fn is_dynamic_loader(entry: &str) -> bool {
    Path::new(entry)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("ld-linux") || n.starts_with("ld-musl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;

    fn lints(yaml: &str) -> Vec<String> {
        let p = parse("p.yaml", yaml).unwrap();
        lint("p.yaml", yaml, &p)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_sane_policy_has_no_warnings() {
        assert_eq!(
            lints("name: a\ndeny_read: [~/.ssh, /etc/shadow]\nallow_exec: [/usr]\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn system_trees_and_the_whole_home_are_flagged_with_their_line() {
        let w = lints("name: a\ndeny_read:\n  - ~/.ssh\n  - /usr/\n  - ~\ndeny_exec:\n  - /\n");
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("p.yaml:4: deny_read[1]: warning: \"/usr/\" is a system tree"));
        assert!(w[1].starts_with("p.yaml:5: deny_read[2]: warning: the whole home"));
        assert!(w[2].starts_with("p.yaml:7: deny_exec[0]: warning:"));
    }

    #[test]
    fn contradictions_and_unusable_allowlists_are_flagged() {
        let w =
            lints("name: a\ndeny_exec: [/opt/tools]\nallow_exec:\n  - /usr\n  - /opt/tools/bin\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("allow_exec[1]: warning: inside deny_exec \"/opt/tools\""));
        let w = lints("name: a\nallow_exec: []\n");
        assert!(w[0].contains("allow_exec: warning: empty"), "{w:?}");
        let w = lints("name: a\nallow_exec: [/opt/agent]\n");
        assert!(w[0].contains("does not cover /usr/lib"), "{w:?}");
        // Exact files with the loader among them, as `policy suggest` lists them.
        let w =
            lints("name: a\nallow_exec:\n  - /usr/bin/git\n  - /usr/lib64/ld-linux-x86-64.so.2\n");
        assert_eq!(w, Vec::<String>::new());
    }

    #[test]
    fn an_env_allow_no_pattern_would_remove_is_flagged() {
        let yaml = "name: a\nenv:\n  deny: [\"*_TOKEN\"]\n  allow:\n    - GH_TOKEN\n    - HOME\n";
        let w = lints(yaml);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("p.yaml:6: env.allow[1]: warning: \"HOME\": no env.deny pattern"),
            "{w:?}"
        );
    }

    #[test]
    fn network_rules_that_cannot_work_are_flagged() {
        let w = lints("name: a\nnetwork:\n  allow:\n    - 10.0.0.0/8\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("p.yaml:4: network.allow[0]: warning: has no effect"),
            "{w:?}"
        );
        let w = lints("name: a\nnetwork:\n  default: deny\n");
        assert!(
            w[0].contains("network.default: warning: deny with no allow rule"),
            "{w:?}"
        );
        let w = lints(
            "name: a\nnetwork:\n  default: deny\n  allow:\n    - \"10.0.0.0/8:443\"\n    - 10.1.0.0/16\n  deny:\n    - 10.0.0.0/8\n",
        );
        assert_eq!(w.len(), 1, "a longer allow beats a shorter deny: {w:?}");
        assert!(
            w[0].starts_with(
                "p.yaml:5: network.allow[0]: warning: network.deny[0] names the same prefix"
            ),
            "{w:?}"
        );
        assert_eq!(
            lints("name: a\nnetwork:\n  default: deny\n  allow: [\"0.0.0.0/0:443\"]\n  deny: [169.254.169.254]\n"),
            Vec::<String>::new()
        );
    }
}
