//! Where `policy suggest` may list a directory instead of its files: only where that widens
//! nothing that exists. A directory becomes one `allow_exec` tree when every regular file in it,
//! at any depth, was executed or mapped executable during the learning run (at least two of
//! them); the shallowest such directory wins. System trees (`/usr/lib`...) never qualify, a
//! virtualenv's `bin` or a build's output directory may.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

/// Trees larger than this are not listed (and so never merged): a learning run does not touch
/// every file of a big tree, and the walk stays cheap.
const MAX_FILES: usize = 4096;

/// One `allow_exec` entry of a suggestion: a file, or a tree of `files` files all of which
/// were seen.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecEntry {
    pub seen: u64,
    /// Some(number of files) when the entry is a directory merged from its files.
    pub files: Option<usize>,
}

/// The entries for `seen` (path -> times), with honest trees merged.
pub fn merge(seen: &BTreeMap<String, u64>) -> BTreeMap<String, ExecEntry> {
    let mut qualifies: HashMap<PathBuf, Option<usize>> = HashMap::new();
    let mut out: BTreeMap<String, ExecEntry> = BTreeMap::new();
    for (path, n) in seen {
        let file = Path::new(path);
        // From the top down: the first directory that qualifies is the shallowest.
        let tree = file
            .ancestors()
            .skip(1)
            .filter(|d| d.parent().is_some())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find_map(|dir| {
                let files = *qualifies
                    .entry(dir.to_path_buf())
                    .or_insert_with(|| all_seen(dir, seen));
                files.map(|f| (dir, f))
            });
        let (key, files) = match tree {
            Some((dir, files)) => (dir.display().to_string(), Some(files)),
            None => (path.clone(), None),
        };
        out.entry(key).or_insert(ExecEntry { seen: 0, files }).seen += n;
    }
    out
}

/// Some(number of regular files) when `dir` holds at least two, all of them in `seen`.
fn all_seen(dir: &Path, seen: &BTreeMap<String, u64>) -> Option<usize> {
    let files = regular_files(dir)?;
    (files.len() >= 2
        && files
            .iter()
            .all(|f| f.to_str().is_some_and(|s| seen.contains_key(s))))
    .then_some(files.len())
}

/// Every regular file below `dir` (symbolic links are not followed: a link's target is
/// listed, or not, on its own); None when unreadable or larger than `MAX_FILES`.
fn regular_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()? {
            let entry = entry.ok()?;
            let kind = entry.file_type().ok()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
                if files.len() > MAX_FILES {
                    return None;
                }
            }
        }
    }
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(paths: &[&Path]) -> BTreeMap<String, u64> {
        paths.iter().map(|p| (p.display().to_string(), 2)).collect()
    }

    #[test]
    fn a_directory_is_listed_only_when_every_file_in_it_was_seen() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv/bin");
        let sub = root.path().join("venv/bin/sub");
        std::fs::create_dir_all(&sub).unwrap();
        let (python, pip, tool) = (venv.join("python"), venv.join("pip"), sub.join("tool"));
        let other = root.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let (a, b) = (other.join("a"), other.join("b"));
        for f in [&python, &pip, &tool, &a, &b] {
            std::fs::write(f, "x").unwrap();
        }
        // A link to a file outside is not a file of the tree.
        std::os::unix::fs::symlink("/bin/sh", venv.join("sh")).unwrap();

        let merged = merge(&seen(&[&python, &pip, &tool, &a]));
        assert_eq!(
            merged.get(venv.parent().unwrap().to_str().unwrap()),
            Some(&ExecEntry {
                seen: 6,
                files: Some(3)
            }),
            "{merged:?}"
        );
        // `b` was never run: `other` stays file by file.
        assert_eq!(
            merged.get(a.to_str().unwrap()),
            Some(&ExecEntry {
                seen: 2,
                files: None
            })
        );
        assert_eq!(merged.len(), 2, "{merged:?}");
    }

    #[test]
    fn one_file_alone_or_gone_is_listed_as_it_is() {
        let root = tempfile::tempdir().unwrap();
        let only = root.path().join("only");
        std::fs::create_dir_all(&only).unwrap();
        std::fs::write(only.join("tool"), "x").unwrap();
        let gone = root.path().join("gone/tool");
        let merged = merge(&seen(&[&only.join("tool"), &gone]));
        assert_eq!(merged.len(), 2);
        assert!(merged.values().all(|e| e.files.is_none()), "{merged:?}");
    }
}
