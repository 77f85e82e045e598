//! Canonical file identity: (kernel dev_t, inode number), as the BPF programs see it.

use std::{io, os::unix::fs::MetadataExt, path::Path};

/// A file's identity in the kernel's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FileId {
    /// `i_sb->s_dev` in the kernel's encoding (`major << 20 | minor`).
    pub dev: u32,
    pub ino: u64,
}

/// Converts a userspace `st_dev` (glibc's encoding) to the kernel's internal `dev_t`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xfffff)
}

/// Identity of what `path` resolves to (following symlinks, as an open would).
pub fn file_id(path: &Path) -> io::Result<FileId> {
    let md = std::fs::metadata(path)?;
    Ok(FileId {
        dev: kernel_dev(md.dev()),
        ino: md.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_dev_to_kernel_dev() {
        // 8:1 (sda1) and 0:45 (an anonymous tmpfs device).
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(0, 45)), 45);
        // Large minors are split across both halves of glibc's encoding.
        assert_eq!(kernel_dev(libc::makedev(259, 70000)), (259 << 20) | 70000);
    }

    #[test]
    fn hardlinks_share_an_identity_and_copies_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x").unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        std::fs::copy(&a, dir.path().join("c")).unwrap();
        std::os::unix::fs::symlink(&a, dir.path().join("s")).unwrap();
        let id = file_id(&a).unwrap();
        assert_eq!(file_id(&dir.path().join("b")).unwrap(), id);
        assert_eq!(file_id(&dir.path().join("s")).unwrap(), id);
        assert_ne!(file_id(&dir.path().join("c")).unwrap(), id);
    }
}
