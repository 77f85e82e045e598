//! Attach and detach, CLI round trips, for policies of 10, 1,000 and 10,000 `deny_read` rules,
//! each interleaved with a `status` CLI round trip: a process start and one request, which
//! every verb pays whatever the policy, so the ratio is what the policy's size costs on top.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::fixtures::{attach, detach, run_ok, Cgroup, Daemon, Fixtures, RULE_COUNTS};
use super::guest::{timed, Row};
use super::paired::{Pairs, PAIRS};

pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<Vec<Row>> {
    let daemon = Daemon::start(agent)?;
    let status = || timed(|| run_ok(Command::new(agent).arg("status")));
    let mut rows = Vec::new();
    for n in RULE_COUNTS {
        let cg = Cgroup::create(&format!("bench-attach-{n}"))?;
        let policy = fx.policy(n)?;
        let (mut attaches, mut detaches) = (Pairs::default(), Pairs::default());
        for i in 0..PAIRS {
            let first = if i % 2 == 0 { Some(status()?) } else { None };
            let a = timed(|| attach(agent, &cg, &policy))?;
            let d = timed(|| detach(agent, &cg))?;
            let base = match first {
                Some(s) => s,
                None => status()?,
            };
            attaches.push(base, a);
            detaches.push(base, d);
        }
        let baseline = "status (CLI round trip)";
        rows.push(attaches.row(format!("attach {n} rules (CLI round trip)"), "ms", baseline));
        rows.push(detaches.row(format!("detach {n} rules (CLI round trip)"), "ms", baseline));
    }
    daemon.stop_and_clean(agent)?;
    Ok(rows)
}
