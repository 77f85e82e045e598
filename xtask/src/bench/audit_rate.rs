//! Audit: what a recorded denial costs against one the rate limit only counts, the rate of
//! records into the log, and the highest rate logged with no drop (paced and bisected).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures, OPEN_ITERS};
use super::guest::{measure, measure_once, Row};

/// The rows, and the zero-drop rate found (for `control`, which floods below it).
pub(super) fn rows(agent: &Path, fx: &Fixtures) -> Result<(Vec<Row>, f64)> {
    let mut rows = Vec::new();
    let denied = fx.rules.join("r0").display().to_string();
    let cg = Cgroup::create("bench-audit")?;
    let policy = fx.policy(10)?;
    let daemon = Daemon::start(agent)?;
    attach(agent, &cg, &policy)?;
    let counted = measure(Some(&cg.0), None, "open-denied", &denied, OPEN_ITERS)?;
    rows.push(Row::plain(
        "denied open, event suppressed by the rate limit".into(),
        counted,
        "ns/op",
    ));
    daemon.stop_and_clean(agent)?;
    let daemon = unlimited_daemon(agent, fx)?;
    attach(agent, &cg, &policy)?;
    let before = counters(agent)?;
    let t0 = Instant::now();
    let recorded = measure(Some(&cg.0), None, "open-denied", &denied, OPEN_ITERS)?;
    let (elapsed, after) = settle(agent, t0)?;
    rows.push(Row::vs(
        "denied open, with an audit record".into(),
        recorded,
        "ns/op",
        "denied open, event suppressed by the rate limit",
        counted,
    ));
    let logged = after.0 - before.0;
    rows.push(Row::plain(
        format!(
            "audit records into the log ({logged} in {:.1} s)",
            elapsed.as_secs_f64()
        ),
        logged as f64 / elapsed.as_secs_f64(),
        "ev/s",
    ));
    let flood_drops = after.1 - before.1;
    rows.push(Row::plain(
        "audit records dropped (ring buffer full)".into(),
        flood_drops as f64,
        "ev",
    ));
    let sustained = if flood_drops == 0 {
        // Nothing lost even unpaced: the producer, not the pipeline, was the limit.
        logged as f64 / elapsed.as_secs_f64()
    } else {
        zero_drop_rate(agent, &cg.0, &denied, 1e9 / recorded)?
    };
    rows.push(Row::plain(
        "audit records per second with zero drops (paced)".into(),
        sustained,
        "ev/s",
    ));
    detach(agent, &cg)?;
    daemon.stop_and_clean(agent)?;
    Ok((rows, sustained))
}

/// A daemon that records every denial (no audit rate limit).
pub(super) fn unlimited_daemon(agent: &Path, fx: &Fixtures) -> Result<Daemon> {
    let config = fx.dir.join("unlimited.yaml");
    std::fs::write(&config, "audit_rate_limit: {per_second: 0, burst: 0}\n")?;
    Daemon::start_with(agent, &["--config", config.to_str().unwrap_or_default()])
}

/// The highest rate of audited denials (found by bisection below `flood_rate`, the unpaced
/// producer's rate) that the daemon logs with no drop.
fn zero_drop_rate(agent: &Path, cg: &Path, denied: &str, flood_rate: f64) -> Result<f64> {
    let (mut lossless, mut lossy) = (0.0, flood_rate);
    // The daemon reads the kernel's drop count once a second: what a flood dropped (the
    // unpaced one before the first step, then each step) may reach its status only after the
    // flood settled. Waiting past one reading after each keeps it out of the next step's count.
    let past_a_reading = DROPS_READ_EVERY + Duration::from_millis(200);
    std::thread::sleep(past_a_reading);
    for _ in 0..6 {
        let rate = (lossless + lossy) / 2.0;
        let before = counters(agent)?;
        measure_once(Some(cg), None, "open-denied-paced", denied, rate as u32)?;
        settle(agent, Instant::now())?;
        std::thread::sleep(past_a_reading);
        let after = counters(agent)?;
        eprintln!(
            "[bench] paced {rate:.0}/s: {} logged, {} dropped",
            after.0 - before.0,
            after.1 - before.1
        );
        if after.1 == before.1 {
            lossless = rate;
        } else {
            lossy = rate;
        }
    }
    Ok(lossless)
}

/// How often the daemon reads the kernel's drop count into its status.
const DROPS_READ_EVERY: Duration = Duration::from_secs(1);

/// (events logged, events dropped) from the daemon's status.
pub(super) fn counters(agent: &Path) -> Result<(u64, u64)> {
    let out = Command::new(agent).args(["status", "--json"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Ok((n("events_logged"), n("events_dropped")))
}

/// Waits until the daemon's counters stop moving; returns the time from `t0` to their last
/// change, and the final counters.
pub(super) fn settle(agent: &Path, t0: Instant) -> Result<(Duration, (u64, u64))> {
    let mut last = counters(agent)?;
    let mut changed = t0.elapsed();
    let mut still = 0;
    while still < 10 {
        std::thread::sleep(Duration::from_millis(100));
        let now = counters(agent)?;
        if now == last {
            still += 1;
        } else {
            (last, changed, still) = (now, t0.elapsed(), 0);
        }
    }
    Ok((changed, last))
}
