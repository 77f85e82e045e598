//! The guest's initramfs: static busybox, `/init` and the kernel modules the guest needs.
//! Cached per kernel release in `$CACHE/initramfs/`, rebuilt when any input changes.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::kernels::Kernel;
use crate::modules::{self, Module};
use crate::setup::BUSYBOX;
use crate::{cmd, elf};

const INIT_TEMPLATE: &str = include_str!("guest/init.sh");

/// Returns the path of an up-to-date initramfs for `kernel`, building it if needed.
pub fn ensure(cache: &Path, kernel: &Kernel) -> Result<PathBuf> {
    let dir = cache.join("initramfs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cpio = dir.join(format!("{}.cpio", kernel.release));
    let stamp_path = dir.join(format!("{}.stamp", kernel.release));

    let mods = modules::resolve(&kernel.modules, modules::WANTED)
        .with_context(|| format!("resolving modules of kernel {}", kernel.release))?;
    let init = init_script(&mods);
    let stamp = fingerprint(&init, &mods)?;
    if cpio.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        eprintln!("[initramfs] {} up to date", cpio.display());
        return Ok(cpio);
    }
    eprintln!(
        "[initramfs] building {} (modules: {})",
        cpio.display(),
        mods.iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let staging = dir.join(format!("{}.staging", kernel.release));
    stage(&staging, &init, &mods)?;
    let tmp = dir.join(format!("{}.cpio.tmp", kernel.release));
    write_cpio(&staging, &tmp)?;
    std::fs::rename(&tmp, &cpio).with_context(|| format!("renaming to {}", cpio.display()))?;
    std::fs::write(&stamp_path, stamp)
        .with_context(|| format!("writing {}", stamp_path.display()))?;
    std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(cpio)
}

fn init_script(mods: &[Module]) -> String {
    let lines: Vec<String> = mods
        .iter()
        .map(|m| format!("step insmod /lib/modules/{}.ko", m.name))
        .collect();
    INIT_TEMPLATE.replace("@MODULES@", &lines.join("\n"))
}

/// Everything the image depends on: the init script, busybox and each module file's identity.
fn fingerprint(init: &str, mods: &[Module]) -> Result<String> {
    let mut s = format!("xtask {}\n{init}\n", env!("CARGO_PKG_VERSION"));
    let files = std::iter::once(Path::new(BUSYBOX)).chain(mods.iter().map(|m| m.path.as_path()));
    for path in files {
        let m =
            std::fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
        s.push_str(&format!(
            "{} {} {} {}\n",
            path.display(),
            m.len(),
            m.mtime(),
            m.ino()
        ));
    }
    Ok(s)
}

fn stage(root: &Path, init: &str, mods: &[Module]) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    for d in ["bin", "dev", "proc", "sys", "host", "tmp", "lib/modules"] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    }
    if !elf::is_static(Path::new(BUSYBOX))? {
        bail!("{BUSYBOX} is dynamically linked; install busybox-static (`cargo xtask setup`)");
    }
    let busybox = root.join("bin/busybox");
    std::fs::copy(BUSYBOX, &busybox)
        .with_context(|| format!("copying {BUSYBOX} to {}", busybox.display()))?;
    std::os::unix::fs::symlink("busybox", root.join("bin/sh"))
        .with_context(|| format!("creating {}/bin/sh", root.display()))?;
    let init_path = root.join("init");
    std::fs::write(&init_path, init).with_context(|| format!("writing {}", init_path.display()))?;
    std::fs::set_permissions(&init_path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", init_path.display()))?;
    for m in mods {
        let p = root.join(format!("lib/modules/{}.ko", m.name));
        std::fs::write(&p, &m.bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Relative paths of everything under `root`, each directory before its contents.
fn list_tree(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut children: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .map(|e| e.map(|e| rel.join(e.file_name())))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", dir.display()))?;
        children.sort();
        for child in children.into_iter().rev() {
            let meta = root
                .join(&child)
                .symlink_metadata()
                .with_context(|| format!("inspecting {}", child.display()))?;
            if meta.is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    Ok(out)
}

fn write_cpio(root: &Path, out: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut list = Vec::new();
    for p in list_tree(root)? {
        list.extend_from_slice(p.as_os_str().as_bytes());
        list.push(b'\n');
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut c = Command::new("cpio");
    c.args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(file);
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::describe(&c)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&list)
            .context("writing the file list to cpio")?;
    }
    let status = child.wait().context("waiting for cpio")?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd::describe(&c));
    }
    Ok(())
}
