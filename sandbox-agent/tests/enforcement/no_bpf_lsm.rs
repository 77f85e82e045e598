//! On a kernel without the BPF LSM nothing may pretend to enforce. `cargo xtask test` runs these
//! (with --ignored) in a VM booted with `lsm=` lacking `bpf`; in the regular runs they would
//! wrongly see a working kernel, so there they are ignored, and reported as such.

use crate::harness::*;

fn assert_kernel_lacks_the_bpf_lsm() {
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap();
    assert!(
        !lsms.split(',').any(|l| l.trim() == "bpf"),
        "this test needs a kernel booted without the BPF LSM, got {lsms}"
    );
}

#[test]
#[ignore = "runs in the VM booted without the BPF LSM (cargo xtask test)"]
fn doctor_names_the_missing_bpf_lsm_and_fails() {
    assert_kernel_lacks_the_bpf_lsm();
    let out = agent().arg("doctor").output().unwrap();

    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("the BPF LSM is not active"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("add `bpf` to the kernel's lsm= boot parameter"),
        "{}",
        stdout(&out)
    );
}

#[test]
#[ignore = "runs in the VM booted without the BPF LSM (cargo xtask test)"]
fn daemon_refuses_to_start_and_serves_nothing() {
    assert_kernel_lacks_the_bpf_lsm();
    let socket = "/run/no-bpf-lsm.sock";
    let out = agent()
        .args([
            "daemon",
            "--socket",
            socket,
            "--bpffs",
            "/sys/fs/bpf/no-bpf-lsm",
        ])
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the BPF LSM is not active"),
        "{}",
        stderr(&out)
    );
    assert!(
        !std::path::Path::new(socket).exists(),
        "the daemon must not serve"
    );
}

#[test]
#[ignore = "runs in the VM booted without the BPF LSM (cargo xtask test)"]
fn run_never_starts_the_command() {
    assert_kernel_lacks_the_bpf_lsm();
    let home = fixture_dir("no-bpf-run");
    let marker = home.join("started");
    let policy = policy_file(&home, "p", "deny_read:\n  - ~/.ssh\n");
    let out = agent_run(&[], &policy, &home, &["touch", marker.to_str().unwrap()]);

    assert!(!out.status.success());
    assert!(!marker.exists(), "the command ran unconfined");
}
