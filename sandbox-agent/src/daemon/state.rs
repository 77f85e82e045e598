//! What the daemon knows: the policy maps and, per attached cgroup, the compiled policy.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::{
    audit,
    bpf::policy_maps::PolicyMaps,
    cgroup,
    policy::{self, CompiledPolicy, Mode},
    protocol::{AttachInfo, Op, Reply, StatusInfo},
};

use super::DaemonOptions;

/// Who sent a request (SO_PEERCRED).
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

struct Attachment {
    info: AttachInfo,
    compiled: CompiledPolicy,
}

pub struct DaemonState {
    maps: PolicyMaps,
    attachments: BTreeMap<u64, Attachment>,
    bpffs: PathBuf,
    audit_log: PathBuf,
    pub events_logged: u64,
    pub events_dropped: u64,
}

impl DaemonState {
    pub fn new(maps: PolicyMaps, opts: &DaemonOptions) -> Self {
        let state = Self {
            maps,
            attachments: BTreeMap::new(),
            bpffs: opts.bpffs.clone(),
            audit_log: opts.audit_log.clone(),
            events_logged: 0,
            events_dropped: 0,
        };
        for (cgroup_id, p) in state.maps.attached() {
            tracing::warn!(
                cgroup_id,
                policy_id = p.policy_id,
                "adopted an attachment pinned by an earlier daemon; it stays enforced"
            );
        }
        state
    }

    /// Handles one request from `peer`.
    pub fn handle(&mut self, op: Op, peer: &Peer) -> Reply {
        let mutating = !matches!(op, Op::Status);
        if mutating {
            if let Err(message) = self.may_change_policy(peer) {
                return Reply::Error { message };
            }
        }
        let result = match op {
            Op::Status => Ok(Reply::Status(self.status())),
            Op::Attach {
                cgroup,
                policy_file,
                policy_yaml,
                home,
            } => self.attach(cgroup, &policy_file, &policy_yaml, home),
            Op::Detach { cgroup } => self.detach(cgroup),
        };
        result.unwrap_or_else(|message| Reply::Error { message })
    }

    /// Only root may change policy, and never from inside a confined cgroup: a confined process,
    /// even root, must not loosen or remove its own confinement.
    fn may_change_policy(&self, peer: &Peer) -> Result<(), String> {
        if peer.uid != 0 {
            return Err(format!(
                "permission denied: only root may change policy (you are uid {})",
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
    fn check_nesting(&self, cgroup: &Path, cgroup_id: u64) -> Result<(), String> {
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

    fn attach(
        &mut self,
        cgroup: PathBuf,
        policy_file: &str,
        policy_yaml: &str,
        home: PathBuf,
    ) -> Result<Reply, String> {
        let cgroup_id = cgroup::cgroup_id(&cgroup).map_err(|e| e.to_string())?;
        let cgroup = std::fs::canonicalize(&cgroup)
            .map_err(|e| format!("cgroup {}: {e}", cgroup.display()))?;
        self.check_nesting(&cgroup, cgroup_id)?;
        let parsed = policy::parse(policy_file, policy_yaml).map_err(|e| e.to_string())?;
        if !home.is_absolute() {
            return Err(format!("home {} is not an absolute path", home.display()));
        }
        let compiled = policy::compile(&parsed, &home)
            .map_err(|e| format!("{policy_file}: {e}; nothing was attached"))?;
        let (policy_id, map_entries) = self
            .maps
            .attach(cgroup_id, &compiled)
            .map_err(|e| format!("{e}; the previous state is unchanged"))?;
        let replaced = self.attachments.contains_key(&cgroup_id);
        let info = AttachInfo {
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
            replaced,
        };
        tracing::info!(
            cgroup = %cgroup.display(),
            policy = %info.policy,
            policy_id,
            rules = info.rules,
            "attached"
        );
        self.attachments.insert(
            cgroup_id,
            Attachment {
                info: info.clone(),
                compiled,
            },
        );
        Ok(Reply::Attached(info))
    }

    fn detach(&mut self, cgroup: PathBuf) -> Result<Reply, String> {
        let cgroup_id = cgroup::cgroup_id(&cgroup).map_err(|e| e.to_string())?;
        if !self.maps.detach(cgroup_id).map_err(|e| e.to_string())? {
            return Err(format!(
                "cgroup {} has no policy attached",
                cgroup.display()
            ));
        }
        self.attachments.remove(&cgroup_id);
        tracing::info!(cgroup = %cgroup.display(), "detached");
        Ok(Reply::Detached { cgroup })
    }

    fn status(&self) -> StatusInfo {
        StatusInfo {
            daemon_pid: std::process::id(),
            kernel: kernel_release(),
            bpffs: self.bpffs.clone(),
            audit_log: self.audit_log.clone(),
            attachments: self.attachments.values().map(|a| a.info.clone()).collect(),
            events_logged: self.events_logged,
            events_dropped: self.events_dropped,
        }
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
            rule: a.compiled.rule(rule_id).map(|r| {
                (
                    format!("{} {}", r.kind, r.path),
                    r.resolved.display().to_string(),
                )
            }),
        }
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
