//! Drains the kernel's audit ring buffer into the audit log.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use sandbox_common::AuditEvent;
use tokio::io::unix::AsyncFd;

use super::DaemonState;
use crate::audit::{self, AuditLog, Clock};

pub async fn run(
    events: Map,
    drops: Map,
    mut log: AuditLog,
    state: Arc<Mutex<DaemonState>>,
) -> anyhow::Result<()> {
    let ring = RingBuf::try_from(events).context("EVENTS is not a ring buffer")?;
    let drops: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(drops).context("EVENT_DROPS is not a per-CPU array")?;
    let clock = Clock::now();
    // SAFETY: the ring buffer owns its descriptor and is moved into the AsyncFd, so the fd stays
    // open and is not reused for as long as it is registered.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("poll ring buffer: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<AuditEvent>() {
                tracing::warn!("short audit event ({} bytes) ignored", item.len());
                continue;
            }
            // SAFETY: the kernel wrote a whole AuditEvent (length checked above); read_unaligned
            // copes with the ring buffer's 8-byte alignment.
            let event: AuditEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let record = {
                let mut s = state
                    .lock()
                    .map_err(|_| anyhow::anyhow!("state poisoned"))?;
                let ctx = s.describe(event.policy_id, event.rule_id);
                s.events_logged += 1;
                audit::decode(&event, &clock, &ctx)
            };
            tracing::info!("{}", audit::format_line(&record));
            if let Err(e) = log.append(&record) {
                tracing::error!("cannot append to {}: {e}", log.path().display());
            }
        }
        guard.clear_ready();
        let dropped: u64 = drops.get(&0, 0).map(|v| v.iter().sum()).unwrap_or_default();
        if let Ok(mut s) = state.lock() {
            s.events_dropped = dropped;
        }
    }
}
