//! What is mounted below a denied directory. The kernel's walk up from a file stops at its
//! filesystem's root, or climbs the directories a bound directory or file came from, and never
//! passes the mount point: each mount below gets the directory's rule of its own, on the
//! identity of what it shows, so its files are denied under every name they have.

use std::{collections::BTreeSet, path::PathBuf};

use sandbox_common::RULE_TREE;

use super::compile::CompiledPolicy;

/// Gives every mount below a denied directory the directory's rule: a filesystem's root or a
/// bound directory as a denied directory (scanned for hardlinks next, as the others), a bound
/// file as a denied file. Reads the daemon's mount table once; a recorded compile watches it
/// from before this read (`watch`).
pub(super) fn deny_what_is_mounted_below(out: &mut CompiledPolicy) {
    if out.deny_dirs.is_empty() {
        return;
    }
    let table = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(table) => table,
        Err(e) => {
            out.warnings.push(format!(
                "cannot read /proc/self/mountinfo ({e}): filesystems mounted below denied \
                 directories are not denied"
            ));
            return;
        }
    };
    let entries: Vec<_> = crate::mounts::entries(&table).collect();
    let mut scanned: BTreeSet<(PathBuf, u32)> = BTreeSet::new();
    for (dir, _, flags, rule_id) in out.deny_dirs.clone() {
        for below in crate::mounts::mounted_below(&entries, &dir) {
            let point = below.point;
            let stat = match out.identify_stat(&point) {
                Ok(stat) => stat,
                Err(e) => {
                    out.warnings.push(format!(
                        "{} is mounted below {} and cannot be read ({e}): files in it are not \
                         denied",
                        point.display(),
                        dir.display()
                    ));
                    continue;
                }
            };
            if below.holds_the_directory {
                out.warnings.push(format!(
                    "{} is mounted below {} and shows a directory that holds {} itself: all of \
                     that directory is denied, under every name",
                    point.display(),
                    dir.display(),
                    dir.display()
                ));
            }
            if !stat.is_dir {
                out.add_inode(stat.id, flags, rule_id);
            } else {
                out.add_inode(stat.id, flags | RULE_TREE, rule_id);
                if scanned.insert((point.clone(), flags)) {
                    out.deny_dirs.push((point.clone(), stat.id, flags, rule_id));
                }
            }
            out.mount_points_below.insert(point);
        }
    }
}
