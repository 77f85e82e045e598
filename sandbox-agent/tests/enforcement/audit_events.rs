//! Denials are visible: each one is an audit record; audit mode allows and records.

use crate::harness::*;

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
    // The acting program by identity: python3's executable, whatever name it was started by.
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    let md = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&python).unwrap());
    assert_eq!(r["exe"]["ino"], md, "{r}");
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
