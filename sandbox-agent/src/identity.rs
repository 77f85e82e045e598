//! Canonical file identity: (kernel dev_t, inode number), exactly as the BPF programs see it.
//!
//! `stat`'s `st_dev` is not always the device the kernel compares: btrfs reports the
//! subvolume's anonymous device, overlayfs a per-layer pseudo device for files when its layers
//! sit on different filesystems. So the device comes from the kernel's own mount table: the
//! descriptor's mount id (`/proc/self/fdinfo`) joined to `/proc/self/mountinfo`, whose
//! `major:minor` is the superblock's `s_dev`. On btrfs, where inode numbers repeat across the
//! subvolumes of one superblock, the programs key on the subvolume's anonymous device instead
//! (they read it from the inode, see `sandbox-ebpf/src/kernel.rs`), which is what `st_dev` is
//! there. A filesystem whose `st_dev` is neither is refused: a rule on it could never match.

use std::{
    cell::RefCell,
    collections::HashMap,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::Path,
    time::{Duration, Instant},
};

/// `path` for a libc call; a path with a NUL byte in it is invalid input.
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The magic number of the filesystem `path` is on (`statfs`'s `f_type`), following symlinks.
pub fn fs_magic(path: &Path) -> io::Result<u64> {
    let c = c_path(path)?;
    // SAFETY: a zeroed statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated string and st a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is signed on some targets: magics with the top bit set must not be sign-extended.
    Ok(st.f_type as u32 as u64)
}

/// A file's identity in the kernel's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FileId {
    /// The device the programs key rules on, in the kernel's encoding (`major << 20 | minor`):
    /// `i_sb->s_dev`, or on btrfs the subvolume's anonymous device.
    pub dev: u32,
    pub ino: u64,
    /// `i_sb->s_dev`: the filesystem, whatever the subvolume.
    pub sb_dev: u32,
    /// The file is on btrfs (its `dev` is a subvolume's).
    pub btrfs: bool,
}

/// Converts a userspace `st_dev` (glibc's encoding) to the kernel's internal `dev_t`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xfffff)
}

/// Identity of what `path` resolves to (following symlinks, as an open would).
pub fn file_id(path: &Path) -> io::Result<FileId> {
    file_stat(path).map(|s| s.id)
}

/// A file's identity and whether it is a directory, read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub id: FileId,
    pub is_dir: bool,
    /// Only `entry_stat` can see one: `file_stat` follows symlinks.
    pub is_symlink: bool,
}

/// Whether a stat follows a symlink at the end of the path (as an open does) or reports the
/// symlink itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follow {
    Yes,
    No,
}

/// What one stat of a file says, before the mount table is consulted.
struct Raw {
    st_dev: u32,
    ino: u64,
    is_dir: bool,
    is_symlink: bool,
    mnt_id: u64,
}

/// Identity and type of what `path` resolves to (following symlinks, as an open would): one
/// `statx` that reports the mount id too (Linux 5.8+); older kernels take an `O_PATH`
/// descriptor and its `fdinfo`. Compiling a policy stats every rule's file: six system calls
/// each instead of one made a 10,000-rule attach take seconds.
pub fn file_stat(path: &Path) -> io::Result<FileStat> {
    stat_as_kernel_keys(path, Follow::Yes)
}

/// Like `file_stat` of the entry `path` names itself: a symlink there is reported, not followed.
pub fn entry_stat(path: &Path) -> io::Result<FileStat> {
    stat_as_kernel_keys(path, Follow::No)
}

fn stat_as_kernel_keys(path: &Path, follow: Follow) -> io::Result<FileStat> {
    let raw = match statx_with_mount(path, follow)? {
        Some(raw) => raw,
        None => via_fdinfo(path, follow)?,
    };
    let mount = match mount(raw.mnt_id, raw.st_dev) {
        Err(e) => namespace_mount(path, raw.mnt_id).ok_or(e)?,
        found => found?,
    };
    let dev = match mount.fstype.as_str() {
        _ if raw.st_dev == mount.sb_dev => raw.st_dev,
        "btrfs" => raw.st_dev,
        // Non-directories on an overlay whose layers are on different filesystems report a
        // pseudo device per layer; the kernel sees the overlay's own superblock, and the
        // overlay inode's number is the one reported.
        "overlay" => mount.sb_dev,
        other => {
            return Err(io::Error::other(format!(
                "the identity of {} cannot be established: it is on a {other} filesystem \
                 whose reported device ({}:{}) is not its superblock's ({}:{}), so a rule on it \
                 could never match",
                path.display(),
                raw.st_dev >> 20,
                raw.st_dev & 0xfffff,
                mount.sb_dev >> 20,
                mount.sb_dev & 0xfffff
            )))
        }
    };
    let id = FileId {
        dev,
        ino: raw.ino,
        sb_dev: mount.sb_dev,
        btrfs: mount.fstype == "btrfs",
    };
    Ok(FileStat {
        id,
        is_dir: raw.is_dir,
        is_symlink: raw.is_symlink,
    })
}

/// `statx` of `path` with its mount id; None where the kernel does not report one (or has no
/// `statx`).
fn statx_with_mount(path: &Path, follow: Follow) -> io::Result<Option<Raw>> {
    let c = c_path(path)?;
    // SAFETY: a zeroed statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID;
    let flags = match follow {
        Follow::Yes => 0,
        Follow::No => libc::AT_SYMLINK_NOFOLLOW,
    };
    // SAFETY: c is a valid NUL-terminated string and stx a valid out-pointer.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, mask, &mut stx) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) => Ok(None),
            _ => Err(e),
        };
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Ok(None);
    }
    Ok(Some(Raw {
        st_dev: (stx.stx_dev_major << 20) | (stx.stx_dev_minor & 0xfffff),
        ino: stx.stx_ino,
        is_dir: u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFDIR,
        is_symlink: u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFLNK,
        mnt_id: stx.stx_mnt_id,
    }))
}

/// The same through an `O_PATH` descriptor: `fstat`, then its mount id from `fdinfo`.
fn via_fdinfo(path: &Path, follow: Follow) -> io::Result<Raw> {
    let nofollow = match follow {
        Follow::Yes => 0,
        // With O_PATH, a descriptor of the symlink itself.
        Follow::No => libc::O_NOFOLLOW,
    };
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC | nofollow)
        .open(path)?
        .into();
    let file = std::fs::File::from(fd);
    let md = file.metadata()?;
    Ok(Raw {
        st_dev: kernel_dev(md.dev()),
        ino: md.ino(),
        is_dir: md.is_dir(),
        is_symlink: md.file_type().is_symlink(),
        mnt_id: mount_id(file.as_raw_fd())?,
    })
}

/// The mount id of an open descriptor, from `/proc/self/fdinfo` (there since Linux 3.15).
fn mount_id(fd: i32) -> io::Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("/proc/self/fdinfo has no mnt_id"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount {
    sb_dev: u32,
    fstype: String,
}

thread_local! {
    /// The mount table by mount id, read at most once a second while every lookup agrees
    /// with it: compiling 10,000 rules should not read it 10,000 times.
    static MOUNTS: RefCell<Option<(Instant, HashMap<u64, Mount>)>> = const { RefCell::new(None) };
}

/// Remembers the mount table `text`: a compile recorded for reuse (`policy::watch`) must use
/// the table it read after it started watching it, not one read before.
pub fn remember_mounts(text: &str) {
    MOUNTS.set(Some((Instant::now(), parse_mountinfo(text))));
}

/// The mount `mnt_id`, from a fresh table whenever the cached one is old, lacks it, or
/// disagrees with the file (a mount id is reused once its mount is gone).
fn mount(mnt_id: u64, st_dev: u32) -> io::Result<Mount> {
    let cached = MOUNTS.with_borrow(|m| {
        m.as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < Duration::from_secs(1))
            .and_then(|(_, table)| table.get(&mnt_id).cloned())
    });
    // Where the devices differ by design, a fresh entry of the same type is trusted.
    let agrees = |m: &Mount| m.sb_dev == st_dev || matches!(m.fstype.as_str(), "btrfs" | "overlay");
    if let Some(m) = cached.filter(agrees) {
        return Ok(m);
    }
    let table = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo")?);
    let found = table.get(&mnt_id).cloned();
    MOUNTS.set(Some((Instant::now(), table)));
    found.ok_or_else(|| io::Error::other(format!("mount {mnt_id} is not in /proc/self/mountinfo")))
}

/// The mount `mnt_id` of a path reached through another process's root (`/proc/PID/root/...`,
/// a container's mounts), from that process's mount table: mount ids are the same in every
/// namespace, and the daemon's own table lists only its namespace's.
fn namespace_mount(path: &Path, mnt_id: u64) -> Option<Mount> {
    let mut names = path.components().skip(1);
    let (proc, pid, root) = (names.next()?, names.next()?, names.next()?);
    if proc.as_os_str() != "proc" || root.as_os_str() != "root" {
        return None;
    }
    let pid: u32 = pid.as_os_str().to_str()?.parse().ok()?;
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    parse_mountinfo(&table).remove(&mnt_id)
}

/// mount id -> (superblock device, filesystem type).
fn parse_mountinfo(text: &str) -> HashMap<u64, Mount> {
    crate::mounts::entries(text)
        .map(|m| {
            let mount = Mount {
                sb_dev: m.sb_dev,
                fstype: m.fstype,
            };
            (m.mount_id, mount)
        })
        .collect()
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

    /// Kernels before 5.8 take the descriptor route: it must name the same identity.
    #[test]
    fn statx_and_the_descriptor_route_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for (path, follow, is_dir, is_symlink) in [
            (dir.path(), Follow::Yes, true, false),
            (file.as_path(), Follow::Yes, false, false),
            (link.as_path(), Follow::Yes, false, false),
            (link.as_path(), Follow::No, false, true),
        ] {
            let fast = statx_with_mount(path, follow)
                .unwrap()
                .expect("this kernel reports mount ids");
            let slow = via_fdinfo(path, follow).unwrap();
            assert_eq!(
                (
                    fast.st_dev,
                    fast.ino,
                    fast.is_dir,
                    fast.is_symlink,
                    fast.mnt_id
                ),
                (
                    slow.st_dev,
                    slow.ino,
                    slow.is_dir,
                    slow.is_symlink,
                    slow.mnt_id
                )
            );
            let stat = stat_as_kernel_keys(path, follow).unwrap();
            assert_eq!((stat.is_dir, stat.is_symlink), (is_dir, is_symlink));
        }
        assert_ne!(entry_stat(&link).unwrap().id, file_stat(&link).unwrap().id);
        assert_eq!(
            statx_with_mount(&dir.path().join("missing"), Follow::Yes)
                .err()
                .map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn the_device_is_the_superblocks_from_the_mount_table() {
        let dir = tempfile::tempdir().unwrap();
        let id = file_id(dir.path()).unwrap();
        let st_dev = kernel_dev(std::fs::metadata(dir.path()).unwrap().dev());
        // Not btrfs or a split overlay here: the two agree, and the mount table said so.
        assert_eq!(id.dev, st_dev);
        assert_eq!(id.sb_dev, st_dev);
    }

    #[test]
    fn a_path_through_another_processs_root_finds_its_mount_in_that_processs_table() {
        let ours = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let (&id, mount) = ours.iter().next().unwrap();
        let through = std::path::PathBuf::from(format!("/proc/{}/root/etc", std::process::id()));
        assert_eq!(namespace_mount(&through, id).as_ref(), Some(mount));
        assert_eq!(namespace_mount(Path::new("/etc"), id), None);
        assert_eq!(namespace_mount(Path::new("/proc/self/cwd/etc"), id), None);
    }

    #[test]
    fn mountinfo_lines_give_device_and_type_by_mount_id() {
        let table = parse_mountinfo(
            "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
             35 22 0:45 / /home rw,relatime shared:7 master:2 - btrfs /dev/vdb rw,subvol=/home\n\
             36 22 0:50 / /ovl rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n",
        );
        assert_eq!(table[&22].sb_dev, (254 << 20) | 1);
        assert_eq!(table[&22].fstype, "ext4");
        assert_eq!(table[&35].sb_dev, 45);
        assert_eq!(table[&35].fstype, "btrfs");
        assert_eq!(table[&36].fstype, "overlay");
    }
}
