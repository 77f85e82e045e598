//! Containers by ID: the cgroup a runtime made for a container, found by the names the runtimes
//! give them, under the systemd and the cgroupfs drivers:
//!
//! | runtime | systemd driver | cgroupfs driver |
//! |---|---|---|
//! | podman (crun, runc) | `machine.slice/libpod-<id>.scope` | `machine.slice/libpod-<id>` (or under `libpod_parent/`) |
//! | Docker (containerd) | `system.slice/docker-<id>.scope` | `docker/<id>` |
//! | containerd CRI (Kubernetes) | `kubepods.slice/.../cri-containerd-<id>.scope` | `kubepods/.../<id>` |
//! | CRI-O | `.../crio-<id>.scope` | `.../crio-<id>` |
//!
//! One module, so a Kubernetes integration can resolve pods' containers the same way.

use std::path::{Path, PathBuf};

/// A container ID is 64 hexadecimal digits; a prefix of at least this many names one, as the
/// runtimes' short IDs do.
pub const MIN_PREFIX: usize = 12;
const FULL_ID: usize = 64;

/// Cgroup name prefixes of the runtimes (`libpod-conmon-<id>` is podman's monitor, not the
/// container: what follows `libpod-` there is not an ID, so it never matches).
const RUNTIME_PREFIXES: [&str; 4] = ["libpod-", "docker-", "cri-containerd-", "crio-"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContainerError {
    #[error(
        "{0:?} is not a container ID: give at least {MIN_PREFIX} of its hexadecimal digits (`podman ps`, `docker ps`); names are not resolved"
    )]
    NotAnId(String),
    #[error(
        "no container with ID {id} has a cgroup under {root} (is it running? podman, Docker, containerd and CRI-O cgroups are recognised)"
    )]
    NotFound { id: String, root: PathBuf },
    #[error("container ID {id} is ambiguous: it begins {}; give more digits", .matches.join(", "))]
    Ambiguous { id: String, matches: Vec<String> },
}

/// The container ID a cgroup directory's name carries, if it is a container's cgroup.
pub fn id_of(dir_name: &str) -> Option<&str> {
    let name = dir_name.strip_suffix(".scope").unwrap_or(dir_name);
    let id = RUNTIME_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    (id.len() == FULL_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(id)
}

/// The cgroup of the one running container whose ID begins with `id`, searched below `root`
/// (`/sys/fs/cgroup`). A container's own sub-cgroups (crun's `container`, a nested match of the
/// same ID) are inside the one returned, which covers them.
pub fn resolve(root: &Path, id: &str) -> Result<PathBuf, ContainerError> {
    let want = id.to_ascii_lowercase();
    if want.len() < MIN_PREFIX
        || want.len() > FULL_ID
        || !want.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ContainerError::NotAnId(id.to_string()));
    }
    let mut found: Vec<(String, PathBuf)> = crate::cgroup::subtree(root)
        .into_iter()
        .filter_map(|dir| {
            let full = id_of(dir.file_name()?.to_str()?)?.to_string();
            full.starts_with(&want).then_some((full, dir))
        })
        .collect();
    // Shortest path first: an outer cgroup of an ID comes before any nested one.
    found.sort_by_key(|(_, dir)| dir.components().count());
    let mut outermost: Vec<(String, PathBuf)> = Vec::new();
    for (full, dir) in found {
        if !outermost
            .iter()
            .any(|(f, d)| *f == full && dir.starts_with(d))
        {
            outermost.push((full, dir));
        }
    }
    match outermost.len() {
        0 => Err(ContainerError::NotFound {
            id: id.to_string(),
            root: root.to_path_buf(),
        }),
        1 => Ok(outermost.remove(0).1),
        _ => Err(ContainerError::Ambiguous {
            id: id.to_string(),
            matches: outermost
                .iter()
                .map(|(full, dir)| format!("{} ({})", &full[..MIN_PREFIX], dir.display()))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3f1c2b7d9e0a4b5c6d7e8f90112233445566778899aabbccddeeff0011223344";
    const B: &str = "3f1c2b7d9e0a0000000000000000000000000000000000000000000000000000";

    fn tree(dirs: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for d in dirs {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        root
    }

    #[test]
    fn every_runtime_layout_names_its_container() {
        for name in [
            format!("libpod-{A}.scope"),
            format!("libpod-{A}"),
            format!("docker-{A}.scope"),
            A.to_string(),
            format!("cri-containerd-{A}.scope"),
            format!("crio-{A}.scope"),
            format!("crio-{A}"),
        ] {
            assert_eq!(id_of(&name), Some(A), "{name}");
        }
        for name in [
            format!("libpod-conmon-{A}.scope"),
            "machine.slice".to_string(),
            format!("libpod-{}", &A[..63]),
            format!("libpod-{}", A.to_uppercase()),
            "container".to_string(),
        ] {
            assert_eq!(id_of(&name), None, "{name}");
        }
    }

    #[test]
    fn a_short_id_finds_the_outermost_cgroup_and_skips_the_monitor() {
        let root = tree(&[
            &format!("machine.slice/libpod-conmon-{A}.scope"),
            &format!("machine.slice/libpod-{A}.scope/container"),
            &format!("machine.slice/libpod-{B}.scope"),
        ]);
        let want = root.path().join(format!("machine.slice/libpod-{A}.scope"));
        assert_eq!(resolve(root.path(), &A[..16]), Ok(want.clone()));
        assert_eq!(resolve(root.path(), &A.to_uppercase()), Ok(want));
        let docker = tree(&[
            &format!("docker/{A}"),
            &format!("system.slice/docker-{B}.scope"),
        ]);
        assert_eq!(
            resolve(docker.path(), &A[..13]),
            Ok(docker.path().join(format!("docker/{A}")))
        );
    }

    #[test]
    fn no_match_two_matches_and_non_ids_are_clear_errors() {
        let root = tree(&[
            &format!("machine.slice/libpod-{A}.scope"),
            &format!("system.slice/docker-{B}.scope"),
        ]);
        let ambiguous = resolve(root.path(), &A[..12]).unwrap_err();
        assert!(
            matches!(&ambiguous, ContainerError::Ambiguous { matches, .. } if matches.len() == 2),
            "{ambiguous}"
        );
        assert!(
            ambiguous.to_string().contains("give more digits"),
            "{ambiguous}"
        );
        let missing = resolve(root.path(), "0123456789abcdef").unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("no container with ID 0123456789abcdef"));
        for bad in ["web", "3f1c2b7d9e0", "3f1c2b7d9e0a4b5z", &format!("{A}0")] {
            assert_eq!(
                resolve(root.path(), bad),
                Err(ContainerError::NotAnId(bad.to_string()))
            );
        }
    }
}
