//! `daemon --metrics-listen ADDR`: what the daemon counts, in the Prometheus text format, on a
//! read-only HTTP endpoint. Only `GET /metrics` is answered. No confined task can reach it: the
//! programs refuse a connect to its port on loopback or any of the host's own addresses
//! (`DAEMON_PORT`), since the counts describe every sandbox on the host.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{body::Bytes, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;

use super::{state::Decided, DaemonState};
use crate::{bpf::policy_maps::MapFill, cgroup};

/// What the daemon's state says, copied out under its lock.
pub struct Snapshot {
    pub decisions: Vec<Decided>,
    pub logged: u64,
    /// Suppressed events by policy name.
    pub suppressed: BTreeMap<String, u64>,
    pub dropped: u64,
    pub pins_restored: u64,
    /// (attach and run requests compiled, requests that reused a compile).
    pub compiles: (u64, u64),
    pub attachments: Vec<Attached>,
    pub fill: Vec<MapFill>,
}

pub struct Attached {
    pub policy: String,
    pub cgroup: PathBuf,
    pub mode: String,
    /// Made by `run` (a transient cgroup), not by `attach`.
    pub run: bool,
}

/// Tells the programs which TCP port is the daemon's own (0: none, clearing what an earlier
/// daemon set): before the listener exists, so no confined task ever reaches it.
pub fn guard_port(map: aya::maps::Map, port: Option<u16>) -> anyhow::Result<()> {
    let mut array: aya::maps::Array<aya::maps::MapData, u32> =
        aya::maps::Array::try_from(map).context("DAEMON_PORT is not an array")?;
    array
        .set(0, u32::from(port.unwrap_or(0)), 0)
        .context("cannot write DAEMON_PORT")
}

/// Binds the metrics listener, after `guard_port`.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 16;
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` on `listener` until the daemon stops.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Mutex<DaemonState>>,
    programs: Vec<(&'static str, u32)>,
) -> anyhow::Result<()> {
    let programs = Arc::new(programs);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await?;
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("metrics listener: {e}");
                continue;
            }
        };
        let (state, programs) = (state.clone(), programs.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                respond(req, state.clone(), programs.clone())
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("metrics connection: {e}");
            }
            drop(permit);
        });
    }
}

async fn respond(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<DaemonState>>,
    programs: Arc<Vec<(&'static str, u32)>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(plain(StatusCode::NOT_FOUND, "only /metrics is served\n"));
    }
    if req.method() != Method::GET {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET /metrics\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return Ok(r);
    }
    // Counting tasks and reading program statistics touches cgroupfs and bpf(2).
    let text = tokio::task::spawn_blocking(move || exposition(&state, &programs)).await;
    Ok(match text {
        Ok(Ok(text)) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}\n")),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    })
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    hook: String,
    rule: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CgroupLabels {
    policy: String,
    cgroup: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

/// The whole exposition, built afresh from the daemon's state at each scrape.
fn exposition(
    state: &Mutex<DaemonState>,
    programs: &[(&'static str, u32)],
) -> anyhow::Result<String> {
    let snap = state
        .lock()
        .map_err(|_| anyhow::anyhow!("daemon state poisoned"))?
        .metrics();
    let mut registry = Registry::with_prefix("sandbox_agent");

    let decisions = Family::<DecisionLabels, Counter>::default();
    for d in &snap.decisions {
        let labels = DecisionLabels {
            policy: d.policy.clone(),
            hook: d.hook.clone(),
            rule: d.rule.clone(),
            action: d.action.clone(),
        };
        decisions.get_or_create(&labels).inc_by(d.count);
    }
    registry.register(
        "decisions",
        "Decisions of confined tasks written to the audit log (deny, or audit in audit mode); \
         those beyond a policy's audit rate limit are counted in audit_events_suppressed",
        decisions,
    );
    registry.register(
        "audit_records_logged",
        "Audit records of decisions written to the log",
        counter(snap.logged),
    );
    let suppressed = Family::<PolicyLabels, Counter>::default();
    for (policy, n) in &snap.suppressed {
        let labels = PolicyLabels {
            policy: policy.clone(),
        };
        suppressed.get_or_create(&labels).inc_by(*n);
    }
    registry.register(
        "audit_events_suppressed",
        "Events a policy's audit rate limit counted instead of sending",
        suppressed,
    );
    registry.register(
        "audit_events_dropped",
        "Events lost because the kernel's ring buffer was full",
        counter(snap.dropped),
    );
    registry.register(
        "pins_restored",
        "Pins removed from bpffs by someone outside that the daemon put back",
        counter(snap.pins_restored),
    );
    registry.register(
        "policy_compiles",
        "Attach and run requests whose policy was compiled",
        counter(snap.compiles.0),
    );
    registry.register(
        "policy_compiles_reused",
        "Attach and run requests that reused an earlier compile, nothing it read having changed",
        counter(snap.compiles.1),
    );

    let attachments = Family::<ModeLabels, Gauge>::default();
    let tasks = Family::<CgroupLabels, Gauge>::default();
    let mut runs = 0;
    for a in &snap.attachments {
        let labels = ModeLabels {
            mode: a.mode.clone(),
        };
        attachments.get_or_create(&labels).inc();
        runs += i64::from(a.run);
        let labels = CgroupLabels {
            policy: a.policy.clone(),
            cgroup: a.cgroup.display().to_string(),
        };
        tasks.get_or_create(&labels).set(processes_in(&a.cgroup));
    }
    registry.register(
        "attachments",
        "Cgroups with a policy attached (runs included)",
        attachments,
    );
    registry.register(
        "runs",
        "Commands running under `sandbox-agent run`",
        gauge(runs),
    );
    registry.register(
        "confined_processes",
        "Processes in each attached cgroup and its descendants",
        tasks,
    );

    let entries = Family::<MapLabels, Gauge>::default();
    let capacity = Family::<MapLabels, Gauge>::default();
    for f in &snap.fill {
        let labels = MapLabels {
            map: f.map.to_string(),
        };
        entries
            .get_or_create(&labels)
            .set(i64::try_from(f.entries).unwrap_or(i64::MAX));
        capacity.get_or_create(&labels).set(i64::from(f.capacity));
    }
    registry.register(
        "map_entries",
        "Entries in each rule map, whoever wrote them",
        entries,
    );
    registry.register(
        "map_capacity",
        "Entries each rule map can hold; an attach that needs more is refused",
        capacity,
    );

    let stats_on = bpf_stats_enabled();
    registry.register(
        "bpf_stats_enabled",
        "Whether the kernel counts BPF program runs (sysctl kernel.bpf_stats_enabled)",
        gauge(i64::from(stats_on)),
    );
    if stats_on {
        let (runs, seconds) = program_stats(programs);
        registry.register(
            "program_runs",
            "Runs of each LSM program while kernel.bpf_stats_enabled is on",
            runs,
        );
        registry.register(
            "program_run_seconds",
            "Time spent in each LSM program while kernel.bpf_stats_enabled is on",
            seconds,
        );
    }

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .context("cannot encode the metrics")?;
    Ok(text)
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// Processes in `root` and every cgroup below it (a cgroup gone meanwhile counts none).
fn processes_in(root: &std::path::Path) -> i64 {
    cgroup::subtree(root)
        .iter()
        .filter_map(|c| std::fs::read_to_string(c.join("cgroup.procs")).ok())
        .map(|procs| procs.lines().count() as i64)
        .sum()
}

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}

/// Run count and run time of this daemon's programs, by hook.
fn program_stats(
    programs: &[(&'static str, u32)],
) -> (
    Family<HookLabels, Counter>,
    Family<HookLabels, Counter<f64>>,
) {
    let by_id: BTreeMap<u32, &str> = programs.iter().map(|(hook, id)| (*id, *hook)).collect();
    let runs = Family::<HookLabels, Counter>::default();
    let seconds = Family::<HookLabels, Counter<f64>>::default();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        let Some(hook) = by_id.get(&info.id()) else {
            continue;
        };
        let labels = HookLabels {
            hook: hook.to_string(),
        };
        runs.get_or_create(&labels).inc_by(info.run_count());
        seconds
            .get_or_create(&labels)
            .inc_by(info.run_time().as_secs_f64());
    }
    (runs, seconds)
}
