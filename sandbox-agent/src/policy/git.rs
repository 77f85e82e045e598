//! What git finds from a workspace, for `$GIT_DIR` and `$GIT_COMMON_DIR`: the repository a git
//! command run there uses, found the way git finds it, and the entries that lead git to it.
//!
//! Git looks for `.git` in the directory it runs in, then in each directory above. A `.git`
//! file (a worktree's or a submodule's) names the git directory (`gitdir: PATH`), and a
//! `commondir` file in a git directory names where its hooks and config are. Each of those can
//! send the developer's next git to hooks and config of the agent's making, so they are the way
//! to the repository's protected files: `way` lists them.

use std::path::{Path, PathBuf};

use crate::identity::entry_stat;

/// The repository git uses in a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRepo {
    /// `$GIT_DIR`: HEAD, the index, and this worktree's own files. `$WORKSPACE/.git` when the
    /// workspace is in no repository (where `git init` would make it).
    pub git_dir: PathBuf,
    /// `$GIT_COMMON_DIR`: hooks, config, objects and refs shared by every worktree.
    pub common_dir: PathBuf,
    /// The top of the work tree: where the `.git` git found is (the workspace when there is
    /// none), and where git runs hooks.
    pub work_tree: PathBuf,
    /// The entries that lead git to it and must stay as they are: the `.git` file read, if
    /// any, each `.git` name git would find first if it were made (in the workspace and
    /// every directory above it that has none), and the `commondir` and `config.worktree` of
    /// the repository's other worktrees.
    pub way: Vec<PathBuf>,
}

/// The repository git would use when run in `workspace`.
pub fn find(workspace: &Path) -> Result<GitRepo, String> {
    // Git starts from its real working directory: the directories above it are the real ones.
    let workspace = real_or_lexical(workspace);
    let mut way = Vec::new();
    let mut found = None;
    let mut work_tree = workspace.clone();
    for dir in workspace.ancestors() {
        let dot_git = dir.join(".git");
        match entry_kind(&dot_git)? {
            // Git passes a dangling symlink by, as it passes a missing name; either, made to
            // lead somewhere, is what it would find first.
            Kind::Missing | Kind::Dangling => way.push(dot_git),
            Kind::Directory if found.is_none() => {
                found = Some(dot_git);
                work_tree = dir.to_path_buf();
            }
            Kind::File if found.is_none() => {
                let git_dir = read_link_file(&dot_git, "gitdir: ", dir)?;
                way.push(dot_git);
                found = Some(git_dir);
                work_tree = dir.to_path_buf();
            }
            // Above the repository: git only goes there if the one it found stopped being a
            // repository, and a `.git` made there is what it would find then. One that is
            // there already is the developer's.
            Kind::Directory | Kind::File => {}
        }
    }
    let git_dir = match found {
        Some(dir) => real_or_lexical(&dir),
        None => workspace.join(".git"),
    };
    let commondir = git_dir.join("commondir");
    let common_dir = match entry_kind(&commondir)? {
        Kind::File => real_or_lexical(&read_link_file(&commondir, "", &git_dir)?),
        _ => git_dir.clone(),
    };
    way.extend(other_worktrees_way(&common_dir, &git_dir)?);
    Ok(GitRepo {
        git_dir,
        common_dir,
        work_tree,
        way,
    })
}

impl GitRepo {
    /// `$GIT_HOOKS`: the directory git takes hooks from, `core.hooksPath` of the system's, the
    /// user's (`home`) or the repository's config (relative to the work tree's top, where git
    /// runs hooks), else `$GIT_COMMON_DIR/hooks`.
    pub fn hooks(&self, home: &Path) -> PathBuf {
        let [system, xdg, global] = super::git_config::shared_files(home);
        let files = [
            system,
            xdg,
            global,
            self.common_dir.join("config"),
            self.git_dir.join("config.worktree"),
        ];
        match super::git_config::hooks_path(&files, home) {
            Some((value, _)) if !value.is_empty() => {
                super::git_config::expand(&value, home, &self.work_tree)
            }
            _ => self.common_dir.join("hooks"),
        }
    }
}

/// The files that tell each of the repository's worktrees where its hooks and config are,
/// other than `git_dir`'s own (which the policy names): the developer's git in another worktree
/// follows them as well.
fn other_worktrees_way(common_dir: &Path, git_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let worktrees = common_dir.join("worktrees");
    super::watch::before_listing(&worktrees);
    let entries = match std::fs::read_dir(&worktrees) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", worktrees.display())),
    };
    let mut way = Vec::new();
    for entry in entries {
        let dir = entry
            .map_err(|e| format!("cannot read {}: {e}", worktrees.display()))?
            .path();
        if dir != git_dir && {
            super::watch::before_follow(&dir);
            dir.is_dir()
        } {
            way.push(dir.join("commondir"));
            way.push(dir.join("config.worktree"));
        }
    }
    way.sort();
    Ok(way)
}

enum Kind {
    Missing,
    /// A symlink to nothing (yet).
    Dangling,
    Directory,
    File,
}

/// What is at `path`, following a symlink as git does.
fn entry_kind(path: &Path) -> Result<Kind, String> {
    super::watch::before_follow(path);
    let kind = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Kind::Directory,
        Ok(m) if m.is_file() => Kind::File,
        // A FIFO would hold the compile forever; git refuses it too.
        Ok(_) => {
            return Err(format!(
                "{} is neither a directory nor a file",
                path.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match entry_stat(path) {
            Ok(_) => Kind::Dangling,
            Err(_) => Kind::Missing,
        },
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(kind)
}

/// Longest path a link file can hold, with its prefix and newline.
const PATH_MAX: u64 = 4096 + 16;

/// The path a `.git` file or a `commondir` file holds after `prefix`, relative to `base`.
fn read_link_file(path: &Path, prefix: &str, base: &Path) -> Result<PathBuf, String> {
    use std::io::{BufRead, BufReader, Read};
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    super::watch::before_content(path);
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut line = String::new();
    // Git reads one short line; a larger file is not a link file.
    BufReader::new(file.take(PATH_MAX))
        .read_line(&mut line)
        .map_err(cannot)?;
    let target = line
        .strip_prefix(prefix)
        .map(str::trim_end)
        .filter(|t| !t.is_empty());
    let target = target.ok_or_else(|| {
        format!(
            "{} is not a git link file (its first line should be `{prefix}PATH`)",
            path.display()
        )
    })?;
    Ok(base.join(target))
}

/// `path` with symlinks and `..` resolved where it exists, as git resolves its directories.
fn real_or_lexical(path: &Path) -> PathBuf {
    super::watch::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn missing_dot_gits(from: &Path, to: &Path) -> Vec<PathBuf> {
        from.ancestors()
            .take_while(|d| *d != to)
            .map(|d| d.join(".git"))
            .collect()
    }

    #[test]
    fn a_repository_is_its_own_common_dir_and_nothing_above_it_may_become_one() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().canonicalize().unwrap().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        let found = find(&repo).unwrap();
        assert_eq!(found.git_dir, repo.join(".git"));
        assert_eq!(found.common_dir, repo.join(".git"));
        assert_eq!(
            found.way.first(),
            Some(&t.path().canonicalize().unwrap().join(".git"))
        );
        assert!(!found.way.contains(&repo.join(".git")));

        // From a directory inside it, the way is every missing `.git` down to the repository.
        let sub = repo.join("src/deep");
        std::fs::create_dir_all(&sub).unwrap();
        let found = find(&sub).unwrap();
        assert_eq!(found.git_dir, repo.join(".git"));
        assert_eq!(found.way[..2], missing_dot_gits(&sub, &repo)[..]);
    }

    #[test]
    fn the_hooks_are_where_core_hooks_path_says_relative_to_the_work_trees_top() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        let (repo, home) = (base.join("repo"), base.join("home"));
        std::fs::create_dir_all(repo.join("src")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        git(&repo, &["init", "-q"]);
        let from_src = || find(&repo.join("src")).unwrap();
        assert_eq!(from_src().work_tree, repo);
        assert_eq!(from_src().hooks(&home), repo.join(".git/hooks"));
        // The developer's global setting, then the repository's own (husky's).
        std::fs::write(
            home.join(".gitconfig"),
            "[core]\n\thooksPath = ~/.githooks\n",
        )
        .unwrap();
        assert_eq!(from_src().hooks(&home), home.join(".githooks"));
        git(&repo, &["config", "core.hooksPath", ".husky/_"]);
        assert_eq!(from_src().hooks(&home), repo.join(".husky/_"));
    }

    #[test]
    fn a_worktree_leads_through_its_git_file_to_the_main_repositorys_hooks_and_config() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        let main = base.join("main");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q"]);
        git(&main, &["commit", "-q", "--allow-empty", "-m", "x"]);
        git(&main, &["worktree", "add", "-q", "../wt"]);
        git(&main, &["worktree", "add", "-q", "../other"]);
        let found = find(&base.join("wt")).unwrap();
        assert_eq!(found.git_dir, main.join(".git/worktrees/wt"));
        assert_eq!(found.common_dir, main.join(".git"));
        assert_eq!(found.way.first(), Some(&base.join("wt/.git")));
        // The other worktree's way to the same hooks and config, not this one's (the policy's).
        let other = main.join(".git/worktrees/other");
        assert!(found.way.contains(&other.join("commondir")));
        assert!(found.way.contains(&other.join("config.worktree")));
        assert!(!found.way.contains(&found.git_dir.join("commondir")));
        // From the main checkout, both worktrees' ways.
        let found = find(&main).unwrap();
        assert!(found.way.contains(&other.join("commondir")));
        assert!(found
            .way
            .contains(&main.join(".git/worktrees/wt/commondir")));
    }

    #[test]
    fn the_directories_above_a_workspace_reached_through_a_symlink_are_the_real_ones() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        let repo = base.join("data/repo");
        std::fs::create_dir_all(repo.join("ws")).unwrap();
        git(&repo, &["init", "-q"]);
        std::fs::create_dir(base.join("home")).unwrap();
        std::os::unix::fs::symlink(&repo, base.join("home/link")).unwrap();
        let found = find(&base.join("home/link/ws")).unwrap();
        assert_eq!(found.git_dir, repo.join(".git"));
        assert!(
            found.way.contains(&base.join("data/.git")),
            "{:?}",
            found.way
        );
        assert!(
            !found.way.contains(&base.join("home/.git")),
            "{:?}",
            found.way
        );
    }

    #[test]
    fn a_dangling_git_symlink_is_on_the_way_and_git_looks_further_up() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        git(&base, &["init", "-q"]);
        let ws = base.join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::os::unix::fs::symlink(base.join("nowhere"), ws.join(".git")).unwrap();
        let found = find(&ws).unwrap();
        assert_eq!(found.git_dir, base.join(".git"));
        assert_eq!(found.way.first(), Some(&ws.join(".git")));
    }

    #[test]
    fn no_repository_means_the_workspace_is_where_one_would_be_made() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().canonicalize().unwrap();
        let found = find(&ws).unwrap();
        assert_eq!(found.git_dir, ws.join(".git"));
        assert_eq!(found.common_dir, ws.join(".git"));
        assert_eq!(found.way.first(), Some(&ws.join(".git")));
    }

    #[test]
    fn a_git_file_that_names_no_directory_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".git"), "not a link\n").unwrap();
        let e = find(t.path()).unwrap_err();
        assert!(e.contains("is not a git link file"), "{e}");
        assert!(e.contains(".git"), "{e}");
        // A FIFO is refused, not read (a read would wait for a writer forever).
        std::fs::remove_file(t.path().join(".git")).unwrap();
        let fifo = Command::new("mkfifo").arg(t.path().join(".git")).status();
        assert!(fifo.unwrap().success());
        let e = find(t.path()).unwrap_err();
        assert!(e.contains("neither a directory nor a file"), "{e}");
    }
}
