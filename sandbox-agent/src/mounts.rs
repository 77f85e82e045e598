//! Where each filesystem is mounted (the daemon's view, `/proc/self/mountinfo`), so a path the
//! kernel reports within one filesystem becomes a path a person can open.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::{Path, PathBuf},
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
    /// The mount this one is mounted on.
    pub parent_id: u64,
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
            parent_id: fields.get(1)?.parse().ok()?,
            sb_dev: (major << 20) | (minor & 0xfffff),
            root: unescape(fields.get(3)?),
            point: unescape(fields.get(4)?),
            fstype: fstype.to_string(),
            super_options: super_options.to_string(),
        })
    })
}

/// A mount whose files lie below a directory (see `mounted_below`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountBelow {
    /// Its mount point, as its table shows it: from the root of the process the table is of.
    pub point: PathBuf,
    /// It shows a directory that holds the directory itself (a bind of `/` below it): denying
    /// all of it denies far more than the directory.
    pub holds_the_directory: bool,
}

/// One process of each mount namespace among `pids` that is not the daemon's (by the
/// namespace's identity, `/proc/PID/ns/mnt`); processes gone meanwhile are left out.
pub fn other_namespaces(pids: impl IntoIterator<Item = u32>) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let namespace = |path: &str| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let ours = namespace("/proc/self/ns/mnt");
    let mut seen = std::collections::BTreeSet::new();
    pids.into_iter()
        .filter(|pid| {
            namespace(&format!("/proc/{pid}/ns/mnt"))
                .is_some_and(|ns| Some(ns) != ours && seen.insert(ns))
        })
        .collect()
}

/// Where a directory is: its filesystem (superblock device) and its path from that
/// filesystem's root, which every mount namespace shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    sb_dev: u32,
    within: PathBuf,
    /// The mount it was found on.
    mount_id: u64,
}

/// A mount table indexed for `place` and `mounted_below`: each asks a few map lookups and the
/// mounts it finds, not a pass over the table, as the daemon asks them for every directory of
/// every policy at each change of a table that may hold thousands of mounts.
pub struct MountIndex<'t> {
    /// Mounts by mount point, in table order (the last one at a point is on top).
    by_point: BTreeMap<&'t Path, Vec<&'t MountEntry>>,
    /// Mounts by the mount they are on.
    children: BTreeMap<u64, Vec<&'t MountEntry>>,
    /// Mounts by the filesystem of the mount they are on, and the path of their mount point
    /// from that filesystem's root. Ordered by path, name by name, so the mounts at or below
    /// a directory are one range.
    on_filesystem: BTreeMap<(u32, PathBuf), Vec<&'t MountEntry>>,
}

impl<'t> MountIndex<'t> {
    pub fn new(entries: &'t [MountEntry]) -> Self {
        let by_id: BTreeMap<u64, &MountEntry> = entries.iter().map(|m| (m.mount_id, m)).collect();
        let mut index = MountIndex {
            by_point: BTreeMap::new(),
            children: BTreeMap::new(),
            on_filesystem: BTreeMap::new(),
        };
        for m in entries {
            index.by_point.entry(&m.point).or_default().push(m);
            index.children.entry(m.parent_id).or_default().push(m);
            let Some(parent) = by_id.get(&m.parent_id) else {
                continue;
            };
            if let Some(within) = within_filesystem(parent, &m.point) {
                let key = (parent.sb_dev, within);
                index.on_filesystem.entry(key).or_default().push(m);
            }
        }
        index
    }

    /// Where `dir` (canonical, as this table sees it) is: on the deepest mount point above it,
    /// the latest mounted where several share one (the one on top).
    pub fn place(&self, dir: &Path) -> Option<Place> {
        let on = dir
            .ancestors()
            .find_map(|point| self.by_point.get(point))
            .and_then(|mounts| mounts.last())?;
        Some(Place {
            sb_dev: on.sb_dev,
            within: within_filesystem(on, dir)?,
            mount_id: on.mount_id,
        })
    }

    /// The mounts whose files lie below the directory at `place` (found in this table or
    /// another namespace's), whichever way the kernel's walk from those files would go up:
    /// every mount on a directory at or below it in its filesystem, through any mount of that
    /// filesystem (a mount on the same directory seen through a bind of it elsewhere counts),
    /// then every mount on those, and so on. The walk from a file stops at its filesystem's
    /// root (or goes up the directories it was bound from), never passing the directory. Each
    /// mount point once, as this table shows it; the topmost mount at a point is what a path
    /// there reaches.
    pub fn mounted_below(&self, place: &Place) -> Vec<MountBelow> {
        let start = (place.sb_dev, place.within.clone());
        let mut below: BTreeMap<u64, &MountEntry> = self
            .on_filesystem
            .range(start..)
            .take_while(|((sb_dev, within), _)| {
                *sb_dev == place.sb_dev && within.starts_with(&place.within)
            })
            .flat_map(|(_, mounts)| mounts)
            .filter(|m| m.mount_id != place.mount_id)
            .map(|m| (m.mount_id, *m))
            .collect();
        // Mounts on those, to any depth.
        let mut todo: Vec<u64> = below.keys().copied().collect();
        while let Some(id) = todo.pop() {
            for m in self.children.get(&id).into_iter().flatten() {
                if below.insert(m.mount_id, m).is_none() {
                    todo.push(m.mount_id);
                }
            }
        }
        let mut points: BTreeMap<&Path, bool> = BTreeMap::new();
        for m in below.values() {
            let holds = m.sb_dev == place.sb_dev && place.within.starts_with(&m.root);
            *points.entry(&m.point).or_default() |= holds;
        }
        points
            .into_iter()
            .map(|(point, holds_the_directory)| MountBelow {
                point: point.to_path_buf(),
                holds_the_directory,
            })
            .collect()
    }
}

/// `path` (at or below `mount`'s point) as a path from the root of `mount`'s filesystem.
fn within_filesystem(mount: &MountEntry, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(&mount.point).ok()?;
    Some(if rest.as_os_str().is_empty() {
        mount.root.clone()
    } else {
        mount.root.join(rest)
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

    /// `/tmp` (a tmpfs) holds `/tmp/d/secrets`, a denied directory, with mounts below it and
    /// beside it.
    const BELOW: &str = "\
22 1 254:1 / / rw - ext4 /dev/vda1 rw
30 22 0:27 / /tmp rw - tmpfs tmpfs rw
40 30 0:40 / /tmp/d/secrets/tmpfs rw - tmpfs tmpfs rw
41 40 0:41 / /tmp/d/secrets/tmpfs/inner rw - tmpfs tmpfs rw
42 30 254:2 /below /tmp/d/secrets/ext4 rw - ext4 /dev/vdb rw
43 30 0:27 /d/outside /tmp/d/secrets/view rw - tmpfs tmpfs rw
44 30 0:40 / /tmp/d/elsewhere rw - tmpfs tmpfs rw
45 30 0:27 /d /tmp/alias rw - tmpfs tmpfs rw
46 45 0:50 / /tmp/alias/secrets/other rw - tmpfs tmpfs rw
47 30 0:51 / /tmp/d/secretsX rw - tmpfs tmpfs rw
48 30 0:27 / /tmp/d/secrets/root rw - tmpfs tmpfs rw
";

    fn below(table: &str, dir: &str) -> Vec<(String, bool)> {
        let entries: Vec<_> = entries(table).collect();
        let index = MountIndex::new(&entries);
        let Some(place) = index.place(Path::new(dir)) else {
            return Vec::new();
        };
        index
            .mounted_below(&place)
            .into_iter()
            .map(|m| (m.point.display().to_string(), m.holds_the_directory))
            .collect()
    }

    #[test]
    fn mounts_below_a_directory_are_found_through_every_mount_of_its_filesystem() {
        assert_eq!(
            below(BELOW, "/tmp/d/secrets"),
            [
                // Mounted on the directory's own filesystem where a bind of it shows it.
                ("/tmp/alias/secrets/other".to_string(), false),
                ("/tmp/d/secrets/ext4".to_string(), false),
                // A bind of the root of the directory's own filesystem: it holds the directory.
                ("/tmp/d/secrets/root".to_string(), true),
                ("/tmp/d/secrets/tmpfs".to_string(), false),
                // On a mount below, however deep.
                ("/tmp/d/secrets/tmpfs/inner".to_string(), false),
                // A directory bound from elsewhere on the same filesystem.
                ("/tmp/d/secrets/view".to_string(), false),
            ]
        );
        // A mount point is a directory of its own: `/tmp/d/secretsX` is not below.
        assert_eq!(
            below(BELOW, "/tmp/d/secrets/tmpfs"),
            [("/tmp/d/secrets/tmpfs/inner".to_string(), false)]
        );
        assert!(below(BELOW, "/tmp/d/secrets/view").is_empty());
    }

    #[test]
    fn mounts_another_namespace_makes_below_a_directory_are_found_by_its_filesystem_path() {
        // The daemon sees a container's root filesystem (overlay 0:60) where the runtime
        // mounted it; the container, as its `/`, with a directory of the host bound on
        // `/root/.aws` and a tmpfs on `/run/secrets`.
        let daemon: Vec<_> = entries(
            "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n\
             90 22 0:60 / /var/lib/c/merged rw - overlay overlay rw\n",
        )
        .collect();
        let container: Vec<_> = entries(
            "500 400 0:60 / / rw - overlay overlay rw\n\
             501 500 254:1 /home/u/.aws /root/.aws ro - ext4 /dev/vda1 rw\n\
             502 500 0:61 / /run/secrets rw - tmpfs tmpfs rw\n\
             503 500 0:5 / /proc rw - proc proc rw\n",
        )
        .collect();
        let (daemon, container) = (MountIndex::new(&daemon), MountIndex::new(&container));
        let at = |dir: &str| daemon.place(Path::new(dir)).unwrap();
        let points = |dir: &str| -> Vec<PathBuf> {
            container
                .mounted_below(&at(dir))
                .into_iter()
                .map(|m| m.point)
                .collect()
        };
        assert_eq!(
            points("/var/lib/c/merged/root"),
            [PathBuf::from("/root/.aws")]
        );
        // A rule on the mount point itself covers what is mounted on it there.
        assert_eq!(
            points("/var/lib/c/merged/root/.aws"),
            [PathBuf::from("/root/.aws")]
        );
        assert_eq!(
            points("/var/lib/c/merged/run"),
            [PathBuf::from("/run/secrets")]
        );
        assert!(points("/var/lib/c/merged/etc").is_empty());
        // The host's own directory is not the container's.
        assert!(container.mounted_below(&at("/run")).is_empty());
    }

    #[test]
    fn a_directory_that_is_a_mount_point_is_on_the_topmost_mount() {
        let stacked = "\
22 1 254:1 / / rw - ext4 /dev/vda1 rw
30 22 0:27 / /srv rw - tmpfs tmpfs rw
31 22 0:28 / /srv rw - tmpfs tmpfs rw
32 30 0:29 / /srv/hidden rw - tmpfs tmpfs rw
33 31 0:30 / /srv/seen rw - tmpfs tmpfs rw
";
        assert_eq!(below(stacked, "/srv"), [("/srv/seen".to_string(), false)]);
        assert!(below("", "/srv").is_empty());
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
