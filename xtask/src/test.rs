//! `cargo xtask test`: unit tests on the host, then the enforcement suite in a VM per kernel.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Result;

use crate::kernels::KernelVersion;
use crate::setup::Setup;
use crate::vm::{emulator_fault, Guest, LSM_WITHOUT_BPF, LSM_WITH_BPF, TEST_SILENCE_LIMIT};
use crate::{paths, project};

/// libtest's counts, summed over every `test result:` line.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
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
        let result = match run_on(&mut setup, v, LSM_WITH_BPF, &command, full_run, timeout) {
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
        let result = match run_on(&mut setup, v, LSM_WITHOUT_BPF, &command, false, timeout) {
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

/// How many more boots a suite gets when the guest dies of an emulator fault.
const REBOOTS_AFTER_AN_EMULATOR_FAULT: usize = 2;

fn run_on(
    setup: &mut Setup,
    v: KernelVersion,
    lsm: &'static str,
    command: &[OsString],
    whole_suite: bool,
    timeout: Duration,
) -> Result<KernelResult> {
    let mut guest = Guest::prepare(setup, v)?;
    guest.lsm = lsm;
    guest.silence_limit = Some(TEST_SILENCE_LIMIT);
    // Without the BPF LSM the daemon cannot start: that is what those tests check.
    let daemon = lsm == LSM_WITH_BPF;
    let mut outcome = guest.run(Some(command), daemon, timeout, true)?;
    // Tests finished by boots that died of an emulator fault, kept with their results.
    let mut earlier = Counts::default();
    let mut finished_names = Vec::new();
    for _ in 0..REBOOTS_AFTER_AN_EMULATOR_FAULT {
        let Some(fault) = emulator_fault(&outcome.output) else {
            break;
        };
        let finished = finished_tests(&outcome.output);
        for (name, counts) in finished {
            earlier.add(&counts);
            finished_names.push(name);
        }
        let again = resume_command(command, whole_suite, &finished_names);
        eprintln!(
            "[test] linux-{}: {fault}; booting again to run {} ({} of its tests finished, \
             {} passed, {} failed)",
            v.short(),
            if again.len() == command.len() {
                "the same tests"
            } else {
                "the tests not finished"
            },
            finished_names.len(),
            earlier.passed,
            earlier.failed,
        );
        outcome = guest.run(Some(&again), daemon, timeout, true)?;
    }
    if outcome.timed_out {
        return Ok(KernelResult::CouldNotRun(format!(
            "killed: no output for {} s, or past the {} s timeout (see above which)",
            TEST_SILENCE_LIMIT.as_secs(),
            timeout.as_secs()
        )));
    }
    let text = String::from_utf8_lossy(&outcome.output);
    let Some(mut counts) = parse_results(&text) else {
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
    counts.add(&earlier);
    Ok(KernelResult::Ran { counts, problem })
}

/// The tests a boot finished, each with its result, in the order libtest ran them. A kernel
/// message can come between `test NAME ... ` and the result, which then starts its own line.
fn finished_tests(output: &[u8]) -> Vec<(String, Counts)> {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<String> = text.lines().map(strip_ansi).collect();
    let mut finished = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, rest)) = line
            .strip_prefix("test ")
            .and_then(|l| l.split_once(" ... "))
        else {
            continue;
        };
        let later = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("test "))
            .map(|l| l.trim());
        let result = std::iter::once(rest.trim())
            .chain(later)
            .find_map(|word| match word {
                "ok" => Some(Counts {
                    passed: 1,
                    ..Counts::default()
                }),
                "FAILED" => Some(Counts {
                    failed: 1,
                    ..Counts::default()
                }),
                w if w.starts_with("ignored") => Some(Counts {
                    ignored: 1,
                    ..Counts::default()
                }),
                _ => None,
            });
        if let Some(counts) = result {
            finished.push((name.to_owned(), counts));
        }
    }
    finished
}

/// The command that runs what a dead boot left: the whole suite skips, by exact name, the tests
/// it finished. A run given filters is run again as given (`--exact` would change its filters).
fn resume_command(command: &[OsString], whole_suite: bool, finished: &[String]) -> Vec<OsString> {
    let mut again = command.to_vec();
    if !whole_suite || finished.is_empty() {
        return again;
    }
    again.push("--exact".into());
    for name in finished {
        again.push("--skip".into());
        again.push(name.into());
    }
    again
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
    use crate::vm::tests::STALE_INT3;

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
    fn a_dead_boot_keeps_what_it_finished_and_the_rest_runs_again_by_exact_name() {
        let out = [
            b"running 4 tests\ntest aliases::a ... ok\ntest b::x ... FAILED\n" as &[u8],
            b"test b::noisy ... [ 191.8] Invalid ELF header len 19\nok\n",
            STALE_INT3,
        ]
        .concat();
        let finished = finished_tests(&out);
        let names: Vec<&str> = finished.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["aliases::a", "b::x", "b::noisy"]);
        assert_eq!(finished[1].1.failed, 1);
        assert_eq!(finished[2].1.passed, 1);

        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let suite: Vec<OsString> = vec!["bin".into(), "--test-threads=1".into()];
        let again = resume_command(&suite, true, &names);
        assert_eq!(
            again,
            [
                "bin",
                "--test-threads=1",
                "--exact",
                "--skip",
                "aliases::a",
                "--skip",
                "b::x"
            ]
            .iter()
            .chain(&["--skip", "b::noisy"])
            .map(OsString::from)
            .collect::<Vec<_>>()
        );
        let filtered: Vec<OsString> = vec!["bin".into(), "--test-threads=1".into(), "b::".into()];
        assert_eq!(resume_command(&filtered, false, &names), filtered);
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
