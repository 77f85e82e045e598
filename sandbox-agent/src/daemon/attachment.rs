//! One attachment as the daemon knows it, and how one an earlier daemon made is described
//! again after a restart.

use std::path::PathBuf;

use sandbox_common::{CgroupPolicy, MODE_AUDIT};

use crate::{
    policy::{self, CompiledPolicy},
    protocol::AttachInfo,
};

use super::{
    persist::SavedAttachment,
    prepare::{extra_rules, run_denials_of},
    Protected,
};

pub(super) struct Attachment {
    pub(super) info: AttachInfo,
    /// The policy as this daemon compiled it: exactly what is in the maps when `written`, a
    /// recompile (for descriptions only) for an attachment adopted from an earlier daemon.
    pub(super) compiled: CompiledPolicy,
    pub(super) written: bool,
    /// How to describe it again after a restart; None for an attachment found only in the maps.
    pub(super) saved: Option<SavedAttachment>,
}

impl Attachment {
    /// What this daemon wrote to the maps for it, if it did.
    pub(super) fn written(&self) -> Option<crate::bpf::policy_maps::Written<'_>> {
        self.written
            .then_some((self.info.policy_id, &self.compiled))
    }
}

/// An attachment an earlier daemon made, described from its saved record when there is one.
pub(super) fn adopted(
    cgroup: PathBuf,
    cgroup_id: u64,
    in_kernel: CgroupPolicy,
    record: Option<SavedAttachment>,
    protected: &Protected,
) -> Attachment {
    let compiled = record.as_ref().and_then(|r| {
        let parsed = policy::parse(&r.policy_file, &r.policy_yaml).ok()?;
        // Rule ids follow the policy's text, so recompiling names them as the kernel knows them
        // (the daemon's own rules come after them, whatever this daemon protects).
        let anchors = policy::Anchors {
            home: r.home.clone(),
            workspace: r.workspace.clone(),
        };
        let extra = extra_rules(&run_denials_of(r), protected);
        policy::compile_with_extra(&parsed, &anchors, &extra).ok()
    });
    let (policy, rules) = match &compiled {
        Some(c) => (c.name.clone(), c.rules.len()),
        None => ("(unknown: adopted from the kernel maps)".to_string(), 0),
    };
    let mode = if in_kernel.mode == MODE_AUDIT {
        "audit"
    } else {
        "enforce"
    };
    Attachment {
        info: AttachInfo {
            cgroup,
            cgroup_id,
            policy,
            policy_id: in_kernel.policy_id,
            mode: mode.into(),
            rules,
            map_entries: 0,
            warnings: Vec::new(),
            not_yet_created: Vec::new(),
            replaced: false,
            adopted: true,
            events_logged: 0,
            run_by: record.as_ref().and_then(|r| r.run_by.clone()),
            compile_reused: false,
        },
        compiled: compiled.unwrap_or_default(),
        written: false,
        saved: record,
    }
}
