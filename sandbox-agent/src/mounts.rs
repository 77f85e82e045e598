//! Where each filesystem is mounted (the daemon's view, `/proc/self/mountinfo`), so a path the
//! kernel reports within one filesystem becomes a path a person can open.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

/// Mounts by device: (root of the mount within the filesystem, mount point), in mount order, as
/// text (lossy UTF-8, as the kernel's names in an audit record are).
#[derive(Debug)]
pub struct MountTable {
    by_dev: BTreeMap<u32, Vec<(String, String)>>,
    read_at: Instant,
}

impl Default for MountTable {
    fn default() -> Self {
        Self {
            by_dev: BTreeMap::new(),
            read_at: Instant::now(),
        }
    }
}

impl MountTable {
    /// The daemon's mounts; empty if they cannot be read (paths then stay filesystem-relative).
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| Self::parse(&text))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Self {
        let mut by_dev: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for m in entries(text) {
            by_dev.entry(m.sb_dev).or_default().push((
                m.root.to_string_lossy().into_owned(),
                m.point.to_string_lossy().into_owned(),
            ));
        }
        Self {
            by_dev,
            read_at: Instant::now(),
        }
    }

    /// How long ago the table was read.
    pub fn age(&self) -> Duration {
        self.read_at.elapsed()
    }

    /// `within` (a path from the root of the filesystem whose kernel `dev_t` is `dev`) as seen
    /// from the daemon's root: through the first mount that shows it. Unchanged when no mount
    /// does (or the path is incomplete, starting with `…`). Compared as text: the kernel's
    /// paths and mountinfo's roots are already normal (no `.`, `..` or `//`).
    pub fn locate<'p>(&self, dev: u32, within: &'p str) -> Cow<'p, str> {
        let Some(mounts) = self.by_dev.get(&dev) else {
            return within.into();
        };
        for (root, point) in mounts {
            let Some(rest) = beneath(within, root) else {
                continue;
            };
            if point == root {
                // Mounted where it lies within its filesystem (the root filesystem).
                return within.into();
            }
            let mut located = String::with_capacity(point.len() + rest.len());
            if point != "/" || rest.is_empty() {
                located.push_str(point);
            }
            located.push_str(rest);
            return located.into();
        }
        within.into()
    }

    /// Whether `dev` has a known mount (else the table may be stale).
    pub fn knows(&self, dev: u32) -> bool {
        self.by_dev.contains_key(&dev)
    }
}

/// What is left of `path` below `root` (empty, or starting with `/`) when `path` is `root` or
/// under it, name by whole name (`/srv/database` is not under `/srv/data`).
fn beneath<'p>(path: &'p str, root: &str) -> Option<&'p str> {
    if root == "/" {
        return path.starts_with('/').then_some(path);
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u64,
    /// `major:minor` of the superblock (`s_dev`), in the kernel's encoding.
    pub sb_dev: u32,
    /// The root of the mount within its filesystem, and where it is mounted.
    pub root: PathBuf,
    pub point: PathBuf,
    pub fstype: String,
    /// The filesystem's own options (`rw,nsdelegate`), shared by all its mounts.
    pub super_options: String,
}

/// The well-formed lines of a mountinfo text.
pub fn entries(text: &str) -> impl Iterator<Item = MountEntry> + '_ {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let (major, minor) = fields.get(2)?.split_once(':')?;
        let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
        // The optional fields end with "-"; then the filesystem type, source and options.
        let mut after = fields.iter().skip(6).skip_while(|f| **f != "-").skip(1);
        let fstype = after.next()?;
        let super_options = after.nth(1).copied().unwrap_or_default();
        Some(MountEntry {
            mount_id: fields.first()?.parse().ok()?,
            sb_dev: (major << 20) | (minor & 0xfffff),
            root: unescape(fields.get(3)?),
            point: unescape(fields.get(4)?),
            fstype: fstype.to_string(),
            super_options: super_options.to_string(),
        })
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 0:27 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
31 22 254:1 /srv/data /mnt/my\\040data rw - ext4 /dev/vda1 rw
";

    fn kdev(major: u32, minor: u32) -> u32 {
        (major << 20) | minor
    }

    #[test]
    fn a_filesystem_path_is_shown_under_its_mount_point() {
        let t = MountTable::parse(MOUNTINFO);
        assert_eq!(t.locate(kdev(0, 27), "/work/secret"), "/tmp/work/secret");
        assert_eq!(t.locate(kdev(254, 1), "/root/.ssh/id"), "/root/.ssh/id");
    }

    #[test]
    fn unknown_devices_and_incomplete_paths_stay_as_reported() {
        let t = MountTable::parse(MOUNTINFO);
        assert_eq!(t.locate(kdev(9, 9), "/a/b"), "/a/b");
        assert_eq!(t.locate(kdev(0, 27), "…/deep/file"), "…/deep/file");
        assert!(!t.knows(kdev(9, 9)));
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let t = MountTable::parse("40 22 8:1 /srv/data /mnt/my\\040data rw - ext4 /dev/sda1 rw\n");
        assert_eq!(t.locate(kdev(8, 1), "/srv/data/x"), "/mnt/my data/x");
    }

    #[test]
    fn a_mount_root_matches_whole_names_only() {
        let bound = MountTable::parse("40 22 8:1 /srv/data / rw - ext4 /dev/sda1 rw\n");
        assert_eq!(bound.locate(kdev(8, 1), "/srv/data/x"), "/x");
        assert_eq!(bound.locate(kdev(8, 1), "/srv/data"), "/");
        // Not under /srv/data: no mount shows it.
        assert_eq!(bound.locate(kdev(8, 1), "/srv/database"), "/srv/database");
    }
}
