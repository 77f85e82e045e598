//! What an `allow_write` path written from `/` means to a process in another mount namespace (a
//! container's): its own `/tmp` and `/dev/shm`, not the host's. Each is listed as that
//! namespace shows it, reached through the process's root, so a container under the default
//! policy keeps its temporary directories while its `/etc` and `/usr` stay as they are.

use std::path::{Component, Path, PathBuf};

use sandbox_common::RULE_ALLOW_WRITE;

use super::compile::CompiledPolicy;

/// Lists, for each process in `pids` (one per mount namespace that is not the daemon's), the
/// directories its namespace shows at the policy's absolute `allow_write` paths. A path with a
/// symlink on it there is left out, with a warning: the daemon would resolve the link against
/// its own root, and could list a directory of the host's.
pub fn list_allowed_in_namespaces_of(out: &mut CompiledPolicy, pids: &[u32]) {
    let absolute: Vec<(u32, String)> = out
        .rules
        .iter()
        .filter(|r| r.kind == "allow_write" && r.path.starts_with('/'))
        .map(|r| (r.id, r.path.clone()))
        .collect();
    for &pid in pids {
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        for (rule_id, written) in &absolute {
            match their_directory(&root, Path::new(written)) {
                Ok(None) => {}
                Ok(Some(path)) => match out.identify_stat(&path) {
                    // Checked again after the stat, which follows links: a link swapped in
                    // meanwhile shows as another inode.
                    Ok(stat) if unchanged(&path, stat.id) => {
                        out.add_inode(stat.id, RULE_ALLOW_WRITE, *rule_id)
                    }
                    Ok(_) => out.warnings.push(format!(
                        "allow_write {written}: {} changed while it was read: not listed",
                        path.display()
                    )),
                    Err(e) => out.warnings.push(format!(
                        "allow_write {written} in process {pid}'s view: {e}"
                    )),
                },
                Err(why) => out.warnings.push(format!(
                    "allow_write {written} in process {pid}'s view: {why}: not listed"
                )),
            }
        }
    }
}

/// `written` below `root` when every component on the way is there and none is a symlink;
/// None when it does not exist there.
fn their_directory(root: &Path, written: &Path) -> Result<Option<PathBuf>, String> {
    let mut path = root.to_path_buf();
    for component in written.components() {
        match component {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(name) => path.push(name),
            _ => return Err("it is not a plain absolute path".into()),
        }
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(format!("{} is a symlink", path.display()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(Some(path))
}

/// Whether `path`, not followed, is still the inode `id` a stat found.
fn unchanged(path: &Path, id: crate::identity::FileId) -> bool {
    crate::identity::entry_stat(path).is_ok_and(|now| now.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_on_the_way_is_never_followed_and_a_missing_path_lists_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("dev/shm")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("var")).unwrap();
        assert_eq!(
            their_directory(root.path(), Path::new("/dev/shm")),
            Ok(Some(root.path().join("dev/shm")))
        );
        // Resolved by the daemon, `/var` would lead to its own /etc.
        let err = their_directory(root.path(), Path::new("/var/tmp")).unwrap_err();
        assert!(err.ends_with("var is a symlink"), "{err}");
        assert_eq!(their_directory(root.path(), Path::new("/tmp")), Ok(None));
    }
}
