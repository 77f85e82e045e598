//! cgroup v2 paths: validation, ids, and transient cgroups for `run`.

use std::{
    fs::OpenOptions,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command},
};

/// Where cgroup v2 is mounted on every host we support.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {0} does not exist")]
    Missing(PathBuf),
    #[error("{0} is not a cgroup v2 directory (cgroup2 must be mounted at {CGROUP_ROOT})")]
    NotCgroup2(PathBuf),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The id of the cgroup at `path`: the kernel's cgroup id is the directory's inode number.
pub fn cgroup_id(path: &Path) -> Result<u64, CgroupError> {
    let md = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CgroupError::Missing(path.to_path_buf()),
        _ => CgroupError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if !md.is_dir() || !is_cgroup2(path)? {
        return Err(CgroupError::NotCgroup2(path.to_path_buf()));
    }
    Ok(md.ino())
}

/// The cgroup v2 directory a process belongs to, from `/proc/<pid>/cgroup` (`0::/path`).
pub fn cgroup_of_pid(pid: i32) -> io::Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| io::Error::other("no cgroup v2 entry in /proc/<pid>/cgroup"))?;
    Ok(Path::new(CGROUP_ROOT).join(rel.trim_start_matches('/')))
}

/// The cgroup directory whose id is `id`, searched below `root` (depth-first, bounded).
pub fn find_by_id(root: &Path, id: u64) -> Option<PathBuf> {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        // A cgroup removed during the search is simply not the one.
        let Ok(md) = std::fs::metadata(&dir) else {
            continue;
        };
        if md.ino() == id {
            return Some(dir);
        }
        if depth >= 64 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    None
}

fn is_cgroup2(path: &Path) -> Result<bool, CgroupError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| CgroupError::NotCgroup2(path.to_path_buf()))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated string and st a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(CgroupError::Io {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(st.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

/// A cgroup created for one `run`, removed on drop (after killing anything left in it).
pub struct TransientCgroup {
    path: PathBuf,
}

impl TransientCgroup {
    pub fn create(parent: &Path, name: &str) -> Result<Self, CgroupError> {
        cgroup_id(parent)?;
        let path = parent.join(name);
        std::fs::create_dir(&path).map_err(|source| CgroupError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends every process still in the cgroup (descendants that outlived the command), so that
    /// nothing confined keeps running once the policy is detached.
    pub fn kill_all(&self) -> io::Result<()> {
        for _ in 0..250 {
            let procs = match std::fs::read_to_string(self.path.join("cgroup.procs")) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            if procs.trim().is_empty() {
                return Ok(());
            }
            // cgroup.kill (5.14+) sends SIGKILL to the whole subtree at once.
            std::fs::write(self.path.join("cgroup.kill"), "1")?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "processes in {} survived SIGKILL",
            self.path.display()
        )))
    }

    /// Removes the (empty) cgroup.
    pub fn remove(&self) -> io::Result<()> {
        self.kill_all()?;
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

impl Drop for TransientCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("could not remove cgroup {}: {e}", self.path.display());
        }
    }
}

/// Starts `command` inside `cgroup`: the child moves itself into the cgroup between fork and
/// exec, so the program runs confined from its first instruction, and if the move fails the
/// program is never executed.
pub fn spawn_in_cgroup(command: &mut Command, cgroup: &Path) -> io::Result<Child> {
    let procs = OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))?;
    let procs_fd = procs.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // calls (write, signal) on a descriptor opened before the fork.
    unsafe {
        command.pre_exec(move || {
            // "0" moves the writing process itself.
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            // Undo the parent's SIG_IGN (inherited across exec) so Ctrl-C reaches the program.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = command.spawn();
    drop(procs);
    child
}
