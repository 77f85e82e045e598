//! What the benchmark runs against: files on the guest's tmpfs, policies of a given size,
//! cgroups, and the daemon (started, stopped, and cleaned away so no program stays attached).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub(super) const RULE_COUNTS: [usize; 3] = [10, 1000, 10000];
pub(super) const OPEN_ITERS: u32 = 20000;
pub(super) const EXEC_ITERS: u32 = 100;
pub(super) const CONNECT_ITERS: u32 = 1000;
pub(super) const STATIC_TRUE: &str = "/bin/busybox";

pub(super) fn run_ok(c: &mut Command) -> Result<()> {
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

pub(super) fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Files on the guest's tmpfs: targets 2 and 16 directories deep, and the files rules name.
pub(super) struct Fixtures {
    pub(super) depth2: PathBuf,
    pub(super) depth16: PathBuf,
    pub(super) rules: PathBuf,
    pub(super) dir: PathBuf,
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
    pub(super) fn landlock_list(&self, n: usize) -> Result<PathBuf> {
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

    pub(super) fn start_with(agent: &Path, extra: &[&str]) -> Result<Self> {
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

    /// Stops the daemon and removes its pins, so its programs detach: the host as if no agent
    /// had ever run.
    pub(super) fn stop_and_clean(mut self, agent: &Path) -> Result<()> {
        let _ = self.0.kill();
        let _ = self.0.wait();
        run_ok(Command::new(agent).args(["daemon", "--cleanup"]))
    }

    pub(super) fn rss_kib(&self) -> Result<u64> {
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
