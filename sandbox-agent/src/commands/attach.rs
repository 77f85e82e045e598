//! `attach` and `detach`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::{
    client,
    policy::{Anchors, Policy},
    protocol::{AttachInfo, Op, Reply},
};

/// A policy file read and validated once, with the text the daemon is sent.
pub struct PolicySource {
    pub file: String,
    pub text: String,
    pub parsed: Policy,
}

/// Reads and validates a policy file locally (for early, precise errors) and prints its lints.
pub fn read_policy(policy: &Path) -> anyhow::Result<PolicySource> {
    let text = std::fs::read_to_string(policy)
        .with_context(|| format!("cannot read policy {}", policy.display()))?;
    let file = policy.display().to_string();
    let parsed = crate::policy::parse(&file, &text)?;
    for lint in crate::policy::lint(&file, &text, &parsed) {
        eprintln!("sandbox-agent: {lint}");
    }
    Ok(PolicySource { file, text, parsed })
}

/// Asks the daemon to attach `source` to `cgroup`; it validates again and resolves the paths
/// itself. It refuses when a process in the cgroup holds a denied file open, unless `force`.
pub fn attach(
    socket: &Path,
    cgroup: &Path,
    source: &PolicySource,
    anchors: &Anchors,
    force: bool,
) -> anyhow::Result<AttachInfo> {
    let cgroup = absolute(cgroup)?;
    if !source.parsed.env.is_empty() {
        eprintln!(
            "sandbox-agent: note: the policy's env rules apply only to `run`: processes in {} \
             keep the environment they were started with",
            cgroup.display()
        );
    }
    if !source.parsed.own_caches.is_empty() {
        eprintln!(
            "sandbox-agent: note: own_caches gives the tools caches of their own only under \
             `run`: processes in {} are refused the developer's caches ({}) and keep their \
             environment (set {} there to caches of their own)",
            cgroup.display(),
            crate::policy::own_caches::developers(&source.parsed.own_caches)
                .collect::<Vec<_>>()
                .join(", "),
            crate::policy::own_caches::variables(&source.parsed.own_caches).join(", ")
        );
    }
    let reply = client::call(
        socket,
        Op::Attach {
            cgroup,
            policy_file: source.file.clone(),
            policy_yaml: source.text.clone(),
            home: anchors.home.clone(),
            workspace: anchors.workspace.clone(),
            force,
        },
    )?;
    match reply {
        Reply::Attached(info) => Ok(info),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

pub fn print_attached(info: &AttachInfo) {
    for w in &info.warnings {
        eprintln!("sandbox-agent: warning: {w}");
    }
    let not_yet = match info.not_yet_created.len() {
        0 => String::new(),
        n => format!(" ({n} for paths not created yet, denied once created)"),
    };
    println!(
        "{} policy {:?} ({} mode, {} rules{not_yet}, {} map entries) to {}",
        if info.replaced {
            "switched to"
        } else {
            "attached"
        },
        info.policy,
        info.mode,
        info.rules,
        info.map_entries,
        info.cgroup.display()
    );
}

pub fn detach(socket: &Path, cgroup: &Path) -> anyhow::Result<()> {
    client::call(
        socket,
        Op::Detach {
            cgroup: absolute(cgroup)?,
        },
    )?;
    Ok(())
}

/// The daemon resolves paths from its own working directory: send absolute ones.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("invalid path {}", p.display()))
}

/// What `~` means when the user gave no `--home`: the invoking user's home (the sudo caller's
/// when run through sudo).
pub fn default_home() -> anyhow::Result<PathBuf> {
    if let Ok(user) = std::env::var("SUDO_USER") {
        if let Some(home) = home_of(&user) {
            return Ok(home);
        }
    }
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => bail!("cannot tell what ~ means: HOME is not set; pass --home DIR"),
    }
}

fn home_of(user: &str) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| PathBuf::from(f[5]))
    })
}
