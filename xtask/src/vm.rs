//! `cargo xtask vm`: boot a test kernel under qemu with the host's root as the guest's root,
//! start the daemon, run a command (or a shell) and carry its exit status out.

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::kernels::{Kernel, KernelVersion};
use crate::marker::ConsoleFilter;
use crate::setup::Setup;
use crate::{cmd, initramfs, paths, project};

const RUN_TEMPLATE: &str = include_str!("guest/run.sh");

/// A test run that prints nothing for this long is stuck (libtest prints each test's name as it
/// starts and its result as it ends; the slowest test takes a few minutes under TCG): it is
/// killed then, whatever time its whole run was given.
pub const TEST_SILENCE_LIMIT: Duration = Duration::from_secs(600);
/// Set to 1 to boot without starting the daemon (for tests of daemon start-up failures).
pub const NO_DAEMON_ENV: &str = "SANDBOX_AGENT_VM_NO_DAEMON";
const APPEND: &str = "console=ttyS0 quiet panic=-1";
/// The LSMs the guest boots with: BPF LSM enabled, as on a host set up for sandbox-agent.
pub const LSM_WITH_BPF: &str = "lockdown,capability,landlock,bpf";
/// The same without `bpf`: a kernel that cannot enforce, for the fail-closed checks.
pub const LSM_WITHOUT_BPF: &str = "lockdown,capability,landlock";

/// Everything a VM run needs from the host side.
pub struct Guest {
    pub kernel: Kernel,
    pub initrd: PathBuf,
    pub repo: PathBuf,
    pub target: PathBuf,
    /// The kernel's `lsm=` list.
    pub lsm: &'static str,
    /// Kill the guest once its console has been silent this long (none: only the timeout).
    pub silence_limit: Option<Duration>,
}

pub struct Outcome {
    /// The command's exit status as the guest reported it; `None` if it reported none.
    pub status: Option<i32>,
    /// Console output (marker removed), when capture was asked for.
    pub output: Vec<u8>,
    pub timed_out: bool,
}

impl Guest {
    /// Setup for kernel `v`, the initramfs, and the project build (unless skipped).
    pub fn prepare(setup: &mut Setup, v: KernelVersion) -> Result<Guest> {
        setup.host_tools()?;
        if !project::skip_build() {
            setup.rust_toolchain()?;
        }
        let kernel = setup.kernel(v)?;
        let initrd = initramfs::ensure(&setup.cache, &kernel)?;
        let repo = paths::repo_root()?;
        let target = paths::target_dir(&repo)?;
        paths::check_visible_in_guest(&repo, "the repository")?;
        paths::check_visible_in_guest(&target, "cargo's target directory")?;
        Ok(Guest {
            kernel,
            initrd,
            repo,
            target,
            lsm: LSM_WITH_BPF,
            silence_limit: None,
        })
    }

    /// Boots the VM and runs `command` (a shell if `None`) in it.
    pub fn run(
        &self,
        command: Option<&[OsString]>,
        daemon: bool,
        timeout: Duration,
        capture: bool,
    ) -> Result<Outcome> {
        let interactive = command.is_none();
        let nonce = nonce();
        let dir = self.target.join("vm");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let script = RunScript::create(&dir, &self.script(command, daemon, &nonce)?)?;

        let mut append = OsString::from(APPEND);
        append.push(" lsm=");
        append.push(self.lsm);
        append.push(" sandbox_agent.run=");
        append.push(&script.0);
        let mut virtfs = OsString::from("local,path=/,mount_tag=hostroot,");
        virtfs.push("security_model=none,readonly=on,multidevs=remap");
        let mut c = Command::new("qemu-system-x86_64");
        c.args([
            "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-m", "2048",
        ])
        .args(["-smp", "2", "-no-reboot", "-nic", "none", "-vga", "none"])
        // Not -nographic: that also turns on SeaBIOS's serial console, whose banner and
        // terminal-reset sequences would reach the user's terminal.
        .args(["-display", "none", "-serial", "mon:stdio"])
        .arg("-kernel")
        .arg(&self.kernel.vmlinuz)
        .arg("-initrd")
        .arg(&self.initrd)
        .arg("-append")
        .arg(&append)
        .arg("-virtfs")
        .arg(&virtfs)
        .stdin(if interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped());
        eprintln!(
            "[vm] booting linux-{} ({}){}",
            self.kernel.version.short(),
            self.kernel.release,
            if daemon { " with the daemon" } else { "" }
        );
        let mut child = c
            .spawn()
            .with_context(|| format!("could not start `{}`", cmd::describe(&c)))?;
        let mut stdout = child
            .stdout
            .take()
            .context("qemu's stdout was not captured")?;
        let started = Instant::now();
        // Seconds from `started` to the console's last output.
        let last_output = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let heard = last_output.clone();
        let reader = std::thread::spawn(move || -> std::io::Result<(Option<i32>, Vec<u8>)> {
            let mut filter =
                ConsoleFilter::new(std::io::stdout().lock(), &nonce, interactive, capture);
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        heard.store(
                            started.elapsed().as_secs(),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        filter.feed(&buf[..n])?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            filter.finish()
        });

        let mut timed_out = false;
        loop {
            if child.try_wait().context("waiting for qemu")?.is_some() {
                break;
            }
            let elapsed = started.elapsed();
            let silent = elapsed
                .as_secs()
                .saturating_sub(last_output.load(std::sync::atomic::Ordering::Relaxed));
            let stuck = self
                .silence_limit
                .is_some_and(|limit| !interactive && silent >= limit.as_secs());
            if elapsed >= timeout || stuck {
                timed_out = true;
                if stuck {
                    eprintln!("\n[vm] no output for {silent} s: killing qemu");
                } else {
                    eprintln!("\n[vm] timeout after {} s: killing qemu", timeout.as_secs());
                }
                // It may have exited just now; either way wait() below reaps it.
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let qemu_status = child.wait().context("waiting for qemu")?;
        let (status, output) = match reader.join() {
            Ok(r) => r.context("relaying the VM console")?,
            Err(_) => bail!("the console relay thread panicked"),
        };
        if interactive && timed_out && std::io::stdin().is_terminal() {
            // qemu had the terminal in raw mode.
            let _ = Command::new("stty").arg("sane").status();
        }
        if !qemu_status.success() && !timed_out {
            eprintln!("[vm] qemu exited with {qemu_status}");
        }
        Ok(Outcome {
            status: if timed_out { None } else { status },
            output,
            timed_out,
        })
    }

    fn script(&self, command: Option<&[OsString]>, daemon: bool, nonce: &str) -> Result<Vec<u8>> {
        let bin_dir = crate::paths::release_dir(&self.target);
        let term = match std::env::var("TERM") {
            Ok(t) if std::io::stdout().is_terminal() && !t.is_empty() => t,
            _ => "dumb".to_owned(),
        };
        let command_line = match command {
            Some(args) => {
                let Some(first) = args.first() else {
                    bail!("empty command");
                };
                if first.as_bytes().contains(&b'/') && !Path::new(first).is_absolute() {
                    bail!(
                        "{}: relative paths do not work in the guest (it runs the command in \
                         /tmp); give an absolute path or a name on PATH",
                        first.to_string_lossy()
                    );
                }
                let quoted: Vec<Vec<u8>> =
                    args.iter().map(|a| cmd::sh_quote(a.as_bytes())).collect();
                quoted.join(&b' ')
            }
            None => b":".to_vec(),
        };
        let stty = match (command, terminal_size()) {
            (None, Some((rows, cols))) => format!("stty rows {rows} cols {cols} 2>/dev/null"),
            _ => ":".to_owned(),
        };
        let mut out = Vec::new();
        let mut rest = RUN_TEMPLATE.as_bytes();
        // Replace each @NAME@ placeholder; everything substituted is quoted or generated here.
        while let Some(start) = find(rest, b"@") {
            out.extend_from_slice(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(len) = find(after, b"@") else {
                bail!("unterminated placeholder in the run script template");
            };
            let value: Vec<u8> = match &after[..len] {
                b"BIN_DIR" => cmd::sh_quote(bin_dir.as_os_str().as_bytes()),
                b"REPO" => cmd::sh_quote(self.repo.as_os_str().as_bytes()),
                b"TERM" => cmd::sh_quote(term.as_bytes()),
                b"NONCE" => nonce.as_bytes().to_vec(),
                b"INTERACTIVE" => if command.is_none() { b"1" } else { b"0" }.to_vec(),
                b"DAEMON" => if daemon { b"1" } else { b"0" }.to_vec(),
                b"STTY" => stty.as_bytes().to_vec(),
                b"ENV" => forwarded_env(),
                b"COMMAND" => command_line.clone(),
                other => bail!(
                    "unknown placeholder @{}@ in the run script template",
                    String::from_utf8_lossy(other)
                ),
            };
            out.extend_from_slice(&value);
            rest = &after[len + 1..];
        }
        out.extend_from_slice(rest);
        Ok(out)
    }
}

/// Host variables passed on to the guest's command (diagnostics settings only).
const FORWARDED_ENV: &[&str] = &["RUST_BACKTRACE", "RUST_LOG"];

fn forwarded_env() -> Vec<u8> {
    let mut out = Vec::new();
    for name in FORWARDED_ENV {
        if let Some(value) = std::env::var_os(name) {
            out.extend_from_slice(format!("export {name}=").as_bytes());
            out.extend_from_slice(&cmd::sh_quote(value.as_bytes()));
            out.push(b'\n');
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The per-run script, removed again when the run ends.
struct RunScript(PathBuf);

impl RunScript {
    fn create(dir: &Path, contents: &[u8]) -> Result<RunScript> {
        let path = dir.join(format!("run-{}.sh", std::process::id()));
        // The path goes on the kernel command line, which is split at blanks.
        let safe = path
            .as_os_str()
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(b));
        if !safe {
            bail!(
                "{} has characters that cannot go on the kernel command line; \
                 use a target directory path of letters, digits and /._+-",
                path.display()
            );
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(RunScript(path))
    }
}

impl Drop for RunScript {
    fn drop(&mut self) {
        // Best effort: a leftover script in target/vm is harmless.
        let _ = std::fs::remove_file(&self.0);
    }
}

fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// The host terminal's rows and columns, if stdin is one.
fn terminal_size() -> Option<(u16, u16)> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let out = Command::new("stty")
        .arg("size")
        .stdin(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (rows, cols) = text.trim().split_once(' ')?;
    Some((rows.parse().ok()?, cols.parse().ok()?))
}

/// Turns an outcome into the process exit status, or an error saying why there is none.
pub fn exit_status(outcome: &Outcome, timeout: Duration) -> Result<u8> {
    if outcome.timed_out {
        bail!(
            "the VM did not finish within {} s (--timeout)",
            timeout.as_secs()
        );
    }
    match outcome.status {
        Some(s) => Ok(u8::try_from(s).unwrap_or(1)),
        None => bail!(
            "the guest powered off without reporting an exit status: it could not be set up, \
             or the command was cut short (see the console output above)"
        ),
    }
}

pub fn daemon_wanted() -> bool {
    std::env::var_os(NO_DAEMON_ENV).is_none_or(|v| v != "1")
}

/// `cargo xtask vm [--kernel K] [--timeout S] [-- CMD...]`.
pub fn command(v: KernelVersion, timeout: Duration, command: Vec<OsString>) -> Result<u8> {
    let mut setup = Setup::new()?;
    let guest = Guest::prepare(&mut setup, v)?;
    project::build_agent(&guest.repo)?;
    let daemon = daemon_wanted();
    if daemon {
        project::agent_binary(&guest.target)?;
    } else {
        eprintln!("[vm] {NO_DAEMON_ENV}=1: not starting the daemon");
    }
    let command = (!command.is_empty()).then_some(command.as_slice());
    let outcome = guest.run(command, daemon, timeout, false)?;
    exit_status(&outcome, timeout)
}

/// Why the guest died of a fault that is the emulator's, not the tests': a kernel panic before
/// the test binary started, or an `Oops: int3` whose int3 is no longer in the kernel's text.
/// The second is TCG running code the kernel already patched back (static keys, BPF trampolines
/// and `bpf_lsm_*` stubs are patched through a temporary int3 while another vCPU runs them).
pub fn emulator_fault(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    if let Some(at) = text.find("Kernel panic") {
        if !text[..at].lines().any(|l| l.starts_with("running ")) {
            return Some("the guest kernel panicked while booting".to_owned());
        }
    }
    let at = text.find("Oops: int3")?;
    let after = &text[at..];
    let rip = after.lines().find_map(|l| {
        l.split_once("RIP: 0010:")
            .map(|(_, f)| f.trim().to_string())
    })?;
    // `Code:` marks the byte at RIP with <..>; the int3 that trapped is the byte before it.
    let code = after
        .lines()
        .find_map(|l| l.split_once("Code: ").map(|(_, c)| c))?;
    let (before, _) = code.split_once('<')?;
    let trapped = before.split_whitespace().last()?;
    (trapped != "cc").then(|| {
        format!(
            "the guest kernel oopsed on an int3 at {rip} that its text no longer holds \
             (code patched while the emulator ran it)"
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn only_a_panic_before_the_tests_start_is_a_boot_panic() {
        assert!(emulator_fault(b"[ 2.5] BUG: x\n[ 2.6] Kernel panic - not syncing").is_some());
        assert_eq!(
            emulator_fault(b"running 3 tests\ntest a ... ok\n[ 9.1] Kernel panic - not syncing"),
            None
        );
        assert_eq!(emulator_fault(b"running 3 tests\ntest result: ok."), None);
    }

    /// As CI printed it on 6.12 while podman made a container's cgroup.
    pub(crate) const STALE_INT3: &[u8] =
        b"test containers::a ... [  258.196541] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
        [  258.197380] RIP: 0010:kmem_cache_free+0x105/0x450\n\
        [  258.198185] Code: 4c 0f 45 e8 66 <90> 4d 8b 45 38 49 83 f8 07\n\
        [  258.203082] Kernel panic - not syncing: Fatal exception in interrupt\n";

    #[test]
    fn an_int3_no_longer_in_the_text_is_an_emulator_fault_and_one_still_there_is_not() {
        let fault = emulator_fault(&[b"running 1 test\n" as &[u8], STALE_INT3].concat())
            .unwrap_or_default();
        assert!(fault.contains("kmem_cache_free+0x105/0x450"), "{fault}");
        let real = b"running 1 test\ntest a ... [ 9.1] Oops: int3: 0000 [#1]\n\
                     [ 9.1] RIP: 0010:do_sys_openat2+0x5/0x10\n\
                     [ 9.1] Code: 90 90 cc <90> 90\n[ 9.2] Kernel panic - not syncing\n";
        assert_eq!(emulator_fault(real), None);
        assert_eq!(emulator_fault(b"running 3 tests\ntest a ... ok\n"), None);
    }
}
