//! The other names of files below a denied directory: a file hardlinked elsewhere before the
//! attach is reached from there without passing the directory, so it gets a rule of its own.

use std::os::unix::fs::MetadataExt;

use super::compile::{CompiledPolicy, DENY};

/// Most directory entries `deny_other_names` reads for one policy.
const HARDLINK_SCAN_LIMIT: usize = 200_000;

/// Files below a denied directory that have other names (hardlinks made before the attach,
/// possibly outside the directory) get rules of their own: the kernel's walk from another name
/// never passes the directory. Stays on the directory's filesystem, as the walk does.
pub(super) fn deny_other_names(out: &mut CompiledPolicy) {
    let mut budget = HARDLINK_SCAN_LIMIT;
    for (dir, id, flags, rule_id) in std::mem::take(&mut out.deny_dirs) {
        // Listed next: its watch as a directory covers this stat too.
        super::watch::before_listing(&dir);
        let Ok(top) = std::fs::metadata(&dir) else {
            continue;
        };
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            super::watch::before_listing(&d);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                if budget == 0 {
                    out.warnings.push(format!(
                        "{} holds more than {HARDLINK_SCAN_LIMIT} entries: files in it with \
                         other names (hardlinks) past that were not found, and are denied only \
                         under their names inside it",
                        dir.display()
                    ));
                    return;
                }
                budget -= 1;
                // The kind from the directory itself (no system call where the filesystem
                // reports it): a symlink's target is not below the directory on its account,
                // and the symlinks of systemd's unit directories are most of their entries.
                let kind = entry.file_type();
                if kind.as_ref().is_ok_and(|kind| kind.is_symlink()) {
                    continue;
                }
                let path = entry.path();
                if out.mounts_below.contains_key(&path) {
                    // Scanned as a denied directory of its own.
                    continue;
                }
                if kind.is_ok_and(|kind| kind.is_dir()) {
                    // Listed later: one watch as a directory covers its stat too.
                    super::watch::before_listing(&path);
                } else {
                    super::watch::before_link_count(&path);
                }
                let Ok(md) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if md.is_dir() {
                    // Only a change of st_dev (a mount, or a btrfs subvolume) needs the
                    // mount table to tell whether the kernel's walk still gets here.
                    let same_fs = md.dev() == top.dev() || {
                        super::watch::before_follow(&path);
                        crate::identity::file_id(&path)
                    }
                    .is_ok_and(|child| child.sb_dev == id.sb_dev);
                    if same_fs {
                        stack.push(path);
                    }
                } else if !md.file_type().is_symlink() && md.nlink() > 1 {
                    if let Ok(file) = out.identify(&path) {
                        out.add_inode(file, flags & DENY, rule_id);
                    }
                }
            }
        }
    }
}
