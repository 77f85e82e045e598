//! `policy suggest --from-audit [--policy NAME | --cgroup PATH] [--since T] [--log FILE]`:
//! prints a tightened policy learned from the audit records of a learning run (see
//! `policy::suggest`). Reads the daemon's audit log (its rotated files too), or `--log FILE`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{bail, Context as _};

use crate::{audit::AuditRecord, policy::Learned};

/// Which records to learn from.
pub struct Selection {
    pub policy: Option<String>,
    pub cgroup: Option<PathBuf>,
    /// Only records at or after this time.
    pub since: Option<SystemTime>,
}

/// `--since`: an RFC 3339 time (`2026-12-02T10:00:00Z`) or how long ago (`30m`, `2h`).
pub fn parse_since(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("--since {text:?}: neither a time (2026-12-02T10:00:00Z) nor a duration (30m)")
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .with_context(|| format!("--since {text:?} is too long ago"))
}

pub fn suggest(socket: &Path, log: Option<&Path>, selection: &Selection) -> anyhow::Result<()> {
    let (name, from) = match (&selection.policy, &selection.cgroup) {
        (Some(p), None) => (format!("{p}-suggested"), format!("policy {p:?}")),
        (None, Some(c)) => (
            "suggested".to_string(),
            format!("cgroup {}", std::path::absolute(c)?.display()),
        ),
        _ => bail!("name the learning run with exactly one of --policy NAME or --cgroup PATH"),
    };
    let log = match log {
        Some(l) => l.to_path_buf(),
        None => super::status::fetch(socket)?.audit_log,
    };
    let cgroup = selection
        .cgroup
        .as_deref()
        .map(std::path::absolute)
        .transpose()?
        .map(|p| p.display().to_string());
    let mut learned = Learned::default();
    let mut files = super::audit::rotated_files(&log);
    files.push(log.clone());
    for file in &files {
        let f = match std::fs::File::open(file) {
            Ok(f) => f,
            // A rotated file removed meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file != &log => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        for line in BufReader::new(f).lines() {
            let line = line.with_context(|| format!("reading {}", file.display()))?;
            let Ok(record) = serde_json::from_str::<AuditRecord>(&line) else {
                continue;
            };
            if selected(&record, selection, cgroup.as_deref()) {
                learned.add(&record);
            }
        }
    }
    if learned.records == 0 {
        bail!(
            "no audit records of {from} in {}{}: run the workload under a learning policy in \
             audit mode first (see the README, \"Learning a policy\")",
            log.display(),
            if selection.since.is_some() {
                " since the given time"
            } else {
                ""
            }
        );
    }
    if learned.suppressed > 0 {
        eprintln!(
            "warning: {} events of {from} were suppressed by the audit rate limit; the \
             suggestion cannot list what they were",
            learned.suppressed
        );
    }
    print!("{}", learned.to_yaml(&name, &from));
    Ok(())
}

fn selected(r: &AuditRecord, s: &Selection, cgroup: Option<&str>) -> bool {
    if let Some(p) = &s.policy {
        if r.policy.as_deref() != Some(p.as_str()) {
            return false;
        }
    }
    if let Some(c) = cgroup {
        if r.cgroup.as_deref() != Some(c) {
            return false;
        }
    }
    match s.since {
        Some(since) => humantime::parse_rfc3339_weak(&r.time).is_ok_and(|t| t >= since),
        None => true,
    }
}
