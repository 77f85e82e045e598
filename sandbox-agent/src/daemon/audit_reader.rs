//! Drains the kernel's audit ring buffer into the audit log, and turns the kernel's exact
//! suppression counts into "N events suppressed" records once a second.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use aya::maps::{HashMap, Map, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use sandbox_common::{AuditEvent, AuditRate};
use tokio::io::unix::AsyncFd;

use super::DaemonState;
use crate::{
    audit::{self, AuditLog, Clock, TimeText},
    mounts::MountTable,
};

pub struct AuditMaps {
    pub events: Map,
    pub drops: Map,
    pub rates: Map,
    pub suppressed: Map,
}

/// The per-CPU suppression counts, summed per policy id.
fn suppressed_totals(map: &PerCpuHashMap<MapData, u32, u64>) -> BTreeMap<u32, u64> {
    map.iter()
        .filter_map(Result::ok)
        .map(|(id, per_cpu)| (id, per_cpu.iter().sum()))
        .collect()
}

pub async fn run(
    maps: AuditMaps,
    log: AuditLog,
    state: Arc<Mutex<DaemonState>>,
) -> anyhow::Result<()> {
    let ring = RingBuf::try_from(maps.events).context("EVENTS is not a ring buffer")?;
    let drops: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(maps.drops).context("EVENT_DROPS is not a per-CPU array")?;
    let mut buckets = Buckets {
        rates: HashMap::try_from(maps.rates).context("AUDIT_RATE is not a hash map")?,
        suppressed: PerCpuHashMap::try_from(maps.suppressed)
            .context("AUDIT_SUPPRESSED is not a per-CPU hash map")?,
        reported: BTreeMap::new(),
    };
    // Suppressions already written to the log. Starts at the kernel's counts: a restarted
    // daemon does not report again what its predecessor reported.
    buckets.reported = suppressed_totals(&buckets.suppressed);
    let mut sink = Sink {
        times: TimeText::new(Clock::now()),
        mounts: MountTable::read(),
        log,
    };
    // SAFETY: the ring buffer owns its descriptor and is moved into the AsyncFd, so the fd stays
    // open and is not reused for as long as it is registered.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("poll ring buffer: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut sink, &state)?;
                guard.clear_ready();
            }
            _ = tick.tick() => {
                // Events sent before a count was taken are in the ring: drain them first, so
                // the log's order matches the kernel's.
                drain(fd.get_mut(), &mut sink, &state)?;
                buckets.report(&mut sink.log, &state)?;
                let dropped: u64 = drops.get(&0, 0).map(|v| v.iter().sum()).unwrap_or_default();
                if let Ok(mut s) = state.lock() {
                    s.counters.dropped = dropped;
                }
            }
        }
    }
}

/// Shortest time between two reads of the mount table.
const MOUNTS_REREAD_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Records decoded under one lock and written with one `write`: a flood costs a lock and a
/// system call per batch, not per record, and control requests still get the lock between
/// batches.
const DRAIN_BATCH: usize = 1024;

/// What a drain needs besides the ring: where records go and what completes them.
struct Sink {
    times: TimeText,
    mounts: MountTable,
    log: AuditLog,
}

fn drain(
    ring: &mut RingBuf<MapData>,
    sink: &mut Sink,
    state: &Mutex<DaemonState>,
) -> anyhow::Result<()> {
    loop {
        let mut taken = 0;
        // The first failure of a batch is reported: a log that cannot rotate fails every line.
        let mut failed = None;
        {
            let mut s = state
                .lock()
                .map_err(|_| anyhow::anyhow!("state poisoned"))?;
            // A flood is mostly the same few rules: each described once per batch.
            let mut described = BTreeMap::new();
            while taken < DRAIN_BATCH {
                let Some(item) = ring.next() else {
                    break;
                };
                taken += 1;
                let Some(event) = event_in(&item) else {
                    tracing::warn!("short audit event ({} bytes) ignored", item.len());
                    continue;
                };
                let ctx = described
                    .entry((event.policy_id, event.rule_id))
                    .or_insert_with(|| s.describe(event.policy_id, event.rule_id));
                // Built where it is written, borrowing the event and the descriptions: no
                // record is moved or kept.
                let mut record = audit::decode(&event, sink.times.at(event.time_ns), ctx);
                locate(&mut record, event.dev, &mut sink.mounts);
                s.counters.logged(&event, &record);
                tracing::debug!("{}", audit::format_line(&record));
                if let Err(e) = sink.log.push(&record) {
                    failed.get_or_insert(e);
                }
            }
        }
        if taken == 0 {
            return Ok(());
        }
        if let Some(e) = sink.log.flush().err().or(failed) {
            tracing::error!("cannot append to {}: {e}", sink.log.path().display());
        }
    }
}

/// The event in a ring buffer item: read in place when aligned (the ring keeps records 8-byte
/// aligned), copied otherwise; None when the item is too short to hold one.
fn event_in(item: &[u8]) -> Option<Cow<'_, AuditEvent>> {
    if item.len() < std::mem::size_of::<AuditEvent>() {
        return None;
    }
    let ptr = item.as_ptr().cast::<AuditEvent>();
    if ptr.is_aligned() {
        // SAFETY: aligned and long enough (checked above); every bit pattern is an AuditEvent
        // (integers and byte arrays only); the item is not written while borrowed (the kernel
        // reuses the space only after the consumer moves past it, when the item is dropped).
        Some(Cow::Borrowed(unsafe { &*ptr }))
    } else {
        // SAFETY: long enough (checked above); read_unaligned copes with any alignment.
        Some(Cow::Owned(unsafe { std::ptr::read_unaligned(ptr) }))
    }
}

/// A file's path as seen from the daemon's mounts.
fn locate(record: &mut audit::AuditRecord, dev: u32, mounts: &mut MountTable) {
    let Some(path) = record.target.path.as_mut() else {
        return;
    };
    if !mounts.knows(dev) && mounts.age() > MOUNTS_REREAD_AFTER {
        // Mounted since the table was read (or in another namespace: at most once a second,
        // not for every event). Under the state lock: a read of /proc/self/mountinfo.
        *mounts = MountTable::read();
    }
    let located = match mounts.locate(dev, path) {
        Cow::Owned(located) => Some(located),
        Cow::Borrowed(_) => None,
    };
    if let Some(located) = located {
        *path = Cow::Owned(located);
    }
}

struct Buckets {
    rates: HashMap<MapData, u32, AuditRate>,
    suppressed: PerCpuHashMap<MapData, u32, u64>,
    /// Suppressions already in the log, per policy id.
    reported: BTreeMap<u32, u64>,
}

impl Buckets {
    /// Writes one record per policy whose suppression count grew, and removes the buckets and
    /// counts of generations no longer attached once their last count is in the log.
    fn report(&mut self, log: &mut AuditLog, state: &Mutex<DaemonState>) -> anyhow::Result<()> {
        let totals = suppressed_totals(&self.suppressed);
        let mut ids: Vec<u32> = totals.keys().copied().collect();
        ids.extend(self.rates.keys().filter_map(Result::ok));
        ids.sort_unstable();
        ids.dedup();
        for policy_id in ids {
            let total = totals.get(&policy_id).copied().unwrap_or(0);
            let already = self.reported.get(&policy_id).copied().unwrap_or(0);
            let (ctx, attached) = {
                let mut s = state
                    .lock()
                    .map_err(|_| anyhow::anyhow!("state poisoned"))?;
                let ctx = s.describe(policy_id, u32::MAX);
                if total > already {
                    s.counters
                        .suppressed(policy_id, ctx.policy.as_deref(), total - already);
                }
                (ctx, s.is_attached(policy_id))
            };
            if total > already {
                let record = audit::suppressed_record(SystemTime::now(), &ctx, total - already);
                if let Err(e) = log.append(&record) {
                    tracing::error!("cannot append to {}: {e}", log.path().display());
                }
                self.reported.insert(policy_id, total);
            }
            if !attached {
                let _ = self.rates.remove(&policy_id);
                let _ = self.suppressed.remove(&policy_id);
                self.reported.remove(&policy_id);
            }
        }
        Ok(())
    }
}
