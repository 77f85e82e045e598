//! `cargo xtask bench --hooks`: what each operation costs hook by hook, from the kernel's own
//! BPF statistics (`kernel.bpf_stats_enabled`: a run count and the time spent in each program).
//! For every workload (open, exec, connect, link, ioctl, a capability check), unconfined (in a
//! cgroup three levels down, with another cgroup confined) and then confined by a 10-rule
//! policy: how many times each of our programs runs per operation, and the nanoseconds per run. Timing the whole operation cannot tell a 2 % cost from noise
//! under an emulated CPU; these counters can.

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::fixtures::{attach, detach, Cgroup, Daemon, Fixtures};
use super::guest::{measure_once, report, Row};

/// Where the daemon pins its links, one per hook.
const LINKS: &str = "/sys/fs/bpf/sandbox-agent/links";
/// From <uapi/linux/bpf.h>.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

/// (runs, nanoseconds) of each attached program, by hook.
type Stats = BTreeMap<String, (u64, u64)>;

pub fn run(agent: &Path) -> Result<()> {
    let fx = Fixtures::create()?;
    let _daemon = Daemon::start(agent)?;
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
        .context("enabling the kernel's BPF statistics")?;
    let linked = fx.depth2.with_file_name("linked");
    std::fs::write(&linked, "x")?;
    let mut workloads = fx.workloads();
    workloads.push(("link", linked.display().to_string(), 2000));
    workloads.push(("ioctl", "FIONREAD".to_string(), 20000));
    workloads.push(("capable", "CAP_SETGID".to_string(), 20000));
    let cg = Cgroup::create("bench-hooks")?;
    attach(agent, &cg, &fx.policy(10)?)?;
    // Unconfined operations run three levels down, where a login session's processes are on a
    // real host (the programs look at the task's cgroup and its ancestors).
    let _host = Cgroup::create("bench-host")?;
    let _user = Cgroup::create("bench-host/user.slice")?;
    let session = Cgroup::create("bench-host/user.slice/session.scope")?;
    let mut rows = Vec::new();
    for (w, arg, iters) in workloads {
        for confined in [false, true] {
            let who = if confined { "confined" } else { "unconfined" };
            let place = if confined { &cg } else { &session };
            let per_op = per_operation(Some(place.0.as_path()), w, &arg, iters)?;
            let what = match w {
                "ioctl" | "capable" => arg.clone(),
                _ => fx.label(&arg),
            };
            let label = format!("{w} {what} ({who})");
            let total: f64 = per_op.values().map(|(_, ns)| ns).sum();
            rows.push(Row::plain(format!("{label}: all programs"), total, "ns/op"));
            for (hook, (runs, ns)) in per_op {
                if runs >= 0.01 {
                    rows.push(Row::plain(
                        format!("{label}: {hook} x{runs:.2}"),
                        ns / runs,
                        "ns/run",
                    ));
                }
            }
        }
    }
    detach(agent, &cg)?;
    report(&rows)
}

/// Runs and nanoseconds per operation of each program: the difference between `iters`
/// operations and one, so the child process's own start-up (its exec, its libraries) cancels.
fn per_operation(
    cgroup: Option<&Path>,
    workload: &str,
    arg: &str,
    iters: u32,
) -> Result<BTreeMap<String, (f64, f64)>> {
    let s0 = stats()?;
    measure_once(cgroup, None, workload, arg, 1)?;
    let s1 = stats()?;
    measure_once(cgroup, None, workload, arg, iters)?;
    let s2 = stats()?;
    let mut out = BTreeMap::new();
    for (hook, &(c2, t2)) in &s2 {
        let (c1, t1) = s1.get(hook).copied().unwrap_or_default();
        let (c0, t0) = s0.get(hook).copied().unwrap_or_default();
        let runs = (c2 - c1) as f64 - (c1 - c0) as f64;
        let ns = (t2 - t1) as f64 - (t1 - t0) as f64;
        let n = (iters.max(2) - 1) as f64;
        out.insert(hook.clone(), ((runs / n).max(0.0), (ns / n).max(0.0)));
    }
    Ok(out)
}

/// The counters of every program the daemon attached, through its pinned links.
fn stats() -> Result<Stats> {
    let mut out = Stats::new();
    for entry in std::fs::read_dir(LINKS).with_context(|| format!("reading {LINKS}"))? {
        let path = entry?.path();
        let hook = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let link = obj_get(&path)?;
        let prog_id = fdinfo(&link, "prog_id")?;
        let prog = prog_by_id(prog_id as u32)?;
        out.insert(
            hook,
            (fdinfo(&prog, "run_cnt")?, fdinfo(&prog, "run_time_ns")?),
        );
    }
    Ok(out)
}

/// A `bpf(2)` call with a zeroed `union bpf_attr` whose first bytes are `head`.
fn bpf(cmd: libc::c_long, head: &[u8]) -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    attr[..head.len()].copy_from_slice(head);
    // SAFETY: the kernel reads at most `attr.len()` bytes of a buffer that size.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// BPF_OBJ_GET of a pin: `pathname` is the first field.
fn obj_get(pin: &Path) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes())?;
    let ptr = name.as_ptr() as u64;
    bpf(BPF_OBJ_GET, &ptr.to_ne_bytes()).with_context(|| format!("opening {}", pin.display()))
}

/// BPF_PROG_GET_FD_BY_ID: `prog_id` is the first field.
fn prog_by_id(id: u32) -> Result<OwnedFd> {
    bpf(BPF_PROG_GET_FD_BY_ID, &id.to_ne_bytes())
}

/// A numeric field of a descriptor's `/proc/self/fdinfo`.
fn fdinfo(fd: &OwnedFd, field: &str) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {field} in the fdinfo of a BPF object"))
}
