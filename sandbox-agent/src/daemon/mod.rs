//! `sandbox-agent daemon`: loads and pins the programs, serves the control socket, and writes
//! audit events to the log.

mod attachment;
mod audit_reader;
mod compile_cache;
mod dns_refresh;
mod local_addrs;
mod metrics;
mod mount_watch;
mod peer;
mod persist;
mod pin_keeper;
mod prepare;
mod requests;
mod runs;
mod server;
mod state;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use sandbox_common::{
    AuditRateLimit, MAP_AUDIT_RATE, MAP_AUDIT_SUPPRESSED, MAP_DAEMON_PORT, MAP_EVENTS,
    MAP_EVENT_DROPS, MAP_LOCAL_ADDRS,
};

use crate::{
    audit::AuditLog,
    bpf::{loader, policy_maps::PolicyMaps},
};

pub use state::DaemonState;

pub struct DaemonOptions {
    pub socket: PathBuf,
    pub bpffs: PathBuf,
    pub audit_log: PathBuf,
    /// The attachment table, for a restarted daemon.
    pub state_file: PathBuf,
    /// Members of this group may change policy like root.
    pub control_gid: Option<u32>,
    /// What every policy keeps from confined processes.
    pub protected: Protected,
    /// Audit events per policy: a token bucket in the kernel.
    pub audit_rate: AuditRateLimit,
    /// Rotate the audit log past this size, keeping this many old files.
    pub audit_log_max_bytes: u64,
    pub audit_log_keep: u32,
    /// Re-resolve the host names of attached policies this often; None: only at attach.
    pub dns_refresh: Option<std::time::Duration>,
    /// Serve Prometheus metrics here (`GET /metrics`); None: no listener.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Turn on the cgroup2 mount's `favordynmods` (see `cgroup_mount`).
    pub cgroup_favordynmods: bool,
    /// Types of the filesystems on which a compile may be reused (`compile_cache`); empty:
    /// every request compiles.
    pub compile_reuse: Vec<String>,
}

/// The daemon's own files and sockets, out of every confined process's reach.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    /// Files and directories (config, audit log, state): no confined process may open or
    /// change them, so it cannot read the config or tamper with the log.
    pub files: Vec<PathBuf>,
    /// The control socket: no confined process may connect or send to it.
    pub sockets: Vec<PathBuf>,
}

/// `daemon --cleanup`: removes every pin (links, so the programs detach, and maps, so every
/// attachment goes) and the attachment table. Enforcement stops: this is the deliberate off
/// switch, refused while a daemon is serving.
pub fn cleanup(opts: &DaemonOptions) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(&opts.socket).is_ok() {
        anyhow::bail!(
            "a daemon is serving {}; stop it before --cleanup",
            opts.socket.display()
        );
    }
    match std::fs::remove_dir_all(&opts.bpffs) {
        Ok(()) => println!(
            "removed {}: programs detached, all attachments gone",
            opts.bpffs.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing pinned at {}", opts.bpffs.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", opts.bpffs.display())),
    }
    persist::StateFile::new(&opts.state_file)
        .remove()
        .with_context(|| format!("cannot remove {}", opts.state_file.display()))?;
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}

/// How often the daemon looks for runs whose client is gone and whose command has ended.
const RUN_SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes the transient cgroups of `run` clients that died (killed, crashed) once their
/// commands have ended too; the first pass (right after start) also covers runs adopted from an
/// earlier daemon.
async fn sweep_runs(state: Arc<Mutex<DaemonState>>) {
    let mut tick = tokio::time::interval(RUN_SWEEP_PERIOD);
    loop {
        tick.tick().await;
        let state = state.clone();
        let swept = tokio::task::spawn_blocking(move || requests::sweep_runs(&state)).await;
        if !matches!(swept, Ok(Ok(()))) {
            return;
        }
    }
}

/// How often the daemon checks that its pins are still in bpffs.
const PIN_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Puts back pins someone outside removed, loudly; counted in `status`.
async fn keep_pins(mut keeper: pin_keeper::PinKeeper, state: Arc<Mutex<DaemonState>>) {
    let mut tick = tokio::time::interval(PIN_CHECK_PERIOD);
    loop {
        tick.tick().await;
        let outcome = keeper.restore();
        if outcome.is_empty() {
            continue;
        }
        let mut restored = 0;
        for result in &outcome {
            match result {
                Ok(pin) => {
                    restored += 1;
                    tracing::error!(
                        pin = %pin.display(),
                        "a pin of the enforcer was removed from bpffs (by someone outside every \
                         sandbox); pinned it again"
                    );
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        match state.lock() {
            Ok(mut s) => s.counters.pins_restored += restored,
            Err(_) => return,
        }
    }
}

/// Returns the allocator's free pages to the kernel (glibc keeps freed small allocations in
/// its heaps, where they count as the daemon's memory): after loading, and after each request
/// that compiled or dropped a policy.
pub(super) fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory no allocation uses; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
    let pins = loader::PinLayout::new(&opts.bpffs);
    // Refuse to start (and so to accept any attach) unless the kernel really enforces.
    tracing::info!("loading the BPF LSM programs (the kernel verifies them; slow in emulated VMs)");
    let started = std::time::Instant::now();
    let mut ebpf = loader::load(&pins.maps(), &opts.audit_rate)?;
    tracing::info!("programs verified and loaded in {:.1?}", started.elapsed());
    let maps = PolicyMaps::new(&mut ebpf)?;
    loader::attach_and_pin(&mut ebpf, &pins.links())?;
    if opts.cgroup_favordynmods {
        favor_dynamic_moves();
    }
    let keeper = pin_keeper::PinKeeper::open(&pins)?;
    let mut take = |name: &str| {
        ebpf.take_map(name)
            .with_context(|| format!("map {name} missing from the eBPF object"))
    };
    let audit_maps = audit_reader::AuditMaps {
        events: take(MAP_EVENTS)?,
        drops: take(MAP_EVENT_DROPS)?,
        rates: take(MAP_AUDIT_RATE)?,
        suppressed: take(MAP_AUDIT_SUPPRESSED)?,
    };
    // Before the first attach: a connect to the host's own address is decided from the start.
    let local_addrs = local_addrs::LocalAddrs::new(take(MAP_LOCAL_ADDRS)?)?;
    metrics::guard_port(
        take(MAP_DAEMON_PORT)?,
        opts.metrics_listen.map(|a| a.port()),
    )?;
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let program_ids = loader::program_ids(&ebpf);
    let log = AuditLog::open(
        &opts.audit_log,
        opts.audit_log_max_bytes,
        opts.audit_log_keep,
    )
    .with_context(|| format!("cannot open audit log {}", opts.audit_log.display()))?;

    let state = Arc::new(Mutex::new(DaemonState::new(maps, &opts)));
    // Loading parsed the kernel's type information twice (tens of MiB in small allocations,
    // all freed by now): hand the pages back, or the idle daemon keeps them.
    release_free_heap();
    let listener = server::bind(&opts.socket)?;
    match server::raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(e) => tracing::warn!("cannot raise the limit on open files: {e}"),
    }
    tracing::info!(
        socket = %opts.socket.display(),
        bpffs = %opts.bpffs.display(),
        audit_log = %opts.audit_log.display(),
        "enforcing: BPF LSM programs attached and pinned"
    );
    let audit = tokio::spawn(audit_reader::run(audit_maps, log, state.clone()));
    let serve = tokio::spawn(server::serve(listener, state.clone()));
    tokio::spawn(sweep_runs(state.clone()));
    tokio::spawn(keep_pins(keeper, state.clone()));
    tokio::spawn(local_addrs::run(local_addrs));
    tokio::spawn(mount_watch::run(state.clone()));
    let metrics = async {
        match metrics_listener {
            Some(listener) => {
                tracing::info!(listen = ?opts.metrics_listen, "serving GET /metrics");
                metrics::serve(listener, state.clone(), program_ids).await
            }
            None => std::future::pending().await,
        }
    };
    if let Some(every) = opts.dns_refresh {
        tokio::spawn(dns_refresh::run(state.clone(), every));
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        r = audit => r.context("audit reader stopped")??,
        r = serve => r.context("control server stopped")??,
        r = metrics => r.context("metrics listener stopped")?,
    }
    let _ = std::fs::remove_file(&opts.socket);
    // `ebpf` is dropped here; the pinned links keep enforcement in place.
    tracing::info!("daemon stopping; pinned programs keep enforcing attached policies");
    drop(ebpf);
    Ok(())
}

/// A run's command enters its cgroup at the cost of an RCU grace period unless the cgroup2
/// mount has `favordynmods`: turned on here, once enforcement is in place. Start-up speed
/// only, so a failure is a warning.
fn favor_dynamic_moves() {
    let root = std::path::Path::new(crate::cgroup::CGROUP_ROOT);
    match crate::cgroup_mount::favor_dynamic_moves(root) {
        Ok(crate::cgroup_mount::Outcome::AlreadyOn) => {}
        Ok(crate::cgroup_mount::Outcome::TurnedOn(kept)) => tracing::info!(
            kept = %kept.join(","),
            "cgroup2 at {}: favordynmods turned on, so a run's command enters its cgroup \
             without waiting for an RCU grace period (cgroup_favordynmods: false leaves it off)",
            root.display()
        ),
        Err(e) => tracing::warn!(
            "{e}; each run's command waits for an RCU grace period (milliseconds) to enter \
             its cgroup"
        ),
    }
}
