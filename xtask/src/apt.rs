//! Debian's apt: `apt-get update` at most once per run, installs, look-ups, downloads.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";
const BACKPORTS_SOURCE: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    fn apt_get(&self) -> Command {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// Runs `apt-get update` unless it already ran in this process.
    pub fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        require_root("run apt-get update")?;
        eprintln!("[setup] apt-get update");
        cmd::run(self.apt_get().args(["update", "-q"]))?;
        self.updated = true;
        Ok(())
    }

    /// Installs Debian packages (after an update).
    pub fn install(&mut self, packages: &[&str]) -> Result<()> {
        require_root(&format!("install {}", packages.join(" ")))?;
        self.update()?;
        eprintln!("[setup] apt-get install {}", packages.join(" "));
        cmd::run(self.apt_get().args(["install", "-y", "-q"]).args(packages))
    }

    /// Adds bookworm-backports to apt's sources if no source lists it yet.
    pub fn ensure_backports(&mut self) -> Result<()> {
        if backports_configured()? {
            return Ok(());
        }
        require_root("add bookworm-backports to apt's sources")?;
        eprintln!("[setup] adding bookworm-backports to apt sources ({BACKPORTS_FILE})");
        std::fs::write(BACKPORTS_FILE, BACKPORTS_SOURCE)
            .with_context(|| format!("writing {BACKPORTS_FILE}"))?;
        // The package lists must be fetched again to see the new suite.
        self.updated = false;
        Ok(())
    }

    /// The package that `linux-image-amd64` depends on (from `suite`, or the default candidate).
    pub fn kernel_package(&mut self, suite: Option<&str>) -> Result<String> {
        self.update()?;
        let mut c = Command::new("apt-cache");
        c.arg("depends");
        if let Some(suite) = suite {
            c.args(["-t", suite]);
        }
        c.arg("linux-image-amd64");
        let out = cmd::stdout(&mut c)?;
        parse_image_dependency(&out).with_context(|| {
            format!(
                "`{}` printed no `Depends: linux-image-...` line:\n{out}",
                cmd::describe(&c)
            )
        })
    }

    /// Downloads the .deb of `package` into `dir`.
    pub fn download(&mut self, package: &str, dir: &Path) -> Result<()> {
        self.update()?;
        eprintln!("[setup] apt-get download {package}");
        cmd::run(
            self.apt_get()
                .args(["download", "-q", package])
                .current_dir(dir),
        )
    }
}

fn parse_image_dependency(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
}

fn backports_configured() -> Result<bool> {
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "list" || e == "sources") {
                files.push(p);
            }
        }
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let listed = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.split_whitespace().any(|w| w == "bookworm-backports"));
        if listed {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("need root to {what}; run `cargo xtask setup` as root (or do it by hand)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_line() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_image_dependency(out).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_image_dependency("linux-image-amd64\n"), None);
    }
}
