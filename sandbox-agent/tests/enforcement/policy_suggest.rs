//! Learning a policy: a small workload (git, python, curl to a local server, a datagram to a
//! local Unix socket server, a look at a secret) runs under a learning policy in audit mode; `policy suggest --from-audit` turns its
//! records into a policy that passes `policy check`, lists what the workload executed and
//! contacted, keeps the secret denied, and under which the same workload, enforced, runs with
//! no denial but the secret's.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::harness::*;

/// An HTTP server on a free loopback port, outside every sandbox: prints the port, then
/// answers every request with `ok`.
const SERVER: &str = r#"
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
"#;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workload: `$1` the home, `$2` the server's port. Reading the secret comes last, so its
/// record is the last one.
const WORKLOAD: &str = r#"git init -q "$1/repo" && git -C "$1/repo" status --short && echo git-ok
python3 -c 'print("python", 6 * 7)'
"$1/tools/fmt" && "$1/tools/lint" && echo tools-ok
curl -s "http://127.0.0.1:$2/" && echo " curl-ok"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", sys.argv[1])' "$1/service.sock" && echo unix-ok
cat "$1/.ssh/id_ed25519"; echo cat=$?"#;

fn workload(home: &Path, port: u16) -> Vec<String> {
    ["sh", "-c", WORKLOAD, "workload", home.to_str().unwrap()]
        .map(String::from)
        .into_iter()
        .chain([port.to_string()])
        .collect()
}

/// Waits for the record of the workload's last step (records arrive in order): the secret,
/// read by a run whose records carry `field` = `value`.
fn wait_for_the_secrets_record(field: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audit_lines().iter().any(|r| {
        r[field] == value
            && r["rule"] == "deny_read ~/.ssh"
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("id_ed25519"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no record of the secret for {value}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_policy_learned_in_audit_mode_runs_the_same_workload_with_no_denial_but_the_secret() {
    let server = Server::start();
    let name = format!("learn-{}", std::process::id());

    // Learning: audit mode, every exec and every destination would be denied, so each is a
    // record; the secret is denied as it will stay.
    let home = fixture_dir("suggest-learn");
    write(&home.join(".ssh/id_ed25519"), "PRIVATE KEY");
    // A directory of the project's own tools, every one of which the workload runs: the
    // suggestion lists it as one tree.
    for tool in ["fmt", "lint"] {
        let path = home.join("tools").join(tool);
        write(&path, "#!/bin/sh\ntrue\n");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    // A local service on a Unix socket, outside every sandbox.
    let _service = std::os::unix::net::UnixDatagram::bind(home.join("service.sock")).unwrap();
    let learning = policy_file(
        &home,
        &name,
        "mode: audit\nallow_exec: []\nnetwork:\n  default: deny\n  unix_default: deny\n\
         deny_read:\n  - ~/.ssh\n",
    );
    let argv = workload(&home, server.port);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    // `run` starts the command though `allow_exec: []` does not list it: audit mode denies
    // nothing.
    let out = agent_run(&[], &learning, &home, &argv);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for done in [
        "git-ok",
        "python 42",
        "tools-ok",
        "ok curl-ok",
        "unix-ok",
        "PRIVATE KEY",
        "cat=0",
    ] {
        assert!(text.contains(done), "audit mode denies nothing: {text}");
    }
    wait_for_the_secrets_record("policy", &name);

    let out = agent()
        .args(["policy", "suggest", "--from-audit", "--policy", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let suggested_yaml = stdout(&out);
    for entry in [
        "name: \"learn-",
        "mode: enforce",
        "/git\"  # executed or mapped",
        "/curl\"  # executed or mapped",
        &format!(
            "{:?}  # every one of its 2 files executed or mapped",
            home.join("tools").display().to_string()
        ),
        &format!("\"127.0.0.1:{}\"  # connected or sent to once", server.port),
        // Sent to by root: listed where a confined root may reach it.
        &format!(
            "  unix_root_allow:\n    - {:?}  # connected or sent to once",
            home.join("service.sock").display().to_string()
        ),
        "deny_read:\n  - \"~/.ssh\"  # denied once",
    ] {
        assert!(suggested_yaml.contains(entry), "{entry}: {suggested_yaml}");
    }
    let suggested = home.join("suggested.yaml");
    std::fs::write(&suggested, &suggested_yaml).unwrap();
    let check = agent()
        .args(["policy", "check"])
        .arg(&suggested)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );

    // The same workload under the suggestion, enforced: it works, and the secret stays denied.
    let enforce = Cgroup::new("suggest-enforce");
    attach(&enforce, &suggested, &home);
    let text = stdout(&enforce.run(&argv));
    for done in ["git-ok", "python 42", "tools-ok", "ok curl-ok", "unix-ok"] {
        assert!(text.contains(done), "{done}: {text}");
    }
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("cat=0"),
        "{text}"
    );
    let cgroup = enforce.path.display().to_string();
    wait_for_the_secrets_record("cgroup", &cgroup);
    let others: Vec<serde_json::Value> = audit_lines()
        .into_iter()
        .filter(|r| r["cgroup"] == cgroup && r["rule"] != "deny_read ~/.ssh")
        .collect();
    assert!(others.is_empty(), "denials beyond the secret: {others:#?}");
}

#[test]
fn a_suggestion_with_nothing_to_learn_from_is_an_error_naming_what_is_missing() {
    let out = agent()
        .args([
            "policy",
            "suggest",
            "--from-audit",
            "--policy",
            "no-such-learning-run",
        ])
        .output()
        .unwrap();
    assert_refused(&out, "no audit records of policy \"no-such-learning-run\"");
    let out = agent()
        .args(["policy", "suggest", "--from-audit"])
        .output()
        .unwrap();
    assert_refused(&out, "exactly one of --policy NAME or --cgroup PATH");
}
