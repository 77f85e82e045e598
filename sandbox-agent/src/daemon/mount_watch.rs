//! A mount made, removed or replaced below a directory rule after the attach (an automount, a
//! container runtime, an administrator; a confined task may not mount) changes what the rule
//! must cover: the daemon waits on its mount table, which the kernel marks at every change, and
//! compiles such an attachment again, switching it like any re-attach (a new generation,
//! flipped in one map update).

use std::{
    io,
    sync::{Arc, Mutex},
};

use tokio::io::{unix::AsyncFd, Interest};

use super::{prepare::again_off_thread, DaemonState};
use crate::mounts::MountIndex;

pub async fn run(state: Arc<Mutex<DaemonState>>) {
    if let Err(e) = watch(state).await {
        tracing::error!(
            "cannot watch /proc/self/mountinfo ({e}): a mount made below a policy's directory \
             after its attach is covered only once the policy is attached again"
        );
    }
}

async fn watch(state: Arc<Mutex<DaemonState>>) -> io::Result<()> {
    let table = std::fs::File::open("/proc/self/mountinfo")?;
    // The kernel reports a change of the mount table as POLLPRI on this file.
    // SAFETY: the AsyncFd owns the File, which keeps its one descriptor open and unchanged
    // until the AsyncFd is dropped.
    let table = unsafe { AsyncFd::register_with_interest(table, Interest::PRIORITY) }
        .map_err(io::Error::from)?;
    // First the attachments an earlier daemon left: mounts may have changed while none
    // watched.
    let mut waited = false;
    loop {
        if waited {
            let mut ready = table.ready(Interest::PRIORITY).await?;
            ready.clear_ready();
        }
        waited = true;
        let Ok(jobs) = state.lock().map(|s| (s.with_mounts_below(), s.protected())) else {
            return Ok(());
        };
        let (jobs, protected) = jobs;
        if jobs.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        // The checks read identities: off the runtime's threads, and without the state.
        let changed = tokio::task::spawn_blocking(move || {
            let entries: Vec<_> = crate::mounts::entries(&text).collect();
            let index = MountIndex::new(&entries);
            jobs.into_iter()
                .filter(|(_, below)| below.changed(&index))
                .map(|(saved, _)| saved)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for saved in changed {
            let prepared = match again_off_thread(&saved, &protected).await {
                Ok(prepared) => prepared,
                Err(e) => {
                    tracing::warn!(cgroup = %saved.cgroup.display(), "the mounts below the policy's directories changed, and compiling it again failed: {e}");
                    continue;
                }
            };
            let Ok(mut s) = state.lock() else {
                return Ok(());
            };
            match s.refresh(&saved, prepared) {
                Ok(()) => tracing::info!(
                    cgroup = %saved.cgroup.display(),
                    "the mounts below the policy's directories changed: policy switched"
                ),
                Err(e) => tracing::warn!(
                    cgroup = %saved.cgroup.display(),
                    "the mounts below the policy's directories changed, and the switch failed: {e}"
                ),
            }
        }
    }
}
