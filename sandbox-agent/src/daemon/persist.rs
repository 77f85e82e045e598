//! The attachment table on disk, so a restarted daemon knows what the pinned maps enforce:
//! which cgroup, which policy text, which home. Written atomically (temporary file, fsync,
//! rename) after every change; a crash leaves the old or the new table, never a torn one.

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::protocol::RunOwner;

const STATE_VERSION: u32 = 1;

/// One attachment as the daemon made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedAttachment {
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub policy_id: u32,
    pub policy_file: String,
    pub policy_yaml: String,
    pub home: PathBuf,
    #[serde(default)]
    pub workspace: Option<PathBuf>,
    /// The `run` client that made this attachment, if `run` did: its transient cgroup is
    /// removed once that client is gone and the cgroup is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_by: Option<RunOwner>,
    /// Unix sockets `run` denied on top of the policy (the ssh-agent its environment named):
    /// every recompile (host names moving, a restarted daemon describing it) keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_sockets: Vec<PathBuf>,
    /// The developer's caches `run` found moved by their variables (`own_caches`), denied on
    /// top of the policy the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_caches: Vec<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    version: u32,
    attachments: Vec<SavedAttachment>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a state file this daemon understands: {message}")]
    Format { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// The saved attachments; none when there is no file yet.
    pub fn load(&self) -> Result<Vec<SavedAttachment>, StateFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateFileError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let state: SavedState =
            serde_json::from_str(&text).map_err(|e| StateFileError::Format {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        if state.version != STATE_VERSION {
            return Err(StateFileError::Format {
                path: self.path.clone(),
                message: format!("version {} (expected {STATE_VERSION})", state.version),
            });
        }
        Ok(state.attachments)
    }

    pub fn save(&self, attachments: &[SavedAttachment]) -> Result<(), StateFileError> {
        let write_err = |source| StateFileError::Write {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&SavedState {
            version: STATE_VERSION,
            attachments: attachments.to_vec(),
        })
        .map_err(|e| write_err(io::Error::other(e)))?;
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let tmp = temporary_name(&self.path);
        let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(&json).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)?;
        // The rename itself is durable once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err)
    }

    /// Removes the file (cleanup); a missing file is fine.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Where `save` writes the table before renaming it over the state file.
pub(super) fn temporary_name(state_file: &Path) -> PathBuf {
    state_file.with_extension("json.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(id: u64) -> SavedAttachment {
        SavedAttachment {
            cgroup: PathBuf::from(format!("/sys/fs/cgroup/a{id}")),
            cgroup_id: id,
            policy_id: 7,
            policy_file: "p.yaml".into(),
            policy_yaml: "name: p\n".into(),
            home: PathBuf::from("/home/a"),
            workspace: None,
            run_by: None,
            deny_sockets: if id.is_multiple_of(2) {
                vec![PathBuf::from("/tmp/ssh-x/agent.1")]
            } else {
                vec![]
            },
            deny_caches: if id.is_multiple_of(2) {
                vec![PathBuf::from("/data/cache/pip")]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(&dir.path().join("sub/state.json"));
        assert_eq!(f.load().unwrap(), vec![], "no file yet: nothing saved");
        f.save(&[saved(1), saved(2)]).unwrap();
        f.save(&[saved(2)]).unwrap();
        assert_eq!(f.load().unwrap(), vec![saved(2)]);
        assert!(!dir.path().join("sub/state.json.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"version\": 1, \"attach").unwrap();
        let e = StateFile::new(&path).load().unwrap_err();
        assert!(e.to_string().contains("state.json"), "{e}");
    }
}
