//! Does this kernel support BPF LSM enforcement? Checked the same way by `doctor` and by the
//! daemon before it claims to enforce anything.

use std::path::Path;

pub const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// What is missing, with how to fix it. Each message is meant to be shown as is.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("must run as root (BPF LSM programs need CAP_BPF, CAP_SYS_ADMIN and CAP_MAC_ADMIN)")]
    NotRoot,
    #[error(
        "{LSM_LIST} is not readable ({0}): mount securityfs (`mount -t securityfs securityfs /sys/kernel/security`)"
    )]
    NoSecurityfs(std::io::Error),
    #[error(
        "the BPF LSM is not active (active LSMs: {0}); add `bpf` to the kernel's lsm= boot parameter, e.g. lsm={0},bpf, and reboot (needs CONFIG_BPF_LSM=y)"
    )]
    BpfLsmInactive(String),
    #[error("{0}")]
    Offsets(#[from] crate::kernel_offsets::OffsetError),
    #[error(
        "the kernel refused to load the BPF LSM program {program}: {detail}. This happens when the kernel is locked down or forbids trampoline programs (BPF LSM, fentry); run on a kernel that allows BPF LSM programs: `lsm=` must include bpf and lockdown must not block BPF (`sandbox-agent doctor` checks both)."
    )]
    ProgramRefused { program: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// The active LSMs, in boot order.
pub fn active_lsms() -> Result<Vec<String>, SupportError> {
    let text = std::fs::read_to_string(LSM_LIST).map_err(SupportError::NoSecurityfs)?;
    Ok(text
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// Checks that can be made without loading anything.
pub fn static_checks() -> Result<(), SupportError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SupportError::NotRoot);
    }
    mount_if_missing("securityfs", "/sys/kernel/security", SECURITYFS_MAGIC);
    mount_if_missing("bpf", "/sys/fs/bpf", BPF_FS_MAGIC);
    let lsms = active_lsms()?;
    if !lsms.iter().any(|l| l == "bpf") {
        return Err(SupportError::BpfLsmInactive(lsms.join(",")));
    }
    if !Path::new(crate::kernel_offsets::VMLINUX_BTF).exists() {
        return Err(SupportError::Other(format!(
            "{} is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y",
            crate::kernel_offsets::VMLINUX_BTF
        )));
    }
    crate::kernel_offsets::from_running_kernel()?;
    Ok(())
}

const SECURITYFS_MAGIC: i64 = 0x7363_6673;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts a kernel pseudo-filesystem that init systems usually mount but minimal hosts and
/// containers may not. Failure is left to the checks that follow, which explain it.
fn mount_if_missing(fstype: &str, target: &str, magic: i64) {
    let mounted = crate::identity::fs_magic(std::path::Path::new(target))
        .is_ok_and(|found| found as i64 == magic);
    if mounted {
        return;
    }
    let Ok(c_target) = std::ffi::CString::new(target) else {
        return;
    };
    let Ok(c_type) = std::ffi::CString::new(fstype) else {
        return;
    };
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c_type.as_ptr(),
            c_target.as_ptr(),
            c_type.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        tracing::info!("mounted {fstype} on {target}");
    }
}
