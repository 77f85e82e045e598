//! The daemon's memory: idle, and with 100 policies of 1,000 rules attached.

use std::path::Path;

use anyhow::Result;

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures};
use super::guest::Row;

pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<Vec<Row>> {
    let daemon = Daemon::start(agent)?;
    let mut rows = Vec::new();
    let rss_idle = daemon.rss_kib()?;
    rows.push(Row::plain(
        "daemon RSS, nothing attached".into(),
        rss_idle as f64,
        "KiB",
    ));
    let policies = 100;
    let policy = fx.policy(1000)?;
    let mut groups = Vec::new();
    for i in 0..policies {
        let cg = Cgroup::create(&format!("bench-rss-{i}"))?;
        attach(agent, &cg, &policy)?;
        groups.push(cg);
    }
    let rss = daemon.rss_kib()?;
    rows.push(Row::vs(
        format!("daemon RSS, {policies} policies of 1000 rules"),
        rss as f64,
        "KiB",
        "daemon RSS, nothing attached",
        rss_idle as f64,
    ));
    for cg in &groups {
        detach(agent, cg)?;
    }
    drop(groups);
    daemon.stop_and_clean(agent)?;
    Ok(rows)
}
