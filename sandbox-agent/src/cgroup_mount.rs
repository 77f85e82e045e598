//! The cgroup2 mount's `favordynmods` option. Without it, every move of a process into a
//! cgroup (a `run`'s command entering its transient cgroup) waits for an RCU grace period:
//! the kernel's lock on thread groups changing cgroup is cheap to take for a fork and slow to
//! take for a move. Measured: 7 ms per move on a 6.18 host, 13-31 ms in the test VM, and
//! 0.2-0.6 ms with the option. The daemon turns it on at start, keeping every other option of
//! the mount. The price, per the kernel's cgroup-v2 documentation, is a little more work in
//! each fork and exit on the host.

use std::{
    io,
    path::{Path, PathBuf},
};

use rustix::mount::{fsconfig_reconfigure, fsconfig_set_flag, fspick, FsPickFlags};

const FAVORDYNMODS: &str = "favordynmods";

/// Every flag cgroup2 shows among its options. A reconfiguration sets exactly the flags it is
/// given and clears the others, so each one the mount has must be given again; a mount with an
/// option not in this list is left alone rather than lose it.
const CGROUP2_FLAGS: &[&str] = &[
    "nsdelegate",
    FAVORDYNMODS,
    "memory_localevents",
    "memory_recursiveprot",
    "memory_hugetlb_accounting",
    "pids_localevents",
];

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    AlreadyOn,
    /// Turned on; the options kept.
    TurnedOn(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum FavorError {
    #[error("cannot read /proc/self/mountinfo: {0}")]
    MountInfo(io::Error),
    #[error("no cgroup2 filesystem is mounted at {0}")]
    NotMounted(PathBuf),
    #[error("cgroup2 at {point} has option {option:?}, which a reconfiguration could drop; the mount is left as it is")]
    UnknownOption { point: PathBuf, option: String },
    #[error("cannot reconfigure cgroup2 at {point}: {source}")]
    Reconfigure { point: PathBuf, source: io::Error },
    #[error("cgroup2 at {point} shows {shown:?} after the reconfiguration, not the {wanted:?} it was given (the daemon is not in the host's cgroup namespace?)")]
    NotApplied {
        point: PathBuf,
        shown: Vec<String>,
        wanted: Vec<String>,
    },
}

/// Turns on `favordynmods` for the cgroup2 filesystem mounted at `point`, keeping its other
/// options, and checks in the mount table that it took.
pub fn favor_dynamic_moves(point: &Path) -> Result<Outcome, FavorError> {
    let flags = current_flags(point)?;
    let wanted = match flags_to_give(&flags) {
        Ok(None) => return Ok(Outcome::AlreadyOn),
        Ok(Some(wanted)) => wanted,
        Err(option) => {
            return Err(FavorError::UnknownOption {
                point: point.into(),
                option,
            })
        }
    };
    reconfigure(point, &wanted).map_err(|source| FavorError::Reconfigure {
        point: point.into(),
        source,
    })?;
    let mut shown = current_flags(point)?;
    shown.sort();
    let mut sorted = wanted.clone();
    sorted.sort();
    if shown != sorted {
        return Err(FavorError::NotApplied {
            point: point.into(),
            shown,
            wanted,
        });
    }
    Ok(Outcome::TurnedOn(flags))
}

/// The flags of the cgroup2 filesystem on top at `point` (its superblock options but `rw`).
fn current_flags(point: &Path) -> Result<Vec<String>, FavorError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(FavorError::MountInfo)?;
    flags_in(&text, point).ok_or_else(|| FavorError::NotMounted(point.into()))
}

fn flags_in(mountinfo: &str, point: &Path) -> Option<Vec<String>> {
    let entry = crate::mounts::entries(mountinfo)
        .filter(|m| m.point == point)
        .last()
        .filter(|m| m.fstype == "cgroup2")?;
    Some(
        entry
            .super_options
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro" | ""))
            .map(str::to_string)
            .collect(),
    )
}

/// The flags to give the reconfiguration: all of the mount's, and `favordynmods`. None when it
/// is on already; the option a reconfiguration cannot be trusted to keep, if there is one.
fn flags_to_give(flags: &[String]) -> Result<Option<Vec<String>>, String> {
    if flags.iter().any(|f| f == FAVORDYNMODS) {
        return Ok(None);
    }
    if let Some(unknown) = flags.iter().find(|f| !CGROUP2_FLAGS.contains(&f.as_str())) {
        return Err(unknown.clone());
    }
    let mut wanted = flags.to_vec();
    wanted.push(FAVORDYNMODS.into());
    Ok(Some(wanted))
}

/// Reconfigures the superblock alone (`fspick`), so the mount's own flags (`nosuid`, `nodev`,
/// `noexec`) stay as they are, which a `mount -o remount` would have to repeat.
fn reconfigure(point: &Path, flags: &[String]) -> io::Result<()> {
    let fs = fspick(
        rustix::fs::CWD,
        point,
        FsPickFlags::FSPICK_CLOEXEC | FsPickFlags::FSPICK_SYMLINK_NOFOLLOW,
    )?;
    for flag in flags {
        fsconfig_set_flag(&fs, flag.as_str())?;
    }
    fsconfig_reconfigure(&fs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cgroup2 as systemd mounts it, and a tmpfs elsewhere.
    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
35 22 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 22 0:31 / /srv/cg rw - tmpfs tmpfs rw
";

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_flags_are_the_superblock_options_without_rw() {
        assert_eq!(
            flags_in(MOUNTINFO, Path::new("/sys/fs/cgroup")),
            Some(strings(&["nsdelegate", "memory_recursiveprot"]))
        );
    }

    #[test]
    fn a_mount_point_without_cgroup2_on_top_has_none() {
        assert_eq!(flags_in(MOUNTINFO, Path::new("/srv/cg")), None);
        assert_eq!(flags_in(MOUNTINFO, Path::new("/nowhere")), None);
        let covered = format!("{MOUNTINFO}50 35 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n");
        assert_eq!(flags_in(&covered, Path::new("/sys/fs/cgroup")), None);
    }

    #[test]
    fn the_mounts_flags_are_given_again_with_favordynmods() {
        assert_eq!(
            flags_to_give(&strings(&["nsdelegate", "memory_recursiveprot"])),
            Ok(Some(strings(&[
                "nsdelegate",
                "memory_recursiveprot",
                "favordynmods"
            ])))
        );
        assert_eq!(flags_to_give(&[]), Ok(Some(strings(&["favordynmods"]))));
    }

    #[test]
    fn a_mount_with_favordynmods_is_not_touched() {
        assert_eq!(
            flags_to_give(&strings(&["nsdelegate", "favordynmods"])),
            Ok(None)
        );
    }

    #[test]
    fn an_option_that_could_be_dropped_leaves_the_mount_alone() {
        assert_eq!(
            flags_to_give(&strings(&["nsdelegate", "memory_something_new"])),
            Err("memory_something_new".to_string())
        );
    }
}
