//! Compiled policies kept for the next request with the same inputs: a `run` repeated with the
//! same policy, home and workspace skips the compile (its lookups, the hardlink scan, the YAML
//! parse) when nothing the compile read has changed since, which `policy::watch` proves with
//! the inotify watches it placed before each read. Anything else compiles again: a change
//! seen, a compile that could not be watched in full, a policy that names hosts.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
};

use crate::policy::{
    watch::{self, Watch},
    Anchors, CompiledPolicy, PathKey,
};

/// Every input of a compile: the policy's file name and text, what its anchors mean, the
/// rules the daemon adds to it.
#[derive(PartialEq, Eq)]
pub struct Inputs {
    pub policy_file: String,
    pub policy_yaml: String,
    pub anchors: Anchors,
    pub extra: Vec<(PathKey, String)>,
}

/// Compiles kept; each holds an inotify instance (hosts allow 128 per user by default).
const ENTRIES: usize = 8;

pub struct CompileCache {
    /// Types of the filesystems whose changes this host sees; empty: reuse is off.
    trusted: Vec<String>,
    /// The daemon's own state file and its temporary name: rewritten at every attach, inside
    /// a directory every policy denies (and so watches).
    own: Vec<PathBuf>,
    entries: Mutex<VecDeque<Cached>>,
    /// Requests compiled, and requests that reused a compile (`/metrics`).
    compiled: AtomicU64,
    reused: AtomicU64,
}

struct Cached {
    key: Inputs,
    compiled: CompiledPolicy,
    watch: Watch,
}

impl CompileCache {
    pub fn new(trusted: Vec<String>, state_file: &Path) -> Self {
        Self {
            trusted,
            own: vec![
                state_file.to_path_buf(),
                crate::daemon::persist::temporary_name(state_file),
            ],
            entries: Mutex::new(VecDeque::new()),
            compiled: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// (requests compiled, requests that reused a compile).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.compiled.load(Ordering::Relaxed),
            self.reused.load(Ordering::Relaxed),
        )
    }

    /// The compile for `key` (every input of `compile`), reused while nothing it read has
    /// changed; true when it was reused.
    pub fn compile<E>(
        &self,
        key: Inputs,
        compile: impl FnOnce() -> Result<CompiledPolicy, E>,
    ) -> Result<(CompiledPolicy, bool), E> {
        if self.trusted.is_empty() {
            self.compiled.fetch_add(1, Ordering::Relaxed);
            return compile().map(|c| (c, false));
        }
        if let Some(compiled) = self.reuse(&key) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok((compiled, true));
        }
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let (compiled, watch) = watch::record(&self.trusted, &self.own, compile);
        let compiled = compiled?;
        match watch {
            Ok(watch) => {
                tracing::debug!(paths = watch.paths, "compile kept for reuse");
                let mut entries = self.entries();
                // Changed ones go too, with the events queued for them in the kernel.
                entries.retain_mut(|c| c.key != key && c.watch.unchanged().is_ok());
                entries.push_front(Cached {
                    key,
                    compiled: compiled.clone(),
                    watch,
                });
                entries.truncate(ENTRIES);
            }
            Err(why) => tracing::debug!(%why, "compile not kept for reuse"),
        }
        Ok((compiled, false))
    }

    fn reuse(&self, key: &Inputs) -> Option<CompiledPolicy> {
        let mut entries = self.entries();
        let at = entries.iter().position(|c| c.key == *key)?;
        let mut cached = entries.remove(at)?;
        if let Err(changed) = cached.watch.unchanged() {
            tracing::debug!(%changed, "compiled again");
            return None;
        }
        let compiled = cached.compiled.clone();
        entries.push_front(cached);
        Some(compiled)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<Cached>> {
        // A panic elsewhere leaves whole entries: each is replaced or checked as a unit.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
