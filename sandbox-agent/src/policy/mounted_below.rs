//! What is mounted below a directory rule. The kernel's walk up from a file stops at its
//! filesystem's root, or climbs the directories a bound directory or file came from, and never
//! passes the mount point: each mount below gets the directory's rule of its own, on the
//! identity of what it shows, so its files are decided as the directory's under every name
//! they have.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use sandbox_common::RULE_TREE;

use super::{
    compile::{CompiledPolicy, DENY},
    hardlink_scan::deny_other_names,
};
use crate::{
    identity::{file_id, FileId},
    mounts::{entries, MountBelow, MountEntry, MountIndex},
};

/// Gives every mount below a directory rule the directory's rule: below a denied directory, a
/// filesystem's root or a bound directory as a denied directory (scanned for hardlinks next, as
/// the others), a bound file as a denied file; below an allowed one, whatever it shows as
/// allowed. Reads the daemon's mount table once; a recorded compile watches it from before
/// this read (`watch`).
pub(super) fn rule_what_is_mounted_below(out: &mut CompiledPolicy) {
    if out.rule_dirs.is_empty() {
        return;
    }
    let Some(ours) = table(out, "/proc/self/mountinfo") else {
        return;
    };
    let ours = MountIndex::new(&ours);
    for (dir, flags, rule_id) in out.rule_dirs.clone() {
        let Some(place) = ours.place(&dir) else {
            continue;
        };
        for below in ours.mounted_below(&place) {
            let id = rule_one(out, &dir, below.point.clone(), &below, flags, rule_id);
            out.mounts_below.insert(below.point, id);
        }
    }
}

/// The same for the mounts of other mount namespaces, each that of a process in `pids` (a
/// confined process that does not share the daemon's: a container's), reached through its
/// root; then the hardlink scan of the directories they gave. Done for each attach, never
/// remembered with a compile, and not watched afterwards.
pub fn rule_what_is_mounted_below_in_namespaces_of(out: &mut CompiledPolicy, pids: &[u32]) {
    if out.rule_dirs.is_empty() || pids.is_empty() {
        return;
    }
    let Some(ours) = table(out, "/proc/self/mountinfo") else {
        return;
    };
    let ours = MountIndex::new(&ours);
    for &pid in pids {
        let Some(theirs) = table(out, &format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        let theirs = MountIndex::new(&theirs);
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        for (dir, flags, rule_id) in out.rule_dirs.clone() {
            let Some(place) = ours.place(&dir) else {
                continue;
            };
            for below in theirs.mounted_below(&place) {
                let point = root.join(below.point.strip_prefix("/").unwrap_or(&below.point));
                rule_one(out, &dir, point, &below, flags, rule_id);
            }
        }
    }
    deny_other_names(out);
}

/// The mount table at `path`, or None with a warning.
fn table(out: &mut CompiledPolicy, path: &str) -> Option<Vec<MountEntry>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(entries(&text).collect()),
        Err(e) => {
            out.warnings.push(format!(
                "cannot read {path} ({e}): filesystems mounted below the policy's directories \
                 there are not covered by their rules"
            ));
            None
        }
    }
}

/// Gives the mount `below`, reached at `point`, the rule `flags` of directory `dir`; its
/// identity, None when it cannot be read (with a warning).
fn rule_one(
    out: &mut CompiledPolicy,
    dir: &Path,
    point: PathBuf,
    below: &MountBelow,
    flags: u32,
    rule_id: u32,
) -> Option<FileId> {
    let stat = match out.identify_stat(&point) {
        Ok(stat) => stat,
        Err(e) => {
            out.warnings.push(format!(
                "{} is mounted below {} and cannot be read ({e}): the rule on {} does not \
                 cover it",
                point.display(),
                dir.display(),
                dir.display()
            ));
            return None;
        }
    };
    if below.holds_the_directory {
        out.warnings.push(format!(
            "{} is mounted below {} and shows a directory that holds {} itself: the rule on {} \
             covers all of that directory, under every name",
            point.display(),
            dir.display(),
            dir.display(),
            dir.display()
        ));
    }
    if flags & DENY != 0 && stat.is_dir {
        out.add_inode(stat.id, flags | RULE_TREE, rule_id);
        let scanned = out
            .deny_dirs
            .iter()
            .any(|(p, _, f, _)| *p == point && *f == flags);
        if !scanned {
            out.deny_dirs.push((point, stat.id, flags, rule_id));
        }
    } else {
        out.add_inode(stat.id, flags, rule_id);
    }
    Some(stat.id)
}

/// What a compiled policy found mounted below its directory rules, to tell later whether that
/// changed: taken out of the policy so the daemon checks it without holding its state.
#[derive(Clone, Debug, Default)]
pub struct MountsBelow {
    dirs: Vec<PathBuf>,
    found: BTreeMap<PathBuf, Option<FileId>>,
    /// The maps may hold an older compile (an earlier daemon's): any mount below is news.
    unwritten: bool,
}

impl CompiledPolicy {
    /// What this policy found mounted below its directory rules; None when it has none.
    pub fn mounts_below(&self) -> Option<MountsBelow> {
        (!self.rule_dirs.is_empty()).then(|| MountsBelow {
            dirs: self
                .rule_dirs
                .iter()
                .map(|(dir, _, _)| dir.clone())
                .collect(),
            found: self.mounts_below.clone(),
            unwritten: false,
        })
    }
}

impl MountsBelow {
    /// For a policy an earlier daemon wrote to the maps: compiled now, with the mounts of now,
    /// it may have found mounts made while no daemon watched.
    pub fn not_in_the_maps(mut self) -> Self {
        self.unwritten = true;
        self
    }

    /// Whether the mounts below the directories differ in the daemon's mount table `table`
    /// (made, removed, or replaced by another: a mount id or an anonymous device an unmount
    /// frees is given to the next mount, so the identity behind each point is read again).
    pub fn changed(&self, table: &MountIndex) -> bool {
        if self.unwritten && !self.found.is_empty() {
            return true;
        }
        let mut now: BTreeSet<PathBuf> = BTreeSet::new();
        for dir in &self.dirs {
            if let Some(place) = table.place(dir) {
                now.extend(table.mounted_below(&place).into_iter().map(|m| m.point));
            }
        }
        now.len() != self.found.len()
            || now.into_iter().any(|point| {
                self.found
                    .get(&point)
                    .is_none_or(|id| file_id(&point).ok() != *id)
            })
    }
}

#[cfg(test)]
mod tests {
    use sandbox_common::RULE_DENY_READ;

    use super::*;

    #[test]
    fn a_mount_below_that_cannot_be_read_is_left_out_and_named_in_a_warning() {
        let mut out = CompiledPolicy::default();
        let point = PathBuf::from("/nonexistent/fuse-of-another-user");
        let below = MountBelow {
            point: point.clone(),
            holds_the_directory: false,
        };
        let dir = Path::new("/home/u/.ssh");
        let id = rule_one(&mut out, dir, point, &below, RULE_DENY_READ, 0);
        assert_eq!(id, None);
        assert!(out.inode_rules.is_empty());
        assert!(
            out.warnings[0].starts_with(
                "/nonexistent/fuse-of-another-user is mounted below /home/u/.ssh and cannot be read"
            ) && out.warnings[0].ends_with("the rule on /home/u/.ssh does not cover it"),
            "{:?}",
            out.warnings
        );
    }
}
