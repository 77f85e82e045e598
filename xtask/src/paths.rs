//! Where things live: the repository, cargo's target directory, the download cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// The workspace root (the parent of this crate's manifest directory).
pub fn repo_root() -> Result<PathBuf> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest
        .parent()
        .with_context(|| format!("{} has no parent directory", manifest.display()))?;
    root.canonicalize()
        .with_context(|| format!("repository root {} is not accessible", root.display()))
}

/// Cargo's target directory for this workspace (honours CARGO_TARGET_DIR and config).
pub fn target_dir(repo: &Path) -> Result<PathBuf> {
    let out = cmd::stdout(
        Command::new("cargo")
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(repo),
    )?;
    let meta: serde_json::Value =
        serde_json::from_str(&out).context("parsing `cargo metadata` output")?;
    let Some(dir) = meta.get("target_directory").and_then(|v| v.as_str()) else {
        bail!("`cargo metadata` output has no target_directory");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    PathBuf::from(dir)
        .canonicalize()
        .with_context(|| format!("target directory {dir} is not accessible"))
}

/// Where release builds of the host's binaries go: `target/<host triple>/release`, since
/// .cargo/config.toml names the host's target (to link them statically).
/// The host triple is the one xtask itself runs as (a Linux gnu target: the only kind the
/// project builds for).
pub fn release_dir(target: &Path) -> PathBuf {
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    target.join(host).join("release")
}

/// `$SANDBOX_AGENT_CACHE`, else `$HOME/.cache/sandbox-agent`; created if missing.
pub fn cache_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("SANDBOX_AGENT_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".cache/sandbox-agent"),
            _ => bail!("neither SANDBOX_AGENT_CACHE nor HOME is set: cannot place the cache"),
        },
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating cache {}", dir.display()))?;
    Ok(dir)
}

/// Directories the guest covers with fresh mounts, so host files under them are invisible there.
const HIDDEN_IN_GUEST: &[&str] = &["/tmp", "/run", "/root", "/proc", "/sys", "/dev"];

/// Fails unless `path` (absolute, canonical) is visible at the same path inside the guest.
pub fn check_visible_in_guest(path: &Path, what: &str) -> Result<()> {
    if let Some(hidden) = HIDDEN_IN_GUEST.iter().find(|h| path.starts_with(h)) {
        bail!(
            "{what} {} is under {hidden}, which the VM guest covers with its own mount; \
             move it (e.g. set CARGO_TARGET_DIR) to a directory outside {}",
            path.display(),
            HIDDEN_IN_GUEST.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_visibility() {
        assert!(check_visible_in_guest(Path::new("/work/main/target"), "t").is_ok());
        assert!(check_visible_in_guest(Path::new("/root/x/target"), "t").is_err());
        assert!(check_visible_in_guest(Path::new("/tmpfoo/target"), "t").is_ok());
    }
}
