//! What the agent costs a process it does not confine: no agent against the agent loaded with
//! nothing attached, and against the agent with another cgroup confined (the usual state of a
//! host running agents). Interleaved (see `paired`): each pair starts the daemon and then
//! stops it and removes its pins, so "no agent" really has no program attached; the order of
//! the two inside a pair alternates.

use std::path::Path;

use anyhow::Result;

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures};
use super::guest::{measure_once, Row};
use super::paired::{Pairs, PAIRS};

/// Iterations of each workload per batch: short enough for 15 pairs, long enough that one
/// batch is not a handful of timer ticks.
fn batch_workloads(fx: &Fixtures) -> Vec<(&'static str, String, u32)> {
    fx.workloads()
        .into_iter()
        .map(|(w, arg, iters)| (w, arg, (iters / 4).max(5)))
        .collect()
}

fn batch(fx: &Fixtures) -> Result<Vec<f64>> {
    batch_workloads(fx)
        .iter()
        .map(|(w, arg, iters)| measure_once(None, None, w, arg, *iters))
        .collect()
}

pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<Vec<Row>> {
    let elsewhere = Cgroup::create("bench-elsewhere")?;
    let policy = fx.policy(1000)?;
    let n = batch_workloads(fx).len();
    let mut idle: Vec<Pairs> = (0..n).map(|_| Pairs::default()).collect();
    let mut busy: Vec<Pairs> = (0..n).map(|_| Pairs::default()).collect();
    for i in 0..PAIRS {
        let (none, loaded, attached);
        if i % 2 == 0 {
            none = batch(fx)?;
            let daemon = Daemon::start(agent)?;
            loaded = batch(fx)?;
            attach(agent, &elsewhere, &policy)?;
            attached = batch(fx)?;
            detach(agent, &elsewhere)?;
            daemon.stop_and_clean(agent)?;
        } else {
            let daemon = Daemon::start(agent)?;
            attach(agent, &elsewhere, &policy)?;
            attached = batch(fx)?;
            detach(agent, &elsewhere)?;
            loaded = batch(fx)?;
            daemon.stop_and_clean(agent)?;
            none = batch(fx)?;
        }
        for j in 0..n {
            idle[j].push(none[j], loaded[j]);
            busy[j].push(none[j], attached[j]);
        }
    }
    let mut rows = Vec::new();
    for (j, (w, arg, _)) in batch_workloads(fx).into_iter().enumerate() {
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
