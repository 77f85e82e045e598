//! What `~`, `$WORKSPACE`, `$GIT_DIR`, `$GIT_COMMON_DIR` and `$UID` in a rule path mean for one
//! attachment.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use sandbox_common::{names_bare_repository, REPOSITORY_DIRS};

use super::git::GitRepo;

/// Written at the start of a rule path, it means the confined command's workspace.
pub const WORKSPACE: &str = "$WORKSPACE";

/// Written at the start of a rule path, it means every directory above the workspace (its
/// parent, up to `/`): tools look for their configuration in the directory they run in and in
/// each one above it (rustup's `rust-toolchain.toml`, cargo's `.cargo/config.toml`, yarn's
/// `.yarnrc.yml`), so one left there by the agent applies to the developer's other projects.
pub const ABOVE_WORKSPACE: &str = "$ABOVE_WORKSPACE";

/// Written at the start of a rule path, it means the git directory of the repository git uses in
/// the workspace (`policy::git`).
pub const GIT_DIR: &str = "$GIT_DIR";

/// Written at the start of a rule path, it means where that repository's hooks and config are
/// (the main repository's git directory, for a worktree).
pub const GIT_COMMON_DIR: &str = "$GIT_COMMON_DIR";

/// Written at the start of a rule path, it means the directory that repository's hooks are
/// taken from: where `core.hooksPath` says (husky's `.husky/_`), else `$GIT_COMMON_DIR/hooks`.
pub const GIT_HOOKS: &str = "$GIT_HOOKS";

/// Written anywhere in a rule path, it means the confined user's uid (the owner of `~`), for
/// per-user paths outside the home such as `/tmp/tmux-$UID`.
pub const UID: &str = "$UID";

/// The repository git uses in the workspace, once found: the memo of one compile, which sees
/// the filesystem once (`Anchors::expand_in`).
#[derive(Default)]
pub struct GitMemo(Option<GitRepo>);

/// What the relative anchors of rule paths mean for one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchors {
    /// `~`
    pub home: PathBuf,
    /// `$WORKSPACE`: the directory the confined command works in, when there is one.
    pub workspace: Option<PathBuf>,
}

impl Anchors {
    pub fn home(home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            workspace: None,
        }
    }

    /// The absolute path `entry` names.
    pub fn expand(&self, entry: &str) -> Result<PathBuf, String> {
        self.expand_in(entry, &mut GitMemo::default())
    }

    /// Like `expand`, finding the repository git uses at most once for all the entries that
    /// share `memo` (one compile).
    pub fn expand_in(&self, entry: &str, memo: &mut GitMemo) -> Result<PathBuf, String> {
        if entry.contains(UID) {
            return self.expand_in(&entry.replace(UID, &self.uid()?.to_string()), memo);
        }
        if let Some((repo, rest)) = self.git_anchor(entry, memo)? {
            let hooks;
            let dir = if entry.starts_with(GIT_COMMON_DIR) {
                &repo.common_dir
            } else if entry.starts_with(GIT_HOOKS) {
                hooks = repo.hooks(&self.home);
                &hooks
            } else {
                &repo.git_dir
            };
            return Ok(dir.join(rest.trim_start_matches('/')));
        }
        if let Some(rest) = entry.strip_prefix(ABOVE_WORKSPACE) {
            // The nearest: the others are `above_workspace`'s.
            let parent = self.real_workspace(ABOVE_WORKSPACE)?;
            let parent = parent.parent().unwrap_or(Path::new("/"));
            return Ok(parent.join(rest.trim_start_matches('/')));
        }
        let Some(rest) = entry.strip_prefix(WORKSPACE) else {
            return Ok(expand_home(entry, &self.home));
        };
        Ok(self
            .workspace(WORKSPACE)?
            .join(rest.trim_start_matches('/')))
    }

    /// The entries that lead git to the directory `entry` names, when it starts with
    /// `$GIT_DIR`, `$GIT_COMMON_DIR` or `$GIT_HOOKS` (`GitRepo::way`); none otherwise.
    pub fn git_way(&self, entry: &str, memo: &mut GitMemo) -> Result<Vec<PathBuf>, String> {
        Ok(self
            .git_anchor(entry, memo)?
            .map(|(repo, _)| repo.way.clone())
            .unwrap_or_default())
    }

    /// The repository and the rest of `entry`, when it starts with a git anchor.
    fn git_anchor<'m, 'e>(
        &self,
        entry: &'e str,
        memo: &'m mut GitMemo,
    ) -> Result<Option<(&'m GitRepo, &'e str)>, String> {
        let Some(rest) = [GIT_COMMON_DIR, GIT_DIR, GIT_HOOKS]
            .iter()
            .find_map(|anchor| entry.strip_prefix(anchor))
        else {
            return Ok(None);
        };
        if memo.0.is_none() {
            let anchor = &entry[..entry.len() - rest.len()];
            memo.0 = Some(super::git::find(self.workspace(anchor)?)?);
        }
        Ok(memo.0.as_ref().map(|repo| (repo, rest)))
    }

    /// Every path `entry` names when it starts with `$ABOVE_WORKSPACE`, beyond the one
    /// `expand` gives (the nearest): the same relative path in each directory further up.
    pub fn above_workspace(&self, entry: &str) -> Result<Vec<PathBuf>, String> {
        let Some(rest) = entry.strip_prefix(ABOVE_WORKSPACE) else {
            return Ok(Vec::new());
        };
        let workspace = self.real_workspace(ABOVE_WORKSPACE)?;
        let rest = rest.trim_start_matches('/');
        Ok(workspace
            .ancestors()
            .skip(2)
            .map(|dir| dir.join(rest))
            .collect())
    }

    /// The repository directory of a version control tool other than git (`.hg`, `.jj`, `.sl`)
    /// in the workspace or the nearest directory above it that has one: what that tool takes
    /// for the workspace's repository. None without a workspace.
    pub fn other_tools_repository(&self) -> Option<PathBuf> {
        let workspace = self.real_workspace(WORKSPACE).ok()?;
        workspace.ancestors().find_map(|dir| {
            REPOSITORY_DIRS
                .iter()
                .filter(|name| **name != b".git")
                .map(|name| dir.join(OsStr::from_bytes(name)))
                .find(|repository| repository.is_dir())
        })
    }

    /// The workspace or the nearest directory above it that is named like a bare repository
    /// (`project.git`). None without a workspace.
    pub fn bare_named_above(&self) -> Option<PathBuf> {
        let workspace = self.real_workspace(WORKSPACE).ok()?;
        workspace
            .ancestors()
            .find(|dir| {
                dir.file_name()
                    .is_some_and(|name| names_bare_repository(name.as_bytes()))
            })
            .map(Path::to_path_buf)
    }

    /// The workspace with its symlinks resolved, as the tools that look above it see it.
    fn real_workspace(&self, anchor: &str) -> Result<PathBuf, String> {
        let workspace = self.workspace(anchor)?;
        Ok(super::watch::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf()))
    }

    fn workspace(&self, anchor: &str) -> Result<&Path, String> {
        self.workspace.as_deref().ok_or_else(|| {
            format!(
                "uses {anchor} but no workspace was given (attach --workspace DIR; run uses its current directory)"
            )
        })
    }

    /// `$UID`: the owner of `~`, which is the confined user whenever `~` is their home.
    fn uid(&self) -> Result<u32, String> {
        self.user().map(|(uid, _)| uid)
    }

    /// The sandbox's user: the owner of `~` and `~`'s group, (uid, gid).
    pub fn user(&self) -> Result<(u32, u32), String> {
        use std::os::unix::fs::MetadataExt;
        super::watch::before_follow(&self.home);
        std::fs::metadata(&self.home)
            .map(|m| (m.uid(), m.gid()))
            .map_err(|e| {
                format!(
                    "uses {UID} (the owner of ~) but {} cannot be read: {e}",
                    self.home.display()
                )
            })
    }
}

/// Expands `~` against `home`.
pub fn expand_home(entry: &str, home: &Path) -> PathBuf {
    if entry == "~" {
        home.to_path_buf()
    } else if let Some(rest) = entry.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_expansion() {
        let h = Path::new("/home/u");
        assert_eq!(expand_home("~", h), PathBuf::from("/home/u"));
        assert_eq!(expand_home("~/.ssh", h), PathBuf::from("/home/u/.ssh"));
        assert_eq!(expand_home("/etc", h), PathBuf::from("/etc"));
        let a = Anchors {
            home: h.to_path_buf(),
            workspace: Some(PathBuf::from("/src/app")),
        };
        assert_eq!(
            a.expand("$WORKSPACE/.env"),
            Ok(PathBuf::from("/src/app/.env"))
        );
        assert_eq!(a.expand("$WORKSPACE"), Ok(PathBuf::from("/src/app")));
        assert!(Anchors::home(h)
            .expand("$WORKSPACE/.env")
            .unwrap_err()
            .contains("no workspace"));
    }

    #[test]
    fn above_the_workspace_is_every_directory_up_to_the_root() {
        let a = Anchors {
            home: PathBuf::from("/home/u"),
            workspace: Some(PathBuf::from("/nonexistent-root/src/app")),
        };
        let entry = "$ABOVE_WORKSPACE/.cargo/config.toml";
        assert_eq!(
            a.expand(entry),
            Ok(PathBuf::from("/nonexistent-root/src/.cargo/config.toml"))
        );
        assert_eq!(
            a.above_workspace(entry).unwrap(),
            [
                "/nonexistent-root/.cargo/config.toml",
                "/.cargo/config.toml"
            ]
            .map(PathBuf::from)
        );
        assert!(a.above_workspace("$WORKSPACE/x").unwrap().is_empty());
        let e = Anchors::home(Path::new("/h"))
            .above_workspace(entry)
            .unwrap_err();
        assert!(e.contains("uses $ABOVE_WORKSPACE but no workspace"), "{e}");
    }

    #[test]
    fn uid_is_the_owner_of_the_home() {
        use std::os::unix::fs::MetadataExt;
        let home = tempfile::tempdir().unwrap();
        let owner = std::fs::metadata(home.path()).unwrap().uid();
        let a = Anchors::home(home.path());
        assert_eq!(
            a.expand("/tmp/tmux-$UID"),
            Ok(PathBuf::from(format!("/tmp/tmux-{owner}")))
        );
        let gone = Anchors::home(&home.path().join("missing"));
        let e = gone.expand("/tmp/tmux-$UID").unwrap_err();
        assert!(e.contains("uses $UID (the owner of ~)"), "{e}");
        assert_eq!(gone.expand("/etc/shadow"), Ok(PathBuf::from("/etc/shadow")));
    }
}
