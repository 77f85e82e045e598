//! Start-up of a confined command (`run -- true` with the shipped default policy) against a
//! bare start and against `bwrap --ro-bind / /`, interleaved (see `paired`). The daemon reuses
//! a compile while nothing it read has changed, so the same run is measured a second way,
//! compiled every time (the policy under more file names than the daemon keeps compiles).
//! Two floors are measured against bwrap too, to tell what the policy's compile costs from
//! what any `run` pays: a `status` round trip (the CLI's start and one request) and
//! `run -- true` under a policy that names no path (nothing to compile or scan).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::fixtures::{run_ok, which, Daemon, STATIC_TRUE};
use super::guest::{mounted_at, timed_n, Row};
use super::paired::{fastest, Pairs};

/// Starts per run of a batch (see `paired::fastest`).
const RUNS: u32 = 2;

/// A policy with no path, host or variable to resolve: `run`'s cost without the compile.
const NO_PATHS: &str = "name: no-paths\nmode: enforce\n";

/// Copies of the default policy, used in turn: more than the daemon keeps compiles of, so
/// each run compiles.
const COPIES: usize = 12;

/// In the test VM the root is the host's, read-only over 9p, which nothing changes during the
/// bench: the daemon may reuse compiles there as a host does on its local disks.
const VM_CONFIG: &str = "compile_reuse_filesystems: [9p]\n";

/// One batch: the fastest of a few timings of `RUNS` runs of the command `make` builds.
fn batch(make: impl Fn() -> Command) -> Result<f64> {
    fastest(|| timed_n(RUNS, || run_ok(&mut make())))
}

/// `program` with `args`.
fn command<P: AsRef<OsStr>>(program: P, args: &[&OsStr]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn run_true(agent: &Path, policy: &Path) -> Command {
    let args = ["run", "--policy"].map(OsStr::new);
    let rest = ["--home", "/root", "--", STATIC_TRUE, "true"].map(OsStr::new);
    let mut c = command(agent, &args);
    c.arg(policy).args(rest);
    c
}

pub(super) fn rows(agent: &Path, repo: &Path) -> Result<Vec<Row>> {
    let scratch = std::env::temp_dir().join("bench-startup");
    std::fs::create_dir_all(&scratch)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let root_is_9p = mounted_at(&mountinfo, "/").is_some_and(|(fstype, _)| fstype == "9p");
    let daemon = if root_is_9p {
        let config = scratch.join("config.yaml");
        std::fs::write(&config, VM_CONFIG)?;
        println!("bench: the root is 9p (the test VM): the daemon is told to trust it");
        Daemon::start_with(agent, &["--config", config.to_str().unwrap_or_default()])?
    } else {
        Daemon::start(agent)?
    };
    let default_policy = repo.join("policies/default.yaml");
    let text = std::fs::read_to_string(&default_policy)?;
    let copies = (0..COPIES)
        .map(|i| {
            let copy = scratch.join(format!("default-{i}.yaml"));
            std::fs::write(&copy, &text).map(|()| copy)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let next = std::cell::Cell::new(0);
    let no_paths = scratch.join("no-paths.yaml");
    std::fs::write(&no_paths, NO_PATHS)?;
    let bare = || batch(|| command(STATIC_TRUE, &[OsStr::new("true")]));
    let ours = || batch(|| run_true(agent, &default_policy));
    let mut rows = vec![Pairs::measure(bare, ours)?.row(
        "sandbox-agent run -- true".into(),
        "ms",
        "true (bare)",
    )];
    match which("bwrap") {
        Some(bwrap) => {
            let bwrap_args = ["--ro-bind", "/", "/", STATIC_TRUE, "true"].map(OsStr::new);
            let bw = || batch(|| command(&bwrap, &bwrap_args));
            let compiled = || {
                batch(|| {
                    next.set((next.get() + 1) % COPIES);
                    run_true(agent, &copies[next.get()])
                })
            };
            let floor_run = || batch(|| run_true(agent, &no_paths));
            let status = || batch(|| command(agent, &[OsStr::new("status")]));
            let baseline = "bwrap --ro-bind / / true";
            rows.push(Pairs::measure(bw, ours)?.row(
                "sandbox-agent run vs bwrap".into(),
                "ms",
                baseline,
            ));
            rows.push(Pairs::measure(bw, compiled)?.row(
                "run, compiled every time, vs bwrap".into(),
                "ms",
                baseline,
            ));
            rows.push(Pairs::measure(bw, floor_run)?.row(
                "run, a policy of no paths, vs bwrap".into(),
                "ms",
                baseline,
            ));
            rows.push(Pairs::measure(bw, status)?.row(
                "status round trip vs bwrap".into(),
                "ms",
                baseline,
            ));
        }
        None => println!("bench: bwrap is not installed: no bubblewrap comparison"),
    }
    daemon.stop_and_clean(agent)?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(rows)
}
