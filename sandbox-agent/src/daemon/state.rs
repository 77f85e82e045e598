//! The attachment table: every attached cgroup with its compiled policy, the maps they are
//! written to, and the checks that must see all of them at once (who may change policy,
//! nesting). The slow work that feeds it runs outside its lock (`prepare`, `requests`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::{
    audit,
    bpf::policy_maps::PolicyMaps,
    cgroup,
    policy::Mode,
    protocol::{AttachInfo, Reply, StatusInfo},
};

use super::{
    attachment::{adopted, Attachment},
    compile_cache::CompileCache,
    peer::Peer,
    persist::{SavedAttachment, StateFile},
    prepare::{NetRuleSet, Prepared},
    runs, DaemonOptions, Protected,
};

/// Audit accounting since this daemon started.
#[derive(Default)]
pub struct Counters {
    /// Records written to the log.
    pub logged: u64,
    /// Events the kernel's rate limit counted instead of sending.
    pub suppressed: u64,
    /// Events lost because the ring buffer was full (the kernel's total).
    pub dropped: u64,
    /// Records logged per policy id.
    pub per_policy: BTreeMap<u32, u64>,
    /// Pins removed from bpffs (by someone outside) that the daemon put back.
    pub pins_restored: u64,
    /// Logged decisions by (policy id, hook, rule id, action), with their labels as first
    /// seen: a policy detached since keeps its name.
    pub decisions: BTreeMap<(u32, u32, u32, u32), Decided>,
    /// Suppressed events by policy name.
    pub suppressed_by_policy: BTreeMap<String, u64>,
}

/// How many logged records made one decision, and how the metrics name it.
#[derive(Clone, Debug)]
pub struct Decided {
    pub policy: String,
    pub hook: String,
    pub rule: String,
    pub action: String,
    pub count: u64,
}

impl Counters {
    /// Counts a logged record of `event`.
    pub fn logged(&mut self, event: &sandbox_common::AuditEvent, record: &audit::AuditRecord) {
        self.logged += 1;
        *self.per_policy.entry(event.policy_id).or_default() += 1;
        let key = (event.policy_id, event.hook, event.rule_id, event.action);
        self.decisions
            .entry(key)
            .or_insert_with(|| Decided {
                policy: policy_label(record.policy.as_deref(), event.policy_id),
                hook: record.hook.to_string(),
                rule: record.rule.as_deref().unwrap_or_default().to_string(),
                action: record.action.to_string(),
                count: 0,
            })
            .count += 1;
    }

    /// Counts `count` events of `policy_id` the rate limit suppressed.
    pub fn suppressed(&mut self, policy_id: u32, policy: Option<&str>, count: u64) {
        self.suppressed += count;
        *self
            .suppressed_by_policy
            .entry(policy_label(policy, policy_id))
            .or_default() += count;
    }
}

/// A policy's name, or its id when no attachment of this daemon knows it.
fn policy_label(name: Option<&str>, policy_id: u32) -> String {
    name.map_or_else(|| format!("policy id {policy_id}"), str::to_string)
}

pub struct DaemonState {
    maps: PolicyMaps,
    attachments: BTreeMap<u64, Attachment>,
    state_file: StateFile,
    control_gid: Option<u32>,
    protected: Protected,
    compile_cache: std::sync::Arc<CompileCache>,
    bpffs: PathBuf,
    audit_log: PathBuf,
    pub counters: Counters,
    /// Runs being ended right now (their processes are killed outside the lock): a second
    /// `run_end` or the sweep leaves them to the first.
    ending: std::collections::BTreeSet<u64>,
}

impl DaemonState {
    pub fn new(maps: PolicyMaps, opts: &DaemonOptions) -> Self {
        let mut state = Self {
            maps,
            attachments: BTreeMap::new(),
            state_file: StateFile::new(&opts.state_file),
            control_gid: opts.control_gid,
            protected: opts.protected.clone(),
            compile_cache: std::sync::Arc::new(CompileCache::new(
                opts.compile_reuse.clone(),
                &opts.state_file,
            )),
            bpffs: opts.bpffs.clone(),
            audit_log: opts.audit_log.clone(),
            counters: Counters::default(),
            ending: Default::default(),
        };
        state.adopt();
        state.maps.settle();
        state
    }

    /// Takes over what the pinned maps enforce: every attached cgroup becomes an attachment of
    /// this daemon (so status shows it, and nesting and self-service checks see it), described
    /// from the state file when it has the entry. Entries of cgroups that no longer exist are
    /// removed.
    fn adopt(&mut self) {
        let saved = self.state_file.load().unwrap_or_else(|e| {
            tracing::error!("{e}; attachments are adopted from the kernel maps alone");
            Vec::new()
        });
        for (cgroup_id, in_kernel) in self.maps.attached() {
            let record = saved
                .iter()
                .find(|s| s.cgroup_id == cgroup_id && s.policy_id == in_kernel.policy_id);
            let path = record
                .map(|s| s.cgroup.clone())
                .filter(|p| cgroup::cgroup_id(p).is_ok_and(|id| id == cgroup_id))
                .or_else(|| cgroup::find_by_id(Path::new(cgroup::CGROUP_ROOT), cgroup_id));
            let Some(path) = path else {
                // The cgroup is gone, and a cgroup id is never reused: nothing to enforce.
                match self.maps.detach(cgroup_id, None) {
                    Ok(_) => tracing::info!(cgroup_id, "removed the policy of a deleted cgroup"),
                    Err(e) => tracing::error!(cgroup_id, "cannot remove a stale policy: {e}"),
                }
                continue;
            };
            let attachment = adopted(path, cgroup_id, in_kernel, record.cloned(), &self.protected);
            tracing::warn!(
                cgroup = %attachment.info.cgroup.display(),
                policy = %attachment.info.policy,
                policy_id = in_kernel.policy_id,
                "adopted an attachment pinned by an earlier daemon; it stays enforced"
            );
            self.attachments.insert(cgroup_id, attachment);
        }
        if let Some(w) = self.persist() {
            tracing::error!("{w}");
        }
    }

    /// Writes the attachment table; returns a warning when it could not.
    fn persist(&self) -> Option<String> {
        let saved: Vec<SavedAttachment> = self
            .attachments
            .values()
            .filter_map(|a| a.saved.clone())
            .collect();
        self.state_file.save(&saved).err().map(|e| {
            format!(
                "{e}: enforcement is in place, but a restarted daemon will describe it less well"
            )
        })
    }

    /// Only root (or the configured control group) may change policy, and never from inside a
    /// confined cgroup: a confined process, even root, must not loosen or remove its own
    /// confinement.
    pub(super) fn may_change_policy(&self, peer: &Peer) -> Result<(), String> {
        let member = self.control_gid.is_some_and(|g| peer.in_group(g));
        if peer.uid != 0 && !member {
            let who = match self.control_gid {
                Some(g) => format!("root or members of group {g}"),
                None => "root".to_string(),
            };
            return Err(format!(
                "permission denied: only {who} may change policy (you are uid {})",
                peer.uid
            ));
        }
        let Some(pid) = peer.pid else {
            return Err("permission denied: the kernel did not report the caller's pid".into());
        };
        let own = cgroup::cgroup_of_pid(pid).map_err(|e| {
            format!("permission denied: cannot tell the caller's cgroup (pid {pid}): {e}")
        })?;
        if let Some(a) = self
            .attachments
            .values()
            .find(|a| own.starts_with(&a.info.cgroup))
        {
            return Err(format!(
                "permission denied: the caller runs confined by policy {:?} ({}); policy cannot be changed from inside a sandbox",
                a.info.policy,
                a.info.cgroup.display()
            ));
        }
        Ok(())
    }

    /// Nested attachments are refused: which policy confines a task is never ambiguous.
    pub(super) fn check_nesting(&self, cgroup: &Path, cgroup_id: u64) -> Result<(), String> {
        for (id, a) in &self.attachments {
            if *id == cgroup_id {
                continue;
            }
            if cgroup.starts_with(&a.info.cgroup) {
                return Err(format!(
                    "{} is inside {}, already confined by policy {:?}; attach to a cgroup outside it, or detach that one first",
                    cgroup.display(),
                    a.info.cgroup.display(),
                    a.info.policy
                ));
            }
            if a.info.cgroup.starts_with(cgroup) {
                return Err(format!(
                    "{} contains {}, already confined by policy {:?}; detach that one first",
                    cgroup.display(),
                    a.info.cgroup.display(),
                    a.info.policy
                ));
            }
        }
        Ok(())
    }

    /// Writes a prepared policy to the maps (an atomic switch when the cgroup was attached) and
    /// records the attachment.
    pub(super) fn commit(&mut self, prepared: Prepared) -> Result<AttachInfo, String> {
        let Prepared {
            compiled,
            mut saved,
            compile_reused,
        } = prepared;
        let (cgroup, cgroup_id) = (saved.cgroup.clone(), saved.cgroup_id);
        self.check_nesting(&cgroup, cgroup_id)?;
        let previous = self
            .attachments
            .get(&cgroup_id)
            .and_then(Attachment::written);
        let (policy_id, map_entries) = self
            .maps
            .attach(cgroup_id, &compiled, previous)
            .map_err(|e| format!("{e}; the previous state is unchanged"))?;
        let replaced = self.attachments.contains_key(&cgroup_id);
        let mut info = AttachInfo {
            cgroup: cgroup.clone(),
            cgroup_id,
            policy: compiled.name.clone(),
            policy_id,
            mode: match compiled.mode {
                Mode::Enforce => "enforce",
                Mode::Audit => "audit",
            }
            .into(),
            rules: compiled.rules.len(),
            map_entries,
            warnings: compiled.warnings.clone(),
            not_yet_created: compiled.not_yet_created.clone(),
            replaced,
            adopted: false,
            events_logged: 0,
            run_by: saved.run_by.clone(),
            compile_reused,
        };
        tracing::info!(
            cgroup = %cgroup.display(),
            policy = %info.policy,
            policy_id,
            rules = info.rules,
            "attached"
        );
        saved.policy_id = policy_id;
        self.attachments.insert(
            cgroup_id,
            Attachment {
                info: info.clone(),
                compiled,
                written: true,
                saved: Some(saved),
            },
        );
        info.warnings.extend(self.persist());
        Ok(info)
    }

    /// The attachments whose policies name hosts, with the network rules they compiled to.
    pub fn with_host_names(&self) -> Vec<(SavedAttachment, NetRuleSet)> {
        self.attachments
            .values()
            .filter(|a| a.compiled.names_hosts)
            .filter_map(|a| Some((a.saved.clone()?, a.compiled.net_rules.clone())))
            .collect()
    }

    /// The attachments whose policies have directory rules, with what their compiles found
    /// mounted below those directories.
    pub fn with_mounts_below(&self) -> Vec<(SavedAttachment, crate::policy::MountsBelow)> {
        self.attachments
            .values()
            .filter_map(|a| {
                let below = a.compiled.mounts_below()?;
                let below = match a.written() {
                    Some(_) => below,
                    None => below.not_in_the_maps(),
                };
                Some((a.saved.clone()?, below))
            })
            .collect()
    }

    pub fn protected(&self) -> Protected {
        self.protected.clone()
    }

    /// What `prepare` needs from the state, taken out so it runs without the lock.
    pub fn for_prepare(&self) -> (Protected, std::sync::Arc<CompileCache>) {
        (self.protected.clone(), self.compile_cache.clone())
    }

    /// Switches an attachment to `prepared` (compiled again: its host names resolved again, or
    /// the mounts below its directories changed), unless the attachment changed since `then`
    /// was read.
    pub fn refresh(&mut self, then: &SavedAttachment, prepared: Prepared) -> Result<(), String> {
        let current = self
            .attachments
            .get(&then.cgroup_id)
            .map(|a| a.info.policy_id);
        if current != Some(then.policy_id) {
            return Ok(());
        }
        self.commit(prepared).map(|_| ())
    }

    pub(super) fn detach(&mut self, cgroup: PathBuf) -> Result<Reply, String> {
        let cgroup_id = cgroup::cgroup_id(&cgroup).map_err(|e| e.to_string())?;
        if !self.forget(cgroup_id)? {
            return Err(format!(
                "cgroup {} has no policy attached",
                cgroup.display()
            ));
        }
        tracing::info!(cgroup = %cgroup.display(), "detached");
        Ok(Reply::Detached { cgroup })
    }

    /// Removes the policy of `cgroup_id` from the maps and the table; false if it had none.
    pub(super) fn forget(&mut self, cgroup_id: u64) -> Result<bool, String> {
        let written = self
            .attachments
            .get(&cgroup_id)
            .and_then(Attachment::written);
        if !self
            .maps
            .detach(cgroup_id, written)
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
        self.attachments.remove(&cgroup_id);
        if let Some(w) = self.persist() {
            tracing::error!("{w}");
        }
        Ok(true)
    }

    /// Claims the run in `cgroup` for ending, if `peer` may end it (the user who made it, or
    /// root) and nobody is ending it already. `ended` gives the claim back.
    pub(super) fn claim_run(
        &mut self,
        peer: &Peer,
        cgroup: &Path,
    ) -> Result<(u64, PathBuf), String> {
        let Some((&cgroup_id, a)) = self
            .attachments
            .iter()
            .find(|(_, a)| a.info.cgroup == cgroup)
        else {
            return Err(format!(
                "cgroup {} has no policy attached",
                cgroup.display()
            ));
        };
        let Some(owner) = &a.info.run_by else {
            return Err(format!(
                "{} was not made by run; use detach",
                cgroup.display()
            ));
        };
        if peer.uid != 0 && peer.uid != owner.uid {
            return Err(format!(
                "permission denied: the run in {} belongs to uid {}",
                cgroup.display(),
                owner.uid
            ));
        }
        let path = a.info.cgroup.clone();
        if !self.ending.insert(cgroup_id) {
            return Err(format!("the run in {} is being ended", path.display()));
        }
        Ok((cgroup_id, path))
    }

    /// Claims, for its own connection, the run made as `cgroup_id` whose command has exited;
    /// an error when it was ended or detached meanwhile, or is being ended.
    pub(super) fn claim_run_by_id(&mut self, cgroup_id: u64) -> Result<PathBuf, String> {
        match self.attachments.get(&cgroup_id) {
            Some(a) if a.info.run_by.is_some() && self.ending.insert(cgroup_id) => {
                Ok(a.info.cgroup.clone())
            }
            _ => Err(
                "the run was ended or detached by someone else while its command ran".to_string(),
            ),
        }
    }

    /// The end of a run claimed with `claim_run` (or `abandoned_runs`) is over, done or not.
    pub(super) fn ended(&mut self, cgroup_id: u64) {
        self.ending.remove(&cgroup_id);
    }

    /// Claims the runs whose client is gone (killed before it could end the run) and whose
    /// cgroup has emptied, and that nobody is ending already.
    pub(super) fn abandoned_runs(&mut self) -> Vec<(u64, PathBuf)> {
        let over: Vec<(u64, PathBuf)> = self
            .attachments
            .iter()
            .filter(|(id, _)| !self.ending.contains(id))
            .filter(|(_, a)| a.info.run_by.as_ref().is_some_and(|o| !runs::is_alive(o)))
            .filter(|(_, a)| cgroup::is_populated(&a.info.cgroup).is_ok_and(|p| !p))
            .map(|(id, a)| (*id, a.info.cgroup.clone()))
            .collect();
        self.ending.extend(over.iter().map(|(id, _)| *id));
        over
    }

    pub(super) fn status(&self) -> StatusInfo {
        StatusInfo {
            daemon_pid: std::process::id(),
            kernel: kernel_release(),
            bpffs: self.bpffs.clone(),
            audit_log: self.audit_log.clone(),
            attachments: self
                .attachments
                .values()
                .map(|a| AttachInfo {
                    events_logged: self
                        .counters
                        .per_policy
                        .get(&a.info.policy_id)
                        .copied()
                        .unwrap_or(0),
                    ..a.info.clone()
                })
                .collect(),
            events_logged: self.counters.logged,
            events_suppressed: self.counters.suppressed,
            events_dropped: self.counters.dropped,
            pins_restored: self.counters.pins_restored,
            verdict_cache: crate::bpf::loader::VERDICT_CACHE
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// What `/metrics` reports from the daemon's own state, read under one lock.
    pub(super) fn metrics(&self) -> super::metrics::Snapshot {
        super::metrics::Snapshot {
            decisions: self.counters.decisions.values().cloned().collect(),
            logged: self.counters.logged,
            suppressed: self.counters.suppressed_by_policy.clone(),
            dropped: self.counters.dropped,
            pins_restored: self.counters.pins_restored,
            compiles: self.compile_cache.counts(),
            attachments: self
                .attachments
                .values()
                .map(|a| super::metrics::Attached {
                    policy: a.info.policy.clone(),
                    cgroup: a.info.cgroup.clone(),
                    mode: a.info.mode.clone(),
                    run: a.info.run_by.is_some(),
                })
                .collect(),
            fill: self.maps.fill(),
        }
    }

    /// Whether `policy_id` is the generation some cgroup is attached to now.
    pub fn is_attached(&self, policy_id: u32) -> bool {
        self.attachments
            .values()
            .any(|a| a.info.policy_id == policy_id)
    }

    /// What is known about an event's policy and rule ids (nothing for ids no attachment of
    /// this daemon owns, e.g. a generation just replaced).
    pub fn describe(&self, policy_id: u32, rule_id: u32) -> audit::Context {
        let Some(a) = self
            .attachments
            .values()
            .find(|a| a.info.policy_id == policy_id)
        else {
            return audit::Context::default();
        };
        audit::Context {
            cgroup: Some(a.info.cgroup.display().to_string()),
            policy: Some(a.info.policy.clone()),
            rule: a
                .compiled
                .rule(rule_id)
                .map(|r| (format!("{} {}", r.kind, r.path), r.resolved.clone())),
        }
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
