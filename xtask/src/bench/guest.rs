//! The benchmark run inside the VM (`xtask bench-guest`): measures each workload with no agent,
//! with the agent loaded, confined by policies of growing size, and under Landlock, and prints
//! the table and a JSON line for the host to keep.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

/// Where the JSON result starts on the console; the host looks for it.
pub const JSON_MARKER: &str = "SANDBOX_AGENT_BENCH_JSON=";

const RULE_COUNTS: [usize; 3] = [10, 1000, 10000];
const OPEN_ITERS: u32 = 20000;
const EXEC_ITERS: u32 = 100;
const CONNECT_ITERS: u32 = 1000;
const STATIC_TRUE: &str = "/bin/busybox";

pub(super) struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    /// (baseline name, its value), for the ratio.
    baseline: Option<(String, f64)>,
}

pub fn run(agent: &Path, repo: &Path, hooks_only: bool) -> Result<()> {
    if hooks_only {
        return super::hook_stats::run(agent);
    }
    let fx = Fixtures::create()?;
    let mut rows = Vec::new();
    let mut base = Vec::new();
    // 1. The kernel alone.
    for (w, arg, iters) in fx.workloads() {
        let v = measure(None, None, w, &arg, iters)?;
        base.push(v);
        rows.push(Row::plain(
            format!("{w} {} (no agent)", fx.label(&arg)),
            v,
            "ns/op",
        ));
    }
    // 2. Agent loaded, process not confined.
    let daemon = Daemon::start(agent)?;
    for ((w, arg, iters), b) in fx.workloads().into_iter().zip(&base) {
        let v = measure(None, None, w, &arg, iters)?;
        let name = format!("{w} {}", fx.label(&arg));
        rows.push(Row::vs(
            format!("{name} (agent loaded, unconfined)"),
            v,
            "ns/op",
            &format!("{name} (no agent)"),
            *b,
        ));
    }
    // 3. Confined by N deny_read rules, against the same file access under Landlock.
    for n in RULE_COUNTS {
        let cg = Cgroup::create(&format!("bench-{n}"))?;
        let policy = fx.policy(n)?;
        let attach_ms = timed(|| attach(agent, &cg, &policy))?;
        rows.push(Row::plain(
            format!("attach {n} rules (CLI round trip)"),
            attach_ms,
            "ms",
        ));
        for (i, target) in [&fx.depth2, &fx.depth16].into_iter().enumerate() {
            let arg = target.display().to_string();
            let label = fx.label(&arg);
            let b = base[i];
            let ours = measure(Some(&cg.0), None, "open", &arg, OPEN_ITERS)?;
            rows.push(Row::vs(
                format!("open {label} (confined, {n} rules)"),
                ours,
                "ns/op",
                &format!("open {label} (no agent)"),
                b,
            ));
            let ll = measure(None, Some((n, &fx)), "open", &arg, OPEN_ITERS)?;
            rows.push(Row::vs(
                format!("open {label} (Landlock, {n} rules)"),
                ll,
                "ns/op",
                &format!("open {label} (no agent)"),
                b,
            ));
            rows.push(Row::vs(
                format!("open {label}: confined vs Landlock, {n} rules"),
                ours,
                "ns/op",
                &format!("Landlock {n} rules"),
                ll,
            ));
        }
        if n == 1000 {
            for (j, (w, arg, iters)) in fx.workloads().into_iter().enumerate().skip(2) {
                let v = measure(Some(&cg.0), None, w, &arg, iters)?;
                let name = format!("{w} {}", fx.label(&arg));
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
    // 4. Start-up of a confined command against bare and bubblewrap.
    let policy = repo.join("policies/default.yaml");
    let runs = 10;
    let bare = timed_n(runs, || run_ok(Command::new(STATIC_TRUE).arg("true")))?;
    rows.push(Row::plain("true (bare)".into(), bare, "ms"));
    let ours = timed_n(runs, || {
        run_ok(
            Command::new(agent)
                .args(["run", "--policy"])
                .arg(&policy)
                .args(["--home", "/root", "--", STATIC_TRUE, "true"]),
        )
    })?;
    rows.push(Row::vs(
        "sandbox-agent run -- true".into(),
        ours,
        "ms",
        "true (bare)",
        bare,
    ));
    match which("bwrap") {
        Some(bwrap) => {
            let bw = timed_n(runs, || {
                run_ok(Command::new(&bwrap).args(["--ro-bind", "/", "/", STATIC_TRUE, "true"]))
            })?;
            rows.push(Row::vs(
                "bwrap --ro-bind / / true".into(),
                bw,
                "ms",
                "true (bare)",
                bare,
            ));
            rows.push(Row::vs(
                "sandbox-agent run vs bwrap".into(),
                ours,
                "ms",
                "bwrap --ro-bind / / true",
                bw,
            ));
        }
        None => println!("bench: bwrap is not installed: no bubblewrap comparison"),
    }
    // 5. Daemon memory with many attached policies.
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
    // 6. Audit: a denial the rate limit only counts, one that is recorded, and the sustained
    // rate of records into the log.
    let denied = fx.rules.join("r0").display().to_string();
    let cg = Cgroup::create("bench-audit")?;
    let policy = fx.policy(10)?;
    attach(agent, &cg, &policy)?;
    let counted = measure(Some(&cg.0), None, "open-denied", &denied, OPEN_ITERS)?;
    rows.push(Row::plain(
        "denied open, event suppressed by the rate limit".into(),
        counted,
        "ns/op",
    ));
    drop(daemon);
    let config = fx.dir.join("unlimited.yaml");
    std::fs::write(&config, "audit_rate_limit: {per_second: 0, burst: 0}\n")?;
    let daemon = Daemon::start_with(agent, &["--config", config.to_str().unwrap_or_default()])?;
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
    drop(daemon);
    report(&rows)
}

/// The highest rate of audited denials (found by bisection below `flood_rate`, the unpaced
/// producer's rate) that the daemon logs with no drop.
fn zero_drop_rate(agent: &Path, cg: &Path, denied: &str, flood_rate: f64) -> Result<f64> {
    let (mut lossless, mut lossy) = (0.0, flood_rate);
    for _ in 0..6 {
        let rate = (lossless + lossy) / 2.0;
        let before = counters(agent)?;
        measure_once(Some(cg), None, "open-denied-paced", denied, rate as u32)?;
        let (_, after) = settle(agent, Instant::now())?;
        if after.1 == before.1 {
            lossless = rate;
        } else {
            lossy = rate;
        }
    }
    Ok(lossless)
}

/// (events logged, events dropped) from the daemon's status.
fn counters(agent: &Path) -> Result<(u64, u64)> {
    let out = Command::new(agent).args(["status", "--json"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status --json")?;
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Ok((n("events_logged"), n("events_dropped")))
}

/// Waits until the daemon's counters stop moving; returns the time from `t0` to their last
/// change, and the final counters.
fn settle(agent: &Path, t0: Instant) -> Result<(Duration, (u64, u64))> {
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

impl Row {
    pub(super) fn plain(name: String, value: f64, unit: &'static str) -> Self {
        Self {
            name,
            value,
            unit,
            baseline: None,
        }
    }
    fn vs(name: String, value: f64, unit: &'static str, baseline: &str, base: f64) -> Self {
        Self {
            name,
            value,
            unit,
            baseline: Some((baseline.to_string(), base)),
        }
    }
}

pub(super) fn report(rows: &[Row]) -> Result<()> {
    println!();
    println!(
        "{:<58} {:>12} {:>7}  baseline",
        "measurement", "value", "ratio"
    );
    let mut out = Vec::new();
    for r in rows {
        let ratio = r.baseline.as_ref().map(|(_, b)| r.value / b);
        println!(
            "{:<58} {:>9.1} {:<3}{:>7}  {}",
            r.name,
            r.value,
            r.unit,
            ratio.map(|x| format!("{x:.3}")).unwrap_or_default(),
            r.baseline.as_ref().map(|(n, _)| n.as_str()).unwrap_or("")
        );
        out.push(json!({
            "name": r.name, "value": r.value, "unit": r.unit,
            "baseline": r.baseline.as_ref().map(|(n, _)| n), "ratio": ratio,
        }));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let doc = json!({ "kernel": kernel.trim(), "results": out });
    println!("{JSON_MARKER}{doc}");
    Ok(())
}

/// Median of three child runs of `workload`, confined in `cgroup` or under Landlock when asked.
fn measure(
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

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Mean milliseconds of `n` runs.
fn timed_n(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / n as f64)
}

fn run_ok(c: &mut Command) -> Result<()> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub(super) fn attach(agent: &Path, cg: &Cgroup, policy: &Path) -> Result<()> {
    run_ok(
        Command::new(agent)
            .args(["attach", "--home", "/root", "--cgroup"])
            .arg(&cg.0)
            .arg("--policy")
            .arg(policy),
    )
}

pub(super) fn detach(agent: &Path, cg: &Cgroup) -> Result<()> {
    run_ok(Command::new(agent).args(["detach", "--cgroup"]).arg(&cg.0))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Files on the guest's tmpfs: targets 2 and 16 directories deep, and the files rules name.
pub(super) struct Fixtures {
    pub(super) depth2: PathBuf,
    depth16: PathBuf,
    rules: PathBuf,
    dir: PathBuf,
}

impl Fixtures {
    pub(super) fn create() -> Result<Self> {
        let dir = PathBuf::from("/tmp/bench");
        let depth2 = dir.join("d2/file");
        let mut deep = dir.clone();
        for i in 0..15 {
            deep.push(format!("p{i}"));
        }
        let depth16 = deep.join("file");
        let rules = dir.join("rules");
        for f in [&depth2, &depth16] {
            std::fs::create_dir_all(f.parent().context("no parent")?)?;
            std::fs::write(f, "x")?;
        }
        std::fs::create_dir_all(&rules)?;
        for i in 0..RULE_COUNTS[2] {
            std::fs::write(rules.join(format!("r{i}")), "secret")?;
        }
        Ok(Self {
            depth2,
            depth16,
            rules,
            dir,
        })
    }

    /// (workload, argument, iterations): open at both depths, exec, connect.
    pub(super) fn workloads(&self) -> Vec<(&'static str, String, u32)> {
        vec![
            ("open", self.depth2.display().to_string(), OPEN_ITERS),
            ("open", self.depth16.display().to_string(), OPEN_ITERS),
            ("exec", STATIC_TRUE.to_string(), EXEC_ITERS),
            ("connect", "127.0.0.1".to_string(), CONNECT_ITERS),
        ]
    }

    pub(super) fn label(&self, arg: &str) -> String {
        if arg == self.depth2.to_str().unwrap_or_default() {
            "depth 2".into()
        } else if arg == self.depth16.to_str().unwrap_or_default() {
            "depth 16".into()
        } else if arg == STATIC_TRUE {
            "of a static true".into()
        } else {
            format!("to {arg}")
        }
    }

    /// A policy denying reads of the first `n` rule files.
    pub(super) fn policy(&self, n: usize) -> Result<PathBuf> {
        let path = self.dir.join(format!("policy-{n}.yaml"));
        let mut text = format!("name: bench-{n}\ndeny_read:\n");
        for i in 0..n {
            text.push_str(&format!(
                "  - {}\n",
                self.rules.join(format!("r{i}")).display()
            ));
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// A file listing the Landlock rules of size `n`: n - 1 rule files plus `/`, so the
    /// targets stay readable.
    fn landlock_list(&self, n: usize) -> Result<PathBuf> {
        let path = self.dir.join(format!("landlock-{n}.txt"));
        let mut text = String::from("/\n");
        for i in 0..n.saturating_sub(1) {
            text.push_str(&format!("{}\n", self.rules.join(format!("r{i}")).display()));
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

pub(super) struct Cgroup(pub(super) PathBuf);

impl Cgroup {
    pub(super) fn create(name: &str) -> Result<Self> {
        let p = PathBuf::from("/sys/fs/cgroup").join(name);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub(super) struct Daemon(Child);

impl Daemon {
    pub(super) fn start(agent: &Path) -> Result<Self> {
        Self::start_with(agent, &[])
    }

    fn start_with(agent: &Path, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all("/run/sandbox-agent")?;
        let log = std::fs::File::create("/run/sandbox-agent/daemon.log")?;
        let child = Command::new(agent)
            .args(extra)
            .args(["daemon", "--audit-log", "/run/sandbox-agent/audit.log"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the daemon")?;
        let mut d = Self(child);
        let deadline = Instant::now() + Duration::from_secs(600);
        while !Command::new(agent)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            if let Some(status) = d.0.try_wait()? {
                bail!("the daemon exited ({status}); see /run/sandbox-agent/daemon.log");
            }
            if Instant::now() > deadline {
                bail!("the daemon did not become ready in 600 s");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(d)
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in the daemon's status")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
