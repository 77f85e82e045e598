//! cgroup v2 paths: validation, ids, and transient cgroups for `run`.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
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

    /// Kills every process left in the cgroup and removes it.
    pub fn remove(&self) -> io::Result<()> {
        for _ in 0..100 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // Descendants outlived the command: cgroup.kill (5.14+) ends them all.
                    let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
        std::fs::remove_dir(&self.path)
    }
}

impl Drop for TransientCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("could not remove cgroup {}: {e}", self.path.display());
        }
    }
}
