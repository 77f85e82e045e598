//! The control path under load: how long `status` waits while a 10,000-rule policy is attached
//! and while a `run_end` must kill a process that ignores SIGTERM, and how many audit records
//! are dropped meanwhile while another confined command floods denials below the zero-drop rate.
//! The daemon does slow work (path resolution, compilation, map writes, killing) outside its
//! state lock: these rows show it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::audit_rate::{counters, settle, unlimited_daemon};
use super::fixtures::{attach, detach, run_ok, Cgroup, Fixtures};
use super::guest::{measure_once, timed, Row};
use super::paired::median;

/// The daemon's control socket (its default).
const SOCKET: &str = "/run/sandbox-agent.sock";
/// Flood rate when the audit section did not run to measure the zero-drop rate.
const DEFAULT_FLOOD_RATE: f64 = 2000.0;

pub(super) fn rows(agent: &Path, fx: &Fixtures, zero_drop_rate: Option<f64>) -> Result<Vec<Row>> {
    let daemon = unlimited_daemon(agent, fx)?;
    let mut rows = Vec::new();
    // Idle: the floor the loaded round trips are compared with.
    let idle = StatusProbe::start();
    std::thread::sleep(Duration::from_secs(1));
    let idle_ms = median(&idle.finish()?);
    rows.push(Row::plain(
        "status round trip, idle (median)".into(),
        idle_ms,
        "ms",
    ));

    // A 10,000-rule attach while another confined command floods denials.
    let rate = zero_drop_rate.map_or(DEFAULT_FLOOD_RATE, |r| (r / 2.0).max(100.0));
    let flooder = Cgroup::create("bench-flood")?;
    attach(agent, &flooder, &fx.policy(10)?)?;
    let big = Cgroup::create("bench-big")?;
    let policy = fx.policy(10_000)?;
    let before = counters(agent)?;
    let flood = Flood::start(&flooder.0, &fx.rules.join("r0"), rate as u32);
    let probe = StatusProbe::start();
    let attach_ms = timed(|| attach(agent, &big, &policy))?;
    let during_attach = probe.finish()?;
    flood.finish()?;
    let (_, after) = settle(agent, Instant::now())?;
    rows.push(Row::plain(
        format!("attach 10000 rules during a flood of {rate:.0} denials/s"),
        attach_ms,
        "ms",
    ));
    rows.push(Row::vs(
        format!(
            "status round trip during that attach (max of {})",
            during_attach.len()
        ),
        max(&during_attach),
        "ms",
        "status round trip, idle (median)",
        idle_ms,
    ));
    rows.push(Row::plain(
        format!(
            "audit records dropped during that attach ({} logged)",
            after.0 - before.0
        ),
        (after.1 - before.1) as f64,
        "ev",
    ));
    detach(agent, &big)?;
    detach(agent, &flooder)?;

    // A run whose command leaves a child that ignores SIGTERM: run_end waits for it, then
    // kills it.
    let probe = StatusProbe::start();
    let run_ms = timed(|| {
        run_ok(
            Command::new(agent)
                .args(["run", "--policy"])
                .arg(fx.policy(10)?)
                .args(["--home", "/root", "--", "sh", "-c"])
                .arg("sh -c 'trap \"\" TERM; exec sleep 600' & sleep 0.2"),
        )
    })?;
    let during_kill = probe.finish()?;
    rows.push(Row::plain(
        "run whose child ignores SIGTERM, until it is killed".into(),
        run_ms,
        "ms",
    ));
    rows.push(Row::vs(
        format!(
            "status round trip during that run_end (max of {})",
            during_kill.len()
        ),
        max(&during_kill),
        "ms",
        "status round trip, idle (median)",
        idle_ms,
    ));
    daemon.stop_and_clean(agent)?;
    Ok(rows)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// One `status` request straight on the socket (no CLI process to start): milliseconds.
fn status_round_trip() -> Result<f64> {
    let t = Instant::now();
    let mut s = UnixStream::connect(SOCKET).with_context(|| format!("connecting {SOCKET}"))?;
    s.write_all(b"{\"version\":1,\"op\":\"status\"}\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    anyhow::ensure!(line.contains("\"status\""), "status answered {line:?}");
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Asks for `status` every 10 ms on a thread until finished; the round trips in ms.
struct StatusProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Vec<f64>>>,
}

impl StatusProbe {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut trips = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                trips.push(status_round_trip()?);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(trips)
        });
        Self { stop, thread }
    }

    fn finish(self) -> Result<Vec<f64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the status probe panicked"))?
    }
}

/// Paced denied opens from a confined child, batch after batch, until finished.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<()>>,
}

impl Flood {
    fn start(cgroup: &Path, denied: &Path, rate: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (cgroup, denied) = (cgroup.to_path_buf(), denied.display().to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                measure_once(Some(&cgroup), None, "open-denied-paced", &denied, rate)?;
            }
            Ok(())
        });
        Self { stop, thread }
    }

    fn finish(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the flood panicked"))?
    }
}
