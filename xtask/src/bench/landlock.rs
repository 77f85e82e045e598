//! A Landlock ruleset restricting file reads, for the side-by-side comparison: Landlock is the
//! kernel's own path-walking LSM, the natural peer of our inode walk.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Result};

const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_ACCESS_FS_READ_FILE: u64 = 1 << 2;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Restricts this process: reading files is allowed beneath each of `paths` only. Landlock
/// cannot deny one file inside an allowed tree, so the equivalent of "N denied files" is a
/// ruleset of N rules that the kernel consults on every open.
pub fn restrict_reads_to(paths: &[&Path]) -> Result<()> {
    let attr = RulesetAttr {
        handled_access_fs: LANDLOCK_ACCESS_FS_READ_FILE,
    };
    // SAFETY: the documented landlock_create_ruleset(attr, size, flags) call.
    let ruleset = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    } as i32;
    if ruleset < 0 {
        bail!(
            "landlock_create_ruleset: {}",
            std::io::Error::last_os_error()
        );
    }
    for path in paths {
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: a valid path; O_PATH opens without read access.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            bail!(
                "open {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        let rule = PathBeneathAttr {
            allowed_access: LANDLOCK_ACCESS_FS_READ_FILE,
            parent_fd: fd,
        };
        // SAFETY: the documented landlock_add_rule(ruleset, type, attr, flags) call.
        let r = unsafe {
            libc::syscall(
                SYS_LANDLOCK_ADD_RULE,
                ruleset,
                LANDLOCK_RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        if r < 0 {
            bail!(
                "landlock_add_rule {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    // SAFETY: plain prctl and syscall; no_new_privs is required by Landlock for non-root.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0u32) < 0 {
            bail!(
                "landlock_restrict_self: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}
