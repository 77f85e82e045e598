//! What the agent costs a process it does not confine: no agent against the agent loaded with
//! nothing attached, and against the agent with another cgroup confined (the usual state of a
//! host running agents). Interleaved (see `paired`): each pair starts the daemon and then
//! stops it and removes its pins, so "no agent" really has no program attached; the order of
//! the two inside a pair alternates, and after every change of state a warm-up batch is thrown
//! away (the kernel frees a cleaned-up daemon's maps in the background). The measuring process
//! runs three cgroup levels down, where a login session's processes are on a real host.

use std::path::Path;

use anyhow::Result;

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures};
use super::guest::{measure_once, Row};
use super::paired::{fastest, Pairs, PAIRS, RUNS_PER_BATCH};

/// Iterations of each workload per batch (`fx.workloads()` divided by `divisor`): short
/// enough for 15 pairs, long enough that one batch is not a handful of timer ticks.
fn batch_workloads(fx: &Fixtures, divisor: u32) -> Vec<(&'static str, String, u32)> {
    fx.workloads()
        .into_iter()
        .map(|(w, arg, iters)| (w, arg, (iters / divisor).max(5)))
        .collect()
}

/// A warm-up batch, thrown away, then the measured one (the fastest of a few runs of each
/// workload), in `session`.
fn batch(fx: &Fixtures, session: &Cgroup) -> Result<Vec<f64>> {
    for (w, arg, iters) in batch_workloads(fx, 8) {
        measure_once(Some(&session.0), None, w, &arg, iters)?;
    }
    batch_workloads(fx, 2 * RUNS_PER_BATCH as u32)
        .iter()
        .map(|(w, arg, iters)| fastest(|| measure_once(Some(&session.0), None, w, arg, *iters)))
        .collect()
}

pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<Vec<Row>> {
    let elsewhere = Cgroup::create("bench-elsewhere")?;
    let _host = Cgroup::create("bench-host")?;
    let _user = Cgroup::create("bench-host/user.slice")?;
    let session = Cgroup::create("bench-host/user.slice/session.scope")?;
    let policy = fx.policy(1000)?;
    let n = batch_workloads(fx, 1).len();
    let mut idle: Vec<Pairs> = (0..n).map(|_| Pairs::default()).collect();
    let mut busy: Vec<Pairs> = (0..n).map(|_| Pairs::default()).collect();
    for i in 0..PAIRS {
        let (none, loaded, attached);
        if i % 2 == 0 {
            none = batch(fx, &session)?;
            let daemon = Daemon::start(agent)?;
            loaded = batch(fx, &session)?;
            attach(agent, &elsewhere, &policy)?;
            attached = batch(fx, &session)?;
            detach(agent, &elsewhere)?;
            daemon.stop_and_clean(agent)?;
        } else {
            let daemon = Daemon::start(agent)?;
            attach(agent, &elsewhere, &policy)?;
            attached = batch(fx, &session)?;
            detach(agent, &elsewhere)?;
            loaded = batch(fx, &session)?;
            daemon.stop_and_clean(agent)?;
            none = batch(fx, &session)?;
        }
        for j in 0..n {
            idle[j].push(none[j], loaded[j]);
            busy[j].push(none[j], attached[j]);
        }
    }
    let mut rows = Vec::new();
    for (j, (w, arg, _)) in batch_workloads(fx, 1).into_iter().enumerate() {
        let name = format!("{w} {}", fx.label(&arg));
        let base = format!("{name} (no agent)");
        rows.push(idle[j].row(
            format!("{name} (agent loaded, nothing attached)"),
            "ns/op",
            &base,
        ));
        rows.push(busy[j].row(
            format!("{name} (agent loaded, another cgroup confined)"),
            "ns/op",
            &base,
        ));
    }
    Ok(rows)
}
