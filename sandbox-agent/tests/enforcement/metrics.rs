//! The daemon's `/metrics` (the VM's daemon is configured with `metrics_listen:
//! 127.0.0.1:9464`): exact counts after known denials, read-only, and out of every confined
//! task's reach whatever its policy allows.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
};

use crate::{harness::*, network::veth_address};

const METRICS_PORT: u16 = 9464;

/// One HTTP/1.1 request to the metrics listener: (status code, body).
fn request(method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", METRICS_PORT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub(crate) fn scrape() -> String {
    let (status, body) = request("GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of the samples of `name` whose labels include every pair of `labels`.
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, want)| rest.contains(&format!("{k}=\"{want}\""))))
            .then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

/// Connects to port argv[1] on each host that follows; prints `OK:{"host": errno or 0}`.
const CONNECT_EACH: &str = r#"
import json, socket, sys
port, result = int(sys.argv[1]), {}
for host in sys.argv[2:]:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(10)
    try:
        s.connect((host, port))
        result[host] = 0
    except OSError as e:
        result[host] = e.errno
    s.close()
print("OK:" + json.dumps(result), end="")
"#;

/// The errno (0: connected) of a connect to the metrics port on each of `hosts`.
fn connect_each(cg: Option<&Cgroup>, user: bool, hosts: &[&str]) -> serde_json::Value {
    let port = METRICS_PORT.to_string();
    let mut args = vec![port.as_str()];
    args.extend_from_slice(hosts);
    let json = match (cg, user) {
        (Some(cg), true) => probe_as_user(cg, CONNECT_EACH, &args),
        (cg, _) => probe(cg, CONNECT_EACH, &args),
    };
    serde_json::from_str(&json.unwrap()).unwrap()
}

#[test]
fn known_denials_are_counted_exactly_with_the_attachment_its_processes_and_the_maps() {
    let home = fixture_dir("metrics-count");
    let secret = home.join("secret");
    write(&secret, "s3cret");
    let policy = policy_file(
        &home,
        "metrics-count",
        &format!("deny_read: [{:?}]\n", secret.display().to_string()),
    );
    let cg = Cgroup::new("metrics-count");
    attach(&cg, &policy, &home);
    let decisions = [
        ("policy", "metrics-count"),
        ("hook", "file_open"),
        ("action", "deny"),
    ];
    assert_eq!(
        value(&scrape(), "sandbox_agent_decisions_total", &decisions),
        0.0
    );

    for _ in 0..3 {
        assert_eq!(cg.open(&secret), Err(EPERM));
    }
    records_for(&secret, 3);
    let mut sleeper = cg.spawn(&["sleep", "60"]);
    let text = scrape();
    sleeper.kill().unwrap();
    let _ = sleeper.wait();

    assert_eq!(
        value(&text, "sandbox_agent_decisions_total", &decisions),
        3.0,
        "{text}"
    );
    let rule = format!("deny_read {}", secret.display());
    assert_eq!(
        value(
            &text,
            "sandbox_agent_decisions_total",
            &[("policy", "metrics-count"), ("rule", &rule)]
        ),
        3.0,
        "{text}"
    );
    let cgroup = cg.path.display().to_string();
    assert_eq!(
        value(
            &text,
            "sandbox_agent_confined_processes",
            &[("policy", "metrics-count"), ("cgroup", &cgroup)]
        ),
        1.0,
        "{text}"
    );
    assert!(value(&text, "sandbox_agent_attachments", &[("mode", "enforce")]) >= 1.0);
    assert!(value(&text, "sandbox_agent_audit_records_logged_total", &[]) >= 3.0);
    assert!(
        text.contains("sandbox_agent_audit_events_dropped_total 0"),
        "{text}"
    );
    assert!(
        value(
            &text,
            "sandbox_agent_map_entries",
            &[("map", "INODE_RULES")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &text,
            "sandbox_agent_map_capacity",
            &[("map", "INODE_RULES")]
        ),
        262_144.0
    );
    assert!(
        value(
            &text,
            "sandbox_agent_map_entries",
            &[("map", "CGROUP_POLICY")]
        ) >= 1.0
    );
}

#[test]
fn program_runs_are_reported_while_the_kernels_bpf_statistics_are_on() {
    let stats = Path::new("/proc/sys/kernel/bpf_stats_enabled");
    std::fs::write(stats, "0").unwrap();
    let text = scrape();
    assert!(text.contains("sandbox_agent_bpf_stats_enabled 0"), "{text}");
    assert!(!text.contains("sandbox_agent_program_runs_total"), "{text}");

    std::fs::write(stats, "1").unwrap();
    let _ = std::fs::read_to_string("/etc/hostname");
    let text = scrape();
    std::fs::write(stats, "0").unwrap();
    assert!(text.contains("sandbox_agent_bpf_stats_enabled 1"), "{text}");
    let opens = value(
        &text,
        "sandbox_agent_program_runs_total",
        &[("hook", "file_open")],
    );
    assert!(opens >= 1.0, "{text}");
    let seconds = value(
        &text,
        "sandbox_agent_program_run_seconds_total",
        &[("hook", "file_open")],
    );
    assert!(seconds > 0.0, "{text}");
}

#[test]
fn the_listener_answers_only_a_get_of_metrics() {
    assert_eq!(request("GET", "/metrics").0, 200);
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(request(method, "/metrics").0, 405, "{method}");
    }
    assert_eq!(request("GET", "/").0, 404);
    assert_eq!(request("GET", "/metrics/../state").0, 404);
}

#[test]
fn no_confined_task_reaches_the_metrics_listener_even_where_its_policy_allows_loopback() {
    let home = fixture_dir("metrics-reach");
    let local = veth_address();
    let plain = Cgroup::new("metrics-reach");
    attach(
        &plain,
        &policy_file(&home, "metrics-reach", "deny_read: [~/.ssh]\n"),
        &home,
    );
    let allowing = Cgroup::new("metrics-reach-allow");
    attach(
        &allowing,
        &policy_file(
            &home,
            "metrics-reach-allow",
            "network:\n  default: deny\n  allow: [\"127.0.0.0/8\", \"::1\", \"0.0.0.0/0\"]\n",
        ),
        &home,
    );
    // The daemon reads the host's addresses every 2 s; the veth may be newer than that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connect_each(Some(&plain), false, &[local])[local] != EPERM {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never learned the host's address {local}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let hosts = [
        "127.0.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "127.0.0.2",
        "::1",
        local,
    ];
    for cg in [&plain, &allowing] {
        for user in [false, true] {
            let results = connect_each(Some(cg), user, &hosts);
            for host in hosts {
                assert_eq!(
                    results[host],
                    EPERM,
                    "{host}, user {user}, {}: {results}",
                    cg.path.display()
                );
            }
        }
    }
    // Outside every sandbox it answers.
    assert_eq!(connect_each(None, false, &["127.0.0.1"])["127.0.0.1"], 0);
    let record = record_of(&plain, "socket_connect", |r| {
        r["rule"] == "self-protection (the daemon's metrics listener)"
    });
    assert_eq!(record["action"], "deny");
}
