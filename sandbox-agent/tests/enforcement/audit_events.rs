//! Denials are visible: each one is an audit record; audit mode allows and records.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn a_denied_open_is_recorded_with_policy_rule_and_target() {
    let home = fixture_dir("audit");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("audit", &home, &[&secret]);
    assert_eq!(cg.open(&secret), Err(EPERM));

    let records = records_for(&secret, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["action"], "deny");
    assert_eq!(r["hook"], "file_open");
    assert_eq!(r["comm"], "python3");
    assert_eq!(r["policy"], "test-policy");
    assert_eq!(r["cgroup"], cg.path.display().to_string());
    assert_eq!(r["rule"], format!("deny_read {}", secret.display()));
    assert_eq!(r["target"]["path"], secret.display().to_string());
    // The acting program by identity: python3's executable, whatever name it was started by.
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let md = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&python).unwrap());
    assert_eq!(r["exe"]["ino"], md, "{r}");

    // Through a symlink in another directory, the record names the file's real path.
    let alias = fixture_dir("audit-alias").join("innocent");
    std::os::unix::fs::symlink(&secret, &alias).unwrap();
    assert_eq!(cg.open(&alias), Err(EPERM));
    let records = records_for(&secret, 2);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1]["target"]["path"], secret.display().to_string());
}

#[test]
fn audit_mode_allows_the_open_and_records_it() {
    let home = fixture_dir("auditmode");
    let secret = home.join("secret");
    write(&secret, "visible");
    let cg = Cgroup::new("auditmode");
    let policy = policy_file(
        &home,
        "watch-only",
        &format!("mode: audit\ndeny_read:\n  - {}\n", secret.display()),
    );
    attach(&cg, &policy, &home);

    assert_eq!(cg.open(&secret), Ok("visible".into()));
    let records = records_for(&secret, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["action"], "audit");
    assert_eq!(records[0]["policy"], "watch-only");
}

#[test]
fn a_denied_exec_is_recorded_once_with_the_program_that_tried() {
    let home = fixture_dir("audit-exec");
    let prog = tool(&home, "tool");
    let cg = Cgroup::new("audit-exec");
    let policy = policy_file(
        &home,
        "audit-exec",
        &format!("deny_exec:\n  - {:?}\n", prog.display().to_string()),
    );
    attach(&cg, &policy, &home);
    assert_eq!(cg.exec(&prog), Err(EPERM));

    let records = records_for(&prog, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["action"], "deny");
    assert_eq!(r["hook"], "bprm_check_security");
    assert_eq!(r["policy"], "audit-exec");
    assert_eq!(r["rule"], format!("deny_exec {}", prog.display()));
    // The exec is denied before the task becomes the tool: the actor is still python3.
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    assert_eq!(r["exe"]["ino"], ino(&python), "{r}");
}

/// Opens `argv[1]` `argv[2]` times and prints OK:<number of EPERM failures>.
const FLOOD: &str = r#"
import errno, sys
path, n, denied = sys.argv[1], int(sys.argv[2]), 0
for _ in range(n):
    try:
        open(path).close()
    except PermissionError:
        denied += 1
print("OK:%d" % denied, end="")
"#;

fn events_dropped() -> u64 {
    let out = agent().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["events_dropped"].as_u64().unwrap()
}

#[test]
fn a_flood_of_denials_is_accounted_for_exactly() {
    const ATTEMPTS: u64 = 100_000;
    let home = fixture_dir("flood");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = Cgroup::new("flood");
    let policy = policy_file(
        &home,
        "flood",
        &format!("deny_read:\n  - {:?}\n", secret.display().to_string()),
    );
    attach(&cg, &policy, &home);
    let dropped_before = events_dropped();

    let denied = cg.probe(FLOOD, &[secret.to_str().unwrap(), &ATTEMPTS.to_string()]);
    assert_eq!(denied, Ok(ATTEMPTS.to_string()), "every open was denied");

    // Records arrive as the daemon drains the ring; suppression counts once a second.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (logged, suppressed, dropped) = loop {
        let mine: Vec<_> = audit_lines()
            .into_iter()
            .filter(|r| r["policy"] == "flood")
            .collect();
        let logged = mine.iter().filter(|r| r["action"] == "deny").count() as u64;
        let suppressed: u64 = mine.iter().filter_map(|r| r["suppressed"].as_u64()).sum();
        let dropped = events_dropped() - dropped_before;
        if logged + suppressed + dropped == ATTEMPTS || Instant::now() > deadline {
            break (logged, suppressed, dropped);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        logged + suppressed + dropped,
        ATTEMPTS,
        "logged {logged} + suppressed {suppressed} + dropped {dropped}"
    );
    assert!(
        suppressed > 0,
        "the rate limit never engaged: {logged} logged"
    );
    assert!(logged > 0);
}
