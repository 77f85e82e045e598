//! Turning a request's policy into what `commit` writes: parse, resolve and compile it for one
//! cgroup, with a run's own denied sockets and then the daemon's protected paths added after
//! the policy's rules. Slow (paths,
//! host names, the hardlink scan): callers run it without holding the daemon state.

use std::path::PathBuf;

use crate::{
    cgroup,
    policy::{self, CompiledPolicy},
};

pub use crate::protocol::RunDenials;

use super::{
    compile_cache::{CompileCache, Inputs},
    persist::SavedAttachment,
    Protected,
};

/// The run denials of the attachment `then`, as it was attached.
pub fn run_denials_of(then: &SavedAttachment) -> RunDenials {
    RunDenials {
        sockets: then.deny_sockets.clone(),
        caches: then.deny_caches.clone(),
    }
}

/// A policy parsed and compiled for one cgroup, not yet in the maps.
pub struct Prepared {
    pub compiled: CompiledPolicy,
    pub(super) saved: SavedAttachment,
    /// The compile of an earlier request, nothing it read having changed since.
    pub(super) compile_reused: bool,
}

impl Prepared {
    /// Covers what the mount namespaces of `pids`, those not the daemon's (a container's),
    /// mount below the policy's directories: its own mount table shows only the daemon's. Their
    /// own directories at the policy's absolute `allow_write` paths (a container's `/tmp`) are
    /// listed too.
    pub(super) fn cover_mounts_of(&mut self, pids: impl IntoIterator<Item = u32>) {
        let others = crate::mounts::other_namespaces(pids);
        policy::list_allowed_in_namespaces_of(&mut self.compiled, &others);
        policy::rule_what_is_mounted_below_in_namespaces_of(&mut self.compiled, &others);
    }
}

/// Network rules of a compiled policy, compared to tell whether host names moved.
pub type NetRuleSet =
    std::collections::BTreeMap<(u32, policy::net_spec::Cidr), sandbox_common::NetRules>;

/// Validates and compiles a policy for `cgroup` (host names are resolved here, so callers can
/// do it without holding the daemon state), reusing a compile of the same inputs from `cache`
/// when nothing it read has changed.
pub fn prepare(
    cache: Option<&CompileCache>,
    protected: &Protected,
    cgroup: PathBuf,
    policy_file: &str,
    policy_yaml: &str,
    anchors: policy::Anchors,
    run_denials: RunDenials,
) -> Result<Prepared, String> {
    let cgroup_id = cgroup::cgroup_id(&cgroup).map_err(|e| e.to_string())?;
    let cgroup =
        std::fs::canonicalize(&cgroup).map_err(|e| format!("cgroup {}: {e}", cgroup.display()))?;
    for (what, dir) in [
        ("home", Some(&anchors.home)),
        ("workspace", anchors.workspace.as_ref()),
    ] {
        if let Some(dir) = dir.filter(|d| !d.is_absolute()) {
            return Err(format!("{what} {} is not an absolute path", dir.display()));
        }
    }
    let extra = extra_rules(&run_denials, protected);
    let compile = || {
        let parsed = policy::parse(policy_file, policy_yaml).map_err(|e| e.to_string())?;
        policy::compile_with_extra(&parsed, &anchors, &extra)
            .map_err(|e| format!("{policy_file}: {e}; nothing was attached"))
    };
    let (compiled, compile_reused) = match cache {
        Some(cache) => {
            let inputs = Inputs {
                policy_file: policy_file.to_string(),
                policy_yaml: policy_yaml.to_string(),
                anchors: anchors.clone(),
                extra: extra.clone(),
            };
            cache.compile(inputs, compile)?
        }
        None => (compile()?, false),
    };
    refuse_unmatchable(&compiled)
        .map_err(|e| format!("{policy_file}: {e}; nothing was attached"))?;
    let mut compiled = compiled;
    with_user_groups(&mut compiled);
    Ok(Prepared {
        compiled,
        saved: SavedAttachment {
            cgroup,
            cgroup_id,
            policy_id: 0,
            policy_file: policy_file.to_string(),
            policy_yaml: policy_yaml.to_string(),
            home: anchors.home,
            workspace: anchors.workspace,
            run_by: None,
            deny_sockets: run_denials.sockets,
            deny_caches: run_denials.caches,
        },
        compile_reused,
    })
}

/// Adds the supplementary groups of the sandbox's user to `compiled`: a confined task may
/// take them (`su` and `sudo -u` to the user set them). Read at every attach, so a group
/// added to the user counts from the next one; what cannot be read is left out, with a
/// warning (fail closed: the task may take fewer groups).
fn with_user_groups(compiled: &mut CompiledPolicy) {
    use sandbox_common::MAX_USER_GROUPS;
    if compiled.user == policy::NO_USER {
        return;
    }
    let uid = compiled.user.0;
    match crate::nss::supplementary_groups(uid) {
        Ok(mut gids) => {
            if gids.len() > MAX_USER_GROUPS {
                compiled.warnings.push(format!(
                    "~'s owner (uid {uid}) is in {} groups: confined tasks may take the first \
                     {MAX_USER_GROUPS} only (`su` and `sudo -u` to the user fail)",
                    gids.len()
                ));
                gids.truncate(MAX_USER_GROUPS);
            }
            compiled.user_groups = gids;
        }
        Err(e) => compiled.warnings.push(format!(
            "the groups of ~'s owner (uid {uid}) cannot be read ({e}): confined tasks cannot \
             take them (`su` and `sudo -u` to the user fail)"
        )),
    }
}

/// The policy of the attachment `then` compiled again for its cgroup, as it was attached: the
/// same anchors and sockets, and a run's attachment stays its run's. Never from the cache: what
/// it read is what may have changed.
pub fn again(then: &SavedAttachment, protected: &Protected) -> Result<Prepared, String> {
    let anchors = policy::Anchors {
        home: then.home.clone(),
        workspace: then.workspace.clone(),
    };
    let mut prepared = prepare(
        None,
        protected,
        then.cgroup.clone(),
        &then.policy_file,
        &then.policy_yaml,
        anchors,
        run_denials_of(then),
    )?;
    prepared.saved.run_by = then.run_by.clone();
    prepared.cover_mounts_of(cgroup::processes_below(&then.cgroup, &mut Vec::new()));
    Ok(prepared)
}

/// `again`, on a blocking thread: a compile resolves paths and host names, and may wait.
pub async fn again_off_thread(
    then: &SavedAttachment,
    protected: &Protected,
) -> Result<Prepared, String> {
    let (then, protected) = (then.clone(), protected.clone());
    tokio::task::spawn_blocking(move || again(&then, &protected))
        .await
        .map_err(|e| format!("the compile did not finish: {e}"))?
}

/// Rules the loaded programs could never match: on btrfs, unless they read subvolume devices.
fn refuse_unmatchable(compiled: &CompiledPolicy) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    if compiled.on_btrfs.is_empty() || crate::bpf::loader::BTRFS_SUBVOLUMES.load(Ordering::Relaxed)
    {
        return Ok(());
    }
    let paths: Vec<String> = compiled
        .on_btrfs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Err(format!(
        "{} on a btrfs filesystem, and btrfs's type information ({}) was not readable when \
         the daemon loaded its programs, so they cannot tell its subvolumes apart and the rule \
         would never match; restart the daemon now that btrfs is loaded",
        paths.join(", "),
        crate::kernel_offsets::BTRFS_BTF
    ))
}

/// The rules added after a policy's own, in this order so a rule's id never depends on what
/// this daemon protects: the sockets and caches a run denied (`RunDenials`), then the daemon's own
/// paths: deny_read and deny_write for its files (no reading its config, no deleting or
/// replacing its audit log), unix_deny for its control socket (no request reaches it from
/// inside, not even over a connection made outside and handed in).
pub(super) fn extra_rules(
    run: &RunDenials,
    protected: &Protected,
) -> Vec<(policy::PathKey, String)> {
    use policy::PathKey;
    let entry = |p: &std::path::PathBuf| p.display().to_string();
    let run_sockets = run.sockets.iter().map(|s| (PathKey::UnixDeny, entry(s)));
    let run_caches = run.caches.iter().map(|c| (PathKey::OwnCaches, entry(c)));
    let files = protected.files.iter().flat_map(|f| {
        [
            (PathKey::DenyRead, entry(f)),
            (PathKey::DenyWrite, entry(f)),
        ]
    });
    let sockets = protected
        .sockets
        .iter()
        .map(|s| (PathKey::UnixDeny, entry(s)));
    run_sockets
        .chain(run_caches)
        .chain(files)
        .chain(sockets)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_sockets_come_before_the_daemons_paths_so_their_ids_stay_put() {
        let run = RunDenials {
            sockets: vec![PathBuf::from("/tmp/ssh-x/agent.1")],
            caches: vec![PathBuf::from("/home/dev/xdg/pip")],
        };
        let small = Protected {
            files: vec![],
            sockets: vec!["/run/sandbox-agent.sock".into()],
        };
        let large = Protected {
            files: vec!["/etc/sandbox-agent".into(), "/var/log/sandbox-agent".into()],
            ..small.clone()
        };
        for protected in [&small, &large] {
            let extra = extra_rules(&run, protected);
            assert_eq!(
                extra[0],
                (policy::PathKey::UnixDeny, "/tmp/ssh-x/agent.1".to_string())
            );
            assert_eq!(
                extra[1],
                (policy::PathKey::OwnCaches, "/home/dev/xdg/pip".to_string())
            );
            assert_eq!(extra.len(), 2 + 2 * protected.files.len() + 1);
        }
    }
}
