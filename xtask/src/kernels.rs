//! The two Debian test kernels: resolved with apt once, downloaded and extracted into the cache.
//!
//! Layout: `$CACHE/kernels/<package>_<version>_amd64.deb`, the extracted package in
//! `$CACHE/kernels/<release>/`, and `$CACHE/kernels/resolved` mapping `6.1`/`6.12` to releases.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::apt::Apt;
use crate::cmd;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelVersion {
    /// Debian bookworm's kernel.
    #[value(name = "6.1")]
    V6_1,
    /// Debian bookworm-backports' kernel.
    #[value(name = "6.12")]
    V6_12,
}

impl KernelVersion {
    pub const ALL: [KernelVersion; 2] = [KernelVersion::V6_1, KernelVersion::V6_12];

    pub fn short(self) -> &'static str {
        match self {
            KernelVersion::V6_1 => "6.1",
            KernelVersion::V6_12 => "6.12",
        }
    }

    fn suite(self) -> Option<&'static str> {
        match self {
            KernelVersion::V6_1 => None,
            KernelVersion::V6_12 => Some("bookworm-backports"),
        }
    }
}

/// An extracted kernel package.
pub struct Kernel {
    pub version: KernelVersion,
    /// `uname -r`, e.g. `6.12.95+deb12-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the extracted package.
    pub modules: PathBuf,
}

impl Kernel {
    fn at(dir: &Path, version: KernelVersion, release: &str) -> Kernel {
        Kernel {
            version,
            release: release.to_owned(),
            vmlinuz: dir.join(format!("boot/vmlinuz-{release}")),
            modules: dir.join(format!("lib/modules/{release}")),
        }
    }

    fn is_complete(&self) -> bool {
        self.vmlinuz.is_file() && self.modules.is_dir()
    }
}

/// Returns kernel `v`, downloading and extracting it into `cache` if needed.
pub fn ensure(cache: &Path, apt: &mut Apt, v: KernelVersion) -> Result<Kernel> {
    let dir = cache.join("kernels");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let state = dir.join("resolved");
    if let Some(release) = read_state(&state, v)? {
        let k = Kernel::at(&dir.join(&release), v, &release);
        if k.is_complete() {
            eprintln!("[setup] kernel {} present ({release})", v.short());
            return Ok(k);
        }
        if let Some(deb) = find_deb(&dir, &release)? {
            extract(&deb, &dir, &release)?;
            return Ok(Kernel::at(&dir.join(&release), v, &release));
        }
    }
    // Resolve afresh: an older remembered package may no longer be downloadable.
    if v.suite().is_some() {
        apt.ensure_backports()?;
    }
    eprintln!("[setup] resolving the {} kernel package", v.short());
    let package = apt.kernel_package(v.suite())?;
    let Some(release) = package.strip_prefix("linux-image-").map(str::to_owned) else {
        bail!("unexpected kernel package name {package}");
    };
    let k = Kernel::at(&dir.join(&release), v, &release);
    if !k.is_complete() {
        let deb = match find_deb(&dir, &release)? {
            Some(deb) => deb,
            None => {
                apt.download(&package, &dir)?;
                find_deb(&dir, &release)?.with_context(|| {
                    format!(
                        "apt-get download {package} left no .deb in {}",
                        dir.display()
                    )
                })?
            }
        };
        extract(&deb, &dir, &release)?;
    }
    write_state(&state, v, &release)?;
    eprintln!("[setup] kernel {} ready ({release})", v.short());
    Ok(k)
}

fn find_deb(dir: &Path, release: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("linux-image-{release}_");
    // apt-get download escapes ':' in epochs as %3a; the release itself has none.
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    Ok(entries.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    }))
}

fn extract(deb: &Path, dir: &Path, release: &str) -> Result<()> {
    let partial = dir.join(format!("{release}.partial"));
    let target = dir.join(release);
    eprintln!("[setup] extracting {}", deb.display());
    for d in [&partial, &target] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    let (vmlinuz, modules) = (
        target.join(format!("boot/vmlinuz-{release}")),
        target.join(format!("lib/modules/{release}")),
    );
    if !vmlinuz.is_file() || !modules.is_dir() {
        bail!(
            "{} does not contain {} and {}",
            deb.display(),
            vmlinuz.display(),
            modules.display()
        );
    }
    Ok(())
}

fn read_state(state: &Path, v: KernelVersion) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", state.display())),
    };
    Ok(parse_state(&text, v.short()))
}

fn parse_state(text: &str, short: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, rel) = l.split_once('=')?;
        (k.trim() == short && !rel.trim().is_empty()).then(|| rel.trim().to_owned())
    })
}

fn write_state(state: &Path, v: KernelVersion, release: &str) -> Result<()> {
    let mut entries = Vec::new();
    for other in KernelVersion::ALL {
        if other == v {
            entries.push(format!("{}={release}\n", v.short()));
        } else if let Some(rel) = read_state(state, other)? {
            entries.push(format!("{}={rel}\n", other.short()));
        }
    }
    std::fs::write(state, entries.concat()).with_context(|| format!("writing {}", state.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lines() {
        let text = "6.1=6.1.0-56-amd64\n6.12=6.12.95+deb12-amd64\n";
        assert_eq!(parse_state(text, "6.1").as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(
            parse_state(text, "6.12").as_deref(),
            Some("6.12.95+deb12-amd64")
        );
        assert_eq!(parse_state("6.1=\n", "6.1"), None);
    }
}
