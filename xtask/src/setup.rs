//! `cargo xtask setup`: idempotently install what the other commands need.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt::Apt;
use crate::kernels::{self, Kernel, KernelVersion};
use crate::{cmd, elf, paths};

pub const BUSYBOX: &str = "/bin/busybox";
const BPF_LINKER_VERSION: &str = "0.13.0";

pub struct Setup {
    pub cache: PathBuf,
    pub apt: Apt,
    /// Steps already checked in this run (commands call them more than once).
    tools_checked: bool,
    rust_checked: bool,
}

/// Runs every setup step (both kernels included).
pub fn run_all() -> Result<()> {
    let mut s = Setup::new()?;
    s.host_tools()?;
    s.rust_toolchain()?;
    for v in KernelVersion::ALL {
        s.kernel(v)?;
    }
    eprintln!("[setup] done (cache: {})", s.cache.display());
    Ok(())
}

impl Setup {
    pub fn new() -> Result<Self> {
        Ok(Self {
            cache: paths::cache_dir()?,
            apt: Apt::default(),
            tools_checked: false,
            rust_checked: false,
        })
    }

    /// qemu, a static busybox, cpio and xz, from Debian packages.
    pub fn host_tools(&mut self) -> Result<()> {
        if !self.tools_checked {
            self.check_host_tools()?;
            self.tools_checked = true;
        }
        Ok(())
    }

    fn check_host_tools(&mut self) -> Result<()> {
        for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
            if cmd::which(tool).is_none() {
                bail!("`{tool}` not found: the harness needs a Debian (bookworm) host");
            }
        }
        let mut missing = Vec::new();
        for (binary, package) in [
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("cpio", "cpio"),
            ("xz", "xz-utils"),
            // The enforcement suite's filesystem fixtures (mkfs.ext4 comes with e2fsprogs).
            ("mkfs.ext4", "e2fsprogs"),
            ("mkfs.xfs", "xfsprogs"),
            ("mkfs.btrfs", "btrfs-progs"),
            // The containers scenario (crun, conmon and the overlay storage driver come with it).
            ("podman", "podman"),
        ] {
            if cmd::which(binary).is_none() {
                missing.push(package);
            }
        }
        if !busybox_is_static() {
            missing.push("busybox-static");
        }
        if missing.is_empty() {
            eprintln!("[setup] host tools present (qemu, static busybox, cpio, xz, mkfs, podman)");
            return Ok(());
        }
        self.apt.install(&missing)?;
        if !busybox_is_static() {
            bail!("{BUSYBOX} is still not a static executable after installing busybox-static");
        }
        for binary in [
            "qemu-system-x86_64",
            "cpio",
            "xz",
            "mkfs.ext4",
            "mkfs.xfs",
            "mkfs.btrfs",
            "podman",
        ] {
            if cmd::which(binary).is_none() {
                bail!("`{binary}` is still not on PATH after apt-get install");
            }
        }
        Ok(())
    }

    /// Nightly's rust-src and a bpf-linker built against nightly's LLVM.
    pub fn rust_toolchain(&mut self) -> Result<()> {
        if !self.rust_checked {
            self.check_rust_toolchain()?;
            self.rust_checked = true;
        }
        Ok(())
    }

    fn check_rust_toolchain(&mut self) -> Result<()> {
        let sysroot = nightly_sysroot()?;
        if sysroot.join("lib/rustlib/src/rust/library").is_dir() {
            eprintln!("[setup] nightly rust-src present");
        } else {
            eprintln!("[setup] rustup component add rust-src --toolchain nightly");
            cmd::run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))?;
        }
        if bpf_linker_works() {
            eprintln!("[setup] bpf-linker present");
            return Ok(());
        }
        self.build_bpf_linker(&sysroot)?;
        if !bpf_linker_works() {
            bail!(
                "bpf-linker was built but `bpf-linker --version` still fails; \
                 run it by hand to see why (it was installed into {})",
                cargo_bin_dir()?.display()
            );
        }
        Ok(())
    }

    fn build_bpf_linker(&self, sysroot: &Path) -> Result<()> {
        let lib = sysroot.join("lib");
        let llvm = find_nightly_llvm(&lib)?;
        let Some(llvm_name) = llvm.file_name() else {
            bail!("{} has no file name", llvm.display());
        };
        let prefix = self.cache.join("llvm");
        let prefix_lib = prefix.join("lib");
        std::fs::create_dir_all(&prefix_lib)
            .with_context(|| format!("creating {}", prefix_lib.display()))?;
        for name in [OsString::from("libLLVM.so"), llvm_name.to_owned()] {
            replace_symlink(&llvm, &prefix_lib.join(name))?;
        }
        eprintln!(
            "[setup] building bpf-linker {BPF_LINKER_VERSION} against {} (takes a few minutes)",
            llvm.display()
        );
        cmd::run(
            Command::new("cargo")
                .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
                .args(["--no-default-features", "--features", "llvm-22"])
                // We only get here when the installed one (if any) does not run.
                .arg("--force")
                .env("LLVM_PREFIX", &prefix)
                .env_remove("LD_LIBRARY_PATH")
                .env("PATH", path_with_cargo_bin()?),
        )
    }

    /// The extracted test kernel `v`, downloading it if needed.
    pub fn kernel(&mut self, v: KernelVersion) -> Result<Kernel> {
        kernels::ensure(&self.cache, &mut self.apt, v)
    }
}

fn busybox_is_static() -> bool {
    elf::is_static(Path::new(BUSYBOX)).unwrap_or(false)
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = cmd::stdout(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("the nightly toolchain is required (for the eBPF build); it is not installed")?;
    Ok(PathBuf::from(out.trim()))
}

/// `libLLVM.so.22.1-rust-*-nightly` in nightly's lib directory.
fn find_nightly_llvm(lib: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(lib).with_context(|| format!("listing {}", lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.22.1-rust-") && n.ends_with("-nightly"))
        })
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM.so.22.1-rust-*-nightly in {}: bpf-linker 0.13 needs nightly's LLVM 22",
            lib.display()
        )
    })
}

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

/// `bpf-linker --version` runs (looking in cargo's bin directory too).
fn bpf_linker_works() -> bool {
    let Ok(path) = path_with_cargo_bin() else {
        return false;
    };
    cmd::succeeds(
        Command::new("bpf-linker")
            .arg("--version")
            .env("PATH", path),
    )
}

/// `$CARGO_HOME/bin` (default `~/.cargo/bin`), where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home).join("bin"));
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".cargo/bin")),
        _ => bail!("neither CARGO_HOME nor HOME is set: cannot find cargo's bin directory"),
    }
}

/// `PATH` with cargo's bin directory appended if it is not there (so bpf-linker is found).
pub fn path_with_cargo_bin() -> Result<OsString> {
    let bin = cargo_bin_dir()?;
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if !dirs.contains(&bin) {
        dirs.push(bin);
    }
    std::env::join_paths(dirs).context("PATH contains a directory with ':' in its name")
}
