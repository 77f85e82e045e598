//! What is mounted below a directory rule. The kernel's walk up from a file stops at its
//! filesystem's root, or climbs the directories a bound directory or file came from, and never
//! passes the mount point: each mount below gets the directory's rule of its own, on the
//! identity of what it shows, so its files are decided as the directory's under every name
//! they have.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use sandbox_common::RULE_TREE;

use super::compile::{CompiledPolicy, DENY};
use crate::{
    identity::{file_id, FileId},
    mounts::{entries, mounted_below, MountEntry},
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
    let table = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(table) => table,
        Err(e) => {
            out.warnings.push(format!(
                "cannot read /proc/self/mountinfo ({e}): filesystems mounted below the \
                 policy's directories are not covered by their rules"
            ));
            return;
        }
    };
    let entries: Vec<_> = entries(&table).collect();
    for (dir, flags, rule_id) in out.rule_dirs.clone() {
        for below in mounted_below(&entries, &dir) {
            let point = below.point;
            let stat = match out.identify_stat(&point) {
                Ok(stat) => stat,
                Err(e) => {
                    out.mounts_below.insert(point.clone(), None);
                    out.warnings.push(format!(
                        "{} is mounted below {} and cannot be read ({e}): the rule on {} does \
                         not cover it",
                        point.display(),
                        dir.display(),
                        dir.display()
                    ));
                    continue;
                }
            };
            if below.holds_the_directory {
                out.warnings.push(format!(
                    "{} is mounted below {} and shows a directory that holds {} itself: the \
                     rule on {} covers all of that directory, under every name",
                    point.display(),
                    dir.display(),
                    dir.display(),
                    dir.display()
                ));
            }
            let denies = flags & DENY != 0;
            if denies && stat.is_dir {
                out.add_inode(stat.id, flags | RULE_TREE, rule_id);
                let scanned = out
                    .deny_dirs
                    .iter()
                    .any(|(p, _, f, _)| *p == point && *f == flags);
                if !scanned {
                    out.deny_dirs.push((point.clone(), stat.id, flags, rule_id));
                }
            } else {
                out.add_inode(stat.id, flags, rule_id);
            }
            out.mounts_below.insert(point, Some(stat.id));
        }
    }
}

/// What a compiled policy found mounted below its directory rules, to tell later whether that
/// changed: taken out of the policy so the daemon checks it without holding its state.
#[derive(Clone, Debug, Default)]
pub struct MountsBelow {
    dirs: Vec<PathBuf>,
    found: BTreeMap<PathBuf, Option<FileId>>,
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
        })
    }
}

impl MountsBelow {
    /// Whether the mounts below the directories differ in `table` (made, removed, or replaced
    /// by another: a mount id or an anonymous device an unmount frees is given to the next
    /// mount, so the identity behind each point is read again).
    pub fn changed(&self, table: &[MountEntry]) -> bool {
        let mut now: BTreeSet<PathBuf> = BTreeSet::new();
        for dir in &self.dirs {
            now.extend(mounted_below(table, dir).into_iter().map(|m| m.point));
        }
        now.len() != self.found.len()
            || now.into_iter().any(|point| {
                self.found
                    .get(&point)
                    .is_none_or(|id| file_id(&point).ok() != *id)
            })
    }
}
