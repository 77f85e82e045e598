//! The benchmark run inside the VM (`xtask bench-guest`): runs the parts asked for (each starts
//! and cleans away its own daemon), prints the table and a JSON line for the host to keep, and
//! holds what the parts share: rows, and timing a workload in a child process.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::fixtures::Fixtures;
use super::Part;

/// Where the JSON result starts on the console; the host looks for it.
pub const JSON_MARKER: &str = "SANDBOX_AGENT_BENCH_JSON=";

pub(super) struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    /// (baseline name, its value), for the ratio.
    baseline: Option<(String, f64)>,
    /// Interleaved with its baseline (see `paired`): the median ratio of the pairs, their min
    /// and max, and how many there were. The ratio reported, rather than value / baseline.
    pairs: Option<(f64, f64, f64, usize)>,
}

pub fn run(agent: &Path, repo: &Path, part: Part) -> Result<()> {
    if part == Part::Hooks {
        return super::hook_stats::run(agent);
    }
    let fx = Fixtures::create()?;
    let mut rows = Vec::new();
    let all = part == Part::All;
    if all || part == Part::Unconfined {
        rows.extend(super::unconfined::rows(agent, &fx)?);
    }
    if all || part == Part::Confined {
        rows.extend(super::confined::rows(agent, &fx)?);
    }
    if all || part == Part::Attach {
        rows.extend(super::attach_times::rows(agent, &fx)?);
    }
    if all || part == Part::Startup {
        rows.extend(super::startup::rows(agent, repo)?);
    }
    if all || part == Part::Memory {
        rows.extend(super::memory::rows(agent, &fx)?);
    }
    let mut zero_drop_rate = None;
    if all || part == Part::Audit {
        let (audit, rate) = super::audit_rate::rows(agent, &fx)?;
        rows.extend(audit);
        zero_drop_rate = Some(rate);
    }
    if all || part == Part::Control {
        rows.extend(super::control::rows(agent, &fx, zero_drop_rate)?);
    }
    report(&rows)
}

impl Row {
    pub(super) fn plain(name: String, value: f64, unit: &'static str) -> Self {
        Self {
            name,
            value,
            unit,
            baseline: None,
            pairs: None,
        }
    }

    pub(super) fn paired(
        name: String,
        value: f64,
        unit: &'static str,
        baseline: &str,
        base: f64,
        pairs: (f64, f64, f64, usize),
    ) -> Self {
        Self {
            pairs: Some(pairs),
            ..Self::vs(name, value, unit, baseline, base)
        }
    }

    /// (median ratio, min, max, pairs) of an interleaved row.
    #[cfg(test)]
    pub(super) fn pairs(&self) -> Option<(f64, f64, f64, usize)> {
        self.pairs
    }

    fn ratio(&self) -> Option<f64> {
        match (self.pairs, &self.baseline) {
            (Some((median, ..)), _) => Some(median),
            (None, Some((_, base))) => Some(self.value / base),
            (None, None) => None,
        }
    }
    pub(super) fn vs(
        name: String,
        value: f64,
        unit: &'static str,
        baseline: &str,
        base: f64,
    ) -> Self {
        Self {
            name,
            value,
            unit,
            baseline: Some((baseline.to_string(), base)),
            pairs: None,
        }
    }
}

pub(super) fn report(rows: &[Row]) -> Result<()> {
    println!();
    println!(
        "{:<62} {:>12} {:>7} {:>13}  baseline",
        "measurement", "value", "ratio", "pairs min-max"
    );
    let mut out = Vec::new();
    for r in rows {
        let ratio = r.ratio();
        let spread = r
            .pairs
            .map(|(_, min, max, n)| format!("{n}: {min:.2}-{max:.2}"))
            .unwrap_or_default();
        println!(
            "{:<62} {:>9.1} {:<3}{:>7} {:>13}  {}",
            r.name,
            r.value,
            r.unit,
            ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
            spread,
            r.baseline.as_ref().map(|(n, _)| n.as_str()).unwrap_or("")
        );
        out.push(json!({
            "name": r.name, "value": r.value, "unit": r.unit,
            "baseline": r.baseline.as_ref().map(|(n, _)| n), "ratio": ratio,
            "pairs": r.pairs.map(|(median, min, max, n)| json!({
                "median": median, "min": min, "max": max, "n": n,
            })),
        }));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cgroup2 = cgroup2_options();
    println!("cgroup2 at /sys/fs/cgroup: {cgroup2}");
    let doc = json!({ "kernel": kernel.trim(), "cgroup2": cgroup2, "results": out });
    println!("{JSON_MARKER}{doc}");
    Ok(())
}

/// The cgroup2 filesystem's options as the bench ended: with `favordynmods` (which the daemon
/// turns on) a `run`'s move into its cgroup skips an RCU grace period, milliseconds of its start.
fn cgroup2_options() -> String {
    cgroup2_options_in(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn cgroup2_options_in(mountinfo: &str) -> String {
    mounted_at(mountinfo, "/sys/fs/cgroup")
        .filter(|(fstype, _)| *fstype == "cgroup2")
        .map_or("not mounted", |(_, options)| options)
        .to_string()
}

/// The filesystem type and options of what is mounted last at `point`, from a mountinfo text.
pub(super) fn mounted_at<'m>(mountinfo: &'m str, point: &str) -> Option<(&'m str, &'m str)> {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(point))?;
    let (_, fs) = line.split_once(" - ")?;
    let mut fields = fs.split(' ');
    let fstype = fields.next()?;
    Some((fstype, fields.nth(1)?))
}

/// Median of three child runs of `workload`, confined in `cgroup` or under Landlock when asked.
pub(super) fn measure(
    cgroup: Option<&Path>,
    landlock: Option<(usize, &Fixtures)>,
    workload: &str,
    arg: &str,
    iters: u32,
) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(measure_once(cgroup, landlock, workload, arg, iters)?);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[1])
}

/// One child run of `workload`: nanoseconds per operation.
pub(super) fn measure_once(
    cgroup: Option<&Path>,
    landlock: Option<(usize, &Fixtures)>,
    workload: &str,
    arg: &str,
    iters: u32,
) -> Result<f64> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["bench-guest", "measure", workload, arg, &iters.to_string()]);
    if let Some((n, fx)) = landlock {
        c.arg("--landlock").arg(fx.landlock_list(n)?);
    }
    if let Some(cg) = cgroup {
        let procs = std::ffi::CString::new(
            cg.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )?;
        // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec,
        // on a path built before the fork; writing "0" moves the writing process itself.
        unsafe {
            c.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
    }
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("measuring {workload}"))?;
    if !out.status.success() {
        bail!("measuring {workload} {arg} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .with_context(|| format!("measure printed {text:?}"))
}

pub(super) fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Mean milliseconds of `n` runs.
pub(super) fn timed_n(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / n as f64)
}

/// `bench-guest measure WORKLOAD ARG ITERS [--landlock LIST]`: prints ns/op.
pub fn measure_command(
    workload: &str,
    arg: &str,
    iters: u32,
    landlock: Option<&Path>,
) -> Result<()> {
    if let Some(list) = landlock {
        let text = std::fs::read_to_string(list)?;
        let paths: Vec<&Path> = text.lines().map(Path::new).collect();
        super::landlock::restrict_reads_to(&paths)?;
    }
    println!("{}", super::workload::measure(workload, arg, iters)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cgroup2_options_are_those_of_the_mount_on_top() {
        let systemd = "35 22 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(super::cgroup2_options_in(systemd), "rw,nsdelegate");
        let covered = format!("{systemd}50 35 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n");
        assert_eq!(super::cgroup2_options_in(&covered), "not mounted");
    }
}
