//! Kernel modules for the initramfs: find them, read their `.modinfo` dependencies (there is no
//! depmod/modinfo on the host), and order them so each one follows what it depends on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// Modules the guest needs: virtio transport, the 9p root share, overlayfs and veth for tests,
/// and loop devices with the filesystems agents' homes really live on (ext4, xfs, btrfs).
pub const WANTED: &[&str] = &[
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "veth",
    "loop",
    // libcrc32c (xfs, btrfs) asks the crypto API for crc32c when it loads: a soft dependency
    // that .modinfo's `depends=` does not list.
    "crc32c_generic",
    "ext4",
    "xfs",
    "btrfs",
];

/// A module file to insmod.
pub struct Module {
    pub name: String,
    pub path: PathBuf,
    /// The uncompressed `.ko` contents.
    pub bytes: Vec<u8>,
}

/// Modules to load, dependencies first; built-in ones are left out.
pub fn resolve(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<Module>> {
    let files = index(modules_dir)?;
    let builtin = read_builtin(modules_dir)?;
    let mut r = Resolver {
        files: &files,
        builtin: builtin.as_ref(),
        done: HashSet::new(),
        visiting: Vec::new(),
        order: Vec::new(),
    };
    for name in wanted {
        r.visit(&normalize(name))?;
    }
    Ok(r.order)
}

struct Resolver<'a> {
    files: &'a HashMap<String, PathBuf>,
    builtin: Option<&'a HashSet<String>>,
    done: HashSet<String>,
    visiting: Vec<String>,
    order: Vec<Module>,
}

impl Resolver<'_> {
    fn visit(&mut self, name: &str) -> Result<()> {
        if self.done.contains(name) {
            return Ok(());
        }
        if self.visiting.iter().any(|v| v == name) {
            bail!(
                "module dependency cycle: {} -> {name}",
                self.visiting.join(" -> ")
            );
        }
        let Some(path) = self.files.get(name) else {
            if self.builtin.is_some_and(|b| !b.contains(name)) {
                bail!("module {name} is neither a module file nor listed in modules.builtin");
            }
            self.done.insert(name.to_owned());
            return Ok(());
        };
        let bytes = read_module(path)?;
        self.visiting.push(name.to_owned());
        for dep in depends(&bytes) {
            self.visit(&dep)?;
        }
        self.visiting.pop();
        self.done.insert(name.to_owned());
        self.order.push(Module {
            name: name.to_owned(),
            path: path.clone(),
            bytes,
        });
        Ok(())
    }
}

/// Module names use `_` and `-` interchangeably; we key on `_`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name -> file, for every `.ko`/`.ko.xz` under `modules_dir`.
fn index(modules_dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    let mut stack = vec![modules_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .with_context(|| format!("inspecting {}", path.display()))?;
            if ty.is_dir() {
                stack.push(path);
            } else if let Some(name) = module_name(&path) {
                out.entry(name).or_insert(path);
            }
        }
    }
    Ok(out)
}

fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.xz"))?;
    Some(normalize(stem))
}

/// Names from `modules.builtin`, or `None` if the package has no such file.
fn read_builtin(modules_dir: &Path) -> Result<Option<HashSet<String>>> {
    let path = modules_dir.join("modules.builtin");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(Some(
        text.lines()
            .filter_map(|l| module_name(Path::new(l.trim())))
            .collect(),
    ))
}

/// The uncompressed module: `.ko` as is, `.ko.xz` through `xz -dc`.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "xz") {
        let mut c = Command::new("xz");
        c.arg("-dc").arg(path);
        let out = c
            .output()
            .with_context(|| format!("could not start `{}`", cmd::describe(&c)))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                cmd::describe(&c),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The `depends=a,b,c` entry of a module's `.modinfo` (NUL-separated `key=value` strings).
fn depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &ko[start + KEY.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(normalize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_depends() {
        let ko = b"junk\0license=GPL\0depends=9pnet,netfs\0intree=Y\0";
        assert_eq!(depends(ko), ["9pnet", "netfs"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"no modinfo").is_empty());
    }

    #[test]
    fn names() {
        assert_eq!(
            module_name(Path::new("a/9pnet_virtio.ko.xz")).as_deref(),
            Some("9pnet_virtio")
        );
        assert_eq!(
            module_name(Path::new("kernel/x/snd-hda.ko")).as_deref(),
            Some("snd_hda")
        );
        assert_eq!(module_name(Path::new("modules.order")), None);
    }

    fn fake_module(dir: &Path, name: &str, deps: &str) {
        let body = format!("\x7fELF...\0name={name}\0depends={deps}\0");
        std::fs::write(dir.join(format!("{name}.ko")), body).unwrap();
    }

    #[test]
    fn orders_dependencies_first() {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel/fs")).unwrap();
        fake_module(&dir.join("kernel/fs"), "9p", "9pnet,netfs");
        fake_module(&dir, "9pnet", "");
        fake_module(&dir, "netfs", "");
        fake_module(&dir, "overlay", "");
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/drivers/virtio_pci.ko\n",
        )
        .unwrap();
        let order: Vec<String> = resolve(&dir, &["virtio_pci", "9p", "overlay"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(order, ["9pnet", "netfs", "9p", "overlay"]);
        assert!(resolve(&dir, &["nonexistent"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
