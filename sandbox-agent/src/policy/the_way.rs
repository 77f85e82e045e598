//! The way to a denied path: every directory the kernel passes through to reach it, and every
//! symlink it follows on the way. A rule is keyed on inodes (the file, its parent directory), so
//! a confined task that moves or removes a directory above it (`mv .git .git-old`, `rmdir` of
//! an empty `~/.docker`) and makes a new one in its place would leave the rule on the old inode,
//! while the owner's git, docker or shell later uses the new one. Each entry on the way gets
//! `RULE_ON_THE_WAY`: the kernel refuses to move, remove or replace it for a confined task.

use std::{
    collections::VecDeque,
    ffi::OsString,
    path::{Component, Path, PathBuf},
};

use sandbox_common::RULE_ON_THE_WAY;

use super::compile::CompiledPolicy;
use super::resolve::{Entry, Resolver};

/// As the kernel's `MAXSYMLINKS`: a path that follows more symlinks fails to resolve (ELOOP).
const MAX_SYMLINKS: usize = 40;

/// Marks the way to `path` (absolute, lexically normal, as the rule names it) for `rule_id`:
/// each directory above what it names and each symlink followed, as the kernel resolves it. The
/// walk stops where the path stops existing; the deepest existing directory is on the way to
/// the rest (the name rules below it). `canonical` is what the whole path resolves to when it
/// exists: a last component that is no symlink then needs no system call. `/` cannot move.
pub(super) fn mark_the_way(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    path: &Path,
    canonical: Option<&Path>,
    rule_id: u32,
) -> Result<(), String> {
    let mut names: VecDeque<OsString> = normal_names(path).collect();
    let mut at = PathBuf::from("/");
    let mut followed = 0;
    while let Some(name) = names.pop_front() {
        if name == ".." {
            // `at` has no symlink in it: its parent is the physical one.
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let last = names.is_empty();
        if last && canonical == Some(next.as_path()) {
            // The rule's own file or directory, no symlink: its own rules protect it.
            return Ok(());
        }
        match resolver.entry(&next)? {
            Entry::Missing | Entry::Other => return Ok(()),
            Entry::Dir(_) if last => return Ok(()),
            Entry::Dir(id) => {
                note_btrfs(out, &next, id.btrfs);
                out.add_inode(id, RULE_ON_THE_WAY, rule_id);
                at = next;
            }
            Entry::Symlink(id, target) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Ok(());
                }
                note_btrfs(out, &next, id.btrfs);
                out.add_inode(id, RULE_ON_THE_WAY, rule_id);
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                for name in normal_names(&target).rev() {
                    names.push_front(name);
                }
            }
        }
    }
    Ok(())
}

/// The names of `path` to resolve one by one, `..` kept (after a symlink it is physical).
fn normal_names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// A rule entry on btrfs needs the subvolume devices the programs read through btrfs's BTF.
fn note_btrfs(out: &mut CompiledPolicy, path: &Path, btrfs: bool) {
    if btrfs {
        out.on_btrfs.insert(path.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{entry_stat, file_id};
    use crate::policy::{compile, parse};

    fn on_the_way(policy: &CompiledPolicy, path: &Path, follow: bool) -> bool {
        let id = if follow {
            file_id(path).unwrap()
        } else {
            entry_stat(path).unwrap().id
        };
        policy
            .inode_rules
            .get(&(id.dev, id.ino))
            .is_some_and(|v| v.flags & RULE_ON_THE_WAY != 0)
    }

    fn compiled(home: &Path, key: &str, path: &str) -> CompiledPolicy {
        let text = format!("name: t\n{key}:\n  - {path:?}\n");
        compile(&parse("t.yaml", &text).unwrap(), home).unwrap()
    }

    /// Every directory above an existing rule path, and none of its siblings or the path itself.
    #[test]
    fn the_directories_above_a_rule_path_are_on_its_way() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir_all(h.join("ws/.git/hooks")).unwrap();
        std::fs::create_dir_all(h.join("ws/src")).unwrap();
        let policy = compiled(&h, "deny_write", "~/ws/.git/hooks");
        for above in [h.join("ws/.git"), h.join("ws"), h.clone()] {
            assert!(on_the_way(&policy, &above, true), "{}", above.display());
        }
        assert!(!on_the_way(&policy, &h.join("ws/.git/hooks"), true));
        assert!(!on_the_way(&policy, &h.join("ws/src"), true));
    }

    /// A missing path: the way ends at its deepest existing directory.
    #[test]
    fn the_way_to_a_missing_path_ends_at_its_deepest_directory() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir(h.join(".docker")).unwrap();
        let policy = compiled(&h, "deny_read", "~/.docker/config.json");
        assert!(on_the_way(&policy, &h.join(".docker"), true));
        let policy = compiled(&h, "deny_read", "~/.config/gcloud/creds");
        assert!(on_the_way(&policy, &h, true));
    }

    /// Symlinks followed (as the last name or in the middle, relative or absolute, with `..`)
    /// are on the way, and so is every directory their targets pass through.
    #[test]
    fn symlinks_on_the_way_and_their_targets_directories_are_on_it() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir_all(h.join("dotfiles/config/git")).unwrap();
        std::fs::write(h.join("dotfiles/config/git/config"), "").unwrap();
        std::fs::write(h.join("dotfiles/gitconfig"), "").unwrap();
        std::os::unix::fs::symlink("dotfiles/gitconfig", h.join(".gitconfig")).unwrap();
        std::os::unix::fs::symlink(h.join("dotfiles/config"), h.join(".config")).unwrap();
        std::fs::create_dir(h.join("sub")).unwrap();
        std::os::unix::fs::symlink("../dotfiles", h.join("sub/df")).unwrap();

        let policy = compiled(&h, "deny_write", "~/.gitconfig");
        assert!(on_the_way(&policy, &h.join(".gitconfig"), false));
        assert!(on_the_way(&policy, &h.join("dotfiles"), true));
        assert!(!on_the_way(&policy, &h.join("dotfiles/gitconfig"), true));

        let policy = compiled(&h, "deny_write", "~/.config/git/config");
        assert!(on_the_way(&policy, &h.join(".config"), false));
        for dir in ["dotfiles", "dotfiles/config", "dotfiles/config/git"] {
            assert!(on_the_way(&policy, &h.join(dir), true), "{dir}");
        }

        let policy = compiled(&h, "deny_read", "~/sub/df/gitconfig");
        assert!(on_the_way(&policy, &h.join("sub/df"), false));
        assert!(on_the_way(&policy, &h.join("sub"), true));
        assert!(on_the_way(&policy, &h.join("dotfiles"), true));
    }
}
