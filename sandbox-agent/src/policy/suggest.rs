//! `policy suggest --from-audit`: a tightened policy from what a workload did under a learning
//! policy in audit mode. Audit mode records only what the policy *would* deny, so the learning
//! policy denies as much as it can (`allow_exec: []`, `network.default: deny`): every program
//! executed or mapped executable and every destination contacted is then a record. From those
//! records the suggestion lists:
//!
//! - the files executed or mapped executable, as `allow_exec` (by the path the kernel
//!   reported; a directory only where every file in it was seen, see `suggest_trees`);
//! - the destinations contacted, as `network.allow` with `default: deny`;
//! - the Unix socket servers outside the sandbox reached, as `network.unix_allow` with
//!   `unix_default: deny` (and, reached by root, as `network.unix_root_allow`);
//! - every `deny_read`, `deny_write` and `deny_exec` rule the workload ran into, kept, and so
//!   are `other_repositories: deny` and the `own_caches` tools whose caches it wrote to.
//!
//! Each entry carries a comment saying how many times it was seen.

use std::collections::BTreeMap;

use crate::audit::AuditRecord;

/// The rule text of an exec that `allow_exec` did not list (see `audit::rule_text`).
const NOT_ALLOWED: &str = "allow_exec (not under any listed path)";
/// The rule text of a destination no network rule allowed.
const NET_DEFAULT: &str = "network.default: deny (no rule allows it)";
/// The rule texts of a Unix socket server outside the sandbox that no list named, with the
/// list that would name it: for every task, and for a task holding root.
const UNIX_SERVERS: [(&str, &str); 2] = [
    ("network.unix_default: deny", "unix_allow"),
    ("network.unix_root_allow", "unix_root_allow"),
];
/// The path rules a suggestion keeps when the workload ran into them.
const KEPT_RULES: [&str; 3] = ["deny_read", "deny_write", "deny_exec"];

/// What the records of one learning run amount to.
#[derive(Debug, Default, PartialEq)]
pub struct Learned {
    /// Files executed or mapped executable, with how many times.
    pub exec: BTreeMap<String, u64>,
    /// Destinations (`addr:port`, `[v6]:port`), with how many connects and sends.
    pub destinations: BTreeMap<String, u64>,
    /// (list, socket file) of each Unix socket server outside the sandbox reached, with how
    /// many connects and datagrams; the list is `unix_allow` or `unix_root_allow`.
    pub unix_servers: BTreeMap<(&'static str, String), u64>,
    /// (key, entry as the policy wrote it) of each path rule that denied, with how many times.
    pub kept: BTreeMap<(String, String), u64>,
    /// Changes to a repository other than the workspace's that `other_repositories: deny`
    /// refused.
    pub other_repositories: u64,
    /// The `own_caches` tools whose caches the workload was refused, with how many times.
    pub own_caches: BTreeMap<&'static str, u64>,
    /// Records used.
    pub records: u64,
    /// Events the kernel's rate limit counted instead of recording: the suggestion may miss
    /// what they were.
    pub suppressed: u64,
    /// Records that could not become an entry (an exec of a file with no path, a memfd...).
    pub skipped: Vec<String>,
    /// First and last record time.
    pub span: Option<(String, String)>,
}

impl Learned {
    /// Takes in one record of the learning run.
    pub fn add(&mut self, r: &AuditRecord) {
        if let Some(n) = r.suppressed {
            self.suppressed += n;
            return;
        }
        if r.action != "audit" && r.action != "deny" {
            return;
        }
        self.records += 1;
        self.span = Some(match self.span.take() {
            None => (r.time.to_string(), r.time.to_string()),
            Some((first, _)) => (first, r.time.to_string()),
        });
        let rule = r.rule.as_deref().unwrap_or_default();
        if rule == NOT_ALLOWED {
            match r.target.path.as_deref() {
                Some(p) if p.starts_with('/') && !p.ends_with(" (deleted)") => {
                    *self.exec.entry(p.to_string()).or_default() += 1;
                }
                other => self.skipped.push(format!(
                    "{} by {} of {}",
                    r.hook,
                    r.comm,
                    other.unwrap_or("a file with no path")
                )),
            }
        } else if rule == NET_DEFAULT {
            match &r.target.address {
                Some(a) => *self.destinations.entry(a.clone()).or_default() += 1,
                None => self
                    .skipped
                    .push(format!("{} by {} with no address", r.hook, r.comm)),
            }
        } else if let Some(&(_, list)) = UNIX_SERVERS.iter().find(|(r, _)| rule.starts_with(r)) {
            match r.target.path.as_deref() {
                Some(p) if p.starts_with('/') => {
                    *self.unix_servers.entry((list, p.to_string())).or_default() += 1;
                }
                _ => {
                    let what = match &r.target.socket_name {
                        Some(name) => format!("the abstract socket {name} (no file to list)"),
                        None => "a socket with no path".to_string(),
                    };
                    self.skipped
                        .push(format!("{} by {} of {what}", r.hook, r.comm));
                }
            }
        } else if rule.starts_with("other_repositories") {
            // `other_repositories: deny (...)`, or the global hooks rule it adds.
            self.other_repositories += 1;
        } else if let Some(entry) = rule.strip_prefix("own_caches ") {
            // A default place names its tool; a place the runner's variables moved does not,
            // and the same tool's default place is what the suggestion lists.
            match super::own_caches::CACHES
                .iter()
                .find(|c| c.developers.contains(&entry))
            {
                Some(c) => *self.own_caches.entry(c.tool).or_default() += 1,
                None => self.skipped.push(format!(
                    "{} by {} of {entry}, a cache moved by the runner's variables",
                    r.hook, r.comm
                )),
            }
        } else if let Some((key, entry)) = rule.split_once(' ') {
            if KEPT_RULES.contains(&key) {
                *self
                    .kept
                    .entry((key.to_string(), entry.to_string()))
                    .or_default() += 1;
            }
        }
    }

    /// The suggested policy named `name`, as YAML with a comment on each entry.
    pub fn to_yaml(&self, name: &str, learned_from: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# Suggested by `sandbox-agent policy suggest --from-audit` from {} audit records of \
             {learned_from}",
            self.records
        ));
        if let Some((first, last)) = &self.span {
            out.push_str(&format!(", {first} to {last}"));
        }
        out.push_str(
            ".\n# Exact files and addresses (a directory only where every file in it was seen): \
             review before use.\n",
        );
        if self.suppressed > 0 {
            out.push_str(&format!(
                "# WARNING: {} events were suppressed by the audit rate limit; what they were is \
                 not listed.\n",
                self.suppressed
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("# not listed: {s}\n"));
        }
        out.push_str(&format!("name: {}\nmode: enforce\n", quoted(name)));
        out.push_str("allow_exec:");
        let exec = super::suggest_trees::merge(&self.exec);
        if exec.is_empty() {
            out.push_str(" []\n");
        } else {
            out.push('\n');
        }
        for (entry, e) in &exec {
            let what = match e.files {
                Some(n) => format!("every one of its {n} files executed or mapped"),
                None => "executed or mapped".to_string(),
            };
            out.push_str(&format!(
                "  - {}  # {what} {}\n",
                quoted(entry),
                times(e.seen)
            ));
        }
        out.push_str("network:\n  default: deny\n  allow:");
        let mut allow = String::new();
        list(&mut allow, &self.destinations, "connected or sent to");
        out.push_str(&allow.replace("\n  - ", "\n    - "));
        out.push_str("  unix_default: deny\n");
        for (_, list_name) in UNIX_SERVERS {
            let servers: BTreeMap<String, u64> = self
                .unix_servers
                .iter()
                .filter(|((l, _), _)| *l == list_name)
                .map(|((_, p), n)| (p.clone(), *n))
                .collect();
            if servers.is_empty() && list_name != "unix_allow" {
                continue;
            }
            let mut entries = String::new();
            list(&mut entries, &servers, "connected or sent to");
            out.push_str(&format!("  {list_name}:"));
            out.push_str(&entries.replace("\n  - ", "\n    - "));
        }
        if self.other_repositories > 0 {
            out.push_str(&format!(
                "other_repositories: deny  # refused {} another repository's change\n",
                times(self.other_repositories)
            ));
        }
        if !self.own_caches.is_empty() {
            let tools: Vec<&str> = self.own_caches.keys().copied().collect();
            let seen: u64 = self.own_caches.values().sum();
            out.push_str(&format!(
                "own_caches: [{}]  # the developer's caches refused {}\n",
                tools.join(", "),
                times(seen)
            ));
        }
        for key in KEPT_RULES {
            let entries: BTreeMap<String, u64> = self
                .kept
                .iter()
                .filter(|((k, _), _)| k == key)
                .map(|((_, e), n)| (e.clone(), *n))
                .collect();
            if !entries.is_empty() {
                out.push_str(&format!("{key}:"));
                list(&mut out, &entries, "denied");
            }
        }
        out
    }
}

/// Appends ` []` or one `  - "entry"  # <what> N times` line per entry.
fn list(out: &mut String, entries: &BTreeMap<String, u64>, what: &str) {
    if entries.is_empty() {
        out.push_str(" []\n");
        return;
    }
    out.push('\n');
    for (entry, n) in entries {
        out.push_str(&format!("  - {}  # {what} {}\n", quoted(entry), times(*n)));
    }
}

/// `once` or `N times`.
fn times(n: u64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

/// A YAML scalar that reads back as exactly `s`: a JSON string is one.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Target;

    fn record<'a>(hook: &'a str, rule: &'a str, target: Target<'a>) -> AuditRecord<'a> {
        AuditRecord {
            time: "2026-12-02T12:00:00.000Z".into(),
            action: "audit".into(),
            hook: hook.into(),
            pid: 1,
            tgid: 1,
            uid: 0,
            comm: "sh".into(),
            cgroup_id: 1,
            cgroup: Some("/sys/fs/cgroup/learn".into()),
            policy: Some("learn".into()),
            rule: Some(rule.into()),
            target,
            exe: None,
            suppressed: None,
        }
    }

    fn file(path: &str) -> Target<'_> {
        Target {
            path: Some(path.into()),
            ..Target::default()
        }
    }

    fn dest(address: &str) -> Target<'_> {
        Target {
            address: Some(address.into()),
            ..Target::default()
        }
    }

    fn learned() -> Learned {
        let mut l = Learned::default();
        for r in [
            record("bprm_check_security", NOT_ALLOWED, file("/usr/bin/git")),
            record("bprm_check_security", NOT_ALLOWED, file("/usr/bin/git")),
            record("mmap_file", NOT_ALLOWED, file("/usr/lib/libc.so.6")),
            record("mmap_file", NOT_ALLOWED, file("/memfd:x (deleted)")),
            record("socket_connect", NET_DEFAULT, dest("127.0.0.1:8080")),
            record("socket_sendmsg", NET_DEFAULT, dest("[::1]:53")),
            record(
                "unix_stream_connect",
                "network.unix_default: deny (a server outside the sandbox, not in unix_allow)",
                file("/run/postgresql/.s.PGSQL.5432"),
            ),
            record(
                "unix_may_send",
                "network.unix_root_allow (a server outside the sandbox, which would see root, and not listed)",
                file("/run/systemd/journal/dev-log"),
            ),
            record(
                "unix_stream_connect",
                "network.unix_default: deny (a server outside the sandbox, not in unix_allow)",
                Target {
                    socket_name: Some("@/tmp/.X11-unix/X0".into()),
                    ..Target::default()
                },
            ),
            record("file_open", "deny_read ~/.ssh", file("/root/.ssh/id")),
            record(
                "capable",
                "self-protection (a capability)",
                Target::default(),
            ),
        ] {
            l.add(&r);
        }
        l
    }

    #[test]
    fn execs_destinations_and_denied_secrets_are_counted() {
        let l = learned();
        assert_eq!(l.exec.get("/usr/bin/git"), Some(&2));
        assert_eq!(l.exec.get("/usr/lib/libc.so.6"), Some(&1));
        assert_eq!(l.exec.len(), 2, "a deleted file is no entry");
        assert_eq!(l.destinations.len(), 2);
        assert_eq!(
            l.kept.get(&("deny_read".to_string(), "~/.ssh".to_string())),
            Some(&1)
        );
        assert_eq!(
            l.unix_servers.keys().collect::<Vec<_>>(),
            [
                &("unix_allow", "/run/postgresql/.s.PGSQL.5432".to_string()),
                &(
                    "unix_root_allow",
                    "/run/systemd/journal/dev-log".to_string()
                )
            ]
        );
        assert_eq!(
            l.skipped.len(),
            2,
            "a memfd and an abstract socket: {:?}",
            l.skipped
        );
        assert_eq!(l.records, 11);
    }

    #[test]
    fn the_suggestion_parses_and_says_how_often_each_entry_was_seen() {
        let yaml = learned().to_yaml("learn-suggested", "policy \"learn\"");
        let p = crate::policy::parse("s.yaml", &yaml).unwrap();
        assert_eq!(p.name, "learn-suggested");
        assert!(yaml.contains("  - \"/usr/bin/git\"  # executed or mapped 2 times\n"));
        assert!(yaml.contains("    - \"127.0.0.1:8080\"  # connected or sent to once\n"));
        assert_eq!(p.network.unix_allow, ["/run/postgresql/.s.PGSQL.5432"]);
        assert_eq!(p.network.unix_root_allow, ["/run/systemd/journal/dev-log"]);
        assert!(yaml.contains("# not listed: unix_stream_connect by sh of the abstract socket"));
        assert!(yaml.contains("deny_read:\n  - \"~/.ssh\"  # denied once\n"));
        assert!(yaml.contains("# not listed: mmap_file by sh of /memfd:x (deleted)\n"));
    }

    /// A learning policy's `other_repositories: deny` and `own_caches` stay in the suggestion
    /// when the workload ran into them.
    #[test]
    fn repositories_and_caches_the_workload_was_refused_are_kept() {
        let mut l = learned();
        for (hook, rule, path) in [
            (
                "path_mkdir",
                "other_repositories: deny (a repository other than the workspace's: .git, .hg, .jj, .sl, a bare HEAD)",
                "/home/dev/src/x/.git",
            ),
            ("file_open", "own_caches ~/.cargo/registry", "/home/dev/.cargo/registry/x"),
            ("path_mkdir", "own_caches ~/.cache/go-build", "/home/dev/.cache/go-build/00"),
            ("path_mknod", "own_caches /data/cache/pip", "/data/cache/pip/x"),
        ] {
            l.add(&record(hook, rule, file(path)));
        }
        assert_eq!(l.other_repositories, 1);
        let yaml = l.to_yaml("s", "policy \"learn\"");
        let p = crate::policy::parse("s.yaml", &yaml).unwrap();
        assert_eq!(
            p.other_repositories,
            crate::policy::schema::OtherRepositories::Deny
        );
        assert_eq!(p.own_caches, ["cargo", "go"]);
        assert!(
            yaml.contains("a cache moved by the runner's variables"),
            "{yaml}"
        );
    }

    #[test]
    fn suppressed_events_are_a_warning_in_the_suggestion() {
        let mut l = learned();
        l.add(&AuditRecord {
            suppressed: Some(7),
            action: "suppressed".into(),
            ..record("", "", Target::default())
        });
        let yaml = l.to_yaml("s", "policy \"learn\"");
        assert!(yaml.contains("WARNING: 7 events were suppressed"), "{yaml}");
    }

    #[test]
    fn nothing_learned_is_still_a_valid_policy() {
        let yaml = Learned::default().to_yaml("empty", "policy \"learn\"");
        crate::policy::parse("s.yaml", &yaml).unwrap();
        assert!(yaml.contains("allow_exec: []\n"));
    }
}
