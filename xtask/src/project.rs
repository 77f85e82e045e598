//! Building the project itself: the sandbox-agent binary, unit tests, the enforcement suite.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{cmd, setup};

/// Set to 1 to skip `cargo build` (use whatever sandbox-agent binary is in the release directory).
pub const SKIP_BUILD_ENV: &str = "SANDBOX_AGENT_SKIP_BUILD";

fn cargo(repo: &Path) -> Result<Command> {
    let mut c = Command::new("cargo");
    c.current_dir(repo)
        .env("PATH", setup::path_with_cargo_bin()?);
    Ok(c)
}

pub fn skip_build() -> bool {
    std::env::var_os(SKIP_BUILD_ENV).is_some_and(|v| v == "1")
}

/// `cargo build --release -p sandbox-agent` (unless SANDBOX_AGENT_SKIP_BUILD=1).
pub fn build_agent(repo: &Path) -> Result<()> {
    if skip_build() {
        eprintln!("[build] {SKIP_BUILD_ENV}=1: not building sandbox-agent");
        return Ok(());
    }
    eprintln!("[build] cargo build --release -p sandbox-agent");
    cmd::run(cargo(repo)?.args(["build", "--release", "-p", "sandbox-agent"]))
}

/// This checkout's agent binary, built for running on this host: the toolchain set up and
/// `cargo build` first, unless SANDBOX_AGENT_SKIP_BUILD=1. (repository, target dir, binary).
pub fn built_for_host(setup: &mut setup::Setup) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let repo = crate::paths::repo_root()?;
    let target = crate::paths::target_dir(&repo)?;
    if !skip_build() {
        setup.rust_toolchain()?;
    }
    build_agent(&repo)?;
    let agent = agent_binary(&target)?;
    Ok((repo, target, agent))
}

/// The agent binary, which must exist.
pub fn agent_binary(target: &Path) -> Result<PathBuf> {
    let bin = crate::paths::release_dir(target).join("sandbox-agent");
    if !bin.is_file() {
        bail!(
            "{} does not exist; build it with `cargo build --release -p sandbox-agent`",
            bin.display()
        );
    }
    Ok(bin)
}

/// The unit tests of every crate but the eBPF one (which only builds for the BPF target).
pub fn unit_tests(repo: &Path) -> Result<()> {
    eprintln!("[test] cargo test --workspace --exclude sandbox-ebpf");
    cmd::run(cargo(repo)?.args(["test", "--workspace", "--exclude", "sandbox-ebpf"]))
        .context("unit tests failed")
}

/// Builds the enforcement suite and returns its test executable.
pub fn build_enforcement_tests(repo: &Path) -> Result<PathBuf> {
    let mut c = cargo(repo)?;
    c.args([
        "test",
        "--release",
        "-p",
        "sandbox-agent",
        "--test",
        "enforcement",
    ])
    .args(["--no-run", "--message-format=json"])
    .stdout(Stdio::piped());
    eprintln!("[build] {}", cmd::describe(&c));
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::describe(&c)))?;
    let stdout = child
        .stdout
        .take()
        .context("cargo's stdout was not captured")?;
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's JSON messages")?;
        if let Some(exe) = test_executable(&line, "enforcement") {
            executable = Some(exe);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd::describe(&c));
    }
    executable.context("cargo reported no test executable for the `enforcement` test target")
}

/// The `executable` of a compiler-artifact message for test target `name`.
fn test_executable(line: &str, name: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    if msg.pointer("/target/name")?.as_str()? != name || !msg.pointer("/profile/test")?.as_bool()? {
        return None;
    }
    msg.get("executable")?.as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_executable() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"enforcement","kind":["test"]},"profile":{"test":true},"executable":"/t/release/deps/enforcement-abc"}"#;
        assert_eq!(
            test_executable(line, "enforcement"),
            Some(PathBuf::from("/t/release/deps/enforcement-abc"))
        );
        let bin = r#"{"reason":"compiler-artifact","target":{"name":"sandbox-agent"},"profile":{"test":false},"executable":"/t/release/sandbox-agent"}"#;
        assert_eq!(test_executable(bin, "enforcement"), None);
        assert_eq!(test_executable("not json", "enforcement"), None);
    }
}
