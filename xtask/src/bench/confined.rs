//! A confined open against the same open under Landlock with as many rules (the kernel's own
//! path-walking LSM), interleaved (see `paired`), for policies of 10, 1,000 and 10,000
//! `deny_read` rules; exec and connect confined. Attach times: `attach_times`.

use std::path::Path;

use anyhow::Result;

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures, OPEN_ITERS, RULE_COUNTS};
use super::guest::{measure, measure_once, Row};
use super::paired::{fastest, Pairs, RUNS_PER_BATCH};

pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let workloads = fx.workloads();
    let mut base = Vec::new();
    for (w, arg, iters) in &workloads {
        let v = measure(None, None, w, arg, *iters)?;
        base.push(v);
        rows.push(Row::plain(
            format!("{w} {} (no agent)", fx.label(arg)),
            v,
            "ns/op",
        ));
    }
    let daemon = Daemon::start(agent)?;
    for n in RULE_COUNTS {
        let cg = Cgroup::create(&format!("bench-{n}"))?;
        let policy = fx.policy(n)?;
        attach(agent, &cg, &policy)?;
        for target in [&fx.depth2, &fx.depth16] {
            let arg = target.display().to_string();
            let label = fx.label(&arg);
            let iters = OPEN_ITERS / 4 / RUNS_PER_BATCH as u32;
            let pairs = Pairs::measure(
                || fastest(|| measure_once(None, Some((n, fx)), "open", &arg, iters)),
                || fastest(|| measure_once(Some(&cg.0), None, "open", &arg, iters)),
            )?;
            rows.push(pairs.row(
                format!("open {label}: confined vs Landlock, {n} rules"),
                "ns/op",
                &format!("open {label} (Landlock, {n} rules)"),
            ));
        }
        if n == 1000 {
            for (j, (w, arg, iters)) in workloads.iter().enumerate().skip(2) {
                let v = measure(Some(&cg.0), None, w, arg, *iters)?;
                let name = format!("{w} {}", fx.label(arg));
                rows.push(Row::vs(
                    format!("{name} (confined, {n} rules)"),
                    v,
                    "ns/op",
                    &format!("{name} (no agent)"),
                    base[j],
                ));
            }
        }
        detach(agent, &cg)?;
    }
    daemon.stop_and_clean(agent)?;
    Ok(rows)
}
