//! Denials are visible: each one is an audit record; audit mode allows and records.

use std::time::{Duration, Instant};

use crate::harness::*;

fn audit_lines() -> Vec<serde_json::Value> {
    let out = agent().args(["audit", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Audit records about inode `ino`, waiting briefly for the daemon to drain the ring buffer.
fn records_for(ino: u64, want: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<_> = audit_lines()
            .into_iter()
            .filter(|r| r["target"]["ino"] == ino)
            .collect();
        if found.len() >= want || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_denied_open_is_recorded_with_policy_rule_and_target() {
    let home = fixture_dir("audit");
    let secret = home.join("secret");
    write(&secret, "s");
    let cg = confined("audit", &home, &[&secret]);
    assert_eq!(cg.open(&secret), Err(EPERM));

    let records = records_for(ino(&secret), 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["action"], "deny");
    assert_eq!(r["hook"], "file_open");
    assert_eq!(r["comm"], "python3");
    assert_eq!(r["policy"], "test-policy");
    assert_eq!(r["cgroup"], cg.path.display().to_string());
    assert_eq!(r["rule"], format!("deny_read {}", secret.display()));
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
    let records = records_for(ino(&secret), 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["action"], "audit");
    assert_eq!(records[0]["policy"], "watch-only");
}
