//! `status`.

use std::path::Path;

use anyhow::bail;

use crate::{
    client,
    protocol::{Op, Reply, StatusInfo},
};

pub fn fetch(socket: &Path) -> anyhow::Result<StatusInfo> {
    match client::call(socket, Op::Status)? {
        Reply::Status(s) => Ok(s),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

pub fn print(s: &StatusInfo) {
    println!(
        "daemon pid {} on kernel {}, pins in {}, audit log {}",
        s.daemon_pid,
        s.kernel,
        s.bpffs.display(),
        s.audit_log.display()
    );
    println!(
        "events: {} logged, {} suppressed by the rate limit, {} dropped (ring buffer full)",
        s.events_logged, s.events_suppressed, s.events_dropped
    );
    if !s.verdict_cache {
        println!(
            "verdict cache off (not an x86-64 host, or /proc/kallsyms hid rename_lock when the \
             programs were loaded: kernel.kptr_restrict); every confined open walks its \
             directories"
        );
    }
    if s.pins_restored > 0 {
        println!(
            "WARNING: {} pins were removed from {} by someone outside every sandbox; the daemon \
             pinned them again",
            s.pins_restored,
            s.bpffs.display()
        );
    }
    if s.attachments.is_empty() {
        println!("no cgroup is confined");
    }
    for a in &s.attachments {
        let run_by = a
            .run_by
            .as_ref()
            .map(|o| format!(", run by uid {} (pid {})", o.uid, o.pid))
            .unwrap_or_default();
        println!(
            "  {} (id {}): policy {:?} generation {} ({}, {} rules, {} events logged){}{run_by}",
            a.cgroup.display(),
            a.cgroup_id,
            a.policy,
            a.policy_id,
            a.mode,
            a.rules,
            a.events_logged,
            if a.adopted { ", adopted" } else { "" }
        );
    }
}
