//! `cargo xtask test`: unit tests on the host, then the enforcement suite in a VM per kernel.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Result;

use crate::kernels::KernelVersion;
use crate::setup::Setup;
use crate::vm::{Guest, LSM_WITHOUT_BPF, LSM_WITH_BPF};
use crate::{paths, project};

/// libtest's counts, summed over every `test result:` line.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

enum KernelResult {
    Ran {
        counts: Counts,
        problem: Option<String>,
    },
    CouldNotRun(String),
}

pub fn command(only: Option<KernelVersion>, timeout: Duration, args: Vec<OsString>) -> Result<u8> {
    let repo = paths::repo_root()?;
    let mut setup = Setup::new()?;
    setup.host_tools()?;
    setup.rust_toolchain()?;
    project::unit_tests(&repo)?;
    project::build_agent(&repo)?;
    let test_bin = project::build_enforcement_tests(&repo)?;
    paths::check_visible_in_guest(&test_bin, "the enforcement test binary")?;

    let full_run = args.is_empty();
    let mut command = vec![test_bin.clone().into_os_string(), "--test-threads=1".into()];
    command.extend(args);
    let kernels = only.map_or(KernelVersion::ALL.to_vec(), |k| vec![k]);
    let mut results = Vec::new();
    for v in kernels {
        eprintln!("[test] enforcement suite on linux-{}", v.short());
        let result = match run_on(&mut setup, v, LSM_WITH_BPF, &command, timeout) {
            Ok(r) => r,
            Err(e) => KernelResult::CouldNotRun(format!("{e:#}")),
        };
        results.push((v.short().to_string(), result));
    }
    if full_run {
        // The same binary on a kernel booted without the BPF LSM: everything must refuse to run
        // unconfined. These tests are #[ignore]d in the runs above and run only here.
        let v = only.unwrap_or(KernelVersion::ALL[KernelVersion::ALL.len() - 1]);
        eprintln!(
            "[test] fail-closed checks on linux-{} without the BPF LSM",
            v.short()
        );
        let command = vec![
            test_bin.into_os_string(),
            "--test-threads=1".into(),
            "--ignored".into(),
            "no_bpf_lsm::".into(),
        ];
        let result = match run_on(&mut setup, v, LSM_WITHOUT_BPF, &command, timeout) {
            Ok(r) => r,
            Err(e) => KernelResult::CouldNotRun(format!("{e:#}")),
        };
        results.push((format!("{}-no-bpf-lsm", v.short()), result));
    }

    let mut total = Counts::default();
    let mut ok = true;
    eprintln!();
    for (v, result) in &results {
        match result {
            KernelResult::Ran { counts, problem } => {
                println!(
                    "linux-{}: {} passed, {} failed",
                    v, counts.passed, counts.failed
                );
                if counts.ignored > 0 {
                    eprintln!("linux-{}: note: {} tests ignored", v, counts.ignored);
                }
                if let Some(p) = problem {
                    eprintln!("linux-{}: {p}", v);
                    ok = false;
                }
                ok &= counts.failed == 0;
                total.passed += counts.passed;
                total.failed += counts.failed;
            }
            KernelResult::CouldNotRun(why) => {
                println!("linux-{}: could not run: {why}", v);
                ok = false;
            }
        }
    }
    println!("total: {} passed, {} failed", total.passed, total.failed);
    Ok(if ok { 0 } else { 1 })
}

fn run_on(
    setup: &mut Setup,
    v: KernelVersion,
    lsm: &'static str,
    command: &[OsString],
    timeout: Duration,
) -> Result<KernelResult> {
    let mut guest = Guest::prepare(setup, v)?;
    guest.lsm = lsm;
    // Without the BPF LSM the daemon cannot start: that is what those tests check.
    let mut outcome = guest.run(Some(command), lsm == LSM_WITH_BPF, timeout, true)?;
    if panicked_while_booting(&outcome.output) {
        // Seen under TCG: an int3 oops while the kernel patches its own text during early boot,
        // before any of our code runs. One more boot; a second panic is reported as is.
        eprintln!(
            "[test] linux-{}: the guest kernel panicked while booting; booting again",
            v.short()
        );
        outcome = guest.run(Some(command), lsm == LSM_WITH_BPF, timeout, true)?;
    } else if let Some(rip) = emulated_text_poke_oops(&outcome.output) {
        // Seen under TCG when links are replaced (the daemon restart tests) while another vCPU
        // runs the hook: the emulator executes the int3 the kernel already removed from the
        // hook's text. An emulator fault, not our programs': the suite runs once more, and a
        // second one is reported as is.
        eprintln!(
            "[test] linux-{}: the guest kernel oopsed on a stale int3 at {rip} while its text was \
             patched (an emulator fault); running the suite again",
            v.short()
        );
        outcome = guest.run(Some(command), lsm == LSM_WITH_BPF, timeout, true)?;
    }
    if outcome.timed_out {
        return Ok(KernelResult::CouldNotRun(format!(
            "timed out after {} s",
            timeout.as_secs()
        )));
    }
    let text = String::from_utf8_lossy(&outcome.output);
    let Some(counts) = parse_results(&text) else {
        let why = match outcome.status {
            None => "the guest exited without reporting a status and no `test result:` line \
                     was printed (see the console output above)"
                .to_owned(),
            Some(s) => {
                format!("the test binary exited with status {s} without a `test result:` line")
            }
        };
        return Ok(KernelResult::CouldNotRun(why));
    };
    let problem = match outcome.status {
        None => Some("the guest exited without reporting the test binary's exit status".to_owned()),
        Some(0) => None,
        Some(s) if counts.failed == 0 => Some(format!("the test binary exited with status {s}")),
        Some(_) => None,
    };
    Ok(KernelResult::Ran { counts, problem })
}

/// A kernel panic before the test binary started (no `running N tests` line yet).
fn panicked_while_booting(output: &[u8]) -> bool {
    let text = String::from_utf8_lossy(output);
    match text.find("Kernel panic") {
        Some(at) => !text[..at].lines().any(|l| l.starts_with("running ")),
        None => false,
    }
}

/// The function of an `Oops: int3` in the text the kernel patches to attach BPF programs (an LSM
/// hook's `bpf_lsm_*` stub or a trampoline), if the guest died of one.
fn emulated_text_poke_oops(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let at = text.find("Oops: int3")?;
    let rip = text[at..].lines().find_map(|l| {
        l.split_once("RIP: 0010:")
            .map(|(_, f)| f.trim().to_string())
    })?;
    (rip.starts_with("bpf_lsm_") || rip.starts_with("bpf_trampoline")).then_some(rip)
}

/// Sums libtest's `test result: ok. N passed; M failed; K ignored; ...` lines.
fn parse_results(output: &str) -> Option<Counts> {
    let mut found = None;
    for line in output.lines() {
        let line = strip_ansi(line);
        let Some(rest) = line.split_once("test result: ").map(|(_, r)| r) else {
            continue;
        };
        let Some((_, fields)) = rest.split_once(". ") else {
            continue;
        };
        let total: &mut Counts = found.get_or_insert_with(Counts::default);
        for field in fields.split(';') {
            let mut words = field.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => total.passed += n,
                "failed" => total.failed += n,
                "ignored" => total.ignored += n,
                _ => {}
            }
        }
    }
    found
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summary() {
        let out = "running 3 tests\ntest a ... ok\n\ntest result: FAILED. 2 passed; 1 failed; \
                   0 ignored; 0 measured; 0 filtered out; finished in 1.02s\n";
        assert_eq!(
            parse_results(out),
            Some(Counts {
                passed: 2,
                failed: 1,
                ignored: 0
            })
        );
    }

    #[test]
    fn only_a_panic_before_the_tests_start_is_a_boot_panic() {
        assert!(panicked_while_booting(
            b"[ 2.5] Oops: int3\n[ 2.6] Kernel panic - not syncing"
        ));
        assert!(!panicked_while_booting(
            b"running 3 tests\ntest a ... ok\n[ 9.1] Kernel panic - not syncing"
        ));
        assert!(!panicked_while_booting(
            b"running 3 tests\ntest result: ok."
        ));
    }

    #[test]
    fn a_stale_int3_in_a_patched_lsm_hook_is_recognised() {
        let oops = b"test p ... [ 670.4] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                     [ 670.4] CPU: 1 UID: 0 PID: 1479 Comm: cat\n\
                     [ 670.4] RIP: 0010:bpf_lsm_inode_permission+0x5/0x10\n\
                     [ 670.4] Kernel panic - not syncing: Fatal exception";
        assert_eq!(
            emulated_text_poke_oops(oops).as_deref(),
            Some("bpf_lsm_inode_permission+0x5/0x10")
        );
        let other = b"[ 9.1] Oops: int3\n[ 9.1] RIP: 0010:do_sys_openat2+0x5/0x10\n";
        assert_eq!(emulated_text_poke_oops(other), None);
        assert_eq!(
            emulated_text_poke_oops(b"running 3 tests\ntest a ... ok\n"),
            None
        );
    }

    #[test]
    fn parses_coloured_summary_and_absence() {
        let out = "test result: \x1b[32mok\x1b[0m. 5 passed; 0 failed; 1 ignored; 0 measured";
        assert_eq!(
            parse_results(out),
            Some(Counts {
                passed: 5,
                failed: 0,
                ignored: 1
            })
        );
        assert_eq!(parse_results("error: could not boot\n"), None);
    }
}
