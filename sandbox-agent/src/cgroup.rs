//! cgroup v2 paths: validation, ids, and transient cgroups for `run`.

use std::{
    collections::BTreeSet,
    fs::OpenOptions,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command},
};

/// Where cgroup v2 is mounted on every host we support.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Parent of the transient cgroups of `run`, below [`CGROUP_ROOT`].
pub const RUN_CGROUP_PARENT: &str = "sandbox-agent";

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
    // A cgroup removed during the search is simply not the one.
    subtree(root)
        .into_iter()
        .find(|dir| std::fs::metadata(dir).is_ok_and(|md| md.ino() == id))
}

/// `root` and every directory below it, depth-first, at most 64 levels down (cgroup v2 nests
/// no deeper in practice); directories that vanish while listed are left out.
pub fn subtree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth < 64 {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.filter_map(Result::ok) {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), depth + 1));
                    }
                }
            }
        }
        out.push(dir);
    }
    out
}

/// The processes in `cgroup` and its descendants (`cgroup.procs` of each); the cgroups whose
/// list cannot be read go to `unreadable`.
pub fn processes_below(cgroup: &Path, unreadable: &mut Vec<(PathBuf, io::Error)>) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for dir in subtree(cgroup) {
        match std::fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
            // Removed while we looked: nothing in it to confine.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => unreadable.push((dir, e)),
        }
    }
    pids
}

fn is_cgroup2(path: &Path) -> Result<bool, CgroupError> {
    let magic = crate::identity::fs_magic(path).map_err(|source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(magic as i64 == CGROUP2_SUPER_MAGIC)
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

    /// Creates the cgroup `name` under [`RUN_CGROUP_PARENT`] (made first when missing).
    pub fn create_for_run(name: &str) -> Result<Self, CgroupError> {
        let parent = Path::new(CGROUP_ROOT).join(RUN_CGROUP_PARENT);
        match std::fs::create_dir(&parent) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(CgroupError::Io {
                    path: parent,
                    source: e,
                })
            }
            _ => {}
        }
        Self::create(&parent, name)
    }

    /// Takes charge of an existing cgroup (to end it).
    pub fn existing(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the cgroup: it is no longer removed on drop.
    pub fn keep(self) -> PathBuf {
        let this = std::mem::ManuallyDrop::new(self);
        this.path.clone()
    }

    /// Moves process `pid` (its whole thread group) into the cgroup.
    pub fn add_process(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
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

/// Whether any process is left in the cgroup at `path` or below (`cgroup.events`); a cgroup
/// that no longer exists is empty.
pub fn is_populated(path: &Path) -> io::Result<bool> {
    match std::fs::read_to_string(path.join("cgroup.events")) {
        Ok(text) => Ok(parse_populated(&text).unwrap_or(true)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `populated` field of a `cgroup.events` text; None when it is missing or malformed.
fn parse_populated(events: &str) -> Option<bool> {
    events
        .lines()
        .find_map(|l| l.strip_prefix("populated "))
        .and_then(|v| match v.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populated_is_read_from_cgroup_events() {
        assert_eq!(parse_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated("frozen 0\n"), None);
        assert_eq!(parse_populated("populated yes\n"), None);
    }
}
