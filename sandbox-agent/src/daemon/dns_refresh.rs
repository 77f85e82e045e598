//! Host names in network rules are resolved at attach; this task resolves them again
//! periodically and switches an attachment to the new addresses (a new generation, flipped in
//! one map update, like any re-attach) when they changed. A name that stops resolving in a deny
//! rule makes the recompile fail: the old addresses then stay denied.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{prepare::again_off_thread, DaemonState};

pub async fn run(state: Arc<Mutex<DaemonState>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    // The first tick is immediate: attachments were just resolved.
    tick.tick().await;
    loop {
        tick.tick().await;
        let (jobs, protected) = match state.lock() {
            Ok(s) => (s.with_host_names(), s.protected()),
            Err(_) => return,
        };
        for (saved, rules_then) in jobs {
            // DNS can block for seconds: resolve without holding the state.
            let prepared = match again_off_thread(&saved, &protected).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(cgroup = %saved.cgroup.display(), "host names not refreshed: {e}");
                    continue;
                }
            };
            if prepared.compiled.net_rules == rules_then {
                continue;
            }
            let Ok(mut s) = state.lock() else { return };
            match s.refresh(&saved, prepared) {
                Ok(()) => {
                    tracing::info!(cgroup = %saved.cgroup.display(), "host names resolved to new addresses: policy switched")
                }
                Err(e) => {
                    tracing::warn!(cgroup = %saved.cgroup.display(), "host names not refreshed: {e}")
                }
            }
        }
    }
}
