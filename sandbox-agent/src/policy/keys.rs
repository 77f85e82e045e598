//! Every policy key and the LSM hooks that enforce it: the one list the parser's fields, the
//! compiler's path keys, the loader's programs and the README's "What is enforced" table are
//! checked against (see the tests), so none of them can grow a key the others miss.

/// One key as written in a policy file.
pub struct Key {
    /// Dotted for a nested key: `network.unix_deny`.
    pub name: &'static str,
    /// The hooks whose programs enforce it; empty for keys that are no rule (`name`, `mode`)
    /// or that `run` applies in user space (`env`).
    pub hooks: &'static [&'static str],
}

const FILE_READ: &[&str] = &[
    "file_open",
    "file_receive",
    "path_unlink",
    "path_rmdir",
    "path_link",
    "path_mkdir",
    "path_mknod",
    "path_symlink",
    "path_rename",
    "path_chmod",
    "path_chown",
    "inode_setxattr",
    "inode_removexattr",
    "inode_set_acl",
    "inode_remove_acl",
    "d_instantiate",
];
const EXEC: &[&str] = &[
    "bprm_check_security",
    "mmap_file",
    "file_mprotect",
    "d_instantiate",
];
/// deny_exec also keeps the directories and symlinks on the way to its paths in place
/// (`RULE_ON_THE_WAY`).
const DENY_EXEC: &[&str] = &[
    "bprm_check_security",
    "mmap_file",
    "file_mprotect",
    "d_instantiate",
    "path_unlink",
    "path_rmdir",
    "path_rename",
];
const NETWORK: &[&str] = &["socket_connect", "socket_sendmsg", "socket_create"];
/// unix_deny also keeps the way to its sockets in place, and no name is made where they are
/// looked for (`CREATE`).
const UNIX: &[&str] = &[
    "unix_stream_connect",
    "unix_may_send",
    "path_unlink",
    "path_rmdir",
    "path_rename",
    "path_mkdir",
    "path_mknod",
    "path_symlink",
    "path_link",
];
/// Unix socket servers outside the sandbox (which see a confined root as root, or act on the
/// user's requests): a connect and a datagram; no name is made or moved where the listed ones
/// are (`CREATE`).
const UNIX_OUTSIDE: &[&str] = &[
    "unix_stream_connect",
    "unix_may_send",
    "path_rename",
    "path_mkdir",
    "path_mknod",
    "path_symlink",
    "path_link",
];
/// Abstract sockets: a connect, a send that names one, and a send on a connection to one.
const UNIX_ABSTRACT: &[&str] = &["unix_stream_connect", "unix_may_send", "socket_sendmsg"];
const WRITE: &[&str] = &[
    "file_open",
    "path_truncate",
    "file_truncate",
    "path_unlink",
    "path_rmdir",
    "path_mkdir",
    "path_mknod",
    "path_symlink",
    "path_link",
    "path_rename",
    "path_chmod",
    "path_chown",
    "inode_setattr",
    "inode_setxattr",
    "inode_removexattr",
    "inode_set_acl",
    "inode_remove_acl",
    "file_ioctl",
    "file_ioctl_compat",
];
const CONFINED_ROOT: &[&str] = &[
    "capable",
    "task_fix_setuid",
    "task_fix_setgid",
    "task_fix_setgroups",
    "uring_override_creds",
    "path_chmod",
    "path_chown",
    "path_mknod",
    "path_link",
    "path_unlink",
    "path_rmdir",
    "path_rename",
    "path_symlink",
    "inode_setattr",
    "inode_setxattr",
    "inode_removexattr",
    "inode_set_acl",
    "inode_remove_acl",
    "kernel_module_request",
    "kernel_load_data",
    "kernel_read_file",
    "file_ioctl",
    "file_ioctl_compat",
    "file_open",
    // Root's entries of shared directories (`root_files`): opened, received, changed.
    "file_receive",
    "path_mkdir",
    "path_truncate",
    "file_truncate",
];

pub const KEYS: &[Key] = &[
    Key {
        name: "name",
        hooks: &[],
    },
    Key {
        name: "mode",
        hooks: &[],
    },
    Key {
        name: "deny_read",
        hooks: FILE_READ,
    },
    Key {
        name: "deny_exec",
        hooks: DENY_EXEC,
    },
    Key {
        name: "allow_exec",
        hooks: EXEC,
    },
    Key {
        name: "deny_fileless_exec",
        hooks: EXEC,
    },
    Key {
        name: "deny_write",
        hooks: WRITE,
    },
    Key {
        name: "other_repositories",
        hooks: WRITE,
    },
    Key {
        name: "own_repositories",
        hooks: WRITE,
    },
    Key {
        name: "own_caches",
        hooks: WRITE,
    },
    Key {
        name: "allow_write",
        hooks: WRITE,
    },
    Key {
        name: "network.default",
        hooks: NETWORK,
    },
    Key {
        name: "network.allow",
        hooks: NETWORK,
    },
    Key {
        name: "network.deny",
        hooks: NETWORK,
    },
    Key {
        name: "network.binaries",
        hooks: NETWORK,
    },
    Key {
        name: "network.unix_deny",
        hooks: UNIX,
    },
    Key {
        name: "network.unix_abstract",
        hooks: UNIX_ABSTRACT,
    },
    Key {
        name: "network.unix_root_allow",
        hooks: UNIX_OUTSIDE,
    },
    Key {
        name: "network.unix_default",
        hooks: UNIX_OUTSIDE,
    },
    Key {
        name: "network.unix_allow",
        hooks: UNIX_OUTSIDE,
    },
    Key {
        name: "capabilities.allow",
        hooks: CONFINED_ROOT,
    },
    Key {
        name: "env.deny",
        hooks: &[],
    },
    Key {
        name: "env.allow",
        hooks: &[],
    },
];

/// Hooks every attachment runs whatever its policy says: self-protection and sticky
/// confinement, and every `deny_write` hook, which refuses any change on a kernel filesystem.
const GUARDS: &[&str] = &[
    "bpf",
    "task_kill",
    "ptrace_access_check",
    "task_setnice",
    "task_setioprio",
    "task_setscheduler",
    "task_setrlimit",
    "file_fcntl",
    "socket_setsockopt",
    "socket_bind",
    "socket_connect",
    "socket_sendmsg",
    "sb_mount",
    "move_mount",
    "file_receive",
    "task_alloc",
    "task_free",
    "key_alloc",
    "key_permission",
];

/// The hooks every attachment runs whatever its policy says (see `GUARDS`).
pub fn every_policy() -> impl Iterator<Item = &'static str> {
    GUARDS.iter().chain(WRITE).copied()
}

/// Keys that name and set up a policy rather than rule anything: no hooks, no README row.
const SETTINGS: [&str; 2] = ["name", "mode"];

/// The key named `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Every key `policy` holds, as its serialized form names them (dotted below a section), with
/// its value.
fn values(policy: &super::Policy) -> Vec<(String, serde_yaml::Value)> {
    let Ok(serde_yaml::Value::Mapping(top)) = serde_yaml::to_value(policy) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in top {
        let k = k.as_str().unwrap_or_default().to_string();
        match v {
            serde_yaml::Value::Mapping(section) => {
                for (sub, v) in section {
                    out.push((format!("{k}.{}", sub.as_str().unwrap_or_default()), v));
                }
            }
            v => out.push((k, v)),
        }
    }
    out
}

/// The rule keys `policy` sets (a list with entries, a switch turned on, a default changed),
/// each with how much: `12`, `on`, `deny`.
pub fn in_use(policy: &super::Policy) -> Vec<(&'static Key, String)> {
    use serde_yaml::Value;
    let mut used = Vec::new();
    for (name, value) in values(policy) {
        let Some(key) = key(&name).filter(|k| !SETTINGS.contains(&k.name)) else {
            continue;
        };
        let amount = match value {
            Value::Sequence(items) if !items.is_empty() => items.len().to_string(),
            Value::Bool(true) => "on".to_string(),
            Value::String(s) if s != "allow" => s,
            _ => continue,
        };
        used.push((key, amount));
    }
    used
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{
        bpf::{PROGRAMS, PROGRAMS_IF_PRESENT},
        policy::{parse, PathKey},
    };

    /// The keys a policy file may hold, as the parser's own types name them.
    fn parser_keys() -> BTreeSet<String> {
        let policy = parse("p.yaml", "name: a\nallow_exec: []\nallow_write: []\n").unwrap();
        values(&policy).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_table_names_exactly_the_keys_the_parser_accepts() {
        let table: BTreeSet<String> = KEYS.iter().map(|k| k.name.to_string()).collect();
        assert_eq!(table, parser_keys());
    }

    #[test]
    fn only_the_keys_a_policy_sets_are_in_use() {
        let policy = parse(
            "p.yaml",
            "name: a\ndeny_read: [/x, /y]\ndeny_fileless_exec: true\nnetwork:\n  default: deny\n  allow: [10.0.0.1]\n",
        )
        .unwrap();
        let used: Vec<(&str, String)> = in_use(&policy)
            .into_iter()
            .map(|(k, n)| (k.name, n))
            .collect();
        let want = [
            ("deny_read", "2"),
            ("deny_fileless_exec", "on"),
            ("network.default", "deny"),
            ("network.allow", "1"),
        ];
        assert_eq!(
            used,
            want.map(|(k, n)| (k, n.to_string())).to_vec(),
            "in the parser's order"
        );
    }

    #[test]
    fn every_path_key_is_in_the_table() {
        for key in [
            PathKey::DenyRead,
            PathKey::DenyExec,
            PathKey::DenyWrite,
            PathKey::AllowExec,
            PathKey::UnixDeny,
            PathKey::AllowWrite,
            PathKey::UnixRootAllow,
            PathKey::UnixAllow,
            PathKey::OwnRepositories,
            PathKey::OwnCaches,
        ] {
            assert!(super::key(key.name()).is_some(), "{}", key.name());
        }
    }

    #[test]
    fn the_tables_hooks_are_exactly_the_loaders_programs() {
        let named: BTreeSet<&str> = KEYS
            .iter()
            .flat_map(|k| k.hooks.iter().copied())
            .chain(every_policy())
            .collect();
        let loaded: BTreeSet<&str> = PROGRAMS
            .iter()
            .chain(PROGRAMS_IF_PRESENT)
            .map(|(hook, _)| *hook)
            .collect();
        assert_eq!(named, loaded);
    }

    /// `(keys, hooks)` of each row of the README's "What is enforced today" table. A row names
    /// its key (`network` (`default`, `allow`) is two keys), or "(every policy)"; "same" takes
    /// the row above's hooks.
    fn readme_rows() -> Vec<(Vec<String>, BTreeSet<String>)> {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## What is enforced today")
            .nth(1)
            .expect("the README has its table");
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let mut rows: Vec<(Vec<String>, BTreeSet<String>)> = Vec::new();
        for line in table.lines().skip_while(|l| !l.starts_with('|')).skip(2) {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (key_cell, hooks_cell) = (cells[1], cells[2]);
            let names = ticked(key_cell);
            let keys = match names.as_slice() {
                [] => vec![],
                [one] => vec![one.clone()],
                [parent, subs @ ..] => subs.iter().map(|s| format!("{parent}.{s}")).collect(),
            };
            let hooks = if hooks_cell.starts_with("(none") {
                BTreeSet::new()
            } else if hooks_cell == "same" {
                rows.last().expect("a row above").1.clone()
            } else {
                ticked(hooks_cell).into_iter().collect()
            };
            rows.push((keys, hooks));
        }
        rows
    }

    #[test]
    fn the_readme_table_gives_each_key_its_hooks() {
        let rows = readme_rows();
        let mut documented = BTreeSet::new();
        for (keys, hooks) in &rows {
            if keys.is_empty() {
                let every: BTreeSet<String> = every_policy().map(str::to_string).collect();
                assert_eq!(hooks, &every, "the (every policy) row");
            }
            for name in keys {
                let key = super::key(name).unwrap_or_else(|| panic!("README key {name}"));
                let want: BTreeSet<String> = key.hooks.iter().map(|h| h.to_string()).collect();
                assert_eq!(hooks, &want, "README hooks of {name}");
                documented.insert(name.clone());
            }
        }
        for key in KEYS {
            assert!(
                documented.contains(key.name) || SETTINGS.contains(&key.name),
                "{} has no row in the README",
                key.name
            );
        }
    }
}
