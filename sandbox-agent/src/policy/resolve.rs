//! What a compile has seen of the filesystem, so each entry is looked at once: a policy of
//! 10,000 files in a few directories made `realpath` walk (one `readlink` per component) and
//! stat the same parents 10,000 times. The walk itself is `the_way::follow_the_way`.

use std::{
    collections::{HashMap, HashSet},
    io,
    path::{Path, PathBuf},
};

use super::anchors::GitMemo;
use crate::identity::{entry_stat, FileId, FileStat};

/// What a path names, not following a symlink there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Missing,
    /// The symlink's own identity, and what it points to.
    Symlink(FileId, PathBuf),
    /// A directory, file, socket or device.
    Found(FileStat),
}

/// Memo of one compile: a snapshot of the filesystem taken as the rules are read, as a compile
/// without it would be.
#[derive(Default)]
pub(super) struct Resolver {
    /// Canonical directory -> its identity.
    dir_ids: HashMap<PathBuf, FileId>,
    /// Paths found missing: what is below them is missing too (a default policy names many
    /// files below directories a given host does not have).
    missing: HashSet<PathBuf>,
    /// Entries looked at one by one (the way to each rule's path), by path.
    entries: HashMap<PathBuf, Entry>,
    /// The repository git uses in the workspace, found once.
    pub(super) git: GitMemo,
    /// The entries that lead git to the repository (`GitRepo::way`), once denied.
    pub(super) git_way_denied: bool,
}

impl Resolver {
    /// What `path` names (its last component not followed), looked at once per compile. A
    /// path known to be a canonical directory, or to be missing, costs no system call.
    pub(super) fn entry(&mut self, path: &Path) -> Result<Entry, String> {
        if let Some(id) = self.dir_ids.get(path) {
            let stat = FileStat {
                id: *id,
                is_dir: true,
                is_symlink: false,
            };
            return Ok(Entry::Found(stat));
        }
        if let Some(entry) = self.entries.get(path) {
            return Ok(entry.clone());
        }
        if path.ancestors().any(|a| self.missing.contains(a)) {
            return Ok(Entry::Missing);
        }
        let cannot = |e: io::Error| format!("cannot stat {}: {e}", path.display());
        super::watch::before_entry(path);
        let entry = match entry_stat(path) {
            Ok(st) if st.is_symlink => {
                Entry::Symlink(st.id, std::fs::read_link(path).map_err(cannot)?)
            }
            Ok(st) => Entry::Found(st),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                self.missing.insert(path.to_path_buf());
                Entry::Missing
            }
            Err(e) => return Err(cannot(e)),
        };
        self.entries.insert(path.to_path_buf(), entry.clone());
        Ok(entry)
    }

    /// Notes the identity of the canonical directory `dir`.
    pub(super) fn note_dir(&mut self, dir: &Path, id: FileId) {
        self.dir_ids.insert(dir.to_path_buf(), id);
    }

    /// The identity of the canonical directory `dir`, stat'ed once per compile by `identify`.
    pub(super) fn dir_id(
        &mut self,
        dir: &Path,
        identify: impl FnOnce(&Path) -> Result<FileId, String>,
    ) -> Result<FileId, String> {
        if let Some(id) = self.dir_ids.get(dir) {
            return Ok(*id);
        }
        let id = identify(dir)?;
        self.dir_ids.insert(dir.to_path_buf(), id);
        Ok(id)
    }
}
