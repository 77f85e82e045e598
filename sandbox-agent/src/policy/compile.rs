//! Compiles a policy into map entries keyed by canonical inode identity.
//!
//! For every denied path the daemon writes:
//! - an inode rule on the file or directory it resolves to (any alias reaches that inode), and
//! - a name rule on (parent directory inode, hash of the last component), so the path stays
//!   denied when the file is created later or replaced by a rename.
//!
//! When more than the last component is missing (`~/.config/gcloud` before `~/.config` exists),
//! the names below the deepest existing directory form a chain: `.config` is a prefix entry
//! pointing at a virtual node, under which `gcloud` is denied. Only the exact path is denied.
//! Chains longer than `MAX_CHAIN` deny the subtree at that depth (fail closed, with a warning).

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

use sandbox_common::{
    NetRules, RuleValue, CHAIN_DEV, MAX_CHAIN, POLICY_DENY_FILELESS_EXEC, POLICY_EXEC_ALLOWLIST,
    POLICY_NET_BINARIES, POLICY_NET_BINARY_NAMES, POLICY_NET_DEFAULT_DENY, POLICY_NET_RULES,
    POLICY_OTHER_REPOSITORIES, POLICY_UNIX_ABSTRACT, POLICY_UNIX_DEFAULT_DENY, POLICY_UNIX_RULES,
    POLICY_WRITE_ALLOWLIST, RULE_ALLOW_EXEC, RULE_ALLOW_UNIX, RULE_ALLOW_UNIX_ROOT,
    RULE_ALLOW_WRITE, RULE_DENY_EXEC, RULE_DENY_READ, RULE_DENY_UNIX, RULE_DENY_WRITE,
    RULE_NAMED_CHILDREN, RULE_ON_THE_WAY, RULE_OWN_REPOSITORY, RULE_PREFIX, RULE_TREE,
};
use serde::Serialize;

use super::hardlink_scan::deny_other_names;
use super::mounted_below::rule_what_is_mounted_below;
use super::resolve::Resolver;
use super::the_way::{follow_the_way, Landing};
use super::{
    anchors::{Anchors, GIT_COMMON_DIR, GIT_DIR},
    net_spec::Cidr,
    schema::{Mode, NetDefault, OtherRepositories, PathKey, Policy, UnixAbstract, UnixDefault},
};
use crate::identity::{file_stat, FileId, FileStat};

/// (parent directory identity, name of the child).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameRuleKey {
    pub parent_dev: u32,
    pub parent_ino: u64,
    pub name: Vec<u8>,
}

/// What a rule id means, for status and audit output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub id: u32,
    pub kind: &'static str,
    /// As written in the policy.
    pub path: String,
    /// What the rule names once resolved: the path after `~` expansion and symlink resolution
    /// of its existing part, or a network rule's addresses and ports.
    pub resolved: String,
    /// Whether the path existed when the policy was compiled.
    pub exists: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CompiledPolicy {
    pub name: String,
    pub mode: Mode,
    /// `POLICY_*` bits for the kernel.
    pub flags: u32,
    /// Refused capabilities the policy gives back (bit n: capability n).
    pub caps_allowed: u64,
    /// The sandbox's user, (uid, gid) of `~`: whose files and ids the narrowed capabilities
    /// reach besides the task's own; `NO_USER` when `~` cannot be read.
    pub user: (u32, u32),
    /// The supplementary groups of that user (`MAX_USER_GROUPS` at most): filled by the
    /// daemon at each attach, not by the compile (they are read from the host's account
    /// databases, which a reused compile does not watch).
    pub user_groups: Vec<u32>,
    pub inode_rules: BTreeMap<(u32, u64), RuleValue>,
    pub name_rules: BTreeMap<NameRuleKey, RuleValue>,
    /// `NET_RULES` values by (scope, prefix).
    pub net_rules: BTreeMap<(u32, Cidr), NetRules>,
    /// Scope of each per-binary rule set, by executable identity.
    pub net_binaries: BTreeMap<(u32, u64), u32>,
    /// ... and by (directory, name) for binaries that do not exist yet.
    pub net_binary_names: BTreeMap<NameRuleKey, u32>,
    pub rules: Vec<RuleInfo>,
    pub warnings: Vec<String>,
    /// Some network rule names a host: the daemon resolves it again periodically.
    pub names_hosts: bool,
    /// Chain node of each prefix name rule, shared by rules with a common missing prefix.
    chain_nodes: BTreeMap<NameRuleKey, u32>,
    /// Denied paths that do not exist yet (each denied once created). Not a warning: a
    /// default policy names many files a given host never has, and `run` lists them only when
    /// asked (`--verbose`).
    pub not_yet_created: Vec<PathBuf>,
    /// Rule paths on btrfs: the programs must be able to read subvolume devices to match them.
    pub on_btrfs: std::collections::BTreeSet<PathBuf>,
    /// Existing directories with deny rules: (path, identity, rule bits, rule id).
    pub(super) deny_dirs: Vec<(PathBuf, FileId, u32, u32)>,
    /// Existing directories with rules, deny or allow: (path, rule bits, rule id).
    pub(super) rule_dirs: Vec<(PathBuf, u32, u32)>,
    /// What is mounted below them, by mount point, as it was compiled: each has its
    /// directory's rule of its own (the hardlink scan does not go through it twice), and a
    /// change here means compiling again (`MountsBelow`). None: it could not be read.
    pub(super) mounts_below: BTreeMap<PathBuf, Option<FileId>>,
}

impl CompiledPolicy {
    /// The identity of `path` for a rule, noting rules on btrfs.
    pub(super) fn identify(&mut self, path: &Path) -> Result<FileId, String> {
        self.identify_stat(path).map(|s| s.id)
    }

    /// Like `identify`, with whether `path` is a directory.
    pub(super) fn identify_stat(&mut self, path: &Path) -> Result<FileStat, String> {
        super::watch::before_follow(path);
        let stat = file_stat(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        Ok(self.noted(path, stat))
    }

    /// `stat` of `path`, noting a rule on btrfs.
    pub(super) fn noted(&mut self, path: &Path, stat: FileStat) -> FileStat {
        if stat.id.btrfs {
            self.on_btrfs.insert(path.to_path_buf());
        }
        stat
    }

    pub(super) fn add_inode(&mut self, id: FileId, flags: u32, rule_id: u32) {
        let v = self.inode_rules.entry((id.dev, id.ino)).or_default();
        if takes_rule_id(v.flags, flags, RULE_NAMED_CHILDREN) {
            v.rule_id = rule_id;
        }
        v.flags |= flags;
    }

    /// A name rule denying `flags` for `name` under the real directory `parent`.
    fn add_name(&mut self, parent: FileId, name: &OsStr, flags: u32, rule_id: u32) {
        self.add_inode(parent, RULE_NAMED_CHILDREN, rule_id);
        let key = NameRuleKey {
            parent_dev: parent.dev,
            parent_ino: parent.ino,
            name: name.as_bytes().to_vec(),
        };
        self.add_name_value(key, flags, rule_id);
    }

    fn add_name_value(&mut self, key: NameRuleKey, flags: u32, rule_id: u32) {
        let v = self.name_rules.entry(key).or_insert(RuleValue {
            rule_id,
            ..Default::default()
        });
        if takes_rule_id(v.flags, flags, RULE_PREFIX) {
            v.rule_id = rule_id;
        }
        v.flags |= flags;
    }

    /// Denies the missing path `names` (first name first) below the existing directory `dir`.
    fn add_chain(&mut self, dir: FileId, names: &[std::ffi::OsString], flags: u32, rule_id: u32) {
        self.add_inode(dir, RULE_NAMED_CHILDREN, rule_id);
        let (mut parent_dev, mut parent_ino) = (dir.dev, dir.ino);
        for (i, name) in names.iter().enumerate() {
            let key = NameRuleKey {
                parent_dev,
                parent_ino,
                name: name.as_bytes().to_vec(),
            };
            if i + 1 == names.len() {
                self.add_name_value(key, flags, rule_id);
                return;
            }
            let next = self.chain_nodes.len() as u32 + 1;
            let node = *self.chain_nodes.entry(key.clone()).or_insert(next);
            // Once made, a missing directory on the way to a denied path stays in place: moved
            // aside, what the owner writes below it would leave the chain's names behind.
            let way = if flags & DENY != 0 {
                RULE_ON_THE_WAY
            } else {
                0
            };
            self.add_name_value(key.clone(), RULE_PREFIX | way, rule_id);
            if let Some(v) = self.name_rules.get_mut(&key) {
                v.next_node = node;
            }
            (parent_dev, parent_ino) = (CHAIN_DEV, node as u64);
        }
    }

    /// Whether only `allow_exec` paths may be executed.
    pub fn exec_allowlist(&self) -> bool {
        self.flags & POLICY_EXEC_ALLOWLIST != 0
    }

    /// Whether only `allow_write` paths may be changed.
    pub fn write_allowlist(&self) -> bool {
        self.flags & POLICY_WRITE_ALLOWLIST != 0
    }

    /// The rule behind a rule id, if any.
    pub fn rule(&self, id: u32) -> Option<&RuleInfo> {
        self.rules.get(id as usize)
    }
}

/// Whether a rule adding `flags` to an entry that has `existing` names the entry in audit
/// records: the first rule that denies does, else the first rule with any meaning (`allow_exec`);
/// `structural` (a chain or named-children marker) carries no rule of its own.
/// The rule bits that deny something.
pub(super) const DENY: u32 = RULE_DENY_READ | RULE_DENY_EXEC | RULE_DENY_UNIX | RULE_DENY_WRITE;
/// The rule bits that list what an allowlist allows (and where repositories are the
/// sandbox's own: a path of either that does not exist yet allows nothing).
pub(super) const ALLOW: u32 = RULE_ALLOW_EXEC
    | RULE_ALLOW_WRITE
    | RULE_ALLOW_UNIX_ROOT
    | RULE_ALLOW_UNIX
    | RULE_OWN_REPOSITORY;

fn takes_rule_id(existing: u32, flags: u32, structural: u32) -> bool {
    let meaningful = |f: u32| f & !structural != 0;
    (existing & DENY == 0 && flags & DENY != 0) || (!meaningful(existing) && meaningful(flags))
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{key} {path:?}: {message}")]
    Path {
        key: &'static str,
        path: String,
        message: String,
    },
    #[error("{field} {entry:?}: {message}")]
    Net {
        field: String,
        entry: String,
        message: String,
    },
}

/// No user: `(uid_t)-1`, which no file and no task has.
pub const NO_USER: (u32, u32) = (u32::MAX, u32::MAX);

/// Resolves every rule of `policy` against the filesystem as seen by this process, with `~`
/// meaning `home`.
pub fn compile(policy: &Policy, home: &Path) -> Result<CompiledPolicy, CompileError> {
    compile_with(policy, &Anchors::home(home))
}

/// Like `compile`, with `$WORKSPACE` too.
pub fn compile_with(policy: &Policy, anchors: &Anchors) -> Result<CompiledPolicy, CompileError> {
    compile_with_extra(policy, anchors, &[])
}

/// Like `compile_with`, plus path rules the caller adds to every policy (the daemon's own
/// files), numbered after all of the policy's own rules: a policy's rule ids depend on its text
/// alone, so an audit record names the same rule whatever the caller adds, before and after a
/// restart. An extra path the policy already lists under the same key is not added twice.
pub fn compile_with_extra(
    policy: &Policy,
    anchors: &Anchors,
    extra: &[(PathKey, String)],
) -> Result<CompiledPolicy, CompileError> {
    let mut out = CompiledPolicy {
        name: policy.name.clone(),
        mode: policy.mode,
        flags: policy_flags(policy),
        caps_allowed: policy.capabilities.allowed_mask(),
        ..Default::default()
    };
    out.user = match anchors.user() {
        Ok(user) => user,
        Err(_) => {
            out.warnings.push(format!(
                "~ ({}) cannot be read: confined tasks reach no other user's files and ids \
                 but their own",
                anchors.home.display()
            ));
            NO_USER
        }
    };
    let lists = policy.path_lists();
    let mut resolver = Resolver::default();
    for (key, list) in lists {
        for entry in list {
            add_listed(&mut out, &mut resolver, anchors, key, entry)?;
        }
    }
    for entry in super::own_caches::developers(&policy.own_caches) {
        add_listed(&mut out, &mut resolver, anchors, PathKey::OwnCaches, entry)?;
    }
    warn_own_caches_not_writable(&mut out, &mut resolver, anchors, policy);
    if policy.other_repositories == OtherRepositories::Deny {
        mark_own_repository(&mut out, &mut resolver, anchors)?;
    }
    super::net_compile::compile_network(policy, anchors, &mut out)?;
    if policy.other_repositories == OtherRepositories::Deny {
        // Numbered after the policy's own rules: it comes from the host, not the policy text.
        deny_shared_hooks(&mut out, &mut resolver, anchors)?;
    }
    for (key, entry) in extra {
        let listed = lists.iter().any(|(k, l)| k == key && l.contains(entry));
        if !listed {
            add_listed(&mut out, &mut resolver, anchors, *key, entry)?;
            if *key == PathKey::UnixDeny {
                out.flags |= POLICY_UNIX_RULES;
            }
        }
    }
    rule_what_is_mounted_below(&mut out);
    deny_other_names(&mut out);
    for (present, flag) in [
        (!out.net_rules.is_empty(), POLICY_NET_RULES),
        (!out.net_binaries.is_empty(), POLICY_NET_BINARIES),
        (!out.net_binary_names.is_empty(), POLICY_NET_BINARY_NAMES),
    ] {
        if present {
            out.flags |= flag;
        }
    }
    Ok(out)
}

/// One rule of a path list, numbered next.
fn add_listed(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    anchors: &Anchors,
    key: PathKey,
    entry: &str,
) -> Result<(), CompileError> {
    let flags = match key {
        PathKey::DenyRead => RULE_DENY_READ,
        PathKey::DenyExec => RULE_DENY_EXEC,
        PathKey::DenyWrite => RULE_DENY_WRITE,
        PathKey::AllowExec => RULE_ALLOW_EXEC,
        PathKey::UnixDeny => RULE_DENY_UNIX,
        PathKey::AllowWrite => RULE_ALLOW_WRITE,
        PathKey::UnixRootAllow => RULE_ALLOW_UNIX_ROOT,
        PathKey::UnixAllow => RULE_ALLOW_UNIX,
        PathKey::OwnRepositories => RULE_OWN_REPOSITORY,
        PathKey::OwnCaches => RULE_DENY_WRITE,
    };
    let key = key.name();
    let id = out.rules.len() as u32;
    let path_error = |message| CompileError::Path {
        key,
        path: entry.to_string(),
        message,
    };
    let path = anchors
        .expand_in(entry, &mut resolver.git)
        .map_err(path_error)?;
    let lexical = normalize(&path).map_err(path_error)?;
    // An allowed path needs no guarding: moved away, it is simply no longer allowed.
    let mark = (flags & DENY != 0).then_some(id);
    let landing = follow_the_way(out, resolver, &lexical, mark).map_err(path_error)?;
    let (resolved, exists) =
        add_path_rule(out, resolver, landing, flags, id).map_err(path_error)?;
    out.rules.push(RuleInfo {
        id,
        kind: key,
        path: entry.to_string(),
        resolved: resolved.display().to_string(),
        exists,
    });
    // `$ABOVE_WORKSPACE/NAME`: NAME in every directory further up as well, under this rule.
    for path in anchors.above_workspace(entry).map_err(path_error)? {
        let lexical = normalize(&path).map_err(path_error)?;
        let landing = follow_the_way(out, resolver, &lexical, mark).map_err(path_error)?;
        add_path_rule(out, resolver, landing, flags, id).map_err(path_error)?;
    }
    if mark.is_some() && !resolver.git_way_denied {
        // A rule in the repository: the `.git` file that leads git there, or a `.git` made
        // nearer the workspace, would send the developer's git to hooks and config of the
        // agent's making. They are denied (under the first such rule) as the way to it.
        let way = anchors
            .git_way(entry, &mut resolver.git)
            .map_err(path_error)?;
        resolver.git_way_denied = !way.is_empty();
        for dot_git in way {
            let landing = follow_the_way(out, resolver, &dot_git, mark).map_err(path_error)?;
            add_path_rule(out, resolver, landing, RULE_DENY_WRITE, id).map_err(path_error)?;
        }
    }
    Ok(())
}

/// `own_caches` under an `allow_write` that does not list where `run` puts the sandbox's caches:
/// the confined tools could write no cache at all.
fn warn_own_caches_not_writable(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    anchors: &Anchors,
    policy: &Policy,
) {
    let (false, Some(allowed)) = (policy.own_caches.is_empty(), &policy.allow_write) else {
        return;
    };
    let own = super::own_caches::own_dir(&anchors.home);
    let listed = allowed.iter().any(|entry| {
        anchors
            .expand_in(entry, &mut resolver.git)
            .is_ok_and(|dir| own.starts_with(dir))
    });
    if !listed {
        out.warnings.push(format!(
            "own_caches: allow_write does not list {}, where run gives the tools caches of \
             their own: they can write no cache (list it, or ~)",
            own.display()
        ));
    }
}

/// Under `other_repositories: deny`, the workspace repository's git directories, where they
/// exist, are the sandbox's own (`RULE_OWN_REPOSITORY`): every other `.git` is another's.
fn mark_own_repository(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    anchors: &Anchors,
) -> Result<(), CompileError> {
    if anchors.workspace.is_none() {
        out.warnings.push(
            "other_repositories: deny, and no workspace: no repository is the sandbox's own"
                .to_string(),
        );
        return Ok(());
    }
    if let Some(repository) = anchors.other_tools_repository() {
        out.warnings.push(format!(
            "other_repositories: deny, and the workspace is in {}: only a git repository is the \
             sandbox's own, so no command changes that one (list its directory under \
             own_repositories to let them)",
            repository.display()
        ));
    }
    let mut own = Vec::new();
    for anchor in [GIT_DIR, GIT_COMMON_DIR] {
        let path_error = |message| CompileError::Path {
            key: "other_repositories",
            path: anchor.to_string(),
            message,
        };
        let dir = anchors
            .expand_in(anchor, &mut resolver.git)
            .map_err(path_error)?;
        // None yet: the workspace is in no repository, and `git init` makes a `.git`, which
        // is refused like any other.
        if !dir.is_dir() {
            continue;
        }
        let id = out.identify(&dir).map_err(path_error)?;
        let rule = out.inode_rules.entry((id.dev, id.ino)).or_default();
        rule.flags |= RULE_OWN_REPOSITORY;
        own.push(super::watch::canonicalize(&dir).unwrap_or(dir));
    }
    // A workspace below a directory named like a bare repository, which is not its own git
    // directory (a bare repository whose worktrees are inside it): every change there is
    // refused, and the cause is far from where the denials are seen.
    if let Some(bare) = anchors.bare_named_above().filter(|dir| !own.contains(dir)) {
        out.warnings.push(format!(
            "other_repositories: deny, and the workspace is in {}, named like a bare repository \
             (*.git): nothing in it can be changed (rename the directory, or list it under \
             own_repositories)",
            bare.display()
        ));
    }
    Ok(())
}

/// Under `other_repositories: deny`, the hooks directory the system's or the developer's git
/// config names for every repository (`core.hooksPath`), when it is one place (absolute, or in
/// `~`): the developer's other repositories take their hooks from it, whatever the workspace's
/// own repository says. A relative one is in each repository's work tree.
fn deny_shared_hooks(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    anchors: &Anchors,
) -> Result<(), CompileError> {
    let home = &anchors.home;
    let files = super::git_config::shared_files(home);
    let Some((value, _)) = super::git_config::hooks_path(&files, home) else {
        return Ok(());
    };
    if !(value.starts_with('/') || value == "~" || value.starts_with("~/")) {
        return Ok(());
    }
    let id = out.rules.len() as u32;
    let path_error = |message| CompileError::Path {
        key: "other_repositories",
        path: value.clone(),
        message,
    };
    let path = super::git_config::expand(&value, home, Path::new("/"));
    let lexical = normalize(&path).map_err(path_error)?;
    let landing = follow_the_way(out, resolver, &lexical, Some(id)).map_err(path_error)?;
    let (resolved, exists) =
        add_path_rule(out, resolver, landing, RULE_DENY_WRITE, id).map_err(path_error)?;
    out.rules.push(RuleInfo {
        id,
        kind: "other_repositories",
        path: value.clone(),
        resolved: resolved.display().to_string(),
        exists,
    });
    Ok(())
}

fn policy_flags(policy: &Policy) -> u32 {
    let mut flags = 0;
    if policy.network.default == NetDefault::Deny {
        flags |= POLICY_NET_DEFAULT_DENY;
    }
    if !policy.network.unix_deny.is_empty() {
        flags |= POLICY_UNIX_RULES;
    }
    if policy.network.unix_abstract == UnixAbstract::Deny {
        flags |= POLICY_UNIX_ABSTRACT;
    }
    if policy.network.unix_default == UnixDefault::Deny {
        flags |= POLICY_UNIX_DEFAULT_DENY;
    }
    if policy.allow_exec.is_some() {
        flags |= POLICY_EXEC_ALLOWLIST;
    }
    if policy.allow_write.is_some() {
        flags |= POLICY_WRITE_ALLOWLIST;
    }
    if policy.deny_fileless_exec {
        flags |= POLICY_DENY_FILELESS_EXEC;
    }
    if policy.other_repositories == OtherRepositories::Deny {
        flags |= POLICY_OTHER_REPOSITORIES;
    }
    flags
}

/// Adds the inode and name rules for the path `landing` resolves; returns (resolved path,
/// exists).
fn add_path_rule(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    landing: Landing,
    flags: u32,
    rule_id: u32,
) -> Result<(PathBuf, bool), String> {
    let Landing {
        existing: canonical,
        mut missing,
        stat,
    } = landing;
    if missing.is_empty() {
        let FileStat { id, is_dir, .. } = match stat {
            Some(stat) => out.noted(&canonical, stat),
            None => out.identify_stat(&canonical)?,
        };
        if flags & DENY != 0 && is_dir {
            out.add_inode(id, flags | RULE_TREE, rule_id);
            out.deny_dirs.push((canonical.clone(), id, flags, rule_id));
        } else {
            out.add_inode(id, flags, rule_id);
        }
        if is_dir {
            out.rule_dirs.push((canonical.clone(), flags, rule_id));
        }
        if let (Some(parent), Some(name)) = (canonical.parent(), canonical.file_name()) {
            let parent_id = resolver.dir_id(parent, |p| out.identify(p))?;
            // Only meaningful when parent and child are on one filesystem (not a mount point;
            // a btrfs subvolume below its parent is on the same one).
            if parent_id.sb_dev == id.sb_dev {
                out.add_name(parent_id, name, flags, rule_id);
            }
        }
        return Ok((canonical, true));
    }
    let mut resolved = canonical.clone();
    resolved.extend(&missing);
    let allows = flags & ALLOW != 0;
    if allows && missing.len() > MAX_CHAIN {
        // Cutting the chain short would allow a wider subtree than written: allow nothing.
        out.warnings.push(format!(
            "{} does not exist and is too deep below {} to follow: nothing there is allowed \
             until the policy is attached again",
            resolved.display(),
            canonical.display()
        ));
        return Ok((resolved, false));
    }
    if flags & RULE_ALLOW_EXEC != 0 {
        out.warnings.push(format!(
            "{} does not exist yet: executing it is allowed once created",
            resolved.display()
        ));
    } else if allows {
        // A place to write that is not there yet (`$GIT_COMMON_DIR` before `git init`) is
        // unremarkable: it is listed with the other paths made later.
        out.not_yet_created.push(resolved.clone());
    } else if missing.len() > MAX_CHAIN {
        missing.truncate(MAX_CHAIN);
        let denied_root: PathBuf = canonical
            .iter()
            .chain(missing.iter().map(|m| m.as_os_str()))
            .collect();
        out.warnings.push(format!(
            "{} does not exist: all of {} is denied until the policy is attached again",
            resolved.display(),
            denied_root.display()
        ));
    } else {
        out.not_yet_created.push(resolved.clone());
    }
    let dir = resolver.dir_id(&canonical, |p| out.identify(p))?;
    out.add_chain(dir, &missing, flags, rule_id);
    Ok((resolved, false))
}

/// Lexically resolves `.` and `..` of an absolute path (before any symlink resolution the
/// kernel would also apply `..` lexically after following earlier components, but the paths in
/// policies are written by people, and `a/../b` in a policy means `b`).
fn normalize(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not absolute", path.display()));
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            Component::Prefix(_) => return Err(format!("{} is not a Unix path", path.display())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::file_id;
    use crate::policy::parse;

    fn policy(deny_read: &[&str]) -> Policy {
        let list = deny_read
            .iter()
            .map(|p| format!("  - {p:?}\n"))
            .collect::<String>();
        parse("t.yaml", &format!("name: t\ndeny_read:\n{list}")).unwrap()
    }

    /// The daemon adds its own files to every policy; a change to them (another audit log
    /// path after a restart) must not renumber the policy's rules, which audit records name.
    #[test]
    fn rules_the_caller_adds_are_numbered_after_the_policys_own() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        let yaml = "name: t\ndeny_read: [~/.ssh]\ndeny_write: [~/.bashrc]\n\
                    network:\n  deny: [10.0.0.1]\n";
        let p = parse("t.yaml", yaml).unwrap();
        let anchors = Anchors::home(home.path());
        let own = compile_with(&p, &anchors).unwrap().rules;
        let log = home.path().join("audit.log").display().to_string();
        for extra in [
            vec![(PathKey::DenyRead, log.clone())],
            vec![
                (PathKey::UnixDeny, "/run/other.sock".to_string()),
                (PathKey::DenyWrite, log.clone()),
            ],
        ] {
            let c = compile_with_extra(&p, &anchors, &extra).unwrap();
            assert_eq!(
                c.rules[..own.len()],
                own[..],
                "the policy's rules were renumbered"
            );
            let added: Vec<&str> = c.rules[own.len()..]
                .iter()
                .map(|r| r.path.as_str())
                .collect();
            let expected: Vec<&str> = extra.iter().map(|(_, e)| e.as_str()).collect();
            assert_eq!(added, expected);
        }
        let c = compile_with_extra(&p, &anchors, &[(PathKey::UnixDeny, "/run/x.sock".into())]);
        assert_ne!(c.unwrap().flags & POLICY_UNIX_RULES, 0);
        // Already listed by the policy: not a second rule.
        let same = [(PathKey::DenyRead, "~/.ssh".to_string())];
        assert_eq!(compile_with_extra(&p, &anchors, &same).unwrap().rules, own);
    }

    /// `own_caches`: the developer's caches of each tool listed are `deny_write` rules of their
    /// own key, numbered after the policy's path lists, whether they exist yet or not.
    #[test]
    fn own_caches_deny_the_developers_caches() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join(".cargo/registry")).unwrap();
        let p = parse(
            "t.yaml",
            "name: t\ndeny_read: [~/.ssh]\nown_caches: [cargo]\n",
        )
        .unwrap();
        let c = compile_with(&p, &Anchors::home(&base)).unwrap();
        let kinds: Vec<(&str, &str, bool)> = c
            .rules
            .iter()
            .map(|r| (r.kind, r.path.as_str(), r.exists))
            .collect();
        assert_eq!(
            kinds,
            [
                ("deny_read", "~/.ssh", false),
                ("own_caches", "~/.cargo/registry", true),
                ("own_caches", "~/.cargo/git", false),
            ]
        );
        let registry = file_id(&base.join(".cargo/registry")).unwrap();
        let rule = c.inode_rules[&(registry.dev, registry.ino)];
        assert_ne!(rule.flags & RULE_DENY_WRITE, 0);
        assert_eq!(rule.rule_id, 1);
        // Under an allow_write that leaves the sandbox's own caches out, the compile says so.
        let warned = |text: &str| {
            let p = parse("t.yaml", text).unwrap();
            let c = compile_with(&p, &Anchors::home(&base)).unwrap();
            c.warnings
                .iter()
                .any(|w| w.contains("they can write no cache"))
        };
        assert!(warned(
            "name: t\nown_caches: [go]\nallow_write: [/opt/elsewhere]\n"
        ));
        assert!(!warned("name: t\nown_caches: [go]\nallow_write: [~]\n"));
        assert!(!warned("name: t\nown_caches: [go]\n"));
        assert!(!warned("name: t\nallow_write: [/tmp]\n"));
    }

    /// Under `other_repositories: deny`, a worktree's own git directory and the main
    /// repository's are the sandbox's; nothing else is, and without a workspace nothing is.
    #[test]
    fn only_the_workspace_repository_is_the_sandboxs_own() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        let git_dir = base.join("main/.git/worktrees/wt");
        std::fs::create_dir_all(&git_dir).unwrap();
        std::fs::write(git_dir.join("commondir"), "../..\n").unwrap();
        std::fs::create_dir_all(base.join("other/.git")).unwrap();
        let wt = base.join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", git_dir.display())).unwrap();
        let p = parse("t.yaml", "name: t\nother_repositories: deny\n").unwrap();
        let anchors = Anchors {
            home: base.clone(),
            workspace: Some(wt.clone()),
        };
        let c = compile_with(&p, &anchors).unwrap();
        assert_ne!(c.flags & POLICY_OTHER_REPOSITORIES, 0);
        let own: Vec<PathBuf> = ["main/.git", "main/.git/worktrees/wt", "other/.git", "wt"]
            .iter()
            .map(|dir| base.join(dir))
            .filter(|dir| {
                let id = file_id(dir).unwrap();
                c.inode_rules
                    .get(&(id.dev, id.ino))
                    .is_some_and(|rule| rule.flags & RULE_OWN_REPOSITORY != 0)
            })
            .collect();
        assert_eq!(own, [base.join("main/.git"), git_dir.clone()]);

        // The developer's global hooks, which their other repositories run.
        std::fs::write(base.join(".gitconfig"), "[core]\nhooksPath = ~/.githooks\n").unwrap();
        let c = compile_with(&p, &anchors).unwrap();
        let rule = c.rules.last().unwrap();
        assert_eq!(
            (rule.kind, rule.path.as_str()),
            ("other_repositories", "~/.githooks")
        );
        assert!(c.name_rules.contains_key(&name_key(&base, ".githooks")));
        std::fs::write(base.join(".gitconfig"), "[core]\nhooksPath = .githooks\n").unwrap();
        assert!(compile_with(&p, &anchors).unwrap().rules.is_empty());
        std::fs::remove_file(base.join(".gitconfig")).unwrap();

        let c = compile_with(&p, &Anchors::home(&base)).unwrap();
        assert!(c.inode_rules.is_empty());
        assert!(c.warnings[0].contains("no repository is the sandbox's own"));
        // A workspace kept in Mercurial is told so: the agent's hg commits will be refused.
        std::fs::create_dir_all(base.join("wt/.hg")).unwrap();
        let c = compile_with(&p, &anchors).unwrap();
        let told = format!("the workspace is in {}", base.join("wt/.hg").display());
        assert!(
            c.warnings.iter().any(|w| w.contains(&told)),
            "{:?}",
            c.warnings
        );
        // ... and one in a directory named like a bare repository, which is not its own.
        assert!(!c.warnings.iter().any(|w| w.contains("named like a bare")));
        let named = base.join("project.git/ws");
        std::fs::create_dir_all(&named).unwrap();
        let in_named = Anchors {
            home: base.clone(),
            workspace: Some(named),
        };
        let c = compile_with(&p, &in_named).unwrap();
        let told = format!(
            "the workspace is in {}, named like",
            base.join("project.git").display()
        );
        assert!(
            c.warnings.iter().any(|w| w.contains(&told)),
            "{:?}",
            c.warnings
        );
        let unset = parse("t.yaml", "name: t\n").unwrap();
        assert_eq!(unset.other_repositories, OtherRepositories::Allow);
        let e = parse("t.yaml", "name: t\nother_repositories: none\n").unwrap_err();
        assert_eq!(e.field, "other_repositories", "{e}");

        // Directories the policy gives the sandbox's repositories; one needs the rule on.
        let cache = base.join("cache");
        std::fs::create_dir(&cache).unwrap();
        let text = format!(
            "name: t\nother_repositories: deny\nown_repositories: [{:?}]\n",
            cache.display().to_string()
        );
        let c = compile_with(&parse("t.yaml", &text).unwrap(), &anchors).unwrap();
        let id = file_id(&cache).unwrap();
        assert_ne!(
            c.inode_rules[&(id.dev, id.ino)].flags & RULE_OWN_REPOSITORY,
            0
        );
        let e = parse("t.yaml", &text.replace("deny", "allow")).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "own_repositories"), "{e}");
        assert!(e.message.contains("other_repositories: deny"), "{e}");
    }

    /// A worktree: `.git` is a file naming the git directory inside the main repository.
    #[test]
    fn a_rule_in_the_repository_keeps_the_git_file_that_leads_there_and_no_git_made_nearer() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        let git_dir = base.join("main/.git/worktrees/wt");
        std::fs::create_dir_all(git_dir.join("hooks")).unwrap();
        std::fs::write(git_dir.join("commondir"), "../..\n").unwrap();
        let wt = base.join("wt");
        std::fs::create_dir_all(wt.join("src")).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", git_dir.display())).unwrap();
        let p = parse(
            "t.yaml",
            "name: t\ndeny_write: [$GIT_COMMON_DIR/hooks, $GIT_DIR/commondir]\n",
        )
        .unwrap();
        let anchors = Anchors {
            home: base.clone(),
            workspace: Some(wt.join("src")),
        };
        let c = compile_with(&p, &anchors).unwrap();
        assert_eq!(
            c.rules[0].resolved,
            base.join("main/.git/hooks").display().to_string()
        );
        assert_eq!(
            c.rules[1].resolved,
            git_dir.join("commondir").display().to_string()
        );
        let file = file_id(&wt.join(".git")).unwrap();
        let rule = c.inode_rules[&(file.dev, file.ino)];
        assert_eq!((rule.flags, rule.rule_id), (RULE_DENY_WRITE, 0));
        let nearer = &c.name_rules[&name_key(&wt.join("src"), ".git")];
        assert_eq!(nearer.flags & RULE_DENY_WRITE, RULE_DENY_WRITE);
        assert!(c.name_rules.contains_key(&name_key(&base, ".git")));
        // Without a workspace, the anchor is an error naming it.
        let e = compile(&p, &base).unwrap_err().to_string();
        assert!(e.contains("uses $GIT_COMMON_DIR but no workspace"), "{e}");
    }

    fn name_key(parent: &Path, name: &str) -> NameRuleKey {
        let id = file_id(parent).unwrap();
        NameRuleKey {
            parent_dev: id.dev,
            parent_ino: id.ino,
            name: name.as_bytes().to_vec(),
        }
    }

    #[test]
    fn files_below_a_denied_directory_with_other_names_get_rules_of_their_own() {
        let home = tempfile::tempdir().unwrap();
        let creds = home.path().join("creds");
        std::fs::create_dir_all(creds.join("deep")).unwrap();
        std::fs::write(creds.join("deep/token"), "t").unwrap();
        std::fs::write(creds.join("alone"), "a").unwrap();
        std::fs::hard_link(creds.join("deep/token"), home.path().join("elsewhere")).unwrap();
        let c = compile(&policy(&["~/creds"]), home.path()).unwrap();
        let dir = file_id(&creds).unwrap();
        assert_eq!(
            c.inode_rules[&(dir.dev, dir.ino)].flags,
            RULE_DENY_READ | RULE_TREE,
            "the directory is listed for the kernel's hardlink watch"
        );
        let linked = file_id(&home.path().join("elsewhere")).unwrap();
        let rule = c.inode_rules[&(linked.dev, linked.ino)];
        assert_eq!(
            rule.flags, RULE_DENY_READ,
            "the other name is denied by its inode"
        );
        assert_eq!(rule.rule_id, 0);
        let alone = file_id(&creds.join("alone")).unwrap();
        assert!(!c.inode_rules.contains_key(&(alone.dev, alone.ino)));
    }

    #[test]
    fn existing_file_gets_an_inode_rule_and_a_name_rule() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/id_rsa"), "k").unwrap();
        let c = compile(&policy(&["~/.ssh/id_rsa"]), home.path()).unwrap();
        let id = file_id(&home.path().join(".ssh/id_rsa")).unwrap();
        assert_eq!(c.inode_rules[&(id.dev, id.ino)].flags, RULE_DENY_READ);
        let key = name_key(&home.path().join(".ssh"), "id_rsa");
        assert_eq!(c.name_rules[&key].flags, RULE_DENY_READ);
        let parent = file_id(&home.path().join(".ssh")).unwrap();
        assert_eq!(
            c.inode_rules[&(parent.dev, parent.ino)].flags,
            RULE_NAMED_CHILDREN | RULE_ON_THE_WAY
        );
        assert!(c.warnings.is_empty());
        assert!(c.rules[0].exists);
    }

    #[test]
    fn missing_last_component_is_a_name_rule_listed_as_not_yet_created() {
        let home = tempfile::tempdir().unwrap();
        let c = compile(&policy(&["~/.aws"]), home.path()).unwrap();
        let key = name_key(home.path(), ".aws");
        assert_eq!(c.name_rules[&key].flags, RULE_DENY_READ);
        let expected = home.path().canonicalize().unwrap().join(".aws");
        assert_eq!(c.rules[0].resolved, expected.display().to_string());
        assert!(!c.rules[0].exists);
        assert_eq!(c.not_yet_created, [expected]);
        assert!(
            c.warnings.is_empty(),
            "expected, not a warning: {:?}",
            c.warnings
        );
    }

    #[test]
    fn deeper_missing_path_is_a_chain_that_denies_only_that_path() {
        let home = tempfile::tempdir().unwrap();
        let p = policy(&["~/.config/gcloud", "~/.config/gh"]);
        let c = compile(&p, home.path()).unwrap();
        let config = &c.name_rules[&name_key(home.path(), ".config")];
        assert_eq!(
            config.flags,
            RULE_PREFIX | RULE_ON_THE_WAY,
            "~/.config itself stays readable (and, once made, in place)"
        );
        let under = |name: &str| NameRuleKey {
            parent_dev: CHAIN_DEV,
            parent_ino: config.next_node as u64,
            name: name.as_bytes().to_vec(),
        };
        assert_eq!(c.name_rules[&under("gcloud")].flags, RULE_DENY_READ);
        assert_eq!(c.name_rules[&under("gh")].flags, RULE_DENY_READ);
        assert_eq!(c.name_rules[&under("gh")].rule_id, 1);
        assert_eq!(c.not_yet_created.len(), 2, "{:?}", c.not_yet_created);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_chain_longer_than_the_kernel_follows_denies_a_subtree() {
        let home = tempfile::tempdir().unwrap();
        let c = compile(&policy(&["~/a/b/c/d/e/f"]), home.path()).unwrap();
        assert_eq!(c.name_rules.len(), MAX_CHAIN);
        assert!(c.warnings[0].contains("all of"), "{:?}", c.warnings);
        assert!(
            c.warnings[0].ends_with("a/b/c/d is denied until the policy is attached again"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn a_symlinked_rule_path_protects_its_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let p = dir.path().join("link");
        let c = compile(&policy(&[p.to_str().unwrap()]), Path::new("/")).unwrap();
        let id = file_id(&dir.path().join("real")).unwrap();
        assert!(c.inode_rules.contains_key(&(id.dev, id.ino)));
        assert!(c.name_rules.contains_key(&name_key(dir.path(), "real")));
    }

    #[test]
    fn dot_dot_in_a_rule_is_resolved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        let p = format!("{}/a/../secret", dir.path().display());
        let c = compile(&policy(&[&p]), Path::new("/")).unwrap();
        let id = file_id(&dir.path().join("secret")).unwrap();
        assert!(c.inode_rules.contains_key(&(id.dev, id.ino)));
    }

    #[test]
    fn read_and_exec_rules_on_one_file_merge_their_bits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), "#!/bin/sh").unwrap();
        let p = dir.path().join("tool").display().to_string();
        let text = format!("name: t\ndeny_read: [{p:?}]\ndeny_exec: [{p:?}]\n");
        let c = compile(&parse("t.yaml", &text).unwrap(), Path::new("/")).unwrap();
        let id = file_id(&dir.path().join("tool")).unwrap();
        assert_eq!(
            c.inode_rules[&(id.dev, id.ino)].flags,
            RULE_DENY_READ | RULE_DENY_EXEC
        );
        assert_eq!(c.rules[1].kind, "deny_exec");
    }

    #[test]
    fn two_rules_on_one_directory_merge() {
        let dir = tempfile::tempdir().unwrap();
        let a = format!("{}/a", dir.path().display());
        let b = format!("{}/b", dir.path().display());
        let c = compile(&policy(&[&a, &b]), Path::new("/")).unwrap();
        assert_eq!(c.name_rules.len(), 2);
        let parent = file_id(dir.path()).unwrap();
        assert_eq!(
            c.inode_rules[&(parent.dev, parent.ino)].flags,
            RULE_NAMED_CHILDREN | RULE_ON_THE_WAY
        );
        assert_eq!(c.rules.len(), 2);
    }

    #[test]
    fn a_too_deep_missing_allow_path_allows_nothing_rather_than_more() {
        let home = tempfile::tempdir().unwrap();
        let policy =
            crate::policy::parse("p.yaml", "name: a\nallow_exec: [~/a/b/c/d/e/f]\n").unwrap();
        let c = compile(&policy, home.path()).unwrap();
        assert!(c.name_rules.is_empty() && c.inode_rules.is_empty());
        assert!(
            c.warnings[0].contains("nothing there is allowed"),
            "{:?}",
            c.warnings
        );
        assert!(c.exec_allowlist());
    }

    #[test]
    fn a_deny_names_the_inode_even_when_an_allow_rule_came_first() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("tool"), "x").unwrap();
        let policy = crate::policy::parse(
            "p.yaml",
            "name: a\ndeny_exec: [~/tool]\nallow_exec: [~/tool]\n",
        )
        .unwrap();
        let c = compile(&policy, home.path()).unwrap();
        let id = file_id(&home.path().join("tool")).unwrap();
        let rule = c.inode_rules[&(id.dev, id.ino)];
        assert_eq!(
            rule.flags & (RULE_DENY_EXEC | RULE_ALLOW_EXEC),
            RULE_DENY_EXEC | RULE_ALLOW_EXEC
        );
        assert_eq!(c.rule(rule.rule_id).unwrap().kind, "deny_exec");
    }
}
