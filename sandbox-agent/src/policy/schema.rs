//! The policy file format and its validation. Every error names the file, the line and the
//! field, and a policy that does not validate is never attached.

use std::path::Path;

use super::anchors::{ABOVE_WORKSPACE, GIT_COMMON_DIR, GIT_DIR, GIT_HOOKS, WORKSPACE};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny and record.
    #[default]
    Enforce,
    /// Allow, but record what would have been denied.
    Audit,
}

/// A validated policy. Paths are as written (`~` not yet expanded): the daemon expands them
/// against the target user's home when it attaches the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// Files and directories (whole subtrees) no confined process may open.
    #[serde(default)]
    pub deny_read: Vec<String>,
    /// Files and directories (whole subtrees) no confined process may execute or map executable.
    #[serde(default)]
    pub deny_exec: Vec<String>,
    /// Files and directories (whole subtrees) no confined process may change: open for write,
    /// truncate, create, unlink, rename into or out of, hardlink.
    #[serde(default)]
    pub deny_write: Vec<String>,
    /// When present, the only files (or subtrees) a confined process may execute or map
    /// executable; deny_exec still wins inside them.
    #[serde(default)]
    pub allow_exec: Option<Vec<String>>,
    /// When present, the only files (or subtrees) a confined process may change (every change
    /// deny_write names); deny_write still wins inside them.
    #[serde(default)]
    pub allow_write: Option<Vec<String>>,
    /// Deny executing files that have no link: memfd, O_TMPFILE, deleted binaries.
    #[serde(default)]
    pub deny_fileless_exec: bool,
    /// Git repositories other than the workspace's: changed like any other directory (`allow`,
    /// the default), or not at all (`deny`: nothing below a `.git` but the workspace
    /// repository's git directories changes, and no `.git` is made, moved or removed).
    #[serde(default)]
    pub other_repositories: OtherRepositories,
    /// Under `other_repositories: deny`, directories below which repositories are the
    /// sandbox's to make and change as well (a package manager's git checkouts).
    #[serde(default)]
    pub own_repositories: Vec<String>,
    /// Tools (`own_caches::CACHES`) whose caches in `~` the developer's later builds take
    /// unverified: the confined command changes none of them, and `run` gives it its own.
    #[serde(default)]
    pub own_caches: Vec<String>,
    /// Egress rules: IP destinations, per-binary rules, Unix sockets.
    #[serde(default)]
    pub network: Network,
    /// Capabilities a confined root gets back (every policy refuses the ones of
    /// `sandbox_common::CAPABILITIES` that reach past the sandbox).
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Variables `run` removes from the command's environment (`attach` cannot: a running
    /// process keeps the environment it has).
    #[serde(default)]
    pub env: super::EnvRules,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Names (`NET_ADMIN` or `CAP_NET_ADMIN`) of refused capabilities this workload needs.
    #[serde(default)]
    pub allow: Vec<String>,
}

impl Capabilities {
    /// Bit n set for capability n given back; names must have been validated.
    pub fn allowed_mask(&self) -> u64 {
        self.allow
            .iter()
            .filter_map(|n| sandbox_common::capability_by_name(n))
            .fold(0, |mask, c| mask | 1 << c.number)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetDefault {
    /// Destinations no rule names may be reached.
    #[default]
    Allow,
    /// Only destinations an `allow` rule names may be reached.
    Deny,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub default: NetDefault,
    /// Destinations (`net_spec` forms) any confined program may reach.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Destinations no confined program may reach (deny beats allow at equal prefix length).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Rules that apply only to one program, identified by its executable's inode; checked
    /// before the rules above, which still apply when none of its own matches.
    #[serde(default)]
    pub binaries: Vec<BinaryRules>,
    /// Unix socket files (or directories of them) no confined program may connect or send to.
    #[serde(default)]
    pub unix_deny: Vec<String>,
    /// Abstract Unix sockets (a name, no file) made outside the sandbox.
    #[serde(default)]
    pub unix_abstract: UnixAbstract,
    /// Unix socket files (or directories of them) whose servers outside the sandbox a
    /// confined task holding root may reach; every other such server would see root
    /// (`SO_PEERCRED`) and is refused to it, under every policy.
    #[serde(default)]
    pub unix_root_allow: Vec<String>,
    /// Unix socket servers outside the sandbox (another session's ssh-agent, an editor's
    /// remote-control socket) for every confined task: reachable (`allow`, the default), or
    /// only those `unix_allow` or `unix_root_allow` lists (`deny`).
    #[serde(default)]
    pub unix_default: UnixDefault,
    /// Unix socket files (or directories of them) whose servers outside the sandbox every
    /// confined task may reach under `unix_default: deny`.
    #[serde(default)]
    pub unix_allow: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtherRepositories {
    /// Decided by the path rules, as any other directory.
    #[default]
    Allow,
    /// Only the workspace's repository is written.
    Deny,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixDefault {
    /// Every Unix socket server outside the sandbox that `unix_deny` does not name may be
    /// reached (by a task that does not hold root).
    #[default]
    Allow,
    /// Only servers the sandbox made, and those `unix_allow` or `unix_root_allow` lists.
    Deny,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixAbstract {
    /// Every abstract socket may be reached.
    #[default]
    Allow,
    /// Only abstract sockets a task of the sandbox made: the host's (an X server's, a D-Bus
    /// session bus's) are refused.
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryRules {
    pub path: String,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The policy keys that list paths, in the order their rules are numbered. Everything that
/// handles path rules (validation, lints, compilation, `policy check`) goes through this list and
/// matches it exhaustively, so a new key cannot be half-handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKey {
    DenyRead,
    DenyExec,
    DenyWrite,
    AllowExec,
    UnixDeny,
    AllowWrite,
    UnixRootAllow,
    UnixAllow,
    OwnRepositories,
    /// Not a list of paths: the developer's caches of the tools `own_caches` names, each a
    /// `deny_write` rule under this key.
    OwnCaches,
}

impl PathKey {
    /// The key as written in a policy file (and in audit records' rule names).
    pub fn name(self) -> &'static str {
        match self {
            PathKey::DenyRead => "deny_read",
            PathKey::DenyExec => "deny_exec",
            PathKey::DenyWrite => "deny_write",
            PathKey::AllowExec => "allow_exec",
            PathKey::UnixDeny => "network.unix_deny",
            PathKey::AllowWrite => "allow_write",
            PathKey::UnixRootAllow => "network.unix_root_allow",
            PathKey::UnixAllow => "network.unix_allow",
            PathKey::OwnRepositories => "own_repositories",
            PathKey::OwnCaches => "own_caches",
        }
    }
}

impl Policy {
    /// Every path list with its key, in rule-numbering order.
    pub fn path_lists(&self) -> [(PathKey, &[String]); 9] {
        [
            (PathKey::DenyRead, &self.deny_read),
            (PathKey::DenyExec, &self.deny_exec),
            (PathKey::DenyWrite, &self.deny_write),
            (
                PathKey::AllowExec,
                self.allow_exec.as_deref().unwrap_or_default(),
            ),
            (PathKey::UnixDeny, &self.network.unix_deny),
            // Last: rules are numbered in this order, and audit records of attachments made
            // before this key existed name them by number.
            (
                PathKey::AllowWrite,
                self.allow_write.as_deref().unwrap_or_default(),
            ),
            (PathKey::UnixRootAllow, &self.network.unix_root_allow),
            (PathKey::UnixAllow, &self.network.unix_allow),
            (PathKey::OwnRepositories, &self.own_repositories),
        ]
    }

    /// Every network destination list: (field, whether it allows, scope, entries); scope 0 is
    /// every program, n the program of `binaries[n - 1]`.
    pub fn net_lists(&self) -> Vec<(String, bool, u32, &[String])> {
        let mut out = vec![
            (
                "network.allow".to_string(),
                true,
                0,
                &self.network.allow[..],
            ),
            ("network.deny".to_string(), false, 0, &self.network.deny[..]),
        ];
        for (i, b) in self.network.binaries.iter().enumerate() {
            let scope = i as u32 + 1;
            out.push((
                format!("network.binaries[{i}].allow"),
                true,
                scope,
                &b.allow[..],
            ));
            out.push((
                format!("network.binaries[{i}].deny"),
                false,
                scope,
                &b.deny[..],
            ));
        }
        out
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {field}: {message}")]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// Parses and validates policy text. `file` names the source in errors.
pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let policy: Policy = serde_yaml::from_str(text).map_err(|e| yaml_error(file, text, &e))?;
    validate(file, text, &policy)?;
    Ok(policy)
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read policy: {e}"),
        })?;
        parse(&file, &text)
    }
}

fn yaml_error(file: &str, text: &str, e: &serde_yaml::Error) -> PolicyError {
    let message = e.to_string();
    // serde_yaml appends " at line L column C"; keep the message without it.
    let bare = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    let field = field_in_message(&bare).unwrap_or_else(|| "(document)".into());
    let line = e
        .location()
        .map(|l| l.line())
        .or_else(|| field_line(text, &field))
        .unwrap_or(0);
    PolicyError {
        file: file.to_string(),
        line,
        field,
        message: bare,
    }
}

/// serde names the offending field in backquotes: "unknown field `deny_exec`, expected ...".
fn field_in_message(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("missing field `") {
        return rest.split('`').next().map(str::to_string);
    }
    if message.starts_with("unknown field") {
        let start = message.find('`')? + 1;
        let len = message[start..].find('`')?;
        return Some(message[start..start + len].to_string());
    }
    // "mode: unknown variant `x`", "deny_fileless_exec: invalid type: ...": serde_yaml puts the
    // path before a colon.
    message
        .split_once(':')
        .map(|(path, _)| path.trim().to_string())
        .filter(|p| !p.contains(' '))
}

/// Line (1-based) where a key is written (`network.allow`: the first `allow:` key).
pub(super) fn field_line(text: &str, field: &str) -> Option<usize> {
    let field = field.rsplit('.').next().unwrap_or(field);
    let field = field.split('[').next().unwrap_or(field);
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{field}:")))
        .map(|i| i + 1)
}

/// Line of the `index`-th item of a top-level sequence `field` (best effort: serde_yaml keeps no
/// positions for values).
pub(super) fn item_line(text: &str, field: &str, item: &str) -> usize {
    let start = field_line(text, field).unwrap_or(1);
    let lines = || text.lines().enumerate().skip(start.saturating_sub(1));
    let item = item.trim();
    // A block item written exactly (`- ~`), else any line mentioning it (flow lists).
    let exact = |l: &str| {
        l.trim()
            .strip_prefix('-')
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == item)
            .unwrap_or(false)
    };
    lines()
        .find(|(_, l)| exact(l))
        .or_else(|| lines().find(|(_, l)| l.contains(item)))
        .map(|(i, _)| i + 1)
        .unwrap_or(start)
}

fn validate(file: &str, text: &str, policy: &Policy) -> Result<(), PolicyError> {
    let err = |line: usize, field: &str, message: String| PolicyError {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let name_ok = !policy.name.is_empty()
        && policy.name.len() <= 64
        && policy
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        return Err(err(
            field_line(text, "name").unwrap_or(0),
            "name",
            format!(
                "{:?} is not a valid policy name (1-64 characters of A-Z a-z 0-9 . _ -)",
                policy.name
            ),
        ));
    }
    for (key, list) in policy.path_lists() {
        let key = key.name();
        // Lines are looked up only for an error: a 10,000-rule policy validates in linear time.
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let fail = |m| err(item_line(text, key, entry), &format!("{key}[{i}]"), m);
            check_path(entry).map_err(fail)?;
            if !seen.insert(entry) {
                return Err(fail(format!("{entry:?} is listed twice")));
            }
        }
    }
    for (key, _, _, list) in policy.net_lists() {
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let fail = |m| err(item_line(text, &key, entry), &format!("{key}[{i}]"), m);
            super::net_spec::parse(entry).map_err(fail)?;
            if !seen.insert(entry) {
                return Err(fail(format!("{entry:?} is listed twice")));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, name) in policy.capabilities.allow.iter().enumerate() {
        let fail = |m| {
            let line = item_line(text, "capabilities", name);
            err(line, &format!("capabilities.allow[{i}]"), m)
        };
        let Some(cap) = sandbox_common::capability_by_name(name) else {
            return Err(fail(format!(
                "{name:?} is not a Linux capability (write a name such as NET_ADMIN or CAP_NET_ADMIN)"
            )));
        };
        if cap.denied_because.is_empty() && cap.narrowed_because.is_empty() {
            return Err(fail(format!(
                "{name:?}: confined tasks already keep CAP_{}; list only refused or narrowed \
                 capabilities",
                cap.name
            )));
        }
        if !seen.insert(cap.number) {
            return Err(fail(format!("{name:?} is listed twice")));
        }
    }
    for (key, list, check) in [
        (
            "deny",
            &policy.env.deny,
            super::env_rules::check_pattern as fn(&str) -> _,
        ),
        ("allow", &policy.env.allow, super::env_rules::check_name),
    ] {
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let fail = |m| err(item_line(text, "env", entry), &format!("env.{key}[{i}]"), m);
            check(entry).map_err(fail)?;
            if !seen.insert(entry) {
                return Err(fail(format!("{entry:?} is listed twice")));
            }
        }
    }
    if let (UnixDefault::Allow, Some(first)) = (
        policy.network.unix_default,
        policy.network.unix_allow.first(),
    ) {
        let line = item_line(text, "network.unix_allow", first);
        let message = "lists servers to reach, but every server outside is reached under \
                       network.unix_default: allow (write `unix_default: deny` to reach only these)"
            .to_string();
        return Err(err(line, "network.unix_allow", message));
    }
    if let (OtherRepositories::Allow, Some(first)) =
        (policy.other_repositories, policy.own_repositories.first())
    {
        let line = item_line(text, "own_repositories", first);
        let message = "lists where repositories are the sandbox's own, but every repository is \
                       written under other_repositories: allow (write `other_repositories: deny`)"
            .to_string();
        return Err(err(line, "own_repositories", message));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, tool) in policy.own_caches.iter().enumerate() {
        let fail = |m| {
            err(
                item_line(text, "own_caches", tool),
                &format!("own_caches[{i}]"),
                m,
            )
        };
        if super::own_caches::cache(tool).is_none() {
            let known = super::own_caches::known();
            return Err(fail(format!(
                "{tool:?} is no tool whose caches this knows ({known})"
            )));
        }
        if !seen.insert(tool) {
            return Err(fail(format!("{tool:?} is listed twice")));
        }
    }
    for (i, b) in policy.network.binaries.iter().enumerate() {
        let field = format!("network.binaries[{i}].path");
        let line = item_line(text, "path", &b.path);
        check_path(&b.path).map_err(|m| err(line, &field, m))?;
        if let Some(j) = policy.network.binaries[..i]
            .iter()
            .position(|o| o.path == b.path)
        {
            let message = format!("{:?} already has rules in binaries[{j}]", b.path);
            return Err(err(line, &field, message));
        }
    }
    Ok(())
}

/// A rule path must be absolute or start with `~/` or `$WORKSPACE/` (or be `~` or
/// `$WORKSPACE`), with no empty or NUL parts.
fn check_path(entry: &str) -> Result<(), String> {
    if entry.is_empty() {
        return Err("empty path".into());
    }
    if entry.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    if let Some(rest) = entry.strip_prefix(ABOVE_WORKSPACE) {
        // What it names is in each directory above, never one of those directories itself.
        if rest.len() > 1 && rest.starts_with('/') {
            return Ok(());
        }
        return Err(format!(
            "{entry:?}: write {ABOVE_WORKSPACE}/NAME (NAME in every directory above the workspace)"
        ));
    }
    for anchor in [WORKSPACE, GIT_COMMON_DIR, GIT_DIR, GIT_HOOKS] {
        if let Some(rest) = entry.strip_prefix(anchor) {
            if rest.is_empty() || rest.starts_with('/') {
                return Ok(());
            }
            return Err(format!("{entry:?}: write {anchor} or {anchor}/..."));
        }
    }
    if entry.starts_with('~') && entry != "~" && !entry.starts_with("~/") {
        return Err(format!(
            "{entry:?}: only ~ and ~/... are supported (the home is given by --home or the target user)"
        ));
    }
    if !entry.starts_with('/') && !entry.starts_with('~') {
        return Err(format!(
            "{entry:?} is relative: write an absolute path or one starting with ~/, {WORKSPACE}/ or {GIT_DIR}/"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_policy() {
        let p = parse(
            "p.yaml",
            "name: agent\ndeny_read:\n  - ~/.ssh\n  - /etc/shadow\n",
        )
        .unwrap();
        assert_eq!(p.name, "agent");
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.deny_read, vec!["~/.ssh", "/etc/shadow"]);
        assert_eq!(p.allow_exec, None, "no allow_exec key: no allowlist");
        assert!(!p.deny_fileless_exec);
    }

    #[test]
    fn audit_mode_is_accepted() {
        let p = parse("p.yaml", "name: a\nmode: audit\n").unwrap();
        assert_eq!(p.mode, Mode::Audit);
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let e = parse("p.yaml", "name: a\ndeny_read: []\ndeny_reed:\n  - /x\n").unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("p.yaml", 3, "deny_reed")
        );
        assert!(
            e.to_string()
                .starts_with("p.yaml:3: deny_reed: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn bad_mode_names_the_field() {
        let e = parse("p.yaml", "name: a\nmode: block\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "mode"), "{e}");
        assert!(e.message.contains("unknown variant"), "{e}");
    }

    #[test]
    fn missing_name_is_reported() {
        let e = parse("p.yaml", "deny_read: [/x]\n").unwrap_err();
        assert_eq!(e.field, "name", "{e}");
    }

    #[test]
    fn malformed_yaml_reports_its_line() {
        let e = parse("p.yaml", "name: a\ndeny_read:\n  - /x\n - : [\n").unwrap_err();
        assert_eq!(e.file, "p.yaml");
        assert!(e.line >= 3, "{e}");
    }

    #[test]
    fn relative_path_is_rejected_with_its_line() {
        let e = parse("p.yaml", "name: a\ndeny_read:\n  - /ok\n  - secrets.txt\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "deny_read[1]"), "{e}");
        assert!(e.message.contains("relative"), "{e}");
    }

    #[test]
    fn other_users_home_is_rejected() {
        let e = parse("p.yaml", "name: a\ndeny_read: [~bob/.ssh]\n").unwrap_err();
        assert_eq!(e.field, "deny_read[0]");
    }

    #[test]
    fn duplicates_are_rejected() {
        let e = parse("p.yaml", "name: a\ndeny_read: [/x, /y, /x]\n").unwrap_err();
        assert_eq!(e.field, "deny_read[2]");
    }

    #[test]
    fn deny_exec_entries_are_validated_like_deny_read() {
        let p = parse("p.yaml", "name: a\ndeny_exec: [/usr/bin/curl]\n").unwrap();
        assert_eq!(p.deny_exec, vec!["/usr/bin/curl"]);
        let e = parse("p.yaml", "name: a\ndeny_exec:\n  - curl\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "deny_exec[0]"), "{e}");
    }

    #[test]
    fn a_unix_allow_list_needs_unix_default_deny() {
        let text = "name: a\nnetwork:\n  unix_allow:\n    - /run/nscd\n";
        let e = parse("p.yaml", text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "network.unix_allow"), "{e}");
        assert!(e.message.contains("unix_default: deny"), "{e}");
        let text = "name: a\nnetwork:\n  unix_default: deny\n  unix_allow:\n    - /run/nscd\n";
        let p = parse("p.yaml", text).unwrap();
        assert_eq!(p.network.unix_default, UnixDefault::Deny);
        let e = parse("p.yaml", "name: a\nnetwork:\n  unix_default: none\n").unwrap_err();
        assert_eq!(e.field, "network.unix_default", "{e}");
    }

    #[test]
    fn own_caches_names_known_tools_once() {
        let p = parse("p.yaml", "name: a\nown_caches: [cargo, go]\n").unwrap();
        assert_eq!(p.own_caches, ["cargo", "go"]);
        let e = parse("p.yaml", "name: a\nown_caches:\n  - cargo\n  - maven\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "own_caches[1]"), "{e}");
        assert!(e.message.contains("cargo, go, pip"), "{e}");
        let e = parse("p.yaml", "name: a\nown_caches: [pip, pip]\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn bad_name_is_rejected() {
        let e = parse("p.yaml", "name: 'my policy'\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "name"));
    }

    #[test]
    fn workspace_paths_are_checked() {
        assert!(parse("p.yaml", "name: a\ndeny_read: [$WORKSPACE/.env]\n").is_ok());
        assert!(parse("p.yaml", "name: a\ndeny_read: [$WORKSPACEX]\n").is_err());
        let above = |path: &str| parse("p.yaml", &format!("name: a\ndeny_write: [{path}]\n"));
        assert!(above("$ABOVE_WORKSPACE/rust-toolchain.toml").is_ok());
        assert!(above("$GIT_HOOKS").is_ok());
        for bad in [
            "$ABOVE_WORKSPACE",
            "$ABOVE_WORKSPACE/",
            "$ABOVE_WORKSPACEX/y",
        ] {
            let e = above(bad).unwrap_err();
            assert!(e.message.contains("$ABOVE_WORKSPACE/NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_empty_allow_exec_is_an_allowlist_of_nothing() {
        let p = parse(
            "p.yaml",
            "name: a\nallow_exec: []\ndeny_fileless_exec: true\n",
        )
        .unwrap();
        assert_eq!(p.allow_exec, Some(vec![]));
        assert!(p.deny_fileless_exec);
    }

    #[test]
    fn allow_exec_entries_are_validated_like_the_others() {
        let e = parse("p.yaml", "name: a\nallow_exec:\n  - /usr\n  - bin\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (4, "allow_exec[1]"));
        let e = parse("p.yaml", "name: a\ndeny_fileless_exec: yes please\n").unwrap_err();
        assert_eq!(e.field, "deny_fileless_exec");
    }

    #[test]
    fn capabilities_given_back_are_named_with_or_without_cap_prefix() {
        let p = parse(
            "p.yaml",
            "name: a\ncapabilities:\n  allow: [NET_ADMIN, cap_sys_ptrace]\n",
        )
        .unwrap();
        let mask = p.capabilities.allowed_mask();
        assert_eq!(mask, 1 << 12 | 1 << 19);
    }

    #[test]
    fn an_unknown_capability_names_its_line() {
        let e = parse(
            "p.yaml",
            "name: a\ncapabilities:\n  allow:\n    - NET_ADMIN\n    - SYS_ADMIM\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (5, "capabilities.allow[1]"));
        assert!(e.message.contains("not a Linux capability"), "{e}");
    }

    #[test]
    fn a_capability_confined_tasks_keep_is_not_listed() {
        let e = parse("p.yaml", "name: a\ncapabilities:\n  allow: [KILL]\n").unwrap_err();
        assert!(e.message.contains("already keep CAP_KILL"), "{e}");
        // A narrowed one is given back whole.
        parse(
            "p.yaml",
            "name: a\ncapabilities:\n  allow: [CHOWN, SETUID]\n",
        )
        .unwrap();
        let e = parse(
            "p.yaml",
            "name: a\ncapabilities:\n  allow: [MKNOD, CAP_MKNOD]\n",
        )
        .unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn env_rules_are_parsed_and_bad_entries_name_their_line() {
        let p = parse(
            "p.yaml",
            "name: a\nenv:\n  deny: [\"*_TOKEN\", AWS_*]\n  allow: [ANTHROPIC_API_KEY]\n",
        )
        .unwrap();
        assert_eq!(p.env.deny, ["*_TOKEN", "AWS_*"]);
        assert_eq!(p.env.allow, ["ANTHROPIC_API_KEY"]);
        let e = parse(
            "p.yaml",
            "name: a\nenv:\n  deny:\n    - GOOD_*\n    - \"[BAD\"\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (5, "env.deny[1]"));
        assert!(e.message.contains("not a valid pattern"), "{e}");
        let e = parse("p.yaml", "name: a\nenv:\n  allow: [\"GH_*\"]\n").unwrap_err();
        assert_eq!(e.field, "env.allow[0]");
        let e = parse("p.yaml", "name: a\nenv:\n  set: {A: b}\n").unwrap_err();
        assert!(e.message.contains("unknown field `set`"), "{e}");
    }

    /// Every path key is a row of the README's "What is enforced" table.
    #[test]
    fn the_readme_names_every_path_key() {
        let readme = include_str!("../../../README.md");
        let p = parse("p.yaml", "name: a\n").unwrap();
        for (key, _) in p.path_lists() {
            let row = format!("\n| `{}`", key.name());
            assert!(
                readme.contains(&row),
                "README has no row for {}",
                key.name()
            );
        }
    }

    /// The README's capability lists and the kernel's masks come from the same table.
    #[test]
    fn the_readme_lists_every_refused_and_narrowed_capability_with_its_reason() {
        let readme = include_str!("../../../README.md");
        for cap in sandbox_common::CAPABILITIES.iter() {
            for because in [cap.denied_because, cap.narrowed_because] {
                let line = format!("| `{}` | {} |", cap.name, because);
                assert_eq!(
                    readme.contains(&line),
                    !because.is_empty(),
                    "README capability tables and sandbox_common::CAPABILITIES disagree on {}",
                    cap.name
                );
            }
        }
    }

    /// The README's ioctl list and the kernel's compares come from the same table.
    #[test]
    fn the_readme_lists_every_refused_ioctl_with_its_reason() {
        let readme = include_str!("../../../README.md");
        for ioctl in sandbox_common::DENIED_IOCTLS.iter() {
            let line = format!("| `{}` | {} |", ioctl.name, ioctl.denied_because);
            assert!(readme.contains(&line), "README has no ioctl row {line}");
        }
    }
}
