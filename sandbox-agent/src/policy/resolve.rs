//! Resolving a compile's rule paths with each directory resolved once: a policy of 10,000 files
//! in a few directories made `realpath` walk (one `readlink` per component) and stat the same
//! parents 10,000 times.

use std::{
    collections::{HashMap, HashSet},
    io,
    path::{Path, PathBuf},
};

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
    /// Directory as the rule wrote it (lexically normalized) -> its canonical path.
    canonical_dirs: HashMap<PathBuf, PathBuf>,
    /// Canonical directory -> its identity.
    dir_ids: HashMap<PathBuf, FileId>,
    /// Paths found missing: what is below them is missing too (a default policy names many
    /// files below directories a given host does not have).
    missing: HashSet<PathBuf>,
    /// Entries looked at one by one (the way to each rule's path), by path.
    entries: HashMap<PathBuf, Entry>,
}

impl Resolver {
    /// `std::fs::canonicalize` of a lexically normalized path: `dir/name` resolves to `dir`'s
    /// canonical path joined with `name` whenever `name` itself is not a symlink, which one
    /// `readlink` tells (EINVAL: it exists and is not one).
    pub(super) fn canonicalize(&mut self, path: &Path) -> io::Result<PathBuf> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return std::fs::canonicalize(path);
        };
        if let Some(canonical) = self.canonical_dirs.get(path) {
            return Ok(canonical.clone());
        }
        if path.ancestors().any(|a| self.missing.contains(a)) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let seen_no_symlink = matches!(self.entries.get(path), Some(Entry::Found(_)));
        match std::fs::read_link(path) {
            _ if seen_no_symlink => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Ok(_) => return std::fs::canonicalize(path),
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    self.missing.insert(path.to_path_buf());
                }
                return Err(e);
            }
        }
        if let Some(canonical) = self.canonical_dirs.get(dir) {
            return Ok(canonical.join(name));
        }
        let canonical = std::fs::canonicalize(dir)?;
        self.canonical_dirs
            .insert(dir.to_path_buf(), canonical.clone());
        Ok(canonical.join(name))
    }

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

    /// Notes that `dir` (identity `id`) is canonical: it was reached from a canonical directory
    /// by a name that is no symlink.
    pub(super) fn note_canonical_dir(&mut self, dir: &Path, id: FileId) {
        self.canonical_dirs
            .insert(dir.to_path_buf(), dir.to_path_buf());
        self.dir_ids.insert(dir.to_path_buf(), id);
    }

    /// What a stat of `path` (following symlinks) said, if this compile made one already.
    pub(super) fn known_stat(&self, path: &Path) -> Option<FileStat> {
        match self.entries.get(path) {
            Some(Entry::Found(stat)) => Some(*stat),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of path a rule can name resolves as `realpath` would, before and after its
    /// directory is in the memo.
    #[test]
    fn resolves_as_realpath_does() {
        let root = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(root.path()).unwrap();
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("file"), "x").unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, base.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("file", real.join("filelink")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-target", real.join("dangling")).unwrap();
        let mut r = Resolver::default();
        for _pass in 0..2 {
            for p in [
                "real/file",
                "real/sub",
                "real/filelink",
                "dirlink/file",
                "dirlink/filelink",
                "dirlink/sub",
                "real",
            ] {
                let path = base.join(p);
                assert_eq!(
                    r.canonicalize(&path).unwrap(),
                    std::fs::canonicalize(&path).unwrap(),
                    "{p}"
                );
            }
            for p in [
                "real/missing",
                "missing/file",
                "real/dangling",
                "real/file/x",
            ] {
                let path = base.join(p);
                assert_eq!(
                    r.canonicalize(&path).map_err(|e| e.kind()),
                    std::fs::canonicalize(&path).map_err(|e| e.kind()),
                    "{p}"
                );
            }
        }
        assert_eq!(r.canonicalize(Path::new("/")).unwrap(), PathBuf::from("/"));
    }
}
