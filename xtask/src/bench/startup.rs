//! Start-up of a confined command (`run -- true` with the shipped default policy) against a
//! bare start and against `bwrap --ro-bind / /`, interleaved (see `paired`).

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::fixtures::{run_ok, which, Daemon, STATIC_TRUE};
use super::guest::{timed_n, Row};
use super::paired::{fastest, Pairs};

/// Starts per run of a batch (see `paired::fastest`).
const RUNS: u32 = 2;

pub(super) fn rows(agent: &Path, repo: &Path) -> Result<Vec<Row>> {
    let daemon = Daemon::start(agent)?;
    let policy = repo.join("policies/default.yaml");
    let bare = || fastest(|| timed_n(RUNS, || run_ok(Command::new(STATIC_TRUE).arg("true"))));
    let ours = || {
        fastest(|| {
            timed_n(RUNS, || {
                run_ok(
                    Command::new(agent)
                        .args(["run", "--policy"])
                        .arg(&policy)
                        .args(["--home", "/root", "--", STATIC_TRUE, "true"]),
                )
            })
        })
    };
    let mut rows = vec![Pairs::measure(bare, ours)?.row(
        "sandbox-agent run -- true".into(),
        "ms",
        "true (bare)",
    )];
    match which("bwrap") {
        Some(bwrap) => {
            let bw = || {
                fastest(|| {
                    timed_n(RUNS, || {
                        run_ok(Command::new(&bwrap).args([
                            "--ro-bind",
                            "/",
                            "/",
                            STATIC_TRUE,
                            "true",
                        ]))
                    })
                })
            };
            rows.push(Pairs::measure(bw, ours)?.row(
                "sandbox-agent run vs bwrap".into(),
                "ms",
                "bwrap --ro-bind / / true",
            ));
        }
        None => println!("bench: bwrap is not installed: no bubblewrap comparison"),
    }
    daemon.stop_and_clean(agent)?;
    Ok(rows)
}
