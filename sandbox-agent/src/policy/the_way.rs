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
use crate::identity::{FileId, FileStat};

/// As the kernel's `MAXSYMLINKS`: a path that follows more symlinks fails to resolve (ELOOP).
const MAX_SYMLINKS: usize = 40;

/// Where a rule path lands once resolved as the kernel would.
pub(super) struct Landing {
    /// Canonical: the path itself when it exists, else its deepest existing directory.
    pub existing: PathBuf,
    /// The names below `existing` that do not exist yet, first first.
    pub missing: Vec<OsString>,
    /// The stat of `existing` when the walk made one.
    pub stat: Option<FileStat>,
}

/// Follows `path` (absolute, lexically normal, as the rule names it) the way the kernel
/// resolves it, symlink by symlink, and returns where it lands; a dangling symlink lands at its
/// target, not at itself: the owner's program would create the file there. With `mark`, a rule
/// id, each directory above what the path names and each symlink followed gets
/// `RULE_ON_THE_WAY` for that rule; the deepest existing directory of a missing path is on the
/// way to the rest (the name rules below it). `/` cannot move.
pub(super) fn follow_the_way(
    out: &mut CompiledPolicy,
    resolver: &mut Resolver,
    path: &Path,
    mark: Option<u32>,
) -> Result<Landing, String> {
    let mut names: VecDeque<OsString> = normal_names(path).collect();
    let mut at = PathBuf::from("/");
    let mut followed = 0;
    let on_the_way = |out: &mut CompiledPolicy, entry: &Path, id: FileId| {
        if let Some(rule_id) = mark {
            if id.btrfs {
                out.on_btrfs.insert(entry.to_path_buf());
            }
            out.add_inode(id, RULE_ON_THE_WAY, rule_id);
        }
    };
    while let Some(name) = names.pop_front() {
        if name == ".." {
            // `at` has no symlink in it: its parent is the physical one.
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let last = names.is_empty();
        match resolver.entry(&next)? {
            Entry::Found(stat) if stat.is_dir && !last => {
                on_the_way(out, &next, stat.id);
                resolver.note_dir(&next, stat.id);
                at = next;
            }
            // The file or directory the rule names: its own rules protect it.
            Entry::Found(stat) if last => {
                return Ok(Landing {
                    existing: next,
                    missing: Vec::new(),
                    stat: Some(stat),
                })
            }
            // A file in the middle of the path: the kernel would not resolve it.
            Entry::Found(_) => {
                let below: PathBuf = next
                    .iter()
                    .chain(names.iter().map(|n| n.as_os_str()))
                    .collect();
                let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
                return Err(format!("cannot resolve {}: {e}", below.display()));
            }
            Entry::Missing => {
                names.push_front(name);
                return Ok(Landing {
                    existing: at,
                    missing: missing_names(names),
                    stat: None,
                });
            }
            Entry::Symlink(id, target) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(format!(
                        "{} follows more than {MAX_SYMLINKS} symlinks",
                        path.display()
                    ));
                }
                on_the_way(out, &next, id);
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                for name in normal_names(&target).rev() {
                    names.push_front(name);
                }
            }
        }
    }
    // Every name was `..` or the path is `/`.
    Ok(Landing {
        existing: at,
        missing: Vec::new(),
        stat: None,
    })
}

/// The names below a missing directory, `..` taken lexically: nothing there exists for the
/// kernel to resolve it against.
fn missing_names(names: VecDeque<OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    for name in names {
        if name == ".." {
            out.pop();
        } else {
            out.push(name);
        }
    }
    out
}

/// The names of `path` to resolve one by one, `..` kept (after a symlink it is physical).
fn normal_names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
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
        assert_eq!(
            policy.rules[0].resolved,
            h.join("dotfiles/gitconfig").display().to_string()
        );
        assert!(on_the_way(&policy, &h.join("sub/df"), false));
        assert!(on_the_way(&policy, &h.join("sub"), true));
        assert!(on_the_way(&policy, &h.join("dotfiles"), true));
    }

    /// A symlink whose target does not exist yet: the rule is on the target, where the owner's
    /// program will create the file, and the symlink is on the way to it.
    #[test]
    fn a_dangling_symlink_is_denied_at_its_target() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir(h.join(".docker")).unwrap();
        std::os::unix::fs::symlink("../creds/cfg.json", h.join(".docker/config.json")).unwrap();
        let policy = compiled(&h, "deny_read", "~/.docker/config.json");
        let target = h.join("creds/cfg.json");
        assert_eq!(policy.rules[0].resolved, target.display().to_string());
        assert!(!policy.rules[0].exists);
        assert!(on_the_way(&policy, &h.join(".docker/config.json"), false));
        let creds = crate::policy::NameRuleKey {
            parent_dev: file_id(&h).unwrap().dev,
            parent_ino: file_id(&h).unwrap().ino,
            name: b"creds".to_vec(),
        };
        assert!(policy.name_rules[&creds].flags & sandbox_common::RULE_PREFIX != 0);
    }

    /// A loop of symlinks is an error naming the path, as the kernel's ELOOP.
    #[test]
    fn a_symlink_loop_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::os::unix::fs::symlink("b", h.join("a")).unwrap();
        std::os::unix::fs::symlink("a", h.join("b")).unwrap();
        let text = "name: t\ndeny_read:\n  - ~/a/x\n";
        let err = compile(&parse("t.yaml", text).unwrap(), &h).unwrap_err();
        assert!(err.to_string().contains("symlinks"), "{err}");
    }

    /// Every kind of path a rule can name lands where `realpath` says, before and after its
    /// directories are in the memo; a missing one at its deepest existing directory.
    #[test]
    fn lands_where_realpath_does() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("file"), "x").unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, base.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("file", real.join("filelink")).unwrap();
        std::os::unix::fs::symlink("../real/sub", real.join("sublink")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-target/x", real.join("dangling")).unwrap();
        let mut out = CompiledPolicy::default();
        let mut r = Resolver::default();
        let mut land = |p: &str| follow_the_way(&mut out, &mut r, &base.join(p), None);
        for _pass in 0..2 {
            for p in [
                "real/file",
                "real/sub",
                "real/filelink",
                "real/sublink",
                "dirlink/file",
                "dirlink/filelink",
                "dirlink/sub",
                "real",
            ] {
                let landing = land(p).unwrap();
                assert_eq!(
                    landing.existing,
                    std::fs::canonicalize(base.join(p)).unwrap(),
                    "{p}"
                );
                assert!(landing.missing.is_empty() && landing.stat.is_some(), "{p}");
            }
            for (p, existing, missing) in [
                ("real/missing", real.clone(), "missing"),
                ("missing/file", base.clone(), "missing/file"),
                ("dirlink/sub/a/b", real.join("sub"), "a/b"),
                ("real/dangling", PathBuf::from("/"), "nonexistent-target/x"),
            ] {
                let landing = land(p).unwrap();
                assert_eq!(landing.existing, existing, "{p}");
                assert_eq!(
                    landing.missing.iter().collect::<PathBuf>(),
                    PathBuf::from(missing)
                );
            }
            let err = land("real/file/x").err().unwrap();
            assert!(err.contains("Not a directory"), "{err}");
        }
        let root = land("/").unwrap();
        assert_eq!((root.existing, root.missing.len()), (PathBuf::from("/"), 0));
    }
}
